//! The reporter: capture, fingerprint, deduplicate, scrub, deliver.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use obs_core::IdRecord;
use tracing_core::Level;

use crate::breadcrumbs::{CrumbStats, Crumbs, Orphans};
use crate::config::{BacktraceMode, Config, FingerprintMode};
use crate::report::{
    ChainEntry, Location, Mechanism, Report, StableHash, Stacktrace, dyn_type_name,
};
use crate::sink::Sink;
use crate::{Error, scope};

/// At most this many distinct `(type)` keys are counted in
/// [`ErrorStats::by_type`]; further types are counted under `other`.
pub const MAX_COUNTED_TYPES: usize = 256;
/// At most this many errors of a `source()` chain are kept.
pub const MAX_CHAIN: usize = 16;

thread_local! {
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
    static IN_CAPTURE: Cell<bool> = const { Cell::new(false) };
}

#[derive(Default)]
struct StatsInner {
    captured: AtomicU64,
    reported: AtomicU64,
    deduplicated: AtomicU64,
    dropped: AtomicU64,
    rate_limited: AtomicU64,
    sink_errors: AtomicU64,
    by_type: Mutex<HashMap<String, [u64; 4], BuildHasherDefault<StableHash>>>,
}

/// Counters of a reporter (the stats-handle contract): cheap to clone, read with getters,
/// published by whoever owns metrics (e.g. as `obs_errors_total{type,mechanism}`).
#[derive(Clone)]
pub struct ErrorStats {
    inner: Arc<StatsInner>,
    crumbs: Arc<CrumbStats>,
}

impl fmt::Debug for ErrorStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorStats")
            .field("captured", &self.captured())
            .field("reported", &self.reported())
            .field("deduplicated", &self.deduplicated())
            .field("dropped", &self.dropped())
            .field("rate_limited", &self.rate_limited())
            .field("sink_errors", &self.sink_errors())
            .finish_non_exhaustive()
    }
}

/// One row of [`ErrorStats::by_type`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeCount {
    /// The error type (or `other` past [`MAX_COUNTED_TYPES`]).
    pub error_type: String,
    /// `panic`, `error`, `event` or `message`.
    pub mechanism: &'static str,
    /// Captures so far.
    pub count: u64,
}

const MECHANISMS: [Mechanism; 4] = [
    Mechanism::Panic,
    Mechanism::Error,
    Mechanism::Event,
    Mechanism::Message,
];

fn mech_index(m: Mechanism) -> usize {
    match m {
        Mechanism::Panic => 0,
        Mechanism::Error => 1,
        Mechanism::Event => 2,
        Mechanism::Message => 3,
    }
}

impl ErrorStats {
    /// Errors captured (every occurrence, before deduplication).
    pub fn captured(&self) -> u64 {
        self.inner.captured.load(Ordering::Relaxed)
    }

    /// Reports handed to the sinks.
    pub fn reported(&self) -> u64 {
        self.inner.reported.load(Ordering::Relaxed)
    }

    /// Captures folded into an earlier report of the same group.
    pub fn deduplicated(&self) -> u64 {
        self.inner.deduplicated.load(Ordering::Relaxed)
    }

    /// Reports dropped because the delivery queue was full or closed.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Captures of new groups dropped because `max_groups` were already held.
    pub fn rate_limited(&self) -> u64 {
        self.inner.rate_limited.load(Ordering::Relaxed)
    }

    /// Deliveries a sink failed (error or panic).
    pub fn sink_errors(&self) -> u64 {
        self.inner.sink_errors.load(Ordering::Relaxed)
    }

    /// Breadcrumbs recorded.
    pub fn breadcrumbs_recorded(&self) -> u64 {
        self.crumbs.recorded.load(Ordering::Relaxed)
    }

    /// Breadcrumbs overwritten by newer ones in a full ring (the ring's policy).
    pub fn breadcrumbs_evicted(&self) -> u64 {
        self.crumbs.evicted.load(Ordering::Relaxed)
    }

    /// Breadcrumbs not kept because their request had no buffer and the
    /// limit of live buffers was reached (a buffer is made on a request's
    /// first breadcrumb, so each refused breadcrumb counts once).
    pub fn breadcrumb_buffers_refused(&self) -> u64 {
        self.crumbs.refused.load(Ordering::Relaxed)
    }

    /// Breadcrumb buffers alive now.
    pub fn breadcrumb_buffers_live(&self) -> usize {
        self.crumbs.live.load(Ordering::Relaxed)
    }

    /// Captures by error type and mechanism: the values of `obs_errors_total{type,mechanism}`.
    pub fn by_type(&self) -> Vec<TypeCount> {
        let g = self
            .inner
            .by_type
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<TypeCount> = g
            .iter()
            .flat_map(|(t, counts)| {
                MECHANISMS
                    .iter()
                    .zip(counts)
                    .filter(|(_, c)| **c > 0)
                    .map(|(m, c)| TypeCount {
                        error_type: t.clone(),
                        mechanism: m.as_str(),
                        count: *c,
                    })
            })
            .collect();
        out.sort_by(|a, b| (&a.error_type, a.mechanism).cmp(&(&b.error_type, b.mechanism)));
        out
    }

    fn count_type(&self, ty: &str, m: Mechanism) {
        let mut g = self
            .inner
            .by_type
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = g.get_mut(ty) {
            c[mech_index(m)] += 1;
            return;
        }
        let key = if g.len() < MAX_COUNTED_TYPES {
            ty.to_owned()
        } else {
            "other".to_owned()
        };
        g.entry(key).or_default()[mech_index(m)] += 1;
    }
}

/// What a reporter delivered and lost, from [`Reporter::summary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownSummary {
    /// Errors captured.
    pub captured: u64,
    /// Reports handed to the sinks.
    pub reported: u64,
    /// Captures folded into another report (not lost: counted in its `count`).
    pub deduplicated: u64,
    /// Reports lost to a full or closed queue.
    pub dropped: u64,
    /// Captures lost to the cap on held groups.
    pub rate_limited: u64,
    /// Deliveries a sink failed.
    pub sink_errors: u64,
    /// Reports still held or queued (lost if the process ends now).
    pub pending: usize,
}

/// What became of one capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// First of its group in this window: a report was created.
    New,
    /// Folded into the held report of the same group (its count went up).
    Merged,
    /// Dropped: the group table or the queue was full, or the reporter is shut down (counted).
    Dropped,
    /// Not captured: the capture happened inside another capture (recursion guard).
    Skipped,
}

/// The result of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Captured {
    /// The group's fingerprint.
    pub fingerprint: u64,
    /// What happened.
    pub outcome: Outcome,
}

struct Pending {
    report: Report,
    opened: Instant,
    span_info: Arc<(String, String)>,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    not_in_app: Arc<[String]>,
    release: Option<String>,
    groups: Mutex<HashMap<u64, Pending>>,
    stats: ErrorStats,
    pub(crate) crumb_stats: Arc<CrumbStats>,
    pub(crate) orphans: Orphans,
    closed: AtomicBool,
    queued: AtomicU64,
}

enum Msg {
    Report(Box<Report>),
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

struct Inner {
    shared: Arc<Shared>,
    tx: Sender<Msg>,
}

/// The error reporter. Cheap to clone; all clones share one delivery
/// thread, one group table and one set of counters.
///
/// ```
/// use std::time::Duration;
/// use obs_errors::{Config, MemorySink, Reporter};
/// let memory = MemorySink::new();
/// let reporter = Reporter::builder(Config::default()).sink(memory.clone()).build()?;
/// let err = "x".parse::<u32>().unwrap_err();
/// for _ in 0..3 {
///     reporter.capture_error(&err); // same type, same line: one group
/// }
/// reporter.flush(Duration::from_secs(5))?;
/// let reports = memory.reports();
/// assert_eq!(reports.len(), 1);
/// assert_eq!(reports[0].count, 3);
/// assert_eq!(reports[0].error_type, "core::num::error::ParseIntError");
/// # Ok::<(), obs_errors::Error>(())
/// ```
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("config", &self.inner.shared.config)
            .field("stats", &self.inner.shared.stats)
            .finish()
    }
}

/// Builds a [`Reporter`].
pub struct ReporterBuilder {
    config: Config,
    sinks: Vec<Box<dyn Sink>>,
}

impl fmt::Debug for ReporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReporterBuilder")
            .field("config", &self.config)
            .field(
                "sinks",
                &self
                    .sinks
                    .iter()
                    .map(|s| s.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ReporterBuilder {
    /// Adds a sink.
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Adds a sink that is already boxed (sinks collected by a facade).
    pub fn boxed_sink(mut self, sink: Box<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Starts the delivery thread and returns the reporter.
    pub fn build(self) -> Result<Reporter, Error> {
        let crumb_stats = Arc::new(CrumbStats::default());
        let stats = ErrorStats {
            inner: Arc::default(),
            crumbs: Arc::clone(&crumb_stats),
        };
        let shared = Arc::new(Shared {
            not_in_app: self.config.in_app_exclude.clone().into(),
            release: self.config.release_name(),
            config: self.config,
            groups: Mutex::new(HashMap::new()),
            stats,
            crumb_stats,
            orphans: Orphans::new(),
            closed: AtomicBool::new(false),
            queued: AtomicU64::new(0),
        });
        let (tx, rx) = crossbeam_channel::bounded(shared.config.queue_capacity);
        let worker_shared = Arc::clone(&shared);
        let sinks = self.sinks;
        std::thread::Builder::new()
            .name("obs-errors".into())
            .spawn(move || worker(worker_shared, rx, sinks))
            .map_err(Error::Spawn)?;
        Ok(Reporter {
            inner: Arc::new(Inner { shared, tx }),
        })
    }
}

/// What a capture site knows; turned into a [`Report`] only for the first
/// occurrence of a group in a window.
pub(crate) struct Input<'a> {
    pub(crate) mechanism: Mechanism,
    pub(crate) level: Level,
    pub(crate) error_type: Cow<'a, str>,
    /// Formatted lazily from `source` when `None`: a merged capture never formats it.
    pub(crate) message: Option<String>,
    pub(crate) source: Option<&'a (dyn StdError + 'static)>,
    pub(crate) chain: Vec<ChainEntry>,
    pub(crate) location: Option<Location>,
    pub(crate) ids: Option<IdRecord>,
    pub(crate) crumbs: Option<Crumbs>,
    pub(crate) fields: Vec<(String, String)>,
    /// Set when capturing from inside a subscriber callback, where `tracing`
    /// drops nested events: no span event can be emitted then.
    pub(crate) in_dispatch: bool,
    /// Take ids and breadcrumbs from the current span, once the capture is known to open a group.
    pub(crate) lazy_context: bool,
}

impl Input<'_> {
    fn new(mechanism: Mechanism, error_type: Cow<'_, str>, message: Option<String>) -> Input<'_> {
        Input {
            mechanism,
            level: Level::ERROR,
            error_type,
            message,
            source: None,
            chain: Vec::new(),
            location: None,
            ids: None,
            crumbs: None,
            fields: Vec::new(),
            in_dispatch: false,
            lazy_context: false,
        }
    }

    fn message(&mut self) -> &str {
        let source = self.source;
        self.message
            .get_or_insert_with(|| source.map(ToString::to_string).unwrap_or_default())
    }
}

/// The ids and breadcrumb buffer of the current span of the default
/// dispatcher (when it keeps spans in the registry or obs's store).
fn current_context(shared: &Shared) -> (Option<IdRecord>, Option<Crumbs>) {
    let found = tracing::dispatcher::get_default(|d| {
        let span = obs_core::spans::Found::current(d)?;
        let ids = IdRecord::resolve_scope(&span);
        Some((ids, crate::layer::crumbs_of(&span)))
    });
    match found {
        Some(pair) => pair,
        None => (None, shared.orphans.get()),
    }
}

fn chain_of(e: &(dyn StdError + 'static)) -> Vec<ChainEntry> {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        if out.len() == MAX_CHAIN {
            break;
        }
        out.push(ChainEntry {
            error_type: dyn_type_name(s),
            message: s.to_string(),
        });
        cur = s.source();
    }
    out
}

fn in_span() -> bool {
    tracing::dispatcher::get_default(|d| d.current_span().id().is_some())
}

fn emit_span_event(ty: &str, msg: &str, stack: Option<&str>) {
    // The exception-event contract: obs-trace turns this event into the span's `exception` event.
    tracing::event!(
        target: "obs_errors::exception",
        Level::ERROR,
        {
            "exception.type" = ty,
            "exception.message" = msg,
            "exception.stacktrace" = stack,
        },
        "exception"
    );
}

static GLOBAL: RwLock<Option<Reporter>> = RwLock::new(None);

impl Reporter {
    /// A builder for a reporter with `config` and no sinks yet.
    pub fn builder(config: Config) -> ReporterBuilder {
        ReporterBuilder {
            config,
            sinks: Vec::new(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> ErrorStats {
        self.inner.shared.stats.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.shared.config
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// The `tracing` layer that keeps breadcrumbs and reports `ERROR` events.
    pub fn layer(&self) -> crate::ErrorLayer {
        crate::ErrorLayer::new(self.clone())
    }

    /// Makes this reporter the one the free functions ([`capture_error`](crate::capture_error), …) use.
    pub fn install_global(&self) {
        *GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Some(self.clone());
    }

    /// The reporter installed with [`install_global`](Self::install_global).
    pub fn global() -> Option<Reporter> {
        GLOBAL
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Captures an error with its `source()` chain. Its type name comes
    /// from the static type; its location is the caller's.
    #[track_caller]
    pub fn capture_error<E: StdError + 'static>(&self, err: &E) -> Captured {
        let loc = std::panic::Location::caller();
        let mut input = Input::new(
            Mechanism::Error,
            Cow::Borrowed(std::any::type_name::<E>()),
            None,
        );
        input.source = Some(err);
        input.location = Some(Location::from_static(loc));
        self.capture_current(input)
    }

    /// Captures a `dyn Error` (anyhow-style: `&*boxed`, `anyhow_err.as_ref()`).
    /// The type name is the leading identifier of its `Debug` form.
    #[track_caller]
    pub fn capture_dyn_error(&self, err: &(dyn StdError + 'static)) -> Captured {
        let loc = std::panic::Location::caller();
        let mut input = Input::new(Mechanism::Error, Cow::Owned(dyn_type_name(err)), None);
        input.source = Some(err);
        input.location = Some(Location::from_static(loc));
        self.capture_current(input)
    }

    /// Captures an `anyhow::Error` with its chain. The type is the wrapped
    /// error's (best effort), `anyhow::Error` for ad-hoc messages.
    #[cfg(feature = "anyhow")]
    #[cfg_attr(docsrs, doc(cfg(feature = "anyhow")))]
    #[track_caller]
    pub fn capture_anyhow(&self, err: &anyhow::Error) -> Captured {
        let loc = std::panic::Location::caller();
        let dyn_err: &(dyn StdError + Send + Sync + 'static) = err.as_ref();
        let ty = match dyn_type_name(dyn_err) {
            t if t == "Error" => "anyhow::Error".to_owned(),
            t => t,
        };
        let mut input = Input::new(Mechanism::Error, Cow::Owned(ty), None);
        input.source = Some(dyn_err);
        input.location = Some(Location::from_static(loc));
        self.capture_current(input)
    }

    /// Captures any error that is `Display + Debug` — `anyhow::Error`,
    /// `Box<dyn Error + Send + Sync>`, a plain message type — with its
    /// `source()` chain wherever the value exposes one: an `anyhow::Error`
    /// (with the `anyhow` feature), a boxed or `Arc`'d `dyn Error`, an
    /// `std::io::Error`. Any other type is recorded with its type name and
    /// its `Display` text (it has no chain to walk: use
    /// [`capture_error`](Self::capture_error) for `std::error::Error` types
    /// when their static type is at hand).
    ///
    /// ```
    /// use obs_errors::{Config, MemorySink, Reporter};
    /// let sink = MemorySink::new();
    /// let reporter = Reporter::builder(Config::default()).sink(sink.clone()).build()?;
    /// let boxed: Box<dyn std::error::Error + Send + Sync> =
    ///     Box::new(std::io::Error::other("disk on fire"));
    /// reporter.capture_display(&boxed);
    /// reporter.capture_display(&"a plain message");
    /// reporter.flush(std::time::Duration::from_secs(5))?;
    /// // Delivered by a background thread: compare without order.
    /// let mut messages: Vec<String> = sink.reports().into_iter().map(|r| r.message).collect();
    /// messages.sort();
    /// assert_eq!(messages, ["a plain message", "disk on fire"]);
    /// # Ok::<(), obs_errors::Error>(())
    /// ```
    #[track_caller]
    pub fn capture_display<E>(&self, err: &E) -> Captured
    where
        E: fmt::Display + fmt::Debug + 'static,
    {
        let loc = std::panic::Location::caller();
        if let Some(source) = obs_core::error::dyn_error(err) {
            let mut input = Input::new(Mechanism::Error, Cow::Owned(dyn_type_name(source)), None);
            input.source = Some(source);
            input.location = Some(Location::from_static(loc));
            return self.capture_current(input);
        }
        #[cfg(feature = "anyhow")]
        if let Some(e) = (err as &dyn std::any::Any).downcast_ref::<anyhow::Error>() {
            return self.capture_anyhow(e);
        }
        let mut input = Input::new(
            Mechanism::Error,
            Cow::Borrowed(std::any::type_name::<E>()),
            Some(err.to_string()),
        );
        input.location = Some(Location::from_static(loc));
        self.capture_current(input)
    }

    /// Captures a plain message at `level`.
    #[track_caller]
    pub fn capture_message(&self, level: Level, message: &str) -> Captured {
        let loc = std::panic::Location::caller();
        let mut input = Input::new(
            Mechanism::Message,
            Cow::Borrowed("message"),
            Some(message.to_owned()),
        );
        input.level = level;
        input.location = Some(Location::from_static(loc));
        self.capture_current(input)
    }

    /// Captures a panic (what the hook installed by
    /// [`install_panic_hook`](Self::install_panic_hook) calls).
    pub fn capture_panic(&self, info: &PanicHookInfo<'_>) -> Captured {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "Box<dyn Any>".to_owned());
        let mut input = Input::new(Mechanism::Panic, Cow::Borrowed("panic"), Some(message));
        input.location = info.location().map(Location::from_std);
        self.capture_current(input)
    }

    /// Installs a panic hook that captures every panic, flushes (when
    /// configured) and then calls the hook that was installed before.
    pub fn install_panic_hook(&self) {
        let prev = std::panic::take_hook();
        let reporter = self.clone();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CAPTURE.with(Cell::get) {
                reporter.capture_panic(info);
                // Delivery waits only when the process may die with this
                // panic; a caught panic's report goes out as usual.
                if let Some(t) = reporter.inner.shared.config.flush_on_panic
                    && obs_core::panic::may_end_process()
                {
                    let _ = reporter.flush(t);
                }
            }
            prev(info);
        }));
    }

    fn capture_current(&self, mut input: Input<'_>) -> Captured {
        input.lazy_context = true;
        self.capture_input(input)
    }

    pub(crate) fn capture_input(&self, input: Input<'_>) -> Captured {
        if IN_CAPTURE.with(Cell::get) {
            return Captured {
                fingerprint: 0,
                outcome: Outcome::Skipped,
            };
        }
        IN_CAPTURE.with(|c| c.set(true));
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                IN_CAPTURE.with(|c| c.set(false));
            }
        }
        let _reset = Reset;
        self.capture_inner(input)
    }

    fn capture_inner(&self, mut input: Input<'_>) -> Captured {
        let sh = &*self.inner.shared;
        let cfg = &sh.config;
        if sh.closed.load(Ordering::Acquire) {
            sh.stats.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return Captured {
                fingerprint: 0,
                outcome: Outcome::Dropped,
            };
        }
        sh.stats.inner.captured.fetch_add(1, Ordering::Relaxed);
        sh.stats.count_type(&input.error_type, input.mechanism);
        if let Some(hook) = &cfg.counter_hook {
            hook(&input.error_type, input.mechanism.as_str());
        }
        // In frames mode the stack is part of the key, so it is taken first.
        let mut stack = match cfg.fingerprint {
            FingerprintMode::TypeAndFrames(_) => self.stacktrace(),
            _ => None,
        };
        let fp = self.fingerprint(&mut input, stack.as_ref());
        let window = cfg.dedup_window;
        let span_events = cfg.span_events && !input.in_dispatch && in_span();
        if !window.is_zero() {
            let mut groups = sh.groups.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(p) = groups.get_mut(&fp) {
                p.report.count += 1;
                p.report.last_seen = SystemTime::now();
                let info = Arc::clone(&p.span_info);
                drop(groups);
                sh.stats.inner.deduplicated.fetch_add(1, Ordering::Relaxed);
                if span_events {
                    emit_span_event(&info.0, &info.1, None);
                }
                return Captured {
                    fingerprint: fp,
                    outcome: Outcome::Merged,
                };
            }
            if groups.len() >= cfg.max_groups {
                drop(groups);
                sh.stats.inner.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Captured {
                    fingerprint: fp,
                    outcome: Outcome::Dropped,
                };
            }
        }
        if stack.is_none() {
            stack = self.stacktrace();
        }
        if input.lazy_context {
            let (ids, crumbs) = current_context(sh);
            input.ids = ids;
            input.crumbs = crumbs;
        }
        let report = self.build(input, fp, stack);
        if span_events {
            let stack = report.stacktrace.as_ref().map(Stacktrace::text);
            emit_span_event(&report.error_type, &report.message, stack);
        }
        if window.is_zero() {
            self.enqueue(report);
            return Captured {
                fingerprint: fp,
                outcome: Outcome::New,
            };
        }
        let span_info = Arc::new((report.error_type.clone(), report.message.clone()));
        let mut groups = sh.groups.lock().unwrap_or_else(PoisonError::into_inner);
        match groups.get_mut(&fp) {
            // another thread opened the group meanwhile
            Some(p) => {
                p.report.count += report.count;
                drop(groups);
                sh.stats.inner.deduplicated.fetch_add(1, Ordering::Relaxed);
                Captured {
                    fingerprint: fp,
                    outcome: Outcome::Merged,
                }
            }
            None => {
                groups.insert(
                    fp,
                    Pending {
                        report,
                        opened: Instant::now(),
                        span_info,
                    },
                );
                Captured {
                    fingerprint: fp,
                    outcome: Outcome::New,
                }
            }
        }
    }

    fn stacktrace(&self) -> Option<Stacktrace> {
        let sh = &self.inner.shared;
        let bt = match sh.config.backtrace {
            BacktraceMode::Off => return None,
            BacktraceMode::Always => std::backtrace::Backtrace::force_capture(),
            BacktraceMode::Env => std::backtrace::Backtrace::capture(),
        };
        Stacktrace::with_exclusions(bt, Arc::clone(&sh.not_in_app))
    }

    fn fingerprint(&self, input: &mut Input<'_>, stack: Option<&Stacktrace>) -> u64 {
        let mut h = StableHash::new();
        h.write(input.error_type.as_bytes());
        let mode = &self.inner.shared.config.fingerprint;
        if matches!(
            mode,
            FingerprintMode::TypeAndMessage | FingerprintMode::Custom(_)
        ) {
            input.message();
        }
        let input = &*input;
        let message = input.message.as_deref().unwrap_or_default();
        let write_location = |h: &mut StableHash| {
            if let Some(l) = &input.location {
                h.write(l.file.as_bytes()).write(&l.line.to_le_bytes());
            }
        };
        match mode {
            FingerprintMode::TypeAndLocation => write_location(&mut h),
            FingerprintMode::TypeAndFrames(n) => {
                let mut used = 0;
                if let Some(s) = stack {
                    for f in s.frames().iter().filter(|f| f.in_app).take(*n) {
                        h.write(f.function.as_bytes());
                        used += 1;
                    }
                }
                if used == 0 {
                    write_location(&mut h);
                }
            }
            FingerprintMode::TypeAndMessage => {
                h.write(message.as_bytes());
            }
            FingerprintMode::Custom(f) => {
                let loc = input
                    .location
                    .as_ref()
                    .map(|l| format!("{}:{}", l.file, l.line));
                h.write(f(&input.error_type, message, loc.as_deref()).as_bytes());
            }
        }
        h.finish()
    }

    fn build(&self, mut input: Input<'_>, fp: u64, stacktrace: Option<Stacktrace>) -> Report {
        let sh = &*self.inner.shared;
        let red = &*sh.config.redactor;
        let scope = scope::current();
        let now = SystemTime::now();
        let message = red.redact(input.message()).into_owned();
        let mut chain = input.chain;
        if let Some(src) = input.source {
            chain.extend(chain_of(src));
        }
        for c in &mut chain {
            c.message = red.redact(&c.message).into_owned();
        }
        let redact_pairs = |v: Vec<(String, String)>| -> Vec<(String, String)> {
            v.into_iter()
                .map(|(k, val)| {
                    let val = red.redact_field(&k, &val).into_owned();
                    (k, val)
                })
                .collect()
        };
        let mut extra = redact_pairs(scope.extra);
        extra.extend(redact_pairs(input.fields));
        // Free text anywhere in the report is scanned too: the user's
        // fields, the route and the path may carry what a message would.
        let scrub = |v: &mut Option<String>| {
            if let Some(s) = v
                && let Cow::Owned(clean) = red.redact(s)
            {
                *s = clean;
            }
        };
        let request = scope.request.map(|slot| {
            let mut r = slot.get().clone();
            for (k, v) in &mut r.headers {
                *v = scope::redact_header(k, v, red);
            }
            scrub(&mut r.route);
            scrub(&mut r.path);
            r
        });
        let user = scope.user.map(|mut u| {
            scrub(&mut u.id);
            scrub(&mut u.username);
            scrub(&mut u.email);
            scrub(&mut u.ip_address);
            u
        });
        Report {
            event_id: format!("{:032x}", obs_core::rng::next_u128()),
            timestamp: now,
            last_seen: now,
            count: 1,
            mechanism: input.mechanism,
            level: input.level,
            error_type: input.error_type.into_owned(),
            message,
            chain,
            location: input.location,
            stacktrace,
            fingerprint: format!("{fp:016x}"),
            ids: input.ids,
            resource: Arc::clone(&sh.config.resource),
            release: sh.release.clone(),
            user,
            tags: redact_pairs(scope.tags),
            extra,
            request,
            breadcrumbs: input.crumbs.map(|c| c.snapshot(red)).unwrap_or_default(),
            thread: std::thread::current().name().map(str::to_owned),
        }
    }

    fn enqueue(&self, report: Report) {
        let sh = &self.inner.shared;
        sh.queued.fetch_add(1, Ordering::Relaxed);
        match self.inner.tx.try_send(Msg::Report(Box::new(report))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                sh.queued.fetch_sub(1, Ordering::Relaxed);
                sh.stats.inner.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reports held for deduplication plus reports queued for the sinks.
    pub fn pending(&self) -> usize {
        let sh = &self.inner.shared;
        let held = sh
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        held + sh.queued.load(Ordering::Relaxed) as usize
    }

    /// Closes every deduplication window, delivers everything queued and
    /// flushes the sinks, waiting at most `timeout`. Called from a sink
    /// (the delivery thread) it returns at once.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        self.request(timeout, Msg::Flush)
    }

    /// Flushes like [`flush`](Self::flush), then stops the delivery thread;
    /// later captures are dropped and counted. [`summary`](Self::summary)
    /// then tells what was delivered and lost.
    ///
    /// ```
    /// use std::time::Duration;
    /// let reporter = obs_errors::Reporter::builder(obs_errors::Config::default()).build()?;
    /// reporter.capture_message(tracing::Level::ERROR, "last words");
    /// reporter.shutdown(Duration::from_secs(5))?;
    /// let summary = reporter.summary();
    /// assert_eq!((summary.reported, summary.dropped), (1, 0));
    /// # Ok::<(), obs_errors::Error>(())
    /// ```
    pub fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        let r = self.request(timeout, Msg::Shutdown);
        self.inner.shared.closed.store(true, Ordering::Release);
        r
    }

    /// What was captured, delivered and lost so far (for the shutdown report).
    pub fn summary(&self) -> ShutdownSummary {
        let st = &self.inner.shared.stats;
        ShutdownSummary {
            captured: st.captured(),
            reported: st.reported(),
            deduplicated: st.deduplicated(),
            dropped: st.dropped(),
            rate_limited: st.rate_limited(),
            sink_errors: st.sink_errors(),
            pending: self.pending(),
        }
    }

    fn request(&self, timeout: Duration, make: fn(Sender<()>) -> Msg) -> Result<(), Error> {
        if IN_WORKER.with(Cell::get) {
            return Ok(());
        }
        if self.inner.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        let timed_out = || Error::FlushTimeout {
            timeout,
            pending: self.pending(),
        };
        self.inner
            .tx
            .send_deadline(make(ack_tx), deadline)
            .map_err(|_| timed_out())?;
        ack_rx.recv_deadline(deadline).map_err(|_| timed_out())
    }
}

fn worker(shared: Arc<Shared>, rx: Receiver<Msg>, mut sinks: Vec<Box<dyn Sink>>) {
    IN_WORKER.with(|c| c.set(true));
    let window = shared.config.dedup_window;
    // nothing is held without a window: wake rarely
    let tick = if window.is_zero() {
        Duration::from_secs(1)
    } else {
        (window / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    };
    let mut last_scan = Instant::now();
    loop {
        let msg = rx.recv_timeout(tick);
        match msg {
            Ok(Msg::Report(r)) => {
                shared.queued.fetch_sub(1, Ordering::Relaxed);
                deliver(&shared, &mut sinks, &r);
            }
            Ok(Msg::Flush(ack)) => {
                close_windows(&shared, &mut sinks, None);
                flush_sinks(&shared, &mut sinks);
                let _ = ack.send(());
            }
            Ok(Msg::Shutdown(ack)) => {
                close_windows(&shared, &mut sinks, None);
                flush_sinks(&shared, &mut sinks);
                let _ = ack.send(());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                close_windows(&shared, &mut sinks, None);
                flush_sinks(&shared, &mut sinks);
                return;
            }
        }
        if last_scan.elapsed() >= tick {
            last_scan = Instant::now();
            close_windows(&shared, &mut sinks, Some(window));
        }
    }
}

/// Delivers the held reports whose window is over (all with `None`).
fn close_windows(shared: &Shared, sinks: &mut [Box<dyn Sink>], window: Option<Duration>) {
    let due: Vec<Report> = {
        let mut g = shared.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if g.is_empty() {
            return;
        }
        let now = Instant::now();
        let keys: Vec<u64> = g
            .iter()
            .filter(|(_, p)| window.is_none_or(|w| now.duration_since(p.opened) >= w))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| g.remove(&k))
            .map(|p| p.report)
            .collect()
    };
    for r in &due {
        deliver(shared, sinks, r);
    }
}

fn deliver(shared: &Shared, sinks: &mut [Box<dyn Sink>], report: &Report) {
    shared.stats.inner.reported.fetch_add(1, Ordering::Relaxed);
    for s in sinks.iter_mut() {
        let ok =
            std::panic::catch_unwind(AssertUnwindSafe(|| s.send(report))).is_ok_and(|r| r.is_ok());
        if !ok {
            shared
                .stats
                .inner
                .sink_errors
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn flush_sinks(shared: &Shared, sinks: &mut [Box<dyn Sink>]) {
    for s in sinks.iter_mut() {
        let ok = std::panic::catch_unwind(AssertUnwindSafe(|| s.flush())).is_ok_and(|r| r.is_ok());
        if !ok {
            shared
                .stats
                .inner
                .sink_errors
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Captures `err` with the global reporter (see [`Reporter::install_global`]);
/// `None` when none is installed.
#[track_caller]
pub fn capture_error<E: StdError + 'static>(err: &E) -> Option<Captured> {
    let loc = std::panic::Location::caller();
    let r = Reporter::global()?;
    let mut input = Input::new(
        Mechanism::Error,
        Cow::Borrowed(std::any::type_name::<E>()),
        None,
    );
    input.source = Some(err);
    input.location = Some(Location::from_static(loc));
    Some(r.capture_current(input))
}

/// Captures a `dyn Error` with the global reporter; `None` when none is installed.
#[track_caller]
pub fn capture_dyn_error(err: &(dyn StdError + 'static)) -> Option<Captured> {
    let loc = std::panic::Location::caller();
    let r = Reporter::global()?;
    let mut input = Input::new(Mechanism::Error, Cow::Owned(dyn_type_name(err)), None);
    input.source = Some(err);
    input.location = Some(Location::from_static(loc));
    Some(r.capture_current(input))
}

/// Captures any `Display + Debug` error with the global reporter (see
/// [`Reporter::capture_display`]); `None` when none is installed.
#[track_caller]
pub fn capture_display<E>(err: &E) -> Option<Captured>
where
    E: fmt::Display + fmt::Debug + 'static,
{
    Some(Reporter::global()?.capture_display(err))
}

impl Reporter {
    /// Captures a `tracing` event (what [`ErrorLayer`](crate::ErrorLayer) calls for `ERROR` events).
    pub(crate) fn capture_event_input(&self, input: Input<'_>) -> Captured {
        self.capture_input(input)
    }

    pub(crate) fn event_input<'a>(
        mechanism: Mechanism,
        error_type: Cow<'a, str>,
        message: String,
    ) -> Input<'a> {
        Input::new(mechanism, error_type, Some(message))
    }

    pub(crate) fn new_crumbs(&self) -> Option<Crumbs> {
        let sh = &self.inner.shared;
        Crumbs::new(
            sh.config.max_breadcrumbs,
            &sh.crumb_stats,
            sh.config.max_breadcrumb_buffers,
        )
    }

    pub(crate) fn chain_of(e: &(dyn StdError + 'static)) -> Vec<ChainEntry> {
        chain_of(e)
    }
}
