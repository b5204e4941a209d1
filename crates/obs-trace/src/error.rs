//! The one error type of `obs-trace`.

/// Errors of `obs-trace`: configuration, environment variables and exporter
/// setup. Messages are lowercase and name the offending value and where it
/// came from.
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
    /// A configuration value set in code could not be used.
    #[error("invalid configuration {field}: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration asks for something this build leaves out.
    #[error("{what} needs the `{feature}` feature of obs-trace")]
    FeatureDisabled {
        /// What was asked for.
        what: String,
        /// The cargo feature that provides it.
        feature: &'static str,
    },
    /// An error from `obs-core` (resource attributes, ids, carrier limits).
    #[error(transparent)]
    Core(#[from] obs_core::Error),
    /// An export request failed (connection, timeout, non-2xx answer).
    #[error("span export failed: {0}")]
    Export(String),
    /// The collector accepted the request but rejected some spans (an OTLP
    /// partial success).
    #[error("the collector rejected {rejected} spans: {message}")]
    Rejected {
        /// How many spans were rejected.
        rejected: u64,
        /// The collector's explanation.
        message: String,
    },
    /// A TLS handshake with the collector failed at export time: the spans
    /// of that batch are dropped and counted
    /// ([`TraceStats::dropped_export_failed`](crate::TraceStats::dropped_export_failed)).
    #[error("span export failed: TLS handshake with {peer} failed: {reason}")]
    Tls {
        /// The collector, as `host:port`.
        peer: String,
        /// What went wrong.
        reason: crate::tls::TlsFailure,
    },
    /// A CA certificate, client certificate or client key file could not
    /// be used; found when the exporter is built.
    #[error("cannot use the {what} file {}: {reason}", path.display())]
    TlsFile {
        /// `CA certificate`, `client certificate` or `client key`.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The exporter thread could not be started.
    #[error("cannot start the span exporter thread: {0}")]
    Thread(String),
}

impl From<obs_core::otlp::Error> for Error {
    /// Variant by variant: the OTLP settings and transport speak of items,
    /// obs-trace of spans.
    fn from(e: obs_core::otlp::Error) -> Self {
        use obs_core::otlp::Error as E;
        match e {
            E::Env { var, value, reason } => Error::Env { var, value, reason },
            E::Config { field, reason } => Error::Config { field, reason },
            E::FeatureDisabled { what, feature } => Error::FeatureDisabled { what, feature },
            E::Export(m) => Error::Export(m),
            E::Rejected { rejected, message } => Error::Rejected { rejected, message },
            E::Tls { peer, reason } => Error::Tls { peer, reason },
            E::TlsFile { what, path, reason } => Error::TlsFile { what, path, reason },
            other => Error::Export(other.to_string()),
        }
    }
}
