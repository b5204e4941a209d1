//! What this crate's criterion benches share (`server_layer.rs` through
//! `stacks.rs`, `grpc.rs`, `reqwest.rs`): obs's configuration for a bench
//! and the `tracing` half of the hand-glued anchor, so that every bench
//! sets obs and the anchor up the same way.

use std::hint::black_box;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing_subscriber::layer::SubscriberExt;

/// Both sides' span queues: large enough that no span is dropped for a
/// full queue while a bench runs.
const QUEUE: usize = 65_536;

/// obs configured for a bench, not installed globally: sampling as
/// `sampled` says, spans exported every 100 ms to an endpoint that refuses
/// connections (exports fail on the exporter thread and are counted; the
/// application thread never waits for them), no log records over OTLP (the
/// anchors export none). The caller chooses the log writer.
pub(crate) fn obs_config(sampled: bool) -> obs::Config {
    let sampler = if sampled { "always_on" } else { "always_off" };
    let lookup = |k: &str| match k {
        "OTEL_SERVICE_NAME" => Some("bench".to_owned()),
        "OTEL_TRACES_SAMPLER" => Some(sampler.to_owned()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:9".to_owned()),
        "OTEL_LOGS_EXPORTER" => Some("none".to_owned()),
        "OTEL_BSP_MAX_QUEUE_SIZE" => Some(QUEUE.to_string()),
        "OTEL_BSP_SCHEDULE_DELAY" => Some("100".to_owned()),
        _ => None,
    };
    obs::Config::from_lookup(lookup)
        .expect("the bench's configuration is valid")
        .install_global(false)
}

/// The anchor's span exporter: takes each batch and does nothing with it.
#[derive(Debug)]
pub(crate) struct NoopExporter;

impl SpanExporter for NoopExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

/// The hand-glued stack's `tracing` half, and what must stay alive while it
/// is measured.
pub(crate) struct GluedTracing {
    pub(crate) dispatch: tracing::Dispatch,
    pub(crate) provider: SdkTracerProvider,
    pub(crate) log_guard: tracing_appender::non_blocking::WorkerGuard,
}

/// `tracing-subscriber` `fmt().json()` through `tracing-appender::non_blocking`
/// into `io::sink`, and `tracing-opentelemetry` over an `opentelemetry_sdk`
/// tracer whose batch processor (the same queue and delay as obs's)
/// exports to [`NoopExporter`], at INFO.
pub(crate) fn glued_tracing(sampled: bool) -> GluedTracing {
    let (writer, log_guard) = tracing_appender::non_blocking(std::io::sink());
    let bsp = BatchSpanProcessor::builder(NoopExporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE)
                .with_scheduled_delay(Duration::from_millis(100))
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_sampler(if sampled {
            Sampler::AlwaysOn
        } else {
            Sampler::AlwaysOff
        })
        .with_span_processor(bsp)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("bench")
                .build(),
        )
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(tracing_subscriber::fmt::layer().json().with_writer(writer))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    GluedTracing {
        dispatch: tracing::Dispatch::new(subscriber),
        provider,
        log_guard,
    }
}
