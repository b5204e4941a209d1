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
        let scope = scope::RequestScope::new(&req);
        let _bound = scope.enter();
        scope.bind(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scope;

    /// The request's scope is a copy of the scope around the call, with the
    /// request's context; bound while the inner service is called and while
    /// its future runs; and what the handler sets stays in it.
    #[test]
    fn the_request_scope_copies_the_outer_one_and_is_bound_in_call_and_poll() {
        let mut outer = Scope::new();
        outer.set_tag("tenant", "acme");
        let seen_in_call = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = seen_in_call.clone();
        let mut svc =
            ErrorScopeLayer::new().layer(tower::service_fn(move |_req: http::Request<()>| {
                *seen.lock().unwrap() = Some(scope::current().tag("tenant").map(str::to_owned));
                async {
                    crate::configure_scope(|s| {
                        s.set_tag("step", "handler");
                    });
                    let s = scope::current();
                    Ok::<_, std::convert::Infallible>((
                        s.tag("tenant").map(str::to_owned),
                        s.request().map(|r| r.method.clone()),
                    ))
                }
            }));
        let req = http::Request::post("/orders").body(()).unwrap();
        let fut = crate::with_scope(outer, || svc.call(req));
        let (tenant, method) = block_on(fut).unwrap();
        assert_eq!(*seen_in_call.lock().unwrap(), Some(Some("acme".to_owned())));
        assert_eq!(tenant.as_deref(), Some("acme"));
        assert_eq!(method.as_deref(), Some("POST"));
        // Nothing the request set leaks out of it.
        assert_eq!(scope::current().tag("step"), None);
        assert_eq!(scope::current().tag("tenant"), None);
    }

    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(fut)
    }
}
