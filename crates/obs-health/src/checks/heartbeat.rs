//! A liveness check that a background task is still making progress.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::check::Check;
use crate::error::Error;
use crate::result::CheckResult;

/// A heartbeat a background task beats on every iteration; cheap to clone
/// and to beat (one atomic store).
///
/// Creation counts as the first beat, so a task gets `max_age` to start.
///
/// ```
/// let hb = obs_health::checks::Heartbeat::new();
/// hb.beat();
/// assert!(hb.age() < std::time::Duration::from_secs(60));
/// ```
#[derive(Clone)]
pub struct Heartbeat {
    inner: Arc<HeartbeatInner>,
}

struct HeartbeatInner {
    base: Instant,
    last_nanos: AtomicU64,
}

impl Heartbeat {
    /// A new heartbeat, beaten now.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(HeartbeatInner {
                base: Instant::now(),
                last_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Records progress now.
    pub fn beat(&self) {
        let nanos = u64::try_from(self.inner.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.inner.last_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let last = Duration::from_nanos(self.inner.last_nanos.load(Ordering::Relaxed));
        self.inner.base.elapsed().saturating_sub(last)
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heartbeat")
            .field("age", &self.age())
            .finish()
    }
}

/// Fails when `heartbeat` has not been beaten for longer than `max_age`.
/// A **liveness** check by default: a stuck worker is fixed by a restart.
/// Reports `age` (s); `componentType` is `component`.
///
/// ```
/// use std::time::Duration;
/// use obs_health::checks::{self, Heartbeat};
/// let hb = Heartbeat::new();
/// let worker_hb = hb.clone();
/// // in the worker loop: worker_hb.beat();
/// let check = checks::heartbeat("outbox-worker", &hb, Duration::from_secs(30)).unwrap();
/// assert!(check.kind_set().contains(obs_health::Kind::Liveness));
/// ```
pub fn heartbeat(
    name: impl Into<String>,
    heartbeat: &Heartbeat,
    max_age: Duration,
) -> Result<Check, Error> {
    let name = name.into();
    if max_age.is_zero() {
        return Err(Error::ZeroDuration {
            name,
            what: "max age",
            value: max_age,
        });
    }
    let hb = heartbeat.clone();
    Ok(Check::new(name, move || {
        let age = hb.age();
        async move {
            let result = if age > max_age {
                CheckResult::fail(format!(
                    "no heartbeat for {:.1}s (max {:.1}s)",
                    age.as_secs_f64(),
                    max_age.as_secs_f64()
                ))
            } else {
                CheckResult::pass()
            };
            result.observe("age", age.as_secs_f64(), Some("s"))
        }
    })
    .liveness()
    .component_type("component"))
}
