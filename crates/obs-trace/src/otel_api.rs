//! The OpenTelemetry API (`opentelemetry::trace::{TracerProvider, Tracer,
//! Span}`) backed by obs's own pipeline, so that libraries instrumented with
//! `opentelemetry::global::tracer` join obs's traces.
//!
//! ```
//! use obs_trace::{TracerProvider, export::InMemoryExporter};
//! use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _};
//! use std::time::Duration;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let spans = InMemoryExporter::default();
//! let provider = TracerProvider::builder().with_exporter(spans.clone()).build()?;
//! obs_trace::otel_api::install_global(&provider);
//! let subscriber = tracing_subscriber::registry().with(provider.layer());
//! tracing::subscriber::with_default(subscriber, || {
//!     let _request = tracing::info_span!("request").entered();
//!     // A library, knowing nothing of obs:
//!     opentelemetry::global::tracer("some-lib").in_span("lib.call", |cx| {
//!         cx.span().set_attribute(opentelemetry::KeyValue::new("rows", 3));
//!     });
//! });
//! provider.force_flush(Duration::from_secs(5));
//! let exported = spans.spans();
//! let (lib, request) = (&exported[0], &exported[1]);
//! assert_eq!((lib.name.as_ref(), lib.scope), ("lib.call", "some-lib"));
//! assert_eq!(lib.trace_id, request.trace_id);
//! assert_eq!(lib.parent_span_id, Some(request.span_id));
//! # Ok::<(), obs_trace::Error>(())
//! ```
//!
//! # Parenting
//!
//! A span started through the API takes as its parent, in this order:
//! 1. the active span of the OpenTelemetry [`Context`] it is started with
//!    (`Context::current()` for `start`/`in_span`), when that span context is
//!    valid (a span of this API, of another implementation, or a remote
//!    context that a propagator extracted);
//! 2. otherwise the current `tracing` span's obs context
//!    ([`crate::context::current_context`]), so a library's span opened
//!    inside an obs request span is its child, in the same trace;
//! 3. otherwise nothing: it starts a new trace.
//!
//! In the other direction, a `tracing` span that has no `tracing` parent
//! (with an obs context) takes the active span of the current OpenTelemetry
//! context as its parent: `tracing` code called inside `in_span`, outside
//! any `tracing` span, joins the OpenTelemetry span's trace. The layer looks
//! this up only for such would-be root spans (one thread-local read when no
//! OpenTelemetry context is attached), never for spans that have a `tracing`
//! parent (nor before the process has started an API span or extracted a
//! context with [`ObsPropagator`]) — so a `tracing` span inside an
//! OpenTelemetry span inside another
//! `tracing` span is a child of the outer `tracing` span (same trace, the
//! OpenTelemetry span skipped). Wrap such code in [`in_otel_context`] to
//! make the OpenTelemetry span its parent.
//!
//! # Sampling, limits and export
//!
//! Spans are sampled by the provider's [`Sampler`](crate::Sampler) with the
//! rules the layer applies (a parent's sampled flag, else the root rule).
//! An unsampled span only carries its ids (a valid, propagatable
//! [`SpanContext`](opentelemetry::trace::SpanContext)); it records nothing,
//! allocates nothing (but a copy of a non-empty inherited `tracestate`) and
//! [`is_recording`](ot::Span::is_recording) is
//! `false` (as it is when the provider has nowhere to export to). A sampled
//! span ends with [`end`](ot::Span::end), `end_with_timestamp` or its drop,
//! and joins the layer's bounded queue: a full queue drops and counts it in
//! [`TraceStats`](crate::TraceStats), and the exporter thread applies the
//! provider's redaction before export.
//!
//! Attributes beyond `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT` and events beyond
//! `OTEL_SPAN_EVENT_COUNT_LIMIT` are dropped and counted in the exported
//! span's dropped counts, as the layer does; an event keeps at most as many
//! attributes as a span. obs's exported links carry no attributes, so link
//! attributes are dropped, and links beyond [`MAX_LINKS`] too; both are
//! counted in [`ApiStats`]. Array attribute values become strings
//! (`[1,2,3]`, `["a","b"]`), since obs's attribute values are scalar.
//!
//! The instrumentation scope of a span is its tracer's name. obs's exported
//! spans hold the scope as a `&'static str`, so names are interned once per
//! process: at most [`MAX_SCOPES`] distinct names of at most
//! [`MAX_SCOPE_LEN`] bytes; a tracer whose name does not fit gets the scope
//! [`OVERFLOW_SCOPE`], counted in [`ApiStats::scope_overflow`].
//! Attribute keys are interned the same way on the exporter thread (at most
//! 4 096 keys of at most 128 bytes per process; other keys are copied).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::SystemTime;

use obs_core::{SpanId, TraceFlags, TraceId};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{self as ot, TraceContextExt as _};
use opentelemetry::{Context, InstrumentationScope};

use crate::propagation::{self, Baggage, Propagators, TraceState};
use crate::raw::{RawSpan, RawStr, Recording, RecordingIds};
use crate::span::{FinishedSpan, KeyValue, Link, SpanEvent, SpanKind, Status, Value};
use crate::{Shared, TracerProvider};

/// The most distinct tracer names interned per process.
pub const MAX_SCOPES: usize = 256;
/// The longest tracer name interned, in bytes.
pub const MAX_SCOPE_LEN: usize = 256;
/// The scope of spans whose tracer name could not be interned.
pub const OVERFLOW_SCOPE: &str = "opentelemetry-api.overflow";
/// The most links a span keeps (the OpenTelemetry SDK's default limit).
pub const MAX_LINKS: usize = 128;

#[derive(Debug, Default)]
struct Counters {
    scope_overflow: AtomicU64,
    dropped_links: AtomicU64,
    dropped_link_attributes: AtomicU64,
    dropped_event_attributes: AtomicU64,
}

/// What the API adapter lost that no exported span can report: cheap to
/// clone and read (atomics).
#[derive(Clone, Debug, Default)]
pub struct ApiStats {
    c: Arc<Counters>,
}

impl ApiStats {
    /// Tracers created whose name could not be interned (see
    /// [`MAX_SCOPES`]); their spans carry [`OVERFLOW_SCOPE`].
    pub fn scope_overflow(&self) -> u64 {
        self.c.scope_overflow.load(Ordering::Relaxed)
    }

    /// Links dropped because a span already had [`MAX_LINKS`].
    pub fn dropped_links(&self) -> u64 {
        self.c.dropped_links.load(Ordering::Relaxed)
    }

    /// Link attributes dropped (obs exports links without attributes).
    pub fn dropped_link_attributes(&self) -> u64 {
        self.c.dropped_link_attributes.load(Ordering::Relaxed)
    }

    /// Event attributes dropped beyond the span attribute limit.
    pub fn dropped_event_attributes(&self) -> u64 {
        self.c.dropped_event_attributes.load(Ordering::Relaxed)
    }
}

/// The interned tracer names (process-wide, bounded).
fn scopes() -> &'static RwLock<HashMap<Box<str>, &'static str>> {
    static SCOPES: OnceLock<RwLock<HashMap<Box<str>, &'static str>>> = OnceLock::new();
    SCOPES.get_or_init(Default::default)
}

/// `name` as a `&'static str`, or `None` when the intern table is full or
/// the name too long.
fn intern(name: &str) -> Option<&'static str> {
    if let Some(s) = scopes()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
    {
        return Some(s);
    }
    if name.len() > MAX_SCOPE_LEN {
        return None;
    }
    let mut table = scopes().write().unwrap_or_else(PoisonError::into_inner);
    if let Some(s) = table.get(name) {
        return Some(s);
    }
    if table.len() >= MAX_SCOPES {
        return None;
    }
    // Bounded by MAX_SCOPES * MAX_SCOPE_LEN bytes for the whole process.
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    table.insert(name.into(), leaked);
    Some(leaked)
}

/// What the provider, its tracers and their recording spans share.
#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    stats: ApiStats,
}

/// An [`opentelemetry::trace::TracerProvider`] backed by an obs
/// [`TracerProvider`]: get it from [`TracerProvider::otel_api`], or install
/// it globally with [`install_global`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OtelTracerProvider {
    inner: Arc<Inner>,
}

impl TracerProvider {
    /// This pipeline behind the OpenTelemetry API: spans that libraries
    /// create through it are sampled, parented and exported as the layer's.
    pub fn otel_api(&self) -> OtelTracerProvider {
        OtelTracerProvider {
            inner: Arc::new(Inner {
                shared: self.shared.clone(),
                stats: ApiStats::default(),
            }),
        }
    }
}

impl OtelTracerProvider {
    /// What the adapter dropped (scope names, links, event attributes).
    pub fn stats(&self) -> ApiStats {
        self.inner.stats.clone()
    }

    /// A tracer named `name` (the instrumentation scope of its spans).
    fn tracer_named(&self, name: &str) -> OtelTracer {
        let scope = intern(name).unwrap_or_else(|| {
            self.inner
                .stats
                .c
                .scope_overflow
                .fetch_add(1, Ordering::Relaxed);
            OVERFLOW_SCOPE
        });
        OtelTracer {
            inner: self.inner.clone(),
            scope,
        }
    }
}

impl ot::TracerProvider for OtelTracerProvider {
    type Tracer = OtelTracer;

    fn tracer_with_scope(&self, scope: InstrumentationScope) -> OtelTracer {
        self.tracer_named(scope.name())
    }
}

/// Installs `provider` behind `opentelemetry::global` (the tracer provider
/// and, unless `OTEL_PROPAGATORS=none`, the text-map propagator: obs's W3C
/// Trace Context and Baggage, see [`ObsPropagator`]). Returns the installed
/// provider, whose [`stats`](OtelTracerProvider::stats) stay readable.
pub fn install_global(provider: &TracerProvider) -> OtelTracerProvider {
    let api = provider.otel_api();
    opentelemetry::global::set_tracer_provider(api.clone());
    let propagators = provider.propagators();
    if propagators != Propagators::NONE {
        opentelemetry::global::set_text_map_propagator(ObsPropagator::new(propagators));
    }
    api
}

/// A tracer of an [`OtelTracerProvider`].
#[derive(Clone, Debug)]
pub struct OtelTracer {
    inner: Arc<Inner>,
    scope: &'static str,
}

impl OtelTracer {
    /// The instrumentation scope of this tracer's spans.
    pub fn scope(&self) -> &'static str {
        self.scope
    }
}

/// The ids a new span inherits.
struct Parent {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
    remote: bool,
    /// Exactly one of the two is filled from the parent; the other is
    /// derived only when needed.
    ot_state: Option<ot::TraceState>,
    obs_state: Option<TraceState>,
}

fn obs_trace_id(t: ot::TraceId) -> TraceId {
    TraceId::from_bytes(t.to_bytes())
}

fn obs_span_id(s: ot::SpanId) -> SpanId {
    SpanId::from_bytes(s.to_bytes())
}

fn obs_state_of(ts: &ot::TraceState) -> TraceState {
    if *ts == ot::TraceState::NONE {
        return TraceState::default();
    }
    let header = ts.header();
    TraceState::parse([header.as_bytes()]).unwrap_or_default()
}

fn ot_state_of(ts: &TraceState) -> ot::TraceState {
    if ts.is_empty() {
        return ot::TraceState::NONE;
    }
    ts.as_str().parse().unwrap_or(ot::TraceState::NONE)
}

fn obs_span_context(sc: &ot::SpanContext) -> propagation::SpanContext {
    propagation::SpanContext {
        trace_id: obs_trace_id(sc.trace_id()),
        span_id: obs_span_id(sc.span_id()),
        trace_flags: TraceFlags::from_byte(sc.trace_flags().to_u8()),
        trace_state: obs_state_of(sc.trace_state()),
        is_remote: sc.is_remote(),
    }
}

fn ot_span_context(cx: &propagation::SpanContext) -> ot::SpanContext {
    ot::SpanContext::new(
        ot::TraceId::from_bytes(cx.trace_id.to_bytes()),
        ot::SpanId::from_bytes(cx.span_id.to_bytes()),
        ot::TraceFlags::new(cx.trace_flags.to_byte()),
        cx.is_remote,
        ot_state_of(&cx.trace_state),
    )
}

/// The parent of a span started in `cx`: its active span, else the current
/// `tracing` span's obs context.
#[inline]
fn parent_in(cx: &Context) -> Option<Parent> {
    if cx.has_active_span() {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            return Some(Parent {
                trace_id: obs_trace_id(sc.trace_id()),
                span_id: obs_span_id(sc.span_id()),
                flags: TraceFlags::from_byte(sc.trace_flags().to_u8()),
                remote: sc.is_remote(),
                ot_state: Some(sc.trace_state().clone()),
                obs_state: None,
            });
        }
    }
    let cx = crate::context::current_context()?;
    Some(Parent {
        trace_id: cx.trace_id,
        span_id: cx.span_id,
        flags: cx.trace_flags,
        remote: cx.is_remote,
        ot_state: None,
        obs_state: Some(cx.trace_state),
    })
}

/// The ids (and into `trace_state` the trace state) of the active span of
/// the current OpenTelemetry context: the parent the layer gives a
/// `tracing` span that has no `tracing` parent.
#[cold]
#[inline(never)]
fn otel_parent_slow(
    cx: &Context,
    trace_state: &mut TraceState,
) -> Option<(TraceId, SpanId, TraceFlags, bool)> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    *trace_state = obs_state_of(sc.trace_state());
    Some((
        obs_trace_id(sc.trace_id()),
        obs_span_id(sc.span_id()),
        TraceFlags::from_byte(sc.trace_flags().to_u8()),
        sc.is_remote(),
    ))
}

/// Whether this process has started an API span or extracted a context
/// with [`ObsPropagator`]: until then the layer does not look at the
/// OpenTelemetry context at all.
static API_USED: AtomicBool = AtomicBool::new(false);

#[inline]
fn mark_used() {
    if !API_USED.load(Ordering::Relaxed) {
        API_USED.store(true, Ordering::Relaxed);
    }
}

#[inline]
pub(crate) fn current_parent(
    trace_state: &mut TraceState,
) -> Option<(TraceId, SpanId, TraceFlags, bool)> {
    if !API_USED.load(Ordering::Relaxed) {
        return None;
    }
    Context::map_current(|cx| {
        if cx.has_active_span() {
            otel_parent_slow(cx, trace_state)
        } else {
            None
        }
    })
}

fn kind_of(k: &ot::SpanKind) -> SpanKind {
    match k {
        ot::SpanKind::Client => SpanKind::Client,
        ot::SpanKind::Server => SpanKind::Server,
        ot::SpanKind::Producer => SpanKind::Producer,
        ot::SpanKind::Consumer => SpanKind::Consumer,
        ot::SpanKind::Internal => SpanKind::Internal,
    }
}

/// Sets the name of `rec`: a static name as the recording's static name
/// (nothing copied), an owned one moved into the recording.
fn set_name(rec: &mut Recording, name: Cow<'static, str>) {
    match name {
        Cow::Borrowed(s) => {
            rec.meta_name = s;
            rec.name = None;
        }
        Cow::Owned(s) => rec.name = Some(RawStr::Heap(s)),
    }
}

impl ot::Tracer for OtelTracer {
    type Span = OtelSpan;

    fn build_with_context(&self, builder: ot::SpanBuilder, parent_cx: &Context) -> OtelSpan {
        let shared = &*self.inner.shared;
        mark_used();
        if shared.disabled || parent_cx.is_telemetry_suppressed() {
            return OtelSpan::none();
        }
        let parent = parent_in(parent_cx);
        let span_id = SpanId::random();
        let (trace_id, parent_flags) = match &parent {
            Some(p) => (p.trace_id, Some(p.flags)),
            None => (TraceId::random(), None),
        };
        let sampled = shared.sampler.should_sample(parent_flags, trace_id);
        let flags = parent_flags.unwrap_or_default().with_sampled(sampled);
        let (parent_id, parent_remote) = match &parent {
            Some(p) => (Some(p.span_id), p.remote),
            None => (None, false),
        };
        let (ot_state, obs_state) = match parent {
            Some(Parent {
                ot_state: Some(s), ..
            }) => (s, None),
            Some(Parent {
                obs_state: Some(s), ..
            }) => (ot_state_of(&s), Some(s)),
            _ => (ot::TraceState::NONE, None),
        };
        let cx = ot::SpanContext::new(
            ot::TraceId::from_bytes(trace_id.to_bytes()),
            ot::SpanId::from_bytes(span_id.to_bytes()),
            ot::TraceFlags::new(flags.to_byte()),
            false,
            ot_state,
        );
        let Some(pipeline) = shared.pipeline.as_ref().filter(|_| sampled) else {
            return OtelSpan {
                cx,
                rec: None,
                sink: None,
            };
        };
        let ot::SpanBuilder {
            span_kind,
            name,
            start_time,
            attributes,
            events,
            links,
        } = builder;
        let ids = RecordingIds {
            trace_id,
            span_id,
            parent: parent_id,
            parent_remote,
            flags,
            meta_name: "",
            scope: self.scope,
        };
        let start = start_time.unwrap_or_else(SystemTime::now);
        let mut rec = pipeline.pool.recording(ids, start);
        rec.trace_state = match obs_state {
            Some(s) => s,
            None => obs_state_of(cx.trace_state()),
        };
        set_name(&mut rec, name);
        if let Some(k) = &span_kind {
            rec.kind = kind_of(k);
        }
        let mut span = OtelSpan {
            cx,
            rec: Some(rec),
            sink: Some(self.inner.clone()),
        };
        if let Some(mut attrs) = attributes {
            span.take_attributes(&mut attrs);
        }
        for e in events.into_iter().flatten() {
            span.push_event(e.name, e.timestamp, e.attributes);
        }
        for l in links.into_iter().flatten() {
            span.push_link(l);
        }
        span
    }
}

/// A span of an [`OtelTracer`]: recording (and exported when it ends) only
/// when sampled.
pub struct OtelSpan {
    cx: ot::SpanContext,
    rec: Option<Box<Recording>>,
    sink: Option<Arc<Inner>>,
}

impl fmt::Debug for OtelSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelSpan")
            .field("span_context", &self.cx)
            .field("recording", &self.rec.is_some())
            .finish()
    }
}

impl OtelSpan {
    fn none() -> Self {
        Self {
            cx: ot::SpanContext::NONE,
            rec: None,
            sink: None,
        }
    }

    fn max_attributes(&self) -> usize {
        self.sink.as_ref().map_or(0, |s| s.shared.max_attributes)
    }

    /// Moves the builder's attributes into the recording, up to the limit
    /// (the builder's keys are not de-duplicated, as the API specifies).
    fn take_attributes(&mut self, attrs: &mut Vec<opentelemetry::KeyValue>) {
        let max = self.max_attributes();
        let Some(rec) = self.rec.as_mut() else { return };
        let room = max.saturating_sub(rec.otel.attributes.len());
        if attrs.len() > room {
            rec.dropped_attributes += (attrs.len() - room) as u32;
            attrs.truncate(room);
        }
        // Moved, not swapped: `attrs` is freed here, on its own thread.
        rec.otel.attributes.append(attrs);
    }

    fn push_event(
        &mut self,
        name: Cow<'static, str>,
        time: SystemTime,
        mut attributes: Vec<opentelemetry::KeyValue>,
    ) {
        let (Some(rec), Some(sink)) = (self.rec.as_mut(), self.sink.as_ref()) else {
            return;
        };
        if rec.otel.events.len() >= sink.shared.max_events {
            rec.dropped_events += 1;
            return;
        }
        let max = sink.shared.max_attributes;
        if attributes.len() > max {
            let n = attributes.len() - max;
            attributes.truncate(max);
            sink.stats
                .c
                .dropped_event_attributes
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        rec.otel.push_event(name, time, &mut attributes);
    }

    fn push_link(&mut self, link: ot::Link) {
        let (Some(rec), Some(sink)) = (self.rec.as_mut(), self.sink.as_ref()) else {
            return;
        };
        if !link.span_context.is_valid() {
            return;
        }
        let c = &sink.stats.c;
        if rec.otel.links.len() >= MAX_LINKS {
            c.dropped_links.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let dropped = link.attributes.len() as u64 + u64::from(link.dropped_attributes_count);
        if dropped > 0 {
            c.dropped_link_attributes
                .fetch_add(dropped, Ordering::Relaxed);
        }
        rec.otel.links.push(link.span_context);
    }

    fn finish(&mut self, end: SystemTime) {
        let (Some(mut rec), Some(sink)) = (self.rec.take(), self.sink.take()) else {
            return;
        };
        if let Some(pipeline) = &sink.shared.pipeline {
            rec.end = end;
            pipeline.submit(RawSpan(rec));
        }
    }
}

impl ot::Span for OtelSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        attributes: Vec<opentelemetry::KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        if self.rec.is_some() {
            self.push_event(name.into(), timestamp, attributes);
        }
    }

    fn span_context(&self) -> &ot::SpanContext {
        &self.cx
    }

    fn is_recording(&self) -> bool {
        self.rec.is_some()
    }

    fn set_attribute(&mut self, attribute: opentelemetry::KeyValue) {
        let max = self.max_attributes();
        let Some(rec) = self.rec.as_mut() else { return };
        let attrs = &mut rec.otel.attributes;
        if let Some(kv) = attrs.iter_mut().find(|kv| kv.key == attribute.key) {
            kv.value = attribute.value;
        } else if attrs.len() < max {
            attrs.push(attribute);
        } else {
            rec.dropped_attributes += 1;
        }
    }

    fn set_status(&mut self, status: ot::Status) {
        let Some(rec) = self.rec.as_mut() else { return };
        // `Ok` is final; `Unset` changes nothing (the API's rules).
        match status {
            ot::Status::Unset => {}
            _ if rec.status == Status::Ok => {}
            ot::Status::Ok => rec.status = Status::Ok,
            ot::Status::Error { description } => rec.status = Status::Error(description),
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if let Some(rec) = self.rec.as_mut() {
            set_name(rec, new_name.into());
        }
    }

    fn add_link(
        &mut self,
        span_context: ot::SpanContext,
        attributes: Vec<opentelemetry::KeyValue>,
    ) {
        if self.rec.is_some() {
            self.push_link(ot::Link::new(span_context, attributes, 0));
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        self.finish(timestamp);
    }
}

impl Drop for OtelSpan {
    fn drop(&mut self) {
        if self.rec.is_some() {
            self.finish(SystemTime::now());
        }
    }
}

/// What a span started through the API records beyond the layer's
/// recording, in the API's own types: moved in on the application thread,
/// converted on the exporter thread. The buffers travel back to the
/// application thread with their recording's box (emptied, capacity kept),
/// and the API's own vectors (a builder's attributes, an event's) are
/// emptied into them and freed where they were allocated: a vector freed on
/// the exporter thread would leave the application thread's allocator
/// cache empty and make its next allocation take the slow path.
#[derive(Default)]
pub(crate) struct OtelData {
    attributes: Vec<opentelemetry::KeyValue>,
    events: Vec<EventData>,
    /// The attributes of every event, in order (`EventData::attributes`).
    event_attributes: Vec<opentelemetry::KeyValue>,
    links: Vec<ot::SpanContext>,
}

impl OtelData {
    /// Whether nothing was recorded through the OpenTelemetry API.
    pub(crate) fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.events.is_empty() && self.links.is_empty()
    }
}

struct EventData {
    name: Cow<'static, str>,
    time: SystemTime,
    attributes: usize,
}

/// Buffers larger than this many elements are not kept for reuse.
const KEEP_CAPACITY: usize = 32;

fn keep<T>(v: &mut Vec<T>) {
    if v.capacity() > KEEP_CAPACITY {
        *v = Vec::new();
    }
}

impl OtelData {
    fn push_event(
        &mut self,
        name: Cow<'static, str>,
        time: SystemTime,
        attrs: &mut Vec<opentelemetry::KeyValue>,
    ) {
        self.events.push(EventData {
            name,
            time,
            attributes: attrs.len(),
        });
        self.event_attributes.append(attrs);
    }

    /// Adds the recorded data to `span` (on the exporter thread), leaving
    /// the buffers empty.
    pub(crate) fn finish(&mut self, span: &mut FinishedSpan) {
        if !self.attributes.is_empty() {
            span.attributes.reserve(self.attributes.len());
            span.attributes
                .extend(self.attributes.drain(..).map(key_value));
        }
        if !self.events.is_empty() {
            span.events.reserve(self.events.len());
            let mut attrs = self.event_attributes.drain(..);
            for e in self.events.drain(..) {
                span.events.push(SpanEvent {
                    name: e.name,
                    time: e.time,
                    attributes: attrs.by_ref().take(e.attributes).map(key_value).collect(),
                });
            }
        }
        span.links.extend(self.links.drain(..).map(|sc| Link {
            trace_id: obs_trace_id(sc.trace_id()),
            span_id: obs_span_id(sc.span_id()),
            trace_flags: TraceFlags::from_byte(sc.trace_flags().to_u8()),
            trace_state: obs_state_of(sc.trace_state()),
        }));
        keep(&mut self.attributes);
        keep(&mut self.events);
        keep(&mut self.event_attributes);
        keep(&mut self.links);
    }
}

/// The most attribute keys interned per process (see [`key_of`]).
const MAX_KEYS: usize = 4096;
/// The longest attribute key interned, in bytes.
const MAX_KEY_LEN: usize = 128;
static KEYS_INTERNED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The exporter thread's interned attribute keys.
    static KEYS: RefCell<HashMap<Box<str>, &'static str>> = RefCell::new(HashMap::new());
}

/// An attribute key as obs's exported spans hold it. The API's keys are
/// almost always a small set of constants, but `opentelemetry::Key` never
/// hands out a `&'static str`: the exporter thread interns them (at most
/// [`MAX_KEYS`] keys of at most [`MAX_KEY_LEN`] bytes per process) instead
/// of allocating a string for every attribute of every span; keys beyond
/// that are copied.
fn key_of(key: opentelemetry::Key) -> Cow<'static, str> {
    let found = KEYS.try_with(|keys| {
        let mut keys = keys.borrow_mut();
        let k = key.as_str();
        if let Some(s) = keys.get(k) {
            return Some(*s);
        }
        if k.len() > MAX_KEY_LEN || KEYS_INTERNED.load(Ordering::Relaxed) >= MAX_KEYS {
            return None;
        }
        KEYS_INTERNED.fetch_add(1, Ordering::Relaxed);
        let leaked: &'static str = Box::leak(k.to_owned().into_boxed_str());
        keys.insert(k.into(), leaked);
        Some(leaked)
    });
    match found {
        Ok(Some(s)) => Cow::Borrowed(s),
        _ => Cow::Owned(String::from(key)),
    }
}

fn key_value(kv: opentelemetry::KeyValue) -> KeyValue {
    KeyValue {
        key: key_of(kv.key),
        value: value(kv.value),
    }
}

fn value(v: opentelemetry::Value) -> Value {
    match v {
        opentelemetry::Value::Bool(b) => Value::Bool(b),
        opentelemetry::Value::I64(i) => Value::I64(i),
        opentelemetry::Value::F64(f) => Value::F64(f),
        opentelemetry::Value::String(s) => Value::Str(Cow::Owned(String::from(s))),
        // Arrays (and any later variant) as their text.
        other => Value::Str(Cow::Owned(other.to_string())),
    }
}

/// Runs `f`; the first `tracing` span it creates is a child of the active
/// span of `cx` (when that span context is valid), whatever `tracing` span
/// encloses it. For `tracing` code called inside an OpenTelemetry span that
/// is itself inside a `tracing` span (see the module documentation).
///
/// ```
/// use obs_trace::{TracerProvider, context, export::InMemoryExporter, otel_api};
/// use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let provider = TracerProvider::builder().with_exporter(InMemoryExporter::default()).build()?;
/// let tracer = provider.otel_api().tracer("lib");
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(provider.layer()), || {
///     let _request = tracing::info_span!("request").entered();
///     tracer.in_span("lib.call", |cx| {
///         let inner = otel_api::in_otel_context(&cx, || tracing::info_span!("inner"));
///         let inner = context::span_context(&inner).unwrap();
///         let lib = cx.span().span_context().clone();
///         assert_eq!(inner.trace_id.to_bytes(), lib.trace_id().to_bytes());
///     });
/// });
/// # Ok::<(), obs_trace::Error>(())
/// ```
pub fn in_otel_context<T>(cx: &Context, f: impl FnOnce() -> T) -> T {
    let parent = cx
        .has_active_span()
        .then(|| obs_span_context(cx.span().span_context()))
        .filter(|p| p.trace_id.is_valid() && p.span_id.is_valid());
    match parent {
        Some(p) => crate::context::in_remote_context(
            &propagation::Extracted {
                parent: Some(p),
                baggage: Baggage::default(),
            },
            f,
        ),
        None => f(),
    }
}

const F_TRACEPARENT: &str = obs_core::names::header::TRACEPARENT;
const F_TRACESTATE: &str = obs_core::names::header::TRACESTATE;
const F_BAGGAGE: &str = obs_core::names::header::BAGGAGE;

/// obs's W3C Trace Context and Baggage propagation (the same parsing rules
/// as [`crate::propagation`]) behind the OpenTelemetry
/// [`TextMapPropagator`] API: what [`install_global`] installs.
///
/// Injecting from a context without an active span writes the current
/// `tracing` span's obs context (and baggage), so a library that injects
/// with `global::get_text_map_propagator` inside an obs request span
/// propagates that request's trace.
#[derive(Debug)]
pub struct ObsPropagator {
    propagators: Propagators,
    fields: Vec<String>,
}

impl ObsPropagator {
    /// The formats `propagators` turns on.
    pub fn new(propagators: Propagators) -> Self {
        let mut fields = Vec::new();
        if propagators.trace_context {
            fields.push(F_TRACEPARENT.to_owned());
            fields.push(F_TRACESTATE.to_owned());
        }
        if propagators.baggage {
            fields.push(F_BAGGAGE.to_owned());
        }
        Self {
            propagators,
            fields,
        }
    }
}

impl Default for ObsPropagator {
    fn default() -> Self {
        Self::new(Propagators::default())
    }
}

impl TextMapPropagator for ObsPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        use opentelemetry::baggage::BaggageExt as _;
        let active = cx.has_active_span().then(|| cx.span());
        let from_otel = active
            .as_ref()
            .map(|s| s.span_context())
            .filter(|sc| sc.is_valid());
        if self.propagators.trace_context {
            let obs_cx = match from_otel {
                Some(sc) => Some(obs_span_context(sc)),
                None => crate::context::current_context(),
            };
            if let Some(c) = obs_cx {
                injector.set(F_TRACEPARENT, c.traceparent().as_str().to_owned());
                if !c.trace_state.is_empty() {
                    injector.set(F_TRACESTATE, c.trace_state.as_str().to_owned());
                }
            }
        }
        if self.propagators.baggage {
            let ot_baggage = cx.baggage();
            let header = if !ot_baggage.is_empty() {
                let mut b = Baggage::new();
                for (k, (v, meta)) in ot_baggage {
                    b.insert_with_properties(k.as_str(), v.as_str(), meta.as_str());
                }
                b.to_header_value()
            } else if from_otel.is_none() {
                crate::context::current_baggage()
                    .map(|b| b.to_header_value())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            if !header.is_empty() {
                injector.set(F_BAGGAGE, header);
            }
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        use opentelemetry::baggage::BaggageExt as _;
        mark_used();
        let mut out = None;
        if self.propagators.trace_context {
            // Two `traceparent` values make the context invalid.
            let single = match extractor.get_all(F_TRACEPARENT) {
                Some(all) if all.len() == 1 => Some(all[0]),
                Some(_) => None,
                None => extractor.get(F_TRACEPARENT),
            };
            if let Some(tp) = single
                && let Ok((trace_id, span_id, trace_flags)) =
                    propagation::parse_traceparent(tp.as_bytes())
            {
                let states = extractor
                    .get_all(F_TRACESTATE)
                    .unwrap_or_else(|| extractor.get(F_TRACESTATE).into_iter().collect());
                let parsed = propagation::SpanContext {
                    trace_id,
                    span_id,
                    trace_flags,
                    trace_state: TraceState::parse(states.iter().map(|s| s.as_bytes()))
                        .unwrap_or_default(),
                    is_remote: true,
                };
                out = Some(cx.with_remote_span_context(ot_span_context(&parsed)));
            }
        }
        if self.propagators.baggage {
            let values = extractor
                .get_all(F_BAGGAGE)
                .unwrap_or_else(|| extractor.get(F_BAGGAGE).into_iter().collect());
            let parsed = Baggage::parse(values.iter().map(|s| s.as_bytes()));
            if !parsed.is_empty() {
                let mut b = opentelemetry::baggage::Baggage::new();
                for e in parsed.entries() {
                    let _ = b.insert_with_metadata(
                        e.key.clone(),
                        e.value.clone(),
                        e.properties.clone().unwrap_or_default(),
                    );
                }
                out = Some(out.as_ref().unwrap_or(cx).with_baggage(b));
            }
        }
        out.unwrap_or_else(|| cx.clone())
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        opentelemetry::propagation::text_map_propagator::FieldIter::new(&self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_bounded_and_stable() {
        let a = intern("otel_api.test.scope").unwrap();
        let b = intern(&String::from("otel_api.test.scope")).unwrap();
        assert!(std::ptr::eq(a, b));
        assert!(intern(&"x".repeat(MAX_SCOPE_LEN + 1)).is_none());
    }

    #[test]
    fn keys_are_interned_once_and_long_keys_copied() {
        let a = key_of(opentelemetry::Key::new(String::from("otel_api.test.key")));
        let b = key_of(opentelemetry::Key::from_static_str("otel_api.test.key"));
        match (a, b) {
            (Cow::Borrowed(a), Cow::Borrowed(b)) => assert!(std::ptr::eq(a, b)),
            other => panic!("{other:?}"),
        }
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            key_of(opentelemetry::Key::new(long.clone())),
            Cow::<str>::Owned(long)
        );
    }

    #[test]
    fn values_map_to_obs_values() {
        use opentelemetry::{Array, StringValue};
        assert_eq!(value(true.into()), Value::Bool(true));
        assert_eq!(value(7_i64.into()), Value::I64(7));
        assert_eq!(value(1.5_f64.into()), Value::F64(1.5));
        assert_eq!(value("s".into()), Value::Str("s".into()));
        assert_eq!(
            value(opentelemetry::Value::Array(Array::I64(vec![1, 2]))),
            Value::Str("[1,2]".into())
        );
        assert_eq!(
            value(opentelemetry::Value::Array(Array::String(vec![
                StringValue::from("a"),
                StringValue::from("b")
            ]))),
            Value::Str("[\"a\",\"b\"]".into())
        );
    }
}
