//! The health pillar (`obs-health`): registered checks, the health registry
//! and its background poller, the checks' self-metrics, readiness failing
//! first at shutdown, and the probe routes of the admin router.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use super::{Lookup, Parts, Pillar, Shared};
use crate::instance::lock;
use crate::{Config, Error, Obs, ShutdownReport};

pub(crate) struct Settings {
    checks: Vec<obs_health::Check>,
    config: obs_health::Config,
}

impl super::Settings for Settings {
    fn from_lookup(lookup: Lookup<'_>) -> Result<Self, Error> {
        Ok(Self {
            checks: Vec::new(),
            config: obs_health::Config::from_lookup(lookup)?,
        })
    }
    fn defaults() -> Self {
        Self {
            checks: Vec::new(),
            config: obs_health::Config::default(),
        }
    }
    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("checks", &self.checks.len())
            .field("health", &self.config);
    }
}

pub(crate) struct State {
    health: obs_health::Health,
    cached: bool,
    poller: Mutex<Option<obs_health::Poller>>,
}

impl Pillar for State {
    type Settings = Settings;

    fn init(settings: Settings, shared: &Shared<'_>, _: &mut Parts) -> Result<Self, Error> {
        let mut b = obs_health::Health::builder()
            .resource(shared.resource)
            .redactor(shared.redactor.clone())
            .config(&settings.config);
        for c in settings.checks {
            b = b.check(c);
        }
        Ok(Self {
            health: b.build()?,
            cached: settings.config.cached,
            poller: Mutex::new(None),
        })
    }

    #[cfg(feature = "metrics")]
    fn publish(&self, registry: &obs_metrics::Registry) -> Result<(), Error> {
        use obs_core::names::metric;
        let stats = self.health.stats();
        registry.callback_gauge_family(
            metric::HEALTH_CHECK_STATUS,
            "Latest status of each health check: 1 pass, 0.5 warn, 0 fail.",
            ["check"],
            move |e| {
                for c in stats.checks() {
                    if let Some(v) = c.status_value() {
                        e.emit([&*c.name], v);
                    }
                }
            },
        )?;
        let stats = self.health.stats();
        registry.callback_gauge_family(
            metric::HEALTH_CHECK_DURATION,
            "Duration of the latest run of each health check.",
            ["check"],
            move |e| {
                for c in stats.checks() {
                    if let Some(v) = c.duration_seconds() {
                        e.emit([&*c.name], v);
                    }
                }
            },
        )?;
        Ok(())
    }

    /// Cached mode needs a runtime for its poller; outside one it is a typed
    /// error rather than probes that silently run every check.
    fn start(&self) -> Result<(), Error> {
        if self.cached {
            *lock(&self.poller) = Some(self.health.spawn_poller()?);
        }
        Ok(())
    }

    /// Readiness fails first.
    fn shutdown(&self, _: &dyn Fn() -> Duration, _: &mut ShutdownReport) {
        self.health.begin_shutdown();
        if let Some(p) = lock(&self.poller).take() {
            drop(p);
        }
    }
}

impl Config {
    /// Registers a health check (add `.readiness()`, `.liveness()`, … on it).
    pub fn health_check(mut self, check: obs_health::Check) -> Self {
        self.health.checks.push(check);
        self
    }

    /// Runs health checks in the background every `interval` so probes
    /// answer from the cache and a slow dependency cannot stall them
    /// (`OBS_HEALTH_CACHED=true` with `OBS_HEALTH_POLL_INTERVAL`).
    pub fn health_poll_interval(mut self, interval: Duration) -> Self {
        self.health.config.poll_interval = Some(interval);
        self.health.config.cached = true;
        self
    }
}

impl Obs {
    /// The health registry.
    pub fn health(&self) -> &obs_health::Health {
        &self.inner.health.health
    }
}

/// The probe routes on the admin router.
#[cfg(feature = "http")]
impl crate::http::HttpPillar for State {
    type Server = crate::http::NoLayer;
    type Client = crate::http::NoLayer;
    fn server_layer(&self) -> Self::Server {
        crate::http::NoLayer::new()
    }
    fn standalone_server() -> Self::Server {
        crate::http::NoLayer::new()
    }
    fn client_layer(&self) -> Self::Client {
        crate::http::NoLayer::new()
    }
    fn standalone_client() -> Self::Client {
        crate::http::NoLayer::new()
    }
    fn admin_routes(&self, _: &Obs, router: axum::Router) -> axum::Router {
        router.merge(self.health.router())
    }
}
