//! A named check and its metadata: kinds, tags, timeout, criticality.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::ops::BitOr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::result::{CheckResult, IntoCheckResult};

/// The boxed future a check returns.
pub(crate) type CheckFuture = Pin<Box<dyn Future<Output = CheckResult> + Send + 'static>>;
/// The type-erased check function.
pub(crate) type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync + 'static>;

/// A Kubernetes probe kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `/livez`: is the process able to make progress at all? A failure
    /// makes the kubelet restart the container.
    Liveness,
    /// `/readyz`: should the process get traffic now? A failure takes the
    /// pod out of the Service's endpoints.
    Readiness,
    /// `/startupz`: has the process finished starting? Liveness and
    /// readiness probes wait until it passes.
    Startup,
}

impl Kind {
    /// The endpoint name: `livez`, `readyz` or `startupz`.
    ///
    /// ```
    /// assert_eq!(obs_health::Kind::Readiness.endpoint(), "readyz");
    /// ```
    pub const fn endpoint(self) -> &'static str {
        match self {
            Kind::Liveness => "livez",
            Kind::Readiness => "readyz",
            Kind::Startup => "startupz",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Kind::Liveness => 1,
            Kind::Readiness => 2,
            Kind::Startup => 4,
        }
    }
}

/// A set of [`Kind`]s.
///
/// ```
/// use obs_health::{Kind, Kinds};
/// let k = Kinds::LIVENESS | Kinds::READINESS;
/// assert!(k.contains(Kind::Liveness) && !k.contains(Kind::Startup));
/// assert_eq!(Kind::Liveness | Kind::Readiness, k);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Kinds(u8);

impl Kinds {
    /// No kind.
    pub const NONE: Kinds = Kinds(0);
    /// Liveness only.
    pub const LIVENESS: Kinds = Kinds(1);
    /// Readiness only.
    pub const READINESS: Kinds = Kinds(2);
    /// Startup only.
    pub const STARTUP: Kinds = Kinds(4);
    /// All three kinds.
    pub const ALL: Kinds = Kinds(7);

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl From<Kind> for Kinds {
    fn from(k: Kind) -> Self {
        Kinds(k.bit())
    }
}

impl BitOr for Kinds {
    type Output = Kinds;
    fn bitor(self, rhs: Kinds) -> Kinds {
        Kinds(self.0 | rhs.0)
    }
}

impl BitOr<Kind> for Kinds {
    type Output = Kinds;
    fn bitor(self, rhs: Kind) -> Kinds {
        Kinds(self.0 | rhs.bit())
    }
}

impl BitOr for Kind {
    type Output = Kinds;
    fn bitor(self, rhs: Kind) -> Kinds {
        Kinds(self.bit() | rhs.bit())
    }
}

impl fmt::Debug for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut set = f.debug_set();
        for k in [Kind::Liveness, Kind::Readiness, Kind::Startup] {
            if self.contains(k) {
                set.entry(&k);
            }
        }
        set.finish()
    }
}

/// A named asynchronous health check and its metadata.
///
/// Built with [`Check::new`] (or one of the ready checks in
/// [`checks`](crate::checks)), then registered with
/// [`HealthBuilder::check`](crate::HealthBuilder::check). A check with no
/// kind set is a **readiness** check: only checks that say nothing about
/// external dependencies belong in liveness (see the crate docs).
///
/// ```
/// use std::time::Duration;
/// use obs_health::{Check, CheckResult};
/// let check = Check::new("queue", || async { CheckResult::pass() })
///     .readiness()
///     .startup()
///     .tag("infra")
///     .timeout(Duration::from_millis(500))
///     .non_critical();
/// assert_eq!(check.name(), "queue");
/// assert!(!check.is_critical());
/// ```
#[derive(Clone)]
pub struct Check {
    pub(crate) name: String,
    pub(crate) kinds: Kinds,
    pub(crate) tags: Vec<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) interval: Option<Duration>,
    pub(crate) critical: bool,
    pub(crate) component_type: Option<Cow<'static, str>>,
    pub(crate) run: CheckFn,
}

impl Check {
    /// A check named `name` that runs `f` on each evaluation.
    ///
    /// `f` returns a future of anything [`IntoCheckResult`]: a
    /// [`CheckResult`], a [`Status`](crate::Status), a `bool`, or a
    /// `Result<(), E: Display>`. The name must match `[A-Za-z0-9._-]{1,63}`;
    /// it is validated when the registry is built.
    pub fn new<F, Fut, R>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoCheckResult + 'static,
    {
        let run: CheckFn = Arc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.into_check_result() }) as CheckFuture
        });
        Self {
            name: name.into(),
            kinds: Kinds::NONE,
            tags: Vec::new(),
            timeout: None,
            interval: None,
            critical: true,
            component_type: None,
            run,
        }
    }

    /// Adds the liveness kind. Put only checks of the process itself here
    /// (a stuck event loop, a dead worker): a liveness failure restarts the
    /// container, which never fixes a database outage.
    pub fn liveness(mut self) -> Self {
        self.kinds = self.kinds | Kind::Liveness;
        self
    }

    /// Adds the readiness kind (the default when no kind is set).
    pub fn readiness(mut self) -> Self {
        self.kinds = self.kinds | Kind::Readiness;
        self
    }

    /// Adds the startup kind.
    pub fn startup(mut self) -> Self {
        self.kinds = self.kinds | Kind::Startup;
        self
    }

    /// Replaces the kinds.
    pub fn kinds(mut self, kinds: Kinds) -> Self {
        self.kinds = kinds;
        self
    }

    /// Adds a tag; probes can select checks by tag
    /// ([`ProbeOptions::tag`](crate::ProbeOptions::tag), `?tag=` over HTTP).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// The time after which a run is abandoned and counted as a failure
    /// (default: the registry's, 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How often the background poller runs this check (default: the
    /// registry's poll interval). Only used in cached mode.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Marks the check critical (the default) or not. A failing
    /// non-critical check makes the probe `warn` (degraded, HTTP 200)
    /// instead of `fail`.
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Shorthand for `critical(false)`.
    pub fn non_critical(self) -> Self {
        self.critical(false)
    }

    /// The IETF `componentType`: `component`, `datastore`, `system` or
    /// any other string.
    pub fn component_type(mut self, ty: impl Into<Cow<'static, str>>) -> Self {
        self.component_type = Some(ty.into());
        self
    }

    /// The check's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kinds set so far (empty means readiness once registered).
    pub fn kind_set(&self) -> Kinds {
        self.kinds
    }

    /// The tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Whether a failure fails the probe.
    pub fn is_critical(&self) -> bool {
        self.critical
    }
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("kinds", &self.kinds)
            .field("tags", &self.tags)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("critical", &self.critical)
            .field("component_type", &self.component_type)
            .finish_non_exhaustive()
    }
}
