//! A real Prometheus server (Debian `prometheus`, started by the
//! obs-testing helper) scrapes our endpoint — it negotiates OpenMetrics —
//! and its API returns our series and the exemplar of a sampled span.

use std::time::Duration;

use obs_core::{IdRecord, SpanId, TraceFlags, TraceId};
use obs_metrics::{Registry, SummaryOpts};
use obs_testing::prometheus::PrometheusServer;

#[test]
fn real_prometheus_scrapes_every_type_and_exemplars() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::new();
    registry
        .counter_family("e2e_requests", "Requests.", ["route"])
        .unwrap()
        .get(["/a/{id}"])
        .inc_by(5);
    registry
        .gauge("e2e_queue_length", "Queue length.")
        .unwrap()
        .set(3);
    registry
        .float_gauge("e2e_ratio", "A ratio.")
        .unwrap()
        .set(0.5);
    let latency = registry
        .histogram("e2e_latency_seconds", "Latency.", &[0.1, 1.0])
        .unwrap();
    let sizes = registry
        .summary("e2e_batch_rows", "Rows per batch.", SummaryOpts::default())
        .unwrap();
    for v in 1..=100 {
        sizes.observe(f64::from(v));
    }
    registry
        .callback_gauge("e2e_callback_level", "From a closure.", || 42.0)
        .unwrap();
    obs_metrics::process::register(&registry).unwrap();

    // One observation inside a sampled span: an exemplar with its trace id.
    let trace_id = TraceId::random();
    obs_testing::subscriber::with_default(tracing_subscriber::Registry::default(), || {
        let span = tracing::info_span!("request");
        IdRecord::update_span_id(&span.id().unwrap(), |r| {
            *r = IdRecord::with_trace(trace_id, SpanId::random(), TraceFlags::SAMPLED);
        });
        let _g = span.enter();
        latency.observe(0.5);
    });

    let server = rt
        .block_on(obs_metrics::serve(
            registry.clone(),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    let prom = PrometheusServer::start(server.local_addr(), "/metrics").unwrap();
    let wait = Duration::from_secs(60);

    let r = prom.wait_for("e2e_requests_total", wait).unwrap();
    assert_eq!(r[0]["metric"]["route"], "/a/{id}");
    assert_eq!(r[0]["value"][1], "5");
    let targets = prom.targets().unwrap();
    assert_eq!(targets[0]["health"], "up", "{targets:?}");
    assert_eq!(targets[0]["lastError"], "", "{targets:?}");

    for (q, want) in [
        ("e2e_queue_length", "3"),
        ("e2e_ratio", "0.5"),
        ("e2e_latency_seconds_count", "1"),
        ("e2e_batch_rows_count", "100"),
        ("e2e_callback_level", "42"),
    ] {
        let r = prom.wait_for(q, wait).unwrap();
        assert_eq!(r[0]["value"][1], want, "{q}: {r:?}");
    }
    // Match quantile and le by value: newer Prometheus versions normalise
    // "0.5"/"1.0" label text from OpenMetrics.
    let quantiles = prom.wait_for("e2e_batch_rows", wait).unwrap();
    let p50 = quantiles
        .iter()
        .find(|s| {
            s["metric"]["quantile"]
                .as_str()
                .and_then(|q| q.parse::<f64>().ok())
                == Some(0.5)
        })
        .unwrap_or_else(|| panic!("no 0.5 quantile in {quantiles:?}"));
    let p50: f64 = p50["value"][1].as_str().unwrap().parse().unwrap();
    assert!((p50 - 50.0).abs() <= 1.0, "{p50}");
    prom.wait_for("process_resident_memory_bytes", wait)
        .unwrap();
    let buckets = prom.wait_for("e2e_latency_seconds_bucket", wait).unwrap();
    assert_eq!(buckets.len(), 3, "{buckets:?}");

    let exemplars = prom.query_exemplars("e2e_latency_seconds_bucket").unwrap();
    let labels: Vec<_> = exemplars
        .iter()
        .flat_map(|s| s["exemplars"].as_array().cloned().unwrap_or_default())
        .map(|e| e["labels"]["trace_id"].clone())
        .collect();
    assert!(
        labels.iter().any(|t| *t == trace_id.to_string()),
        "exemplars: {exemplars:?}"
    );

    drop(prom);
    rt.block_on(server.shutdown());
}
