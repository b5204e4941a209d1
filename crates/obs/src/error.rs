//! The facade's error: every pillar's error, plus what only setup can get wrong.

/// Errors of `obs`: a pillar's typed error (which names the variable or value
/// that was wrong), or a setup error of the facade itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Ids, carrier, resource or redaction (`obs-core`).
    #[error(transparent)]
    Core(#[from] obs_core::Error),
    /// Logging (`obs-log`).
    #[cfg(feature = "log")]
    #[error(transparent)]
    Log(#[from] obs_log::Error),
    /// Metrics (`obs-metrics`).
    #[cfg(feature = "metrics")]
    #[error(transparent)]
    Metrics(#[from] obs_metrics::Error),
    /// Tracing (`obs-trace`).
    #[cfg(feature = "trace")]
    #[error(transparent)]
    Trace(#[from] obs_trace::Error),
    /// Health checks (`obs-health`).
    #[cfg(feature = "health")]
    #[error(transparent)]
    Health(#[from] obs_health::Error),
    /// Correlation ids (`obs-correlate`).
    #[cfg(feature = "correlate")]
    #[error(transparent)]
    Correlate(#[from] obs_correlate::Error),
    /// Error monitoring (`obs-errors`).
    #[cfg(feature = "errors")]
    #[error(transparent)]
    Errors(#[from] obs_errors::Error),
    /// An `OBS_*` variable of the facade held a bad value.
    #[error("invalid value for environment variable {var}: {reason}")]
    Env {
        /// The variable's name.
        var: &'static str,
        /// What is wrong, with the value where it is not secret.
        reason: String,
    },
    /// `init` was asked to install the global `tracing` subscriber, but one is
    /// already installed (by an earlier `init` or by other code).
    #[error(
        "a global tracing subscriber is already installed; call obs::init once, before any other subscriber is set"
    )]
    SubscriberAlreadySet,
}
