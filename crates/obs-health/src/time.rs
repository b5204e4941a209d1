//! RFC 3339 formatting of `SystemTime` (UTC, millisecond precision), without
//! a date-time dependency.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`. Times before 1970 are written
/// as the epoch.
pub(crate) fn write_rfc3339(out: &mut String, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, day) = obs_core::units::civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fmt(secs: u64, millis: u64) -> String {
        let mut s = String::new();
        write_rfc3339(
            &mut s,
            UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis),
        );
        s
    }

    #[test]
    fn known_instants() {
        assert_eq!(fmt(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(fmt(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(fmt(1_700_000_000, 123), "2023-11-14T22:13:20.123Z");
        assert_eq!(fmt(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
    }
}
