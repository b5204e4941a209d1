//! The id record: how pillars share ids without depending on each other.
//!
//! A pillar that knows an id (the trace layer knows `trace_id`/`span_id`, the
//! correlation layer knows `correlation_id`) stores it in an [`IdRecord`] in the
//! `tracing` span's extensions with [`IdRecord::update`]. A pillar that needs
//! ids (the log layer, metric exemplars, error reports) reads them with
//! [`IdRecord::resolve`] inside a `Layer`, or [`IdRecord::current`] anywhere
//! else. Neither side knows who wrote the record.
//!
//! The record lives in the span's one [`SpanRecord`], next to the fields a
//! log layer rendered for the span: every pillar that opens a span writes
//! into the same extension, so a span costs one allocation in its registry
//! slot however many of obs's layers see it.

use std::cell::Cell;

use crate::spans::{Found, SpanEntry as _};
use crate::{CorrelationId, SpanId, TraceFlags, TraceId};

/// The ids of one span (or, once resolved, of the innermost spans that carry them).
///
/// Fields are independent: a span may carry only a correlation id (set by the
/// correlation layer on a request span) while its child carries only trace
/// ids. [`resolve`](Self::resolve) merges them, nearest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdRecord {
    /// The W3C trace id, when a tracer assigned one.
    pub trace_id: Option<TraceId>,
    /// The span's own W3C span id, when a tracer assigned one.
    pub span_id: Option<SpanId>,
    /// W3C trace flags; [`TraceFlags::is_sampled`] tells whether the span is recorded.
    pub trace_flags: TraceFlags,
    /// The correlation (request) id of the work this span belongs to.
    pub correlation_id: Option<CorrelationId>,
}

/// What obs's layers keep for one span, in one extension of its registry
/// slot: the span's [`IdRecord`] (the id-record contract), the fields a
/// log layer rendered for it, and the state of the layer that records it
/// for export. A layer that opens a span writes its part into the span's
/// `SpanRecord`, creating it when it is the first
/// ([`SpanRecord::update`]); one allocation per span instead of one per
/// layer.
#[derive(Debug, Default)]
pub struct SpanRecord {
    /// The span's ids.
    pub ids: IdRecord,
    /// The span's fields as a log layer rendered them; `None` when no log
    /// layer opened the span.
    pub fields: Option<RenderedFields>,
    /// The recording layer's own state for the span (obs-trace's recording
    /// of a sampled span); empty when no such layer keeps any.
    pub state: StateSlot,
}

/// A layer's own state for one span, kept in the span's [`SpanRecord`]
/// (see [`StateSlot`]).
pub trait SpanState: std::any::Any + Send + Sync {
    /// The span closed: its record is being dropped, and the state with it.
    /// The layer gets its box back, owned (a recording goes to its exporter
    /// without being copied or boxed again).
    fn close(self: Box<Self>);
}

/// Where one layer keeps its state for a span, inside the span's
/// [`SpanRecord`]: a box the layer made (obs-trace takes a sampled span's
/// from a pool of its own, so that state costs no allocation per span),
/// typed by the layer and found again with [`get`](Self::get) and
/// [`get_mut`](Self::get_mut). When the record is dropped (the registry
/// drops a span's extensions as it closes), the state's
/// [`SpanState::close`] runs.
///
/// One layer owns the slot: obs-trace's. Setting a state where one is kept
/// is a mistake (two recording layers on one subscriber): debug builds
/// panic, release builds close the first state and keep the second.
///
/// ```
/// use obs_core::{SpanRecord, SpanState};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// static CLOSED: AtomicUsize = AtomicUsize::new(0);
/// struct Mine(u32);
/// impl SpanState for Mine {
///     fn close(self: Box<Self>) {
///         CLOSED.fetch_add(self.0 as usize, Ordering::Relaxed);
///     }
/// }
/// let mut rec = SpanRecord::default();
/// rec.state.set(Box::new(Mine(7)));
/// rec.state.get_mut::<Mine>().unwrap().0 += 1;
/// assert_eq!(rec.state.get::<Mine>().map(|m| m.0), Some(8));
/// drop(rec);
/// assert_eq!(CLOSED.load(Ordering::Relaxed), 8);
/// ```
#[derive(Default)]
pub struct StateSlot(Option<Box<dyn SpanState>>);

impl StateSlot {
    /// Keeps `state` for the span (see the type's docs for a slot already
    /// set).
    pub fn set(&mut self, state: Box<dyn SpanState>) {
        debug_assert!(
            self.0.is_none(),
            "a span's state slot was set twice: two recording layers on one subscriber?"
        );
        if let Some(old) = self.0.replace(state) {
            old.close();
        }
    }

    /// The state, when it is a `T`.
    #[inline]
    pub fn get<T: SpanState>(&self) -> Option<&T> {
        let any: &dyn std::any::Any = self.0.as_deref()?;
        any.downcast_ref()
    }

    /// The state, mutably, when it is a `T`.
    #[inline]
    pub fn get_mut<T: SpanState>(&mut self) -> Option<&mut T> {
        let any: &mut dyn std::any::Any = self.0.as_deref_mut()?;
        any.downcast_mut()
    }

    /// Whether a state is kept.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

impl std::fmt::Debug for StateSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StateSlot(set)"
        } else {
            "StateSlot(empty)"
        })
    }
}

impl Drop for StateSlot {
    #[inline]
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            state.close();
        }
    }
}

impl SpanRecord {
    /// The span's ids, when one of obs's layers opened it.
    #[inline]
    pub fn ids_in<E: crate::spans::ExtRead>(ext: &E) -> Option<&IdRecord> {
        ext.get::<SpanRecord>().map(|r| &r.ids)
    }

    /// Runs `f` on the span's record, creating an empty one first when the
    /// span has none.
    #[inline]
    pub fn update<E: crate::spans::ExtWrite, R>(
        ext: &mut E,
        f: impl FnOnce(&mut SpanRecord) -> R,
    ) -> R {
        match ext.get_mut::<SpanRecord>() {
            Some(rec) => f(rec),
            None => Self::insert_then(ext, f),
        }
    }

    /// Inserts an empty record, then runs `f` on it: made in its box and
    /// filled there, where one built on the stack and moved in (about 150
    /// bytes) would be copied whole.
    #[inline(never)]
    fn insert_then<E: crate::spans::ExtWrite, R>(
        ext: &mut E,
        f: impl FnOnce(&mut SpanRecord) -> R,
    ) -> R {
        ext.insert(SpanRecord::default());
        let rec = ext.get_mut::<SpanRecord>();
        f(rec.expect("the record was inserted just before"))
    }
}

/// A span's fields rendered once, as the line fragments every line written
/// inside the span copies: `buf` holds the fragments (and the span's path),
/// `entries` says which field each one is. The buffers go back to a pool of
/// the thread that drops them (bounded in count and in the size of a kept
/// buffer), so rendering a span allocates nothing in steady state.
#[derive(Debug, Default)]
pub struct RenderedFields {
    /// The fragments' bytes.
    pub buf: Vec<u8>,
    /// `(field name, start, end)` of each fragment in `buf`.
    pub entries: Vec<(&'static str, u32, u32)>,
    /// Where `buf` holds the span's path (an empty range when unknown).
    pub path: (u32, u32),
}

/// Rendered-field buffers kept per thread at most.
const RENDERED_POOL_KEEP: usize = 256;
/// A rendered-field buffer larger than this is freed, not kept.
const RENDERED_KEEP_BYTES: usize = 64 * 1024;

type RenderedBuffers = (Vec<u8>, Vec<(&'static str, u32, u32)>);

thread_local! {
    static RENDERED_POOL: std::cell::RefCell<Vec<RenderedBuffers>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl RenderedFields {
    /// Empty buffers with room for `bytes` and `fields`: recycled when the
    /// thread has some, else new.
    pub fn take(bytes: usize, fields: usize) -> Self {
        let (buf, entries) = crate::recycle::take(&RENDERED_POOL).unwrap_or_default();
        let mut rf = RenderedFields {
            buf,
            entries,
            path: (0, 0),
        };
        rf.buf.reserve(bytes);
        rf.entries.reserve(fields);
        rf
    }

    /// The span's path as rendered (empty when unknown).
    #[inline]
    pub fn path(&self) -> &[u8] {
        &self.buf[self.path.0 as usize..self.path.1 as usize]
    }

    /// Rewrites `buf` without the bytes of replaced values once they make
    /// up more than half of it.
    pub fn compact(&mut self) {
        let live: usize = self
            .entries
            .iter()
            .map(|&(_, a, b)| (b - a) as usize)
            .sum::<usize>()
            + (self.path.1 - self.path.0) as usize;
        if self.buf.len() <= 2 * live + 64 {
            return;
        }
        let mut buf = Vec::with_capacity(live);
        for e in &mut self.entries {
            let start = buf.len() as u32;
            buf.extend_from_slice(&self.buf[e.1 as usize..e.2 as usize]);
            *e = (e.0, start, buf.len() as u32);
        }
        let start = buf.len() as u32;
        buf.extend_from_slice(self.path());
        self.path = (start, buf.len() as u32);
        self.buf = buf;
    }
}

/// A closed span's buffers go back to the pool of the thread that drops
/// them (the registry drops a span's extensions when it closes).
impl Drop for RenderedFields {
    fn drop(&mut self) {
        if self.buf.capacity() == 0 || self.buf.capacity() > RENDERED_KEEP_BYTES {
            return;
        }
        let mut buf = std::mem::take(&mut self.buf);
        let mut entries = std::mem::take(&mut self.entries);
        buf.clear();
        entries.clear();
        crate::recycle::give(&RENDERED_POOL, (buf, entries), RENDERED_POOL_KEEP);
    }
}

impl IdRecord {
    /// A record with trace context only.
    pub fn with_trace(trace_id: TraceId, span_id: SpanId, trace_flags: TraceFlags) -> Self {
        Self {
            trace_id: Some(trace_id),
            span_id: Some(span_id),
            trace_flags,
            correlation_id: None,
        }
    }

    /// A record with a correlation id only.
    pub fn with_correlation(correlation_id: CorrelationId) -> Self {
        Self {
            correlation_id: Some(correlation_id),
            ..Self::default()
        }
    }

    /// Whether the trace flags say the span is sampled (recorded and exported).
    #[inline]
    pub fn is_sampled(&self) -> bool {
        self.trace_id.is_some() && self.trace_flags.is_sampled()
    }

    /// Whether the record holds no id at all.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.trace_id.is_none() && self.span_id.is_none() && self.correlation_id.is_none()
    }

    /// Whether both the trace ids and the correlation id are known, so that a
    /// walk up the span tree can stop.
    #[inline]
    pub fn is_complete(&self) -> bool {
        self.trace_id.is_some() && self.correlation_id.is_some()
    }

    /// Fills the fields this record lacks from `outer` (a record further up
    /// the span tree); fields already set win, as the nearest span's ids do.
    pub fn fill_from(&mut self, outer: &IdRecord) {
        if self.trace_id.is_none() && outer.trace_id.is_some() {
            self.trace_id = outer.trace_id;
            self.span_id = outer.span_id;
            self.trace_flags = outer.trace_flags;
        }
        if self.correlation_id.is_none() {
            self.correlation_id.clone_from(&outer.correlation_id);
        }
    }

    /// Creates or modifies the record in `span`'s extensions.
    ///
    /// ```
    /// use obs_core::{CorrelationId, IdRecord};
    /// use tracing_subscriber::{Registry, registry::LookupSpan};
    /// # use tracing_subscriber::layer::SubscriberExt;
    /// let subscriber = Registry::default();
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let span = tracing::info_span!("request");
    ///     let id = CorrelationId::parse("req-1").unwrap();
    ///     tracing::dispatcher::get_default(|d| {
    ///         let reg = d.downcast_ref::<Registry>().unwrap();
    ///         let span_ref = reg.span(&span.id().unwrap()).unwrap();
    ///         IdRecord::update(&span_ref, |r| r.correlation_id = Some(id.clone()));
    ///     });
    ///     let _g = span.enter();
    ///     assert_eq!(IdRecord::current().unwrap().correlation_id.unwrap().as_str(), "req-1");
    /// });
    /// ```
    pub fn update<E: crate::spans::SpanEntry>(span: &E, f: impl FnOnce(&mut IdRecord)) {
        SpanRecord::update(&mut span.extensions_mut(), |r| f(&mut r.ids));
    }

    /// Merges the records found on a span scope (innermost span first, as
    /// `SpanRef::scope` and `Context::event_scope` yield them). Returns `None`
    /// when no span in the scope carries a record.
    pub fn resolve<E, I>(scope: I) -> Option<IdRecord>
    where
        E: crate::spans::SpanEntry,
        I: IntoIterator<Item = E>,
    {
        let mut out: Option<IdRecord> = None;
        for span in scope {
            if Self::merge_span(&mut out, &span) {
                break;
            }
        }
        out
    }

    /// The merged record of `span` and its ancestors, innermost first:
    /// [`resolve`](Self::resolve) over a scope the span walker finds.
    pub fn resolve_scope<E: crate::spans::SpanEntry>(span: &E) -> Option<IdRecord> {
        let mut out: Option<IdRecord> = None;
        if !Self::merge_span(&mut out, span) {
            for a in span.ancestors() {
                if Self::merge_span(&mut out, &a) {
                    break;
                }
            }
        }
        out
    }

    /// One step of [`resolve`](Self::resolve): merges `span`'s record into
    /// `acc`; `true` once `acc` is complete and the walk can stop.
    #[inline]
    fn merge_span<E: crate::spans::SpanEntry>(acc: &mut Option<IdRecord>, span: &E) -> bool {
        if let Some(rec) = SpanRecord::ids_in(&span.extensions()) {
            Self::merge(acc, rec);
        }
        acc.as_ref().is_some_and(IdRecord::is_complete)
    }

    /// The merge rule, in one place: folds `outer` — the record of a span
    /// further out in the scope than those already in `acc` — into `acc`
    /// (nearest span wins per field: [`fill_from`](Self::fill_from)). Every
    /// reader that walks a scope itself (the log layer walks it for span
    /// fields too) merges with this.
    #[inline]
    pub fn merge(acc: &mut Option<IdRecord>, outer: &IdRecord) {
        // A span's record may hold no id yet (a log layer opened the span
        // and no tracer or correlation layer wrote to it): it adds nothing,
        // as a span without a record.
        if outer.is_empty() {
            return;
        }
        match acc {
            None => *acc = Some(outer.clone()),
            Some(a) => a.fill_from(outer),
        }
    }

    /// The trace half of the merge rule, read in place (no clone): the trace
    /// id, span id and flags of the nearest record of the current span's
    /// scope that carries a trace id, in the default dispatcher (built on
    /// `Registry` or obs's span store). What exemplars need on a hot path.
    pub fn current_trace() -> Option<(TraceId, Option<SpanId>, TraceFlags)> {
        tracing_core::dispatcher::get_default(|d| {
            Found::current(d)?.find_in_scope(|s| {
                let ext = s.extensions();
                let rec = SpanRecord::ids_in(&ext)?;
                Some((rec.trace_id?, rec.span_id, rec.trace_flags))
            })
        })
    }

    /// The merged record of the current span of the default dispatcher, when
    /// that dispatcher is built on `tracing_subscriber::Registry` (any stack
    /// of layers over it works) or on obs's own span store
    /// ([`crate::store`]).
    pub fn current() -> Option<IdRecord> {
        tracing_core::dispatcher::get_default(|d| Self::resolve_scope(&Found::current(d)?))
    }

    /// The merged record of the span with `id` in the default dispatcher.
    pub fn for_span(id: &tracing_core::span::Id) -> Option<IdRecord> {
        tracing_core::dispatcher::get_default(|d| Self::resolve_scope(&Found::span(d, id)?))
    }

    /// Runs `f` on the record of the default dispatcher's current span,
    /// creating the record when absent, with one dispatcher access.
    /// `None` when no span is current; `Some(false)` when one is but the
    /// dispatcher keeps spans in neither the registry nor obs's store.
    pub fn update_current(f: impl FnOnce(&mut IdRecord)) -> Option<bool> {
        let mut f = Some(f);
        tracing_core::dispatcher::get_default(|d| {
            let current = d.current_span();
            let id = current.id()?;
            let (Some(span), Some(f)) = (Found::span(d, id), f.take()) else {
                return Some(false);
            };
            Self::update(&span, f);
            Some(true)
        })
    }

    /// Runs `f` on the record of the span with `id` in the default
    /// dispatcher, creating the record when absent. Returns `false` when the
    /// dispatcher keeps spans in neither store or the span is unknown.
    pub fn update_span_id(id: &tracing_core::span::Id, f: impl FnOnce(&mut IdRecord)) -> bool {
        let mut f = Some(f);
        tracing_core::dispatcher::get_default(|d| {
            let Some(span) = Found::span(d, id) else {
                return false;
            };
            let Some(f) = f.take() else { return false };
            Self::update(&span, f);
            true
        })
    }
}

impl IdRecord {
    /// Runs `f` with `record` as the ids of events emitted on this thread
    /// outside any span: for code that logs *on behalf of* a request from
    /// a thread that is not in the request's span (an error report's
    /// delivery thread, a job runner). A span's own ids always win; the
    /// previous scoped record is restored when `f` returns.
    ///
    /// ```
    /// use obs_core::{CorrelationId, IdRecord};
    /// let rec = IdRecord::with_correlation(CorrelationId::parse("req-1").unwrap());
    /// IdRecord::in_thread_scope(rec.clone(), || assert_eq!(IdRecord::thread_scoped(), Some(rec)));
    /// assert_eq!(IdRecord::thread_scoped(), None);
    /// ```
    pub fn in_thread_scope<R>(record: IdRecord, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<IdRecord>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                THREAD_SCOPED.with(|c| *c.borrow_mut() = prev);
            }
        }
        let prev = THREAD_SCOPED.with(|c| c.borrow_mut().replace(record));
        let _restore = Restore(prev);
        f()
    }

    /// The record set by [`in_thread_scope`](Self::in_thread_scope) on this
    /// thread, if any.
    #[inline]
    pub fn thread_scoped() -> Option<IdRecord> {
        THREAD_SCOPED
            .try_with(|c| c.try_borrow().ok().and_then(|r| r.clone()))
            .ok()
            .flatten()
    }
}

impl IdRecord {
    /// Runs `f` with `id` handed to the next span opened on this thread while
    /// `f` runs: the first layer that opens it and takes the id
    /// ([`take_next_span_correlation`](Self::take_next_span_correlation);
    /// obs-trace's and obs-log's layers do) writes it into the span's
    /// record as it creates that record. For a layer that knows the
    /// request's id *before* the request's span exists (the correlation
    /// layer placed outside the span-opening layer): the id reaches the
    /// span without looking the span up afterwards. An id no span took is
    /// dropped when `f` returns; the previous one, if any, is restored.
    ///
    /// ```
    /// use obs_core::{CorrelationId, IdRecord};
    /// let id = CorrelationId::parse("req-7").unwrap();
    /// IdRecord::with_next_span_correlation(id.clone(), || {
    ///     // What a layer's `on_new_span` does:
    ///     assert_eq!(IdRecord::take_next_span_correlation(), Some(id));
    ///     assert_eq!(IdRecord::take_next_span_correlation(), None, "taken once");
    /// });
    /// assert_eq!(IdRecord::take_next_span_correlation(), None);
    /// ```
    pub fn with_next_span_correlation<R>(id: CorrelationId, f: impl FnOnce() -> R) -> R {
        let _next = Self::next_span_correlation(id);
        f()
    }

    /// [`with_next_span_correlation`](Self::with_next_span_correlation) as
    /// a guard: `id` waits for the next span opened on this thread until
    /// the guard is dropped, which drops an id no span took and restores
    /// the previous one. For a caller whose work returns something large (a
    /// service's future): it is built in place rather than passed back
    /// through a closure.
    ///
    /// ```
    /// use obs_core::{CorrelationId, IdRecord};
    /// let id = CorrelationId::parse("req-8").unwrap();
    /// {
    ///     let _next = IdRecord::next_span_correlation(id.clone());
    ///     assert_eq!(IdRecord::take_next_span_correlation(), Some(id));
    /// }
    /// assert!(!IdRecord::next_span_correlation_waiting());
    /// ```
    pub fn next_span_correlation(id: CorrelationId) -> NextSpanCorrelation {
        // `Some(previous)` once set; `None` when the slot is gone or in use
        // (the id is then dropped and the guard leaves the slot alone).
        let prev: Option<Option<CorrelationId>> = NEXT_SPAN_CORRELATION
            .try_with(|c| c.try_borrow_mut().ok().map(|mut c| c.replace(id)))
            .ok()
            .flatten();
        if prev.is_some() {
            let _ = HAS_NEXT_SPAN_CORRELATION.try_with(|f| f.set(true));
        }
        NextSpanCorrelation {
            set: prev.is_some(),
            prev: prev.flatten(),
            _not_send: std::marker::PhantomData,
        }
    }

    /// Takes the id set by
    /// [`with_next_span_correlation`](Self::with_next_span_correlation) for
    /// the span being opened, if one is waiting: one thread-local flag read
    /// when none is.
    #[inline]
    pub fn take_next_span_correlation() -> Option<CorrelationId> {
        if !Self::next_span_correlation_waiting() {
            return None;
        }
        HAS_NEXT_SPAN_CORRELATION.set(false);
        NEXT_SPAN_CORRELATION
            .try_with(|c| c.try_borrow_mut().ok().and_then(|mut c| c.take()))
            .ok()
            .flatten()
    }

    /// Whether an id set by
    /// [`with_next_span_correlation`](Self::with_next_span_correlation)
    /// is still waiting for a span on this thread.
    #[inline]
    pub fn next_span_correlation_waiting() -> bool {
        HAS_NEXT_SPAN_CORRELATION
            .try_with(Cell::get)
            .unwrap_or(false)
    }

    /// In a layer's `on_new_span`: writes the waiting id (see
    /// [`take_next_span_correlation`](Self::take_next_span_correlation))
    /// into the new span's record, creating the record when absent.
    #[inline]
    pub fn adopt_next_span_correlation<E: crate::spans::ExtWrite>(ext: &mut E) {
        if let Some(id) = Self::take_next_span_correlation() {
            SpanRecord::update(ext, |r| r.ids.correlation_id = Some(id));
        }
    }
}

/// The guard of [`IdRecord::next_span_correlation`]: restores the id that
/// was waiting before it (usually none) when dropped. It stays on the thread
/// that made it (it is not `Send`: never hold it across an `.await`), guards
/// must be dropped in the reverse order they were made, and a guard that is
/// never dropped (`mem::forget`) leaves its id waiting for the thread's next
/// span.
#[derive(Debug)]
#[must_use = "the id waits for the next span only while the guard lives"]
pub struct NextSpanCorrelation {
    prev: Option<CorrelationId>,
    set: bool,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for NextSpanCorrelation {
    fn drop(&mut self) {
        if !self.set {
            return;
        }
        let prev = self.prev.take();
        let _ = NEXT_SPAN_CORRELATION.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                let _ = HAS_NEXT_SPAN_CORRELATION.try_with(|f| f.set(prev.is_some()));
                *c = prev;
            }
        });
    }
}

thread_local! {
    static THREAD_SCOPED: std::cell::RefCell<Option<IdRecord>> = const { std::cell::RefCell::new(None) };
    static NEXT_SPAN_CORRELATION: std::cell::RefCell<Option<CorrelationId>> = const { std::cell::RefCell::new(None) };
    /// Whether `NEXT_SPAN_CORRELATION` may hold an id: one cheap load per new span.
    static HAS_NEXT_SPAN_CORRELATION: Cell<bool> = const { Cell::new(false) };
    /// See [`with_request_head_on_span`].
    static REQUEST_HEAD_ON_SPAN: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` — the call of the inner service of a layer that just opened a
/// request's server span — telling the services inside whether that span
/// carries the request's head (its method, route and path fields) to every
/// reader of spans: the span is enabled, and obs's layers alone read spans
/// ([`spans_read_by_obs_only`]). An access line written inside may then
/// leave those fields to the span, whose fields every line in it carries
/// (obs's facade does, for JSON lines). Restored when `f` returns.
///
/// ```
/// use obs_core::record::{request_head_on_span, with_request_head_on_span};
/// assert!(!request_head_on_span());
/// assert!(with_request_head_on_span(true, request_head_on_span));
/// assert!(!request_head_on_span());
/// ```
#[inline]
pub fn with_request_head_on_span<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let _head = RequestHeadOnSpan::set(on);
    f()
}

/// [`with_request_head_on_span`] as a guard, for a caller whose work
/// returns something large (a service's future, built in place rather than
/// passed back through a closure): the previous answer is restored when the
/// guard is dropped.
///
/// ```
/// use obs_core::record::{RequestHeadOnSpan, request_head_on_span};
/// {
///     let _head = RequestHeadOnSpan::set(true);
///     assert!(request_head_on_span());
/// }
/// assert!(!request_head_on_span());
/// ```
///
/// Like [`NextSpanCorrelation`], the guard stays on its thread (not `Send`)
/// and guards are dropped in the reverse order they were made.
#[derive(Debug)]
#[must_use = "the answer holds only while the guard lives"]
pub struct RequestHeadOnSpan(bool, std::marker::PhantomData<*const ()>);

impl RequestHeadOnSpan {
    /// Sets the answer of [`request_head_on_span`] on this thread.
    #[inline]
    pub fn set(on: bool) -> Self {
        RequestHeadOnSpan(
            REQUEST_HEAD_ON_SPAN
                .try_with(|c| c.replace(on))
                .unwrap_or(false),
            std::marker::PhantomData,
        )
    }
}

impl Drop for RequestHeadOnSpan {
    #[inline]
    fn drop(&mut self) {
        let _ = REQUEST_HEAD_ON_SPAN.try_with(|c| c.set(self.0));
    }
}

/// Whether the innermost [`with_request_head_on_span`] on this thread said
/// its server span carries the request's head; `false` outside any.
#[inline]
pub fn request_head_on_span() -> bool {
    REQUEST_HEAD_ON_SPAN.try_with(Cell::get).unwrap_or(false)
}

/// Whether the current dispatcher's spans are read by obs's layers alone:
/// its spans are kept in obs's own [`SpanStore`](crate::store::SpanStore),
/// which carries exactly one layer, obs's (see
/// [`sole_subscriber`](crate::store::sole_subscriber)); `false` under any
/// other subscriber.
///
/// A pillar may then skip recording a field that none of obs's layers will
/// read (the status of an unsampled server span: the span is not exported,
/// and the access line carries the status itself). Beside layers of the
/// user's (on a registry), every field is recorded as usual, since those
/// layers may read it.
///
/// ```
/// assert!(!obs_core::record::spans_read_by_obs_only());
/// let alone = obs_core::store::sole_subscriber(tracing_subscriber::layer::Identity::new());
/// tracing::subscriber::with_default(alone, || {
///     assert!(obs_core::record::spans_read_by_obs_only());
/// });
/// ```
#[inline]
pub fn spans_read_by_obs_only() -> bool {
    tracing_core::dispatcher::get_default(|d| d.is::<crate::store::SpanStore>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// obs-core cannot use `obs_testing::subscriber` (obs-testing depends on
    /// obs-core): the spans under this registry are callsites of these tests
    /// alone, first hit on the thread that holds the registry, so no other
    /// test thread decides their cached interest.
    fn with_registry(f: impl FnOnce()) {
        tracing::subscriber::with_default(tracing_subscriber::Registry::default(), f);
    }

    #[test]
    fn nearest_wins_and_fields_merge() {
        with_registry(|| {
            let outer = tracing::info_span!("outer");
            let inner = tracing::info_span!(parent: &outer, "inner");
            let cid = CorrelationId::parse("c-1").unwrap();
            let (t1, s1) = (TraceId::random(), SpanId::random());
            let s2 = SpanId::random();
            assert!(IdRecord::update_span_id(&outer.id().unwrap(), |r| {
                r.correlation_id = Some(cid.clone());
                *r = IdRecord {
                    correlation_id: r.correlation_id.take(),
                    ..IdRecord::with_trace(t1, s1, TraceFlags::SAMPLED)
                };
            }));
            assert!(IdRecord::update_span_id(&inner.id().unwrap(), |r| {
                *r = IdRecord::with_trace(t1, s2, TraceFlags::SAMPLED);
            }));
            let _g = inner.enter();
            let rec = IdRecord::current().unwrap();
            assert_eq!(rec.trace_id, Some(t1));
            assert_eq!(rec.span_id, Some(s2));
            assert_eq!(rec.correlation_id, Some(cid));
            assert!(rec.is_sampled());
        });
    }

    #[test]
    fn none_outside_spans_or_without_registry() {
        with_registry(|| assert!(IdRecord::current().is_none()));
        assert!(IdRecord::current().is_none());
        // Without a registry there is no record, even inside a span. Whether
        // tracing hands out a disabled span or a no-op id here depends on
        // what other threads of the test process cached for the callsite
        // (see docs/ARCHITECTURE.md, "Tests and subscribers"), so only the
        // record is asserted.
        let span = tracing::info_span!("no subscriber");
        let _g = span.enter();
        assert!(IdRecord::current().is_none());
        assert!(span.id().is_none_or(|id| IdRecord::for_span(&id).is_none()));
    }

    #[test]
    fn unsampled_is_reported() {
        let r = IdRecord::with_trace(TraceId::random(), SpanId::random(), TraceFlags::NOT_SAMPLED);
        assert!(!r.is_sampled());
        assert!(!IdRecord::default().is_sampled());
    }
}
