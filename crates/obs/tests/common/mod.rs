//! What the facade's HTTP tests share: a plain hyper client (no obs layers:
//! the test is the outside world) and one request helper.

#![allow(dead_code, reason = "each test binary uses a part")]

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub(crate) type HttpClient =
    Client<hyper_util::client::legacy::connect::HttpConnector, Full<bytes::Bytes>>;

pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends one request; returns the status, the headers and the body as text.
pub(crate) async fn send(
    client: &HttpClient,
    method: &str,
    url: impl AsRef<str>,
    headers: &[(&str, &str)],
    body: impl Into<String>,
) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::builder().method(method).uri(url.as_ref());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::from(body.into())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}
