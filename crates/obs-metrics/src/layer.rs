//! The tower layer recording [`HttpServerMetrics`] for every request.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};

use crate::GaugeGuard;
use crate::sets::{HttpServerMetrics, normalize_method};

/// The route template of a request (obs-core's one route hook, re-exported):
/// for servers other than axum, insert it into the request's extensions
/// before the layer sees the request. With the `axum` feature the layer
/// reads axum's `MatchedPath` too; an explicit template wins.
///
/// The layer never uses the raw path: without a template, the route label
/// is empty.
pub use obs_core::RouteTemplate;

impl HttpServerMetrics {
    /// A tower layer recording this set for every request.
    ///
    /// With axum, add it with `Router::layer` so that it runs inside the
    /// router, where `MatchedPath` is known:
    ///
    /// ```
    /// # #[cfg(feature = "axum")] {
    /// use axum::{Router, routing::get};
    /// let registry = obs_metrics::Registry::new();
    /// let http = obs_metrics::sets::HttpServerMetrics::new(&registry).unwrap();
    /// let app: Router = Router::new()
    ///     .route("/items/{id}", get(|| async { "item" }))
    ///     .layer(http.layer())
    ///     .route_service("/metrics", registry.service());
    /// # }
    /// ```
    pub fn layer(&self) -> HttpMetricsLayer {
        HttpMetricsLayer {
            metrics: Arc::new(self.clone()),
        }
    }
}

/// See [`HttpServerMetrics::layer`].
#[derive(Debug, Clone)]
pub struct HttpMetricsLayer {
    metrics: Arc<HttpServerMetrics>,
}

impl<S> tower_layer::Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`HttpMetricsLayer`].
#[derive(Debug, Clone)]
pub struct HttpMetricsService<S> {
    inner: S,
    metrics: Arc<HttpServerMetrics>,
}

/// The route label of a request, kept without copying the template.
#[derive(Debug)]
enum Route {
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
    Template(Cow<'static, str>),
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            #[cfg(feature = "axum")]
            Route::Matched(m) => m.as_str(),
            Route::Template(t) => t,
        }
    }
}

fn route_of<B>(req: &Request<B>) -> Route {
    if let Some(r) = req.extensions().get::<RouteTemplate>() {
        return Route::Template(r.0.clone());
    }
    #[cfg(feature = "axum")]
    if let Some(m) = req.extensions().get::<axum::extract::MatchedPath>() {
        return Route::Matched(m.clone());
    }
    Route::Template(Cow::Borrowed(""))
}

impl<S, B, RB> tower_service::Service<Request<B>> for HttpMetricsService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>>,
    RB: http_body::Body,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let method = normalize_method(req.method().as_str());
        let route = route_of(&req);
        let request_size = obs_core::headers::content_length(req.headers());
        let active = self.metrics.active.with([method], crate::Gauge::track);
        ResponseFuture {
            inner: self.inner.call(req),
            state: Some(State {
                metrics: self.metrics.clone(),
                method,
                route,
                request_size,
                start: Instant::now(),
                _active: active,
            }),
        }
    }
}

#[derive(Debug)]
struct State {
    metrics: Arc<HttpServerMetrics>,
    method: &'static str,
    route: Route,
    request_size: Option<u64>,
    start: Instant,
    _active: GaugeGuard,
}

pin_project_lite::pin_project! {
    /// The response future of [`HttpMetricsService`]: records when the
    /// response head is ready (body streaming time is not included).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<State>,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: http_body::Body,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Some(st) = this.state.take() {
            let (status, resp_size) = obs_core::headers::response_outcome(&out);
            st.metrics.record_response(
                st.method,
                st.route.as_str(),
                status,
                st.start.elapsed(),
                st.request_size,
                resp_size,
            );
        }
        Poll::Ready(out)
    }
}
