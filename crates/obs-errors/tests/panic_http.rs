//! A panic in an axum request handler produces exactly one report with the
//! backtrace, the request's breadcrumbs in order, trace and correlation ids
//! and the request context (route template, redacted headers).

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use obs_errors::tower::ErrorScopeLayer;
use obs_errors::{BacktraceMode, Config, Mechanism, MemorySink, Reporter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

async fn item(axum::extract::Path(id): axum::extract::Path<u32>) -> &'static str {
    tracing::info!(id, "loading item");
    tracing::info!("cache miss");
    if id == 42 {
        panic!("item {id} is cursed");
    }
    "ok"
}

#[test]
fn panic_in_request_handler_is_reported_once_with_request_context() {
    let memory = MemorySink::new();
    let config = Config::default().backtrace(BacktraceMode::Always);
    let reporter = Reporter::builder(config)
        .sink(memory.clone())
        .build()
        .unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(reporter.layer()))
        .unwrap();
    reporter.install_panic_hook();

    let ids = std::sync::Arc::new(std::sync::Mutex::new(None));
    let ids_w = ids.clone();
    let app = Router::new()
        .route("/items/{id}", get(item))
        .layer(ErrorScopeLayer::new())
        // the request span with its ids, as the trace and correlate layers would make it
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let ids_w = ids_w.clone();
                async move {
                    let span = tracing::info_span!("request", method = %req.method());
                    *ids_w.lock().unwrap() = Some(common::stamp_ids(&span, "req-abc-123"));
                    async {
                        tracing::info!("request started");
                        next.run(req).await
                    }
                    .instrument(span)
                    .await
                }
            },
        ));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = "GET /items/42?api_key=sk_live_abcdefghijklmnop1234 HTTP/1.1\r\nHost: localhost\r\n\
                       Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl\r\n\
                       Cookie: session=0123456789abcdef\r\nX-Trace-Note: keep-me\r\nConnection: close\r\n\r\n";
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        // the connection dies with the handler; the response, if any, is irrelevant
        let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut buf)).await;
    });
    reporter.flush(Duration::from_secs(10)).unwrap();

    let reports = memory.reports();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let r = &reports[0];
    assert_eq!(r.mechanism, Mechanism::Panic);
    assert_eq!(r.message, "item 42 is cursed");
    assert!(
        r.stacktrace
            .as_ref()
            .is_some_and(|s| s.frames().iter().any(|f| f.function.contains("panic_http")))
    );
    let crumbs: Vec<_> = r.breadcrumbs.iter().map(|b| b.message.as_str()).collect();
    assert_eq!(crumbs, ["request started", "loading item", "cache miss"]);
    assert_eq!(r.breadcrumbs[1].field("id"), Some("42"));

    let (trace_id, span_id, correlation_id) = ids.lock().unwrap().clone().unwrap();
    assert_eq!(r.trace_id(), Some(trace_id));
    assert_eq!(r.span_id(), Some(span_id));
    assert_eq!(r.correlation_id(), Some(correlation_id.as_str()));

    let req = r.request.as_ref().expect("request context");
    assert_eq!(req.method, "GET");
    assert_eq!(req.route.as_deref(), Some("/items/{id}"));
    assert_eq!(req.path.as_deref(), Some("/items/42"));
    assert_eq!(req.header("authorization"), Some("[REDACTED]"));
    assert_eq!(req.header("cookie"), Some("[REDACTED]"));
    assert_eq!(req.header("x-trace-note"), Some("keep-me"));
    assert_eq!(reporter.stats().captured(), 1);
}
