//! The one error type of `obs-health`.

use std::time::Duration;

/// Errors of `obs-health`: bad check names, bad check parameters and bad
/// configuration are reported when the registry or a check is built, never
/// at probe time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A check name is empty, too long or holds a character outside
    /// `[A-Za-z0-9._-]` (it becomes a URL path segment and a JSON key).
    #[error("invalid check name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name, escaped.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Two checks were registered under the same name.
    #[error("duplicate check name {0:?}")]
    DuplicateName(String),
    /// The name is reserved for a built-in check.
    #[error("check name {0:?} is reserved for the built-in check")]
    ReservedName(String),
    /// A check or the registry was given a zero duration where a positive
    /// one is needed.
    #[error("invalid {what} for check {name:?}: {value:?} (must be greater than zero)")]
    ZeroDuration {
        /// The check (or `"*"` for a registry-wide default).
        name: String,
        /// Which setting (`timeout`, `interval`, `max age`).
        what: &'static str,
        /// The rejected value.
        value: Duration,
    },
    /// Warn and fail thresholds are in the wrong order.
    #[error("invalid thresholds for check {name:?}: {reason} (warn {warn}, fail {fail})")]
    Thresholds {
        /// The check.
        name: String,
        /// Which order is expected.
        reason: &'static str,
        /// The warn threshold.
        warn: u64,
        /// The fail threshold.
        fail: u64,
    },
    /// A TCP address is not `host:port`.
    #[error("invalid address {0:?}: expected host:port")]
    InvalidAddress(String),
    /// A URL for the HTTP GET check could not be parsed or is not `http://`.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The rejected URL.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An `OBS_HEALTH_*` environment variable has a bad value.
    #[error("invalid {var}={value:?}: expected {expected}")]
    Env {
        /// The variable.
        var: &'static str,
        /// The rejected value, escaped and truncated.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Background polling was started outside a Tokio runtime.
    #[error("background polling needs a tokio runtime: {0}")]
    NoRuntime(String),
}
