//! The export path: a bounded queue, one dedicated exporter thread, counted
//! drops and a shutdown that returns within its timeout.
//!
//! Finished spans go into a bounded queue. When it is full the new span is
//! dropped and counted (drop-newest): the application thread never blocks
//! and never allocates more. The exporter thread batches spans
//! (`max_export_batch_size` or `schedule_delay`, whichever comes first) and
//! hands each batch to a [`SpanExporter`]. Network exporters run their own
//! single-threaded tokio runtime on that thread, so export works the same
//! outside tokio, inside a multi-thread runtime and inside a current-thread
//! runtime, and never needs the caller's reactor.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded, unbounded};
use obs_core::Resource;

use crate::Error;
use crate::config::BatchConfig;
use crate::raw::{BoxPool, RawSpan, Recording, Recycler};
use crate::redaction::SpanRedactor;
use crate::span::FinishedSpan;

/// Something that sends batches of spans somewhere. Called on the exporter
/// thread only, one batch at a time.
pub trait SpanExporter: Send + 'static {
    /// Exports `batch`, giving up after `timeout`. An error counts the whole
    /// batch as dropped, except [`Error::Rejected`], which counts only the
    /// rejected spans (an OTLP partial success).
    fn export(
        &mut self,
        batch: &[FinishedSpan],
        resource: &Resource,
        timeout: Duration,
    ) -> Result<(), Error>;

    /// Releases resources; called once, last, on the exporter thread.
    fn shutdown(&mut self) {}

    /// Whether this exporter takes [`RecordedBatch`]es: obs's own OTLP
    /// exporters, which encode a span straight from its recording, with no
    /// [`FinishedSpan`] built in between (about a quarter of the exporter
    /// thread's work per span). Any other exporter gets finished spans.
    #[doc(hidden)]
    fn exports_recordings(&self) -> bool {
        false
    }

    /// Exports a batch of finished and recorded spans; called only when
    /// [`exports_recordings`](Self::exports_recordings) says so.
    #[doc(hidden)]
    fn export_recorded(
        &mut self,
        _batch: RecordedBatch<'_>,
        _resource: &Resource,
        _timeout: Duration,
    ) -> Result<(), Error> {
        Err(Error::Export(
            "this exporter takes finished spans only".into(),
        ))
    }
}

/// A batch as obs's own OTLP exporters take it: spans finished as public
/// [`FinishedSpan`]s (those recorded through the OpenTelemetry API) and
/// spans still in their recordings, redacted alike. Opaque outside this
/// crate.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct RecordedBatch<'a> {
    pub(crate) finished: &'a [FinishedSpan],
    #[allow(clippy::vec_box, reason = "see BoxPool")]
    pub(crate) recorded: &'a [Box<Recording>],
}

impl std::fmt::Debug for RecordedBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedBatch")
            .field("finished", &self.finished.len())
            .field("recorded", &self.recorded.len())
            .finish()
    }
}

/// Keeps every exported span in memory: for tests and examples.
///
/// ```
/// use obs_trace::export::InMemoryExporter;
/// let exporter = InMemoryExporter::default();
/// let handle = exporter.clone();
/// assert!(handle.spans().is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct InMemoryExporter {
    spans: Arc<Mutex<Vec<FinishedSpan>>>,
}

impl InMemoryExporter {
    /// A copy of every span exported so far.
    pub fn spans(&self) -> Vec<FinishedSpan> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the spans exported so far.
    pub fn clear(&self) {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl SpanExporter for InMemoryExporter {
    fn export(&mut self, batch: &[FinishedSpan], _: &Resource, _: Duration) -> Result<(), Error> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(batch);
        Ok(())
    }
}

/// Discards every batch, reporting success: for benchmarks.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopExporter;

impl SpanExporter for NoopExporter {
    fn export(&mut self, _: &[FinishedSpan], _: &Resource, _: Duration) -> Result<(), Error> {
        Ok(())
    }
}

/// One less than the largest power of two at most `batch / 4`, capped at 63:
/// how often (as a mask on the accepted count) a producer checks whether a
/// full batch waits.
fn wake_check_mask(batch: usize) -> u64 {
    let quarter = (batch / 4).clamp(1, 64) as u64;
    (1u64 << quarter.ilog2()) - 1
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    dropped_full: AtomicU64,
    dropped_closed: AtomicU64,
    last_error: Mutex<Option<Error>>,
}

/// Live export counters: cheap to clone and read (atomics), for
/// `obs_trace_dropped_spans_total` and friends.
///
/// ```
/// let provider = obs_trace::TracerProvider::builder().build()?;
/// let stats = provider.stats();
/// assert_eq!(stats.dropped(), 0);
/// # Ok::<(), obs_trace::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct TraceStats {
    c: Arc<Counters>,
}

impl TraceStats {
    /// Spans the collector accepted.
    pub fn exported(&self) -> u64 {
        self.c.exported.load(Ordering::Relaxed)
    }

    /// Every span lost so far: queue full, failed exports, ended after shutdown.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full() + self.dropped_export_failed() + self.dropped_after_shutdown()
    }

    /// Spans dropped because the queue was full.
    pub fn dropped_queue_full(&self) -> u64 {
        self.c.dropped_full.load(Ordering::Relaxed)
    }

    /// Spans in batches the exporter failed to send.
    pub fn dropped_export_failed(&self) -> u64 {
        self.c.failed.load(Ordering::Relaxed)
    }

    /// Spans that ended after shutdown began.
    pub fn dropped_after_shutdown(&self) -> u64 {
        self.c.dropped_closed.load(Ordering::Relaxed)
    }

    /// The message of the most recent failed export, if any: what an
    /// operator needs to see when `dropped_export_failed` grows.
    pub fn last_error(&self) -> Option<String> {
        self.last_export_error().map(|e| e.to_string())
    }

    /// The most recent failed export as a typed error: for example
    /// [`Error::Tls`] (a handshake with the collector failed, naming the
    /// peer and the cause), [`Error::Rejected`] (a partial success) or
    /// [`Error::Export`] (connection, timeout, non-2xx answer).
    pub fn last_export_error(&self) -> Option<Error> {
        self.c
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sampled spans that ended and were handed to the pipeline: each one is
    /// eventually [`exported`](Self::exported), [`dropped`](Self::dropped)
    /// or still [`pending`](Self::pending).
    pub fn ended(&self) -> u64 {
        let c = &self.c;
        c.accepted.load(Ordering::Relaxed)
            + c.dropped_full.load(Ordering::Relaxed)
            + c.dropped_closed.load(Ordering::Relaxed)
    }

    /// Spans waiting in the queue or in a batch being sent.
    pub fn pending(&self) -> u64 {
        let c = &self.c;
        c.accepted
            .load(Ordering::Relaxed)
            .saturating_sub(c.exported.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed))
    }
}

/// What a shutdown achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Spans exported over the pipeline's whole life.
    pub exported: u64,
    /// Spans lost over the pipeline's whole life, including those still
    /// queued or in flight when the timeout expired.
    pub dropped: u64,
    /// Whether the exporter had not finished when the timeout expired.
    pub timed_out: bool,
}

enum Control {
    /// A full batch is queued.
    Wake,
    Flush(Sender<()>),
    Shutdown(Instant, Sender<()>),
}

/// The queue and its exporter thread.
#[derive(Debug)]
pub(crate) struct Pipeline {
    spans: Sender<RawSpan>,
    control: Sender<Control>,
    stats: TraceStats,
    closed: AtomicBool,
    wake_pending: Arc<AtomicBool>,
    wake_at: usize,
    /// A mask: the queue length is checked when `accepted & wake_check == 0`.
    wake_check: u64,
    thread: Mutex<Option<JoinHandle<()>>>,
    shut_down: Mutex<Option<ShutdownReport>>,
    /// Recording boxes the exporter thread hands back.
    pub(crate) pool: Arc<BoxPool>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Control::Wake => "Wake",
            Control::Flush(_) => "Flush",
            Control::Shutdown(..) => "Shutdown",
        })
    }
}

impl Pipeline {
    pub(crate) fn start(
        mut exporter: Box<dyn SpanExporter>,
        resource: Resource,
        batch: BatchConfig,
        redactor: Option<obs_core::Redactor>,
    ) -> Result<Self, Error> {
        let (tx, rx) = bounded::<RawSpan>(batch.max_queue_size);
        let (ctl_tx, ctl_rx) = unbounded::<Control>();
        let stats = TraceStats::default();
        let counters = stats.c.clone();
        let wake_pending = Arc::new(AtomicBool::new(false));
        let wp = wake_pending.clone();
        let pool = Arc::new(BoxPool::default());
        let worker_pool = pool.clone();
        // Failures worth an operator's attention are reported to the
        // subscriber that was the default where the pipeline was built, if
        // one was (a test's, a scoped one), else to the global default.
        let report_to = tracing::dispatcher::get_default(|d| {
            (!d.is::<tracing::subscriber::NoSubscriber>()).then(|| d.downgrade())
        });
        let thread = std::thread::Builder::new()
            .name("obs-trace-export".into())
            .spawn(move || {
                // The exporter's own HTTP/gRPC client (hyper, h2, tonic)
                // emits spans and events; recording them would feed the
                // queue with telemetry about exporting telemetry. Every
                // call into the exporter runs under this no-op default.
                let untraced = tracing::Dispatch::none();
                let mut w = Worker {
                    rx,
                    ctl: ctl_rx,
                    counters,
                    batch,
                    resource,
                    buf: Vec::new(),
                    recorded: Vec::new(),
                    keep_recordings: exporter.exports_recordings(),
                    wake_pending: wp,
                    pool: worker_pool,
                    returned: Vec::new(),
                    recycler: Recycler::default(),
                    redactor: redactor.map(SpanRedactor::new),
                    reported: Vec::new(),
                    report_to,
                    untraced: untraced.clone(),
                };
                w.run(exporter.as_mut());
                tracing::dispatcher::with_default(&untraced, move || {
                    exporter.shutdown();
                    drop(exporter);
                });
            })
            .map_err(|e| Error::Thread(e.to_string()))?;
        Ok(Self {
            spans: tx,
            control: ctl_tx,
            stats,
            closed: AtomicBool::new(false),
            wake_pending,
            wake_at: batch.max_export_batch_size,
            wake_check: wake_check_mask(batch.max_export_batch_size),
            thread: Mutex::new(Some(thread)),
            shut_down: Mutex::new(None),
            pool,
        })
    }

    /// Queues a finished span; never blocks.
    #[inline]
    pub(crate) fn submit(&self, span: RawSpan) {
        let c = &self.stats.c;
        if self.closed.load(Ordering::Relaxed) {
            c.dropped_closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.spans.try_send(span) {
            Ok(()) => {
                let n = c.accepted.fetch_add(1, Ordering::Relaxed);
                // Wake the worker only when a full batch waits, and only once
                // until it has looked: a wake-up per span would cost a futex
                // call on the application's thread.
                // A plain load first keeps the flag's cache line shared
                // while a wake-up is already on its way. The queue length
                // reads the consumer's cache line too, so it is looked at
                // only every `wake_check + 1` spans (at least four times a
                // batch).
                if n & self.wake_check == 0
                    && !self.wake_pending.load(Ordering::Relaxed)
                    && self.spans.len() >= self.wake_at
                    && !self.wake_pending.swap(true, Ordering::AcqRel)
                {
                    let _ = self.control.send(Control::Wake);
                }
            }
            Err(TrySendError::Full(_)) => {
                c.dropped_full.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                c.dropped_closed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn stats(&self) -> &TraceStats {
        &self.stats
    }

    /// Exports everything queued now; `false` if that did not finish in time.
    pub(crate) fn force_flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = bounded(1);
        if self.control.send(Control::Flush(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }

    pub(crate) fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let mut done = self
            .shut_down
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = *done {
            return r;
        }
        let deadline = Instant::now() + timeout;
        self.closed.store(true, Ordering::Relaxed);
        let (tx, rx) = bounded(1);
        let finished = self.control.send(Control::Shutdown(deadline, tx)).is_ok()
            && rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_ok();
        // Never join: the worker still calls the exporter's own shutdown,
        // which may hang on a dead collector. It is detached and ends on
        // its own.
        drop(
            self.thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let c = &self.stats.c;
        let exported = c.exported.load(Ordering::Relaxed);
        let accepted = c.accepted.load(Ordering::Relaxed);
        let report = ShutdownReport {
            exported,
            dropped: accepted.saturating_sub(exported)
                + c.dropped_full.load(Ordering::Relaxed)
                + c.dropped_closed.load(Ordering::Relaxed),
            timed_out: !finished,
        };
        *done = Some(report);
        report
    }
}

struct Worker {
    rx: Receiver<RawSpan>,
    ctl: Receiver<Control>,
    counters: Arc<Counters>,
    batch: BatchConfig,
    resource: Resource,
    buf: Vec<FinishedSpan>,
    /// Spans of the batch kept in their recordings (exporters that take
    /// them: [`SpanExporter::exports_recordings`]).
    #[allow(clippy::vec_box, reason = "see BoxPool")]
    recorded: Vec<Box<Recording>>,
    /// Whether the exporter takes recordings; asked once.
    keep_recordings: bool,
    wake_pending: Arc<AtomicBool>,
    pool: Arc<BoxPool>,
    #[allow(clippy::vec_box, reason = "see BoxPool")]
    returned: Vec<Box<Recording>>,
    /// The exported spans' strings and lists, reused for the next ones.
    recycler: Recycler,
    /// Applied to every span before it joins a batch (see `redaction`).
    redactor: Option<SpanRedactor>,
    /// The causes already logged (see [`report_key`]), at most
    /// [`MAX_REPORTED_CAUSES`].
    reported: Vec<String>,
    report_to: Option<tracing::dispatcher::WeakDispatch>,
    untraced: tracing::Dispatch,
}

/// Distinct failure causes logged per pipeline; later new causes are still
/// counted and kept as the last error, but no longer logged.
const MAX_REPORTED_CAUSES: usize = 16;

/// The cause of a failure that is logged once, when first seen: a TLS
/// handshake failure (peer and kind), which no retry will cure and which an
/// operator must act on. Other failures (timeouts, refused connections,
/// 5xx) come and go with the collector and are only counted.
fn report_key(e: &Error) -> Option<String> {
    match e {
        Error::Tls { peer, reason } => Some(format!("tls {peer} {}", reason.kind())),
        _ => None,
    }
}

impl Worker {
    fn run(&mut self, exporter: &mut dyn SpanExporter) {
        // The worker sleeps on the control channel: woken by a full batch,
        // a flush, a shutdown, or the schedule delay. It never waits on the
        // span queue itself, so producers never pay for waking it per span.
        let mut next_export = Instant::now() + self.batch.schedule_delay;
        loop {
            let wait = next_export.saturating_duration_since(Instant::now());
            match self.ctl.recv_timeout(wait) {
                Ok(Control::Wake) => {
                    self.wake_pending.store(false, Ordering::Release);
                    while self.rx.len() >= self.batch.max_export_batch_size {
                        self.fill();
                        self.export(exporter, None);
                    }
                }
                Ok(Control::Flush(reply)) => {
                    self.drain(exporter, None);
                    next_export = Instant::now() + self.batch.schedule_delay;
                    let _ = reply.send(());
                }
                Ok(Control::Shutdown(deadline, reply)) => {
                    self.drain(exporter, Some(deadline));
                    let _ = reply.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.drain(exporter, None);
                    next_export = Instant::now() + self.batch.schedule_delay;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // The pipeline is gone without a shutdown: flush and stop.
                    self.drain(exporter, None);
                    return;
                }
            }
        }
    }

    /// Spans in the batch being built.
    fn batched(&self) -> usize {
        self.buf.len() + self.recorded.len()
    }

    /// Moves queued spans into the batch, up to one batch: redacted, and
    /// kept in their recordings when the exporter takes them.
    fn fill(&mut self) {
        while self.batched() < self.batch.max_export_batch_size {
            match self.rx.try_recv() {
                Ok(s) if self.keep_recordings && !s.needs_finishing() => {
                    let mut rec = s.0;
                    if let Some(r) = &mut self.redactor {
                        r.redact_recording(&mut rec);
                    }
                    self.recorded.push(rec);
                }
                Ok(s) => {
                    let (mut span, boxed) = s.into_finished(&mut self.recycler);
                    if let Some(r) = &mut self.redactor {
                        r.redact(&mut span);
                    }
                    self.buf.push(span);
                    self.returned.push(boxed);
                }
                Err(_) => break,
            }
        }
        self.pool.give_back(&mut self.returned);
    }

    /// Exports the buffer and everything queued, stopping at `deadline`.
    fn drain(&mut self, exporter: &mut dyn SpanExporter, deadline: Option<Instant>) {
        loop {
            self.fill();
            if self.batched() == 0 {
                return;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            self.export(exporter, deadline);
        }
    }

    fn export(&mut self, exporter: &mut dyn SpanExporter, deadline: Option<Instant>) {
        if self.batched() == 0 {
            return;
        }
        let mut timeout = self.batch.export_timeout;
        if let Some(d) = deadline {
            timeout = timeout.min(d.saturating_duration_since(Instant::now()));
        }
        let n = self.batched() as u64;
        let c = &self.counters;
        // A panicking exporter (some SDK exporters panic without a reactor)
        // loses its batch, counted, and the worker carries on.
        let outcome = tracing::dispatcher::with_default(&self.untraced, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if self.keep_recordings {
                    let batch = RecordedBatch {
                        finished: &self.buf,
                        recorded: &self.recorded,
                    };
                    exporter.export_recorded(batch, &self.resource, timeout)
                } else {
                    exporter.export(&self.buf, &self.resource, timeout)
                }
            }))
            .unwrap_or_else(|_| Err(Error::Export("the exporter panicked".into())))
        });
        let (ok, lost, err) = match outcome {
            Ok(()) => (n, 0, None),
            Err(e @ Error::Rejected { rejected, .. }) => {
                let lost = rejected.min(n);
                (n - lost, lost, Some(e))
            }
            Err(e) => (0, n, Some(e)),
        };
        c.exported.fetch_add(ok, Ordering::Relaxed);
        c.failed.fetch_add(lost, Ordering::Relaxed);
        if let Some(e) = err {
            *c.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.clone());
            self.report_once(&e, lost);
        }
        for span in self.buf.drain(..) {
            self.recycler.reclaim(span);
        }
        // Exported recordings go back to the application threads emptied,
        // their buffers kept.
        for mut rec in self.recorded.drain(..) {
            rec.empty_exported();
            self.returned.push(rec);
        }
        self.pool.give_back(&mut self.returned);
    }

    /// Logs `e` at WARN the first time its cause is seen (see
    /// [`report_key`]).
    fn report_once(&mut self, e: &Error, dropped: u64) {
        let Some(key) = report_key(e) else {
            return;
        };
        if self.reported.len() >= MAX_REPORTED_CAUSES || self.reported.contains(&key) {
            return;
        }
        self.reported.push(key);
        let log = || {
            tracing::warn!(
                target: "obs_trace::export",
                error = %e,
                dropped_spans = dropped,
                "span export failed; this cause is logged once, its drops are counted in obs_trace_dropped_spans_total"
            );
        };
        match self.report_to.as_ref().and_then(|w| w.upgrade()) {
            Some(d) => tracing::dispatcher::with_default(&d, log),
            None => log(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_check_for_a_full_batch_at_least_four_times_per_batch() {
        assert_eq!(wake_check_mask(1), 0);
        assert_eq!(wake_check_mask(4), 0);
        assert_eq!(wake_check_mask(8), 1);
        assert_eq!(wake_check_mask(100), 15);
        assert_eq!(wake_check_mask(512), 63);
        assert_eq!(wake_check_mask(1 << 20), 63);
        for batch in 1..2048 {
            let every = wake_check_mask(batch) + 1;
            assert!(every.is_power_of_two());
            assert!(every == 1 || every * 4 <= batch as u64, "{batch}");
        }
    }
}
