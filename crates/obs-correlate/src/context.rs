//! The current correlation id of a task, and carrying it into other tasks.
//!
//! Two places hold the id, so that both plain code and log layers see it:
//! a tokio task-local (read by [`current`], the client layer and carrier
//! injection, with or without a `tracing` subscriber) and the obs-core
//! [`IdRecord`] of a `tracing` span (read by log, metric and error layers).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use obs_core::{CorrelationId, IdRecord};
use tokio::task::JoinHandle;
use tokio::task::futures::TaskLocalFuture;
use tracing::Span;
use tracing::instrument::{Instrument, Instrumented};

tokio::task_local! {
    static CURRENT: Option<CorrelationId>;
}

/// The correlation id of the work in progress: the task-local id set by the
/// server layer, [`scope`] or [`spawn`]; otherwise the id recorded on the
/// current `tracing` span or one of its parents; otherwise `None`.
///
/// ```
/// use obs_core::CorrelationId;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(obs_correlate::current(), None);
/// let id = CorrelationId::parse("req-7").unwrap();
/// obs_correlate::scope(id.clone(), async move {
///     assert_eq!(obs_correlate::current(), Some(id));
/// })
/// .await;
/// # });
/// ```
pub fn current() -> Option<CorrelationId> {
    match CURRENT.try_with(Clone::clone) {
        Ok(Some(id)) => Some(id),
        _ => IdRecord::current().and_then(|r| r.correlation_id),
    }
}

/// Runs `f` with `id` as the current id (task-local and span) in synchronous
/// code, for example a blocking job handler on a worker thread.
///
/// ```
/// use obs_core::CorrelationId;
/// let id = CorrelationId::parse("batch-1").unwrap();
/// let seen = obs_correlate::sync_scope(id, || obs_correlate::current());
/// assert_eq!(seen.unwrap().as_str(), "batch-1");
/// ```
pub fn sync_scope<R>(id: CorrelationId, f: impl FnOnce() -> R) -> R {
    let span = span_for(&id);
    let _entered = span.enter();
    CURRENT.sync_scope(Some(id), f)
}

pin_project_lite::pin_project! {
    /// A future that runs with a correlation id: the id is the task-local
    /// current id while it is polled, and it runs inside a `tracing` span
    /// whose [`IdRecord`] carries the id, so log lines of the future carry it.
    ///
    /// Built by [`scope`], [`in_current`] and [`CorrelateExt`].
    #[must_use = "futures do nothing unless polled"]
    pub struct WithCorrelation<F> {
        #[pin]
        inner: TaskLocalFuture<Option<CorrelationId>, Instrumented<F>>,
    }
}

impl<F> std::fmt::Debug for WithCorrelation<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithCorrelation").finish_non_exhaustive()
    }
}

impl<F: Future> Future for WithCorrelation<F> {
    type Output = F::Output;
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

/// Runs `f` with `id` as the task-local current id only (the caller
/// takes care of the span).
#[cfg(feature = "tower")]
pub(crate) fn with_task_local<R>(id: CorrelationId, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(Some(id), f)
}

impl<F: Future> WithCorrelation<F> {
    pub(crate) fn new(id: Option<CorrelationId>, span: Span, fut: F) -> Self {
        Self {
            inner: CURRENT.scope(id, fut.instrument(span)),
        }
    }
}

/// The span a future or closure with `id` should run in: the current span
/// when it already carries `id`, otherwise a new `correlation` span (a child
/// of the current one) whose [`IdRecord`] carries it.
fn span_for(id: &CorrelationId) -> Span {
    let current = Span::current();
    if let Some(sid) = current.id()
        && IdRecord::for_span(&sid)
            .and_then(|r| r.correlation_id)
            .as_ref()
            == Some(id)
    {
        return current;
    }
    let span = tracing::info_span!("correlation");
    if let Some(sid) = span.id() {
        IdRecord::update_span_id(&sid, |r| r.correlation_id = Some(id.clone()));
    }
    span
}

/// Runs `fut` with `id` as its correlation id (task-local and `tracing`
/// span). Use it where work starts without a request: a job taken from a
/// queue, a scheduled task, a message from a channel.
///
/// ```
/// use obs_core::{CorrelationId, IdFormat};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let id = CorrelationId::generate(IdFormat::UuidV7);
/// let seen = obs_correlate::scope(id.clone(), async { obs_correlate::current() }).await;
/// assert_eq!(seen, Some(id));
/// # });
/// ```
pub fn scope<F: Future>(id: CorrelationId, fut: F) -> WithCorrelation<F> {
    let span = span_for(&id);
    WithCorrelation::new(Some(id), span, fut)
}

/// Wraps `fut` so it runs with the current correlation id and inside the
/// current `tracing` span wherever it is polled — in another task, on
/// another thread. Without a current id it only carries the span.
///
/// ```
/// use obs_core::CorrelationId;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let id = CorrelationId::parse("req-9").unwrap();
/// let later = obs_correlate::scope(id, async { obs_correlate::in_current(async { obs_correlate::current() }) }).await;
/// // Polled outside the scope, it still sees the id it was created with.
/// assert_eq!(later.await.unwrap().as_str(), "req-9");
/// # });
/// ```
pub fn in_current<F: Future>(fut: F) -> WithCorrelation<F> {
    match current() {
        Some(id) => scope(id, fut),
        None => WithCorrelation::new(None, Span::current(), fut),
    }
}

/// `tokio::spawn` that carries the current correlation id and span into the
/// new task, so its log lines and outgoing calls keep the id.
///
/// Like `tracing`'s `in_current_span`, the task holds the request's span:
/// it is part of the request's trace, and the span closes when the task
/// ends. For work that outlives the request by far, pass the id on through a
/// [`Carrier`](obs_core::Carrier) instead (see [`carrier`](crate::carrier)),
/// which starts a fresh `correlation` span on the consumer side.
///
/// ```
/// use obs_core::CorrelationId;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let id = CorrelationId::parse("req-3").unwrap();
/// let handle = obs_correlate::scope(id, async {
///     obs_correlate::spawn(async { obs_correlate::current() })
/// })
/// .await;
/// assert_eq!(handle.await.unwrap().unwrap().as_str(), "req-3");
/// # });
/// ```
///
/// # Panics
///
/// Like `tokio::spawn`, when called outside a tokio runtime.
#[track_caller]
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(in_current(fut))
}

/// Extension methods on futures: `fut.with_correlation_id(id)` is
/// [`scope`]`(id, fut)`, `fut.in_current_correlation()` is [`in_current`]`(fut)`.
///
/// ```
/// use obs_core::CorrelationId;
/// use obs_correlate::CorrelateExt;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let id = CorrelationId::parse("job-1").unwrap();
/// let seen = async { obs_correlate::current() }.with_correlation_id(id).await;
/// assert_eq!(seen.unwrap().as_str(), "job-1");
/// # });
/// ```
pub trait CorrelateExt: Future + Sized {
    /// Runs this future with `id` as its correlation id.
    fn with_correlation_id(self, id: CorrelationId) -> WithCorrelation<Self> {
        scope(id, self)
    }

    /// Runs this future with the current correlation id and span.
    fn in_current_correlation(self) -> WithCorrelation<Self> {
        in_current(self)
    }
}

impl<F: Future> CorrelateExt for F {}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn task_local_wins_over_span_and_nests() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let outer = CorrelationId::parse("outer").unwrap();
        let inner = CorrelationId::parse("inner").unwrap();
        rt.block_on(scope(outer.clone(), async {
            assert_eq!(current(), Some(outer.clone()));
            scope(inner.clone(), async {
                assert_eq!(current(), Some(inner.clone()))
            })
            .await;
            assert_eq!(current(), Some(outer.clone()));
        }));
        assert_eq!(current(), None);
    }

    #[test]
    fn span_record_is_read_without_task_local_and_reused() {
        let subscriber =
            tracing_subscriber::registry().with(tracing_subscriber::layer::Identity::new());
        // The `correlation` span is a library callsite that other tests of
        // this process reach without a subscriber: install through
        // obs-testing, or their visit can switch it off for this test.
        obs_testing::subscriber::with_default(subscriber, || {
            let id = CorrelationId::parse("from-span").unwrap();
            let span = tracing::info_span!("request");
            IdRecord::update_span_id(&span.id().unwrap(), |r| r.correlation_id = Some(id.clone()));
            let _g = span.enter();
            assert_eq!(current(), Some(id.clone()));
            // The current span already carries the id: no new span.
            assert_eq!(span_for(&id).id(), span.id());
            let other = CorrelationId::parse("other").unwrap();
            let child = span_for(&other);
            assert_ne!(child.id(), span.id());
            let _c = child.enter();
            assert_eq!(IdRecord::current().unwrap().correlation_id, Some(other));
        });
    }
}
