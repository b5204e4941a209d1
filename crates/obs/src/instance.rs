//! [`init`] and the [`Obs`] handle it returns.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use obs_core::{Resource, Secret};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Layer, Layered, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::{Config, Error};

/// A pillar's layer, boxed so that any set of features gives one type.
type Boxed<S> = Box<dyn Layer<S> + Send + Sync + 'static>;

static GLOBAL: OnceLock<Obs> = OnceLock::new();

/// The running observability stack: handles on every enabled pillar.
///
/// Cheap to clone. Created by [`init`]; [`Obs::shutdown`] flushes everything
/// in the right order and says what was lost.
#[derive(Clone)]
pub struct Obs {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) resource: Resource,
    pub(crate) redactor: obs_core::Redactor,
    pub(crate) admin_token: Option<Secret<String>>,
    layers: Mutex<Option<Vec<Boxed<Registry>>>>,
    #[cfg(feature = "log")]
    pub(crate) log_reload: obs_log::ReloadHandle,
    #[cfg(feature = "log")]
    #[cfg_attr(
        not(feature = "metrics"),
        allow(dead_code, reason = "published by the self-metrics")
    )]
    pub(crate) log_stats: obs_log::LogStats,
    #[cfg(feature = "log")]
    log_guard: Mutex<Option<obs_log::LogGuard>>,
    #[cfg(feature = "trace")]
    pub(crate) tracer: obs_trace::TracerProvider,
    #[cfg(feature = "metrics")]
    pub(crate) registry: obs_metrics::Registry,
    #[cfg(feature = "health")]
    pub(crate) health: obs_health::Health,
    #[cfg(feature = "health")]
    poller: Mutex<Option<obs_health::Poller>>,
    #[cfg(feature = "correlate")]
    #[cfg_attr(
        not(feature = "http"),
        allow(dead_code, reason = "used by the HTTP layers")
    )]
    pub(crate) correlate: obs_correlate::Config,
    #[cfg(feature = "correlate")]
    #[cfg_attr(
        not(any(feature = "http", feature = "metrics")),
        allow(dead_code, reason = "used by the HTTP layers and self-metrics")
    )]
    pub(crate) correlate_stats: obs_correlate::Stats,
    #[cfg(feature = "errors")]
    pub(crate) reporter: obs_errors::Reporter,
    #[cfg(all(feature = "http", feature = "metrics"))]
    pub(crate) http_metrics: OnceLock<Option<obs_metrics::sets::HttpServerMetrics>>,
    #[cfg(all(feature = "http", feature = "metrics"))]
    pub(crate) http_client_metrics: OnceLock<Option<Arc<obs_metrics::sets::HttpClientMetrics>>>,
    #[cfg(all(feature = "metrics", feature = "trace"))]
    pub(crate) job_metrics: OnceLock<Option<obs_metrics::sets::JobMetrics>>,
    #[cfg(all(feature = "metrics", feature = "trace"))]
    pub(crate) pipeline_metrics: OnceLock<Option<obs_metrics::sets::PipelineMetrics>>,
}

impl fmt::Debug for Obs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Obs")
            .field("service", &self.inner.resource.service_name())
            .field("admin_token", &self.inner.admin_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Sets up every enabled pillar from `config` in one call: the JSON log
/// layer, the tracer and its layer, error capture (reports written as
/// `ERROR` lines, sent to Sentry when `SENTRY_DSN` is set with the `sentry`
/// feature, and to every sink added with [`Config::error_sink`]), the
/// metrics registry with the process collector and the pillars' own
/// self-metrics, and the health registry.
///
/// With [`Config::install_global`] (the default) it installs the global
/// `tracing` subscriber, the panic hooks, the global error reporter (so
/// [`errors::capture_error`](crate::errors::capture_error) works anywhere)
/// and, with `log-bridge`, the `log` crate bridge; it fails with
/// [`Error::SubscriberAlreadySet`] when a global subscriber exists. To add
/// your own layers use [`builder`]; to compose the subscriber entirely
/// yourself use [`layers`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), obs::Error> {
/// let obs = obs::init(
///     obs::Config::from_lookup(|_| None)?
///         .service("checkout")
///         .log(|l| l.writer(std::io::sink()))
///         .install_global(false),
/// )?;
/// assert_eq!(obs.resource().service_name(), "checkout");
/// let report = obs.shutdown(std::time::Duration::from_secs(2)).await;
/// assert!(report.completed);
/// # Ok(())
/// # }
/// ```
pub fn init(config: Config) -> Result<Obs, Error> {
    if config.install_global {
        builder(config).try_init()
    } else {
        let (obs, layers) = build::<Registry>(config)?;
        *lock(&obs.inner.layers) = Some(layers);
        Ok(obs)
    }
}

/// Starts an [`init`] that composes obs's layers with your own: add layers
/// with [`Builder::with`] (tokio-console, a second fmt layer, a library's
/// layer), then [`Builder::try_init`].
///
/// ```
/// use tracing_subscriber::Layer as _;
/// # fn main() -> Result<(), obs::Error> {
/// let mine = tracing_subscriber::filter::LevelFilter::INFO.and_then(
///     tracing_subscriber::layer::Identity::new(),
/// );
/// let builder = obs::builder(
///     obs::Config::from_lookup(|_| None)?.log(|l| l.writer(std::io::sink())),
/// )
/// .with(mine);
/// # let _ = builder; // `builder.try_init()?` installs it process-wide
/// # Ok(())
/// # }
/// ```
pub fn builder(config: Config) -> Builder<Registry> {
    Builder {
        config,
        subscriber: tracing_subscriber::registry(),
    }
}

/// Every enabled pillar's layer for a subscriber you build yourself, with
/// the [`Obs`] handle. With [`Config::install_global`] (the default) the
/// process-wide parts are installed as [`init`] installs them (panic hooks,
/// the global error reporter, the `log` bridge, [`Obs::global`]); the
/// subscriber is yours to install.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// # fn main() -> Result<(), obs::Error> {
/// let (obs, layers) = obs::layers(
///     obs::Config::from_lookup(|_| None)?
///         .log(|l| l.writer(std::io::sink()))
///         .install_global(false),
/// )?;
/// let subscriber = tracing_subscriber::registry()
///     .with(tracing_subscriber::layer::Identity::new())
///     .with(layers);
/// tracing::subscriber::with_default(subscriber, || tracing::info!("composed"));
/// # let _ = obs;
/// # Ok(())
/// # }
/// ```
pub fn layers<S>(config: Config) -> Result<(Obs, impl Layer<S> + Send + Sync + 'static), Error>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    let global = config.install_global;
    let (obs, layers) = build::<S>(config)?;
    if global {
        install_process_wide(&obs)?;
    }
    Ok((obs, layers))
}

/// An [`init`] in the making, holding the layers added so far; see
/// [`builder`].
#[must_use = "call try_init to install the subscriber"]
pub struct Builder<S> {
    config: Config,
    subscriber: S,
}

impl<S> fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S> Builder<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    /// Adds a layer of your own under obs's layers.
    pub fn with<L>(self, layer: L) -> Builder<Layered<L, S>>
    where
        L: Layer<S> + Send + Sync + 'static,
    {
        Builder {
            config: self.config,
            subscriber: self.subscriber.with(layer),
        }
    }

    /// Builds every pillar, installs the composed subscriber as the global
    /// default, and the process-wide parts [`init`] installs. Fails, with
    /// nothing installed, when a global subscriber is already set
    /// ([`Error::SubscriberAlreadySet`]), like tracing-subscriber's
    /// `try_init`.
    pub fn try_init(self) -> Result<Obs, Error> {
        let (obs, layers) = build::<S>(self.config)?;
        let subscriber = self.subscriber.with(layers);
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|_| Error::SubscriberAlreadySet)?;
        install_process_wide(&obs)?;
        Ok(obs)
    }
}

/// The layers of every enabled pillar, for any registry-based subscriber.
fn build<S>(config: Config) -> Result<(Obs, Vec<Boxed<S>>), Error>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    let resource = config.resource.clone();
    #[allow(unused_mut, reason = "each enabled pillar pushes its layer")]
    let mut layers: Vec<Boxed<S>> = Vec::new();

    #[cfg(feature = "metrics")]
    let registry = {
        let registry = obs_metrics::Registry::builder()
            .cardinality_limit(config.cardinality_limit)
            .redactor(Some(config.redactor.clone()))
            .build();
        obs_metrics::process::register(&registry)?;
        registry
    };

    #[cfg(feature = "trace")]
    let tracer = {
        let mut trace = config.trace;
        trace.resource = resource.clone();
        trace.redactor = Some(config.redactor.clone());
        let tracer = obs_trace::TracerProvider::from_config(trace)?;
        layers.push(Box::new(tracer.layer().with_filter(config.trace_filter)));
        tracer
    };

    #[cfg(feature = "errors")]
    let reporter = {
        let events = config.errors.breadcrumb_level_in_force();
        let mut builder = obs_errors::Reporter::builder(
            config
                .errors
                .with_resource(resource.clone())
                .redactor(config.redactor.clone()),
        );
        // Every report is one ERROR line (with the trace and correlation
        // ids): the record of errors that needs no other service.
        if config.error_log_lines {
            builder = builder.sink(obs_errors::LogSink::new());
        }
        #[cfg(feature = "sentry")]
        if let Some(sentry) = obs_errors::sentry::SentrySink::from_settings(&config.sentry) {
            builder = builder.sink(sentry);
        }
        for sink in config.error_sinks {
            builder = builder.boxed_sink(sink);
        }
        let reporter = builder.build()?;
        layers.push(Box::new(
            reporter.layer().with_filter(ErrorsFilter { events }),
        ));
        reporter
    };

    #[cfg(feature = "log")]
    let (log_reload, log_stats, log_guard) = {
        // The log directive filters log lines only (a per-layer filter): a
        // quiet log level must not switch spans off for the tracer, nor
        // breadcrumbs for error capture.
        let (layer, handles) = obs_log::layer(
            config
                .log
                .resource(resource.clone())
                .redactor(Some(config.redactor.clone()))
                .per_layer_filter(true),
        )?;
        layers.push(Box::new(layer.with_filter(handles.reload.filter())));
        (handles.reload, handles.stats, handles.guard)
    };

    #[cfg(feature = "health")]
    let health = {
        let mut b = obs_health::Health::builder()
            .resource(&resource)
            .redactor(config.redactor.clone())
            .config(&config.health);
        for c in config.checks {
            b = b.check(c);
        }
        b.build()?
    };

    #[cfg(feature = "correlate")]
    let correlate_stats = obs_correlate::Stats::new();

    let inner = Inner {
        resource,
        redactor: config.redactor,
        admin_token: config.admin_token,
        layers: Mutex::new(None),
        #[cfg(feature = "log")]
        log_reload,
        #[cfg(feature = "log")]
        log_stats,
        #[cfg(feature = "log")]
        log_guard: Mutex::new(Some(log_guard)),
        #[cfg(feature = "trace")]
        tracer,
        #[cfg(feature = "metrics")]
        registry,
        #[cfg(feature = "health")]
        health,
        #[cfg(feature = "health")]
        poller: Mutex::new(None),
        #[cfg(feature = "correlate")]
        correlate: config.correlate,
        #[cfg(feature = "correlate")]
        correlate_stats,
        #[cfg(feature = "errors")]
        reporter,
        #[cfg(all(feature = "http", feature = "metrics"))]
        http_metrics: OnceLock::new(),
        #[cfg(all(feature = "http", feature = "metrics"))]
        http_client_metrics: OnceLock::new(),
        #[cfg(all(feature = "metrics", feature = "trace"))]
        job_metrics: OnceLock::new(),
        #[cfg(all(feature = "metrics", feature = "trace"))]
        pipeline_metrics: OnceLock::new(),
    };
    let obs = Obs {
        inner: Arc::new(inner),
    };

    #[cfg(feature = "metrics")]
    crate::stats::publish(&obs)?;

    // Cached mode needs a runtime for its poller; outside one it is a typed
    // error rather than probes that silently run every check.
    #[cfg(feature = "health")]
    if config.health.cached {
        let poller = obs.inner.health.spawn_poller()?;
        *lock(&obs.inner.poller) = Some(poller);
    }

    Ok((obs, layers))
}

/// What [`init`] installs beside the subscriber: the panic hooks, the global
/// error reporter, the `log` bridge, the global OpenTelemetry tracer provider
/// (`otel-api`) and [`Obs::global`].
fn install_process_wide(obs: &Obs) -> Result<(), Error> {
    install_panic_hooks(obs);
    #[cfg(feature = "errors")]
    obs.inner.reporter.install_global();
    #[cfg(feature = "log-bridge")]
    obs_log::init_log_bridge()?;
    // Spans libraries open through `opentelemetry::global` join obs's traces.
    #[cfg(feature = "otel-api")]
    let _ = obs_trace::otel_api::install_global(&obs.inner.tracer);
    let _ = GLOBAL.set(obs.clone());
    Ok(())
}

/// What the error layer needs: INFO and above spans (breadcrumb rings live
/// on request spans) and events down to the breadcrumb level. Libraries'
/// DEBUG/TRACE spans would otherwise each get a breadcrumb ring.
#[cfg(feature = "errors")]
#[derive(Debug, Clone, Copy)]
struct ErrorsFilter {
    events: tracing::Level,
}

#[cfg(feature = "errors")]
impl ErrorsFilter {
    fn wants(&self, meta: &tracing::Metadata<'_>) -> bool {
        if meta.is_span() {
            *meta.level() <= tracing::Level::INFO
        } else {
            *meta.level() <= self.events
        }
    }
}

#[cfg(feature = "errors")]
impl<S> tracing_subscriber::layer::Filter<S> for ErrorsFilter {
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        self.wants(meta)
    }

    fn callsite_enabled(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if self.wants(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
}

/// Panic hooks chain: the one installed last runs first. Logs flush last, so
/// the error report of the panic is among the lines that reach the sink.
fn install_panic_hooks(obs: &Obs) {
    #[cfg(feature = "log")]
    if let Some(guard) = lock(&obs.inner.log_guard).as_ref() {
        guard.install_panic_hook(Duration::from_secs(2));
    }
    #[cfg(feature = "errors")]
    obs.inner.reporter.install_panic_hook();
    #[cfg(not(any(feature = "log", feature = "errors")))]
    let _ = obs;
}

#[cfg(all(feature = "otlp-logs", feature = "metrics"))]
impl Inner {
    /// The OTLP log exporter's counters, while the log writer runs and
    /// exports records.
    pub(crate) fn log_otlp_stats(&self) -> Option<obs_log::otlp::OtlpStats> {
        lock(&self.log_guard).as_ref().and_then(|g| g.otlp_stats())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Obs {
    /// The instance installed by the last [`init`] that installed the global
    /// subscriber.
    pub fn global() -> Option<Obs> {
        GLOBAL.get().cloned()
    }

    /// The resource every pillar stamps on its output.
    pub fn resource(&self) -> &Resource {
        &self.inner.resource
    }

    /// The one redaction rule set every pillar applies; give it to any sink
    /// or exporter you add yourself so that it hides the same secrets.
    pub fn redaction_rules(&self) -> &obs_core::Redactor {
        &self.inner.redactor
    }

    /// The composed `tracing` layers, when [`Config::install_global`] was
    /// off; `None` once taken or when `init` installed them itself.
    pub fn take_layers(&self) -> Option<impl Layer<Registry> + Send + Sync + 'static> {
        lock(&self.inner.layers).take()
    }

    /// A ready metric set registered on this instance's registry on first
    /// use and cached in `cell`; a registration error is logged once and
    /// the set is then absent.
    #[cfg(all(feature = "metrics", any(feature = "http", feature = "trace")))]
    pub(crate) fn metric_set<T: Clone>(
        &self,
        cell: &OnceLock<Option<T>>,
        what: &str,
        register: impl FnOnce(&obs_metrics::Registry) -> obs_metrics::Result<T>,
    ) -> Option<T> {
        cell.get_or_init(|| match register(&self.inner.registry) {
            Ok(set) => Some(set),
            Err(e) => {
                tracing::error!(target: "obs", error = %e, "cannot register the {what} metrics");
                None
            }
        })
        .clone()
    }

    /// The metrics registry (`/metrics` encodes it).
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics(&self) -> &obs_metrics::Registry {
        &self.inner.registry
    }

    /// The health registry.
    #[cfg(feature = "health")]
    #[cfg_attr(docsrs, doc(cfg(feature = "health")))]
    pub fn health(&self) -> &obs_health::Health {
        &self.inner.health
    }

    /// The tracer.
    #[cfg(feature = "trace")]
    #[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
    pub fn tracer(&self) -> &obs_trace::TracerProvider {
        &self.inner.tracer
    }

    /// The error reporter.
    #[cfg(feature = "errors")]
    #[cfg_attr(docsrs, doc(cfg(feature = "errors")))]
    pub fn errors(&self) -> &obs_errors::Reporter {
        &self.inner.reporter
    }

    /// The log filter directive in force.
    #[cfg(feature = "log")]
    #[cfg_attr(docsrs, doc(cfg(feature = "log")))]
    pub fn log_level(&self) -> String {
        self.inner.log_reload.current()
    }

    /// Replaces the log filter directive at runtime (`warn,my_app=debug`). A
    /// bad directive is a typed error and leaves the old one in force.
    #[cfg(feature = "log")]
    #[cfg_attr(docsrs, doc(cfg(feature = "log")))]
    pub fn reload_log_level(&self, directive: &str) -> Result<(), Error> {
        self.inner.log_reload.set(directive)?;
        Ok(())
    }

    /// Flushes and stops every pillar, in order, within `timeout`:
    /// readiness fails first, then queued error reports go out, then spans
    /// are exported, then the log writer drains — last, so that what the
    /// other pillars log on the way down is kept. Never blocks the async
    /// runtime: the blocking flushes run on tokio's blocking pool when a
    /// runtime is present.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let this = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || this.shutdown_blocking(timeout))
                .await
                .unwrap_or_else(|_| ShutdownReport::failed(timeout)),
            Err(_) => this.shutdown_blocking(timeout),
        }
    }

    /// [`shutdown`](Self::shutdown) for code outside an async runtime.
    pub fn shutdown_blocking(&self, timeout: Duration) -> ShutdownReport {
        let start = Instant::now();
        let deadline = start + timeout;
        #[allow(unused_variables, reason = "used by the pillars that are enabled")]
        let left = || deadline.saturating_duration_since(Instant::now());
        let mut report = ShutdownReport::new();

        #[cfg(feature = "health")]
        {
            self.inner.health.begin_shutdown();
            if let Some(p) = lock(&self.inner.poller).take() {
                drop(p);
            }
        }
        #[cfg(feature = "errors")]
        {
            let pending = self.inner.reporter.pending() as u64;
            match self.inner.reporter.shutdown(left()) {
                Ok(()) => report.errors_flushed = pending,
                Err(e) => {
                    report.completed = false;
                    report.errors_lost = self.inner.reporter.pending() as u64;
                    report.problems.push(format!("errors: {e}"));
                }
            }
        }
        #[cfg(feature = "trace")]
        {
            let r = self.inner.tracer.shutdown(left());
            report.spans_exported = r.exported;
            report.spans_dropped = r.dropped;
            if r.timed_out {
                report.completed = false;
                report
                    .problems
                    .push("trace: export did not finish in time".into());
            }
        }
        tracing::info!(
            target: "obs",
            spans_exported = report.spans_exported,
            spans_dropped = report.spans_dropped,
            error_reports_flushed = report.errors_flushed,
            "obs shutting down"
        );
        #[cfg(feature = "log")]
        if let Some(guard) = lock(&self.inner.log_guard).take() {
            let r = guard.shutdown(left());
            report.log_lines_written = r.written;
            report.log_lines_dropped = r.dropped.total();
            #[cfg(feature = "otlp-logs")]
            if let Some(o) = &r.otlp {
                report.log_records_exported = o.exported;
                report.log_records_dropped = o.dropped;
                if !o.completed {
                    report
                        .problems
                        .push("log: OTLP log export did not finish in time".into());
                }
            }
            if !r.completed {
                report.completed = false;
                report
                    .problems
                    .push("log: the writer did not drain in time".into());
            }
        }
        report.elapsed = start.elapsed();
        report
    }
}

/// What [`Obs::shutdown`] flushed and what was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Whether every pillar finished within the timeout.
    pub completed: bool,
    /// How long the shutdown took.
    pub elapsed: Duration,
    /// Log lines written over the writer's lifetime.
    pub log_lines_written: u64,
    /// Log lines dropped over the writer's lifetime (overflow policy or shutdown).
    pub log_lines_dropped: u64,
    /// Log records exported over OTLP (feature `otlp-logs`).
    pub log_records_exported: u64,
    /// Log records dropped before OTLP export (full queue, failed export,
    /// shutdown).
    pub log_records_dropped: u64,
    /// Spans exported over the tracer's lifetime.
    pub spans_exported: u64,
    /// Spans dropped over the tracer's lifetime (full queue, failed export, shutdown).
    pub spans_dropped: u64,
    /// Error reports that were queued and went out during shutdown.
    pub errors_flushed: u64,
    /// Error reports still queued when the timeout ran out.
    pub errors_lost: u64,
    /// What did not finish, one line per pillar.
    pub problems: Vec<String>,
}

impl ShutdownReport {
    fn new() -> Self {
        Self {
            completed: true,
            elapsed: Duration::ZERO,
            log_lines_written: 0,
            log_lines_dropped: 0,
            log_records_exported: 0,
            log_records_dropped: 0,
            spans_exported: 0,
            spans_dropped: 0,
            errors_flushed: 0,
            errors_lost: 0,
            problems: Vec::new(),
        }
    }

    fn failed(timeout: Duration) -> Self {
        let mut r = Self::new();
        r.completed = false;
        r.elapsed = timeout;
        r.problems.push("shutdown task panicked".into());
        r
    }

    /// Everything lost: log lines, spans and error reports.
    pub fn lost(&self) -> u64 {
        self.log_lines_dropped + self.log_records_dropped + self.spans_dropped + self.errors_lost
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in {:.2?}: {} log lines written, {} dropped; {} spans exported, {} dropped; {} error reports flushed, {} lost",
            if self.completed {
                "complete"
            } else {
                "incomplete"
            },
            self.elapsed,
            self.log_lines_written,
            self.log_lines_dropped,
            self.spans_exported,
            self.spans_dropped,
            self.errors_flushed,
            self.errors_lost
        )?;
        if self.log_records_exported + self.log_records_dropped > 0 {
            write!(
                f,
                "; {} log records exported over OTLP, {} dropped",
                self.log_records_exported, self.log_records_dropped
            )?;
        }
        for p in &self.problems {
            write!(f, "; {p}")?;
        }
        Ok(())
    }
}
