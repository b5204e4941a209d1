//! The facade's one `tracing` layer: the log, trace and errors pillars'
//! layers fused behind one filter, a per-layer filter beside the user's
//! layers and the subscriber's own when the fused layer is alone.
//!
//! Each pillar keeps its own layer and its own filter (the log directive,
//! `OBS_TRACE_FILTER`, the breadcrumb level), and each still decides alone
//! which spans and events it sees. What changes is who asks: one filter
//! enables what at least one pillar wants ([`AnyOf`]), and the [`Fused`]
//! layer behind it asks each pillar's filter for the spans it opens and the
//! events it records. Three `Filtered` wrappers used to look every span up
//! in the registry on every enter, exit, record and close, each to learn
//! whether its own layer had seen it (about 18 lookups per request); one
//! [`Filtered`] wrapper looks it up once per callback, and with no wrapper
//! (alone) it is not looked up at all; the fused layer needs no lookup of
//! its own either: each pillar's later callbacks act only on a span that
//! carries that pillar's extension, which only the spans it opened do.
//!
//! The context the pillars get is the union's: a span no pillar wants is
//! invisible to all, a span one pillar wants is visible to the others
//! (walking a scope, each pillar skips spans without its extension).
//! Standalone, every pillar crate still runs with its own layer.
//!
//! When the fused layer is the subscriber's only layer ([`Mode::Sole`]:
//! [`obs::init`](crate::init) installing the global subscriber without
//! layers of the user's, [`Obs::take_subscriber`](crate::Obs::take_subscriber)),
//! it stands on obs's own span store ([`obs_core::store`]) instead of the
//! registry: each span's record lives inline in its slot (no extension box
//! per span), and entering or exiting a span touches no slot. Nothing else
//! shares the subscriber, so the union filter need not be a per-layer
//! filter: the layer itself answers `register_callsite`, `enabled` and
//! `max_level_hint` with it, as the subscriber's global filter, and no span
//! is looked up to learn whether the filter enabled it (on every enter,
//! exit, record and close). The pillars' layers and filters are kept as
//! their own types ([`Part`]) until the subscriber is known, since a layer
//! boxed for the registry cannot go on the store. Beside layers of the
//! user's ([`Mode::Composed`]) the fused layer goes on a registry behind a
//! per-layer filter, so that obs's
//! levels never hide a span or event from the user's layers.

use std::fmt;
use std::sync::Arc;

use obs_core::spans::{SpanEntry as _, SpanLookup as _, SpanSubscriber};
use obs_core::store::SpanStore;
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use super::Boxed;

/// A pillar's filter, boxed like its layer.
type BoxedFilter<S> = Box<dyn Filter<S> + Send + Sync + 'static>;

/// Which span callbacks after `on_new_span` a part acts on, its layer or its
/// filter: the fused layer skips the others (two dynamic calls each, on
/// every enter and exit of every span).
#[derive(Clone)]
pub(crate) struct SpanCallbacks {
    /// `on_record`.
    pub(crate) record: bool,
    /// `on_enter`, `on_exit`, `on_close` and `on_follows_from`.
    pub(crate) lifecycle: Lifecycle,
}

/// Whether a part acts on the span lifecycle callbacks now.
type LifecycleCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// Whether a part acts on the span lifecycle callbacks.
#[derive(Clone)]
pub(crate) enum Lifecycle {
    /// Never: they are not called.
    #[cfg_attr(
        not(any(feature = "trace", feature = "errors")),
        allow(dead_code, reason = "the trace and errors pillars act on none")
    )]
    Never,
    /// While the check says so, asked on each callback: for a part whose
    /// need changes at runtime (the log directive acts on them only while it
    /// has span filters, and a reload may add or remove them). One call and
    /// a load where two dynamic calls did nothing.
    #[cfg_attr(
        not(feature = "log"),
        allow(dead_code, reason = "only the log pillar's need changes")
    )]
    While(LifecycleCheck),
}

impl fmt::Debug for SpanCallbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanCallbacks")
            .field("record", &self.record)
            .field(
                "lifecycle",
                &match self.lifecycle {
                    Lifecycle::Never => "never",
                    Lifecycle::While(_) => "while",
                },
            )
            .finish()
    }
}

/// A pillar's layer and the filter that decides what it sees, kept as
/// their own types until the subscriber they go on is known: obs's span
/// store when they stand alone, a registry beside layers of the user's.
pub(crate) enum Part {
    /// The log pillar's layer and its directive.
    #[cfg(feature = "log")]
    Log(obs_log::LogLayer, obs_log::LogFilter),
    /// The trace pillar's layer and `OBS_TRACE_FILTER`.
    #[cfg(feature = "trace")]
    Trace(obs_trace::TraceLayer, tracing_subscriber::filter::Targets),
    /// The errors pillar's layer and its breadcrumb level.
    #[cfg(feature = "errors")]
    Errors(obs_errors::ErrorLayer, super::errors::ErrorsFilter),
}

impl Part {
    fn boxed<S>(self) -> (Boxed<S>, BoxedFilter<S>)
    where
        S: SpanSubscriber + Send + Sync + 'static,
    {
        match self {
            #[cfg(feature = "log")]
            Part::Log(l, f) => (Box::new(l), Box::new(f)),
            #[cfg(feature = "trace")]
            Part::Trace(l, f) => (Box::new(l), Box::new(f)),
            #[cfg(feature = "errors")]
            Part::Errors(l, f) => (Box::new(l), Box::new(f)),
        }
    }
}

/// The pillars' layers and filters, gathered while the pillars start, in
/// the order their callbacks run.
pub(crate) struct Parts {
    parts: Vec<(Part, SpanCallbacks)>,
}

impl Parts {
    pub(crate) fn new() -> Self {
        Self { parts: Vec::new() }
    }

    /// Adds a pillar's layer and filter with the span callbacks either of
    /// them implements.
    #[cfg_attr(
        not(any(feature = "log", feature = "trace", feature = "errors")),
        allow(
            dead_code,
            reason = "only the log, trace and errors pillars have a layer"
        )
    )]
    pub(crate) fn push(&mut self, part: Part, callbacks: SpanCallbacks) {
        self.parts.push((part, callbacks));
    }

    /// The one layer beside layers of the user's: the fused pillars behind
    /// the union of their filters, as a per-layer filter.
    pub(crate) fn into_layer<S>(self) -> Boxed<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
    {
        let (fused, any) = self.fused::<S>();
        Box::new(fused.with_filter(any))
    }

    /// The subscriber of the pillars alone: the fused layer on obs's own
    /// span store, the union of the filters answering as the subscriber's.
    pub(crate) fn into_sole(self) -> obs_core::store::SoleSubscriber<impl Layer<SpanStore>> {
        let (mut fused, any) = self.fused::<SpanStore>();
        fused.sole = Some(any);
        obs_core::store::sole_subscriber(fused)
    }

    fn fused<S>(self) -> (Fused<S>, AnyOf<S>)
    where
        S: SpanSubscriber + Send + Sync + 'static,
    {
        let (boxed, callbacks): (Vec<_>, Vec<_>) = self
            .parts
            .into_iter()
            .map(|(part, callbacks)| (part.boxed::<S>(), callbacks))
            .unzip();
        let (layers, filters): (Vec<_>, Vec<_>) = boxed.into_iter().unzip();
        let filters: Arc<[BoxedFilter<S>]> = filters.into();
        let select = |f: fn(&SpanCallbacks) -> bool| {
            callbacks
                .iter()
                .enumerate()
                .filter(|(_, c)| f(c))
                .map(|(i, _)| i)
                .collect()
        };
        let lifecycle = callbacks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.lifecycle {
                Lifecycle::Never => None,
                Lifecycle::While(check) => Some((i, check.clone())),
            })
            .collect();
        let any = AnyOf {
            filters: filters.clone(),
        };
        let fused = Fused {
            record: select(|c| c.record),
            lifecycle,
            layers,
            filters,
            sole: None,
        };
        (fused, any)
    }
}

/// Whether the fused layer shares its subscriber with layers of the user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The only layer, on obs's span store: its filter is the subscriber's.
    Sole,
    /// Among other layers, on a registry: its filter is a per-layer filter.
    Composed,
}

/// The pillars' layers, each called for what its own filter enables.
struct Fused<S> {
    layers: Vec<Boxed<S>>,
    /// `filters[i]` decides for `layers[i]`.
    filters: Arc<[BoxedFilter<S>]>,
    /// The parts that act on `on_record`.
    record: Vec<usize>,
    /// The parts that may act on enter, exit, close and follows-from, each
    /// with the check of whether it does now.
    lifecycle: Vec<(usize, LifecycleCheck)>,
    /// The union filter, when this layer is the subscriber's only one and
    /// the filter is therefore the subscriber's ([`Mode::Sole`]); `None`
    /// when a per-layer filter wraps the layer.
    sole: Option<AnyOf<S>>,
}

impl<S> fmt::Debug for Fused<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fused")
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl<S> Fused<S>
where
    S: SpanSubscriber,
{
    fn parts(&self) -> impl Iterator<Item = (&Boxed<S>, &BoxedFilter<S>)> {
        self.layers.iter().zip(self.filters.iter())
    }

    /// The parts acting on the span lifecycle callbacks now.
    fn lifecycle(&self) -> impl Iterator<Item = (&Boxed<S>, &BoxedFilter<S>)> {
        self.lifecycle
            .iter()
            .filter(|(_, acts)| acts())
            .map(|&(i, _)| (&self.layers[i], &self.filters[i]))
    }

    fn some<'a>(
        &'a self,
        which: &'a [usize],
    ) -> impl Iterator<Item = (&'a Boxed<S>, &'a BoxedFilter<S>)> {
        which.iter().map(|&i| (&self.layers[i], &self.filters[i]))
    }
}

impl<S> Layer<S> for Fused<S>
where
    S: SpanSubscriber + Send + Sync + 'static,
{
    fn on_register_dispatch(&self, dispatch: &tracing::Dispatch) {
        for l in &self.layers {
            l.on_register_dispatch(dispatch);
        }
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        for l in &mut self.layers {
            l.on_layer(subscriber);
        }
    }

    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Like a per-layer filter: a layer learns the callsites its filter
        // does not refuse; the interest is the filter's, not the layer's.
        let mut union = Union::default();
        for (l, f) in self.parts() {
            let interest = f.callsite_enabled(meta);
            if !interest.is_never() {
                l.register_callsite(meta);
            }
            union.add(&interest);
        }
        match &self.sole {
            // Alone: the subscriber's interest, from the one pass above.
            Some(_) => union.interest(),
            // The per-layer filter around this layer answers.
            None => Interest::always(),
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.sole.as_ref().is_none_or(|any| any.enabled(meta, &ctx))
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.sole
            .as_ref()
            .and_then(|any| Filter::<S>::max_level_hint(any))
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        for (l, f) in self.parts() {
            if f.enabled(meta, &ctx) {
                f.on_new_span(attrs, id, ctx.clone());
                l.on_new_span(attrs, id, ctx.clone());
            }
        }
        // The correlation id handed to this span is written by the log or
        // trace layer when either opened it; a span only the errors
        // pillar's filter enabled gets it here, so no span of a request
        // misses its id whatever the pillars' filters are.
        if obs_core::IdRecord::next_span_correlation_waiting()
            && let Some(span) = S::lookup(&ctx).span(id)
        {
            obs_core::IdRecord::adopt_next_span_correlation(&mut span.extensions_mut());
        }
    }

    // The span callbacks below go to every pillar that acts on them: each
    // acts only on a span carrying its own extension (one it opened), and a
    // filter tracks only the spans it was shown. No lookup is made to learn
    // who saw the span.

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        for (l, f) in self.some(&self.record) {
            f.on_record(id, values, ctx.clone());
            l.on_record(id, values, ctx.clone());
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        for (l, _) in self.lifecycle() {
            l.on_follows_from(id, follows, ctx.clone());
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        for (l, f) in self.lifecycle() {
            f.on_enter(id, ctx.clone());
            l.on_enter(id, ctx.clone());
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        for (l, f) in self.lifecycle() {
            f.on_exit(id, ctx.clone());
            l.on_exit(id, ctx.clone());
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        for (l, f) in self.lifecycle() {
            f.on_close(id.clone(), ctx.clone());
            l.on_close(id.clone(), ctx.clone());
        }
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        for l in &self.layers {
            l.on_id_change(old, new, ctx.clone());
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // A record of the `log` crate arrives on one bridge callsite per
        // level (target `log`): each part's filter judges it by the record's
        // own target and level, as it did when `tracing-log` asked whether
        // the record was enabled at all.
        // (Whoever installed the bridge: `log-bridge`, or the user through
        // `obs::log::init_log_bridge` or `tracing-log` directly.)
        #[cfg(feature = "log")]
        let bridged = obs_log::bridged_metadata(event);
        #[cfg(feature = "log")]
        let meta = bridged.as_ref().unwrap_or_else(|| event.metadata());
        #[cfg(not(feature = "log"))]
        let meta = event.metadata();
        for (l, f) in self.parts() {
            if f.enabled(meta, &ctx) && f.event_enabled(event, &ctx) {
                l.on_event(event, ctx.clone());
            }
        }
    }
}

/// Enables what at least one pillar's filter enables.
struct AnyOf<S> {
    filters: Arc<[BoxedFilter<S>]>,
}

impl<S> fmt::Debug for AnyOf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyOf")
            .field("filters", &self.filters.len())
            .finish()
    }
}

impl<S> Filter<S> for AnyOf<S>
where
    S: tracing::Subscriber,
{
    fn enabled(&self, meta: &Metadata<'_>, ctx: &Context<'_, S>) -> bool {
        self.filters.iter().any(|f| f.enabled(meta, ctx))
    }

    // No `event_enabled`: the fused layer's `on_event` asks each part's
    // filter (`enabled`, then `event_enabled`) once, for the part it feeds;
    // asking all of them here too would evaluate every filter once more per
    // event to reach the same answer.

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Every filter is asked (the log filter remembers span callsites
        // for directives loaded later).
        let mut union = Union::default();
        for f in self.filters.iter() {
            union.add(&f.callsite_enabled(meta));
        }
        union.interest()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let mut max = LevelFilter::OFF;
        for f in self.filters.iter() {
            max = max.max(f.max_level_hint()?);
        }
        Some(max)
    }
}

/// The interest of a callsite for the union of the pillars' filters:
/// `sometimes` from any, ask each time; otherwise `always` when one wants
/// it (the fused layer then asks each pillar's filter per span and event);
/// otherwise `never`.
#[derive(Default)]
struct Union {
    always: bool,
    sometimes: bool,
}

impl Union {
    fn add(&mut self, i: &Interest) {
        self.always |= i.is_always();
        self.sometimes |= i.is_sometimes();
    }

    fn interest(&self) -> Interest {
        if self.sometimes {
            Interest::sometimes()
        } else if self.always {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}
