//! Exemplars: counters and histograms carry the trace id of the sampled
//! span they were recorded in, only in OpenMetrics output.

use obs_core::{IdRecord, SpanId, TraceFlags, TraceId};
use obs_metrics::{Format, Registry};
use tracing_subscriber::Registry as Subscriber;

fn in_span(flags: TraceFlags, f: impl FnOnce()) -> (TraceId, SpanId) {
    let (trace_id, span_id) = (TraceId::random(), SpanId::random());
    obs_testing::subscriber::with_default(Subscriber::default(), || {
        let span = tracing::info_span!("request");
        assert!(IdRecord::update_span_id(&span.id().unwrap(), |r| {
            *r = IdRecord::with_trace(trace_id, span_id, flags);
        }));
        let child = tracing::info_span!(parent: &span, "inner");
        let _g = child.enter();
        f();
    });
    (trace_id, span_id)
}

#[test]
fn sampled_spans_leave_exemplars_in_openmetrics_only() {
    let registry = Registry::new();
    let requests = registry
        .counter_family("requests", "Requests.", ["route"])
        .unwrap();
    let latency = registry
        .histogram("latency_seconds", "Latency.", &[0.1, 1.0])
        .unwrap();
    let (trace_id, span_id) = in_span(TraceFlags::SAMPLED, || {
        requests.get(["/a"]).inc();
        latency.observe(0.5);
    });
    let om = registry.encode(Format::OpenMetrics);
    let hex = trace_id.to_string();
    let counter_line = om
        .lines()
        .find(|l| l.starts_with("requests_total{route=\"/a\"}"))
        .unwrap();
    assert!(
        counter_line.starts_with(&format!(
            "requests_total{{route=\"/a\"}} 1 # {{trace_id=\"{hex}\",span_id=\"{span_id}\"}} 1.0 "
        )),
        "{counter_line}"
    );
    // The exemplar sits on the bucket the observation fell in.
    let bucket = om
        .lines()
        .find(|l| l.starts_with("latency_seconds_bucket{le=\"1.0\"}"))
        .unwrap();
    assert!(
        bucket.contains(&format!(
            "# {{trace_id=\"{hex}\",span_id=\"{span_id}\"}} 0.5 "
        )),
        "{bucket}"
    );
    assert!(
        !om.lines()
            .find(|l| l.starts_with("latency_seconds_bucket{le=\"0.1\"}"))
            .unwrap()
            .contains('#')
    );

    let text = registry.encode(Format::Text);
    assert!(!text.contains("trace_id"), "{text}");
    obs_testing::prometheus::check_metrics(&text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn unsampled_spans_and_disabled_metrics_leave_none() {
    let registry = Registry::new();
    let c = registry.counter("unsampled", "x").unwrap();
    let off = registry
        .metric("off", "x")
        .exemplars(false)
        .counter()
        .unwrap();
    in_span(TraceFlags::NOT_SAMPLED, || c.inc());
    in_span(TraceFlags::SAMPLED, || off.inc());
    let om = registry.encode(Format::OpenMetrics);
    assert!(!om.contains("trace_id"), "{om}");
    // Outside any span: nothing either.
    c.inc();
    assert!(!registry.encode(Format::OpenMetrics).contains("trace_id"));
}
