//! Low-level writers: JSON string escaping, numbers, RFC 3339 timestamps.
//! Everything appends to a `Vec<u8>` and never allocates beyond its growth.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Precision;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// For each byte: 0 = copy as is, `u` = `\u00XX`, anything else = `\` + that byte.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any of the 8 bytes of `x` is below 0x20, `"` or `\\`
/// (exact existence test; SWAR "has less / has byte" tricks).
#[inline]
fn word_needs_escape(x: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let ctl = x.wrapping_sub(LO * 0x20) & !x;
    let q = x ^ (LO * u64::from(b'"'));
    let quote = q.wrapping_sub(LO) & !q;
    let bs = x ^ (LO * u64::from(b'\\'));
    let backslash = bs.wrapping_sub(LO) & !bs;
    (ctl | quote | backslash) & HI != 0
}

/// Whether any byte of `bytes` must be escaped in a JSON string.
#[inline]
pub(crate) fn needs_escape(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        if word_needs_escape(u64::from_le_bytes(w)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| ESCAPE[b as usize] != 0)
}

/// Appends `s` escaped for the inside of a JSON string.
#[inline]
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Nearly every string is clean: one check, one copy.
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    escape_slow(out, bytes);
}

/// Appends `bytes`, which hold at least one byte to escape, escaped.
#[inline(never)]
pub(crate) fn escape_slow(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip 8 clean bytes at a time.
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            if !word_needs_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let e = ESCAPE[b as usize];
        if e != 0 {
            out.extend_from_slice(&bytes[start..i]);
            if e == b'u' {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            } else {
                out.push(b'\\');
                out.push(e);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `"s"`, escaped.
#[inline]
pub(crate) fn quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

/// Appends bytes as a JSON string, decoding them as UTF-8 lossily (each
/// invalid sequence becomes U+FFFD), without allocating.
pub(crate) fn quoted_lossy(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        escape_into(out, chunk.valid());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    out.push(b'"');
}

/// `fmt::Write` into a byte buffer as is.
pub(crate) struct Raw<'a>(pub(crate) &'a mut Vec<u8>);

impl fmt::Write for Raw<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[inline]
pub(crate) fn int<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Longest number [`float`] writes from an integer: a sign, 10 integer
/// digits, the point and 6 decimals, rounded up.
const FLOAT_MAX: usize = 24;

/// A float as a JSON number; NaN and the infinities, which JSON cannot
/// express, become the strings `"NaN"`, `"inf"` and `"-inf"`.
#[inline]
pub(crate) fn float(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        // Values with at most six decimals (prices, ratios, durations) are
        // written from an integer: for `n`, the nearest integer to
        // `v * 10^6`, `(n as f64) / 1e6 == v` proves the decimal text
        // `n / 10^6` parses back to exactly `v` (the product itself may
        // miss `n` by a rounding). Everything else goes through ryu.
        let scaled = (v * 1e6).round();
        if scaled.abs() < 9.0e15 && scaled / 1e6 == v {
            // Written right to left into a stack buffer, copied once: at
            // most a sign, 10 integer digits, the point and 6 decimals.
            let a = (scaled as i64).unsigned_abs();
            let mut buf = [0u8; 2 * FLOAT_MAX];
            let mut pos = FLOAT_MAX;
            let frac = a % 1_000_000;
            if frac == 0 {
                pos -= 1;
                buf[pos] = b'0';
            } else {
                // All six decimals two at a time, then the trailing zeros
                // dropped.
                let mut f = frac as usize;
                for _ in 0..3 {
                    let d = f % 100;
                    f /= 100;
                    pos -= 2;
                    buf[pos..pos + 2].copy_from_slice(&DIGITS2[2 * d..2 * d + 2]);
                }
                let mut end = FLOAT_MAX;
                while buf[end - 1] == b'0' {
                    end -= 1;
                }
                // Moves the kept decimals to the end of the number.
                let kept = end - pos;
                buf.copy_within(pos..end, FLOAT_MAX - kept);
                pos = FLOAT_MAX - kept;
            }
            pos -= 1;
            buf[pos] = b'.';
            let mut whole = a / 1_000_000;
            while whole >= 100 {
                let d = (whole % 100) as usize;
                whole /= 100;
                pos -= 2;
                buf[pos..pos + 2].copy_from_slice(&DIGITS2[2 * d..2 * d + 2]);
            }
            if whole >= 10 {
                let d = whole as usize;
                pos -= 2;
                buf[pos..pos + 2].copy_from_slice(&DIGITS2[2 * d..2 * d + 2]);
            } else {
                pos -= 1;
                buf[pos] = b'0' + whole as u8;
            }
            if v.is_sign_negative() {
                pos -= 1;
                buf[pos] = b'-';
            }
            // A copy of known length (no `memcpy` call), then the bytes
            // past the number cut off.
            let at = out.len();
            out.extend_from_slice(&buf[pos..pos + FLOAT_MAX]);
            out.truncate(at + FLOAT_MAX - pos);
            return;
        }
        let mut b = ryu::Buffer::new();
        out.extend_from_slice(b.format_finite(v).as_bytes());
    } else if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v > 0.0 {
        out.extend_from_slice(b"\"inf\"");
    } else {
        out.extend_from_slice(b"\"-inf\"");
    }
}

/// A point in time as seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timestamp {
    pub(crate) secs: u64,
    pub(crate) nanos: u32,
}

impl Timestamp {
    pub(crate) fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            secs: d.as_secs(),
            nanos: d.subsec_nanos(),
        }
    }
}

thread_local! {
    /// The date-and-time part of the last second formatted on this thread.
    static LAST: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

/// `"00" … "99"`.
static DIGITS2: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Appends `YYYY-MM-DDTHH:MM:SS[.fff…]Z` (no quotes): assembled on the
/// stack (the date and time of the second cached per thread, the fraction
/// two digits at a time) and appended with one copy.
pub(crate) fn rfc3339(out: &mut Vec<u8>, ts: Timestamp, precision: Precision) {
    let (secs, mut head) = LAST.with(|c| c.get());
    if secs != ts.secs {
        head = civil(ts.secs);
        LAST.with(|c| c.set((ts.secs, head)));
    }
    let mut b = [0u8; 30];
    b[..19].copy_from_slice(&head);
    let digits = match precision {
        Precision::Seconds => 0,
        Precision::Millis => 3,
        Precision::Micros => 6,
        Precision::Nanos => 9,
    };
    let len = if digits > 0 {
        b[19] = b'.';
        // Only the digits that are written: truncate first.
        let mut n = (ts.nanos / [1, 1_000_000, 1_000, 1][digits / 3]) as usize;
        let mut i = 20 + digits;
        while i > 21 {
            let d = n % 100;
            n /= 100;
            b[i - 2..i].copy_from_slice(&DIGITS2[2 * d..2 * d + 2]);
            i -= 2;
        }
        if i > 20 {
            b[20] = b'0' + (n % 10) as u8;
        }
        b[20 + digits] = b'Z';
        21 + digits
    } else {
        b[19] = b'Z';
        20
    };
    out.extend_from_slice(&b[..len]);
}

/// Seconds since the epoch to `YYYY-MM-DDTHH:MM:SS` (proleptic Gregorian, UTC).
fn civil(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
    let (y, mo, d) = obs_core::units::civil_from_days(days);
    let y = y.clamp(0, 9999) as u64;
    let mut b = *b"0000-00-00T00:00:00";
    let put = |b: &mut [u8; 19], at: usize, v: u64, w: usize| {
        let mut v = v;
        for i in (0..w).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut b, 0, y, 4);
    put(&mut b, 5, u64::from(mo), 2);
    put(&mut b, 8, u64::from(d), 2);
    put(&mut b, 11, h, 2);
    put(&mut b, 14, m, 2);
    put(&mut b, 17, s, 2);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: u64, nanos: u32, p: Precision) -> String {
        let mut v = Vec::new();
        rfc3339(&mut v, Timestamp { secs, nanos }, p);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn timestamps() {
        assert_eq!(ts(0, 0, Precision::Seconds), "1970-01-01T00:00:00Z");
        assert_eq!(
            ts(951_782_400, 5_000_000, Precision::Millis),
            "2000-02-29T00:00:00.005Z"
        );
        assert_eq!(
            ts(1_700_000_000, 123_456_789, Precision::Micros),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            ts(1_700_000_000, 123_456_789, Precision::Nanos),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            ts(4_102_444_799, 0, Precision::Seconds),
            "2099-12-31T23:59:59Z"
        );
    }

    #[test]
    fn escaping() {
        let mut v = Vec::new();
        quoted(&mut v, "a\"b\\c\n\u{1}\u{7f}é");
        assert_eq!(
            std::str::from_utf8(&v).unwrap(),
            r#""a\"b\\c\n\u0001é""#.replace('é', "\u{7f}é")
        );
        let mut v = Vec::new();
        quoted_lossy(&mut v, b"ok\xff\xfe!");
        assert_eq!(
            serde_json::from_slice::<String>(&v).unwrap(),
            "ok\u{FFFD}\u{FFFD}!"
        );
    }

    proptest::proptest! {
        #[test]
        fn floats_round_trip(v in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO, cents in -10_000_000i64..10_000_000) {
            for v in [v, cents as f64 / 100.0, cents as f64 / 1e6] {
                let mut out = Vec::new();
                float(&mut out, v);
                let text = std::str::from_utf8(&out).unwrap();
                let back: f64 = text.parse().unwrap();
                proptest::prop_assert_eq!(back.to_bits(), v.to_bits(), "{} -> {}", v, text);
                let via_json: f64 = serde_json::from_str(text).unwrap();
                proptest::prop_assert_eq!(via_json.to_bits(), v.to_bits());
            }
        }
    }

    #[test]
    fn escaping_every_byte_at_every_offset() {
        for b in 0u8..=127 {
            for pad in 0..17 {
                let s = format!("{}{}{}", "a".repeat(pad), b as char, "z".repeat(17 - pad));
                let mut v = Vec::new();
                quoted(&mut v, &s);
                assert_eq!(
                    serde_json::from_slice::<String>(&v).unwrap(),
                    s,
                    "byte {b} at {pad}"
                );
                let must_escape = s.bytes().any(|c| ESCAPE[c as usize] != 0);
                let escaped = v.len() - 2 != s.len();
                assert_eq!(escaped, must_escape, "byte {b} at {pad}");
            }
        }
    }

    #[test]
    fn floats() {
        for (f, s) in [
            (1.5, "1.5"),
            // Six decimals whose product with 10^6 misses the integer by a
            // rounding: still written from the integer.
            (7_872_725.0 / 1e6, "7.872725"),
            (0.000_001, "0.000001"),
            (-2.5e-5, "-0.000025"),
            // Every length of the integer part, decimals with zeros inside.
            (0.0, "0.0"),
            (7.0, "7.0"),
            (10.05, "10.05"),
            (99.000001, "99.000001"),
            (100.5, "100.5"),
            (1500.0, "1500.0"),
            (1.0005, "1.0005"),
            (-1234567890.5, "-1234567890.5"),
            (f64::NAN, "\"NaN\""),
            (f64::INFINITY, "\"inf\""),
            (f64::NEG_INFINITY, "\"-inf\""),
        ] {
            let mut v = Vec::new();
            float(&mut v, f);
            assert_eq!(std::str::from_utf8(&v).unwrap(), s);
        }
    }
}
