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

/// `host` and `port` of an authority (`host:port`, `[v6]:port`, `host`),
/// credentials (`user:pw@`) dropped: what spans and metrics record as
/// `server.address` and `server.port`. Byte scans from the end: a host is a
/// few bytes, fewer than the set-up of `str`'s searchers costs.
///
/// ```
/// use obs_core::headers::split_authority;
/// assert_eq!(split_authority("h:50051"), ("h", Some(50051)));
/// assert_eq!(split_authority("u:p@[::1]:8080"), ("::1", Some(8080)));
/// assert_eq!(split_authority("example.com"), ("example.com", None));
/// ```
pub fn split_authority(authority: &str) -> (&str, Option<u16>) {
    let last = |s: &str, byte: u8| s.bytes().rposition(|b| b == byte);
    let a = last(authority, b'@').map_or(authority, |i| &authority[i + 1..]);
    if let Some(rest) = a.strip_prefix('[') {
        let (h, p) = rest.split_once(']').unwrap_or((rest, ""));
        return (h, p.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match last(a, b':') {
        Some(i) => (&a[..i], a[i + 1..].parse().ok()),
        None => (a, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_authority;

    proptest::proptest! {
        /// The byte scans split an authority as `str`'s searchers do.
        #[test]
        fn split_authority_splits_as_the_str_searchers_do(a in "[a-z0-9@:\\[\\].-]{0,24}") {
            fn by_searchers(a: &str) -> (&str, Option<u16>) {
                let a = a.rsplit('@').next().unwrap_or(a);
                if let Some(rest) = a.strip_prefix('[') {
                    let (h, p) = rest.split_once(']').unwrap_or((rest, ""));
                    return (h, p.strip_prefix(':').and_then(|p| p.parse().ok()));
                }
                match a.rsplit_once(':') {
                    Some((h, p)) => (h, p.parse().ok()),
                    None => (a, None),
                }
            }
            proptest::prop_assert_eq!(split_authority(&a), by_searchers(&a));
        }
    }
}
