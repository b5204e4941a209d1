//! Run with: `cargo run --release -p obs-http-bench`
//! (`BENCH_ROUNDS=3 cargo run --release -p obs-http-bench` for the published
//! tables; the program prints them as ready-to-paste markdown).
//!
//! Throughput and latency of a hello-world axum app (`GET /hello/{name}` → a
//! short text) under six configurations, measured one after the other in the
//! same run on loopback with `wrk`:
//!
//! | configuration | what runs around the handler |
//! |---|---|
//! | `bare` | nothing |
//! | `by-hand` | obs's unsampled behaviours written out by hand in one tower service, without `tracing` (`crates/obs/benches/support/by_hand.rs`): the skip list, the correlation id read or made, set, echoed and made the thread's current id, `traceparent` read, trace and span ids, RED metrics, catch-panic, and an access line of obs's fields to the log file through a bounded buffer a writer thread empties — the floor of what obs does, not compared with a target |
//! | `obs-unsampled` | `obs::init` (JSON logs to a file through obs's non-blocking writer) and `.layer(obs.server_layer())` — ids, trace context and server span, RED metrics, access log line — with `OTEL_TRACES_SAMPLER=always_off` |
//! | `obs-sampled` | the same with `always_on`, spans exported over OTLP/HTTP (obs's default protocol) to a local receiver |
//! | `hand-glued` | the hand-glued stack a team builds today (the anchor): tower-http `SetRequestIdLayer`/`PropagateRequestIdLayer` (`MakeRequestUuid`) + `TraceLayer` (span and response line at INFO), `tracing-subscriber` `fmt().json()` through `tracing-appender::non_blocking` to a file, `tracing-opentelemetry` with an `opentelemetry_sdk` batch span processor exporting over OTLP/gRPC (`opentelemetry-otlp`, tonic) to the same receiver, and a `prometheus-client` histogram of request duration by method, route and status recorded in a small middleware |
//! | `obs-sampled-grpc` | `obs-sampled` exporting over OTLP/gRPC instead (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`), the hand-glued stack's protocol |
//!
//! A process has one global `tracing` subscriber, so each configuration runs
//! in its own child process: this binary re-executes itself as
//! `http_bench serve CONFIG OTLP_HTTP_URL OTLP_GRPC_URL LOG_FILE`, the child prints the address
//! it bound, the parent drives it with `wrk --latency` (a warm-up, then the
//! measured run), closes the child's stdin to make it shut down and flush, and
//! counts what reached the log file and the OTLP receiver. The OTLP receiver
//! (`obs_testing::otlp`) runs in the parent.
//!
//! Pinning (the default): the server child runs on one CPU (`taskset -c`,
//! so every thread of the server — the runtime, obs's log writer and span
//! exporter — shares that one core), and the parent (the OTLP receiver) and
//! `wrk` on the other CPUs the process may use. The figure is then the
//! server's own cost, background threads included. With fewer than 2 usable
//! CPUs, or without `taskset`, the program stops with a message rather than
//! print an unpinned figure that looks comparable but is not;
//! `BENCH_PIN=0` runs unpinned, everything sharing every core.
//!
//! The report gives, per measured run, the CPU used by the server process,
//! the server's core and the load cores, and by the machine's other
//! processes; above 5 % of a core for the latter it calls the run DISTURBED.
//! A pinned run whose server core was less than 97 % busy, or whose load
//! core was 97 % busy or more, is listed as not server-bound: the load side
//! set part of its pace.
//! Lines and spans short of the requests `wrk` completed are listed beside
//! each server's own shutdown report.
//!
//! `wrk` is closed-loop (each connection sends its next request only when
//! the previous answer came), so its latency percentiles understate the tail
//! an open-loop client would see (coordinated omission); they compare the
//! configurations under the same load.
//!
//! Environment (all optional):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_SECS` | `8` | length of each measured `wrk` run, seconds |
//! | `BENCH_WARMUP_SECS` | `2` | length of each warm-up run, seconds |
//! | `BENCH_CONNECTIONS` | `32` | `wrk -c` |
//! | `BENCH_THREADS` | `1` | `wrk -t` |
//! | `BENCH_ROUNDS` | `1` | passes over the configurations; the summary gives the median of each figure over the rounds |
//! | `BENCH_ONLY` | all | comma-separated configurations to run |
//! | `BENCH_PIN` | `1` | `1`: server on the last usable CPU, parent and `wrk` on the others; `0`: no pinning |
//! | `OBS_*`, `OTEL_*` | | passed to the obs configurations (except the sampler, endpoint, protocol and service name, which each configuration sets) |
//!
//! `wrk` comes from the Debian package `wrk`; when it is missing and the
//! program runs as root it installs it with `apt-get install -y wrk`,
//! otherwise it stops with a message saying so. `taskset` comes from
//! `util-linux`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark program: its progress goes to stderr, its table and the servers' shutdown reports to stdout"
)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use obs_testing::otlp::OtlpReceiver;

#[path = "../../../crates/obs/benches/support/by_hand.rs"]
mod by_hand;
use tokio::io::AsyncReadExt;

/// The configurations, in the order they run.
const CONFIGS: &[&str] = &[
    "bare",
    "by-hand",
    "obs-unsampled",
    "obs-sampled",
    "hand-glued",
    "obs-sampled-grpc",
];
/// The targets of the whole-stack figure (median requests/s as a share of
/// bare's, pinned): configuration, required %, aimed-for %.
const TARGETS: &[(&str, f64, f64)] = &[
    ("obs-unsampled", 85.0, 90.0),
    ("obs-sampled", 75.0, 85.0),
    ("obs-sampled-grpc", 75.0, 85.0),
];
/// CPU of other processes during a measured run (% of one core) from which
/// the report calls that run disturbed.
const DISTURBED_PCT: f64 = 5.0;
/// Busy share (%) of a pinned core from which the report calls it
/// saturated: the server's core below it had idle time, a load core at or
/// above it may have set the pace.
const SATURATED_PCT: f64 = 97.0;
/// The service name every traced configuration reports.
const SERVICE: &str = "http_bench";
/// How long the parent waits for a child to bind its port.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child may take to drain its logs and spans after the load.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What [`warm_page_cache`] writes: more than one configuration's log of a
/// default run (about 300 MB for 8 s at 60 000 requests/s).
const PAGE_CACHE_WARMUP: usize = 1 << 30;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = if args.get(1).map(String::as_str) == Some("serve") {
        serve(&args[2..])
    } else {
        parent()
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- parent ---

/// Settings of the load generator.
#[derive(Debug, Clone)]
struct Load {
    secs: u64,
    warmup_secs: u64,
    connections: u64,
    threads: u64,
    rounds: u64,
}

impl Load {
    fn from_env() -> Result<Self, String> {
        fn num(var: &str, default: u64) -> Result<u64, String> {
            match std::env::var(var) {
                Ok(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("{var}={v:?}: expected a whole number above 0")),
                },
                Err(_) => Ok(default),
            }
        }
        Ok(Self {
            secs: num("BENCH_SECS", 8)?,
            warmup_secs: num("BENCH_WARMUP_SECS", 2)?,
            connections: num("BENCH_CONNECTIONS", 32)?,
            threads: num("BENCH_THREADS", 1)?,
            rounds: num("BENCH_ROUNDS", 1)?,
        })
    }
}

/// Which CPUs the server and the load run on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pinning {
    /// Everything shares every core.
    Off,
    /// The server child on `server`, the parent (OTLP receiver) and `wrk` on
    /// `load`.
    On { server: u32, load: Vec<u32> },
}

impl Pinning {
    /// Reads `BENCH_PIN` and, when pinning, pins this process (and so the
    /// receiver's threads and `wrk`, started later) to the load CPUs.
    fn from_env() -> Result<Self, String> {
        let on = match std::env::var("BENCH_PIN") {
            Err(_) => true,
            Ok(v) => match v.trim() {
                "1" | "on" | "" => true,
                "0" | "off" => false,
                other => {
                    return Err(format!(
                        "BENCH_PIN={other:?}: expected 1 (pin, the default) or 0 (no pinning)"
                    ));
                }
            },
        };
        if !on {
            return Ok(Self::Off);
        }
        let status = std::fs::read_to_string("/proc/self/status").map_err(|e| {
            format!("pinning: cannot read /proc/self/status ({e}); set BENCH_PIN=0 to run unpinned")
        })?;
        let cpus = allowed_cpus(&status).ok_or(
            "pinning: no Cpus_allowed_list in /proc/self/status; set BENCH_PIN=0 to run unpinned",
        )?;
        let Some((&server, load)) = cpus.split_last().filter(|(_, load)| !load.is_empty()) else {
            return Err(format!(
                "pinning needs at least 2 CPUs (the server on one, wrk and the OTLP receiver on another), \
                 and this process may use only CPU {}; set BENCH_PIN=0 to run unpinned (the figures then \
                 include the load generator's competition for the same core)",
                cpu_list(&cpus)
            ));
        };
        let load = load.to_vec();
        // All threads of this process: only the main one exists yet, and the
        // ones started later (the receiver's, wrk) inherit its mask.
        let out = Command::new("taskset")
            .args(["-a", "-p", "-c", &cpu_list(&load)])
            .arg(std::process::id().to_string())
            .stdout(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "pinning: cannot run taskset ({e}); install util-linux, or set BENCH_PIN=0 to run unpinned"
                )
            })?;
        if !out.status.success() {
            return Err(format!(
                "pinning: taskset failed ({}): {}; set BENCH_PIN=0 to run unpinned",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self::On { server, load })
    }

    fn describe(&self) -> String {
        match self {
            Self::Off => "unpinned: server, wrk and the OTLP receiver share every core".into(),
            Self::On { server, load } => format!(
                "server pinned to CPU {server}, wrk and the OTLP receiver to CPU {}",
                cpu_list(load)
            ),
        }
    }
}

/// The CPUs of a `/proc/…/status` text's `Cpus_allowed_list` (`0-3,6`).
fn allowed_cpus(status: &str) -> Option<Vec<u32>> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    parse_cpu_list(list.trim())
}

/// Parses a CPU list such as `0-3,6`.
fn parse_cpu_list(list: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
                if a > b {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    (!cpus.is_empty()).then_some(cpus)
}

/// `0,1,2` for `taskset -c` and the tables.
fn cpu_list(cpus: &[u32]) -> String {
    cpus.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Busy and total time of each CPU (and `None` for all of them), from
/// `/proc/stat`, in the kernel's ticks.
fn cpu_times() -> BTreeMap<Option<u32>, (u64, u64)> {
    let mut out = BTreeMap::new();
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return out;
    };
    for line in stat.lines() {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next().and_then(|n| n.strip_prefix("cpu")) else {
            continue;
        };
        let cpu = if name.is_empty() {
            None
        } else {
            match name.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => continue,
            }
        };
        // user nice system idle iowait irq softirq steal …
        let v: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
        if v.len() < 8 {
            continue;
        }
        let busy = v[0] + v[1] + v[2] + v[5] + v[6];
        let total = v[..8].iter().sum();
        out.insert(cpu, (busy, total));
    }
    out
}

/// The busy share of `cpus` (all of them for `None`) between two
/// [`cpu_times`] samples, in %.
fn busy_pct(
    before: &BTreeMap<Option<u32>, (u64, u64)>,
    after: &BTreeMap<Option<u32>, (u64, u64)>,
    cpus: Option<&[u32]>,
) -> Option<f64> {
    let keys: Vec<Option<u32>> = match cpus {
        None => vec![None],
        Some(c) => c.iter().copied().map(Some).collect(),
    };
    let (mut busy, mut total) = (0u64, 0u64);
    for k in keys {
        let (b0, t0) = before.get(&k)?;
        let (b1, t1) = after.get(&k)?;
        busy += b1.saturating_sub(*b0);
        total += t1.saturating_sub(*t0);
    }
    (total > 0).then(|| 100.0 * busy as f64 / total as f64)
}

/// CPU time of every thread of process `pid` so far, nanoseconds (from
/// `/proc/PID/task/*/schedstat`).
fn process_cpu_ns(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0u64;
    for task in dir.flatten() {
        if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat"))
            && let Some(n) = s
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        {
            ns += n;
        }
    }
    Some(ns)
}

/// One process in [`all_process_ticks`].
#[derive(Debug, Clone)]
struct ProcTicks {
    name: String,
    ppid: u32,
    /// Start time after boot, ticks: tells a reused pid from the same
    /// process (a kernel worker's name changes with its work).
    start: u64,
    /// User + system time so far, ticks.
    cpu: u64,
}

/// CPU time so far of every process on the machine, by pid, from
/// `/proc/PID/stat`.
fn all_process_ticks() -> BTreeMap<u32, ProcTicks> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID …`: the name may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // rest[0] state, rest[1] ppid, rest[11] utime, rest[12] stime,
        // rest[19] starttime.
        let field = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok());
        let (Some(ppid), Some(utime), Some(stime), Some(start)) =
            (field(1), field(11), field(12), field(19))
        else {
            continue;
        };
        out.insert(
            pid,
            ProcTicks {
                name,
                ppid: u32::try_from(ppid).unwrap_or(0),
                start,
                cpu: utime + stime,
            },
        );
    }
    out
}

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`, 100
/// when it cannot be asked).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// CPU the processes other than this benchmark's (this process, the server,
/// the children of this process such as `wrk`) used between two
/// [`all_process_ticks`] samples `secs` apart: total % of one core, and the
/// three largest by name. Processes that started and ended in between are
/// missed.
fn foreign_cpu(
    before: &BTreeMap<u32, ProcTicks>,
    after: &BTreeMap<u32, ProcTicks>,
    server: u32,
    secs: f64,
    ticks_per_sec: u64,
) -> (f64, String) {
    let me = std::process::id();
    let mut used: Vec<(String, u64)> = Vec::new();
    for (pid, p) in after {
        if *pid == me || *pid == server || p.ppid == me {
            continue;
        }
        // A process that started in between counts from 0.
        let earlier = before
            .get(pid)
            .filter(|b| b.start == p.start)
            .map_or(0, |b| b.cpu);
        let d = p.cpu.saturating_sub(earlier);
        if d > 0 {
            used.push((p.name.clone(), d));
        }
    }
    let to_pct = |t: u64| 100.0 * t as f64 / (secs * ticks_per_sec as f64);
    let total = to_pct(used.iter().map(|(_, t)| t).sum());
    used.sort_by_key(|u| std::cmp::Reverse(u.1));
    let top: Vec<String> = used
        .iter()
        .take(3)
        .map(|(n, t)| format!("{n} {:.0} %", to_pct(*t)))
        .collect();
    (total, top.join(", "))
}

/// The threads of process `pid`: name and allowed CPUs.
fn threads_of(pid: u32) -> Vec<(String, Option<Vec<u32>>)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in dir.flatten() {
        let p = task.path();
        let name = std::fs::read_to_string(p.join("comm"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into());
        let cpus = std::fs::read_to_string(p.join("status"))
            .ok()
            .and_then(|s| allowed_cpus(&s));
        out.push((name, cpus));
    }
    out.sort();
    out
}

/// `name × count` of a list of thread names.
fn tally(names: impl IntoIterator<Item = String>) -> String {
    let mut counts = BTreeMap::<String, usize>::new();
    for n in names {
        *counts.entry(n).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(n, c)| if c == 1 { n } else { format!("{n} × {c}") })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one `wrk` run printed.
#[derive(Debug, Clone, Default)]
struct WrkResult {
    requests: u64,
    requests_per_sec: f64,
    non_2xx: u64,
    socket_errors: String,
    /// Mean latency, microseconds.
    latency_avg_us: f64,
    /// Latency percentiles of `--latency`, microseconds.
    p50_us: f64,
    p99_us: f64,
}

/// One configuration's outcome.
#[derive(Debug)]
struct Outcome {
    config: &'static str,
    /// Which pass over the configurations (from 1).
    round: u64,
    run: WrkResult,
    /// Requests completed over warm-up and measured run together.
    total_requests: u64,
    /// Lines of the log file mentioning the route (access log lines).
    access_lines: Option<u64>,
    /// Spans the OTLP receiver got from this configuration.
    spans: usize,
    /// Distinct span ids among them (fewer when an export was retried).
    distinct_spans: usize,
    /// Span names received, with counts.
    span_names: Vec<(String, usize)>,
    /// CPU time of the server process (all its threads) during the
    /// measured run, % of one core.
    server_process: Option<f64>,
    /// Busy share of the server's CPU (pinned) or of the machine
    /// (unpinned) during the measured run, %.
    server_busy: Option<f64>,
    /// Busy share of the load CPUs during the measured run, % (pinned only).
    load_busy: Option<f64>,
    /// CPU of the machine's other processes during the measured run, % of
    /// one core, and the largest of them.
    foreign: f64,
    foreign_top: String,
    /// The server's threads at the end of the measured run.
    server_threads: String,
    /// What the child said when it stopped.
    child_report: Vec<String>,
}

impl Outcome {
    /// Access-log lines short of the requests `wrk` completed (`None`:
    /// no log file).
    fn lines_short(&self) -> Option<u64> {
        self.access_lines
            .map(|n| self.total_requests.saturating_sub(n))
    }

    /// Distinct spans short of the requests `wrk` completed (`None`: the
    /// configuration exports no spans).
    fn spans_short(&self) -> Option<u64> {
        matches!(
            self.config,
            "obs-sampled" | "obs-sampled-grpc" | "hand-glued"
        )
        .then(|| {
            self.total_requests
                .saturating_sub(self.distinct_spans as u64)
        })
    }
}

/// Kills the child when dropped, so that no server outlives the parent.
struct ChildGuard {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn parent() -> Result<(), String> {
    let load = Load::from_env()?;
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    if let Some(only) = &only
        && let Some(bad) = only.iter().find(|c| !CONFIGS.contains(&c.as_str()))
    {
        return Err(format!(
            "BENCH_ONLY: unknown configuration {bad:?} (expected some of {CONFIGS:?})"
        ));
    }
    // Before any other thread exists, so that every later one inherits it.
    let pinning = Pinning::from_env()?;
    ensure_wrk()?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let dir = std::env::temp_dir().join(format!("http_bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let receiver = OtlpReceiver::start();
    if let Pinning::On { load: cpus, .. } = &pinning {
        let stray: Vec<String> = threads_of(std::process::id())
            .into_iter()
            .filter(|(_, c)| c.as_deref() != Some(cpus.as_slice()))
            .map(|(n, _)| n)
            .collect();
        if !stray.is_empty() {
            return Err(format!(
                "pinning: threads of this process not on CPU {}: {}",
                cpu_list(cpus),
                stray.join(", ")
            ));
        }
    }
    eprintln!(
        "http_bench: wrk -t{} -c{} -d{}s --latency after a {}s warm-up, per configuration; {}; OTLP receiver at {} and {}; logs in {}",
        load.threads,
        load.connections,
        load.secs,
        load.warmup_secs,
        pinning.describe(),
        receiver.http_base_url(),
        receiver.grpc_url(),
        dir.display()
    );
    warm_page_cache(&dir, PAGE_CACHE_WARMUP)?;
    let ticks_per_sec = clock_ticks();
    let started = SystemTime::now();
    let mut outcomes = Vec::new();
    let mut failure = None;
    'rounds: for round in 1..=load.rounds {
        for &config in CONFIGS {
            if let Some(only) = &only
                && !only.iter().any(|c| c == config)
            {
                continue;
            }
            receiver.clear();
            match run_config(
                &exe,
                config,
                &receiver,
                &dir,
                &load,
                &pinning,
                ticks_per_sec,
            ) {
                Ok(mut o) => {
                    o.round = round;
                    outcomes.push(o);
                }
                Err(e) => {
                    failure = Some(format!("{config}: {e}"));
                    break 'rounds;
                }
            }
        }
    }
    print_report(&outcomes, &load, &pinning, started);
    let _ = std::fs::remove_dir_all(&dir);
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Finds `wrk`, installing it with apt-get when missing and running as root.
fn ensure_wrk() -> Result<(), String> {
    let present = || {
        Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if present() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        return Err(
            "wrk is not installed and this is not root: install it with `sudo apt-get install -y wrk`"
                .into(),
        );
    }
    eprintln!("http_bench: wrk is missing; running apt-get install -y wrk");
    let status = Command::new("apt-get")
        .args(["install", "-y", "wrk"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("wrk is missing and apt-get could not run: {e}"))?;
    if !status.success() || !present() {
        return Err(format!(
            "wrk is missing and `apt-get install -y wrk` failed ({status}); install the Debian package wrk"
        ));
    }
    Ok(())
}

fn run_config(
    exe: &Path,
    config: &'static str,
    receiver: &OtlpReceiver,
    dir: &Path,
    load: &Load,
    pinning: &Pinning,
    ticks_per_sec: u64,
) -> Result<Outcome, String> {
    let log_path = dir.join(format!("{config}.log"));
    // `taskset` executes the server in its own place (same pid), pinned from
    // its first instruction: every thread it starts shares the one CPU.
    let mut command = match pinning {
        Pinning::Off => Command::new(exe),
        Pinning::On { server, .. } => {
            let mut c = Command::new("taskset");
            c.args(["-c", &server.to_string()]).arg(exe);
            c
        }
    };
    let mut child = command
        .args([
            "serve",
            config,
            &receiver.http_base_url(),
            &receiver.grpc_url(),
        ])
        .arg(&log_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the server process: {e}"))?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().ok_or("child stdout missing")?;
    let mut guard = ChildGuard { child, stdin };

    // The child's stdout: the first line is the address, the rest is its
    // shutdown report. A thread reads it so that the waits stay bounded.
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(START_TIMEOUT)
        .map_err(|_| "the server did not report its address in time".to_string())?;
    let addr: SocketAddr = first
        .strip_prefix("listening ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("unexpected first line from the server: {first:?}"))?;
    let url = format!("http://{addr}/hello/world");

    eprintln!("http_bench: {config}: warming up");
    let warm = wrk(&url, load, load.warmup_secs)?;
    eprintln!("http_bench: {config}: measuring");
    let before = cpu_times();
    let procs_before = all_process_ticks();
    let server_before = process_cpu_ns(pid);
    let measure_start = Instant::now();
    let run = wrk(&url, load, load.secs)?;
    let elapsed = measure_start.elapsed();
    let server_after = process_cpu_ns(pid);
    let after = cpu_times();
    let (foreign, foreign_top) = foreign_cpu(
        &procs_before,
        &all_process_ticks(),
        pid,
        elapsed.as_secs_f64(),
        ticks_per_sec,
    );
    let server_process = match (server_before, server_after) {
        (Some(b), Some(a)) if !elapsed.is_zero() => {
            Some(100.0 * a.saturating_sub(b) as f64 / elapsed.as_nanos() as f64)
        }
        _ => None,
    };
    let (server_busy, load_busy) = match pinning {
        Pinning::Off => (busy_pct(&before, &after, None), None),
        Pinning::On { server, load } => (
            busy_pct(&before, &after, Some(&[*server])),
            busy_pct(&before, &after, Some(load)),
        ),
    };
    // Every thread of the server, obs's background ones included, must be
    // on the server's CPU.
    let threads = threads_of(pid);
    if let Pinning::On { server, .. } = pinning {
        let stray: Vec<String> = threads
            .iter()
            .filter(|(_, c)| c.as_deref() != Some(&[*server][..]))
            .map(|(n, c)| format!("{n} (CPU {})", c.as_deref().map_or("?".into(), cpu_list)))
            .collect();
        if !stray.is_empty() {
            return Err(format!(
                "pinning: server threads not on CPU {server}: {}",
                stray.join(", ")
            ));
        }
    }
    let server_threads = tally(threads.into_iter().map(|(n, _)| n));
    eprintln!(
        "http_bench: {config}: {:.0} requests/s, p50 {}, p99 {}; other processes {foreign:.0} % of a core{}",
        run.requests_per_sec,
        fmt_us(run.p50_us),
        fmt_us(run.p99_us),
        if foreign_top.is_empty() {
            String::new()
        } else {
            format!(" ({foreign_top})")
        }
    );

    // Closing stdin asks the child to shut down and flush.
    drop(guard.stdin.take());
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut child_report = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => child_report.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                child_report.push("(killed: did not stop in time)".into());
                break;
            }
        }
    }
    drop(guard);
    let _ = reader.join();

    let received = receiver.spans();
    let spans = received.len();
    let distinct_spans = received
        .iter()
        .map(|s| (s.trace_id(), s.span_id()))
        .collect::<std::collections::HashSet<_>>()
        .len();
    let mut names = BTreeMap::<String, usize>::new();
    for s in &received {
        *names.entry(s.name().to_owned()).or_default() += 1;
    }
    drop(received);
    let access_lines = count_lines(&log_path, "/hello/");
    // Its pages go back for the next configuration's log (see
    // `warm_page_cache`).
    let _ = std::fs::remove_file(&log_path);
    Ok(Outcome {
        config,
        round: 1,
        total_requests: warm.requests + run.requests,
        run,
        access_lines,
        spans,
        distinct_spans,
        span_names: names.into_iter().collect(),
        server_process,
        server_busy,
        load_busy,
        foreign,
        foreign_top,
        server_threads,
        child_report,
    })
}

/// Runs `wrk` for `secs` seconds; its run is bounded by `-d` and `--timeout`.
fn wrk(url: &str, load: &Load, secs: u64) -> Result<WrkResult, String> {
    let out = Command::new("wrk")
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{secs}s"))
        .args(["--timeout", "2s", "--latency"])
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}"))
}

/// Reads `wrk --latency`'s report: requests, requests/s, errors, mean
/// latency and the 50 % and 99 % points of the latency distribution.
fn parse_wrk(text: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut seen_rps = false;
    let mut seen_requests = false;
    let (mut avg, mut p50, mut p99) = (None, None, None);
    let mut in_distribution = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("Latency Distribution") {
            in_distribution = true;
        } else if in_distribution
            && let Some((pct, value)) = line.split_once(char::is_whitespace)
            && let Some(pct) = pct.strip_suffix('%')
        {
            match pct {
                "50" => p50 = parse_wrk_time(value.trim()),
                "99" => p99 = parse_wrk_time(value.trim()),
                _ => {}
            }
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v.trim().parse().ok()?;
            seen_rps = true;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            r.socket_errors = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("Latency") {
            // The thread statistics' line: average, stdev, max, +/- stdev.
            avg = v.split_whitespace().next().and_then(parse_wrk_time);
        } else if line.contains(" requests in ") {
            in_distribution = false;
            r.requests = line.split_whitespace().next()?.parse().ok()?;
            seen_requests = true;
        }
    }
    r.latency_avg_us = avg?;
    r.p50_us = p50?;
    r.p99_us = p99?;
    (seen_rps && seen_requests).then_some(r)
}

/// A duration as `wrk` prints it (`812.00us`, `1.23ms`, `2.00s`, `1.50m`),
/// in microseconds.
fn parse_wrk_time(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(n * scale)
}

/// Microseconds for the tables: `812 µs`, `1.23 ms`.
fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// Lines of `path` that contain `needle`, read a line at a time (a log of a
/// measured run is hundreds of megabytes); `None` when there is no such file.
fn count_lines(path: &Path, needle: &str) -> Option<u64> {
    let needle = needle.as_bytes();
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).ok()?);
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).ok()? == 0 {
            return Some(n);
        }
        if line.windows(needle.len()).any(|w| w == needle) {
            n += 1;
        }
    }
}

/// Writes `bytes` of zeros to a scratch file in `dir` and deletes it, before
/// anything is measured. In a virtual machine the first write to memory the
/// guest never touched costs the host a page fault per page; a
/// configuration whose log file grows the page cache into such memory pays
/// for it inside its measured run (the copy into the page cache took 14 % of
/// the server's core in one obs-sampled run and 0.4 % in the next). Each
/// configuration's log is deleted once counted, so later ones reuse the
/// pages this warmed.
fn warm_page_cache(dir: &Path, bytes: usize) -> Result<(), String> {
    let path = dir.join("page-cache-warmup");
    let chunk = vec![0u8; 1 << 20];
    let mut f =
        File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut written = 0;
    while written < bytes {
        f.write_all(&chunk)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written += chunk.len();
    }
    drop(f);
    std::fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

/// The median of `v`.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    })
}

/// The median over the rounds of one figure of `config`.
fn median_of(outcomes: &[Outcome], config: &str, f: impl Fn(&Outcome) -> f64) -> Option<f64> {
    median(
        outcomes
            .iter()
            .filter(|o| o.config == config)
            .map(f)
            .collect(),
    )
}

/// `2026-12-05 08:31 UTC` for `t`.
fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let (y, mo, d) = obs::core::units::civil_from_days(days);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

/// The machine, for the table's caption: CPUs, model, kernel, wrk.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".to_owned(), |k| k.trim().to_owned());
    let wrk = Command::new("wrk")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_else(|| "?".into());
    format!("{cpus} × {model}, Linux {kernel}, wrk {wrk}")
}

/// The command that reproduces this run: the `BENCH_*` settings given.
fn command_line() -> String {
    let mut vars: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("BENCH_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vars.sort();
    // The build's overrides (recorded by `build.rs`), so the command
    // rebuilds what was measured; a value with spaces is quoted.
    vars.extend(BUILD.split('\u{1f}').filter(|s| !s.is_empty()).map(
        |kv| match kv.split_once('=') {
            Some((k, v)) if v.contains(' ') => format!("{k}='{v}'"),
            _ => kv.to_owned(),
        },
    ));
    vars.push("cargo run --release -p obs-http-bench".into());
    vars.join(" ")
}

/// The build's overrides, as `KEY=value` pairs separated by 0x1f (empty
/// for the workspace's own release profile). A `static`: clippy would take
/// a `const` for a literal and call its emptiness always known.
static BUILD: &str = env!("HTTP_BENCH_BUILD");

/// The build, for the caption.
fn build_profile() -> String {
    let overrides = BUILD.replace('\u{1f}', ", ");
    match (env!("HTTP_BENCH_PROFILE"), overrides.is_empty()) {
        ("release", true) => {
            "the workspace's release profile (no LTO, 16 codegen units per crate)".into()
        }
        ("release", false) => format!("the release profile with `{overrides}`"),
        (other, _) => {
            format!("the `{other}` profile, NOT a release build: its figures say nothing about obs")
        }
    }
}

/// `pass`/`FAIL` of the targets for `config`'s share of bare, if it has any.
fn target_verdict(config: &str, pct: Option<f64>) -> Option<String> {
    let &(_, need, aim) = TARGETS.iter().find(|(c, _, _)| *c == config)?;
    let Some(pct) = pct else {
        return Some(format!("≥ {need:.0} %: – (no bare figure)"));
    };
    let verdict = |t: f64| if pct >= t { "pass" } else { "FAIL" };
    Some(format!(
        "≥ {need:.0} %: {} (aim {aim:.0} %: {})",
        verdict(need),
        verdict(aim)
    ))
}

fn print_report(outcomes: &[Outcome], load: &Load, pinning: &Pinning, started: SystemTime) {
    let bare_median = median_of(outcomes, "bare", |o| o.run.requests_per_sec);
    let pct_of_bare = |rps: f64, bare: Option<f64>| match bare {
        Some(b) if b > 0.0 => Some(100.0 * rps / b),
        _ => None,
    };
    let fmt_pct = |p: Option<f64>| p.map_or_else(|| "–".to_owned(), |p| format!("{p:.1} %"));

    println!();
    println!(
        "<!-- the table below is printed by http_bench (benches/http); regenerate it with the command in its caption -->"
    );
    println!(
        "Measured {} with `{}` on {}, built with {}; {}; `wrk -t{} -c{} -d{}s --latency` after a {} s warm-up, \
         `GET /hello/world`, {} round(s), configurations interleaved; medians over the rounds.",
        utc(started),
        command_line(),
        machine(),
        build_profile(),
        pinning.describe(),
        load.threads,
        load.connections,
        load.secs,
        load.warmup_secs,
        load.rounds
    );
    println!();
    println!(
        "| configuration | median requests/s | % of bare | p50 | p99 | target (% of bare) | requests/s each round |"
    );
    println!("|---|---:|---:|---:|---:|---|---|");
    let mut verdicts = Vec::new();
    for &config in CONFIGS {
        let Some(m) = median_of(outcomes, config, |o| o.run.requests_per_sec) else {
            continue;
        };
        let p50 = median_of(outcomes, config, |o| o.run.p50_us).unwrap_or(0.0);
        let p99 = median_of(outcomes, config, |o| o.run.p99_us).unwrap_or(0.0);
        let each: Vec<String> = outcomes
            .iter()
            .filter(|o| o.config == config)
            .map(|o| format!("{:.0}", o.run.requests_per_sec))
            .collect();
        let pct = pct_of_bare(m, bare_median);
        let target = target_verdict(config, pct);
        if let Some(t) = &target {
            verdicts.push(format!("- {config}: {} of bare, target {t}", fmt_pct(pct)));
        }
        println!(
            "| {config} | {m:.0} | {} | {} | {} | {} | {} |",
            fmt_pct(pct),
            fmt_us(p50),
            fmt_us(p99),
            target.as_deref().unwrap_or("–"),
            each.join(", ")
        );
    }
    println!();
    if !verdicts.is_empty() {
        println!(
            "Targets (median requests/s as a share of bare's, defined for the pinned run: server on one core, wrk and receiver on the other){}:",
            if *pinning == Pinning::Off {
                "; this run is unpinned, so its verdicts are indicative only"
            } else {
                ""
            }
        );
        println!();
        for v in &verdicts {
            println!("{v}");
        }
        println!();
    }
    println!(
        "Latencies are `wrk`'s, closed-loop: each connection waits for its answer before the next \
         request, so the tail is understated (coordinated omission) and compares the configurations \
         under the same load only."
    );

    println!();
    println!(
        "| round | configuration | requests/s | % of bare (same round) | p50 | p99 | avg latency | CPU: server process / server core / load cores | other processes | requests (warm-up + run) | access log lines | spans received (distinct) | lines / spans short of requests |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|");
    for o in outcomes {
        let bare = outcomes
            .iter()
            .find(|b| b.config == "bare" && b.round == o.round)
            .map(|b| b.run.requests_per_sec);
        let pct0 = |p: Option<f64>| p.map_or_else(|| "–".to_owned(), |p| format!("{p:.0} %"));
        let busy = match o.load_busy {
            Some(l) => format!(
                "{} / {} / {l:.0} %",
                pct0(o.server_process),
                pct0(o.server_busy)
            ),
            None => format!(
                "{} / {} (machine) / –",
                pct0(o.server_process),
                pct0(o.server_busy)
            ),
        };
        let short = |n: Option<u64>| n.map_or_else(|| "–".to_owned(), |n| n.to_string());
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.0} % | {} | {} | {} | {} / {} |",
            o.round,
            o.config,
            o.run.requests_per_sec,
            fmt_pct(pct_of_bare(o.run.requests_per_sec, bare)),
            fmt_us(o.run.p50_us),
            fmt_us(o.run.p99_us),
            fmt_us(o.run.latency_avg_us),
            busy,
            o.foreign,
            o.total_requests,
            o.access_lines.map_or("–".into(), |n| n.to_string()),
            if o.config == "bare" {
                "–".into()
            } else {
                format!("{} ({})", o.spans, o.distinct_spans)
            },
            short(o.lines_short()),
            short(o.spans_short()),
        );
    }
    println!();
    let disturbed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.foreign >= DISTURBED_PCT)
        .map(|o| {
            format!(
                "round {} {}: {:.0} % of a core ({})",
                o.round, o.config, o.foreign, o.foreign_top
            )
        })
        .collect();
    if disturbed.is_empty() {
        println!(
            "Undisturbed: other processes used less than {DISTURBED_PCT:.0} % of a core during every measured run."
        );
    } else {
        println!(
            "DISTURBED: other processes ran during these measured runs; their figures are not the server's own (run again on a quiet machine):"
        );
        for d in disturbed {
            println!("- {d}");
        }
    }
    println!();
    // A closed-loop figure is the server's own cost only while the server's
    // core has no idle time: otherwise the load side (wrk, the receiver)
    // held it back part of the run. A saturated load core is the same
    // caveat from the other side.
    let held_back: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            // Pinned runs only: an unpinned run has no load core.
            let (Some(server), Some(load)) = (o.server_busy, o.load_busy) else {
                return None;
            };
            let mut why = Vec::new();
            if server < SATURATED_PCT {
                why.push(format!(
                    "the server's core was idle {:.0} % of it",
                    100.0 - server
                ));
            }
            if load >= SATURATED_PCT {
                why.push(format!("the load core was {load:.0} % busy"));
            }
            (!why.is_empty()).then(|| format!("round {} {}: {}", o.round, o.config, why.join(", ")))
        })
        .collect();
    if held_back.is_empty() {
        println!(
            "Server-bound: in every pinned run the server's core was at least {SATURATED_PCT:.0} % busy and the load core below it."
        );
    } else {
        println!(
            "Not server-bound: in these runs the load side set part of the pace, so the figure understates (idle server core) or may cap (busy load core) what the server could serve; more connections (`BENCH_CONNECTIONS`) keep the server's core busy:"
        );
        for h in held_back {
            println!("- {h}");
        }
    }
    println!();
    let lost: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            let lines = o.lines_short().filter(|&n| n > 0);
            let spans = o.spans_short().filter(|&n| n > 0);
            (lines.is_some() || spans.is_some()).then(|| {
                format!(
                    "round {} {}: {} access lines and {} spans short of the requests",
                    o.round,
                    o.config,
                    lines.unwrap_or(0),
                    spans.unwrap_or(0)
                )
            })
        })
        .collect();
    if lost.is_empty() {
        println!(
            "Nothing lost: every configuration with a log file wrote an access line, and every one that exports spans delivered a span, for each request wrk completed."
        );
    } else {
        println!("Lost (compare with each server's own report below):");
        for l in lost {
            println!("- {l}");
        }
    }
    println!();
    for o in outcomes {
        if o.run.non_2xx > 0 || !o.run.socket_errors.is_empty() {
            println!(
                "round {} {}: non-2xx responses {}, socket errors: {}",
                o.round,
                o.config,
                o.run.non_2xx,
                if o.run.socket_errors.is_empty() {
                    "none"
                } else {
                    &o.run.socket_errors
                }
            );
        }
        if !o.span_names.is_empty() {
            let names: Vec<String> = o
                .span_names
                .iter()
                .map(|(n, c)| format!("{n:?} × {c}"))
                .collect();
            println!(
                "round {} {}: spans by name: {}",
                o.round,
                o.config,
                names.join(", ")
            );
        }
        println!(
            "round {} {}: server threads: {}",
            o.round, o.config, o.server_threads
        );
        for line in &o.child_report {
            println!("round {} {}: {line}", o.round, o.config);
        }
    }
}

// ----------------------------------------------------------------- child ---

fn serve(args: &[String]) -> Result<(), String> {
    let [config, otlp_http_url, otlp_grpc_url, log_path] = args else {
        return Err("usage: http_bench serve CONFIG OTLP_HTTP_URL OTLP_GRPC_URL LOG_FILE".into());
    };
    let log_path = PathBuf::from(log_path);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    match config.as_str() {
        "bare" => rt.block_on(serve_app(app())),
        "by-hand" => serve_by_hand(&rt, &log_path),
        "obs-unsampled" => serve_obs(&rt, false, "http/protobuf", otlp_http_url, &log_path),
        "obs-sampled" => serve_obs(&rt, true, "http/protobuf", otlp_http_url, &log_path),
        "obs-sampled-grpc" => serve_obs(&rt, true, "grpc", otlp_grpc_url, &log_path),
        "hand-glued" => serve_hand_glued(&rt, otlp_grpc_url, &log_path),
        other => Err(format!(
            "unknown configuration {other:?} (expected one of {CONFIGS:?})"
        )),
    }
}

async fn hello(axum::extract::Path(name): axum::extract::Path<String>) -> String {
    format!("Hello, {name}!")
}

fn app() -> Router {
    Router::new().route("/hello/{name}", get(hello))
}

/// Binds a free loopback port, prints it, serves until stdin closes.
async fn serve_app(app: Router) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {addr}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    let stop = async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(stop);
    server.await.map_err(|e| format!("server: {e}"))
}

fn serve_obs(
    rt: &tokio::runtime::Runtime,
    sampled: bool,
    protocol: &str,
    otlp_url: &str,
    log_path: &Path,
) -> Result<(), String> {
    let sampler = if sampled { "always_on" } else { "always_off" };
    let lookup = |k: &str| -> Option<String> {
        match k {
            "OTEL_SERVICE_NAME" => Some(SERVICE.into()),
            "OTEL_TRACES_SAMPLER" => Some(sampler.into()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(otlp_url.into()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some(protocol.into()),
            // Spans only, like the hand-glued stack: the log lines go to the
            // file, not also over OTLP.
            "OTEL_LOGS_EXPORTER" => Some("none".into()),
            // Anything else (`OBS_LOG=off`, `OTEL_BSP_MAX_QUEUE_SIZE`, …)
            // comes from the environment, to try variations.
            _ => std::env::var(k).ok(),
        }
    };
    let file =
        File::create(log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let config = obs::Config::from_lookup(lookup)
        .map_err(|e| e.to_string())?
        .log(|l| l.writer(file).non_blocking(obs::log::NonBlocking::new()));
    rt.block_on(async {
        let obs = obs::init(config).map_err(|e| e.to_string())?;
        let served = serve_app(app().layer(obs.server_layer())).await;
        let report = obs.shutdown(STOP_TIMEOUT).await;
        println!("obs shutdown: {report}");
        served
    })
}

/// obs's unsampled behaviours written by hand (see `by_hand.rs`), its lines
/// to the log file.
fn serve_by_hand(rt: &tokio::runtime::Runtime, log_path: &Path) -> Result<(), String> {
    let file =
        File::create(log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let stack = by_hand::ByHand::new(SERVICE, file);
    let served = rt.block_on(serve_app(app().layer(stack.layer())));
    let (written, dropped) = stack.finish();
    println!("by-hand shutdown: {written} lines written, {dropped} dropped");
    served
}

/// Labels of the anchor's request-duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

type DurationFamily = prometheus_client::metrics::family::Family<
    RouteLabels,
    prometheus_client::metrics::histogram::Histogram,
    fn() -> prometheus_client::metrics::histogram::Histogram,
>;

fn new_histogram() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(
        obs::core::names::HTTP_DURATION_BUCKETS.iter().copied(),
    )
}

/// The anchor's metrics middleware: one histogram observation per request.
async fn record_duration(
    State(family): State<Arc<DurationFamily>>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    family
        .get_or_create(&RouteLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .observe(start.elapsed().as_secs_f64());
    response
}

fn serve_hand_glued(
    rt: &tokio::runtime::Runtime,
    otlp_url: &str,
    log_path: &Path,
) -> Result<(), String> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tower::ServiceBuilder;
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let file =
        File::create(log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let (writer, log_guard) = tracing_appender::non_blocking(file);
    let log_errors = writer.error_counter();

    rt.block_on(async {
        // The tonic channel's connection task lives on this runtime.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(otlp_url)
            .build()
            .map_err(|e| format!("otlp exporter: {e}"))?;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(SERVICE)
                    .build(),
            )
            .build();
        let tracer = provider.tracer(SERVICE);
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(tracing_subscriber::fmt::layer().json().with_writer(writer))
            .with(tracing_opentelemetry::layer().with_tracer(tracer))
            .try_init()
            .map_err(|e| format!("subscriber: {e}"))?;

        let registry = {
            let mut registry = prometheus_client::registry::Registry::default();
            let family: DurationFamily =
                DurationFamily::new_with_constructor(new_histogram as fn() -> _);
            registry.register(
                "http_server_request_duration_seconds",
                "Duration of HTTP server requests",
                family.clone(),
            );
            (registry, Arc::new(family))
        };
        let (_registry, family) = registry;

        let app = app()
            .layer(middleware::from_fn_with_state(family, record_duration))
            .layer(
                ServiceBuilder::new()
                    .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                    .layer(
                        TraceLayer::new_for_http()
                            .make_span_with(
                                DefaultMakeSpan::new()
                                    .level(tracing::Level::INFO)
                                    .include_headers(false),
                            )
                            .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                    )
                    .layer(PropagateRequestIdLayer::x_request_id()),
            );
        let served = serve_app(app).await;
        let shutdown = tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .map_err(|e| format!("tracer shutdown task: {e}"))?;
        println!(
            "opentelemetry_sdk shutdown: {}",
            match shutdown {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.to_string(),
            }
        );
        served
    })?;
    drop(log_guard);
    println!(
        "tracing-appender: {} lines dropped (its error counter)",
        log_errors.dropped_lines()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 8s test @ http://127.0.0.1:40000/hello/world
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.33us  101.20us   4.56ms   90.00%
    Req/Sec    78.00k     2.00k   80.00k    70.00%
  Latency Distribution
     50%  398.00us
     75%  450.00us
     90%  520.00us
     99%    1.23ms
  624000 requests in 8.00s, 80.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  77999.50
Transfer/sec:     10.00MB
";

    #[test]
    fn reads_wrk_latency_distribution() {
        let r = parse_wrk(WRK).expect("parsed");
        assert_eq!(r.requests, 624_000);
        assert!((r.requests_per_sec - 77_999.5).abs() < 1e-9);
        assert_eq!(r.non_2xx, 3);
        assert!((r.latency_avg_us - 412.33).abs() < 1e-9);
        assert!((r.p50_us - 398.0).abs() < 1e-9);
        assert!((r.p99_us - 1230.0).abs() < 1e-9);
        // Without `--latency` there is no distribution: not a result.
        let from = WRK.find("  Latency Distribution").expect("distribution");
        let to = WRK.find("  624000 requests").expect("summary");
        let plain = format!("{}{}", &WRK[..from], &WRK[to..]);
        assert!(!plain.contains("99%"));
        assert!(plain.contains("Requests/sec"));
        assert!(parse_wrk(&plain).is_none());
    }

    #[test]
    fn reads_wrk_times() {
        assert_eq!(parse_wrk_time("812.00us"), Some(812.0));
        assert_eq!(parse_wrk_time("2.00s"), Some(2e6));
        assert_eq!(parse_wrk_time("1.50m"), Some(90e6));
        assert_eq!(parse_wrk_time("12"), None);
        assert_eq!(parse_wrk_time("1.0x"), None);
        assert_eq!(fmt_us(812.4), "812 µs");
        assert_eq!(fmt_us(1234.0), "1.23 ms");
    }

    #[test]
    fn reads_cpu_lists() {
        assert_eq!(parse_cpu_list("0-1"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0-2,6, 4"), Some(vec![0, 1, 2, 4, 6]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("2-1"), None);
        assert_eq!(
            allowed_cpus("Name:\tx\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n"),
            Some(vec![0, 1])
        );
        assert_eq!(cpu_list(&[0, 2, 3]), "0,2,3");
    }

    #[test]
    fn medians_and_targets() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
        assert_eq!(
            target_verdict("obs-unsampled", Some(87.0)).as_deref(),
            Some("≥ 85 %: pass (aim 90 %: FAIL)")
        );
        assert_eq!(
            target_verdict("obs-sampled", Some(74.9)).as_deref(),
            Some("≥ 75 %: FAIL (aim 85 %: FAIL)")
        );
        assert_eq!(target_verdict("hand-glued", Some(50.0)), None);
    }

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        // 1_780_000_000 s after the epoch is 2026-05-28 20:26:40 UTC.
        assert_eq!(utc(t), "2026-05-28 20:26 UTC");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(leap), "2000-02-29 00:00 UTC");
    }
}
