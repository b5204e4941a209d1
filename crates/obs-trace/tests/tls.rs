//! OTLP over TLS against real loopback peers: the obs-testing receiver
//! serves HTTPS and gRPC over TLS with a CA generated here (rcgen), and the
//! exporters are configured from the standard `OTEL_*` variables alone.
//!
//! Covered: a custom CA over both protocols (and a scheme-less gRPC
//! endpoint, TLS by default), mutual TLS, a wrong CA (typed error naming the
//! peer, drops counted, logged once), a name mismatch, a client certificate
//! the server refuses, gzip bodies over TLS, the webpki roots by default
//! (an https endpoint without a custom CA fails with an unknown issuer:
//! nothing is accepted blindly), the system store option, and file errors
//! at init.
#![cfg(all(feature = "tls", feature = "otlp-http", feature = "otlp-grpc"))]

use std::path::PathBuf;
use std::time::Duration;

use obs_testing::capture::CaptureLayer;
use obs_testing::otlp::{OtlpReceiver, PemFiles, ServerTls, TestPki, Transport};
use obs_trace::tls::TlsFailure;
use obs_trace::{Config, Error, ShutdownReport, TraceStats, TracerProvider};
use tracing_subscriber::layer::SubscriberExt;

/// A CA, a receiver serving its certificate for `names`, and the CA's PEM
/// file.
struct Peer {
    pki: TestPki,
    files: PemFiles,
    ca: PathBuf,
}

impl Peer {
    fn new(name: &str) -> Self {
        let pki = TestPki::new(name);
        let files = PemFiles::new();
        let ca = files.write("ca.pem", &pki.ca_pem());
        Self { pki, files, ca }
    }

    fn receiver(&self, names: &[&str]) -> OtlpReceiver {
        OtlpReceiver::start_tls(ServerTls::new(self.pki.server_cert(names)))
    }
}

/// Environment variables, in order.
type Vars = Vec<(&'static str, String)>;

fn lookup(pairs: Vars) -> impl Fn(&str) -> Option<String> {
    move |k| {
        pairs
            .iter()
            .find(|(pk, _)| *pk == k)
            .map(|(_, v)| v.clone())
    }
}

/// The variables of a service exporting to `endpoint` over `protocol`, in
/// batches of two spans.
fn env(
    endpoint: String,
    protocol: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("OTEL_SERVICE_NAME", "tls-test".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "20".to_owned()),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2".to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000".to_owned()),
    ];
    v.extend(extra.iter().cloned());
    v
}

fn config(vars: Vec<(&'static str, String)>) -> Config {
    Config::from_lookup(lookup(vars)).expect("the variables are valid")
}

/// Builds the provider under a capturing subscriber (where its export
/// failures are reported), ends `n` spans and shuts down.
fn run(config: Config, n: usize) -> (ShutdownReport, TraceStats, CaptureLayer) {
    let capture = CaptureLayer::new();
    let reports =
        obs_testing::subscriber::dispatch(tracing_subscriber::registry().with(capture.clone()));
    let provider =
        tracing::dispatcher::with_default(&reports, || TracerProvider::from_config(config))
            .expect("the provider builds");
    obs_testing::subscriber::with_default(
        tracing_subscriber::registry().with(provider.layer()),
        || {
            for i in 0..n {
                let _s = tracing::info_span!("tls-span", i).entered();
            }
        },
    );
    let report = provider.shutdown(Duration::from_secs(20));
    (report, provider.stats(), capture)
}

fn export_ok(receiver: &OtlpReceiver, vars: Vec<(&'static str, String)>, n: usize) {
    let (report, stats, _) = run(config(vars), n);
    assert_eq!(
        (report.exported, report.dropped),
        (n as u64, 0),
        "{:?}",
        stats.last_export_error()
    );
    let spans = receiver.wait_for_spans(n, Duration::from_secs(5));
    assert_eq!(spans.len(), n);
    assert!(spans.iter().all(|s| s.name() == "tls-span"));
    assert_eq!(
        spans[0].resource.get("service.name").map(String::as_str),
        Some("tls-test")
    );
}

/// Exports `n` spans that must all fail with a TLS error; returns it.
fn export_refused(vars: Vec<(&'static str, String)>, n: usize) -> (Error, CaptureLayer) {
    let (report, stats, capture) = run(config(vars), n);
    assert_eq!((report.exported, report.dropped), (0, n as u64));
    assert_eq!(
        stats.dropped_export_failed(),
        n as u64,
        "every span is counted"
    );
    let err = stats.last_export_error().expect("a typed error is kept");
    assert_eq!(stats.last_error(), Some(err.to_string()));
    (err, capture)
}

fn tls_reason(err: &Error, peer: std::net::SocketAddr) -> TlsFailure {
    match err {
        Error::Tls { peer: p, reason } => {
            assert_eq!(*p, peer.to_string(), "the error names the peer");
            assert!(err.to_string().contains(&peer.to_string()), "{err}");
            reason.clone()
        }
        other => panic!("expected Error::Tls, got {other:?}"),
    }
}

#[test]
fn custom_ca_over_http() {
    let peer = Peer::new("http");
    let receiver = peer.receiver(&["127.0.0.1"]);
    assert!(receiver.http_base_url().starts_with("https://"));
    export_ok(
        &receiver,
        env(
            receiver.http_base_url(),
            "http/protobuf",
            &[(
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                peer.ca.display().to_string(),
            )],
        ),
        5,
    );
    let sessions = receiver.tls_sessions();
    assert!(!sessions.is_empty());
    for s in &sessions {
        assert_eq!(s.transport, Transport::HttpProtobuf);
        assert_eq!(s.alpn.as_deref(), Some("http/1.1"));
        assert_eq!(s.client_certificate, None);
    }
}

#[test]
fn custom_ca_over_grpc_with_a_scheme_less_endpoint() {
    let peer = Peer::new("grpc");
    let receiver = peer.receiver(&["localhost", "127.0.0.1"]);
    // No scheme and no OTEL_EXPORTER_OTLP_INSECURE: TLS, as the spec says.
    let endpoint = receiver.grpc_addr().to_string();
    let vars = env(
        endpoint,
        "grpc",
        &[(
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            peer.ca.display().to_string(),
        )],
    );
    let cfg = config(vars.clone());
    assert!(cfg.exporter.unwrap().endpoint.starts_with("https://"));
    export_ok(&receiver, vars, 5);
    let sessions = receiver.tls_sessions();
    assert!(!sessions.is_empty());
    for s in &sessions {
        assert_eq!(s.transport, Transport::Grpc);
        assert_eq!(s.alpn.as_deref(), Some("h2"));
    }
}

#[test]
fn insecure_makes_a_scheme_less_grpc_endpoint_plain_text() {
    let receiver = OtlpReceiver::start();
    let vars = env(
        receiver.grpc_addr().to_string(),
        "grpc",
        &[("OTEL_EXPORTER_OTLP_INSECURE", "True".to_owned())],
    );
    assert!(
        config(vars.clone())
            .exporter
            .unwrap()
            .endpoint
            .starts_with("http://")
    );
    export_ok(&receiver, vars, 3);
}

#[test]
fn mutual_tls_over_http_and_grpc() {
    let peer = Peer::new("server");
    let clients = TestPki::new("clients");
    let client = clients.client_cert("exporter-1");
    let cert = peer.files.write("client.pem", &client.cert_pem);
    let key = peer.files.write("client-key.pem", &client.key_pem);
    let receiver = OtlpReceiver::start_tls(
        ServerTls::new(peer.pki.server_cert(&["127.0.0.1"])).require_client_cert(clients.ca_pem()),
    );
    // The generic variables over HTTP ...
    export_ok(
        &receiver,
        env(
            receiver.http_base_url(),
            "http/protobuf",
            &[
                (
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    peer.ca.display().to_string(),
                ),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    cert.display().to_string(),
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key.display().to_string()),
            ],
        ),
        4,
    );
    // ... the per-signal ones over gRPC, winning over wrong generic ones.
    receiver.clear();
    export_ok(
        &receiver,
        env(
            receiver.grpc_url(),
            "grpc",
            &[
                (
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    "/nonexistent/ca.pem".to_owned(),
                ),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                    peer.ca.display().to_string(),
                ),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    "/nonexistent/c.pem".to_owned(),
                ),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                    cert.display().to_string(),
                ),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                    key.display().to_string(),
                ),
            ],
        ),
        4,
    );
    let sessions = receiver.tls_sessions();
    assert!(
        sessions
            .iter()
            .any(|s| s.transport == Transport::HttpProtobuf)
    );
    assert!(sessions.iter().any(|s| s.transport == Transport::Grpc));
    for s in &sessions {
        assert_eq!(s.client_certificate.as_deref(), Some("exporter-1"), "{s:?}");
    }
}

#[test]
fn a_missing_client_certificate_is_refused_by_the_server() {
    let peer = Peer::new("mtls");
    let clients = TestPki::new("clients");
    let receiver = OtlpReceiver::start_tls(
        ServerTls::new(peer.pki.server_cert(&["127.0.0.1"])).require_client_cert(clients.ca_pem()),
    );
    // A client certificate from a CA the server does not trust.
    let stranger = TestPki::new("stranger").client_cert("intruder");
    let cert = peer.files.write("stranger.pem", &stranger.cert_pem);
    let key = peer.files.write("stranger-key.pem", &stranger.key_pem);
    for (url, addr, protocol, identity) in [
        (
            receiver.http_base_url(),
            receiver.http_addr(),
            "http/protobuf",
            false,
        ),
        (receiver.grpc_url(), receiver.grpc_addr(), "grpc", false),
        (
            receiver.http_base_url(),
            receiver.http_addr(),
            "http/protobuf",
            true,
        ),
        (receiver.grpc_url(), receiver.grpc_addr(), "grpc", true),
    ] {
        let mut extra = vec![(
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            peer.ca.display().to_string(),
        )];
        if identity {
            extra.push((
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                cert.display().to_string(),
            ));
            extra.push(("OTEL_EXPORTER_OTLP_CLIENT_KEY", key.display().to_string()));
        }
        let (err, _) = export_refused(env(url, protocol, &extra), 2);
        let reason = tls_reason(&err, addr);
        assert!(
            matches!(reason, TlsFailure::ClientCertificateRejected(_)),
            "{protocol} identity={identity}: {err}"
        );
    }
    assert!(receiver.spans().is_empty());
    assert!(
        receiver.tls_failures().len() >= 4,
        "{:?}",
        receiver.tls_failures()
    );
}

#[test]
fn a_wrong_ca_is_refused_with_a_typed_error_logged_once() {
    let peer = Peer::new("right");
    let wrong = Peer::new("wrong");
    let receiver = peer.receiver(&["127.0.0.1"]);
    for (url, addr, protocol) in [
        (
            receiver.http_base_url(),
            receiver.http_addr(),
            "http/protobuf",
        ),
        (receiver.grpc_url(), receiver.grpc_addr(), "grpc"),
    ] {
        let (err, capture) = export_refused(
            env(
                url,
                protocol,
                &[(
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    wrong.ca.display().to_string(),
                )],
            ),
            6,
        );
        assert_eq!(
            tls_reason(&err, addr),
            TlsFailure::UnknownIssuer,
            "{protocol}"
        );
        assert!(err.to_string().contains("unknown issuer"), "{err}");
        // Three batches failed the same way: one WARN line.
        let warns: Vec<_> = capture
            .events()
            .into_iter()
            .filter(|e| e.target == "obs_trace::export")
            .collect();
        assert_eq!(warns.len(), 1, "{protocol}: {warns:?}");
        assert_eq!(warns[0].level, tracing::Level::WARN);
        let logged = &warns[0].fields["error"];
        assert!(
            logged.contains(&addr.to_string()) && logged.contains("unknown issuer"),
            "{logged}"
        );
    }
    assert!(receiver.spans().is_empty());
    assert!(
        !receiver.tls_failures().is_empty(),
        "the server saw the refusals"
    );
}

#[test]
fn a_certificate_for_another_name_is_a_name_mismatch() {
    let peer = Peer::new("names");
    let receiver = peer.receiver(&["collector.test"]);
    for (url, addr, protocol) in [
        (
            receiver.http_base_url(),
            receiver.http_addr(),
            "http/protobuf",
        ),
        (receiver.grpc_url(), receiver.grpc_addr(), "grpc"),
    ] {
        let (err, _) = export_refused(
            env(
                url,
                protocol,
                &[(
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    peer.ca.display().to_string(),
                )],
            ),
            2,
        );
        assert_eq!(
            tls_reason(&err, addr),
            TlsFailure::NameMismatch {
                expected: "127.0.0.1".into()
            },
            "{protocol}"
        );
    }
}

#[test]
fn gzip_over_tls_on_both_protocols() {
    let peer = Peer::new("gzip");
    let receiver = peer.receiver(&["127.0.0.1"]);
    let ca = (
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        peer.ca.display().to_string(),
    );
    export_ok(
        &receiver,
        env(
            receiver.http_base_url(),
            "http/protobuf",
            &[
                ca.clone(),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP".to_owned()),
            ],
        ),
        4,
    );
    receiver.clear();
    export_ok(
        &receiver,
        env(
            receiver.grpc_url(),
            "grpc",
            &[
                ca,
                ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip".to_owned()),
            ],
        ),
        4,
    );
    let encodings = receiver.encodings();
    let http: Vec<_> = encodings
        .iter()
        .filter(|e| e.transport == Transport::HttpProtobuf)
        .collect();
    let grpc: Vec<_> = encodings
        .iter()
        .filter(|e| e.transport == Transport::Grpc)
        .collect();
    assert!(!http.is_empty() && !grpc.is_empty(), "{encodings:?}");
    for e in http {
        // The receiver gunzipped the body because of this header.
        assert_eq!(e.encoding.as_deref(), Some("gzip"), "{e:?}");
    }
    for e in grpc {
        assert_eq!(e.encoding.as_deref(), Some("gzip"), "{e:?}");
        assert_eq!(e.compressed_flag, Some(true), "{e:?}");
    }
}

#[test]
fn without_a_custom_ca_the_webpki_roots_refuse_the_test_ca() {
    let peer = Peer::new("untrusted");
    let receiver = peer.receiver(&["127.0.0.1"]);
    for (url, addr, protocol) in [
        (
            receiver.http_base_url(),
            receiver.http_addr(),
            "http/protobuf",
        ),
        (receiver.grpc_url(), receiver.grpc_addr(), "grpc"),
    ] {
        let (err, _) = export_refused(env(url, protocol, &[]), 2);
        assert_eq!(
            tls_reason(&err, addr),
            TlsFailure::UnknownIssuer,
            "{protocol}"
        );
    }
    assert!(receiver.spans().is_empty());
}

#[test]
fn the_system_store_is_used_when_asked_and_a_custom_ca_joins_it() {
    let peer = Peer::new("system");
    let receiver = peer.receiver(&["127.0.0.1"]);
    let system = ("OBS_OTLP_TLS_ROOTS", "System".to_owned());
    // The system store alone does not know the test CA.
    let (err, _) = export_refused(
        env(
            receiver.http_base_url(),
            "http/protobuf",
            std::slice::from_ref(&system),
        ),
        2,
    );
    assert_eq!(
        tls_reason(&err, receiver.http_addr()),
        TlsFailure::UnknownIssuer
    );
    // With a custom CA and a store named, the CA is trusted in addition.
    export_ok(
        &receiver,
        env(
            receiver.grpc_url(),
            "grpc",
            &[
                system,
                (
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    peer.ca.display().to_string(),
                ),
            ],
        ),
        2,
    );
}

#[test]
fn unusable_files_fail_at_init_naming_the_file() {
    let peer = Peer::new("files");
    let receiver = peer.receiver(&["127.0.0.1"]);
    let other = TestPki::new("other").client_cert("a");
    let mine = peer.pki.client_cert("b");
    let cert = peer.files.write("cert.pem", &mine.cert_pem);
    let wrong_key = peer.files.write("wrong-key.pem", &other.key_pem);
    let empty = peer.files.write("empty.pem", "");
    let missing = peer.files.dir().join("missing.pem");
    for protocol in ["http/protobuf", "grpc"] {
        let url = if protocol == "grpc" {
            receiver.grpc_url()
        } else {
            receiver.http_base_url()
        };
        let cases: [(Vars, &str, &PathBuf); 3] = [
            (
                vec![(
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    missing.display().to_string(),
                )],
                "CA certificate",
                &missing,
            ),
            (
                vec![(
                    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                    empty.display().to_string(),
                )],
                "CA certificate",
                &empty,
            ),
            (
                vec![
                    (
                        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                        cert.display().to_string(),
                    ),
                    (
                        "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                        wrong_key.display().to_string(),
                    ),
                ],
                "client key",
                &wrong_key,
            ),
        ];
        for (extra, what, path) in cases {
            let err = TracerProvider::from_config(config(env(url.clone(), protocol, &extra)))
                .expect_err("init must fail");
            assert!(
                matches!(&err, Error::TlsFile { what: w, path: p, .. } if *w == what && p == path),
                "{protocol}: {err:?}"
            );
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
        }
    }
}

#[test]
fn the_builder_takes_the_same_settings_as_the_environment() {
    let peer = Peer::new("builder");
    let clients = TestPki::new("clients");
    let client = clients.client_cert("built-in-code");
    let cert = peer.files.write("client.pem", &client.cert_pem);
    let key = peer.files.write("client-key.pem", &client.key_pem);
    let receiver = OtlpReceiver::start_tls(
        ServerTls::new(peer.pki.server_cert(&["127.0.0.1"])).require_client_cert(clients.ca_pem()),
    );
    let tls = obs_trace::TlsConfig::new()
        .ca_file(&peer.ca)
        .client_identity(&cert, &key);
    let batch = obs_trace::BatchConfig {
        max_queue_size: 64,
        schedule_delay: Duration::from_millis(20),
        max_export_batch_size: 2,
        export_timeout: Duration::from_secs(5),
    };
    for cfg in [
        Config::default().otlp_http(receiver.http_traces_url()),
        Config::default().otlp_grpc(receiver.grpc_url()),
    ] {
        receiver.clear();
        let cfg = cfg.service("tls-test").tls(tls.clone()).batch(batch);
        let (report, stats, _) = run(cfg, 3);
        assert_eq!(
            (report.exported, report.dropped),
            (3, 0),
            "{:?}",
            stats.last_export_error()
        );
        assert_eq!(receiver.wait_for_spans(3, Duration::from_secs(5)).len(), 3);
    }
    let sessions = receiver.tls_sessions();
    assert!(sessions.iter().any(|s| s.transport == Transport::Grpc));
    assert!(
        sessions
            .iter()
            .all(|s| s.client_certificate.as_deref() == Some("built-in-code"))
    );
}
