//! Span start+end through `tracing` with 3 attributes, sampled and
//! unsampled: the obs-trace layer against tracing-opentelemetry 0.34 over
//! `opentelemetry_sdk` 0.33, both exporting to a no-op exporter behind their
//! batch processors (a bounded queue and an exporter thread each), in the
//! same run.
//!
//! Both queues hold 65 536 spans and are flushed between samples (outside
//! the timed region), so the numbers are the cost an application thread
//! pays per span, not how fast a saturated exporter thread drops spans on
//! a 2-core machine.
//!
//! The unsampled group also runs two floors: a bare registry, and a
//! registry with a layer that only stores one `IdRecord` per span (what
//! the id-record contract costs any layer, before ids or sampling).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use obs_core::{IdRecord, SpanId, TraceFlags, TraceId};
use obs_trace::export::NoopExporter;
use obs_trace::{BatchConfig, Sampler, TracerProvider};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

const QUEUE: usize = 65_536;

#[derive(Debug)]
struct SdkNoop;

impl SpanExporter for SdkNoop {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn obs_dispatch(sampler: Sampler) -> (tracing::Dispatch, TracerProvider) {
    let p = TracerProvider::builder()
        .sampler(sampler)
        .batch(BatchConfig {
            max_queue_size: QUEUE,
            schedule_delay: Duration::from_millis(100),
            ..BatchConfig::default()
        })
        .with_exporter(NoopExporter)
        .build()
        .unwrap();
    (
        tracing::Dispatch::new(tracing_subscriber::registry().with(p.layer())),
        p,
    )
}

fn anchor_dispatch(
    sampler: opentelemetry_sdk::trace::Sampler,
) -> (tracing::Dispatch, SdkTracerProvider) {
    let bsp = BatchSpanProcessor::builder(SdkNoop)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE)
                .with_scheduled_delay(Duration::from_millis(100))
                .build(),
        )
        .build();
    let p = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(bsp)
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(p.tracer("bench"));
    (
        tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
        p,
    )
}

fn span() {
    let s = tracing::info_span!("request", user = "ann", items = 3_u64, cached = true);
    let _g = black_box(s.enter());
}

/// Times `iters` spans, then lets the exporter drain, untimed.
fn timed(iters: u64, flush: &dyn Fn()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(QUEUE as u64 / 2);
        let t = Instant::now();
        for _ in 0..n {
            span();
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
fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("span_sampled");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let (d, p) = obs_dispatch(Sampler::AlwaysOn);
    tracing::dispatcher::with_default(&d, || {
        g.bench_function("obs/layer", |b| {
            b.iter_custom(|iters| timed(iters, &|| assert!(p.force_flush(Duration::from_secs(30)))))
        })
    });
    let stats = p.stats();
    let _ = p.shutdown(Duration::from_secs(5));
    eprintln!(
        "obs sampled: exported {} dropped {}",
        stats.exported(),
        stats.dropped()
    );
    let (d, p) = anchor_dispatch(opentelemetry_sdk::trace::Sampler::AlwaysOn);
    tracing::dispatcher::with_default(&d, || {
        g.bench_function("anchor/tracing-opentelemetry", |b| {
            b.iter_custom(|iters| timed(iters, &|| p.force_flush().unwrap()))
        })
    });
    let _ = p.shutdown();
    g.finish();

    let mut g = c.benchmark_group("span_unsampled");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let (d, p) = obs_dispatch(Sampler::AlwaysOff);
    tracing::dispatcher::with_default(&d, || g.bench_function("obs/layer", |b| b.iter(span)));
    let _ = p.shutdown(Duration::from_secs(5));
    let (d, p) = anchor_dispatch(opentelemetry_sdk::trace::Sampler::AlwaysOff);
    tracing::dispatcher::with_default(&d, || {
        g.bench_function("anchor/tracing-opentelemetry", |b| b.iter(span))
    });
    let _ = p.shutdown();
    // The floor: the same span through a bare registry, no tracing layer at all.
    let d = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::dispatcher::with_default(&d, || {
        g.bench_function("baseline/registry-only", |b| b.iter(span))
    });
    // The floor of the id-record contract: a layer that does nothing but
    // store one `IdRecord` per span (a registry lookup and a boxed extension).
    let d = tracing::Dispatch::new(tracing_subscriber::registry().with(IdRecordOnly));
    tracing::dispatcher::with_default(&d, || {
        g.bench_function("baseline/registry+id-record", |b| b.iter(span))
    });
    g.finish();
}

/// Stores a constant `SpanRecord` (ids only) in every new span, nothing else.
struct IdRecordOnly;

impl<S> tracing_subscriber::Layer<S> for IdRecordOnly
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(obs_core::SpanRecord {
                ids: IdRecord::with_trace(
                    TraceId::from_int(1),
                    SpanId::from_int(2),
                    TraceFlags::NOT_SAMPLED,
                ),
                fields: None,
                state: Default::default(),
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
