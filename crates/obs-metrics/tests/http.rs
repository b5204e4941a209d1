//! Scrapes over real HTTP on loopback: content negotiation, gzip
//! round-trip, the standalone server, axum and plain hyper, and the HTTP
//! server layer recording route templates (never raw paths).

use std::io::Read;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use obs_metrics::{Format, Registry};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get(
    c: &HttpClient,
    url: String,
    headers: &[(&str, &str)],
) -> (http::response::Parts, Vec<u8>) {
    let mut req = http::Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = c.request(req.body(Empty::new()).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    (parts, body.collect().await.unwrap().to_bytes().to_vec())
}

fn sample_registry() -> Registry {
    let r = Registry::new();
    let c = r
        .counter_family("served_requests", "Requests.", ["route"])
        .unwrap();
    for i in 0..200 {
        c.get([&format!("/route/{}", i % 50)]).inc();
    }
    r.histogram("work_seconds", "Work.", &[0.1, 1.0])
        .unwrap()
        .observe(0.3);
    r
}

#[tokio::test]
async fn negotiation_and_gzip_over_the_standalone_server() {
    let registry = sample_registry();
    let server = obs_metrics::serve(registry.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    let c = client();

    // No Accept: text 0.0.4.
    let (parts, body) = get(&c, format!("{base}/metrics"), &[]).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["content-type"], Format::Text.content_type());
    assert!(parts.headers.get("content-encoding").is_none());
    let plain = String::from_utf8(body).unwrap();
    assert!(plain.contains("# TYPE served_requests_total counter\n"));
    assert!(!plain.contains("# EOF"));

    // What Prometheus sends: OpenMetrics.
    let prom_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (parts, body) = get(&c, format!("{base}/metrics"), &[("accept", prom_accept)]).await;
    assert_eq!(
        parts.headers["content-type"],
        Format::OpenMetrics.content_type()
    );
    let om = String::from_utf8(body).unwrap();
    assert!(om.contains("# TYPE served_requests counter\n"));
    assert!(om.ends_with("# EOF\n"));

    // Text preferred over OpenMetrics by quality.
    let (parts, _) = get(
        &c,
        format!("{base}/metrics"),
        &[(
            "accept",
            "application/openmetrics-text;q=0.2, text/plain;q=0.9",
        )],
    )
    .await;
    assert_eq!(parts.headers["content-type"], Format::Text.content_type());

    // gzip round-trip: compressed on the wire, identical once inflated.
    let (parts, body) = get(
        &c,
        format!("{base}/metrics"),
        &[("accept-encoding", "gzip, deflate")],
    )
    .await;
    assert_eq!(parts.headers["content-encoding"], "gzip");
    assert!(
        body.len() < plain.len() / 2,
        "{} vs {}",
        body.len(),
        plain.len()
    );
    let mut inflated = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut inflated)
        .unwrap();
    assert_eq!(inflated, plain);
    // gzip refused with q=0.
    let (parts, _) = get(
        &c,
        format!("{base}/metrics"),
        &[("accept-encoding", "gzip;q=0")],
    )
    .await;
    assert!(parts.headers.get("content-encoding").is_none());

    // Other paths: 404.
    let (parts, _) = get(&c, format!("{base}/other"), &[]).await;
    assert_eq!(parts.status, 404);

    // Shutdown closes the keep-alive connection and frees the port.
    let addr = server.local_addr();
    server.shutdown().await;
    assert!(
        c.request(
            http::Request::get(format!("{base}/metrics"))
                .body(Empty::new())
                .unwrap()
        )
        .await
        .is_err()
    );
    tokio::net::TcpListener::bind(addr).await.unwrap();
}

#[tokio::test]
async fn plain_hyper_service_fn() {
    let registry = sample_registry();
    let service = registry.service();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let resp = service.respond(req.headers());
            async move { Ok::<_, std::convert::Infallible>(resp) }
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
            .await
            .unwrap();
    });
    let (parts, body) = get(&client(), format!("http://{addr}/anything"), &[]).await;
    assert_eq!(parts.status, 200);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("work_seconds_count 1\n")
    );
}

async fn serve_axum(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn axum_layer_records_route_templates_not_paths() {
    use axum::routing::{get as route_get, post};
    let registry = Registry::new();
    let http = obs_metrics::sets::HttpServerMetrics::new(&registry).unwrap();
    let app = axum::Router::new()
        .route("/items/{id}", route_get(|| async { "item body" }))
        .route(
            "/fail",
            route_get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .route(
            "/upload",
            post(|body: String| async move { body.len().to_string() }),
        )
        .layer(http.layer())
        .route_service("/metrics", registry.service());
    let addr = serve_axum(app).await;
    let c = client();
    for id in 0..20 {
        let (parts, _) = get(&c, format!("http://{addr}/items/{id}"), &[]).await;
        assert_eq!(parts.status, 200);
    }
    get(&c, format!("http://{addr}/fail"), &[]).await;
    let req = http::Request::post(format!("http://{addr}/upload"))
        .body(http_body_util::Full::new(Bytes::from_static(b"0123456789")))
        .unwrap();
    let up: Client<_, http_body_util::Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    assert_eq!(up.request(req).await.unwrap().status(), 200);

    let (_, body) = get(&c, format!("http://{addr}/metrics"), &[]).await;
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/items/{id}",http_response_status_code="200",error_type=""} 20"#),
        "{text}"
    );
    assert!(!text.contains("/items/1\""), "raw path leaked:\n{text}");
    assert!(
        text.contains(r#"http_route="/fail",http_response_status_code="503",error_type="503"} 1"#)
    );
    assert!(text.contains(r#"http_server_request_body_size_bytes_sum{http_request_method="POST",http_route="/upload"} 10.0"#), "{text}");
    assert!(text.contains(r#"http_server_response_body_size_bytes_sum{http_request_method="GET",http_route="/items/{id}",http_response_status_code="200"} 180.0"#), "{text}");
    // Finished requests are no longer in flight.
    assert!(
        text.contains(r#"http_server_active_requests{http_request_method="GET"} 0"#),
        "{text}"
    );
    obs_testing::prometheus::check_metrics(&text).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn binding_a_taken_port_is_a_typed_error() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let err = obs_metrics::serve(Registry::new(), addr).await.unwrap_err();
    assert!(matches!(err, obs_metrics::Error::Serve { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[test]
fn tokio_runtime_metrics_pass_promtool() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::new();
    obs_metrics::runtime::register(&registry, rt.handle().clone()).unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..10)
            .map(|_| tokio::spawn(async { tokio::task::yield_now().await }))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let text = registry.encode(Format::Text);
    assert!(text.contains("tokio_workers 2\n"), "{text}");
    assert!(
        text.contains("tokio_worker_busy_seconds_total{worker=\"1\"} "),
        "{text}"
    );
    assert!(
        text.contains("tokio_worker_parks_total{worker=\"0\"} "),
        "{text}"
    );
    obs_testing::prometheus::check_metrics(&text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn handles_are_send_sync_and_cheap_to_clone() {
    fn assert<T: Send + Sync + Clone + 'static>() {}
    assert::<Registry>();
    assert::<obs_metrics::Counter>();
    assert::<obs_metrics::Histogram>();
    assert::<obs_metrics::Summary>();
    assert::<obs_metrics::Family<obs_metrics::Counter, 3>>();
    assert::<obs_metrics::sets::HttpServerMetrics>();
    assert::<obs_metrics::MetricsService>();
}

/// The request duration carries the exemplar of the sampled span the
/// request ran in (the body-size histograms take none: a latency is what a
/// trace explains); an unsampled request leaves none.
#[test]
fn the_server_layer_leaves_the_sampled_trace_as_exemplar_on_the_duration() {
    use obs_core::{IdRecord, SpanId, TraceFlags, TraceId};
    use tower::ServiceExt;
    use tracing::Instrument;

    fn serve_one(metrics: &obs_metrics::sets::HttpServerMetrics, flags: TraceFlags) -> TraceId {
        let app = axum::Router::new()
            .route("/items/{id}", axum::routing::post(|| async { "stored" }))
            .layer(metrics.layer());
        let trace_id = TraceId::random();
        obs_testing::subscriber::with_default(tracing_subscriber::Registry::default(), || {
            let span = tracing::info_span!("request");
            assert!(IdRecord::update_span_id(&span.id().unwrap(), |r| {
                *r = IdRecord::with_trace(trace_id, SpanId::random(), flags);
            }));
            let req = http::Request::post("/items/7")
                .header("content-length", "5")
                .body(axum::body::Body::from("hello"))
                .unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let resp = rt.block_on(app.oneshot(req).instrument(span)).unwrap();
            assert_eq!(resp.status(), 200);
        });
        trace_id
    }

    let registry = Registry::new();
    let metrics = obs_metrics::sets::HttpServerMetrics::new(&registry).unwrap();
    serve_one(&metrics, TraceFlags::NOT_SAMPLED);
    let om = registry.encode(Format::OpenMetrics);
    assert!(!om.contains("trace_id"), "{om}");

    let sampled = serve_one(&metrics, TraceFlags::SAMPLED).to_string();
    let om = registry.encode(Format::OpenMetrics);
    for (family, exemplars) in [
        ("http_server_request_duration_seconds_bucket", 1),
        ("http_server_request_body_size_bytes_bucket", 0),
        ("http_server_response_body_size_bytes_bucket", 0),
    ] {
        let with_exemplar: Vec<_> = om
            .lines()
            .filter(|l| l.starts_with(family) && l.contains(" # {"))
            .collect();
        assert_eq!(with_exemplar.len(), exemplars, "{family}: {om}");
        assert!(
            with_exemplar
                .iter()
                .all(|l| l.contains(&format!("trace_id=\"{sampled}\""))),
            "{with_exemplar:?}"
        );
    }
}
