//! [`init`] and the [`Obs`] handle it returns.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use obs_core::{Resource, Secret};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Layer, Layered, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::pillar::fused::Mode;
use crate::pillar::{Parts, Pillar, Shared, correlate, errors, health, log, metrics, trace};
use crate::{Config, Error};

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
    /// The pillars' layers, not yet fused: [`Obs::take_layers`] fuses them
    /// to sit beside other layers, [`Obs::take_subscriber`] as the only one.
    layers: Mutex<Option<Parts>>,
    /// Each pillar, running (`Off` for a disabled one).
    pub(crate) log: log::State,
    pub(crate) trace: trace::State,
    pub(crate) errors: errors::State,
    pub(crate) metrics: metrics::State,
    pub(crate) health: health::State,
    pub(crate) correlate: correlate::State,
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
/// Installed alone, obs's layers stand on obs's own span store
/// ([`obs_core::store`]) rather than `tracing-subscriber`'s registry: a
/// request's spans then allocate nothing (see
/// [`Obs::take_subscriber`]). With layers of your own ([`builder`],
/// [`layers`]) they stand on a registry, which those layers need.
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
        let (obs, layers) = build(config)?;
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
        mode: Mode::Sole,
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
    let (obs, layers) = build(config)?;
    if global {
        install_process_wide(&obs)?;
    }
    Ok((obs, layers.into_layer::<S>()))
}

/// An [`init`] in the making, holding the layers added so far; see
/// [`builder`].
#[must_use = "call try_init to install the subscriber"]
pub struct Builder<S> {
    config: Config,
    subscriber: S,
    /// `Sole` until a layer of the user's is added.
    mode: Mode,
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
            mode: Mode::Composed,
        }
    }

    /// Builds every pillar, installs the composed subscriber as the global
    /// default, and the process-wide parts [`init`] installs. Fails, with
    /// nothing installed, when a global subscriber is already set
    /// ([`Error::SubscriberAlreadySet`]), like tracing-subscriber's
    /// `try_init`.
    pub fn try_init(self) -> Result<Obs, Error> {
        let (obs, layers) = build(self.config)?;
        let installed = match self.mode {
            // obs's layers alone go on its own span store.
            Mode::Sole => tracing::subscriber::set_global_default(layers.into_sole()),
            Mode::Composed => {
                tracing::subscriber::set_global_default(self.subscriber.with(layers.into_layer()))
            }
        };
        installed.map_err(|_| Error::SubscriberAlreadySet)?;
        install_process_wide(&obs)?;
        Ok(obs)
    }
}

/// Every enabled pillar, and their layers, to be fused once it is known
/// whether they are the subscriber's only ones.
fn build(config: Config) -> Result<(Obs, Parts), Error> {
    let shared = Shared {
        resource: &config.resource,
        redactor: &config.redactor,
    };
    let mut layers = Parts::new();
    // In this order: the fused layer calls trace, errors, log.
    let metrics = metrics::State::init(config.metrics, &shared, &mut layers)?;
    let trace = trace::State::init(config.trace, &shared, &mut layers)?;
    let errors = errors::State::init(config.errors, &shared, &mut layers)?;
    let log = log::State::init(config.log, &shared, &mut layers)?;
    let health = health::State::init(config.health, &shared, &mut layers)?;
    let correlate = correlate::State::init(config.correlate, &shared, &mut layers)?;

    let inner = Inner {
        resource: shared.resource.clone(),
        redactor: shared.redactor.clone(),
        admin_token: config.admin_token,
        layers: Mutex::new(None),
        log,
        trace,
        errors,
        metrics,
        health,
        correlate,
    };
    #[cfg(feature = "metrics")]
    crate::pillar::metrics::publish(&inner)?;
    // In the same order: only health starts something (its poller).
    inner.metrics.start()?;
    inner.trace.start()?;
    inner.errors.start()?;
    inner.log.start()?;
    inner.health.start()?;
    inner.correlate.start()?;

    Ok((
        Obs {
            inner: Arc::new(inner),
        },
        layers,
    ))
}

/// What [`init`] installs beside the subscriber: the panic hooks, the global
/// error reporter, the `log` bridge, the global OpenTelemetry tracer provider
/// (`otel-api`) and [`Obs::global`].
fn install_process_wide(obs: &Obs) -> Result<(), Error> {
    // Panic hooks chain: the one installed last runs first. Logs flush
    // last, so the error report of the panic is among the lines that reach
    // the sink.
    let p = &obs.inner;
    p.log.install_panic_hook();
    p.errors.install_panic_hook();
    p.errors.install_global()?;
    p.log.install_global()?;
    p.trace.install_global()?;
    let _ = GLOBAL.set(obs.clone());
    Ok(())
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

    /// The composed `tracing` layers, to put beside layers of your own in a
    /// subscriber you build, when [`Config::install_global`] was off; `None`
    /// once taken (by this or [`take_subscriber`](Self::take_subscriber)) or
    /// when `init` installed them itself. Their filter is a per-layer
    /// filter: obs's levels decide what obs records, never what the other
    /// layers see.
    pub fn take_layers(&self) -> Option<impl Layer<Registry> + Send + Sync + 'static> {
        lock(&self.inner.layers).take().map(Parts::into_layer)
    }

    /// obs's layers alone, as [`init`] installs them process-wide: for a
    /// scoped default (`tracing::subscriber::with_default`, a
    /// `tracing::Dispatch` per test or per tenant) when
    /// [`Config::install_global`] was off. `None` once taken (by this or
    /// [`take_layers`](Self::take_layers)) or when `init` installed them.
    ///
    /// The layers stand on obs's own span store
    /// ([`obs_core::store`]) rather than `tracing-subscriber`'s registry:
    /// each span's record lives in its slot, so a request's spans allocate
    /// nothing, and entering a span touches no slot. As the only layer, the
    /// union of the pillars' filters is the subscriber's own filter. That
    /// filter decides for the whole subscriber, and the store serves no
    /// `LookupSpan` layer (`fmt`, `tracing-opentelemetry`), so add no
    /// layers to it: a layer added on top would not see what obs's levels
    /// leave out, nor the status of an unsampled server span, nor the
    /// method, route and path on the access line's event (obs writes those
    /// once, on the server span, for its own readers; see
    /// `obs_core::record::spans_read_by_obs_only`). With a layer of your
    /// own to add, use `take_layers` (or [`builder`]), which stand on a
    /// registry.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), obs::Error> {
    /// let obs = obs::init(
    ///     obs::Config::from_lookup(|_| None)?
    ///         .log(|l| l.writer(std::io::sink()))
    ///         .install_global(false),
    /// )?;
    /// let subscriber = obs.take_subscriber().expect("not installed globally");
    /// tracing::subscriber::with_default(subscriber, || tracing::info!("scoped"));
    /// assert!(obs.take_subscriber().is_none(), "taken once");
    /// # obs.shutdown(std::time::Duration::from_secs(2)).await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_subscriber(&self) -> Option<impl tracing::Subscriber + Send + Sync + 'static> {
        lock(&self.inner.layers).take().map(Parts::into_sole)
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
        let left = || deadline.saturating_duration_since(Instant::now());
        let mut report = ShutdownReport::new();
        let p = &self.inner;
        // Readiness fails first, then queued error reports go out, then
        // spans are exported, then the log writer drains.
        p.health.shutdown(&left, &mut report);
        p.errors.shutdown(&left, &mut report);
        p.trace.shutdown(&left, &mut report);
        tracing::info!(
            target: "obs",
            spans_exported = report.spans_exported,
            spans_dropped = report.spans_dropped,
            error_reports_flushed = report.errors_flushed,
            "obs shutting down"
        );
        p.log.shutdown(&left, &mut report);
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
