//! Head sampling, as `OTEL_TRACES_SAMPLER` names it.

use obs_core::{TraceFlags, TraceId};

/// A sampling strategy, decided once per span at its creation.
///
/// ```
/// use obs_trace::Sampler;
/// use obs_core::{TraceFlags, TraceId};
/// let s = Sampler::ParentBasedTraceIdRatio(0.0);
/// // A sampled parent wins over the ratio...
/// assert!(s.should_sample(Some(TraceFlags::SAMPLED), TraceId::random()));
/// // ...a root span follows it.
/// assert!(!s.should_sample(None, TraceId::random()));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Sampler {
    /// `always_on`: record everything.
    AlwaysOn,
    /// `always_off`: record nothing (ids are still assigned and propagated).
    AlwaysOff,
    /// `traceidratio`: a deterministic fraction of traces, by trace id.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default): follow the parent, sample roots.
    #[default]
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`: follow the parent, drop roots.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`: follow the parent, a fraction of roots.
    ParentBasedTraceIdRatio(f64),
}

#[inline]
fn ratio_sampled(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    // The same rule as the OpenTelemetry SDKs: compare the low 63 bits of the
    // trace id with the ratio scaled to 2^63, so every service of a trace
    // makes the same decision.
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    (trace_id.low_u64() >> 1) < bound
}

impl Sampler {
    /// Whether a new span with `parent` flags (`None` for a root span) in
    /// trace `trace_id` is sampled.
    #[inline]
    pub fn should_sample(&self, parent: Option<TraceFlags>, trace_id: TraceId) -> bool {
        match (*self, parent) {
            (Sampler::AlwaysOn, _) => true,
            (Sampler::AlwaysOff, _) => false,
            (Sampler::TraceIdRatio(r), _) => ratio_sampled(r, trace_id),
            (
                Sampler::ParentBasedAlwaysOn
                | Sampler::ParentBasedAlwaysOff
                | Sampler::ParentBasedTraceIdRatio(_),
                Some(flags),
            ) => flags.is_sampled(),
            (Sampler::ParentBasedAlwaysOn, None) => true,
            (Sampler::ParentBasedAlwaysOff, None) => false,
            (Sampler::ParentBasedTraceIdRatio(r), None) => ratio_sampled(r, trace_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_deterministic_and_roughly_right() {
        let s = Sampler::TraceIdRatio(0.25);
        let n = 20_000;
        let mut hits = 0;
        for _ in 0..n {
            let t = TraceId::random();
            let a = s.should_sample(None, t);
            assert_eq!(a, s.should_sample(Some(TraceFlags::SAMPLED), t));
            hits += usize::from(a);
        }
        let frac = hits as f64 / n as f64;
        assert!((0.2..0.3).contains(&frac), "{frac}");
    }

    #[test]
    fn parent_based_follows_parent() {
        for s in [
            Sampler::ParentBasedAlwaysOn,
            Sampler::ParentBasedAlwaysOff,
            Sampler::ParentBasedTraceIdRatio(0.5),
        ] {
            assert!(s.should_sample(Some(TraceFlags::from_byte(3)), TraceId::random()));
            assert!(!s.should_sample(Some(TraceFlags::NOT_SAMPLED), TraceId::random()));
        }
        assert!(Sampler::ParentBasedAlwaysOn.should_sample(None, TraceId::random()));
        assert!(!Sampler::ParentBasedAlwaysOff.should_sample(None, TraceId::random()));
        assert!(!Sampler::AlwaysOff.should_sample(Some(TraceFlags::SAMPLED), TraceId::random()));
        assert!(Sampler::AlwaysOn.should_sample(Some(TraceFlags::NOT_SAMPLED), TraceId::random()));
    }
}
