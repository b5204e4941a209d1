//! [`Config`]: every enabled pillar's configuration, read from the environment
//! in one call, with one place for the service's identity.

use std::fmt;

use obs_core::{Redactor, Resource, Secret};

use crate::Error;
use crate::pillar::{Lookup, Settings, correlate, errors, health, log, metrics, trace};

/// `OBS_ADMIN_TOKEN`: bearer token required by the admin router's mutating
/// endpoints (`PUT /loglevel`). Unset: those endpoints refuse every change
/// with `403 Forbidden` (reads stay open).
pub const ENV_ADMIN_TOKEN: &str = "OBS_ADMIN_TOKEN";
/// `OBS_METRICS_CARDINALITY_LIMIT`: label sets kept per metric before new
/// ones go to the overflow series.
pub const ENV_CARDINALITY_LIMIT: &str = "OBS_METRICS_CARDINALITY_LIMIT";
/// `OBS_REDACT_NAMES`: extra sensitive field, header, attribute and label
/// names, comma-separated (`ssn,card-number`), added to the built-in ones.
/// Whatever a name rule matches is hidden on every path out: log lines,
/// exported spans, error reports and breadcrumbs, metric label values.
pub const ENV_REDACT_NAMES: &str = "OBS_REDACT_NAMES";
/// `OBS_TRACE_FILTER`: which `tracing` spans become OpenTelemetry spans, in
/// `target=level` syntax (default `info`). Libraries open many DEBUG and
/// TRACE spans (hyper, h2, tower); recording them costs throughput and
/// buries the request's own spans.
pub const ENV_TRACE_FILTER: &str = "OBS_TRACE_FILTER";

/// Configuration of every enabled pillar.
///
/// [`Config::from_env`] reads the standard `OTEL_*` variables and obs's
/// `OBS_*` ones; with nothing set it is the embedded default: JSON logs to
/// stdout at `info`, metrics with the process collector, tracing on with no
/// exporter, correlation ids as UUID v4, panics captured. The builder methods
/// adjust it in code.
///
/// ```
/// let config = obs::Config::from_lookup(|k| match k {
///     "OBS_LOG" => Some("warn,checkout=debug".into()),
///     _ => None,
/// })?
/// .service("checkout")
/// .version("1.4.2");
/// assert_eq!(config.resource().service_name(), "checkout");
/// # Ok::<(), obs::Error>(())
/// ```
pub struct Config {
    pub(crate) resource: Resource,
    pub(crate) service_from_env: bool,
    pub(crate) install_global: bool,
    pub(crate) admin_token: Option<Secret<String>>,
    pub(crate) redactor: Redactor,
    /// Each pillar's settings (`Off` for a disabled one), with their
    /// builder methods in the pillar's module.
    pub(crate) log: log::Settings,
    pub(crate) trace: trace::Settings,
    pub(crate) correlate: correlate::Settings,
    pub(crate) errors: errors::Settings,
    pub(crate) metrics: metrics::Settings,
    pub(crate) health: health::Settings,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Config");
        d.field("resource", &self.resource)
            .field("install_global", &self.install_global)
            .field("admin_token", &self.admin_token)
            .field("redactor", &self.redactor);
        self.log.debug_fields(&mut d);
        self.trace.debug_fields(&mut d);
        self.correlate.debug_fields(&mut d);
        self.errors.debug_fields(&mut d);
        self.metrics.debug_fields(&mut d);
        self.health.debug_fields(&mut d);
        d.finish()
    }
}

impl Config {
    /// The embedded defaults, ignoring the environment.
    pub fn new() -> Self {
        Self::from_lookup(|_| None).unwrap_or_else(|_| unreachable_defaults())
    }

    /// Reads the process environment (`OTEL_*` and `OBS_*`). A bad value is a
    /// typed error naming the variable.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env) with any lookup function (tests,
    /// config files).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let lookup: Lookup<'_> = &lookup;
        let resource = Resource::from_lookup(lookup)?;
        let service_from_env = lookup(obs_core::names::env::OTEL_SERVICE_NAME).is_some()
            || lookup(obs_core::names::env::OTEL_RESOURCE_ATTRIBUTES)
                .is_some_and(|a| a.contains("service.name="));
        let admin_token = match lookup(ENV_ADMIN_TOKEN) {
            Some(t) if t.trim().is_empty() => {
                return Err(Error::Env {
                    var: ENV_ADMIN_TOKEN,
                    reason: "the token is empty".into(),
                });
            }
            Some(t) => Some(Secret::new(t.trim().to_owned())),
            None => None,
        };
        let mut redactor = Redactor::new();
        if let Some(names) = lookup(ENV_REDACT_NAMES) {
            for n in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                redactor.add_name(n);
            }
        }
        Ok(Self {
            resource,
            service_from_env,
            install_global: true,
            admin_token,
            redactor,
            log: Settings::from_lookup(lookup)?,
            trace: Settings::from_lookup(lookup)?,
            correlate: Settings::from_lookup(lookup)?,
            errors: Settings::from_lookup(lookup)?,
            metrics: Settings::from_lookup(lookup)?,
            health: Settings::from_lookup(lookup)?,
        })
    }

    /// The service name. The deployment's `OTEL_SERVICE_NAME` (or
    /// `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) wins over the name in
    /// code, so operators can rename a service without a rebuild.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        if !self.service_from_env {
            self.resource = self.resource.with_service_name(name);
        }
        self
    }

    /// `service.version` (e.g. `env!("CARGO_PKG_VERSION")`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        if self.resource.service_version().is_none() {
            self.resource = self.resource.with_version(version);
        }
        self
    }

    /// `deployment.environment.name` unless the environment set one.
    pub fn environment(mut self, env: impl Into<String>) -> Self {
        if self.resource.environment().is_none() {
            self.resource = self.resource.with_environment(env);
        }
        self
    }

    /// The resource every pillar stamps on its output.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Whether [`init`](crate::init) installs the global `tracing` subscriber
    /// and the panic hooks (default `true`). Turn it off to compose the
    /// layers yourself from the returned handle.
    pub fn install_global(mut self, on: bool) -> Self {
        self.install_global = on;
        self
    }

    /// Requires `Authorization: Bearer <token>` on the admin router's
    /// mutating endpoints.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(Secret::new(token.into()));
        self
    }

    /// Adds sensitive names (field, header, attribute, label) to the one
    /// redaction rule set every pillar applies.
    pub fn redact_names<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        for n in names {
            self.redactor.add_name(n.as_ref());
        }
        self
    }

    /// Adds a value pattern (`regex-lite` syntax) to the one redaction rule
    /// set; a bad pattern is a typed error naming it.
    pub fn redact_pattern(mut self, pattern: &str) -> Result<Self, Error> {
        self.redactor.add_pattern(pattern)?;
        Ok(self)
    }

    /// Replaces the redaction rules every pillar applies — log lines and the
    /// access line, exported span names, attributes and events, error
    /// reports, breadcrumbs and request context, metric label values — with
    /// `redactor` (default: [`Redactor::new`], the built-in rules).
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// The redaction rules in force.
    pub fn redaction_rules(&self) -> &Redactor {
        &self.redactor
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

/// The defaults cannot fail to parse (there is nothing to parse); this keeps
/// `Config::new` panic-free without hiding an error, because no lookup
/// happens.
fn unreachable_defaults() -> Config {
    Config {
        resource: Resource::default(),
        service_from_env: false,
        install_global: true,
        admin_token: None,
        redactor: Redactor::new(),
        log: Settings::defaults(),
        trace: Settings::defaults(),
        correlate: Settings::defaults(),
        errors: Settings::defaults(),
        metrics: Settings::defaults(),
        health: Settings::defaults(),
    }
}

/// A number from the environment; a bad one is a typed error naming the
/// variable.
#[cfg_attr(
    not(feature = "metrics"),
    allow(dead_code, reason = "used by the metrics settings")
)]
pub(crate) fn parse_var<T: std::str::FromStr>(
    lookup: Lookup<'_>,
    var: &'static str,
) -> Result<Option<T>, Error>
where
    T::Err: fmt::Display,
{
    match lookup(var) {
        None => Ok(None),
        Some(v) => v.trim().parse::<T>().map(Some).map_err(|e| Error::Env {
            var,
            reason: format!(
                "{:?} is not a valid number: {e}",
                v.chars().take(64).collect::<String>()
            ),
        }),
    }
}
