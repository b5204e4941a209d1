//! Where and how one signal is exported, from code or from the standard
//! `OTEL_EXPORTER_OTLP_[SIGNAL_]*` variables.

use std::fmt;
use std::time::Duration;

use super::{Error, Signal, TlsConfig, Var};

/// The OTLP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf` (the default).
    #[default]
    HttpProtobuf,
    /// `grpc`.
    Grpc,
}

/// Compression of OTLP export requests (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// No compression (the default, `none`).
    #[default]
    None,
    /// `gzip`: HTTP/protobuf bodies are gzipped and sent with
    /// `Content-Encoding: gzip`; gRPC messages are gzipped with the
    /// compressed flag set and `grpc-encoding: gzip`. Needs gzip support
    /// (obs-core's `otlp-gzip`, which the pillars' `gzip` features enable).
    Gzip,
}

/// Where and how one signal is exported.
#[derive(Clone, PartialEq, Eq)]
pub struct ExporterConfig {
    /// The full URL items are sent to: for HTTP the signal's URL
    /// (`…/v1/traces`, `…/v1/logs`), for gRPC the server's base URL.
    pub endpoint: String,
    /// The transport.
    pub protocol: Protocol,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`); their values are
    /// never printed by `Debug`.
    pub headers: Vec<(String, String)>,
    /// Timeout of one export request.
    pub timeout: Duration,
    /// Request compression.
    pub compression: Compression,
    /// TLS for `https://` endpoints: custom CA, client certificate, root
    /// store (needs TLS support, obs-core's `otlp-tls`).
    pub tls: TlsConfig,
}

impl fmt::Debug for ExporterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterConfig")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| (k.as_str(), "[REDACTED]"))
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("tls", &self.tls)
            .finish()
    }
}

const ENDPOINT: Var = var!("OTEL_EXPORTER_OTLP", "ENDPOINT");
const PROTOCOL: Var = var!("OTEL_EXPORTER_OTLP", "PROTOCOL");
const HEADERS: Var = var!("OTEL_EXPORTER_OTLP", "HEADERS");
const TIMEOUT: Var = var!("OTEL_EXPORTER_OTLP", "TIMEOUT");
const COMPRESSION: Var = var!("OTEL_EXPORTER_OTLP", "COMPRESSION");

/// The default timeout of one export request (the specification's 10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn env_err(var: &'static str, value: &str, reason: impl Into<String>) -> Error {
    Error::Env {
        var,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// An enum value as the OpenTelemetry specification reads it: trimmed and
/// case-insensitive. Errors still show the value as it was given.
pub fn enum_value(v: &str) -> String {
    v.trim().to_ascii_lowercase()
}

/// A duration in milliseconds, as the `OTEL_*` variables give them.
pub fn parse_millis(var: &'static str, v: &str) -> Result<Duration, Error> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| env_err(var, v, "expected a non-negative integer"))
}

fn parse_protocol(var: &'static str, v: &str) -> Result<Protocol, Error> {
    match enum_value(v).as_str() {
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "grpc" => Ok(Protocol::Grpc),
        "http/json" => Err(env_err(
            var,
            v,
            "http/json is not supported; use http/protobuf or grpc",
        )),
        _ => Err(env_err(var, v, "expected http/protobuf or grpc")),
    }
}

fn parse_compression(var: &'static str, v: &str) -> Result<Compression, Error> {
    match enum_value(v).as_str() {
        "none" => Ok(Compression::None),
        "gzip" if cfg!(feature = "otlp-gzip") => Ok(Compression::Gzip),
        "gzip" => Err(env_err(
            var,
            v,
            "gzip needs the `gzip` feature of obs-trace or obs-log (obs: `gzip`)",
        )),
        _ => Err(env_err(var, v, "expected gzip or none")),
    }
}

/// An endpoint URL. gRPC endpoints may leave the scheme out
/// (`collector:4317`): `https://` is used, or `http://` with
/// `OTEL_EXPORTER_OTLP_INSECURE=true` ([`TlsConfig::grpc_url`]).
fn check_url(var: &'static str, v: &str, grpc: Option<&TlsConfig>) -> Result<String, Error> {
    let t = v.trim();
    let full = match grpc {
        Some(tls) if !t.contains("://") => tls.grpc_url(t),
        _ => Some(t.to_owned()),
    };
    let Some(full) = full else {
        return Err(env_err(var, v, "the URL has no host"));
    };
    let rest = full
        .strip_prefix("http://")
        .or_else(|| full.strip_prefix("https://"))
        .ok_or_else(|| env_err(var, v, "expected an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(env_err(var, v, "the URL has no host"));
    }
    Ok(full)
}

impl ExporterConfig {
    /// OTLP/HTTP to `endpoint` (the signal's full URL, e.g. `…/v1/logs`),
    /// no headers, the default timeout, no compression, default TLS.
    pub fn http(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            protocol: Protocol::HttpProtobuf,
            headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            compression: Compression::None,
            tls: TlsConfig::default(),
        }
    }

    /// OTLP/gRPC to the server at `endpoint` (its base URL).
    pub fn grpc(endpoint: impl Into<String>) -> Self {
        Self {
            protocol: Protocol::Grpc,
            ..Self::http(endpoint)
        }
    }

    /// Reads the exporter variables of `signal`: for each setting the
    /// per-signal variable (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`) wins over
    /// the generic one (`OTEL_EXPORTER_OTLP_ENDPOINT`). Empty values count
    /// as unset; enum values are case-insensitive.
    ///
    /// `Ok(None)` when neither endpoint variable is set. A generic endpoint
    /// is a base URL: for HTTP the signal's path
    /// ([`Signal::http_path`]) is appended; a per-signal one is used as
    /// given. A gRPC endpoint without a scheme (`collector:4317`) is reached
    /// over TLS, or in plain text with `OTEL_EXPORTER_OTLP_INSECURE=true`.
    ///
    /// Read: `OTEL_EXPORTER_OTLP_[SIGNAL_]ENDPOINT`, `..._PROTOCOL`,
    /// `..._HEADERS`, `..._TIMEOUT`, `..._COMPRESSION`, and the TLS
    /// variables of [`TlsConfig::from_lookup`]. Header values never appear
    /// in errors.
    pub fn from_lookup(
        signal: Signal,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, Error> {
        let get = |var: Var| -> Option<(&'static str, String)> {
            [var.per_signal(signal), var.generic]
                .into_iter()
                .find_map(|k| lookup(k).filter(|v| !v.trim().is_empty()).map(|v| (k, v)))
        };
        let protocol = match get(PROTOCOL) {
            Some((var, v)) => parse_protocol(var, &v)?,
            None => Protocol::default(),
        };
        let tls = TlsConfig::from_lookup(signal, &lookup)?;
        let grpc_tls = (protocol == Protocol::Grpc).then_some(&tls);
        let headers = match get(HEADERS) {
            Some((var, v)) => {
                let redacted = |reason: String| Error::Env {
                    var,
                    // Header values are often credentials: name the problem, not the value.
                    value: "[REDACTED]".into(),
                    reason,
                };
                // The parser's message quotes the malformed member, value
                // included: say what is wrong without it.
                let headers = crate::resource::parse_attributes(&v).map_err(|_| {
                    redacted(
                        "expected comma-separated key=value pairs (keys printable ASCII \
                         without '=' or ',', values percent-encoded)"
                            .into(),
                    )
                })?;
                for (k, _) in &headers {
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                        return Err(redacted(format!("{k:?} is not a valid header name")));
                    }
                }
                headers
            }
            None => Vec::new(),
        };
        let timeout = match get(TIMEOUT) {
            Some((var, v)) => parse_millis(var, &v)?,
            None => DEFAULT_TIMEOUT,
        };
        let compression = match get(COMPRESSION) {
            Some((var, v)) => parse_compression(var, &v)?,
            None => Compression::default(),
        };
        // The endpoint last: the other values are checked even without one.
        let endpoint = match get(ENDPOINT) {
            None => None,
            Some((var, v)) if var == ENDPOINT.generic => {
                let base = check_url(var, &v, grpc_tls)?;
                Some(match protocol {
                    // The signal path is appended to the base URL for HTTP only.
                    Protocol::HttpProtobuf => {
                        format!("{}{}", base.trim_end_matches('/'), signal.http_path())
                    }
                    Protocol::Grpc => base,
                })
            }
            Some((var, v)) => Some(check_url(var, &v, grpc_tls)?),
        };
        Ok(endpoint.map(|endpoint| Self {
            endpoint,
            protocol,
            headers,
            timeout,
            compression,
            tls,
        }))
    }

    /// Checks settings given in code: an `http://` or `https://` endpoint,
    /// and that this build can do what they ask (gzip, TLS, the protocol).
    /// `feature` names the pillar's features in the errors: `(gzip, tls,
    /// http, grpc)`.
    pub fn validate(&self, features: [&'static str; 4]) -> Result<(), Error> {
        let [gzip, tls, http, grpc] = features;
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(Error::Config {
                field: "exporter.endpoint",
                reason: format!("{:?} is not an http:// or https:// URL", self.endpoint),
            });
        }
        if self.compression == Compression::Gzip && !cfg!(feature = "otlp-gzip") {
            return Err(Error::FeatureDisabled {
                what: "gzip compression".into(),
                feature: gzip,
            });
        }
        if self.endpoint.starts_with("https://") && !cfg!(feature = "otlp-tls") {
            return Err(Error::FeatureDisabled {
                what: format!("the https:// endpoint {:?} (TLS)", self.endpoint),
                feature: tls,
            });
        }
        match self.protocol {
            Protocol::HttpProtobuf if !cfg!(feature = "otlp-http") => Err(Error::FeatureDisabled {
                what: "OTLP over http/protobuf".into(),
                feature: http,
            }),
            Protocol::Grpc if !cfg!(feature = "otlp-grpc") => Err(Error::FeatureDisabled {
                what: "OTLP over grpc".into(),
                feature: grpc,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::env::from_pairs as lookup;

    #[test]
    fn nothing_set_is_no_exporter() {
        assert_eq!(
            ExporterConfig::from_lookup(Signal::Logs, |_| None).unwrap(),
            None
        );
    }

    #[test]
    fn per_signal_variables_win_and_paths_follow_the_signal() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/custom"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%20ecret"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x-team=hdr-value-9"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1500"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "700"),
        ];
        let t = ExporterConfig::from_lookup(Signal::Traces, lookup(&vars))
            .unwrap()
            .unwrap();
        assert_eq!(t.endpoint, "http://t:4318/custom", "used as given");
        assert_eq!(t.headers, vec![("api-key".into(), "s ecret".into())]);
        assert_eq!(t.timeout, Duration::from_millis(1500));
        let l = ExporterConfig::from_lookup(Signal::Logs, lookup(&vars))
            .unwrap()
            .unwrap();
        assert_eq!(l.endpoint, "http://base:4318/v1/logs");
        assert_eq!(l.headers, vec![("x-team".into(), "hdr-value-9".into())]);
        assert_eq!(l.timeout, Duration::from_millis(700));
        assert!(
            !format!("{l:?}").contains("hdr-value-9"),
            "header values hidden"
        );
    }

    #[test]
    fn grpc_keeps_the_base_url_and_reads_enums_in_any_case() {
        let l = ExporterConfig::from_lookup(
            Signal::Logs,
            lookup(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
                ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", " GRPC "),
                ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "True"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "None"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(l.protocol, Protocol::Grpc);
        assert_eq!(l.endpoint, "http://collector:4317");
        assert_eq!(l.compression, Compression::None);
    }

    #[test]
    fn bad_values_are_typed_and_hide_header_values() {
        for (var, value, reason) in [
            (
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
                "http/json",
                "not supported",
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "thrift",
                "http/protobuf or grpc",
            ),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "soon", "integer"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "gzip or none"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "ftp://x", "http://"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http:///v1", "no host"),
        ] {
            let mut vars = vec![(var, value)];
            if !var.ends_with("ENDPOINT") {
                vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"));
            }
            let err = ExporterConfig::from_lookup(Signal::Logs, lookup(&vars)).unwrap_err();
            assert!(
                matches!(&err, Error::Env { var: v, .. } if *v == var),
                "{var}: {err:?}"
            );
            assert!(err.to_string().contains(reason), "{err}");
        }
        let err = ExporterConfig::from_lookup(
            Signal::Logs,
            lookup(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "bad name=top-secret"),
            ]),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("top-secret"), "{err}");
    }

    #[test]
    fn validate_names_the_missing_feature() {
        let features = ["gzip", "tls", "otlp-http", "otlp-grpc"];
        let err = ExporterConfig::http("collector:4318")
            .validate(features)
            .unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
        let mut gz = ExporterConfig::http("http://c:4318/v1/logs");
        gz.compression = Compression::Gzip;
        assert_eq!(
            gz.validate(features).is_ok(),
            cfg!(feature = "otlp-gzip") && cfg!(feature = "otlp-http")
        );
    }
}
