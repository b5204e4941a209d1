//! Configuration from code and from the standard `OTEL_*` variables.

use std::time::Duration;

use obs_core::Resource;

use crate::Error;
use crate::propagation::Propagators;
use crate::sampler::Sampler;
use crate::tls::{Signal, TlsConfig};
use obs_core::otlp::enum_value;

pub use obs_core::otlp::{Compression, ExporterConfig, Protocol};

/// The batch span processor's settings (`OTEL_BSP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Spans the queue holds; more are dropped (newest first) and counted.
    pub max_queue_size: usize,
    /// How long the exporter waits to fill a batch.
    pub schedule_delay: Duration,
    /// Most spans per export request.
    pub max_export_batch_size: usize,
    /// Timeout of one export (the smaller of this and the exporter timeout
    /// applies).
    pub export_timeout: Duration,
}

impl Default for BatchConfig {
    /// The OpenTelemetry defaults: 2048, 5 s, 512, 30 s.
    fn default() -> Self {
        Self {
            max_queue_size: 2048,
            schedule_delay: Duration::from_millis(5000),
            max_export_batch_size: 512,
            export_timeout: Duration::from_millis(30_000),
        }
    }
}

/// The tracing configuration.
///
/// ```
/// use obs_trace::{Config, Sampler};
/// let cfg = Config::from_lookup(|k| match k {
///     "OTEL_SERVICE_NAME" => Some("checkout".into()),
///     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".into()),
///     "OTEL_TRACES_SAMPLER" => Some("parentbased_traceidratio".into()),
///     "OTEL_TRACES_SAMPLER_ARG" => Some("0.25".into()),
///     _ => None,
/// })?;
/// assert_eq!(cfg.resource.service_name(), "checkout");
/// assert_eq!(cfg.exporter.unwrap().endpoint, "http://collector:4318/v1/traces");
/// assert_eq!(cfg.sampler, Sampler::ParentBasedTraceIdRatio(0.25));
///
/// let err = Config::from_lookup(|k| (k == "OTEL_BSP_MAX_QUEUE_SIZE").then(|| "lots".into())).unwrap_err();
/// assert!(err.to_string().contains("OTEL_BSP_MAX_QUEUE_SIZE"));
/// # Ok::<(), obs_trace::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The service identity stamped on every span.
    pub resource: Resource,
    /// `OTEL_SDK_DISABLED=true`: no ids, no spans, no export.
    pub disabled: bool,
    /// The exporter; `None` keeps tracing on (ids, propagation) without
    /// exporting anything.
    pub exporter: Option<ExporterConfig>,
    /// The head sampler.
    pub sampler: Sampler,
    /// The propagation formats.
    pub propagators: Propagators,
    /// The batch processor.
    pub batch: BatchConfig,
    /// Most attributes kept per span (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`).
    pub max_attributes: usize,
    /// Most events kept per span (`OTEL_SPAN_EVENT_COUNT_LIMIT`).
    pub max_events: usize,
    /// Redaction rules applied to every exported span (name, attributes,
    /// events, status message) before any exporter sees it; `None` turns
    /// redaction off. Default: `obs_core::Redactor::new()`.
    pub redactor: Option<obs_core::Redactor>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            resource: Resource::default(),
            disabled: false,
            exporter: None,
            sampler: Sampler::default(),
            propagators: Propagators::default(),
            batch: BatchConfig::default(),
            max_attributes: 128,
            max_events: 128,
            redactor: Some(obs_core::Redactor::new()),
        }
    }
}

fn env_err(var: &'static str, value: &str, reason: impl Into<String>) -> Error {
    Error::Env {
        var,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn parse_bool(var: &'static str, v: &str) -> Result<bool, Error> {
    match enum_value(v).as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(env_err(var, v, "expected true or false")),
    }
}

fn parse_u64(var: &'static str, v: &str) -> Result<u64, Error> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| env_err(var, v, "expected a non-negative integer"))
}

fn parse_millis(var: &'static str, v: &str) -> Result<Duration, Error> {
    Ok(obs_core::otlp::parse_millis(var, v)?)
}

impl Config {
    /// Reads the standard variables from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env) with a custom lookup (tests, config
    /// files). Unset variables keep the defaults; empty ones count as unset.
    ///
    /// Read: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED`,
    /// `OTEL_TRACES_EXPORTER` (`otlp`|`none`), `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`,
    /// `..._PROTOCOL`, `..._HEADERS`, `..._TIMEOUT`, `..._COMPRESSION`,
    /// `..._CERTIFICATE`, `..._CLIENT_CERTIFICATE`, `..._CLIENT_KEY`,
    /// `..._INSECURE`, `OBS_OTLP_[TRACES_]TLS_ROOTS` (see [`TlsConfig::from_lookup`]),
    /// `OTEL_TRACES_SAMPLER`(`_ARG`),
    /// `OTEL_PROPAGATORS`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_EXPORT_TIMEOUT`,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
    /// `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, `OTEL_SPAN_EVENT_COUNT_LIMIT`.
    ///
    /// A gRPC endpoint without a scheme (`collector:4317`) is reached over
    /// TLS, or in plain text with `OTEL_EXPORTER_OTLP_INSECURE=true`, as
    /// the specification says; `http://` is always plain and `https://`
    /// always TLS.
    ///
    /// Enum values (`OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER`,
    /// `..._PROTOCOL`, `..._COMPRESSION`, `..._INSECURE`, `OBS_OTLP_TLS_ROOTS`, `OTEL_TRACES_SAMPLER`,
    /// `OTEL_PROPAGATORS`) are case-insensitive, as the OpenTelemetry
    /// specification requires: `GRPC`, `Always_On` and `TraceContext` are
    /// read like `grpc`, `always_on` and `tracecontext`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let mut cfg = Config {
            resource: Resource::from_lookup(&lookup)?,
            ..Config::default()
        };

        if let Some(v) = get("OTEL_SDK_DISABLED") {
            cfg.disabled = parse_bool("OTEL_SDK_DISABLED", &v)?;
        }

        // Exporter.
        let exporter_on = match get("OTEL_TRACES_EXPORTER") {
            None => true,
            Some(v) => match enum_value(&v).as_str() {
                "otlp" => true,
                "none" => false,
                _ => return Err(env_err("OTEL_TRACES_EXPORTER", &v, "expected otlp or none")),
            },
        };
        let exporter = ExporterConfig::from_lookup(Signal::Traces, &lookup)?;
        if exporter_on {
            cfg.exporter = exporter;
        }

        // Sampler.
        let arg = get("OTEL_TRACES_SAMPLER_ARG");
        let ratio = || -> Result<f64, Error> {
            match &arg {
                None => Ok(1.0),
                Some(v) => {
                    let r: f64 = v.trim().parse().map_err(|_| {
                        env_err("OTEL_TRACES_SAMPLER_ARG", v, "expected a number in [0, 1]")
                    })?;
                    if !(0.0..=1.0).contains(&r) {
                        return Err(env_err(
                            "OTEL_TRACES_SAMPLER_ARG",
                            v,
                            "the ratio must be in [0, 1]",
                        ));
                    }
                    Ok(r)
                }
            }
        };
        if let Some(v) = get("OTEL_TRACES_SAMPLER") {
            cfg.sampler = match enum_value(&v).as_str() {
                "always_on" => Sampler::AlwaysOn,
                "always_off" => Sampler::AlwaysOff,
                "traceidratio" => Sampler::TraceIdRatio(ratio()?),
                "parentbased_always_on" => Sampler::ParentBasedAlwaysOn,
                "parentbased_always_off" => Sampler::ParentBasedAlwaysOff,
                "parentbased_traceidratio" => Sampler::ParentBasedTraceIdRatio(ratio()?),
                "jaeger_remote" | "parentbased_jaeger_remote" | "xray" => {
                    return Err(env_err(
                        "OTEL_TRACES_SAMPLER",
                        &v,
                        "this sampler is not supported",
                    ));
                }
                _ => return Err(env_err("OTEL_TRACES_SAMPLER", &v, "unknown sampler")),
            };
        }

        if let Some(v) = get("OTEL_PROPAGATORS") {
            let mut p = Propagators::NONE;
            for name in v.split(',').map(enum_value).filter(|s| !s.is_empty()) {
                match name.as_str() {
                    "tracecontext" => p.trace_context = true,
                    "baggage" => p.baggage = true,
                    "none" => {}
                    "b3" | "b3multi" | "jaeger" | "xray" | "ottrace" => {
                        return Err(env_err(
                            "OTEL_PROPAGATORS",
                            &v,
                            format!("propagator {name} is not supported"),
                        ));
                    }
                    _ => {
                        return Err(env_err(
                            "OTEL_PROPAGATORS",
                            &v,
                            format!("unknown propagator {name}"),
                        ));
                    }
                }
            }
            cfg.propagators = p;
        }

        if let Some(v) = get("OTEL_BSP_SCHEDULE_DELAY") {
            cfg.batch.schedule_delay = parse_millis("OTEL_BSP_SCHEDULE_DELAY", &v)?;
        }
        if let Some(v) = get("OTEL_BSP_EXPORT_TIMEOUT") {
            cfg.batch.export_timeout = parse_millis("OTEL_BSP_EXPORT_TIMEOUT", &v)?;
        }
        if let Some(v) = get("OTEL_BSP_MAX_QUEUE_SIZE") {
            let n = parse_u64("OTEL_BSP_MAX_QUEUE_SIZE", &v)?;
            if n == 0 {
                return Err(env_err(
                    "OTEL_BSP_MAX_QUEUE_SIZE",
                    &v,
                    "the queue size must be at least 1",
                ));
            }
            cfg.batch.max_queue_size = n as usize;
        }
        if let Some(v) = get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
            let n = parse_u64("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &v)?;
            if n == 0 {
                return Err(env_err(
                    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                    &v,
                    "the batch size must be at least 1",
                ));
            }
            if n as usize > cfg.batch.max_queue_size {
                return Err(env_err(
                    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                    &v,
                    format!(
                        "must not exceed the queue size {}",
                        cfg.batch.max_queue_size
                    ),
                ));
            }
            cfg.batch.max_export_batch_size = n as usize;
        } else {
            cfg.batch.max_export_batch_size = cfg
                .batch
                .max_export_batch_size
                .min(cfg.batch.max_queue_size);
        }
        if let Some(v) = get("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT") {
            cfg.max_attributes = parse_u64("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", &v)? as usize;
        }
        if let Some(v) = get("OTEL_SPAN_EVENT_COUNT_LIMIT") {
            cfg.max_events = parse_u64("OTEL_SPAN_EVENT_COUNT_LIMIT", &v)? as usize;
        }
        Ok(cfg)
    }

    /// Builder: the service name.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.resource = self.resource.with_service_name(name);
        self
    }

    /// Builder: export to an OTLP/HTTP endpoint (the full `/v1/traces` URL).
    pub fn otlp_http(mut self, endpoint: impl Into<String>) -> Self {
        self.exporter = Some(ExporterConfig::http(endpoint));
        self
    }

    /// Builder: export to an OTLP/gRPC endpoint (the server's base URL).
    pub fn otlp_grpc(mut self, endpoint: impl Into<String>) -> Self {
        self.exporter = Some(ExporterConfig::grpc(endpoint));
        self
    }

    /// Builder: the exporter's request compression (no effect without an
    /// exporter). [`validate`](Self::validate) rejects
    /// [`Compression::Gzip`] without the `gzip` feature.
    pub fn compression(mut self, compression: Compression) -> Self {
        if let Some(e) = &mut self.exporter {
            e.compression = compression;
        }
        self
    }

    /// Builder: the exporter's TLS settings (no effect without an
    /// exporter; used for `https://` endpoints, which need the `tls`
    /// feature).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        if let Some(e) = &mut self.exporter {
            e.tls = tls;
        }
        self
    }

    /// Builder: the sampler.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Builder: the batch settings.
    pub fn batch(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }

    /// Checks values set in code (the env path checks as it reads).
    pub fn validate(&self) -> Result<(), Error> {
        let cfg_err = |field, reason: &str| {
            Err(Error::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.batch.max_queue_size == 0 {
            return cfg_err("batch.max_queue_size", "must be at least 1");
        }
        if self.batch.max_export_batch_size == 0 {
            return cfg_err("batch.max_export_batch_size", "must be at least 1");
        }
        if self.batch.max_export_batch_size > self.batch.max_queue_size {
            return Err(Error::Config {
                field: "batch.max_export_batch_size",
                reason: format!(
                    "{} exceeds the queue size {}",
                    self.batch.max_export_batch_size, self.batch.max_queue_size
                ),
            });
        }
        match self.sampler {
            Sampler::TraceIdRatio(r) | Sampler::ParentBasedTraceIdRatio(r)
                if !(0.0..=1.0).contains(&r) =>
            {
                return Err(Error::Config {
                    field: "sampler",
                    reason: format!("ratio {r} is not in [0, 1]"),
                });
            }
            _ => {}
        }
        if let Some(e) = &self.exporter
            && e.compression == Compression::Gzip
            && !cfg!(feature = "gzip")
        {
            return cfg_err(
                "exporter.compression",
                "gzip needs obs-trace's `gzip` feature",
            );
        }
        if let Some(e) = &self.exporter
            && !(e.endpoint.starts_with("http://") || e.endpoint.starts_with("https://"))
        {
            return Err(Error::Config {
                field: "exporter.endpoint",
                reason: format!("{:?} is not an http:// or https:// URL", e.endpoint),
            });
        }
        if let Some(e) = &self.exporter
            && e.endpoint.starts_with("https://")
            && !cfg!(feature = "tls")
        {
            return Err(Error::FeatureDisabled {
                what: format!("the https:// endpoint {:?} (TLS)", e.endpoint),
                feature: "tls",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use obs_core::names::env::from_pairs as lookup;

    #[test]
    fn defaults_without_variables() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert!(!c.disabled);
        assert!(c.exporter.is_none());
        assert_eq!(c.sampler, Sampler::ParentBasedAlwaysOn);
        assert_eq!(c.propagators, Propagators::default());
        assert_eq!(c.batch, BatchConfig::default());
    }

    #[test]
    fn every_variable_is_read() {
        let c = Config::from_lookup(lookup(&[
            ("OTEL_SERVICE_NAME", "svc"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.version=2"),
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:4318/custom",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%20ecret,x-team=a"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1500"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ("OTEL_PROPAGATORS", "baggage"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "200"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5"),
        ]))
        .unwrap();
        assert_eq!(c.resource.service_name(), "svc");
        assert_eq!(c.resource.service_version(), Some("2"));
        assert!(c.disabled);
        let e = c.exporter.unwrap();
        assert_eq!(e.endpoint, "http://traces:4318/custom");
        assert_eq!(e.protocol, Protocol::HttpProtobuf);
        assert_eq!(
            e.headers,
            vec![
                ("api-key".into(), "s ecret".into()),
                ("x-team".into(), "a".into())
            ]
        );
        assert!(!format!("{e:?}").contains("ecret"));
        assert_eq!(e.timeout, Duration::from_millis(1500));
        assert_eq!(c.sampler, Sampler::TraceIdRatio(0.5));
        assert_eq!(
            c.propagators,
            Propagators {
                trace_context: false,
                baggage: true
            }
        );
        assert_eq!(
            c.batch,
            BatchConfig {
                max_queue_size: 10,
                schedule_delay: Duration::from_millis(100),
                max_export_batch_size: 5,
                export_timeout: Duration::from_millis(200)
            }
        );
    }

    #[test]
    fn grpc_base_endpoint_is_kept() {
        let c = Config::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]))
        .unwrap();
        assert_eq!(c.exporter.unwrap().endpoint, "http://c:4317/");
        let c = Config::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]))
        .unwrap();
        assert!(c.exporter.is_none());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases: &[(&str, &str, &str)] = &[
            ("OTEL_SDK_DISABLED", "yes", "expected true or false"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "http://"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://", "no host"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "not supported"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp", "expected"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1", "integer"),
            ("OTEL_TRACES_SAMPLER", "sometimes", "unknown sampler"),
            ("OTEL_TRACES_SAMPLER", "xray", "not supported"),
            ("OTEL_PROPAGATORS", "tracecontext,b3", "b3"),
            ("OTEL_PROPAGATORS", "w3c", "unknown propagator"),
            ("OTEL_BSP_SCHEDULE_DELAY", "5s", "integer"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "x", "integer"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "at least 1"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096", "queue size"),
            ("OTEL_TRACES_EXPORTER", "zipkin", "otlp or none"),
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "many", "integer"),
        ];
        for (var, value, reason) in cases {
            let err = Config::from_lookup(lookup(&[(var, value)])).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(var), "{var}: {msg}");
            assert!(msg.contains(reason), "{var}: {msg}");
            assert!(matches!(err, Error::Env { .. }));
        }
        let err = Config::from_lookup(lookup(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("OTEL_TRACES_SAMPLER_ARG"));
        let err = Config::from_lookup(lookup(&[("OTEL_EXPORTER_OTLP_HEADERS", "token=%zz")]))
            .unwrap_err();
        assert!(err.to_string().contains("OTEL_EXPORTER_OTLP_HEADERS"));
        let err =
            Config::from_lookup(lookup(&[("OTEL_RESOURCE_ATTRIBUTES", "novalue")])).unwrap_err();
        assert!(
            err.to_string().contains("OTEL_RESOURCE_ATTRIBUTES"),
            "{err}"
        );
    }

    #[test]
    fn enum_values_are_case_insensitive() {
        let c = Config::from_lookup(lookup(&[
            ("OTEL_SDK_DISABLED", "True"),
            ("OTEL_TRACES_EXPORTER", "OTLP"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", " GRPC "),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "None"),
            ("OTEL_TRACES_SAMPLER", "ParentBased_TraceIdRatio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ("OTEL_PROPAGATORS", "TraceContext, BAGGAGE"),
        ]))
        .unwrap();
        assert!(c.disabled);
        let e = c.exporter.unwrap();
        assert_eq!(e.protocol, Protocol::Grpc);
        assert_eq!(e.endpoint, "http://c:4317", "gRPC keeps the base URL");
        assert_eq!(e.compression, Compression::None);
        assert_eq!(c.sampler, Sampler::ParentBasedTraceIdRatio(0.5));
        assert_eq!(c.propagators, Propagators::default());

        // The per-signal variable wins, in any case.
        let c = Config::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "HTTP/Protobuf"),
        ]))
        .unwrap();
        let e = c.exporter.unwrap();
        assert_eq!(e.protocol, Protocol::HttpProtobuf);
        assert_eq!(e.endpoint, "http://c:4318/v1/traces");

        for (v, want) in [
            ("ALWAYS_ON", Sampler::AlwaysOn),
            ("Always_Off", Sampler::AlwaysOff),
            ("TRACEIDRATIO", Sampler::TraceIdRatio(1.0)),
            ("ParentBased_Always_On", Sampler::ParentBasedAlwaysOn),
            ("PARENTBASED_ALWAYS_OFF", Sampler::ParentBasedAlwaysOff),
        ] {
            let c = Config::from_lookup(lookup(&[("OTEL_TRACES_SAMPLER", v)])).unwrap();
            assert_eq!(c.sampler, want, "{v}");
        }
        let c = Config::from_lookup(lookup(&[("OTEL_PROPAGATORS", "NONE")])).unwrap();
        assert_eq!(c.propagators, Propagators::NONE);
        let c = Config::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "None"),
        ]))
        .unwrap();
        assert!(c.exporter.is_none());
        let c = Config::from_lookup(lookup(&[("OTEL_SDK_DISABLED", "FALSE")])).unwrap();
        assert!(!c.disabled);

        // Errors stay typed, name the variable and show the value as given.
        for (var, value, reason) in [
            ("OTEL_TRACES_SAMPLER", "Always_Sometimes", "unknown sampler"),
            ("OTEL_TRACES_SAMPLER", "XRay", "not supported"),
            (
                "OTEL_PROPAGATORS",
                "TraceContext,B3",
                "propagator b3 is not supported",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "HTTP/JSON", "not supported"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "UDP", "expected"),
            (
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                "Brotli",
                "expected gzip or none",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                "zstd",
                "expected gzip or none",
            ),
            ("OTEL_TRACES_EXPORTER", "Zipkin", "otlp or none"),
            ("OTEL_SDK_DISABLED", "Yes", "expected true or false"),
        ] {
            let err = Config::from_lookup(lookup(&[(var, value)])).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(&err, Error::Env { var: v, value: got, .. } if *v == var && got == value),
                "{var}: {err:?}"
            );
            assert!(msg.contains(var) && msg.contains(reason), "{var}: {msg}");
        }
    }

    #[test]
    fn compression_is_read_per_signal_first() {
        let base = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
        ];
        let c = Config::from_lookup(lookup(&base)).unwrap();
        assert_eq!(c.exporter.unwrap().compression, Compression::None);
        let mut pairs = base.to_vec();
        pairs.push(("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "GZip"));
        let got = Config::from_lookup(lookup(&pairs));
        if cfg!(feature = "gzip") {
            let e = got.unwrap().exporter.unwrap();
            assert_eq!(e.compression, Compression::Gzip);
            assert!(format!("{e:?}").contains("Gzip"));
            let c = Config::from_lookup(lookup(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP"),
            ]))
            .unwrap();
            assert_eq!(c.exporter.unwrap().compression, Compression::Gzip);
            assert!(
                Config::default()
                    .otlp_grpc("http://c:4317")
                    .compression(Compression::Gzip)
                    .validate()
                    .is_ok()
            );
        } else {
            let err = got.unwrap_err();
            assert!(
                err.to_string()
                    .contains("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"),
                "{err}"
            );
            assert!(err.to_string().contains("`gzip` feature"), "{err}");
            let err = Config::default()
                .otlp_http("http://c:4318/v1/traces")
                .compression(Compression::Gzip)
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("`gzip` feature"), "{err}");
        }
        // Compression without an exporter changes nothing, so there is
        // nothing to refuse.
        let c = Config::default().compression(Compression::Gzip);
        assert!(c.exporter.is_none());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn tls_variables_reach_the_exporter_and_insecure_picks_the_grpc_scheme() {
        let c = Config::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                "/etc/otel/c.pem",
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/otel/k.pem"),
        ]))
        .unwrap();
        let e = c.exporter.unwrap();
        assert_eq!(e.endpoint, "https://collector:4317", "TLS unless insecure");
        assert_eq!(e.tls.ca_file, Some("/etc/otel/ca.pem".into()));
        assert!(e.tls.has_client_identity());
        assert!(format!("{e:?}").contains("ca.pem"));

        let c = Config::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "TRUE"),
        ]))
        .unwrap();
        assert_eq!(c.exporter.unwrap().endpoint, "http://collector:4317");

        // A scheme always wins over INSECURE.
        for (url, insecure) in [("https://c:4317", "true"), ("http://c:4317", "false")] {
            let c = Config::from_lookup(lookup(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", url),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_INSECURE", insecure),
            ]))
            .unwrap();
            assert_eq!(c.exporter.unwrap().endpoint, url);
        }

        // HTTP endpoints need their scheme, INSECURE or not.
        let err = Config::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("http://"), "{err}");
        let err = Config::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "/v1"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("no host"), "{err}");
        let err = Config::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE"),
            "{err}"
        );
    }

    #[test]
    fn https_endpoints_need_the_tls_feature() {
        let c = Config::default()
            .otlp_http("https://c:4318/v1/traces")
            .tls(TlsConfig::new().ca_file("/ca.pem"));
        assert_eq!(
            c.exporter.as_ref().unwrap().tls.ca_file,
            Some("/ca.pem".into())
        );
        if cfg!(feature = "tls") {
            assert!(c.validate().is_ok());
        } else {
            let err = c.validate().unwrap_err();
            assert!(
                matches!(&err, Error::FeatureDisabled { feature: "tls", .. }),
                "{err:?}"
            );
        }
        // TLS settings without an exporter change nothing.
        assert!(Config::default().tls(TlsConfig::new()).exporter.is_none());
    }

    #[test]
    fn validate_checks_code_values() {
        assert!(Config::default().validate().is_ok());
        assert!(
            Config::default()
                .sampler(Sampler::TraceIdRatio(2.0))
                .validate()
                .is_err()
        );
        assert!(Config::default().otlp_http("ftp://x").validate().is_err());
        let mut c = Config::default();
        c.batch.max_queue_size = 0;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.batch.max_queue_size = 100;
        let err = c.validate().unwrap_err();
        assert!(
            err.to_string().contains("512 exceeds the queue size 100"),
            "{err}"
        );
    }
}
