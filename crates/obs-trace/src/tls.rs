//! TLS settings of the OTLP span exporter, read from the standard variables.
//!
//! [`TlsConfig`] holds what the OpenTelemetry specification lets an operator
//! configure for a secure OTLP connection: a custom CA
//! (`OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`), a client certificate and key
//! for mutual TLS (`..._CLIENT_CERTIFICATE`, `..._CLIENT_KEY`),
//! `..._INSECURE` for scheme-less gRPC endpoints, and obs's
//! `OBS_OTLP_[TRACES_]TLS_ROOTS` (`webpki` or `system`). The types live in
//! `obs_core::otlp`, shared with obs-log's log exporter; this module
//! re-exports them.
//!
//! With the `tls` feature the exporters load the files when they are built
//! (an unreadable or invalid file is an [`Error::TlsFile`](crate::Error::TlsFile)
//! naming it) and speak TLS (rustls, `ring` provider, no OpenSSL) to
//! `https://` endpoints; a failed handshake at export time is an
//! [`Error::Tls`](crate::Error::Tls) naming the peer and a [`TlsFailure`].
//!
//! Roots: without a custom CA the collector's certificate is checked
//! against the Mozilla roots compiled in (`webpki-roots`), or the operating
//! system's store with [`TlsRoots::System`]. A custom CA *replaces* those
//! roots (only that CA is trusted) unless a store is named explicitly, in
//! which case the CA is trusted in addition to it.
//!
//! ```
//! use obs_trace::tls::{Signal, TlsConfig, TlsRoots};
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

pub use obs_core::otlp::{Signal, TlsConfig, TlsFailure, TlsRoots};
