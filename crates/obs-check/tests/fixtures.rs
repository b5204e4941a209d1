//! Every rule can fail: a hand-written axum service that follows every rule
//! (it passes them all), and the same service with one flaw at a time — wrong
//! metric names, no id echo, raw ids echoed, plain-text logs, a leaked
//! canary, a probe that hangs, … — each failing exactly the rules it breaks.
//! The binary is run too: exit status and the JSON report.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use obs_check::otlp::{LogRecordBuilder, SpanBuilder};
use obs_check::{Config, Logs, OtlpReceiver, Report, Status};
use obs_core::{CorrelationId, IdFormat, SpanId, TraceId};

/// What the fixture gets wrong. All off: it follows every rule.
#[derive(Debug, Clone, Copy, Default)]
struct Flaws {
    bad_metric_names: bool,
    invalid_exposition: bool,
    openmetrics_without_eof: bool,
    no_route_label: bool,
    no_process_metrics: bool,
    id_labels: bool,
    no_id_echo: bool,
    echo_raw_ids: bool,
    plain_text_logs: bool,
    no_trace_ids_in_logs: bool,
    new_trace_per_request: bool,
    wrong_traceresponse: bool,
    leak_canary: bool,
    hanging_readyz: bool,
    probes_need_auth: bool,
    bad_health_json: bool,
    unreadable_verbose: bool,
    openmetrics_only: bool,
}

struct Fx {
    flaws: Flaws,
    logs: Arc<Mutex<Vec<String>>>,
    log_file: PathBuf,
    otlp: Option<String>,
    requests: AtomicU64,
}

impl Fx {
    fn log(&self, line: String) {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.log_file)
        {
            let _ = writeln!(f, "{line}");
        }
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
}

/// The fixture served on a loopback port; stops with its runtime.
struct Fixture {
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    log_file: PathBuf,
    _rt: tokio::runtime::Runtime,
}

impl Fixture {
    fn start(flaws: Flaws, otlp: Option<&OtlpReceiver>) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let log_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "obs-check-fixture-{}-{}.log",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&log_file);
        let logs = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(Fx {
            flaws,
            logs: logs.clone(),
            log_file: log_file.clone(),
            otlp: otlp.map(OtlpReceiver::endpoint),
            requests: AtomicU64::new(0),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state);
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        Fixture {
            addr,
            logs,
            log_file,
            _rt: rt,
        }
    }

    fn config(&self, with_logs: bool) -> Config {
        let mut c = Config::new(&format!("http://{}/items", self.addr)).unwrap();
        c.wait = Duration::from_secs(2);
        if with_logs {
            let logs = self.logs.clone();
            c.logs = Logs::Lines(Arc::new(move || {
                logs.lock().unwrap_or_else(PoisonError::into_inner).clone()
            }));
        }
        c
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    h.get(name).map(HeaderValue::as_bytes)
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

async fn handle(State(fx): State<Arc<Fx>>, req: Request) -> Response {
    let f = fx.flaws;
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let req: HeaderMap = req.into_parts().0.headers;
    let verbose = query
        .split('&')
        .any(|p| p == "verbose" || p.starts_with("verbose="));
    match path.as_str() {
        "/metrics" => metrics(&fx, &req),
        "/livez" | "/readyz" | "/healthz" => {
            if f.probes_need_auth && header(&req, "authorization").is_none() {
                return respond(StatusCode::UNAUTHORIZED, "text/plain", "unauthorized");
            }
            if f.hanging_readyz && path == "/readyz" {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let accept = header(&req, "accept")
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .unwrap_or_default();
            if accept.contains("application/health+json") {
                let body = if f.bad_health_json {
                    r#"{"status":"green","checks":[]}"#
                } else {
                    r#"{"status":"pass","version":"1","checks":{"ping:responseTime":[{"componentType":"component","observedValue":1,"observedUnit":"ms","status":"pass"}]}}"#
                };
                return respond(StatusCode::OK, "application/health+json", body);
            }
            if verbose {
                let body = if f.unreadable_verbose {
                    "\u{1b}[32m[+]ping ok\u{1b}[0m\n"
                } else {
                    "[+]ping ok\ncheck passed\n"
                };
                return respond(StatusCode::OK, "text/plain; charset=utf-8", body);
            }
            respond(StatusCode::OK, "text/plain", "ok")
        }
        "/items" => items(&fx, &req, &query).await,
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found"),
    }
}

async fn items(fx: &Arc<Fx>, req: &HeaderMap, query: &str) -> Response {
    let f = fx.flaws;
    fx.requests.fetch_add(1, Ordering::Relaxed);
    // The correlation id: a valid one kept, anything else replaced.
    let sent = header(req, "x-correlation-id");
    let cid: Vec<u8> = match sent {
        Some(raw) if f.echo_raw_ids => raw.to_vec(),
        Some(raw) if CorrelationId::is_valid(raw) => raw.to_vec(),
        _ => CorrelationId::generate(IdFormat::UuidV4)
            .as_str()
            .as_bytes()
            .to_vec(),
    };
    let cid_text = String::from_utf8_lossy(&cid).into_owned();
    // The trace context: continued when valid.
    let parent = header(req, "traceparent").and_then(|tp| {
        let tp = std::str::from_utf8(tp).ok()?;
        let parts: Vec<&str> = tp.split('-').collect();
        (parts.len() == 4 && parts[0] == "00").then_some(())?;
        Some((
            TraceId::from_hex(parts[1]).ok()?,
            SpanId::from_hex(parts[2]).ok()?,
        ))
    });
    let (tid, parent) = match parent {
        Some((t, p)) if !f.new_trace_per_request => (t, Some(p)),
        _ => (TraceId::random(), None),
    };
    let sid = SpanId::random();
    let (tid_hex, sid_hex) = (
        tid.to_hex().as_str().to_owned(),
        sid.to_hex().as_str().to_owned(),
    );

    let mut line = serde_json::json!({
        "timestamp": "2026-01-01T00:00:00Z",
        "level": "INFO",
        "message": "request finished",
        "http.route": "/items",
        "trace_id": tid_hex,
        "span_id": sid_hex,
        "correlation_id": cid_text,
    });
    if f.no_trace_ids_in_logs {
        let m = line.as_object_mut().unwrap();
        m.remove("trace_id");
        m.remove("span_id");
    }
    let auth = header(req, "authorization").map(|a| String::from_utf8_lossy(a).into_owned());
    if f.leak_canary {
        line["url.query"] = query.into();
        line["authorization"] = auth.clone().unwrap_or_default().into();
    }
    fx.log(if f.plain_text_logs {
        format!("INFO request finished route=/items trace_id={tid_hex} correlation_id={cid_text}")
    } else {
        line.to_string()
    });

    if let Some(url) = &fx.otlp {
        let mut span = SpanBuilder::new(tid.to_bytes(), sid.to_bytes(), "GET /items")
            .attr("http.route", "/items");
        if let Some(p) = parent {
            span = span.parent(p.to_bytes());
        }
        if f.leak_canary {
            span = span.attr(
                "http.request.header.authorization",
                &auth.unwrap_or_default(),
            );
        }
        // The access line, exported as a log record too.
        let mut record = LogRecordBuilder::new("request finished")
            .ids(tid.to_bytes(), sid.to_bytes())
            .attr("http.route", "/items");
        if f.leak_canary {
            record = record.attr("url.query", query);
        }
        let spans = SpanBuilder::encode_request(&[span]);
        let logs = LogRecordBuilder::encode_request(&[record]);
        let base = url.clone();
        tokio::task::spawn_blocking(move || {
            for (path, body) in [("/v1/traces", spans), ("/v1/logs", logs)] {
                assert_eq!(obs_check::otlp::post(&base, path, &body), Ok(200), "{path}");
            }
        })
        .await
        .unwrap();
    }

    let mut resp = respond(StatusCode::OK, "application/json", "[]");
    if !f.no_id_echo {
        resp.headers_mut()
            .insert("x-correlation-id", HeaderValue::from_bytes(&cid).unwrap());
    }
    let tr_trace = if f.wrong_traceresponse {
        TraceId::random().to_hex().as_str().to_owned()
    } else {
        tid_hex
    };
    resp.headers_mut().insert(
        "traceresponse",
        HeaderValue::from_str(&format!("00-{tr_trace}-{sid_hex}-01")).unwrap(),
    );
    resp
}

fn metrics(fx: &Fx, req: &HeaderMap) -> Response {
    let f = fx.flaws;
    let n = fx.requests.load(Ordering::Relaxed);
    let om = f.openmetrics_only
        || header(req, "accept")
            .is_some_and(|a| String::from_utf8_lossy(a).contains("openmetrics"));
    // Counter family names: without `_total` in OpenMetrics descriptors.
    let c = |name: &str| {
        if om {
            name.trim_end_matches("_total").to_owned()
        } else {
            name.to_owned()
        }
    };
    let route = if f.no_route_label {
        "method=\"GET\""
    } else {
        "http_route=\"/items\""
    };
    let mut s = format!(
        "# HELP {r} Requests served.\n# TYPE {r} counter\nhttp_server_requests_total{{{route}}} {n}\n\
         # HELP http_server_request_duration_seconds Request duration.\n# TYPE http_server_request_duration_seconds histogram\n\
         http_server_request_duration_seconds_bucket{{{route},le=\"0.1\"}} {n}\n\
         http_server_request_duration_seconds_bucket{{{route},le=\"+Inf\"}} {n}\n\
         http_server_request_duration_seconds_sum{{{route}}} 0.01\n\
         http_server_request_duration_seconds_count{{{route}}} {n}\n",
        r = c("http_server_requests_total"),
    );
    if !f.no_process_metrics {
        s.push_str(&format!(
            "# HELP {p} CPU time.\n# TYPE {p} counter\nprocess_cpu_seconds_total 0.5\n\
             # HELP process_resident_memory_bytes Resident memory.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.2e7\n\
             # HELP process_start_time_seconds Start time.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.7e9\n\
             # HELP process_open_fds Open fds.\n# TYPE process_open_fds gauge\nprocess_open_fds 12\n",
            p = c("process_cpu_seconds_total"),
        ));
    }
    if f.bad_metric_names {
        s.push_str(
            "# TYPE httpRequests counter\nhttpRequests 3\n\
             # HELP latency_ms Latency.\n# TYPE latency_ms gauge\nlatency_ms 3\n\
             # HELP jobs_count Jobs.\n# TYPE jobs_count gauge\njobs_count 1\n",
        );
    }
    if f.id_labels {
        s.push_str(&format!(
            "# HELP {u} Requests by user.\n# TYPE {u} counter\n\
             user_requests_total{{user=\"ann@example.com\"}} 1\n\
             user_requests_total{{user=\"550e8400-e29b-41d4-a716-446655440000\"}} 1\n",
            u = c("user_requests_total"),
        ));
    }
    if f.invalid_exposition && !om {
        s.push_str("broken{a=\"b\\q\"} 1\n");
    }
    if om {
        if !f.openmetrics_without_eof {
            s.push_str("# EOF\n");
        }
        respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            s,
        )
    } else {
        respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            s,
        )
    }
}

fn failed(r: &Report) -> BTreeSet<&'static str> {
    r.results
        .iter()
        .filter(|x| x.status == Status::Fail)
        .map(|x| x.id)
        .collect()
}

/// Runs the checker (logs and OTLP on) against a fixture with `flaws` and
/// asserts exactly `expected` rules fail.
fn check(flaws: Flaws, expected: &[&str]) -> Report {
    let rx = OtlpReceiver::bind("127.0.0.1:0").unwrap();
    let fx = Fixture::start(flaws, Some(&rx));
    let mut config = fx.config(true);
    config.otlp = Some(rx);
    let report = obs_check::run(&config);
    let want: BTreeSet<&str> = expected.iter().copied().collect();
    assert_eq!(failed(&report), want, "{flaws:?}\n{}", report.to_text());
    report
}

#[test]
fn a_correct_service_passes_every_rule() {
    let r = check(Flaws::default(), &[]);
    assert!(
        r.results.iter().all(|x| x.status == Status::Pass),
        "{}",
        r.to_text()
    );
    assert_eq!(r.results.len(), 25, "{}", r.to_text());
    assert!(
        r.get("trace.traceresponse")
            .unwrap()
            .reason
            .contains("server's span"),
        "{}",
        r.to_text()
    );
}

#[test]
fn wrong_metric_names_fail_the_naming_lint() {
    // OpenMetrics is stricter still: a counter sample must end in _total.
    let r = check(
        Flaws {
            bad_metric_names: true,
            ..Flaws::default()
        },
        &["metrics.naming", "metrics.openmetrics"],
    );
    let row = r.get("metrics.naming").unwrap();
    // not snake_case, no HELP, a counter without _total, "ms", a gauge named _count
    assert_eq!(row.reason, "5 naming problem(s)", "{row:?}");
    let v = row.value.as_deref().unwrap();
    for want in [
        "httpRequests: not snake_case",
        "httpRequests: no HELP",
        "httpRequests: a counter not ending in _total",
        "latency_ms: unit \"ms\"",
    ] {
        assert!(v.contains(want), "{want}: {v}");
    }
}

#[test]
fn an_invalid_exposition_fails_every_metrics_rule_but_openmetrics() {
    let r = check(
        Flaws {
            invalid_exposition: true,
            ..Flaws::default()
        },
        &[
            "metrics.text",
            "metrics.naming",
            "metrics.http_duration",
            "metrics.process",
            "metrics.cardinality",
        ],
    );
    let row = r.get("metrics.text").unwrap();
    assert!(row.reason.contains("invalid escape"), "{row:?}");
    assert_eq!(row.value.as_deref(), Some("broken{a=\"b\\q\"} 1"));
}

#[test]
fn openmetrics_without_eof_fails() {
    let r = check(
        Flaws {
            openmetrics_without_eof: true,
            ..Flaws::default()
        },
        &["metrics.openmetrics"],
    );
    assert!(
        r.get("metrics.openmetrics")
            .unwrap()
            .reason
            .contains("# EOF")
    );
}

#[test]
fn a_duration_histogram_without_route_fails() {
    check(
        Flaws {
            no_route_label: true,
            ..Flaws::default()
        },
        &["metrics.http_duration"],
    );
}

#[test]
fn no_process_metrics_fails() {
    check(
        Flaws {
            no_process_metrics: true,
            ..Flaws::default()
        },
        &["metrics.process"],
    );
}

#[test]
fn id_like_label_values_warn_and_too_many_series_fail() {
    let r = check(
        Flaws {
            id_labels: true,
            ..Flaws::default()
        },
        &[],
    );
    let row = r.get("metrics.cardinality").unwrap();
    assert_eq!(row.status, Status::Warn, "{row:?}");
    let v = row.value.as_deref().unwrap();
    assert!(
        v.contains("user_requests_total{user}") && (v.contains("UUID") || v.contains("email")),
        "{v}"
    );

    let fx = Fixture::start(
        Flaws {
            id_labels: true,
            ..Flaws::default()
        },
        None,
    );
    let mut config = fx.config(false);
    config.max_series = 1;
    let r = obs_check::run(&config);
    let row = r.get("metrics.cardinality").unwrap();
    assert_eq!(row.status, Status::Fail, "{row:?}");
    assert!(
        row.value
            .as_deref()
            .unwrap()
            .contains("user_requests_total: 2 series"),
        "{row:?}"
    );
}

#[test]
fn no_id_echo_fails_echo_and_generation() {
    check(
        Flaws {
            no_id_echo: true,
            ..Flaws::default()
        },
        &[
            "correlation.echo",
            "correlation.oversize",
            "correlation.control_chars",
            "correlation.secret_shaped",
            "correlation.generated",
        ],
    );
}

#[test]
fn echoing_raw_ids_fails_every_invalid_id_rule() {
    let r = check(
        Flaws {
            echo_raw_ids: true,
            ..Flaws::default()
        },
        &[
            "correlation.oversize",
            "correlation.control_chars",
            "correlation.secret_shaped",
        ],
    );
    let row = r.get("correlation.control_chars").unwrap();
    assert!(row.reason.contains("echoed"), "{row:?}");
    // The shown value is escaped: no raw control character reaches a terminal.
    assert!(
        !row.value.as_deref().unwrap().chars().any(char::is_control),
        "{row:?}"
    );
}

#[test]
fn plain_text_logs_fail_the_log_rules() {
    let r = check(
        Flaws {
            plain_text_logs: true,
            ..Flaws::default()
        },
        &["logs.json", "logs.request_ids"],
    );
    assert!(
        r.get("logs.json")
            .unwrap()
            .reason
            .contains("line 1 is not a JSON object")
    );
    // The ids are in the text, but in no field a log pipeline can query.
    assert_eq!(r.get("correlation.in_logs").unwrap().status, Status::Warn);
    assert_eq!(r.get("trace.in_logs").unwrap().status, Status::Warn);
}

#[test]
fn log_lines_without_trace_ids_fail() {
    let r = check(
        Flaws {
            no_trace_ids_in_logs: true,
            ..Flaws::default()
        },
        &["logs.request_ids", "trace.in_logs"],
    );
    assert!(
        r.get("logs.request_ids")
            .unwrap()
            .reason
            .contains("trace id, span id"),
        "{}",
        r.to_text()
    );
}

#[test]
fn a_service_that_restarts_traces_fails_the_trace_rules() {
    check(
        Flaws {
            new_trace_per_request: true,
            ..Flaws::default()
        },
        &[
            "trace.in_logs",
            "trace.in_spans",
            "trace.traceresponse",
            "logs.request_ids",
        ],
    );
}

#[test]
fn a_wrong_traceresponse_fails() {
    check(
        Flaws {
            wrong_traceresponse: true,
            ..Flaws::default()
        },
        &["trace.traceresponse"],
    );
}

#[test]
fn a_leaked_canary_fails_the_secret_scan() {
    let r = check(
        Flaws {
            leak_canary: true,
            ..Flaws::default()
        },
        &["secrets.logs", "secrets.spans", "secrets.exported_logs"],
    );
    // The fixture logs the Authorization header and the raw query.
    assert_eq!(
        r.get("secrets.logs").unwrap().reason,
        "canary secrets reached a log: bearer token, JWT, cloud key, password in the query",
        "{}",
        r.to_text()
    );
    assert_eq!(
        r.get("secrets.spans").unwrap().reason,
        "canary secrets reached a span: bearer token",
        "{}",
        r.to_text()
    );
    assert!(
        r.get("secrets.spans")
            .unwrap()
            .value
            .as_deref()
            .unwrap()
            .starts_with("http.request.header.authorization=")
    );
    assert_eq!(
        r.get("secrets.exported_logs").unwrap().reason,
        "canary secrets reached a log record exported over OTLP: JWT, cloud key, password in the query",
        "{}",
        r.to_text()
    );
    assert!(
        r.get("secrets.exported_logs")
            .unwrap()
            .value
            .as_deref()
            .unwrap()
            .starts_with("url.query="),
        "{}",
        r.to_text()
    );
}

#[test]
fn a_hanging_probe_fails_within_a_second() {
    let started = std::time::Instant::now();
    let r = check(
        Flaws {
            hanging_readyz: true,
            ..Flaws::default()
        },
        &["probes.readyz", "probes.verbose"],
    );
    assert!(
        r.get("probes.readyz")
            .unwrap()
            .reason
            .contains("within 1000 ms")
    );
    // Two 1 s probe deadlines, not the 3 s the probe hangs for, each.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn probes_behind_auth_fail() {
    check(
        Flaws {
            probes_need_auth: true,
            ..Flaws::default()
        },
        &[
            "probes.livez",
            "probes.readyz",
            "probes.healthz",
            "probes.verbose",
            "probes.health_json",
        ],
    );
}

#[test]
fn a_health_json_off_the_draft_fails() {
    let r = check(
        Flaws {
            bad_health_json: true,
            ..Flaws::default()
        },
        &["probes.health_json"],
    );
    let v = r.get("probes.health_json").unwrap().value.clone().unwrap();
    assert!(
        v.contains("\"green\"") && v.contains("checks is not an object"),
        "{v}"
    );
}

#[test]
fn an_unreadable_verbose_body_fails() {
    check(
        Flaws {
            unreadable_verbose: true,
            ..Flaws::default()
        },
        &["probes.verbose"],
    );
}

#[test]
fn openmetrics_to_a_text_client_warns() {
    let r = check(
        Flaws {
            openmetrics_only: true,
            ..Flaws::default()
        },
        &[],
    );
    let row = r.get("metrics.text").unwrap();
    assert_eq!(row.status, Status::Warn, "{}", r.to_text());
    assert!(row.reason.contains("got OpenMetrics"), "{row:?}");
    // The families were still read: the other metrics rules ran on them.
    assert_eq!(r.get("metrics.naming").unwrap().status, Status::Pass);
}

#[test]
fn a_receiver_nothing_exports_to_says_so() {
    let fx = Fixture::start(Flaws::default(), None);
    let mut config = fx.config(false);
    config.wait = Duration::from_millis(300);
    config.otlp = Some(OtlpReceiver::bind("127.0.0.1:0").unwrap());
    let r = obs_check::run(&config);
    let row = r.get("trace.in_spans").unwrap();
    assert_eq!(row.status, Status::Fail);
    assert!(row.reason.contains("no export request arrived"), "{row:?}");
}

#[test]
fn without_logs_or_otlp_those_rules_are_skipped() {
    let fx = Fixture::start(Flaws::default(), None);
    let r = obs_check::run(&fx.config(false));
    let skipped: BTreeSet<&str> = r
        .results
        .iter()
        .filter(|x| x.status == Status::Skip)
        .map(|x| x.id)
        .collect();
    let want: BTreeSet<&str> = [
        "correlation.in_logs",
        "trace.in_logs",
        "trace.in_spans",
        "logs.json",
        "logs.request_ids",
        "secrets.logs",
        "secrets.spans",
        "secrets.exported_logs",
    ]
    .into_iter()
    .collect();
    assert_eq!(skipped, want, "{}", r.to_text());
    assert!(r.ok());
}

#[test]
fn an_unreachable_service_fails_without_hanging() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = Config::new(&format!("http://127.0.0.1:{port}/")).unwrap();
    c.wait = Duration::from_millis(200);
    let r = obs_check::run(&c);
    assert!(
        r.get("metrics.text")
            .unwrap()
            .reason
            .contains("cannot connect"),
        "{}",
        r.to_text()
    );
    assert_eq!(r.get("probes.livez").unwrap().status, Status::Fail);
    assert!(!r.ok());
}

// ---------------------------------------------------------------- binary ---

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_obs-check"))
}

#[test]
fn the_binary_exits_zero_and_prints_stable_json_for_a_correct_service() {
    let fx = Fixture::start(Flaws::default(), None);
    let url = format!("http://{}/items", fx.addr);
    let out = bin()
        .args([
            &url,
            "--logs",
            fx.log_file.to_str().unwrap(),
            "--format",
            "json",
            "--wait",
            "2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["schema"], "obs-check/v1");
    assert_eq!(v["ok"], true);
    assert_eq!(v["summary"]["fail"], 0);
    let rules = v["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 25);
    for r in rules {
        for key in ["id", "group", "status", "reason", "value"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        assert!(
            ["pass", "warn", "fail", "skip"].contains(&r["status"].as_str().unwrap()),
            "{r}"
        );
    }
    // Logs came from the file; without --otlp-port the span rules skip.
    let status = |id: &str| rules.iter().find(|r| r["id"] == id).unwrap()["status"].clone();
    assert_eq!(status("logs.json"), "pass");
    assert_eq!(status("trace.in_spans"), "skip");
}

#[test]
fn the_binary_reads_logs_from_stdin() {
    use std::io::Write as _;
    let fx = Fixture::start(Flaws::default(), None);
    let url = format!("http://{}/items", fx.addr);
    let mut child = bin()
        .args([&url, "--logs", "-", "--wait", "3"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Feed the fixture's lines as they are written, as a pipe from the
    // service would.
    let mut stdin = child.stdin.take().unwrap();
    let mut sent = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        let lines = fx
            .logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for l in &lines[sent..] {
            let _ = writeln!(stdin, "{l}");
        }
        sent = lines.len();
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for rule in [
        "logs.json",
        "logs.request_ids",
        "secrets.logs",
        "correlation.in_logs",
    ] {
        assert!(
            stdout.contains(&format!("pass    {rule} ")),
            "{rule}: {stdout}"
        );
    }
}

#[test]
fn the_binary_exits_one_on_a_failed_rule_and_two_on_bad_usage() {
    let fx = Fixture::start(
        Flaws {
            plain_text_logs: true,
            ..Flaws::default()
        },
        None,
    );
    let url = format!("http://{}/items", fx.addr);
    let out = bin()
        .args([&url, "--logs", fx.log_file.to_str().unwrap(), "--wait", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("fail    logs.json"), "{stdout}");
    assert!(stdout.trim_end().ends_with("FAILED"), "{stdout}");

    for args in [
        &["--format", "yaml", "http://h/"][..],
        &[][..],
        &["https://h/"][..],
        &["http://h/", "--bogus", "1"][..],
    ] {
        let out = bin().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage: obs-check URL"),
            "{args:?}"
        );
    }
}
