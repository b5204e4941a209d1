//! The Sentry sink against a local HTTP endpoint: the official `sentry`
//! client (ureq transport) posts the envelope to a loopback endpoint
//! (`obs_testing::endpoint`); the envelope parses and carries the report's fields.

mod common;

use std::sync::Arc;
use std::time::Duration;

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

/// A Sentry hub whose client posts envelopes to `addr` (project 42).
fn hub_for(addr: impl std::fmt::Display) -> Arc<sentry::Hub> {
    let mut options = sentry::ClientOptions::new();
    options.dsn = Some(format!("http://publickey@{addr}/42").parse().unwrap());
    options.transport = Some(Arc::new(sentry::transports::DefaultTransportFactory));
    Arc::new(sentry::Hub::new(
        Some(Arc::new(sentry::Client::from(options))),
        Arc::new(sentry::Scope::default()),
    ))
}

#[test]
fn envelope_reaches_a_local_endpoint_and_carries_the_report() {
    let endpoint = obs_testing::endpoint::Endpoint::start();
    let hub = hub_for(endpoint.addr());
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

    let got = endpoint
        .wait_for(1, Duration::from_secs(30))
        .into_iter()
        .next()
        .expect("the envelope reached the endpoint");
    assert_eq!(got.path, "/api/42/envelope/");
    let auth = got.header("x-sentry-auth").unwrap_or_default();
    assert!(auth.contains("sentry_key=publickey"), "{auth}");
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

/// A Sentry endpoint that accepts connections and never answers: capturing
/// stays as cheap as ever (the report is queued, the transport thread is the
/// one that waits), and shutdown returns within its bound, saying the sink
/// failed. A stall would be unbounded; the bounds are a second or two.
#[test]
fn a_hung_sentry_endpoint_never_stalls_capture_and_shutdown_is_bounded() {
    let hung = obs_testing::otlp::HungCollector::start();
    let hub = hub_for(hung.url().trim_start_matches("http://"));
    let reporter = Reporter::builder(Config::default())
        .sink(SentrySink::new(hub).flush_timeout(Duration::from_millis(300)))
        .build()
        .unwrap();

    let started = std::time::Instant::now();
    for i in 0..200 {
        reporter.capture_message(tracing::Level::ERROR, &format!("payment {i} failed"));
    }
    let captured_in = started.elapsed();
    assert!(
        captured_in < Duration::from_secs(1),
        "200 captures took {captured_in:?} against a hung endpoint"
    );

    let started = std::time::Instant::now();
    let _ = reporter.shutdown(Duration::from_secs(2));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let summary = reporter.summary();
    assert_eq!(summary.captured, 200, "{summary:?}");
    assert!(
        summary.sink_errors > 0,
        "the failed flush of the hung transport is counted: {summary:?}"
    );
}
