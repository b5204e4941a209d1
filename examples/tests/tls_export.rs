//! The example service, configured by environment variables alone, exports
//! its spans and its log records over TLS with gzip: mutual TLS with a CA
//! made in the test, over OTLP/HTTP and over OTLP/gRPC, to a receiver that
//! requires the client certificate. The request's log records carry the
//! trace id of its server span and its correlation id.

mod common;

use std::time::Duration;

use common::{Http, Service, poll};
use obs_testing::otlp::{OtlpReceiver, PemFiles, ServerTls, TestPki, Transport};

fn exports_over_mtls_with_gzip(protocol: &str, transport: Transport) {
    let pki = TestPki::new("tls-e2e");
    let files = PemFiles::new();
    let ca = files.write("ca.pem", &pki.ca_pem());
    let client = pki.client_cert("service");
    let client_cert = files.write("client.pem", &client.cert_pem);
    let client_key = files.write("client-key.pem", &client.key_pem);
    let receiver = OtlpReceiver::start_tls(
        ServerTls::new(pki.server_cert(&["localhost", "127.0.0.1"]))
            .require_client_cert(pki.ca_pem()),
    );
    let endpoint = match transport {
        Transport::Grpc => receiver.grpc_url(),
        Transport::HttpProtobuf => receiver.http_base_url(),
    };
    assert!(endpoint.starts_with("https://"), "{endpoint}");
    let (ca, client_cert, client_key) = (
        ca.to_str().unwrap().to_owned(),
        client_cert.to_str().unwrap().to_owned(),
        client_key.to_str().unwrap().to_owned(),
    );
    let svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.as_str()),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            client_cert.as_str(),
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", client_key.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
        ("OTEL_TRACES_SAMPLER", "always_on"),
    ]);
    let http = Http::new();
    let resp = http.send(
        "GET",
        &svc.api("/items/1"),
        &[("x-correlation-id", "tls-e2e-1")],
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);

    let server = poll(Duration::from_secs(30), || {
        receiver
            .spans()
            .into_iter()
            .find(|s| s.kind() == 2 && s.name() == "GET /items/{id}")
    })
    .unwrap_or_else(|| panic!("the server span arrived over TLS\n{}", svc.output()));
    assert_eq!(server.attr("http.route").as_deref(), Some("/items/{id}"));

    // The request's log records, over the same connection settings.
    let trace_id = server.trace_id();
    let records = poll(Duration::from_secs(30), || {
        let of_request: Vec<_> = receiver
            .logs()
            .into_iter()
            .filter(|l| l.trace_id() == trace_id)
            .collect();
        (!of_request.is_empty()).then_some(of_request)
    })
    .unwrap_or_else(|| {
        panic!(
            "the request's log records arrived over TLS\n{}",
            svc.output()
        )
    });
    for r in &records {
        assert_eq!(r.transport, transport);
        assert_eq!(
            r.attr("correlation_id").as_deref(),
            Some("tls-e2e-1"),
            "{r:?}"
        );
        assert!(
            !r.span_id().is_empty() && r.record.severity_number > 0,
            "{r:?}"
        );
        assert_eq!(
            r.resource.get("telemetry.sdk.name").map(String::as_str),
            Some("obs-log")
        );
    }

    let encodings = receiver.encodings();
    assert!(!encodings.is_empty());
    for e in &encodings {
        assert_eq!(e.transport, transport, "{encodings:?}");
        assert_eq!(e.encoding.as_deref(), Some("gzip"), "{encodings:?}");
    }
    let sessions = receiver.tls_sessions();
    assert!(
        sessions
            .iter()
            .any(|s| s.transport == transport && s.client_certificate.as_deref() == Some("service")),
        "the service presented its client certificate: {sessions:?}"
    );
}

#[test]
fn the_service_exports_spans_and_logs_over_mtls_with_gzip_over_http() {
    exports_over_mtls_with_gzip("http/protobuf", Transport::HttpProtobuf);
}

#[test]
fn the_service_exports_spans_and_logs_over_mtls_with_gzip_over_grpc() {
    exports_over_mtls_with_gzip("grpc", Transport::Grpc);
}
