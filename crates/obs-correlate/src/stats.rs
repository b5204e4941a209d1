//! Cheap, cloneable counters of how ids were obtained (contract C3: no
//! metrics types here; the facade publishes these values at scrape time).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Source;

#[derive(Debug, Default)]
struct Counters {
    incoming: AtomicU64,
    traceparent: AtomicU64,
    generated: AtomicU64,
    replaced: AtomicU64,
    untrusted: AtomicU64,
}

/// Counters of how correlation ids were obtained, one per [`Source`].
///
/// A handle is an `Arc` over atomics: clone it freely (the layer and the code
/// that publishes metrics share one), read it from any thread. Every request
/// the server layer sees increments exactly one counter, so
/// [`total`](Self::total) is the number of requests.
///
/// ```
/// use obs_correlate::{Source, Stats};
/// let stats = Stats::new();
/// stats.record(Source::Replaced);
/// stats.record(Source::Generated);
/// assert_eq!(stats.replaced(), 1);
/// assert_eq!(stats.total(), 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Stats(Arc<Counters>);

impl Stats {
    /// New counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one id obtained from `source`.
    #[inline]
    pub fn record(&self, source: Source) {
        let c = match source {
            Source::Incoming => &self.0.incoming,
            Source::Traceparent => &self.0.traceparent,
            Source::Generated => &self.0.generated,
            Source::Replaced => &self.0.replaced,
            Source::Untrusted => &self.0.untrusted,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Ids taken from a valid incoming header.
    pub fn incoming(&self) -> u64 {
        self.0.incoming.load(Ordering::Relaxed)
    }

    /// Ids taken from the trace id of an incoming `traceparent`.
    pub fn from_traceparent(&self) -> u64 {
        self.0.traceparent.load(Ordering::Relaxed)
    }

    /// Ids generated because no id came in.
    pub fn generated(&self) -> u64 {
        self.0.generated.load(Ordering::Relaxed)
    }

    /// Incoming ids rejected as invalid and replaced by a generated one.
    pub fn replaced(&self) -> u64 {
        self.0.replaced.load(Ordering::Relaxed)
    }

    /// Incoming ids ignored because the policy trusts no incoming id.
    pub fn untrusted(&self) -> u64 {
        self.0.untrusted.load(Ordering::Relaxed)
    }

    /// All ids counted, whatever their source.
    pub fn total(&self) -> u64 {
        self.incoming()
            + self.from_traceparent()
            + self.generated()
            + self.replaced()
            + self.untrusted()
    }
}
