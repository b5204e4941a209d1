//! The one route hook on a plain tower service (no axum router): an
//! `obs_core::RouteTemplate` inserted into the request's extensions before
//! obs's server layer reaches every pillar — the RED metrics' route label,
//! the server span's name and `http.route`, the error report's request
//! context and the access line — and no metric label carries the raw path.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response};
use obs::core::RouteTemplate;
use tower::{Layer as _, ServiceExt as _};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_template_extension_reaches_every_pillar_without_axum() {
    let receiver = obs_testing::otlp::OtlpReceiver::start();
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let otlp = receiver.http_base_url();
    let env = move |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(otlp.clone()),
        "OTEL_BSP_SCHEDULE_DELAY" => Some("50".into()),
        "OTEL_LOGS_EXPORTER" => Some("none".into()),
        "OTEL_SERVICE_NAME" => Some("route-hook".into()),
        _ => None,
    };
    let reports = obs::errors::MemorySink::new();
    let obs = obs::init(
        obs::Config::from_lookup(&env)
            .unwrap()
            .error_sink(reports.clone())
            .log(move |l| l.writer(sink)),
    )
    .unwrap();

    // A plain tower service that knows its routes, and a layer outside
    // obs's that names the route of each request.
    let handler = tower::service_fn(|_req: Request<Body>| async {
        let err = std::io::Error::other("item store unreachable");
        assert!(obs::errors::capture_error(&err).is_some());
        Ok::<_, Infallible>(Response::new(Body::from("item")))
    });
    let svc = obs.server_layer().layer(handler);
    let name_route = tower::util::MapRequestLayer::new(|mut req: Request<Body>| {
        if req.uri().path().starts_with("/items/") {
            req.extensions_mut()
                .insert(RouteTemplate::new("/items/{id}"));
        }
        req
    });
    let svc = name_route.layer(svc);
    let resp = svc
        .oneshot(
            Request::get("/items/42?token=abc")
                .header("x-correlation-id", "route-1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Metrics: the route label is the template.
    let metrics = obs.metrics().encode(obs::metrics::Format::Text);
    assert!(
        metrics.lines().any(
            |l| l.starts_with("http_server_request_duration_seconds_count")
                && l.contains(r#"http_route="/items/{id}""#)
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("/items/42"), "no raw path: {metrics}");

    // The server span.
    let spans = receiver.wait_for_spans(1, Duration::from_secs(20));
    let server = spans
        .iter()
        .find(|s| s.kind() == 2)
        .expect("the server span");
    assert_eq!(server.name(), "GET /items/{id}");
    assert_eq!(server.attr("http.route").as_deref(), Some("/items/{id}"));

    // The error report's request context, and the access line.
    obs.errors().flush(Duration::from_secs(10)).unwrap();
    let shutdown = obs.shutdown(Duration::from_secs(10)).await;
    assert!(shutdown.completed, "{shutdown}");
    let lines = logs.json_lines();
    let captured = reports.reports();
    let request = captured
        .first()
        .and_then(|r| r.request.as_ref())
        .expect("the report carries its request");
    assert_eq!(request.route.as_deref(), Some("/items/{id}"));
    let access = lines
        .iter()
        .find(|l| l["target"] == obs::core::names::target::ACCESS)
        .unwrap_or_else(|| panic!("an access line: {lines:#?}"));
    assert_eq!(access["http.route"], "/items/{id}", "{access}");
}
