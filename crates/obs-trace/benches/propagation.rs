//! W3C traceparent extract and inject: obs-trace against opentelemetry's
//! `TraceContextPropagator`, same headers, same run.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use obs_trace::propagation;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext as OtelSpanContext, TraceContextExt, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn bench(c: &mut Criterion) {
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", TP.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("user-agent", "bench".parse().unwrap());
    let anchor = TraceContextPropagator::new();

    let mut g = c.benchmark_group("traceparent_extract");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("obs/extract", |b| {
        b.iter(|| black_box(propagation::extract(black_box(&headers))))
    });
    g.bench_function("anchor/TraceContextPropagator", |b| {
        b.iter(|| black_box(anchor.extract(&HeaderExtractor(black_box(&headers)))))
    });
    g.finish();

    let ours = propagation::extract(&headers).unwrap();
    let otel_cx = opentelemetry::Context::new().with_remote_span_context(OtelSpanContext::new(
        opentelemetry::trace::TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        opentelemetry::trace::TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ));
    let mut g = c.benchmark_group("traceparent_inject");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut out = http::HeaderMap::new();
    g.bench_function("obs/inject", |b| {
        b.iter(|| propagation::inject(black_box(&ours), &mut out))
    });
    let mut out = http::HeaderMap::new();
    g.bench_function("anchor/TraceContextPropagator", |b| {
        b.iter(|| anchor.inject_context(black_box(&otel_cx), &mut HeaderInjector(&mut out)))
    });
    // What the header map alone costs for what inject must do (set
    // traceparent, clear a stale tracestate) with a value that needs no
    // formatting, validation or allocation: no inject into a `HeaderMap`
    // can go below it.
    let mut out = http::HeaderMap::new();
    let fixed = http::HeaderValue::from_static(TP);
    let tp_name = http::HeaderName::from_static("traceparent");
    let ts_name = http::HeaderName::from_static("tracestate");
    g.bench_function("floor/headermap-insert-static+remove", |b| {
        b.iter(|| {
            out.insert(tp_name.clone(), black_box(fixed.clone()));
            out.remove(&ts_name);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
