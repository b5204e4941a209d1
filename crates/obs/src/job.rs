//! Background jobs: carry a request's context into a job and instrument the
//! job where it runs.
//!
//! Request telemetry and job telemetry stay apart: a job gets a **consumer**
//! span named for its type (parented by, or linked to, the producer's span)
//! and the `jobs_*` / `job_duration_seconds` metrics, never the HTTP ones.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Producer, inside a request: the carrier travels in the job payload.
//! let carrier = obs::job::carrier();
//!
//! // Consumer, in the worker.
//! let job = obs::job::Job::new("emails", "send_receipt").carrier(carrier);
//! let sent: Result<u32, std::io::Error> = obs::job::instrument(job, async { Ok(1) }).await;
//! assert_eq!(sent.unwrap(), 1);
//! # }
//! ```

use std::future::Future;
use std::time::Instant;

use obs_core::{Carrier, CorrelationId, IdFormat, IdRecord};
use tracing::Instrument;

use crate::Obs;

/// Writes the current trace context and correlation id into a new carrier,
/// to put into a job payload or message metadata.
pub fn carrier() -> Carrier {
    let mut carrier = Carrier::new();
    inject(&mut carrier);
    carrier
}

/// Writes the current trace context and correlation id into `carrier`.
pub fn inject(carrier: &mut Carrier) {
    obs_trace::context::inject_current(carrier);
    #[cfg(feature = "correlate")]
    if obs_correlate::carrier::inject(carrier).is_none()
        && let Some(id) = IdRecord::current().and_then(|r| r.correlation_id)
    {
        carrier.set_correlation_id(&id);
    }
    #[cfg(not(feature = "correlate"))]
    if let Some(id) = IdRecord::current().and_then(|r| r.correlation_id) {
        carrier.set_correlation_id(&id);
    }
}

/// A job about to run: its queue, type and the carrier from its payload.
#[derive(Clone)]
pub struct Job {
    queue: String,
    job_type: String,
    carrier: Carrier,
    linked: bool,
    will_retry: bool,
    retry_when: Option<RetryWhen>,
}

type RetryWhen = std::sync::Arc<dyn Fn(&JobError<'_>) -> bool + Send + Sync>;

/// The error a job or batch failed with, as [`Job::retry_when`] sees it:
/// any `Display + Debug` value (`anyhow::Error`, `Box<dyn Error + Send +
/// Sync>`, your own error type).
pub struct JobError<'a> {
    value: &'a (dyn std::any::Any + 'static),
    display: &'a dyn std::fmt::Display,
    source: Option<&'a (dyn std::error::Error + 'static)>,
}

impl<'a> JobError<'a> {
    pub(crate) fn new<E: std::fmt::Display + std::fmt::Debug + 'static>(err: &'a E) -> Self {
        Self {
            value: err,
            display: err,
            source: dyn_error(err),
        }
    }

    /// The error's message (its `Display` text).
    pub fn message(&self) -> String {
        self.display.to_string()
    }

    /// The error as its own type, when it is a `T`.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&'a T> {
        self.value.downcast_ref::<T>()
    }

    /// The error as a `dyn Error`, when it is one of the common containers
    /// (`anyhow::Error` with the `anyhow` feature, a boxed or `Arc`'d
    /// `dyn Error`, `std::io::Error`): for walking `source()` or
    /// downcasting the error inside.
    pub fn as_error(&self) -> Option<&'a (dyn std::error::Error + 'static)> {
        self.source
    }

    /// The messages of the chain, outermost first: the error's own message,
    /// then each `source()` where the error exposes one.
    pub fn chain(&self) -> Vec<String> {
        let mut out = vec![self.message()];
        let mut next = self.source.and_then(|e| e.source());
        while let Some(e) = next {
            if out.len() >= MAX_CHAIN {
                break;
            }
            out.push(e.to_string());
            next = e.source();
        }
        out
    }
}

impl std::fmt::Debug for JobError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobError")
            .field("message", &self.message())
            .finish_non_exhaustive()
    }
}

/// At most this many chain entries are written on a line.
const MAX_CHAIN: usize = 16;

/// The `dyn Error` inside the common error containers, `anyhow::Error`
/// included with the `anyhow` feature.
fn dyn_error<E: 'static>(err: &E) -> Option<&(dyn std::error::Error + 'static)> {
    #[cfg(feature = "anyhow")]
    if let Some(e) = (err as &dyn std::any::Any).downcast_ref::<anyhow::Error>() {
        let e: &(dyn std::error::Error + Send + Sync + 'static) = e.as_ref();
        return Some(e);
    }
    obs_core::error::dyn_error(err)
}

impl Job {
    /// A job of `job_type` taken from `queue`.
    pub fn new(queue: impl Into<String>, job_type: impl Into<String>) -> Self {
        Self {
            queue: queue.into(),
            job_type: job_type.into(),
            carrier: Carrier::new(),
            linked: false,
            will_retry: false,
            retry_when: None,
        }
    }

    /// The carrier the producer wrote with [`carrier`].
    pub fn carrier(mut self, carrier: Carrier) -> Self {
        self.carrier = carrier;
        self
    }

    /// Start a new trace linked to the producer instead of continuing its
    /// trace (for long-delayed or fan-in jobs).
    pub fn linked(mut self) -> Self {
        self.linked = true;
        self
    }

    /// The caller will retry this job if it fails: a failure is counted in
    /// `jobs_retried` instead of `jobs_failed`.
    pub fn will_retry(mut self, retry: bool) -> Self {
        self.will_retry = retry;
        self
    }

    /// Decides from the error whether the caller will retry: a failure for
    /// which `f` returns true is counted in `jobs_retried`, any other in
    /// `jobs_failed`. Overrides [`will_retry`](Self::will_retry).
    ///
    /// ```
    /// let job = obs::job::Job::new("emails", "send").retry_when(|e| {
    ///     e.downcast_ref::<std::io::Error>()
    ///         .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    /// });
    /// # let _ = job;
    /// ```
    pub fn retry_when(mut self, f: impl Fn(&JobError<'_>) -> bool + Send + Sync + 'static) -> Self {
        self.retry_when = Some(std::sync::Arc::new(f));
        self
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("queue", &self.queue)
            .field("job_type", &self.job_type)
            .field("carrier", &self.carrier)
            .field("linked", &self.linked)
            .field("will_retry", &self.will_retry)
            .field("retry_when", &self.retry_when.is_some())
            .finish()
    }
}

/// Runs `fut` as `job` with the instance installed by [`crate::init`] (see
/// [`Obs::run_job`]); without one, the span, ids and error capture still
/// work and the metrics are skipped.
///
/// The error can be any `Display + Debug` type: `anyhow::Error`,
/// `Box<dyn Error + Send + Sync>`, `std::io::Error`, your own. Its message
/// and its `source()` chain (where the type exposes one, see
/// [`JobError::as_error`]) go on the failure line and the error report.
pub async fn instrument<T, E, F>(job: Job, fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display + std::fmt::Debug + 'static,
{
    match Obs::global() {
        Some(obs) => obs.run_job(job, fut).await,
        None => run(None, job, fut).await,
    }
}

impl Obs {
    /// Runs `fut` as `job`: a consumer span linked to the producer, the
    /// correlation id from the carrier (a new one when absent or invalid),
    /// `jobs_started`/`_succeeded`/`_failed`/`_retried` and
    /// `job_duration_seconds`, the error captured on failure, and one log line
    /// when the job ends.
    pub async fn run_job<T, E, F>(&self, job: Job, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display + std::fmt::Debug + 'static,
    {
        run(Some(self), job, fut).await
    }

    /// The job metric set of this instance, registered on first use.
    pub fn job_metrics(&self) -> Option<obs_metrics::sets::JobMetrics> {
        self.inner
            .metrics
            .metric_set(|s| &s.job, "job", obs_metrics::sets::JobMetrics::new)
    }
}

async fn run<T, E, F>(obs: Option<&Obs>, job: Job, fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display + std::fmt::Debug + 'static,
{
    let link = if job.linked {
        obs_trace::context::JobLink::Link
    } else {
        obs_trace::context::JobLink::Parent
    };
    let span = obs_trace::context::consumer_span(&job.carrier, &job.job_type, link);
    span.record("messaging.destination.name", job.queue.as_str());
    let correlation = match job.carrier.correlation_id() {
        Some(Ok(id)) => id,
        // An invalid id from a payload is replaced, never logged raw.
        _ => CorrelationId::generate(IdFormat::UuidV4),
    };
    if let Some(id) = span.id() {
        IdRecord::update_span_id(&id, |r| r.correlation_id = Some(correlation.clone()));
    }
    let metrics = obs.and_then(Obs::job_metrics);
    let guard = metrics.as_ref().map(|m| m.start(&job.queue, &job.job_type));
    let start = Instant::now();

    // Bind the correlation scope inside the job span, so it attaches to that
    // span instead of opening a root span of its own: everything the job does
    // stays in the producer's trace.
    #[cfg(feature = "correlate")]
    let fut = {
        let _entered = span.enter();
        obs_correlate::scope(correlation, fut)
    };
    #[cfg(not(feature = "correlate"))]
    let _ = correlation;
    let out = fut.instrument(span.clone()).await;

    let _entered = span.enter();
    let duration_ms = obs_core::units::duration_ms(start.elapsed());
    match &out {
        Ok(_) => {
            if let Some(g) = guard {
                g.succeed();
            }
            tracing::info!(target: "obs::job", queue = %job.queue, job_type = %job.job_type, duration_ms, outcome = "success", "job finished");
        }
        Err(e) => {
            let failure = JobError::new(e);
            let retry = match &job.retry_when {
                Some(f) => f(&failure),
                None => job.will_retry,
            };
            if let Some(g) = guard {
                if retry { g.retry() } else { g.fail() }
            }
            capture(obs, e);
            let outcome = if retry { "retry" } else { "failure" };
            let chain = failure.chain().join(": ");
            tracing::warn!(target: "obs::job", queue = %job.queue, job_type = %job.job_type, duration_ms, outcome, error = %e, error.chain = %chain, "job failed");
        }
    }
    out
}

/// Reports a job's or batch's error to this instance's reporter, else to the
/// global one.
#[cfg_attr(not(feature = "errors"), allow(unused_variables))]
pub(crate) fn capture<E>(obs: Option<&Obs>, err: &E)
where
    E: std::fmt::Display + std::fmt::Debug + 'static,
{
    #[cfg(feature = "errors")]
    match obs {
        Some(o) => {
            o.inner.errors.reporter.capture_display(err);
        }
        None => {
            obs_errors::capture_display(err);
        }
    }
}
