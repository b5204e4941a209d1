//! The admin router: `/metrics`, `/livez`, `/readyz`, `/startupz`,
//! `/healthz`, `/loglevel`.
//!
//! Serve it on a separate admin port: probes and scrapes then never queue
//! behind user traffic, and the mutating `/loglevel` endpoint is not
//! reachable from the public edge. It is safe by default either way (see
//! [`Obs::admin_router`]).

use axum::Router;
#[cfg(feature = "log")]
use std::net::SocketAddr;

#[cfg(feature = "log")]
use axum::extract::{ConnectInfo, Request};
#[cfg(feature = "log")]
use axum::http::{HeaderMap, StatusCode, header};
#[cfg(feature = "log")]
use axum::response::{IntoResponse, Response};
#[cfg(feature = "log")]
use axum::routing::get;

use crate::Obs;

/// Largest `PUT /loglevel` body accepted; larger ones get `413`.
pub const MAX_ADMIN_BODY: usize = 4096;

impl Obs {
    /// The admin endpoints as an axum router:
    ///
    /// | path | what |
    /// |---|---|
    /// | `GET /metrics` | Prometheus text 0.0.4 or OpenMetrics by `Accept`, gzip by `Accept-Encoding` (feature `gzip`) |
    /// | `GET /livez` `/readyz` `/startupz` `/healthz`, `/readyz/{check}` | probes; `?verbose`, `?exclude=`, `Accept: application/health+json` |
    /// | `GET /loglevel` | the log filter directive in force |
    /// | `PUT /loglevel` | replace it (body = directive, at most [`MAX_ADMIN_BODY`] bytes) |
    ///
    /// Reads are open. `PUT /loglevel` is safe by default:
    /// - with no token configured ([`Config::admin_token`](crate::Config::admin_token)
    ///   or `OBS_ADMIN_TOKEN`) it is refused with `403`, naming `OBS_ADMIN_TOKEN`;
    /// - with one, it needs `Authorization: Bearer <token>` (`401` otherwise);
    /// - a body over [`MAX_ADMIN_BODY`] bytes gets `413`; a bad directive `400`
    ///   whose message quotes at most 64 bytes of it;
    /// - every accepted change writes a WARN audit line (target `obs::audit`:
    ///   peer address, old and new directive) *before* it takes effect, and no
    ///   directive, `off` included, can suppress that line.
    ///
    /// Serve it on its own port (probes and scrapes then never queue behind
    /// user traffic, and nothing mutating is reachable from the public edge).
    /// The peer address in audit lines comes from axum's `ConnectInfo`: serve
    /// with `into_make_service_with_connect_info::<SocketAddr>()`.
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
                get(move || async move { text(StatusCode::OK, get_obs.log_level() + "\n") })
                    .put(move |req: Request| async move { put_loglevel(&put_obs, req).await }),
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

/// Why a mutating request is refused, if it is.
#[cfg(feature = "log")]
fn refusal(obs: &Obs, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &obs.inner.admin_token else {
        return Some(text(
            StatusCode::FORBIDDEN,
            "changes through the admin router are disabled: set OBS_ADMIN_TOKEN \
             (or Config::admin_token) and send Authorization: Bearer <token>\n"
                .into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), token.expose().as_bytes())) {
        return None;
    }
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "a valid bearer token is required\n".into(),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    Some(r)
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
fn too_large() -> Response {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is over {MAX_ADMIN_BODY} bytes\n"),
    )
}

#[cfg(feature = "log")]
async fn put_loglevel(obs: &Obs, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Some(refused) = refusal(obs, &parts.headers) {
        return refused;
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_ADMIN_BODY as u64) {
        return too_large();
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_ADMIN_BODY).await else {
        return too_large();
    };
    let Ok(directive) = std::str::from_utf8(&body) else {
        return text(
            StatusCode::BAD_REQUEST,
            "the directive is not UTF-8\n".into(),
        );
    };
    let directive = directive.trim();
    if let Err(e) = obs_log::ReloadHandle::validate(directive) {
        return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    // Recorded before the change takes effect: the audit target passes every
    // filter, so even `off` cannot hide its own line.
    tracing::event!(
        target: obs_core::names::target::AUDIT,
        tracing::Level::WARN,
        admin.action = "loglevel.set",
        client.address = peer.as_deref().unwrap_or("unknown"),
        old = %obs.log_level(),
        new = directive,
        "log filter changed through /loglevel"
    );
    match obs.reload_log_level(directive) {
        Ok(()) => text(StatusCode::OK, obs.log_level() + "\n"),
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
