//! The `tracing` layer: breadcrumbs per request/task and capture of `ERROR` events.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use obs_core::IdRecord;
use obs_core::spans::{ExtRead, ExtWrite, SpanEntry, SpanLookup, SpanSubscriber};
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Level};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::Reporter;
use crate::breadcrumbs::Crumbs;
use crate::report::{ChainEntry, Location, Mechanism, dyn_type_name};
use obs_core::names::target::ACCESS as ACCESS_TARGET;

/// A `tracing` layer that
/// - keeps the last N events of each request/task as breadcrumbs: one
///   bounded ring per root span, shared by all its descendants (events
///   outside any span share one ring);
/// - reports every `ERROR` event (unless turned off with
///   [`Config::capture_error_events`](crate::Config::capture_error_events)),
///   with the error passed as a field (`error = &e as &dyn Error`) and its
///   `source()` chain.
///
/// Events of the `obs_errors` targets (the reporter's own output) are ignored.
///
/// ```
/// use obs_errors::{Config, MemorySink, Reporter};
/// use tracing_subscriber::layer::SubscriberExt;
/// let memory = MemorySink::new();
/// let reporter = Reporter::builder(Config::default()).sink(memory.clone()).build()?;
/// let subscriber = tracing_subscriber::registry().with(reporter.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     let _g = tracing::info_span!("request").entered();
///     tracing::info!(item = 7, "loading item");
///     tracing::error!("item not found");
/// });
/// reporter.flush(std::time::Duration::from_secs(5))?;
/// let report = &memory.reports()[0];
/// assert_eq!(report.message, "item not found");
/// assert_eq!(report.breadcrumbs[0].message, "loading item");
/// # Ok::<(), obs_errors::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ErrorLayer {
    reporter: Reporter,
    level: Level,
    capture: bool,
    crumbs_on: bool,
}

impl ErrorLayer {
    /// The layer of `reporter` (also [`Reporter::layer`]).
    pub fn new(reporter: Reporter) -> Self {
        let cfg = reporter.config();
        let (level, capture, crumbs_on) = (
            cfg.breadcrumb_level,
            cfg.capture_error_events,
            cfg.max_breadcrumbs > 0,
        );
        Self {
            reporter,
            level,
            capture,
            crumbs_on,
        }
    }
}

#[derive(Default)]
struct EventVisitor {
    message: Option<String>,
    error: Option<(String, String, Vec<ChainEntry>)>,
    fields: Vec<(String, String)>,
}

impl Visit for EventVisitor {
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.error.is_none() {
            self.error = Some((
                dyn_type_name(value),
                value.to_string(),
                Reporter::chain_of(value),
            ));
        } else {
            self.fields
                .push((field.name().to_owned(), value.to_string()));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else if self.fields.len() < crate::scope::MAX_ENTRIES {
            self.fields
                .push((field.name().to_owned(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let mut s = String::new();
            let _ = write!(s, "{value:?}");
            self.message = Some(s);
        } else if self.fields.len() < crate::scope::MAX_ENTRIES {
            self.fields
                .push((field.name().to_owned(), format!("{value:?}")));
        }
    }
}

/// The ring a span's breadcrumbs go to: the nearest one in its scope.
/// Rings are created lazily (see [`ErrorLayer::crumbs_for_event`]), so a
/// span, or its whole request, may have none yet.
pub(crate) fn crumbs_of<E: SpanEntry>(span: &E) -> Option<Crumbs> {
    span.find_in_scope(|s| s.extensions().get::<Crumbs>().cloned())
}

impl ErrorLayer {
    /// The ring an event in `span` is recorded into, created on the first
    /// breadcrumb of its request: one ring per root span, shared by every
    /// descendant. A request that logs nothing a breadcrumb would keep (the
    /// common case: its access line is not one) costs no ring, no
    /// allocation and no span lookup when its spans open. The ring found
    /// above `span` is also kept on `span` itself, so the next event there
    /// finds it at once.
    fn crumbs_for_event<E: SpanEntry>(&self, span: &E) -> Option<Crumbs> {
        if let Some(c) = span.extensions().get::<Crumbs>() {
            return Some(c.clone());
        }
        let mut root = None;
        for s in span.ancestors() {
            if let Some(c) = s.extensions().get::<Crumbs>().cloned() {
                span.extensions_mut().insert(c.clone());
                return Some(c);
            }
            root = Some(s);
        }
        let c = self.reporter.new_crumbs()?;
        if let Some(root) = root {
            root.extensions_mut().insert(c.clone());
        }
        span.extensions_mut().insert(c.clone());
        Some(c)
    }

    /// Captures an `ERROR` event and keeps breadcrumbs, with the spans
    /// `spans` finds around the event.
    pub(crate) fn event<L: SpanLookup>(&self, event: &Event<'_>, spans: &L) {
        let meta = event.metadata();
        if meta.target().starts_with("obs_errors") {
            return;
        }
        // The access line is written when its request is over, just before
        // the request's span (the breadcrumbs' owner) closes: nothing can
        // report after it, so as a breadcrumb it would only cost time. At
        // ERROR (a 5xx, a failed service) it is not an error report either:
        // it says how the request ended, and what made it fail (a panic, a
        // captured error) is reported where it happened; a deliberate 503
        // is no error at all.
        let access = meta.target() == ACCESS_TARGET;
        let capture = self.capture && *meta.level() == Level::ERROR && !access;
        let crumb = self.crumbs_on && *meta.level() <= self.level && !access;
        if !capture && !crumb {
            return;
        }
        let span = spans.event_span(event);
        if capture {
            let mut v = EventVisitor::default();
            event.record(&mut v);
            let (ty, message, chain) = match v.error {
                Some((ty, emsg, mut chain)) => {
                    let message = match v.message {
                        Some(m) if m != emsg => {
                            chain.insert(
                                0,
                                ChainEntry {
                                    error_type: ty.clone(),
                                    message: emsg,
                                },
                            );
                            m
                        }
                        _ => emsg,
                    };
                    (Cow::Owned(ty), message, chain)
                }
                None => (
                    Cow::Borrowed(meta.target()),
                    v.message.unwrap_or_default(),
                    Vec::new(),
                ),
            };
            let mut input = Reporter::event_input(Mechanism::Event, ty, message);
            input.chain = chain;
            input.fields = v.fields;
            input.in_dispatch = true;
            input.location = meta.file().map(|f| Location {
                file: Cow::Borrowed(f),
                line: meta.line().unwrap_or(0),
                column: 0,
            });
            match &span {
                Some(s) => {
                    input.ids = IdRecord::resolve_scope(s);
                    input.crumbs = crumbs_of(s);
                }
                None => input.crumbs = self.reporter.shared().orphans.get(),
            }
            self.reporter.capture_event_input(input);
        }
        if !crumb {
            return;
        }
        match span {
            Some(s) => {
                if let Some(c) = self.crumbs_for_event(&s) {
                    c.record(event);
                }
            }
            None => {
                if let Some(c) = self
                    .reporter
                    .shared()
                    .orphans
                    .get_or_init(|| self.reporter.new_crumbs())
                {
                    c.record(event);
                }
            }
        }
    }
}

impl<S> Layer<S> for ErrorLayer
where
    S: SpanSubscriber,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.event(event, &S::lookup(&ctx));
    }
}
