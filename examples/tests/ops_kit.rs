//! The ops kit (`docs/prometheus/rules.yml`, `docs/dashboards/service.json`)
//! against the real examples:
//!
//! - every metric the rules and the dashboard query is exposed by a real
//!   scrape of the `service`, `worker`, `pipeline` and `grpc_server` (after
//!   `grpc_client`'s calls) binaries, each row of
//!   the dashboard by the process it is for, and every obs process exports
//!   the metric the dashboard's `$job` variable comes from;
//! - a real Prometheus with the rules loaded, scraping the service after it
//!   served only 2xx, records `job:http_server_errors:ratio_rate5m` as 0 (not
//!   absent), and accepts every query of the dashboard and the rules.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Http, Lines, STARTUP_TIMEOUT, Service, json, read_into};
use obs_testing::prometheus::PrometheusServer;
use serde_json::Value;

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(docs().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `worker` or `pipeline` with `ADMIN_PORT=0`: serves `/metrics` while it
/// runs and after its run until SIGTERM. Killed on drop.
struct Batch {
    child: Child,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
    admin: SocketAddr,
    /// The line that said the process was ready.
    ready: Value,
}

impl Batch {
    fn start(bin: &str) -> Batch {
        Self::start_with(bin, "admin listening", &[])
    }

    /// Starts `bin` with `env` and waits for its `ready` line, which names
    /// the admin address (`admin.addr`).
    fn start_with(bin: &str, ready: &str, env: &[(&str, &str)]) -> Batch {
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("OTEL_") || k.starts_with("OBS_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .env("HOST", "127.0.0.1")
            .env("ADMIN_PORT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {bin}: {e}"));
        let (stdout, stderr) = (Arc::new(Lines::default()), Arc::new(Lines::default()));
        read_into(child.stdout.take().expect("piped stdout"), stdout.clone());
        read_into(child.stderr.take().expect("piped stderr"), stderr.clone());
        let mut batch = Batch {
            child,
            stdout,
            stderr,
            admin: ([0, 0, 0, 0], 0).into(),
            ready: Value::Null,
        };
        let line = batch.wait_line(ready);
        batch.admin = line["admin.addr"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no admin.addr in {line}"));
        batch.ready = line;
        batch
    }

    fn wait_line(&mut self, message: &str) -> Value {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(l) = self.stdout.wait_for(Duration::from_millis(200), |l| {
                json(l).is_some_and(|v| v["message"] == message)
            }) {
                return json(&l).expect("checked above");
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) before {message:?}\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "no {message:?} line after {STARTUP_TIMEOUT:?}\n{}",
                self.output()
            );
        }
    }

    /// SIGTERM, then the exit status within 10 s.
    fn stop(&mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                assert!(s.success(), "exit status {s}\n{}", self.output());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still running 10 s after SIGTERM\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.snapshot().join("\n"),
            self.stderr.snapshot().join("\n")
        )
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Metric families (`# TYPE` names, `_total` removed) of an exposition.
fn families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.strip_suffix("_total").unwrap_or(n).to_owned())
        .collect()
}

/// Metric families named in `text`: identifiers with a known prefix, with the
/// sample suffixes removed. Recording rules' names (`route:...`) contain ':'
/// and are skipped; so are label names.
fn referenced(text: &str) -> BTreeSet<String> {
    const KNOWN: [&str; 9] = [
        "http_server_",
        "http_client_",
        "rpc_server_",
        "db_client_",
        "jobs_",
        "job_",
        "obs_",
        "process_",
        "pipeline_",
    ];
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_lowercase()
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b':'));
        if !starts {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len()
            && (bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit() || bytes[i] == b'_')
        {
            i += 1;
        }
        let word = &text[start..i];
        // A label: matched in a selector (`name=`, `name!=`, `name=~`) or
        // listed in a `by (...)`/`without (...)` clause.
        let matched = matches!(bytes.get(i), Some(b'=' | b'!'));
        let grouping = text[..start].rfind('(').is_some_and(|open| {
            !text[open..start].contains(')') && {
                let before = text[..open].trim_end();
                before.ends_with("by") || before.ends_with("without")
            }
        });
        if KNOWN.iter().any(|p| word.starts_with(p)) && !matched && !grouping {
            let mut fam = word;
            for suffix in ["_bucket", "_count", "_sum", "_total"] {
                if let Some(f) = fam.strip_suffix(suffix) {
                    fam = f;
                    break;
                }
            }
            out.insert(fam.to_owned());
        }
    }
    out
}

#[test]
fn referenced_finds_families_not_labels() {
    let got = referenced(
        r#"sum by (job, queue, job_type) (rate(jobs_failed_total{job="$job",job_type!="x"}[5m]))
           / histogram_quantile(0.5, sum without (job_type) (rate(job_duration_seconds_bucket{job_type=~"a"}[1m])))
           and min by (job, check) (obs_health_check_status) == 0
           or route:http_server_request_duration_seconds:p99_5m"#,
    );
    assert_eq!(
        got,
        [
            "job_duration_seconds",
            "jobs_failed",
            "obs_health_check_status"
        ]
        .map(String::from)
        .into()
    );
}

/// The Prometheus expressions of the dashboard, by row title.
fn dashboard_rows() -> BTreeMap<String, Vec<String>> {
    let d: Value = serde_json::from_str(&read("dashboards/service.json")).unwrap();
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut row = String::new();
    for p in d["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            row = p["title"].as_str().unwrap().to_owned();
            continue;
        }
        if p["datasource"]["type"] != "prometheus" {
            continue;
        }
        for t in p["targets"].as_array().unwrap() {
            rows.entry(row.clone())
                .or_default()
                .push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    rows
}

/// The expressions of the rules file (`expr:` values, block scalars joined).
fn rule_exprs(rules: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest == "|" {
            let indent = line.len() - line.trim_start().len();
            let mut block = String::new();
            while let Some(next) = lines.peek() {
                let ni = next.len() - next.trim_start().len();
                if next.trim().is_empty() || ni <= indent {
                    break;
                }
                block.push_str(next.trim());
                block.push(' ');
                lines.next();
            }
            out.push(block.trim().to_owned());
        } else {
            out.push(rest.to_owned());
        }
    }
    out
}

/// What the derived field's `"trace_id":"([0-9a-f]{32})"` matches.
fn has_trace_id_field(line: &str) -> bool {
    const KEY: &str = r#""trace_id":""#;
    line.match_indices(KEY).any(|(i, _)| {
        let id = &line.as_bytes()[i + KEY.len()..];
        id.len() > 32
            && id[..32]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            && id[32] == b'"'
    })
}

fn scrape(http: &Http, admin: SocketAddr) -> String {
    let r = http.get(&format!("http://{admin}/metrics"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Requests that answer 2xx on the service, touching the DB, the downstream
/// price call and the job queue.
fn serve_2xx(svc: &Service, http: &Http) {
    for _ in 0..3 {
        let r = http.get(&svc.api("/items"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let created = http.send(
        "POST",
        &svc.api("/items"),
        &[],
        Some(r#"{"name":"lamp","quantity":3}"#),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let r = http.get(&svc.api("/items/1"));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn docs_query_only_metrics_the_examples_expose() {
    let http = Http::new();

    let svc = Service::start(&[]);
    serve_2xx(&svc, &http);
    let service = scrape(&http, svc.admin);

    let mut worker_run = Batch::start(env!("CARGO_BIN_EXE_worker"));
    worker_run.wait_line("worker finished");
    let worker = scrape(&http, worker_run.admin);
    worker_run.stop();
    // The Loki derived field's regex finds the trace id in real log lines.
    assert!(
        read("dashboards/datasources.yaml")
            .contains(r#"matcherRegex: '"trace_id":"([0-9a-f]{32})"'"#)
    );
    assert!(
        worker_run
            .stdout
            .snapshot()
            .iter()
            .any(|l| has_trace_id_field(l)),
        "no log line matches the derived field\n{}",
        worker_run.output()
    );

    let mut pipeline_run = Batch::start(env!("CARGO_BIN_EXE_pipeline"));
    pipeline_run.wait_line("pipeline finished");
    let pipeline = scrape(&http, pipeline_run.admin);
    pipeline_run.stop();

    // The gRPC pair: the client's calls (OK, NOT_FOUND, a dropped stream, a
    // missed deadline) give the server's call metric every label the gRPC
    // row and rules read.
    let mut grpc_run = Batch::start_with(
        env!("CARGO_BIN_EXE_grpc_server"),
        "grpc server listening",
        &[("GRPC_PORT", "0")],
    );
    let grpc_addr = grpc_run.ready["grpc.addr"]
        .as_str()
        .expect("grpc.addr")
        .to_owned();
    let client = Command::new(env!("CARGO_BIN_EXE_grpc_client"))
        .env("GRPC_TARGET", format!("http://{grpc_addr}"))
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run grpc_client");
    assert!(
        client.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );
    // The late call ends on the server's side when the client's cancel
    // arrives, which can be after the client exited: poll for it.
    let late_recorded = |m: &str| {
        m.lines().any(|l| {
            l.starts_with("rpc_server_call_duration_seconds_count{")
                && l.contains(r#"error_type="DEADLINE_EXCEEDED""#)
        })
    };
    let until = Instant::now() + Duration::from_secs(10);
    let grpc = loop {
        let m = scrape(&http, grpc_run.admin);
        if late_recorded(&m) || Instant::now() >= until {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    grpc_run.stop();
    assert!(late_recorded(&grpc), "{grpc}");

    let scraped: BTreeMap<&str, BTreeSet<String>> = [
        ("service", families(&service)),
        ("worker", families(&worker)),
        ("pipeline", families(&pipeline)),
        ("grpc_server", families(&grpc)),
    ]
    .into();
    // The dashboard's $job variable lists every obs process.
    for (name, fams) in &scraped {
        for f in [
            "obs_build_info",
            "process_resident_memory_bytes",
            "process_cpu_seconds",
        ] {
            assert!(fams.contains(f), "{name} does not export {f}: {fams:?}");
        }
    }
    // The pipeline's counters have samples (the throughput panel is rate() over them).
    assert!(
        pipeline.lines().any(
            |l| l.starts_with(r#"pipeline_rows_out_total{pipeline="orders_etl",stage="load"}"#)
        ),
        "{pipeline}"
    );
    assert!(
        worker.lines().any(|l| l.starts_with("jobs_retried_total{")),
        "{worker}"
    );

    let all: BTreeSet<String> = scraped.values().flatten().cloned().collect();
    let rows = dashboard_rows();
    let by_row = [
        ("HTTP server", vec!["service"]),
        ("gRPC server", vec!["grpc_server"]),
        ("Errors", vec!["service"]),
        ("Worker jobs", vec!["worker"]),
        ("Pipeline", vec!["pipeline"]),
        (
            "Process and telemetry health",
            vec!["service", "worker", "pipeline"],
        ),
    ];
    assert_eq!(
        rows.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        by_row.iter().map(|(r, _)| *r).collect(),
        "rows with Prometheus queries"
    );
    let mut wanted = BTreeSet::new();
    for (row, processes) in &by_row {
        let names = referenced(&rows[*row].join("\n"));
        assert!(!names.is_empty(), "row {row} queries no metric");
        for p in processes {
            let missing: Vec<_> = names.iter().filter(|n| !scraped[p].contains(*n)).collect();
            assert!(
                missing.is_empty(),
                "row {row:?} queries metrics the {p} example does not expose: {missing:?}\nexposed: {:?}",
                scraped[p]
            );
        }
        wanted.extend(names);
    }
    let rules = referenced(&rule_exprs(&read("prometheus/rules.yml")).join("\n"));
    let missing: Vec<_> = rules.iter().filter(|n| !all.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "rules.yml queries metrics no example exposes: {missing:?}\nexposed: {all:?}"
    );
    wanted.extend(rules);
    for name in [
        "http_server_request_duration_seconds",
        "http_server_active_requests",
        "http_client_request_duration_seconds",
        "rpc_server_call_duration_seconds",
        "db_client_operation_duration_seconds",
        "jobs_started",
        "jobs_failed",
        "jobs_retried",
        "job_duration_seconds",
        "job_queue_length",
        "job_queue_oldest_age_seconds",
        "pipeline_rows_in",
        "pipeline_rows_out",
        "pipeline_rows_rejected",
        "pipeline_stage_duration_seconds",
        "obs_log_dropped_lines",
        "obs_trace_dropped_spans",
        "obs_metric_label_sets_rejected",
        "obs_health_check_status",
        "obs_errors",
        "process_resident_memory_bytes",
        "process_cpu_seconds",
    ] {
        assert!(
            wanted.contains(name),
            "the docs no longer query {name}: {wanted:?}"
        );
    }
}

/// The rules file with its groups evaluated every second instead of every
/// 30 s (the expressions are untouched), so the test waits seconds.
fn fast_rules() -> PathBuf {
    let rules = read("prometheus/rules.yml");
    assert!(rules.contains("interval: 30s"), "{rules}");
    let dir = std::env::temp_dir().join(format!("obs-ops-kit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.yml");
    std::fs::write(&path, rules.replace("interval: 30s", "interval: 1s")).unwrap();
    path
}

fn value(series: &Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {series}"))
}

#[test]
fn error_ratio_is_recorded_as_zero_when_the_service_served_no_5xx() {
    let svc = Service::start(&[]);
    let http = Http::new();
    serve_2xx(&svc, &http);

    let rules = fast_rules();
    let prom = PrometheusServer::start_with_rules(svc.admin, "/metrics", &[rules.as_path()])
        .unwrap_or_else(|e| panic!("cannot start Prometheus: {e}"));
    // Scrapes before and after more requests, so rate() sees traffic.
    prom.wait_for(
        "http_server_request_duration_seconds_count",
        Duration::from_secs(30),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    serve_2xx(&svc, &http);
    prom.wait_for(
        r#"sum(rate(http_server_request_duration_seconds_count{job="obs"}[5m])) > 0"#,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("no request rate: {e}"));
    // A few rule evaluations (every second) over that traffic.
    std::thread::sleep(Duration::from_secs(3));

    let ratio = prom
        .wait_for(
            r#"job:http_server_errors:ratio_rate5m{job="obs"}"#,
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("the error ratio was not recorded: {e}"));
    assert_eq!(ratio.len(), 1, "{ratio:?}");
    assert_eq!(value(&ratio[0]), 0.0, "{ratio:?}");
    // It is recorded while the job has traffic: 0 because nothing failed.
    let with_traffic = prom
        .query(
            r#"job:http_server_errors:ratio_rate5m{job="obs"} and on (job) sum by (job) (rate(http_server_request_duration_seconds_count[5m])) > 0"#,
        )
        .unwrap();
    assert_eq!(with_traffic.len(), 1, "{with_traffic:?}");
    assert_eq!(value(&with_traffic[0]), 0.0, "{with_traffic:?}");
    let failed = prom
        .query(r#"http_server_request_duration_seconds_count{http_response_status_code=~"5.."}"#)
        .unwrap();
    assert!(failed.is_empty(), "the service served 5xx: {failed:?}");
    // The 5xx numerator alone (the rule before the fallback) has no series.
    let numerator = prom
        .query(r#"sum by (job) (rate(http_server_request_duration_seconds_count{http_response_status_code=~"5.."}[5m]))"#)
        .unwrap();
    assert!(numerator.is_empty(), "{numerator:?}");

    // The rules loaded and evaluated without errors.
    let groups = prom.api("/api/v1/rules").unwrap();
    let rules_loaded: Vec<&Value> = groups["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(
        rules_loaded.len(),
        rule_exprs(&read("prometheus/rules.yml")).len(),
        "{groups}"
    );
    for r in &rules_loaded {
        assert_eq!(r["health"], "ok", "{r}");
    }

    // Prometheus accepts every dashboard query (with the variables filled in).
    for (row, exprs) in dashboard_rows() {
        for expr in exprs {
            let q = expr
                .replace("$__rate_interval", "1m")
                .replace("$job", "obs");
            if let Err(e) = prom.query(&q) {
                panic!("row {row:?}: Prometheus rejects {q}: {e}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(rules.parent().unwrap());
}
