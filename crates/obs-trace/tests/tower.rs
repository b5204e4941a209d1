//! The tower layers against in-process services: what the client injects,
//! how statuses map to span status, and how the server treats invalid or
//! absent trace context.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use obs_trace::context;
use obs_trace::export::InMemoryExporter;
use obs_trace::span::{SpanKind, Status, Value};
use obs_trace::tower::{TraceClientLayer, TraceServerLayer};
use obs_trace::{Sampler, TracerProvider};
use tower::{ServiceBuilder, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

fn setup() -> (TracerProvider, InMemoryExporter, tracing::Dispatch) {
    let mem = InMemoryExporter::default();
    let p = TracerProvider::builder()
        .sampler(Sampler::AlwaysOn)
        .with_exporter(mem.clone())
        .build()
        .unwrap();
    let d = obs_testing::subscriber::dispatch(tracing_subscriber::registry().with(p.layer()));
    (p, mem, d)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn client_injects_its_own_context_and_fails_on_4xx() {
    let (p, mem, d) = setup();
    let seen: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
    let (parent_cx, client_ok) = tracing::dispatcher::with_default(&d, || {
        let mut incoming = http::HeaderMap::new();
        incoming.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        incoming.insert("baggage", "tenant=acme".parse().unwrap());
        let extracted = p.propagators().extract_headers(&incoming);
        let request = context::in_remote_context(&extracted, || tracing::info_span!("request"));
        let _g = request.enter();
        let s = seen.clone();
        let backend = tower::service_fn(move |req: Request<()>| {
            s.lock().unwrap().push(req.headers().clone());
            let status = if req.uri().path() == "/missing" {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            async move { Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap()) }
        });
        let client = ServiceBuilder::new()
            .layer(TraceClientLayer::new())
            .service(backend);
        let ok = block_on(
            client.clone().oneshot(
                Request::get("http://user:secret@api.test:8443/items?token=abc123&page=2")
                    .body(())
                    .unwrap(),
            ),
        )
        .unwrap();
        let missing =
            block_on(client.oneshot(Request::get("http://api.test/missing").body(()).unwrap()))
                .unwrap();
        assert_eq!(missing.status(), 404);
        (context::span_context(&request).unwrap(), ok.status())
    });
    assert_eq!(client_ok, 200);
    assert!(p.force_flush(Duration::from_secs(5)));
    let spans = mem.spans();
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client)
        .collect();
    assert_eq!(clients.len(), 2);
    let headers = seen.lock().unwrap().clone();
    for (client, h) in clients.iter().zip(&headers) {
        assert_eq!(client.parent_span_id, Some(parent_cx.span_id));
        assert_eq!(client.trace_id, parent_cx.trace_id);
        // The callee's parent is the client span itself.
        assert_eq!(
            h["traceparent"],
            format!("00-{}-{}-01", client.trace_id, client.span_id)
        );
        assert_eq!(h["baggage"], "tenant=acme");
    }
    let first = clients[0];
    let url = first.attribute("url.full").unwrap().to_string();
    assert!(!url.contains("secret") && !url.contains("user:"), "{url}");
    assert!(
        !url.contains("abc123") && url.contains("page=2"),
        "query secrets are redacted: {url}"
    );
    assert_eq!(
        first.attribute("server.address"),
        Some(&Value::Str("api.test".into()))
    );
    assert_eq!(first.attribute("server.port"), Some(&Value::I64(8443)));
    assert_eq!(first.status, Status::Unset);
    let second = clients[1];
    assert_eq!(second.status, Status::Error("404".into()));
    assert_eq!(
        second.attribute("error.type"),
        Some(&Value::Str("404".into()))
    );
}

#[test]
fn server_restarts_invalid_traces_and_marks_5xx_and_errors() {
    let (p, mem, d) = setup();
    tracing::dispatcher::with_default(&d, || {
        let app = tower::service_fn(|req: Request<()>| async move {
            // Inside the handler the server span is current.
            let cx = context::current_context().unwrap();
            assert!(cx.trace_id.is_valid());
            match req.uri().path() {
                "/boom" => Ok(Response::builder().status(500).body(()).unwrap()),
                "/err" => Err("handler failed"),
                _ => Ok(Response::new(())),
            }
        });
        let svc = ServiceBuilder::new()
            .layer(TraceServerLayer::new())
            .service(app);
        let bad = Request::get("/ok")
            .header(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )
            .header("x-forwarded-for", "203.0.113.9, 10.0.0.1")
            .body(())
            .unwrap();
        block_on(svc.clone().oneshot(bad)).unwrap();
        block_on(svc.clone().oneshot(Request::get("/boom").body(()).unwrap())).unwrap();
        assert!(block_on(svc.oneshot(Request::post("/err").body(()).unwrap())).is_err());
    });
    assert!(p.force_flush(Duration::from_secs(5)));
    let spans = mem.spans();
    assert_eq!(spans.len(), 3);
    let ok = spans.iter().find(|s| s.name == "GET").unwrap();
    assert_eq!(
        ok.parent_span_id, None,
        "an invalid traceparent restarts the trace"
    );
    assert!(ok.trace_id.is_valid());
    assert_eq!(
        ok.attribute("client.address"),
        Some(&Value::Str("203.0.113.9".into()))
    );
    assert_eq!(ok.status, Status::Unset);
    let boom = spans
        .iter()
        .find(|s| s.attribute("url.path") == Some(&Value::Str("/boom".into())))
        .unwrap();
    assert!(matches!(boom.status, Status::Error(_)));
    assert_eq!(
        boom.attribute("error.type"),
        Some(&Value::Str("500".into()))
    );
    let err = spans.iter().find(|s| s.name == "POST").unwrap();
    assert!(matches!(err.status, Status::Error(_)));
    assert_eq!(err.attribute("http.response.status_code"), None);
    assert!(err.attribute("error.type").is_some());
}
