//! The runtime-reloadable filter.
//!
//! A `target=level` directive is parsed into a `tracing-subscriber`
//! [`Targets`] kept in an [`ArcSwap`]: readers never take a lock, and because
//! the layer turns the filter into per-callsite `Interest`s (rebuilt on every
//! change), a disabled event costs what a static level filter costs.
//!
//! A directive in `EnvFilter`'s fuller syntax — span filters
//! (`my_app[request]=debug`), field filters (`[{user=alice}]=trace`) — is
//! handed to an `EnvFilter` instead (feature `env-filter`), which sees the
//! layer's spans to decide; reloading works the same way.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use tracing_core::dispatcher::WeakDispatch;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Dispatch, Level, LevelFilter, Metadata, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Context;
#[cfg(feature = "env-filter")]
use tracing_subscriber::layer::Layer;

use crate::Error;

/// Longest directive accepted, in bytes: real directives are a few dozen
/// bytes, and parsing is linear in the number of parts.
pub const MAX_DIRECTIVE_LEN: usize = 4096;

/// A parsed directive.
#[derive(Debug)]
pub(crate) enum Compiled {
    /// `target=level` pairs: decided per callsite, cached.
    Targets(Targets),
    /// Span and field filters: decided by `EnvFilter`, which tracks the
    /// spans each thread is in.
    #[cfg(feature = "env-filter")]
    Env(Box<tracing_subscriber::EnvFilter>),
}

/// Parses a directive: `Targets` syntax, or `EnvFilter` syntax when it has
/// span or field filters.
pub(crate) fn parse_directive(directive: &str) -> Result<Compiled, Error> {
    let d = directive.trim();
    let err = |reason: &str| Error::Directive {
        directive: obs_core::error::preview(directive.as_bytes()),
        reason: reason.to_owned(),
    };
    if d.is_empty() {
        return Err(err("the directive is empty (use `off` to disable logging)"));
    }
    if d.len() > MAX_DIRECTIVE_LEN {
        return Err(err(&format!(
            "the directive is {} bytes long, the maximum is {MAX_DIRECTIVE_LEN}",
            d.len()
        )));
    }
    let part_preview = |p: &str| obs_core::error::preview(p.as_bytes());
    if d.contains('[') || d.contains('{') {
        #[cfg(feature = "env-filter")]
        return tracing_subscriber::EnvFilter::builder()
            .parse(d)
            .map(|f| Compiled::Env(Box::new(f)))
            .map_err(|e| err(&e.to_string()));
        #[cfg(not(feature = "env-filter"))]
        return Err(err(
            "span and field filters need obs-log's `env-filter` feature; use `target=level` pairs",
        ));
    }
    for part in d.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((target, level)) = part.split_once('=') {
            if target.trim().is_empty() {
                return Err(err(&format!(
                    "{} has no target before `=`",
                    part_preview(part)
                )));
            }
            if level.trim().parse::<LevelFilter>().is_err() {
                return Err(err(&format!(
                    "{} in {} is not a level (trace, debug, info, warn, error, off)",
                    part_preview(level.trim()),
                    part_preview(part)
                )));
            }
        } else if part.parse::<LevelFilter>().is_err() && !is_target(part) {
            return Err(err(&format!(
                "{} is neither a level nor a target",
                part_preview(part)
            )));
        }
    }
    d.parse::<Targets>()
        .map(Compiled::Targets)
        .map_err(|e| err(&e.to_string()))
}

/// Audit lines (target `obs::audit`, WARN or ERROR) are never filtered out:
/// a change of the log level must be recorded even when it turns logging off.
#[inline]
fn is_audit(target: &str, level: &Level) -> bool {
    *level <= Level::WARN && target == obs_core::names::target::AUDIT
}

fn is_target(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.'))
}

pub(crate) struct FilterState {
    targets: ArcSwap<Compiled>,
    /// Every span callsite seen, so that a directive with span filters
    /// loaded at runtime learns the spans it matches (a per-layer filter's
    /// interests are never rebuilt). Bounded by the program's callsites.
    span_callsites: Mutex<Vec<&'static Metadata<'static>>>,
    directive: ArcSwap<String>,
    /// Whether the directive is an `EnvFilter` (span and field filters),
    /// the only kind that acts on span callbacks: a `target=level`
    /// directive's span callbacks then skip loading it (five to seven
    /// loads per request).
    #[cfg(feature = "env-filter")]
    span_aware: std::sync::atomic::AtomicBool,
    /// The dispatcher the layer was registered with (weak: the dispatcher
    /// owns the layer, which owns this state), as a global or a per-layer
    /// filter.
    dispatch: Mutex<Option<WeakDispatch>>,
}

impl FilterState {
    pub(crate) fn new(directive: &str) -> Result<Self, Error> {
        let t = parse_directive(directive)?;
        Ok(Self {
            #[cfg(feature = "env-filter")]
            span_aware: std::sync::atomic::AtomicBool::new(matches!(t, Compiled::Env(_))),
            targets: ArcSwap::from_pointee(t),
            span_callsites: Mutex::new(Vec::new()),
            directive: ArcSwap::from_pointee(directive.trim().to_owned()),
            dispatch: Mutex::new(None),
        })
    }

    /// Remembers the dispatcher the layer runs in (from
    /// `Layer::on_register_dispatch`).
    pub(crate) fn attach(&self, dispatch: &Dispatch) {
        *self.dispatch.lock().unwrap_or_else(PoisonError::into_inner) = Some(dispatch.downgrade());
    }

    /// Recomputes every callsite's cached interest and the global max level
    /// after the directive changed.
    ///
    /// While a single dispatcher exists, tracing-core recomputes them from
    /// the default dispatcher *of the calling thread*. A reload usually comes
    /// from another thread than the logging ones (an admin endpoint); when
    /// the layer runs under a scoped default (`with_default`, `set_default`),
    /// that thread has no dispatcher, and every callsite would be cached as
    /// `never`, silencing even the lines the new directive enables, until
    /// something else rebuilds the cache. Rebuilding with the layer's own
    /// dispatcher as this thread's default gives the layer's answer from any
    /// thread. Without a known dispatcher (the layer inside a `Vec` or an
    /// `Option`, which do not forward `on_register_dispatch`) the plain
    /// rebuild is what is left; it is right under a global default.
    pub(crate) fn rebuild_interest(&self) {
        let own = self
            .dispatch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(WeakDispatch::upgrade);
        match own {
            Some(dispatch) => tracing_core::dispatcher::with_default(
                &dispatch,
                tracing_core::callsite::rebuild_interest_cache,
            ),
            None => tracing_core::callsite::rebuild_interest_cache(),
        }
    }

    /// Runs `f` on the directive when it is an `EnvFilter`, the only kind
    /// that acts on span callbacks; a `target=level` directive is not
    /// loaded at all (see `span_aware`).
    #[cfg(feature = "env-filter")]
    #[inline(always)]
    fn with_env_filter(&self, f: impl FnOnce(&tracing_subscriber::EnvFilter)) {
        if self.span_aware.load(std::sync::atomic::Ordering::Relaxed)
            && let Compiled::Env(env) = &**self.targets.load()
        {
            f(env);
        }
    }

    /// Whether `meta` passes; `ctx` is what an `EnvFilter` directive reads
    /// the current spans from.
    #[inline]
    #[cfg_attr(
        not(feature = "env-filter"),
        allow(
            unused_variables,
            reason = "only EnvFilter directives read the context"
        )
    )]
    pub(crate) fn enabled<S>(&self, meta: &Metadata<'_>, ctx: &Context<'_, S>) -> bool
    where
        S: Subscriber,
    {
        if is_audit(meta.target(), meta.level()) {
            return true;
        }
        match &**self.targets.load() {
            Compiled::Targets(t) => t.would_enable(meta.target(), meta.level()),
            #[cfg(feature = "env-filter")]
            Compiled::Env(f) => {
                <tracing_subscriber::EnvFilter as Layer<S>>::enabled(f, meta, ctx.clone())
            }
        }
    }

    /// The cached interest of a callsite, for the layer used as a global
    /// filter.
    #[cfg_attr(
        not(feature = "env-filter"),
        allow(
            clippy::extra_unused_type_parameters,
            reason = "only EnvFilter directives are asked with the subscriber type"
        )
    )]
    pub(crate) fn interest<S>(&self, meta: &'static Metadata<'static>) -> Interest
    where
        S: Subscriber,
    {
        if meta.is_span() {
            let mut seen = self
                .span_callsites
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !seen.iter().any(|m| m.callsite() == meta.callsite()) {
                seen.push(meta);
            }
        }
        if is_audit(meta.target(), meta.level()) {
            return Interest::always();
        }
        match &**self.targets.load() {
            Compiled::Targets(t) if t.would_enable(meta.target(), meta.level()) => {
                Interest::always()
            }
            Compiled::Targets(_) => Interest::never(),
            #[cfg(feature = "env-filter")]
            Compiled::Env(f) => {
                <tracing_subscriber::EnvFilter as Layer<S>>::register_callsite(f, meta)
            }
        }
    }

    /// Shows a new span to an `EnvFilter` directive, which tracks the spans
    /// its span and field filters match; a no-op for `target=level`.
    #[inline]
    pub(crate) fn on_new_span<S>(&self, attrs: &Attributes<'_>, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber,
    {
        #[cfg(feature = "env-filter")]
        self.with_env_filter(|f| f.on_new_span(attrs, id, ctx.clone()));
        #[cfg(not(feature = "env-filter"))]
        let _ = (attrs, id, ctx);
    }

    /// See [`on_new_span`](Self::on_new_span).
    #[inline]
    pub(crate) fn on_record<S>(&self, id: &Id, values: &Record<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber,
    {
        #[cfg(feature = "env-filter")]
        self.with_env_filter(|f| f.on_record(id, values, ctx.clone()));
        #[cfg(not(feature = "env-filter"))]
        let _ = (id, values, ctx);
    }

    /// See [`on_new_span`](Self::on_new_span).
    #[inline]
    pub(crate) fn on_enter<S>(&self, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber,
    {
        #[cfg(feature = "env-filter")]
        self.with_env_filter(|f| f.on_enter(id, ctx.clone()));
        #[cfg(not(feature = "env-filter"))]
        let _ = (id, ctx);
    }

    /// See [`on_new_span`](Self::on_new_span).
    #[inline]
    pub(crate) fn on_exit<S>(&self, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber,
    {
        #[cfg(feature = "env-filter")]
        self.with_env_filter(|f| f.on_exit(id, ctx.clone()));
        #[cfg(not(feature = "env-filter"))]
        let _ = (id, ctx);
    }

    /// See [`on_new_span`](Self::on_new_span).
    #[inline]
    pub(crate) fn on_close<S>(&self, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber,
    {
        #[cfg(feature = "env-filter")]
        self.with_env_filter(|f| f.on_close(id.clone(), ctx.clone()));
        #[cfg(not(feature = "env-filter"))]
        let _ = (id, ctx);
    }

    /// Whether an event of `target` at `level` passes. For an `EnvFilter`
    /// directive, whose answer depends on the spans an event is in, this is
    /// its most verbose level anywhere.
    #[inline]
    pub(crate) fn would_enable(&self, target: &str, level: &Level) -> bool {
        if is_audit(target, level) {
            return true;
        }
        match &**self.targets.load() {
            Compiled::Targets(t) => t.would_enable(target, level),
            #[cfg(feature = "env-filter")]
            Compiled::Env(f) => {
                tracing_subscriber::EnvFilter::max_level_hint(f).is_none_or(|max| max >= *level)
            }
        }
    }

    /// At least WARN: audit lines pass whatever the directive says.
    pub(crate) fn max_level(&self) -> LevelFilter {
        let max = match &**self.targets.load() {
            Compiled::Targets(t) => {
                let mut max = t.default_level().unwrap_or(LevelFilter::OFF);
                for (_, l) in t.iter() {
                    max = max.max(l);
                }
                max
            }
            #[cfg(feature = "env-filter")]
            Compiled::Env(f) => {
                tracing_subscriber::EnvFilter::max_level_hint(f).unwrap_or(LevelFilter::TRACE)
            }
        };
        max.max(LevelFilter::WARN)
    }
}

/// Changes the filter directive of a running layer, e.g. from an admin
/// endpoint. Cheap to clone; readers on the logging hot path take no lock.
///
/// ```
/// use obs_log::Config;
/// let (_layer, handles) = obs_log::layer(Config::new().filter("info").writer(std::io::sink()))?;
/// assert_eq!(handles.reload.current(), "info");
/// handles.reload.set("warn,my_app::db=trace")?;
/// assert_eq!(handles.reload.current(), "warn,my_app::db=trace");
/// let err = handles.reload.set("my_app=loud").unwrap_err();
/// assert!(err.to_string().contains("my_app=loud"));
/// assert_eq!(handles.reload.current(), "warn,my_app::db=trace");
/// # Ok::<(), obs_log::Error>(())
/// ```
#[derive(Clone)]
pub struct ReloadHandle {
    pub(crate) state: Arc<FilterState>,
}

impl fmt::Debug for ReloadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadHandle")
            .field("directive", &**self.state.directive.load())
            .finish()
    }
}

impl ReloadHandle {
    /// The directive in force.
    pub fn current(&self) -> String {
        (**self.state.directive.load()).clone()
    }

    /// Checks a directive without applying it (the error [`set`](Self::set)
    /// would return).
    pub fn validate(directive: &str) -> Result<(), Error> {
        parse_directive(directive).map(drop)
    }

    /// Replaces the directive. On error the old directive stays in force.
    pub fn set(&self, directive: &str) -> Result<(), Error> {
        let t = parse_directive(directive)?;
        // A directive with span filters learns the spans it matches from
        // their callsites; show it every span callsite seen so far.
        #[cfg(feature = "env-filter")]
        if let Compiled::Env(f) = &t {
            let seen = self
                .state
                .span_callsites
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for meta in seen.iter() {
                let _ = <tracing_subscriber::EnvFilter as Layer<tracing_subscriber::Registry>>::register_callsite(f, meta);
            }
        }
        #[cfg(feature = "env-filter")]
        let span_aware = matches!(t, Compiled::Env(_));
        self.state.targets.store(Arc::new(t));
        #[cfg(feature = "env-filter")]
        self.state
            .span_aware
            .store(span_aware, std::sync::atomic::Ordering::Relaxed);
        self.state
            .directive
            .store(Arc::new(directive.trim().to_owned()));
        // Recompute the callsites' cached interests and the global maximum
        // level, as the layer's dispatcher sees them, whichever thread
        // reloads. As a global filter the layer turned the directive into
        // interests. As a per-layer filter its interests do not change
        // (events are decided one by one), but its level hint does: without
        // the rebuild, `tracing`'s maximum level would keep the old
        // directive's, and a directive more verbose than the start's would
        // never see a line (`tests/reload_hint.rs`).
        self.state.rebuild_interest();
        Ok(())
    }

    /// The directive as a per-layer filter (see [`Config::per_layer_filter`](crate::Config::per_layer_filter)),
    /// following every later [`set`](Self::set).
    pub fn filter(&self) -> LogFilter {
        LogFilter {
            state: self.state.clone(),
        }
    }

    /// Whether an event with `target` and `level` passes the current filter.
    pub fn would_enable(&self, target: &str, level: Level) -> bool {
        self.state.would_enable(target, &level)
    }
}

/// The reloadable directive as a `tracing-subscriber` per-layer
/// [`Filter`](tracing_subscriber::layer::Filter); get it from
/// [`ReloadHandle::filter`].
#[derive(Clone)]
pub struct LogFilter {
    state: Arc<FilterState>,
}

impl LogFilter {
    /// Whether the directive now acts on span lifecycle callbacks (enter,
    /// exit, close): only an `EnvFilter` directive (span and field filters)
    /// follows spans; a `target=level` one ignores them. A layer composing
    /// this filter may skip those callbacks while this says `false`; it is
    /// one atomic load, and a reload changes the answer.
    #[inline]
    pub fn acts_on_span_lifecycle(&self) -> bool {
        #[cfg(feature = "env-filter")]
        {
            self.state
                .span_aware
                .load(std::sync::atomic::Ordering::Relaxed)
        }
        #[cfg(not(feature = "env-filter"))]
        {
            false
        }
    }
}

impl fmt::Debug for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogFilter")
            .field("directive", &**self.state.directive.load())
            .finish()
    }
}

/// INFO, WARN and ERROR spans always pass: they write no line themselves,
/// and a WARN line inside an INFO request span must still carry that span's
/// fields and ids. DEBUG and TRACE spans (libraries such as hyper and h2
/// open many) pass only when the directive enables them. The directive
/// decides which *events* become lines.
impl<S> tracing_subscriber::layer::Filter<S> for LogFilter
where
    S: Subscriber,
{
    fn enabled(&self, meta: &Metadata<'_>, ctx: &Context<'_, S>) -> bool {
        (meta.is_span() && *meta.level() <= Level::INFO) || self.state.enabled(meta, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.state.on_new_span(attrs, id, &ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.state.on_record(id, values, &ctx);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.state.on_enter(id, &ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.state.on_exit(id, &ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.state.on_close(&id, &ctx);
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Every span callsite is shown to the directive (span filters learn
        // the spans they match from it), whatever the answer below.
        if meta.is_span() {
            let _ = self.state.interest::<S>(meta);
        }
        if meta.is_span() && *meta.level() <= Level::INFO {
            Interest::always()
        } else {
            // Decided per event. tracing-subscriber's per-layer filters do not
            // pick up a changed `always`/`never` after
            // `rebuild_interest_cache` (a reloaded filter would silence the
            // layer for good: `tests/layer.rs`), so the directive is read on
            // every event instead: one lock-free load and a `Targets` match.
            Interest::sometimes()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // INFO and less verbose spans always pass; everything else only
        // when the directive enables it. Without a hint the whole dispatch
        // would enable every library's DEBUG and TRACE callsites (hyper,
        // h2, tonic emit many per request) for this one layer to refuse
        // them event by event. A reload rebuilds the interest cache, which
        // reads the hint again (as a global and as a per-layer filter).
        Some(self.state.max_level().max(LevelFilter::INFO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives() {
        for ok in [
            "info",
            "warn,a=debug",
            "a::b=trace, c=off",
            "off",
            "my-crate",
            "INFO,x=WARN",
        ] {
            parse_directive(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "  ", "a=loud", "=info", "a=b=c", "in fo"] {
            let e = parse_directive(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        let f = FilterState::new("warn,a=trace").unwrap();
        assert_eq!(f.max_level(), LevelFilter::TRACE);
        assert!(f.would_enable("a::x", &Level::TRACE));
        assert!(!f.would_enable("b", &Level::INFO));
        #[cfg(feature = "env-filter")]
        {
            for ok in [
                "a[span]=info",
                "warn,my_app[request{user=alice}]=trace",
                "[{id}]=debug",
            ] {
                parse_directive(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            }
            let e = parse_directive("a[span=info").unwrap_err();
            assert!(e.to_string().contains("a[span=info"), "{e}");
        }
        #[cfg(not(feature = "env-filter"))]
        assert!(parse_directive("a[span]=info").is_err());
    }
}
