//! The data of a finished, sampled span as the layer hands it to exporters.

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use obs_core::{SpanId, TraceFlags, TraceId};

use crate::propagation::TraceState;

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// A floating-point number.
    F64(f64),
    /// A string.
    Str(Cow<'static, str>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Str(v) => f.write_str(v),
        }
    }
}

impl From<&'static str> for Value {
    fn from(v: &'static str) -> Self {
        Value::Str(Cow::Borrowed(v))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(Cow::Owned(v))
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}

/// A key/value attribute.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    /// The key (a `tracing` field name).
    pub key: Cow<'static, str>,
    /// The value.
    pub value: Value,
}

/// The OpenTelemetry span kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// An in-process operation (the default).
    #[default]
    Internal,
    /// The server side of a remote call.
    Server,
    /// The client side of a remote call.
    Client,
    /// A message or job producer.
    Producer,
    /// A message or job consumer.
    Consumer,
}

impl SpanKind {
    /// Parses the `otel.kind` field value (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        // Compared in place: this runs for every sampled span that names
        // its kind, and a lowercased copy would allocate each time.
        [
            ("internal", Self::Internal),
            ("server", Self::Server),
            ("client", Self::Client),
            ("producer", Self::Producer),
            ("consumer", Self::Consumer),
        ]
        .into_iter()
        .find_map(|(name, kind)| s.eq_ignore_ascii_case(name).then_some(kind))
    }
}

/// The span status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// Not set: the default, and what a 4xx server response keeps.
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed, with a description.
    Error(Cow<'static, str>),
}

/// A timestamped event inside a span (a `tracing` event, an exception).
#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    /// The event name: its message, or `exception`.
    pub name: Cow<'static, str>,
    /// When it happened.
    pub time: SystemTime,
    /// Its other fields.
    pub attributes: Vec<KeyValue>,
}

/// A link to another span (for example the producer of a job).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The linked trace.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SpanId,
    /// Its flags.
    pub trace_flags: TraceFlags,
    /// Its trace state.
    pub trace_state: TraceState,
}

/// A finished, sampled span, ready for export.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedSpan {
    /// The trace id.
    pub trace_id: TraceId,
    /// The span id.
    pub span_id: SpanId,
    /// The parent span id, `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// Whether the parent is in another process.
    pub parent_is_remote: bool,
    /// Trace flags.
    pub trace_flags: TraceFlags,
    /// Trace state inherited from the remote parent.
    pub trace_state: TraceState,
    /// The span name (`otel.name` when given, else the `tracing` span name).
    pub name: Cow<'static, str>,
    /// The span kind.
    pub kind: SpanKind,
    /// Start time.
    pub start: SystemTime,
    /// End time.
    pub end: SystemTime,
    /// Attributes from the span's fields.
    pub attributes: Vec<KeyValue>,
    /// Events recorded inside the span.
    pub events: Vec<SpanEvent>,
    /// Links.
    pub links: Vec<Link>,
    /// The status.
    pub status: Status,
    /// The instrumentation scope (the `tracing` target).
    pub scope: &'static str,
    /// Attributes and events dropped because the span hit its limits.
    pub dropped_attributes: u32,
    /// Events dropped because the span hit its limit.
    pub dropped_events: u32,
}

#[cfg(test)]
impl FinishedSpan {
    /// A root server span named `name`, with fresh ids, no attributes and
    /// now as both its start and end: the unit tests' starting point.
    pub(crate) fn for_test(name: &'static str) -> Self {
        FinishedSpan {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            parent_span_id: None,
            parent_is_remote: false,
            trace_flags: TraceFlags::default(),
            trace_state: TraceState::default(),
            name: name.into(),
            kind: SpanKind::Server,
            start: SystemTime::now(),
            end: SystemTime::now(),
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: Status::Unset,
            scope: "test",
            dropped_attributes: 0,
            dropped_events: 0,
        }
    }
}

impl FinishedSpan {
    /// The value of attribute `key`.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
    }
}
