//! obs-check: a telemetry conformance checker.
//!
//! It talks to a running service over HTTP like any client, reads its logs
//! (a file, stdin, or lines handed over by a test) and, optionally, receives
//! its spans over OTLP/HTTP, then reports one row per rule: `pass`, `warn`,
//! `fail` or `skip`. See the README for the rules and the JSON report.
//!
//! ```no_run
//! let mut config = obs_check::Config::new("http://127.0.0.1:8080/items")?;
//! config.admin = obs_check::Url::parse("http://127.0.0.1:9464")?;
//! let report = obs_check::run(&config);
//! print!("{}", report.to_text());
//! # Ok::<(), obs_check::HttpError>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub mod expo;
pub mod http;
pub mod otlp;
pub mod report;
mod rules;

pub use http::{HttpError, Url};
pub use otlp::OtlpReceiver;
pub use report::{Report, RuleResult, Status};

/// Most log lines kept from stdin; older ones are dropped (and counted).
pub const MAX_LOG_LINES: usize = 200_000;
/// Most bytes read from a log file: its last 64 MiB.
pub const MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// Where the service's log lines come from.
#[derive(Clone, Default)]
pub enum Logs {
    /// No logs: the log rules are skipped.
    #[default]
    None,
    /// A file the service writes (read after the requests, its last
    /// [`MAX_LOG_BYTES`]).
    File(PathBuf),
    /// The lines are read from this process's stdin (`service | obs-check URL --logs -`).
    Stdin,
    /// Lines handed over by the caller (a test harness, for instance); called
    /// after the requests, possibly several times while waiting.
    Lines(Arc<dyn Fn() -> Vec<String> + Send + Sync>),
}

impl fmt::Debug for Logs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            Self::Stdin => f.write_str("Stdin"),
            Self::Lines(_) => f.write_str("Lines(..)"),
        }
    }
}

/// What to check and how.
#[derive(Debug)]
pub struct Config {
    /// The service URL the checker requests (its path is the request target).
    pub url: Url,
    /// Base URL of `/metrics` and the probes (default: `url`'s host and port).
    pub admin: Url,
    /// The service's log lines.
    pub logs: Logs,
    /// When set, the checker receives the service's spans here.
    pub otlp: Option<OtlpReceiver>,
    /// The correlation id header (default `x-correlation-id`).
    pub id_header: String,
    /// Deadline of one request (default 5 s). Probes always get 1 s.
    pub timeout: Duration,
    /// How long to wait for the requests' log lines and spans (default 5 s).
    pub wait: Duration,
    /// A metric family with more series than this fails `metrics.cardinality`
    /// (default 1000).
    pub max_series: usize,
    /// Path of the metrics endpoint under `admin` (default `/metrics`).
    pub metrics_path: String,
}

impl Config {
    /// The defaults for the service at `url`.
    pub fn new(url: &str) -> Result<Self, HttpError> {
        let url = Url::parse(url)?;
        Ok(Self {
            admin: url.with_target("/"),
            url,
            logs: Logs::None,
            otlp: None,
            id_header: obs_core::names::header::X_CORRELATION_ID.into(),
            timeout: Duration::from_secs(5),
            wait: Duration::from_secs(5),
            max_series: 1000,
            metrics_path: "/metrics".into(),
        })
    }
}

/// Runs every rule against the service and returns the report.
pub fn run(config: &Config) -> Report {
    let logs = LogReader::start(&config.logs);
    let results = rules::run(config, &logs);
    Report {
        url: config.url.to_string(),
        admin: config.admin.with_target("").to_string(),
        results,
    }
}

/// Reads the configured log source on demand.
pub(crate) struct LogReader {
    source: LogSource,
}

enum LogSource {
    None,
    File(PathBuf),
    Buffer(Arc<Mutex<VecDeque<String>>>, Arc<AtomicU64>),
    Lines(Arc<dyn Fn() -> Vec<String> + Send + Sync>),
}

impl LogReader {
    fn start(logs: &Logs) -> Self {
        let source = match logs {
            Logs::None => LogSource::None,
            Logs::File(p) => LogSource::File(p.clone()),
            Logs::Lines(f) => LogSource::Lines(f.clone()),
            Logs::Stdin => {
                let buf = Arc::new(Mutex::new(VecDeque::new()));
                let dropped = Arc::new(AtomicU64::new(0));
                let (b, d) = (buf.clone(), dropped.clone());
                std::thread::spawn(move || {
                    let stdin = std::io::stdin();
                    let mut lock = stdin.lock();
                    let mut line = Vec::new();
                    loop {
                        line.clear();
                        // Lines are bounded too: 1 MiB, the rest skipped.
                        match (&mut lock).take(1024 * 1024).read_until(b'\n', &mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let mut held = b.lock().unwrap_or_else(PoisonError::into_inner);
                                if held.len() >= MAX_LOG_LINES {
                                    held.pop_front();
                                    d.fetch_add(1, Ordering::Relaxed);
                                }
                                held.push_back(
                                    String::from_utf8_lossy(&line)
                                        .trim_end_matches(['\n', '\r'])
                                        .to_owned(),
                                );
                            }
                        }
                    }
                });
                LogSource::Buffer(buf, dropped)
            }
        };
        Self { source }
    }

    pub(crate) fn enabled(&self) -> bool {
        !matches!(self.source, LogSource::None)
    }

    /// The lines now, or why they cannot be read.
    pub(crate) fn lines(&self) -> Result<Vec<String>, String> {
        match &self.source {
            LogSource::None => Ok(Vec::new()),
            LogSource::Lines(f) => Ok(f()),
            LogSource::Buffer(b, _) => Ok(b
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned()
                .collect()),
            LogSource::File(p) => {
                let mut f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                let skip = len.saturating_sub(MAX_LOG_BYTES);
                f.seek(SeekFrom::Start(skip)).map_err(|e| e.to_string())?;
                let mut buf = Vec::new();
                f.take(MAX_LOG_BYTES)
                    .read_to_end(&mut buf)
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&buf);
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                if skip > 0 && !lines.is_empty() {
                    // The first line was cut in the middle.
                    lines.remove(0);
                }
                Ok(lines)
            }
        }
    }

    /// Lines dropped by the stdin buffer.
    pub(crate) fn dropped(&self) -> u64 {
        match &self.source {
            LogSource::Buffer(_, d) => d.load(Ordering::Relaxed),
            _ => 0,
        }
    }
}
