//! One module per pillar, each compiled in or out as a whole by the `cfg` on
//! its `mod` line. A pillar module holds everything the facade does with
//! that pillar: its settings in [`Config`](crate::Config) and their builder
//! methods, its init from the settings and the shared resource and
//! redactor (pushing its `tracing` layer), its accessors on
//! [`Obs`](crate::Obs), its self-metrics, its process-wide hooks, its
//! shutdown step, and (with `http`) its part of the server and client tower
//! layers and of the admin router.
//!
//! A disabled pillar is [`Off`]: the same [`Pillar`] (and, with `http`,
//! `HttpPillar`) implementation with no settings, no layer, no hooks and
//! `Identity` tower layers, so the facade composes every pillar the same way
//! whatever the features.

use std::fmt;
use std::time::Duration;

use obs_core::{Redactor, Resource};
use tracing_subscriber::layer::Layer;

use crate::{Error, ShutdownReport};
pub(crate) use fused::Parts;

#[cfg(feature = "correlate")]
pub(crate) mod correlate;
#[cfg(feature = "errors")]
pub(crate) mod errors;
pub(crate) mod fused;
#[cfg(feature = "health")]
pub(crate) mod health;
#[cfg(feature = "log")]
pub(crate) mod log;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;
#[cfg(feature = "trace")]
pub(crate) mod trace;

/// The modules of the disabled pillars: each is [`off`].
#[cfg(not(feature = "correlate"))]
pub(crate) use off as correlate;
#[cfg(not(feature = "errors"))]
pub(crate) use off as errors;
#[cfg(not(feature = "health"))]
pub(crate) use off as health;
#[cfg(not(feature = "log"))]
pub(crate) use off as log;
#[cfg(not(feature = "metrics"))]
pub(crate) use off as metrics;
#[cfg(not(feature = "trace"))]
pub(crate) use off as trace;

/// A pillar's `tracing` layer, boxed so that any set of features gives one type.
pub(crate) type Boxed<S> = Box<dyn Layer<S> + Send + Sync + 'static>;

/// How settings are read: `std::env::var` or a caller's lookup.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What every pillar is built with besides its own settings.
pub(crate) struct Shared<'a> {
    pub(crate) resource: &'a Resource,
    pub(crate) redactor: &'a Redactor,
}

/// A pillar's part of [`Config`](crate::Config).
pub(crate) trait Settings: Sized + Send + 'static {
    /// Read from the environment (or a lookup); a bad value is a typed error.
    fn from_lookup(lookup: Lookup<'_>) -> Result<Self, Error>;
    /// The embedded defaults.
    fn defaults() -> Self;
    /// Its fields in `Config`'s `Debug` output.
    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>);
}

/// A running pillar, held by the [`Obs`](crate::Obs) handle.
pub(crate) trait Pillar: Sized + Send + Sync + 'static {
    type Settings: Settings;

    /// Builds the pillar, adding its `tracing` layer and the filter that
    /// decides what it sees to the facade's fused layer.
    fn init(
        settings: Self::Settings,
        shared: &Shared<'_>,
        layers: &mut Parts,
    ) -> Result<Self, Error>;

    /// Registers the pillar's self-metrics (its stats handle) on the registry.
    #[cfg(feature = "metrics")]
    fn publish(&self, _registry: &obs_metrics::Registry) -> Result<(), Error> {
        Ok(())
    }

    /// Starts what runs in the background once the handle exists.
    fn start(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Installs the pillar's panic hook.
    fn install_panic_hook(&self) {}

    /// Whether every line this pillar writes inside a span carries that
    /// span's fields as its own (obs-log's JSON lines); the server stack's
    /// access line may then leave the request's head to the server span.
    #[cfg(feature = "http")]
    fn lines_carry_span_fields(&self) -> bool {
        false
    }

    /// Installs the pillar's other process-wide parts.
    fn install_global(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Flushes and stops the pillar within the time `left`, recording the
    /// outcome.
    fn shutdown(&self, _left: &dyn Fn() -> Duration, _report: &mut ShutdownReport) {}
}

/// The stand-in for a disabled pillar.
#[allow(dead_code, reason = "stands in only for the disabled pillars")]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Off;

impl Settings for Off {
    fn from_lookup(_: Lookup<'_>) -> Result<Self, Error> {
        Ok(Off)
    }
    fn defaults() -> Self {
        Off
    }
    fn debug_fields(&self, _: &mut fmt::DebugStruct<'_, '_>) {}
}

impl Pillar for Off {
    type Settings = Off;
    fn init(_: Off, _: &Shared<'_>, _: &mut Parts) -> Result<Self, Error> {
        Ok(Off)
    }
}

/// The module a disabled pillar stands for: its settings and its running
/// state are both [`Off`].
#[allow(
    dead_code,
    unused_imports,
    reason = "stands in only for the disabled pillars"
)]
pub(crate) mod off {
    pub(crate) use super::Off as Settings;
    pub(crate) use super::Off as State;

    /// A disabled pillar's part of the server and client stacks.
    #[cfg(feature = "http")]
    pub(crate) mod http {
        pub(crate) type Server = crate::http::NoLayer;
        pub(crate) type Client = crate::http::NoLayer;
    }
}
