#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use obs_core as core;
#[doc(inline)]
pub use obs_core::{
    Carrier, CorrelationId, Error, IdFormat, IdRecord, Redactor, Resource, Secret, SpanId,
    TraceFlags, TraceId, redact,
};

/// Structured JSON logging: see the `obs-log` crate.
#[cfg(feature = "log")]
#[cfg_attr(docsrs, doc(cfg(feature = "log")))]
#[doc(inline)]
pub use obs_log as log;

/// Prometheus metrics: see the `obs-metrics` crate.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[doc(inline)]
pub use obs_metrics as metrics;

/// OpenTelemetry tracing: see the `obs-trace` crate.
#[cfg(feature = "trace")]
#[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
#[doc(inline)]
pub use obs_trace as trace;

/// Health checks: see the `obs-health` crate.
#[cfg(feature = "health")]
#[cfg_attr(docsrs, doc(cfg(feature = "health")))]
#[doc(inline)]
pub use obs_health as health;

/// Correlation ids: see the `obs-correlate` crate.
#[cfg(feature = "correlate")]
#[cfg_attr(docsrs, doc(cfg(feature = "correlate")))]
#[doc(inline)]
pub use obs_correlate as correlate;

/// Error and panic monitoring: see the `obs-errors` crate.
#[cfg(feature = "errors")]
#[cfg_attr(docsrs, doc(cfg(feature = "errors")))]
#[doc(inline)]
pub use obs_errors as errors;
