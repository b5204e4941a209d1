//! Outgoing [`reqwest`] calls, through `reqwest-middleware`: the same client
//! span, propagation and metrics as [`client_layer`](crate::http::client_layer)
//! gives `tower` clients.
//!
//! ```
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(obs::reqwest::middleware())
//!     .build();
//! # let _ = client;
//! ```
//!
//! Each call gets:
//! - a client span (kind CLIENT, named for the method, `http.request.method`,
//!   `url.full` with credentials dropped and query secrets redacted,
//!   `server.address`, `server.port`, `http.response.status_code`,
//!   `error.type`; every 4xx and 5xx marks it failed), a child of the
//!   current span;
//! - `traceparent`, `tracestate` and `baggage` in the W3C formats of the
//!   instance, and the current correlation id as `x-correlation-id`
//!   (headers the caller set are kept);
//! - `http_client_request_duration_seconds` by method, server and status.

use std::time::Instant;

use http::{Extensions, HeaderName};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tracing::Instrument;

use crate::Obs;

/// The middleware for `reqwest_middleware::ClientBuilder::with`; get it from
/// [`middleware`] or [`Obs::reqwest_middleware`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ObsMiddleware {
    #[cfg(feature = "trace")]
    propagators: obs_trace::Propagators,
    correlation_header: HeaderName,
    #[cfg(feature = "metrics")]
    metrics: Option<std::sync::Arc<obs_metrics::sets::HttpClientMetrics>>,
}

/// The middleware wired to the instance installed by [`crate::init`]; without
/// one, spans and propagation still work and metrics are skipped.
pub fn middleware() -> ObsMiddleware {
    match Obs::global() {
        Some(obs) => obs.reqwest_middleware(),
        None => ObsMiddleware {
            #[cfg(feature = "trace")]
            propagators: obs_trace::Propagators::default(),
            correlation_header: HeaderName::from_static(obs_core::names::header::X_CORRELATION_ID),
            #[cfg(feature = "metrics")]
            metrics: None,
        },
    }
}

impl Obs {
    /// The reqwest middleware wired to this instance (its propagators and
    /// metrics registry).
    pub fn reqwest_middleware(&self) -> ObsMiddleware {
        ObsMiddleware {
            #[cfg(feature = "trace")]
            propagators: self.inner.trace.tracer.propagators(),
            correlation_header: HeaderName::from_static(obs_core::names::header::X_CORRELATION_ID),
            #[cfg(feature = "metrics")]
            metrics: self.http_client_metrics(),
        }
    }
}

impl ObsMiddleware {
    /// Forwards the correlation id in `name` instead of `x-correlation-id`.
    pub fn correlation_header(mut self, name: HeaderName) -> Self {
        self.correlation_header = name;
        self
    }
}

#[async_trait::async_trait]
impl Middleware for ObsMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        // The trace and correlate features write headers.
        #[cfg(any(feature = "trace", feature = "correlate"))]
        let mut req = req;
        #[cfg(feature = "trace")]
        let span = {
            let url = req.url();
            let authority = url.authority();
            let full = obs_trace::tower::url_full(
                Some(url.scheme()),
                (!authority.is_empty()).then_some(authority),
                url.path(),
                url.query(),
            );
            let span = obs_trace::tower::client_span(
                req.method(),
                &full,
                url.host_str(),
                url.port_or_known_default(),
            );
            obs_trace::tower::inject_client_context(&span, &self.propagators, req.headers_mut());
            span
        };
        #[cfg(not(feature = "trace"))]
        let span = tracing::Span::none();

        #[cfg(feature = "correlate")]
        if !req.headers().contains_key(&self.correlation_header)
            && let Some(id) = obs_correlate::current()
            && let Ok(value) = http::HeaderValue::from_bytes(id.as_bytes())
        {
            req.headers_mut()
                .insert(self.correlation_header.clone(), value);
        }

        #[cfg(feature = "metrics")]
        let call = self.metrics.as_ref().map(|m| {
            (
                m.clone(),
                obs_core::names::normalize_http_method(req.method().as_str()),
                req.url().host_str().unwrap_or_default().to_owned(),
            )
        });
        let start = Instant::now();
        let out = next.run(req, extensions).instrument(span.clone()).await;
        let status = out.as_ref().ok().map(Response::status);
        let error_type = match &out {
            Ok(_) => None,
            Err(e) => Some(error_type(e)),
        };
        #[cfg(feature = "trace")]
        obs_trace::tower::record_client_outcome(&span, status, error_type.unwrap_or_default());
        #[cfg(feature = "metrics")]
        if let Some((m, method, server)) = call {
            m.record(
                method,
                &server,
                status.map(|s| s.as_u16()),
                error_type,
                start.elapsed(),
            );
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (start, error_type, status);
        out
    }
}

/// `error.type` of a call that got no response: what kind of failure.
fn error_type(e: &reqwest_middleware::Error) -> &'static str {
    match e {
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(e) if e.is_request() => "request",
        reqwest_middleware::Error::Reqwest(_) => "transport",
        reqwest_middleware::Error::Middleware(_) => "middleware",
    }
}
