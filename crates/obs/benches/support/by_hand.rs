//! The `by-hand` stack: what `server_layer()` does for a request, written
//! out by hand in one tower service, with no `tracing`, no layer stack and
//! no configuration — the least a request can cost with obs's behaviours.
//! It uses obs's own primitives where obs has one (random ids, the RED
//! metric set) and writes the rest directly:
//!
//! - the correlation id: read from `x-correlation-id` or generated (a UUID
//!   v4), set on the request, echoed on the response;
//! - a trace id and a span id, made for the request;
//! - RED metrics: the active-requests gauge, the duration histogram by
//!   method, route and status, the response body size;
//! - catch-panic: a panicking handler answers 500;
//! - the access line, byte for byte the shape of obs's (17 fields: the
//!   timestamp, level, target, message, status, duration, response size,
//!   the request's method, path, scheme, route, user agent and protocol,
//!   the span list, the three ids and the service), into a bounded buffer a
//!   writer thread empties (every millisecond, or when an eighth full), a
//!   line that does not fit counted as dropped.
//!
//! It has no span a user's events could join, no sampling, no export, no
//! error scope, no filters, no redaction, no runtime levels: it is a
//! measure, not a product. `cargo xtask instructions` counts it beside the
//! others: the difference to obs is what obs's composition costs over its
//! behaviours.

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

/// The writer is woken when the buffer passes this (otherwise it looks
/// every millisecond).
const WAKE_AT: usize = BUFFER_CAP / 8;

const CORRELATION: HeaderName = HeaderName::from_static("x-correlation-id");

struct Shared {
    metrics: HttpServerMetrics,
    service: &'static str,
    lines: Mutex<Vec<u8>>,
    wake: Condvar,
    dropped: AtomicU64,
    /// Lines taken into the buffer (all written by the time the writer
    /// stops).
    written: AtomicU64,
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
    pub(crate) fn new(
        service: &'static str,
        mut out: impl std::io::Write + Send + 'static,
    ) -> Self {
        let registry = obs::metrics::Registry::new();
        let shared = Arc::new(Shared {
            metrics: HttpServerMetrics::new(&registry).expect("a fresh registry"),
            service,
            lines: Mutex::new(Vec::with_capacity(BUFFER_CAP)),
            wake: Condvar::new(),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let mut spare = Vec::with_capacity(BUFFER_CAP);
                loop {
                    let stop = shared.stop.load(Ordering::Acquire);
                    {
                        let mut lines = shared.lines.lock().expect("not poisoned");
                        if lines.is_empty() && !stop {
                            lines = shared
                                .wake
                                .wait_timeout(lines, Duration::from_millis(1))
                                .expect("not poisoned")
                                .0;
                        }
                        std::mem::swap(&mut *lines, &mut spare);
                    }
                    if out.write_all(&spare).and_then(|()| out.flush()).is_err() {
                        // Lines the sink refused are lost, and counted.
                        let lines = spare.iter().filter(|&&b| b == b'\n').count();
                        shared.written.fetch_sub(lines as u64, Ordering::Relaxed);
                        shared.dropped.fetch_add(lines as u64, Ordering::Relaxed);
                    }
                    spare.clear();
                    if stop {
                        break;
                    }
                }
            })
        };
        Self {
            shared,
            writer: Some(writer),
        }
    }

    pub(crate) fn layer(&self) -> ByHandLayer {
        ByHandLayer(Arc::clone(&self.shared))
    }

    /// Stops the writer once it wrote every line: (written, dropped).
    pub(crate) fn finish(mut self) -> (u64, u64) {
        self.stop();
        (
            self.shared.written.load(Ordering::Relaxed),
            self.shared.dropped.load(Ordering::Relaxed),
        )
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(w) = self.writer.take() {
            w.join().expect("the writer does not panic");
        }
    }
}

impl Drop for ByHand {
    fn drop(&mut self) {
        self.stop();
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

/// What the access line needs of the request.
struct Head {
    method: &'static str,
    path: Option<http::uri::PathAndQuery>,
    route: Option<MatchedPath>,
    user_agent: Option<HeaderValue>,
    version: &'static str,
    correlation: HeaderValue,
    trace: TraceId,
    span: SpanId,
    start: Instant,
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
        let start = Instant::now();
        let correlation = req
            .headers()
            .get(CORRELATION)
            .filter(|v| CorrelationId::is_valid(v.as_bytes()))
            .cloned()
            .unwrap_or_else(|| {
                HeaderValue::from_str(CorrelationId::new_v4().as_str())
                    .expect("a UUID is a header value")
            });
        req.headers_mut().insert(CORRELATION, correlation.clone());
        let method = method_str(req.method());
        let head = Head {
            method,
            path: req.uri().path_and_query().cloned(),
            route: req.extensions().get::<MatchedPath>().cloned(),
            user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
            version: if req.version() == http::Version::HTTP_2 {
                "2"
            } else {
                "1.1"
            },
            correlation,
            trace: TraceId::random(),
            span: SpanId::random(),
            start,
        };
        let active = self.shared.metrics.track_active(method);
        let fut = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req)));
        ByHandFuture {
            fut: fut.ok(),
            end: Some((head, active, Arc::clone(&self.shared))),
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
        let out = match this.fut.as_pin_mut() {
            Some(fut) => match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
                Ok(p) => ready!(p),
                Err(_) => Ok(panicked()),
            },
            None => Ok(panicked()),
        };
        let Some((head, active, shared)) = this.end.take() else {
            return Poll::Ready(out);
        };
        let mut out = out;
        if let Ok(res) = &mut out {
            res.headers_mut()
                .insert(CORRELATION, head.correlation.clone());
            let status = res.status().as_u16();
            let size = http_body::Body::size_hint(res.body()).exact();
            let elapsed = head.start.elapsed();
            let route = head.route.as_ref().map_or("", MatchedPath::as_str);
            shared
                .metrics
                .record_response(head.method, route, Some(status), elapsed, None, size);
            drop(active);
            write_line(&shared, &head, status, elapsed, size);
        }
        Poll::Ready(out)
    }
}

fn panicked() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

fn method_str(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "_OTHER",
    }
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
        let nanos = elapsed.as_nanos() as u64;
        int(l, nanos / 1_000_000);
        l.push(b'.');
        digits6(l, nanos % 1_000_000);
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
        raw(l, "url.scheme", b"http");
        if let Some(route) = &head.route {
            field(l, "http.route", route.as_str().as_bytes());
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
        if lines.len() + l.len() > BUFFER_CAP {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            let before = lines.len();
            lines.extend_from_slice(l);
            shared.written.fetch_add(1, Ordering::Relaxed);
            if before < WAKE_AT && lines.len() >= WAKE_AT {
                shared.wake.notify_one();
            }
        }
    });
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
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let two = |out: &mut Vec<u8>, v: u64| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    int(out, year as u64);
    out.push(b'-');
    two(out, month as u64);
    out.push(b'-');
    two(out, day as u64);
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
