//! With the `axum` feature the server layer names spans after axum's
//! matched route template and reads the peer address from `ConnectInfo`.
#![cfg(feature = "axum")]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use obs_trace::export::InMemoryExporter;
use obs_trace::span::Value;
use obs_trace::tower::TraceServerLayer;
use obs_trace::{Sampler, TracerProvider};
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn route_template_from_matched_path() {
    let mem = InMemoryExporter::default();
    let provider = TracerProvider::builder()
        .sampler(Sampler::AlwaysOn)
        .with_exporter(mem.clone())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(provider.layer());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    obs_testing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            // The layer goes on the routes (`route_layer`) so that
            // `MatchedPath` is already set when it runs.
            let app = Router::new()
                .route("/items/{id}", get(|| async { "item" }))
                .route_layer(TraceServerLayer::new());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
            });
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream
                .write_all(b"GET /items/42 HTTP/1.1\r\nhost: example.test:8080\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut out = Vec::new();
            stream.read_to_end(&mut out).await.unwrap();
            assert!(out.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&out));
        });
    });
    assert!(provider.force_flush(Duration::from_secs(5)));
    let spans = mem.spans();
    let s = spans
        .iter()
        .find(|s| s.name == "GET /items/{id}")
        .unwrap_or_else(|| panic!("{spans:?}"));
    assert_eq!(
        s.attribute("http.route"),
        Some(&Value::Str("/items/{id}".into()))
    );
    assert_eq!(
        s.attribute("url.path"),
        Some(&Value::Str("/items/42".into()))
    );
    assert_eq!(
        s.attribute("server.address"),
        Some(&Value::Str("example.test".into()))
    );
    assert_eq!(s.attribute("server.port"), Some(&Value::I64(8080)));
    assert_eq!(
        s.attribute("client.address"),
        Some(&Value::Str("127.0.0.1".into()))
    );
}
