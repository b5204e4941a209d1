//! Cheap, cloneable counters of how ids were obtained (the stats-handle contract: no
//! metrics types here; the facade publishes these values at scrape time).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Rejection, Source};
use obs_core::error::CorrelationIdError;

#[derive(Debug, Default)]
struct Counters {
    incoming: AtomicU64,
    traceparent: AtomicU64,
    generated: AtomicU64,
    replaced: AtomicU64,
    untrusted: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
}

/// Why an incoming id was replaced, as a metric label value: the coarse
/// kind of a [`Rejection`], without the details (positions, lengths) that
/// would make the label unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The header was empty.
    Empty,
    /// Longer than obs-core's limit or the configured maximum.
    TooLong,
    /// A byte outside the safe set.
    ForbiddenByte,
    /// The shape of a credential (JWT, vendor token, cloud key, password).
    SecretShaped,
    /// The header was sent more than once.
    Repeated,
}

impl RejectReason {
    /// Every reason, in label order.
    pub const ALL: [RejectReason; 5] = [
        RejectReason::Empty,
        RejectReason::TooLong,
        RejectReason::ForbiddenByte,
        RejectReason::SecretShaped,
        RejectReason::Repeated,
    ];

    /// The label value: `empty`, `too_long`, `forbidden_byte`,
    /// `secret_shaped`, `repeated`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Empty => "empty",
            RejectReason::TooLong => "too_long",
            RejectReason::ForbiddenByte => "forbidden_byte",
            RejectReason::SecretShaped => "secret_shaped",
            RejectReason::Repeated => "repeated",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl From<&Rejection> for RejectReason {
    fn from(r: &Rejection) -> Self {
        match r {
            Rejection::Invalid(CorrelationIdError::Empty) => RejectReason::Empty,
            Rejection::Invalid(CorrelationIdError::TooLong { .. }) | Rejection::TooLong { .. } => {
                RejectReason::TooLong
            }
            Rejection::Invalid(CorrelationIdError::ForbiddenByte { .. }) => {
                RejectReason::ForbiddenByte
            }
            Rejection::Invalid(CorrelationIdError::SecretShaped) => RejectReason::SecretShaped,
            Rejection::Repeated => RejectReason::Repeated,
        }
    }
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

    /// Counts one replaced id by the reason it was rejected (on top of
    /// [`record`](Self::record)`(Source::Replaced)`).
    #[inline]
    pub fn record_rejection(&self, rejection: &Rejection) {
        self.0.rejected[RejectReason::from(rejection).index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Incoming ids rejected for `reason`.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.0.rejected[reason.index()].load(Ordering::Relaxed)
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
