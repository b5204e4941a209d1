//! The facade alone, configured from the environment, as a new user runs it:
//! errors leave the process (an ERROR line, the span, metrics, and Sentry
//! from `SENTRY_DSN`), a user's own layer composes with obs's, reqwest calls
//! carry the trace and the correlation id into a second server, a job that
//! fails with `anyhow::Error` is recorded with its chain, a span opened
//! through the OpenTelemetry API joins the request's trace, and a panic
//! anywhere — a task, a plain thread, outside any span — is reported.
//!
//! One test: it installs the subscriber, the reporter and the panic hook
//! process-wide, as `obs::builder(..).try_init()` does in a service.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A reqwest client for loopback servers. reqwest follows `HTTP_PROXY` /
/// `ALL_PROXY` from the environment, and CI machines set them to reach
/// package registries; a proxy cannot reach this process's 127.0.0.1.
fn loopback_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facade_alone_delivers_errors_composes_and_propagates() {
    let receiver = obs_testing::otlp::OtlpReceiver::start();
    let sentry = obs_testing::endpoint::Endpoint::start();
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let otlp = receiver.http_base_url();
    let dsn = format!("http://publickey@{}/42", sentry.addr());
    let env = move |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(otlp.clone()),
        "OTEL_BSP_SCHEDULE_DELAY" => Some("50".into()),
        "OTEL_BLRP_SCHEDULE_DELAY" => Some("50".into()),
        "OTEL_SERVICE_NAME" => Some("facade-user".into()),
        "SENTRY_DSN" => Some(dsn.clone()),
        "SENTRY_ENVIRONMENT" => Some("staging".into()),
        "SENTRY_RELEASE" => Some("facade-user@1.2.3".into()),
        // EnvFilter's span syntax is accepted.
        "OBS_LOG" => Some("info,facade[job{queue=emails}]=debug".into()),
        _ => None,
    };

    // A user's own layer beside obs's.
    let mine = obs_testing::capture::CaptureLayer::new();
    let obs = obs::builder(
        obs::Config::from_lookup(&env)
            .unwrap()
            .log(move |l| l.writer(sink)),
    )
    .with(mine.clone())
    .try_init()
    .unwrap();
    // try_init semantics: a second install fails and installs nothing.
    let again = obs::builder(obs::Config::from_lookup(|_| None).unwrap()).try_init();
    assert!(
        matches!(again, Err(obs::Error::SubscriberAlreadySet)),
        "{again:?}"
    );

    // Server B: the downstream service, reporting what it received.
    let downstream = serve(Router::new().route(
        "/echo",
        get(|h: HeaderMap| async move {
            let get = |k: &str| h.get(k).map(|v| v.to_str().unwrap().to_owned());
            serde_json::json!({
                "traceparent": get("traceparent"),
                "correlation": get("x-correlation-id"),
            })
            .to_string()
        }),
    ))
    .await;

    // Server A: obs's server layer; calls B through reqwest; fails.
    let client = reqwest_middleware::ClientBuilder::new(loopback_client())
        .with(obs::reqwest::middleware())
        .build();
    let app = Router::new()
        .route(
            "/call",
            get(move || {
                let client = client.clone();
                async move {
                    client
                        .get(format!("http://{downstream}/echo?token=hunter2-secret"))
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap()
                }
            }),
        )
        .route(
            "/fail",
            get(|| async {
                obs::errors::set_user(obs::errors::User::id("u-42"));
                tracing::info!(target: "facade", "loading the basket");
                // A library instrumented with the OpenTelemetry API.
                use opentelemetry::trace::Tracer as _;
                opentelemetry::global::tracer("basket-lib").in_span("basket.lookup", |_| {});
                let err = std::io::Error::other("basket store unreachable");
                let captured = obs::errors::capture_error(&err);
                assert!(captured.is_some(), "the facade installed the reporter");
                "failed"
            }),
        )
        .layer(obs.server_layer());
    let upstream = serve(app).await;

    // 1. reqwest carries the trace and the correlation id into B.
    let http = loopback_client();
    let echoed: serde_json::Value = serde_json::from_str(
        &http
            .get(format!("http://{upstream}/call"))
            .header("x-correlation-id", "corr-reqwest-1")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(echoed["correlation"], "corr-reqwest-1");
    let traceparent = echoed["traceparent"]
        .as_str()
        .expect("traceparent reached B")
        .to_owned();
    let trace_id = traceparent.split('-').nth(1).unwrap().to_owned();
    let client_span_id = traceparent.split('-').nth(2).unwrap().to_owned();

    // 2. An error captured in a request, with user and breadcrumb.
    let status = http
        .get(format!("http://{upstream}/fail"))
        .header("x-correlation-id", "corr-fail-1")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    // 3. A job failing with anyhow::Error.
    let job = obs::job::Job::new("emails", "send_receipt");
    let out: Result<(), anyhow::Error> = obs::job::instrument(job, async {
        Err(std::io::Error::other("smtp refused")).context("sending receipt 7")
    })
    .await;
    assert!(out.is_err());

    // A record of the `log` crate (log-bridge: `init` installed LogTracer).
    #[cfg(feature = "log-bridge")]
    log::warn!(target: "legacy_lib", "a record from the log crate");

    // 4. Panics: in a task, in a plain thread, outside any span.
    let _ = tokio::spawn(async { panic!("task panicked on purpose") }).await;
    let _ = std::thread::spawn(|| panic!("thread panicked on purpose")).join();
    let _ = std::panic::catch_unwind(|| panic!("bare panic on purpose"));

    // --- What left the process ---
    // The client span is in B's trace, a child of A's server span.
    let spans = receiver.wait_for_spans(2, Duration::from_secs(20));
    let client_span = spans
        .iter()
        .find(|s| s.span_id() == client_span_id)
        .unwrap_or_else(|| panic!("client span {client_span_id} exported: {spans:#?}"));
    assert_eq!(client_span.trace_id(), trace_id);
    assert_eq!(client_span.kind(), 3, "kind CLIENT");
    assert_eq!(
        client_span.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    let url = client_span.attr("url.full").unwrap();
    assert!(!url.contains("hunter2"), "query secret redacted: {url}");
    let server = receiver
        .trace(&trace_id)
        .into_iter()
        .find(|s| s.kind() == 2)
        .expect("A's server span in the same trace");
    assert_eq!(client_span.parent_span_id(), Some(server.span_id()));

    // The OpenTelemetry API span joined the request's trace (the error's).
    let api_span = receiver
        .wait_for_spans(3, Duration::from_secs(20))
        .into_iter()
        .find(|s| s.name() == "basket.lookup")
        .expect("the OpenTelemetry API span was exported by obs");

    // The ERROR lines: the captured error, the job's, three panics.
    obs.errors().flush(Duration::from_secs(10)).unwrap();
    wait_until("error lines", Duration::from_secs(10), || {
        logs.json_lines()
            .iter()
            .filter(|l| l["message"] == "error report")
            .count()
            >= 5
    });
    let lines = logs.json_lines();
    let reports: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "error report")
        .collect();
    let basket = reports
        .iter()
        .find(|l| l.to_string().contains("basket store unreachable"))
        .expect("the captured error is a line");
    assert_eq!(basket["correlation_id"], "corr-fail-1", "{basket}");
    assert!(
        basket["trace_id"].as_str().is_some_and(|t| t.len() == 32),
        "{basket}"
    );
    assert!(basket.to_string().contains("error.fingerprint"), "{basket}");
    assert_eq!(
        basket["trace_id"].as_str(),
        Some(api_span.trace_id().as_str())
    );
    // The server span ends after the API span inside it, so it may come in
    // a later export batch.
    wait_until("the /fail server span", Duration::from_secs(20), || {
        receiver
            .trace(&api_span.trace_id())
            .iter()
            .any(|s| s.kind() == 2)
    });
    let fail_server = receiver
        .trace(&api_span.trace_id())
        .into_iter()
        .find(|s| s.kind() == 2)
        .expect("the /fail server span");
    assert_eq!(api_span.parent_span_id(), Some(fail_server.span_id()));
    for panic in ["task panicked", "thread panicked", "bare panic"] {
        assert!(
            reports.iter().any(|l| l.to_string().contains(panic)),
            "a report line for {panic:?}: {reports:#?}"
        );
    }
    #[cfg(feature = "log-bridge")]
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "a record from the log crate" && l["target"] == "legacy_lib"),
        "the log crate's record is a JSON line"
    );
    let job_line = lines
        .iter()
        .find(|l| l["message"] == "job failed")
        .expect("the job's failure line");
    let chain = job_line.to_string();
    assert!(
        chain.contains("sending receipt 7") && chain.contains("smtp refused"),
        "the anyhow chain: {job_line}"
    );
    assert!(
        reports
            .iter()
            .any(|l| l.to_string().contains("smtp refused")),
        "the job's error reported with its chain"
    );
    let metrics = obs.metrics().encode(obs::metrics::Format::Text);
    assert!(
        metrics.contains(r#"jobs_failed_total{queue="emails",job_type="send_receipt"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("obs_errors_total"), "{metrics}");

    // Sentry, configured by SENTRY_DSN alone.
    let envelopes = sentry.wait_for(5, Duration::from_secs(20));
    let all: String = envelopes
        .iter()
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect();
    let basket_event = all
        .lines()
        .find(|l| l.contains("basket store unreachable"))
        .expect("the error reached Sentry");
    let event: serde_json::Value = serde_json::from_str(basket_event).unwrap();
    assert_eq!(event["environment"], "staging");
    assert_eq!(event["release"], "facade-user@1.2.3");
    assert_eq!(event["user"]["id"], "u-42");
    assert_eq!(event["tags"]["correlation_id"], "corr-fail-1");
    assert!(
        event["tags"]["trace_id"]
            .as_str()
            .is_some_and(|t| t.len() == 32)
    );
    assert!(
        event.to_string().contains("loading the basket"),
        "the breadcrumb: {event}"
    );
    assert!(
        all.contains("thread panicked on purpose"),
        "panics reach Sentry too"
    );

    // With `otlp-logs` the same lines left as OTLP log records, in the
    // request's trace, with its correlation id.
    #[cfg(feature = "otlp-logs")]
    {
        let records = receiver.wait_for_logs(5, Duration::from_secs(20));
        let basket_log = records
            .iter()
            .find(|r| r.body() == "loading the basket")
            .expect("the log record reached the collector");
        assert_eq!(basket_log.trace_id(), api_span.trace_id());
        assert_eq!(
            basket_log.attr("correlation_id").as_deref(),
            Some("corr-fail-1")
        );
        assert_eq!(basket_log.scope, "facade");
    }

    // The user's own layer saw the same events.
    assert!(!mine.with_message("loading the basket").is_empty());

    let report = obs.shutdown(Duration::from_secs(10)).await;
    assert!(report.completed, "{report}");
}
