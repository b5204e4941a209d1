//! The admin router: `/metrics`, `/livez`, `/readyz`, `/startupz`,
//! `/healthz`, `/loglevel`.
//!
//! Serve it on a separate admin port: probes and scrapes then never queue
//! behind user traffic, and the mutating `/loglevel` endpoint is not
//! reachable from the public edge. It is safe by default either way (see
//! [`Obs::admin_router`]).

use axum::Router;

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
        // `/metrics` (metrics), the probes (health), `/loglevel` (log): each
        // enabled pillar adds its own.
        self.pillar_routes()
    }
}
