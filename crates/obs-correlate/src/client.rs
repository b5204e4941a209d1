//! The client `tower` layer.

use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request};
use obs_core::CorrelationId;
use obs_core::names::header;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Config, Error};

/// The client layer: puts the correlation id on outgoing requests.
///
/// The id is the [`CorrelationId`] in the request's extensions if the caller
/// put one there, else the [`current`](crate::current) id. A request that
/// already has the header keeps it; a request made without any current id
/// goes out without one (the receiving service generates its own).
///
/// ```
/// use http::Request;
/// use obs_core::CorrelationId;
/// use obs_correlate::PropagateLayer;
/// use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let client = PropagateLayer::new().layer(service_fn(|req: Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(req.headers().get("x-correlation-id").cloned())
/// }));
/// let id = CorrelationId::parse("req-1").unwrap();
/// let sent = obs_correlate::scope(id, client.oneshot(Request::new(()))).await.unwrap();
/// assert_eq!(sent.unwrap(), "req-1");
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct PropagateLayer {
    header: HeaderName,
}

impl Default for PropagateLayer {
    fn default() -> Self {
        Self {
            header: HeaderName::from_static(header::X_CORRELATION_ID),
        }
    }
}

impl PropagateLayer {
    /// A layer writing `x-correlation-id`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer writing the first header name of `config` (the one the
    /// server layer echoes under), so both sides of a service agree.
    ///
    /// ```
    /// use obs_correlate::{Config, PropagateLayer};
    /// let config = Config::new().headers(["x-request-id"])?;
    /// let _client = PropagateLayer::from_config(&config);
    /// # Ok::<(), obs_correlate::Error>(())
    /// ```
    pub fn from_config(config: &Config) -> Self {
        Self {
            header: config.header_names[0].clone(),
        }
    }

    /// A layer writing the header `name` instead.
    ///
    /// ```
    /// assert!(obs_correlate::PropagateLayer::with_header("x-request-id").is_ok());
    /// assert!(obs_correlate::PropagateLayer::with_header("bad name").is_err());
    /// ```
    pub fn with_header(name: &str) -> Result<Self, Error> {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::HeaderName {
            name: crate::error::preview(name),
        })?;
        Ok(Self { header })
    }
}

impl<S> Layer<S> for PropagateLayer {
    type Service = PropagateService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        PropagateService {
            inner,
            header: self.header.clone(),
        }
    }
}

/// The service built by [`PropagateLayer`].
#[derive(Clone, Debug)]
pub struct PropagateService<S> {
    inner: S,
    header: HeaderName,
}

impl<S> PropagateService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> Service<Request<B>> for PropagateService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if !req.headers().contains_key(&self.header) {
            let id = req
                .extensions()
                .get::<CorrelationId>()
                .cloned()
                .or_else(crate::current);
            if let Some(value) = id.and_then(|id| HeaderValue::from_bytes(id.as_bytes()).ok()) {
                req.headers_mut().insert(self.header.clone(), value);
            }
        }
        self.inner.call(req)
    }
}
