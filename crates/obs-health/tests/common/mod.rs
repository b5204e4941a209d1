//! Shared helpers: a loopback server for a `Health` and a tiny HTTP client.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use obs_health::Health;
use tokio::net::{TcpListener, TcpStream};

/// A response as the client saw it.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: String,
}

/// Serves `health.router()` with axum on an ephemeral loopback port.
pub(crate) async fn serve_axum(health: &Health) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().merge(health.router());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// Serves the plain `tower` service with hyper-util on an ephemeral loopback port.
pub(crate) async fn serve_hyper(health: &Health) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let svc = health.service();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(TokioIo::new(stream), svc)
                .await;
            });
        }
    });
    addr
}

/// One request on a fresh HTTP/1.1 connection.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    accept: Option<&str>,
) -> Resp {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("utf-8 body"),
    }
}

/// `GET path` as plain text.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, None).await
}

/// `GET path` with `Accept: application/health+json`.
pub(crate) async fn get_json(addr: SocketAddr, path: &str) -> (Resp, serde_json::Value) {
    let resp = request(addr, "GET", path, Some("application/health+json")).await;
    let json = serde_json::from_str(&resp.body).expect("valid JSON body");
    (resp, json)
}
