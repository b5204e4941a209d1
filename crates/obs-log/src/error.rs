//! The one error type of `obs-log`.

/// Errors of `obs-log`: bad configuration, bad environment values, bad
/// filter directives and I/O failures while setting up a sink. Messages name
/// the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An environment variable held a value that could not be used.
    #[error("invalid value {value:?} for environment variable {var}: {reason}")]
    Env {
        /// The variable's name (`OBS_LOG`, `OBS_LOG_FORMAT`, ...).
        var: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A filter directive (`info,my_crate=debug`) did not parse.
    #[error("invalid log filter directive {directive}: {reason}")]
    Directive {
        /// The offending directive: a quoted preview of at most 64 bytes
        /// (a directive may come from an HTTP request body).
        directive: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A schema name was not one of the presets.
    #[error("unknown log schema {0:?}: expected one of native, otel, ecs, gcp, datadog")]
    Schema(String),
    /// A format name was not one of the formats.
    #[error("unknown log format {0:?}: expected one of json, pretty, compact")]
    Format(String),
    /// A configuration value was out of range.
    #[error("invalid log configuration: {0}")]
    Config(String),
    /// The resource could not be read from the environment.
    #[error(transparent)]
    Core(#[from] obs_core::Error),
    /// Starting the writer thread or opening a sink failed.
    #[error("log sink i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The `log` bridge could not be installed (another logger is set).
    #[error("cannot install the log bridge: {0}")]
    LogBridge(String),
    /// The OTLP log exporter could not be built: a TLS file that cannot be
    /// used (named), an endpoint, header or protocol this build cannot use.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    #[error("otlp log export: {0}")]
    Otlp(obs_core::otlp::Error),
}
