//! gRPC call metrics (feature `grpc`): `rpc_server_call_duration_seconds`
//! and `rpc_client_call_duration_seconds` (the RPC semantic conventions'
//! `rpc.server.call.duration` / `rpc.client.call.duration`, in seconds, with
//! their buckets), by method and status code, and the tower layers that
//! record them for tonic servers and channels.
//!
//! A call is measured until its response stream ends (its trailers), so a
//! streaming call counts its whole length, and its label is its final status
//! code: read from the trailers or a trailers-only response; `CANCELLED`
//! when dropped before its end, `DEADLINE_EXCEEDED` once its `grpc-timeout`
//! passed. `error_type` is the code's name when the call failed — for a
//! server only for `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`,
//! `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS`; for a client for every code
//! but `OK` — and empty otherwise.
//!
//! The method label is bounded like HTTP routes: never a raw path. An
//! unrecognised method (malformed, unlisted, or answered `UNIMPLEMENTED`;
//! see [`KnownMethods`]) is `_OTHER`, and the family's cardinality limit
//! still applies past that.
//!
//! ```
//! use std::time::Duration;
//! use obs_core::grpc::Code;
//! let registry = obs_metrics::Registry::new();
//! let rpc = obs_metrics::grpc::RpcServerMetrics::new(&registry)?;
//! rpc.record("grpc.health.v1.Health/Check", Code::NotFound, Duration::from_millis(3));
//! let text = registry.encode(obs_metrics::Format::Text);
//! assert!(text.contains(r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="grpc.health.v1.Health/Check",rpc_response_status_code="NOT_FOUND",error_type=""} 1"#));
//! # Ok::<(), obs_metrics::Error>(())
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
pub use obs_core::grpc::KnownMethods;
use obs_core::grpc::{
    Call, CallBody, CallEnd, CallFuture, Code, Outcome, RPC_DURATION_BUCKETS, Recognised, SYSTEM,
    Side, Target, metric,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Family, Histogram, Registry, Result};

/// Label names of `rpc_server_call_duration_seconds`.
pub const RPC_SERVER_LABELS: [&str; 4] = [
    "rpc_system_name",
    "rpc_method",
    "rpc_response_status_code",
    "error_type",
];

/// Label names of `rpc_client_call_duration_seconds`.
pub const RPC_CLIENT_LABELS: [&str; 6] = [
    "rpc_system_name",
    "rpc_method",
    "rpc_response_status_code",
    "error_type",
    "server_address",
    "server_port",
];

fn error_type(code: Code, side: Side) -> &'static str {
    if code.is_error(side) {
        code.as_str()
    } else {
        ""
    }
}

/// gRPC server metrics: `rpc_server_call_duration_seconds` by system,
/// method, status code and error type.
#[derive(Debug, Clone)]
pub struct RpcServerMetrics {
    /// `rpc_server_call_duration_seconds`.
    pub duration: Family<Histogram, 4>,
}

impl RpcServerMetrics {
    /// Registers (or finds) the set on `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        Ok(Self {
            duration: registry.histogram_family(
                metric::RPC_SERVER_CALL_DURATION,
                "Duration of incoming gRPC calls, until the response stream ends.",
                RPC_DURATION_BUCKETS,
                RPC_SERVER_LABELS,
            )?,
        })
    }

    /// Records one finished call. `method` must be bounded (a recognised
    /// `package.Service/Method`, or `_OTHER`).
    pub fn record(&self, method: &str, code: Code, elapsed: Duration) {
        self.duration.with(
            [
                SYSTEM,
                method,
                code.as_str(),
                error_type(code, Side::Server),
            ],
            |h| h.observe_duration(elapsed),
        );
    }

    /// A tower layer recording this set for every call (add it to a tonic
    /// `Server` with `layer`).
    pub fn layer(&self) -> GrpcServerMetricsLayer {
        GrpcServerMetricsLayer {
            metrics: Arc::new(self.clone()),
            methods: KnownMethods::any(),
        }
    }
}

/// gRPC client metrics: `rpc_client_call_duration_seconds` by system,
/// method, status code, error type and server.
#[derive(Debug, Clone)]
pub struct RpcClientMetrics {
    /// `rpc_client_call_duration_seconds`.
    pub duration: Family<Histogram, 6>,
}

impl RpcClientMetrics {
    /// Registers (or finds) the set on `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        Ok(Self {
            duration: registry.histogram_family(
                metric::RPC_CLIENT_CALL_DURATION,
                "Duration of outgoing gRPC calls, until the response stream ends.",
                RPC_DURATION_BUCKETS,
                RPC_CLIENT_LABELS,
            )?,
        })
    }

    /// Records one finished call to `server` (`server.address`, as the
    /// channel was configured, never the resolved peer) on `port`.
    pub fn record(
        &self,
        method: &str,
        code: Code,
        server: &str,
        port: Option<u16>,
        elapsed: Duration,
    ) {
        let mut buf = itoa::Buffer::new();
        let port = port.map_or("", |p| buf.format(p));
        self.duration.with(
            [
                SYSTEM,
                method,
                code.as_str(),
                error_type(code, Side::Client),
                server,
                port,
            ],
            |h| h.observe_duration(elapsed),
        );
    }

    /// A tower layer recording this set for every call of a channel.
    pub fn layer(&self) -> GrpcClientMetricsLayer {
        GrpcClientMetricsLayer {
            metrics: Some(Arc::new(self.clone())),
            server: None,
        }
    }
}

/// Records [`RpcServerMetrics`] for every call; see [`RpcServerMetrics::layer`].
#[derive(Debug, Clone)]
pub struct GrpcServerMetricsLayer {
    metrics: Arc<RpcServerMetrics>,
    methods: KnownMethods,
}

impl GrpcServerMetricsLayer {
    /// Which methods keep their name in the `rpc_method` label; the others
    /// are `_OTHER` (see [`KnownMethods`]).
    pub fn known_methods(mut self, methods: KnownMethods) -> Self {
        self.methods = methods;
        self
    }
}

impl<S> Layer<S> for GrpcServerMetricsLayer {
    type Service = GrpcServerMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerMetricsService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`GrpcServerMetricsLayer`].
#[derive(Debug, Clone)]
pub struct GrpcServerMetricsService<S> {
    inner: S,
    layer: GrpcServerMetricsLayer,
}

/// What a server call's sample needs at its end.
#[derive(Debug)]
pub struct ServerCallEnd {
    metrics: Arc<RpcServerMetrics>,
    methods: KnownMethods,
    uri: http::Uri,
    start: Instant,
}

impl CallEnd for ServerCallEnd {
    fn end(self, outcome: &Outcome<'_>) {
        let method = self.methods.recognise(self.uri.path()).name(outcome.code);
        self.metrics
            .record(method, outcome.code, self.start.elapsed());
    }
}

impl<S, B, RB> Service<Request<B>> for GrpcServerMetricsService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: 'static,
{
    type Response = Response<CallBody<RB, ServerCallEnd>>;
    type Error = S::Error;
    type Future = CallFuture<S::Future, ServerCallEnd>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let call = Call::start(
            ServerCallEnd {
                metrics: self.layer.metrics.clone(),
                methods: self.layer.methods.clone(),
                // A reference-counted clone: the path is not copied.
                uri: req.uri().clone(),
                start: Instant::now(),
            },
            req.headers(),
        );
        CallFuture::new(self.inner.call(req), call)
    }
}

/// Records [`RpcClientMetrics`] for every call; see
/// [`RpcClientMetrics::layer`]. Without a set (a disabled pillar), records
/// nothing and passes calls through.
#[derive(Debug, Clone, Default)]
pub struct GrpcClientMetricsLayer {
    metrics: Option<Arc<RpcClientMetrics>>,
    server: Option<Arc<Target>>,
}

impl GrpcClientMetricsLayer {
    /// A layer that records nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// The channel's target (`http://host:port`, `host:port`, …): the
    /// `server_address` and `server_port` labels when the request's URI has
    /// no authority (tonic adds the channel's origin only inside the
    /// channel, after this layer).
    pub fn server(mut self, target: &str) -> Self {
        self.server = Some(Arc::new(Target::parse(target)));
        self
    }
}

impl<S> Layer<S> for GrpcClientMetricsLayer {
    type Service = GrpcClientMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientMetricsService {
            inner,
            metrics: self.metrics.clone(),
            server: self.server.clone(),
        }
    }
}

/// The service of [`GrpcClientMetricsLayer`].
#[derive(Debug, Clone)]
pub struct GrpcClientMetricsService<S> {
    inner: S,
    metrics: Option<Arc<RpcClientMetrics>>,
    server: Option<Arc<Target>>,
}

/// What a client call's sample needs at its end.
#[derive(Debug)]
pub struct ClientCallEnd {
    metrics: Option<Arc<RpcClientMetrics>>,
    uri: http::Uri,
    server: Option<Arc<Target>>,
    start: Instant,
}

impl CallEnd for ClientCallEnd {
    fn end(self, outcome: &Outcome<'_>) {
        let Some(m) = &self.metrics else { return };
        let method = Recognised::client(self.uri.path()).name(outcome.code);
        let (host, port) = match (self.uri.authority(), &self.server) {
            (Some(a), _) => obs_core::grpc::split_authority(a.as_str()),
            (None, Some(t)) => (t.host(), t.port()),
            (None, None) => ("", None),
        };
        m.record(method, outcome.code, host, port, self.start.elapsed());
    }
}

impl<S, B, RB> Service<Request<B>> for GrpcClientMetricsService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: 'static,
{
    type Response = Response<CallBody<RB, ClientCallEnd>>;
    type Error = S::Error;
    type Future = CallFuture<S::Future, ClientCallEnd>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let call = Call::start(
            ClientCallEnd {
                metrics: self.metrics.clone(),
                uri: req.uri().clone(),
                server: self.server.clone(),
                start: Instant::now(),
            },
            req.headers(),
        );
        CallFuture::new(self.inner.call(req), call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    #[test]
    fn server_and_client_labels() {
        let registry = Registry::new();
        let server = RpcServerMetrics::new(&registry).unwrap();
        server.record("a.B/C", Code::Internal, Duration::from_millis(1));
        server.record("a.B/C", Code::NotFound, Duration::from_millis(1));
        let client = RpcClientMetrics::new(&registry).unwrap();
        client.record(
            "a.B/C",
            Code::NotFound,
            "api.local",
            Some(50051),
            Duration::from_millis(1),
        );
        let text = registry.encode(Format::Text);
        assert!(text.contains(r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="a.B/C",rpc_response_status_code="INTERNAL",error_type="INTERNAL"} 1"#), "{text}");
        assert!(text.contains(r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="a.B/C",rpc_response_status_code="NOT_FOUND",error_type=""} 1"#), "{text}");
        assert!(text.contains(r#"rpc_client_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="a.B/C",rpc_response_status_code="NOT_FOUND",error_type="NOT_FOUND",server_address="api.local",server_port="50051"} 1"#), "{text}");
        // The semantic conventions' buckets.
        assert!(text.contains(r#"le="0.075""#), "{text}");
        assert!(text.contains(r#"le="7.5""#), "{text}");
        // Registering again finds the same series.
        RpcServerMetrics::new(&registry).unwrap();
    }
}
