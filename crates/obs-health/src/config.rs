//! Environment configuration (the environment contract): `OBS_HEALTH_*` variables.

use std::time::Duration;

use crate::error::Error;

/// `OBS_HEALTH_TIMEOUT`: default per-check timeout (`500ms`, `2s`, `1m`).
pub const ENV_TIMEOUT: &str = "OBS_HEALTH_TIMEOUT";
/// `OBS_HEALTH_POLL_INTERVAL`: default background poll interval.
pub const ENV_POLL_INTERVAL: &str = "OBS_HEALTH_POLL_INTERVAL";
/// `OBS_HEALTH_CACHED`: `true` to serve probes from background polling.
pub const ENV_CACHED: &str = "OBS_HEALTH_CACHED";
/// `OBS_HEALTH_WITHHOLD_REASONS`: `true` to hide failure reasons over HTTP.
pub const ENV_WITHHOLD_REASONS: &str = "OBS_HEALTH_WITHHOLD_REASONS";

/// Settings read from the environment; unset variables keep the defaults.
///
/// Apply with [`HealthBuilder::config`](crate::HealthBuilder::config). The
/// builder cannot start background tasks, so [`cached`](Config::cached) is
/// for the caller: start [`Health::spawn_poller`](crate::Health::spawn_poller)
/// when it is true (the facade does).
///
/// ```
/// use std::time::Duration;
/// use obs_health::Config;
/// let env = |k: &str| match k {
///     "OBS_HEALTH_TIMEOUT" => Some("750ms".to_owned()),
///     "OBS_HEALTH_CACHED" => Some("true".to_owned()),
///     _ => None,
/// };
/// let cfg = Config::from_lookup(env)?;
/// assert_eq!(cfg.default_timeout, Some(Duration::from_millis(750)));
/// assert!(cfg.cached);
///
/// let bad = Config::from_lookup(|k| (k == "OBS_HEALTH_POLL_INTERVAL").then(|| "soon".to_owned()));
/// assert_eq!(
///     bad.unwrap_err().to_string(),
///     "invalid OBS_HEALTH_POLL_INTERVAL=\"soon\": expected a positive duration such as 500ms, 10s or 1m"
/// );
/// # Ok::<(), obs_health::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// `OBS_HEALTH_TIMEOUT`.
    pub default_timeout: Option<Duration>,
    /// `OBS_HEALTH_POLL_INTERVAL`.
    pub poll_interval: Option<Duration>,
    /// `OBS_HEALTH_CACHED` (default false).
    pub cached: bool,
    /// `OBS_HEALTH_WITHHOLD_REASONS` (default false).
    pub withhold_reasons: bool,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `lookup` (for tests and custom sources).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut cfg = Config::default();
        if let Some(v) = lookup(ENV_TIMEOUT) {
            cfg.default_timeout = Some(parse_duration(ENV_TIMEOUT, &v)?);
        }
        if let Some(v) = lookup(ENV_POLL_INTERVAL) {
            cfg.poll_interval = Some(parse_duration(ENV_POLL_INTERVAL, &v)?);
        }
        if let Some(v) = lookup(ENV_CACHED) {
            cfg.cached = parse_bool(ENV_CACHED, &v)?;
        }
        if let Some(v) = lookup(ENV_WITHHOLD_REASONS) {
            cfg.withhold_reasons = parse_bool(ENV_WITHHOLD_REASONS, &v)?;
        }
        Ok(cfg)
    }
}

fn env_error(var: &'static str, value: &str, expected: &'static str) -> Error {
    Error::Env {
        var,
        value: value.escape_debug().take(80).collect(),
        expected,
    }
}

fn parse_bool(var: &'static str, value: &str) -> Result<bool, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(env_error(var, value, "true or false")),
    }
}

fn parse_duration(var: &'static str, value: &str) -> Result<Duration, Error> {
    const EXPECTED: &str = "a positive duration such as 500ms, 10s or 1m";
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().map_err(|_| env_error(var, value, EXPECTED))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(env_error(var, value, EXPECTED)),
    };
    if d.is_zero() {
        return Err(env_error(var, value, EXPECTED));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_bools() {
        assert_eq!(parse_duration("X", "250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("X", " 3 "), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("X", "2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "0s", "-1s", "1h", "1.5s", "ms"] {
            assert!(parse_duration("X", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_bool("X", "TRUE"), Ok(true));
        assert_eq!(parse_bool("X", "off"), Ok(false));
        assert_eq!(
            parse_bool("OBS_HEALTH_CACHED", "maybe")
                .unwrap_err()
                .to_string(),
            "invalid OBS_HEALTH_CACHED=\"maybe\": expected true or false"
        );
    }

    #[test]
    fn unset_keeps_defaults() {
        assert_eq!(Config::from_lookup(|_| None), Ok(Config::default()));
    }
}
