//! Spans created through the OpenTelemetry API (`opentelemetry::global`,
//! `Tracer::start`, `SpanBuilder`) join obs's traces: parented to the
//! OpenTelemetry context or the current `tracing` span, sampled by obs's
//! sampler and exported by obs's pipeline (over real loopback OTLP in the
//! first test).
#![cfg(feature = "otel-api")]

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use obs_core::names::field::REDACTED;
use obs_testing::otlp::{HungCollector, OtlpReceiver};
use obs_trace::export::InMemoryExporter;
use obs_trace::otel_api::{self, ObsPropagator, OtelTracer};
use obs_trace::propagation::Extracted;
use obs_trace::span::{FinishedSpan, SpanKind, Status, Value};
use obs_trace::{BatchConfig, Config, Sampler, TracerProvider, context};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    self as ot, Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use tracing_subscriber::layer::SubscriberExt;

const TIMEOUT: Duration = Duration::from_secs(10);

fn in_memory(sampler: Sampler) -> (TracerProvider, InMemoryExporter) {
    let spans = InMemoryExporter::default();
    let p = TracerProvider::builder()
        .sampler(sampler)
        .with_exporter(spans.clone())
        .build()
        .unwrap();
    (p, spans)
}

fn flushed(p: &TracerProvider, spans: &InMemoryExporter) -> Vec<FinishedSpan> {
    assert!(p.force_flush(TIMEOUT));
    spans.spans()
}

fn find<'a>(spans: &'a [FinishedSpan], name: &str) -> &'a FinishedSpan {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

fn hex_trace(sc: &ot::SpanContext) -> String {
    sc.trace_id().to_string()
}

fn hex_span(sc: &ot::SpanContext) -> String {
    sc.span_id().to_string()
}

#[derive(Debug)]
struct Timeout;

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream timed out")
    }
}

impl std::error::Error for Timeout {}

/// (1) The only test that installs the global provider (the globals are
/// process-wide): a library span made through `opentelemetry::global`
/// inside an obs `tracing` request span arrives at a real OTLP receiver in
/// the request's trace, with everything the API gave it.
#[test]
fn global_tracer_span_joins_the_tracing_trace_at_the_otlp_receiver() {
    let receiver = OtlpReceiver::start();
    let cfg = Config::default()
        .service("otel-api-test")
        .otlp_http(receiver.http_traces_url())
        .batch(BatchConfig {
            schedule_delay: Duration::from_millis(20),
            ..BatchConfig::default()
        });
    let provider = TracerProvider::from_config(cfg).unwrap();
    let api = otel_api::install_global(&provider);
    let subscriber = tracing_subscriber::registry().with(provider.layer());
    let mut injected = HashMap::new();
    let (lib_cx, request_cx) = obs_testing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!("request", otel.kind = "server");
        let _g = request.enter();
        let request_cx = context::current_context().unwrap();
        let tracer = opentelemetry::global::tracer("db-lib");
        let lib_cx = tracer.in_span_with_builder(
            tracer
                .span_builder("SELECT users")
                .with_kind(ot::SpanKind::Client)
                .with_attributes([
                    KeyValue::new("db.system.name", "postgresql"),
                    KeyValue::new("db.rows", 3_i64),
                    KeyValue::new("ratio", 0.5),
                    KeyValue::new("cached", false),
                    KeyValue::new("ids", opentelemetry::Value::Array(vec![1_i64, 2, 3].into())),
                    KeyValue::new(String::from("owned.key"), String::from("owned value")),
                ]),
            |cx| {
                let span = cx.span();
                assert!(span.is_recording());
                span.add_event("rows fetched", vec![KeyValue::new("n", 3_i64)]);
                span.record_error(&Timeout);
                span.set_status(ot::Status::error("upstream timed out"));
                // A nested API span through the global tracer: a child of
                // the active OpenTelemetry span.
                opentelemetry::global::tracer("db-lib").in_span("decode", |_| {});
                // The global propagator writes the active span's context.
                opentelemetry::global::get_text_map_propagator(|p| p.inject(&mut injected));
                span.span_context().clone()
            },
        );
        (lib_cx, request_cx)
    });
    let spans = receiver.wait_for_spans(3, TIMEOUT);
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let report = provider.shutdown(TIMEOUT);
    assert_eq!((report.exported, report.dropped), (3, 0));
    assert_eq!(api.stats().scope_overflow(), 0);

    let by_name = |n: &str| spans.iter().find(|s| s.name() == n).unwrap().clone();
    let (request, lib, decode) = (
        by_name("request"),
        by_name("SELECT users"),
        by_name("decode"),
    );
    // One trace: request -> SELECT users -> decode.
    assert_eq!(request.trace_id(), request_cx.trace_id.to_string());
    assert_eq!(lib.trace_id(), request.trace_id());
    assert_eq!(decode.trace_id(), request.trace_id());
    assert_eq!(lib.parent_span_id(), Some(request.span_id()));
    assert_eq!(decode.parent_span_id(), Some(lib.span_id()));
    assert_eq!(request.parent_span_id(), None);
    // The ids the API handed out are the exported ones.
    assert_eq!(lib.trace_id(), hex_trace(&lib_cx));
    assert_eq!(lib.span_id(), hex_span(&lib_cx));
    assert!(lib_cx.is_sampled() && !lib_cx.is_remote());
    // Kind, attributes (every value type), events, status, scope.
    assert_eq!(lib.kind(), 3, "client");
    assert_eq!(request.kind(), 2, "server");
    let attrs = lib.attributes();
    assert_eq!(attrs["db.system.name"], "postgresql");
    assert_eq!(attrs["db.rows"], "3");
    assert_eq!(attrs["ratio"], "0.5");
    assert_eq!(attrs["cached"], "false");
    assert_eq!(attrs["ids"], "[1,2,3]");
    assert_eq!(attrs["owned.key"], "owned value");
    assert_eq!(lib.event_names(), ["rows fetched", "exception"]);
    let exception = &lib.span.events[1];
    assert_eq!(exception.attributes[0].key, "exception.message");
    assert_eq!(lib.status_code(), 2);
    assert_eq!(lib.status_message(), "upstream timed out");
    assert_eq!(lib.scope, "db-lib");
    assert_eq!(decode.scope, "db-lib");
    assert_eq!(lib.resource["service.name"], "otel-api-test");
    let start = lib.span.start_time_unix_nano;
    assert!(start > 0 && lib.span.end_time_unix_nano >= start);
    // What the library injected is its own span's context.
    assert_eq!(
        injected["traceparent"],
        format!("00-{}-{}-01", lib.trace_id(), lib.span_id())
    );
}

/// (2) Parent to child through the API's own contexts: `start_with_context`,
/// `in_span` nesting, a builder started in an explicit context, a remote
/// parent from the propagator; and a root when there is no parent at all.
#[test]
fn api_parents_children_and_keeps_ids_times_and_limits() {
    let (p, spans) = in_memory(Sampler::ParentBasedAlwaysOn);
    let api = p.otel_api();
    let tracer: OtelTracer = api.tracer("parenting");
    assert_eq!(tracer.scope(), "parenting");

    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let parent = tracer
        .span_builder("parent")
        .with_start_time(t0)
        .start_with_context(&tracer, &Context::new());
    let parent_sc = parent.span_context().clone();
    let cx = Context::new().with_span(parent);
    let mut child = tracer.start_with_context("child", &cx);
    child.set_attribute(KeyValue::new("password", "hunter2"));
    child.set_attribute(KeyValue::new("k", 1_i64));
    child.set_attribute(KeyValue::new("k", 2_i64));
    child.set_status(ot::Status::Ok);
    child.set_status(ot::Status::error("ignored: Ok is final"));
    child.update_name(String::from("child renamed"));
    child.add_link(parent_sc.clone(), vec![KeyValue::new("why", "test")]);
    let child_sc = child.span_context().clone();
    child.end_with_timestamp(t0 + Duration::from_secs(2));
    // Ending twice, and then dropping, export once.
    child.end();
    drop(child);
    let producer = tracer
        .span_builder("enqueue")
        .with_kind(ot::SpanKind::Producer)
        .start_with_context(&tracer, &cx);
    let producer_sc = producer.span_context().clone();
    drop(producer);
    let _attached = cx.attach();
    let nested = tracer.in_span("outer", |outer| {
        let inner = tracer.in_span("inner", |inner| inner.span().span_context().clone());
        (outer.span().span_context().clone(), inner)
    });
    drop(_attached);
    let root = tracer.start_with_context("root", &Context::new());
    let root_sc = root.span_context().clone();
    drop(root);
    // A remote parent, extracted by obs's propagator.
    let headers = HashMap::from([
        (
            "traceparent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        ),
        ("tracestate".to_owned(), "congo=t61rcWkgMzE".to_owned()),
        ("baggage".to_owned(), "user=alice".to_owned()),
    ]);
    let remote_cx = ObsPropagator::default().extract_with_context(&Context::new(), &headers);
    assert!(remote_cx.span().span_context().is_remote());
    let server = tracer
        .span_builder("server")
        .with_kind(ot::SpanKind::Server)
        .start_with_context(&tracer, &remote_cx);
    assert_eq!(
        server.span_context().trace_state().get("congo"),
        Some("t61rcWkgMzE")
    );
    let mut out = HashMap::new();
    ObsPropagator::default().inject_context(&remote_cx.with_span(server), &mut out);
    assert_eq!(out["baggage"], "user=alice");
    assert_eq!(out["tracestate"], "congo=t61rcWkgMzE");
    assert!(out["traceparent"].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    // The context (with the server span) was dropped: the span ended.

    let got = flushed(&p, &spans);
    assert_eq!(got.len(), 7, "{got:#?}");
    let parent = find(&got, "parent");
    let child = find(&got, "child renamed");
    assert_eq!(parent.start, t0);
    assert_eq!(parent.parent_span_id, None);
    assert_eq!(child.trace_id.to_string(), hex_trace(&parent_sc));
    assert_eq!(child.parent_span_id, Some(parent.span_id));
    assert_eq!(child.span_id.to_string(), hex_span(&child_sc));
    assert_eq!(child.end, t0 + Duration::from_secs(2));
    assert_eq!(child.status, Status::Ok);
    assert_eq!(
        child.attribute("k"),
        Some(&Value::I64(2)),
        "set_attribute replaces"
    );
    assert_eq!(
        child.attribute("password"),
        Some(&Value::Str(REDACTED.into())),
        "the exporter thread's redaction applies"
    );
    assert_eq!(child.links.len(), 1);
    assert_eq!(child.links[0].span_id.to_string(), hex_span(&parent_sc));
    assert_eq!(api.stats().dropped_link_attributes(), 1);
    assert_eq!(child.scope, "parenting");
    let producer = find(&got, "enqueue");
    assert_eq!(producer.kind, SpanKind::Producer);
    assert_eq!(producer.span_id.to_string(), hex_span(&producer_sc));
    assert_eq!(producer.parent_span_id, Some(parent.span_id));
    let (outer_sc, inner_sc) = nested;
    let (outer, inner) = (find(&got, "outer"), find(&got, "inner"));
    assert_eq!(
        outer.parent_span_id,
        Some(parent.span_id),
        "attached context"
    );
    assert_eq!(outer.span_id.to_string(), hex_span(&outer_sc));
    assert_eq!(inner.parent_span_id, Some(outer.span_id));
    assert_eq!(inner.span_id.to_string(), hex_span(&inner_sc));
    let root = find(&got, "root");
    assert_eq!(root.parent_span_id, None);
    assert_ne!(root.trace_id.to_string(), hex_trace(&parent_sc));
    assert_eq!(root.trace_id.to_string(), hex_trace(&root_sc));
    let server = find(&got, "server");
    assert_eq!(
        server.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        server.parent_span_id.unwrap().to_string(),
        "00f067aa0ba902b7"
    );
    assert!(server.parent_is_remote);
    assert_eq!(server.trace_state.get("congo"), Some("t61rcWkgMzE"));
    assert_eq!(server.kind, SpanKind::Server);
}

#[test]
fn limits_drop_and_count_like_the_layer() {
    let spans = InMemoryExporter::default();
    let p = TracerProvider::builder()
        .config(Config {
            max_attributes: 2,
            max_events: 1,
            ..Config::default()
        })
        .with_exporter(spans.clone())
        .build()
        .unwrap();
    let api = p.otel_api();
    let tracer = api.tracer("limits");
    let mut s = tracer
        .span_builder("limited")
        .with_attributes([
            KeyValue::new("a", 1_i64),
            KeyValue::new("b", 2_i64),
            KeyValue::new("c", 3_i64),
        ])
        .start_with_context(&tracer, &Context::new());
    s.set_attribute(KeyValue::new("d", 4_i64));
    s.set_attribute(KeyValue::new("a", 10_i64));
    s.add_event(
        "first",
        vec![
            KeyValue::new("x", 1_i64),
            KeyValue::new("y", 2_i64),
            KeyValue::new("z", 3_i64),
        ],
    );
    s.add_event("second", vec![]);
    s.add_event("third", vec![]);
    s.end();
    let got = flushed(&p, &spans);
    let s = find(&got, "limited");
    assert_eq!(s.attributes.len(), 2);
    assert_eq!(s.attribute("a"), Some(&Value::I64(10)));
    assert_eq!(s.dropped_attributes, 2);
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.events[0].attributes.len(), 2);
    assert_eq!(s.dropped_events, 2);
    assert_eq!(api.stats().dropped_event_attributes(), 1);
}

/// (3) An unsampled parent — a `tracing` span, an API span, or a remote
/// context — gives unsampled, non-recording API spans that still carry
/// valid, propagatable ids, and nothing is exported.
#[test]
fn unsampled_parents_give_valid_non_recording_spans_and_no_export() {
    let (p, spans) = in_memory(Sampler::ParentBasedAlwaysOn);
    let tracer = p.otel_api().tracer("unsampled");
    let subscriber = tracing_subscriber::registry().with(p.layer());
    obs_testing::subscriber::with_default(subscriber, || {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
                .parse()
                .unwrap(),
        );
        let extracted = p.propagators().extract_headers(&headers);
        let request = context::in_remote_context(&extracted, || tracing::info_span!("request"));
        let _g = request.enter();
        let request_cx = context::current_context().unwrap();
        assert!(!request_cx.is_sampled());
        tracer.in_span("lib", |cx| {
            let span = cx.span();
            let sc = span.span_context();
            assert!(!span.is_recording());
            assert!(sc.is_valid() && !sc.is_sampled());
            assert_eq!(
                sc.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_ne!(sc.span_id().to_string(), request_cx.span_id.to_string());
            span.set_attribute(KeyValue::new("ignored", true));
            span.add_event("ignored", vec![]);
            // Its child follows it.
            let child = tracer.start("child");
            assert!(!child.is_recording());
            assert_eq!(child.span_context().trace_id(), sc.trace_id());
        });
    });
    let remote = ObsPropagator::default().extract_with_context(
        &Context::new(),
        &HashMap::from([(
            "traceparent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".to_owned(),
        )]),
    );
    let s = tracer.start_with_context("remote child", &remote);
    assert!(!s.is_recording() && s.span_context().is_valid());
    drop(s);
    // An always_off provider: roots are valid and unsampled too.
    let (off, off_spans) = in_memory(Sampler::AlwaysOff);
    let s = off
        .otel_api()
        .tracer("off")
        .start_with_context("root", &Context::new());
    assert!(!s.is_recording() && s.span_context().is_valid() && !s.span_context().is_sampled());
    drop(s);
    assert!(flushed(&p, &spans).is_empty());
    assert!(flushed(&off, &off_spans).is_empty());
    assert_eq!(p.stats().ended(), 0);
}

/// (4) Sampled API spans go through the same bounded queue: against a
/// collector that never answers, a full queue drops the newest span and
/// counts it.
#[test]
fn full_queue_drops_and_counts_api_spans() {
    let hung = HungCollector::start();
    let cfg = Config::default()
        .otlp_http(hung.traces_url())
        .batch(BatchConfig {
            max_queue_size: 4,
            max_export_batch_size: 4,
            schedule_delay: Duration::from_millis(50),
            export_timeout: Duration::from_secs(30),
        });
    let p = TracerProvider::from_config(cfg).unwrap();
    let tracer = p.otel_api().tracer("queue");
    for i in 0..100_i64 {
        let mut s = tracer.start_with_context("unit", &Context::new());
        s.set_attribute(KeyValue::new("i", i));
    }
    let stats = p.stats();
    assert_eq!(stats.ended(), 100);
    // At most 4 queued and 4 in the hung batch; the rest were dropped.
    assert!(
        stats.dropped_queue_full() >= 92,
        "{}",
        stats.dropped_queue_full()
    );
    assert_eq!(stats.dropped_queue_full() + stats.pending(), 100);
    let r = p.shutdown(Duration::from_millis(300));
    assert_eq!((r.exported, r.dropped), (0, 100));
}

/// (5) `tracing` spans inside API spans: with no `tracing` parent they join
/// the API span's trace; inside an outer `tracing` span they stay children
/// of it (the layer never consults the OpenTelemetry context for spans that
/// have a `tracing` parent) unless `in_otel_context` says otherwise.
#[test]
fn tracing_spans_inside_api_spans() {
    let (p, spans) = in_memory(Sampler::ParentBasedAlwaysOn);
    let tracer = p.otel_api().tracer("mixed");
    let subscriber = tracing_subscriber::registry().with(p.layer());
    obs_testing::subscriber::with_default(subscriber, || {
        // No tracing span around: the API span is the parent.
        tracer.in_span("job", |_| {
            let _s = tracing::info_span!("step").entered();
            tracing::info!("inside");
        });
        // Inside a tracing span.
        let _request = tracing::info_span!("request").entered();
        tracer.in_span("lib", |cx| {
            drop(tracing::info_span!("plain"));
            drop(otel_api::in_otel_context(&cx, || {
                tracing::info_span!("adopted")
            }));
        });
    });
    let got = flushed(&p, &spans);
    assert_eq!(got.len(), 6, "{got:#?}");
    let (job, step) = (find(&got, "job"), find(&got, "step"));
    assert_eq!(step.trace_id, job.trace_id);
    assert_eq!(step.parent_span_id, Some(job.span_id));
    assert_eq!(step.events[0].name, "inside");
    let (request, lib) = (find(&got, "request"), find(&got, "lib"));
    assert_eq!(lib.parent_span_id, Some(request.span_id));
    let plain = find(&got, "plain");
    assert_eq!(plain.trace_id, request.trace_id);
    assert_eq!(
        plain.parent_span_id,
        Some(request.span_id),
        "the documented limitation"
    );
    let adopted = find(&got, "adopted");
    assert_eq!(adopted.trace_id, request.trace_id);
    assert_eq!(adopted.parent_span_id, Some(lib.span_id));
}

/// Without an active span in the given context, the propagator injects the
/// current `tracing` span's context; an invalid or repeated `traceparent`
/// extracts nothing.
#[test]
fn propagator_falls_back_to_tracing_and_rejects_bad_input() {
    let (p, _spans) = in_memory(Sampler::ParentBasedAlwaysOn);
    let prop = ObsPropagator::default();
    let fields: Vec<&str> = opentelemetry::propagation::TextMapPropagator::fields(&prop).collect();
    assert_eq!(fields, ["traceparent", "tracestate", "baggage"]);
    let subscriber = tracing_subscriber::registry().with(p.layer());
    obs_testing::subscriber::with_default(subscriber, || {
        let mut headers = http::HeaderMap::new();
        headers.insert("baggage", "tenant=acme".parse().unwrap());
        let extracted: Extracted = p.propagators().extract_headers(&headers);
        let request = context::in_remote_context(&extracted, || tracing::info_span!("request"));
        let _g = request.enter();
        let cx = context::current_context().unwrap();
        let mut out = HashMap::new();
        prop.inject_context(&Context::new(), &mut out);
        assert_eq!(out["traceparent"], cx.traceparent().as_str());
        assert_eq!(out["baggage"], "tenant=acme");
    });
    for bad in [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ] {
        let got = prop.extract_with_context(
            &Context::new(),
            &HashMap::from([("traceparent".to_owned(), bad.to_owned())]),
        );
        assert!(!got.has_active_span(), "{bad}");
    }
    let none = ObsPropagator::new(obs_trace::Propagators::NONE);
    assert_eq!(
        opentelemetry::propagation::TextMapPropagator::fields(&none).count(),
        0
    );
}
