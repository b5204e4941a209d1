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

/// A service's outcome as RED metrics and the access line see it: the
/// response's status and body size ([`response_body_size`]), or nothing
/// when the service failed without a response.
///
/// ```
/// let ok: Result<_, ()> = Ok(http::Response::new(String::from("hi")));
/// assert_eq!(obs_core::headers::response_outcome(&ok), (Some(200), Some(2)));
/// let failed: Result<http::Response<String>, ()> = Err(());
/// assert_eq!(obs_core::headers::response_outcome(&failed), (None, None));
/// ```
pub fn response_outcome<B: http_body::Body, E>(
    out: &Result<http::Response<B>, E>,
) -> (Option<u16>, Option<u64>) {
    match out {
        Ok(resp) => (Some(resp.status().as_u16()), response_body_size(resp)),
        Err(_) => (None, None),
    }
}
