//! gRPC pieces the pillars share (feature `grpc`): the status codes and how
//! each side classifies them, the `grpc-timeout` deadline, the method name
//! of a request path and the rule that bounds it, and the call wrappers that
//! find a call's final status — in the trailers, in a trailers-only
//! response, or in how the call ended (cancelled, past its deadline).
//!
//! obs-trace and obs-metrics each build their gRPC layer on these, so a span
//! and a metric sample of the same call always agree on its method and
//! status, without either pillar depending on the other.
//!
//! ```
//! use obs_core::grpc::{Code, method_of};
//! assert_eq!(method_of("/grpc.health.v1.Health/Check"), Some("grpc.health.v1.Health/Check"));
//! assert_eq!(method_of("/../etc/passwd"), None);
//! assert!(Code::Internal.is_server_error());
//! assert!(!Code::NotFound.is_server_error());
//! assert_eq!(Code::DeadlineExceeded.as_str(), "DEADLINE_EXCEEDED");
//! ```

use std::any::Any;
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Response};

/// The value of `rpc.system.name` for gRPC.
pub const SYSTEM: &str = "grpc";

/// The method of a call obs does not recognise (`rpc.method`), as the
/// semantic conventions name it.
pub const OTHER: &str = "_OTHER";

/// Duration buckets of `rpc.server.call.duration` and
/// `rpc.client.call.duration` from the RPC semantic conventions, in seconds.
pub const RPC_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Longest method name (`package.Service/Method`) taken from a request path;
/// a longer one is `_OTHER`.
pub const MAX_METHOD_LEN: usize = 256;

/// Attribute names of the RPC semantic conventions.
pub mod attr {
    /// `rpc.system.name` (`grpc`).
    pub const RPC_SYSTEM_NAME: &str = "rpc.system.name";
    /// `rpc.method`: `package.Service/Method`, or `_OTHER`.
    pub const RPC_METHOD: &str = "rpc.method";
    /// `rpc.method_original`: the requested method when `rpc.method` is `_OTHER`.
    pub const RPC_METHOD_ORIGINAL: &str = "rpc.method_original";
    /// `rpc.response.status_code`: the status code's name (`OK`, `NOT_FOUND`).
    pub const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
    /// `network.peer.address`.
    pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
    /// `network.peer.port`.
    pub const NETWORK_PEER_PORT: &str = "network.peer.port";
}

/// Prometheus names of the RPC metrics.
pub mod metric {
    /// `rpc.server.call.duration`, in seconds.
    pub const RPC_SERVER_CALL_DURATION: &str = "rpc_server_call_duration_seconds";
    /// `rpc.client.call.duration`, in seconds.
    pub const RPC_CLIENT_CALL_DURATION: &str = "rpc_client_call_duration_seconds";
}

/// Request and response headers of the gRPC protocol.
pub mod header {
    /// The call's status code, in the trailers (or a trailers-only response).
    pub const GRPC_STATUS: &str = "grpc-status";
    /// The status message, percent-encoded.
    pub const GRPC_MESSAGE: &str = "grpc-message";
    /// The caller's deadline: up to 8 digits and a unit (`H M S m u n`).
    pub const GRPC_TIMEOUT: &str = "grpc-timeout";
}

/// A gRPC status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[allow(
    missing_docs,
    reason = "the codes of the gRPC protocol, named as it names them"
)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// Every code, by number.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code numbered `n`; `None` outside 0–16.
    pub fn from_i32(n: i32) -> Option<Code> {
        usize::try_from(n)
            .ok()
            .and_then(|i| Self::ALL.get(i))
            .copied()
    }

    /// The code of a `grpc-status` value; a value that is not a code is
    /// `UNKNOWN`, as the gRPC protocol says.
    pub fn from_header(v: &HeaderValue) -> Code {
        std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .and_then(Code::from_i32)
            .unwrap_or(Code::Unknown)
    }

    /// The code of a response that is not a gRPC response (its HTTP status
    /// is not 200), by the gRPC protocol's mapping.
    pub fn from_http_status(status: u16) -> Code {
        match status {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }

    /// The code's name, as `rpc.response.status_code` and `error.type` carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// Whether a server failed when it answered with this code: the gRPC
    /// semantic conventions count `UNKNOWN`, `DEADLINE_EXCEEDED`,
    /// `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS`; the others
    /// are the caller's problem (`NOT_FOUND`, `INVALID_ARGUMENT`, …).
    pub fn is_server_error(self) -> bool {
        matches!(
            self,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        )
    }

    /// Whether a client failed with this code: every code but `OK`.
    pub fn is_client_error(self) -> bool {
        self != Code::Ok
    }

    /// Whether a call of `side` failed with this code.
    pub fn is_error(self, side: Side) -> bool {
        match side {
            Side::Server => self.is_server_error(),
            Side::Client => self.is_client_error(),
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which end of a call an observation is made at: the status codes that
/// count as failures differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The server handling the call.
    Server,
    /// The client making it.
    Client,
}

/// Whether a request or response is gRPC: `content-type: application/grpc`
/// or `application/grpc+{codec}` / `application/grpc;…`.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.as_bytes().strip_prefix(b"application/grpc"))
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
}

/// The status code in `grpc-status`, if the header is there.
pub fn status(headers: &HeaderMap) -> Option<Code> {
    headers.get(header::GRPC_STATUS).map(Code::from_header)
}

/// The status message of `grpc-message`, percent-decoded (invalid UTF-8
/// replaced) and cut to 512 bytes; `None` when absent or empty.
pub fn message(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::GRPC_MESSAGE)?.as_bytes();
    let mut out = Vec::with_capacity(raw.len().min(512));
    let mut i = 0;
    while i < raw.len() && out.len() < 512 {
        let b = raw[i];
        if b == b'%'
            && let (Some(h), Some(l)) = (
                raw.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                raw.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    let s = String::from_utf8_lossy(&out).into_owned();
    (!s.is_empty()).then_some(s)
}

/// The deadline a caller set with `grpc-timeout` (`100m`, `5S`, …): up to
/// 8 digits and a unit; `None` when absent or malformed.
///
/// ```
/// use std::time::Duration;
/// let mut h = http::HeaderMap::new();
/// h.insert("grpc-timeout", "250m".parse().unwrap());
/// assert_eq!(obs_core::grpc::timeout(&h), Some(Duration::from_millis(250)));
/// ```
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::GRPC_TIMEOUT)?.as_bytes();
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit[0] {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The method of a gRPC request path, `package.Service/Method` (the path
/// without its leading `/`), when the path has that shape: a service of
/// letters, digits, `_` and `.`, a method of letters, digits and `_`, at
/// most [`MAX_METHOD_LEN`] bytes in all. `None` otherwise.
pub fn method_of(path: &str) -> Option<&str> {
    let m = path.strip_prefix('/')?;
    if m.len() > MAX_METHOD_LEN {
        return None;
    }
    let (service, method) = m.split_once('/')?;
    let ok_service = !service.is_empty()
        && !service.starts_with('.')
        && !service.ends_with('.')
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    let ok_method = !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (ok_service && ok_method).then_some(m)
}

/// Which methods a server recognises, the rule that keeps `rpc.method`
/// bounded on spans and metrics.
///
/// A client can send any path; obs never turns an unrecognised one into a
/// label. A request's method is recognised when its path is a well-formed
/// gRPC path ([`method_of`]) and:
///
/// - with [`KnownMethods::any`] (the default): the server did not answer
///   `UNIMPLEMENTED` (tonic's router answers every unknown service and
///   method so);
/// - with [`KnownMethods::only`]: the method is listed (always
///   recognised, whatever the status), or its service is listed and the
///   server did not answer `UNIMPLEMENTED`.
///
/// Everything else is `_OTHER`, with the requested name in
/// `rpc.method_original` on the span. Past that, each metric family's
/// cardinality limit still applies.
///
/// ```
/// use obs_core::grpc::{Code, KnownMethods};
/// let known = KnownMethods::only(["grpc.health.v1.Health"]);
/// let m = known.recognise("/grpc.health.v1.Health/Check");
/// assert_eq!(m.name(Code::Ok), "grpc.health.v1.Health/Check");
/// assert_eq!(m.name(Code::Unimplemented), "_OTHER");
/// assert_eq!(known.recognise("/other.Svc/Call").name(Code::Ok), "_OTHER");
/// ```
#[derive(Clone, Debug, Default)]
pub struct KnownMethods {
    /// `None`: every well-formed method; else services and methods.
    listed: Option<Arc<[Box<str>]>>,
}

impl KnownMethods {
    /// Every well-formed method the server does not answer `UNIMPLEMENTED`.
    pub fn any() -> Self {
        Self::default()
    }

    /// Only these services (`package.Service`) and methods
    /// (`package.Service/Method`).
    pub fn only<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            listed: Some(
                entries
                    .into_iter()
                    .map(|s| s.as_ref().trim_start_matches('/').into())
                    .collect(),
            ),
        }
    }

    /// The method of a request to `path`, before its status is known.
    pub fn recognise<'a>(&self, path: &'a str) -> Recognised<'a> {
        let Some(method) = method_of(path) else {
            return Recognised {
                method: None,
                pinned: false,
            };
        };
        match &self.listed {
            None => Recognised {
                method: Some(method),
                pinned: false,
            },
            Some(list) => {
                let service = method.split_once('/').map_or(method, |(s, _)| s);
                if list.iter().any(|e| &**e == method) {
                    Recognised {
                        method: Some(method),
                        pinned: true,
                    }
                } else if list.iter().any(|e| &**e == service) {
                    Recognised {
                        method: Some(method),
                        pinned: false,
                    }
                } else {
                    Recognised {
                        method: None,
                        pinned: false,
                    }
                }
            }
        }
    }
}

/// The method of one request; see [`KnownMethods::recognise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recognised<'a> {
    method: Option<&'a str>,
    pinned: bool,
}

impl<'a> Recognised<'a> {
    /// A client's method: its own stub names it, so any well-formed path is
    /// recognised whatever the status.
    pub fn client(path: &'a str) -> Self {
        Self {
            method: method_of(path),
            pinned: true,
        }
    }

    /// The method as far as it is known before the call ends: the
    /// well-formed name (a later `UNIMPLEMENTED` may still make it
    /// `_OTHER`), or `_OTHER`.
    pub fn provisional(&self) -> &'a str {
        self.method.unwrap_or(OTHER)
    }

    /// The method once the call ended with `code`.
    pub fn name(&self, code: Code) -> &'a str {
        match self.method {
            Some(m) if self.pinned || code != Code::Unimplemented => m,
            _ => OTHER,
        }
    }
}

/// How a call's final status was learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// From `grpc-status` in the trailers, after the response stream.
    Trailers,
    /// From `grpc-status` in the response headers (a trailers-only
    /// response: the call failed, or ended, before any message).
    TrailersOnly,
    /// The response was not a gRPC response: its HTTP status (not 200)
    /// mapped to a code.
    HttpStatus(u16),
    /// The response stream ended without a `grpc-status` (`INTERNAL`).
    MissingStatus,
    /// The response stream failed.
    BodyError,
    /// The service failed before a response (its error mapped to a code).
    ServiceError,
    /// The call was dropped before it ended: the peer went away, or it was
    /// cancelled (`CANCELLED`), or its deadline passed (`DEADLINE_EXCEEDED`).
    Dropped,
}

/// How a call ended, as the wrappers hand it to a [`CallEnd`].
#[derive(Debug)]
pub struct Outcome<'a> {
    /// The final status code.
    pub code: Code,
    /// How it was learnt.
    pub ending: Ending,
    /// The trailers (or the trailers-only response's headers), when the
    /// status came in them: `grpc-message` is there.
    pub trailers: Option<&'a HeaderMap>,
}

/// What a pillar does with a call: something to run each poll in (a span
/// to enter), and what to record once, when the call ends. Every call ends
/// exactly once — at its trailers, at a trailers-only response, at an
/// error, or when it is dropped unfinished.
pub trait CallEnd: Send + 'static {
    /// Records the call's outcome. Called once, possibly from `Drop`: it
    /// must not panic.
    fn end(self, outcome: &Outcome<'_>);

    /// Runs `f` (a poll of the call's future or response body) in the
    /// call's context; by default, as it is.
    fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// An optional part: `None` records nothing (a layer that is off).
impl<E: CallEnd> CallEnd for Option<E> {
    fn end(self, outcome: &Outcome<'_>) {
        if let Some(e) = self {
            e.end(outcome);
        }
    }

    fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        match self {
            Some(e) => e.scope(f),
            None => f(),
        }
    }
}

/// A call in progress: its [`CallEnd`] and deadline. Dropping it before it
/// ended records the call as cancelled, or as past its deadline (once in
/// the last twentieth of its `grpc-timeout`, 1–50 ms: the caller's
/// cancellation at its deadline arrives a network delay later).
#[derive(Debug)]
pub struct Call<E: CallEnd> {
    end: Option<E>,
    deadline: Option<Instant>,
}

impl<E: CallEnd> Call<E> {
    /// Starts a call of a request with these headers (`grpc-timeout` gives
    /// its deadline).
    pub fn start(end: E, request_headers: &HeaderMap) -> Self {
        Self {
            end: Some(end),
            deadline: timeout(request_headers).and_then(|t| {
                // A caller's deadline and the cancellation it causes cross
                // on the wire: the peer cancels at its deadline, which this
                // side sees a network delay after its own start. A call
                // dropped in the last twentieth of its time (1–50 ms) is
                // counted as past its deadline.
                let grace = (t / 20).clamp(Duration::from_millis(1), Duration::from_millis(50));
                Instant::now().checked_add(t.saturating_sub(grace))
            }),
        }
    }

    /// Whether the call's deadline has passed.
    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The code of a call that did not end by itself: `DEADLINE_EXCEEDED`
    /// once the deadline passed, else `fallback`.
    fn unless_late(&self, fallback: Code) -> Code {
        if self.past_deadline() {
            Code::DeadlineExceeded
        } else {
            fallback
        }
    }

    /// The code of a status the peer sent: a `CANCELLED` that arrives once
    /// the deadline passed is the deadline's doing (tonic's server answers
    /// its own timeout with `CANCELLED`, and a busy caller may read that
    /// answer before its own timer fires), so it is `DEADLINE_EXCEEDED`.
    fn of_status(&self, code: Code) -> Code {
        if code == Code::Cancelled {
            self.unless_late(code)
        } else {
            code
        }
    }

    fn finish(&mut self, code: Code, ending: Ending, trailers: Option<&HeaderMap>) {
        if let Some(end) = self.end.take() {
            end.end(&Outcome {
                code,
                ending,
                trailers,
            });
        }
    }

    /// Runs `f` in the call's scope (see [`CallEnd::scope`]): the layer's
    /// `call` of its inner service, for instance.
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.end {
            Some(e) => e.scope(f),
            None => f(),
        }
    }
}

impl<E: CallEnd> Drop for Call<E> {
    fn drop(&mut self) {
        if self.end.is_some() {
            let code = self.unless_late(Code::Cancelled);
            self.finish(code, Ending::Dropped, None);
        }
    }
}

pin_project_lite::pin_project! {
    /// A call's response future: polls the inner future in the call's
    /// scope; a trailers-only or non-gRPC response ends the call at once,
    /// any other response carries the call on in its [`CallBody`].
    #[derive(Debug)]
    pub struct CallFuture<F, E: CallEnd> {
        #[pin]
        inner: F,
        call: Option<Call<E>>,
    }
}

impl<F, E: CallEnd> CallFuture<F, E> {
    /// Wraps `inner`, the response future of the call.
    pub fn new(inner: F, call: Call<E>) -> Self {
        Self {
            inner,
            call: Some(call),
        }
    }
}

impl<F, B, Err, E> std::future::Future for CallFuture<F, E>
where
    F: std::future::Future<Output = Result<Response<B>, Err>>,
    Err: 'static,
    E: CallEnd,
{
    type Output = Result<Response<CallBody<B, E>>, Err>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let out = match this.call.as_ref() {
            Some(call) => ready!(call.scope(|| inner.poll(cx))),
            None => ready!(inner.poll(cx)),
        };
        let Some(mut call) = this.call.take() else {
            return Poll::Ready(out.map(|r| r.map(|b| CallBody::new(b, None))));
        };
        Poll::Ready(match out {
            Ok(resp) => {
                let http = resp.status().as_u16();
                if let Some(code) = status(resp.headers()) {
                    let code = call.of_status(code);
                    call.finish(code, Ending::TrailersOnly, Some(resp.headers()));
                    Ok(resp.map(|b| CallBody::new(b, None)))
                } else if http != 200 {
                    call.finish(Code::from_http_status(http), Ending::HttpStatus(http), None);
                    Ok(resp.map(|b| CallBody::new(b, None)))
                } else {
                    Ok(resp.map(|b| CallBody::new(b, Some(call))))
                }
            }
            Err(e) => {
                let code = call.unless_late(code_of_error(&e).unwrap_or(Code::Unknown));
                call.finish(code, Ending::ServiceError, None);
                Err(e)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that ends its call: at the trailers frame (its
    /// `grpc-status`), at the end of the stream without one (`INTERNAL`),
    /// at a stream error, or when dropped unfinished (`CANCELLED`, or
    /// `DEADLINE_EXCEEDED` past the deadline). Frames pass through untouched.
    #[derive(Debug)]
    pub struct CallBody<B, E: CallEnd> {
        #[pin]
        inner: B,
        call: Option<Call<E>>,
    }
}

impl<B, E: CallEnd> CallBody<B, E> {
    /// Wraps `inner`; `call` is `None` when the call already ended.
    pub fn new(inner: B, call: Option<Call<E>>) -> Self {
        Self { inner, call }
    }
}

impl<B: Default, E: CallEnd> Default for CallBody<B, E> {
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

impl<B, E> http_body::Body for CallBody<B, E>
where
    B: http_body::Body,
    B::Error: 'static,
    E: CallEnd,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let inner = this.inner;
        let Some(call) = this.call.as_mut() else {
            return inner.poll_frame(cx);
        };
        let frame = ready!(call.scope(|| inner.poll_frame(cx)));
        match &frame {
            Some(Ok(f)) => {
                if let Some(t) = f.trailers_ref() {
                    let code = call.of_status(status(t).unwrap_or(Code::Internal));
                    let ending = if t.contains_key(header::GRPC_STATUS) {
                        Ending::Trailers
                    } else {
                        Ending::MissingStatus
                    };
                    call.finish(code, ending, Some(t));
                    *this.call = None;
                }
            }
            Some(Err(e)) => {
                let code = call.unless_late(code_of_error(e).unwrap_or(Code::Unknown));
                call.finish(code, Ending::BodyError, None);
                *this.call = None;
            }
            None => {
                call.finish(Code::Internal, Ending::MissingStatus, None);
                *this.call = None;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The status code an error stands for, looking through its sources: a
/// `tonic::Status` its own code, tonic's deadline (`TimeoutExpired`)
/// `DEADLINE_EXCEEDED`, a failed connection `UNAVAILABLE`. `None` when
/// nothing in it says (the caller then uses `UNKNOWN`).
pub fn code_of_error<E: 'static>(err: &E) -> Option<Code> {
    let any = err as &dyn Any;
    if let Some(s) = any.downcast_ref::<tonic::Status>() {
        return code_of_status(s);
    }
    if let Some(e) = any.downcast_ref::<tonic::transport::Error>() {
        return code_in_chain(e);
    }
    if let Some(e) = any.downcast_ref::<Box<dyn StdError + Send + Sync>>() {
        return code_in_chain(&**e);
    }
    if let Some(e) = any.downcast_ref::<std::io::Error>() {
        return code_in_chain(e);
    }
    None
}

fn code_of_status(s: &tonic::Status) -> Option<Code> {
    Code::from_i32(s.code() as i32)
}

fn code_in_chain(err: &(dyn StdError + 'static)) -> Option<Code> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(s) = e.downcast_ref::<tonic::Status>() {
            return code_of_status(s);
        }
        if e.is::<tonic::TimeoutExpired>() {
            return Some(Code::DeadlineExceeded);
        }
        if e.is::<tonic::ConnectError>() {
            return Some(Code::Unavailable);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                TimedOut => return Some(Code::DeadlineExceeded),
                ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
                | BrokenPipe => return Some(Code::Unavailable),
                _ => {}
            }
        }
        cur = e.source();
    }
    None
}

/// The peer of a request served by tonic (its `TcpConnectInfo`), or a
/// `SocketAddr` extension another server inserted.
pub fn peer_addr(ext: &http::Extensions) -> Option<std::net::SocketAddr> {
    if let Some(info) = ext.get::<tonic::transport::server::TcpConnectInfo>() {
        return info.remote_addr();
    }
    ext.get::<std::net::SocketAddr>().copied()
}

pub use crate::headers::split_authority;

/// The server a client calls, from its channel's target string, as the
/// RPC semantic conventions read it for `server.address` / `server.port`:
/// `host:port`, a URI (`http://host:port`, `dns://resolver/host:port`),
/// `unix:///path` (the path, no port); any other target is kept whole,
/// without a port.
///
/// ```
/// use obs_core::grpc::Target;
/// let t = Target::parse("http://api.internal:50051");
/// assert_eq!((t.host(), t.port()), ("api.internal", Some(50051)));
/// let t = Target::parse("dns://1.2.3.4/grpc.io:50051");
/// assert_eq!((t.host(), t.port()), ("grpc.io", Some(50051)));
/// let t = Target::parse("unix:///run/app.sock");
/// assert_eq!((t.host(), t.port()), ("/run/app.sock", None));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    host: Box<str>,
    port: Option<u16>,
}

impl Target {
    /// Reads a target string.
    pub fn parse(target: &str) -> Self {
        let whole = || Target {
            host: target.into(),
            port: None,
        };
        if let Some(path) = target
            .strip_prefix("unix://")
            .or_else(|| target.strip_prefix("unix:"))
        {
            return Target {
                host: path.into(),
                port: None,
            };
        }
        let rest = match target.split_once("://") {
            Some(("dns", rest)) => rest.split_once('/').map_or(rest, |(_, name)| name),
            Some(("http" | "https" | "grpc" | "grpcs", rest)) => rest,
            Some(_) => return whole(),
            None => target,
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        if authority.is_empty() || authority.contains(',') {
            return whole();
        }
        let (host, port) = split_authority(authority);
        Target {
            host: host.into(),
            port,
        }
    }

    /// `server.address`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `server.port`, when the target has one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

/// The server a request is addressed to: its URI's authority, else `Host`
/// (`:authority` on HTTP/2).
pub fn server_of<B>(req: &http::Request<B>) -> Option<(&str, Option<u16>)> {
    let authority = req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    })?;
    let (h, p) = split_authority(authority);
    (!h.is_empty()).then_some((h, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn codes_round_trip_and_classify() {
        for (i, c) in Code::ALL.iter().enumerate() {
            assert_eq!(Code::from_i32(i as i32), Some(*c));
            assert_eq!(*c as usize, i);
        }
        assert_eq!(Code::from_i32(17), None);
        assert_eq!(Code::from_i32(-1), None);
        assert_eq!(
            Code::from_header(&HeaderValue::from_static("5")),
            Code::NotFound
        );
        assert_eq!(
            Code::from_header(&HeaderValue::from_static("x")),
            Code::Unknown
        );
        assert_eq!(
            Code::from_header(&HeaderValue::from_static("99")),
            Code::Unknown
        );
        let server: Vec<_> = Code::ALL
            .into_iter()
            .filter(|c| c.is_server_error())
            .collect();
        assert_eq!(
            server,
            [
                Code::Unknown,
                Code::DeadlineExceeded,
                Code::Unimplemented,
                Code::Internal,
                Code::Unavailable,
                Code::DataLoss
            ]
        );
        assert!(Code::NotFound.is_error(Side::Client));
        assert!(!Code::NotFound.is_error(Side::Server));
        assert!(!Code::Ok.is_error(Side::Client));
        assert_eq!(Code::from_http_status(404), Code::Unimplemented);
        assert_eq!(Code::from_http_status(503), Code::Unavailable);
        assert_eq!(Code::from_http_status(418), Code::Unknown);
    }

    #[test]
    fn content_type_timeout_and_message() {
        let mut h = HeaderMap::new();
        assert!(!is_grpc(&h));
        for (ct, yes) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc;charset=utf-8", true),
            ("application/grpc-web", false),
            ("application/json", false),
        ] {
            h.insert("content-type", ct.parse().unwrap());
            assert_eq!(is_grpc(&h), yes, "{ct}");
        }
        for (v, d) in [
            ("1H", Some(Duration::from_secs(3600))),
            ("2M", Some(Duration::from_secs(120))),
            ("3S", Some(Duration::from_secs(3))),
            ("40m", Some(Duration::from_millis(40))),
            ("5u", Some(Duration::from_micros(5))),
            ("6n", Some(Duration::from_nanos(6))),
            ("99999999S", Some(Duration::from_secs(99_999_999))),
            ("123456789S", None),
            ("S", None),
            ("10x", None),
            ("-1S", None),
            ("", None),
        ] {
            h.insert("grpc-timeout", v.parse().unwrap());
            assert_eq!(timeout(&h), d, "{v:?}");
        }
        h.insert(
            "grpc-message",
            "not%20found%3A%20item%E2%9C%93".parse().unwrap(),
        );
        assert_eq!(message(&h).as_deref(), Some("not found: item✓"));
        h.insert("grpc-message", "bad%zz%4".parse().unwrap());
        assert_eq!(message(&h).as_deref(), Some("bad%zz%4"));
    }

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_of("/a.B/C"), Some("a.B/C"));
        assert_eq!(method_of("/B/C_1"), Some("B/C_1"));
        for bad in [
            "",
            "/",
            "a.B/C",
            "/a.B",
            "/a.B/",
            "//C",
            "/a.B/C/D",
            "/a B/C",
            "/.a/C",
            "/a./C",
            "/a.B/C?x=1",
            "/a.B/C-d",
        ] {
            assert_eq!(method_of(bad), None, "{bad:?}");
        }
        let long = format!("/{}/M", "s".repeat(MAX_METHOD_LEN));
        assert_eq!(method_of(&long), None);

        let any = KnownMethods::any();
        let r = any.recognise("/a.B/C");
        assert_eq!((r.provisional(), r.name(Code::Ok)), ("a.B/C", "a.B/C"));
        assert_eq!(r.name(Code::NotFound), "a.B/C");
        assert_eq!(r.name(Code::Unimplemented), OTHER);
        assert_eq!(any.recognise("/nonsense").name(Code::Ok), OTHER);

        let only = KnownMethods::only(["a.B", "/x.Y/Z"]);
        assert_eq!(only.recognise("/a.B/C").name(Code::Ok), "a.B/C");
        assert_eq!(only.recognise("/a.B/C").name(Code::Unimplemented), OTHER);
        assert_eq!(only.recognise("/x.Y/Z").name(Code::Unimplemented), "x.Y/Z");
        assert_eq!(only.recognise("/x.Y/W").name(Code::Ok), OTHER);
        assert_eq!(only.recognise("/q.R/S").provisional(), OTHER);

        let c = Recognised::client("/a.B/C");
        assert_eq!(c.name(Code::Unimplemented), "a.B/C");
    }

    #[test]
    fn authority_and_errors() {
        assert_eq!(split_authority("h:50051"), ("h", Some(50051)));
        assert_eq!(split_authority("[::1]:8080"), ("::1", Some(8080)));
        assert_eq!(split_authority("u:p@h"), ("h", None));
        let req = http::Request::get("http://127.0.0.1:7/a.B/C")
            .body(())
            .unwrap();
        assert_eq!(server_of(&req), Some(("127.0.0.1", Some(7))));

        for (t, h, p) in [
            ("grpc.io:50051", "grpc.io", Some(50051)),
            ("grpc.io", "grpc.io", None),
            ("https://[::1]:443/x", "::1", Some(443)),
            ("unix:/tmp/a.sock", "/tmp/a.sock", None),
            (
                "zk://zookeeper:2181/my-server",
                "zk://zookeeper:2181/my-server",
                None,
            ),
            (
                "ipv4:198.51.100.123:50051,198.51.100.124:50051",
                "ipv4:198.51.100.123:50051,198.51.100.124:50051",
                None,
            ),
        ] {
            let target = Target::parse(t);
            assert_eq!((target.host(), target.port()), (h, p), "{t}");
        }

        assert_eq!(
            code_of_error(&tonic::Status::not_found("x")),
            Some(Code::NotFound)
        );
        let boxed: Box<dyn StdError + Send + Sync> = Box::new(tonic::TimeoutExpired(()));
        assert_eq!(code_of_error(&boxed), Some(Code::DeadlineExceeded));
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(code_of_error(&io), Some(Code::Unavailable));
        assert_eq!(code_of_error(&"text"), None);
    }

    /// Records what ended, for the wrapper tests.
    #[derive(Clone, Default)]
    struct Seen(Arc<std::sync::Mutex<Vec<(Code, Ending)>>>);

    impl CallEnd for Seen {
        fn end(self, o: &Outcome<'_>) {
            self.0.lock().unwrap().push((o.code, o.ending));
        }
    }

    impl Seen {
        fn take(&self) -> Vec<(Code, Ending)> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    /// A body of these frames.
    struct Frames(Vec<http_body::Frame<bytes::Bytes>>);

    impl http_body::Body for Frames {
        type Data = bytes::Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
            Poll::Ready(if self.0.is_empty() {
                None
            } else {
                Some(Ok(self.0.remove(0)))
            })
        }
    }

    fn data(b: &'static [u8]) -> http_body::Frame<bytes::Bytes> {
        http_body::Frame::data(bytes::Bytes::from_static(b))
    }

    fn poll_all<B: http_body::Body + Unpin>(b: &mut B) -> usize {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut n = 0;
        while let Poll::Ready(Some(_)) = Pin::new(&mut *b).poll_frame(&mut cx) {
            n += 1;
        }
        n
    }

    #[test]
    fn the_body_ends_the_call_once() {
        let seen = Seen::default();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "5".parse().unwrap());
        let frames = Frames(vec![data(b"ab"), http_body::Frame::trailers(trailers)]);
        let mut body = CallBody::new(frames, Some(Call::start(seen.clone(), &HeaderMap::new())));
        assert_eq!(poll_all(&mut body), 2);
        drop(body);
        assert_eq!(seen.take(), [(Code::NotFound, Ending::Trailers)]);

        // Dropped before its end: cancelled; past its deadline: deadline exceeded.
        let body = CallBody::new(
            Frames(vec![]),
            Some(Call::start(seen.clone(), &HeaderMap::new())),
        );
        drop(body);
        let mut h = HeaderMap::new();
        h.insert("grpc-timeout", "1n".parse().unwrap());
        let call = Call::start(seen.clone(), &h);
        std::thread::sleep(Duration::from_millis(1));
        drop(call);
        assert_eq!(
            seen.take(),
            [
                (Code::Cancelled, Ending::Dropped),
                (Code::DeadlineExceeded, Ending::Dropped)
            ]
        );

        // A CANCELLED status past the deadline is the deadline's doing; before
        // it, and any other status past it, stays what the peer said.
        let cancelled = |code: &str| {
            let mut t = HeaderMap::new();
            t.insert("grpc-status", code.parse().unwrap());
            Frames(vec![http_body::Frame::trailers(t)])
        };
        let mut body = CallBody::new(cancelled("1"), Some(Call::start(seen.clone(), &h)));
        poll_all(&mut body);
        let mut body = CallBody::new(cancelled("5"), Some(Call::start(seen.clone(), &h)));
        poll_all(&mut body);
        let mut body = CallBody::new(
            cancelled("1"),
            Some(Call::start(seen.clone(), &HeaderMap::new())),
        );
        poll_all(&mut body);
        assert_eq!(
            seen.take(),
            [
                (Code::DeadlineExceeded, Ending::Trailers),
                (Code::NotFound, Ending::Trailers),
                (Code::Cancelled, Ending::Trailers)
            ]
        );

        // The stream ended without trailers.
        let mut body = CallBody::new(
            Frames(vec![data(b"a")]),
            Some(Call::start(seen.clone(), &HeaderMap::new())),
        );
        assert_eq!(poll_all(&mut body), 1);
        drop(body);
        assert_eq!(seen.take(), [(Code::Internal, Ending::MissingStatus)]);
    }
}
