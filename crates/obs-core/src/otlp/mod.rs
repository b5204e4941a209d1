//! OTLP export plumbing that obs-trace's span exporter and obs-log's log
//! exporter share (feature `otlp`): the per-signal settings read from the
//! standard `OTEL_EXPORTER_OTLP_*` variables, TLS settings, the protobuf
//! wire primitives of the hand-written encoders, and the
//! [`Transport`] that sends an encoded export request over OTLP/HTTP
//! (`otlp-http`) or OTLP/gRPC (`otlp-grpc`), with TLS (`otlp-tls`: rustls,
//! `ring` provider, no OpenSSL) and gzip (`otlp-gzip`).
//!
//! One owner for the transport: both pillars reach the collector through
//! the same code, so TLS, compression, timeouts and typed failures behave
//! alike for spans and log records. Without these features `obs-core`
//! keeps its small default dependency set.
//!
//! ```
//! use obs_core::otlp::{ExporterConfig, Protocol, Signal};
//! let cfg = ExporterConfig::from_lookup(Signal::Logs, |k| match k {
//!     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".into()),
//!     "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION" => Some("none".into()),
//!     _ => None,
//! })?
//! .expect("an endpoint is set");
//! assert_eq!(cfg.endpoint, "http://collector:4318/v1/logs");
//! assert_eq!(cfg.protocol, Protocol::HttpProtobuf);
//! # Ok::<(), obs_core::otlp::Error>(())
//! ```

use std::path::PathBuf;

/// The telemetry signal whose per-signal variables are read first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `OTEL_EXPORTER_OTLP_TRACES_*`.
    Traces,
    /// `OTEL_EXPORTER_OTLP_LOGS_*`.
    Logs,
    /// `OTEL_EXPORTER_OTLP_METRICS_*`.
    Metrics,
}

/// One setting, by its generic and per-signal variable names.
#[derive(Clone, Copy)]
pub(crate) struct Var {
    pub(crate) generic: &'static str,
    traces: &'static str,
    logs: &'static str,
    metrics: &'static str,
}

impl Var {
    pub(crate) fn per_signal(self, signal: Signal) -> &'static str {
        match signal {
            Signal::Traces => self.traces,
            Signal::Logs => self.logs,
            Signal::Metrics => self.metrics,
        }
    }
}

macro_rules! var {
    ($prefix:literal, $suffix:literal) => {
        Var {
            generic: concat!($prefix, "_", $suffix),
            traces: concat!($prefix, "_TRACES_", $suffix),
            logs: concat!($prefix, "_LOGS_", $suffix),
            metrics: concat!($prefix, "_METRICS_", $suffix),
        }
    };
}

mod settings;
pub mod tls;
pub mod wire;

#[cfg(all(
    feature = "otlp-tls",
    any(feature = "otlp-http", feature = "otlp-grpc")
))]
mod connect;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
mod transport;

pub use settings::{
    Compression, DEFAULT_TIMEOUT, ExporterConfig, Protocol, enum_value, parse_millis,
};
pub use tls::{TlsConfig, TlsFailure, TlsRoots};
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub use transport::Transport;

impl Signal {
    /// The path of the signal's OTLP/HTTP endpoint under a base URL
    /// (`/v1/traces`, `/v1/logs`, `/v1/metrics`).
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        }
    }

    /// The gRPC method of the signal's collector service.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }

    /// What the signal's items are called in messages (`spans`, `log
    /// records`, `data points`).
    pub fn items(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Logs => "log records",
            Signal::Metrics => "data points",
        }
    }
}

/// Errors of the OTLP settings and transport. The pillars turn them into
/// their own error types variant by variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An environment variable held a value that could not be used.
    #[error("invalid value for environment variable {var}: {value:?}: {reason}")]
    Env {
        /// The variable's name.
        var: &'static str,
        /// The offending value (never a header value, which may be secret).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting given in code could not be used.
    #[error("invalid configuration {field}: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The settings ask for something this build leaves out.
    #[error("{what} needs the `{feature}` feature")]
    FeatureDisabled {
        /// What was asked for.
        what: String,
        /// The cargo feature (of the pillar) that provides it.
        feature: &'static str,
    },
    /// An export request failed (connection, timeout, non-2xx answer).
    #[error("{0}")]
    Export(String),
    /// The collector accepted the request but rejected some items (an OTLP
    /// partial success).
    #[error("the collector rejected {rejected} items: {message}")]
    Rejected {
        /// How many items were rejected.
        rejected: u64,
        /// The collector's explanation.
        message: String,
    },
    /// A TLS handshake with the collector failed at export time.
    #[error("TLS handshake with {peer} failed: {reason}")]
    Tls {
        /// The collector, as `host:port`.
        peer: String,
        /// What went wrong.
        reason: TlsFailure,
    },
    /// A CA certificate, client certificate or client key file could not
    /// be used; found when the transport is built.
    #[error("cannot use the {what} file {}: {reason}", path.display())]
    TlsFile {
        /// `CA certificate`, `client certificate` or `client key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Gzips `body` (the `otlp-gzip` feature; default compression level).
#[cfg(feature = "otlp-gzip")]
pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}
