//! OTLP log export (feature `otlp`; gRPC with `otlp-grpc`, TLS with `tls`,
//! gzip with `gzip`).
//!
//! Every line the layer writes is also handed, as an OpenTelemetry
//! `LogRecord`, to a bounded queue; an exporter thread of its own batches
//! the records and sends them to the collector through obs-core's OTLP
//! transport, the one obs-trace's span exporter uses.
//!
//! - **What a record carries:** severity number and text, the message as
//!   the body, the event's fields as attributes (in the JSON format also
//!   the enclosing spans' fields, as on the line), the correlation id
//!   (`correlation_id`), trace id, span id and trace flags, the resource,
//!   the target as the instrumentation scope, and the event's time as both
//!   time and observed time. Secrets are redacted exactly as on the line:
//!   the record is built from the same redacted fields.
//! - **Bounded, like spans:** the queue holds
//!   [`BatchConfig::max_queue_size`] records; a record that finds it full
//!   is dropped and counted ([`OtlpStats::dropped_queue_full`]), never
//!   waited for. The logging thread does one `try_send`. A failed export
//!   drops its batch and counts it ([`OtlpStats::dropped_export_failed`],
//!   [`OtlpStats::last_export_error`]); a TLS failure names the peer. The
//!   first failure is written once as a WARN line (target `obs_log`, like
//!   obs-log's other own lines: uncounted, straight to the line writer,
//!   never through the exporter), and the
//!   recovery as an INFO line with the records lost meanwhile.
//! - **Shutdown is bounded and reported:** [`LogGuard::shutdown`](crate::LogGuard::shutdown)
//!   exports what is queued within its timeout and says what was lost
//!   ([`ShutdownReport::otlp`](crate::ShutdownReport::otlp)).
//!
//! Configured from `OTEL_LOGS_EXPORTER` (`otlp`, `none` or `console`), the
//! `OTEL_EXPORTER_OTLP_[LOGS_]*` variables and `OTEL_BLRP_*`
//! ([`OtlpConfig::from_lookup`]), or in code ([`Config::otlp`](crate::Config::otlp)).

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use obs_core::otlp::Signal;
use obs_core::otlp::wire::{
    field_len, put_bytes_field, put_fixed32_field, put_fixed64_field, put_len_field, put_str_kv,
    put_string_field, put_uint_field, str_kv_len,
};
pub use obs_core::otlp::{Compression, ExporterConfig, Protocol, TlsConfig, TlsRoots};
use obs_core::{IdRecord, Resource};
use tracing_core::Level;

use crate::Error;

/// `OTEL_LOGS_EXPORTER`.
pub const ENV_LOGS_EXPORTER: &str = "OTEL_LOGS_EXPORTER";
/// `OTEL_BLRP_SCHEDULE_DELAY` (ms).
pub const ENV_BLRP_SCHEDULE_DELAY: &str = "OTEL_BLRP_SCHEDULE_DELAY";
/// `OTEL_BLRP_EXPORT_TIMEOUT` (ms).
pub const ENV_BLRP_EXPORT_TIMEOUT: &str = "OTEL_BLRP_EXPORT_TIMEOUT";
/// `OTEL_BLRP_MAX_QUEUE_SIZE`.
pub const ENV_BLRP_MAX_QUEUE_SIZE: &str = "OTEL_BLRP_MAX_QUEUE_SIZE";
/// `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`.
pub const ENV_BLRP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE";

/// The batch log record processor's settings (`OTEL_BLRP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Records the queue holds; more are dropped and counted.
    pub max_queue_size: usize,
    /// How long the exporter waits to fill a batch.
    pub schedule_delay: Duration,
    /// Most records per export request.
    pub max_export_batch_size: usize,
    /// Timeout of one export (the smaller of this and the exporter's
    /// timeout applies).
    pub export_timeout: Duration,
}

impl Default for BatchConfig {
    /// The OpenTelemetry defaults: 2048 records, 1 s, 512, 30 s.
    fn default() -> Self {
        Self {
            max_queue_size: 2048,
            schedule_delay: Duration::from_millis(1000),
            max_export_batch_size: 512,
            export_timeout: Duration::from_millis(30_000),
        }
    }
}

/// Where and how log records are exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The collector, protocol, headers, timeout, compression and TLS.
    pub exporter: ExporterConfig,
    /// The queue and batching.
    pub batch: BatchConfig,
}

impl OtlpConfig {
    /// Export to `exporter` with the default batching.
    pub fn new(exporter: ExporterConfig) -> Self {
        Self {
            exporter,
            batch: BatchConfig::default(),
        }
    }

    /// The batching settings.
    pub fn batch(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }

    /// Reads `OTEL_LOGS_EXPORTER`, the exporter variables of the logs
    /// signal (`OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT`, `..._PROTOCOL`,
    /// `..._HEADERS`, `..._TIMEOUT`, `..._COMPRESSION`, `..._CERTIFICATE`,
    /// `..._CLIENT_CERTIFICATE`, `..._CLIENT_KEY`, `..._INSECURE`,
    /// `OBS_OTLP_[LOGS_]TLS_ROOTS`) and `OTEL_BLRP_SCHEDULE_DELAY`,
    /// `OTEL_BLRP_EXPORT_TIMEOUT`, `OTEL_BLRP_MAX_QUEUE_SIZE`,
    /// `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`. Enum values are case-insensitive.
    ///
    /// `Ok(None)` (no export) when `OTEL_LOGS_EXPORTER` is `none` or
    /// `console` (the lines on stdout are the console exporter), or when it
    /// is unset and no endpoint variable is set. `OTEL_LOGS_EXPORTER=otlp`
    /// without an endpoint exports to the specification's default,
    /// `http://localhost:4318/v1/logs` (`http://localhost:4317` for gRPC).
    ///
    /// ```
    /// use obs_log::otlp::OtlpConfig;
    /// let cfg = OtlpConfig::from_lookup(|k| match k {
    ///     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("https://collector:4318".into()),
    ///     "OTEL_BLRP_SCHEDULE_DELAY" => Some("200".into()),
    ///     _ => None,
    /// })?
    /// .expect("an endpoint is set");
    /// assert_eq!(cfg.exporter.endpoint, "https://collector:4318/v1/logs");
    /// assert_eq!(cfg.batch.schedule_delay, std::time::Duration::from_millis(200));
    /// # Ok::<(), obs_log::Error>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, Error> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let env = |var: &'static str, value: &str, reason: &str| Error::Env {
            var,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let mut explicit = false;
        if let Some(v) = get(ENV_LOGS_EXPORTER) {
            // A comma-separated list, as the specification allows.
            let mut otlp = false;
            for name in v.split(',').map(obs_core::otlp::enum_value) {
                match name.as_str() {
                    "otlp" => otlp = true,
                    "none" | "console" | "" => {}
                    _ => {
                        return Err(env(ENV_LOGS_EXPORTER, &v, "expected otlp, console or none"));
                    }
                }
            }
            if !otlp {
                // Still check the other variables: a typo is an error
                // whether or not export is on.
                ExporterConfig::from_lookup(Signal::Logs, &lookup)?;
                batch_from_lookup(&get)?;
                return Ok(None);
            }
            explicit = true;
        }
        let batch = batch_from_lookup(&get)?;
        let exporter = match ExporterConfig::from_lookup(Signal::Logs, &lookup)? {
            Some(e) => e,
            None if explicit => {
                // The specification's default endpoint, with the protocol
                // and settings the variables give.
                let protocol_only = |k: &str| match k {
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" => None,
                    "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://localhost:4318".to_owned()),
                    _ => lookup(k),
                };
                let mut e = ExporterConfig::from_lookup(Signal::Logs, protocol_only)?
                    .ok_or_else(|| Error::Config("no default OTLP endpoint".into()))?;
                if e.protocol == Protocol::Grpc {
                    e.endpoint = "http://localhost:4317".into();
                }
                e
            }
            None => return Ok(None),
        };
        Ok(Some(Self { exporter, batch }))
    }
}

fn batch_from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<BatchConfig, Error> {
    let mut b = BatchConfig::default();
    let count = |var: &'static str, v: &str| -> Result<usize, Error> {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::Env {
                var,
                value: v.to_owned(),
                reason: "expected a whole number, at least 1".into(),
            })
    };
    if let Some(v) = get(ENV_BLRP_SCHEDULE_DELAY) {
        b.schedule_delay = obs_core::otlp::parse_millis(ENV_BLRP_SCHEDULE_DELAY, &v)?;
    }
    if let Some(v) = get(ENV_BLRP_EXPORT_TIMEOUT) {
        b.export_timeout = obs_core::otlp::parse_millis(ENV_BLRP_EXPORT_TIMEOUT, &v)?;
    }
    if let Some(v) = get(ENV_BLRP_MAX_QUEUE_SIZE) {
        b.max_queue_size = count(ENV_BLRP_MAX_QUEUE_SIZE, &v)?;
    }
    if let Some(v) = get(ENV_BLRP_MAX_EXPORT_BATCH_SIZE) {
        let n = count(ENV_BLRP_MAX_EXPORT_BATCH_SIZE, &v)?;
        if n > b.max_queue_size {
            return Err(Error::Env {
                var: ENV_BLRP_MAX_EXPORT_BATCH_SIZE,
                value: v,
                reason: format!("must not exceed the queue size {}", b.max_queue_size),
            });
        }
        b.max_export_batch_size = n;
    } else {
        b.max_export_batch_size = b.max_export_batch_size.min(b.max_queue_size);
    }
    Ok(b)
}

impl From<obs_core::otlp::Error> for Error {
    fn from(e: obs_core::otlp::Error) -> Self {
        match e {
            obs_core::otlp::Error::Env { var, value, reason } => Error::Env { var, value, reason },
            other => Error::Otlp(other),
        }
    }
}

#[derive(Debug, Default)]
struct StatsInner {
    exported: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_export_failed: AtomicU64,
    dropped_shutdown: AtomicU64,
    exports_failed: AtomicU64,
    /// Records of the export under way; a shutdown that gives up on it
    /// counts them as dropped (and the export's outcome is then ignored).
    in_flight: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Counters of the OTLP log exporter.
#[derive(Clone, Debug, Default)]
pub struct OtlpStats(Arc<StatsInner>);

impl OtlpStats {
    /// Records the collector accepted.
    pub fn exported(&self) -> u64 {
        self.0.exported.load(Ordering::Relaxed)
    }

    /// Records dropped because the queue was full.
    pub fn dropped_queue_full(&self) -> u64 {
        self.0.dropped_queue_full.load(Ordering::Relaxed)
    }

    /// Records dropped because their export failed (connection, timeout,
    /// TLS, non-2xx answer) or the collector rejected them.
    pub fn dropped_export_failed(&self) -> u64 {
        self.0.dropped_export_failed.load(Ordering::Relaxed)
    }

    /// Records logged after shutdown, or still queued when its timeout
    /// expired.
    pub fn dropped_shutdown(&self) -> u64 {
        self.0.dropped_shutdown.load(Ordering::Relaxed)
    }

    /// Every dropped record.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full() + self.dropped_export_failed() + self.dropped_shutdown()
    }

    /// Export requests that failed.
    pub fn exports_failed(&self) -> u64 {
        self.0.exports_failed.load(Ordering::Relaxed)
    }

    /// The last export failure, as text (a TLS failure names the peer).
    pub fn last_export_error(&self) -> Option<String> {
        self.0
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the OTLP log exporter did, reported at shutdown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtlpReport {
    /// Whether everything queued was exported (or failed) before the timeout.
    pub completed: bool,
    /// Records exported over the exporter's life.
    pub exported: u64,
    /// Records dropped over its life (queue full, failed exports,
    /// shutdown).
    pub dropped: u64,
    /// The last export failure, if any.
    pub last_error: Option<String>,
}

impl fmt::Display for OtlpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "otlp log exporter {}: {} records exported, {} dropped",
            if self.completed {
                "shut down"
            } else {
                "timed out"
            },
            self.exported,
            self.dropped
        )?;
        if let Some(e) = &self.last_error {
            write!(f, " (last error: {e})")?;
        }
        Ok(())
    }
}

/// One log record on its way to the exporter thread: everything the
/// logging thread knows, in one buffer.
pub(crate) struct Record {
    time_nanos: u64,
    level: Level,
    target: Cow<'static, str>,
    /// `["<escaped message>",{<fields>}]`: parsed on the exporter thread.
    json: Vec<u8>,
    ids: Option<IdRecord>,
}

impl Record {
    /// `msg` is the JSON-escaped message (no quotes), `fields` the
    /// `,"key":value` fragments of the line.
    pub(crate) fn new(
        time_nanos: u64,
        level: Level,
        target: Cow<'static, str>,
        msg: Option<&[u8]>,
        fields: &[u8],
        ids: Option<&IdRecord>,
    ) -> Self {
        let fields = fields.strip_prefix(b",").unwrap_or(fields);
        let mut json = Vec::with_capacity(msg.map_or(4, <[u8]>::len) + fields.len() + 8);
        match msg {
            Some(m) => {
                json.extend_from_slice(b"[\"");
                json.extend_from_slice(m);
                json.extend_from_slice(b"\",{");
            }
            None => json.extend_from_slice(b"[null,{"),
        }
        json.extend_from_slice(fields);
        json.extend_from_slice(b"}]");
        Self {
            time_nanos,
            level,
            target,
            json,
            ids: ids.cloned(),
        }
    }
}

enum Control {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// The queue and the exporter thread.
pub(crate) struct OtlpSink {
    tx: Sender<Record>,
    control: Sender<Control>,
    stats: OtlpStats,
    closed: std::sync::atomic::AtomicBool,
    rx: Receiver<Record>,
}

impl fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSink")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl OtlpSink {
    /// Builds the transport (TLS files are loaded now: a bad one is an
    /// error naming it) and starts the exporter thread.
    pub(crate) fn start(
        config: OtlpConfig,
        resource: Resource,
        lines: Lines,
    ) -> Result<Arc<Self>, Error> {
        // Settings given in code are checked like the variables are: gzip
        // or TLS this build cannot do is an error, not a silent fallback.
        config
            .exporter
            .validate(["gzip", "tls", "otlp", "otlp-grpc"])?;
        let transport = obs_core::otlp::Transport::new(&config.exporter, Signal::Logs)?;
        let (tx, rx) = crossbeam_channel::bounded(config.batch.max_queue_size);
        let (control, control_rx) = crossbeam_channel::unbounded();
        let stats = OtlpStats::default();
        let worker = Worker {
            rx: rx.clone(),
            control: control_rx,
            transport,
            batch: config.batch,
            timeout: config.batch.export_timeout.min(config.exporter.timeout),
            resource,
            stats: stats.clone(),
            lines,
            failing_since: None,
        };
        std::thread::Builder::new()
            .name("obs-log-otlp".into())
            .spawn(move || worker.run())?;
        Ok(Arc::new(Self {
            tx,
            control,
            stats,
            closed: std::sync::atomic::AtomicBool::new(false),
            rx,
        }))
    }

    /// Queues a record, or drops and counts it; never blocks.
    pub(crate) fn send(&self, record: Record) {
        if self.closed.load(Ordering::Relaxed) {
            self.stats
                .0
                .dropped_shutdown
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats
                    .0
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats
                    .0
                    .dropped_shutdown
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn stats(&self) -> &OtlpStats {
        &self.stats
    }

    /// Exports everything queued so far; `false` when `timeout` expired
    /// first.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = crossbeam_channel::bounded(1);
        self.control.send(Control::Flush(done)).is_ok() && wait.recv_timeout(timeout).is_ok()
    }

    /// Exports what is queued within `timeout`, stops the thread and
    /// reports. Records logged afterwards are dropped and counted.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OtlpReport {
        self.closed.store(true, Ordering::Relaxed);
        let (done, wait) = crossbeam_channel::bounded(1);
        let completed = self.control.send(Control::Shutdown(done)).is_ok()
            && wait.recv_timeout(timeout).is_ok();
        if !completed {
            // What is still queued, and the export under way, will not be
            // exported by us.
            let mut lost = self.stats.0.in_flight.swap(0, Ordering::AcqRel);
            while self.rx.try_recv().is_ok() {
                lost += 1;
            }
            self.stats
                .0
                .dropped_shutdown
                .fetch_add(lost, Ordering::Relaxed);
        }
        OtlpReport {
            completed,
            exported: self.stats.exported(),
            dropped: self.stats.dropped(),
            last_error: self.stats.last_export_error(),
        }
    }
}

/// Where the exporter reports its own failures: the line writer, directly.
pub(crate) struct Lines {
    pub(crate) spec: Arc<crate::format::Spec>,
    pub(crate) out: crate::writer::Output,
}

impl Lines {
    fn write(&self, level: Level, message: &str, extra: &[(&str, u64)]) {
        let mut buf = Vec::with_capacity(256);
        self.spec
            .internal_line(&mut buf, level, "obs_log", message, extra);
        self.out
            .write_line(crate::config::level_index(level), &buf, false);
    }
}

struct Worker {
    lines: Lines,
    /// Records dropped by failed exports when the current failure began.
    failing_since: Option<u64>,
    rx: Receiver<Record>,
    control: Receiver<Control>,
    transport: obs_core::otlp::Transport,
    batch: BatchConfig,
    timeout: Duration,
    resource: Resource,
    stats: OtlpStats,
}

impl Worker {
    fn run(mut self) {
        let mut batch: Vec<Record> = Vec::with_capacity(self.batch.max_export_batch_size);
        let mut deadline = Instant::now() + self.batch.schedule_delay;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            crossbeam_channel::select! {
                recv(self.rx) -> r => match r {
                    Ok(rec) => {
                        batch.push(rec);
                        if batch.len() >= self.batch.max_export_batch_size {
                            self.export(&mut batch);
                            deadline = Instant::now() + self.batch.schedule_delay;
                        }
                    }
                    Err(_) => {
                        self.export(&mut batch);
                        return;
                    }
                },
                recv(self.control) -> c => {
                    let (done, stop) = match c {
                        Ok(Control::Flush(done)) => (done, false),
                        Ok(Control::Shutdown(done)) => (done, true),
                        Err(_) => return,
                    };
                    self.drain(&mut batch);
                    let _ = done.send(());
                    if stop {
                        return;
                    }
                    deadline = Instant::now() + self.batch.schedule_delay;
                },
                default(wait) => {
                    self.export(&mut batch);
                    deadline = Instant::now() + self.batch.schedule_delay;
                },
            }
        }
    }

    /// Exports everything queued now, batch by batch.
    fn drain(&mut self, batch: &mut Vec<Record>) {
        while let Ok(rec) = self.rx.try_recv() {
            batch.push(rec);
            if batch.len() >= self.batch.max_export_batch_size {
                self.export(batch);
            }
        }
        self.export(batch);
    }

    fn export(&mut self, batch: &mut Vec<Record>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let body = encode_request(batch, &self.resource);
        batch.clear();
        self.stats.0.in_flight.store(n, Ordering::Release);
        let outcome = self.transport.send(body, self.timeout).and_then(|resp| {
            match obs_core::otlp::wire::partial_success(&resp) {
                Some((rejected, message)) if rejected > 0 => {
                    Err(obs_core::otlp::Error::Rejected { rejected, message })
                }
                _ => Ok(()),
            }
        });
        let s = &self.stats.0;
        if s.in_flight.swap(0, Ordering::AcqRel) == 0 {
            // A shutdown gave up on this export and counted its records.
            return;
        }
        match outcome {
            Ok(()) => {
                s.exported.fetch_add(n, Ordering::Relaxed);
                if let Some(before) = self.failing_since.take() {
                    let lost = s.dropped_export_failed.load(Ordering::Relaxed) - before;
                    self.lines.write(
                        Level::INFO,
                        "otlp log export recovered",
                        &[("dropped", lost)],
                    );
                }
            }
            Err(obs_core::otlp::Error::Rejected { rejected, message }) => {
                let rejected = rejected.min(n);
                s.exported.fetch_add(n - rejected, Ordering::Relaxed);
                s.dropped_export_failed
                    .fetch_add(rejected, Ordering::Relaxed);
                *s.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!(
                    "the collector rejected {rejected} log records: {message}"
                ));
            }
            Err(e) => {
                let message = format!("otlp log export failed: {e}");
                if self.failing_since.is_none() {
                    self.failing_since = Some(s.dropped_export_failed.load(Ordering::Relaxed));
                    // Once per failure, until an export succeeds again.
                    self.lines.write(Level::WARN, &message, &[("dropped", n)]);
                }
                s.exports_failed.fetch_add(1, Ordering::Relaxed);
                s.dropped_export_failed.fetch_add(n, Ordering::Relaxed);
                *s.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
            }
        }
    }
}

fn severity(level: Level) -> (u64, &'static str) {
    match level {
        Level::TRACE => (1, "TRACE"),
        Level::DEBUG => (5, "DEBUG"),
        Level::INFO => (9, "INFO"),
        Level::WARN => (13, "WARN"),
        _ => (17, "ERROR"),
    }
}

/// An `AnyValue` for a JSON value: strings, booleans, integers and
/// doubles as themselves; arrays and objects as their JSON text.
fn any_value(out: &mut Vec<u8>, v: &serde_json::Value) {
    use obs_core::otlp::wire::{FIXED64, VARINT, put_key, put_varint};
    match v {
        serde_json::Value::String(s) => put_len_str(out, 1, s),
        serde_json::Value::Bool(b) => {
            put_key(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                put_key(out, 3, VARINT);
                put_varint(out, i as u64);
            } else {
                put_key(out, 4, FIXED64);
                out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes());
            }
        }
        serde_json::Value::Null => {}
        other => put_len_str(out, 1, &other.to_string()),
    }
}

/// A string field that is written even when empty (a oneof member).
fn put_len_str(out: &mut Vec<u8>, field: u32, s: &str) {
    put_len_field(out, field, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// Writes a nested message built by `f` as field `field` of `out`.
fn nested(out: &mut Vec<u8>, scratch: &mut Vec<u8>, field: u32, f: impl FnOnce(&mut Vec<u8>)) {
    scratch.clear();
    f(scratch);
    put_len_field(out, field, scratch.len());
    out.extend_from_slice(scratch);
}

fn kv(out: &mut Vec<u8>, scratch: &mut Vec<u8>, key: &str, v: &serde_json::Value) {
    let mut value = Vec::new();
    any_value(&mut value, v);
    nested(out, scratch, 6, |m| {
        put_string_field(m, 1, key);
        put_len_field(m, 2, value.len());
        m.extend_from_slice(&value);
    });
}

/// One `LogRecord` (opentelemetry/proto/logs/v1/logs.proto).
fn put_record(out: &mut Vec<u8>, r: &Record) {
    let mut scratch = Vec::new();
    put_fixed64_field(out, 1, r.time_nanos);
    let (number, text) = severity(r.level);
    put_uint_field(out, 2, number);
    put_string_field(out, 3, text);
    let parsed: Option<(
        serde_json::Value,
        serde_json::Map<String, serde_json::Value>,
    )> = serde_json::from_slice::<(
        serde_json::Value,
        serde_json::Map<String, serde_json::Value>,
    )>(&r.json)
    .ok();
    match &parsed {
        Some((body, attrs)) => {
            if !body.is_null() {
                let mut value = Vec::new();
                any_value(&mut value, body);
                put_len_field(out, 5, value.len());
                out.extend_from_slice(&value);
            }
            for (k, v) in attrs {
                if !v.is_null() {
                    kv(out, &mut scratch, k, v);
                }
            }
        }
        None => {
            // Never expected: the layer writes valid JSON. Keep the text.
            let text = String::from_utf8_lossy(&r.json);
            let mut value = Vec::new();
            put_len_str(&mut value, 1, &text);
            put_len_field(out, 5, value.len());
            out.extend_from_slice(&value);
        }
    }
    if let Some(ids) = &r.ids {
        if let Some(c) = &ids.correlation_id {
            kv(
                out,
                &mut scratch,
                obs_core::names::field::CORRELATION_ID,
                &serde_json::Value::String(c.as_str().to_owned()),
            );
        }
        if let (Some(t), Some(s)) = (ids.trace_id, ids.span_id) {
            put_fixed32_field(out, 8, u32::from(ids.trace_flags.to_byte()));
            put_bytes_field(out, 9, t.as_bytes());
            put_bytes_field(out, 10, s.as_bytes());
        }
    }
    put_fixed64_field(out, 11, r.time_nanos);
}

/// An `ExportLogsServiceRequest` for `batch`: one `ResourceLogs`, one
/// `ScopeLogs` per target in first-seen order.
pub(crate) fn encode_request(batch: &[Record], resource: &Resource) -> Vec<u8> {
    let sdk: [(&str, &str); 3] = [
        ("telemetry.sdk.name", "obs-log"),
        ("telemetry.sdk.language", "rust"),
        ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
    ];
    let mut rl = Vec::new();
    let res_len: usize = resource
        .iter()
        .chain(sdk.iter().copied())
        .map(|(k, v)| field_len(1, str_kv_len(k, v)))
        .sum();
    put_len_field(&mut rl, 1, res_len);
    for (k, v) in resource.iter().chain(sdk.iter().copied()) {
        put_len_field(&mut rl, 1, str_kv_len(k, v));
        put_str_kv(&mut rl, k, v);
    }
    let mut scopes: Vec<&str> = Vec::new();
    for r in batch {
        if !scopes.contains(&r.target.as_ref()) {
            scopes.push(&r.target);
        }
    }
    let (mut scope_buf, mut rec_buf) = (Vec::new(), Vec::new());
    for scope in scopes {
        scope_buf.clear();
        // ScopeLogs.scope = 1 { name = 1 }
        put_len_field(&mut scope_buf, 1, field_len(1, scope.len()));
        put_len_str(&mut scope_buf, 1, scope);
        for r in batch.iter().filter(|r| r.target == scope) {
            rec_buf.clear();
            put_record(&mut rec_buf, r);
            // ScopeLogs.log_records = 2
            put_len_field(&mut scope_buf, 2, rec_buf.len());
            scope_buf.extend_from_slice(&rec_buf);
        }
        // ResourceLogs.scope_logs = 2
        put_len_field(&mut rl, 2, scope_buf.len());
        rl.extend_from_slice(&scope_buf);
    }
    let mut out = Vec::with_capacity(rl.len() + 8);
    // ExportLogsServiceRequest.resource_logs = 1
    put_len_field(&mut out, 1, rl.len());
    out.extend_from_slice(&rl);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use obs_core::names::env::from_pairs as lookup;

    #[test]
    fn nothing_set_is_no_export_and_none_or_console_turn_it_off() {
        assert_eq!(OtlpConfig::from_lookup(|_| None).unwrap(), None);
        for v in ["none", "Console", "console,none"] {
            let c = OtlpConfig::from_lookup(lookup(&[
                ("OTEL_LOGS_EXPORTER", v),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ]))
            .unwrap();
            assert_eq!(c, None, "{v}");
        }
    }

    #[test]
    fn explicit_otlp_without_endpoint_uses_the_default() {
        let c = OtlpConfig::from_lookup(lookup(&[("OTEL_LOGS_EXPORTER", "OTLP")]))
            .unwrap()
            .unwrap();
        assert_eq!(c.exporter.endpoint, "http://localhost:4318/v1/logs");
        let g = OtlpConfig::from_lookup(lookup(&[
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(g.exporter.endpoint, "http://localhost:4317");
        assert_eq!(g.exporter.protocol, Protocol::Grpc);
    }

    #[test]
    fn blrp_settings_and_bad_values() {
        let c = OtlpConfig::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://c:4318/custom"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "700"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.exporter.endpoint, "http://c:4318/custom");
        assert_eq!(
            c.batch,
            BatchConfig {
                max_queue_size: 100,
                schedule_delay: Duration::from_millis(50),
                max_export_batch_size: 100,
                export_timeout: Duration::from_millis(700),
            }
        );
        for (var, value) in [
            ("OTEL_LOGS_EXPORTER", "zipkin"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "soon"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "5000"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json"),
        ] {
            let err = OtlpConfig::from_lookup(lookup(&[
                (var, value),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ]))
            .unwrap_err();
            assert!(
                matches!(&err, Error::Env { var: v, .. } if *v == var),
                "{var}: {err:?}"
            );
        }
    }

    #[test]
    fn records_carry_body_attributes_ids_and_severity() {
        let ids = IdRecord {
            trace_id: Some(obs_core::TraceId::from_bytes([1; 16])),
            span_id: Some(obs_core::SpanId::from_bytes([2; 8])),
            trace_flags: obs_core::TraceFlags::SAMPLED,
            correlation_id: None,
        };
        let r = Record::new(
            7,
            Level::WARN,
            Cow::Borrowed("checkout"),
            Some(br#"payment \"declined\""#),
            br#","user":"ann","attempt":3,"ok":false,"ratio":0.5"#,
            Some(&ids),
        );
        let body = encode_request(&[r], &Resource::default());
        // Read back with the wire reader: the record is inside
        // resource_logs(1) > scope_logs(2) > log_records(2).
        let mut found = Vec::new();
        obs_core::otlp::wire::for_each_field(&body, |_, _, _, rl| {
            obs_core::otlp::wire::for_each_field(rl, |f, _, _, sl| {
                if f == 2 {
                    obs_core::otlp::wire::for_each_field(sl, |f, _, _, rec| {
                        if f == 2 {
                            found.push(rec.to_vec());
                        }
                    });
                }
            });
        })
        .unwrap();
        assert_eq!(found.len(), 1);
        let rec = &found[0];
        let mut fields = Vec::new();
        obs_core::otlp::wire::for_each_field(rec, |f, _, v, b| fields.push((f, v, b.to_vec())))
            .unwrap();
        let get = |n: u32| fields.iter().filter(move |(f, _, _)| *f == n);
        assert_eq!(get(2).next().unwrap().1, 13, "severity number WARN");
        assert_eq!(get(3).next().unwrap().2, b"WARN");
        let text = String::from_utf8_lossy(&get(5).next().unwrap().2).into_owned();
        assert!(text.contains("payment \"declined\""), "{text}");
        assert_eq!(get(6).count(), 4, "four attributes");
        assert_eq!(get(9).next().unwrap().2, vec![1; 16]);
        assert_eq!(get(10).next().unwrap().2, vec![2; 8]);
        assert_eq!(get(8).next().unwrap().2, vec![1, 0, 0, 0], "flags");
        assert!(get(11).next().is_some(), "observed time");
    }
}
