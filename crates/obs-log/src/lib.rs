#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod callsite;
mod config;
mod error;
mod filter;
mod format;
mod json;
mod layer;
mod limit;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
mod rolling;
mod visit;
mod writer;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

pub use config::{
    Config, DEFAULT_MAX_WAIT, ENV_FILE, ENV_FILE_COMPRESS, ENV_FILE_KEEP, ENV_FILE_MAX_AGE,
    ENV_FILE_MAX_BYTES, ENV_FILE_MAX_TOTAL_BYTES, ENV_FILE_ROTATION, ENV_FILTER, ENV_FORMAT,
    ENV_GCP_PROJECT, ENV_MAX_WAIT_MS, ENV_NO_COLOR, ENV_NON_BLOCKING, ENV_QUEUE_LINES,
    ENV_RATE_LIMIT, ENV_RUST_LOG, ENV_SCHEMA, Format, NonBlocking, OverflowPolicy, Precision,
    Schema,
};
pub use error::Error;
pub use filter::{LogFilter, MAX_DIRECTIVE_LEN, ReloadHandle};
pub use layer::LogLayer;
pub use rolling::{
    Clock, DEFAULT_KEEP_FILES, DEFAULT_MAX_BYTES, FaultInjector, RollingFile, RollingWriter,
    Rotation, SystemClock,
};
pub use writer::{
    DroppedCounts, FlushHandle, LogGuard, LogStats, ShutdownReport, install_panic_hook,
};

use config::Sink;
use filter::FilterState;
use format::Spec;
use writer::Output;

/// What [`layer`] hands back next to the layer.
#[derive(Debug)]
pub struct Handles {
    /// Flushes and shuts the writer down when dropped; keep it alive in `main`.
    pub guard: LogGuard,
    /// Dropped / suppressed / written counters.
    pub stats: LogStats,
    /// Changes the filter directive at runtime.
    pub reload: ReloadHandle,
}

/// Builds the layer and its handles from `config`.
///
/// Fails with [`Error::Directive`] on a bad filter directive,
/// [`Error::Config`] on a bad rolling file name and [`Error::Io`] when the
/// writer thread cannot be started or the rolling file cannot be opened.
///
/// ```
/// use obs_log::Config;
/// use tracing_subscriber::layer::SubscriberExt;
/// let (layer, handles) = obs_log::layer(Config::new().writer(std::io::sink()))?;
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || tracing::info!(user = "ann", "hello"));
/// // Lines go through the non-blocking writer: flush before counting.
/// assert!(handles.guard.flush(std::time::Duration::from_secs(5)));
/// assert_eq!(handles.stats.written(), 1);
/// # Ok::<(), obs_log::Error>(())
/// ```
pub fn layer(config: Config) -> Result<(LogLayer, Handles), Error> {
    let filter = Arc::new(FilterState::new(&config.directive)?);
    let ansi = config.ansi.unwrap_or(match &config.sink {
        Sink::Stdout => std::io::stdout().is_terminal(),
        Sink::Stderr => std::io::stderr().is_terminal(),
        Sink::Writer(_) | Sink::Rolling(_) => false,
    });
    let spec = Arc::new(Spec::new(
        config.schema,
        config.format,
        config.precision,
        config.fields_key,
        config.file_line,
        config.span_path,
        config.resource.as_ref(),
        config.gcp_project,
        ansi && config.format != Format::Json,
    ));
    let stats = LogStats::default();
    let out = Output::new(
        config.sink,
        config.non_blocking,
        &stats,
        spec.clone(),
        config.flush_interval,
    )?;
    #[cfg(feature = "otlp")]
    let otlp = match config.otlp {
        Some(o) => Some(otlp::OtlpSink::start(
            o,
            config.resource.clone().unwrap_or_default(),
            otlp::Lines {
                spec: spec.clone(),
                out: out.clone(),
            },
        )?),
        None => None,
    };
    let layer = LogLayer::new(
        spec,
        (!config.per_layer_filter).then(|| filter.clone()),
        filter.clone(),
        config.redactor.map(|rules| visit::Redaction { rules }),
        config.rate_limit,
        out.clone(),
        stats.clone(),
        #[cfg(feature = "otlp")]
        otlp.clone(),
    );
    let handles = Handles {
        guard: LogGuard {
            out: Some(out),
            timeout: Duration::from_secs(5),
            #[cfg(feature = "otlp")]
            otlp,
        },
        stats,
        reload: ReloadHandle { state: filter },
    };
    Ok((layer, handles))
}

/// Builds the layer, installs `Registry + layer` as the global default
/// subscriber, installs the panic hook that flushes the writer and, with the
/// `log` feature, the `log` bridge. For programs that use obs-log alone.
pub fn init(config: Config) -> Result<Handles, Error> {
    use tracing_subscriber::layer::SubscriberExt;
    let (layer, handles) = layer(config)?;
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(subscriber))
        .map_err(|e| Error::Config(format!("a global subscriber is already set: {e}")))?;
    handles.guard.install_panic_hook(Duration::from_secs(2));
    #[cfg(feature = "log")]
    init_log_bridge()?;
    Ok(handles)
}

/// Routes records of the `log` crate into `tracing`, so libraries that use
/// `log` end up in the same JSON lines (with their own target, file and
/// line; the layer's filter decides per record).
#[cfg(feature = "log")]
#[cfg_attr(docsrs, doc(cfg(feature = "log")))]
pub fn init_log_bridge() -> Result<(), Error> {
    tracing_log::LogTracer::builder()
        .with_max_level(log::LevelFilter::Trace)
        .init()
        .map_err(|e| Error::LogBridge(e.to_string()))
}

/// The metadata of the `log`-crate record `event` carries — its own target,
/// level, file and line — when `event` comes through the `log` bridge
/// (whose callsites all have the target `log`); `None` for any other event,
/// and always `None` without the `log` feature. For a filter that judges
/// events one by one, as this crate's layer does.
///
/// ```
/// tracing::subscriber::with_default(
///     tracing_subscriber::registry().with(Probe),
///     || tracing::info!(target: "app", "not bridged"),
/// );
/// # use tracing_subscriber::layer::SubscriberExt;
/// struct Probe;
/// impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Probe {
///     fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
///         assert!(obs_log::bridged_metadata(e).is_none());
///     }
/// }
/// ```
pub fn bridged_metadata<'a>(
    event: &'a tracing_core::Event<'a>,
) -> Option<tracing_core::Metadata<'a>> {
    #[cfg(feature = "log")]
    {
        callsite::log_record_metadata(event)
    }
    #[cfg(not(feature = "log"))]
    {
        let _ = event;
        None
    }
}
