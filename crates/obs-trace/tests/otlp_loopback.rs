//! End to end over real loopback: a hyper service behind the tower layers
//! calls a second service through the client layer and exports its spans
//! with OTLP to the obs-testing receiver (official `opentelemetry-proto`
//! types). The receiver's view is what a collector would see.
#![cfg(all(feature = "tower", feature = "otlp-http"))]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use obs_testing::capture::CaptureLayer;
use obs_testing::otlp::{OtlpReceiver, ReceivedSpan};
use obs_trace::tower::{TraceClientLayer, TraceServerLayer};
use obs_trace::{BatchConfig, Config, TracerProvider};
use tower::{Service, ServiceBuilder, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

const INCOMING_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const INCOMING_PARENT: &str = "00f067aa0ba902b7";

type Body = Full<Bytes>;

async fn serve<S>(svc: S) -> SocketAddr
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn route(uri: &http::Uri, _: &http::Extensions) -> Option<std::borrow::Cow<'static, str>> {
    let p = uri.path();
    Some(if p.starts_with("/items/") {
        "/items/{id}".into()
    } else {
        p.to_owned().into()
    })
}

/// Runs the test app against `receiver` and returns the spans it received.
fn run_app(
    config: Config,
    receiver: &OtlpReceiver,
    expected: usize,
) -> (Vec<ReceivedSpan>, CaptureLayer) {
    let provider = TracerProvider::from_config(config).unwrap();
    let capture = CaptureLayer::new();
    let subscriber = tracing_subscriber::registry()
        .with(provider.layer())
        .with(capture.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    obs_testing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            // The backend the app calls.
            let backend = ServiceBuilder::new()
                .layer(TraceServerLayer::new().route_fn(route))
                .service(tower::service_fn(|_req: Request<Incoming>| async {
                    tracing::info!("backend work");
                    Ok::<_, Infallible>(Response::new(Body::from("stock: 3")))
                }));
            let backend_addr = serve(backend).await;

            // The app.
            let app = ServiceBuilder::new()
                .layer(TraceServerLayer::new().route_fn(route))
                .service(tower::service_fn(
                    move |req: Request<Incoming>| async move {
                        let path = req.uri().path().to_owned();
                        tracing::info!(path = %path, "handling");
                        match path.as_str() {
                            "/fail" => {
                                return Ok::<_, Infallible>(
                                    Response::builder()
                                        .status(StatusCode::INTERNAL_SERVER_ERROR)
                                        .body(Body::from("boom"))
                                        .unwrap(),
                                );
                            }
                            "/missing" => {
                                return Ok(Response::builder()
                                    .status(StatusCode::NOT_FOUND)
                                    .body(Body::from("no"))
                                    .unwrap());
                            }
                            _ => {}
                        }
                        {
                            let db = obs_trace::db::DbSpan::new("sqlite", "SELECT")
                                .collection("items")
                                .query("SELECT * FROM items WHERE password = 'hunter2'")
                                .start();
                            let _g = db.enter();
                            tracing::debug!("query");
                        }
                        let client = ServiceBuilder::new()
                            .layer(TraceClientLayer::new())
                            .service(
                                Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>(),
                            );
                        let uri: http::Uri =
                            format!("http://{backend_addr}/backend").parse().unwrap();
                        let resp = client
                            .oneshot(Request::get(uri).body(Empty::new()).unwrap())
                            .await
                            .unwrap();
                        let body = resp.into_body().collect().await.unwrap().to_bytes();
                        Ok(Response::new(Body::from(body)))
                    },
                ));
            let app_addr = serve(app).await;

            // A caller that is not traced by us sends a sampled traceparent.
            let caller = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
            for path in ["/items/42", "/fail", "/missing"] {
                let req = Request::get(format!("http://{app_addr}{path}"))
                    .header(
                        "traceparent",
                        format!("00-{INCOMING_TRACE}-{INCOMING_PARENT}-01"),
                    )
                    .header("user-agent", "loopback-test/1.0")
                    .body(Empty::new())
                    .unwrap();
                let resp = caller.request(req).await.unwrap();
                let _ = resp.into_body().collect().await.unwrap();
            }
        });
    });
    drop(rt);
    let report = provider.shutdown(Duration::from_secs(10));
    assert!(!report.timed_out, "{report:?}");
    assert_eq!(report.dropped, 0, "{report:?}");
    assert_eq!(report.exported as usize, expected, "{report:?}");
    (
        receiver.wait_for_spans(expected, Duration::from_secs(10)),
        capture,
    )
}

fn find<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    spans.iter().find(|s| s.name() == name).unwrap_or_else(|| {
        panic!(
            "no span {name:?} in {:?}",
            spans.iter().map(|s| s.name()).collect::<Vec<_>>()
        )
    })
}

fn check_app_spans(spans: &[ReceivedSpan], capture: &CaptureLayer) {
    // 3 requests: /items/42 (server, db, client, backend server), /fail, /missing.
    assert_eq!(
        spans.len(),
        6,
        "{:?}",
        spans.iter().map(|s| s.name()).collect::<Vec<_>>()
    );
    for s in spans {
        assert_eq!(
            s.trace_id(),
            INCOMING_TRACE,
            "{} kept the incoming trace id",
            s.name()
        );
        assert_eq!(
            s.resource.get("service.name").map(String::as_str),
            Some("loopback-app")
        );
    }

    let server = find(spans, "GET /items/{id}");
    assert_eq!(server.parent_span_id().as_deref(), Some(INCOMING_PARENT));
    assert_eq!(server.kind(), 2, "server kind");
    let a = server.attributes();
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["url.path"], "/items/42");
    assert_eq!(a["url.scheme"], "http");
    assert_eq!(a["http.route"], "/items/{id}");
    assert_eq!(a["http.response.status_code"], "200");
    assert_eq!(a["server.address"], "127.0.0.1");
    assert!(a["server.port"].parse::<u16>().is_ok());
    assert_eq!(a["user_agent.original"], "loopback-test/1.0");
    assert_eq!(a["network.protocol.version"], "1.1");
    assert!(!a.contains_key("error.type"));
    assert_eq!(server.status_code(), 0);
    assert_eq!(server.event_names(), vec!["handling"]);
    assert_eq!(server.span.flags & 0xff, 1, "sampled flag exported");
    assert_eq!(server.span.flags & 0x300, 0x300, "remote parent flagged");

    let db = find(spans, "SELECT items");
    assert_eq!(db.parent_span_id(), Some(server.span_id()));
    assert_eq!(db.kind(), 3);
    assert_eq!(db.attr("db.system.name").as_deref(), Some("sqlite"));
    assert_eq!(db.attr("db.system").as_deref(), Some("sqlite"));
    assert_eq!(db.attr("db.operation.name").as_deref(), Some("SELECT"));
    assert_eq!(db.attr("db.collection.name").as_deref(), Some("items"));
    let q = db.attr("db.query.text").unwrap();
    assert!(!q.contains("hunter2") && q.contains("[REDACTED]"), "{q}");

    let client = find(spans, "GET");
    assert_eq!(client.parent_span_id(), Some(server.span_id()));
    assert_eq!(client.kind(), 3);
    assert!(client.attr("url.full").unwrap().ends_with("/backend"));
    assert_eq!(
        client.attr("http.response.status_code").as_deref(),
        Some("200")
    );

    let backend = find(spans, "GET /backend");
    assert_eq!(
        backend.parent_span_id(),
        Some(client.span_id()),
        "the injected context parents the backend span"
    );
    assert_eq!(backend.kind(), 2);
    assert_eq!(backend.event_names(), vec!["backend work"]);

    let fail = find(spans, "GET /fail");
    assert_eq!(fail.status_code(), 2, "5xx is an error");
    assert_eq!(fail.attr("error.type").as_deref(), Some("500"));
    assert_eq!(
        fail.attr("http.response.status_code").as_deref(),
        Some("500")
    );
    let missing = find(spans, "GET /missing");
    assert_eq!(
        missing.status_code(),
        0,
        "4xx leaves the server status unset"
    );
    assert_eq!(missing.attr("error.type"), None);

    // Log events carry the ids of the span they happen in (the id-record contract).
    let handling = capture.with_message("handling");
    assert_eq!(handling.len(), 3);
    for e in &handling {
        assert_eq!(e.trace_id().as_deref(), Some(INCOMING_TRACE));
    }
    let backend_log = &capture.with_message("backend work")[0];
    assert_eq!(
        backend_log
            .ids
            .as_ref()
            .unwrap()
            .span_id
            .unwrap()
            .to_string(),
        backend.span_id()
    );
}

fn config(endpoint_var: &'static str, endpoint: String, protocol: Option<&'static str>) -> Config {
    config_with(endpoint_var, endpoint, protocol, &[])
}

fn config_with(
    endpoint_var: &'static str,
    endpoint: String,
    protocol: Option<&'static str>,
    extra: &'static [(&'static str, &'static str)],
) -> Config {
    Config::from_lookup(move |k| match k {
        "OTEL_SERVICE_NAME" => Some("loopback-app".into()),
        "OTEL_BSP_SCHEDULE_DELAY" => Some("50".into()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => protocol.map(str::to_owned),
        k if k == endpoint_var => Some(endpoint.clone()),
        k => extra
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned()),
    })
    .unwrap()
}

#[test]
fn http_protobuf_export_of_a_traced_service() {
    let receiver = OtlpReceiver::start();
    let cfg = config(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        receiver.http_base_url(),
        None,
    );
    let (spans, capture) = run_app(cfg, &receiver, 6);
    assert!(
        spans
            .iter()
            .all(|s| s.transport == obs_testing::otlp::Transport::HttpProtobuf)
    );
    check_app_spans(&spans, &capture);
    // Uncompressed unless asked.
    let encodings = receiver.encodings();
    assert!(!encodings.is_empty());
    assert!(
        encodings.iter().all(|e| e.encoding.is_none()),
        "{encodings:?}"
    );
}

/// `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` (any case) over HTTP/protobuf: the
/// body goes gzipped with `Content-Encoding: gzip` and every span arrives.
#[cfg(feature = "gzip")]
#[test]
fn gzip_http_protobuf_export_of_a_traced_service() {
    let receiver = OtlpReceiver::start();
    let cfg = config_with(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        receiver.http_base_url(),
        Some("HTTP/Protobuf"),
        &[("OTEL_EXPORTER_OTLP_COMPRESSION", "GZip")],
    );
    assert_eq!(
        cfg.exporter.as_ref().unwrap().compression,
        obs_trace::Compression::Gzip
    );
    let (spans, capture) = run_app(cfg, &receiver, 6);
    assert!(
        spans
            .iter()
            .all(|s| s.transport == obs_testing::otlp::Transport::HttpProtobuf)
    );
    check_app_spans(&spans, &capture);
    let encodings = receiver.encodings();
    assert!(!encodings.is_empty());
    for e in &encodings {
        // The receiver gunzipped the body because of this header; a body
        // that is not a gzip stream is answered 400 and its spans would
        // not have arrived.
        assert_eq!(e.encoding.as_deref(), Some("gzip"), "{encodings:?}");
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=gzip` over gRPC: `grpc-encoding:
/// gzip` and the compressed flag on the message, and every span arrives.
#[cfg(all(feature = "gzip", feature = "otlp-grpc"))]
#[test]
fn gzip_grpc_export_of_a_traced_service() {
    let receiver = OtlpReceiver::start();
    let cfg = config_with(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        receiver.grpc_url(),
        Some("GRPC"),
        &[
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ],
    );
    let (spans, capture) = run_app(cfg, &receiver, 6);
    assert!(
        spans
            .iter()
            .all(|s| s.transport == obs_testing::otlp::Transport::Grpc)
    );
    check_app_spans(&spans, &capture);
    let encodings = receiver.encodings();
    assert!(!encodings.is_empty());
    for e in &encodings {
        assert_eq!(e.encoding.as_deref(), Some("gzip"), "{encodings:?}");
        assert_eq!(e.compressed_flag, Some(true), "{encodings:?}");
    }
}

#[cfg(feature = "otlp-grpc")]
#[test]
fn grpc_export_of_a_traced_service() {
    let receiver = OtlpReceiver::start();
    let cfg = config(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        receiver.grpc_url(),
        Some("grpc"),
    );
    let (spans, capture) = run_app(cfg, &receiver, 6);
    assert!(
        spans
            .iter()
            .all(|s| s.transport == obs_testing::otlp::Transport::Grpc)
    );
    check_app_spans(&spans, &capture);
    let encodings = receiver.encodings();
    assert!(!encodings.is_empty());
    for e in &encodings {
        assert_eq!(e.encoding, None, "{encodings:?}");
        assert_eq!(e.compressed_flag, Some(false), "{encodings:?}");
    }
}

#[test]
fn batches_are_split_and_all_arrive() {
    let receiver = OtlpReceiver::start();
    let cfg = Config::default()
        .service("batches")
        .otlp_http(receiver.http_traces_url())
        .batch(BatchConfig {
            max_queue_size: 1000,
            schedule_delay: Duration::from_millis(20),
            max_export_batch_size: 7,
            export_timeout: Duration::from_secs(5),
        });
    let provider = TracerProvider::from_config(cfg).unwrap();
    let subscriber = tracing_subscriber::registry().with(provider.layer());
    obs_testing::subscriber::with_default(subscriber, || {
        for i in 0..50 {
            let _s = tracing::info_span!("unit", i).entered();
        }
    });
    let report = provider.shutdown(Duration::from_secs(10));
    assert_eq!((report.exported, report.dropped), (50, 0));
    let spans = receiver.wait_for_spans(50, Duration::from_secs(5));
    assert_eq!(spans.len(), 50);
    assert!(receiver.requests() >= 8, "50 spans in batches of at most 7");
    let mut seen: Vec<i64> = spans
        .iter()
        .map(|s| s.attr("i").unwrap().parse().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
}
