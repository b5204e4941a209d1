//! The trace pillar (`obs-trace`): the tracer and its filtered layer, the
//! exporter's self-metrics, the global OpenTelemetry provider (`otel-api`),
//! span export at shutdown, and the server and client span layers.

use std::fmt;
use std::time::Duration;

use tracing_subscriber::filter::Targets;

use super::{Lookup, Parts, Pillar, Shared};
use crate::config::ENV_TRACE_FILTER;
use crate::{Config, Error, Obs, ShutdownReport};

pub(crate) struct Settings {
    config: obs_trace::Config,
    filter: Targets,
}

impl super::Settings for Settings {
    fn from_lookup(lookup: Lookup<'_>) -> Result<Self, Error> {
        Ok(Self {
            config: obs_trace::Config::from_lookup(lookup)?,
            filter: match lookup(ENV_TRACE_FILTER) {
                None => default_filter(),
                Some(v) => parse_targets(&v)?,
            },
        })
    }
    fn defaults() -> Self {
        Self {
            config: obs_trace::Config::default(),
            filter: default_filter(),
        }
    }
    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("trace", &self.config)
            .field("trace_filter", &self.filter);
    }
}

fn default_filter() -> Targets {
    Targets::new().with_default(tracing::Level::INFO)
}

fn parse_targets(v: &str) -> Result<Targets, Error> {
    let reason = |reason| Error::Env {
        var: ENV_TRACE_FILTER,
        reason,
    };
    let preview: String = v.chars().take(64).collect();
    if v.trim().is_empty() {
        return Err(reason("the directive is empty".into()));
    }
    v.trim()
        .parse()
        .map_err(|e| reason(format!("{preview:?} is not a target=level directive: {e}")))
}

pub(crate) struct State {
    pub(crate) tracer: obs_trace::TracerProvider,
}

impl Pillar for State {
    type Settings = Settings;

    fn init(settings: Settings, shared: &Shared<'_>, layers: &mut Parts) -> Result<Self, Error> {
        let mut trace = settings.config;
        trace.resource = shared.resource.clone();
        trace.redactor = Some(shared.redactor.clone());
        let tracer = obs_trace::TracerProvider::from_config(trace)?;
        // Recorded values join a sampled span's attributes; a span ends when the
        // registry drops its state, so neither the layer nor its `Targets`
        // filter acts on enter, exit or close.
        let callbacks = super::fused::SpanCallbacks {
            record: true,
            lifecycle: super::fused::Lifecycle::Never,
        };
        layers.push(
            super::fused::Part::Trace(tracer.layer(), settings.filter),
            callbacks,
        );
        Ok(Self { tracer })
    }

    #[cfg(feature = "metrics")]
    fn publish(&self, registry: &obs_metrics::Registry) -> Result<(), Error> {
        let stats = self.tracer.stats();
        registry.callback_counter_family(
            super::metrics::base(obs_core::names::metric::SPANS_DROPPED),
            "Spans dropped before export, by reason.",
            ["reason"],
            move |e| {
                e.emit(["queue_full"], stats.dropped_queue_full());
                e.emit(["export_failed"], stats.dropped_export_failed());
                e.emit(["after_shutdown"], stats.dropped_after_shutdown());
            },
        )?;
        let stats = self.tracer.stats();
        registry.callback_counter(
            "obs_trace_exported_spans",
            "Spans exported to the collector.",
            move || stats.exported(),
        )?;
        let stats = self.tracer.stats();
        registry.callback_counter(
            "obs_trace_ended_spans",
            "Sampled spans that ended and went to the export pipeline: each is exported, dropped or pending.",
            move || stats.ended(),
        )?;
        Ok(())
    }

    /// Spans libraries open through `opentelemetry::global` join obs's
    /// traces (`otel-api`).
    fn install_global(&self) -> Result<(), Error> {
        #[cfg(feature = "otel-api")]
        let _ = obs_trace::otel_api::install_global(&self.tracer);
        Ok(())
    }

    fn shutdown(&self, left: &dyn Fn() -> Duration, report: &mut ShutdownReport) {
        let r = self.tracer.shutdown(left());
        report.spans_exported = r.exported;
        report.spans_dropped = r.dropped;
        if r.timed_out {
            report.completed = false;
            report
                .problems
                .push("trace: export did not finish in time".into());
        }
    }
}

impl Config {
    /// Adjusts the tracing configuration.
    pub fn trace(mut self, f: impl FnOnce(obs_trace::Config) -> obs_trace::Config) -> Self {
        self.trace.config = f(self.trace.config);
        self
    }

    /// Which `tracing` spans become OpenTelemetry spans (`target=level`
    /// syntax, as `OBS_TRACE_FILTER`); a bad directive is a typed error.
    pub fn trace_filter(mut self, directive: &str) -> Result<Self, Error> {
        self.trace.filter = parse_targets(directive)?;
        Ok(self)
    }
}

impl Obs {
    /// The tracer.
    pub fn tracer(&self) -> &obs_trace::TracerProvider {
        &self.inner.trace.tracer
    }
}

/// The server span (extracting `traceparent`) and the client span
/// (injecting it), with this instance's propagators.
#[cfg(feature = "http")]
pub(crate) mod http {
    use super::State;
    use crate::http::HttpPillar;

    pub(crate) type Server = obs_trace::tower::TraceServerLayer;
    pub(crate) type Client = obs_trace::tower::TraceClientLayer;

    impl HttpPillar for State {
        type Server = Server;
        type Client = Client;
        fn server_layer(&self) -> Self::Server {
            obs_trace::tower::TraceServerLayer::new().propagators(self.tracer.propagators())
        }
        fn standalone_server() -> Self::Server {
            obs_trace::tower::TraceServerLayer::new()
        }
        fn client_layer(&self) -> Self::Client {
            obs_trace::tower::TraceClientLayer::new().propagators(self.tracer.propagators())
        }
        fn standalone_client() -> Self::Client {
            obs_trace::tower::TraceClientLayer::new()
        }
    }
}
