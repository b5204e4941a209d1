//! An OTLP receiver built on the official `opentelemetry-proto` types (gRPC and
//! HTTP/protobuf) that collects what a test app exports over real loopback.
//!
//! [`OtlpReceiver::start`] binds two free loopback ports — one for
//! OTLP/HTTP (`POST /v1/traces`, `POST /v1/logs`, protobuf bodies decoded with
//! prost) and one for OTLP/gRPC (a tonic server with `TraceService` and
//! `LogsService`) — and serves them from a thread of its own with its own
//! tokio runtime, so tests on either runtime flavour, or none, can use it.
//!
//! Both endpoints accept gzip: HTTP bodies with `Content-Encoding: gzip` are
//! gunzipped (any other coding but `identity` is answered 415), and the gRPC
//! services accept `grpc-encoding: gzip`. [`OtlpReceiver::encodings`] tells
//! how each export request arrived, so a test can check that compression
//! really was on the wire.
//!
//! With the `tls` feature, [`OtlpReceiver::start_tls`] serves both
//! endpoints over TLS (HTTPS with ALPN `http/1.1`, gRPC with `h2`) with a
//! server certificate from a [`TestPki`] generated in the test, optionally
//! requiring client certificates; [`OtlpReceiver::tls_sessions`] and
//! [`OtlpReceiver::tls_failures`] tell what each handshake achieved.
//!
//! [`HungCollector`] accepts connections and never answers: the peer for
//! bounded-shutdown tests.
//!
//! ```
//! use obs_testing::otlp::OtlpReceiver;
//! let receiver = OtlpReceiver::start();
//! assert!(receiver.http_traces_url().starts_with("http://127.0.0.1:"));
//! assert!(receiver.spans().is_empty());
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
pub use tls::{CertifiedPem, PemFiles, ServerTls, TestPki, TlsSession};

/// Which transport a span or log arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/HTTP with a protobuf body.
    HttpProtobuf,
    /// OTLP/gRPC.
    Grpc,
}

/// Formats an OTLP `AnyValue` as text: strings as-is, other scalars with
/// `Display`, arrays and maps with `Debug`.
pub fn any_value_to_string(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attrs_to_map(attrs: &[KeyValue]) -> BTreeMap<String, String> {
    attrs
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value
                    .as_ref()
                    .map(any_value_to_string)
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// How one export request arrived on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestEncoding {
    /// The transport.
    pub transport: Transport,
    /// The request's `Content-Encoding` (HTTP) or `grpc-encoding` (gRPC),
    /// `None` when absent.
    pub encoding: Option<String>,
    /// gRPC only: the compressed flag of the request's first message (the
    /// byte before its length prefix), as seen on the wire.
    pub compressed_flag: Option<bool>,
    /// HTTP only: the body size as sent, before any decoding.
    pub wire_bytes: Option<usize>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One received span with its resource and scope.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// The span as decoded.
    pub span: Span,
    /// Resource attributes, stringified (shared by the request's spans or
    /// records: one copy per export request, not per span).
    pub resource: Arc<BTreeMap<String, String>>,
    /// The instrumentation scope name.
    pub scope: String,
    /// How it arrived.
    pub transport: Transport,
}

impl ReceivedSpan {
    /// The span name.
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The trace id as 32 lowercase hex characters.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span id as 16 lowercase hex characters.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span id, `None` for a root span.
    pub fn parent_span_id(&self) -> Option<String> {
        (!self.span.parent_span_id.is_empty()).then(|| hex(&self.span.parent_span_id))
    }

    /// Attribute `key`, stringified.
    pub fn attr(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .map(any_value_to_string)
    }

    /// Every attribute, stringified.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        attrs_to_map(&self.span.attributes)
    }

    /// The status code (0 unset, 1 ok, 2 error).
    pub fn status_code(&self) -> i32 {
        self.span.status.as_ref().map(|s| s.code).unwrap_or(0)
    }

    /// The status message.
    pub fn status_message(&self) -> &str {
        self.span
            .status
            .as_ref()
            .map(|s| s.message.as_str())
            .unwrap_or("")
    }

    /// The span kind (1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub fn kind(&self) -> i32 {
        self.span.kind
    }

    /// Names of the span's events.
    pub fn event_names(&self) -> Vec<&str> {
        self.span.events.iter().map(|e| e.name.as_str()).collect()
    }
}

/// One received log record with its resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedLog {
    /// The record as decoded.
    pub record: LogRecord,
    /// Resource attributes, stringified (shared by the request's spans or
    /// records: one copy per export request, not per span).
    pub resource: Arc<BTreeMap<String, String>>,
    /// The instrumentation scope's name (obs-log: the target).
    pub scope: String,
    /// How it arrived.
    pub transport: Transport,
}

impl ReceivedLog {
    /// The record's trace id, lowercase hex (empty when it has none).
    pub fn trace_id(&self) -> String {
        hex(&self.record.trace_id)
    }

    /// The record's span id, lowercase hex (empty when it has none).
    pub fn span_id(&self) -> String {
        hex(&self.record.span_id)
    }

    /// The body as text.
    pub fn body(&self) -> String {
        self.record
            .body
            .as_ref()
            .map(any_value_to_string)
            .unwrap_or_default()
    }

    /// Attribute `key`, stringified.
    pub fn attr(&self, key: &str) -> Option<String> {
        self.record
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .map(any_value_to_string)
    }
}

#[derive(Debug, Default)]
struct Store {
    spans: Mutex<Vec<ReceivedSpan>>,
    logs: Mutex<Vec<ReceivedLog>>,
    changed: Condvar,
    requests: AtomicU64,
    encodings: Mutex<Vec<RequestEncoding>>,
    #[cfg(feature = "tls")]
    tls_sessions: Mutex<Vec<TlsSession>>,
    #[cfg(feature = "tls")]
    tls_failures: Mutex<Vec<(Transport, String)>>,
}

/// Where [`FlagBody`] leaves the compressed flag of a gRPC request's first
/// message; travels in the request's extensions to the service.
#[derive(Clone, Debug, Default)]
struct FlagSlot(Arc<Mutex<Option<bool>>>);

impl Store {
    fn add_encoding(&self, e: RequestEncoding) {
        self.encodings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e);
    }

    fn grpc_encoding<T>(&self, request: &tonic::Request<T>) {
        let encoding = request
            .metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A unary message is read whole before the service runs, so the
        // body has seen the first frame by now.
        let compressed_flag = request
            .extensions()
            .get::<FlagSlot>()
            .and_then(|s| *s.0.lock().unwrap_or_else(PoisonError::into_inner));
        self.add_encoding(RequestEncoding {
            transport: Transport::Grpc,
            encoding,
            compressed_flag,
            wire_bytes: None,
        });
    }

    fn add_traces(&self, req: ExportTraceServiceRequest, transport: Transport) {
        let mut out = Vec::new();
        for rs in req.resource_spans {
            let resource = Arc::new(
                rs.resource
                    .map(|r| attrs_to_map(&r.attributes))
                    .unwrap_or_default(),
            );
            for ss in rs.scope_spans {
                let scope = ss.scope.map(|s| s.name).unwrap_or_default();
                for span in ss.spans {
                    out.push(ReceivedSpan {
                        span,
                        resource: Arc::clone(&resource),
                        scope: scope.clone(),
                        transport,
                    });
                }
            }
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(out);
        self.changed.notify_all();
    }

    fn add_logs(&self, req: ExportLogsServiceRequest, transport: Transport) {
        let mut out = Vec::new();
        for rl in req.resource_logs {
            let resource = Arc::new(
                rl.resource
                    .map(|r| attrs_to_map(&r.attributes))
                    .unwrap_or_default(),
            );
            for sl in rl.scope_logs {
                let scope = sl.scope.map(|s| s.name).unwrap_or_default();
                for record in sl.log_records {
                    out.push(ReceivedLog {
                        record,
                        resource: Arc::clone(&resource),
                        scope: scope.clone(),
                        transport,
                    });
                }
            }
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(out);
        self.changed.notify_all();
    }
}

#[derive(Clone)]
struct Grpc(Arc<Store>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.grpc_encoding(&request);
        self.0.add_traces(request.into_inner(), Transport::Grpc);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.grpc_encoding(&request);
        self.0.add_logs(request.into_inner(), Transport::Grpc);
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-protobuf"),
    );
    r
}

async fn handle_http(
    store: Arc<Store>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != hyper::Method::POST {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, Vec::new()));
    }
    let path = req.uri().path().to_owned();
    let encoding = req
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, Vec::new())),
    };
    let wire_bytes = body.len();
    let body = match encoding.as_deref().map(str::trim) {
        None | Some("identity") => body,
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            use std::io::Read;
            let mut out = Vec::new();
            match flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out) {
                Ok(_) => Bytes::from(out),
                Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, Vec::new())),
            }
        }
        Some(_) => return Ok(reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new())),
    };
    if matches!(path.as_str(), "/v1/traces" | "/v1/logs") {
        store.add_encoding(RequestEncoding {
            transport: Transport::HttpProtobuf,
            encoding,
            compressed_flag: None,
            wire_bytes: Some(wire_bytes),
        });
    }
    Ok(match path.as_str() {
        "/v1/traces" => match ExportTraceServiceRequest::decode(body) {
            Ok(r) => {
                store.add_traces(r, Transport::HttpProtobuf);
                reply(
                    StatusCode::OK,
                    ExportTraceServiceResponse {
                        partial_success: None,
                    }
                    .encode_to_vec(),
                )
            }
            Err(_) => reply(StatusCode::BAD_REQUEST, Vec::new()),
        },
        "/v1/logs" => match ExportLogsServiceRequest::decode(body) {
            Ok(r) => {
                store.add_logs(r, Transport::HttpProtobuf);
                reply(
                    StatusCode::OK,
                    ExportLogsServiceResponse {
                        partial_success: None,
                    }
                    .encode_to_vec(),
                )
            }
            Err(_) => reply(StatusCode::BAD_REQUEST, Vec::new()),
        },
        _ => reply(StatusCode::NOT_FOUND, Vec::new()),
    })
}

/// A running OTLP receiver; stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    scheme: &'static str,
    store: Arc<Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Starts the HTTP and gRPC endpoints on free loopback ports.
    ///
    /// # Panics
    /// When the ports cannot be bound or the runtime cannot start: a test
    /// cannot run without its peer, and the message says why.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Like [`start`](Self::start), both endpoints served over TLS with
    /// `tls`'s certificate (and, if it says so, requiring a client
    /// certificate issued by its client CA). The URLs are `https://`.
    ///
    /// # Panics
    /// Like `start`, and when the certificate or key is not usable.
    #[cfg(feature = "tls")]
    pub fn start_tls(tls: ServerTls) -> Self {
        Self::start_with(Some(tls.server_configs()))
    }

    fn start_with(server_tls: Option<ServerTlsConfigs>) -> Self {
        let scheme = if server_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let http_std =
            StdListener::bind("127.0.0.1:0").expect("otlp receiver: cannot bind the HTTP port");
        let grpc_std =
            StdListener::bind("127.0.0.1:0").expect("otlp receiver: cannot bind the gRPC port");
        http_std
            .set_nonblocking(true)
            .expect("otlp receiver: set_nonblocking");
        grpc_std
            .set_nonblocking(true)
            .expect("otlp receiver: set_nonblocking");
        let http_addr = http_std.local_addr().expect("otlp receiver: local_addr");
        let grpc_addr = grpc_std.local_addr().expect("otlp receiver: local_addr");
        let store = Arc::new(Store::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let s = store.clone();
        let thread = std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("otlp receiver: cannot build its runtime");
                rt.block_on(serve(s, http_std, grpc_std, stop_rx, server_tls));
            })
            .expect("otlp receiver: cannot spawn its thread");
        Self {
            http_addr,
            grpc_addr,
            scheme,
            store,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The OTLP/HTTP base URL (`http://127.0.0.1:port`, `https://` when
    /// started with TLS), the value of `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn http_base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.http_addr)
    }

    /// The OTLP/HTTP traces URL (`…/v1/traces`).
    pub fn http_traces_url(&self) -> String {
        format!("{}://{}/v1/traces", self.scheme, self.http_addr)
    }

    /// The OTLP/HTTP logs URL (`…/v1/logs`).
    pub fn http_logs_url(&self) -> String {
        format!("{}://{}/v1/logs", self.scheme, self.http_addr)
    }

    /// The OTLP/gRPC URL (`http://127.0.0.1:port`, `https://` when started
    /// with TLS).
    pub fn grpc_url(&self) -> String {
        format!("{}://{}", self.scheme, self.grpc_addr)
    }

    /// The HTTP port's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The gRPC port's address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Every TLS handshake that succeeded, in order (TLS receivers only).
    #[cfg(feature = "tls")]
    pub fn tls_sessions(&self) -> Vec<TlsSession> {
        self.store
            .tls_sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every TLS handshake that failed, as the server saw it: the
    /// transport and rustls's reason (TLS receivers only).
    #[cfg(feature = "tls")]
    pub fn tls_failures(&self) -> Vec<(Transport, String)> {
        self.store
            .tls_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every log record received so far, in arrival order.
    pub fn logs(&self) -> Vec<ReceivedLog> {
        self.store
            .logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How each export request arrived (both transports, both signals), in
    /// arrival order.
    pub fn encodings(&self) -> Vec<RequestEncoding> {
        self.store
            .encodings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Export requests received (both transports, both signals).
    pub fn requests(&self) -> u64 {
        self.store.requests.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` spans arrived or `timeout` passed, and
    /// returns what arrived (the caller asserts on the count).
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        let mut g = self
            .store
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while g.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            g = self
                .store
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        g.clone()
    }

    /// Waits until at least `n` log records arrived or `timeout` passed.
    pub fn wait_for_logs(&self, n: usize, timeout: Duration) -> Vec<ReceivedLog> {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.logs();
            let left = deadline.saturating_duration_since(Instant::now());
            if logs.len() >= n || left.is_zero() {
                return logs;
            }
            let g = self
                .store
                .spans
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let _ = self
                .store
                .changed
                .wait_timeout(g, left.min(Duration::from_millis(50)));
        }
    }

    /// The first received span named `name`.
    pub fn find(&self, name: &str) -> Option<ReceivedSpan> {
        self.spans().into_iter().find(|s| s.name() == name)
    }

    /// Every received span of trace `trace_id` (hex).
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id() == trace_id)
            .collect()
    }

    /// Forgets everything received so far.
    pub fn clear(&self) {
        self.store
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.store
            .logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(feature = "tls")]
type ServerTlsConfigs = tls::ServerConfigs;
#[cfg(not(feature = "tls"))]
type ServerTlsConfigs = std::convert::Infallible;

type GrpcServe = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
>;

/// Serves one HTTP/1 connection (plain or TLS).
async fn serve_http_connection<I>(store: Arc<Store>, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| handle_http(store.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .await;
}

#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
async fn serve(
    store: Arc<Store>,
    http_std: StdListener,
    grpc_std: StdListener,
    stop: tokio::sync::oneshot::Receiver<()>,
    server_tls: Option<ServerTlsConfigs>,
) {
    let http = tokio::net::TcpListener::from_std(http_std).expect("otlp receiver: tokio listener");
    let grpc = tokio::net::TcpListener::from_std(grpc_std).expect("otlp receiver: tokio listener");
    let grpc_svc = Grpc(store.clone());
    // Flow-control windows like a real collector's: the OpenTelemetry
    // Collector (grpc-go) grows them with BDP estimation, while h2's
    // default of 64 KiB would make every 512-span batch wait for
    // window updates and throttle the client to this receiver's latency.
    let grpc_router = tonic::transport::Server::builder()
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .layer(tower::util::MapRequestLayer::new(
            |req: Request<tonic::body::Body>| {
                let slot = FlagSlot::default();
                let (mut parts, inner) = req.into_parts();
                parts.extensions.insert(slot.clone());
                let body = tonic::body::Body::new(FlagBody {
                    inner,
                    slot: Some(slot),
                });
                Request::from_parts(parts, body)
            },
        ))
        .add_service(
            TraceServiceServer::new(grpc_svc.clone())
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        )
        .add_service(
            LogsServiceServer::new(grpc_svc)
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        );
    #[cfg(feature = "tls")]
    let http_acceptor = server_tls
        .as_ref()
        .map(|c| tokio_rustls::TlsAcceptor::from(c.http.clone()));
    let grpc_server: GrpcServe = match server_tls {
        #[cfg(feature = "tls")]
        Some(configs) => Box::pin(grpc_router.serve_with_incoming(tls::incoming(
            grpc,
            configs.grpc,
            store.clone(),
        ))),
        _ => Box::pin(
            grpc_router.serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc)),
        ),
    };
    let http_server = async move {
        loop {
            let Ok((stream, _)) = http.accept().await else {
                continue;
            };
            let store = store.clone();
            #[cfg(feature = "tls")]
            if let Some(acceptor) = &http_acceptor {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Some(tls) =
                        tls::handshake(&acceptor, stream, &store, Transport::HttpProtobuf).await
                    {
                        serve_http_connection(store, tls).await;
                    }
                });
                continue;
            }
            tokio::spawn(serve_http_connection(store, stream));
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = grpc_server => {}
        _ = http_server => {}
    }
}

/// A gRPC request body that notes the compressed flag of the first message
/// (the first byte of the first data frame) and passes every frame on.
struct FlagBody {
    inner: tonic::body::Body,
    slot: Option<FlagSlot>,
}

impl http_body::Body for FlagBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(first) = frame.data_ref().and_then(|d| d.first())
            && let Some(slot) = self.slot.take()
        {
            *slot.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(*first == 1);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A "collector" that accepts TCP connections and never answers: exports to
/// it hang until the exporter's own timeout. Stops when dropped.
///
/// ```
/// let hung = obs_testing::otlp::HungCollector::start();
/// assert!(hung.url().starts_with("http://127.0.0.1:"));
/// ```
#[derive(Debug)]
pub struct HungCollector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HungCollector {
    /// Binds a free loopback port and starts accepting.
    ///
    /// # Panics
    /// When the port cannot be bound.
    pub fn start() -> Self {
        let l = StdListener::bind("127.0.0.1:0").expect("hung collector: cannot bind");
        l.set_nonblocking(true)
            .expect("hung collector: set_nonblocking");
        let addr = l.local_addr().expect("hung collector: local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => held.push(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:port/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }
}

impl Drop for HungCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    use std::io::{Read, Write};

    #[test]
    fn http_traces_and_grpc_logs_are_collected() {
        let r = OtlpReceiver::start();
        // OTLP/HTTP over a raw socket: exactly what goes on the wire.
        let body = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: "raw".into(),
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let mut s = TcpStream::connect(r.http_addr).unwrap();
        write!(
            s,
            "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(&body).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        assert!(
            resp.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&resp)
        );
        let spans = r.wait_for_spans(1, Duration::from_secs(5));
        assert_eq!(spans[0].name(), "raw");
        assert_eq!(spans[0].trace_id(), "01".repeat(16));
        assert_eq!(spans[0].parent_span_id(), None);
        assert_eq!(r.find("raw").unwrap().transport, Transport::HttpProtobuf);

        // OTLP/gRPC logs with the official client.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut client = LogsServiceClient::connect(r.grpc_url()).await.unwrap();
            client
                .export(ExportLogsServiceRequest {
                    resource_logs: vec![ResourceLogs {
                        scope_logs: vec![ScopeLogs {
                            log_records: vec![LogRecord {
                                body: Some(AnyValue {
                                    value: Some(any_value::Value::StringValue("hello".into())),
                                }),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                })
                .await
                .unwrap();
        });
        let logs = r.wait_for_logs(1, Duration::from_secs(5));
        assert_eq!(logs[0].body(), "hello");
        assert_eq!(logs[0].transport, Transport::Grpc);
        assert_eq!(r.requests(), 2);
    }

    fn one_span_request(name: &str) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: name.into(),
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// Posts `body` to `/v1/traces` over a raw socket and returns the
    /// response's status line.
    fn post_traces(r: &OtlpReceiver, body: &[u8], encoding: Option<&str>) -> String {
        let mut s = TcpStream::connect(r.http_addr).unwrap();
        let ce = encoding
            .map(|e| format!("content-encoding: {e}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n{ce}content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        String::from_utf8_lossy(&resp)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn gzip_bodies_are_decoded_and_their_encoding_recorded() {
        let r = OtlpReceiver::start();
        let plain = one_span_request("gz-http").encode_to_vec();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&plain).unwrap();
        let gz = enc.finish().unwrap();
        assert_ne!(gz, plain);
        assert!(post_traces(&r, &gz, Some("GZIP")).starts_with("HTTP/1.1 200"));
        // Not gzip although it says so: refused, nothing recorded.
        assert!(post_traces(&r, &plain, Some("gzip")).starts_with("HTTP/1.1 400"));
        // A coding the receiver does not know.
        assert!(post_traces(&r, &gz, Some("br")).starts_with("HTTP/1.1 415"));
        let spans = r.wait_for_spans(1, Duration::from_secs(5));
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].name(), "gz-http");
        assert_eq!(
            r.encodings(),
            vec![RequestEncoding {
                transport: Transport::HttpProtobuf,
                encoding: Some("GZIP".into()),
                compressed_flag: None,
                wire_bytes: Some(gz.len()),
            }]
        );

        // gRPC with the official client, compressed and not.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
            let channel = tonic::transport::Endpoint::from_shared(r.grpc_url())
                .unwrap()
                .connect()
                .await
                .unwrap();
            TraceServiceClient::new(channel.clone())
                .send_compressed(tonic::codec::CompressionEncoding::Gzip)
                .export(one_span_request("gz-grpc"))
                .await
                .unwrap();
            TraceServiceClient::new(channel)
                .export(one_span_request("plain-grpc"))
                .await
                .unwrap();
        });
        let spans = r.wait_for_spans(3, Duration::from_secs(5));
        let names: Vec<_> = spans.iter().map(ReceivedSpan::name).collect();
        assert_eq!(names, ["gz-http", "gz-grpc", "plain-grpc"]);
        let grpc: Vec<_> = r
            .encodings()
            .into_iter()
            .filter(|e| e.transport == Transport::Grpc)
            .map(|e| (e.encoding, e.compressed_flag))
            .collect();
        assert_eq!(
            grpc,
            [(Some("gzip".into()), Some(true)), (None, Some(false))]
        );
    }
}
