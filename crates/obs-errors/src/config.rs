//! Reporter configuration: programmatic builder plus `OBS_ERRORS_*` variables.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use obs_core::{Redactor, Resource};
use tracing_core::Level;

use crate::Error;

/// `OBS_ERRORS_BACKTRACE`: `on`, `off` or `env` (follow `RUST_BACKTRACE`/`RUST_LIB_BACKTRACE`).
pub const ENV_BACKTRACE: &str = "OBS_ERRORS_BACKTRACE";
/// `OBS_ERRORS_DEDUP_WINDOW`: the deduplication window, e.g. `60s`, `500ms`, `0` (off).
pub const ENV_DEDUP_WINDOW: &str = "OBS_ERRORS_DEDUP_WINDOW";
/// `OBS_ERRORS_MAX_BREADCRUMBS`: breadcrumbs kept per request/task (0 turns them off).
pub const ENV_MAX_BREADCRUMBS: &str = "OBS_ERRORS_MAX_BREADCRUMBS";
/// `OBS_ERRORS_BREADCRUMB_LEVEL`: the most verbose level kept as a
/// breadcrumb, `error`, `warn`, `info` (the default) or `debug`.
pub const ENV_BREADCRUMB_LEVEL: &str = "OBS_ERRORS_BREADCRUMB_LEVEL";
/// `OBS_ERRORS_RELEASE`: the release name put on every report.
pub const ENV_RELEASE: &str = "OBS_ERRORS_RELEASE";
/// `OBS_ERRORS_FINGERPRINT`: `location`, `frames:N` or `message`.
pub const ENV_FINGERPRINT: &str = "OBS_ERRORS_FINGERPRINT";

/// When a backtrace is captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BacktraceMode {
    /// Never.
    Off,
    /// Always (`std::backtrace::Backtrace::force_capture`).
    Always,
    /// As `std::backtrace::Backtrace::capture` decides from `RUST_LIB_BACKTRACE`/`RUST_BACKTRACE`.
    Env,
}

/// A custom grouping function of (type, message, `file:line` location)
/// returning the grouping key.
pub type FingerprintFn = Arc<dyn Fn(&str, &str, Option<&str>) -> String + Send + Sync>;

/// How reports are grouped: two captures with the same fingerprint within
/// the deduplication window become one report with a count.
#[derive(Clone)]
pub enum FingerprintMode {
    /// Error type + the code location that raised it (the panic location,
    /// the `#[track_caller]` location of the capture call, or the callsite
    /// of a `tracing` event). Costs nothing: no symbolization.
    TypeAndLocation,
    /// Error type + the top `n` in-app frames of the backtrace (function
    /// names). Symbolizes the backtrace at capture time for the first
    /// occurrence in a window; falls back to the location when no backtrace
    /// was captured.
    TypeAndFrames(usize),
    /// Error type + the (scrubbed) message: distinct messages are distinct groups.
    TypeAndMessage,
    /// A custom function of (type, message, location) returning a key.
    Custom(FingerprintFn),
}

impl fmt::Debug for FingerprintMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TypeAndLocation => f.write_str("TypeAndLocation"),
            Self::TypeAndFrames(n) => write!(f, "TypeAndFrames({n})"),
            Self::TypeAndMessage => f.write_str("TypeAndMessage"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// A hook called on every captured error (before deduplication) with the
/// error type and the mechanism (`panic`, `error`, `event`, `message`): the
/// place to increment an `obs_errors_total{type,mechanism}` counter.
pub type CounterHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Configuration of a [`Reporter`](crate::Reporter).
///
/// ```
/// use std::time::Duration;
/// use obs_errors::{BacktraceMode, Config};
/// let config = Config::new(obs_core::Resource::new("checkout").with_version("1.4.0"))
///     .backtrace(BacktraceMode::Always)
///     .dedup_window(Duration::from_secs(60))
///     .max_breadcrumbs(50)?;
/// assert_eq!(config.release_name().as_deref(), Some("checkout@1.4.0"));
/// # Ok::<(), obs_errors::Error>(())
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) resource: Arc<Resource>,
    pub(crate) release: Option<String>,
    pub(crate) redactor: Arc<Redactor>,
    pub(crate) backtrace: BacktraceMode,
    pub(crate) fingerprint: FingerprintMode,
    pub(crate) dedup_window: Duration,
    pub(crate) max_groups: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) max_breadcrumbs: usize,
    pub(crate) breadcrumb_level: Level,
    pub(crate) max_breadcrumb_buffers: usize,
    pub(crate) capture_error_events: bool,
    pub(crate) span_events: bool,
    pub(crate) flush_on_panic: Option<Duration>,
    pub(crate) in_app_exclude: Vec<String>,
    pub(crate) counter_hook: Option<CounterHook>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("resource", &self.resource)
            .field("release", &self.release)
            .field("backtrace", &self.backtrace)
            .field("fingerprint", &self.fingerprint)
            .field("dedup_window", &self.dedup_window)
            .field("max_groups", &self.max_groups)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_breadcrumbs", &self.max_breadcrumbs)
            .field("breadcrumb_level", &self.breadcrumb_level)
            .field("max_breadcrumb_buffers", &self.max_breadcrumb_buffers)
            .field("capture_error_events", &self.capture_error_events)
            .field("span_events", &self.span_events)
            .field("flush_on_panic", &self.flush_on_panic)
            .field("counter_hook", &self.counter_hook.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new(Resource::default())
    }
}

/// Frames whose function starts with one of these are not "in app": they
/// are skipped when fingerprinting by frames and flagged for Sentry.
pub(crate) const DEFAULT_NOT_IN_APP: &[&str] = &[
    "std::",
    "core::",
    "alloc::",
    "<std::",
    "<core::",
    "<alloc::",
    "backtrace::",
    "obs_errors::",
    "<obs_errors::",
    "tokio::",
    "<tokio::",
    "futures_util::",
    "<futures_util::",
    "tracing::",
    "<tracing::",
    "tracing_core::",
    "tracing_subscriber::",
    "<tracing_subscriber::",
    "hyper::",
    "<hyper::",
    "hyper_util::",
    "<hyper_util::",
    "tower::",
    "<tower::",
    "axum::",
    "<axum::",
    "test::",
    "<F as ",
    "rust_begin_unwind",
    "__rustc",
    "__rust",
    "__libc",
    "_start",
    "clone",
    "start_thread",
    "<unknown>",
];

impl Config {
    /// Defaults for `resource`: backtraces as the environment says, a
    /// 60 s deduplication window, 32 breadcrumbs per request at `DEBUG` and
    /// above, a 1024-report delivery queue, flush for up to 2 s on panic.
    pub fn new(resource: Resource) -> Self {
        Self {
            resource: Arc::new(resource),
            release: None,
            redactor: Arc::new(Redactor::new()),
            backtrace: BacktraceMode::Env,
            fingerprint: FingerprintMode::TypeAndLocation,
            dedup_window: Duration::from_secs(60),
            max_groups: 1024,
            queue_capacity: 1024,
            max_breadcrumbs: 32,
            breadcrumb_level: Level::INFO,
            max_breadcrumb_buffers: 4096,
            capture_error_events: true,
            span_events: true,
            flush_on_panic: Some(Duration::from_secs(2)),
            in_app_exclude: DEFAULT_NOT_IN_APP.iter().map(|s| (*s).to_owned()).collect(),
            counter_hook: None,
        }
    }

    /// Reads the resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`)
    /// and the `OBS_ERRORS_*` variables from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) with a custom lookup.
    ///
    /// ```
    /// use obs_errors::Config;
    /// let err = Config::from_lookup(|k| (k == "OBS_ERRORS_DEDUP_WINDOW").then(|| "soon".to_owned()))
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("OBS_ERRORS_DEDUP_WINDOW"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let resource = Resource::from_lookup(&lookup)?;
        let mut c = Self::new(resource);
        let bad = |var: &str, value: &str, reason: &str| Error::Env {
            var: var.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(v) = lookup(ENV_BACKTRACE) {
            c.backtrace = match v.trim().to_ascii_lowercase().as_str() {
                "on" | "1" | "true" | "always" | "full" => BacktraceMode::Always,
                "off" | "0" | "false" | "never" => BacktraceMode::Off,
                "env" | "" => BacktraceMode::Env,
                _ => return Err(bad(ENV_BACKTRACE, &v, "expected on, off or env")),
            };
        }
        if let Some(v) = lookup(ENV_DEDUP_WINDOW) {
            c.dedup_window = parse_duration(&v).ok_or_else(|| {
                bad(
                    ENV_DEDUP_WINDOW,
                    &v,
                    "expected a duration like 60s, 500ms or 0",
                )
            })?;
        }
        if let Some(v) = lookup(ENV_MAX_BREADCRUMBS) {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| bad(ENV_MAX_BREADCRUMBS, &v, "expected a whole number"))?;
            if n > MAX_BREADCRUMBS_LIMIT {
                return Err(bad(
                    ENV_MAX_BREADCRUMBS,
                    &v,
                    "at most 1000 breadcrumbs are kept per request",
                ));
            }
            c.max_breadcrumbs = n;
        }
        if let Some(v) = lookup(ENV_BREADCRUMB_LEVEL) {
            c.breadcrumb_level = match v.trim().to_ascii_lowercase().as_str() {
                "error" => Level::ERROR,
                "warn" => Level::WARN,
                "info" => Level::INFO,
                "debug" => Level::DEBUG,
                "trace" => Level::TRACE,
                _ => {
                    return Err(bad(
                        ENV_BREADCRUMB_LEVEL,
                        &v,
                        "expected error, warn, info, debug or trace",
                    ));
                }
            };
        }
        if let Some(v) = lookup(ENV_RELEASE) {
            let v = v.trim();
            if v.is_empty() {
                return Err(bad(ENV_RELEASE, v, "the release name is empty"));
            }
            c.release = Some(v.to_owned());
        }
        if let Some(v) = lookup(ENV_FINGERPRINT) {
            let t = v.trim();
            c.fingerprint = match t {
                "location" => FingerprintMode::TypeAndLocation,
                "message" => FingerprintMode::TypeAndMessage,
                _ => match t.strip_prefix("frames:").map(str::parse::<usize>) {
                    Some(Ok(n)) if n > 0 => FingerprintMode::TypeAndFrames(n),
                    _ => {
                        return Err(bad(
                            ENV_FINGERPRINT,
                            &v,
                            "expected location, message or frames:N with N > 0",
                        ));
                    }
                },
            };
        }
        Ok(c)
    }

    /// Sets the release name (default: `service@version` when the resource has a version).
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// The release put on reports: the configured one, else `service@version`.
    pub fn release_name(&self) -> Option<String> {
        self.release.clone().or_else(|| {
            self.resource
                .service_version()
                .map(|v| format!("{}@{v}", self.resource.service_name()))
        })
    }

    /// The resource stamped on reports.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Replaces the resource stamped on reports (the facade passes the one
    /// every pillar shares).
    pub fn with_resource(mut self, resource: Resource) -> Self {
        self.resource = Arc::new(resource);
        self
    }

    /// Replaces the redactor used to scrub reports (default: `obs_core::Redactor::new()`).
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = Arc::new(redactor);
        self
    }

    /// When to capture backtraces.
    pub fn backtrace(mut self, mode: BacktraceMode) -> Self {
        self.backtrace = mode;
        self
    }

    /// How to group reports.
    pub fn fingerprint(mut self, mode: FingerprintMode) -> Self {
        self.fingerprint = mode;
        self
    }

    /// The deduplication window: identical errors within it become one
    /// report with a count, delivered when the window closes (or on
    /// flush). `Duration::ZERO` delivers every capture at once.
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// How many distinct groups may be held in one window; captures of new
    /// groups beyond it are dropped and counted (`ErrorStats::rate_limited`).
    pub fn max_groups(mut self, n: usize) -> Result<Self, Error> {
        if n == 0 {
            return Err(Error::Config {
                setting: "max_groups",
                value: n.to_string(),
                reason: "must be at least 1",
            });
        }
        self.max_groups = n;
        Ok(self)
    }

    /// Capacity of the delivery queue in front of the sinks; reports that
    /// find it full are dropped and counted (`ErrorStats::dropped`).
    pub fn queue_capacity(mut self, n: usize) -> Result<Self, Error> {
        if n == 0 {
            return Err(Error::Config {
                setting: "queue_capacity",
                value: n.to_string(),
                reason: "must be at least 1",
            });
        }
        self.queue_capacity = n;
        Ok(self)
    }

    /// Breadcrumbs kept per request/task (the last `n` events); 0 turns
    /// breadcrumbs off. At most 1000.
    pub fn max_breadcrumbs(mut self, n: usize) -> Result<Self, Error> {
        if n > MAX_BREADCRUMBS_LIMIT {
            return Err(Error::Config {
                setting: "max_breadcrumbs",
                value: n.to_string(),
                reason: "at most 1000 breadcrumbs are kept per request",
            });
        }
        self.max_breadcrumbs = n;
        Ok(self)
    }

    /// The most verbose level recorded as a breadcrumb (default `INFO`, as
    /// Sentry's own `tracing` integration: DEBUG and TRACE events of every
    /// library would otherwise all be enabled and recorded).
    pub fn breadcrumb_level_in_force(&self) -> Level {
        self.breadcrumb_level
    }

    /// Sets the most verbose level recorded as a breadcrumb.
    pub fn breadcrumb_level(mut self, level: Level) -> Self {
        self.breadcrumb_level = level;
        self
    }

    /// How many breadcrumb buffers (one per live root span that has logged
    /// a breadcrumb) may exist at once (default 4096); beyond it a request's
    /// breadcrumbs are not kept (counted as
    /// `ErrorStats::breadcrumb_buffers_refused`). Bounds memory overall:
    /// at most `buffers × max_breadcrumbs × 1.5 KiB` (message and fields are
    /// cut), typically a tenth of that.
    pub fn max_breadcrumb_buffers(mut self, n: usize) -> Self {
        self.max_breadcrumb_buffers = n;
        self
    }

    /// Whether the layer reports `tracing` events at `ERROR` level (default on).
    pub fn capture_error_events(mut self, on: bool) -> Self {
        self.capture_error_events = on;
        self
    }

    /// Whether each capture also emits the `exception` event into the
    /// current span (the exception-event contract, default on).
    pub fn span_events(mut self, on: bool) -> Self {
        self.span_events = on;
        self
    }

    /// Flush held and queued reports for up to `timeout` after a panic that
    /// may end the process is captured (`None` turns it off; default 2 s).
    /// Panics known to be caught (inside `obs_core::panic::caught`, as under
    /// obs's catch-panic layer) are delivered without making the panicking
    /// thread wait.
    pub fn flush_on_panic(mut self, timeout: Option<Duration>) -> Self {
        self.flush_on_panic = timeout;
        self
    }

    /// Adds a function-name prefix that marks frames as not in-app.
    pub fn not_in_app(mut self, prefix: impl Into<String>) -> Self {
        self.in_app_exclude.push(prefix.into());
        self
    }

    /// Sets the counter hook called on every capture with (type, mechanism).
    pub fn counter_hook(mut self, hook: impl Fn(&str, &str) + Send + Sync + 'static) -> Self {
        self.counter_hook = Some(Arc::new(hook));
        self
    }
}

const MAX_BREADCRUMBS_LIMIT: usize = 1000;

/// Parses `60`, `60s`, `500ms`, `2m`, `1h` (plain numbers are seconds).
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Durations built from parts, some of them wrong (junk around or
        /// between number and unit, no digits, an unknown unit, overflow):
        /// the parser accepts exactly the well-formed ones, with their value.
        #[test]
        fn duration_parser_accepts_exactly_number_and_unit(
            lead in prop_oneof![Just(""), Just(" "), Just("\t"), Just("\u{2003}"), Just("x"), Just("+"), Just("-")],
            num in prop_oneof![
                4 => (0u64..1_000_000).prop_map(|n| n.to_string()),
                1 => any::<u64>().prop_map(|n| n.to_string()),
                1 => Just(String::new()),
                1 => Just("18446744073709551616".to_owned()),
                1 => Just("1.5".to_owned()),
            ],
            mid in prop_oneof![4 => Just(""), 1 => Just(" "), 1 => Just("\t"), 1 => Just("x")],
            unit in prop_oneof![Just("ms"), Just("s"), Just("m"), Just("h"), Just(""), Just("d"), Just("MS"), Just("sec"), Just("\u{b5}s")],
            trail in prop_oneof![Just(""), Just(" "), Just("\n"), Just("\u{2003}"), Just("x")],
        ) {
            let s = format!("{lead}{num}{mid}{unit}{trail}");
            let ws = |p: &str| p.chars().all(char::is_whitespace);
            let n = num.parse::<u64>().ok().filter(|_| num.bytes().all(|b| b.is_ascii_digit()));
            let expected = match (ws(lead) && ws(mid) && ws(trail), n, unit) {
                (true, Some(n), "ms") => Some(Duration::from_millis(n)),
                (true, Some(n), "s" | "") => Some(Duration::from_secs(n)),
                (true, Some(n), "m") => n.checked_mul(60).map(Duration::from_secs),
                (true, Some(n), "h") => n.checked_mul(3600).map(Duration::from_secs),
                _ => None,
            };
            prop_assert_eq!(parse_duration(&s), expected, "{:?}", s);
        }

        /// Arbitrary text: whatever is accepted starts with a digit and
        /// means the same when written back in milliseconds.
        #[test]
        fn duration_parser_on_arbitrary_text(s in "\\PC{0,30}") {
            match parse_duration(&s) {
                Some(d) => {
                    prop_assert!(s.trim_start().starts_with(|c: char| c.is_ascii_digit()), "{:?}", s);
                    prop_assert_eq!(parse_duration(&format!("{}ms", d.as_millis())), Some(d));
                }
                None => prop_assert!(
                    !s.trim().bytes().all(|b| b.is_ascii_digit()) || s.trim().is_empty() || s.trim().len() > 19,
                    "bare digits rejected: {:?}", s
                ),
            }
        }

        #[test]
        fn durations_round_trip(n in 0u64..1_000_000, unit in prop_oneof![Just("ms"), Just("s"), Just("m"), Just("h"), Just("")]) {
            let d = parse_duration(&format!("{n}{unit}")).unwrap();
            let expected = match unit {
                "ms" => Duration::from_millis(n),
                "m" => Duration::from_secs(n * 60),
                "h" => Duration::from_secs(n * 3600),
                _ => Duration::from_secs(n),
            };
            prop_assert_eq!(d, expected);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5d"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn env_values_are_checked() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(a, _)| *a == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let c = Config::from_lookup(lookup(&[
            (ENV_BACKTRACE, "on"),
            (ENV_DEDUP_WINDOW, "5s"),
            (ENV_MAX_BREADCRUMBS, "10"),
            (ENV_BREADCRUMB_LEVEL, "Debug"),
            (ENV_RELEASE, "v9"),
            (ENV_FINGERPRINT, "frames:3"),
            ("OTEL_SERVICE_NAME", "svc"),
        ]))
        .unwrap();
        assert_eq!(c.backtrace, BacktraceMode::Always);
        assert_eq!(c.dedup_window, Duration::from_secs(5));
        assert_eq!(c.max_breadcrumbs, 10);
        assert_eq!(c.breadcrumb_level, Level::DEBUG);
        assert_eq!(Config::default().breadcrumb_level, Level::INFO);
        assert_eq!(c.release_name().as_deref(), Some("v9"));
        assert!(matches!(c.fingerprint, FingerprintMode::TypeAndFrames(3)));
        assert_eq!(c.resource().service_name(), "svc");

        for (var, val) in [
            (ENV_BACKTRACE, "maybe"),
            (ENV_MAX_BREADCRUMBS, "-1"),
            (ENV_MAX_BREADCRUMBS, "5000"),
            (ENV_BREADCRUMB_LEVEL, "verbose"),
            (ENV_FINGERPRINT, "frames:0"),
            (ENV_RELEASE, " "),
        ] {
            let err = Config::from_lookup(|k| (k == var).then(|| val.to_owned())).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(var), "{msg}");
        }
    }
}
