//! gRPC server and client spans (feature `grpc`), for tonic servers and
//! channels or any `http` 1 service speaking gRPC.
//!
//! [`GrpcTraceServerLayer`] opens one server span per call, named
//! `{package.Service}/{Method}` (kind SERVER), parented by the caller's
//! `traceparent` (and `tracestate`, `baggage`), with the RPC semantic
//! conventions' attributes: `rpc.system.name = "grpc"`, `rpc.method`,
//! `rpc.response.status_code`, `server.address`/`server.port` (from
//! `:authority`), `network.peer.address`/`network.peer.port`. The span stays
//! open until the response stream ends: its status is read from the
//! trailers (or from a trailers-only response), a call dropped before its
//! end is `CANCELLED`, or `DEADLINE_EXCEEDED` once its `grpc-timeout` has
//! passed (so is a `CANCELLED` status that arrives after it). A server span
//! is an error only for the codes the conventions name for servers
//! (`UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`,
//! `UNAVAILABLE`, `DATA_LOSS`); `error.type` is then the code's name and the
//! span's status message the `grpc-message`.
//!
//! [`GrpcTraceClientLayer`] opens a client span per call (kind CLIENT),
//! injects its context into the request metadata, and fails it for every
//! code but `OK`.
//!
//! ```
//! use obs_trace::grpc::{GrpcTraceClientLayer, GrpcTraceServerLayer};
//! use obs_core::grpc::KnownMethods;
//! let server = GrpcTraceServerLayer::new().known_methods(KnownMethods::only(["grpc.health.v1.Health"]));
//! let client = GrpcTraceClientLayer::new();
//! # let _ = (server, client);
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use obs_core::grpc::{
    Call, CallBody, CallEnd, CallFuture, Code, KnownMethods, OTHER, Outcome, Recognised, SYSTEM,
    Side, Target,
};
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;

use crate::context::{current_baggage, in_remote_context, span_context};
use crate::propagation::Propagators;

/// The span name of a call whose method is `_OTHER`: the system's name.
const OTHER_NAME: &str = SYSTEM;

/// Longest `rpc.method_original` recorded: the requested path is the
/// caller's, so it is cut.
const MAX_ORIGINAL: usize = 256;

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The server layer. Clone-cheap.
#[derive(Clone, Debug, Default)]
pub struct GrpcTraceServerLayer {
    propagators: Propagators,
    methods: KnownMethods,
}

impl GrpcTraceServerLayer {
    /// W3C Trace Context and Baggage; every well-formed method the server
    /// does not answer `UNIMPLEMENTED` is recognised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses these propagation formats.
    pub fn propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// Which methods keep their name in `rpc.method` and the span name;
    /// the others are `_OTHER` (see [`KnownMethods`]).
    pub fn known_methods(mut self, methods: KnownMethods) -> Self {
        self.methods = methods;
        self
    }

    /// The server span of `req` (not entered) and what is needed to end it.
    fn start<B>(&self, req: &Request<B>) -> SpanEnd {
        let path = req.uri().path();
        let recognised = self.methods.recognise(path);
        let method = recognised.provisional();
        let original = (method == OTHER).then(|| cut(path.trim_start_matches('/'), MAX_ORIGINAL));
        let name = if method == OTHER { OTHER_NAME } else { method };
        let (host, port) = match obs_core::grpc::server_of(req) {
            Some((h, p)) => (Some(h), p),
            None => (None, None),
        };
        let peer = obs_core::grpc::peer_addr(req.extensions());
        let extracted = self.propagators.extract_headers(req.headers());
        let span = in_remote_context(&extracted, || {
            tracing::info_span!(
                "grpc.server",
                otel.name = name,
                otel.kind = "server",
                rpc.system.name = SYSTEM,
                rpc.method = method,
                rpc.method_original = original,
                rpc.response.status_code = Empty,
                server.address = host,
                server.port = port.map(i64::from),
                network.peer.address = peer.as_ref().map(|p| tracing::field::display(p.ip())),
                network.peer.port = peer.map(|p| i64::from(p.port())),
                error.type = Empty,
                otel.status_code = Empty,
                otel.status_message = Empty,
            )
        });
        SpanEnd {
            span,
            side: Side::Server,
            // Kept only when an `UNIMPLEMENTED` answer could still make the
            // method `_OTHER`: a reference-counted clone, no copy.
            demotable: (recognised.name(Code::Unimplemented) == OTHER && method != OTHER)
                .then(|| req.uri().clone()),
        }
    }
}

/// Ends a call's span: its status code, and for a failed call `error.type`
/// and the span status.
#[derive(Debug)]
pub struct SpanEnd {
    span: tracing::Span,
    side: Side,
    demotable: Option<http::Uri>,
}

impl SpanEnd {
    /// The call's span.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }
}

impl CallEnd for SpanEnd {
    fn end(self, outcome: &Outcome<'_>) {
        let code = outcome.code;
        let span = &self.span;
        if code == Code::Unimplemented
            && let Some(uri) = &self.demotable
        {
            // The server does not know the method: `_OTHER`, the requested
            // name kept in `rpc.method_original`.
            span.record("otel.name", OTHER_NAME);
            span.record("rpc.method", OTHER);
            span.record(
                "rpc.method_original",
                cut(uri.path().trim_start_matches('/'), MAX_ORIGINAL),
            );
        }
        span.record("rpc.response.status_code", code.as_str());
        if code.is_error(self.side) {
            span.record("error.type", code.as_str());
            span.record("otel.status_code", "error");
            if let Some(msg) = outcome.trailers.and_then(obs_core::grpc::message) {
                span.record("otel.status_message", msg.as_str());
            }
        }
    }

    fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.span.enter();
        f()
    }
}

impl<S> Layer<S> for GrpcTraceServerLayer {
    type Service = GrpcTraceServer<S>;
    fn layer(&self, inner: S) -> GrpcTraceServer<S> {
        GrpcTraceServer {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`GrpcTraceServerLayer`].
#[derive(Clone, Debug)]
pub struct GrpcTraceServer<S> {
    inner: S,
    layer: GrpcTraceServerLayer,
}

impl<S, B, RB> Service<Request<B>> for GrpcTraceServer<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: 'static,
{
    type Response = Response<CallBody<RB, SpanEnd>>;
    type Error = S::Error;
    type Future = CallFuture<S::Future, SpanEnd>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let end = self.layer.start(&req);
        let call = Call::start(end, req.headers());
        let fut = call.scope(|| self.inner.call(req));
        CallFuture::new(fut, call)
    }
}

/// The client layer: a client span per call and context injection into
/// the request metadata.
#[derive(Clone, Debug, Default)]
pub struct GrpcTraceClientLayer {
    propagators: Propagators,
    server: Option<Arc<Target>>,
}

impl GrpcTraceClientLayer {
    /// W3C Trace Context and Baggage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses these propagation formats.
    pub fn propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// The channel's target (`http://host:port`, `host:port`, …): its
    /// `server.address` and `server.port` when the request's URI has no
    /// authority (tonic adds the channel's origin only inside the
    /// channel, after this layer; a client built `with_origin` has one).
    pub fn server(mut self, target: &str) -> Self {
        self.server = Some(Arc::new(Target::parse(target)));
        self
    }
}

impl<S> Layer<S> for GrpcTraceClientLayer {
    type Service = GrpcTraceClient<S>;
    fn layer(&self, inner: S) -> GrpcTraceClient<S> {
        GrpcTraceClient {
            inner,
            propagators: self.propagators,
            server: self.server.clone(),
        }
    }
}

/// The service of [`GrpcTraceClientLayer`].
#[derive(Clone, Debug)]
pub struct GrpcTraceClient<S> {
    inner: S,
    propagators: Propagators,
    server: Option<Arc<Target>>,
}

/// Opens the client span of an outgoing gRPC call to `path` (kind CLIENT,
/// named for the method, with the RPC attributes). What
/// [`GrpcTraceClientLayer`] does per call.
pub fn client_span(path: &str, host: Option<&str>, port: Option<u16>) -> tracing::Span {
    let method = Recognised::client(path).provisional();
    let original = (method == OTHER).then(|| cut(path.trim_start_matches('/'), MAX_ORIGINAL));
    let name = if method == OTHER { OTHER_NAME } else { method };
    tracing::info_span!(
        "grpc.client",
        otel.name = name,
        otel.kind = "client",
        rpc.system.name = SYSTEM,
        rpc.method = method,
        rpc.method_original = original,
        rpc.response.status_code = Empty,
        server.address = host,
        server.port = port.map(i64::from),
        error.type = Empty,
        otel.status_code = Empty,
        otel.status_message = Empty,
    )
}

impl<S, B, RB> Service<Request<B>> for GrpcTraceClient<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: 'static,
{
    type Response = Response<CallBody<RB, SpanEnd>>;
    type Error = S::Error;
    type Future = CallFuture<S::Future, SpanEnd>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let span = {
            let (host, port) = match obs_core::grpc::server_of(&req) {
                Some((h, p)) => (Some(h), p),
                None => match &self.server {
                    Some(t) => (Some(t.host()), t.port()),
                    None => (None, None),
                },
            };
            client_span(req.uri().path(), host, port)
        };
        if let Some(cx) = span_context(&span) {
            let baggage = {
                let _g = span.enter();
                current_baggage()
            };
            self.propagators
                .inject_headers(&cx, baggage.as_deref(), req.headers_mut());
        }
        let call = Call::start(
            SpanEnd {
                span,
                side: Side::Client,
                demotable: None,
            },
            req.headers(),
        );
        let fut = call.scope(|| self.inner.call(req));
        CallFuture::new(fut, call)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::TracerProvider;
    use crate::export::InMemoryExporter;
    use crate::span::{FinishedSpan, SpanKind, Status};

    /// Answers a trailers-only response with `grpc-status: code`, and
    /// echoes the request headers it got into the response headers.
    #[derive(Clone)]
    struct Answer(u8);

    impl Service<Request<()>> for Answer {
        type Response = Response<()>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<()>, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: Request<()>) -> Self::Future {
            let mut r = Response::new(());
            *r.headers_mut() = req.headers().clone();
            r.headers_mut()
                .insert("grpc-status", http::HeaderValue::from(u16::from(self.0)));
            r.headers_mut()
                .insert("grpc-message", http::HeaderValue::from_static("why%20not"));
            std::future::ready(Ok(r))
        }
    }

    fn request(path: &str) -> Request<()> {
        let mut req = Request::post(format!("http://api.local:50051{path}"))
            .header("content-type", "application/grpc")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(std::net::SocketAddr::from(([10, 0, 0, 7], 40000)));
        req
    }

    /// Runs `f` with a subscriber exporting to memory; returns the spans.
    fn spans_of(f: impl FnOnce()) -> Vec<FinishedSpan> {
        let spans = InMemoryExporter::default();
        let provider = TracerProvider::builder()
            .with_exporter(spans.clone())
            .build()
            .unwrap();
        let subscriber = tracing_subscriber::registry().with(provider.layer());
        tracing::subscriber::with_default(subscriber, f);
        provider.shutdown(Duration::from_secs(5));
        spans.spans()
    }

    fn call<S>(mut svc: S, req: Request<()>) -> Response<CallBody<(), SpanEnd>>
    where
        S: Service<Request<()>, Response = Response<CallBody<(), SpanEnd>>, Error = Infallible>,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(svc.call(req)).unwrap()
    }

    fn attr(s: &FinishedSpan, k: &str) -> Option<String> {
        s.attribute(k).map(|v| v.to_string())
    }

    #[test]
    fn server_spans_follow_the_rpc_conventions() {
        let spans = spans_of(|| {
            let layer = GrpcTraceServerLayer::new();
            drop(call(layer.layer(Answer(0)), request("/pkg.Svc/Do")));
            drop(call(layer.layer(Answer(5)), request("/pkg.Svc/Do")));
            drop(call(layer.layer(Answer(13)), request("/pkg.Svc/Do")));
            drop(call(layer.layer(Answer(12)), request("/pkg.Svc/Nope")));
            drop(call(layer.layer(Answer(0)), request("/not%20a%20method")));
        });
        assert_eq!(spans.len(), 5);
        let ok = &spans[0];
        assert_eq!(
            (ok.name.as_ref(), ok.kind),
            ("pkg.Svc/Do", SpanKind::Server)
        );
        assert_eq!(ok.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for (k, v) in [
            ("rpc.system.name", "grpc"),
            ("rpc.method", "pkg.Svc/Do"),
            ("rpc.response.status_code", "OK"),
            ("server.address", "api.local"),
            ("server.port", "50051"),
            ("network.peer.address", "10.0.0.7"),
            ("network.peer.port", "40000"),
        ] {
            assert_eq!(attr(ok, k).as_deref(), Some(v), "{k}");
        }
        assert_eq!(ok.status, Status::Unset);
        assert_eq!(attr(ok, "error.type"), None);
        // NOT_FOUND: not a server error.
        assert_eq!(
            attr(&spans[1], "rpc.response.status_code").as_deref(),
            Some("NOT_FOUND")
        );
        assert_eq!(spans[1].status, Status::Unset);
        assert_eq!(attr(&spans[1], "error.type"), None);
        // INTERNAL: an error, with the status message.
        assert_eq!(spans[2].status, Status::Error("why not".into()));
        assert_eq!(attr(&spans[2], "error.type").as_deref(), Some("INTERNAL"));
        // UNIMPLEMENTED: the method is unknown, `_OTHER`.
        let unknown = &spans[3];
        assert_eq!(unknown.name, "grpc");
        assert_eq!(attr(unknown, "rpc.method").as_deref(), Some("_OTHER"));
        assert_eq!(
            attr(unknown, "rpc.method_original").as_deref(),
            Some("pkg.Svc/Nope")
        );
        // A malformed path is never a method name.
        assert_eq!(spans[4].name, "grpc");
        assert_eq!(attr(&spans[4], "rpc.method").as_deref(), Some("_OTHER"));
        assert_eq!(
            attr(&spans[4], "rpc.method_original").as_deref(),
            Some("not%20a%20method")
        );
    }

    #[test]
    fn listed_methods_keep_their_name_whatever_the_status() {
        let spans = spans_of(|| {
            let layer =
                GrpcTraceServerLayer::new().known_methods(KnownMethods::only(["pkg.Svc/Later"]));
            drop(call(layer.layer(Answer(12)), request("/pkg.Svc/Later")));
            drop(call(layer.layer(Answer(0)), request("/pkg.Svc/Other")));
        });
        assert_eq!(spans[0].name, "pkg.Svc/Later");
        assert_eq!(spans[1].name, "grpc");
    }

    #[test]
    fn client_spans_inject_their_context_and_fail_on_any_error() {
        let mut echoed = None;
        let spans = spans_of(|| {
            let layer = GrpcTraceClientLayer::new().server("http://fallback:1");
            let mut req = Request::post("/pkg.Svc/Do").body(()).unwrap();
            req.headers_mut()
                .insert("x", http::HeaderValue::from_static("y"));
            let resp = call(layer.layer(Answer(5)), req);
            echoed = Some(resp.headers().clone());
        });
        let c = &spans[0];
        assert_eq!((c.name.as_ref(), c.kind), ("pkg.Svc/Do", SpanKind::Client));
        assert_eq!(c.status, Status::Error("why not".into()));
        assert_eq!(attr(c, "error.type").as_deref(), Some("NOT_FOUND"));
        assert_eq!(attr(c, "server.address").as_deref(), Some("fallback"));
        assert_eq!(attr(c, "server.port").as_deref(), Some("1"));
        let tp = echoed.unwrap()["traceparent"].to_str().unwrap().to_owned();
        assert_eq!(tp, format!("00-{}-{}-01", c.trace_id, c.span_id));
    }
}
