//! The facade over real HTTP on loopback: one server layer gives every
//! request a correlation id, a server span whose ids reach the access log
//! line, RED metrics by route template; the admin router serves metrics,
//! probes and the log level (guarded by a token).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;

mod common;
use common::{HttpClient, send};

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn one_layer_gives_ids_metrics_access_log_and_admin() {
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let obs = obs::init(
        obs::Config::from_lookup(|_| None)
            .unwrap()
            .service("facade-test")
            .admin_token("s3cret-token")
            .log(move |l| l.writer(sink).filter("info"))
            .install_global(false),
    )
    .unwrap();
    // obs alone on a registry, as `obs::init` installs it process-wide.
    let subscriber = obs.take_subscriber().unwrap();
    let _default = obs_testing::subscriber::set_default(subscriber);

    let app = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .route(
            "/boom",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("handler exploded");
                }
                "unreachable"
            }),
        )
        .layer(obs.server_layer())
        .merge(obs.admin_router());
    let addr = serve(app).await;
    let client: HttpClient = common::client();
    let base = format!("http://{addr}");

    // A request with a caller's trace context and correlation id.
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, headers, body) = send(
        &client,
        "GET",
        format!("{base}/items/42"),
        &[("traceparent", tp), ("x-correlation-id", "req-abc-1")],
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "item"));
    assert_eq!(headers["x-correlation-id"], "req-abc-1");

    // No id given: one is generated and echoed, also on a panic turned 500.
    let (status, headers, _) = send(&client, "GET", format!("{base}/boom"), &[], "").await;
    assert_eq!(status, 500);
    let generated = headers["x-correlation-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "uuid v4: {generated}");

    // An injection attempt is replaced, never echoed.
    let (_, headers, _) = send(
        &client,
        "GET",
        format!("{base}/items/7"),
        &[("x-request-id", "a b\tc")],
        "",
    )
    .await;
    assert_ne!(headers["x-correlation-id"], "a b\tc");

    // Metrics by route template, never the raw path; probes are skipped.
    let (_, _, _) = send(&client, "GET", format!("{base}/readyz"), &[], "").await;
    let (status, _, text) = send(&client, "GET", format!("{base}/metrics"), &[], "").await;
    assert_eq!(status, 200);
    let count_line = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_request_duration_seconds_count")
                && l.contains("http_route=\"/items/{id}\"")
                && l.contains("http_response_status_code=\"200\"")
        })
        .unwrap_or_else(|| panic!("no count line for /items/{{id}}:\n{text}"));
    assert!(count_line.ends_with(" 2"), "{count_line}");
    // The panic turned 500 is measured as a 500 with its error type; the
    // response bodies' sizes are recorded by route and status; every
    // finished request left the active-requests gauge (the scrape itself is
    // skipped, so nothing is in flight).
    assert!(
        text.lines().any(
            |l| l.starts_with("http_server_request_duration_seconds_count")
                && l.contains("http_route=\"/boom\"")
                && l.contains("http_response_status_code=\"500\",error_type=\"500\"")
                && l.ends_with(" 1")
        ),
        "{text}"
    );
    assert!(
        text.lines().any(
            |l| l.starts_with("http_server_response_body_size_bytes_count")
                && l.contains("http_route=\"/items/{id}\"")
                && l.contains("http_response_status_code=\"200\"")
                && l.ends_with(" 2")
        ),
        "{text}"
    );
    assert!(
        text.contains("http_server_active_requests{http_request_method=\"GET\"} 0\n"),
        "{text}"
    );
    assert!(!text.contains("/items/42"), "raw path leaked into labels");
    assert!(
        !text.contains("http_route=\"/readyz\""),
        "probe was measured"
    );
    assert!(text.contains("obs_build_info{"), "{text}");
    // The log writer's drop counter, by level (text format: the family
    // carries the `_total` suffix).
    assert!(
        text.contains("# TYPE obs_log_dropped_lines_total counter\n"),
        "{text}"
    );
    for l in text
        .lines()
        .filter(|l| l.starts_with("obs_log_dropped_lines"))
    {
        assert!(l.starts_with("obs_log_dropped_lines_total{level=\""), "{l}");
    }
    assert!(text.contains("process_"), "process collector missing");

    // /loglevel: readable, writable only with the token, bad directives are a 400.
    let (status, _, level) = send(&client, "GET", format!("{base}/loglevel"), &[], "").await;
    assert_eq!((status, level.trim()), (200, "info"));
    let (status, _, _) = send(&client, "PUT", format!("{base}/loglevel"), &[], "debug").await;
    assert_eq!(status, 401);
    let auth = [("authorization", "Bearer s3cret-token")];
    let (status, _, body) = send(
        &client,
        "PUT",
        format!("{base}/loglevel"),
        &auth,
        "warn,facade=debug",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(obs.log_level(), "warn,facade=debug");
    let (status, _, body) = send(&client, "PUT", format!("{base}/loglevel"), &auth, "[[[").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        obs.log_level(),
        "warn,facade=debug",
        "a bad directive changes nothing"
    );
    obs.reload_log_level("info").unwrap();
    // Lines keep flowing after a runtime reload.
    let (status, _, _) = send(
        &client,
        "GET",
        format!("{base}/items/after-reload"),
        &[("x-correlation-id", "after-reload")],
        "",
    )
    .await;
    assert_eq!(status, 200);

    // Readiness fails first when the process drains.
    let (status, _, _) = send(&client, "GET", format!("{base}/readyz"), &[], "").await;
    assert_eq!(status, 200);
    obs.health().begin_shutdown();
    let (status, _, _) = send(&client, "GET", format!("{base}/readyz"), &[], "").await;
    assert_eq!(status, 503);
    let (status, _, _) = send(&client, "GET", format!("{base}/livez"), &[], "").await;
    assert_eq!(status, 200);

    let report = obs.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed, "{report}");
    assert_eq!(report.log_lines_dropped, 0);

    // The access log line of the first request carries the caller's trace id
    // and the correlation id, at INFO; the panic's line is an ERROR with the
    // generated id.
    let lines = logs.json_lines();
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == "request finished")
        .collect();
    assert_eq!(
        access.len(),
        4,
        "one access line per non-skipped request: {lines:#?}"
    );
    assert_eq!(access[3]["correlation_id"], "after-reload");
    let first = access[0];
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(first["correlation_id"], "req-abc-1");
    assert_eq!(first["http.route"], "/items/{id}");
    assert_eq!(first["http.request.method"], "GET");
    assert_eq!(first["url.path"], "/items/42");
    assert_eq!(first["http.response.status_code"], 200);
    assert_eq!(first["service.name"], "facade-test");
    // The request's head is written once per line (the server span carries
    // it; the access line leaves it to the span), and the line's own fields
    // are all there.
    let text = logs.text();
    let raw = text
        .lines()
        .find(|l| l.contains("request finished") && l.contains("/items/42"))
        .expect("the first access line");
    for key in [
        "\"http.request.method\":",
        "\"http.route\":",
        "\"url.path\":",
        "\"http.response.status_code\":",
        "\"duration_ms\":",
    ] {
        assert_eq!(raw.matches(key).count(), 1, "{key} in {raw}");
    }
    let boom = access[1];
    assert_eq!(boom["level"], "ERROR");
    assert_eq!(boom["correlation_id"], generated.as_str());
    assert_eq!(boom["http.response.status_code"], 500);
    assert!(
        lines
            .iter()
            .all(|l| !l.to_string().contains("s3cret-token"))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn bad_env_is_a_typed_error_naming_the_variable() {
    let err =
        obs::Config::from_lookup(|k| (k == "OBS_METRICS_CARDINALITY_LIMIT").then(|| "lots".into()))
            .unwrap_err();
    assert!(
        err.to_string().contains("OBS_METRICS_CARDINALITY_LIMIT"),
        "{err}"
    );
    let err =
        obs::Config::from_lookup(|k| (k == "OTEL_TRACES_SAMPLER").then(|| "sometimes".into()))
            .unwrap_err();
    assert!(err.to_string().contains("OTEL_TRACES_SAMPLER"), "{err}");
    let err = obs::Config::from_lookup(|k| (k == "OBS_TRACE_FILTER").then(|| "h2=loud".into()))
        .unwrap_err();
    assert!(err.to_string().contains("OBS_TRACE_FILTER"), "{err}");
    let err =
        obs::Config::from_lookup(|k| (k == "OBS_LOG_FORMAT").then(|| "xml".into())).unwrap_err();
    assert!(err.to_string().contains("OBS_LOG_FORMAT"), "{err}");
}

/// A limit below the server layer (`concurrency_limit(1)`) serves traced
/// and skipped requests alike: the layer reserves capacity on one copy of
/// the inner service only, so a request never waits for a permit its own
/// layer holds.
#[tokio::test(flavor = "current_thread")]
async fn a_limit_of_one_below_the_layer_serves_traced_and_skipped_requests() {
    use tower::Service as _;
    let obs = obs::init(
        obs::Config::from_lookup(|_| None)
            .unwrap()
            .log(|l| l.writer(std::io::sink()))
            .install_global(false),
    )
    .unwrap();
    let mut app = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .route("/livez", get(|| async { "ok" }))
        .layer(
            tower::ServiceBuilder::new()
                .layer(obs.server_layer())
                .concurrency_limit(1),
        );
    for path in ["/items/1", "/livez", "/items/2", "/livez", "/items/3"] {
        let req = http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let res = tokio::time::timeout(Duration::from_secs(5), async {
            <Router as tower::ServiceExt<http::Request<axum::body::Body>>>::ready(&mut app)
                .await
                .unwrap()
                .call(req)
                .await
        })
        .await
        .unwrap_or_else(|_| panic!("{path}: waited for a permit its own layer held"))
        .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    obs.shutdown(Duration::from_secs(2)).await;
}

/// Beside a layer of the user's, the access line carries the request's
/// head as its own fields (that layer reads the event, not obs's span
/// record); obs's own JSON line still writes each key once. Alone, obs
/// leaves the head to the server span (the first test).
#[tokio::test(flavor = "current_thread")]
async fn beside_a_user_layer_the_access_line_keeps_its_own_head() {
    use tower::Service as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let obs = obs::init(
        obs::Config::from_lookup(|_| None)
            .unwrap()
            .log(move |l| l.writer(sink).filter("info"))
            .install_global(false),
    )
    .unwrap();
    let user = obs_testing::capture::CaptureLayer::new();
    let subscriber = tracing_subscriber::registry()
        .with(obs.take_layers().unwrap())
        .with(user.clone());
    let _default = obs_testing::subscriber::set_default(subscriber);
    let mut app = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .layer(obs.server_layer())
        .with_state(());
    let req = http::Request::get("/items/7")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = <Router as tower::ServiceExt<http::Request<axum::body::Body>>>::ready(&mut app)
        .await
        .unwrap()
        .call(req)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    obs.shutdown(Duration::from_secs(2)).await;

    let seen = user.with_message("request finished");
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].fields["http.request.method"], "GET");
    assert_eq!(seen[0].fields["http.route"], "/items/{id}");
    assert_eq!(seen[0].fields["url.path"], "/items/7");
    let text = logs.text();
    let raw = text
        .lines()
        .find(|l| l.contains("request finished"))
        .expect("obs's access line");
    for key in [
        "\"http.request.method\":",
        "\"http.route\":",
        "\"url.path\":",
    ] {
        assert_eq!(raw.matches(key).count(), 1, "{key} in {raw}");
    }
}

/// The facade's correlate pillar does not store the id in the request's
/// extensions (two allocations per request); the handler still gets it from
/// `obs::correlate::from_request` and the `Correlation` extractor, and
/// `request_extension(true)` stores it again.
#[tokio::test(flavor = "current_thread")]
async fn the_correlation_id_reaches_the_handler_without_the_extension() {
    use obs::correlate::{Correlation, CorrelationId};
    use tower::ServiceExt as _;
    async fn handler(Correlation(id): Correlation, req: http::Request<axum::body::Body>) -> String {
        let stored = req.extensions().get::<CorrelationId>().is_some();
        let read = obs::correlate::from_request(&req).expect("from_request");
        assert_eq!(read, id);
        format!("{id} {stored}")
    }
    for (store, expected) in [(None, false), (Some(true), true), (Some(false), false)] {
        let obs = obs::init(
            obs::Config::from_lookup(|_| None)
                .unwrap()
                .log(|l| l.writer(std::io::sink()))
                .correlate(|c| match store {
                    Some(s) => c.request_extension(s),
                    None => c,
                })
                .install_global(false),
        )
        .unwrap();
        let app = Router::new()
            .route("/id", get(handler))
            .layer(obs.server_layer());
        let req = http::Request::get("/id")
            .header("x-request-id", "facade-id-1")
            .body(axum::body::Body::empty())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.headers()["x-correlation-id"], "facade-id-1");
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            format!("facade-id-1 {expected}"),
            "request_extension: {store:?}"
        );
        obs.shutdown(Duration::from_secs(2)).await;
    }
}
