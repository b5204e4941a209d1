//! Tower layers for HTTP servers and clients (`http` 1 types).
//!
//! [`TraceServerLayer`] opens a server span per request named
//! `{method} {route}`, parented by the incoming `traceparent` (an invalid one
//! restarts the trace), with the HTTP semantic-convention attributes; 5xx
//! responses and service errors mark it as failed, 4xx do not.
//! [`TraceClientLayer`] opens a client span per outgoing request and injects
//! its context (`traceparent`, `tracestate`, `baggage`) into the request.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Method, Request, Response, Uri};
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;

use crate::context::{current_baggage, in_remote_context_recorded, span_context};
use crate::propagation::Propagators;
use crate::raw::{RawStr, RawValue};

type RouteFn = Arc<dyn Fn(&Uri, &http::Extensions) -> Option<Cow<'static, str>> + Send + Sync>;

/// The semconv method value: the known methods as-is, others `_OTHER`.
fn method_str(m: &Method) -> &'static str {
    obs_core::names::normalize_http_method(m.as_str())
}

fn host_port<B>(req: &Request<B>) -> (Option<&str>, Option<u16>) {
    split_authority(req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    }))
}

/// The headers a server span reads, found in one pass over the request's
/// headers (a lookup by name hashes the name and probes the map, once per
/// name): the first value of each, as text.
struct SpanHeaders<'a> {
    host: Option<&'a str>,
    user_agent: Option<&'a str>,
    forwarded_for: Option<&'a str>,
}

impl<'a> SpanHeaders<'a> {
    fn scan(headers: &'a http::HeaderMap) -> Self {
        // The first value of each name decides, text or not, as `get`
        // followed by `to_str` would.
        let mut first: [Option<Option<&'a str>>; 3] = [None; 3];
        for (name, value) in headers {
            let i = if name == http::header::HOST {
                0
            } else if name == http::header::USER_AGENT {
                1
            } else if name == X_FORWARDED_FOR {
                2
            } else {
                continue;
            };
            if first[i].is_none() {
                first[i] = Some(value.to_str().ok());
            }
        }
        let [host, user_agent, forwarded_for] = first.map(Option::flatten);
        Self {
            host,
            user_agent,
            forwarded_for,
        }
    }
}

/// `host[:port]`, `[v6][:port]`, after any `userinfo@`.
fn split_authority(authority: Option<&str>) -> (Option<&str>, Option<u16>) {
    authority.map_or((None, None), |a| {
        let (host, port) = obs_core::headers::split_authority(a);
        (Some(host), port)
    })
}

/// The server layer. Clone-cheap.
///
/// ```
/// use obs_trace::tower::TraceServerLayer;
/// let layer = TraceServerLayer::new()
///     .route_fn(|uri, _ext| uri.path().starts_with("/items/").then(|| "/items/{id}".into()));
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct TraceServerLayer {
    propagators: Propagators,
    route: Option<RouteFn>,
}

impl fmt::Debug for TraceServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceServerLayer")
            .field("propagators", &self.propagators)
            .field("route_fn", &self.route.is_some())
            .finish()
    }
}

impl Default for TraceServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceServerLayer {
    /// W3C Trace Context and Baggage; the route from axum's `MatchedPath`
    /// when the `axum` feature is on.
    pub fn new() -> Self {
        Self {
            propagators: Propagators::default(),
            route: None,
        }
    }

    /// Uses these propagation formats (see
    /// [`TracerProvider::propagators`](crate::TracerProvider::propagators)).
    pub fn propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// Computes the route template (`/items/{id}`, never the raw path) of a
    /// request; tried before the request's `obs_core::RouteTemplate` and
    /// axum's `MatchedPath`. Prefer inserting an `obs_core::RouteTemplate`
    /// extension: that one hook also reaches the metrics, error reports and
    /// the access line; this function only names the span.
    pub fn route_fn(
        mut self,
        f: impl Fn(&Uri, &http::Extensions) -> Option<Cow<'static, str>> + Send + Sync + 'static,
    ) -> Self {
        self.route = Some(Arc::new(f));
        self
    }

    fn route<'r, B>(&self, req: &'r Request<B>) -> Option<Cow<'r, str>> {
        if let Some(f) = &self.route
            && let Some(r) = f(req.uri(), req.extensions())
        {
            return Some(r);
        }
        if let Some(t) = req.extensions().get::<obs_core::RouteTemplate>() {
            return Some(Cow::Borrowed(t.as_str()));
        }
        #[cfg(feature = "axum")]
        if let Some(m) = req.extensions().get::<axum::extract::MatchedPath>() {
            return Some(Cow::Borrowed(m.as_str()));
        }
        None
    }

    /// The server span for `req` (not entered): what the service does.
    /// Every attribute known before the handler runs is recorded at
    /// creation, so the layers see one new span instead of a span and
    /// a `record` per attribute; nothing here allocates.
    pub fn make_span<B>(&self, req: &Request<B>) -> tracing::Span {
        self.server_span(req).0
    }

    /// [`make_span`](Self::make_span), and whether this crate's layer
    /// records the span for export (`None` when it did not see it).
    fn server_span<B>(&self, req: &Request<B>) -> (tracing::Span, Option<bool>) {
        let method = method_str(req.method());
        let route = self.route(req);
        let headers = SpanHeaders::scan(req.headers());
        let (host, port) =
            split_authority(req.uri().authority().map(|a| a.as_str()).or(headers.host));
        let extracted = self.propagators.extract_headers(req.headers());
        let scheme = req.uri().scheme_str().unwrap_or("http");
        let user_agent = headers.user_agent;
        let client = client_address(req, headers.forwarded_for);
        let version = match req.version() {
            http::Version::HTTP_09 => Some("0.9"),
            http::Version::HTTP_10 => Some("1.0"),
            http::Version::HTTP_11 => Some("1.1"),
            http::Version::HTTP_2 => Some("2"),
            http::Version::HTTP_3 => Some("3"),
            _ => None,
        };
        let name = SpanName {
            method,
            route: route.as_deref(),
        };
        in_remote_context_recorded(&extracted, || {
            tracing::info_span!(
                "http.server",
                otel.name = %name,
                otel.kind = "server",
                http.request.method = method,
                url.path = req.uri().path(),
                url.scheme = scheme,
                http.route = route.as_deref(),
                http.response.status_code = Empty,
                server.address = host,
                server.port = port.map(i64::from),
                client.address = client.as_ref().map(ClientAddress::as_str),
                user_agent.original = user_agent,
                network.protocol.version = version,
                error.type = Empty,
                otel.status_code = Empty,
            )
        })
    }
}

/// `{method} {route}`, or the method alone, written when a layer reads it.
struct SpanName<'a> {
    method: &'a str,
    route: Option<&'a str>,
}

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Straight writes: `write!` would run the format-string machinery
        // for every sampled server span.
        f.write_str(self.method)?;
        if let Some(r) = self.route {
            f.write_str(" ")?;
            f.write_str(r)?;
        }
        Ok(())
    }
}

/// The client's address: the first `X-Forwarded-For` hop, else the peer,
/// recorded as a string. A peer's address is written out once, here: as a
/// `Display` value each layer that records the span would run the
/// formatting machinery on it again.
enum ClientAddress<'a> {
    Forwarded(&'a str),
    Peer(AddrText),
}

impl ClientAddress<'_> {
    fn as_str(&self) -> &str {
        match self {
            ClientAddress::Forwarded(s) => s,
            ClientAddress::Peer(t) => t.as_str(),
        }
    }
}

/// An IP address as text, on the stack: the longest (an IPv6 address
/// ending in a dotted IPv4 one) is 45 bytes.
struct AddrText {
    len: u8,
    buf: [u8; 45],
}

impl AddrText {
    fn new(ip: std::net::IpAddr) -> Self {
        let mut t = AddrText {
            len: 0,
            buf: [0; 45],
        };
        match ip {
            // Four octets by hand: the common case, without `fmt`.
            std::net::IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    if octet >= 100 {
                        t.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        t.push(b'0' + octet / 10 % 10);
                    }
                    t.push(b'0' + octet % 10);
                }
            }
            // IPv6's text form has its own rules (the longest run of zero
            // groups elided, an embedded IPv4 address): std's.
            std::net::IpAddr::V6(v6) => {
                let _ = fmt::Write::write_fmt(&mut t, format_args!("{v6}"));
            }
        }
        t
    }

    #[inline]
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII is ever written (digits, dots, hex digits, colons).
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Write for AddrText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = usize::from(self.len);
        let Some(room) = self.buf.get_mut(start..start + s.len()) else {
            return Err(fmt::Error);
        };
        room.copy_from_slice(s.as_bytes());
        self.len += s.len() as u8;
        Ok(())
    }
}

/// Parsed once: a `&str` name is parsed and checked on every lookup.
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

fn client_address<'a, B>(
    req: &'a Request<B>,
    forwarded_for: Option<&'a str>,
) -> Option<ClientAddress<'a>> {
    if let Some(xff) = forwarded_for
        && let Some(first) = xff
            .split(',')
            .next()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    {
        return Some(ClientAddress::Forwarded(first));
    }
    if let Some(addr) = req.extensions().get::<std::net::SocketAddr>() {
        return Some(ClientAddress::Peer(AddrText::new(addr.ip())));
    }
    #[cfg(feature = "axum")]
    if let Some(ci) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        return Some(ClientAddress::Peer(AddrText::new(ci.0.ip())));
    }
    None
}

impl<S> Layer<S> for TraceServerLayer {
    type Service = TraceServer<S>;
    fn layer(&self, inner: S) -> TraceServer<S> {
        TraceServer {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`TraceServerLayer`].
#[derive(Clone, Debug)]
pub struct TraceServer<S> {
    inner: S,
    layer: TraceServerLayer,
}

impl<S, B, RB> Service<Request<B>> for TraceServer<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = TracedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (span, recorded) = self.layer.server_span(&req);
        // The status goes to the span's readers: the exporter when the span
        // is recorded, and whatever other layer may read it. When the span is
        // not recorded and obs's layers alone read spans, nobody would: the
        // access line carries the status itself (see
        // `obs_core::record::spans_read_by_obs_only`).
        let obs_only = obs_core::record::spans_read_by_obs_only();
        let record = match (obs_only, recorded) {
            (true, Some(false)) => Outcome::Skip,
            (true, Some(true)) => Outcome::Recording,
            _ => Outcome::Span,
        };
        // With obs's layers alone, the span's method, route and path reach
        // every line written in it: an access line may leave them out.
        let head_on_span = obs_only && !span.is_disabled();
        // Guards rather than a closure: the stack's future is not moved
        // back out through it.
        let inner = {
            let _g = span.enter();
            let _head = obs_core::record::RequestHeadOnSpan::set(head_on_span);
            self.inner.call(req)
        };
        TracedFuture {
            inner,
            span,
            client: false,
            record,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of the traced services: polls inside the span
    /// and records the outcome.
    pub struct TracedFuture<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
        client: bool,
        // Where the outcome is recorded.
        record: Outcome,
    }
}

/// Where a traced request's outcome (status code, error type, span status)
/// is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Nowhere: an unrecorded span only obs's layers read (the access line
    /// carries the status itself).
    Skip,
    /// On the span (`Span::record`), for every layer that reads it.
    Span,
    /// Straight into the recording for export: a recorded span only obs's
    /// layers read. The log layer would render the fields into the span for
    /// lines the request no longer writes (its access line is written
    /// first), and an unrecorded span's lines never carry them either.
    Recording,
}

impl<F> fmt::Debug for TracedFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedFuture")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for TracedFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _g = this.span.enter();
        let out = ready!(this.inner.poll(cx));
        if *this.record == Outcome::Skip {
            return Poll::Ready(out);
        }
        let status = out.as_ref().ok().map(|resp| resp.status());
        let error_type = match &status {
            // Servers fail on 5xx only; clients on every 4xx and 5xx.
            Some(s) if s.is_server_error() || (*this.client && s.is_client_error()) => {
                Some(s.as_str())
            }
            Some(_) => None,
            None => Some(std::any::type_name::<E>()),
        };
        let code = status.map(|s| s.as_u16());
        if *this.record == Outcome::Recording {
            // The fields `Span::record` below would record, in its order.
            let status_code =
                code.map(|c| ("http.response.status_code", RawValue::I64(i64::from(c))));
            let failure = error_type.into_iter().flat_map(|e| {
                [
                    ("error.type", RawValue::Str(RawStr::new(e))),
                    ("otel.status_code", RawValue::Str(RawStr::new("error"))),
                ]
            });
            if crate::layer::record_for_export(this.span, status_code.into_iter().chain(failure)) {
                return Poll::Ready(out);
            }
        }
        if let Some(code) = code {
            this.span
                .record("http.response.status_code", i64::from(code));
        }
        if let Some(e) = error_type {
            this.span.record("error.type", e);
            this.span.record("otel.status_code", "error");
        }
        Poll::Ready(out)
    }
}

/// The client layer: a client span per request and context injection.
///
/// ```
/// use obs_trace::tower::TraceClientLayer;
/// let layer = TraceClientLayer::new();
/// # let _ = layer;
/// ```
#[derive(Clone, Debug, Default)]
pub struct TraceClientLayer {
    propagators: Propagators,
}

impl TraceClientLayer {
    /// W3C Trace Context and Baggage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses these propagation formats.
    pub fn propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = propagators;
        self
    }
}

impl<S> Layer<S> for TraceClientLayer {
    type Service = TraceClient<S>;
    fn layer(&self, inner: S) -> TraceClient<S> {
        TraceClient {
            inner,
            propagators: self.propagators,
        }
    }
}

/// The service of [`TraceClientLayer`].
#[derive(Clone, Debug)]
pub struct TraceClient<S> {
    inner: S,
    propagators: Propagators,
}

/// `url.full` without credentials and with secrets in the query redacted.
fn full_url(uri: &Uri) -> String {
    url_full(
        uri.scheme_str(),
        uri.authority().map(|a| a.as_str()),
        uri.path(),
        uri.query(),
    )
}

/// `url.full` from its parts: the credentials of `authority` dropped, secrets
/// in the query redacted.
pub fn url_full(
    scheme: Option<&str>,
    authority: Option<&str>,
    path: &str,
    query: Option<&str>,
) -> String {
    let mut out = String::with_capacity(64);
    if let Some(s) = scheme {
        out.push_str(s);
        out.push_str("://");
    }
    if let Some(a) = authority {
        out.push_str(a.rsplit('@').next().unwrap_or(a));
    }
    out.push_str(path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(&obs_core::redact(q));
    }
    out
}

/// Opens the client span of an outgoing HTTP call (kind CLIENT, named for
/// the method, with the semantic-convention attributes). What
/// [`TraceClientLayer`] does per request, for clients that are not `tower`
/// services (reqwest middleware): write its context into the request with
/// [`inject_client_context`], and finish it with [`record_client_outcome`].
pub fn client_span(
    method: &Method,
    url_full: &str,
    host: Option<&str>,
    port: Option<u16>,
) -> tracing::Span {
    let method = method_str(method);
    tracing::info_span!(
        "http.client",
        otel.name = method,
        otel.kind = "client",
        http.request.method = method,
        url.full = url_full,
        server.address = host,
        server.port = port.map(i64::from),
        http.response.status_code = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

/// Writes the trace context (and baggage) of a client span into the
/// outgoing request's headers with `propagators`.
pub fn inject_client_context(
    span: &tracing::Span,
    propagators: &Propagators,
    headers: &mut http::HeaderMap,
) {
    if let Some(cx) = span_context(span) {
        let baggage = {
            let _g = span.enter();
            current_baggage()
        };
        propagators.inject_headers(&cx, baggage.as_deref(), headers);
    }
}

/// Records how a client call ended on its span: the status code (every 4xx
/// and 5xx is an error for a client), or `error_type` when no response came.
pub fn record_client_outcome(
    span: &tracing::Span,
    status: Option<http::StatusCode>,
    error_type: &str,
) {
    match status {
        Some(status) => {
            span.record("http.response.status_code", i64::from(status.as_u16()));
            if status.as_u16() >= 400 {
                span.record("error.type", status.as_str());
                span.record("otel.status_code", "error");
            }
        }
        None => {
            span.record("error.type", error_type);
            span.record("otel.status_code", "error");
        }
    }
}

impl<S, B, RB> Service<Request<B>> for TraceClient<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = TracedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let span = {
            let (host, port) = host_port(&req);
            client_span(req.method(), &full_url(req.uri()), host, port)
        };
        inject_client_context(&span, &self.propagators, req.headers_mut());
        let fut = {
            let _g = span.enter();
            self.inner.call(req)
        };
        TracedFuture {
            inner: fut,
            span,
            client: true,
            record: Outcome::Span,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer address's text is std's `Display`, for every IPv4 address
    /// shape and IPv6 ones (the longest included).
    #[test]
    fn peer_addresses_read_as_display_writes_them() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let mut ips: Vec<IpAddr> = vec![
            Ipv4Addr::new(0, 0, 0, 0).into(),
            Ipv4Addr::new(255, 255, 255, 255).into(),
            Ipv4Addr::new(10, 100, 9, 99).into(),
            Ipv6Addr::LOCALHOST.into(),
            Ipv6Addr::UNSPECIFIED.into(),
            "2001:db8::8a2e:370:7334".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            "::ffff:255.255.255.255".parse().unwrap(),
            "0:0:0:0:0:ffff:192.0.2.1".parse().unwrap(),
        ];
        for a in 0..=255u8 {
            ips.push(Ipv4Addr::new(a, a.wrapping_mul(7), a / 3, 255 - a).into());
        }
        for ip in ips {
            assert_eq!(AddrText::new(ip).as_str(), ip.to_string());
        }
    }

    /// One pass finds what a lookup by name would: the first value of each
    /// name, absent when that value is not text.
    #[test]
    fn span_headers_read_as_lookups_do() {
        let mut h = http::HeaderMap::new();
        h.append("x-other", "1".parse().unwrap());
        h.append(http::header::USER_AGENT, "first/1".parse().unwrap());
        h.append(http::header::USER_AGENT, "second/2".parse().unwrap());
        h.append(
            X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"\xff10.0.0.1").unwrap(),
        );
        h.append(X_FORWARDED_FOR, "10.0.0.2".parse().unwrap());
        h.append(http::header::HOST, "".parse().unwrap());
        let s = SpanHeaders::scan(&h);
        let lookup = |n| h.get(n).and_then(|v: &http::HeaderValue| v.to_str().ok());
        assert_eq!(s.user_agent, Some("first/1"));
        assert_eq!(s.user_agent, lookup(http::header::USER_AGENT));
        assert_eq!(s.forwarded_for, None);
        assert_eq!(s.forwarded_for, lookup(X_FORWARDED_FOR));
        assert_eq!(s.host, Some(""));
        let empty = http::HeaderMap::new();
        let s = SpanHeaders::scan(&empty);
        assert!(s.host.is_none() && s.user_agent.is_none() && s.forwarded_for.is_none());
        assert_eq!(
            split_authority(Some("u@[::1]:8080")),
            (Some("::1"), Some(8080))
        );
        assert_eq!(
            split_authority(Some("example.com")),
            (Some("example.com"), None)
        );
    }
}
