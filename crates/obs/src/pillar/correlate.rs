//! The correlate pillar (`obs-correlate`): its settings, the stats of the
//! ids it takes and generates (self-metrics), and the server layer that
//! takes or generates the id and the client layer that forwards it.

use std::fmt;

use super::{Lookup, Parts, Pillar, Shared};
use crate::{Config, Error};

pub(crate) type Settings = obs_correlate::Config;

/// obs's correlation defaults differ from the crate's in one place: the id
/// is not stored in the request's extensions (two heap allocations per
/// request). `obs_correlate::from_request`, the `Correlation` extractor and
/// the client layer take the current id instead; `.correlate(|c|
/// c.request_extension(true))` turns the extension back on.
impl super::Settings for obs_correlate::Config {
    fn from_lookup(lookup: Lookup<'_>) -> Result<Self, Error> {
        Ok(obs_correlate::Config::from_lookup(lookup)?.request_extension(false))
    }
    fn defaults() -> Self {
        obs_correlate::Config::new().request_extension(false)
    }
    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("correlate", self);
    }
}

pub(crate) struct State {
    #[cfg_attr(
        not(feature = "http"),
        allow(dead_code, reason = "used by the HTTP layers")
    )]
    config: obs_correlate::Config,
    #[cfg_attr(
        not(any(feature = "http", feature = "metrics")),
        allow(dead_code, reason = "used by the HTTP layers and self-metrics")
    )]
    stats: obs_correlate::Stats,
}

impl Pillar for State {
    type Settings = Settings;

    fn init(settings: Settings, _: &Shared<'_>, _: &mut Parts) -> Result<Self, Error> {
        Ok(Self {
            config: settings,
            stats: obs_correlate::Stats::new(),
        })
    }

    #[cfg(feature = "metrics")]
    fn publish(&self, registry: &obs_metrics::Registry) -> Result<(), Error> {
        let stats = self.stats.clone();
        registry.callback_counter_family(
            "obs_correlation_ids",
            "Correlation ids of incoming requests, by where they came from.",
            ["source"],
            move |e| {
                e.emit(["incoming"], stats.incoming());
                e.emit(["traceparent"], stats.from_traceparent());
                e.emit(["generated"], stats.generated());
                e.emit(["replaced"], stats.replaced());
                e.emit(["untrusted"], stats.untrusted());
            },
        )?;
        let stats = self.stats.clone();
        registry.callback_counter_family(
            "obs_correlation_ids_rejected",
            "Incoming correlation ids rejected and replaced, by reason (secret_shaped: a credential sent as an id).",
            ["reason"],
            move |e| {
                for reason in obs_correlate::RejectReason::ALL {
                    e.emit([reason.as_str()], stats.rejected(reason));
                }
            },
        )?;
        Ok(())
    }
}

impl Config {
    /// Adjusts the correlation-id configuration.
    pub fn correlate(
        mut self,
        f: impl FnOnce(obs_correlate::Config) -> obs_correlate::Config,
    ) -> Self {
        self.correlate = f(self.correlate);
        self
    }
}

/// The server layer takes or generates the id with this instance's policy
/// and counts it; the client layer forwards the current one.
#[cfg(feature = "http")]
pub(crate) mod http {
    use super::State;
    use crate::http::HttpPillar;

    pub(crate) type Server = obs_correlate::CorrelationLayer;

    /// With the trace pillar the server stack runs this layer outside the
    /// trace layer, which opens the request's span and takes the id as it
    /// creates the span (no span lookup afterwards, no `request` span).
    fn outside_span(config: obs_correlate::Config) -> obs_correlate::Config {
        config.span_opened_inside(cfg!(feature = "trace"))
    }
    pub(crate) type Client = obs_correlate::PropagateLayer;

    impl HttpPillar for State {
        type Server = Server;
        type Client = Client;
        fn server_layer(&self) -> Self::Server {
            obs_correlate::CorrelationLayer::with_config(outside_span(self.config.clone()))
                .with_stats(self.stats.clone())
        }
        fn standalone_server() -> Self::Server {
            obs_correlate::CorrelationLayer::with_config(outside_span(
                <obs_correlate::Config as super::super::Settings>::defaults(),
            ))
        }
        fn client_layer(&self) -> Self::Client {
            obs_correlate::PropagateLayer::new()
        }
        fn standalone_client() -> Self::Client {
            obs_correlate::PropagateLayer::new()
        }
    }
}
