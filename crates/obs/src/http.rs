//! One tower layer for HTTP servers and one for clients, composing every
//! enabled pillar in the order that lets each piece see the same ids.
//!
//! Server, outermost first:
//!
//! 1. **skip** — the admin routes (`/metrics`, the probes, `/loglevel`)
//!    bypass everything *where they are served*: the skip list is matched
//!    against the request's route template (an `obs_core::RouteTemplate`
//!    extension, else axum's `MatchedPath`), never the raw path, so a
//!    request for `/healthz` on an API router that does not serve it is
//!    logged and counted like any other;
//! 2. **correlate** (`obs-correlate`) — takes or generates the correlation id,
//!    writes it into the request's first correlation header, makes it the
//!    task's current id (`obs_correlate::current`), echoes it on
//!    the response, and hands it to the span opened next;
//! 3. **trace** (`obs-trace`) — extracts `traceparent`, opens the server span
//!    `{method} {route}` (its record takes the correlation id as it is
//!    created) and keeps it entered for the rest of the stack;
//! 4. **errors** (`obs-errors`) — binds the request context to the error scope;
//! 5. **metrics** (`obs-metrics`) — RED metrics by method, route template,
//!    status and error type;
//! 6. **access log** — one line per request, level by status (5xx error, 4xx
//!    warn, else info), with duration and sizes; the log layer adds the ids
//!    and the server span's fields (when obs's layers alone read spans and
//!    lines are JSON, the method, route and path come from the span only,
//!    written once: the request-head contract in `docs/ARCHITECTURE.md`);
//! 7. **catch panic** — a panicking handler becomes a 500 that every layer
//!    above sees (the panic itself is reported by the panic hook).
//!
//! Steps 5 to 7 run as one service with one future ([`Finish`]): they
//! share the request's method, route, sizes and start time, read once.
//! [`AccessLogLayer`] and [`CatchPanicLayer`] remain for stacks of their own.
//!
//! With axum, add the layer with `Router::layer` so that it runs inside the
//! router, where the matched route template is known.

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response, StatusCode};
use tower_layer::{Identity, Layer, Stack};
use tower_service::Service;

use crate::Obs;
use crate::pillar::{Off, correlate, errors, metrics, trace};

#[cfg(feature = "metrics")]
pub use crate::pillar::metrics::{ClientMetrics, ClientMetricsFuture, ClientMetricsLayer};

/// Route templates that bypass the server layer by default: scrapes and
/// probes would otherwise drown the access log and skew the latency
/// histograms. Only requests *routed* to one of these templates are skipped.
pub const DEFAULT_SKIP_PATHS: &[&str] = &[
    "/metrics",
    "/livez",
    "/readyz",
    "/startupz",
    "/healthz",
    "/loglevel",
];

/// The layer of a pillar that takes no part in a stack.
pub(crate) type NoLayer = Identity;

/// A pillar's part of the HTTP integration: its layer in the server stack
/// and in the client stack (built from the running pillar, or standalone
/// without an instance), and its routes on the admin router. A disabled
/// pillar ([`Off`]) takes part with [`NoLayer`]s and no routes.
pub(crate) trait HttpPillar {
    type Server: Clone;
    type Client: Clone + std::fmt::Debug;
    fn server_layer(&self) -> Self::Server;
    fn standalone_server() -> Self::Server;
    fn client_layer(&self) -> Self::Client;
    fn standalone_client() -> Self::Client;
    fn admin_routes(&self, _obs: &Obs, router: axum::Router) -> axum::Router {
        router
    }
}

#[allow(dead_code, reason = "stands in only for the disabled pillars")]
impl HttpPillar for Off {
    type Server = NoLayer;
    type Client = NoLayer;
    fn server_layer(&self) -> NoLayer {
        NoLayer::new()
    }
    fn standalone_server() -> NoLayer {
        NoLayer::new()
    }
    fn client_layer(&self) -> NoLayer {
        NoLayer::new()
    }
    fn standalone_client() -> NoLayer {
        NoLayer::new()
    }
}

/// Correlate → trace → error scope (outermost first).
type PillarStack = Stack<errors::http::Server, Stack<trace::http::Server, correlate::http::Server>>;
type ServerStack = Stack<FinishLayer<metrics::http::Server>, PillarStack>;

/// What the server stack's last service records each request into: the
/// metrics pillar's HTTP server set, or nothing when the pillar is off.
pub(crate) trait RecordRequests: Clone {
    /// Held while the request runs (the active-requests gauge's guard).
    type Active;
    fn start(&self, method: &'static str) -> Self::Active;
    fn record(&self, end: &RequestEnd<'_>);
}

impl RecordRequests for NoLayer {
    type Active = ();
    fn start(&self, _: &'static str) {}
    fn record(&self, _: &RequestEnd<'_>) {}
}

/// A finished request, as metrics and the access line see it.
pub(crate) struct RequestEnd<'a> {
    pub(crate) method: &'static str,
    pub(crate) route: &'a str,
    /// `None`: the service failed without a response.
    pub(crate) status: Option<u16>,
    pub(crate) elapsed: std::time::Duration,
    pub(crate) request_size: Option<u64>,
    pub(crate) response_size: Option<u64>,
}

/// The combined server layer; see the [module docs](self).
#[derive(Clone)]
pub struct ServerLayer {
    pillars: PillarStack,
    metrics: metrics::http::Server,
    access_log: bool,
    /// See [`FinishLayer::head_from_span`].
    head_from_span: bool,
    skip: Arc<[Cow<'static, str>]>,
}

impl std::fmt::Debug for ServerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerLayer")
            .field("skip", &self.skip)
            .finish_non_exhaustive()
    }
}

/// The server layer of the instance installed by [`crate::init`].
///
/// Without an installed instance the layer still traces, correlates and
/// logs, but its metrics go to a registry nobody scrapes; a warning says so
/// once. Prefer [`Obs::server_layer`] when you hold the handle.
pub fn server_layer() -> ServerLayer {
    match Obs::global() {
        Some(obs) => obs.server_layer(),
        None => {
            tracing::warn!(
                target: "obs",
                "obs::http::server_layer() called before obs::init: HTTP metrics will not be exported"
            );
            ServerLayer::standalone()
        }
    }
}

/// The client layer of the instance installed by [`crate::init`] (see
/// [`Obs::client_layer`]).
pub fn client_layer() -> ClientLayer {
    match Obs::global() {
        Some(obs) => obs.client_layer(),
        None => ClientLayer::standalone(),
    }
}

impl Obs {
    /// The combined server layer wired to this instance (its metrics
    /// registry, correlation policy and propagators).
    pub fn server_layer(&self) -> ServerLayer {
        let p = &self.inner;
        let mut layer = ServerLayer::from_pillars(
            Stack::new(
                p.errors.server_layer(),
                Stack::new(p.trace.server_layer(), p.correlate.server_layer()),
            ),
            p.metrics.server_layer(),
        );
        // Only with the trace pillar's own server layer in this stack: it
        // sets the request-head flag for every request this stack serves, so
        // a flag from a server layer further out never reaches this one.
        layer.head_from_span =
            cfg!(feature = "trace") && crate::pillar::Pillar::lines_carry_span_fields(&p.log);
        layer
    }

    /// The combined client layer wired to this instance.
    pub fn client_layer(&self) -> ClientLayer {
        let p = &self.inner;
        ClientLayer {
            stack: Stack::new(
                Stack::new(p.metrics.client_layer(), p.correlate.client_layer()),
                p.trace.client_layer(),
            ),
        }
    }

    /// Every enabled pillar's admin routes.
    pub(crate) fn pillar_routes(&self) -> axum::Router {
        let p = &self.inner;
        let router = axum::Router::new();
        let router = p.metrics.admin_routes(self, router);
        let router = p.health.admin_routes(self, router);
        p.log.admin_routes(self, router)
    }
}

impl ServerLayer {
    fn standalone() -> Self {
        Self::from_pillars(
            Stack::new(
                errors::State::standalone_server(),
                Stack::new(
                    trace::State::standalone_server(),
                    correlate::State::standalone_server(),
                ),
            ),
            metrics::State::standalone_server(),
        )
    }

    fn from_pillars(pillars: PillarStack, metrics: metrics::http::Server) -> Self {
        Self {
            pillars,
            metrics,
            access_log: true,
            head_from_span: false,
            skip: DEFAULT_SKIP_PATHS
                .iter()
                .map(|p| Cow::Borrowed(*p))
                .collect(),
        }
    }

    /// Replaces the route templates that bypass the layer (exact match on
    /// the request's route template; requests without one are never skipped).
    pub fn skip_paths<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Cow<'static, str>>,
    {
        self.skip = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Turns the access log line off (the rest of the stack stays).
    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }
}

impl<S: Clone> Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> ServerService<S> {
        let stack: ServerStack = Stack::new(
            FinishLayer {
                metrics: self.metrics.clone(),
                access_log: self.access_log,
                head_from_span: self.head_from_span,
            },
            self.pillars.clone(),
        );
        ServerService {
            traced: stack.layer(inner.clone()),
            bypass: inner,
            skip: self.skip.clone(),
        }
    }
}

/// The service of [`ServerLayer`].
#[derive(Clone)]
pub struct ServerService<S> {
    traced: <ServerStack as Layer<S>>::Service,
    bypass: S,
    skip: Arc<[Cow<'static, str>]>,
}

impl<S> std::fmt::Debug for ServerService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerService")
            .field("skip", &self.skip)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for ServerService<S>
where
    S: Service<Request<B>> + Clone,
    <ServerStack as Layer<S>>::Service:
        Service<Request<B>, Response = S::Response, Error = S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = EitherFuture<
        <<ServerStack as Layer<S>>::Service as Service<Request<B>>>::Future,
        Bypass<S, Request<B>, S::Future>,
    >;

    /// Readiness is the stack's alone: a skipped request drives a fresh
    /// clone of the inner service to readiness itself. Reserving capacity
    /// on both copies would take two permits of a limit below the layer
    /// (`ConcurrencyLimit`, `Buffer`) per request, and with a limit of one
    /// the second would wait for the first forever.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.traced.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if served_route(&req).is_some_and(|route| self.skip.iter().any(|p| p == route)) {
            // Give back what the ready stack reserved (a permit of a limit
            // below it) before the bypass asks for its own.
            let fresh = self.traced.clone();
            drop(std::mem::replace(&mut self.traced, fresh));
            EitherFuture::Right {
                fut: Bypass::Ready {
                    svc: self.bypass.clone(),
                    req: Some(req),
                },
            }
        } else {
            EitherFuture::Left {
                fut: self.traced.call(req),
            }
        }
    }
}

/// The route template the request was routed to, if a router matched one.
fn served_route<B>(req: &Request<B>) -> Option<&str> {
    if let Some(t) = req.extensions().get::<obs_core::RouteTemplate>() {
        return Some(t.as_str());
    }
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str())
}

/// The route template of a request, kept without copying it (the one
/// route hook: an `obs_core::RouteTemplate`, else axum's `MatchedPath`).
enum Route {
    Template(std::borrow::Cow<'static, str>),
    Matched(axum::extract::MatchedPath),
}

impl Route {
    fn of<B>(req: &Request<B>) -> Option<Self> {
        if let Some(t) = req.extensions().get::<obs_core::RouteTemplate>() {
            return Some(Route::Template(t.0.clone()));
        }
        req.extensions()
            .get::<axum::extract::MatchedPath>()
            .cloned()
            .map(Route::Matched)
    }

    fn as_str(&self) -> &str {
        match self {
            Route::Template(t) => t,
            Route::Matched(m) => m.as_str(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`ServerService`]: the full stack or the bypass.
    #[project = EitherProj]
    #[allow(missing_docs, reason = "variants are private in practice")]
    pub enum EitherFuture<A, B> {
        /// Through the stack.
        Left { #[pin] fut: A },
        /// Bypassed.
        Right { #[pin] fut: B },
    }
}

impl<A, B, T> Future for EitherFuture<A, B>
where
    A: Future<Output = T>,
    B: Future<Output = T>,
{
    type Output = T;
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.project() {
            EitherProj::Left { fut } => fut.poll(cx),
            EitherProj::Right { fut } => fut.poll(cx),
        }
    }
}

pin_project_lite::pin_project! {
    /// A skipped request: the inner service driven to readiness, then
    /// called.
    #[project = BypassProj]
    #[allow(missing_docs, reason = "variants are private in practice")]
    pub enum Bypass<S, R, F> {
        /// Waiting for the inner service to be ready.
        Ready { svc: S, req: Option<R> },
        /// Called.
        Called { #[pin] fut: F },
    }
}

impl<S, R> Future for Bypass<S, R, S::Future>
where
    S: Service<R>,
{
    type Output = Result<S::Response, S::Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                BypassProj::Ready { svc, req } => {
                    std::task::ready!(svc.poll_ready(cx))?;
                    let Some(req) = req.take() else {
                        unreachable!("a bypass is called once, then becomes Called")
                    };
                    let fut = svc.call(req);
                    self.set(Bypass::Called { fut });
                }
                BypassProj::Called { fut } => return fut.poll(cx),
            }
        }
    }
}

/// Writes one access log line per request (target `obs::access`), for a
/// stack of your own; [`ServerLayer`] writes it already.
///
/// ```
/// use tower_layer::Layer as _;
/// let svc = obs::http::AccessLogLayer::new().layer(tower::service_fn(
///     |_: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     },
/// ));
/// # drop(svc);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct AccessLogLayer {
    enabled: bool,
}

impl AccessLogLayer {
    /// A layer writing the line for every request.
    pub fn new() -> Self {
        Self { enabled: true }
    }
}

impl Default for AccessLogLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            enabled: self.enabled,
        }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
    enabled: bool,
}

impl<S, B, RB> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: http_body::Body,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let info = self.enabled.then(|| RequestHead::of(&req, true));
        AccessLogFuture {
            fut: self.inner.call(req),
            info,
            start: Instant::now(),
        }
    }
}

/// What the access line and RED metrics keep of a request while it runs,
/// read once when it starts.
struct RequestHead {
    /// Normalised like spans and metrics: a client cannot mint values.
    method: &'static str,
    /// Reference-counted clones: nothing is copied per request.
    route: Option<Route>,
    /// The access line's path: a reference-counted clone, 40 bytes where
    /// the whole URI is 88; `None` when no line is written or the request
    /// has none (`CONNECT`).
    path: Option<http::uri::PathAndQuery>,
    request_size: Option<u64>,
}

impl RequestHead {
    fn of<B>(req: &Request<B>, keep_path: bool) -> Self {
        Self {
            method: obs_core::names::normalize_http_method(req.method().as_str()),
            route: Route::of(req),
            path: keep_path
                .then(|| req.uri().path_and_query().cloned())
                .flatten(),
            request_size: obs_core::headers::content_length(req.headers()),
        }
    }

    fn path(&self) -> &str {
        self.path.as_ref().map_or("", |p| p.path())
    }

    /// The finished request, from the service's outcome.
    fn end<RB: http_body::Body, E>(
        &self,
        out: &Result<Response<RB>, E>,
        elapsed: std::time::Duration,
    ) -> RequestEnd<'_> {
        let (status, response_size) = obs_core::headers::response_outcome(out);
        RequestEnd {
            method: self.method,
            route: self.route.as_ref().map_or("", Route::as_str),
            status,
            elapsed,
            request_size: self.request_size,
            response_size,
        }
    }
}

/// Writes the access line of a finished request: level by status (5xx
/// error, 4xx warn, else info), ERROR without a response.
fn access_line(end: &RequestEnd<'_>, path: &str, head_on_span: bool) {
    let duration_ms = obs_core::units::duration_ms(end.elapsed);
    let route = end.route;
    // The line of a response with status `$status`, the fields `$head`
    // written first: one `tracing` callsite per level and shape (a
    // callsite's level is constant), 5xx at ERROR, 4xx at WARN, the rest at
    // INFO.
    macro_rules! access {
        (@ $lvl:expr, $status:ident $(, $($head:tt)+)?) => {
            tracing::event!(
                target: "obs::access",
                $lvl,
                $($($head)+,)?
                http.response.status_code = $status,
                duration_ms,
                http.request.body.size = end.request_size,
                http.response.body.size = end.response_size,
                message = "request finished"
            )
        };
        ($status:ident $(, $($head:tt)+)?) => {
            if $status >= 500 {
                access!(@ tracing::Level::ERROR, $status $(, $($head)+)?)
            } else if $status >= 400 {
                access!(@ tracing::Level::WARN, $status $(, $($head)+)?)
            } else {
                access!(@ tracing::Level::INFO, $status $(, $($head)+)?)
            }
        };
    }
    // The message is a string field, copied as is by obs's log layer (a
    // message argument would go through `fmt::Arguments`).
    // The path is written raw: every path out redacts it with the one rule
    // set — the log layer before the line is written, the trace exporter
    // before a span event is exported.
    match end.status {
        // The server span carries the method, route and path, and every
        // reader of this line takes them from it (`head_on_span`): written
        // once, at the span's creation. A request without a route template
        // keeps the line's own `http.route` (empty), which the span lacks.
        // Callsites of their own rather than `None` values for the three
        // fields: visiting three absent fields on every line costs about
        // 200 instructions more.
        Some(status) if head_on_span && !route.is_empty() => access!(status),
        Some(status) => access!(
            status,
            http.request.method = end.method,
            http.route = route,
            url.path = path
        ),
        None => tracing::event!(
            target: "obs::access",
            tracing::Level::ERROR,
            http.request.method = end.method,
            http.route = route,
            url.path = path,
            duration_ms,
            error.type = "service_error",
            message = "request failed without a response"
        ),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`AccessLog`].
    pub struct AccessLogFuture<F> {
        #[pin]
        fut: F,
        info: Option<RequestHead>,
        start: Instant,
    }
}

impl<F, RB, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: http_body::Body,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = std::task::ready!(this.fut.poll(cx));
        if let Some(info) = this.info.take() {
            access_line(&info.end(&out, this.start.elapsed()), info.path(), false);
        }
        Poll::Ready(out)
    }
}

/// Turns a panic in the inner service into a `500 Internal Server Error`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic { inner }
    }
}

/// The service of [`CatchPanicLayer`].
#[derive(Clone, Debug)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for CatchPanic<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        Self::caught_call(&mut self.inner, req)
    }
}

impl<S> CatchPanic<S> {
    /// Calls `inner` with a panic in `call` itself (before the future
    /// exists) caught too. Both are marked as caught, so the panic hooks
    /// report the panic without flushing the sinks on the request's thread.
    fn caught_call<B, RB>(inner: &mut S, req: Request<B>) -> CatchPanicFuture<S::Future, RB>
    where
        S: Service<Request<B>, Response = Response<RB>>,
        RB: Default,
    {
        match obs_core::panic::caught(|| {
            std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req)))
        }) {
            Ok(fut) => CatchPanicFuture::Running { fut },
            Err(panic) => CatchPanicFuture::Panicked {
                response: Some(panic_response(&*panic)),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`CatchPanic`]: the handler's future polled with panics
    /// caught and marked as caught, or the `500` of a panic in `call`. Not
    /// boxed: the stack's futures nest without a heap allocation.
    #[project = CatchPanicProj]
    #[allow(missing_docs, reason = "variants are private in practice")]
    pub enum CatchPanicFuture<F, RB> {
        /// The handler's future.
        Running { #[pin] fut: F },
        /// `call` panicked: the response to give once.
        Panicked { response: Option<Response<RB>> },
    }
}

impl<F, RB, E> Future for CatchPanicFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: Default,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CatchPanicProj::Running { fut } => match obs_core::panic::caught(|| {
                std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx)))
            }) {
                Ok(p) => p,
                Err(panic) => Poll::Ready(Ok(panic_response(&*panic))),
            },
            CatchPanicProj::Panicked { response } => Poll::Ready(Ok(response
                .take()
                .expect("CatchPanicFuture polled after completion"))),
        }
    }
}

/// Steps 5 to 7 of the server stack as one layer: see [`Finish`].
#[derive(Clone, Debug)]
pub struct FinishLayer<M> {
    metrics: M,
    access_log: bool,
    /// obs's log pillar writes JSON lines, which carry their spans' fields:
    /// when the server span carries the request's head to every reader
    /// (`obs_core::record::request_head_on_span`), the access line leaves
    /// the method, route and path to it instead of writing them twice.
    head_from_span: bool,
}

impl<S, M: Clone> Layer<S> for FinishLayer<M> {
    type Service = Finish<S, M>;
    fn layer(&self, inner: S) -> Finish<S, M> {
        Finish {
            inner,
            metrics: self.metrics.clone(),
            access_log: self.access_log,
            head_from_span: self.head_from_span,
        }
    }
}

/// The innermost service of [`ServerLayer`]: RED metrics, the access line
/// and catch-panic in one service and one future. The request's method,
/// route, body size and start time are read once for both metrics and the
/// line, and the stack nests two futures fewer.
#[derive(Clone, Debug)]
pub struct Finish<S, M> {
    inner: S,
    metrics: M,
    access_log: bool,
    head_from_span: bool,
}

#[allow(
    private_bounds,
    reason = "M is one of the facade's own metric handles, chosen by ServerLayer"
)]
impl<S, M, B, RB> Service<Request<B>> for Finish<S, M>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: http_body::Body + Default,
    M: RecordRequests,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = FinishFuture<S::Future, RB, M>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let head = RequestHead::of(&req, self.access_log);
        let state = FinishState {
            _active: self.metrics.start(head.method),
            metrics: self.metrics.clone(),
            head,
            access_log: self.access_log,
            head_on_span: self.access_log
                && self.head_from_span
                && obs_core::record::request_head_on_span(),
            start: Instant::now(),
        };
        FinishFuture {
            inner: CatchPanic::caught_call(&mut self.inner, req),
            state: Some(state),
        }
    }
}

/// What [`Finish`] keeps while the request runs.
struct FinishState<M: RecordRequests> {
    metrics: M,
    /// Held until the request ends (the active-requests gauge).
    _active: M::Active,
    head: RequestHead,
    access_log: bool,
    /// The server span carries the method, route and path to the line.
    head_on_span: bool,
    start: Instant,
}

pin_project_lite::pin_project! {
    /// The future of [`Finish`].
    #[allow(private_bounds, reason = "see Finish")]
    pub struct FinishFuture<F, RB, M: RecordRequests> {
        #[pin]
        inner: CatchPanicFuture<F, RB>,
        state: Option<FinishState<M>>,
    }
}

#[allow(private_bounds, reason = "see Finish")]
impl<F, RB, E, M> Future for FinishFuture<F, RB, M>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: http_body::Body + Default,
    M: RecordRequests,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Some(st) = this.state.take() {
            let end = st.head.end(&out, st.start.elapsed());
            st.metrics.record(&end);
            if st.access_log {
                access_line(&end, st.head.path(), st.head_on_span);
            }
        }
        Poll::Ready(out)
    }
}

fn panic_response<RB: Default>(_panic: &(dyn Any + Send)) -> Response<RB> {
    let mut r = Response::new(RB::default());
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

/// Client span → correlation id forwarded → client metrics (outermost
/// first); the log, health and errors pillars take no part.
type ClientStack =
    Stack<Stack<metrics::http::Client, correlate::http::Client>, trace::http::Client>;

/// The combined client layer: a client span with `traceparent` injected,
/// the correlation id forwarded, and `http_client_request_duration_seconds`
/// by method, server and status.
#[derive(Clone, Debug)]
pub struct ClientLayer {
    stack: ClientStack,
}

impl ClientLayer {
    fn standalone() -> Self {
        Self {
            stack: Stack::new(
                Stack::new(
                    metrics::State::standalone_client(),
                    correlate::State::standalone_client(),
                ),
                trace::State::standalone_client(),
            ),
        }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = <ClientStack as Layer<S>>::Service;
    fn layer(&self, inner: S) -> Self::Service {
        self.stack.layer(inner)
    }
}
