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

/// A bucket's first 16 observations are all offered as exemplars, then one
/// in 16: a hot bucket pays the current-span lookup on a sixteenth of its
/// observations and still refreshes its exemplar; a rare bucket keeps the
/// first sampled observation it gets.
#[test]
fn hot_buckets_refresh_their_exemplar_one_observation_in_sixteen() {
    let registry = Registry::new();
    let h = registry.histogram("hot_seconds", "Hot.", &[1.0]).unwrap();
    let om = || registry.encode(Format::OpenMetrics);
    let hot_line = |om: &str| {
        om.lines()
            .find(|l| l.starts_with("hot_seconds_bucket{le=\"1.0\"}"))
            .unwrap()
            .to_owned()
    };
    in_span(TraceFlags::NOT_SAMPLED, || {
        for _ in 0..100 {
            h.observe(0.5);
        }
    });
    assert!(!om().contains("trace_id"));
    // The bucket had seen 100..=110 observations: none is due (112 is).
    in_span(TraceFlags::SAMPLED, || {
        for _ in 0..11 {
            h.observe(0.5);
        }
    });
    assert!(!om().contains("trace_id"), "{}", om());
    let (b, _) = in_span(TraceFlags::SAMPLED, || {
        h.observe(0.5);
        h.observe(0.5);
    });
    assert!(hot_line(&om()).contains(&b.to_string()), "{}", om());
    // 113..=127: kept; 128: refreshed.
    let (c, _) = in_span(TraceFlags::SAMPLED, || {
        for _ in 0..15 {
            h.observe(0.5);
        }
    });
    let line = hot_line(&om());
    assert!(
        line.contains(&b.to_string()) && !line.contains(&c.to_string()),
        "{line}"
    );
    let (d, _) = in_span(TraceFlags::SAMPLED, || h.observe(0.5));
    assert!(hot_line(&om()).contains(&d.to_string()), "{}", om());
    // A rare bucket's first observation is offered.
    let (e, _) = in_span(TraceFlags::SAMPLED, || h.observe(5.0));
    let inf = om()
        .lines()
        .find(|l| l.starts_with("hot_seconds_bucket{le=\"+Inf\"}"))
        .unwrap()
        .to_owned();
    assert!(inf.contains(&e.to_string()), "{inf}");
}

/// A counter stepped by large amounts refreshes its exemplar on every step
/// (each one crosses a multiple of 16); stepped by one, on one in 16.
#[test]
fn counters_refresh_by_the_multiples_of_16_they_cross() {
    let registry = Registry::new();
    let rows = registry.counter("rows", "Rows.").unwrap();
    let line = || {
        registry
            .encode(Format::OpenMetrics)
            .lines()
            .find(|l| l.starts_with("rows_total "))
            .unwrap()
            .to_owned()
    };
    // 1000, then steps of 1024: the total is never a multiple of 16, but
    // every step crosses one.
    in_span(TraceFlags::SAMPLED, || rows.inc_by(1000));
    for _ in 0..3 {
        let (t, _) = in_span(TraceFlags::SAMPLED, || rows.inc_by(1024));
        assert!(line().contains(&t.to_string()), "{}", line());
    }
    // Stepped by one from 4072 (= 16 · 254 + 8): 4073..=4079 cross nothing,
    // the step to 4080 does.
    in_span(TraceFlags::SAMPLED, || rows.inc_by(1));
    let first = line();
    for _ in 0..6 {
        in_span(TraceFlags::SAMPLED, || rows.inc());
    }
    assert_eq!(
        first.split(" # ").nth(1).map(|e| e.split(' ').next()),
        line().split(" # ").nth(1).map(|e| e.split(' ').next()),
        "refreshed before crossing 4080"
    );
    let (t, _) = in_span(TraceFlags::SAMPLED, || rows.inc());
    assert!(line().contains(&t.to_string()), "{}", line());
}
