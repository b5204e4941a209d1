//! The `tracing-subscriber` layer: span bookkeeping and event assembly.
//! The line's shape lives in `format`, the field visitor in `visit`, the
//! callsite cache in `callsite`, the rate limiter in `limit`.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use obs_core::spans::{ExtRead, ExtWrite, SpanEntry, SpanLookup, SpanSubscriber};
use obs_core::{IdRecord, RenderedFields, SpanRecord};
use tracing_core::field::Visit;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Level, LevelFilter, Metadata};
use tracing_subscriber::layer::Context;

use crate::callsite::{CallsiteInfo, Callsites, is_log_bridge};
use crate::config::{Format, level_index};
use crate::filter::FilterState;
use crate::format::{LineParts, Spec};
use crate::json::{self, Timestamp};
use crate::limit::Admit;
use crate::visit::{FieldWriter, Redaction};
use crate::writer::{LogStats, Output};

/// Scratch buffers that grew past this are shrunk back after the event.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Per-thread scratch space, reused across events.
#[derive(Default)]
struct Scratch {
    line: Vec<u8>,
    fields: Vec<u8>,
    msg: Vec<u8>,
    tmp: String,
    seen: Vec<&'static str>,
    path: Vec<&'static str>,
    /// The span path as written (`"outer","inner"`).
    pathbuf: Vec<u8>,
    spans: Vec<u8>,
    ranges: Vec<(u32, u32)>,
}

impl Scratch {
    /// Room for typical lines up front, so a message or line that grows by a
    /// few bytes does not reallocate.
    fn sized() -> Self {
        Self {
            line: Vec::with_capacity(1024),
            fields: Vec::with_capacity(512),
            msg: Vec::with_capacity(256),
            tmp: String::with_capacity(256),
            spans: Vec::with_capacity(256),
            pathbuf: Vec::with_capacity(128),
            ..Self::default()
        }
    }

    fn trim(&mut self) {
        for v in [
            &mut self.line,
            &mut self.fields,
            &mut self.msg,
            &mut self.spans,
            &mut self.pathbuf,
        ] {
            if v.capacity() > SCRATCH_KEEP {
                *v = Vec::with_capacity(256);
            }
        }
        if self.tmp.capacity() > SCRATCH_KEEP {
            self.tmp = String::new();
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::sized());
}

pub(crate) struct Inner {
    pub(crate) spec: Arc<Spec>,
    /// `None` when the filter is applied as a per-layer filter instead.
    pub(crate) filter: Option<Arc<FilterState>>,
    /// The directive's state either way: a reload rebuilds the interest
    /// cache from the dispatcher this layer was registered with.
    pub(crate) directive: Arc<FilterState>,
    pub(crate) redactor: Option<Redaction>,
    pub(crate) rate_limit: Option<u32>,
    pub(crate) out: Output,
    pub(crate) stats: LogStats,
    callsites: Callsites,
    /// Records exported over OTLP as well as written as lines.
    #[cfg(feature = "otlp")]
    pub(crate) otlp: Option<Arc<crate::otlp::OtlpSink>>,
}

/// The log layer: add it to a `tracing_subscriber::Registry` (it filters by
/// its own reloadable directive). Build it with [`crate::layer`].
pub struct LogLayer {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for LogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLayer")
            .field("spec", &self.inner.spec)
            .finish_non_exhaustive()
    }
}

impl LogLayer {
    #[allow(
        clippy::too_many_arguments,
        reason = "the layer's parts, built once by `obs_log::layer`"
    )]
    pub(crate) fn new(
        spec: Arc<Spec>,
        filter: Option<Arc<FilterState>>,
        directive: Arc<FilterState>,
        redactor: Option<Redaction>,
        rate_limit: Option<u32>,
        out: Output,
        stats: LogStats,
        #[cfg(feature = "otlp")] otlp: Option<Arc<crate::otlp::OtlpSink>>,
    ) -> Self {
        let callsites = Callsites::new();
        Self {
            inner: Arc::new(Inner {
                spec,
                filter,
                directive,
                redactor,
                rate_limit,
                out,
                stats,
                callsites,
                #[cfg(feature = "otlp")]
                otlp,
            }),
        }
    }
}

impl Inner {
    fn info_for(&self, meta: &'static Metadata<'static>) -> CallsiteInfo {
        CallsiteInfo::new(
            meta,
            &self.spec,
            self.redactor.as_ref(),
            self.rate_limit.is_some(),
        )
    }

    fn register(&self, meta: &'static Metadata<'static>) {
        self.callsites.register(meta, || self.info_for(meta));
    }

    #[inline]
    fn with_info<R>(
        &self,
        meta: &'static Metadata<'static>,
        f: impl FnOnce(&CallsiteInfo) -> R,
    ) -> R {
        self.callsites.with_info(meta, || self.info_for(meta), f)
    }

    fn span_fields(
        &self,
        meta: &'static Metadata<'static>,
        record: impl FnOnce(&mut dyn Visit),
    ) -> RenderedFields {
        // Room for every declared field (about 48 bytes each) and the path,
        // so recording the span's fields does not grow the buffers.
        let n = meta.fields().len();
        let mut sf = RenderedFields::take(48 * n + 64, n);
        self.record_into(&mut sf, meta, record);
        sf
    }

    /// Appends recorded fields to `sf`; a field recorded again replaces its
    /// earlier value (whose bytes stay behind until the next compaction).
    fn record_into(
        &self,
        sf: &mut RenderedFields,
        meta: &'static Metadata<'static>,
        record: impl FnOnce(&mut dyn Visit),
    ) {
        let before = sf.entries.len();
        let mut repeated_names = false;
        SCRATCH.with(|cell| {
            let mut fresh = String::new();
            let mut scratch = cell.try_borrow_mut();
            let tmp = match &mut scratch {
                Ok(s) => &mut s.tmp,
                Err(_) => &mut fresh,
            };
            self.with_info(meta, |info| {
                let mut w = FieldWriter {
                    json: self.spec.format == Format::Json,
                    out: &mut sf.buf,
                    msg: None,
                    tmp,
                    redactor: self.redactor.as_ref(),
                    info,
                    entries: Some(&mut sf.entries),
                    skip_log_fields: false,
                    cached_keys: true,
                };
                record(&mut w);
                repeated_names = info.repeated_names;
            });
        });
        keep_each_name_once(sf, before, repeated_names);
    }

    /// Writes the line of `event`, with the fields and ids of the spans
    /// `spans` finds around it.
    pub(crate) fn on_event<L: SpanLookup>(&self, event: &Event<'_>, spans: &L) {
        let meta = event.metadata();
        let ts = Timestamp::now();
        self.with_info(meta, |info| {
            let mut summary = None;
            if let (Some(l), Some(limit)) = (&info.limiter, self.rate_limit) {
                match l.admit(ts.secs, limit) {
                    Admit::Yes => {}
                    Admit::No => {
                        self.stats.inner.suppressed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Admit::AfterSummary(n) => summary = Some(n),
                }
            }
            SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut s) => {
                    self.format_event(&mut s, event, spans, info, ts, summary);
                    s.trim();
                }
                // Re-entered from a `Debug` impl that logs: use a fresh scratch.
                Err(_) => {
                    self.format_event(&mut Scratch::default(), event, spans, info, ts, summary)
                }
            });
        });
    }

    fn format_event<L: SpanLookup>(
        &self,
        s: &mut Scratch,
        event: &Event<'_>,
        spans: &L,
        info: &CallsiteInfo,
        ts: Timestamp,
        summary: Option<u64>,
    ) {
        let meta = event.metadata();
        #[cfg(feature = "log")]
        let normalized = crate::callsite::log_record_metadata(event);
        #[cfg(feature = "log")]
        let (target, file, line, is_log) = match &normalized {
            Some(n) => (n.target(), n.file(), n.line(), true),
            None => (meta.target(), meta.file(), meta.line(), false),
        };
        #[cfg(not(feature = "log"))]
        let (target, file, line, is_log) = (meta.target(), meta.file(), meta.line(), false);

        let json = self.spec.format == Format::Json;
        let level = *meta.level();
        if let Some(n) = summary {
            s.line.clear();
            let extra = [
                ("suppressed", n),
                ("callsite.line", u64::from(line.unwrap_or(0))),
            ];
            self.spec.internal_line(
                &mut s.line,
                Level::WARN,
                target,
                "rate limit: lines of this callsite were suppressed",
                &extra,
            );
            self.out
                .write_line(level_index(Level::WARN), &s.line, false);
        }

        s.fields.clear();
        s.msg.clear();
        s.seen.clear();
        s.path.clear();
        s.pathbuf.clear();
        s.spans.clear();
        s.ranges.clear();
        let has_msg = info.has_message;
        {
            let mut w = FieldWriter {
                json,
                out: &mut s.fields,
                msg: Some(&mut s.msg),
                tmp: &mut s.tmp,
                redactor: self.redactor.as_ref(),
                info,
                entries: None,
                skip_log_fields: is_log,
                cached_keys: true,
            };
            event.record(&mut w);
        }

        let mut ids: Option<IdRecord> = None;
        // `event_span` + `parent` visits what `event_scope` would, with one
        // registry lookup less (the scope iterator looks its first span up again).
        let mut next = spans.event_span(event);
        let mut path_known = false;
        while let Some(span) = next {
            let parent = span.parent();
            'span: {
                let ext = span.extensions();
                let Some(rec) = ext.get::<SpanRecord>() else {
                    break 'span;
                };
                // obs-core's one merge rule: nearest span wins per field.
                IdRecord::merge(&mut ids, &rec.ids);
                // A span this layer did not open (a composed layer's other
                // parts may open spans the log filter refuses) is not on
                // the line; its ids are.
                let Some(sf) = &rec.fields else {
                    break 'span;
                };
                if json {
                    if !path_known {
                        if s.path.is_empty() && sf.path.1 > sf.path.0 {
                            // The innermost span knows the whole path.
                            s.pathbuf.extend_from_slice(sf.path());
                            path_known = true;
                        } else {
                            s.path.push(span.name());
                        }
                    }
                    // The names a span further out must not repeat: none
                    // when this span is the outermost (a span's own names
                    // are unique: `record_into` keeps them so).
                    let track = parent.is_some();
                    // The event's own fields and inner spans' win. Usually
                    // none is named again and the fragments lie back to
                    // back: then they go on the line in one copy.
                    let all_kept = sf
                        .entries
                        .iter()
                        .all(|&(name, _, _)| !info.has_name(name) && !s.seen.contains(&name));
                    if all_kept && let Some(range) = contiguous(&sf.entries) {
                        s.fields.extend_from_slice(&sf.buf[range]);
                        if track {
                            s.seen.extend(sf.entries.iter().map(|e| e.0));
                        }
                    } else {
                        for &(name, a, b) in &sf.entries {
                            if !info.has_name(name) && !s.seen.contains(&name) {
                                if track {
                                    s.seen.push(name);
                                }
                                s.fields.extend_from_slice(&sf.buf[a as usize..b as usize]);
                            }
                        }
                    }
                } else {
                    let a = s.spans.len() as u32;
                    s.spans.extend_from_slice(span.name().as_bytes());
                    if !sf.entries.is_empty() {
                        s.spans.push(b'{');
                        for (i, &(_, a, b)) in sf.entries.iter().enumerate() {
                            // Each fragment is ` k=v`: no space after the brace.
                            let a = a as usize + usize::from(i == 0);
                            s.spans.extend_from_slice(&sf.buf[a..b as usize]);
                        }
                        s.spans.push(b'}');
                    }
                    s.ranges.push((a, s.spans.len() as u32));
                }
            }
            next = parent;
        }

        // Outside any span, a thread may log on behalf of a request (an
        // error report's delivery thread): its scoped ids are the line's.
        if ids.is_none() {
            ids = IdRecord::thread_scoped();
        }
        if json && !path_known {
            for (i, name) in s.path.iter().rev().enumerate() {
                if i > 0 {
                    s.pathbuf.push(b',');
                }
                json::quoted(&mut s.pathbuf, name);
            }
        }
        let parts = LineParts {
            ts,
            level,
            target,
            file,
            line,
            msg: has_msg.then_some(s.msg.as_slice()),
            fields: &s.fields,
            // A `log` record's target is its own, not the bridge callsite's.
            head: if is_log { None } else { info.head.as_deref() },
        };
        s.line.clear();
        if json {
            self.spec
                .json_line(&mut s.line, &parts, &s.pathbuf, ids.as_ref());
        } else {
            self.spec
                .human_line(&mut s.line, &parts, &s.spans, &s.ranges, ids.as_ref());
        }
        self.out.write_line(level_index(level), &s.line, true);
        #[cfg(feature = "otlp")]
        if let Some(sink) = &self.otlp {
            self.otlp_record(sink, event, info, &parts, target, is_log, ids.as_ref());
        }
    }

    /// Hands the event to the OTLP exporter: from the line's own redacted
    /// fields in the JSON format; the other formats visit the event once
    /// more with a JSON field writer (the event's own fields only).
    #[cfg(feature = "otlp")]
    #[allow(clippy::too_many_arguments, reason = "the parts of one event")]
    #[cold]
    fn otlp_record(
        &self,
        sink: &crate::otlp::OtlpSink,
        event: &Event<'_>,
        info: &CallsiteInfo,
        parts: &LineParts<'_>,
        target: &str,
        is_log: bool,
        ids: Option<&IdRecord>,
    ) {
        let time_nanos = parts.ts.secs * 1_000_000_000 + u64::from(parts.ts.nanos);
        // A `log` record's target is its own, owned by the normalised
        // metadata; a tracing target is static.
        let target: std::borrow::Cow<'static, str> = if is_log {
            target.to_owned().into()
        } else {
            event.metadata().target().into()
        };
        let record = if self.spec.format == Format::Json {
            crate::otlp::Record::new(
                time_nanos,
                parts.level,
                target,
                parts.msg,
                parts.fields,
                ids,
            )
        } else {
            let (mut fields, mut msg, mut tmp) = (Vec::new(), Vec::new(), String::new());
            let mut w = FieldWriter {
                json: true,
                out: &mut fields,
                msg: Some(&mut msg),
                tmp: &mut tmp,
                redactor: self.redactor.as_ref(),
                info,
                entries: None,
                skip_log_fields: is_log,
                cached_keys: false,
            };
            event.record(&mut w);
            crate::otlp::Record::new(
                time_nanos,
                parts.level,
                target,
                info.has_message.then_some(msg.as_slice()),
                &fields,
                ids,
            )
        };
        sink.send(record);
    }
}

impl<S> tracing_subscriber::Layer<S> for LogLayer
where
    S: SpanSubscriber,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        let Some(filter) = &self.inner.filter else {
            self.inner.register(meta);
            return Interest::always();
        };
        if is_log_bridge(meta) {
            // One callsite per level carries every `log` record: decide per record.
            self.inner.register(meta);
            return Interest::sometimes();
        }
        let interest = filter.interest::<S>(meta);
        if !interest.is_never() {
            self.inner.register(meta);
        }
        interest
    }

    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner
            .filter
            .as_ref()
            .is_none_or(|f| f.enabled(meta, &ctx))
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(f) = &self.inner.filter {
            f.on_enter(id, &ctx);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(f) = &self.inner.filter {
            f.on_exit(id, &ctx);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(f) = &self.inner.filter {
            f.on_close(&id, &ctx);
        }
    }

    fn on_register_dispatch(&self, dispatch: &tracing_core::Dispatch) {
        // A reload rebuilds the interest cache from this dispatcher, whether
        // the directive filters this layer or wraps it as a per-layer filter.
        self.inner.directive.attach(dispatch);
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner.filter.as_ref().map(|f| f.max_level())
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(f) = &self.inner.filter {
            f.on_new_span(attrs, id, &ctx);
        }
        self.inner.new_span(attrs, id, &S::lookup(&ctx));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(f) = &self.inner.filter {
            f.on_record(id, values, &ctx);
        }
        self.inner.record(id, values, &S::lookup(&ctx));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.inner.on_event(event, &S::lookup(&ctx));
    }
}

impl Inner {
    /// Renders a new span's fields (and its path) into its record.
    pub(crate) fn new_span<L: SpanLookup>(&self, attrs: &Attributes<'_>, id: &Id, spans: &L) {
        let Some(span) = spans.span(id) else { return };
        let mut sf = self.span_fields(attrs.metadata(), |v| attrs.record(v));
        let spec = &self.spec;
        if spec.span_path && spec.format == Format::Json {
            // The parent's path plus this name; unknown (left empty, so
            // events render it) when the parent has none.
            let start = sf.buf.len();
            // The nearest span this layer opened is the parent here: a
            // composed layer may show spans other parts opened.
            let mut known = true;
            let mut next = span.parent();
            while let Some(parent) = next {
                if let Some(p) = parent
                    .extensions()
                    .get::<SpanRecord>()
                    .and_then(|r| r.fields.as_ref())
                {
                    if p.path.1 > p.path.0 {
                        sf.buf.extend_from_slice(p.path());
                        sf.buf.push(b',');
                    } else {
                        known = false;
                    }
                    break;
                }
                next = parent.parent();
            }
            if known {
                json::quoted(&mut sf.buf, span.name());
                sf.path = (start as u32, sf.buf.len() as u32);
            } else {
                sf.buf.truncate(start);
            }
        }
        // A correlation id waiting for this span (the trace layer takes it
        // first when it sees the span too).
        let correlation_id = IdRecord::take_next_span_correlation();
        SpanRecord::update(&mut span.extensions_mut(), |rec| {
            rec.fields = Some(sf);
            if correlation_id.is_some() {
                rec.ids.correlation_id = correlation_id;
            }
        });
    }

    /// Records values into a span's rendered fields.
    pub(crate) fn record<L: SpanLookup>(&self, id: &Id, values: &Record<'_>, spans: &L) {
        let Some(span) = spans.span(id) else { return };
        let mut ext = span.extensions_mut();
        // A span without fields was not opened through this layer (a
        // composed layer shows every span's record to each part): not ours.
        if let Some(sf) = ext.get_mut::<SpanRecord>().and_then(|r| r.fields.as_mut()) {
            self.record_into(sf, span.metadata(), |v| values.record(v));
        }
    }
}

/// The one range of `buf` the fragments cover when each starts where the
/// one before it ends (an empty range when there are none).
#[inline]
fn contiguous(entries: &[(&'static str, u32, u32)]) -> Option<std::ops::Range<usize>> {
    let Some(&(_, start, mut end)) = entries.first() else {
        return Some(0..0);
    };
    for &(_, a, b) in &entries[1..] {
        if a != end {
            return None;
        }
        end = b;
    }
    Some(start as usize..end as usize)
}

/// Keeps each name once in a span's rendered fields, given the entries from
/// `before` on were just recorded: a field recorded again replaces its
/// earlier value, and of a name the callsite declares twice
/// (`repeated_names`) the first value just recorded stays. Lines copy a
/// span's entries without checking their names against each other.
fn keep_each_name_once(sf: &mut RenderedFields, before: usize, repeated_names: bool) {
    let (old, new) = sf.entries.split_at(before);
    if !repeated_names && !old.iter().any(|o| new.iter().any(|n| n.0 == o.0)) {
        return;
    }
    let new_names: Vec<&'static str> = new.iter().map(|e| e.0).collect();
    let mut kept_new: Vec<&'static str> = Vec::new();
    let mut i = 0;
    sf.entries.retain(|e| {
        i += 1;
        if i <= before {
            return !new_names.contains(&e.0);
        }
        let first = !kept_new.contains(&e.0);
        kept_new.push(e.0);
        first
    });
    sf.compact();
}

#[cfg(test)]
mod tests {
    use super::contiguous;

    #[test]
    fn fragments_back_to_back_are_one_range() {
        assert_eq!(contiguous(&[]), Some(0..0));
        assert_eq!(contiguous(&[("a", 3, 9)]), Some(3..9));
        assert_eq!(
            contiguous(&[("a", 0, 4), ("b", 4, 7), ("c", 7, 12)]),
            Some(0..12)
        );
        // A gap (a fragment dropped from the middle) or a reordering is not.
        assert_eq!(contiguous(&[("a", 0, 4), ("c", 7, 12)]), None);
        assert_eq!(contiguous(&[("b", 4, 7), ("a", 0, 4)]), None);
    }
}
