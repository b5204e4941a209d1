//! End-to-end tests of the `service` example with real peers: the built
//! binary runs on loopback (`PORT=0 ADMIN_PORT=0`), real HTTP requests drive
//! it, a real Prometheus server scrapes it, the OTLP receiver of
//! `obs-testing` collects its spans, and its stdout JSON lines are read back.
//!
//! Every wait is bounded; the child process is killed when a test ends,
//! passes or panics.

mod common;

use std::time::Duration;

use common::{Http, Service, json, poll};
use obs_testing::otlp::{OtlpReceiver, ReceivedSpan};
use obs_testing::prometheus::{PrometheusServer, check_metrics};
use serde_json::Value;

#[test]
fn crud_works_and_prometheus_sees_red_metrics_by_route_and_status() {
    let svc = Service::start(&[]);
    let http = Http::new();

    // CRUD over real HTTP.
    let list = http.get(&svc.api("/items"));
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(
        list.json().as_array().map(Vec::len),
        Some(3),
        "three seeded items: {}",
        list.body
    );
    let created = http.send(
        "POST",
        &svc.api("/items"),
        &[],
        Some(r#"{"name":"lamp","quantity":3}"#),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"]
        .as_i64()
        .expect("created item has an id");
    let one = http.get(&svc.api(&format!("/items/{id}")));
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.json()["name"], "lamp");
    assert!(
        one.json()["price_cents"].as_i64().is_some(),
        "price from the downstream call: {}",
        one.body
    );
    let updated = http.send(
        "PUT",
        &svc.api(&format!("/items/{id}")),
        &[],
        Some(r#"{"name":"desk lamp","quantity":5}"#),
    );
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.json()["name"], "desk lamp");
    assert_eq!(updated.json()["quantity"], 5);
    assert_eq!(http.get(&svc.api("/items/1")).status, 200);
    assert_eq!(
        http.send("DELETE", &svc.api(&format!("/items/{id}")), &[], None)
            .status,
        204
    );
    assert_eq!(http.get(&svc.api(&format!("/items/{id}"))).status, 404);
    let bad = http.send(
        "POST",
        &svc.api("/items"),
        &[],
        Some(r#"{"name":"  ","quantity":1}"#),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(http.get(&svc.api("/items")).status, 200);
    assert_eq!(http.get(&svc.api("/items")).status, 200);

    // The exposition is clean for promtool and holds every metric family the
    // service feeds.
    let metrics = http.get(&svc.admin("/metrics"));
    assert_eq!(metrics.status, 200);
    if let Err(e) = check_metrics(&metrics.body) {
        panic!("promtool check metrics failed: {e}\n{}", metrics.body);
    }
    for family in [
        "http_server_request_duration_seconds_count",
        "http_client_request_duration_seconds_count",
        "db_client_operation_duration_seconds_count",
        "jobs_started_total",
        "job_queue_length",
    ] {
        assert!(
            metrics.body.contains(family),
            "{family} missing from /metrics:\n{}",
            metrics.body
        );
    }

    // A real Prometheus server scrapes the admin port; its HTTP API answers
    // by route template and status.
    let prom = PrometheusServer::start(svc.admin, "/metrics")
        .unwrap_or_else(|e| panic!("cannot start Prometheus: {e}"));
    let count = |method: &str, route: &str, status: u16| -> f64 {
        let q = format!(
            r#"http_server_request_duration_seconds_count{{job="obs",http_request_method="{method}",http_route="{route}",http_response_status_code="{status}"}}"#
        );
        let series = prom
            .wait_for(&q, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(series.len(), 1, "one series for {q}: {series:?}");
        series[0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no value in {series:?}"))
    };
    assert_eq!(count("GET", "/items", 200), 3.0);
    assert_eq!(count("POST", "/items", 201), 1.0);
    assert_eq!(count("POST", "/items", 400), 1.0);
    assert_eq!(count("GET", "/items/{id}", 200), 2.0);
    assert_eq!(count("GET", "/items/{id}", 404), 1.0);
    assert_eq!(count("PUT", "/items/{id}", 200), 1.0);
    assert_eq!(count("DELETE", "/items/{id}", 204), 1.0);
    // The downstream calls went through the server stack too.
    assert_eq!(count("GET", "/internal/price/{id}", 200), 2.0);
    // Raw paths never become labels.
    let raw = prom
        .query(r#"http_server_request_duration_seconds_count{http_route=~"/items/[0-9]+"}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(raw.is_empty(), "raw paths as route labels: {raw:?}");
    let targets = prom.targets().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(targets.len(), 1);
    assert_eq!(
        targets[0]["health"], "up",
        "scrape target: {:?}",
        targets[0]
    );
}

/// Spans of `trace` with this kind (2 server, 3 client, 5 consumer).
fn of_kind(spans: &[ReceivedSpan], kind: i32) -> impl Iterator<Item = &ReceivedSpan> {
    spans.iter().filter(move |s| s.kind() == kind)
}

fn describe(spans: &[ReceivedSpan]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{} kind={} trace={} span={} parent={:?} attrs={:?}",
                s.name(),
                s.kind(),
                s.trace_id(),
                s.span_id(),
                s.parent_span_id(),
                s.attributes()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn one_trace_links_server_db_client_and_job_spans_and_the_log_lines() {
    let receiver = OtlpReceiver::start();
    let endpoint = receiver.http_base_url();
    let svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_TRACES_SAMPLER", "always_on"),
    ]);
    let http = Http::new();
    let correlation = "e2e-trace-check-7f3a";

    let resp = http.send(
        "GET",
        &svc.api("/items/2"),
        &[("x-correlation-id", correlation)],
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.header("x-correlation-id"),
        Some(correlation),
        "echoed correlation id"
    );
    assert!(
        resp.json()["price_cents"].as_i64().is_some(),
        "downstream call answered: {}",
        resp.body
    );

    // Wait until the trace holds a server span, the DB span, the client span
    // and the job's consumer span.
    let complete = poll(Duration::from_secs(30), || {
        let spans = receiver.spans();
        let server = spans
            .iter()
            .find(|s| s.kind() == 2 && s.name() == "GET /items/{id}")?
            .clone();
        let trace = receiver.trace(&server.trace_id());
        let has_job = of_kind(&trace, 5).any(|s| s.name() == "record_view");
        // The job's own query, wherever it landed: the job has finished.
        let job_done = spans.iter().any(|s| s.name() == "UPDATE items");
        (has_job && job_done).then_some((server, trace))
    });
    let Some((server, trace)) = complete else {
        panic!(
            "incomplete trace after 30s; received:\n{}\n{}",
            describe(&receiver.spans()),
            svc.output()
        );
    };
    let dump = describe(&trace);
    let tid = server.trace_id();
    assert_ne!(tid, "0".repeat(32));
    assert_eq!(
        server.attr("http.route").as_deref(),
        Some("/items/{id}"),
        "{dump}"
    );

    // The DB span is a client span, child of the server span.
    let db = trace
        .iter()
        .find(|s| s.name() == "SELECT items")
        .unwrap_or_else(|| panic!("no DB span in the trace:\n{dump}"));
    assert_eq!(db.kind(), 3, "{dump}");
    assert_eq!(
        db.attr("db.system.name").as_deref(),
        Some("sqlite"),
        "{dump}"
    );
    assert_eq!(db.parent_span_id(), Some(server.span_id()), "{dump}");

    // The HTTP client span of the downstream call, child of the server span,
    // and the downstream server span continuing from it over the wire.
    let client = of_kind(&trace, 3)
        .find(|s| {
            s.attr("url.full")
                .is_some_and(|u| u.contains("/internal/price/2"))
        })
        .unwrap_or_else(|| panic!("no client span in the trace:\n{dump}"));
    assert_eq!(client.parent_span_id(), Some(server.span_id()), "{dump}");
    let downstream = of_kind(&trace, 2)
        .find(|s| s.name() == "GET /internal/price/{id}")
        .unwrap_or_else(|| panic!("no downstream server span in the trace:\n{dump}"));
    assert_eq!(
        downstream.parent_span_id(),
        Some(client.span_id()),
        "{dump}"
    );

    // The job's consumer span continues the request's trace.
    let job = of_kind(&trace, 5)
        .find(|s| s.name() == "record_view")
        .unwrap_or_else(|| panic!("no job span in the trace:\n{dump}"));
    assert_eq!(job.parent_span_id(), Some(server.span_id()), "{dump}");
    for s in [&server, db, client, downstream, job] {
        assert_eq!(s.trace_id(), tid, "{dump}");
        assert_eq!(
            s.resource.get("service.name").map(String::as_str),
            Some("items-service")
        );
    }

    // The stdout JSON lines of the same request carry the trace id and the
    // correlation id: the access log line, the downstream's access log line
    // and the job's line.
    let found = poll(Duration::from_secs(10), || {
        let lines: Vec<Value> = svc
            .json_lines()
            .into_iter()
            .filter(|l| l["trace_id"] == tid.as_str())
            .collect();
        let access = lines
            .iter()
            .find(|l| l["message"] == "request finished" && l["url.path"] == "/items/2")?
            .clone();
        let downstream = lines
            .iter()
            .find(|l| l["message"] == "request finished" && l["url.path"] == "/internal/price/2")?
            .clone();
        let job = lines
            .iter()
            .find(|l| l["message"] == "job finished")?
            .clone();
        Some((access, downstream, job, lines))
    });
    let Some((access, downstream_line, job_line, lines)) = found else {
        panic!("log lines of trace {tid} not found; {}", svc.output());
    };
    for line in [&access, &downstream_line, &job_line] {
        assert_eq!(line["correlation_id"], correlation, "{line}");
        assert_eq!(line["trace_id"], tid.as_str(), "{line}");
    }
    assert_eq!(access["span_id"], server.span_id().as_str(), "{access}");
    assert_eq!(access["http.response.status_code"], 200, "{access}");
    assert!(
        lines.iter().all(|l| l["correlation_id"] == correlation),
        "every line of the trace carries the correlation id: {lines:?}"
    );
}

#[test]
fn trace_and_correlation_id_cross_to_a_second_instance() {
    let receiver = OtlpReceiver::start();
    let endpoint = receiver.http_base_url();
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];
    let prices = Service::start(&[&otel[..], &[("OTEL_SERVICE_NAME", "price-service")]].concat());
    let price_url = format!("http://{}", prices.http);
    let front = Service::start(
        &[
            &otel[..],
            &[
                ("OTEL_SERVICE_NAME", "front"),
                ("PRICE_SERVICE_URL", price_url.as_str()),
            ],
        ]
        .concat(),
    );
    let http = Http::new();
    let correlation = "e2e-two-processes";
    let resp = http.send(
        "GET",
        &front.api("/items/1"),
        &[("x-correlation-id", correlation)],
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.json()["price_cents"].as_i64().is_some(),
        "{}",
        resp.body
    );

    let found = poll(Duration::from_secs(30), || {
        let spans = receiver.spans();
        let server = spans
            .iter()
            .find(|s| {
                s.name() == "GET /items/{id}"
                    && s.resource.get("service.name").map(String::as_str) == Some("front")
            })?
            .clone();
        let remote = spans
            .iter()
            .find(|s| {
                s.name() == "GET /internal/price/{id}"
                    && s.resource.get("service.name").map(String::as_str) == Some("price-service")
            })?
            .clone();
        Some((server, remote, spans))
    });
    let Some((server, remote, spans)) = found else {
        panic!(
            "spans of both services not received:\n{}",
            describe(&receiver.spans())
        );
    };
    let dump = describe(&spans);
    let client = spans
        .iter()
        .find(|s| {
            s.kind() == 3
                && s.attr("url.full")
                    .is_some_and(|u| u.starts_with(&price_url))
        })
        .unwrap_or_else(|| panic!("no client span to the price service:\n{dump}"));
    assert_eq!(client.trace_id(), server.trace_id(), "{dump}");
    assert_eq!(
        remote.trace_id(),
        server.trace_id(),
        "the trace crosses processes:\n{dump}"
    );
    assert_eq!(remote.parent_span_id(), Some(client.span_id()), "{dump}");

    // The second process logs the request with the same trace and correlation ids.
    let line = poll(Duration::from_secs(10), || {
        prices
            .json_lines()
            .into_iter()
            .find(|l| l["message"] == "request finished" && l["url.path"] == "/internal/price/1")
    })
    .unwrap_or_else(|| panic!("no access line in the price service; {}", prices.output()));
    assert_eq!(line["trace_id"], server.trace_id().as_str(), "{line}");
    assert_eq!(line["correlation_id"], correlation, "{line}");
    assert_eq!(line["service.name"], "price-service", "{line}");
}

#[test]
fn job_body_spans_are_children_of_the_job_span() {
    let receiver = OtlpReceiver::start();
    let endpoint = receiver.http_base_url();
    let svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ]);
    let http = Http::new();
    let resp = http.send(
        "GET",
        &svc.api("/items/3"),
        &[("x-correlation-id", "e2e-job-body")],
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);

    let found = poll(Duration::from_secs(30), || {
        let spans = receiver.spans();
        let job = spans
            .iter()
            .find(|s| s.kind() == 5 && s.name() == "record_view")?
            .clone();
        let query = spans.iter().find(|s| s.name() == "UPDATE items")?.clone();
        Some((job, query, spans))
    });
    let Some((job, query, spans)) = found else {
        panic!(
            "no job spans after 30s:\n{}\n{}",
            describe(&receiver.spans()),
            svc.output()
        );
    };
    // The job's query is a child of the job span, in the request's trace.
    assert_eq!(
        (query.trace_id(), query.parent_span_id()),
        (job.trace_id(), Some(job.span_id())),
        "the job body's DB span must be a child of the job span:\n{}",
        describe(&spans)
    );
    // And the job body's log lines carry the job's trace and correlation ids.
    let line = poll(Duration::from_secs(10), || {
        svc.json_lines()
            .into_iter()
            .find(|l| l["message"] == "view recorded")
    })
    .unwrap_or_else(|| panic!("no 'view recorded' line; {}", svc.output()));
    assert_eq!(line["trace_id"], job.trace_id().as_str(), "{line}");
    assert_eq!(line["correlation_id"], "e2e-job-body", "{line}");
    // The job span names its queue (semantic conventions for messaging).
    assert_eq!(
        job.attr("messaging.destination.name").as_deref(),
        Some("items"),
        "{}",
        describe(&spans)
    );
}

#[test]
fn default_log_level_is_info() {
    let mut svc = Service::start(&[("SHUTDOWN_GRACE_MS", "100")]);
    let http = Http::new();
    assert_eq!(http.get(&svc.api("/items/1")).status, 200);
    svc.sigterm();
    let status = svc
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no exit within 20s of SIGTERM; {}", svc.output()));
    assert!(status.success(), "{status}");
    let lines = svc.json_lines();
    assert!(
        lines.iter().any(|l| l["message"] == "request finished"),
        "{}",
        svc.output()
    );
    let below_info: Vec<&Value> = lines
        .iter()
        .filter(|l| matches!(l["level"].as_str(), Some("DEBUG" | "TRACE")))
        .collect();
    assert!(
        below_info.is_empty(),
        "lines below the default `info` filter: {below_info:#?}"
    );
}

#[test]
fn probes_flip_during_graceful_shutdown() {
    let mut svc = Service::start(&[("SHUTDOWN_GRACE_MS", "3000")]);
    let http = Http::new();

    let ready = http.get(&svc.admin("/readyz?verbose"));
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready.body.contains("[+]db ok"),
        "the database readiness check runs: {}",
        ready.body
    );
    assert_eq!(http.get(&svc.admin("/livez")).status, 200);

    svc.sigterm();
    // Within the grace period: readiness fails, liveness holds, and the API
    // still serves requests already routed here.
    let not_ready = poll(Duration::from_secs(2), || {
        let r = http.get(&svc.admin("/readyz?verbose"));
        (r.status == 503).then_some(r)
    })
    .unwrap_or_else(|| panic!("/readyz never answered 503 after SIGTERM; {}", svc.output()));
    assert!(not_ready.body.contains("[-]shutdown"), "{}", not_ready.body);
    let live = http.get(&svc.admin("/livez"));
    assert_eq!(
        live.status, 200,
        "liveness must hold while draining: {}",
        live.body
    );
    assert_eq!(
        http.get(&svc.api("/items")).status,
        200,
        "the API serves during the grace period"
    );

    // Then the process stops on its own and reports what obs flushed.
    let status = svc.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "the service did not exit within 20s of SIGTERM; {}",
            svc.output()
        )
    });
    assert!(status.success(), "exit status {status}; {}", svc.output());
    let lines = svc.json_lines();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "shutting down: readiness now fails"
                && l["signal"] == "SIGTERM"),
        "{}",
        svc.output()
    );
    let report = svc
        .stdout
        .wait_for(Duration::from_secs(2), |l| {
            json(l).is_some_and(|v| v["message"] == "obs shutdown report")
        })
        .and_then(|l| json(&l))
        .unwrap_or_else(|| panic!("no shutdown report; {}", svc.output()));
    assert_eq!(report["completed"], true, "{report}");
    assert_eq!(report["log_lines_dropped"], 0, "{report}");
}
