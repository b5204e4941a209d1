//! A span started and ended through the OpenTelemetry API (a `SpanBuilder`
//! with a kind and 3 attributes, started in the current context, then
//! `end()`), sampled and unsampled: obs's `otel_api` tracer against
//! `opentelemetry_sdk` 0.33's `SdkTracerProvider` used directly, both
//! behind their batch processors (a bounded queue and an exporter thread
//! each) with an exporter that discards, in the same run.
//!
//! Both queues hold 65 536 spans, export in batches of that size with a
//! 60 s schedule delay, and are flushed after every 4 096 spans outside the
//! timed region: the exporter threads do their work (obs: converting and
//! redacting; the SDK: nothing, its exporter drops the batch) while the
//! clock is stopped, so on the 2-core machine the numbers are the cost an
//! application thread pays per span, not the share of a core it loses to
//! its own exporter thread. 4 096 is the size of obs's pool of recording
//! boxes, which the exporter thread hands back: in a service whose exporter
//! keeps up, sampled spans reuse boxes rather than allocate them. Both run inside a `tracing` registry with obs's layer and
//! no current `tracing` span (where a service runs them; obs's tracer looks
//! for a `tracing` parent when the OpenTelemetry context has none, the SDK
//! does not). A third row in each group runs obs's tracer inside a
//! `tracing` span, its parent.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use obs_trace::export::NoopExporter;
use obs_trace::{BatchConfig, Sampler, TracerProvider};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing_subscriber::layer::SubscriberExt;

const QUEUE: usize = 65_536;
const CHUNK: u64 = 4096;
const DELAY: Duration = Duration::from_secs(60);

/// Discards every batch, counting its spans.
#[derive(Debug, Default)]
struct SdkNoop(Arc<AtomicU64>);

impl SpanExporter for SdkNoop {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        black_box(batch);
        Ok(())
    }
}

fn obs_provider(sampler: Sampler) -> TracerProvider {
    TracerProvider::builder()
        .sampler(sampler)
        .batch(BatchConfig {
            max_queue_size: QUEUE,
            max_export_batch_size: QUEUE,
            schedule_delay: DELAY,
            ..BatchConfig::default()
        })
        .with_exporter(NoopExporter)
        .build()
        .unwrap()
}

fn sdk_provider(
    sampler: opentelemetry_sdk::trace::Sampler,
    exported: Arc<AtomicU64>,
) -> SdkTracerProvider {
    let bsp = BatchSpanProcessor::builder(SdkNoop(exported))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE)
                .with_max_export_batch_size(QUEUE)
                .with_scheduled_delay(DELAY)
                .build(),
        )
        .build();
    SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(bsp)
        .build()
}

#[inline(always)]
fn span<T: Tracer>(tracer: &T) {
    let mut s = tracer
        .span_builder("GET /users")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("user", "ann"),
            KeyValue::new("items", 3_i64),
            KeyValue::new("cached", true),
        ])
        .start(tracer);
    black_box(&s);
    s.end();
}

/// Times `iters` spans, then lets the exporter drain, untimed.
fn timed(iters: u64, one: &dyn Fn(), flush: &dyn Fn()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let t = Instant::now();
        for _ in 0..n {
            one();
        }
        total += t.elapsed();
        flush();
        left -= n;
    }
    total
}

#[allow(
    clippy::print_stderr,
    reason = "the bench reports whether any span was dropped"
)]
fn group(c: &mut Criterion, name: &str, obs: Sampler, sdk: opentelemetry_sdk::trace::Sampler) {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let p = obs_provider(obs);
    let d = tracing::Dispatch::new(tracing_subscriber::registry().with(p.layer()));
    let tracer = p.otel_api().tracer("bench");
    let flush = || assert!(p.force_flush(Duration::from_secs(30)));
    tracing::dispatcher::with_default(&d, || {
        g.bench_function("obs/otel-api", |b| {
            b.iter_custom(|iters| timed(iters, &|| span(&tracer), &flush))
        });
        let request = tracing::info_span!("request");
        let _g = request.enter();
        g.bench_function("obs/otel-api-in-tracing-span", |b| {
            b.iter_custom(|iters| timed(iters, &|| span(&tracer), &flush))
        });
    });
    let stats = p.stats();
    let _ = p.shutdown(Duration::from_secs(5));
    eprintln!(
        "obs {name}: exported {} dropped {}",
        stats.exported(),
        stats.dropped()
    );
    let exported = Arc::new(AtomicU64::new(0));
    let sdk = sdk_provider(sdk, exported.clone());
    let tracer = sdk.tracer("bench");
    let flush = || sdk.force_flush().unwrap();
    tracing::dispatcher::with_default(&d, || {
        g.bench_function("anchor/opentelemetry_sdk", |b| {
            b.iter_custom(|iters| timed(iters, &|| span(&tracer), &flush))
        });
    });
    let _ = sdk.shutdown();
    eprintln!(
        "opentelemetry_sdk {name}: exported {}",
        exported.load(Ordering::Relaxed)
    );
    g.finish();
}

fn bench(c: &mut Criterion) {
    group(
        c,
        "otel_api_span_sampled",
        Sampler::AlwaysOn,
        opentelemetry_sdk::trace::Sampler::AlwaysOn,
    );
    group(
        c,
        "otel_api_span_unsampled",
        Sampler::AlwaysOff,
        opentelemetry_sdk::trace::Sampler::AlwaysOff,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
