//! gRPC as a first-class transport (feature `grpc`): one tower layer for
//! tonic servers and one for tonic channels, composing every enabled pillar
//! with the RPC semantic conventions.
//!
//! Server, outermost first:
//!
//! 1. **correlate** (`obs-correlate`) — takes or generates the correlation
//!    id, echoes it in the initial metadata, and hands it to the span
//!    opened next;
//! 2. **trace** (`obs-trace`) — extracts `traceparent`/`tracestate`/`baggage`
//!    from the metadata, opens the server span `{package.Service}/{Method}`
//!    (kind SERVER, `rpc.system.name = "grpc"`, `rpc.method`, `server.*`,
//!    `network.peer.*`; its record takes the correlation id as it is
//!    created) and keeps it open until the response stream ends;
//! 3. **errors** (`obs-errors`) — binds the request context to the error scope;
//! 4. **metrics** (`obs-metrics`) — `rpc_server_call_duration_seconds` by
//!    method and status code;
//! 5. **access log** — one line per call when it ends, with the method, the
//!    status code and the duration; level by status (the server-error codes
//!    error, other failures warn, `OK` info);
//! 6. **catch panic** — a panicking handler becomes an `INTERNAL` status
//!    (a trailers-only response) that every layer above sees.
//!
//! Each layer reads the call's final status where gRPC puts it — the
//! `grpc-status` trailer at the end of the response stream, or the headers
//! of a trailers-only response — so a streaming call is one span and one
//! sample covering the whole stream. A call dropped before its end (the
//! client cancelled, the connection went away) is `CANCELLED`, or
//! `DEADLINE_EXCEEDED` once the caller's `grpc-timeout` passed; it is never
//! left open or counted as a success.
//!
//! Client, outermost first: the client span (kind CLIENT) with its context
//! injected into the metadata (`traceparent`, `tracestate`, `baggage`), the
//! correlation id forwarded (`x-correlation-id`), and
//! `rpc_client_call_duration_seconds`.
//!
//! ```no_run
//! # async fn run(obs: obs::Obs, routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
//! // Server: every service behind the one layer.
//! tonic::transport::Server::builder()
//!     .layer(obs.grpc_server_layer())
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//!
//! // Client: wrap the channel; generated clients take the wrapped service.
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let channel = tower::ServiceBuilder::new().layer(obs.grpc_client_layer()).service(channel);
//! # let _ = channel;
//! # Ok(()) }
//! ```
//!
//! These layers are separate from [`crate::http`]'s on purpose: gRPC needs a
//! response-body wrapper (the status is in the trailers, and the call ends
//! when the stream does), which plain HTTP requests should not pay for. A
//! gRPC request through the HTTP [`server_layer`](crate::http::server_layer)
//! still works; it is only described as an HTTP `POST`.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use obs_core::grpc::{Call, CallBody, CallEnd, CallFuture, OTHER, Outcome, SYSTEM};
pub use obs_core::grpc::{Code, KnownMethods};
use tower_layer::{Layer, Stack};
use tower_service::Service;

use crate::Obs;
use crate::http::HttpPillar;
use crate::pillar::{correlate, errors};

#[cfg(feature = "trace")]
type TraceServer = obs_trace::grpc::GrpcTraceServerLayer;
#[cfg(not(feature = "trace"))]
type TraceServer = tower_layer::Identity;
#[cfg(feature = "trace")]
type TraceClient = obs_trace::grpc::GrpcTraceClientLayer;
#[cfg(not(feature = "trace"))]
type TraceClient = tower_layer::Identity;
#[cfg(feature = "metrics")]
type MetricsServer = obs_metrics::grpc::GrpcServerMetricsLayer;
#[cfg(not(feature = "metrics"))]
type MetricsServer = tower_layer::Identity;
#[cfg(feature = "metrics")]
type MetricsClient = obs_metrics::grpc::GrpcClientMetricsLayer;
#[cfg(not(feature = "metrics"))]
type MetricsClient = tower_layer::Identity;

/// Correlate → trace → error scope → metrics → access log → catch panic
/// (outermost first).
type ServerStack = Stack<
    GrpcCatchPanicLayer,
    Stack<
        GrpcAccessLogLayer,
        Stack<
            MetricsServer,
            Stack<errors::http::Server, Stack<TraceServer, correlate::http::Server>>,
        >,
    >,
>;

/// The gRPC server layer; see the [module docs](self).
#[derive(Clone)]
pub struct GrpcServerLayer {
    trace: TraceServer,
    correlate: correlate::http::Server,
    errors: errors::http::Server,
    metrics: MetricsServer,
    access_log: bool,
    methods: KnownMethods,
}

impl std::fmt::Debug for GrpcServerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServerLayer")
            .field("access_log", &self.access_log)
            .field("known_methods", &self.methods)
            .finish_non_exhaustive()
    }
}

/// The gRPC server layer of the instance installed by [`crate::init`].
///
/// Without an installed instance the layer still traces, correlates and
/// logs, but its metrics go to a registry nobody scrapes; a warning says so
/// once per layer. Prefer [`Obs::grpc_server_layer`] when you hold the handle.
pub fn server_layer() -> GrpcServerLayer {
    match Obs::global() {
        Some(obs) => obs.grpc_server_layer(),
        None => {
            tracing::warn!(
                target: "obs",
                "obs::grpc::server_layer() called before obs::init: RPC metrics will not be exported"
            );
            GrpcServerLayer::standalone()
        }
    }
}

/// The gRPC client layer of the instance installed by [`crate::init`] (see
/// [`Obs::grpc_client_layer`]); without one, calls are traced and
/// correlated but not measured.
pub fn client_layer() -> GrpcClientLayer {
    match Obs::global() {
        Some(obs) => obs.grpc_client_layer(),
        None => GrpcClientLayer::standalone(),
    }
}

impl Obs {
    /// The gRPC server layer wired to this instance (its metrics registry,
    /// correlation policy and propagators); add it to a tonic `Server` with
    /// `Server::builder().layer(..)`.
    pub fn grpc_server_layer(&self) -> GrpcServerLayer {
        let p = &self.inner;
        GrpcServerLayer {
            trace: self.grpc_trace_server(),
            correlate: p.correlate.server_layer(),
            errors: p.errors.server_layer(),
            metrics: self.grpc_metrics_server(),
            access_log: true,
            methods: KnownMethods::any(),
        }
    }

    /// The gRPC client layer wired to this instance: wrap a tonic `Channel`
    /// with it (`tower::ServiceBuilder::new().layer(..).service(channel)`).
    pub fn grpc_client_layer(&self) -> GrpcClientLayer {
        GrpcClientLayer {
            trace: self.grpc_trace_client(),
            correlate: self.inner.correlate.client_layer(),
            metrics: self.grpc_metrics_client(),
        }
    }

    #[cfg(feature = "trace")]
    fn grpc_trace_server(&self) -> TraceServer {
        obs_trace::grpc::GrpcTraceServerLayer::new().propagators(self.tracer().propagators())
    }
    #[cfg(not(feature = "trace"))]
    fn grpc_trace_server(&self) -> TraceServer {
        tower_layer::Identity::new()
    }
    #[cfg(feature = "trace")]
    fn grpc_trace_client(&self) -> TraceClient {
        obs_trace::grpc::GrpcTraceClientLayer::new().propagators(self.tracer().propagators())
    }
    #[cfg(not(feature = "trace"))]
    fn grpc_trace_client(&self) -> TraceClient {
        tower_layer::Identity::new()
    }

    /// Registered on the instance's registry (registering again finds the
    /// same series); a detached set if the registration failed.
    #[cfg(feature = "metrics")]
    fn grpc_metrics_server(&self) -> MetricsServer {
        match obs_metrics::grpc::RpcServerMetrics::new(self.metrics()) {
            Ok(m) => m.layer(),
            Err(e) => {
                tracing::error!(target: "obs", error = %e, "cannot register the gRPC server metrics");
                detached_server_metrics()
            }
        }
    }
    #[cfg(not(feature = "metrics"))]
    fn grpc_metrics_server(&self) -> MetricsServer {
        tower_layer::Identity::new()
    }
    #[cfg(feature = "metrics")]
    fn grpc_metrics_client(&self) -> MetricsClient {
        match obs_metrics::grpc::RpcClientMetrics::new(self.metrics()) {
            Ok(m) => m.layer(),
            Err(e) => {
                tracing::error!(target: "obs", error = %e, "cannot register the gRPC client metrics");
                obs_metrics::grpc::GrpcClientMetricsLayer::disabled()
            }
        }
    }
    #[cfg(not(feature = "metrics"))]
    fn grpc_metrics_client(&self) -> MetricsClient {
        tower_layer::Identity::new()
    }
}

#[cfg(feature = "metrics")]
fn detached_server_metrics() -> MetricsServer {
    let registry = obs_metrics::Registry::new();
    match obs_metrics::grpc::RpcServerMetrics::new(&registry) {
        Ok(m) => m.layer(),
        // A fresh registry has no conflicting names; registration cannot fail.
        Err(e) => unreachable!("fresh registry refused the gRPC metric set: {e}"),
    }
}

impl GrpcServerLayer {
    fn standalone() -> Self {
        Self {
            #[cfg(feature = "trace")]
            trace: obs_trace::grpc::GrpcTraceServerLayer::new(),
            #[cfg(not(feature = "trace"))]
            trace: tower_layer::Identity::new(),
            correlate: correlate::State::standalone_server(),
            errors: errors::State::standalone_server(),
            #[cfg(feature = "metrics")]
            metrics: detached_server_metrics(),
            #[cfg(not(feature = "metrics"))]
            metrics: tower_layer::Identity::new(),
            access_log: true,
            methods: KnownMethods::any(),
        }
    }

    /// Which methods keep their name in spans, metrics and the access line;
    /// the others are `_OTHER` (see [`KnownMethods`]; by default every
    /// well-formed method the server does not answer `UNIMPLEMENTED`).
    pub fn known_methods(mut self, methods: KnownMethods) -> Self {
        #[cfg(feature = "trace")]
        {
            self.trace = self.trace.known_methods(methods.clone());
        }
        #[cfg(feature = "metrics")]
        {
            self.metrics = self.metrics.known_methods(methods.clone());
        }
        self.methods = methods;
        self
    }

    /// Turns the access log line off (the rest of the stack stays).
    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    #[allow(
        clippy::clone_on_copy,
        reason = "some pillars' layers are Copy only with some features"
    )]
    fn stack(&self) -> ServerStack {
        Stack::new(
            GrpcCatchPanicLayer,
            Stack::new(
                GrpcAccessLogLayer {
                    enabled: self.access_log,
                    methods: self.methods.clone(),
                },
                Stack::new(
                    self.metrics.clone(),
                    Stack::new(
                        self.errors.clone(),
                        Stack::new(self.trace.clone(), self.correlate.clone()),
                    ),
                ),
            ),
        )
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = <ServerStack as Layer<S>>::Service;
    fn layer(&self, inner: S) -> Self::Service {
        self.stack().layer(inner)
    }
}

/// Client span → correlation id forwarded → client metrics (outermost first).
type ClientStack = Stack<Stack<MetricsClient, correlate::http::Client>, TraceClient>;

/// The gRPC client layer: a client span with its context injected into
/// the metadata, the correlation id forwarded, and
/// `rpc_client_call_duration_seconds` by method, status code and server.
///
/// Give it the channel's target with [`server`](Self::server) so that
/// spans and metrics name the server: tonic adds the channel's origin to a
/// request only inside the channel (a generated client made
/// `with_origin` carries it already).
#[derive(Clone, Debug)]
pub struct GrpcClientLayer {
    trace: TraceClient,
    correlate: correlate::http::Client,
    metrics: MetricsClient,
}

impl GrpcClientLayer {
    fn standalone() -> Self {
        Self {
            #[cfg(feature = "trace")]
            trace: obs_trace::grpc::GrpcTraceClientLayer::new(),
            #[cfg(not(feature = "trace"))]
            trace: tower_layer::Identity::new(),
            correlate: correlate::State::standalone_client(),
            #[cfg(feature = "metrics")]
            metrics: obs_metrics::grpc::GrpcClientMetricsLayer::disabled(),
            #[cfg(not(feature = "metrics"))]
            metrics: tower_layer::Identity::new(),
        }
    }

    /// The channel's target (`http://host:port`, `host:port`,
    /// `unix:///path`): `server.address` / `server.port` on the spans and
    /// the metrics' `server_address` / `server_port` labels.
    #[cfg_attr(
        not(any(feature = "trace", feature = "metrics")),
        allow(unused_variables, unused_mut, reason = "no pillar records the server")
    )]
    pub fn server(mut self, target: &str) -> Self {
        #[cfg(feature = "trace")]
        {
            self.trace = self.trace.server(target);
        }
        #[cfg(feature = "metrics")]
        {
            self.metrics = self.metrics.server(target);
        }
        self
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = <ClientStack as Layer<S>>::Service;
    fn layer(&self, inner: S) -> Self::Service {
        let stack: ClientStack = Stack::new(
            Stack::new(self.metrics.clone(), self.correlate.clone()),
            self.trace.clone(),
        );
        stack.layer(inner)
    }
}

/// Writes one access line per gRPC call, when it ends.
#[derive(Clone, Debug)]
pub struct GrpcAccessLogLayer {
    enabled: bool,
    methods: KnownMethods,
}

impl<S> Layer<S> for GrpcAccessLogLayer {
    type Service = GrpcAccessLog<S>;
    fn layer(&self, inner: S) -> GrpcAccessLog<S> {
        GrpcAccessLog {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`GrpcAccessLogLayer`].
#[derive(Clone, Debug)]
pub struct GrpcAccessLog<S> {
    inner: S,
    layer: GrpcAccessLogLayer,
}

/// What the access line of a call needs at its end.
#[derive(Debug)]
pub struct AccessEnd {
    /// The request's span (the server span, or the correlation span inside
    /// it): the line is written in it, so it carries the request's ids.
    span: tracing::Span,
    methods: KnownMethods,
    uri: http::Uri,
    start: Instant,
}

impl CallEnd for AccessEnd {
    fn end(self, outcome: &Outcome<'_>) {
        let code = outcome.code;
        let method = self.methods.recognise(self.uri.path()).name(code);
        let original = (method == OTHER).then(|| self.uri.path());
        let duration_ms = obs_core::units::duration_ms(self.start.elapsed());
        let error_type = code.is_server_error().then(|| code.as_str());
        let status = code.as_str();
        macro_rules! access {
            ($lvl:expr) => {
                tracing::event!(
                    target: "obs::access",
                    $lvl,
                    rpc.system.name = SYSTEM,
                    rpc.method = method,
                    rpc.method_original = original,
                    rpc.response.status_code = status,
                    duration_ms,
                    error.type = error_type,
                    message = "rpc finished"
                )
            };
        }
        self.span.in_scope(|| {
            if code.is_server_error() {
                access!(tracing::Level::ERROR);
            } else if code != Code::Ok {
                access!(tracing::Level::WARN);
            } else {
                access!(tracing::Level::INFO);
            }
        });
    }
}

impl<S, B, RB> Service<Request<B>> for GrpcAccessLog<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: 'static,
{
    type Response = Response<CallBody<RB, Option<AccessEnd>>>;
    type Error = S::Error;
    type Future = CallFuture<S::Future, Option<AccessEnd>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let end = self.layer.enabled.then(|| AccessEnd {
            span: tracing::Span::current(),
            methods: self.layer.methods.clone(),
            uri: req.uri().clone(),
            start: Instant::now(),
        });
        let call = Call::start(end, req.headers());
        CallFuture::new(self.inner.call(req), call)
    }
}

/// Turns a panic in the inner service into an `INTERNAL` status: a
/// trailers-only response (HTTP 200, `grpc-status: 13`).
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcCatchPanicLayer;

impl<S> Layer<S> for GrpcCatchPanicLayer {
    type Service = GrpcCatchPanic<S>;
    fn layer(&self, inner: S) -> GrpcCatchPanic<S> {
        GrpcCatchPanic { inner }
    }
}

/// The service of [`GrpcCatchPanicLayer`].
#[derive(Clone, Debug)]
pub struct GrpcCatchPanic<S> {
    inner: S,
}

/// The future of [`GrpcCatchPanic`].
pub type CatchPanicFuture<RB, E> = Pin<Box<dyn Future<Output = Result<Response<RB>, E>> + Send>>;

impl<S, B, RB> Service<Request<B>> for GrpcCatchPanic<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    RB: Default + 'static,
    S::Error: 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = CatchPanicFuture<RB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Marked as caught, so the panic hooks report the panic without
        // flushing the sinks on the request's thread.
        let fut = match obs_core::panic::caught(|| {
            std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
        }) {
            Ok(fut) => fut,
            Err(panic) => return Box::pin(async move { Ok(panic_response(&*panic)) }),
        };
        Box::pin(Caught { fut })
    }
}

pin_project_lite::pin_project! {
    /// Polls the handler's future with panics caught and marked as caught.
    struct Caught<F> {
        #[pin]
        fut: F,
    }
}

impl<F, RB, E> Future for Caught<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: Default,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.project().fut;
        match obs_core::panic::caught(|| {
            std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx)))
        }) {
            Ok(p) => p,
            Err(panic) => Poll::Ready(Ok(panic_response(&*panic))),
        }
    }
}

/// A trailers-only `INTERNAL` response; the panic's message stays in the
/// process (the panic hook reports it), never sent to the caller.
fn panic_response<RB: Default>(_panic: &(dyn Any + Send)) -> Response<RB> {
    let mut r = Response::new(RB::default());
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from_static("13"));
    h.insert("grpc-message", HeaderValue::from_static("internal%20error"));
    r
}
