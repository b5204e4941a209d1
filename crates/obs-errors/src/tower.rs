//! A tower layer that binds an error scope carrying the request context to
//! each request, so errors and panics in the handler report the method,
//! route and (redacted) headers.

use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::scope::{self, Scoped};

/// Binds a scope with the request's [`RequestContext`](crate::RequestContext) (method, path, route
/// template from axum's `MatchedPath` with the `axum` feature, redacted
/// headers) to every request future. Place it inside the router
/// (`Router::layer`) so the matched route is known.
///
/// ```
/// use obs_errors::tower::ErrorScopeLayer;
/// use tower::ServiceBuilder;
/// let svc = ServiceBuilder::new()
///     .layer(ErrorScopeLayer::new())
///     .service_fn(|_req: http::Request<()>| async {
///         let method = obs_errors::scope::current().request().map(|r| r.method.clone());
///         Ok::<_, std::convert::Infallible>(method.unwrap_or_default())
///     });
/// # let _ = svc;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorScopeLayer {
    _priv: (),
}

impl ErrorScopeLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for ErrorScopeLayer {
    type Service = ErrorScopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorScopeService { inner }
    }
}

/// The service of [`ErrorScopeLayer`].
#[derive(Clone, Debug)]
pub struct ErrorScopeService<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for ErrorScopeService<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Scoped<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let mut s = scope::fork();
        s.set_request_lazy(&req);
        scope::scoped_call(s, || self.inner.call(req))
    }
}
