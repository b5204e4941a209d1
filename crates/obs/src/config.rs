//! [`Config`]: every enabled pillar's configuration, read from the environment
//! in one call, with one place for the service's identity.

use std::fmt;
#[cfg(feature = "health")]
use std::time::Duration;

use obs_core::{Redactor, Resource, Secret};

use crate::Error;

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
    #[cfg(feature = "log")]
    pub(crate) log: obs_log::Config,
    #[cfg(feature = "trace")]
    pub(crate) trace: obs_trace::Config,
    #[cfg(feature = "trace")]
    pub(crate) trace_filter: tracing_subscriber::filter::Targets,
    #[cfg(feature = "correlate")]
    pub(crate) correlate: obs_correlate::Config,
    #[cfg(feature = "errors")]
    pub(crate) errors: obs_errors::Config,
    #[cfg(feature = "errors")]
    pub(crate) error_sinks: Vec<Box<dyn obs_errors::Sink>>,
    #[cfg(feature = "errors")]
    pub(crate) error_log_lines: bool,
    #[cfg(feature = "sentry")]
    pub(crate) sentry: obs_errors::sentry::SentrySettings,
    #[cfg(feature = "metrics")]
    pub(crate) cardinality_limit: usize,
    #[cfg(feature = "health")]
    pub(crate) checks: Vec<obs_health::Check>,
    #[cfg(feature = "health")]
    pub(crate) health: obs_health::Config,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Config");
        d.field("resource", &self.resource)
            .field("install_global", &self.install_global)
            .field("admin_token", &self.admin_token)
            .field("redactor", &self.redactor);
        #[cfg(feature = "log")]
        d.field("log_filter", &self.log.directive());
        #[cfg(feature = "trace")]
        d.field("trace", &self.trace)
            .field("trace_filter", &self.trace_filter);
        #[cfg(feature = "correlate")]
        d.field("correlate", &self.correlate);
        #[cfg(feature = "errors")]
        d.field("errors", &self.errors)
            .field("error_sinks", &self.error_sinks.len())
            .field("error_log_lines", &self.error_log_lines);
        #[cfg(feature = "sentry")]
        d.field("sentry", &self.sentry);
        #[cfg(feature = "metrics")]
        d.field("cardinality_limit", &self.cardinality_limit);
        #[cfg(feature = "health")]
        d.field("checks", &self.checks.len())
            .field("health", &self.health);
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
        let resource = Resource::from_lookup(&lookup)?;
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
            #[cfg(feature = "log")]
            log: obs_log::Config::from_lookup(&lookup)?,
            #[cfg(feature = "trace")]
            trace: obs_trace::Config::from_lookup(&lookup)?,
            #[cfg(feature = "trace")]
            trace_filter: match lookup(ENV_TRACE_FILTER) {
                None => default_trace_filter(),
                Some(v) => parse_targets(&v).map_err(|reason| Error::Env {
                    var: ENV_TRACE_FILTER,
                    reason,
                })?,
            },
            #[cfg(feature = "correlate")]
            correlate: obs_correlate::Config::from_lookup(&lookup)?,
            #[cfg(feature = "errors")]
            errors: obs_errors::Config::from_lookup(&lookup)?,
            #[cfg(feature = "errors")]
            error_sinks: Vec::new(),
            #[cfg(feature = "errors")]
            error_log_lines: true,
            #[cfg(feature = "sentry")]
            sentry: obs_errors::sentry::SentrySettings::from_lookup(&lookup)?,
            #[cfg(feature = "metrics")]
            cardinality_limit: parse_var(&lookup, ENV_CARDINALITY_LIMIT)?
                .unwrap_or(obs_metrics::DEFAULT_CARDINALITY_LIMIT),
            #[cfg(feature = "health")]
            checks: Vec::new(),
            #[cfg(feature = "health")]
            health: obs_health::Config::from_lookup(&lookup)?,
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

    /// Adjusts the log configuration.
    #[cfg(feature = "log")]
    #[cfg_attr(docsrs, doc(cfg(feature = "log")))]
    pub fn log(mut self, f: impl FnOnce(obs_log::Config) -> obs_log::Config) -> Self {
        self.log = f(self.log);
        self
    }

    /// Adjusts the tracing configuration.
    #[cfg(feature = "trace")]
    #[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
    pub fn trace(mut self, f: impl FnOnce(obs_trace::Config) -> obs_trace::Config) -> Self {
        self.trace = f(self.trace);
        self
    }

    /// Which `tracing` spans become OpenTelemetry spans (`target=level`
    /// syntax, as `OBS_TRACE_FILTER`); a bad directive is a typed error.
    #[cfg(feature = "trace")]
    #[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
    pub fn trace_filter(mut self, directive: &str) -> Result<Self, Error> {
        self.trace_filter = parse_targets(directive).map_err(|reason| Error::Env {
            var: ENV_TRACE_FILTER,
            reason,
        })?;
        Ok(self)
    }

    /// Adjusts the correlation-id configuration.
    #[cfg(feature = "correlate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "correlate")))]
    pub fn correlate(
        mut self,
        f: impl FnOnce(obs_correlate::Config) -> obs_correlate::Config,
    ) -> Self {
        self.correlate = f(self.correlate);
        self
    }

    /// Adjusts the error-monitoring configuration.
    #[cfg(feature = "errors")]
    #[cfg_attr(docsrs, doc(cfg(feature = "errors")))]
    pub fn errors(mut self, f: impl FnOnce(obs_errors::Config) -> obs_errors::Config) -> Self {
        self.errors = f(self.errors);
        self
    }

    /// Adds a sink that error reports are delivered to (for example
    /// `obs::errors::sentry::SentrySink`, or `obs::errors::MemorySink` in
    /// tests). Reports reach sinks already scrubbed with the one redaction
    /// rule set.
    #[cfg(feature = "errors")]
    #[cfg_attr(docsrs, doc(cfg(feature = "errors")))]
    pub fn error_sink(mut self, sink: impl obs_errors::Sink) -> Self {
        self.error_sinks.push(Box::new(sink));
        self
    }

    /// Whether every error report is also written as one `ERROR` log line
    /// (target `obs_errors::report`, with the fingerprint, count, stack,
    /// trace id and correlation id). On by default; turn it off only when
    /// another sink is the record of errors.
    #[cfg(feature = "errors")]
    #[cfg_attr(docsrs, doc(cfg(feature = "errors")))]
    pub fn error_log_lines(mut self, on: bool) -> Self {
        self.error_log_lines = on;
        self
    }

    /// The Sentry settings in force: read from `SENTRY_DSN`,
    /// `SENTRY_ENVIRONMENT`, `SENTRY_RELEASE` and `SENTRY_SAMPLE_RATE` by
    /// [`from_env`](Self::from_env); replace them here (for example from a
    /// config file). `init` sends error reports to Sentry when they hold a
    /// DSN.
    #[cfg(feature = "sentry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentry")))]
    pub fn sentry(mut self, settings: obs_errors::sentry::SentrySettings) -> Self {
        self.sentry = settings;
        self
    }

    /// Label sets kept per metric before new ones go to the overflow series.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit;
        self
    }

    /// Registers a health check (add `.readiness()`, `.liveness()`, … on it).
    #[cfg(feature = "health")]
    #[cfg_attr(docsrs, doc(cfg(feature = "health")))]
    pub fn health_check(mut self, check: obs_health::Check) -> Self {
        self.checks.push(check);
        self
    }

    /// Runs health checks in the background every `interval` so probes
    /// answer from the cache and a slow dependency cannot stall them
    /// (`OBS_HEALTH_CACHED=true` with `OBS_HEALTH_POLL_INTERVAL`).
    #[cfg(feature = "health")]
    #[cfg_attr(docsrs, doc(cfg(feature = "health")))]
    pub fn health_poll_interval(mut self, interval: Duration) -> Self {
        self.health.poll_interval = Some(interval);
        self.health.cached = true;
        self
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
        #[cfg(feature = "log")]
        log: obs_log::Config::new(),
        #[cfg(feature = "trace")]
        trace: obs_trace::Config::default(),
        #[cfg(feature = "trace")]
        trace_filter: default_trace_filter(),
        #[cfg(feature = "correlate")]
        correlate: obs_correlate::Config::new(),
        #[cfg(feature = "errors")]
        errors: obs_errors::Config::default(),
        #[cfg(feature = "errors")]
        error_sinks: Vec::new(),
        #[cfg(feature = "errors")]
        error_log_lines: true,
        #[cfg(feature = "sentry")]
        sentry: obs_errors::sentry::SentrySettings::default(),
        #[cfg(feature = "metrics")]
        cardinality_limit: obs_metrics::DEFAULT_CARDINALITY_LIMIT,
        #[cfg(feature = "health")]
        checks: Vec::new(),
        #[cfg(feature = "health")]
        health: obs_health::Config::default(),
    }
}

#[cfg(feature = "trace")]
fn default_trace_filter() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
}

#[cfg(feature = "trace")]
fn parse_targets(v: &str) -> Result<tracing_subscriber::filter::Targets, String> {
    let preview: String = v.chars().take(64).collect();
    if v.trim().is_empty() {
        return Err("the directive is empty".into());
    }
    v.trim()
        .parse()
        .map_err(|e| format!("{preview:?} is not a target=level directive: {e}"))
}

#[allow(dead_code, reason = "used only when metrics or health is enabled")]
fn parse_var<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
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
