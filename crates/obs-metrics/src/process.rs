//! The process collector: the `process_*` metrics every Prometheus client
//! library exposes, read from `/proc/self` at scrape time (Linux; on other
//! systems the collector registers nothing and reports that).

use std::sync::Arc;

use crate::Registry;
use crate::encode::Writer;
use crate::error::{MetricType, Result};
use crate::registry::{Collect, Desc};

/// Clock ticks per second of `/proc/<pid>/stat` times. `USER_HZ` is 100 on
/// every Linux architecture Rust supports; reading it through `sysconf`
/// would need `unsafe`, which this crate forbids.
const USER_HZ: f64 = 100.0;

/// Registers the process collector:
/// `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
/// `process_start_time_seconds`, `process_threads`.
///
/// Returns `Ok(false)` (and registers nothing) where `/proc/self/stat` cannot be read.
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// if obs_metrics::process::register(&registry)? {
///     let text = registry.encode(obs_metrics::Format::Text);
///     assert!(text.contains("\nprocess_resident_memory_bytes "));
/// }
/// # Ok::<(), obs_metrics::Error>(())
/// ```
pub fn register(registry: &Registry) -> Result<bool> {
    if read_stat().is_none() {
        return Ok(false);
    }
    let d = |name: &str, help: &str, ty| Desc {
        name: name.into(),
        help: help.into(),
        ty,
        labels: Vec::new(),
    };
    let descs = vec![
        d(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            MetricType::Counter,
        ),
        d(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            MetricType::Gauge,
        ),
        d(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            MetricType::Gauge,
        ),
        d(
            "process_open_fds",
            "Number of open file descriptors.",
            MetricType::Gauge,
        ),
        d(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            MetricType::Gauge,
        ),
        d(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            MetricType::Gauge,
        ),
        d(
            "process_threads",
            "Number of OS threads in the process.",
            MetricType::Gauge,
        ),
    ];
    registry.register_collector(descs, Arc::new(ProcessCollector))?;
    Ok(true)
}

/// A snapshot of the process' figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcessStats {
    /// User + system CPU seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_memory_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_memory_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// OS threads.
    pub threads: u64,
}

struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    starttime: u64,
    vsize: u64,
}

fn read_stat() -> Option<Stat> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // `comm` (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), so field n is f[n - 3].
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        utime: n(14)?,
        stime: n(15)?,
        threads: n(20)?,
        starttime: n(22)?,
        vsize: n(23)?,
    })
}

fn status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

fn boot_time() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn max_fds() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads the current figures from `/proc/self`; `None` where it is not available.
///
/// ```
/// if let Some(stats) = obs_metrics::process::stats() {
///     assert!(stats.threads >= 1);
/// }
/// ```
pub fn stats() -> Option<ProcessStats> {
    let stat = read_stat()?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Some(ProcessStats {
        cpu_seconds: (stat.utime + stat.stime) as f64 / USER_HZ,
        resident_memory_bytes: status_kb("VmRSS:").unwrap_or(0),
        virtual_memory_bytes: stat.vsize,
        open_fds,
        max_fds: max_fds(),
        start_time_seconds: boot_time().unwrap_or(0) as f64 + stat.starttime as f64 / USER_HZ,
        threads: stat.threads,
    })
}

#[derive(Debug)]
struct ProcessCollector;

impl Collect for ProcessCollector {
    fn collect(&self, w: &mut Writer<'_>, descs: &[Desc]) {
        let Some(s) = stats() else { return };
        for d in descs {
            w.header(&d.name, &d.help, d.ty);
            match &*d.name {
                "process_cpu_seconds" => w.f64_sample(&d.name, "_total", "", s.cpu_seconds),
                "process_resident_memory_bytes" => {
                    w.u64_sample(&d.name, "", "", s.resident_memory_bytes)
                }
                "process_virtual_memory_bytes" => {
                    w.u64_sample(&d.name, "", "", s.virtual_memory_bytes)
                }
                "process_open_fds" => w.u64_sample(&d.name, "", "", s.open_fds),
                // An unlimited soft limit is written as +Inf.
                "process_max_fds" => w.f64_sample(
                    &d.name,
                    "",
                    "",
                    s.max_fds.map_or(f64::INFINITY, |v| v as f64),
                ),
                "process_start_time_seconds" => w.f64_sample(&d.name, "", "", s.start_time_seconds),
                _ => w.u64_sample(&d.name, "", "", s.threads),
            }
        }
    }
}
