//! OTLP span exporters: HTTP/protobuf (feature `otlp-http`) and gRPC
//! (feature `otlp-grpc`).
//!
//! Requests are encoded by hand ([`encode_request`], on obs-core's protobuf
//! wire primitives, straight into one buffer); [`to_request`] builds the
//! same request as the official `opentelemetry-proto` types, and the tests
//! check the two agree byte for byte. The bytes go out through obs-core's
//! OTLP transport (`obs_core::otlp::Transport`), the one obs-log's log
//! exporter uses too. It owns a single-threaded tokio runtime that lives on
//! the exporter thread, so it never depends on (or blocks) the
//! application's runtime.
//!
//! With the `gzip` feature both exporters can compress their requests
//! ([`Compression::Gzip`](crate::Compression), `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`):
//! HTTP/protobuf gzips the body and sends `Content-Encoding: gzip`; gRPC
//! gzips each message, sets its compressed flag and sends
//! `grpc-encoding: gzip`.
//!
//! With the `tls` feature both exporters speak TLS to `https://` endpoints
//! (rustls, see [`tls`](crate::tls)): the HTTP exporter offers ALPN
//! `http/1.1`, the gRPC exporter `h2`. A handshake that fails is an
//! [`Error::Tls`](crate::Error::Tls) naming the peer and the cause.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use obs_core::Resource;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
#[cfg(test)]
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue as PbKeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span as PbSpan, Status as PbStatus, span, status,
};

use crate::raw::Recording;
use crate::span::{FinishedSpan, KeyValue, SpanKind, Status, Value};

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn pb_value(v: &Value) -> AnyValue {
    AnyValue {
        value: Some(match v {
            Value::Bool(b) => any_value::Value::BoolValue(*b),
            Value::I64(i) => any_value::Value::IntValue(*i),
            Value::F64(f) => any_value::Value::DoubleValue(*f),
            Value::Str(s) => any_value::Value::StringValue(s.to_string()),
        }),
    }
}

fn pb_kv(kv: &KeyValue) -> PbKeyValue {
    PbKeyValue {
        key: kv.key.to_string(),
        value: Some(pb_value(&kv.value)),
        ..Default::default()
    }
}

fn pb_str(k: &str, v: &str) -> PbKeyValue {
    PbKeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_owned())),
        }),
        ..Default::default()
    }
}

// W3C flags in the low byte; bits 8-9 say whether the parent is known to be
// remote (OTLP 1.4 `SpanFlags`).
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn pb_span(s: &FinishedSpan) -> PbSpan {
    let mut flags = u32::from(s.trace_flags.to_byte()) | HAS_IS_REMOTE;
    if s.parent_is_remote {
        flags |= IS_REMOTE;
    }
    PbSpan {
        trace_id: s.trace_id.as_bytes().to_vec(),
        span_id: s.span_id.as_bytes().to_vec(),
        trace_state: s.trace_state.as_str().to_owned(),
        parent_span_id: s
            .parent_span_id
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default(),
        flags,
        name: s.name.to_string(),
        kind: match s.kind {
            SpanKind::Internal => span::SpanKind::Internal,
            SpanKind::Server => span::SpanKind::Server,
            SpanKind::Client => span::SpanKind::Client,
            SpanKind::Producer => span::SpanKind::Producer,
            SpanKind::Consumer => span::SpanKind::Consumer,
        } as i32,
        start_time_unix_nano: nanos(s.start),
        end_time_unix_nano: nanos(s.end),
        attributes: s.attributes.iter().map(pb_kv).collect(),
        dropped_attributes_count: s.dropped_attributes,
        events: s
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: nanos(e.time),
                name: e.name.to_string(),
                attributes: e.attributes.iter().map(pb_kv).collect(),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: s.dropped_events,
        links: s
            .links
            .iter()
            .map(|l| span::Link {
                trace_id: l.trace_id.as_bytes().to_vec(),
                span_id: l.span_id.as_bytes().to_vec(),
                trace_state: l.trace_state.as_str().to_owned(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
                flags: u32::from(l.trace_flags.to_byte()) | HAS_IS_REMOTE | IS_REMOTE,
            })
            .collect(),
        dropped_links_count: 0,
        status: match &s.status {
            Status::Unset => None,
            Status::Ok => Some(PbStatus {
                message: String::new(),
                code: status::StatusCode::Ok as i32,
            }),
            Status::Error(m) => Some(PbStatus {
                message: m.to_string(),
                code: status::StatusCode::Error as i32,
            }),
        },
    }
}

/// Converts a batch into the OTLP request: one resource, one scope per
/// `tracing` target.
///
/// ```
/// # use obs_core::Resource;
/// let req = obs_trace::otlp::to_request(&[], &Resource::new("svc"));
/// assert_eq!(req.resource_spans.len(), 1);
/// ```
pub fn to_request(batch: &[FinishedSpan], resource: &Resource) -> ExportTraceServiceRequest {
    let mut scopes: Vec<ScopeSpans> = Vec::new();
    for s in batch {
        let pb = pb_span(s);
        match scopes
            .iter_mut()
            .find(|sc| sc.scope.as_ref().is_some_and(|x| x.name == s.scope))
        {
            Some(sc) => sc.spans.push(pb),
            None => scopes.push(ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: s.scope.to_owned(),
                    ..Default::default()
                }),
                spans: vec![pb],
                schema_url: String::new(),
            }),
        }
    }
    let mut attributes: Vec<PbKeyValue> = resource.iter().map(|(k, v)| pb_str(k, v)).collect();
    attributes.push(pb_str("telemetry.sdk.name", "obs-trace"));
    attributes.push(pb_str("telemetry.sdk.language", "rust"));
    attributes.push(pb_str("telemetry.sdk.version", env!("CARGO_PKG_VERSION")));
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(PbResource {
                attributes,
                ..Default::default()
            }),
            scope_spans: scopes,
            schema_url: String::new(),
        }],
    }
}

/// The OTLP request for `batch`, encoded as protobuf bytes straight from the
/// spans: the same message as `to_request(batch, resource).encode_to_vec()`
/// (one resource, one scope per `tracing` target, first-seen order), without
/// building the intermediate `opentelemetry-proto` structs (a `String` or
/// `Vec` per id, name and attribute). The built-in HTTP exporter sends this.
///
/// ```
/// use prost::Message;
/// # use obs_core::Resource;
/// let resource = Resource::new("svc");
/// let bytes = obs_trace::otlp::encode_request(&[], &resource);
/// let decoded = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
/// assert_eq!(decoded, obs_trace::otlp::to_request(&[], &resource));
/// ```
pub fn encode_request(batch: &[FinishedSpan], resource: &Resource) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request_into(&mut out, batch, resource);
    out
}

/// [`encode_request`] into a reused buffer (cleared first).
pub fn encode_request_into(out: &mut Vec<u8>, batch: &[FinishedSpan], resource: &Resource) {
    encode_into(out, batch, &[], resource);
}

/// One request of `finished` spans and spans exported straight from their
/// `recorded` fields (the same message a [`FinishedSpan`] of each would
/// make), grouped by scope in first-seen order.
#[allow(
    clippy::vec_box,
    reason = "the recordings travel boxed (see raw::BoxPool)"
)]
pub(crate) fn encode_into(
    out: &mut Vec<u8>,
    finished: &[FinishedSpan],
    recorded: &[Box<Recording>],
    resource: &Resource,
) {
    use wire::*;
    out.clear();
    let sdk: [(&str, &str); 3] = [
        ("telemetry.sdk.name", "obs-trace"),
        ("telemetry.sdk.language", "rust"),
        ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
    ];
    // Scopes in first-seen order.
    let mut scopes: Vec<&'static str> = Vec::new();
    for scope in finished
        .iter()
        .map(|s| s.scope)
        .chain(recorded.iter().map(|r| r.scope))
    {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    // ExportTraceServiceRequest.resource_spans = 1
    put_nested(out, 1, 3, |out| {
        // ResourceSpans.resource = 1
        put_nested(out, 1, 2, |out| {
            for (k, v) in resource.iter().chain(sdk.iter().copied()) {
                put_len_field(out, 1, str_kv_len(k, v));
                put_str_kv(out, k, v);
            }
        });
        for &scope in &scopes {
            // ResourceSpans.scope_spans = 2
            put_nested(out, 2, 3, |out| {
                // ScopeSpans.scope = 1 { name = 1 }
                put_len_field(out, 1, string_field_len(1, scope));
                put_string_field(out, 1, scope);
                // ScopeSpans.spans = 2
                for s in finished.iter().filter(|s| s.scope == scope) {
                    put_nested(out, 2, 2, |out| put_span(out, s));
                }
                for r in recorded.iter().filter(|r| r.scope == scope) {
                    put_nested(out, 2, 2, |out| put_recorded_span(out, r));
                }
            });
        }
    });
}

/// Protobuf wire encoding of the OTLP trace messages (field numbers from
/// `opentelemetry/proto/trace/v1/trace.proto` and `common/v1/common.proto`).
/// Every message is written once, in place, in one pass: a nested message
/// whose length takes computing goes through `put_nested`, which fills its
/// length in after its body. Default values are left out, as prost does.
mod wire {
    use super::{HAS_IS_REMOTE, IS_REMOTE, nanos};
    use crate::raw::{RawValue, Recording};
    use crate::span::{FinishedSpan, KeyValue, Link, SpanEvent, SpanKind, Status, Value};
    pub(super) use obs_core::otlp::wire::*;

    /// `AnyValue`: the oneof member is written even when it is a default.
    fn any_value_len(v: &Value) -> usize {
        match v {
            Value::Str(s) => field_len(1, s.len()),
            Value::Bool(_) => key_len(2) + 1,
            Value::I64(i) => key_len(3) + varint_len(*i as u64),
            Value::F64(_) => key_len(4) + 8,
        }
    }

    fn put_any_value(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::Str(s) => {
                put_len_field(out, 1, s.len());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bool(b) => {
                put_key(out, 2, VARINT);
                out.push(u8::from(*b));
            }
            Value::I64(i) => {
                put_key(out, 3, VARINT);
                put_varint(out, *i as u64);
            }
            Value::F64(f) => {
                put_key(out, 4, FIXED64);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
        }
    }

    /// `KeyValue { key = 1; value = 2 }` (the value is always present),
    /// each as field `field`.
    fn put_kvs(out: &mut Vec<u8>, field: u32, kvs: &[KeyValue]) {
        for kv in kvs {
            if let Value::Str(s) = &kv.value
                && put_short_str_kv(out, field, kv.key.as_bytes(), s.as_bytes())
            {
                continue;
            }
            put_kv(out, field, &kv.key, any_value_len(&kv.value), |out| {
                put_any_value(out, &kv.value)
            });
        }
    }

    /// A `KeyValue` with a string value whose lengths each take one varint
    /// byte (nearly every attribute): `field`'s key and length, the key as
    /// field 1, the `AnyValue` as field 2 with the string as its field 1 —
    /// the bytes [`put_kv`] writes, framed by two 4-byte groups around two
    /// copies instead of eight single-byte pushes. `false` (nothing
    /// written) for anything else: an empty key (left out, as prost does),
    /// a longer attribute, a field number above 15.
    #[inline]
    fn put_short_str_kv(out: &mut Vec<u8>, field: u32, key: &[u8], value: &[u8]) -> bool {
        let any = 2 + value.len();
        let kv = 2 + key.len() + 2 + any;
        if field > 15 || kv > 127 || key.is_empty() {
            return false;
        }
        out.reserve(2 + kv);
        out.extend_from_slice(&[
            (field << 3 | LEN) as u8,
            kv as u8,
            1 << 3 | LEN as u8,
            key.len() as u8,
        ]);
        out.extend_from_slice(key);
        out.extend_from_slice(&[
            2 << 3 | LEN as u8,
            any as u8,
            1 << 3 | LEN as u8,
            value.len() as u8,
        ]);
        out.extend_from_slice(value);
        true
    }

    /// One `KeyValue` as field `field`, its value's `AnyValue` `value_len`
    /// bytes long (written by `put_value`): the key and the value are at
    /// hand, so the message's length is known up front and written first.
    #[inline]
    fn put_kv(
        out: &mut Vec<u8>,
        field: u32,
        key: &str,
        value_len: usize,
        put_value: impl FnOnce(&mut Vec<u8>),
    ) {
        put_len_field(
            out,
            field,
            string_field_len(1, key) + field_len(2, value_len),
        );
        put_string_field(out, 1, key);
        put_len_field(out, 2, value_len);
        put_value(out);
    }

    /// [`put_any_value`] of a recorded value: the same bytes.
    fn put_raw_value(out: &mut Vec<u8>, v: &RawValue) {
        match v {
            RawValue::Str(s) => {
                let b = s.as_bytes();
                put_len_field(out, 1, b.len());
                out.extend_from_slice(b);
            }
            RawValue::Bool(b) => put_any_value(out, &Value::Bool(*b)),
            RawValue::I64(i) => put_any_value(out, &Value::I64(*i)),
            RawValue::F64(f) => put_any_value(out, &Value::F64(*f)),
        }
    }

    fn raw_value_len(v: &RawValue) -> usize {
        match v {
            RawValue::Str(s) => field_len(1, s.as_bytes().len()),
            RawValue::Bool(b) => any_value_len(&Value::Bool(*b)),
            RawValue::I64(i) => any_value_len(&Value::I64(*i)),
            RawValue::F64(f) => any_value_len(&Value::F64(*f)),
        }
    }

    /// [`put_kvs`] of recorded attributes.
    fn put_raw_kvs<'a>(
        out: &mut Vec<u8>,
        field: u32,
        kvs: impl Iterator<Item = &'a (&'static str, RawValue)>,
    ) {
        for (key, value) in kvs {
            if let RawValue::Str(s) = value
                && put_short_str_kv(out, field, key.as_bytes(), s.as_bytes())
            {
                continue;
            }
            put_kv(out, field, key, raw_value_len(value), |out| {
                put_raw_value(out, value)
            });
        }
    }

    fn kind(k: SpanKind) -> u64 {
        match k {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }

    fn flags(trace_flags: obs_core::TraceFlags, parent_is_remote: bool) -> u32 {
        let mut f = u32::from(trace_flags.to_byte()) | HAS_IS_REMOTE;
        if parent_is_remote {
            f |= IS_REMOTE;
        }
        f
    }

    /// `Status { message = 2; code = 3 }`; `None` when unset.
    fn status(s: &Status) -> Option<(&str, u64)> {
        match s {
            Status::Unset => None,
            Status::Ok => Some(("", 1)),
            Status::Error(m) => Some((m, 2)),
        }
    }

    fn status_len(message: &str, code: u64) -> usize {
        string_field_len(2, message) + uint_field_len(3, code)
    }

    fn link_len(l: &crate::span::Link) -> usize {
        field_len(1, 16)
            + field_len(2, 8)
            + string_field_len(3, l.trace_state.as_str())
            + fixed32_field_len(6, link_flags(l))
    }

    fn link_flags(l: &crate::span::Link) -> u32 {
        u32::from(l.trace_flags.to_byte()) | HAS_IS_REMOTE | IS_REMOTE
    }

    /// A span's fields 1 to 8: its ids, trace state, parent, name, kind and
    /// times.
    struct Head<'a> {
        trace_id: &'a [u8],
        span_id: &'a [u8],
        trace_state: &'a str,
        parent: Option<obs_core::SpanId>,
        name: &'a [u8],
        kind: SpanKind,
        start: std::time::SystemTime,
        end: std::time::SystemTime,
    }

    fn put_head(out: &mut Vec<u8>, h: &Head<'_>) {
        put_bytes_field(out, 1, h.trace_id);
        put_bytes_field(out, 2, h.span_id);
        put_string_field(out, 3, h.trace_state);
        if let Some(p) = h.parent {
            put_bytes_field(out, 4, p.as_bytes());
        }
        put_bytes_field(out, 5, h.name);
        put_uint_field(out, 6, kind(h.kind));
        put_fixed64_field(out, 7, nanos(h.start));
        put_fixed64_field(out, 8, nanos(h.end));
    }

    pub(super) fn put_span(out: &mut Vec<u8>, s: &FinishedSpan) {
        put_head(
            out,
            &Head {
                trace_id: s.trace_id.as_bytes(),
                span_id: s.span_id.as_bytes(),
                trace_state: s.trace_state.as_str(),
                parent: s.parent_span_id,
                name: s.name.as_bytes(),
                kind: s.kind,
                start: s.start,
                end: s.end,
            },
        );
        put_kvs(out, 9, &s.attributes);
        put_uint_field(out, 10, u64::from(s.dropped_attributes));
        put_tail(
            out,
            &s.events,
            s.dropped_events,
            &s.links,
            &s.status,
            flags(s.trace_flags, s.parent_is_remote),
        );
    }

    /// [`put_span`] of a span straight from its recording: the same message
    /// its [`FinishedSpan`] makes, field for field.
    pub(super) fn put_recorded_span(out: &mut Vec<u8>, r: &Recording) {
        put_head(
            out,
            &Head {
                trace_id: r.trace_id.as_bytes(),
                span_id: r.span_id.as_bytes(),
                trace_state: r.trace_state.as_str(),
                parent: r.parent,
                name: r.name_bytes(),
                kind: r.kind,
                start: r.start,
                end: r.end,
            },
        );
        put_raw_kvs(out, 9, r.attributes.iter());
        put_uint_field(out, 10, u64::from(r.dropped_attributes));
        put_tail(
            out,
            &r.events,
            r.dropped_events,
            &r.links,
            &r.status,
            flags(r.flags, r.parent_remote),
        );
    }

    /// A span's fields from its events on (11 to 16).
    fn put_tail(
        out: &mut Vec<u8>,
        events: &[SpanEvent],
        dropped_events: u32,
        links: &[Link],
        st: &Status,
        flags: u32,
    ) {
        for e in events {
            put_nested(out, 11, 2, |out| {
                put_fixed64_field(out, 1, nanos(e.time));
                put_string_field(out, 2, &e.name);
                put_kvs(out, 3, &e.attributes);
            });
        }
        put_uint_field(out, 12, u64::from(dropped_events));
        for l in links {
            put_len_field(out, 13, link_len(l));
            put_bytes_field(out, 1, l.trace_id.as_bytes());
            put_bytes_field(out, 2, l.span_id.as_bytes());
            put_string_field(out, 3, l.trace_state.as_str());
            put_fixed32_field(out, 6, link_flags(l));
        }
        if let Some((m, c)) = status(st) {
            put_len_field(out, 15, status_len(m, c));
            put_string_field(out, 2, m);
            put_uint_field(out, 3, c);
        }
        put_fixed32_field(out, 16, flags);
    }
}

/// Gzips an encoded request body (what the HTTP exporter sends with
/// `Content-Encoding: gzip`), at flate2's default level, the level tonic
/// uses for gRPC messages.
///
/// ```
/// use std::io::Read;
/// let body = obs_trace::otlp::encode_request(&[], &obs_core::Resource::default());
/// let gz = obs_trace::otlp::gzip(&body);
/// let mut back = Vec::new();
/// flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
/// assert_eq!(back, body);
/// ```
#[cfg(feature = "gzip")]
pub use obs_core::otlp::gzip;

/// Turns an OTLP response into the outcome: a partial success with rejected
/// spans is [`Error::Rejected`](crate::Error::Rejected).
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
fn partial(response: &[u8]) -> Result<(), crate::Error> {
    match obs_core::otlp::wire::partial_success(response) {
        Some((rejected, message)) if rejected > 0 => {
            Err(crate::Error::Rejected { rejected, message })
        }
        _ => Ok(()),
    }
}

/// One exporter over obs-core's OTLP transport; the two public exporter
/// types differ only in their protocol.
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
#[derive(Debug)]
struct TransportExporter {
    config: obs_core::otlp::ExporterConfig,
    transport: obs_core::otlp::Transport,
    /// What the last request body took per span. A body is handed over to
    /// the transport, so each request encodes into a new buffer: allocated
    /// at about its size up front, it is not grown (and copied) step by step
    /// while the spans are written.
    bytes_per_span: usize,
}

/// The largest body allocated up front (a larger one grows as it is written).
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
const BODY_HINT_MAX: usize = 4 << 20;

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
impl TransportExporter {
    fn new(config: obs_core::otlp::ExporterConfig) -> Result<Self, crate::Error> {
        let transport = obs_core::otlp::Transport::new(&config, obs_core::otlp::Signal::Traces)?;
        Ok(Self {
            config,
            transport,
            bytes_per_span: 0,
        })
    }

    /// A buffer for a body of `spans` spans, sized from the last body (with
    /// an eighth to spare) and for the resource at least.
    fn body(&self, spans: usize) -> Vec<u8> {
        let estimate = self.bytes_per_span.saturating_mul(spans).min(BODY_HINT_MAX);
        Vec::with_capacity((estimate + estimate / 8 + 512).min(BODY_HINT_MAX))
    }

    /// Learns the size per span from the body just encoded.
    fn learn(&mut self, body: &[u8], spans: usize) {
        if spans > 0 {
            self.bytes_per_span = body.len().div_ceil(spans);
        }
    }

    fn rebuild(
        mut self,
        f: impl FnOnce(&mut obs_core::otlp::ExporterConfig),
    ) -> Result<Self, crate::Error> {
        f(&mut self.config);
        Self::new(self.config)
    }

    /// Encodes `finished` and `recorded` into one request body and sends
    /// it: both export paths.
    fn send(
        &mut self,
        finished: &[FinishedSpan],
        recorded: &[Box<Recording>],
        resource: &Resource,
        timeout: Duration,
    ) -> Result<(), crate::Error> {
        let spans = finished.len() + recorded.len();
        let mut body = self.body(spans);
        encode_into(&mut body, finished, recorded, resource);
        self.learn(&body, spans);
        let response = self.transport.send(body, timeout)?;
        partial(&response)
    }

    fn export(
        &mut self,
        batch: &[FinishedSpan],
        resource: &Resource,
        timeout: Duration,
    ) -> Result<(), crate::Error> {
        self.send(batch, &[], resource, timeout)
    }

    fn export_recorded(
        &mut self,
        batch: crate::export::RecordedBatch<'_>,
        resource: &Resource,
        timeout: Duration,
    ) -> Result<(), crate::Error> {
        self.send(batch.finished, batch.recorded, resource, timeout)
    }
}

macro_rules! exporter {
    ($(#[$doc:meta])* $name:ident, $feature:literal, $ctor:ident) => {
        $(#[$doc])*
        #[cfg(feature = $feature)]
        #[derive(Debug)]
        pub struct $name(TransportExporter);

        #[cfg(feature = $feature)]
        impl $name {
            /// An exporter for `endpoint` sending `headers` with every
            /// request. An `https://` endpoint needs the `tls` feature and is
            /// verified against the webpki roots until [`tls`](Self::tls)
            /// says otherwise.
            pub fn new(endpoint: &str, headers: &[(String, String)]) -> Result<Self, crate::Error> {
                let mut config = obs_core::otlp::ExporterConfig::$ctor(endpoint);
                config.headers = headers.to_vec();
                TransportExporter::new(config).map(Self)
            }

            /// The TLS settings for an `https://` endpoint: loads the CA and
            /// client certificate files now, so a missing or invalid file is
            /// an [`Error::TlsFile`](crate::Error::TlsFile) naming it. No
            /// effect on an `http://` endpoint.
            pub fn tls(self, tls: &crate::tls::TlsConfig) -> Result<Self, crate::Error> {
                self.0.rebuild(|c| c.tls = tls.clone()).map(Self)
            }

            /// Compresses every request: with
            /// [`Compression::Gzip`](crate::Compression::Gzip) HTTP bodies
            /// are gzipped and sent with `Content-Encoding: gzip`, gRPC
            /// messages gzipped by tonic's framing with `grpc-encoding: gzip`
            /// (without the `gzip` feature requests go uncompressed;
            /// [`Config`](crate::Config) refuses that combination before an
            /// exporter is built).
            pub fn compression(mut self, compression: crate::Compression) -> Self {
                self.0.config.compression = compression;
                self.0.transport.set_compression(compression);
                self
            }
        }

        #[cfg(feature = $feature)]
        impl crate::export::SpanExporter for $name {
            fn export(
                &mut self,
                batch: &[FinishedSpan],
                resource: &Resource,
                timeout: Duration,
            ) -> Result<(), crate::Error> {
                self.0.export(batch, resource, timeout)
            }

            fn exports_recordings(&self) -> bool {
                true
            }

            fn export_recorded(
                &mut self,
                batch: crate::export::RecordedBatch<'_>,
                resource: &Resource,
                timeout: Duration,
            ) -> Result<(), crate::Error> {
                self.0.export_recorded(batch, resource, timeout)
            }
        }
    };
}

exporter!(
    /// OTLP over HTTP/protobuf: `POST {endpoint}` (the full `/v1/traces`
    /// URL) with `content-type: application/x-protobuf`. `http://`
    /// endpoints, and `https://` ones with the `tls` feature.
    OtlpHttpExporter,
    "otlp-http",
    http
);
exporter!(
    /// OTLP over gRPC (`TraceService/Export`), sending the bytes
    /// [`encode_request`] builds as they are: `http://` endpoints, and
    /// `https://` ones with the `tls` feature.
    OtlpGrpcExporter,
    "otlp-grpc",
    grpc
);

#[cfg(all(test, any(feature = "otlp-http", feature = "otlp-grpc")))]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

    /// The hand-written reader against prost's encoding of the response.
    fn bytes(r: ExportTraceServiceResponse) -> Vec<u8> {
        prost::Message::encode_to_vec(&r)
    }

    #[test]
    fn partial_success_reports_rejected_spans() {
        assert!(partial(&[]).is_ok());
        assert!(
            partial(&bytes(ExportTraceServiceResponse {
                partial_success: None
            }))
            .is_ok()
        );
        let ok = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 0,
                error_message: "warning only".into(),
            }),
        };
        assert!(partial(&bytes(ok)).is_ok());
        let rejected = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        };
        assert_eq!(
            partial(&bytes(rejected)),
            Err(crate::Error::Rejected {
                rejected: 3,
                message: "too old".into()
            })
        );
    }

    #[cfg(feature = "otlp-http")]
    #[test]
    fn a_body_is_allocated_at_about_the_size_of_the_last_one() {
        use crate::span::KeyValue;
        let mut exporter = TransportExporter::new(obs_core::otlp::ExporterConfig::http(
            "http://127.0.0.1:9/v1/traces",
        ))
        .unwrap();
        let span = |i: i64| FinishedSpan {
            attributes: vec![
                KeyValue {
                    key: "url.path".into(),
                    value: "/hello/world".into(),
                },
                KeyValue {
                    key: "n".into(),
                    value: i.into(),
                },
            ],
            ..FinishedSpan::for_test("GET /hello/{name}")
        };
        let resource = Resource::new("svc");
        let batch: Vec<FinishedSpan> = (0..200).map(span).collect();
        // Nothing learned yet: room for the resource only.
        let mut body = exporter.body(batch.len());
        assert!(body.capacity() < 1024, "{}", body.capacity());
        encode_into(&mut body, &batch, &[], &resource);
        exporter.learn(&body, batch.len());
        // The next body of as many spans is written without growing, and
        // is not allocated far larger than it needs.
        let mut next = exporter.body(batch.len());
        let room = next.capacity();
        encode_into(&mut next, &batch, &[], &resource);
        assert_eq!(
            next.capacity(),
            room,
            "grew from {room} to {} for {} bytes",
            next.capacity(),
            next.len()
        );
        assert!(
            room <= next.len() + next.len() / 4 + 512,
            "{room} for {}",
            next.len()
        );
        // Half the spans: about half the room.
        assert!(exporter.body(100).capacity() < room * 2 / 3);
        // Bounded whatever the estimate.
        assert!(exporter.body(usize::MAX).capacity() <= BODY_HINT_MAX);
    }
}

#[cfg(test)]
mod encode_tests {
    use super::*;
    use crate::propagation::TraceState;
    use crate::span::{Link, SpanEvent};
    use obs_core::{SpanId, TraceFlags, TraceId};
    use proptest::prelude::*;
    use prost::Message;
    use std::borrow::Cow;
    use std::time::Duration;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::I64),
            any::<f64>().prop_map(Value::F64),
            ".{0,40}".prop_map(|s| Value::Str(Cow::Owned(s))),
            // Long enough for every length a nested message's room is
            // picked for to be outgrown (key-values past 127 bytes, events
            // and spans past 16 KiB).
            (100usize..20_000).prop_map(|n| Value::Str(Cow::Owned("x".repeat(n)))),
        ]
    }

    fn kvs() -> impl Strategy<Value = Vec<KeyValue>> {
        proptest::collection::vec(
            (".{0,20}", value()).prop_map(|(k, v)| KeyValue {
                key: Cow::Owned(k),
                value: v,
            }),
            0..6,
        )
    }

    fn time() -> impl Strategy<Value = SystemTime> {
        prop_oneof![
            Just(UNIX_EPOCH),
            (0u64..4_000_000_000_000_000_000).prop_map(|n| UNIX_EPOCH + Duration::from_nanos(n)),
        ]
    }

    fn span() -> impl Strategy<Value = FinishedSpan> {
        (
            (
                any::<u128>(),
                any::<u64>(),
                proptest::option::of(any::<u64>()),
                any::<bool>(),
                any::<u8>(),
            ),
            (
                prop_oneof![Just(""), Just("k=v,a@b=c")],
                ".{0,30}",
                0u8..5,
                prop_oneof![Just("app"), Just("db"), Just("")],
            ),
            (time(), time(), kvs(), 0u32..3, 0u32..3),
            proptest::collection::vec((".{0,10}", time(), kvs()), 0..3),
            proptest::collection::vec((any::<u128>(), any::<u64>(), any::<u8>()), 0..2),
            prop_oneof![
                Just(None),
                Just(Some(None)),
                ".{0,20}".prop_map(|m| Some(Some(m)))
            ],
        )
            .prop_map(|(ids, names, times, events, links, status)| {
                let (t, sp, parent, remote, flags) = ids;
                let (ts, name, kind, scope) = names;
                let (start, end, attributes, da, de) = times;
                FinishedSpan {
                    trace_id: TraceId::from_int(t),
                    span_id: SpanId::from_int(sp),
                    parent_span_id: parent.map(SpanId::from_int),
                    parent_is_remote: remote,
                    trace_flags: TraceFlags::from_byte(flags),
                    trace_state: TraceState::parse([ts.as_bytes()]).unwrap_or_default(),
                    name: Cow::Owned(name),
                    kind: [
                        SpanKind::Internal,
                        SpanKind::Server,
                        SpanKind::Client,
                        SpanKind::Producer,
                        SpanKind::Consumer,
                    ][kind as usize],
                    start,
                    end,
                    attributes,
                    events: events
                        .into_iter()
                        .map(|(n, time, attributes)| SpanEvent {
                            name: Cow::Owned(n),
                            time,
                            attributes,
                        })
                        .collect(),
                    links: links
                        .into_iter()
                        .map(|(t, s, f)| Link {
                            trace_id: TraceId::from_int(t),
                            span_id: SpanId::from_int(s),
                            trace_flags: TraceFlags::from_byte(f),
                            trace_state: TraceState::default(),
                        })
                        .collect(),
                    status: match status {
                        None => Status::Unset,
                        Some(None) => Status::Ok,
                        Some(Some(m)) => Status::Error(Cow::Owned(m)),
                    },
                    scope,
                    dropped_attributes: da,
                    dropped_events: de,
                }
            })
    }

    /// The recording a span would have been finished from: keys leaked to
    /// `'static` as callsite names are; the name recorded unless `name_of`
    /// is `false`, when the callsite's is the name.
    fn recording_of(s: &FinishedSpan, recorded_name: bool) -> Box<crate::raw::Recording> {
        use crate::raw::{RawStr, RawValue, Recording, RecordingIds};
        let leak = |k: &str| -> &'static str { Box::leak(k.to_owned().into_boxed_str()) };
        let mut r = Box::new(Recording::new(
            RecordingIds {
                trace_id: s.trace_id,
                span_id: s.span_id,
                parent: s.parent_span_id,
                parent_remote: s.parent_is_remote,
                flags: s.trace_flags,
                meta_name: if recorded_name {
                    "callsite"
                } else {
                    leak(&s.name)
                },
                scope: s.scope,
            },
            s.start,
        ));
        r.end = s.end;
        r.trace_state = s.trace_state.clone();
        r.name = recorded_name.then(|| RawStr::new(&s.name));
        r.kind = s.kind;
        for kv in &s.attributes {
            let v = match &kv.value {
                Value::Bool(b) => RawValue::Bool(*b),
                Value::I64(i) => RawValue::I64(*i),
                Value::F64(f) => RawValue::F64(*f),
                Value::Str(t) => RawValue::Str(RawStr::new(t)),
            };
            r.attributes.push(leak(&kv.key), v);
        }
        r.events = s.events.clone();
        r.links = s.links.clone();
        r.status = s.status.clone();
        r.dropped_attributes = s.dropped_attributes;
        r.dropped_events = s.dropped_events;
        r
    }

    /// Values and keys a redactor acts on, mixed into generated spans.
    const SECRETS: [&str; 4] = [
        "Bearer mF_9.B5f-4.1JqM",
        "/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abc123def456ghi789",
        "key AKIAIOSFODNN7EXAMPLE here",
        "password=hunter2",
    ];

    fn with_secrets(mut s: FinishedSpan, pick: usize) -> FinishedSpan {
        if pick.is_multiple_of(3) {
            s.name = Cow::Owned(format!("GET {}", SECRETS[pick % 4]));
        }
        for (i, kv) in s.attributes.iter_mut().enumerate() {
            match (pick + i) % 4 {
                0 => kv.value = Value::Str(Cow::Borrowed(SECRETS[(pick + i) % 4])),
                1 => kv.key = Cow::Borrowed("api_key"),
                _ => {}
            }
        }
        s
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// A span encoded straight from its recording is the message its
        /// finished span makes, redacted or not, whichever way it was
        /// named, mixed in one batch with finished spans.
        #[test]
        fn recorded_spans_encode_as_their_finished_spans(
            batch in proptest::collection::vec((span(), any::<bool>(), any::<bool>(), 0usize..12), 0..6),
        ) {
            let resource = Resource::new("svc");
            let rules = obs_core::Redactor::new();
            let mut finished = Vec::new();
            let mut recorded = Vec::new();
            let mut expected_finished = Vec::new();
            let mut expected_recorded = Vec::new();
            let mut recycler = crate::raw::Recycler::default();
            let mut redactor = crate::redaction::SpanRedactor::new(rules.clone());
            let mut check = crate::redaction::SpanRedactor::new(rules);
            for (s, as_recording, recorded_name, pick) in batch {
                let s = with_secrets(s, pick);
                if as_recording {
                    let mut rec = recording_of(&s, recorded_name);
                    redactor.redact_recording(&mut rec);
                    recorded.push(rec);
                    // What the finished path makes of the same recording.
                    let (mut f, _) = crate::raw::RawSpan(recording_of(&s, recorded_name))
                        .into_finished(&mut recycler);
                    check.redact(&mut f);
                    expected_recorded.push(f);
                } else {
                    let mut f = s.clone();
                    check.redact(&mut f);
                    finished.push(f.clone());
                    expected_finished.push(f);
                }
            }
            let mut ours = Vec::new();
            encode_into(&mut ours, &finished, &recorded, &resource);
            expected_finished.extend(expected_recorded);
            prop_assert_eq!(ours, encode_request(&expected_finished, &resource));
        }
    }

    /// Around the lengths where a string attribute stops fitting the
    /// one-byte framing (a key-value of 127 bytes and of 128), recorded or
    /// finished, the bytes are prost's, byte for byte.
    #[test]
    fn string_attributes_at_the_one_byte_length_limit_encode_as_prost() {
        let resource = Resource::new("svc");
        let lens = [
            0usize, 1, 2, 60, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 200,
        ];
        for k in lens {
            for v in lens {
                let key = "k".repeat(k);
                let span = FinishedSpan {
                    attributes: vec![KeyValue {
                        key: key.clone().into(),
                        value: Value::Str(Cow::Owned("v".repeat(v))),
                    }],
                    ..FinishedSpan::for_test("s")
                };
                let expected = to_request(std::slice::from_ref(&span), &resource).encode_to_vec();
                assert_eq!(
                    encode_request(std::slice::from_ref(&span), &resource),
                    expected,
                    "key {k}, value {v}"
                );
                let rec = recording_of(&span, false);
                let mut ours = Vec::new();
                encode_into(&mut ours, &[], &[rec], &resource);
                assert_eq!(ours, expected, "recorded: key {k}, value {v}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The hand-written encoder and prost over `to_request` give the
        /// same message, for any batch.
        #[test]
        fn encode_request_is_to_request_encoded(batch in proptest::collection::vec(span(), 0..6)) {
            let resource = Resource::new("svc").with_version("1.2.3").with_attribute("k8s.pod.name", "p-1");
            let ours = encode_request(&batch, &resource);
            let decoded = ExportTraceServiceRequest::decode(&ours[..]).unwrap();
            let expected = to_request(&batch, &resource);
            // NaN != NaN: compare the encodings of both decoded messages.
            prop_assert_eq!(decoded.encode_to_vec(), expected.encode_to_vec());
            prop_assert_eq!(ours.len(), expected.encoded_len());
        }
    }
}
