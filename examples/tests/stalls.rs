//! Never stall, never overrun — the `service` example over real pipes and
//! sockets on loopback:
//!
//! - a stdout that stops being read stalls no request and no probe; the
//!   lines that did not fit are dropped, counted exactly, and summarised once
//!   the pipe drains;
//! - an OTLP collector that accepts connections and never answers stalls no
//!   request, and shutdown stays within its bound;
//! - `SHUTDOWN_TIMEOUT_MS` is one deadline: clients that stall their
//!   requests on both ports are cut off, and the process exits within
//!   grace + timeout + 1 s.
//!
//! The bounds separate signal from noise by construction: a stall here is
//! unbounded (the pipe is never read, the collector never answers, the
//! clients never finish), while the bounds are a second or a few.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Http, Service, json};
use serde_json::Value;

/// The longest a probe may take while a sink is stuck.
const PROBE_BOUND: Duration = Duration::from_secs(1);

fn report(svc: &Service) -> Value {
    svc.stdout
        .wait_for(Duration::from_secs(10), |l| {
            json(l).is_some_and(|v| v["message"] == "obs shutdown report")
        })
        .and_then(|l| json(&l))
        .unwrap_or_else(|| panic!("no shutdown report; {}", svc.output()))
}

fn probe_quickly(http: &Http, svc: &Service, path: &str) {
    let started = Instant::now();
    let r = http.get(&svc.admin(path));
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    assert!(
        took < PROBE_BOUND,
        "{path} took {took:?} while stdout was blocked"
    );
}

#[test]
fn a_blocked_stdout_stalls_nothing_and_every_line_is_accounted_for() {
    let paused = Arc::new(AtomicBool::new(false));
    let mut svc = Service::start_with(
        &[
            ("OBS_LOG_QUEUE_LINES", "256"),
            ("SHUTDOWN_GRACE_MS", "0"),
            ("SHUTDOWN_TIMEOUT_MS", "5000"),
        ],
        Some(paused.clone()),
    );
    let http = Http::new();
    assert_eq!(http.get(&svc.api("/items")).status, 200);

    // The log forwarder stops reading: the pipe (64 KiB) and the writer's
    // queue (256 lines) fill within a few hundred access lines.
    paused.store(true, Ordering::SeqCst);
    let n = 2_000;
    let started = Instant::now();
    for i in 0..n {
        let r = http.get(&svc.api("/items"));
        assert_eq!(r.status, 200, "request {i}");
        if i % 500 == 0 {
            probe_quickly(&http, &svc, "/livez");
            probe_quickly(&http, &svc, "/readyz");
        }
    }
    let blocked_for = started.elapsed();
    probe_quickly(&http, &svc, "/livez");
    probe_quickly(&http, &svc, "/readyz");
    let metrics = http.get(&svc.admin("/metrics")).body;
    let dropped_info: u64 = metrics
        .lines()
        .find(|l| l.starts_with("obs_log_dropped_lines_total{") && l.contains("level=\"INFO\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no info drop counter:\n{metrics}"));
    assert!(
        dropped_info > 0,
        "{n} access lines in {blocked_for:?} against a blocked stdout dropped nothing"
    );

    // The forwarder recovers: the backlog drains and one summary line says
    // what was lost while the sink was blocked.
    paused.store(false, Ordering::SeqCst);
    let summary = svc
        .stdout
        .wait_for(Duration::from_secs(10), |l| {
            l.contains("lines dropped while the sink was blocked")
        })
        .unwrap_or_else(|| panic!("no drop summary after recovery; {}", svc.output()));
    let summary = json(&summary).expect("the summary is a JSON line");
    assert_eq!(summary["level"], "WARN", "{summary}");
    assert!(summary["dropped"].as_u64().unwrap_or(0) > 0, "{summary}");

    svc.sigterm();
    svc.wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no exit after SIGTERM; {}", svc.output()));
    let report = report(&svc);

    // Exact accounting: every access line of the blocked phase was either
    // written or counted as dropped (the requests log nothing else at INFO).
    let lines = svc.stdout.snapshot();
    let access_lines = lines
        .iter()
        .filter_map(|l| json(l))
        .filter(|v| v["target"] == "obs::access" && v["url.path"] == "/items")
        .count() as u64;
    let total_dropped = report["log_lines_dropped"].as_u64().expect("a count");
    assert_eq!(
        access_lines + dropped_info,
        n + 1,
        "written {access_lines} + dropped {dropped_info} != {} requests; report {report}",
        n + 1
    );
    assert_eq!(total_dropped, dropped_info, "{report}");
    // Every line obs counted as written reached the pipe, and nothing else
    // did (obs-log's own summary lines are not counted as written).
    let obs_lines = lines
        .iter()
        .filter_map(|l| json(l))
        .filter(|v| v["message"] != "obs shutdown report" && v["target"] != "obs_log")
        .count() as u64;
    assert_eq!(
        Some(obs_lines),
        report["log_lines_written"].as_u64(),
        "{report}"
    );
}

#[test]
fn a_hung_collector_stalls_no_request_and_shutdown_stays_bounded() {
    let hung = obs_testing::otlp::HungCollector::start();
    let url = hung.url();
    let mut svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("SHUTDOWN_GRACE_MS", "0"),
        ("SHUTDOWN_TIMEOUT_MS", "2000"),
    ]);
    let http = Http::new();
    for i in 0..300 {
        let started = Instant::now();
        let r = http.get(&svc.api("/items"));
        assert_eq!(r.status, 200, "request {i}");
        assert!(
            started.elapsed() < PROBE_BOUND,
            "request {i} took {:?} with a hung collector",
            started.elapsed()
        );
    }
    probe_quickly(&http, &svc, "/livez");
    probe_quickly(&http, &svc, "/readyz");

    let sent = Instant::now();
    svc.sigterm();
    svc.wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no exit after SIGTERM; {}", svc.output()));
    let took = sent.elapsed();
    assert!(
        took < Duration::from_millis(2000 + 1000),
        "exit took {took:?}, over grace + timeout + 1 s"
    );
    let report = report(&svc);
    // Nothing reached the collector: every span is counted as dropped.
    assert_eq!(report["spans_exported"], 0, "{report}");
    assert!(
        report["spans_dropped"].as_u64().unwrap_or(0) >= 300,
        "{report}"
    );
}

/// Opens a connection and sends half a request, then never finishes it.
fn stall(addr: std::net::SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.write_all(b"GET /items HTTP/1.1\r\nHost: stalled\r\nX-Partial: ")
        .expect("write half a request");
    c
}

#[test]
fn shutdown_has_one_deadline_even_with_stalled_clients_on_both_ports() {
    let mut svc = Service::start(&[
        ("SHUTDOWN_GRACE_MS", "300"),
        ("SHUTDOWN_TIMEOUT_MS", "1500"),
    ]);
    let http = Http::new();
    assert_eq!(http.get(&svc.api("/items")).status, 200);
    let _api = stall(svc.http);
    let _admin = stall(svc.admin);
    std::thread::sleep(Duration::from_millis(100));

    let sent = Instant::now();
    svc.sigterm();
    let status = svc
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no exit after SIGTERM; {}", svc.output()));
    let took = sent.elapsed();
    assert!(status.success(), "exit status {status}; {}", svc.output());
    assert!(
        took < Duration::from_millis(300 + 1500 + 1000),
        "exit took {took:?}, over grace + timeout + 1 s; {}",
        svc.output()
    );
    let report = report(&svc);
    let cut: Vec<&str> = report["cut_short"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(cut.contains(&"api") && cut.contains(&"admin"), "{report}");
    // The queue was empty: no job is reported lost.
    assert!(!cut.contains(&"job worker"), "{report}");
    assert!(
        !svc.output().contains("jobs_lost"),
        "the worker was idle; {}",
        svc.output()
    );
}
