//! The tracing layer: ids in the obs-core id record (the id-record contract), sampling,
//! span events, exceptions (the exception-event contract), error status, limits, and context
//! propagation through tasks and job payloads.

use std::time::Duration;

use obs_core::{Carrier, CorrelationId, IdRecord, TraceFlags};
use obs_testing::capture::CaptureLayer;
use obs_trace::context::{self, FutureExt as _, JobLink};
use obs_trace::export::InMemoryExporter;
use obs_trace::propagation::{Baggage, Extracted, Propagators};
use obs_trace::span::{FinishedSpan, SpanKind, Status, Value};
use obs_trace::{Config, Sampler, TracerProvider};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

fn setup(sampler: Sampler) -> (TracerProvider, InMemoryExporter) {
    let mem = InMemoryExporter::default();
    let p = TracerProvider::builder()
        .sampler(sampler)
        .with_exporter(mem.clone())
        .build()
        .unwrap();
    (p, mem)
}

fn finish(p: &TracerProvider, mem: &InMemoryExporter) -> Vec<FinishedSpan> {
    assert!(p.force_flush(Duration::from_secs(10)));
    mem.spans()
}

fn remote(flags: &str) -> Extracted {
    let mut h = http::HeaderMap::new();
    h.insert(
        "traceparent",
        format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}")
            .parse()
            .unwrap(),
    );
    h.insert("tracestate", "vendor=x".parse().unwrap());
    h.insert("baggage", "tenant=acme".parse().unwrap());
    Propagators::default().extract_headers(&h)
}

#[test]
fn ids_reach_log_events_sampled_or_not() {
    for sampler in [Sampler::AlwaysOn, Sampler::AlwaysOff] {
        let (p, mem) = setup(sampler);
        let capture = CaptureLayer::new();
        let sub = tracing_subscriber::registry()
            .with(p.layer())
            .with(capture.clone());
        let (outer_cx, inner_cx) = obs_testing::subscriber::with_default(sub, || {
            let outer = tracing::info_span!("outer");
            let _o = outer.enter();
            let inner = tracing::info_span!("inner");
            let _i = inner.enter();
            tracing::info!("inside");
            (
                context::span_context(&outer).unwrap(),
                context::current_context().unwrap(),
            )
        });
        assert_eq!(outer_cx.trace_id, inner_cx.trace_id);
        assert_ne!(outer_cx.span_id, inner_cx.span_id);
        assert_eq!(inner_cx.is_sampled(), sampler == Sampler::AlwaysOn);
        let ev = &capture.with_message("inside")[0];
        let ids = ev.ids.as_ref().unwrap();
        assert_eq!(ids.trace_id, Some(inner_cx.trace_id));
        assert_eq!(ids.span_id, Some(inner_cx.span_id));
        assert_eq!(ids.trace_flags.is_sampled(), sampler == Sampler::AlwaysOn);
        let spans = finish(&p, &mem);
        if sampler == Sampler::AlwaysOn {
            assert_eq!(spans.len(), 2);
            let inner = spans.iter().find(|s| s.name == "inner").unwrap();
            let outer = spans.iter().find(|s| s.name == "outer").unwrap();
            assert_eq!(inner.parent_span_id, Some(outer.span_id));
            assert_eq!(outer.parent_span_id, None);
        } else {
            assert!(spans.is_empty());
        }
    }
}

/// A layer ordered before the trace layer that writes a correlation id at
/// span creation, as obs-correlate may.
struct WritesCorrelation;

impl<S> tracing_subscriber::Layer<S> for WritesCorrelation
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        id: &tracing::Id,
        ctx: Context<'_, S>,
    ) {
        let span = ctx.span(id).unwrap();
        IdRecord::update(&span, |r| {
            r.correlation_id = Some(CorrelationId::parse("req-7").unwrap())
        });
    }
}

#[test]
fn correlation_id_is_not_clobbered() {
    let (p, _mem) = setup(Sampler::AlwaysOn);
    let capture = CaptureLayer::new();
    let sub = tracing_subscriber::registry()
        .with(WritesCorrelation)
        .with(p.layer())
        .with(capture.clone());
    obs_testing::subscriber::with_default(sub, || {
        let _s = tracing::info_span!("request").entered();
        tracing::info!("hello");
    });
    let ev = &capture.with_message("hello")[0];
    assert_eq!(ev.correlation_id().as_deref(), Some("req-7"));
    assert!(ev.trace_id().is_some());

    // And the other order: a correlation id written after creation survives too.
    let capture = CaptureLayer::new();
    let sub = tracing_subscriber::registry()
        .with(p.layer())
        .with(capture.clone());
    obs_testing::subscriber::with_default(sub, || {
        let s = tracing::info_span!("request");
        IdRecord::update_span_id(&s.id().unwrap(), |r| {
            r.correlation_id = Some(CorrelationId::parse("req-8").unwrap())
        });
        let _g = s.enter();
        tracing::info!("hello");
    });
    let ev = &capture.with_message("hello")[0];
    assert_eq!(ev.correlation_id().as_deref(), Some("req-8"));
    assert!(ev.trace_id().is_some());
}

#[test]
fn remote_parent_sampling_is_followed() {
    for (flags, sampled) in [("01", true), ("00", false)] {
        let (p, mem) = setup(Sampler::ParentBasedAlwaysOn);
        let sub = tracing_subscriber::registry().with(p.layer());
        let cx = obs_testing::subscriber::with_default(sub, || {
            // An enclosing local span must not win over the remote parent.
            let _conn = tracing::info_span!("connection").entered();
            let span = context::in_remote_context(&remote(flags), || tracing::info_span!("server"));
            let _g = span.enter();
            let child = tracing::info_span!("child");
            assert_eq!(
                context::current_baggage().unwrap().get("tenant"),
                Some("acme")
            );
            context::span_context(&child).unwrap()
        });
        assert_eq!(cx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.is_sampled(), sampled);
        assert_eq!(cx.trace_state.get("vendor"), Some("x"));
        let spans = finish(&p, &mem);
        let server = spans.iter().find(|s| s.name == "server");
        if sampled {
            let server = server.unwrap();
            assert_eq!(
                server.parent_span_id.unwrap().to_string(),
                "00f067aa0ba902b7"
            );
            assert!(server.parent_is_remote);
            assert_eq!(server.trace_state.as_str(), "vendor=x");
        } else {
            assert!(server.is_none());
            // The local connection span is a sampled root of another trace.
            assert_eq!(spans.len(), 1);
        }
    }
}

#[test]
fn ratio_sampler_keeps_the_propagated_trace_id_when_unsampled() {
    let (p, mem) = setup(Sampler::ParentBasedTraceIdRatio(0.0));
    let sub = tracing_subscriber::registry().with(p.layer());
    let cx = obs_testing::subscriber::with_default(sub, || {
        let root = tracing::info_span!("root");
        context::span_context(&root).unwrap()
    });
    assert!(!cx.is_sampled());
    assert!(cx.trace_id.is_valid());
    assert!(finish(&p, &mem).is_empty());
}

#[test]
fn events_exceptions_and_error_status() {
    let (p, mem) = setup(Sampler::AlwaysOn);
    let sub = tracing_subscriber::registry().with(p.layer());
    obs_testing::subscriber::with_default(sub, || {
        {
            let _s = tracing::info_span!(
                "plain",
                otel.kind = "producer",
                answer = 42_u64,
                ratio = 0.5,
                ok = true,
                who = "ann"
            )
            .entered();
            tracing::info!(step = 1, "first step");
            tracing::warn!("second step");
        }
        {
            let _s = tracing::info_span!("exceptional").entered();
            tracing::error!(
                exception.type = "std::io::Error",
                exception.message = "disk full",
                exception.stacktrace = "at main",
                "exception"
            );
        }
        {
            let _s = tracing::info_span!("event error").entered();
            tracing::error!(error = "connection reset", "call failed");
        }
        {
            let s = tracing::info_span!("typed error", error.type = tracing::field::Empty);
            s.record("error.type", "timeout");
        }
        {
            let _s = tracing::info_span!(
                "renamed",
                otel.name = "GET /items/{id}",
                otel.kind = "server",
                otel.status_code = "ok"
            )
            .entered();
            tracing::error!(error = "ignored: status is ok", "late");
        }
    });
    let spans = finish(&p, &mem);
    let by = |n: &str| {
        spans
            .iter()
            .find(|s| s.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };

    let plain = by("plain");
    assert_eq!(plain.kind, SpanKind::Producer);
    assert_eq!(plain.attribute("answer"), Some(&Value::I64(42)));
    assert_eq!(plain.attribute("ratio"), Some(&Value::F64(0.5)));
    assert_eq!(plain.attribute("ok"), Some(&Value::Bool(true)));
    assert_eq!(plain.attribute("who"), Some(&Value::Str("ann".into())));
    assert!(plain.attribute("otel.kind").is_none());
    assert_eq!(
        plain
            .events
            .iter()
            .map(|e| e.name.as_ref())
            .collect::<Vec<_>>(),
        ["first step", "second step"]
    );
    assert_eq!(plain.events[0].attributes[0].value, Value::I64(1));
    assert_eq!(plain.status, Status::Unset);
    assert_eq!(plain.scope, module_path!());

    let ex = by("exceptional");
    assert_eq!(ex.events[0].name, "exception");
    let keys: Vec<&str> = ex.events[0]
        .attributes
        .iter()
        .map(|kv| kv.key.as_ref())
        .collect();
    assert!(
        keys.contains(&"exception.type")
            && keys.contains(&"exception.message")
            && keys.contains(&"exception.stacktrace")
    );
    assert_eq!(ex.status, Status::Error("disk full".into()));

    assert_eq!(
        by("event error").status,
        Status::Error("connection reset".into())
    );
    assert_eq!(by("typed error").status, Status::Error("timeout".into()));
    assert_eq!(
        by("typed error").attribute("error.type"),
        Some(&Value::Str("timeout".into()))
    );

    let renamed = by("GET /items/{id}");
    assert_eq!(renamed.kind, SpanKind::Server);
    assert_eq!(renamed.status, Status::Ok);
}

#[test]
fn attribute_and_event_limits_count_drops() {
    let mem = InMemoryExporter::default();
    let cfg = Config {
        max_attributes: 2,
        max_events: 1,
        ..Config::default()
    };
    let p = TracerProvider::builder()
        .config(cfg)
        .with_exporter(mem.clone())
        .build()
        .unwrap();
    let sub = tracing_subscriber::registry().with(p.layer());
    obs_testing::subscriber::with_default(sub, || {
        let _s = tracing::info_span!("limited", a = 1, b = 2, c = 3, d = 4).entered();
        tracing::info!("one");
        tracing::info!("two");
        tracing::info!("three");
    });
    let s = &finish(&p, &mem)[0];
    assert_eq!(s.attributes.len(), 2);
    assert_eq!(s.dropped_attributes, 2);
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.dropped_events, 2);
}

#[test]
fn jobs_are_parented_or_linked_through_the_carrier() {
    let (p, mem) = setup(Sampler::AlwaysOn);
    let dispatch =
        obs_testing::subscriber::dispatch(tracing_subscriber::registry().with(p.layer()));
    let carrier = tracing::dispatcher::with_default(&dispatch, || {
        let _producer = tracing::info_span!("enqueue", otel.kind = "producer").entered();
        let mut c = Carrier::new();
        c.set_correlation_id(&CorrelationId::parse("job-1").unwrap());
        assert!(context::inject_current(&mut c));
        c
    });
    assert!(carrier.get("traceparent").is_some());
    assert_eq!(carrier.correlation_id().unwrap().unwrap().as_str(), "job-1");
    tracing::dispatcher::with_default(&dispatch, || {
        drop(context::consumer_span(
            &carrier,
            "send-email",
            JobLink::Parent,
        ));
        drop(context::consumer_span(
            &carrier,
            "send-digest",
            JobLink::Link,
        ));
        // Outside any span there is nothing to inject.
        assert!(!context::inject_current(&mut Carrier::new()));
    });
    let spans = finish(&p, &mem);
    let producer = spans.iter().find(|s| s.name == "enqueue").unwrap();
    let parented = spans.iter().find(|s| s.name == "send-email").unwrap();
    let linked = spans.iter().find(|s| s.name == "send-digest").unwrap();
    assert_eq!(parented.kind, SpanKind::Consumer);
    assert_eq!(parented.trace_id, producer.trace_id);
    assert_eq!(parented.parent_span_id, Some(producer.span_id));
    assert!(parented.parent_is_remote);
    assert_ne!(linked.trace_id, producer.trace_id);
    assert_eq!(linked.parent_span_id, None);
    assert_eq!(linked.links.len(), 1);
    assert_eq!(
        (linked.links[0].trace_id, linked.links[0].span_id),
        (producer.trace_id, producer.span_id)
    );
    assert_eq!(linked.links[0].trace_flags, TraceFlags::SAMPLED);
}

#[test]
fn futures_keep_the_trace_across_spawn() {
    let (p, mem) = setup(Sampler::AlwaysOn);
    let sub = tracing_subscriber::registry().with(p.layer());
    let dispatch = obs_testing::subscriber::dispatch(sub);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (parent, child) = tracing::dispatcher::with_default(&dispatch, || {
        let parent = tracing::info_span!("request");
        let _g = parent.enter();
        let d = dispatch.clone();
        let handle = rt.spawn(
            async move {
                tracing::dispatcher::with_default(&d, || {
                    let child = tracing::info_span!("background");
                    context::span_context(&child).unwrap()
                })
            }
            .in_current_trace(),
        );
        (
            context::span_context(&parent).unwrap(),
            rt.block_on(handle).unwrap(),
        )
    });
    assert_eq!(parent.trace_id, child.trace_id);
    drop(rt);
    let spans = finish(&p, &mem);
    let bg = spans.iter().find(|s| s.name == "background").unwrap();
    assert_eq!(bg.parent_span_id, Some(parent.span_id));
}

#[test]
fn baggage_travels_to_outgoing_carriers() {
    let (p, _mem) = setup(Sampler::AlwaysOn);
    let sub = tracing_subscriber::registry().with(p.layer());
    let carrier = obs_testing::subscriber::with_default(sub, || {
        let mut incoming = remote("01");
        incoming.baggage = Baggage::parse([&b"tenant=acme,region=eu"[..]]);
        let server = context::in_remote_context(&incoming, || tracing::info_span!("server"));
        let _g = server.enter();
        let _inner = tracing::info_span!("handler").entered();
        let mut c = Carrier::new();
        assert!(context::inject_current(&mut c));
        c
    });
    assert_eq!(carrier.get("baggage"), Some("tenant=acme,region=eu"));
    assert!(
        carrier
            .get("traceparent")
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    );
    assert_eq!(carrier.get("tracestate"), Some("vendor=x"));
}

#[test]
fn no_exporter_still_assigns_ids() {
    let p = TracerProvider::builder().build().unwrap();
    let sub = tracing_subscriber::registry().with(p.layer());
    obs_testing::subscriber::with_default(sub, || {
        let _s = tracing::info_span!("work").entered();
        let rec = IdRecord::current().unwrap();
        assert!(rec.is_sampled());
        assert_eq!(
            rec.trace_id,
            Some(context::current_context().unwrap().trace_id)
        );
    });
    let r = p.shutdown(Duration::from_secs(1));
    assert_eq!((r.exported, r.dropped), (0, 0));
}

struct Panicky(u32);

impl obs_trace::SpanExporter for Panicky {
    fn export(
        &mut self,
        batch: &[FinishedSpan],
        _: &obs_core::Resource,
        _: Duration,
    ) -> Result<(), obs_trace::Error> {
        self.0 += 1;
        if self.0 == 1 {
            panic!("exporter bug (expected by the test)");
        }
        assert!(!batch.is_empty());
        Ok(())
    }
}

#[test]
fn a_panicking_exporter_loses_its_batch_but_not_the_pipeline() {
    let p = TracerProvider::builder()
        .with_exporter(Panicky(0))
        .build()
        .unwrap();
    let sub = obs_testing::subscriber::dispatch(tracing_subscriber::registry().with(p.layer()));
    tracing::dispatcher::with_default(&sub, || drop(tracing::info_span!("first")));
    assert!(p.force_flush(Duration::from_secs(5)));
    assert_eq!(p.stats().dropped_export_failed(), 1);
    assert_eq!(
        p.stats().last_error().as_deref(),
        Some("span export failed: the exporter panicked")
    );
    tracing::dispatcher::with_default(&sub, || drop(tracing::info_span!("second")));
    let r = p.shutdown(Duration::from_secs(5));
    assert_eq!((r.exported, r.dropped, r.timed_out), (1, 1, false));
}
