//! Configuration: a builder plus `from_env` / `from_lookup`.

use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use obs_core::{Redactor, Resource};
use tracing_core::Level;

use crate::Error;
use crate::filter::parse_directive;
use crate::rolling::{self, RollingFile, Rotation};

/// `OBS_LOG`: the filter directive, e.g. `info,my_crate=debug,hyper=warn`.
pub const ENV_FILTER: &str = "OBS_LOG";
/// `RUST_LOG`: read when `OBS_LOG` is unset, as most Rust programs do.
pub const ENV_RUST_LOG: &str = "RUST_LOG";
/// `OBS_LOG_FORMAT`: `json` (default), `pretty` or `compact`.
pub const ENV_FORMAT: &str = "OBS_LOG_FORMAT";
/// `OBS_LOG_SCHEMA`: `native` (default), `otel`, `ecs`, `gcp` or `datadog`.
pub const ENV_SCHEMA: &str = "OBS_LOG_SCHEMA";
/// `OBS_LOG_RATE_LIMIT`: at most this many lines per second per callsite (`0` or unset: off).
pub const ENV_RATE_LIMIT: &str = "OBS_LOG_RATE_LIMIT";
/// `OBS_LOG_NON_BLOCKING`: `true` (the default) writes through the bounded
/// queue and a writer thread ([`NonBlocking::new`]); `lossless` through the
/// same queue but every level waits for room ([`NonBlocking::lossless`]);
/// `false` writes on the logging thread itself ([`Config::blocking`]).
pub const ENV_NON_BLOCKING: &str = "OBS_LOG_NON_BLOCKING";
/// `OBS_LOG_QUEUE_LINES`: capacity of the non-blocking writer's queue, in
/// lines (default 16,384).
pub const ENV_QUEUE_LINES: &str = "OBS_LOG_QUEUE_LINES";
/// `OBS_LOG_MAX_WAIT_MS`: how long a WARN or ERROR line waits for room in a
/// full queue before it is dropped (default 1).
pub const ENV_MAX_WAIT_MS: &str = "OBS_LOG_MAX_WAIT_MS";
/// `NO_COLOR`: any non-empty value turns colours off in the human formats.
pub const ENV_NO_COLOR: &str = "NO_COLOR";
/// `GOOGLE_CLOUD_PROJECT`: the project for `logging.googleapis.com/trace` in the `gcp` schema.
pub const ENV_GCP_PROJECT: &str = "GOOGLE_CLOUD_PROJECT";
/// `OBS_LOG_FILE`: write to this rolling file (`/var/log/app.log`) instead
/// of stdout ([`RollingFile::from_path`]; its defaults: rotate at 100 MiB,
/// keep 10 rotated files). The other `OBS_LOG_FILE_*` variables need it.
pub const ENV_FILE: &str = "OBS_LOG_FILE";
/// `OBS_LOG_FILE_MAX_BYTES`: rotate at this size (`10MiB`, `100MB`, bytes; `0`: never by size).
pub const ENV_FILE_MAX_BYTES: &str = "OBS_LOG_FILE_MAX_BYTES";
/// `OBS_LOG_FILE_ROTATION`: `never`, `hourly` or `daily` (UTC), case-insensitive.
pub const ENV_FILE_ROTATION: &str = "OBS_LOG_FILE_ROTATION";
/// `OBS_LOG_FILE_KEEP`: rotated files kept (`0`: no limit by count).
pub const ENV_FILE_KEEP: &str = "OBS_LOG_FILE_KEEP";
/// `OBS_LOG_FILE_MAX_AGE`: delete rotated files older than this (`7d`, `24h`, `1h30m`; `0`: no limit).
pub const ENV_FILE_MAX_AGE: &str = "OBS_LOG_FILE_MAX_AGE";
/// `OBS_LOG_FILE_MAX_TOTAL_BYTES`: cap on the active plus rotated files (`1GiB`; `0`: no cap).
pub const ENV_FILE_MAX_TOTAL_BYTES: &str = "OBS_LOG_FILE_MAX_TOTAL_BYTES";
/// `OBS_LOG_FILE_COMPRESS`: gzip rotated files (`true`/`false`).
pub const ENV_FILE_COMPRESS: &str = "OBS_LOG_FILE_COMPRESS";

/// The `OBS_LOG_FILE_*` settings besides the path.
const FILE_SETTINGS: [&str; 6] = [
    ENV_FILE_MAX_BYTES,
    ENV_FILE_ROTATION,
    ENV_FILE_KEEP,
    ENV_FILE_MAX_AGE,
    ENV_FILE_MAX_TOTAL_BYTES,
    ENV_FILE_COMPRESS,
];

/// The line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// One JSON object per line (production).
    #[default]
    Json,
    /// Multi-line human format for development, coloured on a terminal.
    Pretty,
    /// One human line per event, coloured on a terminal.
    Compact,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            "compact" => Ok(Self::Compact),
            _ => Err(Error::Format(s.to_owned())),
        }
    }
}

/// Field-name presets for JSON lines; see the crate docs for the exact keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Schema {
    /// obs's own names (`timestamp`, `level`, `trace_id`, …).
    #[default]
    Native,
    /// The OpenTelemetry log data model (`Timestamp`, `SeverityText`, `Body`, `Attributes`, …).
    Otel,
    /// Elastic Common Schema (`@timestamp`, `log.level`, `trace.id`, …).
    Ecs,
    /// Google Cloud Logging structured logs (`severity`, `logging.googleapis.com/trace`, …).
    Gcp,
    /// Datadog (`status`, `dd.trace_id` as decimal, …).
    Datadog,
}

impl FromStr for Schema {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "native" | "obs" => Ok(Self::Native),
            "otel" | "opentelemetry" => Ok(Self::Otel),
            "ecs" | "elastic" => Ok(Self::Ecs),
            "gcp" | "google" | "stackdriver" => Ok(Self::Gcp),
            "datadog" | "dd" => Ok(Self::Datadog),
            _ => Err(Error::Schema(s.to_owned())),
        }
    }
}

/// Fractional-second digits of the timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Precision {
    /// Whole seconds.
    Seconds,
    /// Three digits.
    Millis,
    /// Six digits (the default).
    #[default]
    Micros,
    /// Nine digits.
    Nanos,
}

/// What the non-blocking writer does with a line when its queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Wait for room: nothing is lost, the logging thread slows down (as
    /// long as the sink is stuck, so does the thread).
    Block,
    /// Wait for room at most this long, then drop the new line and count it:
    /// the logging thread never waits on the sink longer than the bound.
    Wait(Duration),
    /// Drop the new line and count it.
    DropNewest,
    /// Evict the oldest queued line (whatever its level), count it, and queue the new one.
    DropOldest,
}

/// Settings of the non-blocking writer (bounded queue + one writer thread).
///
/// ```
/// use obs_log::{NonBlocking, OverflowPolicy};
/// use tracing_core::Level;
/// let nb = NonBlocking::new()
///     .capacity(4096)
///     .policy(Level::INFO, OverflowPolicy::Block)
///     .low_priority_share(0.5);
/// assert_eq!(nb.policy_for(Level::INFO), OverflowPolicy::Block);
/// assert_eq!(nb.policy_for(Level::DEBUG), OverflowPolicy::DropNewest);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NonBlocking {
    pub(crate) capacity: usize,
    pub(crate) policies: [OverflowPolicy; 5],
    pub(crate) low_priority_share: f64,
}

impl Default for NonBlocking {
    fn default() -> Self {
        Self::new()
    }
}

/// How long a WARN or ERROR line waits for room by default.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(1);

impl NonBlocking {
    /// The default: 16,384 lines; when the queue is full (the sink is stuck),
    /// WARN and ERROR wait up to [`DEFAULT_MAX_WAIT`] (1 ms) for room and are
    /// then dropped, INFO drops the newest line at once, DEBUG and TRACE drop
    /// the newest line once the queue is three quarters full (so they are
    /// dropped first). No logging thread ever waits on the sink longer than
    /// the bound; every drop is counted by level.
    pub fn new() -> Self {
        use OverflowPolicy::*;
        let wait = Wait(DEFAULT_MAX_WAIT);
        Self {
            capacity: 16_384,
            policies: [wait, wait, DropNewest, DropNewest, DropNewest],
            low_priority_share: 0.75,
        }
    }

    /// The longest WARN and ERROR lines wait for room before they are
    /// dropped (sets their policy to [`OverflowPolicy::Wait`]).
    pub fn max_wait(self, bound: Duration) -> Self {
        self.policy(Level::ERROR, OverflowPolicy::Wait(bound))
            .policy(Level::WARN, OverflowPolicy::Wait(bound))
    }

    /// Every level blocks: no line is ever dropped while the writer thread runs.
    pub fn lossless() -> Self {
        Self {
            policies: [OverflowPolicy::Block; 5],
            low_priority_share: 1.0,
            ..Self::new()
        }
    }

    /// Queue capacity in lines (at least 1).
    pub fn capacity(mut self, lines: usize) -> Self {
        self.capacity = lines.max(1);
        self
    }

    /// The overflow policy for one level.
    pub fn policy(mut self, level: Level, policy: OverflowPolicy) -> Self {
        self.policies[level_index(level)] = policy;
        self
    }

    /// The overflow policy of `level`.
    pub fn policy_for(&self, level: Level) -> OverflowPolicy {
        self.policies[level_index(level)]
    }

    /// Share of the queue (0.0–1.0) that DEBUG and TRACE lines may fill; the
    /// rest is kept for INFO and above. A DEBUG/TRACE line beyond it follows
    /// its policy as if the queue were full.
    pub fn low_priority_share(mut self, share: f64) -> Self {
        self.low_priority_share = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            1.0
        };
        self
    }
}

/// ERROR 0, WARN 1, INFO 2, DEBUG 3, TRACE 4.
#[inline]
pub(crate) fn level_index(level: Level) -> usize {
    match level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        _ => 4,
    }
}

pub(crate) const LEVELS: [Level; 5] = [
    Level::ERROR,
    Level::WARN,
    Level::INFO,
    Level::DEBUG,
    Level::TRACE,
];

/// Where lines go.
pub(crate) enum Sink {
    Stdout,
    Stderr,
    Writer(Box<dyn io::Write + Send>),
    Rolling(RollingFile),
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sink::Stdout => "Stdout",
            Sink::Stderr => "Stderr",
            Sink::Writer(_) => "Writer(..)",
            Sink::Rolling(_) => "Rolling(..)",
        })
    }
}

/// Configuration of the log layer; build the layer with [`crate::layer`].
///
/// Defaults: directive `info`, JSON, native schema, microsecond timestamps,
/// event fields at top level, span path on, file/line off, default
/// redaction rules, no rate limit, blocking buffered stdout flushed every
/// second, no resource fields (set [`resource`](Self::resource), or use
/// [`from_env`](Self::from_env) which reads the OpenTelemetry resource).
///
/// ```
/// use obs_log::{Config, Format, Schema};
/// let config = Config::from_lookup(|k| match k {
///     "OBS_LOG" => Some("warn,my_app=debug".into()),
///     "OBS_LOG_SCHEMA" => Some("ecs".into()),
///     "OTEL_SERVICE_NAME" => Some("checkout".into()),
///     _ => None,
/// })?;
/// assert_eq!(config.directive(), "warn,my_app=debug");
/// assert_eq!(config.schema_kind(), Schema::Ecs);
/// assert_eq!(config.format_kind(), Format::Json);
///
/// let bad = Config::from_lookup(|k| (k == "OBS_LOG_FORMAT").then(|| "yaml".to_string()));
/// assert_eq!(
///     bad.unwrap_err().to_string(),
///     "invalid value \"yaml\" for environment variable OBS_LOG_FORMAT: unknown log format \"yaml\": expected one of json, pretty, compact"
/// );
/// # Ok::<(), obs_log::Error>(())
/// ```
#[derive(Debug)]
pub struct Config {
    pub(crate) directive: String,
    pub(crate) format: Format,
    pub(crate) schema: Schema,
    pub(crate) precision: Precision,
    pub(crate) fields_key: Option<String>,
    pub(crate) file_line: bool,
    pub(crate) span_path: bool,
    pub(crate) resource: Option<Resource>,
    pub(crate) redactor: Option<Redactor>,
    pub(crate) rate_limit: Option<u32>,
    pub(crate) sink: Sink,
    pub(crate) non_blocking: Option<NonBlocking>,
    pub(crate) ansi: Option<bool>,
    pub(crate) gcp_project: Option<String>,
    pub(crate) flush_interval: Duration,
    pub(crate) per_layer_filter: bool,
    #[cfg(feature = "otlp")]
    pub(crate) otlp: Option<crate::otlp::OtlpConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            directive: "info".to_owned(),
            format: Format::Json,
            schema: Schema::Native,
            precision: Precision::Micros,
            fields_key: None,
            file_line: false,
            span_path: true,
            resource: None,
            redactor: Some(Redactor::new()),
            rate_limit: None,
            sink: Sink::Stdout,
            non_blocking: Some(NonBlocking::new()),
            ansi: None,
            gcp_project: None,
            flush_interval: Duration::from_secs(1),
            per_layer_filter: false,
            #[cfg(feature = "otlp")]
            otlp: None,
        }
    }
}

impl Config {
    /// The defaults (see the type docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `OBS_LOG` (else `RUST_LOG`), `OBS_LOG_FORMAT`, `OBS_LOG_SCHEMA`,
    /// `OBS_LOG_RATE_LIMIT`, `OBS_LOG_NON_BLOCKING`, `OBS_LOG_QUEUE_LINES`,
    /// `OBS_LOG_MAX_WAIT_MS`, `OBS_LOG_FILE` and its `OBS_LOG_FILE_*`
    /// settings, `GOOGLE_CLOUD_PROJECT`, `NO_COLOR`
    /// and the OpenTelemetry resource (`OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`) from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) with a custom lookup (tests, config files).
    /// Errors name the variable and its value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let env_err = |var: &'static str, value: &str, e: Error| Error::Env {
            var,
            value: value.to_owned(),
            reason: e.to_string(),
        };
        let mut c = Self::default();
        let (var, directive) = match lookup(ENV_FILTER) {
            Some(v) => (ENV_FILTER, Some(v)),
            None => (ENV_RUST_LOG, lookup(ENV_RUST_LOG)),
        };
        if let Some(d) = directive {
            parse_directive(&d).map_err(|e| env_err(var, &d, e))?;
            c.directive = d.trim().to_owned();
        }
        if let Some(v) = lookup(ENV_FORMAT) {
            c.format = v.parse().map_err(|e| env_err(ENV_FORMAT, &v, e))?;
        }
        if let Some(v) = lookup(ENV_SCHEMA) {
            c.schema = v.parse().map_err(|e| env_err(ENV_SCHEMA, &v, e))?;
        }
        if let Some(v) = lookup(ENV_RATE_LIMIT) {
            let n: u32 = v.trim().parse().map_err(|_| Error::Env {
                var: ENV_RATE_LIMIT,
                value: v.clone(),
                reason: "expected a whole number of lines per second (0 = off)".into(),
            })?;
            c.rate_limit = (n > 0).then_some(n);
        }
        if let Some(v) = lookup(ENV_NON_BLOCKING) {
            c.non_blocking = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" | "" => Some(NonBlocking::new()),
                "lossless" => Some(NonBlocking::lossless()),
                "0" | "false" | "no" | "off" => None,
                _ => {
                    return Err(Error::Env {
                        var: ENV_NON_BLOCKING,
                        value: v.clone(),
                        reason: "expected true, lossless or false".into(),
                    });
                }
            };
        }
        if let Some(v) = lookup(ENV_QUEUE_LINES) {
            let n: usize = v
                .trim()
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| Error::Env {
                    var: ENV_QUEUE_LINES,
                    value: v.clone(),
                    reason: "expected a whole number of lines, at least 1".into(),
                })?;
            if let Some(nb) = c.non_blocking.take() {
                c.non_blocking = Some(nb.capacity(n));
            }
        }
        if let Some(v) = lookup(ENV_MAX_WAIT_MS) {
            let ms: u64 = v.trim().parse().map_err(|_| Error::Env {
                var: ENV_MAX_WAIT_MS,
                value: v.clone(),
                reason: "expected a whole number of milliseconds".into(),
            })?;
            if let Some(nb) = c.non_blocking.take() {
                c.non_blocking = Some(nb.max_wait(Duration::from_millis(ms)));
            }
        }
        if let Some(v) = lookup(ENV_GCP_PROJECT) {
            let v = v.trim();
            if !v.is_empty() {
                c.gcp_project = Some(v.to_owned());
            }
        }
        if let Some(file) = rolling_from_lookup(&lookup)? {
            c.sink = Sink::Rolling(file);
        }
        // https://no-color.org: any non-empty value turns colours off.
        if lookup(ENV_NO_COLOR).is_some_and(|v| !v.is_empty()) {
            c.ansi = Some(false);
        }
        c.resource = Some(Resource::from_lookup(&lookup)?);
        #[cfg(feature = "otlp")]
        {
            c.otlp = crate::otlp::OtlpConfig::from_lookup(&lookup)?;
        }
        Ok(c)
    }

    /// The filter directive (`tracing-subscriber` `Targets` syntax:
    /// `level` or `target=level` separated by commas). Checked when the
    /// layer is built.
    pub fn filter(mut self, directive: impl Into<String>) -> Self {
        self.directive = directive.into();
        self
    }

    /// Exports every record over OTLP as well (`None`: no export). See
    /// [`otlp`](crate::otlp) for what a record carries; [`from_env`](Self::from_env)
    /// reads it from `OTEL_LOGS_EXPORTER` and `OTEL_EXPORTER_OTLP_[LOGS_]*`.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    pub fn otlp(mut self, otlp: impl Into<Option<crate::otlp::OtlpConfig>>) -> Self {
        self.otlp = otlp.into();
        self
    }

    /// The line format.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The JSON schema preset.
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = schema;
        self
    }

    /// Timestamp precision.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Put event and span fields under this key instead of at top level
    /// (the `otel` schema always nests them under `Attributes`).
    pub fn fields_key(mut self, key: impl Into<String>) -> Self {
        self.fields_key = Some(key.into());
        self
    }

    /// Write the source file and line of each event.
    pub fn file_line(mut self, on: bool) -> Self {
        self.file_line = on;
        self
    }

    /// Write the names of the enclosing spans, outermost first.
    pub fn span_path(mut self, on: bool) -> Self {
        self.span_path = on;
        self
    }

    /// Resource fields written on every line (service name, version, environment).
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Redaction rules (default: [`Redactor::new`]); `None` turns redaction off.
    ///
    /// Values that cannot hold a built-in secret (no `=`, `:`, `@`, `-----`,
    /// `Bearer`/`Basic` word or 20-character token) skip the scan
    /// ([`Redactor::may_change`]); a redactor with user patterns scans every
    /// value, since its patterns may match anything.
    pub fn redactor(mut self, redactor: Option<Redactor>) -> Self {
        self.redactor = redactor;
        self
    }

    /// At most `lines_per_second` lines per second per callsite; the rest are
    /// counted and summarised. `0` turns the limit off.
    pub fn rate_limit(mut self, lines_per_second: u32) -> Self {
        self.rate_limit = (lines_per_second > 0).then_some(lines_per_second);
        self
    }

    /// Write to standard output (the default).
    pub fn stdout(mut self) -> Self {
        self.sink = Sink::Stdout;
        self
    }

    /// Write to standard error.
    pub fn stderr(mut self) -> Self {
        self.sink = Sink::Stderr;
        self
    }

    /// Write to any writer (a file, a socket, a test buffer).
    pub fn writer(mut self, writer: impl io::Write + Send + 'static) -> Self {
        self.sink = Sink::Writer(Box::new(writer));
        self
    }

    /// Write to a rolling file: rotation by size and time, retention by
    /// count, age and total bytes, optional gzip, reopening after external
    /// rotation, and a full or removed disk counted, reported once and
    /// recovered from (see [`RollingFile`]). The file work runs on the
    /// writer thread with the non-blocking writer (the default).
    pub fn rolling_file(mut self, file: RollingFile) -> Self {
        self.sink = Sink::Rolling(file);
        self
    }

    /// Append to a file, creating it when missing; it grows forever
    /// (prefer [`rolling_file`](Self::rolling_file)).
    pub fn file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(self.writer(f))
    }

    /// Write through a bounded queue and a writer thread with these settings
    /// (see [`NonBlocking`]; [`NonBlocking::new`] is the default,
    /// [`NonBlocking::lossless`] never drops).
    pub fn non_blocking(mut self, settings: NonBlocking) -> Self {
        self.non_blocking = Some(settings);
        self
    }

    /// Write on the logging thread itself, through a buffered writer behind a
    /// mutex: lossless and in order, but a sink that stops reading (a full
    /// pipe, a stuck log forwarder) stalls every thread that logs. Prefer
    /// [`NonBlocking::lossless`], which keeps the writes off the logging
    /// threads, unless lines must be written before the call returns.
    pub fn blocking(mut self) -> Self {
        self.non_blocking = None;
        self
    }

    /// Force ANSI colours on or off in the human formats (default: on when
    /// the sink is a terminal).
    pub fn ansi(mut self, on: bool) -> Self {
        self.ansi = Some(on);
        self
    }

    /// The Google Cloud project used to build `projects/P/traces/T` in the `gcp` schema.
    pub fn gcp_project(mut self, project: impl Into<String>) -> Self {
        self.gcp_project = Some(project.into());
        self
    }

    /// How often buffered output is flushed when the program goes quiet.
    pub fn flush_interval(mut self, every: Duration) -> Self {
        self.flush_interval = every.max(Duration::from_millis(1));
        self
    }

    /// By default the layer applies its directive itself, which acts like a
    /// global `EnvFilter`: what it disables, no other layer of the
    /// subscriber sees either. With `true` the layer logs whatever reaches
    /// it; attach the directive as a per-layer filter so other layers (a
    /// tracer, metrics) keep seeing everything:
    ///
    /// ```
    /// use obs_log::Config;
    /// use tracing_subscriber::{Layer, layer::SubscriberExt};
    /// let (layer, handles) = obs_log::layer(Config::new().per_layer_filter(true).writer(std::io::sink()))?;
    /// let subscriber = tracing_subscriber::registry().with(layer.with_filter(handles.reload.filter()));
    /// # drop(subscriber);
    /// # Ok::<(), obs_log::Error>(())
    /// ```
    pub fn per_layer_filter(mut self, on: bool) -> Self {
        self.per_layer_filter = on;
        self
    }

    /// The configured filter directive.
    pub fn directive(&self) -> &str {
        &self.directive
    }

    /// The configured schema.
    pub fn schema_kind(&self) -> Schema {
        self.schema
    }

    /// The configured format.
    pub fn format_kind(&self) -> Format {
        self.format
    }
}

/// `OBS_LOG_FILE` and its settings; `None` when `OBS_LOG_FILE` is unset.
fn rolling_from_lookup(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<RollingFile>, Error> {
    let bad = |var: &'static str, value: &str, reason: String| Error::Env {
        var,
        value: value.to_owned(),
        reason,
    };
    let path = match lookup(ENV_FILE) {
        Some(p) if !p.trim().is_empty() => p,
        Some(p) => {
            return Err(bad(ENV_FILE, &p, "expected a file path".into()));
        }
        None => {
            if let Some((var, v)) = FILE_SETTINGS
                .iter()
                .find_map(|&var| lookup(var).map(|v| (var, v)))
            {
                return Err(bad(var, &v, format!("{ENV_FILE} is not set")));
            }
            return Ok(None);
        }
    };
    let mut f =
        RollingFile::from_path(path.trim()).map_err(|e| bad(ENV_FILE, &path, e.to_string()))?;
    f.validate()
        .map_err(|e| bad(ENV_FILE, &path, e.to_string()))?;
    if let Some(v) = lookup(ENV_FILE_MAX_BYTES) {
        let n = rolling::parse_size(&v).map_err(|r| bad(ENV_FILE_MAX_BYTES, &v, r))?;
        f = f.max_bytes(n);
    }
    if let Some(v) = lookup(ENV_FILE_ROTATION) {
        let r: Rotation = v
            .parse()
            .map_err(|e: Error| bad(ENV_FILE_ROTATION, &v, e.to_string()))?;
        f = f.rotation(r);
    }
    if let Some(v) = lookup(ENV_FILE_KEEP) {
        let n: usize = v.trim().parse().map_err(|_| {
            bad(
                ENV_FILE_KEEP,
                &v,
                "expected a whole number of files (0 = no limit)".into(),
            )
        })?;
        f = f.keep_files(n);
    }
    if let Some(v) = lookup(ENV_FILE_MAX_AGE) {
        let d = rolling::parse_duration(&v).map_err(|r| bad(ENV_FILE_MAX_AGE, &v, r))?;
        f = f.max_age(d);
    }
    if let Some(v) = lookup(ENV_FILE_MAX_TOTAL_BYTES) {
        let n = rolling::parse_size(&v).map_err(|r| bad(ENV_FILE_MAX_TOTAL_BYTES, &v, r))?;
        f = f.max_total_bytes(n);
    }
    if let Some(v) = lookup(ENV_FILE_COMPRESS) {
        let on = rolling::parse_bool(&v).map_err(|r| bad(ENV_FILE_COMPRESS, &v, r))?;
        f = f.compress(on);
    }
    Ok(Some(f))
}
