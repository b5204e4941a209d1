//! A registered check and its state: [`Entry`] with its latest [`Record`],
//! how one run is started, timed out and recorded, and the service
//! information the report carries. The registry owns entries; reports read
//! them. This module depends on neither.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use tokio::task::JoinHandle;

use crate::check::{Check, CheckFn, CheckFuture, Kinds};
use crate::result::{CheckResult, Status};

const NO_STATUS: u8 = u8::MAX;

/// One finished run of a check.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) result: CheckResult,
    pub(crate) time: SystemTime,
    pub(crate) duration: Duration,
    /// Monotonic finish time, for the staleness test of cached mode.
    pub(crate) finished: Instant,
}

/// A registered check with its state.
pub(crate) struct Entry {
    pub(crate) name: Arc<str>,
    pub(crate) kinds: Kinds,
    pub(crate) tags: Vec<String>,
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    pub(crate) critical: bool,
    pub(crate) component_type: Option<Cow<'static, str>>,
    run: CheckFn,
    redactor: Arc<obs_core::Redactor>,
    latest: ArcSwapOption<Record>,
    last_status: AtomicU8,
    pub(crate) runs: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) timeouts: AtomicU64,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("kinds", &self.kinds)
            .field("critical", &self.critical)
            .finish_non_exhaustive()
    }
}

/// Aborts the task when dropped, so a probe whose client went away does not
/// leave its checks running.
pub(crate) struct AbortOnDrop(JoinHandle<CheckResult>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Entry {
    pub(crate) fn from_check(
        check: Check,
        default_timeout: Duration,
        default_interval: Duration,
        redactor: Arc<obs_core::Redactor>,
    ) -> Self {
        Self {
            name: Arc::from(check.name.as_str()),
            kinds: if check.kinds.is_empty() {
                Kinds::READINESS
            } else {
                check.kinds
            },
            tags: check.tags,
            timeout: check.timeout.unwrap_or(default_timeout),
            interval: check.interval.unwrap_or(default_interval),
            critical: check.critical,
            component_type: check.component_type,
            run: check.run,
            redactor,
            latest: ArcSwapOption::empty(),
            last_status: AtomicU8::new(NO_STATUS),
            runs: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        }
    }

    /// Starts one run on its own task (so a panic is contained and a
    /// timeout can abort it).
    pub(crate) fn start(&self) -> (AbortOnDrop, Instant) {
        let run = Arc::clone(&self.run);
        let started = Instant::now();
        let handle = tokio::spawn(async move {
            let fut: CheckFuture = run();
            fut.await
        });
        (AbortOnDrop(handle), started)
    }

    /// Waits for a started run, applying the timeout, then records it.
    pub(crate) async fn finish(&self, mut task: AbortOnDrop, started: Instant) -> Arc<Record> {
        let deadline = tokio::time::Instant::from_std(started + self.timeout);
        let result = match tokio::time::timeout_at(deadline, &mut task.0).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) if e.is_panic() => {
                let payload = e.into_panic();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                CheckResult::fail(format!("check panicked: {msg}"))
            }
            Ok(Err(_)) => CheckResult::fail("check task was cancelled"),
            Err(_) => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                CheckResult::fail(format!("timed out after {:?}", self.timeout))
            }
        };
        drop(task);
        self.record(result, started.elapsed())
    }

    pub(crate) async fn run_once(&self) -> Arc<Record> {
        let (task, started) = self.start();
        self.finish(task, started).await
    }

    fn record(&self, mut result: CheckResult, duration: Duration) -> Arc<Record> {
        // once per run, so cached probes pay nothing for it
        result.redact(&self.redactor);
        self.runs.fetch_add(1, Ordering::Relaxed);
        if result.status() == Status::Fail {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let status = result.status();
        let record = Arc::new(Record {
            result,
            time: SystemTime::now(),
            duration,
            finished: Instant::now(),
        });
        self.latest.store(Some(Arc::clone(&record)));
        let prev = self.last_status.swap(status.to_u8(), Ordering::AcqRel);
        if prev != status.to_u8() {
            log_change(&self.name, Status::from_u8(prev), &record);
        }
        record
    }

    pub(crate) fn latest(&self) -> Option<Arc<Record>> {
        self.latest.load_full()
    }

    /// A cached result older than this means the poller is not running any
    /// more (its runtime shut down, or it is starved): two missed rounds.
    pub(crate) fn stale_after(&self) -> Duration {
        self.interval.saturating_mul(2).saturating_add(self.timeout)
    }

    /// What cached mode reports for this check.
    pub(crate) fn cached_outcome(&self) -> Outcome {
        match self.latest() {
            None => Outcome::Pending,
            Some(r) if r.finished.elapsed() > self.stale_after() => Outcome::Stale(r),
            Some(r) => Outcome::Done(r),
        }
    }
}

/// Logs a status change once (probes that see the same status log nothing).
fn log_change(name: &str, prev: Option<Status>, record: &Record) {
    let status = record.result.status();
    let output = record.result.output().unwrap_or("");
    let from = prev.map_or("none", Status::as_str);
    match (prev, status) {
        (None, Status::Pass) => {
            tracing::debug!(
                check = name,
                status = status.as_str(),
                "health check first result"
            );
        }
        (_, Status::Pass) => {
            tracing::info!(
                check = name,
                from,
                to = status.as_str(),
                "health check recovered"
            );
        }
        _ => {
            tracing::warn!(
                check = name,
                from,
                to = status.as_str(),
                output,
                "health check status changed"
            );
        }
    }
}

/// Service information put at the top of the `application/health+json` body.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServiceInfo {
    pub(crate) service_id: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) release_id: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) withhold_reasons: bool,
}

/// What a report says for one check.
#[derive(Debug)]
pub(crate) enum Outcome {
    Excluded,
    Pending,
    Done(Arc<Record>),
    /// Cached mode only: the latest result is too old to be believed.
    Stale(Arc<Record>),
}
