//! OTLP log export against the obs-testing receiver (the official
//! `opentelemetry-proto` types over real HTTP and gRPC on loopback),
//! configured from the standard variables alone: what a record carries,
//! both protocols, gzip, TLS with a custom CA and with mTLS, a wrong CA
//! (typed error naming the peer, records counted as dropped), a full queue
//! (dropped and counted, the logging thread never waits), a dead collector
//! (bounded shutdown that says what was lost), and a TLS file error at build
//! time.
#![cfg(all(
    feature = "otlp",
    feature = "otlp-grpc",
    feature = "tls",
    feature = "gzip"
))]

use std::time::Duration;

use obs_core::{CorrelationId, IdRecord, SpanId, TraceFlags, TraceId};
use obs_log::Config;
use obs_testing::capture::SharedBuf;
use obs_testing::otlp::{OtlpReceiver, PemFiles, ServerTls, TestPki, Transport};
use tracing_subscriber::layer::SubscriberExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

fn lookup(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |k| {
        pairs
            .iter()
            .find(|(pk, _)| *pk == k)
            .map(|(_, v)| v.clone())
    }
}

fn vars(
    endpoint: String,
    protocol: &str,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("OTEL_SERVICE_NAME", "logs-test".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_BLRP_SCHEDULE_DELAY", "20".to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000".to_owned()),
    ];
    v.extend(extra.iter().map(|(k, val)| (*k, (*val).to_owned())));
    v
}

/// Logs inside a span carrying trace and correlation ids, then one line
/// outside any span; returns the guard's shutdown report.
fn log_some(
    config: Config,
    n: usize,
) -> (
    obs_log::ShutdownReport,
    Option<obs_log::otlp::OtlpStats>,
    SharedBuf,
) {
    let buf = SharedBuf::default();
    let (layer, handles) = obs_log::layer(config.writer(buf.clone())).expect("layer builds");
    let stats = handles.guard.otlp_stats();
    let subscriber = tracing_subscriber::registry().with(layer);
    obs_testing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", route = "/orders/{id}");
        IdRecord::update_span_id(&span.id().unwrap(), |r| {
            *r = IdRecord::with_trace(
                TraceId::from_hex(TRACE).unwrap(),
                SpanId::from_hex(SPAN).unwrap(),
                TraceFlags::SAMPLED,
            );
            r.correlation_id = Some(CorrelationId::parse("req-7").unwrap());
        });
        let _e = span.enter();
        for i in 0..n {
            tracing::warn!(target: "shop::orders", order = i as u64, paid = false, ratio = 0.25, password = "hunter2", "order {} is late", i);
        }
        drop(_e);
        tracing::info!(target: "shop::boot", "outside any span");
    });
    let report = handles.guard.shutdown(Duration::from_secs(10));
    (report, stats, buf)
}

#[test]
fn records_carry_everything_over_http_with_gzip() {
    let receiver = OtlpReceiver::start();
    let config = Config::from_lookup(lookup(vars(
        receiver.http_base_url(),
        "http/protobuf",
        &[("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "GZIP")],
    )))
    .unwrap();
    let (report, stats, buf) = log_some(config, 3);
    assert!(report.completed, "{report}");
    let otlp = report.otlp.as_ref().expect("the OTLP report");
    assert_eq!((otlp.exported, otlp.dropped), (4, 0), "{report}");
    assert_eq!(stats.unwrap().exported(), 4);
    assert_eq!(buf.json_lines().len(), 4, "the lines are still written");

    let logs = receiver.wait_for_logs(4, Duration::from_secs(10));
    let late: Vec<_> = logs.iter().filter(|l| l.scope == "shop::orders").collect();
    assert_eq!(late.len(), 3);
    let r = late[0];
    assert_eq!(r.transport, Transport::HttpProtobuf);
    assert_eq!(r.body(), "order 0 is late");
    assert_eq!(r.record.severity_number, 13);
    assert_eq!(r.record.severity_text, "WARN");
    assert_eq!(r.trace_id(), TRACE);
    assert_eq!(r.span_id(), SPAN);
    assert_eq!(r.record.flags & 0xff, 1, "sampled");
    assert!(r.record.time_unix_nano > 0);
    assert_eq!(r.record.observed_time_unix_nano, r.record.time_unix_nano);
    assert_eq!(r.attr("order").as_deref(), Some("0"));
    assert_eq!(r.attr("paid").as_deref(), Some("false"));
    assert_eq!(r.attr("ratio").as_deref(), Some("0.25"));
    assert_eq!(
        r.attr("route").as_deref(),
        Some("/orders/{id}"),
        "span fields, as on the line"
    );
    assert_eq!(r.attr("correlation_id").as_deref(), Some("req-7"));
    assert_eq!(
        r.attr("password").as_deref(),
        Some("[REDACTED]"),
        "redacted as on the line"
    );
    assert_eq!(
        r.resource.get("service.name").map(String::as_str),
        Some("logs-test")
    );
    assert_eq!(
        r.resource.get("telemetry.sdk.name").map(String::as_str),
        Some("obs-log")
    );
    let outside = logs.iter().find(|l| l.scope == "shop::boot").unwrap();
    assert_eq!(outside.trace_id(), "", "no span, no trace id");
    assert_eq!(outside.record.severity_number, 9);
    let encodings = receiver.encodings();
    assert!(
        !encodings.is_empty()
            && encodings
                .iter()
                .all(|e| e.encoding.as_deref() == Some("gzip")),
        "{encodings:?}"
    );
}

#[test]
fn grpc_with_a_custom_ca_and_mutual_tls() {
    let pki = TestPki::new("logs-ca");
    let files = PemFiles::new();
    let ca = files.write("ca.pem", &pki.ca_pem());
    let client = pki.client_cert("logs-client");
    let cert = files.write("client.pem", &client.cert_pem);
    let key = files.write("client-key.pem", &client.key_pem);
    let receiver = OtlpReceiver::start_tls(
        ServerTls::new(pki.server_cert(&["localhost"])).require_client_cert(pki.ca_pem()),
    );
    let endpoint = format!("https://localhost:{}", receiver.grpc_addr().port());
    let ca = ca.display().to_string();
    let cert = cert.display().to_string();
    let key = key.display().to_string();
    let config = Config::from_lookup(lookup(vars(
        endpoint,
        "grpc",
        &[
            ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", &ca),
            ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", &cert),
            ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", &key),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ],
    )))
    .unwrap();
    let (report, _, _) = log_some(config, 2);
    assert!(report.completed, "{report}");
    let logs = receiver.wait_for_logs(3, Duration::from_secs(10));
    assert!(logs.iter().all(|l| l.transport == Transport::Grpc));
    assert!(logs.iter().any(|l| l.trace_id() == TRACE));
    let sessions = receiver.tls_sessions();
    assert!(
        sessions
            .iter()
            .any(|s| s.client_certificate.as_deref() == Some("logs-client")),
        "the client presented its certificate: {sessions:?}"
    );
}

#[test]
fn a_wrong_ca_is_a_typed_failure_and_the_records_are_counted() {
    let right = TestPki::new("right-ca");
    let wrong = TestPki::new("wrong-ca");
    let files = PemFiles::new();
    let ca = files
        .write("wrong.pem", &wrong.ca_pem())
        .display()
        .to_string();
    let receiver = OtlpReceiver::start_tls(ServerTls::new(right.server_cert(&["localhost"])));
    let endpoint = format!("https://localhost:{}", receiver.http_addr().port());
    let config = Config::from_lookup(lookup(vars(
        endpoint,
        "http/protobuf",
        &[("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca)],
    )))
    .unwrap();
    let (report, stats, buf) = log_some(config, 2);
    let stats = stats.unwrap();
    assert_eq!(stats.exported(), 0);
    assert_eq!(stats.dropped_export_failed(), 3, "every record counted");
    let err = stats.last_export_error().expect("the failure is kept");
    assert!(err.contains("TLS handshake with localhost:"), "{err}");
    assert!(err.contains("unknown issuer"), "{err}");
    // Reported once as a line, straight to the writer.
    let warnings: Vec<_> = buf
        .json_lines()
        .into_iter()
        .filter(|l| {
            l["target"] == "obs_log"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("otlp log export"))
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown issuer")),
        "{warnings:?}"
    );
    let otlp = report.otlp.unwrap();
    assert_eq!(otlp.dropped, 3);
    assert!(receiver.logs().is_empty());
}

#[test]
fn a_missing_ca_file_fails_the_build_naming_the_file() {
    let config = Config::from_lookup(lookup(vars(
        "https://localhost:1".into(),
        "http/protobuf",
        &[(
            "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
            "/nonexistent/obs-ca.pem",
        )],
    )))
    .unwrap();
    let err = obs_log::layer(config.writer(std::io::sink())).unwrap_err();
    assert!(
        matches!(
            &err,
            obs_log::Error::Otlp(obs_core::otlp::Error::TlsFile {
                what: "CA certificate",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("/nonexistent/obs-ca.pem"), "{err}");
}

#[test]
fn a_full_queue_drops_and_counts_and_shutdown_is_bounded() {
    // A collector that accepts the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let config = Config::from_lookup(lookup(vars(
        endpoint,
        "http/protobuf",
        &[
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "5"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "30000"),
        ],
    )))
    .unwrap();
    let buf = SharedBuf::default();
    let (layer, handles) = obs_log::layer(config.writer(buf.clone())).unwrap();
    let stats = handles.guard.otlp_stats().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let started = std::time::Instant::now();
    obs_testing::subscriber::with_default(subscriber, || {
        for i in 0..1_000 {
            tracing::info!(i, "burst");
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "logging never waits for the collector"
    );
    assert!(stats.dropped_queue_full() >= 1_000 - 10 - 5, "{stats:?}");
    let t = std::time::Instant::now();
    let report = handles.guard.shutdown(Duration::from_millis(300));
    assert!(t.elapsed() < Duration::from_secs(3), "shutdown is bounded");
    let otlp = report.otlp.clone().unwrap();
    assert!(!otlp.completed, "{report}");
    assert_eq!(otlp.exported, 0);
    assert_eq!(
        otlp.dropped, 1_000,
        "every record is counted, the batch in flight included: {report}"
    );
    assert!(
        report.to_string().contains("otlp log exporter timed out"),
        "{report}"
    );
    drop(silent);
}

#[test]
fn logs_exporter_none_turns_export_off() {
    let receiver = OtlpReceiver::start();
    let config = Config::from_lookup(lookup(vars(
        receiver.http_base_url(),
        "http/protobuf",
        &[("OTEL_LOGS_EXPORTER", "None")],
    )))
    .unwrap();
    let (report, stats, buf) = log_some(config, 1);
    assert!(stats.is_none() && report.otlp.is_none());
    assert_eq!(buf.json_lines().len(), 2);
    std::thread::sleep(Duration::from_millis(100));
    assert!(receiver.logs().is_empty());
}
