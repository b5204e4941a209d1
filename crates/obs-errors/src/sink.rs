//! Where reports go: the [`Sink`] trait and the built-in sinks.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::Dispatch;

use crate::{Error, Report};

/// A destination for reports. Sinks run on the reporter's delivery thread,
/// behind a bounded queue, so a sink may block (network, disk) without
/// slowing the code that captured the error; a sink that panics or returns
/// an error is counted in [`ErrorStats::sink_errors`](crate::ErrorStats::sink_errors).
pub trait Sink: Send + 'static {
    /// A short name for diagnostics.
    fn name(&self) -> &str;

    /// Delivers one report.
    fn send(&mut self, report: &Report) -> Result<(), Error>;

    /// Pushes out anything the sink buffers (called by `Reporter::flush`).
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// Writes each report as one structured `ERROR` event (target
/// `obs_errors::report`) with `error.type`, `error.message`, `error.count`,
/// `error.chain`, `error.stacktrace`, … — what a log layer turns into one
/// JSON line. The report's trace, span and correlation ids are the line's
/// own ids (set with `obs_core::IdRecord::in_thread_scope`, so the line
/// carries them where every other line does).
///
/// The event is dispatched to the dispatcher given with
/// [`with_dispatch`](Self::with_dispatch), else to the global default one
/// (reports are delivered on the reporter's own thread, where no
/// thread-local default is set).
#[derive(Clone, Default)]
pub struct LogSink {
    dispatch: Option<Dispatch>,
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSink")
            .field("dispatch", &self.dispatch.is_some())
            .finish()
    }
}

impl LogSink {
    /// A sink writing to the global default dispatcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink writing to `dispatch`.
    pub fn with_dispatch(dispatch: Dispatch) -> Self {
        Self {
            dispatch: Some(dispatch),
        }
    }

    fn emit(r: &Report) {
        let chain = if r.chain.is_empty() {
            None
        } else {
            Some(
                r.chain
                    .iter()
                    .map(|c| c.message.as_str())
                    .collect::<Vec<_>>()
                    .join(": "),
            )
        };
        let stack = r.stacktrace.as_ref().map(|s| s.text());
        let location = r.location.as_ref().map(ToString::to_string);
        // The report is delivered on the reporter's thread, outside the
        // request's span: its ids become the line's ids.
        let emit = || {
            tracing::event!(
                target: "obs_errors::report",
                tracing::Level::ERROR,
                {
                "error.type" = %r.error_type,
                "error.message" = %r.message,
                "error.count" = r.count,
                "error.mechanism" = r.mechanism.as_str(),
                "error.fingerprint" = %r.fingerprint,
                "error.event_id" = %r.event_id,
                "error.chain" = chain.as_deref(),
                "error.location" = location.as_deref(),
                "error.stacktrace" = stack,
                "error.breadcrumbs" = r.breadcrumbs.len(),
                release = r.release.as_deref(),
                },
                "error report"
            );
        };
        match &r.ids {
            Some(ids) => obs_core::IdRecord::in_thread_scope(ids.clone(), emit),
            None => emit(),
        }
    }
}

impl Sink for LogSink {
    fn name(&self) -> &str {
        "log"
    }

    fn send(&mut self, report: &Report) -> Result<(), Error> {
        match &self.dispatch {
            Some(d) => tracing::dispatcher::with_default(d, || Self::emit(report)),
            None => Self::emit(report),
        }
        Ok(())
    }
}

/// Keeps reports in memory (at most `capacity`, later ones dropped and
/// counted): for tests and for an admin page of recent errors. Clones share
/// the same storage.
///
/// ```
/// use obs_errors::{Config, MemorySink, Reporter};
/// let memory = MemorySink::new();
/// let reporter = Reporter::builder(Config::default().dedup_window(std::time::Duration::ZERO))
///     .sink(memory.clone())
///     .build()?;
/// reporter.capture_message(tracing::Level::ERROR, "disk almost full");
/// reporter.flush(std::time::Duration::from_secs(5))?;
/// assert_eq!(memory.reports()[0].message, "disk almost full");
/// # Ok::<(), obs_errors::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MemorySink {
    reports: Arc<Mutex<Vec<Report>>>,
    capacity: usize,
    dropped: Arc<AtomicU64>,
}

impl Default for MemorySink {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl MemorySink {
    /// A sink keeping up to 1024 reports.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink keeping up to `capacity` reports.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            reports: Arc::default(),
            capacity,
            dropped: Arc::default(),
        }
    }

    /// A copy of the reports kept so far.
    pub fn reports(&self) -> Vec<Report> {
        self.reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the reports kept so far.
    pub fn clear(&self) {
        self.reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Reports not kept because the sink was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Sink for MemorySink {
    fn name(&self) -> &str {
        "memory"
    }

    fn send(&mut self, report: &Report) -> Result<(), Error> {
        let mut g = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        if g.len() < self.capacity {
            g.push(report.clone());
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A sink made of a closure.
///
/// ```
/// let sink = obs_errors::FnSink::new("stderr", |r: &obs_errors::Report| {
///     let _ = (r.error_type.as_str(), r.count);
///     Ok(())
/// });
/// # let _ = sink;
/// ```
pub struct FnSink<F> {
    name: String,
    f: F,
}

impl<F> fmt::Debug for FnSink<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSink")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<F> FnSink<F>
where
    F: FnMut(&Report) -> Result<(), Error> + Send + 'static,
{
    /// A sink named `name` calling `f` for every report.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Self {
            name: name.into(),
            f,
        }
    }
}

impl<F> Sink for FnSink<F>
where
    F: FnMut(&Report) -> Result<(), Error> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, report: &Report) -> Result<(), Error> {
        (self.f)(report)
    }
}
