//! Installing a `tracing` subscriber in a test that shares its process with
//! other tests.
//!
//! `cargo test` runs every test of a binary as a thread of one process.
//! `tracing` caches, per callsite and for the whole process, whether any
//! subscriber is interested in it (its `Interest`), and computes that value
//! once, when the callsite is first hit. While at most one dispatcher is
//! registered, tracing-core asks only the default dispatcher *of the thread
//! that hits the callsite first*: a test thread without a subscriber then
//! caches `never`, and every other test that reaches the same callsite (a
//! library span such as obs-correlate's `correlation`, an obs-errors
//! `exception` event) loses it, although its own subscriber wanted it. The
//! opposite happens too: `always`, cached for one test's subscriber, makes a
//! thread without one create spans with a no-op id.
//!
//! The functions here install the test's subscriber only after
//! [`share_interest`] has registered a process-wide dispatcher that answers
//! `sometimes` for every callsite. With two dispatchers registered,
//! tracing-core computes interest over all live dispatchers, and `sometimes`
//! combined with anything is `sometimes`: every callsite then asks, each
//! time it is hit, the default dispatcher of the thread that hits it. That
//! is exactly the per-thread behaviour a test expects, whatever the other
//! threads of the process do.
//!
//! Rebuilding the interest cache after installing a scoped dispatcher
//! (`tracing::callsite::rebuild_interest_cache`) is not enough: a callsite
//! first hit by another thread *after* the rebuild is cached from that
//! thread again.
//!
//! ```
//! use obs_testing::capture::CaptureLayer;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let capture = CaptureLayer::new();
//! obs_testing::subscriber::with_default(
//!     tracing_subscriber::registry().with(capture.clone()),
//!     || tracing::info!("seen"),
//! );
//! assert_eq!(capture.with_message("seen").len(), 1);
//! ```

use std::sync::OnceLock;

use tracing_core::dispatcher::DefaultGuard;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Dispatch, Event, Metadata, Subscriber};

/// The dispatcher kept alive for the whole process. It is never anyone's
/// default: tracing-core only asks it for its interest in each callsite.
struct Sometimes;

impl Subscriber for Sometimes {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }

    // No `max_level_hint`: the global level filter stays at what the other
    // dispatchers allow, never lower.

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Unreachable in practice (`enabled` is false and the dispatcher is
        // nobody's default); any non-zero id will do.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Registers, once per process, the dispatcher that keeps every callsite's
/// cached interest at `sometimes` (see the [module docs](self)). Called by
/// every other function of this module; call it yourself before building a
/// `Dispatch` by other means in a test binary that also installs scoped
/// subscribers.
pub fn share_interest() {
    static SHARED: OnceLock<Dispatch> = OnceLock::new();
    SHARED.get_or_init(|| Dispatch::new(Sometimes));
}

/// `Dispatch::new(subscriber)` after [`share_interest`]: for tests that
/// enter the same dispatcher several times or on several threads
/// (`tracing::dispatcher::with_default(&dispatch, ..)`).
pub fn dispatch<S>(subscriber: S) -> Dispatch
where
    S: Subscriber + Send + Sync + 'static,
{
    share_interest();
    Dispatch::new(subscriber)
}

/// `tracing::subscriber::with_default` after [`share_interest`]: runs `f`
/// with `subscriber` as this thread's default.
pub fn with_default<S, T>(subscriber: S, f: impl FnOnce() -> T) -> T
where
    S: Subscriber + Send + Sync + 'static,
{
    tracing_core::dispatcher::with_default(&dispatch(subscriber), f)
}

/// `tracing::subscriber::set_default` after [`share_interest`]: makes
/// `subscriber` this thread's default until the guard is dropped.
#[must_use = "the subscriber is the default only until the guard is dropped"]
pub fn set_default<S>(subscriber: S) -> DefaultGuard
where
    S: Subscriber + Send + Sync + 'static,
{
    tracing_core::dispatcher::set_default(&dispatch(subscriber))
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::capture::CaptureLayer;

    /// A library's callsite: one static, reached by every caller.
    fn library_span() -> tracing::Span {
        tracing::info_span!("library")
    }

    fn library_event() {
        tracing::info!("library event");
    }

    #[test]
    fn a_callsite_first_hit_by_a_thread_without_subscriber_stays_enabled() {
        let capture = CaptureLayer::new();
        let dispatch = dispatch(tracing_subscriber::registry().with(capture.clone()));
        // Another thread, with no subscriber, reaches the callsites first.
        std::thread::spawn(|| {
            assert!(library_span().is_disabled());
            library_event();
        })
        .join()
        .unwrap();
        tracing_core::dispatcher::with_default(&dispatch, || {
            let span = library_span();
            assert!(!span.is_disabled(), "the span is created for this test");
            let _g = span.enter();
            library_event();
        });
        let seen = capture.with_message("library event");
        assert_eq!(seen.len(), 1, "the event reaches this test's subscriber");
        assert_eq!(seen[0].spans, ["library"]);
    }

    #[test]
    fn a_callsite_enabled_for_one_test_is_not_enabled_for_a_thread_without_subscriber() {
        fn shared() -> tracing::Span {
            tracing::info_span!("shared")
        }
        let entered = Barrier::new(2);
        let done = Barrier::new(2);
        let (theirs, ours) = std::thread::scope(|s| {
            let theirs = s.spawn(|| {
                with_default(tracing_subscriber::registry(), || {
                    let span = shared();
                    entered.wait();
                    done.wait();
                    span.is_disabled()
                })
            });
            entered.wait();
            // The subscriber of the other thread is alive; this thread has none.
            let ours = shared();
            done.wait();
            (theirs.join().unwrap(), ours)
        });
        assert!(
            !theirs,
            "the span is created under the other test's subscriber"
        );
        assert!(ours.is_disabled(), "{ours:?}");
        assert!(ours.id().is_none());
    }

    #[test]
    fn guards_restore_the_previous_default() {
        let outer = CaptureLayer::new();
        let inner = CaptureLayer::new();
        with_default(tracing_subscriber::registry().with(outer.clone()), || {
            {
                let _g = set_default(tracing_subscriber::registry().with(inner.clone()));
                tracing::info!("inner");
            }
            tracing::info!("outer");
        });
        tracing::info!("nowhere");
        assert_eq!(inner.events().len(), 1);
        assert_eq!(inner.events()[0].message.as_deref(), Some("inner"));
        assert_eq!(outer.events().len(), 1);
        assert_eq!(outer.events()[0].message.as_deref(), Some("outer"));
    }
}
