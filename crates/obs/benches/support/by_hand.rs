//! The `by-hand` stack: what `server_layer()` does for an unsampled
//! request, written out by hand in one tower service, with no `tracing`, no
//! layer stack and no configuration — the least a request can cost with
//! obs's behaviours. It uses obs's own primitives where obs has one (random
//! ids, method names, body sizes, civil dates, the RED metric set) and
//! writes the rest directly:
//!
//! - the skip list: `/livez`, `/readyz`, `/healthz` and `/metrics` pass
//!   through untouched;
//! - the correlation id: read from `x-correlation-id`, then `x-request-id`,
//!   or generated (a UUID v4, its header value cut from a per-thread chunk
//!   as obs does); set on the request unless it came in the first header;
//!   echoed on the response; counted by source; made the thread's current
//!   id around the inner `call` and each poll, as obs makes it the task's;
//! - the trace context: `traceparent` read, a trace id (the caller's or a
//!   new one) and a span id made for the request;
//! - RED metrics: the active-requests gauge, the duration histogram by
//!   method, route and status, the request and response body sizes when
//!   known (`Content-Length` or the body's exact size);
//! - catch-panic: a handler that panics (in `call` or a poll) answers 500;
//! - the access line, the same fields as obs's line in the same order (the
//!   timestamp, level, target, message, status, duration, body sizes, the
//!   request's method, path, scheme, route, server address and port when
//!   the request names its host, user agent and protocol, the span list,
//!   the three ids and the service: 18 for the benches' request, 20 with a
//!   `Host` header), into a bounded buffer that a writer thread empties
//!   every millisecond, or at once when 256 KiB are waiting; a line that
//!   does not fit is dropped and counted.
//!
//! It has no span that a user's events or spans could join, no sampling or
//! export, no error scope, no filters or runtime levels, no redaction, no
//! rate limit: it is a measure, not a product. `cargo xtask instructions`,
//! the `server_layer` bench and `http_bench` run it beside obs: the
//! difference is what obs's composition costs over its behaviours.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, ready};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use http::{HeaderName, HeaderValue, StatusCode};
use obs::core::{CorrelationId, SpanId, TraceId};
use obs::metrics::sets::HttpServerMetrics;

/// The line buffer's bound: a line that would take it past this is dropped.
const BUFFER_CAP: usize = 4 << 20;

/// The writer is woken at once when this much is waiting (otherwise it
/// looks every millisecond), as obs's writer is.
const WAKE_AT: usize = 256 << 10;

/// Paths that pass through untouched.
const SKIP: [&str; 4] = ["/livez", "/readyz", "/healthz", "/metrics"];

/// The correlation headers, in the order they are read.
const HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-correlation-id"),
    HeaderName::from_static("x-request-id"),
];

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

struct Shared {
    metrics: HttpServerMetrics,
    service: &'static str,
    lines: Mutex<Vec<u8>>,
    wake: Condvar,
    dropped: AtomicU64,
    /// Lines taken into the buffer.
    taken: AtomicU64,
    /// Correlation ids by source: generated, incoming.
    ids: [AtomicU64; 2],
    stop: AtomicBool,
}

/// The by-hand stack's layer, and its writer thread (stopped on drop,
/// after it wrote what was left).
pub(crate) struct ByHand {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl ByHand {
    /// The stack of service `service`, its lines written to `out`.
    pub(crate) fn new(service: &'static str, out: impl std::io::Write + Send + 'static) -> Self {
        let registry = obs::metrics::Registry::new();
        let shared = Arc::new(Shared {
            metrics: HttpServerMetrics::new(&registry).expect("a fresh registry"),
            service,
            lines: Mutex::new(Vec::with_capacity(BUFFER_CAP)),
            wake: Condvar::new(),
            dropped: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            ids: [AtomicU64::new(0), AtomicU64::new(0)],
            stop: AtomicBool::new(false),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || write_loop(&shared, out))
        };
        Self {
            shared,
            writer: Some(writer),
        }
    }

    pub(crate) fn layer(&self) -> ByHandLayer {
        ByHandLayer(Arc::clone(&self.shared))
    }

    /// Stops the writer once it wrote every line taken: (written, dropped).
    pub(crate) fn finish(mut self) -> (u64, u64) {
        self.stop();
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        (self.shared.taken.load(Ordering::Relaxed) - dropped, dropped)
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(w) = self.writer.take() {
            w.join().expect("the writer does not panic");
        }
        // A line taken after the writer's last look (a request still
        // running when the stack stops) is lost, and counted.
        let left = std::mem::take(&mut *self.shared.lines.lock().expect("not poisoned"));
        let lines = left.iter().filter(|&&b| b == b'\n').count();
        self.shared
            .dropped
            .fetch_add(lines as u64, Ordering::Relaxed);
    }
}

impl Drop for ByHand {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The writer thread: every millisecond, or when woken, swaps the buffer
/// out and writes it.
fn write_loop(shared: &Shared, mut out: impl std::io::Write) {
    let mut spare = Vec::with_capacity(BUFFER_CAP);
    loop {
        let stop = shared.stop.load(Ordering::Acquire);
        {
            let mut lines = shared.lines.lock().expect("not poisoned");
            if !stop && lines.len() < WAKE_AT {
                lines = shared
                    .wake
                    .wait_timeout(lines, Duration::from_millis(1))
                    .expect("not poisoned")
                    .0;
            }
            std::mem::swap(&mut *lines, &mut spare);
        }
        if !spare.is_empty() && out.write_all(&spare).and_then(|()| out.flush()).is_err() {
            // Lines the sink refused are lost, and counted.
            let lines = spare.iter().filter(|&&b| b == b'\n').count();
            shared.dropped.fetch_add(lines as u64, Ordering::Relaxed);
        }
        spare.clear();
        if stop {
            break;
        }
    }
}

#[derive(Clone)]
pub(crate) struct ByHandLayer(Arc<Shared>);

impl<S> tower::Layer<S> for ByHandLayer {
    type Service = ByHandService<S>;
    fn layer(&self, inner: S) -> ByHandService<S> {
        ByHandService {
            inner,
            shared: Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
pub(crate) struct ByHandService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// What the metrics and the access line need of the request.
struct Head {
    method: &'static str,
    path: Option<http::uri::PathAndQuery>,
    scheme: &'static str,
    route: Option<MatchedPath>,
    host: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    version: &'static str,
    request_size: Option<u64>,
    correlation: HeaderValue,
    trace: TraceId,
    span: SpanId,
    start: Instant,
}

thread_local! {
    /// The correlation id of the request running on this thread.
    static CURRENT: RefCell<Option<HeaderValue>> = const { RefCell::new(None) };
    /// The bytes generated ids' header values are cut from.
    static ID_BYTES: RefCell<bytes::BytesMut> = RefCell::new(bytes::BytesMut::new());
}

/// Runs `f` with `id` as the thread's current correlation id.
fn with_current<R>(id: &HeaderValue, f: impl FnOnce() -> R) -> R {
    let before = CURRENT.with_borrow_mut(|c| c.replace(id.clone()));
    let out = f();
    CURRENT.with_borrow_mut(|c| *c = before);
    out
}

/// A generated id's header value, cut from this thread's chunk: no
/// allocation until the chunk (16 KiB) is used up.
fn generated_value() -> HeaderValue {
    let id = CorrelationId::new_v4();
    let bytes = ID_BYTES.with_borrow_mut(|chunk| {
        if chunk.capacity() < id.len() {
            *chunk = bytes::BytesMut::with_capacity(16 << 10);
        }
        chunk.extend_from_slice(id.as_bytes());
        chunk.split().freeze()
    });
    HeaderValue::from_maybe_shared(bytes).expect("a UUID is a header value")
}

impl<S> tower::Service<Request> for ByHandService<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ByHandFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        if SKIP.contains(&req.uri().path()) {
            let fut = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req)));
            return ByHandFuture {
                fut: fut.ok(),
                end: None,
            };
        }
        let start = Instant::now();
        let incoming = HEADERS.iter().enumerate().find_map(|(i, name)| {
            req.headers()
                .get(name)
                .filter(|v| CorrelationId::is_valid(v.as_bytes()))
                .map(|v| (i, v.clone()))
        });
        let shared = &self.shared;
        let correlation = match incoming {
            Some((0, v)) => {
                shared.ids[1].fetch_add(1, Ordering::Relaxed);
                v
            }
            Some((_, v)) => {
                shared.ids[1].fetch_add(1, Ordering::Relaxed);
                req.headers_mut().insert(&HEADERS[0], v.clone());
                v
            }
            None => {
                shared.ids[0].fetch_add(1, Ordering::Relaxed);
                let v = generated_value();
                req.headers_mut().insert(&HEADERS[0], v.clone());
                v
            }
        };
        let trace = req
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| {
                let b = v.as_bytes();
                (b.len() == 55 && b.starts_with(b"00-"))
                    .then(|| TraceId::from_hex(&b[3..35]).ok())
                    .flatten()
            })
            .unwrap_or_else(TraceId::random);
        let method = obs::core::names::normalize_http_method(req.method().as_str());
        let version = match req.version() {
            http::Version::HTTP_09 => "0.9",
            http::Version::HTTP_10 => "1.0",
            http::Version::HTTP_2 => "2",
            http::Version::HTTP_3 => "3",
            _ => "1.1",
        };
        let head = Head {
            method,
            path: req.uri().path_and_query().cloned(),
            scheme: if req.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
                "https"
            } else {
                "http"
            },
            route: req.extensions().get::<MatchedPath>().cloned(),
            host: req.headers().get(http::header::HOST).cloned(),
            user_agent: req
                .headers()
                .get(http::header::USER_AGENT)
                .filter(|v| v.as_bytes().iter().all(|&b| (0x20..0x7f).contains(&b)))
                .cloned(),
            version,
            request_size: obs::core::headers::content_length(req.headers()),
            trace,
            span: SpanId::random(),
            start,
            correlation,
        };
        let active = shared.metrics.track_active(method);
        let fut = with_current(&head.correlation, || {
            std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
        });
        ByHandFuture {
            fut: fut.ok(),
            end: Some((head, active, Arc::clone(shared))),
        }
    }
}

pin_project_lite::pin_project! {
    pub(crate) struct ByHandFuture<F> {
        #[pin]
        fut: Option<F>,
        end: Option<(Head, obs::metrics::GaugeGuard, Arc<Shared>)>,
    }
}

impl<F, E> Future for ByHandFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = match (this.fut.as_pin_mut(), this.end.as_ref()) {
            (Some(fut), Some((head, ..))) => {
                ready!(with_current(&head.correlation, || caught_poll(fut, cx)))
            }
            (Some(fut), None) => ready!(caught_poll(fut, cx)),
            (None, _) => Ok(panicked()),
        };
        let Some((head, active, shared)) = this.end.take() else {
            return Poll::Ready(out);
        };
        let mut out = out;
        if let Ok(res) = &mut out {
            res.headers_mut()
                .insert(&HEADERS[0], head.correlation.clone());
            let status = res.status().as_u16();
            let size = obs::core::headers::response_body_size(res);
            let elapsed = head.start.elapsed();
            let route = head.route.as_ref().map_or("", MatchedPath::as_str);
            shared.metrics.record_response(
                head.method,
                route,
                Some(status),
                elapsed,
                head.request_size,
                size,
            );
            drop(active);
            write_line(&shared, &head, status, elapsed, size);
        }
        Poll::Ready(out)
    }
}

/// Polls `fut`; a panic in the poll answers 500.
fn caught_poll<F, E>(fut: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<Result<Response, E>>
where
    F: Future<Output = Result<Response, E>>,
{
    std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx)))
        .unwrap_or_else(|_| Poll::Ready(Ok(panicked())))
}

fn panicked() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

fn write_line(shared: &Shared, head: &Head, status: u16, elapsed: Duration, size: Option<u64>) {
    LINE.with_borrow_mut(|l| {
        l.clear();
        l.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(l);
        l.extend_from_slice(b"\",\"level\":\"");
        l.extend_from_slice(match status {
            500.. => b"ERROR",
            400.. => b"WARN",
            _ => b"INFO",
        });
        l.extend_from_slice(
            b"\",\"target\":\"obs::access\",\"message\":\"request finished\",\"http.response.status_code\":",
        );
        int(l, u64::from(status));
        l.extend_from_slice(b",\"duration_ms\":");
        millis(l, elapsed);
        if let Some(size) = head.request_size {
            l.extend_from_slice(b",\"http.request.body.size\":");
            int(l, size);
        }
        if let Some(size) = size {
            l.extend_from_slice(b",\"http.response.body.size\":");
            int(l, size);
        }
        raw(l, "http.request.method", head.method.as_bytes());
        field(
            l,
            "url.path",
            head.path.as_ref().map_or(b"/", |p| p.path().as_bytes()),
        );
        raw(l, "url.scheme", head.scheme.as_bytes());
        field(
            l,
            "http.route",
            head.route
                .as_ref()
                .map_or(b"", |r| r.as_str().as_bytes()),
        );
        if let Some(host) = &head.host {
            let host = host.as_bytes();
            let (address, port) = match host.iter().rposition(|&b| b == b':') {
                Some(i) if !host.ends_with(b"]") => (&host[..i], Some(&host[i + 1..])),
                _ => (host, None),
            };
            field(l, "server.address", address);
            if let Some(port) = port.filter(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit)) {
                l.extend_from_slice(b",\"server.port\":");
                l.extend_from_slice(port);
            }
        }
        if let Some(ua) = &head.user_agent {
            field(l, "user_agent.original", ua.as_bytes());
        }
        raw(l, "network.protocol.version", head.version.as_bytes());
        l.extend_from_slice(b",\"spans\":[\"http.server\"]");
        raw(l, "trace_id", head.trace.to_hex().as_bytes());
        raw(l, "span_id", head.span.to_hex().as_bytes());
        field(l, "correlation_id", head.correlation.as_bytes());
        field(l, "service.name", shared.service.as_bytes());
        l.extend_from_slice(b"}\n");
        let mut lines = shared.lines.lock().expect("not poisoned");
        shared.taken.fetch_add(1, Ordering::Relaxed);
        if lines.len() + l.len() > BUFFER_CAP {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            let before = lines.len();
            lines.extend_from_slice(l);
            if before < WAKE_AT && lines.len() >= WAKE_AT {
                shared.wake.notify_one();
            }
        }
    });
}

/// `elapsed` in milliseconds, to the nanosecond, without trailing zeros
/// (at least one decimal, as obs's float writer).
fn millis(out: &mut Vec<u8>, elapsed: Duration) {
    let nanos = elapsed.as_nanos() as u64;
    int(out, nanos / 1_000_000);
    out.push(b'.');
    let start = out.len();
    digits6(out, nanos % 1_000_000);
    while out.len() > start + 1 && out.last() == Some(&b'0') {
        out.pop();
    }
}

/// `v` (below a million) as six digits.
fn digits6(out: &mut Vec<u8>, v: u64) {
    for div in [100_000, 10_000, 1_000, 100, 10, 1] {
        out.push(b'0' + (v / div % 10) as u8);
    }
}

fn int(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `,"key":"value"`, a value that needs no escaping (an id, a constant).
fn raw(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(value);
    out.push(b'"');
}

/// `,"key":"value"`, the value escaped for JSON.
fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    if value
        .iter()
        .all(|&b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.extend_from_slice(value);
    } else {
        for &b in value {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0..0x20 | 0x7f.. => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 15)]);
                }
                _ => out.push(b),
            }
        }
    }
    out.push(b'"');
}

/// Now as RFC 3339 in UTC, to the microsecond.
fn timestamp(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = obs::core::units::civil_from_days(days);
    let two = |out: &mut Vec<u8>, v: u64| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    int(out, year as u64);
    out.push(b'-');
    two(out, u64::from(month));
    out.push(b'-');
    two(out, u64::from(day));
    out.push(b'T');
    two(out, rem / 3600);
    out.push(b':');
    two(out, rem % 3600 / 60);
    out.push(b':');
    two(out, rem % 60);
    out.push(b'.');
    digits6(out, u64::from(now.subsec_micros()));
    out.push(b'Z');
}
