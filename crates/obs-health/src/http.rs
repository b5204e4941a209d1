//! The probe endpoints as a `tower::Service` over `http` 1 types (feature
//! `tower`) and as an `axum::Router` (feature `axum`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;

use crate::registry::Health;
use crate::report::{Probe, ProbeOptions};
use crate::result::Status;

/// The `Content-Type` of the IETF format.
pub const HEALTH_JSON: &str = "application/health+json";
const TEXT: &str = "text/plain; charset=utf-8";

/// A `tower::Service` answering `/livez`, `/readyz`, `/startupz`,
/// `/healthz` and `/{endpoint}/{check}` (GET and HEAD), for plain hyper or
/// any tower stack. Query options: `verbose`, `exclude=name` (repeatable),
/// `tag=t` (repeatable). `Accept: application/health+json` (or
/// `application/json`) selects the IETF JSON body. Status 200 on pass and
/// warn, 503 on fail, 404 for unknown paths and checks; always
/// `Cache-Control: no-store`.
///
/// ```
/// use obs_health::{Check, Health};
/// use tower::ServiceExt;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let health = Health::builder().check(Check::new("db", || async { true })).build().unwrap();
/// let req = http::Request::get("/readyz?verbose").body(()).unwrap();
/// let resp = health.service().oneshot(req).await.unwrap();
/// assert_eq!(resp.status(), 200);
/// assert_eq!(resp.headers()["cache-control"], "no-store");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct HealthService {
    health: Health,
}

impl Health {
    /// The probe endpoints as a `tower::Service`.
    pub fn service(&self) -> HealthService {
        HealthService {
            health: self.clone(),
        }
    }

    /// The probe endpoints as an `axum::Router`, to `merge` into an app (or
    /// `nest` under a prefix).
    ///
    /// ```
    /// # let health = obs_health::Health::builder().build().unwrap();
    /// let app: axum::Router = axum::Router::new().merge(health.router());
    /// ```
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let svc = self.service();
        let mut router = axum::Router::new();
        for probe in [
            Probe::Liveness,
            Probe::Readiness,
            Probe::Startup,
            Probe::All,
        ] {
            let ep = probe.endpoint();
            router = router
                .route_service(&format!("/{ep}"), svc.clone())
                .route_service(&format!("/{ep}/{{check}}"), svc.clone());
        }
        router
    }
}

impl<B> tower_service::Service<Request<B>> for HealthService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let health = self.health.clone();
        let (parts, body) = req.into_parts();
        drop(body);
        Box::pin(
            async move { Ok(respond(&health, &parts.method, &parts.uri, &parts.headers).await) },
        )
    }
}

/// Answers one probe request; the function behind [`HealthService`], usable
/// from any HTTP framework.
pub async fn respond(
    health: &Health,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut resp = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".to_owned(),
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let path = uri.path().trim_start_matches('/').trim_end_matches('/');
    let (endpoint, check) = match path.split_once('/') {
        Some((ep, name)) => (ep, Some(name)),
        None => (path, None),
    };
    let Some(probe) = Probe::from_endpoint(endpoint) else {
        return plain(StatusCode::NOT_FOUND, "not found\n".to_owned());
    };
    let query = Query::parse(uri.query().unwrap_or(""));
    let json = wants_json(headers);
    let report = match check {
        Some(name) => {
            let name = percent_decode(name);
            match health.probe_check(probe, &name).await {
                Some(r) => r,
                None => {
                    let msg = format!("no check {name:?} in {}\n", probe.endpoint());
                    return plain(StatusCode::NOT_FOUND, msg);
                }
            }
        }
        None => health.probe(probe, &query.options).await,
    };
    let code = StatusCode::from_u16(report.http_code()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if json {
        return with_headers(code, HEALTH_JSON, Bytes::from(report.to_health_json()));
    }
    if check.is_none() && !query.verbose && report.status() != Status::Fail {
        // the common probe answer, without building the text
        return with_headers(code, TEXT, Bytes::from_static(b"ok"));
    }
    let body = if check.is_some() {
        report.to_single_text()
    } else {
        report.to_text(query.verbose)
    };
    plain(code, body)
}

fn plain(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_headers(code, TEXT, Bytes::from(body))
}

fn with_headers(
    code: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|media| {
                let media = media.split(';').next().unwrap_or("").trim();
                media.eq_ignore_ascii_case(HEALTH_JSON)
                    || media.eq_ignore_ascii_case("application/json")
            })
        })
    })
}

/// The query options of a probe request.
#[derive(Debug, Default)]
struct Query {
    verbose: bool,
    options: ProbeOptions,
}

impl Query {
    /// Like Kubernetes: `verbose` counts when present with any value;
    /// `exclude` may repeat.
    fn parse(raw: &str) -> Self {
        let mut q = Query::default();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match &*percent_decode(k) {
                "verbose" => q.verbose = true,
                "exclude" => q.options.exclude.push(percent_decode(v).into_owned()),
                "tag" => q.options.tags.push(percent_decode(v).into_owned()),
                _ => {}
            }
        }
        q
    }
}

fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_like_kubernetes() {
        let q = Query::parse("verbose&exclude=db&exclude=cache%2Dx&tag=a");
        assert!(q.verbose);
        assert_eq!(q.options.excluded(), ["db", "cache-x"]);
        assert_eq!(q.options.tags(), ["a"]);
        assert!(Query::parse("verbose=false").verbose);
        assert!(!Query::parse("").verbose);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
