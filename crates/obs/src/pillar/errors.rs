//! The errors pillar (`obs-errors`): the reporter and its sinks (the `ERROR`
//! line, Sentry, the caller's), its filtered layer, its self-metrics, the
//! global reporter and panic hook, the flush of queued reports at shutdown,
//! and the server layer binding the request to the error scope.

use std::fmt;
use std::time::Duration;

use super::{Lookup, Parts, Pillar, Shared};
use crate::{Config, Error, Obs, ShutdownReport};

pub(crate) struct Settings {
    config: obs_errors::Config,
    sinks: Vec<Box<dyn obs_errors::Sink>>,
    log_lines: bool,
    #[cfg(feature = "sentry")]
    sentry: obs_errors::sentry::SentrySettings,
}

impl super::Settings for Settings {
    fn from_lookup(lookup: Lookup<'_>) -> Result<Self, Error> {
        Ok(Self {
            config: obs_errors::Config::from_lookup(lookup)?,
            sinks: Vec::new(),
            log_lines: true,
            #[cfg(feature = "sentry")]
            sentry: obs_errors::sentry::SentrySettings::from_lookup(lookup)?,
        })
    }
    fn defaults() -> Self {
        Self {
            config: obs_errors::Config::default(),
            sinks: Vec::new(),
            log_lines: true,
            #[cfg(feature = "sentry")]
            sentry: obs_errors::sentry::SentrySettings::default(),
        }
    }
    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("errors", &self.config)
            .field("error_sinks", &self.sinks.len())
            .field("error_log_lines", &self.log_lines);
        #[cfg(feature = "sentry")]
        d.field("sentry", &self.sentry);
    }
}

pub(crate) struct State {
    pub(crate) reporter: obs_errors::Reporter,
}

impl Pillar for State {
    type Settings = Settings;

    fn init(settings: Settings, shared: &Shared<'_>, layers: &mut Parts) -> Result<Self, Error> {
        let events = settings.config.breadcrumb_level_in_force();
        let mut builder = obs_errors::Reporter::builder(
            settings
                .config
                .with_resource(shared.resource.clone())
                .redactor(shared.redactor.clone()),
        );
        // Every report is one ERROR line (with the trace and correlation
        // ids): the record of errors that needs no other service.
        if settings.log_lines {
            builder = builder.sink(obs_errors::LogSink::new());
        }
        #[cfg(feature = "sentry")]
        if let Some(sentry) = obs_errors::sentry::SentrySink::from_settings(&settings.sentry) {
            builder = builder.sink(sentry);
        }
        for sink in settings.sinks {
            builder = builder.boxed_sink(sink);
        }
        let reporter = builder.build()?;
        // The layer reads breadcrumb rings on events; it has no span callbacks,
        // and its filter none.
        let callbacks = super::fused::SpanCallbacks {
            record: false,
            lifecycle: super::fused::Lifecycle::Never,
        };
        layers.push(
            super::fused::Part::Errors(reporter.layer(), ErrorsFilter { events }),
            callbacks,
        );
        Ok(Self { reporter })
    }

    #[cfg(feature = "metrics")]
    fn publish(&self, registry: &obs_metrics::Registry) -> Result<(), Error> {
        let stats = self.reporter.stats();
        registry.callback_counter_family(
            super::metrics::base(obs_core::names::metric::ERRORS),
            "Errors and panics captured, by type.",
            ["type"],
            move |e| {
                for t in stats.by_type() {
                    e.emit([t.error_type.as_str()], t.count);
                }
            },
        )?;
        let stats = self.reporter.stats();
        registry.callback_counter_family(
            "obs_error_reports",
            "Error reports by outcome: sent, merged into an earlier report, dropped.",
            ["outcome"],
            move |e| {
                e.emit(["reported"], stats.reported());
                e.emit(["deduplicated"], stats.deduplicated());
                e.emit(["rate_limited"], stats.rate_limited());
                e.emit(["dropped"], stats.dropped());
            },
        )?;
        Ok(())
    }

    fn install_panic_hook(&self) {
        self.reporter.install_panic_hook();
    }

    /// The global reporter, so `errors::capture_error` works anywhere.
    fn install_global(&self) -> Result<(), Error> {
        self.reporter.install_global();
        Ok(())
    }

    fn shutdown(&self, left: &dyn Fn() -> Duration, report: &mut ShutdownReport) {
        let pending = self.reporter.pending() as u64;
        match self.reporter.shutdown(left()) {
            Ok(()) => report.errors_flushed = pending,
            Err(e) => {
                report.completed = false;
                report.errors_lost = self.reporter.pending() as u64;
                report.problems.push(format!("errors: {e}"));
            }
        }
    }
}

/// What the error layer needs: INFO and above spans (breadcrumb rings live
/// on request spans) and events down to the breadcrumb level. Libraries'
/// DEBUG/TRACE spans would otherwise each get a breadcrumb ring. Not the
/// access lines (`obs::access`) nor obs-errors' own events: the layer makes
/// neither a breadcrumb nor a report (the access line is written when
/// nothing can report after it), so the fused layer does not call it for
/// them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorsFilter {
    events: tracing::Level,
}

impl ErrorsFilter {
    fn wants(&self, meta: &tracing::Metadata<'_>) -> bool {
        if meta.is_span() {
            *meta.level() <= tracing::Level::INFO
        } else {
            *meta.level() <= self.events
                && meta.target() != obs_core::names::target::ACCESS
                && !meta.target().starts_with("obs_errors")
        }
    }
}

impl<S> tracing_subscriber::layer::Filter<S> for ErrorsFilter {
    /// INFO spans and events down to the breadcrumb level: without the
    /// hint the whole dispatch would enable every library's DEBUG and TRACE
    /// callsites for this one layer.
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(
            self.events.max(tracing::Level::INFO),
        ))
    }

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

impl Config {
    /// Adjusts the error-monitoring configuration.
    pub fn errors(mut self, f: impl FnOnce(obs_errors::Config) -> obs_errors::Config) -> Self {
        self.errors.config = f(self.errors.config);
        self
    }

    /// Adds a sink that error reports are delivered to (for example
    /// `obs::errors::sentry::SentrySink`, or `obs::errors::MemorySink` in
    /// tests). Reports reach sinks already scrubbed with the one redaction
    /// rule set.
    pub fn error_sink(mut self, sink: impl obs_errors::Sink) -> Self {
        self.errors.sinks.push(Box::new(sink));
        self
    }

    /// Whether every error report is also written as one `ERROR` log line
    /// (target `obs_errors::report`, with the fingerprint, count, stack,
    /// trace id and correlation id). On by default; turn it off only when
    /// another sink is the record of errors.
    pub fn error_log_lines(mut self, on: bool) -> Self {
        self.errors.log_lines = on;
        self
    }

    /// The Sentry settings in force: read from `SENTRY_DSN`,
    /// `SENTRY_ENVIRONMENT`, `SENTRY_RELEASE` and `SENTRY_SAMPLE_RATE` by
    /// [`from_env`](Self::from_env); replace them here (for example from a
    /// config file). `init` sends error reports to Sentry when they hold a
    /// DSN.
    #[cfg(feature = "sentry")]
    pub fn sentry(mut self, settings: obs_errors::sentry::SentrySettings) -> Self {
        self.errors.sentry = settings;
        self
    }
}

impl Obs {
    /// The error reporter.
    pub fn errors(&self) -> &obs_errors::Reporter {
        &self.inner.errors.reporter
    }
}

/// The server layer binds the request context to the error scope.
#[cfg(feature = "http")]
pub(crate) mod http {
    use super::State;
    use crate::http::HttpPillar;

    pub(crate) type Server = obs_errors::tower::ErrorScopeLayer;
    pub(crate) type Client = crate::http::NoLayer;

    impl HttpPillar for State {
        type Server = Server;
        type Client = Client;
        fn server_layer(&self) -> Self::Server {
            obs_errors::tower::ErrorScopeLayer::new()
        }
        fn standalone_server() -> Self::Server {
            obs_errors::tower::ErrorScopeLayer::new()
        }
        fn client_layer(&self) -> Self::Client {
            crate::http::NoLayer::new()
        }
        fn standalone_client() -> Self::Client {
            crate::http::NoLayer::new()
        }
    }
}
