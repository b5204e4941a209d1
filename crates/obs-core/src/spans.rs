//! The span walker: how obs's pillars find a span, its parent and the data
//! they keep on it, whichever span store holds the span.
//!
//! The log, trace and errors pillars keep per-span data (a
//! [`SpanRecord`](crate::SpanRecord), the errors pillar's breadcrumbs) and
//! walk a span's ancestors to write a line, find a trace context or gather
//! breadcrumbs. Their span logic is written against the two traits here
//! rather than against `tracing-subscriber`'s `Context` and `SpanRef`:
//!
//! - [`SpanLookup`] finds a span by id, an event's span, or the current
//!   span;
//! - [`SpanEntry`] is one span: its id, metadata, parent, and its data
//!   through [`ExtRead`] and [`ExtWrite`], read and written as
//!   `tracing-subscriber`'s span extensions are.
//!
//! `tracing-subscriber`'s registry is one implementation: `Context` is a
//! [`SpanLookup`] and `SpanRef` a [`SpanEntry`] over any subscriber that
//! implements `LookupSpan`, so each pillar's `Layer` hands its callbacks'
//! context to its span logic as it is. The traits exist so that a span
//! store of obs's own, for obs installed alone, can serve the same span
//! logic without `tracing-subscriber`'s extension maps (whose constructor
//! that crate keeps to itself). Every method is generic, so a pillar's span
//! logic compiles to the same code as when it named the registry's types.
//!
//! ```
//! use obs_core::spans::{ExtRead, SpanEntry, SpanLookup};
//! use obs_core::SpanRecord;
//!
//! // The nearest span, from `span` outwards, that carries a record.
//! fn nearest_recorded<L: SpanLookup>(spans: &L, id: &tracing_core::span::Id) -> Option<String> {
//!     let mut next = spans.span(id);
//!     while let Some(span) = next {
//!         if span.extensions().get::<SpanRecord>().is_some() {
//!             return Some(span.name().to_owned());
//!         }
//!         next = span.parent();
//!     }
//!     None
//! }
//! # let _ = nearest_recorded::<tracing_subscriber::layer::Context<'_, tracing_subscriber::Registry>>;
//! ```

use tracing_core::span::Id;
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{Extensions, ExtensionsMut, LookupSpan, SpanRef};

/// Reads the data kept on a span, by type (`tracing-subscriber`'s
/// `Extensions` is one).
pub trait ExtRead {
    /// The span's value of type `T`, if it has one.
    fn get<T: Send + Sync + 'static>(&self) -> Option<&T>;
}

/// Writes the data kept on a span, by type (`tracing-subscriber`'s
/// `ExtensionsMut` is one).
pub trait ExtWrite {
    /// The span's value of type `T`, mutably, if it has one.
    fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T>;

    /// Keeps `value` on the span, replacing a value of its type.
    fn insert<T: Send + Sync + 'static>(&mut self, value: T);

    /// Takes the span's value of type `T`, if it has one.
    fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T>;
}

/// One span: its identity, its parent and the data kept on it.
pub trait SpanEntry: Sized {
    /// A read guard on the span's data.
    type Ext<'e>: ExtRead
    where
        Self: 'e;
    /// A write guard on the span's data.
    type ExtMut<'e>: ExtWrite
    where
        Self: 'e;

    /// The span's id.
    fn id(&self) -> Id;

    /// The span's metadata.
    fn metadata(&self) -> &'static Metadata<'static>;

    /// The span's name.
    #[inline]
    fn name(&self) -> &'static str {
        self.metadata().name()
    }

    /// The span's parent, if it has one the store still holds.
    fn parent(&self) -> Option<Self>;

    /// The span's data, to read. Holding it while asking for
    /// [`extensions_mut`](SpanEntry::extensions_mut) of the same span
    /// deadlocks, as with the registry's extensions.
    fn extensions(&self) -> Self::Ext<'_>;

    /// The span's data, to write.
    fn extensions_mut(&self) -> Self::ExtMut<'_>;

    /// The span's ancestors, its parent first.
    #[inline]
    fn ancestors(&self) -> impl Iterator<Item = Self> {
        std::iter::successors(self.parent(), SpanEntry::parent)
    }

    /// The first answer `f` gives for this span, then for each ancestor,
    /// innermost first.
    #[inline]
    fn find_in_scope<R>(&self, mut f: impl FnMut(&Self) -> Option<R>) -> Option<R> {
        f(self).or_else(|| self.ancestors().find_map(|s| f(&s)))
    }
}

/// Finds spans: by id, an event's span, the current span.
pub trait SpanLookup {
    /// A span found.
    type Entry<'l>: SpanEntry
    where
        Self: 'l;

    /// The span `id`, if the store holds it.
    fn span(&self, id: &Id) -> Option<Self::Entry<'_>>;

    /// The span an event belongs to: its explicit parent, else the current
    /// span when the event is contextual; `None` for a root event.
    fn event_span(&self, event: &Event<'_>) -> Option<Self::Entry<'_>>;

    /// The span the calling thread is in.
    fn current(&self) -> Option<Self::Entry<'_>>;
}

impl ExtRead for Extensions<'_> {
    #[inline]
    fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        Extensions::get(self)
    }
}

impl ExtWrite for ExtensionsMut<'_> {
    #[inline]
    fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        ExtensionsMut::get_mut(self)
    }

    #[inline]
    fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        ExtensionsMut::replace(self, value);
    }

    #[inline]
    fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        ExtensionsMut::remove(self)
    }
}

impl<'a, R> SpanEntry for SpanRef<'a, R>
where
    R: LookupSpan<'a>,
{
    type Ext<'e>
        = Extensions<'e>
    where
        Self: 'e;
    type ExtMut<'e>
        = ExtensionsMut<'e>
    where
        Self: 'e;

    #[inline]
    fn id(&self) -> Id {
        SpanRef::id(self)
    }

    #[inline]
    fn metadata(&self) -> &'static Metadata<'static> {
        SpanRef::metadata(self)
    }

    #[inline]
    fn name(&self) -> &'static str {
        SpanRef::name(self)
    }

    #[inline]
    fn parent(&self) -> Option<Self> {
        SpanRef::parent(self)
    }

    #[inline]
    fn extensions(&self) -> Extensions<'_> {
        SpanRef::extensions(self)
    }

    #[inline]
    fn extensions_mut(&self) -> ExtensionsMut<'_> {
        SpanRef::extensions_mut(self)
    }
}

impl<S> SpanLookup for Context<'_, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    type Entry<'l>
        = SpanRef<'l, S>
    where
        Self: 'l;

    #[inline]
    fn span(&self, id: &Id) -> Option<SpanRef<'_, S>> {
        Context::span(self, id)
    }

    #[inline]
    fn event_span(&self, event: &Event<'_>) -> Option<SpanRef<'_, S>> {
        Context::event_span(self, event)
    }

    #[inline]
    fn current(&self) -> Option<SpanRef<'_, S>> {
        Context::lookup_current(self)
    }
}

impl<T: SpanLookup> SpanLookup for &T {
    type Entry<'l>
        = T::Entry<'l>
    where
        Self: 'l;

    #[inline]
    fn span(&self, id: &Id) -> Option<Self::Entry<'_>> {
        (**self).span(id)
    }

    #[inline]
    fn event_span(&self, event: &Event<'_>) -> Option<Self::Entry<'_>> {
        (**self).event_span(event)
    }

    #[inline]
    fn current(&self) -> Option<Self::Entry<'_>> {
        (**self).current()
    }
}

/// A subscriber whose layers' contexts find spans: every subscriber built
/// on `tracing-subscriber`'s registry (any `LookupSpan`), and obs's own
/// [`SpanStore`](crate::store::SpanStore). obs's pillar layers are layers of
/// any such subscriber, and get their lookup from their callbacks' context
/// with [`lookup`](SpanSubscriber::lookup).
pub trait SpanSubscriber: Subscriber + Sized {
    /// The lookup a layer's context gives.
    type Lookup<'c>: SpanLookup
    where
        Self: 'c;

    /// The lookup of a layer callback's context.
    fn lookup<'c>(ctx: &'c Context<'c, Self>) -> Self::Lookup<'c>;
}

impl<S> SpanSubscriber for S
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    type Lookup<'c>
        = &'c Context<'c, S>
    where
        S: 'c;

    #[inline]
    fn lookup<'c>(ctx: &'c Context<'c, S>) -> &'c Context<'c, S> {
        ctx
    }
}

impl SpanSubscriber for crate::store::SpanStore {
    type Lookup<'c> = crate::store::StoreLookup<'c>;

    #[inline]
    fn lookup<'c>(ctx: &'c Context<'c, Self>) -> crate::store::StoreLookup<'c> {
        crate::store::StoreLookup::new(ctx)
    }
}

/// A span found from outside a layer callback (the current ids, an error
/// report's context, an exemplar's trace) in a dispatcher built on
/// `tracing-subscriber`'s registry or on obs's [`SpanStore`](crate::store::SpanStore).
#[derive(Debug)]
pub enum Found<'d> {
    /// A span of the registry.
    Registry(SpanRef<'d, tracing_subscriber::Registry>),
    /// A span of obs's store.
    Store(crate::store::StoreEntry),
}

impl<'d> Found<'d> {
    /// The span `id` of `dispatch`'s span store; `None` when the span is
    /// unknown or the dispatcher keeps spans in neither store.
    #[inline]
    pub fn span(dispatch: &'d tracing_core::Dispatch, id: &Id) -> Option<Found<'d>> {
        if let Some(reg) = dispatch.downcast_ref::<tracing_subscriber::Registry>() {
            return LookupSpan::span(reg, id).map(Found::Registry);
        }
        if dispatch.is::<crate::store::SpanStore>() {
            return crate::store::StoreEntry::find(id).map(Found::Store);
        }
        None
    }

    /// `dispatch`'s current span.
    #[inline]
    pub fn current(dispatch: &'d tracing_core::Dispatch) -> Option<Found<'d>> {
        let current = dispatch.current_span();
        Self::span(dispatch, current.id()?)
    }
}

/// A read guard on a [`Found`] span's data.
#[derive(Debug)]
pub enum FoundRef<'e> {
    /// The registry's extensions.
    Registry(Extensions<'e>),
    /// The store's data.
    Store(crate::store::DataRef<'e>),
}

/// A write guard on a [`Found`] span's data.
#[derive(Debug)]
pub enum FoundMut<'e> {
    /// The registry's extensions.
    Registry(ExtensionsMut<'e>),
    /// The store's data.
    Store(crate::store::DataMut<'e>),
}

impl ExtRead for FoundRef<'_> {
    #[inline]
    fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        match self {
            FoundRef::Registry(e) => e.get(),
            FoundRef::Store(e) => ExtRead::get(e),
        }
    }
}

impl ExtWrite for FoundMut<'_> {
    #[inline]
    fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        match self {
            FoundMut::Registry(e) => ExtWrite::get_mut(e),
            FoundMut::Store(e) => ExtWrite::get_mut(e),
        }
    }

    #[inline]
    fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        match self {
            FoundMut::Registry(e) => ExtWrite::insert(e, value),
            FoundMut::Store(e) => ExtWrite::insert(e, value),
        }
    }

    #[inline]
    fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        match self {
            FoundMut::Registry(e) => ExtWrite::remove(e),
            FoundMut::Store(e) => ExtWrite::remove(e),
        }
    }
}

impl SpanEntry for Found<'_> {
    type Ext<'e>
        = FoundRef<'e>
    where
        Self: 'e;
    type ExtMut<'e>
        = FoundMut<'e>
    where
        Self: 'e;

    #[inline]
    fn id(&self) -> Id {
        match self {
            Found::Registry(s) => s.id(),
            Found::Store(s) => SpanEntry::id(s),
        }
    }

    #[inline]
    fn metadata(&self) -> &'static Metadata<'static> {
        match self {
            Found::Registry(s) => s.metadata(),
            Found::Store(s) => SpanEntry::metadata(s),
        }
    }

    #[inline]
    fn parent(&self) -> Option<Self> {
        match self {
            Found::Registry(s) => s.parent().map(Found::Registry),
            Found::Store(s) => SpanEntry::parent(s).map(Found::Store),
        }
    }

    #[inline]
    fn extensions(&self) -> FoundRef<'_> {
        match self {
            Found::Registry(s) => FoundRef::Registry(s.extensions()),
            Found::Store(s) => FoundRef::Store(SpanEntry::extensions(s)),
        }
    }

    #[inline]
    fn extensions_mut(&self) -> FoundMut<'_> {
        match self {
            Found::Registry(s) => FoundMut::Registry(s.extensions_mut()),
            Found::Store(s) => FoundMut::Store(SpanEntry::extensions_mut(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SpanRecord;
    use tracing_subscriber::layer::SubscriberExt;

    /// A layer that reads and writes through the walker only.
    struct Walk(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl<S> tracing_subscriber::Layer<S> for Walk
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_new_span(
            &self,
            _: &tracing_core::span::Attributes<'_>,
            id: &Id,
            ctx: Context<'_, S>,
        ) {
            let span = SpanLookup::span(&ctx, id).expect("a new span is held");
            let depth = span
                .parent()
                .and_then(|p| {
                    p.extensions()
                        .get::<SpanRecord>()
                        .map(|r| r.ids.trace_flags)
                })
                .map_or(0, |_| 1);
            let mut ext = SpanEntry::extensions_mut(&span);
            ExtWrite::insert(&mut ext, depth as u32);
            SpanRecord::update(&mut ext, |_| {});
        }

        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            let mut names = Vec::new();
            let mut next = SpanLookup::event_span(&ctx, event);
            while let Some(span) = next {
                let ext = SpanEntry::extensions(&span);
                names.push(format!(
                    "{}:{}:{}",
                    SpanEntry::name(&span),
                    ExtRead::get::<u32>(&ext).copied().unwrap_or(9),
                    ExtRead::get::<SpanRecord>(&ext).is_some()
                ));
                drop(ext);
                next = SpanEntry::parent(&span);
            }
            let current = SpanLookup::current(&ctx).map(|s| SpanEntry::name(&s));
            names.push(format!("current={current:?}"));
            self.0.lock().unwrap().push(names.join(" "));
        }
    }

    #[test]
    fn the_registry_is_walked_through_the_traits() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Walk(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer");
            let _o = outer.enter();
            let inner = tracing::info_span!("inner");
            let _i = inner.enter();
            tracing::info!("in both");
            tracing::info!(parent: &outer, "in the outer");
            tracing::info!(parent: None, "at the root");
        });
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [
                "inner:1:true outer:0:true current=Some(\"inner\")",
                "outer:0:true current=Some(\"inner\")",
                "current=Some(\"inner\")",
            ]
        );
    }
}
