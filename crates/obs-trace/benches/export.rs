//! What the exporter thread spends per exported span, with and without the
//! redaction step, against what `opentelemetry-otlp` spends on the same
//! batch (convert to the `opentelemetry-proto` structs, then prost-encode),
//! in the same run. Batches of 512 typical HTTP server spans; figures are
//! per batch (criterion's throughput line gives them per span). With the
//! `gzip` feature, `obs/encode+gzip` adds the request compression.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use obs_core::{Redactor, Resource, SpanId, TraceFlags, TraceId};
use obs_trace::redaction::SpanRedactor;
use obs_trace::span::{FinishedSpan, KeyValue, SpanEvent, SpanKind, Status, Value};
use prost::Message;

const BATCH: usize = 512;

fn kv(key: &'static str, value: Value) -> KeyValue {
    KeyValue {
        key: Cow::Borrowed(key),
        value,
    }
}

fn s(v: &str) -> Value {
    Value::Str(Cow::Owned(v.to_owned()))
}

/// An HTTP server span as `server_layer()` records it; `path` varies.
fn server_span(i: usize, path: &str) -> FinishedSpan {
    let now = SystemTime::now();
    FinishedSpan {
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        parent_span_id: Some(SpanId::random()),
        parent_is_remote: true,
        trace_flags: TraceFlags::default().with_sampled(true),
        trace_state: Default::default(),
        name: Cow::Borrowed("GET /items/{id}"),
        kind: SpanKind::Server,
        start: now,
        end: now + Duration::from_micros(250),
        attributes: vec![
            kv("http.request.method", s("GET")),
            kv("url.path", s(path)),
            kv("url.scheme", s("http")),
            kv("http.route", s("/items/{id}")),
            kv("http.response.status_code", Value::I64(200)),
            kv("server.address", s("api.internal")),
            kv("server.port", Value::I64(8080)),
            kv("client.address", s("10.1.2.3")),
            kv(
                "user_agent.original",
                s("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0"),
            ),
            kv("network.protocol.version", s("1.1")),
            kv("correlation_id", s("550e8400-e29b-41d4-a716-446655440000")),
            kv("item", Value::I64(i as i64)),
        ],
        events: vec![SpanEvent {
            name: Cow::Borrowed("request finished"),
            time: now,
            attributes: vec![kv("duration_ms", Value::F64(0.25))],
        }],
        links: Vec::new(),
        status: Status::Unset,
        scope: "obs_trace::tower",
        dropped_attributes: 0,
        dropped_events: 0,
    }
}

fn batch(path: impl Fn(usize) -> String) -> Vec<FinishedSpan> {
    (0..BATCH).map(|i| server_span(i, &path(i))).collect()
}

fn export_per_span(c: &mut Criterion) {
    let resource = Resource::new("bench");
    for (label, spans) in [
        ("plain_path", batch(|i| format!("/items/{i}"))),
        (
            "secret_in_path",
            batch(|_| "/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl".into()),
        ),
    ] {
        let mut g = c.benchmark_group(format!("export_batch_512/{label}"));
        g.throughput(Throughput::Elements(BATCH as u64));
        let mut out = Vec::with_capacity(1 << 20);
        g.bench_function("obs/encode", |b| {
            b.iter(|| {
                out.clear();
                obs_trace::otlp::encode_request_into(&mut out, black_box(&spans), &resource);
                black_box(out.len())
            })
        });
        // What `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` adds on the exporter
        // thread: the same encoding, then the gzip the HTTP exporter sends
        // (tonic gzips gRPC messages at the same level).
        #[cfg(feature = "gzip")]
        g.bench_function("obs/encode+gzip", |b| {
            b.iter(|| {
                out.clear();
                obs_trace::otlp::encode_request_into(&mut out, black_box(&spans), &resource);
                black_box(obs_trace::otlp::gzip(&out).len())
            })
        });
        let mut redactor = SpanRedactor::new(Redactor::new());
        g.bench_function("obs/redact+encode", |b| {
            b.iter_batched_ref(
                || spans.clone(),
                |batch| {
                    for span in batch.iter_mut() {
                        redactor.redact(span);
                    }
                    out.clear();
                    obs_trace::otlp::encode_request_into(&mut out, batch, &resource);
                    black_box(out.len())
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function("anchor/opentelemetry-proto+prost", |b| {
            b.iter(|| {
                let req = obs_trace::otlp::to_request(black_box(&spans), &resource);
                black_box(req.encode_to_vec().len())
            })
        });
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = export_per_span
}
criterion_main!(benches);
