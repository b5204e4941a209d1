#![doc = include_str!("../README.md")]
// On docs.rs (nightly) `doc_cfg` marks every feature-gated item by itself
// (`doc(auto_cfg)`, on by default), so items carry no `doc(cfg(..))` of their own.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The repository README's examples compile (and stay true) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct RepositoryReadme;

mod config;
mod error;
mod instance;
mod pillar;

#[cfg(feature = "http")]
pub mod admin;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;
#[cfg(all(feature = "metrics", feature = "trace"))]
pub mod job;
#[cfg(all(feature = "metrics", feature = "trace"))]
pub mod pipeline;
#[cfg(feature = "reqwest")]
pub mod reqwest;

pub use config::{
    Config, ENV_ADMIN_TOKEN, ENV_CARDINALITY_LIMIT, ENV_REDACT_NAMES, ENV_TRACE_FILTER,
};
pub use error::Error;
pub use instance::{Builder, Obs, ShutdownReport, builder, init, layers};

#[doc(inline)]
pub use obs_core as core;
pub use obs_core::{
    Carrier, CorrelationId, IdFormat, IdRecord, Redactor, Resource, Secret, SpanId, TraceFlags,
    TraceId, redact,
};

/// Structured JSON logging: see the `obs-log` crate.
#[cfg(feature = "log")]
#[doc(inline)]
pub use obs_log as log;

/// Prometheus metrics: see the `obs-metrics` crate.
#[cfg(feature = "metrics")]
#[doc(inline)]
pub use obs_metrics as metrics;

/// OpenTelemetry tracing: see the `obs-trace` crate.
#[cfg(feature = "trace")]
#[doc(inline)]
pub use obs_trace as trace;

/// Health checks: see the `obs-health` crate.
#[cfg(feature = "health")]
#[doc(inline)]
pub use obs_health as health;

/// Correlation ids: see the `obs-correlate` crate.
#[cfg(feature = "correlate")]
#[doc(inline)]
pub use obs_correlate as correlate;

/// Error and panic monitoring: see the `obs-errors` crate.
#[cfg(feature = "errors")]
#[doc(inline)]
pub use obs_errors as errors;
