#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
pub mod context;
pub mod db;
mod error;
pub mod export;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
mod layer;
#[cfg(feature = "otel-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel-api")))]
pub mod otel_api;
#[cfg(feature = "otlp-proto")]
#[cfg_attr(docsrs, doc(cfg(any(feature = "otlp-http", feature = "otlp-grpc"))))]
pub mod otlp;
pub mod propagation;
mod raw;
pub mod redaction;
mod sampler;
#[cfg(feature = "sdk")]
#[cfg_attr(docsrs, doc(cfg(feature = "sdk")))]
pub mod sdk;
pub mod span;
pub mod tls;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

use std::sync::Arc;
use std::time::Duration;

pub use config::{BatchConfig, Compression, Config, ExporterConfig, Protocol};
pub use error::Error;
pub use export::{ShutdownReport, SpanExporter, TraceStats};
pub use layer::TraceLayer;
pub use propagation::{Baggage, Propagators, SpanContext, TraceState};
pub use sampler::Sampler;
pub use tls::{TlsConfig, TlsRoots};

use export::Pipeline;

/// State shared by the provider and its layers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) sampler: Sampler,
    pub(crate) disabled: bool,
    pub(crate) pipeline: Option<Pipeline>,
    pub(crate) max_attributes: usize,
    pub(crate) max_events: usize,
    pub(crate) propagators: Propagators,
    pub(crate) stats: TraceStats,
}

/// The tracing pipeline: the sampler, the export queue and its thread.
/// Cheap to clone; every clone controls the same pipeline.
///
/// ```
/// use obs_trace::{TracerProvider, export::InMemoryExporter};
/// use std::time::Duration;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let spans = InMemoryExporter::default();
/// let provider = TracerProvider::builder().with_exporter(spans.clone()).build()?;
/// let subscriber = tracing_subscriber::registry().with(provider.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     let _g = tracing::info_span!("work", items = 3).entered();
///     tracing::info!("halfway");
/// });
/// let report = provider.shutdown(Duration::from_secs(5));
/// assert_eq!((report.exported, report.dropped), (1, 0));
/// let span = &spans.spans()[0];
/// assert_eq!(span.name, "work");
/// assert_eq!(span.events[0].name, "halfway");
/// # Ok::<(), obs_trace::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TracerProvider {
    shared: Arc<Shared>,
}

/// Builds a [`TracerProvider`] from a [`Config`] and an optional custom
/// exporter.
#[derive(Default)]
pub struct Builder {
    config: Config,
    exporter: Option<Box<dyn SpanExporter>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("custom_exporter", &self.exporter.is_some())
            .finish()
    }
}

impl Builder {
    /// Replaces the configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the sampler.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.config.sampler = sampler;
        self
    }

    /// Sets the batch settings.
    pub fn batch(mut self, batch: BatchConfig) -> Self {
        self.config.batch = batch;
        self
    }

    /// Redaction rules applied to every span's name, attributes, events and
    /// status before any exporter sees it (default: `obs_core::Redactor::new()`);
    /// `None` turns redaction off.
    pub fn redactor(mut self, redactor: Option<obs_core::Redactor>) -> Self {
        self.config.redactor = redactor;
        self
    }

    /// Exports to `exporter` instead of the configured OTLP endpoint.
    pub fn with_exporter(mut self, exporter: impl SpanExporter) -> Self {
        self.exporter = Some(Box::new(exporter));
        self
    }

    /// Validates the configuration, creates the exporter and starts the
    /// exporter thread (only when there is something to export to).
    pub fn build(self) -> Result<TracerProvider, Error> {
        let cfg = self.config;
        cfg.validate()?;
        let exporter = match (self.exporter, &cfg.exporter) {
            _ if cfg.disabled => None,
            (Some(e), _) => Some(e),
            (None, Some(e)) => Some(otlp_exporter(e)?),
            (None, None) => None,
        };
        let pipeline = match exporter {
            Some(e) => Some(Pipeline::start(
                e,
                cfg.resource.clone(),
                cfg.batch,
                cfg.redactor.clone(),
            )?),
            None => None,
        };
        let stats = pipeline
            .as_ref()
            .map(|p| p.stats().clone())
            .unwrap_or_default();
        Ok(TracerProvider {
            shared: Arc::new(Shared {
                sampler: cfg.sampler,
                disabled: cfg.disabled,
                pipeline,
                max_attributes: cfg.max_attributes,
                max_events: cfg.max_events,
                propagators: cfg.propagators,
                stats,
            }),
        })
    }
}

#[allow(
    unused_variables,
    reason = "the exporter config is unused when no OTLP feature is on"
)]
fn otlp_exporter(e: &ExporterConfig) -> Result<Box<dyn SpanExporter>, Error> {
    match e.protocol {
        Protocol::HttpProtobuf => {
            #[cfg(feature = "otlp-http")]
            return Ok(Box::new(
                otlp::OtlpHttpExporter::new(&e.endpoint, &e.headers)?
                    .compression(e.compression)
                    .tls(&e.tls)?,
            ));
            #[cfg(not(feature = "otlp-http"))]
            return Err(Error::FeatureDisabled {
                what: "OTLP over http/protobuf".into(),
                feature: "otlp-http",
            });
        }
        Protocol::Grpc => {
            #[cfg(feature = "otlp-grpc")]
            return Ok(Box::new(
                otlp::OtlpGrpcExporter::new(&e.endpoint, &e.headers)?
                    .compression(e.compression)
                    .tls(&e.tls)?,
            ));
            #[cfg(not(feature = "otlp-grpc"))]
            return Err(Error::FeatureDisabled {
                what: "OTLP over grpc".into(),
                feature: "otlp-grpc",
            });
        }
    }
}

impl TracerProvider {
    /// A builder with the default configuration.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Builds a provider from `config` (for example [`Config::from_env`]).
    pub fn from_config(config: Config) -> Result<Self, Error> {
        Builder::default().config(config).build()
    }

    /// The `tracing` layer feeding this pipeline. Add it to a
    /// `tracing_subscriber::registry()`.
    pub fn layer(&self) -> TraceLayer {
        TraceLayer {
            shared: self.shared.clone(),
        }
    }

    /// The live export counters (exported, dropped by cause).
    pub fn stats(&self) -> TraceStats {
        self.shared.stats.clone()
    }

    /// The configured propagation formats.
    pub fn propagators(&self) -> Propagators {
        self.shared.propagators
    }

    /// Exports everything queued now. Returns `false` when that did not
    /// finish within `timeout`. Blocks the calling thread (never a runtime's
    /// reactor: the exporter has its own thread).
    pub fn force_flush(&self, timeout: Duration) -> bool {
        match &self.shared.pipeline {
            Some(p) => p.force_flush(timeout),
            None => true,
        }
    }

    /// Flushes and stops the exporter, returning within `timeout` (plus a
    /// few milliseconds) whatever the collector does, inside or outside a
    /// tokio runtime of either flavour. Spans still queued or in flight at
    /// the deadline, and spans ending afterwards, count as dropped.
    /// Calling it again returns the first report.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        match &self.shared.pipeline {
            Some(p) => p.shutdown(timeout),
            None => ShutdownReport {
                exported: 0,
                dropped: 0,
                timed_out: false,
            },
        }
    }
}
