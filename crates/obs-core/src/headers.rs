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
