//! The crate's error type.

use std::time::Duration;

/// Errors of `obs-errors`: bad configuration, a worker that could not start,
/// a flush that did not finish in time, a sink that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An environment variable (or looked-up key) held an unusable value.
    #[error("invalid value {value:?} for {var}: {reason}")]
    Env {
        /// The variable's name.
        var: String,
        /// The value it held.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration value was out of range.
    #[error("invalid {setting} {value}: {reason}")]
    Config {
        /// Which setting.
        setting: &'static str,
        /// The offending value, formatted.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The resource could not be read from the environment.
    #[error("invalid resource: {0}")]
    Resource(#[from] obs_core::Error),
    /// The delivery thread could not be started.
    #[error("cannot start the obs-errors delivery thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// A flush did not complete within its time budget; `pending` reports
    /// were still queued or held when it gave up.
    #[error("flush did not finish within {timeout:?}; {pending} reports still pending")]
    FlushTimeout {
        /// The budget that ran out.
        timeout: Duration,
        /// Reports still queued or held for deduplication.
        pending: usize,
    },
    /// The reporter was shut down; nothing more is delivered.
    #[error("the reporter is shut down")]
    Closed,
    /// A sink failed to deliver a report.
    #[error("sink {sink} failed: {reason}")]
    Sink {
        /// The sink's name.
        sink: String,
        /// Why it failed.
        reason: String,
    },
}
