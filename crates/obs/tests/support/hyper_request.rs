//! A request as hyper hands one over, shared by `tests/alloc_per_request.rs`
//! and `benches/server_layer.rs` (each includes this file with `#[path]`).

/// `GET` `path` with a `user-agent` header, where the path and the header
/// value are slices of one read buffer, as hyper parses them: cloning them
/// (the access line keeps the path, the error scope the head) takes a
/// reference, as in a real server. Built from `&str`s instead, the first
/// clone of each would allocate a shared copy that no server request pays.
pub(crate) fn hyper_request(path: &str, user_agent: &str) -> http::Request<axum::body::Body> {
    let mut read = bytes::BytesMut::with_capacity(path.len() + user_agent.len());
    read.extend_from_slice(path.as_bytes());
    read.extend_from_slice(user_agent.as_bytes());
    let path = read.split_to(path.len()).freeze();
    let agent = read.split().freeze();
    let mut req = http::Request::new(axum::body::Body::empty());
    *req.uri_mut() = http::Uri::from_maybe_shared(path).expect("a valid path");
    req.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_maybe_shared(agent).expect("a valid header value"),
    );
    req
}
