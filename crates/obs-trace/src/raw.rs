//! What a sampled span carries between the application thread and the
//! exporter thread: attributes stored inline (no `Vec`, short strings
//! without a heap allocation), so that the application thread allocates as
//! little as possible: one box per sampled span, handed whole to the
//! exporter thread, which turns it into a public [`FinishedSpan`].

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use obs_core::{SpanId, TraceFlags, TraceId};

use crate::propagation::TraceState;
use crate::span::{FinishedSpan, KeyValue, Link, SpanEvent, SpanKind, Status, Value};

/// Strings up to this many bytes are stored inline.
const INLINE_STR: usize = 22;
/// Attributes stored inline before spilling into a `Vec`: enough for the
/// spans obs opens itself (an HTTP server span has 11 attributes, a gRPC
/// or HTTP client span fewer), so recording them allocates on the
/// application thread only for a string value longer than [`INLINE_STR`]
/// (a browser's user agent, a long gRPC method or URL).
const INLINE_ATTRS: usize = 12;

/// A string that lives inline when short.
#[derive(Clone)]
pub(crate) enum RawStr {
    Inline(u8, [u8; INLINE_STR]),
    Heap(String),
}

impl RawStr {
    pub(crate) fn new(s: &str) -> Self {
        if s.len() <= INLINE_STR {
            let mut b = [0u8; INLINE_STR];
            b[..s.len()].copy_from_slice(s.as_bytes());
            RawStr::Inline(s.len() as u8, b)
        } else {
            RawStr::Heap(s.to_owned())
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `&str`, so always valid UTF-8.
            RawStr::Inline(n, b) => std::str::from_utf8(&b[..*n as usize]).unwrap_or_default(),
            RawStr::Heap(s) => s,
        }
    }

    /// The bytes, as copied from a `&str` (always UTF-8; not checked again).
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            RawStr::Inline(n, b) => &b[..*n as usize],
            RawStr::Heap(s) => s.as_bytes(),
        }
    }

    fn into_string(self, recycler: &mut Recycler) -> String {
        match self {
            RawStr::Heap(s) => s,
            inline => recycler.string(inline.as_str()),
        }
    }
}

/// Formats into a [`RawStr`] without allocating when the text is short.
#[derive(Default)]
pub(crate) struct RawWriter {
    len: usize,
    buf: [u8; INLINE_STR],
    heap: Option<String>,
}

impl fmt::Write for RawWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(h) = &mut self.heap {
            h.push_str(s);
        } else if self.len + s.len() <= INLINE_STR {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            let mut h = String::with_capacity(self.len + s.len() + 16);
            h.push_str(std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default());
            h.push_str(s);
            self.heap = Some(h);
        }
        Ok(())
    }
}

impl RawWriter {
    pub(crate) fn finish(self) -> RawStr {
        match self.heap {
            Some(h) => RawStr::Heap(h),
            None => RawStr::Inline(self.len as u8, self.buf),
        }
    }
}

/// An attribute value as recorded on the application thread.
#[derive(Clone)]
pub(crate) enum RawValue {
    Bool(bool),
    I64(i64),
    F64(f64),
    Str(RawStr),
}

impl RawValue {
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            RawValue::Str(s) => Cow::Borrowed(s.as_str()),
            RawValue::Bool(b) => Cow::Owned(b.to_string()),
            RawValue::I64(i) => Cow::Owned(i.to_string()),
            RawValue::F64(f) => Cow::Owned(f.to_string()),
        }
    }

    fn into_value(self, recycler: &mut Recycler) -> Value {
        match self {
            RawValue::Bool(b) => Value::Bool(b),
            RawValue::I64(i) => Value::I64(i),
            RawValue::F64(f) => Value::F64(f),
            RawValue::Str(s) => Value::Str(Cow::Owned(s.into_string(recycler))),
        }
    }
}

/// Attributes: the first few inline, the rest in a `Vec`.
#[derive(Default)]
pub(crate) struct RawAttrs {
    inline: [Option<(&'static str, RawValue)>; INLINE_ATTRS],
    len: usize,
    spill: Vec<(&'static str, RawValue)>,
}

impl RawAttrs {
    pub(crate) fn len(&self) -> usize {
        self.len + self.spill.len()
    }

    /// Empties the attributes; only the used slots are touched (the rest
    /// are empty already).
    fn clear(&mut self) {
        for slot in &mut self.inline[..self.len] {
            *slot = None;
        }
        self.len = 0;
        self.spill.clear();
    }

    /// The attributes in the order they were recorded.
    #[cfg(feature = "otlp-proto")]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(&'static str, RawValue)> {
        self.inline[..self.len].iter().flatten().chain(&self.spill)
    }

    /// [`iter`](Self::iter), mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut (&'static str, RawValue)> {
        self.inline[..self.len]
            .iter_mut()
            .flatten()
            .chain(&mut self.spill)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut RawValue> {
        self.inline[..self.len]
            .iter_mut()
            .flatten()
            .chain(self.spill.iter_mut())
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    #[inline(always)]
    pub(crate) fn push(&mut self, key: &'static str, value: RawValue) {
        if self.len < INLINE_ATTRS {
            self.inline[self.len] = Some((key, value));
            self.len += 1;
        } else {
            self.spill.push((key, value));
        }
    }

    /// [`push`](Self::push) of a string, copied straight into its slot: a
    /// short string assembled on the stack and then moved would be read back
    /// with wide loads right after narrow stores (a store-forwarding stall
    /// that costs more than the copy itself).
    #[inline]
    pub(crate) fn push_str(&mut self, key: &'static str, s: &str) {
        if s.len() > INLINE_STR || self.len >= INLINE_ATTRS {
            self.push(key, RawValue::Str(RawStr::new(s)));
            return;
        }
        let slot = &mut self.inline[self.len];
        *slot = Some((
            key,
            RawValue::Str(RawStr::Inline(s.len() as u8, [0; INLINE_STR])),
        ));
        if let Some((_, RawValue::Str(RawStr::Inline(_, buf)))) = slot {
            buf[..s.len()].copy_from_slice(s.as_bytes());
        }
        self.len += 1;
    }

    /// The attributes as a list, leaving this empty.
    fn take_into(&mut self, recycler: &mut Recycler) -> Vec<KeyValue> {
        let mut out = recycler.list(self.len());
        let inline = self.inline[..self.len].iter_mut().filter_map(Option::take);
        for (k, v) in inline.chain(self.spill.drain(..)) {
            out.push(KeyValue {
                key: Cow::Borrowed(k),
                value: v.into_value(recycler),
            });
        }
        self.len = 0;
        out
    }
}

/// The recording of a sampled span, kept in its extensions until close and
/// then handed whole to the exporter thread.
pub(crate) struct Recording {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent: Option<SpanId>,
    pub(crate) parent_remote: bool,
    pub(crate) flags: TraceFlags,
    /// The span's trace state (its children inherit it while it is open).
    pub(crate) trace_state: TraceState,
    pub(crate) meta_name: &'static str,
    pub(crate) scope: &'static str,
    pub(crate) start: SystemTime,
    /// Set at close.
    pub(crate) end: SystemTime,
    pub(crate) name: Option<RawStr>,
    pub(crate) kind: SpanKind,
    pub(crate) attributes: RawAttrs,
    pub(crate) events: Vec<SpanEvent>,
    pub(crate) links: Vec<Link>,
    pub(crate) status: Status,
    pub(crate) dropped_attributes: u32,
    pub(crate) dropped_events: u32,
    /// What a span started through the OpenTelemetry API records (empty for
    /// the layer's spans).
    #[cfg(feature = "otel-api")]
    pub(crate) otel: crate::otel_api::OtelData,
    /// While a layer's span is open: its baggage, which its children
    /// inherit (dropped when it closes).
    pub(crate) baggage: Option<std::sync::Arc<crate::propagation::Baggage>>,
    /// While a layer's span is open: where it goes when it closes.
    pub(crate) sink: Option<std::sync::Arc<crate::Shared>>,
}

/// The ids and static names a recording starts with.
pub(crate) struct RecordingIds {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent: Option<SpanId>,
    pub(crate) parent_remote: bool,
    pub(crate) flags: TraceFlags,
    pub(crate) meta_name: &'static str,
    pub(crate) scope: &'static str,
}

impl Recording {
    pub(crate) fn new(ids: RecordingIds, start: SystemTime) -> Self {
        Self {
            trace_id: ids.trace_id,
            span_id: ids.span_id,
            parent: ids.parent,
            parent_remote: ids.parent_remote,
            flags: ids.flags,
            trace_state: TraceState::default(),
            meta_name: ids.meta_name,
            scope: ids.scope,
            start,
            end: start,
            name: None,
            kind: SpanKind::Internal,
            attributes: RawAttrs::default(),
            events: Vec::new(),
            links: Vec::new(),
            status: Status::Unset,
            dropped_attributes: 0,
            dropped_events: 0,
            #[cfg(feature = "otel-api")]
            otel: crate::otel_api::OtelData::default(),
            baggage: None,
            sink: None,
        }
    }

    /// The span's name: the one recorded (`otel.name`), else its callsite's.
    pub(crate) fn name_bytes(&self) -> &[u8] {
        match &self.name {
            Some(n) => n.as_bytes(),
            None => self.meta_name.as_bytes(),
        }
    }

    /// Makes a recording handed back by the exporter thread equal to
    /// [`new`](Self::new)'s, field by field. Its attributes, events, links
    /// and name were taken out on that thread (`take_finished`), or it was
    /// exported as it is and then emptied (`empty_exported`); the
    /// OpenTelemetry API's emptied buffers stay.
    fn reset(&mut self, ids: RecordingIds, start: SystemTime) {
        self.trace_id = ids.trace_id;
        self.span_id = ids.span_id;
        self.parent = ids.parent;
        self.parent_remote = ids.parent_remote;
        self.flags = ids.flags;
        self.trace_state = TraceState::default();
        self.meta_name = ids.meta_name;
        self.scope = ids.scope;
        self.start = start;
        self.end = start;
        self.name = None;
        self.kind = SpanKind::Internal;
        self.attributes.clear();
        self.events.clear();
        self.links.clear();
        self.status = Status::Unset;
        self.dropped_attributes = 0;
        self.dropped_events = 0;
        self.baggage = None;
        self.sink = None;
    }
}

impl Recording {
    /// Empties a recording exported as it is (straight from its fields),
    /// keeping its buffers' capacity for the span the box records next.
    pub(crate) fn empty_exported(&mut self) {
        self.name = None;
        self.attributes.clear();
        // A pooled box keeps small buffers only (it is about 0.6 KiB): a
        // span that had many events or links gives its buffers up.
        keep_small(&mut self.events);
        keep_small(&mut self.links);
        self.status = Status::Unset;
        self.trace_state = TraceState::default();
    }
}

/// Elements a pooled recording's event and link buffers keep room for at
/// most.
const KEEP_ELEMENTS: usize = 8;

/// Empties `v`, keeping its buffer only when it is small.
fn keep_small<T>(v: &mut Vec<T>) {
    if v.capacity() > KEEP_ELEMENTS {
        *v = Vec::new();
    } else {
        v.clear();
    }
}

/// A closed, sampled span on its way to the exporter thread: one pointer,
/// so a queue slot is small and a hand-over moves eight bytes.
pub(crate) struct RawSpan(pub(crate) Box<Recording>);

impl RawSpan {
    /// Whether the recording holds what only the public span can carry
    /// (data recorded through the OpenTelemetry API): such a span is
    /// exported as a [`FinishedSpan`], never straight from its recording.
    pub(crate) fn needs_finishing(&self) -> bool {
        #[cfg(feature = "otel-api")]
        {
            !self.0.otel.is_empty()
        }
        #[cfg(not(feature = "otel-api"))]
        {
            false
        }
    }

    /// The public span, and the emptied box for reuse (see [`BoxPool`]).
    /// Its strings and attribute list come from `recycler` when it has
    /// some.
    pub(crate) fn into_finished(self, recycler: &mut Recycler) -> (FinishedSpan, Box<Recording>) {
        let mut boxed = self.0;
        #[allow(unused_mut, reason = "completed only by the OpenTelemetry API's data")]
        let mut span = boxed.take_finished(recycler);
        // The OpenTelemetry API's buffers stay in the box, emptied, so that
        // their memory goes back to the application thread with it.
        #[cfg(feature = "otel-api")]
        boxed.otel.finish(&mut span);
        (span, boxed)
    }
}

impl Recording {
    /// An empty recording: the pool's reserve (a span's [`reset`](Self::reset)
    /// sets every field again), and what tests build theirs from.
    fn empty() -> Self {
        Self::new(
            RecordingIds {
                trace_id: TraceId::INVALID,
                span_id: SpanId::INVALID,
                parent: None,
                parent_remote: false,
                flags: TraceFlags::default(),
                meta_name: "",
                scope: "",
            },
            SystemTime::UNIX_EPOCH,
        )
    }

    /// The public span, taken out of the recording in place (a recording is
    /// about 0.6 KiB: moving it out of its box whole would copy all of it).
    /// What is left behind is overwritten when the box is reused.
    fn take_finished(&mut self, recycler: &mut Recycler) -> FinishedSpan {
        FinishedSpan {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent,
            parent_is_remote: self.parent_remote,
            trace_flags: self.flags,
            trace_state: std::mem::take(&mut self.trace_state),
            name: match self.name.take() {
                Some(n) => Cow::Owned(n.into_string(recycler)),
                None => Cow::Borrowed(self.meta_name),
            },
            kind: self.kind,
            start: self.start,
            end: self.end,
            attributes: self.attributes.take_into(recycler),
            events: std::mem::take(&mut self.events),
            links: std::mem::take(&mut self.links),
            status: std::mem::take(&mut self.status),
            scope: self.scope,
            dropped_attributes: self.dropped_attributes,
            dropped_events: self.dropped_events,
        }
    }
}

/// Boxes of recordings the exporter thread has emptied, handed back to the
/// application threads. A box allocated on one thread and freed on another
/// makes glibc's allocator take the arena lock of the allocating thread (a
/// futex wake on the application thread when both meet); reusing the boxes
/// keeps sampled spans off the allocator entirely in steady state.
#[derive(Debug, Default)]
#[allow(
    clippy::vec_box,
    reason = "the boxes themselves are what is reused: each travels to the exporter thread and back"
)]
pub(crate) struct BoxPool {
    boxes: std::sync::Mutex<Vec<Box<Recording>>>,
}

/// Boxes kept for reuse at most (about 0.6 KiB each).
const POOL_MAX: usize = 4096;

/// Free boxes the exporter thread keeps in the pool while sampled spans
/// flow (about 300 KiB): spans that end while that thread is off the CPU
/// take these instead of a new box on the application thread.
const POOL_RESERVE: usize = 512;

impl BoxPool {
    /// A new recording, in a reused box when one is free (reset in place:
    /// a recording built on the stack and moved into the box would write
    /// and copy all of its 0.6 KiB), else in a new box.
    #[inline]
    pub(crate) fn recording(&self, ids: RecordingIds, start: SystemTime) -> Box<Recording> {
        let reused = match self.boxes.try_lock() {
            Ok(mut b) => b.pop(),
            // Busy (the exporter is handing boxes back) or poisoned: allocate.
            Err(_) => None,
        };
        match reused {
            Some(mut b) => {
                b.reset(ids, start);
                b
            }
            None => Box::new(Recording::new(ids, start)),
        }
    }

    /// Takes back emptied boxes (dropping those beyond the pool's size).
    /// While spans flow (`returned` holds some), it also tops the pool up
    /// to [`POOL_RESERVE`] free boxes, allocated here, on the exporter
    /// thread, outside the lock: when that thread is next kept off the CPU,
    /// the spans that pile up meanwhile find boxes, and the application
    /// threads allocate none. A pipeline whose spans are all unsampled
    /// never returns a box and never fills the reserve.
    #[allow(clippy::vec_box, reason = "see BoxPool")]
    pub(crate) fn give_back(&self, returned: &mut Vec<Box<Recording>>) {
        if returned.is_empty() {
            return;
        }
        let free = self.put(returned);
        if free < POOL_RESERVE {
            returned.extend((free..POOL_RESERVE).map(|_| Box::new(Recording::empty())));
            self.put(returned);
        }
    }

    /// Moves `returned` into the pool, up to its size (the rest are dropped);
    /// the pool's free boxes then.
    #[allow(clippy::vec_box, reason = "see BoxPool")]
    fn put(&self, returned: &mut Vec<Box<Recording>>) -> usize {
        let mut boxes = self
            .boxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = POOL_MAX.saturating_sub(boxes.len());
        let n = returned.len().min(room);
        boxes.extend(returned.drain(..n));
        let free = boxes.len();
        drop(boxes);
        returned.clear();
        free
    }
}

/// The strings and attribute lists of exported spans, kept on the exporter
/// thread for the spans it builds next. Building a [`FinishedSpan`] copies
/// each short string out of its recording; without reuse that is an
/// allocation per string value and per span, and a free for each once the
/// batch is exported (about a third of the exporter thread's work per span).
/// Bounded: at most [`RECYCLE_STRINGS`] strings of up to
/// [`RECYCLE_STRING_CAPACITY`] bytes and [`RECYCLE_LISTS`] lists are kept;
/// the rest are freed as before.
#[derive(Debug, Default)]
pub(crate) struct Recycler {
    strings: Vec<String>,
    lists: Vec<Vec<KeyValue>>,
}

/// Strings kept for reuse at most.
const RECYCLE_STRINGS: usize = 8192;
/// Longer strings (a rare long URL or user agent) are freed, not kept.
const RECYCLE_STRING_CAPACITY: usize = 256;
/// Attribute lists kept for reuse at most.
const RECYCLE_LISTS: usize = 1024;
/// Longer attribute lists are freed, not kept.
const RECYCLE_LIST_CAPACITY: usize = 64;

impl Recycler {
    /// `s` in a reused string when one is kept, else in a new one.
    #[inline]
    fn string(&mut self, s: &str) -> String {
        match self.strings.pop() {
            Some(mut kept) => {
                kept.clear();
                kept.push_str(s);
                kept
            }
            None => s.to_owned(),
        }
    }

    /// An empty attribute list with room for `n`.
    #[inline]
    fn list(&mut self, n: usize) -> Vec<KeyValue> {
        match self.lists.pop() {
            Some(mut kept) => {
                kept.reserve(n);
                kept
            }
            None => Vec::with_capacity(n),
        }
    }

    fn keep(&mut self, s: Cow<'static, str>) {
        if let Cow::Owned(s) = s
            && s.capacity() <= RECYCLE_STRING_CAPACITY
            && self.strings.len() < RECYCLE_STRINGS
        {
            self.strings.push(s);
        }
    }

    /// Takes back an exported span's strings and attribute list.
    pub(crate) fn reclaim(&mut self, span: FinishedSpan) {
        let FinishedSpan {
            name,
            mut attributes,
            status,
            ..
        } = span;
        self.keep(name);
        for kv in attributes.drain(..) {
            self.keep(kv.key);
            if let Value::Str(s) = kv.value {
                self.keep(s);
            }
        }
        if attributes.capacity() <= RECYCLE_LIST_CAPACITY && self.lists.len() < RECYCLE_LISTS {
            self.lists.push(attributes);
        }
        if let Status::Error(m) = status {
            self.keep(m);
        }
    }
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recording")
            .field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn strings_inline_or_heap() {
        assert!(matches!(RawStr::new("short"), RawStr::Inline(5, _)));
        assert_eq!(RawStr::new("short").as_str(), "short");
        let long = "x".repeat(23);
        assert!(matches!(RawStr::new(&long), RawStr::Heap(_)));
        assert_eq!(
            RawStr::new(&long).into_string(&mut Recycler::default()),
            long
        );
        assert_eq!(RawStr::new("h\u{e9}llo").as_str(), "h\u{e9}llo");
    }

    #[test]
    fn writer_spills_to_heap() {
        let mut w = RawWriter::default();
        write!(w, "{}-{}", "a".repeat(10), "b".repeat(10)).unwrap();
        assert_eq!(
            w.finish().as_str(),
            format!("{}-{}", "a".repeat(10), "b".repeat(10))
        );
        let mut w = RawWriter::default();
        write!(w, "{}", "c".repeat(40)).unwrap();
        assert!(matches!(w.finish(), RawStr::Heap(s) if s.len() == 40));
    }

    #[test]
    fn attrs_spill_and_keep_order() {
        let mut a = RawAttrs::default();
        for (i, k) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .into_iter()
            .enumerate()
        {
            a.push(k, RawValue::I64(i as i64));
        }
        assert_eq!(a.len(), 8);
        *a.get_mut("g").unwrap() = RawValue::Bool(true);
        let v = a.take_into(&mut Recycler::default());
        assert_eq!(a.len(), 0);
        assert_eq!(
            v.iter().map(|kv| kv.key.as_ref()).collect::<String>(),
            "abcdefgh"
        );
        assert_eq!(v[6].value, Value::Bool(true));
    }

    #[test]
    fn exported_strings_and_lists_are_reused() {
        fn recording(path: &str) -> RawSpan {
            let mut rec = Recording::empty();
            rec.name = Some(RawStr::new("GET /items/{id}"));
            rec.attributes.push_str("url.path", path);
            rec.attributes
                .push("http.response.status_code", RawValue::I64(200));
            RawSpan(Box::new(rec))
        }
        fn addresses(span: &FinishedSpan) -> Vec<usize> {
            let mut a = vec![
                span.name.as_ptr() as usize,
                span.attributes.as_ptr() as usize,
            ];
            for kv in &span.attributes {
                if let Value::Str(s) = &kv.value {
                    a.push(s.as_ptr() as usize);
                }
            }
            a.sort_unstable();
            a
        }
        let mut r = Recycler::default();
        let (first, _) = recording("/items/1").into_finished(&mut r);
        let before = addresses(&first);
        r.reclaim(first);
        let (second, _) = recording("/items/2").into_finished(&mut r);
        assert_eq!(addresses(&second), before, "the same buffers, reused");
        assert_eq!(second.name, "GET /items/{id}");
        assert_eq!(second.attribute("url.path"), Some(&Value::from("/items/2")));
        assert_eq!(
            second.attribute("http.response.status_code"),
            Some(&Value::I64(200))
        );
        assert_eq!(second.attributes.len(), 2);

        // Bounded: long strings are not kept.
        let mut long = second;
        long.name = Cow::Owned("x".repeat(RECYCLE_STRING_CAPACITY + 1));
        long.attributes.clear();
        r.reclaim(long);
        assert!(
            r.strings
                .iter()
                .all(|s| s.capacity() <= RECYCLE_STRING_CAPACITY)
        );
    }

    #[test]
    fn a_reused_box_starts_as_a_new_recording() {
        let pool = BoxPool::default();
        let ids = || RecordingIds {
            trace_id: TraceId::from_bytes([7; 16]),
            span_id: SpanId::from_bytes([8; 8]),
            parent: None,
            parent_remote: false,
            flags: TraceFlags::SAMPLED,
            meta_name: "fresh",
            scope: "tests",
        };
        let mut used = Recording::empty();
        used.name = Some(RawStr::new("old"));
        used.kind = SpanKind::Server;
        used.attributes.push_str("url.path", "/old");
        used.status = Status::Error("old".into());
        used.dropped_events = 3;
        let (_, emptied) = RawSpan(Box::new(used)).into_finished(&mut Recycler::default());
        let address = &*emptied as *const Recording as usize;
        pool.give_back(&mut vec![emptied]);

        // The pool holds the box given back and its reserve, topped up
        // beside it; every box it hands out starts as a new recording.
        let start = SystemTime::now();
        let mut reused = false;
        let mut handed = Vec::new();
        for _ in 0..POOL_RESERVE {
            let rec = pool.recording(ids(), start);
            reused |= &*rec as *const Recording as usize == address;
            assert_eq!(rec.trace_id, TraceId::from_bytes([7; 16]));
            assert_eq!(rec.meta_name, "fresh");
            assert_eq!((rec.start, rec.end), (start, start));
            assert!(rec.name.is_none());
            assert_eq!(rec.kind, SpanKind::Internal);
            assert_eq!(rec.attributes.len(), 0);
            assert!(rec.attributes.inline.iter().all(Option::is_none));
            assert!(rec.events.is_empty() && rec.links.is_empty());
            assert_eq!(rec.status, Status::Unset);
            assert_eq!((rec.dropped_attributes, rec.dropped_events), (0, 0));
            handed.push(rec);
        }
        assert!(reused, "the box given back is reused");
        assert!(
            pool.boxes.lock().unwrap().is_empty(),
            "the reserve is {POOL_RESERVE}"
        );
        // An empty pool hands out a new box.
        assert_eq!(pool.recording(ids(), start).attributes.len(), 0);
        // Given back, they stay (the reserve is full: nothing is added).
        pool.give_back(&mut handed);
        assert_eq!(pool.boxes.lock().unwrap().len(), POOL_RESERVE);
        // No box given back, no reserve: a pipeline of unsampled spans
        // allocates none.
        let idle = BoxPool::default();
        idle.give_back(&mut Vec::new());
        assert!(idle.boxes.lock().unwrap().is_empty());
    }
}
