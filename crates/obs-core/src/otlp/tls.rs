//! TLS settings of an OTLP exporter, read from the standard variables.
//!
//! [`TlsConfig`] holds what the OpenTelemetry specification lets an operator
//! configure for a secure OTLP connection, as file paths and choices, with
//! no TLS library in sight: a custom CA (`OTEL_EXPORTER_OTLP_CERTIFICATE`),
//! a client certificate and key for mutual TLS
//! (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY`),
//! `OTEL_EXPORTER_OTLP_INSECURE` for scheme-less gRPC endpoints, and obs's
//! `OBS_OTLP_TLS_ROOTS` (`webpki` or `system`). Every variable has a
//! per-signal form (`OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`,
//! `OBS_OTLP_TRACES_TLS_ROOTS`, …) that wins over the generic one, so
//! [`TlsConfig::from_lookup`] serves a logs or metrics exporter as well
//! ([`Signal`]).
//!
//! With the `otlp-tls` feature the [`Transport`](super::Transport) loads
//! the files when it is built (an unreadable or invalid file is an
//! [`Error::TlsFile`] naming it) and speaks TLS (rustls, `ring` provider, no
//! OpenSSL) to `https://` endpoints; a failed handshake at export time is an
//! [`Error::Tls`] naming the peer and a [`TlsFailure`].
//!
//! Roots: without a custom CA the collector's certificate is checked
//! against the Mozilla roots compiled in (`webpki-roots`), or the operating
//! system's store with [`TlsRoots::System`]. A custom CA *replaces* those
//! roots (only that CA is trusted) unless a store is named explicitly, in
//! which case the CA is trusted in addition to it.
//!
//! ```
//! use obs_core::otlp::{Signal, TlsConfig, TlsRoots};
//! let tls = TlsConfig::from_lookup(Signal::Traces, |k| match k {
//!     "OTEL_EXPORTER_OTLP_CERTIFICATE" => Some("/etc/otel/ca.pem".into()),
//!     "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE" => Some("/etc/otel/traces-ca.pem".into()),
//!     "OBS_OTLP_TLS_ROOTS" => Some("System".into()),
//!     _ => None,
//! })?;
//! assert_eq!(tls.ca_file.as_deref(), Some(std::path::Path::new("/etc/otel/traces-ca.pem")));
//! assert_eq!(tls.roots, Some(TlsRoots::System));
//! assert!(!tls.insecure);
//! # Ok::<(), obs_core::otlp::Error>(())
//! ```

use std::fmt;
use std::path::PathBuf;

use super::{Error, Signal, Var};

const CERTIFICATE: Var = var!("OTEL_EXPORTER_OTLP", "CERTIFICATE");
const CLIENT_CERTIFICATE: Var = var!("OTEL_EXPORTER_OTLP", "CLIENT_CERTIFICATE");
const CLIENT_KEY: Var = var!("OTEL_EXPORTER_OTLP", "CLIENT_KEY");
const INSECURE: Var = var!("OTEL_EXPORTER_OTLP", "INSECURE");
const TLS_ROOTS: Var = var!("OBS_OTLP", "TLS_ROOTS");

/// Which root certificates verify the collector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsRoots {
    /// The Mozilla roots compiled into the binary (`webpki-roots`): the
    /// same trust everywhere, no files needed in a scratch container.
    #[default]
    WebPki,
    /// The operating system's store (`rustls-native-certs`: on Linux the
    /// files `SSL_CERT_FILE`/`SSL_CERT_DIR` or the distribution's bundle
    /// point at).
    System,
}

/// The TLS settings of one OTLP exporter: file paths and choices, checked
/// and loaded when the exporter is built (see the [module docs](self)).
///
/// ```
/// use obs_core::otlp::{TlsConfig, TlsRoots};
/// let tls = TlsConfig::new()
///     .ca_file("/etc/otel/ca.pem")
///     .client_identity("/etc/otel/client.pem", "/etc/otel/client-key.pem")
///     .roots(TlsRoots::System);
/// assert!(tls.has_client_identity());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// A PEM file of CA certificates that verify the collector
    /// (`OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`).
    pub ca_file: Option<PathBuf>,
    /// The client certificate chain, PEM, for mutual TLS
    /// (`OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE`); set together with
    /// [`client_key_file`](Self::client_key_file).
    pub client_certificate_file: Option<PathBuf>,
    /// The client's private key, PEM (PKCS#8, PKCS#1 or SEC1)
    /// (`OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY`).
    pub client_key_file: Option<PathBuf>,
    /// The root store; `None`: the webpki roots without a custom CA, only
    /// the custom CA with one (`OBS_OTLP_[TRACES_]TLS_ROOTS`).
    pub roots: Option<TlsRoots>,
    /// `OTEL_EXPORTER_OTLP_[TRACES_]INSECURE`: a gRPC endpoint given
    /// without a scheme is reached in plain text (`http://`) rather than
    /// over TLS. `http://` endpoints are always plain and `https://` ones
    /// always TLS, whatever this says.
    pub insecure: bool,
}

impl TlsConfig {
    /// No custom CA, no client certificate, webpki roots.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the CA certificates of the PEM file at `path`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents the certificate chain at `certificate` with the key at
    /// `key` (both PEM) when the collector asks for a client certificate.
    pub fn client_identity(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_certificate_file = Some(certificate.into());
        self.client_key_file = Some(key.into());
        self
    }

    /// The root store.
    pub fn roots(mut self, roots: TlsRoots) -> Self {
        self.roots = Some(roots);
        self
    }

    /// Plain text for scheme-less gRPC endpoints.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Whether a client certificate and key are configured.
    pub fn has_client_identity(&self) -> bool {
        self.client_certificate_file.is_some() && self.client_key_file.is_some()
    }

    /// Whether anything here needs the `otlp-tls` feature's TLS stack: a CA, a
    /// client identity or a root store choice.
    pub fn is_customized(&self) -> bool {
        self.ca_file.is_some()
            || self.client_certificate_file.is_some()
            || self.client_key_file.is_some()
            || self.roots.is_some()
    }

    /// Reads the variables of `signal`: for each setting the per-signal
    /// variable (`OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`) wins over the
    /// generic one (`OTEL_EXPORTER_OTLP_CERTIFICATE`). Empty values count as
    /// unset; `..._INSECURE` (`true`/`false`) and `OBS_OTLP_TLS_ROOTS`
    /// (`webpki`/`system`) are case-insensitive. Files are not opened here.
    ///
    /// A client certificate without a key, or a key without a certificate,
    /// is an [`Error::Env`] naming the missing variable.
    pub fn from_lookup(
        signal: Signal,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let get = |var: Var| -> Option<(&'static str, String)> {
            [var.per_signal(signal), var.generic]
                .into_iter()
                .find_map(|k| lookup(k).filter(|v| !v.trim().is_empty()).map(|v| (k, v)))
        };
        let path = |var: Var| get(var).map(|(_, v)| PathBuf::from(v.trim()));
        let mut cfg = TlsConfig {
            ca_file: path(CERTIFICATE),
            client_certificate_file: path(CLIENT_CERTIFICATE),
            client_key_file: path(CLIENT_KEY),
            ..TlsConfig::default()
        };
        match (&cfg.client_certificate_file, &cfg.client_key_file) {
            (Some(_), None) => {
                return Err(Error::Env {
                    var: CLIENT_KEY.per_signal(signal),
                    value: String::new(),
                    reason: format!(
                        "a client certificate is set ({} or {}) but no client key",
                        CLIENT_CERTIFICATE.per_signal(signal),
                        CLIENT_CERTIFICATE.generic
                    ),
                });
            }
            (None, Some(_)) => {
                return Err(Error::Env {
                    var: CLIENT_CERTIFICATE.per_signal(signal),
                    value: String::new(),
                    reason: format!(
                        "a client key is set ({} or {}) but no client certificate",
                        CLIENT_KEY.per_signal(signal),
                        CLIENT_KEY.generic
                    ),
                });
            }
            _ => {}
        }
        if let Some((var, v)) = get(INSECURE) {
            cfg.insecure = match v.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(Error::Env {
                        var,
                        value: v,
                        reason: "expected true or false".into(),
                    });
                }
            };
        }
        if let Some((var, v)) = get(TLS_ROOTS) {
            cfg.roots = Some(match v.trim().to_ascii_lowercase().as_str() {
                "webpki" => TlsRoots::WebPki,
                "system" => TlsRoots::System,
                _ => {
                    return Err(Error::Env {
                        var,
                        value: v,
                        reason: "expected webpki or system".into(),
                    });
                }
            });
        }
        Ok(cfg)
    }

    /// The URL of a gRPC `endpoint` as the specification reads it: with a
    /// scheme it is kept; without one it gets `https://`, or `http://` when
    /// [`insecure`](Self::insecure) is set. `None` when it has no host.
    ///
    /// ```
    /// use obs_core::otlp::TlsConfig;
    /// let tls = TlsConfig::new();
    /// assert_eq!(tls.grpc_url("collector:4317").as_deref(), Some("https://collector:4317"));
    /// assert_eq!(tls.clone().insecure(true).grpc_url("collector:4317").as_deref(), Some("http://collector:4317"));
    /// assert_eq!(tls.grpc_url("http://collector:4317").as_deref(), Some("http://collector:4317"));
    /// ```
    pub fn grpc_url(&self, endpoint: &str) -> Option<String> {
        let t = endpoint.trim();
        if t.starts_with("http://") || t.starts_with("https://") {
            return Some(t.to_owned());
        }
        if t.is_empty() || t.starts_with('/') || t.contains("://") {
            return None;
        }
        let scheme = if self.insecure { "http" } else { "https" };
        Some(format!("{scheme}://{t}"))
    }
}

/// Why a TLS handshake with the collector failed: [`Error::Tls`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The collector's certificate chains to no trusted root: a private CA
    /// the exporter was not given (`OTEL_EXPORTER_OTLP_CERTIFICATE`), or the
    /// wrong one.
    UnknownIssuer,
    /// The collector's certificate is not valid for the name (or address)
    /// the endpoint uses.
    NameMismatch {
        /// The name the exporter connected to.
        expected: String,
    },
    /// The collector's certificate has expired.
    CertificateExpired,
    /// The collector's certificate is not valid yet.
    CertificateNotYetValid,
    /// Another problem with the collector's certificate.
    BadCertificate(String),
    /// The collector refused the client certificate, or asked for one and
    /// got none: a TLS alert such as `certificate_required`,
    /// `bad_certificate` or `unknown_ca`, or a connection closed before
    /// any answer after the server asked for a certificate. The text says
    /// which.
    ClientCertificateRejected(String),
    /// Anything else: another alert, a protocol error, a peer that does not
    /// speak TLS.
    Other(String),
}

impl TlsFailure {
    /// A short, stable name of the cause (for metrics labels and the
    /// once-per-cause log).
    pub fn kind(&self) -> &'static str {
        match self {
            TlsFailure::UnknownIssuer => "unknown_issuer",
            TlsFailure::NameMismatch { .. } => "name_mismatch",
            TlsFailure::CertificateExpired => "certificate_expired",
            TlsFailure::CertificateNotYetValid => "certificate_not_yet_valid",
            TlsFailure::BadCertificate(_) => "bad_certificate",
            TlsFailure::ClientCertificateRejected(_) => "client_certificate_rejected",
            TlsFailure::Other(_) => "other",
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::UnknownIssuer => f.write_str(
                "the server's certificate is signed by an unknown issuer (give the exporter its CA \
                 with OTEL_EXPORTER_OTLP_CERTIFICATE)",
            ),
            TlsFailure::NameMismatch { expected } => {
                write!(f, "the server's certificate is not valid for {expected}")
            }
            TlsFailure::CertificateExpired => f.write_str("the server's certificate has expired"),
            TlsFailure::CertificateNotYetValid => {
                f.write_str("the server's certificate is not valid yet")
            }
            TlsFailure::BadCertificate(m) => write!(f, "the server's certificate is invalid: {m}"),
            TlsFailure::ClientCertificateRejected(detail) => write!(
                f,
                "the server refused the client certificate ({detail}; check \
                 OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY)"
            ),
            TlsFailure::Other(m) => f.write_str(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::names::env::from_pairs as lookup;

    #[test]
    fn nothing_set_is_the_default() {
        let t = TlsConfig::from_lookup(Signal::Traces, |_| None).unwrap();
        assert_eq!(t, TlsConfig::default());
        assert!(!t.is_customized());
    }

    #[test]
    fn per_signal_variables_win_one_by_one() {
        let t = TlsConfig::from_lookup(
            Signal::Traces,
            lookup(&[
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/client.pem"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                    " /t-client.pem ",
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/key.pem"),
                ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "/logs-key.pem"),
                ("OTEL_EXPORTER_OTLP_INSECURE", "TRUE"),
                ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "False"),
                ("OBS_OTLP_TLS_ROOTS", "WebPKI"),
                ("OBS_OTLP_TRACES_TLS_ROOTS", ""),
            ]),
        )
        .unwrap();
        assert_eq!(t.ca_file, Some("/ca.pem".into()));
        assert_eq!(t.client_certificate_file, Some("/t-client.pem".into()));
        assert_eq!(t.client_key_file, Some("/key.pem".into()));
        assert!(
            !t.insecure,
            "the per-signal false wins over the generic true"
        );
        assert_eq!(t.roots, Some(TlsRoots::WebPki), "empty counts as unset");

        let l = TlsConfig::from_lookup(
            Signal::Logs,
            lookup(&[
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/client.pem"),
                ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "/logs-key.pem"),
                ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
                ("OBS_OTLP_LOGS_TLS_ROOTS", "SYSTEM"),
            ]),
        )
        .unwrap();
        assert_eq!(l.client_key_file, Some("/logs-key.pem".into()));
        assert!(l.insecure);
        assert_eq!(l.roots, Some(TlsRoots::System));
    }

    #[test]
    fn half_an_identity_and_bad_values_are_typed_env_errors() {
        let err = TlsConfig::from_lookup(
            Signal::Traces,
            lookup(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem")]),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Env { var, .. } if *var == "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"),
            "{err:?}"
        );
        assert!(err.to_string().contains("no client key"), "{err}");
        let err = TlsConfig::from_lookup(
            Signal::Metrics,
            lookup(&[("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "/k.pem")]),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Env { var, .. } if *var == "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE"),
            "{err:?}"
        );
        for (var, value, reason) in [
            ("OTEL_EXPORTER_OTLP_INSECURE", "yes", "true or false"),
            ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "1", "true or false"),
            ("OBS_OTLP_TLS_ROOTS", "native", "webpki or system"),
            ("OBS_OTLP_TRACES_TLS_ROOTS", "mozilla", "webpki or system"),
        ] {
            let err = TlsConfig::from_lookup(Signal::Traces, lookup(&[(var, value)])).unwrap_err();
            assert!(
                matches!(&err, Error::Env { var: v, value: got, .. } if *v == var && got == value),
                "{err:?}"
            );
            assert!(err.to_string().contains(reason), "{err}");
        }
    }

    #[test]
    fn grpc_urls_follow_insecure_only_without_a_scheme() {
        let secure = TlsConfig::new();
        let insecure = TlsConfig::new().insecure(true);
        assert_eq!(secure.grpc_url("c:4317").unwrap(), "https://c:4317");
        assert_eq!(insecure.grpc_url(" c:4317 ").unwrap(), "http://c:4317");
        assert_eq!(
            insecure.grpc_url("https://c:4317").unwrap(),
            "https://c:4317"
        );
        assert_eq!(secure.grpc_url("http://c:4317").unwrap(), "http://c:4317");
        assert_eq!(secure.grpc_url(""), None);
        assert_eq!(secure.grpc_url("/x"), None);
        assert_eq!(secure.grpc_url("ftp://c"), None);
    }

    #[test]
    fn failures_name_their_cause() {
        assert!(
            TlsFailure::UnknownIssuer
                .to_string()
                .contains("unknown issuer")
        );
        assert_eq!(
            TlsFailure::NameMismatch {
                expected: "c.example".into()
            }
            .kind(),
            "name_mismatch"
        );
    }
}
