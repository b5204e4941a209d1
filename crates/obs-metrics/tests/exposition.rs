//! Every metric type's output is accepted by a real `promtool check metrics`
//! (Debian `prometheus`, installed by the obs-testing helper when missing),
//! and registration rejects bad input with typed errors.

use std::time::Duration;

use obs_metrics::{Error, Format, Registry, SummaryOpts};
use obs_testing::prometheus::check_metrics;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
enum Method {
    Get,
    Post,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    method: Method,
    path: String,
}

/// A registry holding one of everything, with awkward label values.
fn everything() -> Registry {
    let r = Registry::builder().cardinality_limit(3).build();
    r.counter("plain_events", "A plain counter.")
        .unwrap()
        .inc_by(3);
    r.gauge("plain_level", "An integer gauge.").unwrap().set(-4);
    r.float_gauge("plain_ratio", "A float gauge.")
        .unwrap()
        .set(2.5);
    let h = r
        .histogram("plain_seconds", "A histogram.", &[0.1, 1.0, 10.0])
        .unwrap();
    for v in [0.05, 0.5, 5.0, 50.0] {
        h.observe(v);
    }
    let s = r
        .summary(
            "plain_latency_seconds",
            "A summary with \"quotes\" and a \\ backslash\nand a newline.",
            SummaryOpts::default(),
        )
        .unwrap();
    for v in 1..=100 {
        s.observe(f64::from(v) / 100.0);
    }
    r.summary(
        "empty_latency",
        "A summary with no observations (NaN quantiles).",
        SummaryOpts::default(),
    )
    .unwrap();
    let cf = r
        .counter_family("labelled_events", "A labelled counter.", ["kind", "note"])
        .unwrap();
    cf.get(["a", "with \"quotes\""]).inc();
    cf.get(["b", "back\\slash\nnewline"]).inc_by(2);
    // Past the limit of 3: the overflow series.
    for i in 0..10 {
        cf.get(["c", &i.to_string()]).inc();
    }
    r.gauge_family("labelled_level", "A labelled gauge.", ["queue"])
        .unwrap()
        .get(["emails"])
        .set(7);
    r.float_gauge_family("labelled_ratio", "A labelled float gauge.", ["queue"])
        .unwrap()
        .get(["emails"])
        .set(0.25);
    let hf = r
        .histogram_family(
            "labelled_seconds",
            "A labelled histogram.",
            &[0.5, 1.0],
            ["route"],
        )
        .unwrap();
    hf.get(["/a/{id}"]).observe(0.7);
    let sf = r
        .summary_family(
            "labelled_latency",
            "A labelled summary.",
            SummaryOpts::default(),
            ["route"],
        )
        .unwrap();
    sf.get(["/a"]).observe(3.0);
    let typed = r
        .labelled::<obs_metrics::Counter, Labels>("typed_requests", "Derive-based labels.")
        .unwrap();
    typed
        .get(&Labels {
            method: Method::Get,
            path: "/x".into(),
        })
        .inc();
    typed
        .get(&Labels {
            method: Method::Post,
            path: "/y\"z".into(),
        })
        .inc();
    r.callback_counter("callback_events", "A callback counter.", || 11)
        .unwrap();
    r.callback_gauge("callback_level", "A callback gauge.", || 1.5)
        .unwrap();
    r.callback_gauge_family(
        "callback_queue_depth",
        "A labelled callback gauge.",
        ["queue"],
        |e| {
            e.emit(["a"], 1u64);
            e.emit(["b"], -2i64);
        },
    )
    .unwrap();
    obs_metrics::process::register(&r).unwrap();
    obs_metrics::sets::build_info(&r, "svc", "1.2.3", "deadbeef").unwrap();
    let http = obs_metrics::sets::HttpServerMetrics::new(&r).unwrap();
    http.record("GET", "/items/{id}", 200, None, Duration::from_millis(3));
    http.record("BREW", "/pot", 503, None, Duration::from_millis(30));
    http.record_sizes("GET", "/items/{id}", 200, Some(10), Some(2000));
    let jobs = obs_metrics::sets::JobMetrics::new(&r).unwrap();
    jobs.start("q", "t").succeed();
    jobs.start("q", "t").retry();
    drop(jobs.start("q", "t"));
    jobs.set_queue("q", 4, Duration::from_secs(9));
    let db = obs_metrics::sets::DbMetrics::new(&r).unwrap();
    drop(db.timer("sqlite", "SELECT", "items"));
    let client = obs_metrics::sets::HttpClientMetrics::new(&r).unwrap();
    client.record(
        "GET",
        "api.example.com",
        None,
        Some("timeout"),
        Duration::from_millis(5),
    );
    let p = obs_metrics::sets::PipelineMetrics::new(&r).unwrap();
    p.record_batch("orders", "parse", 10, 9, 1, Duration::from_millis(10));
    r
}

#[test]
fn promtool_accepts_every_metric_type() {
    let text = everything().encode(Format::Text);
    check_metrics(&text).unwrap_or_else(|e| panic!("{e}"));
    for needle in [
        "# TYPE plain_events_total counter\nplain_events_total 3\n",
        "plain_level -4\n",
        "plain_ratio 2.5\n",
        "plain_seconds_bucket{le=\"+Inf\"} 4\n",
        "plain_seconds_count 4\n",
        "# TYPE plain_latency_seconds summary\n",
        "plain_latency_seconds_count 100\n",
        "empty_latency{quantile=\"0.99\"} NaN\n",
        r#"labelled_events_total{kind="a",note="with \"quotes\""} 1"#,
        r#"labelled_events_total{kind="b",note="back\\slash\nnewline"} 2"#,
        "labelled_events_total{otel_metric_overflow=\"true\"} 9\n",
        "obs_metric_label_sets_rejected_total{metric=\"labelled_events\"} 9\n",
        r#"typed_requests_total{method="Post",path="/y\"z"} 1"#,
        "callback_events_total 11\n",
        "callback_queue_depth{queue=\"b\"} -2\n",
        "\nprocess_cpu_seconds_total ",
        "\nprocess_open_fds ",
        "\nprocess_max_fds ",
        "\nprocess_start_time_seconds ",
        "\nprocess_threads ",
        "\nprocess_virtual_memory_bytes ",
        r#"http_server_request_duration_seconds_count{http_request_method="_OTHER",http_route="/pot",http_response_status_code="503",error_type="503"} 1"#,
        r#"jobs_failed_total{queue="q",job_type="t"} 1"#,
        r#"db_client_operation_duration_seconds_count{db_system_name="sqlite",db_operation_name="SELECT",db_collection_name="items",error_type=""} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // HELP escaping of the text format: backslash and newline only.
    assert!(text.contains(
        r#"# HELP plain_latency_seconds A summary with "quotes" and a \\ backslash\nand a newline."#
    ));
}

#[test]
fn openmetrics_shape() {
    let om = everything().encode(Format::OpenMetrics);
    assert!(om.ends_with("# EOF\n"));
    assert_eq!(om.matches("# EOF").count(), 1);
    // Counter families drop `_total` in metadata, keep it on samples.
    assert!(om.contains("# TYPE plain_events counter\nplain_events_total 3\n"));
    // OpenMetrics escapes quotes in HELP as well.
    assert!(om.contains(r#"# HELP plain_latency_seconds A summary with \"quotes\""#));
    // No exemplars without a sampled span.
    assert!(!om.contains("trace_id"));
}

#[test]
fn registration_errors_are_typed() {
    let r = Registry::new();
    let e = r.counter("bad-name", "x").unwrap_err();
    assert!(
        matches!(e, Error::InvalidMetricName { ref name, .. } if name == "bad-name"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "invalid metric name \"bad-name\": only letters, digits, '_' and ':' are allowed"
    );
    let e = r.counter_family("ok", "x", ["__reserved"]).unwrap_err();
    assert!(
        matches!(e, Error::InvalidLabelName { ref label, .. } if label == "__reserved"),
        "{e}"
    );
    let e = r.histogram_family("h", "x", &[1.0], ["le"]).unwrap_err();
    assert!(matches!(e, Error::InvalidLabelName { .. }), "{e}");
    let e = r.counter_family("dup", "x", ["a", "a"]).unwrap_err();
    assert!(matches!(e, Error::InvalidLabelName { .. }), "{e}");
    let e = r.histogram("h2", "x", &[2.0, 1.0]).unwrap_err();
    assert!(matches!(e, Error::InvalidBuckets { .. }), "{e}");
    let e = r
        .summary("s", "x", SummaryOpts::default().with_quantiles(&[2.0]))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidSummary { .. }), "{e}");
    let e = r
        .metric("lim", "x")
        .cardinality_limit(0)
        .counter_family(["a"])
        .unwrap_err();
    assert!(matches!(e, Error::InvalidLimit { .. }), "{e}");

    // Same name and shape: the same series comes back.
    let a = r.counter("jobs", "Jobs.").unwrap();
    let b = r.counter("jobs_total", "Jobs.").unwrap();
    a.inc();
    assert_eq!(b.get(), 1);
    // Different type or labels: a conflict naming both.
    let e = r.gauge("jobs", "Jobs.").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Conflict {
                existing: obs_metrics::MetricType::Counter,
                ..
            }
        ),
        "{e}"
    );
    let e = r.counter_family("jobs", "Jobs.", ["queue"]).unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    // A gauge whose samples would collide with the counter's `jobs_total`.
    let e = r.gauge("jobs_total", "Jobs.").unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    // A histogram's `_count` sample.
    r.histogram("lat", "x", &[1.0]).unwrap();
    assert!(r.gauge("lat_count", "x").is_err());
    // Callbacks cannot be registered twice.
    r.callback_gauge("cb", "x", || 1.0).unwrap();
    let e = r.callback_gauge("cb", "x", || 1.0).unwrap_err();
    assert!(matches!(e, Error::AlreadyRegistered { .. }), "{e}");
    // Derive-based labels that clash with reserved names go to overflow, counted.
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Bad {
        le: String,
    }
    let f = r
        .labelled::<obs_metrics::Counter, Bad>("bad_labels", "x")
        .unwrap();
    f.get(&Bad { le: "1".into() }).inc();
    assert_eq!(r.rejected_label_sets("bad_labels"), 1);
    // The scrape still encodes fine.
    check_metrics(&r.encode(Format::Text)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn callback_panics_do_not_break_the_scrape() {
    let r = Registry::new();
    r.callback_counter("before", "x", || 1).unwrap();
    r.callback_gauge_family("boom", "x", ["k"], |e| {
        e.emit(["a"], 1u64);
        panic!("callback bug");
    })
    .unwrap();
    r.callback_counter("after", "x", || 2).unwrap();
    let text = r.encode(Format::Text);
    assert!(text.contains("before_total 1\n"));
    assert!(text.contains("boom{k=\"a\"} 1\n"));
    assert!(text.contains("after_total 2\n"));
    check_metrics(&text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn prometheus_client_registries_are_included() {
    let r = Registry::new();
    let mut pc = prometheus_client::registry::Registry::default();
    let c: prometheus_client::metrics::counter::Counter = Default::default();
    pc.register("legacy_requests", "From prometheus-client.", c.clone());
    c.inc();
    r.register_prometheus_client(pc);
    let text = r.encode(Format::Text);
    assert!(text.contains("legacy_requests_total 1\n"), "{text}");
    check_metrics(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        r.encode(Format::OpenMetrics)
            .ends_with("legacy_requests_total 1\n# EOF\n")
    );
}
