//! Moving trace context in and out of `tracing` spans: remote parents,
//! links, the current context, background tasks and job payloads.

use std::future::Future;
use std::sync::Arc;

use obs_core::Carrier;
use tracing::instrument::{Instrument, Instrumented};

use crate::layer::{HAS_PENDING, PENDING, PENDING_RECORDED, Pending, context_in};
use crate::propagation::{Baggage, Extracted, Propagators, SpanContext};

struct ClearPending;

impl Drop for ClearPending {
    fn drop(&mut self) {
        // Whatever `f` did not consume must not leak into a later span.
        let _ = PENDING.try_with(|p| p.borrow_mut().take());
        let _ = HAS_PENDING.try_with(|f| f.set(false));
    }
}

fn with_pending<T>(pending: Pending, f: impl FnOnce() -> T) -> T {
    PENDING.with(|p| *p.borrow_mut() = Some(pending));
    HAS_PENDING.set(true);
    let _clear = ClearPending;
    f()
}

/// Runs `f`; the first span it creates takes `extracted.parent` as its
/// parent (a new trace when that is `None`, whatever local span encloses
/// it) and carries `extracted.baggage`.
///
/// ```
/// use obs_trace::{TracerProvider, context, propagation};
/// use tracing_subscriber::layer::SubscriberExt;
/// let provider = TracerProvider::builder().build()?;
/// let subscriber = tracing_subscriber::registry().with(provider.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     let mut headers = http::HeaderMap::new();
///     headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
///     let extracted = provider.propagators().extract_headers(&headers);
///     let span = context::in_remote_context(&extracted, || tracing::info_span!("request"));
///     let cx = context::span_context(&span).unwrap();
///     assert_eq!(cx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
///     assert_ne!(cx.span_id.to_string(), "00f067aa0ba902b7");
/// });
/// # Ok::<(), obs_trace::Error>(())
/// ```
pub fn in_remote_context<T>(extracted: &Extracted, f: impl FnOnce() -> T) -> T {
    let baggage = (!extracted.baggage.is_empty()).then(|| Arc::new(extracted.baggage.clone()));
    with_pending(
        Pending {
            parent: extracted.parent.clone(),
            link: None,
            baggage,
        },
        f,
    )
}

/// [`in_remote_context`], and whether the span `f` created is recorded for
/// export: `None` when this crate's layer did not see it.
#[cfg_attr(
    not(feature = "tower"),
    allow(dead_code, reason = "the server layer (feature `tower`) is its caller")
)]
pub(crate) fn in_remote_context_recorded<T>(
    extracted: &Extracted,
    f: impl FnOnce() -> T,
) -> (T, Option<bool>) {
    PENDING_RECORDED.set(None);
    let t = in_remote_context(extracted, f);
    (t, PENDING_RECORDED.take())
}

/// Runs `f`; the first span it creates starts a new trace with a link to
/// `linked` (the usual shape for a job consumer whose producer's trace may
/// be long finished).
pub fn linked_to<T>(linked: &SpanContext, f: impl FnOnce() -> T) -> T {
    with_pending(
        Pending {
            parent: None,
            link: Some(linked.clone()),
            baggage: None,
        },
        f,
    )
}

fn lookup(
    id: &tracing::Id,
    dispatch: &tracing::Dispatch,
) -> Option<(SpanContext, Option<Arc<Baggage>>)> {
    context_in(&obs_core::spans::Found::span(dispatch, id)?)
}

/// The trace context of `span` (its own ids), when the obs-trace layer runs
/// in a `Registry`-based subscriber or on obs's own span store.
pub fn span_context(span: &tracing::Span) -> Option<SpanContext> {
    span.with_subscriber(|(id, d)| lookup(id, d))
        .flatten()
        .map(|(cx, _)| cx)
}

/// The trace context of the current span.
pub fn current_context() -> Option<SpanContext> {
    tracing::dispatcher::get_default(|d| {
        let cur = d.current_span();
        lookup(cur.id()?, d).map(|(cx, _)| cx)
    })
}

/// The baggage the current span carries (inherited from its request).
pub fn current_baggage() -> Option<Arc<Baggage>> {
    tracing::dispatcher::get_default(|d| {
        let cur = d.current_span();
        lookup(cur.id()?, d).and_then(|(_, b)| b)
    })
}

/// Writes the current span's context and baggage into a job payload's
/// carrier. Returns `false` (and writes nothing) outside a traced span.
///
/// ```
/// use obs_trace::{TracerProvider, context};
/// use obs_core::Carrier;
/// use tracing_subscriber::layer::SubscriberExt;
/// let provider = TracerProvider::builder().build()?;
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(provider.layer()), || {
///     let producer = tracing::info_span!("enqueue");
///     let _g = producer.enter();
///     let mut carrier = Carrier::new();
///     assert!(context::inject_current(&mut carrier));
///     let consumer = context::consumer_span(&carrier, "send-email", context::JobLink::Parent);
///     let (p, c) = (context::span_context(&producer).unwrap(), context::span_context(&consumer).unwrap());
///     assert_eq!(p.trace_id, c.trace_id);
/// });
/// # Ok::<(), obs_trace::Error>(())
/// ```
pub fn inject_current(carrier: &mut Carrier) -> bool {
    let found = tracing::dispatcher::get_default(|d| {
        let cur = d.current_span();
        lookup(cur.id()?, d)
    });
    let Some((cx, baggage)) = found else {
        return false;
    };
    Propagators::default().inject_carrier(&cx, baggage.as_deref(), carrier);
    true
}

/// How a job consumer's span relates to the producer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobLink {
    /// The consumer span is a child of the producer span (same trace).
    Parent,
    /// The consumer span starts a new trace linked to the producer span.
    Link,
}

/// A consumer span (`otel.kind = consumer`) named `name` for a job whose
/// payload carried `carrier`, parented by or linked to the producer.
pub fn consumer_span(carrier: &Carrier, name: &str, link: JobLink) -> tracing::Span {
    let extracted = Propagators::default().extract_carrier(carrier);
    let make = || {
        tracing::info_span!(
            "job",
            otel.name = name,
            otel.kind = "consumer",
            messaging.operation.type = "process",
            // Recorded by the caller that knows the queue.
            messaging.destination.name = tracing::field::Empty,
        )
    };
    match (link, &extracted.parent) {
        (JobLink::Link, Some(p)) => linked_to(p, make),
        _ => in_remote_context(&extracted, make),
    }
}

/// Runs futures in the caller's trace context, across `tokio::spawn` and
/// any executor.
///
/// ```
/// use obs_trace::context::FutureExt as _;
/// # async fn work() {}
/// # fn spawn<F: std::future::Future>(_: F) {}
/// spawn(work().in_current_trace());
/// ```
pub trait FutureExt: Future + Sized {
    /// Wraps the future so every poll runs inside the span current now.
    fn in_current_trace(self) -> Instrumented<Self> {
        self.instrument(tracing::Span::current())
    }
}

impl<F: Future> FutureExt for F {}
