//! The admin router: `/metrics`, `/livez`, `/readyz`, `/startupz`,
//! `/healthz`, `/loglevel`.
//!
//! Serve it on a separate admin port (recommended: probes and scrapes then
//! never queue behind user traffic, and the mutating `/loglevel` endpoint is
//! not reachable from the public edge), or merge it into the main router.

use axum::Router;
#[cfg(feature = "log")]
use axum::body::Bytes;
#[cfg(feature = "log")]
use axum::http::{HeaderMap, StatusCode, header};
#[cfg(feature = "log")]
use axum::response::{IntoResponse, Response};
#[cfg(feature = "log")]
use axum::routing::get;

use crate::Obs;

impl Obs {
    /// The admin endpoints as an axum router:
    ///
    /// | path | what |
    /// |---|---|
    /// | `GET /metrics` | Prometheus text 0.0.4 or OpenMetrics by `Accept`, gzip by `Accept-Encoding` (feature `gzip`) |
    /// | `GET /livez` `/readyz` `/startupz` `/healthz`, `/readyz/{check}` | probes; `?verbose`, `?exclude=`, `Accept: application/health+json` |
    /// | `GET /loglevel` | the log filter directive in force |
    /// | `PUT /loglevel` | replace it (body = directive); 400 with the reason on a bad directive; `Authorization: Bearer <token>` when [`Config::admin_token`](crate::Config::admin_token) or `OBS_ADMIN_TOKEN` is set |
    pub fn admin_router(&self) -> Router {
        #[allow(unused_mut, reason = "routes are added per enabled feature")]
        let mut router = Router::new();
        #[cfg(feature = "metrics")]
        {
            router = router.route_service("/metrics", self.inner.registry.service());
        }
        #[cfg(feature = "health")]
        {
            router = router.merge(self.inner.health.router());
        }
        #[cfg(feature = "log")]
        {
            let (get_obs, put_obs) = (self.clone(), self.clone());
            router = router.route(
                "/loglevel",
                get(move || async move { text(StatusCode::OK, get_obs.log_level() + "\n") }).put(
                    move |headers: HeaderMap, body: Bytes| async move {
                        put_loglevel(&put_obs, &headers, &body)
                    },
                ),
            );
        }
        router
    }
}

#[cfg(feature = "log")]
fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Whether the request may use a mutating endpoint.
#[cfg(feature = "log")]
fn authorized(obs: &Obs, headers: &HeaderMap) -> bool {
    let Some(token) = &obs.inner.admin_token else {
        return true;
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    constant_time_eq(given.trim().as_bytes(), token.expose().as_bytes())
}

/// Compares without an early exit, so response time does not reveal how much
/// of a guessed token was right.
#[cfg(any(feature = "log", test))]
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(feature = "log")]
fn put_loglevel(obs: &Obs, headers: &HeaderMap, body: &[u8]) -> Response {
    if !authorized(obs, headers) {
        let mut r = text(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required\n".into(),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let Ok(directive) = std::str::from_utf8(body) else {
        return text(
            StatusCode::BAD_REQUEST,
            "the directive is not UTF-8\n".into(),
        );
    };
    let directive = directive.trim();
    match obs.reload_log_level(directive) {
        Ok(()) => {
            tracing::warn!(target: "obs", directive, "log filter changed through /loglevel");
            text(StatusCode::OK, obs.log_level() + "\n")
        }
        Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
