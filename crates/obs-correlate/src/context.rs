//! The current correlation id of a task, and carrying it into other tasks.
//!
//! Two places hold the id, so that both plain code and log layers see it:
//! the current id of the task being polled (a thread-local put in place
//! while a [`WithCorrelation`] future is polled, as a tokio task-local is;
//! read by [`current`], the client layer and carrier injection, with or
//! without a `tracing` subscriber) and the obs-core
//! [`IdRecord`] of a `tracing` span (read by log, metric and error layers).

use std::borrow::BorrowMut;
use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use obs_core::{CorrelationId, IdRecord};
use tokio::task::JoinHandle;
use tracing::Span;

thread_local! {
    /// The id of the work being run on this thread: set while a
    /// [`WithCorrelation`] future is polled (and while the server layer
    /// calls its inner service), as a tokio task-local is, without its
    /// closure-based API (which moves the large value a service call
    /// returns through each closure).
    static CURRENT: RefCell<Option<CorrelationId>> = const { RefCell::new(None) };
}

/// Puts the id in `S` (one the guard owns, or a future's own slot) in
/// place as this thread's current id, and swaps it back when dropped: the
/// previous id returns to the thread, the slot gets its id back. It stays
/// on its thread (never held across an `.await`).
pub(crate) struct Swapped<S: BorrowMut<Option<CorrelationId>>> {
    slot: S,
    _not_send: PhantomData<*const ()>,
}

impl<S: BorrowMut<Option<CorrelationId>>> Swapped<S> {
    /// `None` when the thread's slot is gone or in use: the id is then not
    /// current (and an owned one is dropped).
    #[inline]
    pub(crate) fn enter(mut slot: S) -> Option<Self> {
        CURRENT
            .try_with(|c| {
                let mut c = c.try_borrow_mut().ok()?;
                std::mem::swap(&mut *c, slot.borrow_mut());
                Some(())
            })
            .ok()
            .flatten()
            .map(|()| Swapped {
                slot,
                _not_send: PhantomData,
            })
    }
}

impl<S: BorrowMut<Option<CorrelationId>>> Drop for Swapped<S> {
    #[inline]
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                std::mem::swap(&mut *c, self.slot.borrow_mut());
            }
        });
    }
}

/// The correlation id of the work in progress: the id set by the server
/// layer, [`scope`] or [`spawn`] for the task being polled; otherwise the
/// id recorded on the current `tracing` span or one of its parents;
/// otherwise `None`.
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
    let local = CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten();
    local.or_else(|| IdRecord::current().and_then(|r| r.correlation_id))
}

/// Runs `f` with `id` as the current id (the thread's and the span's) in synchronous
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
    let _current = Swapped::enter(Some(id));
    f()
}

pin_project_lite::pin_project! {
    /// A future that runs with a correlation id: the id is the current id
    /// (what [`current`] returns) while it is polled and while it is
    /// dropped, and it runs inside a `tracing` span whose [`IdRecord`]
    /// carries the id, so log lines of the future carry it.
    ///
    /// Built by [`scope`], [`in_current`] and [`CorrelateExt`].
    #[must_use = "futures do nothing unless polled"]
    pub struct WithCorrelation<F> {
        id: Option<CorrelationId>,
        span: Span,
        // `None` once dropped in place (see the drop below).
        #[pin]
        inner: Option<F>,
    }

    impl<F> PinnedDrop for WithCorrelation<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.inner.is_none() {
                return;
            }
            // Dropped with its id current and inside its span, as it is
            // polled: what the future's own drops log carries the id.
            let _entered = (!this.span.is_none()).then(|| this.span.enter());
            let _current = Swapped::enter(this.id);
            this.inner.set(None);
        }
    }
}

impl<F> std::fmt::Debug for WithCorrelation<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithCorrelation")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for WithCorrelation<F> {
    type Output = F::Output;
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = (!this.span.is_none()).then(|| this.span.enter());
        let _current = Swapped::enter(this.id);
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(cx),
            None => unreachable!("the inner future lives until the wrapper is dropped"),
        }
    }
}

impl<F: Future> WithCorrelation<F> {
    #[inline]
    pub(crate) fn new(id: Option<CorrelationId>, span: Span, fut: F) -> Self {
        Self {
            id,
            span,
            inner: Some(fut),
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

/// Runs `fut` with `id` as its correlation id (current while polled, and a `tracing`
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
    fn the_inner_future_is_dropped_with_its_id_current() {
        use std::sync::{Arc, Mutex};
        struct Probe(Arc<Mutex<Option<Option<CorrelationId>>>>);
        impl Drop for Probe {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = Some(current());
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let id = CorrelationId::parse("dropped-in-scope").unwrap();
        let seen = Arc::new(Mutex::new(None));
        let probe = Probe(seen.clone());
        let fut = scope(id.clone(), async move {
            let _probe = probe;
            std::future::pending::<()>().await;
        });
        rt.block_on(async {
            let mut fut = std::pin::pin!(fut);
            std::future::poll_fn(|cx| {
                assert!(fut.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            assert_eq!(current(), None, "the id is current only while polled");
        });
        assert_eq!(*seen.lock().unwrap(), Some(Some(id)));
        assert_eq!(current(), None);
    }

    #[test]
    fn sync_scopes_nest_and_restore_after_a_panic() {
        let outer = CorrelationId::parse("outer-sync").unwrap();
        let inner = CorrelationId::parse("inner-sync").unwrap();
        sync_scope(outer.clone(), || {
            let caught = std::panic::catch_unwind(|| {
                sync_scope(inner.clone(), || {
                    assert_eq!(current(), Some(inner.clone()));
                    panic!("unwinds through the scope");
                })
            });
            assert!(caught.is_err());
            assert_eq!(current(), Some(outer.clone()));
        });
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
