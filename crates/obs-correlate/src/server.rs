//! The server `tower` layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Request, Response};
use obs_core::{CorrelationId, IdRecord};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;

use crate::context::{Swapped, WithCorrelation};
use crate::{Config, Source, Stats};

#[derive(Debug)]
struct Shared {
    config: Config,
    stats: Stats,
}

/// The server layer: gives every request a correlation id.
///
/// For each request it:
/// 1. reads the configured headers (`x-correlation-id`, then `x-request-id`);
///    the first one present decides. A valid value (obs-core's rules and the
///    configured maximum length) is used; an invalid or repeated one is
///    replaced by a generated id and counted in [`Stats::replaced`] — its
///    value is never echoed, logged or passed on. With none present it
///    generates an id (or takes `traceparent`'s trace id when
///    [`Config::accept_traceparent`] is on);
/// 2. rewrites the request's correlation headers to the id (so inner layers
///    and proxies see only the validated value) and, unless
///    [`Config::request_extension`] is off, stores the id in the request
///    extensions (read it with [`from_request`], the axum `Correlation`
///    extractor, or [`current`](crate::current));
/// 3. records the id in the obs-core [`IdRecord`] of the current `tracing`
///    span when one is active (the server span of an outer trace layer),
///    otherwise of a `request` span it creates — so every log line of the
///    request carries it; with [`Config::span_opened_inside`], it instead
///    hands the id to the span an inner layer opens (obs-trace's server
///    layer), which writes it into that span's record as it creates it;
/// 4. makes it the current id ([`current`](crate::current)) while the inner
///    service is called and while its future runs;
/// 5. echoes it on the response under the first configured header (and
///    under the header it came in, if different) — on every response the
///    inner service returns, including error responses made by inner
///    layers such as a catch-panic layer. An inner service that fails with
///    `Err` produces no response to echo on; keep error-to-response
///    conversion inside this layer.
///
/// ```
/// use http::{Request, Response};
/// use obs_correlate::CorrelationLayer;
/// use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let layer = CorrelationLayer::new();
/// let stats = layer.stats();
/// let svc = layer.layer(service_fn(|req: Request<()>| async move {
///     let id = obs_correlate::from_request(&req);
///     assert_eq!(id, obs_correlate::current());
///     Ok::<_, std::convert::Infallible>(Response::new(()))
/// }));
/// let req = Request::builder().header("x-request-id", "abc-1").body(()).unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// assert_eq!(res.headers()["x-correlation-id"], "abc-1");
/// assert_eq!(res.headers()["x-request-id"], "abc-1");
/// assert_eq!(stats.incoming(), 1);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct CorrelationLayer {
    shared: Arc<Shared>,
}

impl Default for CorrelationLayer {
    fn default() -> Self {
        Self::with_config(Config::default())
    }
}

impl CorrelationLayer {
    /// A layer with the default [`Config`] and fresh [`Stats`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer with `config` and fresh [`Stats`].
    pub fn with_config(config: Config) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                stats: Stats::new(),
            }),
        }
    }

    /// This layer counting into `stats` (to share one handle between layers).
    pub fn with_stats(self, stats: Stats) -> Self {
        Self {
            shared: Arc::new(Shared {
                config: self.shared.config.clone(),
                stats,
            }),
        }
    }

    /// The counters of how ids were obtained (a cheap handle; clone it for
    /// the code that publishes metrics).
    pub fn stats(&self) -> Stats {
        self.shared.stats.clone()
    }

    /// The policy in use.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}

impl<S> Layer<S> for CorrelationLayer {
    type Service = CorrelationService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CorrelationService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service built by [`CorrelationLayer`].
#[derive(Clone, Debug)]
pub struct CorrelationService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> CorrelationService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The counters of how ids were obtained.
    pub fn stats(&self) -> Stats {
        self.shared.stats.clone()
    }
}

/// The correlation id of `req`: the one stored in its extensions (by the
/// server layer, unless [`Config::request_extension`] is off, or by the
/// caller); otherwise the [`current`](crate::current) id, when `req`'s
/// headers carry it. The server layer writes the id into the request's
/// first correlation header, so inside the request's task this finds it;
/// elsewhere (a task spawned without [`spawn`](crate::spawn), another
/// request's task) it is `None`, never some other request's id.
///
/// ```
/// let mut req = http::Request::new(());
/// assert!(obs_correlate::from_request(&req).is_none());
/// req.extensions_mut().insert(obs_correlate::CorrelationId::parse("a").unwrap());
/// assert_eq!(obs_correlate::from_request(&req).unwrap().as_str(), "a");
///
/// // The current id counts only when the request carries it.
/// let id = obs_correlate::CorrelationId::parse("req-9").unwrap();
/// obs_correlate::sync_scope(id, || {
///     assert!(obs_correlate::from_request(&http::Request::new(())).is_none());
///     let carried = http::Request::builder()
///         .header("x-correlation-id", "req-9")
///         .body(())
///         .unwrap();
///     assert_eq!(obs_correlate::from_request(&carried).unwrap().as_str(), "req-9");
/// });
/// ```
pub fn from_request<B>(req: &Request<B>) -> Option<CorrelationId> {
    id_of_parts(req.headers(), req.extensions())
}

/// [`from_request`] over a request's parts (the axum extractor's).
pub(crate) fn id_of_parts(
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
) -> Option<CorrelationId> {
    if let Some(id) = extensions.get::<CorrelationId>() {
        return Some(id.clone());
    }
    let id = crate::current()?;
    headers
        .values()
        .any(|v| v.as_bytes() == id.as_bytes())
        .then_some(id)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CorrelationService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &self.shared.config;
        let (resolution, incoming) = config.resolve_header_map(req.headers());
        // A valid incoming value is reused as is (no copy); otherwise the
        // id — 1..=128 bytes of visible ASCII — always makes a header value.
        let value = match incoming {
            Some(v) => Some(v.clone()),
            None => header_value(resolution.id.as_bytes()),
        };
        self.shared.stats.record(resolution.source);
        if let Some(value) = &value {
            normalize_request_headers(config, &resolution, value, req.headers_mut());
        }
        if config.request_extension {
            req.extensions_mut().insert(resolution.id.clone());
        }

        let span = request_span(config, &req, &resolution.id);
        let entered = span.enter();
        if let Some(rejection) = &resolution.rejection {
            self.shared.stats.record_rejection(rejection);
            let report = || {
                tracing::debug!(
                    header = resolution.header(config),
                    reason = %rejection,
                    "replaced an invalid incoming correlation id"
                );
            };
            if config.span_opened_inside {
                // No span yet (it is opened inside): the line carries the
                // new id all the same.
                IdRecord::in_thread_scope(
                    IdRecord::with_correlation(resolution.id.clone()),
                    report,
                );
            } else {
                report();
            }
        }
        let id = resolution.id;
        // Guards rather than closures: the inner service's future (the
        // whole stack's) is built in place, not moved back out through
        // each closure.
        let fut = {
            let _current = Swapped::enter(Some(id.clone()));
            let _next = config
                .span_opened_inside
                .then(|| IdRecord::next_span_correlation(id.clone()));
            self.inner.call(req)
        };
        drop(entered);

        let echo = value.map(|value| Echo {
            value,
            primary: config.header_names[0].clone(),
            extra: resolution
                .header
                .filter(|&i| i != 0)
                .map(|i| config.header_names[i].clone()),
        });
        ResponseFuture {
            inner: WithCorrelation::new(Some(id), span, fut),
            echo,
        }
    }
}

/// The bytes each generated id's header value is cut from: one chunk per
/// thread, replaced when full.
const ID_CHUNK: usize = 16 * 1024;

thread_local! {
    static ID_BYTES: std::cell::RefCell<bytes::BytesMut> =
        std::cell::RefCell::new(bytes::BytesMut::new());
}

/// A generated id as a header value cut from this thread's chunk: the
/// value is set on the request and echoed on the response (two clones),
/// and a value copied on its own would cost two allocations per request
/// (the copy, then the shared header its first clone makes); cut from a
/// shared chunk it costs none until the chunk (about 450 UUIDs) is used
/// up. A chunk is freed when the last value cut from it is dropped.
fn header_value(id: &[u8]) -> Option<HeaderValue> {
    let cut = ID_BYTES
        .try_with(|chunk| {
            let mut chunk = chunk.try_borrow_mut().ok()?;
            if chunk.capacity() < id.len() {
                *chunk = bytes::BytesMut::with_capacity(ID_CHUNK.max(id.len()));
            }
            chunk.extend_from_slice(id);
            Some(chunk.split().freeze())
        })
        .ok()
        .flatten();
    match cut {
        Some(b) => HeaderValue::from_maybe_shared(b).ok(),
        None => HeaderValue::from_bytes(id).ok(),
    }
}

/// Makes the request's correlation headers agree with the id, so inner
/// layers and proxies never see a rejected or untrusted value: the first
/// configured header always holds the id; a header whose value was rejected
/// or not trusted is overwritten. The hot path (a valid id in the first
/// header) writes nothing.
fn normalize_request_headers(
    config: &Config,
    resolution: &crate::Resolution,
    value: &HeaderValue,
    headers: &mut http::HeaderMap,
) {
    let names = &config.header_names;
    match resolution.source {
        Source::Incoming if resolution.header == Some(0) => {}
        Source::Replaced | Source::Untrusted => {
            for name in names {
                if let http::header::Entry::Occupied(mut e) = headers.entry(name) {
                    e.insert(value.clone());
                }
            }
            headers.insert(&names[0], value.clone());
        }
        _ => {
            headers.insert(&names[0], value.clone());
        }
    }
}

/// Records `id` on the current span when one is active (and allowed), else
/// creates a `request` span carrying it, unless a span opened inside takes
/// it. Returns the span the inner future must run in (`Span::none()` when
/// the caller's span, or the one opened inside, covers it).
fn request_span<B>(config: &Config, req: &Request<B>, id: &CorrelationId) -> Span {
    if config.span_opened_inside {
        // The span opened inside takes the id as it is created; it is the
        // request's own span, so this wins over `always_new_span` (a
        // `request` span opened out here would start a trace of its own).
        return Span::none();
    }
    if !config.always_new_span
        && IdRecord::update_current(|r| r.correlation_id = Some(id.clone())).is_some()
    {
        return Span::none();
    }
    let span = tracing::info_span!(
        "request",
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
    );
    if let Some(sid) = span.id() {
        IdRecord::update_span_id(&sid, |r| r.correlation_id = Some(id.clone()));
    }
    span
}

#[derive(Debug)]
struct Echo {
    value: HeaderValue,
    primary: HeaderName,
    extra: Option<HeaderName>,
}

pin_project_lite::pin_project! {
    /// The response future of [`CorrelationService`]: runs the inner future
    /// with the id and echoes the id on its response.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: WithCorrelation<F>,
        echo: Option<Echo>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("echo", &self.echo)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(echo) = this.echo.take() {
            let headers = response.headers_mut();
            if let Some(extra) = echo.extra {
                headers.insert(extra, echo.value.clone());
            }
            headers.insert(echo.primary, echo.value);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_header_values_are_cut_from_shared_chunks() {
        // More ids than one chunk holds: every value is right, across the
        // switch to a new chunk.
        let ids: Vec<CorrelationId> = (0..1_000)
            .map(|_| CorrelationId::generate(crate::IdFormat::UuidV4))
            .collect();
        let values: Vec<HeaderValue> = ids
            .iter()
            .map(|id| header_value(id.as_bytes()).expect("a generated id is a header value"))
            .collect();
        for (id, v) in ids.iter().zip(&values) {
            assert_eq!(v.as_bytes(), id.as_bytes());
            assert_eq!(v.clone(), *v);
        }
        // An id longer than what is left of a chunk (and than a chunk) still
        // gets its own bytes; a value the header rules refuse is refused.
        let long = "x".repeat(ID_CHUNK + 1);
        assert_eq!(
            header_value(long.as_bytes()).unwrap().as_bytes(),
            long.as_bytes()
        );
        assert!(header_value(b"bad\nvalue").is_none());
        assert_eq!(header_value(b"after").unwrap(), "after");
    }
}
