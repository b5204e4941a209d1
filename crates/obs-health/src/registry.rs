//! The registry: [`Health`], its builder, execution (direct and cached),
//! graceful drain and the stats handle.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinHandle;

use crate::check::{Check, Kind, Kinds};
use crate::entry::{AbortOnDrop, Entry, Outcome, Record, ServiceInfo};
use crate::error::Error;
use crate::report::{CheckReport, Probe, ProbeOptions, Report};
use crate::result::{CheckResult, Status};

/// The name of the built-in readiness check that fails once the process
/// starts shutting down.
pub const SHUTDOWN_CHECK: &str = "shutdown";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const MAX_NAME_LEN: usize = 63;

/// The built-in [`SHUTDOWN_CHECK`] entry.
fn shutdown_entry(redactor: Arc<obs_core::Redactor>) -> Entry {
    let check = Check::new(SHUTDOWN_CHECK, || async { CheckResult::pass() })
        .readiness()
        .component_type("system");
    Entry::from_check(check, DEFAULT_TIMEOUT, DEFAULT_INTERVAL, redactor)
}

/// Whether a probe (with its tag filter) selects this check.
fn selects(entry: &Entry, probe: Probe, tags: &[String]) -> bool {
    probe.includes(entry.kinds) && (tags.is_empty() || entry.tags.iter().any(|t| tags.contains(t)))
}

struct Inner {
    entries: Vec<Arc<Entry>>,
    shutdown: Arc<Entry>,
    shutting_down: AtomicBool,
    pollers: AtomicUsize,
    info: Arc<ServiceInfo>,
}

/// A registry of health checks, cheap to clone (an `Arc`).
///
/// Probes run the selected checks concurrently, each under its own timeout
/// ("direct mode"), or — once [`spawn_poller`](Health::spawn_poller) runs —
/// read the results a background poller keeps fresh ("cached mode"), so a
/// probe costs a few atomic loads and a slow dependency can never stall it.
///
/// ```
/// use obs_health::{Check, CheckResult, Health, Probe, ProbeOptions, Status};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let health = Health::builder()
///     .check(Check::new("db", || async { CheckResult::pass() }))
///     .check(Check::new("cache", || async { CheckResult::fail("connection refused") }).non_critical())
///     .build()?;
/// let report = health.probe(Probe::Readiness, &ProbeOptions::default()).await;
/// assert_eq!(report.status(), Status::Warn); // a non-critical failure degrades
/// assert_eq!(report.http_code(), 200);
/// # Ok::<(), obs_health::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("checks", &self.inner.entries)
            .field("shutting_down", &self.is_shutting_down())
            .field("cached", &self.is_cached())
            .finish()
    }
}

/// Builds a [`Health`] registry; names and settings are validated by
/// [`build`](HealthBuilder::build).
#[derive(Debug, Default)]
pub struct HealthBuilder {
    checks: Vec<Check>,
    default_timeout: Option<Duration>,
    poll_interval: Option<Duration>,
    info: ServiceInfo,
    redactor: Option<obs_core::Redactor>,
}

impl HealthBuilder {
    /// Registers a check.
    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// The timeout of checks that set none (default 2 s).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = Some(timeout);
        self
    }

    /// The interval of the background poller for checks that set none
    /// (default 10 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = Some(interval);
        self
    }

    /// IETF `serviceId`.
    pub fn service_id(mut self, v: impl Into<String>) -> Self {
        self.info.service_id = Some(v.into());
        self
    }

    /// IETF `version` (public version of the service).
    pub fn version(mut self, v: impl Into<String>) -> Self {
        self.info.version = Some(v.into());
        self
    }

    /// IETF `releaseId`.
    pub fn release_id(mut self, v: impl Into<String>) -> Self {
        self.info.release_id = Some(v.into());
        self
    }

    /// IETF `description`.
    pub fn description(mut self, v: impl Into<String>) -> Self {
        self.info.description = Some(v.into());
        self
    }

    /// Applies environment settings ([`Config`](crate::Config)): default
    /// timeout, poll interval and `withhold_reasons` when set.
    pub fn config(mut self, config: &crate::Config) -> Self {
        if let Some(t) = config.default_timeout {
            self.default_timeout = Some(t);
        }
        if let Some(i) = config.poll_interval {
            self.poll_interval = Some(i);
        }
        self.info.withhold_reasons |= config.withhold_reasons;
        self
    }

    /// Withholds failure reasons from HTTP answers, as the Kubernetes API
    /// server does (`[-]db failed: reason withheld`, no `output` in JSON).
    /// Use it when the probe port is reachable by untrusted clients; the
    /// reasons still reach the logs (status changes) and [`Report`].
    pub fn withhold_reasons(mut self, withhold: bool) -> Self {
        self.info.withhold_reasons = withhold;
        self
    }

    /// The redaction rules applied to check outputs and text observed values
    /// before they are stored, logged or served (default: obs-core's
    /// [`Redactor::new`](obs_core::Redactor::new) rules — a failing check's
    /// message often quotes a connection string).
    pub fn redactor(mut self, redactor: obs_core::Redactor) -> Self {
        self.redactor = Some(redactor);
        self
    }

    /// Takes `serviceId` from `service.name` and `version` from
    /// `service.version` of an obs-core [`Resource`](obs_core::Resource).
    pub fn resource(mut self, resource: &obs_core::Resource) -> Self {
        self.info.service_id = Some(resource.service_name().to_owned());
        if let Some(v) = resource.service_version() {
            self.info.version = Some(v.to_owned());
        }
        self
    }

    /// Validates names and durations and builds the registry.
    ///
    /// ```
    /// use obs_health::{Check, Error, Health};
    /// let err = Health::builder()
    ///     .check(Check::new("db", || async { true }))
    ///     .check(Check::new("db", || async { true }))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err, Error::DuplicateName("db".into()));
    /// ```
    pub fn build(self) -> Result<Health, Error> {
        let default_timeout = self.default_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let poll_interval = self.poll_interval.unwrap_or(DEFAULT_INTERVAL);
        non_zero("*", "timeout", default_timeout)?;
        non_zero("*", "interval", poll_interval)?;
        let redactor = Arc::new(self.redactor.unwrap_or_default());
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(self.checks.len());
        for check in self.checks {
            validate_name(&check.name)?;
            if check.name == SHUTDOWN_CHECK {
                return Err(Error::ReservedName(check.name));
            }
            if !seen.insert(check.name.clone()) {
                return Err(Error::DuplicateName(check.name));
            }
            if let Some(t) = check.timeout {
                non_zero(&check.name, "timeout", t)?;
            }
            if let Some(i) = check.interval {
                non_zero(&check.name, "interval", i)?;
            }
            entries.push(Arc::new(Entry::from_check(
                check,
                default_timeout,
                poll_interval,
                Arc::clone(&redactor),
            )));
        }
        Ok(Health {
            inner: Arc::new(Inner {
                entries,
                shutdown: Arc::new(shutdown_entry(redactor)),
                shutting_down: AtomicBool::new(false),
                pollers: AtomicUsize::new(0),
                info: Arc::new(self.info),
            }),
        })
    }
}

fn non_zero(name: &str, what: &'static str, value: Duration) -> Result<(), Error> {
    if value.is_zero() {
        return Err(Error::ZeroDuration {
            name: name.to_owned(),
            what,
            value,
        });
    }
    Ok(())
}

/// Check names become URL path segments (`/readyz/<name>`) and JSON keys.
pub(crate) fn validate_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "the name is empty"
    } else if name.len() > MAX_NAME_LEN {
        "the name is longer than 63 bytes"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "only ASCII letters, digits, '.', '_' and '-' are allowed"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.escape_debug().take(80).collect(),
        reason,
    })
}

impl Health {
    /// A new builder.
    pub fn builder() -> HealthBuilder {
        HealthBuilder::default()
    }

    /// Evaluates a probe: runs (direct mode) or reads (cached mode) every
    /// selected check not excluded by `options`, plus the built-in
    /// [`SHUTDOWN_CHECK`] for readiness and `All`.
    ///
    /// Must be awaited inside a Tokio runtime: in direct mode each check
    /// runs on its own task.
    pub async fn probe(&self, probe: Probe, options: &ProbeOptions) -> Report {
        let inner = &*self.inner;
        let shutdown = (probe.includes(Kinds::READINESS) && options.tags.is_empty())
            .then_some(&inner.shutdown);
        let selected = inner
            .entries
            .iter()
            .filter(|e| selects(e, probe, &options.tags))
            .chain(shutdown);
        let cached = self.is_cached();
        // Direct mode starts every check before awaiting any, so they run
        // concurrently and each is bounded by its own deadline.
        let mut pending: Vec<(usize, AbortOnDrop, Instant)> = Vec::new();
        let mut checks: Vec<CheckReport> = Vec::with_capacity(inner.entries.len() + 1);
        for entry in selected {
            let outcome = if options.exclude.iter().any(|x| x.as_str() == &*entry.name) {
                Outcome::Excluded
            } else if Arc::ptr_eq(entry, &inner.shutdown) {
                Outcome::Done(self.shutdown_record())
            } else if cached {
                entry.cached_outcome()
            } else {
                let (task, started) = entry.start();
                pending.push((checks.len(), task, started));
                Outcome::Pending
            };
            checks.push(CheckReport::new(Arc::clone(entry), outcome));
        }
        for (i, task, started) in pending {
            let record = checks[i].entry().finish(task, started).await;
            checks[i].set_outcome(Outcome::Done(record));
        }
        let mut unmatched: Vec<String> = Vec::new();
        for name in &options.exclude {
            if !checks.iter().any(|c| c.name() == name.as_str()) && !unmatched.contains(name) {
                unmatched.push(name.clone());
            }
        }
        Report::new(probe, checks, unmatched, Arc::clone(&inner.info))
    }

    /// Evaluates one check by name, if it is selected by `probe`
    /// (`/readyz/<name>`). Returns `None` for an unknown name.
    pub async fn probe_check(&self, probe: Probe, name: &str) -> Option<Report> {
        let inner = &*self.inner;
        let entry = if name == SHUTDOWN_CHECK && probe.includes(Kinds::READINESS) {
            &inner.shutdown
        } else {
            inner
                .entries
                .iter()
                .find(|e| &*e.name == name && probe.includes(e.kinds))?
        };
        let outcome = if Arc::ptr_eq(entry, &inner.shutdown) {
            Outcome::Done(self.shutdown_record())
        } else if self.is_cached() {
            entry.cached_outcome()
        } else {
            Outcome::Done(entry.run_once().await)
        };
        let checks = vec![CheckReport::new(Arc::clone(entry), outcome)];
        Some(Report::new(
            probe,
            checks,
            Vec::new(),
            Arc::clone(&inner.info),
        ))
    }

    fn shutdown_record(&self) -> Arc<Record> {
        let result = if self.is_shutting_down() {
            CheckResult::fail("shutting down")
        } else {
            CheckResult::pass()
        };
        Arc::new(Record {
            result,
            time: SystemTime::now(),
            duration: Duration::ZERO,
            finished: Instant::now(),
        })
    }

    /// Starts cached mode: one background task per check runs it every
    /// interval (its own, else the registry's) under its timeout and keeps
    /// the latest result. Probes then only read results; a check with no
    /// result yet reports `fail` ("no result yet"). Dropping the returned
    /// [`Poller`] stops the tasks and returns to direct mode.
    ///
    /// Fails with [`Error::NoRuntime`] outside a Tokio runtime.
    pub fn spawn_poller(&self) -> Result<Poller, Error> {
        let handle =
            tokio::runtime::Handle::try_current().map_err(|e| Error::NoRuntime(e.to_string()))?;
        self.inner.pollers.fetch_add(1, Ordering::AcqRel);
        let tasks = self
            .inner
            .entries
            .iter()
            .map(|entry| {
                let entry = Arc::clone(entry);
                handle.spawn(async move {
                    let mut ticker = tokio::time::interval(entry.interval);
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        ticker.tick().await;
                        entry.run_once().await;
                    }
                })
            })
            .collect();
        Ok(Poller {
            tasks,
            health: self.clone(),
        })
    }

    /// Whether a [`Poller`] is running (cached mode).
    pub fn is_cached(&self) -> bool {
        self.inner.pollers.load(Ordering::Acquire) > 0
    }

    /// Starts draining: from now on readiness fails (built-in check
    /// `shutdown`) while liveness is unaffected. Idempotent.
    pub fn begin_shutdown(&self) {
        if !self.inner.shutting_down.swap(true, Ordering::AcqRel) {
            tracing::info!(check = SHUTDOWN_CHECK, "shutting down: readiness now fails");
        }
    }

    /// Whether [`begin_shutdown`](Health::begin_shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// A graceful-shutdown future for a server: waits for `signal`, flips
    /// readiness to fail, waits `grace` so load balancers and the kubelet see
    /// the failing probe and stop sending traffic, then completes — which is
    /// when the server should stop accepting connections.
    ///
    /// ```no_run
    /// # async fn demo(health: obs_health::Health, app: axum::Router) {
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await.unwrap();
    /// let signal = async { tokio::signal::ctrl_c().await.ok(); };
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(health.drain_on(signal, std::time::Duration::from_secs(5)))
    ///     .await
    ///     .unwrap();
    /// # }
    /// ```
    pub fn drain_on<F>(
        &self,
        signal: F,
        grace: Duration,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future + Send + 'static,
    {
        let health = self.clone();
        async move {
            signal.await;
            health.begin_shutdown();
            tokio::time::sleep(grace).await;
        }
    }

    /// The stats handle for metrics (the stats-handle contract).
    pub fn stats(&self) -> HealthStats {
        HealthStats {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Names of the registered checks, in registration order (the
    /// built-in `shutdown` check is not included).
    pub fn check_names(&self) -> impl Iterator<Item = &str> {
        self.inner.entries.iter().map(|e| &*e.name)
    }
}

/// Background polling tasks of cached mode; dropping it stops them.
#[derive(Debug)]
pub struct Poller {
    tasks: Vec<JoinHandle<()>>,
    health: Health,
}

impl Poller {
    /// Stops polling (same as dropping).
    pub fn stop(self) {}
}

impl Drop for Poller {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.health.inner.pollers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A cheap, cloneable handle on each check's latest status and duration,
/// for exporting `obs_health_check_status` (1 pass, 0.5 warn, 0 fail) and
/// `obs_health_check_duration_seconds` (names in
/// [`obs_core::names::metric`]) without a metrics dependency (the stats-handle contract).
///
/// ```
/// use obs_health::{Check, Health, Probe, ProbeOptions, Status};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let health = Health::builder().check(Check::new("db", || async { true })).build().unwrap();
/// let stats = health.stats();
/// assert_eq!(stats.checks()[0].status, None); // never run
/// health.probe(Probe::All, &ProbeOptions::default()).await;
/// let db = &stats.checks()[0];
/// assert_eq!((&*db.name, db.status), ("db", Some(Status::Pass)));
/// assert_eq!(db.status_value(), Some(1.0));
/// assert!(db.duration_seconds().is_some());
/// # });
/// ```
#[derive(Clone)]
pub struct HealthStats {
    inner: Arc<Inner>,
}

impl fmt::Debug for HealthStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthStats")
            .field("checks", &self.checks())
            .finish()
    }
}

/// The latest state of one check, as read by [`HealthStats::checks`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckStats {
    /// The check's name (the `check` label).
    pub name: Arc<str>,
    /// Its kinds.
    pub kinds: Kinds,
    /// Whether a failure fails the probe.
    pub critical: bool,
    /// The latest status, `None` before the first run.
    pub status: Option<Status>,
    /// How long the latest run took.
    pub duration: Option<Duration>,
    /// When the latest run finished.
    pub last_run: Option<SystemTime>,
    /// Runs so far.
    pub runs: u64,
    /// Failed runs so far (timeouts included).
    pub failures: u64,
    /// Runs abandoned at the timeout.
    pub timeouts: u64,
    /// Cached mode only: the latest result is older than two poll rounds
    /// plus the timeout, so the poller is not running; probes report the
    /// check as failing.
    pub stale: bool,
}

impl CheckStats {
    /// The `obs_health_check_status` value of the latest run (0, failing,
    /// when the result is [`stale`](CheckStats::stale)).
    pub fn status_value(&self) -> Option<f64> {
        let status = if self.stale {
            Some(Status::Fail)
        } else {
            self.status
        };
        status.map(Status::metric_value)
    }

    /// The `obs_health_check_duration_seconds` value of the latest run.
    pub fn duration_seconds(&self) -> Option<f64> {
        self.duration.map(|d| d.as_secs_f64())
    }
}

impl HealthStats {
    /// The name of the status gauge, `obs_health_check_status`.
    pub const STATUS_METRIC: &'static str = obs_core::names::metric::HEALTH_CHECK_STATUS;
    /// The name of the duration gauge, `obs_health_check_duration_seconds`.
    pub const DURATION_METRIC: &'static str = obs_core::names::metric::HEALTH_CHECK_DURATION;

    /// A snapshot of every registered check, in registration order.
    pub fn checks(&self) -> Vec<CheckStats> {
        let cached = self.inner.pollers.load(Ordering::Acquire) > 0;
        self.inner
            .entries
            .iter()
            .map(|e| {
                let latest = e.latest();
                CheckStats {
                    name: Arc::clone(&e.name),
                    kinds: e.kinds,
                    critical: e.critical,
                    status: latest.as_ref().map(|r| r.result.status()),
                    duration: latest.as_ref().map(|r| r.duration),
                    last_run: latest.as_ref().map(|r| r.time),
                    runs: e.runs.load(Ordering::Relaxed),
                    failures: e.failures.load(Ordering::Relaxed),
                    timeouts: e.timeouts.load(Ordering::Relaxed),
                    stale: cached && matches!(e.cached_outcome(), Outcome::Stale(_)),
                }
            })
            .collect()
    }

    /// Whether the process is draining (readiness fails).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }
}

impl Probe {
    pub(crate) fn includes(self, kinds: Kinds) -> bool {
        match self {
            Probe::Liveness => kinds.contains(Kind::Liveness),
            Probe::Readiness => kinds.contains(Kind::Readiness),
            Probe::Startup => kinds.contains(Kind::Startup),
            Probe::All => true,
        }
    }
}
