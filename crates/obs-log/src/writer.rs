//! Sinks: the blocking buffered writer and the non-blocking writer (bounded
//! queue + one writer thread), their stats handle, guard and panic hook.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_core::Level;

use crate::config::{LEVELS, NonBlocking, OverflowPolicy, Sink, level_index};
use crate::format::Spec;
use crate::rolling::RollingWriter;

const BUF_CAPACITY: usize = 64 * 1024;

/// The sink behind the buffer.
pub(crate) enum SinkWriter {
    Stdout(io::Stdout),
    Stderr(io::Stderr),
    Boxed(Box<dyn Write + Send>),
}

/// What the writer writes to: a buffered stream, or a rolling file that
/// takes whole lines and does its own buffering and accounting (it counts
/// lines written and lost itself, since it knows which reached the disk).
pub(crate) enum LineOut {
    Buffered(BufWriter<SinkWriter>),
    Rolling(Box<RollingWriter>),
}

impl LineOut {
    pub(crate) fn new(sink: Sink, stats: &LogStats) -> Result<Self, crate::Error> {
        Ok(match sink {
            Sink::Stdout => Self::buffered(SinkWriter::Stdout(io::stdout())),
            Sink::Stderr => Self::buffered(SinkWriter::Stderr(io::stderr())),
            Sink::Writer(w) => Self::buffered(SinkWriter::Boxed(w)),
            Sink::Rolling(file) => {
                Self::Rolling(Box::new(RollingWriter::new(file, stats.clone())?))
            }
        })
    }

    fn buffered(w: SinkWriter) -> Self {
        Self::Buffered(BufWriter::with_capacity(BUF_CAPACITY, w))
    }

    /// Writes one line; `tag` is its level index, `| UNCOUNTED` for
    /// obs-log's own lines. Counts it written or lost.
    fn write_line(&mut self, line: &[u8], tag: u8, stats: &LogStats) {
        match self {
            Self::Buffered(w) => {
                if w.write_all(line).is_err() {
                    stats.write_error();
                } else if tag & UNCOUNTED == 0 {
                    stats.inner.written.fetch_add(1, Ordering::Relaxed);
                }
            }
            Self::Rolling(r) => r.push_line(line, tag),
        }
    }

    /// `false` when the flush failed (counted as a write error).
    fn flush(&mut self, stats: &LogStats) -> bool {
        match self {
            Self::Buffered(w) => {
                if w.flush().is_err() {
                    stats.write_error();
                    return false;
                }
                true
            }
            Self::Rolling(r) => {
                r.flush_buf();
                true
            }
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
    sink_failing: AtomicBool,
    queue: std::sync::OnceLock<Weak<NbShared>>,
}

/// Counters of the log pipeline (the stats-handle contract): cheap to clone, read with
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
            .field("sink_failing", &self.sink_failing())
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
    /// A rolling file counts each failure once (a full disk, a read-only or
    /// removed directory), however many lines it loses before it recovers;
    /// those lines are counted in [`dropped`](Self::dropped).
    pub fn write_errors(&self) -> u64 {
        self.inner.write_errors.load(Ordering::Relaxed)
    }

    /// Whether the rolling file is failing right now (lines are dropped and
    /// counted until it recovers); always `false` for other sinks.
    pub fn sink_failing(&self) -> bool {
        self.inner.sink_failing.load(Ordering::Relaxed)
    }

    pub(crate) fn sink_failed(&self) {
        self.inner.sink_failing.store(true, Ordering::Relaxed);
    }

    pub(crate) fn sink_recovered(&self) {
        self.inner.sink_failing.store(false, Ordering::Relaxed);
    }

    /// Lines waiting in the non-blocking queue (0 for the blocking writer).
    pub fn queued(&self) -> usize {
        self.inner
            .queue
            .get()
            .and_then(Weak::upgrade)
            .map_or(0, |q| q.queued())
    }

    /// A failed write or flush of the sink.
    pub(crate) fn write_error(&self) {
        self.inner.write_errors.fetch_add(1, Ordering::Relaxed);
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
    /// The OTLP log exporter's report, when records were exported.
    #[cfg(feature = "otlp")]
    pub otlp: Option<crate::otlp::OtlpReport>,
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
        )?;
        #[cfg(feature = "otlp")]
        if let Some(o) = &self.otlp {
            write!(f, "; {o}")?;
        }
        Ok(())
    }
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
    ) -> Result<Self, crate::Error> {
        let w = LineOut::new(sink, stats)?;
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
            Output::Blocking(b) => b.write_line(level, line, counted),
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
        #[cfg(feature = "otlp")]
        otlp: None,
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
    w: Mutex<LineOut>,
    stats: LogStats,
    spec: Arc<Spec>,
    summarised: AtomicBool,
}

impl BlockingOut {
    fn start(
        w: LineOut,
        stats: LogStats,
        spec: Arc<Spec>,
        every: Duration,
    ) -> io::Result<Arc<Self>> {
        let out = Arc::new(Self {
            w: Mutex::new(w),
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
    fn write_line(&self, level: usize, line: &[u8], counted: bool) {
        let tag = if counted {
            level as u8
        } else {
            level as u8 | UNCOUNTED
        };
        lock(&self.w).write_line(line, tag, &self.stats);
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

    fn flush_locked(&self, w: &mut LineOut) -> bool {
        w.flush(&self.stats)
    }

    fn write_summary(&self) {
        let mut buf = Vec::new();
        if self.spec.summary_line(&mut buf, &self.stats, None) {
            lock(&self.w).write_line(&buf, SUMMARY, &self.stats);
        }
    }
}

// ------------------------------------------------------------ non-blocking
//
// Producers append their formatted line to one shared `Chunk` under a
// mutex held for a memcpy; the writer thread swaps the whole chunk out for
// an empty one and writes it with one call. A line costs its producer one
// uncontended lock and a copy, not a channel hand-off of its own buffer, and
// the writer touches the shared state once per batch, not once per line.
// The queue is bounded in lines (those in the chunk plus those the writer
// is writing), so memory stays bounded; what does not fit follows the
// level's overflow policy and every line lost is counted by level.

/// Marks a line that is not counted in `written` (obs-log's own summaries).
pub(crate) const UNCOUNTED: u8 = 0x80;
/// The tag of a summary line: WARN, uncounted.
const SUMMARY: u8 = 1 | UNCOUNTED;
/// After a batch the writer waits this long for the next one to gather.
/// Every wake-up of the writer thread can preempt an application thread on
/// a small machine; at one per millisecond that costs nothing measurable,
/// while the batches stay small (a thousand lines at a million lines/s).
const BATCH_INTERVAL: Duration = Duration::from_millis(1);
/// Chunk memory kept between batches (larger chunks are released).
const MAX_CHUNK_KEEP: usize = 4 << 20;

/// Lines in order: their bytes back to back, where each ends, its level.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// Level index, `| UNCOUNTED` for summary lines.
    levels: Vec<u8>,
    /// Lines before `first` were evicted (drop-oldest); `head` is where
    /// line `first` starts.
    first: usize,
    head: usize,
}

impl Chunk {
    #[inline]
    fn len(&self) -> usize {
        self.ends.len() - self.first
    }

    #[inline]
    fn push(&mut self, tag: u8, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.ends.push(self.bytes.len());
        self.levels.push(tag);
    }

    /// Evicts the oldest line; returns its tag.
    fn pop_front(&mut self) -> Option<u8> {
        if self.first == self.ends.len() {
            return None;
        }
        let tag = self.levels[self.first];
        self.head = self.ends[self.first];
        self.first += 1;
        Some(tag)
    }

    fn live_bytes(&self) -> &[u8] {
        &self.bytes[self.head..]
    }

    fn live_tags(&self) -> &[u8] {
        &self.levels[self.first..]
    }

    fn clear(&mut self) {
        if self.bytes.capacity() > MAX_CHUNK_KEEP {
            *self = Chunk::default();
            return;
        }
        self.bytes.clear();
        self.ends.clear();
        self.levels.clear();
        self.first = 0;
        self.head = 0;
    }

    /// Grows an empty chunk to twice the largest batch seen, so the
    /// producers appending to it next do not reallocate in steady state
    /// (a batch varies with how long the writer took for the previous one).
    fn reserve_like(&mut self, high: (usize, usize)) {
        let (bytes, lines) = ((2 * high.0).min(MAX_CHUNK_KEEP), 2 * high.1);
        self.bytes.reserve(bytes.saturating_sub(self.bytes.len()));
        self.ends.reserve(lines.saturating_sub(self.ends.len()));
        self.levels.reserve(lines.saturating_sub(self.levels.len()));
    }
}

/// What the writer thread is doing, so producers wake it only when needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriterState {
    /// Writing, or about to look at the chunk: nobody needs to wake it.
    Running,
    /// Waiting for a batch to gather: woken early by a big chunk.
    Gathering,
    /// Idle until the next line.
    Parked,
}

/// A gathering batch this big is written at once.
const GATHER_BYTES: usize = 256 * 1024;

struct NbState {
    active: Chunk,
    /// Lines in `active` plus those the writer is writing.
    queued: usize,
    /// Lines the writer wrote since its last successful flush (they may
    /// still sit in its buffer).
    unflushed: usize,
    /// Lines appended so far (their sequence numbers, for flush).
    appended: u64,
    /// Every line up to this sequence number is written and flushed.
    flushed: u64,
    flush_wanted: bool,
    writer: WriterState,
    /// Threads waiting on `room` (blocked producers, flushers, shutdown).
    waiting: usize,
    /// No new lines are accepted.
    closed: bool,
    /// The writer thread has stopped.
    finished: bool,
}

pub(crate) struct NbShared {
    state: Mutex<NbState>,
    /// The writer sleeps here when idle.
    wake: Condvar,
    /// Blocked producers, flushers and shutdown wait here.
    room: Condvar,
    policies: [OverflowPolicy; 5],
    capacity: usize,
    low_limit: usize,
    stats: LogStats,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl NbShared {
    fn start(
        w: LineOut,
        s: NonBlocking,
        stats: LogStats,
        spec: Arc<Spec>,
        every: Duration,
    ) -> io::Result<Arc<Self>> {
        let low_limit = ((s.capacity as f64) * s.low_priority_share).floor() as usize;
        let shared = Arc::new(Self {
            state: Mutex::new(NbState {
                active: Chunk::default(),
                queued: 0,
                unflushed: 0,
                appended: 0,
                flushed: 0,
                flush_wanted: false,
                writer: WriterState::Running,
                waiting: 0,
                closed: false,
                finished: false,
            }),
            wake: Condvar::new(),
            room: Condvar::new(),
            policies: s.policies,
            capacity: s.capacity,
            low_limit,
            stats: stats.clone(),
            thread: Mutex::new(None),
        });
        let _ = stats.inner.queue.set(Arc::downgrade(&shared));
        let mut worker = Worker {
            shared: shared.clone(),
            out: w,
            spec,
            every,
            last_dropped: stats.dropped_by_level(),
        };
        let handle = std::thread::Builder::new()
            .name("obs-log-writer".into())
            .spawn(move || worker.run())?;
        *lock(&shared.thread) = Some(handle);
        Ok(shared)
    }

    fn queued(&self) -> usize {
        lock(&self.state).queued
    }

    #[inline]
    fn enqueue(&self, level: usize, line: &[u8], counted: bool) {
        let tag = if counted {
            level as u8
        } else {
            level as u8 | UNCOUNTED
        };
        let policy = self.policies[level];
        // DEBUG and TRACE under a dropping policy may only fill part of the queue.
        let limit = if level >= 3 && !matches!(policy, OverflowPolicy::Block) {
            self.low_limit
        } else {
            self.capacity
        };
        let mut st = lock(&self.state);
        let mut give_up: Option<Instant> = None;
        loop {
            if st.closed {
                drop(st);
                return self.stats.drop_line(level);
            }
            if st.queued < limit {
                st.queued += 1;
                break;
            }
            match policy {
                OverflowPolicy::Block => st = self.wait_room(st, Duration::from_millis(50)),
                OverflowPolicy::Wait(bound) => {
                    let now = Instant::now();
                    let deadline = *give_up.get_or_insert(now + bound);
                    if now >= deadline {
                        drop(st);
                        return self.stats.drop_line(level);
                    }
                    st = self.wait_room(st, deadline - now);
                }
                OverflowPolicy::DropNewest => {
                    drop(st);
                    return self.stats.drop_line(level);
                }
                OverflowPolicy::DropOldest => match st.active.pop_front() {
                    // The evicted line's place goes to the new one.
                    Some(old) => {
                        self.stats.drop_line(usize::from(old & !UNCOUNTED));
                        break;
                    }
                    // Everything queued is being written: nothing to evict.
                    None => {
                        drop(st);
                        return self.stats.drop_line(level);
                    }
                },
            }
        }
        st.active.push(tag, line);
        st.appended += 1;
        let wake = match st.writer {
            WriterState::Running => false,
            WriterState::Parked => true,
            WriterState::Gathering => {
                st.active.bytes.len() >= GATHER_BYTES || st.queued >= self.capacity / 4
            }
        };
        if wake {
            self.wake_writer(&mut st);
        }
    }

    /// Wakes the writer thread (it is parked or gathering a batch).
    fn wake_writer(&self, st: &mut NbState) {
        st.writer = WriterState::Running;
        self.wake.notify_one();
    }

    /// Waits on `room` (counted in `waiting`, so the writer notifies) for at
    /// most `timeout`.
    fn wait_room<'a>(
        &'a self,
        mut st: MutexGuard<'a, NbState>,
        timeout: Duration,
    ) -> MutexGuard<'a, NbState> {
        st.waiting += 1;
        st = self
            .room
            .wait_timeout(st, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        st.waiting -= 1;
        st
    }

    /// Waits on `room` until `done` or the deadline; `false` on timeout.
    fn wait_until<'a>(
        &'a self,
        mut st: MutexGuard<'a, NbState>,
        deadline: Instant,
        done: impl Fn(&NbState) -> bool,
    ) -> (MutexGuard<'a, NbState>, bool) {
        while !done(&st) {
            let now = Instant::now();
            if now >= deadline {
                return (st, false);
            }
            st = self.wait_room(st, deadline - now);
        }
        (st, true)
    }

    fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.state);
        let target = st.appended;
        if st.finished || st.flushed >= target {
            return true;
        }
        st.flush_wanted = true;
        if st.writer != WriterState::Running {
            self.wake_writer(&mut st);
        }
        self.wait_until(st, deadline, |st| st.finished || st.flushed >= target)
            .1
    }

    fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.state);
        st.closed = true;
        if st.writer != WriterState::Running {
            self.wake_writer(&mut st);
        }
        let (st, done) = self.wait_until(st, deadline, |st| st.finished);
        let pending = if done { 0 } else { st.queued + st.unflushed };
        drop(st);
        let done = done && self.join_by(deadline);
        report(&self.stats, done, pending)
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
    shared: Arc<NbShared>,
    out: LineOut,
    spec: Arc<Spec>,
    every: Duration,
    last_dropped: DroppedCounts,
}

/// Marks the writer finished even when the sink panics, so producers stop
/// waiting and count what can no longer be written.
/// It owns the batch being written, so a line lost that way is counted too.
struct Finished<'a> {
    shared: &'a NbShared,
    batch: Chunk,
}

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        if !st.finished {
            st.closed = true;
            st.finished = true;
            let lost = std::mem::take(&mut st.active);
            st.queued = 0;
            for &tag in lost.live_tags().iter().chain(self.batch.live_tags()) {
                self.shared.stats.drop_line(usize::from(tag & !UNCOUNTED));
            }
        }
        self.shared.room.notify_all();
    }
}

impl Worker {
    /// Takes the whole chunk each round and writes it with one call, then
    /// waits `BATCH_INTERVAL` so the next batch gathers (unless the queue
    /// is filling up); when there is nothing to write it flushes, then
    /// sleeps until a producer wakes it (an idle program does not spin) or
    /// the flush interval passes.
    fn run(&mut self) {
        let shared = self.shared.clone();
        let mut guard = Finished {
            shared: &shared,
            batch: Chunk::default(),
        };
        let batch = &mut guard.batch;
        let mut taken_through = 0u64;
        let mut dirty = false;
        let mut last_check = Instant::now();
        // The largest batch so far (bytes, lines).
        let mut high = (0usize, 0usize);
        loop {
            let mut st = lock(&shared.state);
            if st.active.len() > 0 {
                std::mem::swap(&mut st.active, batch);
                taken_through = st.appended;
            } else if st.active.first > 0 {
                st.active.clear();
            }
            let took = batch.len();
            if took == 0 {
                if st.closed {
                    drop(st);
                    self.finish();
                    let mut st = lock(&shared.state);
                    st.flushed = taken_through;
                    st.finished = true;
                    shared.room.notify_all();
                    return;
                }
                if st.flush_wanted || dirty {
                    st.flush_wanted = false;
                    drop(st);
                    let ok = self.flush();
                    dirty = false;
                    let mut st = lock(&shared.state);
                    st.flushed = st.flushed.max(taken_through);
                    if ok {
                        st.unflushed = 0;
                    }
                    if st.waiting > 0 {
                        shared.room.notify_all();
                    }
                    continue;
                }
                st.writer = WriterState::Parked;
                let (mut st, _) = shared
                    .wake
                    .wait_timeout(st, self.every)
                    .unwrap_or_else(PoisonError::into_inner);
                st.writer = WriterState::Running;
                drop(st);
                if last_check.elapsed() >= self.every {
                    last_check = Instant::now();
                    self.drop_summary();
                    dirty = true;
                }
                continue;
            }
            drop(st);
            self.write_batch(batch);
            high = (high.0.max(batch.bytes.len()), high.1.max(batch.ends.len()));
            batch.clear();
            batch.reserve_like(high);
            dirty = true;
            if last_check.elapsed() >= self.every {
                last_check = Instant::now();
                self.drop_summary();
            }
            let mut st = lock(&shared.state);
            st.queued -= took;
            st.unflushed += took;
            if st.waiting > 0 {
                shared.room.notify_all();
            }
            // Unless a batch is already big or the queue fills up, let the
            // next one gather: the writer then wakes at most every
            // `BATCH_INTERVAL` (or when `GATHER_BYTES` are waiting), not
            // once per line.
            if st.active.bytes.len() < GATHER_BYTES
                && st.queued < shared.capacity / 4
                && !st.closed
                && !st.flush_wanted
            {
                st.writer = WriterState::Gathering;
                let (mut st, _) = shared
                    .wake
                    .wait_timeout(st, BATCH_INTERVAL)
                    .unwrap_or_else(PoisonError::into_inner);
                st.writer = WriterState::Running;
            }
        }
    }

    /// One write for the whole batch; when it fails, its lines are counted
    /// as write errors (lost).
    fn write_batch(&mut self, batch: &Chunk) {
        let out = match &mut self.out {
            LineOut::Buffered(out) => out,
            LineOut::Rolling(r) => {
                for i in batch.first..batch.ends.len() {
                    let start = if i == batch.first {
                        batch.head
                    } else {
                        batch.ends[i - 1]
                    };
                    r.push_line(&batch.bytes[start..batch.ends[i]], batch.levels[i]);
                }
                return;
            }
        };
        let counted = batch
            .live_tags()
            .iter()
            .filter(|&&t| t & UNCOUNTED == 0)
            .count() as u64;
        if out.write_all(batch.live_bytes()).is_ok() {
            self.shared
                .stats
                .inner
                .written
                .fetch_add(counted, Ordering::Relaxed);
        } else {
            self.shared
                .stats
                .inner
                .write_errors
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    }

    fn flush(&mut self) -> bool {
        self.out.flush(&self.shared.stats)
    }

    fn finish(&mut self) {
        let mut buf = Vec::new();
        if self.spec.summary_line(&mut buf, &self.shared.stats, None) {
            self.out.write_line(&buf, SUMMARY, &self.shared.stats);
        }
        self.flush();
    }

    /// A line telling how many lines were dropped since the last one.
    fn drop_summary(&mut self) {
        let now = self.shared.stats.dropped_by_level();
        if now.total() == self.last_dropped.total() {
            return;
        }
        let mut delta = DroppedCounts::default();
        for i in 0..5 {
            delta.0[i] = now.0[i] - self.last_dropped.0[i];
        }
        self.last_dropped = now;
        let mut buf = Vec::new();
        self.spec
            .summary_line(&mut buf, &self.shared.stats, Some(delta));
        self.out.write_line(&buf, SUMMARY, &self.shared.stats);
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
    #[cfg(feature = "otlp")]
    pub(crate) otlp: Option<Arc<crate::otlp::OtlpSink>>,
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

    /// Writes and flushes everything logged so far (and, with OTLP
    /// export, exports what is queued; the timeout applies to each).
    pub fn flush(&self, timeout: Duration) -> bool {
        let lines = self.out.as_ref().is_none_or(|o| o.flush(timeout));
        #[cfg(feature = "otlp")]
        let lines = self.otlp.as_ref().is_none_or(|o| o.flush(timeout)) && lines;
        lines
    }

    /// The OTLP log exporter's counters, when records are exported.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    pub fn otlp_stats(&self) -> Option<crate::otlp::OtlpStats> {
        self.otlp.as_ref().map(|o| o.stats().clone())
    }

    /// Drains the queue, writes a summary line when anything was dropped or
    /// suppressed, flushes, stops the writer thread and reports. With the
    /// non-blocking writer, lines logged afterwards are dropped and counted
    /// (the blocking writer keeps writing them). Never waits longer than
    /// `timeout`.
    pub fn shutdown(mut self, timeout: Duration) -> ShutdownReport {
        #[cfg(feature = "otlp")]
        let otlp = self.otlp.take().map(|o| o.shutdown(timeout));
        #[cfg_attr(not(feature = "otlp"), allow(clippy::let_and_return))]
        let report = match self.out.take() {
            Some(o) => o.shutdown(timeout),
            None => ShutdownReport {
                #[cfg(feature = "otlp")]
                otlp: None,
                completed: true,
                written: 0,
                dropped: DroppedCounts::default(),
                suppressed: 0,
                pending: 0,
            },
        };
        #[cfg(feature = "otlp")]
        let report = ShutdownReport {
            completed: report.completed && otlp.as_ref().is_none_or(|o| o.completed),
            otlp,
            ..report
        };
        report
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
        #[cfg(feature = "otlp")]
        if let Some(o) = self.otlp.take() {
            o.shutdown(self.timeout);
        }
        if let Some(o) = self.out.take() {
            o.shutdown(self.timeout);
        }
    }
}

/// Chains a panic hook that flushes `handle` before the previous hook runs,
/// so lines logged just before a panic reach the sink even when the process
/// dies right after. Panics known to be caught (inside
/// [`obs_core::panic::caught`], as under obs's catch-panic layer) cost no
/// flush, so a panic storm does not make every request wait for the sink.
pub fn install_panic_hook(handle: FlushHandle, timeout: Duration) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if obs_core::panic::may_end_process() {
            handle.flush(timeout);
        }
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
            Some(d) => (
                format!("{} lines dropped while the sink was blocked", d.total()),
                d,
            ),
            None => ("obs-log summary".to_owned(), stats.dropped_by_level()),
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
        self.internal_line(buf, Level::WARN, "obs_log", &message, &extra);
        true
    }
}
