//! OTLP log export cost per record, obs-log against
//! `opentelemetry-appender-tracing` + `opentelemetry-otlp`, in one criterion
//! group, same run, to the same real receiver (obs-testing's, decoding
//! every request with the official protobuf types) over OTLP/HTTP protobuf
//! on loopback.
//!
//! One iteration logs 10,000 `tracing::info!` events (a message and four
//! fields) and then flushes, so the figure is the whole cost of a record:
//! the logging thread's part (building the record, the queue) plus the
//! exporter thread's (encoding, the HTTP request) and the receiver's
//! decoding, which both rows share. Both pipelines batch 512 records with a
//! 16,384-record queue, so nothing is dropped within an iteration.
//!
//! - `obs/otlp-http`: obs-log's layer writing its JSON line to `io::sink()`
//!   (lines cannot be switched off) and exporting every record over OTLP.
//! - `anchor/appender-tracing`: `OpenTelemetryTracingBridge` over an
//!   `SdkLoggerProvider` with a `BatchLogProcessor` and `opentelemetry-otlp`'s
//!   HTTP `LogExporter` (blocking reqwest client). It writes no line.
//!
//! Between iterations (untimed) the receiver's records are counted (every
//! one must have arrived) and cleared.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use obs_log::Config;
use obs_log::otlp::{BatchConfig, ExporterConfig, OtlpConfig};
use obs_testing::otlp::OtlpReceiver;
use opentelemetry_otlp::WithExportConfig as _;
use tracing_subscriber::layer::SubscriberExt;

const RECORDS: u64 = 10_000;
const QUEUE: usize = 16_384;
const BATCH: usize = 512;

fn burst() {
    for i in 0..RECORDS {
        tracing::info!(
            target: "bench::orders",
            order = i,
            user = "ann",
            ratio = 0.25,
            paid = true,
            "order processed"
        );
    }
}

/// Runs `burst` under `dispatch` per iteration, then `flush`; checks and
/// clears the receiver untimed.
fn measure(
    iters: u64,
    dispatch: &tracing::Dispatch,
    receiver: &OtlpReceiver,
    flush: &dyn Fn(),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        receiver.clear();
        let t = Instant::now();
        tracing::dispatcher::with_default(dispatch, burst);
        flush();
        total += t.elapsed();
        let got = receiver.wait_for_logs(RECORDS as usize, Duration::from_secs(30));
        assert_eq!(got.len() as u64, RECORDS, "every record arrived");
    }
    total
}

fn otlp_log_export(c: &mut Criterion) {
    let receiver = OtlpReceiver::start();
    let mut g = c.benchmark_group("otlp_log_export_10k");
    g.throughput(Throughput::Elements(RECORDS));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));

    // obs-log.
    let otlp = OtlpConfig::new(ExporterConfig::http(receiver.http_logs_url())).batch(BatchConfig {
        max_queue_size: QUEUE,
        schedule_delay: Duration::from_millis(200),
        max_export_batch_size: BATCH,
        export_timeout: Duration::from_secs(10),
    });
    let (layer, handles) =
        obs_log::layer(Config::new().writer(std::io::sink()).otlp(otlp)).unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    g.bench_function("obs/otlp-http", |b| {
        b.iter_custom(|iters| {
            measure(iters, &dispatch, &receiver, &|| {
                assert!(handles.guard.flush(Duration::from_secs(30)));
            })
        })
    });
    let stats = handles.guard.otlp_stats().unwrap();
    assert_eq!(stats.dropped(), 0, "{stats:?}");

    // opentelemetry-appender-tracing + opentelemetry-otlp.
    let exporter = opentelemetry_otlp::LogExporter::builder()
        .with_http()
        .with_endpoint(receiver.http_logs_url())
        .build()
        .unwrap();
    let processor = opentelemetry_sdk::logs::BatchLogProcessor::builder(exporter)
        .with_batch_config(
            opentelemetry_sdk::logs::BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE)
                .with_max_export_batch_size(BATCH)
                .with_scheduled_delay(Duration::from_millis(200))
                .build(),
        )
        .build();
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .build();
    let bridge = opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(bridge));
    g.bench_function("anchor/appender-tracing", |b| {
        b.iter_custom(|iters| {
            measure(iters, &dispatch, &receiver, &|| {
                provider.force_flush().unwrap();
            })
        })
    });
    g.finish();
    let _ = provider.shutdown();
    drop(handles);
}

criterion_group!(benches, otlp_log_export);
criterion_main!(benches);
