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

/// Days since 1970-01-01 to the civil date `(year, month, day)` in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`), for
/// the timestamps and file names every pillar writes in UTC without a
/// date-time dependency. Negative days are dates before 1970.
///
/// ```
/// use obs_core::units::civil_from_days;
/// assert_eq!(civil_from_days(0), (1970, 1, 1));
/// assert_eq!(civil_from_days(11_016), (2000, 2, 29));
/// assert_eq!(civil_from_days(-1), (1969, 12, 31));
/// ```
#[inline]
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both below 32 and positive: the casts are exact.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_day_by_day() {
        // Every day from 1900 to 2200 follows the one before it.
        let (mut y, mut m, mut d) = civil_from_days(-25_567);
        assert_eq!((y, m, d), (1900, 1, 1));
        for days in -25_566..=84_006 {
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            (y, m, d) = match (d < len, m < 12) {
                (true, _) => (y, m, d + 1),
                (false, true) => (y, m + 1, 1),
                (false, false) => (y + 1, 1, 1),
            };
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
        }
        assert_eq!((y, m, d), (2200, 1, 1));
    }

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
