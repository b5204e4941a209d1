//! Sinks: the blocking buffered writer and the non-blocking writer (bounded
//! queue + one writer thread), their stats handle, guard and panic hook.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{
    Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError, TrySendError,
};
use tracing_core::Level;

use crate::config::{LEVELS, NonBlocking, OverflowPolicy, Sink, level_index};
use crate::layer::Spec;

/// Buffers kept for reuse are capped at this capacity so one huge line does
/// not pin its memory forever.
const MAX_POOLED: usize = 8 * 1024;
const BUF_CAPACITY: usize = 64 * 1024;

/// The sink behind the buffer.
pub(crate) enum SinkWriter {
    Stdout(io::Stdout),
    Stderr(io::Stderr),
    Boxed(Box<dyn Write + Send>),
}

impl SinkWriter {
    pub(crate) fn new(sink: Sink) -> Self {
        match sink {
            Sink::Stdout => Self::Stdout(io::stdout()),
            Sink::Stderr => Self::Stderr(io::stderr()),
            Sink::Writer(w) => Self::Boxed(w),
        }
    }
}

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Stdout(s) => s.write(buf),
            Self::Stderr(s) => s.write(buf),
            Self::Boxed(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Stdout(s) => s.lock().write_all(buf),
            Self::Stderr(s) => s.lock().write_all(buf),
            Self::Boxed(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stdout(s) => s.flush(),
            Self::Stderr(s) => s.flush(),
            Self::Boxed(w) => w.flush(),
        }
    }
}

#[derive(Default)]
pub(crate) struct StatsInner {
    pub(crate) dropped: [AtomicU64; 5],
    pub(crate) suppressed: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    queue: std::sync::OnceLock<Sender<Msg>>,
}

/// Counters of the log pipeline (contract C3): cheap to clone, read with
/// plain getters, so the facade can publish them as metrics
/// (`obs_log_dropped_lines_total{level}`, `obs_log_suppressed_lines_total`).
///
/// ```
/// use obs_log::Config;
/// use tracing_core::Level;
/// let (_layer, handles) = obs_log::layer(Config::new().writer(std::io::sink()))?;
/// let stats = handles.stats.clone();
/// assert_eq!(stats.dropped(Level::DEBUG), 0);
/// assert_eq!(stats.dropped_total(), 0);
/// assert_eq!(stats.suppressed(), 0);
/// # Ok::<(), obs_log::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct LogStats {
    pub(crate) inner: Arc<StatsInner>,
}

impl fmt::Debug for LogStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStats")
            .field("written", &self.written())
            .field("dropped", &self.dropped_by_level())
            .field("suppressed", &self.suppressed())
            .field("write_errors", &self.write_errors())
            .finish()
    }
}

impl LogStats {
    /// Lines of `level` dropped because the queue was full or the writer was shut down.
    pub fn dropped(&self, level: Level) -> u64 {
        self.inner.dropped[level_index(level)].load(Ordering::Relaxed)
    }

    /// Dropped lines per level: ERROR, WARN, INFO, DEBUG, TRACE.
    pub fn dropped_by_level(&self) -> DroppedCounts {
        let mut c = [0; 5];
        for (i, d) in self.inner.dropped.iter().enumerate() {
            c[i] = d.load(Ordering::Relaxed);
        }
        DroppedCounts(c)
    }

    /// All dropped lines.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_by_level().total()
    }

    /// Lines suppressed by the per-callsite rate limit.
    pub fn suppressed(&self) -> u64 {
        self.inner.suppressed.load(Ordering::Relaxed)
    }

    /// Lines handed to the sink (excluding obs-log's own summary lines).
    pub fn written(&self) -> u64 {
        self.inner.written.load(Ordering::Relaxed)
    }

    /// Failed writes or flushes of the sink (the line is lost; counted here).
    pub fn write_errors(&self) -> u64 {
        self.inner.write_errors.load(Ordering::Relaxed)
    }

    /// Lines waiting in the non-blocking queue (0 for the blocking writer).
    pub fn queued(&self) -> usize {
        self.inner.queue.get().map_or(0, Sender::len)
    }

    #[inline]
    pub(crate) fn drop_line(&self, level: usize) {
        self.inner.dropped[level].fetch_add(1, Ordering::Relaxed);
    }
}

/// Dropped-line counts per level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DroppedCounts(pub [u64; 5]);

impl DroppedCounts {
    /// The count for `level`.
    pub fn get(&self, level: Level) -> u64 {
        self.0[level_index(level)]
    }

    /// The sum over all levels.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(level, count)` pairs, ERROR first.
    pub fn iter(&self) -> impl Iterator<Item = (Level, u64)> + '_ {
        LEVELS.iter().copied().zip(self.0.iter().copied())
    }
}

/// What a shutdown achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether everything queued was written and flushed before the timeout.
    pub completed: bool,
    /// Lines written over the writer's life.
    pub written: u64,
    /// Lines dropped over the writer's life, per level.
    pub dropped: DroppedCounts,
    /// Lines suppressed by rate limiting.
    pub suppressed: u64,
    /// Lines still queued when the timeout expired (lost unless the sink recovers).
    pub pending: usize,
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "log writer {}: {} lines written, {} dropped (error {}, warn {}, info {}, debug {}, trace {}), {} suppressed, {} still queued",
            if self.completed {
                "shut down"
            } else {
                "timed out"
            },
            self.written,
            self.dropped.total(),
            self.dropped.0[0],
            self.dropped.0[1],
            self.dropped.0[2],
            self.dropped.0[3],
            self.dropped.0[4],
            self.suppressed,
            self.pending
        )
    }
}

pub(crate) enum Msg {
    Line(u8, Vec<u8>),
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// Where formatted lines go.
#[derive(Clone)]
pub(crate) enum Output {
    Blocking(Arc<BlockingOut>),
    NonBlocking(Arc<NbShared>),
}

impl Output {
    pub(crate) fn new(
        sink: Sink,
        nb: Option<NonBlocking>,
        stats: &LogStats,
        spec: Arc<Spec>,
        flush_every: Duration,
    ) -> io::Result<Self> {
        let w = SinkWriter::new(sink);
        Ok(match nb {
            None => Output::Blocking(BlockingOut::start(w, stats.clone(), spec, flush_every)?),
            Some(s) => {
                Output::NonBlocking(NbShared::start(w, s, stats.clone(), spec, flush_every)?)
            }
        })
    }

    #[inline]
    pub(crate) fn write_line(&self, level: usize, line: &[u8], counted: bool) {
        match self {
            Output::Blocking(b) => b.write_line(line, counted),
            Output::NonBlocking(n) => n.enqueue(level, line, counted),
        }
    }

    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        match self {
            Output::Blocking(b) => b.flush(timeout),
            Output::NonBlocking(n) => n.flush(timeout),
        }
    }

    pub(crate) fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        match self {
            Output::Blocking(b) => {
                let completed = b.flush(timeout);
                if !b.summarised.swap(true, Ordering::AcqRel) {
                    b.write_summary();
                    b.flush(timeout);
                }
                report(&b.stats, completed, 0)
            }
            Output::NonBlocking(n) => n.shutdown(timeout),
        }
    }
}

fn report(stats: &LogStats, completed: bool, pending: usize) -> ShutdownReport {
    ShutdownReport {
        completed,
        written: stats.written(),
        dropped: stats.dropped_by_level(),
        suppressed: stats.suppressed(),
        pending,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------- blocking

pub(crate) struct BlockingOut {
    w: Mutex<BufWriter<SinkWriter>>,
    stats: LogStats,
    spec: Arc<Spec>,
    summarised: AtomicBool,
}

impl BlockingOut {
    fn start(
        w: SinkWriter,
        stats: LogStats,
        spec: Arc<Spec>,
        every: Duration,
    ) -> io::Result<Arc<Self>> {
        let out = Arc::new(Self {
            w: Mutex::new(BufWriter::with_capacity(BUF_CAPACITY, w)),
            stats,
            spec,
            summarised: AtomicBool::new(false),
        });
        let weak: Weak<Self> = Arc::downgrade(&out);
        // The periodic flusher holds only a weak reference and stops once the
        // layer and every handle are gone.
        std::thread::Builder::new()
            .name("obs-log-flush".into())
            .spawn(move || {
                loop {
                    std::thread::park_timeout(every);
                    match weak.upgrade() {
                        Some(o) => {
                            o.flush(Duration::ZERO);
                        }
                        None => return,
                    }
                }
            })?;
        Ok(out)
    }

    #[inline]
    fn write_line(&self, line: &[u8], counted: bool) {
        let mut w = lock(&self.w);
        if w.write_all(line).is_err() {
            self.stats
                .inner
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
        } else if counted {
            self.stats.inner.written.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Flushes; with a zero timeout only when the lock is free (the panic
    /// hook and the periodic flusher must never deadlock).
    fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.w.try_lock() {
                Ok(mut w) => return self.flush_locked(&mut w),
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    return self.flush_locked(&mut p.into_inner());
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    fn flush_locked(&self, w: &mut BufWriter<SinkWriter>) -> bool {
        if w.flush().is_err() {
            self.stats
                .inner
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn write_summary(&self) {
        let mut buf = Vec::new();
        if self.spec.summary_line(&mut buf, &self.stats, None) {
            let mut w = lock(&self.w);
            if w.write_all(&buf).is_err() {
                self.stats
                    .inner
                    .write_errors
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

// ------------------------------------------------------------ non-blocking

pub(crate) struct NbShared {
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    free_tx: Sender<Vec<u8>>,
    free_rx: Receiver<Vec<u8>>,
    policies: [OverflowPolicy; 5],
    low_limit: usize,
    stats: LogStats,
    /// No new lines are accepted.
    closed: AtomicBool,
    /// The writer thread has stopped reading the queue.
    finished: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    last_report: Mutex<Option<ShutdownReport>>,
}

impl NbShared {
    fn start(
        w: SinkWriter,
        s: NonBlocking,
        stats: LogStats,
        spec: Arc<Spec>,
        every: Duration,
    ) -> io::Result<Arc<Self>> {
        let (tx, rx) = crossbeam_channel::bounded(s.capacity);
        // Room for every buffer that can be in flight (queue + writer + a blocked
        // producer), so once as many exist the producer never allocates again.
        let (free_tx, free_rx) = crossbeam_channel::bounded(s.capacity + 2);
        let _ = stats.inner.queue.set(tx.clone());
        let low_limit = ((s.capacity as f64) * s.low_priority_share).floor() as usize;
        let finished = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            rx: rx.clone(),
            free: free_tx.clone(),
            out: BufWriter::with_capacity(BUF_CAPACITY, w),
            stats: stats.clone(),
            spec,
            every,
            last_dropped: stats.dropped_by_level(),
            finished: finished.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("obs-log-writer".into())
            .spawn(move || worker.run())?;
        Ok(Arc::new(Self {
            tx,
            rx,
            free_tx,
            free_rx,
            policies: s.policies,
            low_limit,
            stats,
            closed: AtomicBool::new(false),
            finished,
            thread: Mutex::new(Some(handle)),
            last_report: Mutex::new(None),
        }))
    }

    #[inline]
    fn enqueue(&self, level: usize, line: &[u8], _counted: bool) {
        if self.closed.load(Ordering::Acquire) {
            self.stats.drop_line(level);
            return;
        }
        let mut buf = self
            .free_rx
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(line.len().max(256)));
        buf.extend_from_slice(line);
        let policy = self.policies[level];
        let mut msg = Msg::Line(level as u8, buf);
        // DEBUG and TRACE may only fill part of the queue.
        let over_share = level >= 3 && self.tx.len() >= self.low_limit;
        if !over_share || policy == OverflowPolicy::Block {
            match self.tx.try_send(msg) {
                Ok(()) => return self.after_send(),
                Err(TrySendError::Disconnected(m)) => return self.lost(m),
                Err(TrySendError::Full(m)) => msg = m,
            }
        }
        match policy {
            OverflowPolicy::Block => loop {
                match self.tx.send_timeout(msg, Duration::from_millis(50)) {
                    Ok(()) => return self.after_send(),
                    Err(SendTimeoutError::Timeout(m)) => {
                        if self.closed.load(Ordering::Acquire) {
                            return self.lost(m);
                        }
                        msg = m;
                    }
                    Err(SendTimeoutError::Disconnected(m)) => return self.lost(m),
                }
            },
            OverflowPolicy::DropNewest => self.lost(msg),
            OverflowPolicy::DropOldest => {
                for _ in 0..16 {
                    if let Ok(old) = self.rx.try_recv() {
                        self.lost(old);
                    }
                    match self.tx.try_send(msg) {
                        Ok(()) => return self.after_send(),
                        Err(TrySendError::Full(m)) => msg = m,
                        Err(TrySendError::Disconnected(m)) => return self.lost(m),
                    }
                }
                self.lost(msg);
            }
        }
    }

    /// A line that entered the queue after the writer's final drain would
    /// sit there unseen: take it back out and count it.
    #[inline]
    fn after_send(&self) {
        if self.finished.load(Ordering::SeqCst) {
            while let Ok(m) = self.rx.try_recv() {
                self.lost(m);
            }
        }
    }

    fn lost(&self, msg: Msg) {
        match msg {
            Msg::Line(level, mut buf) => {
                self.stats.drop_line(level as usize);
                if buf.capacity() <= MAX_POOLED {
                    buf.clear();
                    let _ = self.free_tx.try_send(buf);
                }
            }
            Msg::Flush(ack) | Msg::Shutdown(ack) => drop(ack),
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        if self.finished.load(Ordering::SeqCst) {
            return true;
        }
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        let deadline = Instant::now() + timeout;
        if self.tx.send_deadline(Msg::Flush(ack_tx), deadline).is_err() {
            return false;
        }
        ack_rx.recv_deadline(deadline).is_ok()
    }

    fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let deadline = Instant::now() + timeout;
        if self.closed.swap(true, Ordering::SeqCst) {
            // Second call: report again, waiting for a writer that was still running.
            let done = self.finished.load(Ordering::SeqCst) || self.join_by(deadline);
            let r = report(&self.stats, done, if done { 0 } else { self.tx.len() });
            *lock(&self.last_report) = Some(r.clone());
            return r;
        }
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        let sent = self
            .tx
            .send_deadline(Msg::Shutdown(ack_tx), deadline)
            .is_ok();
        let completed = sent && ack_rx.recv_deadline(deadline).is_ok() && self.join_by(deadline);
        let r = if completed {
            self.after_send();
            report(&self.stats, true, 0)
        } else {
            report(&self.stats, false, self.tx.len())
        };
        *lock(&self.last_report) = Some(r.clone());
        r
    }

    fn join_by(&self, deadline: Instant) -> bool {
        let mut slot = lock(&self.thread);
        match slot.as_ref() {
            None => true,
            Some(h) => {
                while !h.is_finished() {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                if let Some(h) = slot.take() {
                    let _ = h.join();
                }
                true
            }
        }
    }
}

struct Worker {
    rx: Receiver<Msg>,
    free: Sender<Vec<u8>>,
    out: BufWriter<SinkWriter>,
    stats: LogStats,
    spec: Arc<Spec>,
    every: Duration,
    last_dropped: DroppedCounts,
    finished: Arc<AtomicBool>,
}

impl Worker {
    /// Drains the queue; when it runs empty, flushes and polls a little
    /// (short sleeps) before blocking. While the writer is polling it is not
    /// parked on the channel, so producers in a busy period never pay for
    /// waking it (a futex call per line otherwise); an idle program still
    /// ends up blocked, not spinning.
    fn run(&mut self) {
        const POLLS: u32 = 20;
        const POLL_SLEEP: Duration = Duration::from_micros(50);
        let mut last_check = Instant::now();
        let mut since_check = 0u32;
        let mut dirty = false;
        loop {
            let msg = match self.rx.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Disconnected) => {
                    self.finish();
                    return;
                }
                Err(TryRecvError::Empty) => {
                    if dirty {
                        self.flush();
                        dirty = false;
                    }
                    let mut polled = None;
                    for _ in 0..POLLS {
                        std::thread::sleep(POLL_SLEEP);
                        if let Ok(m) = self.rx.try_recv() {
                            polled = Some(m);
                            break;
                        }
                    }
                    match polled {
                        Some(m) => m,
                        None => match self.rx.recv_timeout(self.every) {
                            Ok(m) => m,
                            Err(RecvTimeoutError::Timeout) => {
                                last_check = Instant::now();
                                self.drop_summary();
                                self.flush();
                                continue;
                            }
                            Err(RecvTimeoutError::Disconnected) => {
                                self.finish();
                                return;
                            }
                        },
                    }
                }
            };
            match msg {
                Msg::Line(_, buf) => {
                    self.write(buf);
                    dirty = true;
                    since_check += 1;
                    if since_check >= 1024 {
                        since_check = 0;
                        if last_check.elapsed() >= self.every {
                            last_check = Instant::now();
                            self.drop_summary();
                        }
                    }
                }
                Msg::Flush(ack) => {
                    self.flush();
                    dirty = false;
                    let _ = ack.send(());
                }
                Msg::Shutdown(ack) => {
                    self.finish();
                    let _ = ack.send(());
                    return;
                }
            }
        }
    }

    fn write(&mut self, buf: Vec<u8>) {
        if self.out.write_all(&buf).is_ok() {
            self.stats.inner.written.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats
                .inner
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
        }
        self.recycle(buf);
    }

    fn recycle(&self, mut buf: Vec<u8>) {
        if buf.capacity() <= MAX_POOLED {
            buf.clear();
            let _ = self.free.try_send(buf);
        }
    }

    fn flush(&mut self) {
        if self.out.flush().is_err() {
            self.stats
                .inner
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn drain(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Line(_, buf)) => self.write(buf),
                Ok(Msg::Flush(ack) | Msg::Shutdown(ack)) => {
                    let _ = ack.send(());
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    fn finish(&mut self) {
        self.drain();
        self.finished.store(true, Ordering::SeqCst);
        self.drain();
        let mut buf = Vec::new();
        if self.spec.summary_line(&mut buf, &self.stats, None) && self.out.write_all(&buf).is_err()
        {
            self.stats
                .inner
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
        }
        self.flush();
    }

    /// A line telling how many lines were dropped since the last one.
    fn drop_summary(&mut self) {
        let now = self.stats.dropped_by_level();
        if now.total() == self.last_dropped.total() {
            return;
        }
        let mut delta = DroppedCounts::default();
        for i in 0..5 {
            delta.0[i] = now.0[i] - self.last_dropped.0[i];
        }
        self.last_dropped = now;
        let mut buf = Vec::new();
        self.spec.summary_line(&mut buf, &self.stats, Some(delta));
        if self.out.write_all(&buf).is_err() {
            self.stats
                .inner
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

// ------------------------------------------------------------------ guard

/// Flushes buffered lines: cheap to clone, usable from a panic hook or a
/// signal handler thread.
#[derive(Clone)]
pub struct FlushHandle {
    pub(crate) out: Output,
}

impl fmt::Debug for FlushHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushHandle").finish_non_exhaustive()
    }
}

impl FlushHandle {
    /// Writes and flushes everything logged before the call; `false` when
    /// the timeout expired first.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.out.flush(timeout)
    }
}

/// Owns the writer: flushes and shuts it down on drop (bounded by the
/// guard's timeout, 5 s by default), or explicitly with
/// [`shutdown`](Self::shutdown), which reports what was lost.
///
/// ```
/// use obs_log::{Config, NonBlocking};
/// use std::time::Duration;
/// let (_layer, handles) = obs_log::layer(Config::new().writer(std::io::sink()).non_blocking(NonBlocking::new()))?;
/// let report = handles.guard.shutdown(Duration::from_secs(5));
/// assert!(report.completed);
/// assert_eq!(report.dropped.total(), 0);
/// # Ok::<(), obs_log::Error>(())
/// ```
pub struct LogGuard {
    pub(crate) out: Option<Output>,
    pub(crate) timeout: Duration,
}

impl fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogGuard")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl LogGuard {
    /// The timeout used when the guard is dropped.
    pub fn with_drop_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A handle that flushes the same writer.
    pub fn flush_handle(&self) -> Option<FlushHandle> {
        self.out.clone().map(|out| FlushHandle { out })
    }

    /// Writes and flushes everything logged so far.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.out.as_ref().is_none_or(|o| o.flush(timeout))
    }

    /// Drains the queue, writes a summary line when anything was dropped or
    /// suppressed, flushes, stops the writer thread and reports. With the
    /// non-blocking writer, lines logged afterwards are dropped and counted
    /// (the blocking writer keeps writing them). Never waits longer than
    /// `timeout`.
    pub fn shutdown(mut self, timeout: Duration) -> ShutdownReport {
        match self.out.take() {
            Some(o) => o.shutdown(timeout),
            None => ShutdownReport {
                completed: true,
                written: 0,
                dropped: DroppedCounts::default(),
                suppressed: 0,
                pending: 0,
            },
        }
    }

    /// Installs a panic hook that flushes this writer (waiting at most
    /// `timeout`) and then runs the previous hook.
    pub fn install_panic_hook(&self, timeout: Duration) {
        if let Some(h) = self.flush_handle() {
            install_panic_hook(h, timeout);
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(o) = self.out.take() {
            o.shutdown(self.timeout);
        }
    }
}

/// Chains a panic hook that flushes `handle` before the previous hook runs,
/// so lines logged just before a panic reach the sink even when the process
/// dies right after.
pub fn install_panic_hook(handle: FlushHandle, timeout: Duration) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        handle.flush(timeout);
        previous(info);
    }));
}

impl Spec {
    /// A summary line of drops (`delta` since the last summary) or, with
    /// `None`, of the whole run. Returns `false` (and writes nothing) when
    /// there is nothing to report.
    pub(crate) fn summary_line(
        &self,
        buf: &mut Vec<u8>,
        stats: &LogStats,
        delta: Option<DroppedCounts>,
    ) -> bool {
        let (message, counts) = match delta {
            Some(d) => ("obs-log dropped lines since the last report", d),
            None => ("obs-log summary", stats.dropped_by_level()),
        };
        if delta.is_none() && counts.total() == 0 && stats.suppressed() == 0 {
            return false;
        }
        let extra: [(&str, u64); 8] = [
            ("dropped", counts.total()),
            ("dropped.error", counts.0[0]),
            ("dropped.warn", counts.0[1]),
            ("dropped.info", counts.0[2]),
            ("dropped.debug", counts.0[3]),
            ("dropped.trace", counts.0[4]),
            ("suppressed", stats.suppressed()),
            ("written", stats.written()),
        ];
        self.internal_line(buf, Level::WARN, "obs_log", message, &extra);
        true
    }
}
