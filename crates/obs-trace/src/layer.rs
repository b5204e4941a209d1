//! The `tracing` layer: ids and sampling at span creation, OpenTelemetry span
//! data only for sampled spans, built at close.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::SystemTime;

use obs_core::names::attr;
use obs_core::spans::{ExtRead, ExtWrite, SpanEntry, SpanLookup, SpanSubscriber};
use obs_core::{IdRecord, SpanId, SpanRecord, TraceFlags, TraceId};
use tracing_core::Event;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_subscriber::layer::Context;

use crate::Shared;
use crate::propagation::{Baggage, SpanContext, TraceState};
use crate::raw::{RawSpan, RawStr, RawValue, RawWriter, Recording, RecordingIds};
use crate::span::{KeyValue, Link, SpanEvent, SpanKind, Status, Value};

/// What the next span created on this thread inherits instead of its local
/// parent (see [`crate::context::in_remote_context`]).
pub(crate) struct Pending {
    pub(crate) parent: Option<SpanContext>,
    pub(crate) link: Option<SpanContext>,
    pub(crate) baggage: Option<Arc<Baggage>>,
}

thread_local! {
    pub(crate) static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
    /// Whether `PENDING` may hold something: one cheap load per new span.
    pub(crate) static HAS_PENDING: Cell<bool> = const { Cell::new(false) };
    /// Whether the span that took `PENDING` is recorded for export, for
    /// the code that set it ([`crate::context::in_remote_context_recorded`]).
    pub(crate) static PENDING_RECORDED: Cell<Option<bool>> = const { Cell::new(None) };
}

/// What the layer keeps for a span it opened that carries a trace state or
/// baggage but is not recorded (unsampled, or no exporter): kept in the
/// span's `SpanRecord` for its children to inherit. A recorded span keeps
/// its [`Recording`] there instead (a pooled box), which carries the same.
pub(crate) struct Unrecorded {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
    trace_state: TraceState,
    baggage: Option<Arc<Baggage>>,
}

impl obs_core::SpanState for Unrecorded {
    fn close(self: Box<Self>) {}
}

/// A recorded span is submitted when the registry drops its extensions,
/// right after the span closes, and its `SpanRecord` with them. Doing it
/// here instead of in `on_close` means the layer has no `on_close` at all:
/// closing an unsampled span costs the layer nothing. The recording's box
/// goes to the exporter as it is.
impl obs_core::SpanState for Recording {
    fn close(mut self: Box<Self>) {
        self.baggage = None;
        let Some(shared) = self.sink.take() else {
            return;
        };
        if let Some(pipeline) = &shared.pipeline {
            self.end = SystemTime::now();
            pipeline.submit(RawSpan(self));
        }
    }
}

/// The trace context a span this layer opened carries beyond its id
/// record, when it keeps a state: a recording, or an unrecorded span's
/// trace state and baggage.
struct Carried<'a> {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
    trace_state: &'a TraceState,
    baggage: Option<&'a Arc<Baggage>>,
}

impl Carried<'_> {
    #[inline]
    fn of(slot: &obs_core::StateSlot) -> Option<Carried<'_>> {
        if let Some(r) = slot.get::<Recording>() {
            return Some(Carried {
                trace_id: r.trace_id,
                span_id: r.span_id,
                flags: r.flags,
                trace_state: &r.trace_state,
                baggage: r.baggage.as_ref(),
            });
        }
        slot.get::<Unrecorded>().map(|u| Carried {
            trace_id: u.trace_id,
            span_id: u.span_id,
            flags: u.flags,
            trace_state: &u.trace_state,
            baggage: u.baggage.as_ref(),
        })
    }
}

/// Keeps a span's state in its record: off the unsampled path's code.
#[inline(never)]
fn keep_state(rec: &mut SpanRecord, state: Box<dyn obs_core::SpanState>) {
    rec.state.set(state);
}

/// The recording of a span this layer records, in its `SpanRecord`.
#[inline]
fn recording_mut<E: ExtWrite>(ext: &mut E) -> Option<&mut Recording> {
    ext.get_mut::<SpanRecord>()?.state.get_mut::<Recording>()
}

/// The `tracing_subscriber::Layer` of obs-trace. Get one from
/// [`TracerProvider::layer`](crate::TracerProvider::layer).
///
/// Special span fields: `otel.name` (the span name; `{method} {route}` for
/// HTTP), `otel.kind` (`server`, `client`, `producer`, `consumer`),
/// `otel.status_code` (`ok`, `error`), `otel.status_message`. A field named
/// `error` or `error.type` marks the span as failed. Events inside a sampled
/// span become span events; an event whose message is `exception` or that
/// has an `exception.type` field becomes an `exception` event and marks the
/// span as failed.
#[derive(Clone)]
pub struct TraceLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for TraceLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceLayer")
            .field("sampler", &self.shared.sampler)
            .finish_non_exhaustive()
    }
}

/// The ids a new span inherits from its parent: small and `Copy`, so the
/// hot path moves a few registers instead of a whole `SpanContext`.
#[derive(Clone, Copy)]
struct Parent {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
    remote: bool,
}

/// What a new span inherits beyond the ids; empty on the common path.
#[derive(Default)]
struct Inherited {
    trace_state: TraceState,
    baggage: Option<Arc<Baggage>>,
    link: Option<SpanContext>,
}

/// The trace context of the nearest span in `scope` that has one: its
/// kept state, or for a span that records nothing (unsampled, no trace
/// state, no baggage) the ids the layer wrote into its `SpanRecord`.
pub(crate) fn context_in<E: SpanEntry>(span: &E) -> Option<(SpanContext, Option<Arc<Baggage>>)> {
    span.find_in_scope(context_of)
}

/// The trace context one span carries itself.
fn context_of<E: SpanEntry>(span: &E) -> Option<(SpanContext, Option<Arc<Baggage>>)> {
    let ext = span.extensions();
    let rec = ext.get::<SpanRecord>()?;
    if let Some(c) = Carried::of(&rec.state) {
        let cx = SpanContext {
            trace_id: c.trace_id,
            span_id: c.span_id,
            trace_flags: c.flags,
            trace_state: c.trace_state.clone(),
            is_remote: false,
        };
        return Some((cx, c.baggage.cloned()));
    }
    let r = &rec.ids;
    Some((
        SpanContext::new(r.trace_id?, r.span_id?, r.trace_flags),
        None,
    ))
}

/// The ids one span carries, and into `inherited` its trace state and
/// baggage (cloned only when present).
#[inline]
fn parent_of<E: SpanEntry>(span: &E, inherited: &mut Inherited) -> Option<Parent> {
    let ext = span.extensions();
    let rec = ext.get::<SpanRecord>()?;
    if let Some(c) = Carried::of(&rec.state) {
        if !c.trace_state.is_empty() {
            inherited.trace_state = c.trace_state.clone();
        }
        if let Some(b) = c.baggage {
            inherited.baggage = Some(b.clone());
        }
        return Some(Parent {
            trace_id: c.trace_id,
            span_id: c.span_id,
            flags: c.flags,
            remote: false,
        });
    }
    let r = &rec.ids;
    Some(Parent {
        trace_id: r.trace_id?,
        span_id: r.span_id?,
        flags: r.trace_flags,
        remote: false,
    })
}

#[inline]
fn local_parent<E: SpanEntry>(span: &E, inherited: &mut Inherited) -> Option<Parent> {
    let parent = span.parent()?;
    // The direct parent almost always has a context; only walk further up
    // (one registry lookup per step) when it does not.
    if let Some(p) = parent_of(&parent, inherited) {
        return Some(p);
    }
    parent.ancestors().find_map(|s| parent_of(&s, inherited))
}

/// Whether this layer opened `span`: it then carries the layer's state, or
/// (unsampled, nothing to record) the span id it wrote into the id record.
#[inline]
fn opened_here<E: SpanEntry>(span: &E) -> bool {
    let ext = span.extensions();
    ext.get::<SpanRecord>()
        .is_some_and(|r| r.state.is_set() || r.ids.span_id.is_some())
}

/// Takes what [`crate::context::in_remote_context`] left for this span:
/// the explicit parent (`None`: a new trace), a link and baggage.
#[cold]
#[inline(never)]
fn pending_parent(p: Pending, inherited: &mut Inherited) -> Option<Parent> {
    inherited.link = p.link;
    inherited.baggage = p.baggage;
    let cx = p.parent?;
    inherited.trace_state = cx.trace_state;
    Some(Parent {
        trace_id: cx.trace_id,
        span_id: cx.span_id,
        flags: cx.trace_flags,
        remote: cx.is_remote,
    })
}

impl TraceLayer {
    /// The recording of a new sampled span: start time, link, attributes.
    #[inline(never)]
    fn start_recording(
        &self,
        attrs: &Attributes<'_>,
        ids: RecordingIds,
        link: Option<SpanContext>,
    ) -> Box<Recording> {
        let start = SystemTime::now();
        let mut rec = match &self.shared.pipeline {
            Some(p) => p.pool.recording(ids, start),
            None => Box::new(Recording::new(ids, start)),
        };
        if let Some(l) = link {
            rec.links.push(Link {
                trace_id: l.trace_id,
                span_id: l.span_id,
                trace_flags: l.trace_flags,
                trace_state: l.trace_state,
            });
        }
        attrs.record(&mut SpanVisitor {
            rec: &mut rec,
            max: self.shared.max_attributes,
            fresh: true,
        });
        rec
    }
}

impl<S> tracing_subscriber::Layer<S> for TraceLayer
where
    S: SpanSubscriber,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.new_span(attrs, id, &S::lookup(&ctx));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.record(id, values, &S::lookup(&ctx));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.event(event, &S::lookup(&ctx));
    }
}

impl TraceLayer {
    /// Gives a new span its ids (from its parent, or a new trace), samples
    /// it, and starts its recording when sampled.
    pub(crate) fn new_span<L: SpanLookup>(&self, attrs: &Attributes<'_>, id: &Id, spans: &L) {
        let shared = &*self.shared;
        if shared.disabled {
            return;
        }
        let Some(span) = spans.span(id) else { return };
        let mut inherited = Inherited::default();
        let mut pending = None;
        if HAS_PENDING.get() {
            HAS_PENDING.set(false);
            pending = PENDING.with(|p| p.borrow_mut().take());
        }
        let from_pending = pending.is_some();
        let parent = match pending {
            // An explicit parent, or an explicit "no parent": a new trace (a
            // consumer linked to its producer, or a server whose traceparent
            // was invalid).
            Some(p) => pending_parent(p, &mut inherited),
            None => local_parent(&span, &mut inherited),
        };
        // A `tracing` span with no traced `tracing` parent inside a span of the
        // OpenTelemetry API (`in_span`, an attached context) joins that
        // span's trace. Looked up only for would-be root spans: one relaxed
        // load until the process uses the API, then one thread-local read
        // when no OpenTelemetry context is attached.
        #[cfg(feature = "otel-api")]
        let parent = match parent {
            None => crate::otel_api::current_parent(&mut inherited.trace_state).map(
                |(trace_id, span_id, flags, remote)| Parent {
                    trace_id,
                    span_id,
                    flags,
                    remote,
                },
            ),
            p => p,
        };
        let span_id = SpanId::random();
        let (trace_id, parent_flags) = match parent {
            Some(p) => (p.trace_id, Some(p.flags)),
            None => (TraceId::random(), None),
        };
        let sampled = shared.sampler.should_sample(parent_flags, trace_id);
        let flags = parent_flags.unwrap_or_default().with_sampled(sampled);
        let Inherited {
            trace_state,
            baggage,
            link,
        } = inherited;
        let rec = (sampled && shared.pipeline.is_some()).then(|| {
            let ids = RecordingIds {
                trace_id,
                span_id,
                parent: parent.map(|p| p.span_id),
                parent_remote: parent.is_some_and(|p| p.remote),
                flags,
                meta_name: attrs.metadata().name(),
                scope: attrs.metadata().target(),
            };
            self.start_recording(attrs, ids, link)
        });
        if from_pending {
            PENDING_RECORDED.set(Some(rec.is_some()));
        }
        // A span that records nothing and carries no trace state or
        // baggage is fully described by its id record: no state at all on
        // the unsampled fast path. A recorded span keeps its pooled
        // recording (trace state and baggage in it) in the same record, so
        // it costs no second extension box either.
        let state: Option<Box<dyn obs_core::SpanState>> = match rec {
            Some(mut rec) => {
                rec.trace_state = trace_state;
                rec.baggage = baggage;
                rec.sink = Some(self.shared.clone());
                Some(rec)
            }
            None if !trace_state.is_empty() || baggage.is_some() => Some(Box::new(Unrecorded {
                trace_id,
                span_id,
                flags,
                trace_state,
                baggage,
            })),
            None => None,
        };
        // A correlation id handed to this span by a layer outside the one
        // that opened it goes into the same record.
        let correlation_id = IdRecord::take_next_span_correlation();
        let mut ext = span.extensions_mut();
        SpanRecord::update(&mut ext, |rec| {
            let r = &mut rec.ids;
            r.trace_id = Some(trace_id);
            r.span_id = Some(span_id);
            r.trace_flags = flags;
            if correlation_id.is_some() {
                r.correlation_id = correlation_id;
            }
            if let Some(state) = state {
                keep_state(rec, state);
            }
        });
    }

    /// Records values into a sampled span's recording.
    pub(crate) fn record<L: SpanLookup>(&self, id: &Id, values: &Record<'_>, spans: &L) {
        let Some(span) = spans.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(rec) = recording_mut(&mut ext) {
            values.record(&mut SpanVisitor {
                rec,
                max: self.shared.max_attributes,
                fresh: false,
            });
        }
    }

    /// Records an event on the nearest sampled span this layer opened.
    pub(crate) fn event<L: SpanLookup>(&self, event: &Event<'_>, spans: &L) {
        // The access line repeats what its server span already carries
        // (method, route, path, status; its duration is the span's): as a
        // span event it would only double the exported bytes.
        if event.metadata().target() == obs_core::names::target::ACCESS {
            return;
        }
        let Some(mut span) = spans.event_span(event) else {
            return;
        };
        // The event belongs to the nearest span this layer opened: a
        // composed layer may show it spans other parts opened (a DEBUG span
        // the log directive wants and the trace filter does not).
        while !opened_here(&span) {
            match span.parent() {
                Some(p) => span = p,
                None => return,
            }
        }
        let mut ext = span.extensions_mut();
        let Some(rec) = recording_mut(&mut ext) else {
            return;
        };
        if rec.events.len() >= self.shared.max_events {
            rec.dropped_events += 1;
            return;
        }
        let mut v = EventVisitor::default();
        event.record(&mut v);
        let exception = v.exception || v.message.as_deref() == Some("exception");
        if exception {
            let msg = v
                .attributes
                .iter()
                .find(|kv| kv.key == attr::EXCEPTION_MESSAGE)
                .or_else(|| {
                    v.attributes
                        .iter()
                        .find(|kv| kv.key == attr::EXCEPTION_TYPE)
                })
                .map(|kv| kv.value.to_string())
                .unwrap_or_else(|| "exception".to_owned());
            rec.status = Status::Error(msg.into());
        } else if let Some(e) = v.error.take()
            && !matches!(rec.status, Status::Ok)
        {
            rec.status = Status::Error(e.into());
        }
        let name: Cow<'static, str> = if exception {
            Cow::Borrowed("exception")
        } else {
            match v.message {
                Some(m) => Cow::Owned(m),
                None => Cow::Borrowed(event.metadata().name()),
            }
        };
        let mut attributes = v.attributes;
        attributes.push(KeyValue {
            key: Cow::Borrowed("level"),
            value: Value::Str(Cow::Borrowed(event.metadata().level().as_str())),
        });
        rec.events.push(SpanEvent {
            name,
            time: SystemTime::now(),
            attributes,
        });
    }
}

struct SpanVisitor<'a> {
    rec: &'a mut Recording,
    max: usize,
    fresh: bool,
}

impl SpanVisitor<'_> {
    /// The field's name when the value can be appended as it is: a new span's
    /// ordinary field (not `otel.*`, `error` or `error.type`) with room left.
    /// Every other case goes through [`set`](Self::set).
    #[inline(always)]
    fn plain(&self, field: &Field) -> Option<&'static str> {
        let name = field.name();
        let special = match name.as_bytes().first() {
            Some(b'o') => name.starts_with("otel."),
            Some(b'e') => name == "error" || name == attr::ERROR_TYPE,
            _ => false,
        };
        (self.fresh && !special && self.rec.attributes.len() < self.max).then_some(name)
    }

    #[inline(never)]
    fn set(&mut self, name: &'static str, value: RawValue) {
        if let Some(special) = name.strip_prefix("otel.") {
            if special == "name" {
                self.rec.name = Some(match value {
                    RawValue::Str(s) => s,
                    other => RawStr::new(&other.text()),
                });
                return;
            }
            let text = value.text();
            match special {
                "kind" => self.rec.kind = SpanKind::parse(&text).unwrap_or(self.rec.kind),
                "status_code" => {
                    if text.eq_ignore_ascii_case("ok") {
                        self.rec.status = Status::Ok;
                    } else if text.eq_ignore_ascii_case("error") {
                        if !matches!(self.rec.status, Status::Error(_)) {
                            self.rec.status = Status::Error(Cow::Borrowed(""));
                        }
                    } else {
                        self.rec.status = Status::Unset;
                    }
                }
                "status_message" | "status_description" => {
                    if let Status::Error(m) = &mut self.rec.status {
                        *m = Cow::Owned(text.into_owned());
                    }
                }
                _ => {}
            }
            return;
        }
        if name == "error" || name == attr::ERROR_TYPE {
            match &self.rec.status {
                Status::Ok => {}
                Status::Error(m) if !m.is_empty() => {}
                _ => self.rec.status = Status::Error(Cow::Owned(value.text().into_owned())),
            }
        }
        let attrs = &mut self.rec.attributes;
        // At creation every field is new (tracing field names are unique per
        // callsite): skip the search for an earlier value.
        if !self.fresh
            && let Some(v) = attrs.get_mut(name)
        {
            *v = value;
        } else if attrs.len() < self.max {
            attrs.push(name, value);
        } else {
            self.rec.dropped_attributes += 1;
        }
    }
}

/// Records `fields` on `span` for the exporter only, as `span.record` of
/// each would through this crate's layer: for the outcome of a request
/// whose span only obs's layers read, where no other layer needs it (see
/// `tower::TracedFuture`). `false` when the span is not one this layer
/// records (unsampled, or not seen by it).
#[cfg(feature = "tower")]
pub(crate) fn record_for_export(
    span: &tracing::Span,
    fields: impl IntoIterator<Item = (&'static str, RawValue)>,
) -> bool {
    span.with_subscriber(|(id, dispatch)| {
        let Some(data) = obs_core::spans::Found::span(dispatch, id) else {
            return false;
        };
        let mut ext = data.extensions_mut();
        let Some(rec) = recording_mut(&mut ext) else {
            return false;
        };
        let Some(max) = rec.sink.as_ref().map(|s| s.max_attributes) else {
            return false;
        };
        let mut v = SpanVisitor {
            max,
            rec,
            fresh: false,
        };
        for (name, value) in fields {
            v.set(name, value);
        }
        true
    })
    .unwrap_or(false)
}

impl Visit for SpanVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match self.plain(field) {
            Some(name) => self.rec.attributes.push_str(name, value),
            None => self.set(field.name(), RawValue::Str(RawStr::new(value))),
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        match self.plain(field) {
            Some(name) => self.rec.attributes.push(name, RawValue::I64(value)),
            None => self.set(field.name(), RawValue::I64(value)),
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.record_i64(field, v),
            Err(_) => self.set(field.name(), RawValue::Str(RawStr::new(&value.to_string()))),
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        match self.plain(field) {
            Some(name) => self.rec.attributes.push(name, RawValue::Bool(value)),
            None => self.set(field.name(), RawValue::Bool(value)),
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        match self.plain(field) {
            Some(name) => self.rec.attributes.push(name, RawValue::F64(value)),
            None => self.set(field.name(), RawValue::F64(value)),
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut w = RawWriter::default();
        let _ = write!(w, "{value}");
        self.set(field.name(), RawValue::Str(w.finish()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut w = RawWriter::default();
        let _ = write!(w, "{value:?}");
        self.set(field.name(), RawValue::Str(w.finish()));
    }
}

#[derive(Default)]
struct EventVisitor {
    message: Option<String>,
    attributes: Vec<KeyValue>,
    error: Option<String>,
    exception: bool,
}

impl EventVisitor {
    fn set(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" {
            self.message = Some(value.to_string());
            return;
        }
        if name == attr::EXCEPTION_TYPE {
            self.exception = true;
        }
        if name == "error" || name == attr::ERROR_TYPE {
            self.error = Some(value.to_string());
        }
        self.attributes.push(KeyValue {
            key: Cow::Borrowed(name),
            value,
        });
    }
}

impl Visit for EventVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, Value::Str(Cow::Owned(value.to_owned())));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(
            field,
            i64::try_from(value)
                .map(Value::I64)
                .unwrap_or_else(|_| Value::Str(value.to_string().into())),
        );
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, Value::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, Value::F64(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field, Value::Str(Cow::Owned(value.to_string())));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.set(field, Value::Str(Cow::Owned(s)));
    }
}
