//! The checker as an OTLP/HTTP receiver: `POST /v1/traces` with a protobuf
//! `ExportTraceServiceRequest` and `POST /v1/logs` with an
//! `ExportLogsServiceRequest` (gzip or not), decoded by a small protobuf
//! reader that keeps only what the rules need — ids, names and every string
//! value (attributes, events, status, bodies, resource). Bounded: at most
//! [`MAX_SPANS`] spans and [`MAX_LOGS`] log records are kept (the rest
//! counted), at most [`MAX_REQUEST`] bytes per request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::http::{dechunk, head_end, parse_headers};

/// Spans kept; later ones are counted in [`OtlpReceiver::dropped`].
pub const MAX_SPANS: usize = 100_000;
/// Log records kept; later ones are counted in [`OtlpReceiver::logs_dropped`].
pub const MAX_LOGS: usize = 100_000;
/// Largest request body accepted (before and after gzip).
pub const MAX_REQUEST: usize = 32 * 1024 * 1024;
/// Open connections served at once; more are refused (closed).
const MAX_CONNECTIONS: usize = 64;

/// A span as received: the fields the rules read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Span {
    /// Lowercase hex trace id.
    pub trace_id: String,
    /// Lowercase hex span id.
    pub span_id: String,
    /// Lowercase hex parent span id, empty for a root.
    pub parent_span_id: String,
    /// The span name.
    pub name: String,
    /// Every string found in the span, its events, status and resource, with
    /// the attribute key it was under (`name`, `status.message`, …).
    pub strings: Vec<(String, String)>,
}

/// A log record as received over OTLP: its ids (empty when it carries
/// none) and every string in it (`body`, attributes, `severity_text`,
/// `event_name`, resource).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRecord {
    /// Lowercase hex trace id, or empty.
    pub trace_id: String,
    /// Lowercase hex span id, or empty.
    pub span_id: String,
    /// Every string found in the record, with the key it was under.
    pub strings: Vec<(String, String)>,
}

/// A protobuf decode error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid OTLP protobuf: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

#[derive(Debug, Default)]
struct Shared {
    spans: Mutex<Vec<Span>>,
    dropped: AtomicU64,
    logs: Mutex<Vec<LogRecord>>,
    logs_dropped: AtomicU64,
    requests: AtomicU64,
    rejected: AtomicU64,
    connections: AtomicU64,
    stop: AtomicBool,
}

/// An OTLP/HTTP receiver of spans and log records on a loopback or
/// wildcard port. Stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl OtlpReceiver {
    /// Binds `addr` (port 0 picks a free one) and serves on a thread.
    pub fn bind(addr: impl std::net::ToSocketAddrs) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::Builder::new()
            .name("obs-check-otlp".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    if s.connections.load(Ordering::SeqCst) >= MAX_CONNECTIONS as u64 {
                        s.rejected.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    s.connections.fetch_add(1, Ordering::SeqCst);
                    let s2 = s.clone();
                    let spawned = std::thread::Builder::new()
                        .name("obs-check-otlp-conn".into())
                        .spawn(move || {
                            serve(conn, &s2);
                            s2.connections.fetch_sub(1, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        s.connections.fetch_sub(1, Ordering::SeqCst);
                        s.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })?;
        Ok(Self { addr, shared })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.shared
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Spans not kept because [`MAX_SPANS`] were held.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// `f` of the spans received so far, without copying them.
    pub(crate) fn with_spans<R>(&self, f: impl FnOnce(&[Span]) -> R) -> R {
        f(&self
            .shared
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// `f` of the log records received so far, without copying them.
    pub(crate) fn with_logs<R>(&self, f: impl FnOnce(&[LogRecord]) -> R) -> R {
        f(&self
            .shared
            .logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// The log records received so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        self.shared
            .logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Log records not kept because [`MAX_LOGS`] were held.
    pub fn logs_dropped(&self) -> u64 {
        self.shared.logs_dropped.load(Ordering::Relaxed)
    }

    /// Export requests decoded (spans and logs).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Requests refused (bad path, media type, body, or too many connections).
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::Relaxed)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Serves one keep-alive connection.
fn serve(mut conn: TcpStream, s: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 32 * 1024];
    loop {
        // Read one request.
        let (head_len, headers, body) = loop {
            if let Some(end) = head_end(&buf) {
                let head = String::from_utf8_lossy(&buf[..end - 4]).into_owned();
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap_or("").to_owned();
                let Ok(headers) = parse_headers(lines) else {
                    return respond(&mut conn, 400, "bad headers");
                };
                let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                let rest = &buf[end..];
                let body = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                    match dechunk(rest) {
                        Ok(Some(b)) => Some((b, rest.len())),
                        Ok(None) => None,
                        Err(_) => return respond(&mut conn, 400, "bad chunked body"),
                    }
                } else {
                    let len: usize = match get("content-length").map(|v| v.trim().parse()) {
                        None => 0,
                        Some(Ok(l)) => l,
                        Some(Err(_)) => return respond(&mut conn, 400, "bad content-length"),
                    };
                    if len > MAX_REQUEST {
                        s.rejected.fetch_add(1, Ordering::Relaxed);
                        return respond(&mut conn, 413, "request too large");
                    }
                    (rest.len() >= len).then(|| (rest[..len].to_vec(), len))
                };
                if let Some((body, used)) = body {
                    break (end + used, (request_line, headers), body);
                }
            }
            if buf.len() > MAX_REQUEST + 64 * 1024 {
                s.rejected.fetch_add(1, Ordering::Relaxed);
                return respond(&mut conn, 413, "request too large");
            }
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        buf.drain(..head_len);
        let (request_line, headers) = headers;
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        let mut parts = request_line.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let logs = match path.split('?').next() {
            Some("/v1/traces") if method == "POST" => false,
            Some("/v1/logs") if method == "POST" => true,
            _ => {
                s.rejected.fetch_add(1, Ordering::Relaxed);
                respond(
                    &mut conn,
                    404,
                    "only POST /v1/traces and POST /v1/logs are served",
                );
                continue;
            }
        };
        if !get("content-type").is_some_and(|t| t.starts_with("application/x-protobuf")) {
            s.rejected.fetch_add(1, Ordering::Relaxed);
            respond(&mut conn, 415, "only application/x-protobuf is accepted");
            continue;
        }
        let body = match get("content-encoding").as_deref() {
            None | Some("identity") => body,
            Some("gzip") => {
                let mut out = Vec::new();
                let r = flate2::read::GzDecoder::new(body.as_slice())
                    .take(MAX_REQUEST as u64 + 1)
                    .read_to_end(&mut out);
                if r.is_err() || out.len() > MAX_REQUEST {
                    s.rejected.fetch_add(1, Ordering::Relaxed);
                    respond(&mut conn, 400, "bad gzip body");
                    continue;
                }
                out
            }
            Some(_) => {
                s.rejected.fetch_add(1, Ordering::Relaxed);
                respond(&mut conn, 415, "unsupported content-encoding");
                continue;
            }
        };
        let decoded = if logs {
            decode_logs_export(&body).map(|r| keep(&s.logs, r, MAX_LOGS, &s.logs_dropped))
        } else {
            decode_export(&body).map(|r| keep(&s.spans, r, MAX_SPANS, &s.dropped))
        };
        match decoded {
            Ok(()) => {
                s.requests.fetch_add(1, Ordering::Relaxed);
                // An empty Export*ServiceResponse: full success.
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                if conn.write_all(head.as_bytes()).is_err() {
                    return;
                }
            }
            Err(e) => {
                s.rejected.fetch_add(1, Ordering::Relaxed);
                respond(&mut conn, 400, &e.to_string());
            }
        }
    }
}

/// Keeps `items` up to `max` held, counting the rest in `dropped`.
fn keep<T>(held: &Mutex<Vec<T>>, items: Vec<T>, max: usize, dropped: &AtomicU64) {
    let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
    for item in items {
        if held.len() < max {
            held.push(item);
        } else {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn respond(conn: &mut TcpStream, status: u16, msg: &str) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{msg}",
        msg.len()
    );
    let _ = conn.write_all(head.as_bytes());
}

// ------------------------------------------------------------ protobuf ---

/// A protobuf field: number and payload.
enum Field<'a> {
    Varint,
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| DecodeError("truncated varint".into()))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint longer than 10 bytes".into()))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError(format!(
                "field of {n} bytes with {} left",
                self.buf.len()
            )));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// The next field, `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, DecodeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        if num == 0 {
            return Err(DecodeError("field number 0".into()));
        }
        let f = match wire {
            0 => {
                self.varint()?;
                Field::Varint
            }
            1 => {
                self.take(8)?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| DecodeError("length overflows".into()))?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed
            }
            w => return Err(DecodeError(format!("unsupported wire type {w}"))),
        };
        Ok(Some((num, f)))
    }
}

/// Calls `f` for each field of `buf`.
fn fields<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(u64, Field<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut r = Reader { buf };
    while let Some((n, field)) = r.next()? {
        f(n, field)?;
    }
    Ok(())
}

fn text(b: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError("string is not UTF-8".into()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decodes an `ExportTraceServiceRequest`.
pub fn decode_export(buf: &[u8]) -> Result<Vec<Span>, DecodeError> {
    decode_resources(buf)
}

/// Decodes an `ExportLogsServiceRequest`.
pub fn decode_logs_export(buf: &[u8]) -> Result<Vec<LogRecord>, DecodeError> {
    decode_resources(buf)
}

/// What an export request carries per scope: a span or a log record, each
/// holding the strings the rules scan.
trait Item: Sized {
    /// Decodes one item (a `Span` or a `LogRecord` message).
    fn decode(buf: &[u8]) -> Result<Self, DecodeError>;
    /// Where its strings go (its resource's are added there too).
    fn strings(&mut self) -> &mut Vec<(String, String)>;
}

impl Item for Span {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        span(buf)
    }
    fn strings(&mut self) -> &mut Vec<(String, String)> {
        &mut self.strings
    }
}

impl Item for LogRecord {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        log_record(buf)
    }
    fn strings(&mut self) -> &mut Vec<(String, String)> {
        &mut self.strings
    }
}

/// The shape both export requests share: `1: repeated Resource{Spans,Logs}`,
/// each `{ 1: Resource { 1: repeated KeyValue }, 2: repeated Scope{Spans,Logs}
/// { 2: repeated item } }`. Each item is given its resource's strings.
fn decode_resources<T: Item>(buf: &[u8]) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::new();
    fields(buf, |n, f| {
        if let (1, Field::Bytes(rs)) = (n, f) {
            let mut resource = Vec::new();
            let mut items = Vec::new();
            fields(rs, |n, f| {
                match (n, f) {
                    (1, Field::Bytes(r)) => fields(r, |n, f| {
                        if let (1, Field::Bytes(kv)) = (n, f) {
                            key_value(kv, "resource.", &mut resource)?;
                        }
                        Ok(())
                    })?,
                    (2, Field::Bytes(scope)) => fields(scope, |n, f| {
                        if let (2, Field::Bytes(b)) = (n, f) {
                            items.push(T::decode(b)?);
                        }
                        Ok(())
                    })?,
                    _ => {}
                }
                Ok(())
            })?;
            for mut i in items {
                i.strings().extend_from_slice(&resource);
                out.push(i);
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// `LogRecord { 3: severity_text, 5: body, 6: attributes, 9: trace_id,
/// 10: span_id, 12: event_name }`.
fn log_record(buf: &[u8]) -> Result<LogRecord, DecodeError> {
    let mut r = LogRecord::default();
    fields(buf, |n, f| {
        match (n, f) {
            (3, Field::Bytes(b)) => r.strings.push(("severity_text".into(), text(b)?)),
            (5, Field::Bytes(b)) => any_value(b, "body", &mut r.strings, 0)?,
            (6, Field::Bytes(kv)) => key_value(kv, "", &mut r.strings)?,
            (9, Field::Bytes(b)) => r.trace_id = hex(b),
            (10, Field::Bytes(b)) => r.span_id = hex(b),
            (12, Field::Bytes(b)) => r.strings.push(("event_name".into(), text(b)?)),
            _ => {}
        }
        Ok(())
    })?;
    if !matches!(r.trace_id.len(), 0 | 32) || !matches!(r.span_id.len(), 0 | 16) {
        return Err(DecodeError(format!(
            "a log record has a trace id of {} and a span id of {} bytes",
            r.trace_id.len() / 2,
            r.span_id.len() / 2
        )));
    }
    Ok(r)
}

fn span(buf: &[u8]) -> Result<Span, DecodeError> {
    let mut s = Span::default();
    fields(buf, |n, f| {
        match (n, f) {
            (1, Field::Bytes(b)) => s.trace_id = hex(b),
            (2, Field::Bytes(b)) => s.span_id = hex(b),
            (3, Field::Bytes(b)) => s.strings.push(("trace_state".into(), text(b)?)),
            (4, Field::Bytes(b)) => s.parent_span_id = hex(b),
            (5, Field::Bytes(b)) => {
                s.name = text(b)?;
                s.strings.push(("name".into(), s.name.clone()));
            }
            (9, Field::Bytes(kv)) => key_value(kv, "", &mut s.strings)?,
            // 11: Event { 2: name, 3: attributes }
            (11, Field::Bytes(ev)) => fields(ev, |n, f| {
                match (n, f) {
                    (2, Field::Bytes(b)) => s.strings.push(("event.name".into(), text(b)?)),
                    (3, Field::Bytes(kv)) => key_value(kv, "event.", &mut s.strings)?,
                    _ => {}
                }
                Ok(())
            })?,
            // 13: Link { 4: attributes }
            (13, Field::Bytes(l)) => fields(l, |n, f| {
                if let (4, Field::Bytes(kv)) = (n, f) {
                    key_value(kv, "link.", &mut s.strings)?;
                }
                Ok(())
            })?,
            // 15: Status { 2: message }
            (15, Field::Bytes(st)) => fields(st, |n, f| {
                if let (2, Field::Bytes(b)) = (n, f) {
                    s.strings.push(("status.message".into(), text(b)?));
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    if s.trace_id.len() != 32 || s.span_id.len() != 16 {
        return Err(DecodeError(format!(
            "span {:?} has a trace id of {} and a span id of {} bytes",
            s.name,
            s.trace_id.len() / 2,
            s.span_id.len() / 2
        )));
    }
    Ok(s)
}

/// `KeyValue { 1: key, 2: AnyValue }`: pushes every string under it.
fn key_value(buf: &[u8], prefix: &str, out: &mut Vec<(String, String)>) -> Result<(), DecodeError> {
    let mut key = String::new();
    let mut value: Option<&[u8]> = None;
    fields(buf, |n, f| {
        match (n, f) {
            (1, Field::Bytes(b)) => key = text(b)?,
            (2, Field::Bytes(b)) => value = Some(b),
            _ => {}
        }
        Ok(())
    })?;
    if let Some(v) = value {
        any_value(v, &format!("{prefix}{key}"), out, 0)?;
    }
    Ok(())
}

/// `AnyValue`: string (1), array (5), kvlist (6), bytes (7) hold strings.
fn any_value(
    buf: &[u8],
    key: &str,
    out: &mut Vec<(String, String)>,
    depth: usize,
) -> Result<(), DecodeError> {
    if depth > 16 {
        return Err(DecodeError("attribute values nested deeper than 16".into()));
    }
    fields(buf, |n, f| {
        match (n, f) {
            (1, Field::Bytes(b)) => out.push((key.to_owned(), text(b)?)),
            (5, Field::Bytes(arr)) => fields(arr, |n, f| {
                if let (1, Field::Bytes(v)) = (n, f) {
                    any_value(v, key, out, depth + 1)?;
                }
                Ok(())
            })?,
            (6, Field::Bytes(list)) => fields(list, |n, f| {
                if let (1, Field::Bytes(kv)) = (n, f) {
                    key_value(kv, &format!("{key}."), out)?;
                }
                Ok(())
            })?,
            (7, Field::Bytes(b)) => {
                out.push((key.to_owned(), String::from_utf8_lossy(b).into_owned()))
            }
            (2 | 3, Field::Varint) | (4, Field::Fixed) => {}
            _ => {}
        }
        Ok(())
    })
}

/// POSTs an OTLP/HTTP protobuf body to `endpoint` + `path` (`/v1/traces`,
/// `/v1/logs`) with a 5 s deadline, as an exporter would; for tests that
/// feed a receiver. Returns the status code.
pub fn post(endpoint: &str, path: &str, body: &[u8]) -> Result<u16, crate::HttpError> {
    let url = crate::http::Url::parse(&format!("{endpoint}{path}"))?;
    let ct: &[u8] = b"application/x-protobuf";
    crate::http::request(
        "POST",
        &url,
        &[("content-type", ct)],
        body,
        Duration::from_secs(5),
    )
    .map(|r| r.status)
}

/// A minimal protobuf writer for building `ExportTraceServiceRequest`s in
/// tests (this crate's and users' own): only what [`decode_export`] reads.
#[derive(Debug, Default, Clone)]
pub struct SpanBuilder {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    attributes: Vec<(String, String)>,
}

impl SpanBuilder {
    /// A span with these ids and name.
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], name: &str) -> Self {
        Self {
            trace_id,
            span_id,
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// Sets the parent span id.
    pub fn parent(mut self, p: [u8; 8]) -> Self {
        self.parent = Some(p);
        self
    }

    /// Adds a string attribute.
    pub fn attr(mut self, k: &str, v: &str) -> Self {
        self.attributes.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Encodes spans as one `ExportTraceServiceRequest` (one resource, one scope).
    pub fn encode_request(spans: &[SpanBuilder]) -> Vec<u8> {
        let mut scope = Vec::new();
        for s in spans {
            let mut span = Vec::new();
            put_bytes(&mut span, 1, &s.trace_id);
            put_bytes(&mut span, 2, &s.span_id);
            if let Some(p) = s.parent {
                put_bytes(&mut span, 4, &p);
            }
            put_bytes(&mut span, 5, s.name.as_bytes());
            span.extend_from_slice(&[0x30, 0x02]); // kind = SERVER
            for (k, v) in &s.attributes {
                put_bytes(&mut span, 9, &key_string(k, v));
            }
            put_bytes(&mut scope, 2, &span);
        }
        export_request(&[], &scope)
    }
}

/// A minimal protobuf writer for `ExportLogsServiceRequest`s in tests:
/// only what [`decode_logs_export`] reads, plus a time and an INFO severity.
#[derive(Debug, Default, Clone)]
pub struct LogRecordBuilder {
    ids: Option<([u8; 16], [u8; 8])>,
    body: String,
    attributes: Vec<(String, String)>,
}

impl LogRecordBuilder {
    /// A record with this body and no ids.
    pub fn new(body: &str) -> Self {
        Self {
            body: body.to_owned(),
            ..Self::default()
        }
    }

    /// Sets the trace and span id.
    pub fn ids(mut self, trace_id: [u8; 16], span_id: [u8; 8]) -> Self {
        self.ids = Some((trace_id, span_id));
        self
    }

    /// Adds a string attribute.
    pub fn attr(mut self, k: &str, v: &str) -> Self {
        self.attributes.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Encodes records as one `ExportLogsServiceRequest` (one resource with
    /// `service.name = "fixture"`, one scope).
    pub fn encode_request(records: &[LogRecordBuilder]) -> Vec<u8> {
        let mut scope = Vec::new();
        for r in records {
            let mut rec = Vec::new();
            rec.push(0x09); // 1: time_unix_nano, fixed64
            rec.extend_from_slice(&1u64.to_le_bytes());
            rec.extend_from_slice(&[0x10, 0x09]); // 2: severity_number = INFO
            put_bytes(&mut rec, 3, b"INFO");
            put_bytes(&mut rec, 5, &string_value(&r.body));
            for (k, v) in &r.attributes {
                put_bytes(&mut rec, 6, &key_string(k, v));
            }
            if let Some((t, sp)) = &r.ids {
                put_bytes(&mut rec, 9, t);
                put_bytes(&mut rec, 10, sp);
            }
            put_bytes(&mut scope, 2, &rec);
        }
        export_request(&[("service.name", "fixture")], &scope)
    }
}

/// The envelope [`decode_resources`] reads: one resource (with these
/// string attributes, none when empty) holding one scope whose encoded
/// items (field 2) are `scope`.
fn export_request(resource: &[(&str, &str)], scope: &[u8]) -> Vec<u8> {
    let mut rs = Vec::new();
    if !resource.is_empty() {
        let mut r = Vec::new();
        for (k, v) in resource {
            put_bytes(&mut r, 1, &key_string(k, v));
        }
        put_bytes(&mut rs, 1, &r);
    }
    put_bytes(&mut rs, 2, scope);
    let mut req = Vec::new();
    put_bytes(&mut req, 1, &rs);
    req
}

/// `AnyValue { 1: string_value }`.
fn string_value(v: &str) -> Vec<u8> {
    let mut any = Vec::new();
    put_bytes(&mut any, 1, v.as_bytes());
    any
}

/// `KeyValue { 1: key, 2: AnyValue { 1: string_value } }`.
fn key_string(k: &str, v: &str) -> Vec<u8> {
    let mut kv = Vec::new();
    put_bytes(&mut kv, 1, k.as_bytes());
    put_bytes(&mut kv, 2, &string_value(v));
    kv
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_it_encodes() {
        let req = SpanBuilder::encode_request(&[
            SpanBuilder::new([1; 16], [2; 8], "GET /items")
                .parent([3; 8])
                .attr("http.route", "/items"),
            SpanBuilder::new([1; 16], [4; 8], "child"),
        ]);
        let spans = decode_export(&req).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].trace_id, "01".repeat(16));
        assert_eq!(spans[0].parent_span_id, "03".repeat(8));
        assert_eq!(spans[0].name, "GET /items");
        assert!(
            spans[0]
                .strings
                .contains(&("http.route".into(), "/items".into()))
        );
        assert_eq!(spans[1].parent_span_id, "");
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode_export(&[0x0a, 0x05, 0x01]).is_err());
        assert!(decode_export(&[0x0b]).is_err());
        assert!(decode_export(&[0xff; 12]).is_err());
        // A span without ids.
        let mut span = Vec::new();
        put_bytes(&mut span, 5, b"x");
        let mut scope = Vec::new();
        put_bytes(&mut scope, 2, &span);
        let req = export_request(&[], &scope);
        assert!(decode_export(&req).unwrap_err().0.contains("trace id"));
    }

    #[test]
    fn decodes_log_records() {
        let req = LogRecordBuilder::encode_request(&[
            LogRecordBuilder::new("request finished")
                .ids([1; 16], [2; 8])
                .attr("url.path", "/items"),
            LogRecordBuilder::new("started"),
        ]);
        let logs = decode_logs_export(&req).unwrap();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].trace_id, "01".repeat(16));
        assert_eq!(logs[0].span_id, "02".repeat(8));
        for want in [
            ("body", "request finished"),
            ("url.path", "/items"),
            ("severity_text", "INFO"),
            ("resource.service.name", "fixture"),
        ] {
            assert!(
                logs[0].strings.contains(&(want.0.into(), want.1.into())),
                "{want:?} in {:?}",
                logs[0].strings
            );
        }
        assert_eq!(
            (logs[1].trace_id.as_str(), logs[1].span_id.as_str()),
            ("", "")
        );
        // A trace id of the wrong length is refused, not kept half-read.
        let mut bad = Vec::new();
        put_bytes(&mut bad, 9, &[1; 5]);
        let mut scope = Vec::new();
        put_bytes(&mut scope, 2, &bad);
        let req = export_request(&[], &scope);
        assert!(
            decode_logs_export(&req)
                .unwrap_err()
                .0
                .contains("trace id of 5")
        );
    }

    #[test]
    fn receives_logs_over_http() {
        let rx = OtlpReceiver::bind("127.0.0.1:0").unwrap();
        let body =
            LogRecordBuilder::encode_request(
                &[LogRecordBuilder::new("hello").ids([3; 16], [4; 8])],
            );
        let post = |path: &str, body: &[u8]| post(&rx.endpoint(), path, body).unwrap();
        assert_eq!(post("/v1/logs", &body), 200);
        assert_eq!(rx.logs().len(), 1);
        assert_eq!(rx.logs()[0].trace_id, "03".repeat(16));
        assert!(rx.spans().is_empty());
        // Metrics are not taken: refused and counted.
        assert_eq!(post("/v1/metrics", b""), 404);
        assert_eq!((rx.requests(), rx.rejected(), rx.logs_dropped()), (1, 1, 0));
    }

    #[test]
    fn receives_over_http() {
        let rx = OtlpReceiver::bind("127.0.0.1:0").unwrap();
        let body = SpanBuilder::encode_request(&[SpanBuilder::new([9; 16], [8; 8], "s")]);
        let url = crate::http::Url::parse(&format!("{}/v1/traces", rx.endpoint())).unwrap();
        let ct: &[u8] = b"application/x-protobuf";
        let r = crate::http::request(
            "POST",
            &url,
            &[("content-type", ct)],
            &body,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.status, 200);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        let gz = gz.finish().unwrap();
        let r = crate::http::request(
            "POST",
            &url,
            &[("content-type", ct), ("content-encoding", b"gzip")],
            &gz,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(rx.spans().len(), 2);
        let r = crate::http::request(
            "POST",
            &url,
            &[("content-type", b"application/json")],
            b"{}",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.status, 415);
        let r = crate::http::request(
            "POST",
            &url,
            &[("content-type", ct)],
            &[0x0b],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.status, 400);
        assert_eq!((rx.requests(), rx.rejected()), (2, 2));
    }
}
