//! Run with: `cargo run --release -p obs-http-bench`
//!
//! Throughput of a hello-world axum app (`GET /hello/{name}` → a short text)
//! under five configurations, measured one after the other in the same run on
//! loopback with `wrk`:
//!
//! | configuration | what runs around the handler |
//! |---|---|
//! | `bare` | nothing |
//! | `obs-unsampled` | `obs::init` (JSON logs to a file through obs's non-blocking writer) and `.layer(obs.server_layer())` — ids, trace context and server span, RED metrics, access log line — with `OTEL_TRACES_SAMPLER=always_off` |
//! | `obs-sampled` | the same with `always_on`, spans exported over OTLP/HTTP (obs's default protocol) to a local receiver |
//! | `hand-glued` | the hand-glued stack a team builds today (the anchor): tower-http `SetRequestIdLayer`/`PropagateRequestIdLayer` (`MakeRequestUuid`) + `TraceLayer` (span and response line at INFO), `tracing-subscriber` `fmt().json()` through `tracing-appender::non_blocking` to a file, `tracing-opentelemetry` with an `opentelemetry_sdk` batch span processor exporting over OTLP/gRPC (`opentelemetry-otlp`, tonic) to the same receiver, and a `prometheus-client` histogram of request duration by method, route and status recorded in a small middleware |
//! | `obs-sampled-grpc` | `obs-sampled` exporting over OTLP/gRPC instead (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`), the hand-glued stack's protocol |
//!
//! A process has one global `tracing` subscriber, so each configuration runs
//! in its own child process: this binary re-executes itself as
//! `http_bench serve CONFIG OTLP_HTTP_URL OTLP_GRPC_URL LOG_FILE`, the child prints the address
//! it bound, the parent drives it with `wrk` (a warm-up, then the measured
//! run), closes the child's stdin to make it shut down and flush, and counts
//! what reached the log file and the OTLP receiver. The OTLP receiver
//! (`obs_testing::otlp`) runs in the parent. Server, `wrk` and receiver share
//! the machine's cores.
//!
//! Environment (all optional):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_SECS` | `8` | length of each measured `wrk` run, seconds |
//! | `BENCH_WARMUP_SECS` | `2` | length of each warm-up run, seconds |
//! | `BENCH_CONNECTIONS` | `32` | `wrk -c` |
//! | `BENCH_THREADS` | `1` | `wrk -t` |
//! | `BENCH_ROUNDS` | `1` | passes over the configurations; with more than one, a table of medians comes first |
//! | `BENCH_ONLY` | all | comma-separated configurations to run |
//! | `OBS_*`, `OTEL_*` | | passed to the obs configurations (except the sampler, endpoint, protocol and service name, which each configuration sets) |
//!
//! `wrk` comes from the Debian package `wrk`; when it is missing and the
//! program runs as root it installs it with `apt-get install -y wrk`,
//! otherwise it stops with a message saying so.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark program: its progress goes to stderr, its table and the servers' shutdown reports to stdout"
)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use obs_testing::otlp::OtlpReceiver;
use tokio::io::AsyncReadExt;

/// The configurations, in the order they run.
const CONFIGS: &[&str] = &[
    "bare",
    "obs-unsampled",
    "obs-sampled",
    "hand-glued",
    "obs-sampled-grpc",
];
/// The service name every traced configuration reports.
const SERVICE: &str = "http_bench";
/// How long the parent waits for a child to bind its port.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child may take to drain its logs and spans after the load.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

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

/// What one `wrk` run printed.
#[derive(Debug, Clone, Default)]
struct WrkResult {
    requests: u64,
    requests_per_sec: f64,
    non_2xx: u64,
    socket_errors: String,
    latency_avg: String,
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
    /// What the child said when it stopped.
    child_report: Vec<String>,
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
    ensure_wrk()?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let dir = std::env::temp_dir().join(format!("http_bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let receiver = OtlpReceiver::start();
    eprintln!(
        "http_bench: wrk -t{} -c{} -d{}s after a {}s warm-up, per configuration; OTLP receiver at {} and {}; logs in {}",
        load.threads,
        load.connections,
        load.secs,
        load.warmup_secs,
        receiver.http_base_url(),
        receiver.grpc_url(),
        dir.display()
    );
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
            match run_config(&exe, config, &receiver, &dir, &load) {
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
    print_table(&outcomes, &load);
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
) -> Result<Outcome, String> {
    let log_path = dir.join(format!("{config}.log"));
    let mut child = Command::new(exe)
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
    let run = wrk(&url, load, load.secs)?;
    eprintln!(
        "http_bench: {config}: {:.0} requests/s",
        run.requests_per_sec
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
    let mut names = std::collections::BTreeMap::<String, usize>::new();
    for s in &received {
        *names.entry(s.name().to_owned()).or_default() += 1;
    }
    drop(received);
    let access_lines = count_lines(&log_path, "/hello/");
    Ok(Outcome {
        config,
        round: 1,
        total_requests: warm.requests + run.requests,
        run,
        access_lines,
        spans,
        distinct_spans,
        span_names: names.into_iter().collect(),
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

fn parse_wrk(text: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut seen_rps = false;
    let mut seen_requests = false;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v.trim().parse().ok()?;
            seen_rps = true;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            r.socket_errors = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("Latency") {
            if r.latency_avg.is_empty() {
                r.latency_avg = v.split_whitespace().next().unwrap_or("").to_owned();
            }
        } else if line.contains(" requests in ") {
            r.requests = line.split_whitespace().next()?.parse().ok()?;
            seen_requests = true;
        }
    }
    (seen_rps && seen_requests).then_some(r)
}

/// Lines of `path` containing `needle`; `None` when there is no such file.
fn count_lines(path: &Path, needle: &str) -> Option<u64> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    Some(text.lines().filter(|l| l.contains(needle)).count() as u64)
}

/// The median of the measured requests/s of `config` over the rounds.
fn median_rps(outcomes: &[Outcome], config: &str) -> Option<f64> {
    let mut v: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.config == config)
        .map(|o| o.run.requests_per_sec)
        .collect();
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

fn print_table(outcomes: &[Outcome], load: &Load) {
    println!();
    println!(
        "wrk -t{} -c{} -d{}s (after a {}s warm-up), GET /hello/world, {} round(s)",
        load.threads, load.connections, load.secs, load.warmup_secs, load.rounds
    );
    let bare_median = median_rps(outcomes, "bare");
    if load.rounds > 1 {
        println!();
        println!("| configuration | median requests/s | % of bare (medians) | each round |");
        println!("|---|---:|---:|---|");
        for &config in CONFIGS {
            let Some(m) = median_rps(outcomes, config) else {
                continue;
            };
            let each: Vec<String> = outcomes
                .iter()
                .filter(|o| o.config == config)
                .map(|o| format!("{:.0}", o.run.requests_per_sec))
                .collect();
            let pct = match bare_median {
                Some(b) if b > 0.0 => format!("{:.1} %", 100.0 * m / b),
                _ => "–".into(),
            };
            println!("| {config} | {m:.0} | {pct} | {} |", each.join(", "));
        }
    }
    println!();
    println!(
        "| round | configuration | requests/s | % of bare (same round) | avg latency | requests (warm-up + run) | access log lines | spans received (distinct) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for o in outcomes {
        let bare = outcomes
            .iter()
            .find(|b| b.config == "bare" && b.round == o.round)
            .map(|b| b.run.requests_per_sec);
        let pct = match bare {
            Some(b) if b > 0.0 => format!("{:.1} %", 100.0 * o.run.requests_per_sec / b),
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            o.round,
            o.config,
            o.run.requests_per_sec,
            pct,
            o.run.latency_avg,
            o.total_requests,
            o.access_lines.map_or("–".into(), |n| n.to_string()),
            if o.config == "bare" {
                "–".into()
            } else {
                format!("{} ({})", o.spans, o.distinct_spans)
            },
        );
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
