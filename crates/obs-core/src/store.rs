//! A span store of obs's own, for obs's layers installed alone.
//!
//! `tracing-subscriber`'s registry keeps a span's data in a map of boxed
//! values by type, one allocation per value per span, and dispatches every
//! exit and parent release through the whole layer stack. When obs's layers
//! are the subscriber's only layers (obs's facade installed alone:
//! `obs::init` without layers of the user's, `Obs::take_subscriber`), no
//! other layer needs that map, and [`sole_subscriber`] puts obs's layer on
//! this store instead:
//!
//! - each span's [`SpanRecord`] lives inline in its slot, so opening a span
//!   allocates nothing in steady state; values of other types (the errors
//!   pillar's breadcrumb ring) go to a short list beside it;
//! - the slots are one process-wide [`sharded_slab::Pool`], so a span id
//!   names one span across every store (several subscribers in one process,
//!   as tests have, never mistake one another's ids), and readers outside a
//!   layer find a span without the subscriber's help; each slot notes its
//!   store, so a parent closed by its last child closes through its own
//!   store's dispatcher, whatever the thread's default is then (a store
//!   wrapped in a `Box` or `Arc`, which tracing-core does not tell its
//!   dispatcher, closes through the thread's default when that is the
//!   store, as the registry does);
//! - the stack of entered spans is per store and per thread, as the
//!   registry's, but holds no reference on the spans it lists (`tracing`'s
//!   guards keep an entered span's handle alive), and keeps each span's
//!   metadata: entering the span created last on the thread, exiting, and
//!   asking for the current span touch no slot;
//! - a child's reference on its parent, dropped while others remain, is a
//!   decrement; only the last goes through the dispatcher, so that the
//!   layers see the span close;
//! - a closing span is never opened again: a child made inside its
//!   `on_close` holds no reference on it, and a clone of its id takes none,
//!   so it closes once (the registry panics on such a clone).
//!
//! It keeps the registry's contract for layers: a span's data stays
//! readable through every layer's `on_close`, and is dropped after it (the
//! [`SoleSubscriber`]'s outer layer releases the slot last), which is when a
//! recorded span's state is handed back ([`SpanState::close`](crate::SpanState::close)).
//! Layers on the store read spans through [`crate::spans`]: its
//! [`SpanSubscriber`](crate::spans::SpanSubscriber) gives each `Context` a
//! lookup.
//!
//! ```
//! use obs_core::SpanRecord;
//! use obs_core::spans::{ExtRead, ExtWrite, SpanEntry, SpanLookup, SpanSubscriber};
//! use obs_core::store::{SpanStore, sole_subscriber};
//! use tracing_subscriber::layer::{Context, Layer};
//!
//! /// Counts the spans it saw open, in their records.
//! struct Mark;
//! impl Layer<SpanStore> for Mark {
//!     fn on_new_span(&self, _: &tracing_core::span::Attributes<'_>, id: &tracing_core::span::Id, ctx: Context<'_, SpanStore>) {
//!         let spans = SpanStore::lookup(&ctx);
//!         let span = spans.span(id).unwrap();
//!         SpanRecord::update(&mut span.extensions_mut(), |r| r.ids.trace_flags = obs_core::TraceFlags::SAMPLED);
//!     }
//! }
//! let subscriber = sole_subscriber(Mark);
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("job");
//!     let _e = span.enter();
//!     let found = tracing::dispatcher::get_default(|d| {
//!         let id = d.current_span().id().cloned().unwrap();
//!         obs_core::spans::Found::span(d, &id).map(|s| {
//!             s.extensions().get::<SpanRecord>().map(|r| r.ids.trace_flags.is_sampled())
//!         })
//!     });
//!     assert_eq!(found, Some(Some(true)));
//! });
//! ```

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence};
use std::sync::{LazyLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use sharded_slab::pool::Ref;
use sharded_slab::{Clear, Pool};
use thread_local::ThreadLocal;
use tracing_core::dispatcher::WeakDispatch;
use tracing_core::span::{Attributes, Current, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Dispatch, Event, LevelFilter, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, Layered, SubscriberExt as _};

use crate::SpanRecord;
use crate::spans::{ExtRead, ExtWrite, SpanEntry, SpanLookup};

/// Every store's slots, process-wide.
static SLOTS: LazyLock<Pool<Slot>> = LazyLock::new(Pool::new);

/// Each live store's dispatcher, by store number: a span's last reference,
/// when a child drops it, is closed through the dispatcher of the store
/// that holds the span, whatever the thread's default is then. A store
/// removes its entry when it is dropped, so the map holds the live stores
/// only, however many a process makes over its life.
static OWNERS: RwLock<BTreeMap<u32, WeakDispatch>> = RwLock::new(BTreeMap::new());

/// The next store's number (0: none yet).
static NEXT_STORE: AtomicU32 = AtomicU32::new(1);

/// One span.
#[derive(Default)]
struct Slot {
    meta: Option<&'static Metadata<'static>>,
    /// The number of the store that holds the span.
    store: u32,
    /// The parent.
    parent: Option<Id>,
    /// Whether the span holds a reference on its parent: not when it was
    /// made while the parent was closing (inside its `on_close`).
    holds_parent: bool,
    /// Handles and children holding it (the stack holds none).
    refs: AtomicUsize,
    data: RwLock<SpanData>,
}

impl Clear for Slot {
    fn clear(&mut self) {
        self.meta = None;
        let data = self.data.get_mut().unwrap_or_else(PoisonError::into_inner);
        // Dropping the record hands a recorded span's state back and
        // recycles its rendered fields; the list keeps its capacity.
        data.record = None;
        data.other.clear();
        // The span no longer holds its parent (as the registry, once the
        // slot is free).
        if let Some(parent) = self.parent.take()
            && std::mem::take(&mut self.holds_parent)
        {
            drop_ref(&parent);
        }
    }
}

/// What obs keeps on a span of the store: its [`SpanRecord`], inline, and
/// values of other types, by type.
#[derive(Default)]
pub struct SpanData {
    record: Option<SpanRecord>,
    other: Vec<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for SpanData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanData")
            .field("record", &self.record)
            .field("other", &self.other.len())
            .finish()
    }
}

impl SpanData {
    #[inline]
    fn get<T: 'static>(&self) -> Option<&T> {
        if TypeId::of::<T>() == TypeId::of::<SpanRecord>() {
            let rec: &dyn Any = self.record.as_ref()?;
            return rec.downcast_ref();
        }
        self.other.iter().find_map(|v| (**v).downcast_ref())
    }

    #[inline]
    fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        if TypeId::of::<T>() == TypeId::of::<SpanRecord>() {
            let rec: &mut dyn Any = self.record.as_mut()?;
            return rec.downcast_mut();
        }
        self.other.iter_mut().find_map(|v| (**v).downcast_mut())
    }

    #[inline]
    fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        let mut value = Some(value);
        let any: &mut dyn Any = &mut value;
        if let Some(rec) = any.downcast_mut::<Option<SpanRecord>>() {
            self.record = rec.take();
            return;
        }
        let Some(value) = value else { return };
        match self.other.iter_mut().find(|v| (***v).is::<T>()) {
            Some(old) => *old = Box::new(value),
            None => self.other.push(Box::new(value)),
        }
    }

    #[inline]
    fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        if TypeId::of::<T>() == TypeId::of::<SpanRecord>() {
            let mut rec = self.record.take();
            let any: &mut dyn Any = &mut rec;
            return any.downcast_mut::<Option<T>>().and_then(Option::take);
        }
        let i = self.other.iter().position(|v| (**v).is::<T>())?;
        self.other.swap_remove(i).downcast().ok().map(|b| *b)
    }
}

/// A read guard on a span's [`SpanData`].
#[derive(Debug)]
pub struct DataRef<'e>(RwLockReadGuard<'e, SpanData>);

/// A write guard on a span's [`SpanData`].
#[derive(Debug)]
pub struct DataMut<'e>(RwLockWriteGuard<'e, SpanData>);

impl ExtRead for DataRef<'_> {
    #[inline]
    fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.get()
    }
}

impl ExtWrite for DataMut<'_> {
    #[inline]
    fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.0.get_mut()
    }

    #[inline]
    fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(value);
    }

    #[inline]
    fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.0.remove()
    }
}

#[inline]
fn id_of(key: usize) -> Id {
    Id::from_u64(key as u64 + 1)
}

#[inline]
fn key_of(id: &Id) -> usize {
    (id.into_u64() - 1) as usize
}

/// A span of the store, held while it is read (the span's slot is not
/// reused while any entry for it is alive).
pub struct StoreEntry {
    id: Id,
    slot: Ref<'static, Slot>,
}

impl fmt::Debug for StoreEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreEntry")
            .field("id", &self.id)
            .field("name", &self.slot.meta.map(Metadata::name))
            .finish()
    }
}

impl StoreEntry {
    /// The span `id`, if a store holds it.
    #[inline]
    pub fn find(id: &Id) -> Option<StoreEntry> {
        let slot = SLOTS.get(key_of(id))?;
        // A slot being cleared (its last reference gone) has no metadata.
        slot.meta?;
        Some(StoreEntry {
            id: id.clone(),
            slot,
        })
    }
}

impl SpanEntry for StoreEntry {
    type Ext<'e> = DataRef<'e>;
    type ExtMut<'e> = DataMut<'e>;

    #[inline]
    fn id(&self) -> Id {
        self.id.clone()
    }

    #[inline]
    fn metadata(&self) -> &'static Metadata<'static> {
        // `find` hands out only slots that have their metadata.
        self.slot
            .meta
            .expect("a span found in the store has its metadata")
    }

    #[inline]
    fn parent(&self) -> Option<Self> {
        StoreEntry::find(self.slot.parent.as_ref()?)
    }

    #[inline]
    fn extensions(&self) -> DataRef<'_> {
        DataRef(
            self.slot
                .data
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    #[inline]
    fn extensions_mut(&self) -> DataMut<'_> {
        DataMut(
            self.slot
                .data
                .write()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// Finds spans of the store for a layer's callback.
#[derive(Debug)]
pub struct StoreLookup<'c> {
    ctx: &'c Context<'c, SpanStore>,
}

impl<'c> StoreLookup<'c> {
    pub(crate) fn new(ctx: &'c Context<'c, SpanStore>) -> Self {
        Self { ctx }
    }
}

impl SpanLookup for StoreLookup<'_> {
    type Entry<'l>
        = StoreEntry
    where
        Self: 'l;

    #[inline]
    fn span(&self, id: &Id) -> Option<StoreEntry> {
        StoreEntry::find(id)
    }

    #[inline]
    fn event_span(&self, event: &Event<'_>) -> Option<StoreEntry> {
        if event.is_root() {
            None
        } else if let Some(id) = event.parent() {
            StoreEntry::find(id)
        } else {
            self.current()
        }
    }

    #[inline]
    fn current(&self) -> Option<StoreEntry> {
        StoreEntry::find(self.ctx.current_span().id()?)
    }
}

/// An entered span on a thread's stack.
struct Entered {
    id: Id,
    meta: &'static Metadata<'static>,
    /// Entered again while already on the stack: not the current span (as
    /// in the registry, the current span is the innermost first entry).
    again: bool,
}

/// The spans a thread is in, innermost last.
///
/// Unlike the registry, the stack holds no reference on the spans it
/// lists: `tracing`'s guards (`Entered`, `EnteredSpan`, `Instrumented`)
/// keep a span's handle alive while it is entered, so the span cannot close
/// under the stack. A span closed while listed (a guard leaked with
/// `mem::forget`) stays listed, as the registry would keep it, but its id
/// is one no lookup finds.
#[derive(Default)]
struct Stack(Vec<Entered>);

impl Stack {
    #[inline]
    fn push(&mut self, id: &Id, meta: &'static Metadata<'static>) {
        let again = self.0.iter().any(|e| e.id == *id);
        self.0.push(Entered {
            id: id.clone(),
            meta,
            again,
        });
    }

    /// Removes the innermost entry of `id`.
    #[inline]
    fn pop(&mut self, id: &Id) {
        // Exits almost always come in the order of the enters.
        match self.0.last() {
            Some(e) if e.id == *id => {
                self.0.pop();
            }
            _ => {
                if let Some(i) = self.0.iter().rposition(|e| e.id == *id) {
                    self.0.remove(i);
                }
            }
        }
    }

    /// The current span.
    #[inline]
    fn current(&self) -> Option<&Entered> {
        self.0.iter().rev().find(|e| !e.again)
    }
}

thread_local! {
    /// The span created last on this thread, and its metadata: the span
    /// entered next is almost always that one (`info_span!(..).entered()`,
    /// a span made for a future or a call), whose metadata the stack then
    /// takes without reading its slot. Ids name one span across every
    /// store, so the entry holds whichever store created it.
    static LAST_CREATED: std::cell::Cell<Option<(u64, &'static Metadata<'static>)>> =
        const { std::cell::Cell::new(None) };
}

/// The metadata of the span `id`, for the stack.
#[inline]
fn meta_of(id: &Id) -> Option<&'static Metadata<'static>> {
    if let Some((last, meta)) = LAST_CREATED.get()
        && last == id.into_u64()
    {
        return Some(meta);
    }
    SLOTS.get(key_of(id))?.meta
}

/// The store: a `tracing` subscriber that keeps spans and the stacks of
/// entered spans, and leaves everything else to the layer on it. Made only
/// by [`sole_subscriber`], whose outer layer releases each span after its
/// layers saw it close.
pub struct SpanStore {
    /// This store's number, in every slot it fills and in [`OWNERS`].
    number: u32,
    stacks: ThreadLocal<RefCell<Stack>>,
}

impl Drop for SpanStore {
    fn drop(&mut self) {
        OWNERS
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.number);
    }
}

impl fmt::Debug for SpanStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanStore").finish_non_exhaustive()
    }
}

impl SpanStore {
    fn new() -> Self {
        Self {
            number: NEXT_STORE.fetch_add(1, Ordering::Relaxed),
            stacks: ThreadLocal::new(),
        }
    }

    #[inline]
    fn stack(&self) -> &RefCell<Stack> {
        self.stacks.get_or_default()
    }
}

/// Drops one reference to `id`. While others remain it is a decrement; the
/// last one goes through the dispatcher of the store that holds the span,
/// whose layers then see the span close (the registry uses the thread's
/// default dispatcher, which may be another subscriber's, or none).
fn drop_ref(id: &Id) {
    let store = {
        let Some(slot) = SLOTS.get(key_of(id)) else {
            return;
        };
        // Not the last reference: a decrement.
        let others = slot
            .refs
            .fetch_update(Ordering::Release, Ordering::Relaxed, |n| {
                n.checked_sub(1).filter(|&left| left > 0)
            });
        if others.is_ok() {
            return;
        }
        slot.store
    };
    let registered = OWNERS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&store)
        .and_then(WeakDispatch::upgrade);
    // A store wrapped in a `Box` or an `Arc` is never told its dispatcher
    // (tracing-core does not forward `on_register_dispatch` through them):
    // the thread's default, when it is that store's, as the registry does.
    let owner = registered.or_else(|| {
        let current = tracing_core::dispatcher::get_default(Dispatch::clone);
        current
            .downcast_ref::<SpanStore>()
            .is_some_and(|s| s.number == store)
            .then_some(current)
    });
    match owner {
        // Outside any `get_default` closure: a close that closes a parent
        // in turn must find its dispatcher again.
        Some(dispatch) => {
            dispatch.try_close(id.clone());
        }
        // The store's subscriber is gone (or unknown and not the default):
        // no layer of it can see the close, so the slot is freed (its
        // record dropped) here.
        None => {
            if let Some(slot) = SLOTS.get(key_of(id))
                && drop_last(&slot.refs)
            {
                drop(slot);
                release(id);
            }
        }
    }
}

/// Adds a reference to the span `id` unless it has none left (it is
/// closing, or closed); whether it did.
#[inline]
fn hold(id: &Id) -> bool {
    let Some(slot) = SLOTS.get(key_of(id)) else {
        return false;
    };
    slot.refs
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n > 0).then_some(n + 1)
        })
        .is_ok()
}

/// Takes one from `refs`, never below zero; whether it was the span's last
/// reference, whose closer then reads and frees the slot (the fence orders
/// every other holder's writes before that). A count at zero already is
/// the close of a clone that took no reference (see [`hold`]), or of a span
/// closed more often than it was cloned: it takes nothing.
#[inline]
fn drop_last(refs: &AtomicUsize) -> bool {
    let last =
        refs.fetch_update(Ordering::Release, Ordering::Relaxed, |n| n.checked_sub(1)) == Ok(1);
    if last {
        fence(Ordering::Acquire);
    }
    last
}

/// Frees a closed span's slot, once every layer saw it close (clearing the
/// slot drops its reference to its parent).
fn release(id: &Id) {
    SLOTS.clear(key_of(id));
}

impl Subscriber for SpanStore {
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        OWNERS
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.number, dispatch.downgrade());
    }

    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // No opinion: the layer's hint is the subscriber's.
        None
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let parent = if attrs.is_root() {
            None
        } else if attrs.is_contextual() {
            self.stack().borrow().current().map(|e| e.id.clone())
        } else {
            attrs.parent().cloned()
        };
        // A parent that is closing (a span made inside its `on_close`) is
        // not held: its close is under way, and a hold would close it again
        // when the child goes.
        let holds_parent = parent.as_ref().is_some_and(hold);
        let meta = attrs.metadata();
        let store = self.number;
        let key = SLOTS.create_with(|slot| {
            slot.meta = Some(meta);
            slot.store = store;
            slot.parent = parent;
            slot.holds_parent = holds_parent;
            *slot.refs.get_mut() = 1;
        });
        // The pool holds as many spans as the registry's (its default
        // configuration): running out is a leak of spans, not a load.
        let id = id_of(key.expect("the span store is full"));
        LAST_CREATED.set(Some((id.into_u64(), meta)));
        id
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, id: &Id) {
        if let Some(meta) = meta_of(id) {
            self.stack().borrow_mut().push(id, meta);
        }
    }

    fn exit(&self, id: &Id) {
        self.stack().borrow_mut().pop(id);
    }

    fn clone_span(&self, id: &Id) -> Id {
        // A span that closed (no reference left) is not opened again: the
        // clone's close then finds nothing to take.
        hold(id);
        id.clone()
    }

    fn current_span(&self) -> Current {
        match self.stack().borrow().current() {
            Some(e) => Current::new(e.id.clone(), e.meta),
            None => Current::none(),
        }
    }

    fn try_close(&self, id: Id) -> bool {
        let Some(slot) = SLOTS.get(key_of(&id)) else {
            return false;
        };
        // Never below zero: a span closed already is not closed again.
        // Released by the outer layer once every layer saw the close.
        drop_last(&slot.refs)
    }
}

/// The store with one layer, `L`, on it; see [`sole_subscriber`].
pub type SoleSubscriber<L> = Layered<Releasing<L>, SpanStore>;

/// `layer` alone on a [`SpanStore`]: the subscriber obs's facade installs
/// when its layers are the only ones.
///
/// The layer must be the subscriber's only one: add no layer on top of the
/// result (`SubscriberExt::with`). Such a layer would see a span's close
/// after its slot was freed, and [`spans_read_by_obs_only`](crate::record::spans_read_by_obs_only),
/// which is true on every store, would let obs's layers leave out fields
/// it reads.
pub fn sole_subscriber<L>(layer: L) -> SoleSubscriber<L>
where
    L: Layer<SpanStore> + Send + Sync + 'static,
{
    SpanStore::new().with(Releasing { inner: layer })
}

/// The outer layer of a [`SoleSubscriber`]: hands every callback to the
/// layer it wraps, and frees a span's slot after that layer saw it close.
pub struct Releasing<L> {
    inner: L,
}

impl<L> fmt::Debug for Releasing<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Releasing").finish_non_exhaustive()
    }
}

impl<L> Layer<SpanStore> for Releasing<L>
where
    L: Layer<SpanStore>,
{
    fn on_register_dispatch(&self, dispatch: &tracing_core::Dispatch) {
        self.inner.on_register_dispatch(dispatch);
    }

    fn on_layer(&mut self, subscriber: &mut SpanStore) {
        self.inner.on_layer(subscriber);
    }

    #[inline]
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(meta)
    }

    #[inline]
    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, SpanStore>) -> bool {
        self.inner.enabled(meta, ctx)
    }

    #[inline]
    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner.max_level_hint()
    }

    #[inline]
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, SpanStore>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    #[inline]
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, SpanStore>) {
        self.inner.on_record(id, values, ctx);
    }

    #[inline]
    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, SpanStore>) {
        self.inner.on_follows_from(id, follows, ctx);
    }

    #[inline]
    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, SpanStore>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    #[inline]
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, SpanStore>) {
        self.inner.on_event(event, ctx);
    }

    #[inline]
    fn on_enter(&self, id: &Id, ctx: Context<'_, SpanStore>) {
        self.inner.on_enter(id, ctx);
    }

    #[inline]
    fn on_exit(&self, id: &Id, ctx: Context<'_, SpanStore>) {
        self.inner.on_exit(id, ctx);
    }

    #[inline]
    fn on_close(&self, id: Id, ctx: Context<'_, SpanStore>) {
        /// Frees the slot when dropped: after the layer's `on_close`, also
        /// when it panics.
        struct Release<'a>(&'a Id);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                release(self.0);
            }
        }
        let _release = Release(&id);
        self.inner.on_close(id.clone(), ctx);
    }

    #[inline]
    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, SpanStore>) {
        self.inner.on_id_change(old, new, ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::spans::SpanSubscriber;
    use crate::{SpanState, TraceFlags};

    /// What the test layer saw, in order.
    type Seen = Arc<Mutex<Vec<String>>>;

    /// Marks every span's record, notes closes with what the span's record
    /// and parent say then, and notes events with their span path.
    struct Probe(Seen);

    /// State whose hand-back is noted.
    struct Noted(Seen, &'static str);

    impl SpanState for Noted {
        fn close(self: Box<Self>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("state {} handed back", self.1));
        }
    }

    impl Layer<SpanStore> for Probe {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, SpanStore>) {
            let spans = SpanStore::lookup(&ctx);
            let span = spans.span(id).expect("a new span is found");
            let name = attrs.metadata().name();
            let mut ext = span.extensions_mut();
            SpanRecord::update(&mut ext, |r| {
                r.ids.trace_flags = TraceFlags::SAMPLED;
                r.state.set(Box::new(Noted(self.0.clone(), name)));
            });
            ext.insert(name.len());
        }

        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, SpanStore>) {
            let spans = SpanStore::lookup(&ctx);
            let mut path = Vec::new();
            let mut next = spans.event_span(event);
            while let Some(span) = next {
                let len = span.extensions().get::<usize>().copied();
                path.push(format!("{}:{}", span.name(), len.unwrap_or(0)));
                next = span.parent();
            }
            self.0
                .lock()
                .unwrap()
                .push(format!("event in [{}]", path.join(",")));
        }

        fn on_close(&self, id: Id, ctx: Context<'_, SpanStore>) {
            let spans = SpanStore::lookup(&ctx);
            let span = spans.span(&id).expect("a closing span is still found");
            let sampled = span
                .extensions()
                .get::<SpanRecord>()
                .is_some_and(|r| r.ids.trace_flags.is_sampled());
            let parent = span.parent().map(|p| p.name());
            self.0.lock().unwrap().push(format!(
                "close {} sampled={sampled} parent={parent:?}",
                span.name()
            ));
        }
    }

    fn probe() -> (SoleSubscriber<Probe>, Seen) {
        let seen = Seen::default();
        (sole_subscriber(Probe(seen.clone())), seen)
    }

    fn take(seen: &Seen) -> Vec<String> {
        std::mem::take(&mut *seen.lock().unwrap())
    }

    #[test]
    fn a_span_closes_with_its_last_handle_and_its_data_is_dropped_after() {
        let (subscriber, seen) = probe();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("job");
            let copy = span.clone();
            drop(span);
            assert!(take(&seen).is_empty(), "a handle remains");
            drop(copy);
        });
        assert_eq!(
            take(&seen),
            [
                "close job sampled=true parent=None",
                "state job handed back"
            ]
        );
    }

    #[test]
    fn a_child_keeps_its_parent_until_it_closes() {
        let (subscriber, seen) = probe();
        tracing::subscriber::with_default(subscriber, || {
            let parent = tracing::info_span!("request");
            let child = parent.in_scope(|| tracing::info_span!("query"));
            drop(parent);
            // The parent's handle is gone; the child still finds it.
            child.in_scope(|| tracing::info!("inside"));
            assert_eq!(take(&seen), ["event in [query:5,request:7]"]);
            drop(child);
        });
        assert_eq!(
            take(&seen),
            [
                "close query sampled=true parent=Some(\"request\")",
                "state query handed back",
                "close request sampled=true parent=None",
                "state request handed back",
            ]
        );
    }

    #[test]
    fn a_chain_of_parents_closes_through_its_own_store() {
        let (subscriber, seen) = probe();
        let (other, other_seen) = probe();
        let dispatch = tracing_core::Dispatch::new(subscriber);
        let other = tracing_core::Dispatch::new(other);
        let child = tracing_core::dispatcher::with_default(&dispatch, || {
            let root = tracing::info_span!("root");
            let middle = root.in_scope(|| tracing::info_span!("middle"));
            middle.in_scope(|| tracing::info_span!("leaf"))
        });
        assert!(take(&seen).is_empty(), "the leaf holds its parents");
        // The last handle dropped under another store's scope: the three
        // spans close, each through the store that holds it.
        tracing_core::dispatcher::with_default(&other, || drop(child));
        assert_eq!(
            take(&seen),
            [
                "close leaf sampled=true parent=Some(\"middle\")",
                "state leaf handed back",
                "close middle sampled=true parent=Some(\"root\")",
                "state middle handed back",
                "close root sampled=true parent=None",
                "state root handed back",
            ]
        );
        assert!(take(&other_seen).is_empty(), "the other store saw nothing");
    }

    #[test]
    fn a_boxed_store_closes_parents_through_the_default() {
        // `Box<dyn Subscriber>` does not pass `on_register_dispatch` on: the
        // store learns no dispatcher of its own, and a parent closed by its
        // last child closes through the thread's default, which is it.
        let (subscriber, seen) = probe();
        let boxed: Box<dyn Subscriber + Send + Sync> = Box::new(subscriber);
        tracing::subscriber::with_default(boxed, || {
            let parent = tracing::info_span!("parent");
            let child = parent.in_scope(|| tracing::info_span!("child"));
            drop(parent);
            drop(child);
        });
        assert_eq!(
            take(&seen),
            [
                "close child sampled=true parent=Some(\"parent\")",
                "state child handed back",
                "close parent sampled=true parent=None",
                "state parent handed back",
            ]
        );
    }

    /// Makes two children of the first span named `parent` it sees close,
    /// inside that close: one dropped there, one kept for after. Only the
    /// first close nests, so a second close of the parent shows as a line.
    #[derive(Clone, Default)]
    struct Nester {
        seen: Seen,
        nested: Arc<std::sync::atomic::AtomicBool>,
        kept: Arc<Mutex<Option<tracing::Span>>>,
    }

    impl Layer<SpanStore> for Nester {
        fn on_close(&self, id: Id, ctx: Context<'_, SpanStore>) {
            let spans = SpanStore::lookup(&ctx);
            let name = spans.span(&id).expect("a closing span is found").name();
            self.seen.lock().unwrap().push(format!("close {name}"));
            if name != "parent" || self.nested.swap(true, Ordering::Relaxed) {
                return;
            }
            // A span made inside its parent's close finds the parent then.
            let late = tracing::info_span!(parent: &id, "late");
            let parent = late.id().and_then(|late| {
                let entry = spans.span(&late)?;
                Some(entry.parent()?.name())
            });
            assert_eq!(parent, Some("parent"), "the closing parent is found");
            drop(late);
            // One that outlives the close.
            *self.kept.lock().unwrap() = Some(tracing::info_span!(parent: &id, "kept"));
            // A clone of the closing span's id opens nothing again: its
            // close takes nothing.
            let closed = tracing::dispatcher::get_default(|d| d.try_close(d.clone_span(&id)));
            assert!(!closed, "a clone of a closing span closed it");
        }
    }

    #[test]
    fn a_span_made_inside_its_parents_close_does_not_close_it_again() {
        let nester = Nester::default();
        let dispatch = tracing_core::Dispatch::new(sole_subscriber(nester.clone()));
        tracing_core::dispatcher::with_default(&dispatch, || {
            let parent = tracing::info_span!("parent");
            let child = parent.in_scope(|| tracing::info_span!("child"));
            drop(parent);
            drop(child);
            // The child kept past the parent's close closes alone.
            let kept = nester.kept.lock().unwrap().take().expect("kept");
            drop(kept);
        });
        assert_eq!(
            take(&nester.seen),
            ["close child", "close parent", "close late", "close kept"]
        );
    }

    #[test]
    fn spans_keep_their_store_after_its_handle_is_dropped() {
        let (subscriber, seen) = probe();
        let dispatch = tracing_core::Dispatch::new(subscriber);
        let child = tracing_core::dispatcher::with_default(&dispatch, || {
            let parent = tracing::info_span!("parent");
            parent.in_scope(|| tracing::info_span!("child"))
        });
        let parent_id = {
            let found = crate::spans::Found::span(&dispatch, &child.id().unwrap()).unwrap();
            found.parent().unwrap().id()
        };
        drop(dispatch);
        // The child's handle still holds its store's dispatcher: it closes
        // through it, and its parent, whose store is about to go, with it.
        drop(child);
        let seen = take(&seen);
        assert!(seen.contains(&"close child sampled=true parent=Some(\"parent\")".to_owned()));
        assert!(
            seen.contains(&"state parent handed back".to_owned()),
            "{seen:?}"
        );
        assert!(
            StoreEntry::find(&parent_id).is_none(),
            "the parent's slot is free"
        );
    }

    #[test]
    fn the_current_span_follows_enters_and_exits() {
        let (subscriber, seen) = probe();
        let dispatch = tracing_core::Dispatch::new(subscriber);
        tracing_core::dispatcher::with_default(&dispatch, || {
            let name = || dispatch.current_span().metadata().map(|m| m.name());
            let a = tracing::info_span!("a");
            let b = tracing::info_span!("b");
            assert_eq!(name(), None);
            let ea = a.enter();
            assert_eq!(name(), Some("a"));
            {
                let _eb = b.enter();
                assert_eq!(name(), Some("b"));
                // Entered again while on the stack: the registry's rule,
                // the innermost first entry stays current.
                let _ea2 = a.enter();
                assert_eq!(name(), Some("b"));
                tracing::info!("explicit root: none");
                tracing::info!(parent: None, "root");
                tracing::info!(parent: &a, "explicit");
            }
            assert_eq!(name(), Some("a"));
            // A contextual span's parent is the current span.
            let c = tracing::info_span!("c");
            c.in_scope(|| tracing::info!("in c"));
            drop(ea);
            assert_eq!(name(), None);
        });
        assert_eq!(
            take(&seen),
            [
                "event in [b:1]",
                "event in []",
                "event in [a:1]",
                "event in [c:1,a:1]",
                "close c sampled=true parent=Some(\"a\")",
                "state c handed back",
                "close b sampled=true parent=None",
                "state b handed back",
                "close a sampled=true parent=None",
                "state a handed back",
            ]
        );
    }

    #[test]
    fn two_stores_on_one_thread_keep_their_own_current_span() {
        let (outer, _) = probe();
        let (inner, _) = probe();
        let outer = tracing_core::Dispatch::new(outer);
        let inner = tracing_core::Dispatch::new(inner);
        tracing_core::dispatcher::with_default(&outer, || {
            let span = tracing::info_span!("outer");
            let _e = span.enter();
            tracing_core::dispatcher::with_default(&inner, || {
                assert!(inner.current_span().id().is_none());
                assert_eq!(
                    outer.current_span().metadata().map(|m| m.name()),
                    Some("outer")
                );
            });
        });
    }

    #[test]
    fn spans_move_between_threads() {
        let (subscriber, seen) = probe();
        let dispatch = tracing_core::Dispatch::new(subscriber);
        let span = tracing_core::dispatcher::with_default(&dispatch, || {
            let parent = tracing::info_span!("parent");
            parent.in_scope(|| tracing::info_span!("worker"))
        });
        let d = dispatch.clone();
        std::thread::spawn(move || {
            tracing_core::dispatcher::with_default(&d, || {
                span.in_scope(|| tracing::info!("on another thread"));
                drop(span);
            });
        })
        .join()
        .unwrap();
        let seen = take(&seen);
        assert_eq!(seen[0], "event in [worker:6,parent:6]");
        assert!(seen.contains(&"close worker sampled=true parent=Some(\"parent\")".to_owned()));
        assert!(seen.contains(&"close parent sampled=true parent=None".to_owned()));
    }

    #[test]
    fn a_dropped_store_leaves_no_entry_behind() {
        // A process that makes and drops stores (a test suite, a service
        // rebuilding its subscriber) keeps entries for its live ones only.
        let numbers: Vec<u32> = (0..3)
            .map(|_| {
                let (subscriber, _) = probe();
                let dispatch = tracing_core::Dispatch::new(subscriber);
                let number = dispatch
                    .downcast_ref::<SpanStore>()
                    .expect("the store under the layer")
                    .number;
                let span = tracing_core::dispatcher::with_default(&dispatch, || {
                    tracing::info_span!("outlives the handle")
                });
                drop(dispatch);
                assert!(
                    OWNERS.read().unwrap().contains_key(&number),
                    "a span's handle keeps its store registered"
                );
                drop(span);
                number
            })
            .collect();
        let owners = OWNERS.read().unwrap();
        for number in numbers {
            assert!(
                !owners.contains_key(&number),
                "store {number} left its entry"
            );
        }
    }

    #[test]
    fn span_data_keeps_one_value_per_type() {
        let mut data = SpanData::default();
        assert!(data.get::<SpanRecord>().is_none());
        data.insert(SpanRecord::default());
        data.insert(7_u32);
        data.insert(8_u32);
        data.insert("name");
        assert_eq!(data.get::<u32>(), Some(&8));
        assert_eq!(data.other.len(), 2, "the record is inline, one u32 kept");
        *data.get_mut::<u32>().unwrap() += 1;
        assert_eq!(data.remove::<u32>(), Some(9));
        assert_eq!(data.remove::<u32>(), None);
        assert!(data.get_mut::<SpanRecord>().is_some());
        assert!(data.remove::<SpanRecord>().is_some());
        assert!(data.get::<SpanRecord>().is_none());
        assert_eq!(data.get::<&str>(), Some(&"name"));
    }

    #[test]
    fn a_span_is_found_from_outside_a_layer() {
        let (subscriber, _) = probe();
        let dispatch = tracing_core::Dispatch::new(subscriber);
        tracing_core::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("found");
            let _e = span.enter();
            let found = crate::spans::Found::current(&dispatch).map(|s| s.name());
            assert_eq!(found, Some("found"));
            assert!(crate::record::spans_read_by_obs_only());
        });
    }
}
