//! `cargo xtask soak [--minutes N]`: the `service` example under load on
//! loopback, with faults injected on a schedule, then SIGTERM under load.
//!
//! Everything runs on this machine and stops by itself: the service binds
//! 127.0.0.1 on free ports, the load generator and the OTLP collector it
//! exports to live in this process, and every phase lasts a fixed time.
//!
//! Phases (lengths scale with `--minutes`; the default 10 gives the lengths
//! in brackets): healthy [60 s]; the collector down (connections reset)
//! [60 s], hung (accepts, never answers) [60 s], answering 503 [60 s];
//! stdout blocked (the pipe is not read) [30 s]; a panic storm (half the
//! requests hit a handler that panics) [60 s]; a cardinality attack (unique
//! paths, methods and header values) [60 s]; then SIGTERM while the load
//! goes on.
//!
//! One row per phase: requests, p50 and p99 against the healthy phase, the
//! service's RSS at start, peak and end, log lines expected (one access line
//! per request), written (read from the pipe) and counted as dropped, spans
//! expected (ended), received by the collector and counted as dropped, error
//! reports, and the slowest probe. Then the checks: each fault phase's p99
//! within 2× the healthy p99 (plus 5 ms, the resolution of a debug build's
//! scheduling on two cores), RSS growth under 50 MB, every log line and span
//! delivered or counted as dropped exactly, no probe slower than 1 s, exit
//! within grace + timeout + 1 s of SIGTERM. A failed check fails the command.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::say;

const GRACE_MS: u64 = 500;
const TIMEOUT_MS: u64 = 3000;
const PROBE_BOUND: Duration = Duration::from_secs(1);
const RSS_GROWTH_BOUND: u64 = 50 * 1024 * 1024;
const LOAD_WORKERS: usize = 4;
/// Requests per second per worker: a steady, open-ended load the service
/// handles with room to spare when healthy, so latency shows stalls.
const WORKER_RATE: u64 = 100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None,
    CollectorDown,
    CollectorHung,
    Collector503,
    StdoutBlocked,
    PanicStorm,
    Cardinality,
}

struct Phase {
    name: &'static str,
    fault: Fault,
    /// Length in units of `--minutes × 60 / 6.5` seconds.
    weight: f64,
}

const PHASES: &[Phase] = &[
    Phase {
        name: "healthy",
        fault: Fault::None,
        weight: 1.0,
    },
    Phase {
        name: "collector down",
        fault: Fault::CollectorDown,
        weight: 1.0,
    },
    Phase {
        name: "collector hung",
        fault: Fault::CollectorHung,
        weight: 1.0,
    },
    Phase {
        name: "collector 503",
        fault: Fault::Collector503,
        weight: 1.0,
    },
    Phase {
        name: "stdout blocked",
        fault: Fault::StdoutBlocked,
        weight: 0.5,
    },
    Phase {
        name: "panic storm",
        fault: Fault::PanicStorm,
        weight: 1.0,
    },
    Phase {
        name: "cardinality attack",
        fault: Fault::Cardinality,
        weight: 1.0,
    },
];

pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let minutes: f64 = match args.iter().position(|a| a == "--minutes") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|m: &f64| m.is_finite() && *m > 0.0 && *m <= 120.0)
            .ok_or("--minutes takes a number of minutes in (0, 120]")?,
        None => 10.0,
    };
    let unit =
        Duration::from_secs_f64(minutes * 60.0 / PHASES.iter().map(|p| p.weight).sum::<f64>());
    let bin = build_service(root)?;
    let collector = Collector::start()?;
    let mut svc = Service::start(&bin, collector.addr)?;
    say(&format!(
        "soak: service pid {} on {} (admin {}), collector {}, {minutes} min",
        svc.child.id(),
        svc.api,
        svc.admin,
        collector.addr
    ));

    let phase_index = Arc::new(AtomicUsize::new(0));
    let stop_load = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<Vec<Duration>>>> =
        Arc::new(Mutex::new(vec![Vec::new(); PHASES.len() + 1]));
    let probe_max: Arc<Mutex<Vec<Duration>>> =
        Arc::new(Mutex::new(vec![Duration::ZERO; PHASES.len() + 1]));
    let failures_http = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for w in 0..LOAD_WORKERS {
        let (api, phase_index, stop, samples, failures) = (
            svc.api,
            phase_index.clone(),
            stop_load.clone(),
            samples.clone(),
            failures_http.clone(),
        );
        threads.push(std::thread::spawn(move || {
            load_worker(w, api, &phase_index, &stop, &samples, &failures)
        }));
    }
    {
        let (admin, phase_index, stop, probe_max) = (
            svc.admin,
            phase_index.clone(),
            stop_load.clone(),
            probe_max.clone(),
        );
        threads.push(std::thread::spawn(move || {
            prober(admin, &phase_index, &stop, &probe_max)
        }));
    }
    let rss = RssSampler::start(svc.child.id());

    let mut rows = Vec::new();
    for (i, phase) in PHASES.iter().enumerate() {
        let before = scrape(svc.admin)?;
        let lines_before = svc.lines.count.load(Ordering::SeqCst);
        let received_before = collector.spans.load(Ordering::SeqCst);
        rss.mark();
        phase_index.store(i, Ordering::SeqCst);
        collector.set(phase.fault);
        svc.lines
            .paused
            .store(phase.fault == Fault::StdoutBlocked, Ordering::SeqCst);
        std::thread::sleep(unit.mul_f64(phase.weight));
        svc.lines.paused.store(false, Ordering::SeqCst);
        collector.set(Fault::None);
        // Let the backlog of a blocked pipe or a failing collector settle
        // before the next phase's counters are taken.
        std::thread::sleep(Duration::from_secs(1));
        let after = scrape(svc.admin)?;
        let lat = std::mem::take(&mut lock(&samples)[i]);
        rows.push(Row {
            name: phase.name,
            requests: lat.len() as u64,
            p50: percentile(&lat, 0.50),
            p99: percentile(&lat, 0.99),
            rss: rss.take(),
            lines_written: svc.lines.count.load(Ordering::SeqCst) - lines_before,
            lines_dropped: after.sum("obs_log_dropped_lines_total")
                - before.sum("obs_log_dropped_lines_total"),
            spans_ended: after.sum("obs_trace_ended_spans_total")
                - before.sum("obs_trace_ended_spans_total"),
            spans_received: collector.spans.load(Ordering::SeqCst) - received_before,
            spans_dropped: after.sum("obs_trace_dropped_spans_total")
                - before.sum("obs_trace_dropped_spans_total"),
            error_reports: after.sum("obs_errors_total") - before.sum("obs_errors_total"),
            probe_max: lock(&probe_max)[i],
        });
    }

    // SIGTERM under load.
    let last = scrape(svc.admin)?;
    phase_index.store(PHASES.len(), Ordering::SeqCst);
    let sent = Instant::now();
    svc.sigterm()?;
    let exited = svc.wait_exit(Duration::from_millis(GRACE_MS + TIMEOUT_MS + 10_000));
    let exit_after = sent.elapsed();
    stop_load.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    let report = svc.lines.report(Duration::from_secs(5));

    print_table(&rows, exit_after);
    let mut problems = Vec::new();
    check(&rows, &mut problems);
    if exited.is_none() {
        problems.push(format!(
            "the service did not exit within {:?} of SIGTERM",
            exit_after
        ));
    } else if exit_after > Duration::from_millis(GRACE_MS + TIMEOUT_MS + 1000) {
        problems.push(format!(
            "exit took {exit_after:?} after SIGTERM, over grace {GRACE_MS} ms + timeout {TIMEOUT_MS} ms + 1 s"
        ));
    }
    match report {
        None => problems.push("no shutdown report on stdout".into()),
        Some(r) => {
            let written = r["log_lines_written"].as_u64().unwrap_or(u64::MAX);
            let read = svc.lines.counted.load(Ordering::SeqCst);
            say(&format!(
                "soak: log lines read from the pipe {read}, written per obs {written}, dropped per obs {}; spans received {}, exported per obs {}, dropped per obs {}, ended before SIGTERM {}",
                r["log_lines_dropped"],
                collector.spans.load(Ordering::SeqCst),
                r["spans_exported"],
                r["spans_dropped"],
                last.sum("obs_trace_ended_spans_total"),
            ));
            if read != written {
                problems.push(format!(
                    "log lines: {read} read from the pipe, obs counted {written} written"
                ));
            }
            let exported = r["spans_exported"].as_u64().unwrap_or(0);
            let dropped = r["spans_dropped"].as_u64().unwrap_or(0);
            let received = collector.spans.load(Ordering::SeqCst);
            if received != exported {
                problems.push(format!(
                    "spans: the collector received {received}, obs counted {exported} exported"
                ));
            }
            let ended = last.sum("obs_trace_ended_spans_total");
            if exported + dropped < ended {
                problems.push(format!(
                    "spans: {ended} ended before SIGTERM but only {exported} exported + {dropped} dropped at exit"
                ));
            }
        }
    }
    if problems.is_empty() {
        say("soak: every check passed");
        Ok(())
    } else {
        for p in &problems {
            say(&format!("soak: FAILED: {p}"));
        }
        Err(format!("{} soak check(s) failed", problems.len()))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn build_service(root: &Path) -> Result<std::path::PathBuf, String> {
    let status = Command::new(crate::cargo())
        .current_dir(root)
        .args(["build", "--quiet", "-p", "examples", "--bin", "service"])
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err("building the service example failed".into());
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    Ok(target.join("debug").join("service"))
}

// ---------------------------------------------------------------- service

/// The service's stdout: every line counted, obs's own lines apart, and
/// reading paused on demand (the pipe then fills and the service's writes
/// block, as with a stuck log forwarder).
#[derive(Default)]
struct Lines {
    paused: AtomicBool,
    /// Every line read.
    count: AtomicU64,
    /// Lines obs counts as written: all but its own summaries and the
    /// service's final report.
    counted: AtomicU64,
    listening: Mutex<Option<serde_json::Value>>,
    report: Mutex<Option<serde_json::Value>>,
}

impl Lines {
    fn read(self: Arc<Self>, out: impl Read + Send + 'static) {
        std::thread::spawn(move || {
            let mut r = BufReader::with_capacity(4096, out);
            let mut line = String::new();
            loop {
                while self.paused.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                self.count.fetch_add(1, Ordering::SeqCst);
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if v["message"] == "obs shutdown report" {
                    *lock(&self.report) = Some(v);
                    continue;
                }
                if v["message"] == "service listening" {
                    *lock(&self.listening) = Some(v.clone());
                }
                if v["target"] != "obs_log" {
                    self.counted.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }

    fn report(&self, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = lock(&self.report).clone() {
                return Some(r);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

struct Service {
    child: Child,
    lines: Arc<Lines>,
    api: SocketAddr,
    admin: SocketAddr,
}

impl Service {
    fn start(bin: &Path, collector: SocketAddr) -> Result<Self, String> {
        let mut cmd = Command::new(bin);
        // The soak decides the whole configuration. `RUST_BACKTRACE` would
        // make std's own panic hook symbolize and print a backtrace for every
        // panic of the storm: std's cost, not the service's.
        for (k, _) in std::env::vars() {
            if k.starts_with("OTEL_") || k.starts_with("OBS_") || k.starts_with("RUST_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("ADMIN_PORT", "0")
            .env("FAULT_ROUTES", "1")
            .env("SHUTDOWN_GRACE_MS", GRACE_MS.to_string())
            .env("SHUTDOWN_TIMEOUT_MS", TIMEOUT_MS.to_string())
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
            .env("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("OBS_LOG_QUEUE_LINES", "1024")
            .env_remove("PRICE_SERVICE_URL")
            .env_remove("DATABASE_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let lines = Arc::new(Lines::default());
        lines
            .clone()
            .read(child.stdout.take().ok_or("no stdout pipe")?);
        let deadline = Instant::now() + Duration::from_secs(60);
        let listening = loop {
            if let Some(v) = lock(&lines.listening).clone() {
                break v;
            }
            if let Ok(Some(s)) = child.try_wait() {
                return Err(format!("the service exited before listening: {s}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("the service did not start listening within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let addr = |k: &str| -> Result<SocketAddr, String> {
            listening[k]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("no {k} in the startup line {listening}"))
        };
        Ok(Self {
            api: addr("http.addr")?,
            admin: addr("admin.addr")?,
            child,
            lines,
        })
    }

    fn sigterm(&self) -> Result<(), String> {
        let s = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        s.success()
            .then_some(())
            .ok_or_else(|| format!("kill -TERM: {s}"))
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ load

/// A minimal HTTP/1.1 keep-alive client: enough for a load generator that
/// must not be the bottleneck nor pull in a runtime.
struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None }
    }

    /// Sends one request; returns the status and the body.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
    ) -> Result<(u16, Vec<u8>), String> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            self.stream = Some(BufReader::new(s));
        }
        let r = self.exchange(method, path, headers);
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
    ) -> Result<(u16, Vec<u8>), String> {
        let s = self.stream.as_mut().ok_or("not connected")?;
        let req = format!("{method} {path} HTTP/1.1\r\nHost: soak\r\n{headers}\r\n");
        s.get_mut()
            .write_all(req.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        s.read_line(&mut line).map_err(|e| e.to_string())?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let (mut len, mut chunked, mut close) = (0usize, false, false);
        loop {
            line.clear();
            s.read_line(&mut line).map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().map_err(|_| format!("bad length {l:?}"))?;
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            } else if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                s.read_line(&mut line).map_err(|e| e.to_string())?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(|_| "bad chunk size")?;
                let mut chunk = vec![0; n + 2];
                s.read_exact(&mut chunk).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(len, 0);
            s.read_exact(&mut body).map_err(|e| e.to_string())?;
        }
        if close {
            self.stream = None;
        }
        Ok((status, body))
    }
}

fn load_worker(
    w: usize,
    api: SocketAddr,
    phase: &AtomicUsize,
    stop: &AtomicBool,
    samples: &Mutex<Vec<Vec<Duration>>>,
    failures: &AtomicU64,
) {
    let mut conn = Conn::new(api);
    let period = Duration::from_micros(1_000_000 / WORKER_RATE);
    let mut next = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        next += period;
        let p = phase.load(Ordering::SeqCst);
        n += 1;
        let fault = PHASES.get(p).map_or(Fault::None, |ph| ph.fault);
        let uniq = format!("{w}-{n}");
        let (method, path, headers) = match fault {
            Fault::PanicStorm if n.is_multiple_of(2) => {
                ("GET", "/internal/panic".to_owned(), String::new())
            }
            Fault::Cardinality => match n % 3 {
                0 => ("GET", format!("/items/x{uniq}/unknown"), String::new()),
                1 => (
                    "GET",
                    "/items".to_owned(),
                    format!("x-correlation-id: soak-{uniq}\r\nx-tenant-{uniq}: {uniq}\r\n"),
                ),
                _ => ("PROPFIND", "/items".to_owned(), String::new()),
            },
            _ => ("GET", "/items".to_owned(), String::new()),
        };
        let started = Instant::now();
        match conn.request(method, &path, &headers) {
            Ok(_) => {
                let took = started.elapsed();
                if let Some(v) = lock(samples).get_mut(p) {
                    v.push(took);
                }
            }
            Err(_) => {
                failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

fn prober(admin: SocketAddr, phase: &AtomicUsize, stop: &AtomicBool, max: &Mutex<Vec<Duration>>) {
    let mut conn = Conn::new(admin);
    while !stop.load(Ordering::SeqCst) {
        let p = phase.load(Ordering::SeqCst);
        for path in ["/livez", "/readyz"] {
            let started = Instant::now();
            let _ = conn.request("GET", path, "");
            let took = started.elapsed();
            if let Some(m) = lock(max).get_mut(p) {
                *m = (*m).max(took);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// --------------------------------------------------------------- metrics

/// One scrape of `/metrics`: every sample, by metric name.
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// The sum of every series of `name`.
    fn sum(&self, name: &str) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| *v)
            .sum::<f64>() as u64
    }
}

fn scrape(admin: SocketAddr) -> Result<Scrape, String> {
    let (status, body) = Conn::new(admin).request("GET", "/metrics", "")?;
    if status != 200 {
        return Err(format!("/metrics answered {status}"));
    }
    let text = String::from_utf8_lossy(&body);
    let mut m = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((series, value)) = line.rsplit_once(' ')
            && let Ok(v) = value.parse::<f64>()
        {
            m.insert(series.to_owned(), v);
        }
    }
    Ok(Scrape(m))
}

// ------------------------------------------------------------------- RSS

/// Samples the service's resident set every 100 ms: the peak and the last
/// value since the previous `take`.
struct RssSampler {
    state: Arc<Mutex<(u64, u64, u64)>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let state = Arc::new(Mutex::new((0u64, 0u64, 0u64)));
        let s = state.clone();
        std::thread::spawn(move || {
            while let Some(rss) = rss_bytes(pid) {
                let mut st = lock(&s);
                if st.0 == 0 {
                    st.0 = rss;
                }
                st.1 = st.1.max(rss);
                st.2 = rss;
                drop(st);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self { state }
    }

    /// Starts a new window at the current value.
    fn mark(&self) {
        let mut st = lock(&self.state);
        let now = st.2;
        *st = (now, now, now);
    }

    /// (start, peak, end) of the window.
    fn take(&self) -> (u64, u64, u64) {
        *lock(&self.state)
    }
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

// ------------------------------------------------------------- collector

/// An OTLP/HTTP collector whose behaviour changes per phase: it counts the
/// spans of each request it accepts (200), or resets connections, or holds
/// them without answering, or answers 503.
struct Collector {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    spans: Arc<AtomicU64>,
}

impl Collector {
    fn start() -> Result<Self, String> {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        let mode = Arc::new(AtomicU8::new(Fault::None as u8));
        let spans = Arc::new(AtomicU64::new(0));
        let (m, sp) = (mode.clone(), spans.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let (m, sp) = (m.clone(), sp.clone());
                std::thread::spawn(move || serve_collector(conn, &m, &sp));
            }
        });
        Ok(Self { addr, mode, spans })
    }

    fn set(&self, fault: Fault) {
        self.mode.store(fault as u8, Ordering::SeqCst);
    }
}

fn serve_collector(conn: TcpStream, mode: &AtomicU8, spans: &AtomicU64) {
    let mut r = BufReader::new(conn);
    loop {
        let m = mode.load(Ordering::SeqCst);
        if m == Fault::CollectorDown as u8 {
            return; // dropping the socket resets the connection
        }
        let mut line = String::new();
        if r.read_line(&mut line).map_or(true, |n| n == 0) {
            return;
        }
        // The service exports log records too (`POST /v1/logs`, the same
        // nesting as spans on the wire): only span requests are counted.
        let traces = line
            .split(' ')
            .nth(1)
            .is_some_and(|p| p.starts_with("/v1/traces"));
        let mut len = 0usize;
        loop {
            line.clear();
            if r.read_line(&mut line).map_or(true, |n| n == 0) {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let m = mode.load(Ordering::SeqCst);
        let reply: &[u8] = if m == Fault::CollectorHung as u8 {
            // Hold the connection and never answer, until the phase ends.
            while mode.load(Ordering::SeqCst) == Fault::CollectorHung as u8 {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        } else if m == Fault::CollectorDown as u8 {
            return;
        } else if m == Fault::Collector503 as u8 {
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
        } else {
            if traces {
                spans.fetch_add(count_spans(&body), Ordering::SeqCst);
            }
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        };
        if r.get_mut().write_all(reply).is_err() {
            return;
        }
    }
}

/// Counts the spans of an `ExportTraceServiceRequest` by walking the
/// protobuf wire format: resource_spans (1) → scope_spans (2) → spans (2).
fn count_spans(body: &[u8]) -> u64 {
    fn fields(b: &[u8], mut f: impl FnMut(u64, &[u8])) {
        let mut i = 0;
        while i < b.len() {
            let Some((key, n)) = varint(&b[i..]) else {
                return;
            };
            i += n;
            match key & 7 {
                0 => match varint(&b[i..]) {
                    Some((_, n)) => i += n,
                    None => return,
                },
                1 => i += 8,
                5 => i += 4,
                2 => {
                    let Some((len, n)) = varint(&b[i..]) else {
                        return;
                    };
                    i += n;
                    let end = i + len as usize;
                    if end > b.len() {
                        return;
                    }
                    f(key >> 3, &b[i..end]);
                    i = end;
                }
                _ => return,
            }
        }
    }
    fn varint(b: &[u8]) -> Option<(u64, usize)> {
        let mut v = 0u64;
        for (i, &c) in b.iter().enumerate().take(10) {
            v |= u64::from(c & 0x7f) << (7 * i);
            if c & 0x80 == 0 {
                return Some((v, i + 1));
            }
        }
        None
    }
    let mut n = 0;
    fields(body, |f, rs| {
        if f == 1 {
            fields(rs, |f, ss| {
                if f == 2 {
                    fields(ss, |f, _| n += u64::from(f == 2));
                }
            });
        }
    });
    n
}

// ----------------------------------------------------------------- report

struct Row {
    name: &'static str,
    requests: u64,
    p50: Duration,
    p99: Duration,
    rss: (u64, u64, u64),
    lines_written: u64,
    lines_dropped: u64,
    spans_ended: u64,
    spans_received: u64,
    spans_dropped: u64,
    error_reports: u64,
    probe_max: Duration,
}

fn percentile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    s[((s.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn mb(b: u64) -> String {
    format!("{:.1}", b as f64 / 1024.0 / 1024.0)
}

fn print_table(rows: &[Row], exit_after: Duration) {
    let healthy = rows.first().map_or(Duration::ZERO, |r| r.p99);
    say(
        "| phase | requests | p50 ms | p99 ms | p99 / healthy | RSS start / peak / end MB | log lines expected / written / dropped | spans ended / received / dropped | error reports | slowest probe ms |",
    );
    say("|---|---:|---:|---:|---:|---|---|---|---:|---:|");
    for r in rows {
        say(&format!(
            "| {} | {} | {} | {} | {:.2} | {} / {} / {} | {} / {} / {} | {} / {} / {} | {} | {} |",
            r.name,
            r.requests,
            ms(r.p50),
            ms(r.p99),
            r.p99.as_secs_f64() / healthy.as_secs_f64().max(1e-9),
            mb(r.rss.0),
            mb(r.rss.1),
            mb(r.rss.2),
            r.requests,
            r.lines_written,
            r.lines_dropped,
            r.spans_ended,
            r.spans_received,
            r.spans_dropped,
            r.error_reports,
            ms(r.probe_max),
        ));
    }
    say(&format!(
        "exit after SIGTERM under load: {} ms (bound {} ms)",
        exit_after.as_millis(),
        GRACE_MS + TIMEOUT_MS + 1000
    ));
}

fn check(rows: &[Row], problems: &mut Vec<String>) {
    let Some(healthy) = rows.first() else { return };
    let bound = healthy.p99 * 2 + Duration::from_millis(5);
    let start = healthy.rss.0;
    for r in rows {
        if r.requests == 0 {
            problems.push(format!("{}: no request completed", r.name));
        }
        if r.p99 > bound {
            problems.push(format!(
                "{}: p99 {} ms over 2 × healthy p99 + 5 ms = {} ms",
                r.name,
                ms(r.p99),
                ms(bound)
            ));
        }
        if r.rss.1.saturating_sub(start) > RSS_GROWTH_BOUND {
            problems.push(format!(
                "{}: RSS grew from {} MB to {} MB",
                r.name,
                mb(start),
                mb(r.rss.1)
            ));
        }
        if r.probe_max > PROBE_BOUND {
            problems.push(format!("{}: a probe took {} ms", r.name, ms(r.probe_max)));
        }
    }
    if let Some(r) = rows.iter().find(|r| r.name == "stdout blocked")
        && r.lines_dropped == 0
    {
        problems.push("stdout blocked: nothing was dropped, so the pipe never filled (raise the load or the phase length)".into());
    }
}
