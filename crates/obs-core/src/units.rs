//! Conversions every pillar writes the same way.

use std::time::Duration;

/// `d` in milliseconds, as the nearest `f64` to the exact decimal number of
/// milliseconds (nanosecond precision) for any duration below 2^53 ns (104
/// days): `4.521` for 4,521,000 ns, never `4.521000000000001`. One rounding from the integer count of
/// nanoseconds, where `as_secs_f64() * 1000.0` rounds twice and, for about a
/// quarter of durations, lands on a neighbour of that decimal: a value that
/// prints with seventeen digits (and that a log writer cannot write from
/// its integer fast path).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(obs_core::units::duration_ms(Duration::from_nanos(7_872_725)).to_string(), "7.872725");
/// assert_eq!(obs_core::units::duration_ms(Duration::from_millis(1500)), 1500.0);
/// assert_eq!(obs_core::units::duration_ms(Duration::ZERO), 0.0);
/// ```
#[inline]
pub fn duration_ms(d: Duration) -> f64 {
    // Below 2^53 ns (104 days) the count converts exactly and the division
    // is the one rounding; above, the conversion rounds too (u64 holds 584
    // years; longer saturates).
    let ns = d
        .as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(u64::from(d.subsec_nanos())))
        .unwrap_or(u64::MAX);
    ns as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nanosecond_count_prints_as_its_decimal() {
        // The nearest double to k / 10^6 prints (shortest round trip) as
        // the decimal itself, with at most six decimals.
        let mut k: u64 = 1;
        for _ in 0..200_000 {
            k = k
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let ns = k % 100_000_000_000; // up to 100 s
            let text = duration_ms(Duration::from_nanos(ns)).to_string();
            let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
            assert!(frac.len() <= 6, "{ns} ns printed as {text}");
            let back = whole.parse::<u64>().unwrap() * 1_000_000
                + format!("{frac:0<6}").parse::<u64>().unwrap();
            assert_eq!(back, ns, "{ns} ns printed as {text}");
        }
    }
}
