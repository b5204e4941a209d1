//! Small readings of HTTP headers more than one pillar makes (feature
//! `http`).

/// The value of a `Content-Length` header, when present and a valid
/// number: what RED metrics record as a body size and the access line
/// writes.
///
/// ```
/// let mut h = http::HeaderMap::new();
/// assert_eq!(obs_core::headers::content_length(&h), None);
/// h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("512"));
/// assert_eq!(obs_core::headers::content_length(&h), Some(512));
/// h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("-1"));
/// assert_eq!(obs_core::headers::content_length(&h), None);
/// ```
pub fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A response's body size: the body's exact size hint, else its
/// `Content-Length` header. What RED metrics record and the access line
/// writes as the response body size.
///
/// ```
/// let resp = http::Response::new(String::from("hello"));
/// assert_eq!(obs_core::headers::response_body_size(&resp), Some(5));
/// ```
pub fn response_body_size<B: http_body::Body>(resp: &http::Response<B>) -> Option<u64> {
    resp.body()
        .size_hint()
        .exact()
        .or_else(|| content_length(resp.headers()))
}
