//! The Sentry sink against a local HTTP endpoint: the official `sentry`
//! client (ureq transport) posts the envelope to a hyper server on
//! loopback; the envelope parses and carries the report's fields.

mod common;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use obs_errors::sentry::SentrySink;
use obs_errors::{BacktraceMode, Config, Reporter, RequestContext, Scope, User};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug)]
struct PaymentError(std::io::Error);

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("payment declined: api_key=sk_live_abcdefghijklmnop1234")
    }
}

impl std::error::Error for PaymentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

struct Received {
    path: String,
    auth: String,
    body: Vec<u8>,
}

/// A one-route hyper server that forwards every request body to a channel.
fn start_server(rt: &tokio::runtime::Runtime) -> (u16, std::sync::mpsc::Receiver<Received>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let auth = req
                                .headers()
                                .get("x-sentry-auth")
                                .map(|v| v.to_str().unwrap_or_default().to_owned())
                                .unwrap_or_default();
                            let body = req.into_body().collect().await?.to_bytes().to_vec();
                            let _ = tx.send(Received { path, auth, body });
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"{}"),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (port, rx)
}

#[test]
fn envelope_reaches_a_local_endpoint_and_carries_the_report() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (port, received) = start_server(&rt);

    let mut options = sentry::ClientOptions::new();
    options.dsn = Some(
        format!("http://publickey@127.0.0.1:{port}/42")
            .parse()
            .unwrap(),
    );
    options.transport = Some(Arc::new(sentry::transports::DefaultTransportFactory));
    let client = sentry::Client::from(options);
    let hub = Arc::new(sentry::Hub::new(
        Some(Arc::new(client)),
        Arc::new(sentry::Scope::default()),
    ));
    let config = Config::new(
        obs_core::Resource::new("checkout")
            .with_version("1.4.0")
            .with_environment("staging"),
    )
    .backtrace(BacktraceMode::Always);
    let reporter = Reporter::builder(config)
        .sink(SentrySink::new(hub))
        .build()
        .unwrap();

    let subscriber = tracing_subscriber::registry().with(reporter.layer());
    let (trace_id, span_id, correlation_id) =
        obs_testing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request");
            let ids = common::stamp_ids(&span, "req-sentry-1");
            let _g = span.enter();
            tracing::info!(cart = 3, "checkout started");
            tracing::warn!("card needs 3-D Secure");
            let mut scope = Scope::new();
            scope.set_user(User::id("u-9").with_email("ann@example.com"));
            scope.set_tag("tenant", "acme");
            scope.set_request(
                RequestContext::new("POST")
                    .with_route("/checkout/{cart}")
                    .with_header("authorization", "Bearer abcdefghijklmnop")
                    .with_header("accept", "application/json"),
            );
            obs_errors::with_scope(scope, || {
                for _ in 0..3 {
                    reporter.capture_error(&PaymentError(std::io::Error::other("gateway timeout")));
                }
            });
            ids
        });
    reporter.flush(Duration::from_secs(20)).unwrap();

    let got = received
        .recv_timeout(Duration::from_secs(30))
        .expect("the envelope reached the endpoint");
    assert_eq!(got.path, "/api/42/envelope/");
    assert!(got.auth.contains("sentry_key=publickey"), "{}", got.auth);
    let raw = String::from_utf8_lossy(&got.body);
    assert!(
        !raw.contains("sk_live_abcdefghijklmnop1234"),
        "scrubbed before leaving"
    );
    assert!(
        !raw.contains("abcdefghijklmnop\""),
        "authorization header redacted"
    );

    let envelope = sentry::Envelope::from_slice(&got.body).expect("envelope parses");
    let event = envelope
        .items()
        .find_map(|i| match i {
            sentry::protocol::EnvelopeItem::Event(e) => Some(e.clone()),
            _ => None,
        })
        .expect("an event item");
    let exc = &event.exception.values;
    assert_eq!(exc.len(), 2);
    assert_eq!(
        exc[0].value.as_deref(),
        Some("gateway timeout"),
        "root cause first"
    );
    let top = exc.last().unwrap();
    assert!(top.ty.ends_with("PaymentError"));
    assert_eq!(
        top.value.as_deref(),
        Some("payment declined: api_key=[REDACTED]")
    );
    assert_eq!(top.mechanism.as_ref().map(|m| m.ty.as_str()), Some("error"));
    let frames = &top.stacktrace.as_ref().expect("stack trace").frames;
    assert!(frames.iter().any(|f| {
        f.function
            .as_deref()
            .is_some_and(|n| n.contains("envelope_reaches"))
    }));
    assert_eq!(event.level, sentry::Level::Error);
    assert_eq!(event.release.as_deref(), Some("checkout@1.4.0"));
    assert_eq!(event.environment.as_deref(), Some("staging"));
    assert_eq!(event.tags.get("tenant").map(String::as_str), Some("acme"));
    assert_eq!(event.tags.get("correlation_id"), Some(&correlation_id));
    assert_eq!(event.tags.get("trace_id"), Some(&trace_id));
    assert_eq!(event.extra.get("count").and_then(|v| v.as_u64()), Some(3));
    assert_eq!(
        event.user.as_ref().and_then(|u| u.id.as_deref()),
        Some("u-9")
    );
    let req = event.request.as_ref().unwrap();
    assert_eq!(req.method.as_deref(), Some("POST"));
    assert_eq!(
        req.headers.get("authorization").map(String::as_str),
        Some("[REDACTED]")
    );
    assert_eq!(event.transaction.as_deref(), Some("POST /checkout/{cart}"));
    let crumbs: Vec<_> = event
        .breadcrumbs
        .values
        .iter()
        .map(|b| b.message.clone().unwrap_or_default())
        .collect();
    assert_eq!(crumbs, ["checkout started", "card needs 3-D Secure"]);
    assert_eq!(
        event.breadcrumbs.values[0]
            .data
            .get("cart")
            .and_then(|v| v.as_str()),
        Some("3")
    );
    match event.contexts.get("trace") {
        Some(sentry::protocol::Context::Trace(t)) => {
            assert_eq!(t.trace_id.to_string(), trace_id);
            assert_eq!(t.span_id.to_string(), span_id);
        }
        other => panic!("no trace context: {other:?}"),
    }
    assert_eq!(event.fingerprint.len(), 1);

    // and the wire JSON uses Sentry's field names
    let json_line = raw
        .lines()
        .find(|l| l.contains("\"exception\""))
        .expect("event payload line");
    let v: serde_json::Value = serde_json::from_str(json_line).unwrap();
    assert_eq!(
        v["exception"]["values"][1]["mechanism"]["handled"],
        serde_json::Value::Bool(true)
    );
    assert_eq!(
        v["contexts"]["trace"]["trace_id"],
        serde_json::Value::String(trace_id.clone())
    );
}
