//! Name validation, escaping and number formatting shared by the encoders.

use std::hash::{BuildHasher, Hasher};

use crate::error::Error;

/// The label text of the overflow series of the cardinality guard.
pub(crate) const OVERFLOW_LABELS: &str = "otel_metric_overflow=\"true\"";

/// Checks a metric name against `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn validate_metric_name(name: &str) -> Result<(), Error> {
    let bad = |reason| {
        Err(Error::InvalidMetricName {
            name: name.to_owned(),
            reason,
        })
    };
    let Some(first) = name.bytes().next() else {
        return bad("the name is empty");
    };
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b':') {
        return bad("it must start with a letter, '_' or ':'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
    {
        return bad("only letters, digits, '_' and ':' are allowed");
    }
    Ok(())
}

/// Checks a label name against `[a-zA-Z_][a-zA-Z0-9_]*`, refusing the
/// reserved `__` prefix and the labels the encoder adds itself.
pub(crate) fn validate_label_name(metric: &str, label: &str) -> Result<(), Error> {
    let bad = |reason| {
        Err(Error::InvalidLabelName {
            metric: metric.to_owned(),
            label: label.to_owned(),
            reason,
        })
    };
    let Some(first) = label.bytes().next() else {
        return bad("the name is empty");
    };
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return bad("it must start with a letter or '_'");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return bad("only letters, digits and '_' are allowed");
    }
    if label.starts_with("__") {
        return bad("names starting with '__' are reserved for Prometheus");
    }
    if label == "le" || label == "quantile" {
        return bad("'le' and 'quantile' are added by histograms and summaries");
    }
    if label == obs_core::names::metric::OVERFLOW_LABEL {
        return bad("the overflow label is set by the cardinality guard");
    }
    Ok(())
}

/// Checks a list of label names: each valid, none repeated.
pub(crate) fn validate_label_names(metric: &str, labels: &[&str]) -> Result<(), Error> {
    for (i, l) in labels.iter().enumerate() {
        validate_label_name(metric, l)?;
        if labels[..i].contains(l) {
            return Err(Error::InvalidLabelName {
                metric: metric.to_owned(),
                label: (*l).to_owned(),
                reason: "the label is listed twice",
            });
        }
    }
    Ok(())
}

/// Appends a label value escaped per the exposition formats (`\\`, `\"`, `\n`).
pub(crate) fn escape_label_value(out: &mut String, value: &str) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Redacts each value of rendered `k="v",…` labels as its own field (the
/// label name counts: `token="…"` is hidden whatever its value). Returns
/// `None` when nothing changed. Runs once per new series, never per sample.
pub(crate) fn redact_rendered_labels(labels: &str, r: &obs_core::Redactor) -> Option<String> {
    let b = labels.as_bytes();
    let mut out = String::with_capacity(labels.len());
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        let Some(eq) = labels[i..].find("=\"").map(|e| e + i) else {
            break;
        };
        let name = &labels[i..eq];
        let mut j = eq + 2;
        let mut value = String::new();
        while j < b.len() && b[j] != b'"' {
            if b[j] == b'\\' && j + 1 < b.len() {
                value.push(match b[j + 1] {
                    b'n' => '\n',
                    c => c as char,
                });
                j += 2;
            } else {
                let c = labels[j..].chars().next().unwrap_or('\0');
                value.push(c);
                j += c.len_utf8();
            }
        }
        let clean = r.redact_field(name, &value);
        changed |= clean != value;
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(&mut out, &clean);
        out.push('"');
        i = j + 1;
        if i < b.len() && b[i] == b',' {
            i += 1;
        }
    }
    changed.then_some(out)
}

/// Appends HELP text escaped per the formats: `\\` and `\n` in text 0.0.4,
/// plus `\"` in OpenMetrics.
pub(crate) fn escape_help(out: &mut String, help: &str, openmetrics: bool) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if openmetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Renders `names` and `values` as `a="x",b="y"` (escaped).
pub(crate) fn render_labels(names: &[impl AsRef<str>], values: &[impl AsRef<str>]) -> String {
    let mut out = String::with_capacity(names.len() * 16);
    for (i, (n, v)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(n.as_ref());
        out.push_str("=\"");
        escape_label_value(&mut out, v.as_ref());
        out.push('"');
    }
    out
}

/// Appends a float as the formats spell it (`+Inf`, `-Inf`, `NaN`, shortest round-trip otherwise).
#[inline]
pub(crate) fn push_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        let mut buf = ryu::Buffer::new();
        out.push_str(buf.format_finite(v));
    } else if v.is_nan() {
        out.push_str("NaN");
    } else if v > 0.0 {
        out.push_str("+Inf");
    } else {
        out.push_str("-Inf");
    }
}

/// Appends an unsigned integer.
#[inline]
pub(crate) fn push_u64(out: &mut String, v: u64) {
    let mut buf = itoa::Buffer::new();
    out.push_str(buf.format(v));
}

/// Appends a signed integer.
#[inline]
pub(crate) fn push_i64(out: &mut String, v: i64) {
    let mut buf = itoa::Buffer::new();
    out.push_str(buf.format(v));
}

/// A fast keyed hash for label lookups: a folded 64×64→128 multiply per 8
/// bytes (the construction of foldhash/wyhash) seeded once per process, so
/// label values an attacker picks cannot be aimed at one bucket offline.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LabelHasher {
    seed: u64,
    k: u64,
}

impl Default for LabelHasher {
    fn default() -> Self {
        LabelHasher::new()
    }
}

impl LabelHasher {
    /// A hasher with fresh random keys.
    pub(crate) fn new() -> Self {
        Self {
            seed: obs_core::rng::next_u64(),
            k: obs_core::rng::next_u64(),
        }
    }
}

impl LabelHasher {
    /// Hashes a list of label values. Each value is hashed on its own with a
    /// key derived from its position (so the hash depends on order and on
    /// where values start and end), which lets the CPU overlap the
    /// multiplies of different values; the sum is mixed once more.
    #[inline]
    pub(crate) fn hash_values(&self, values: &[&str]) -> u64 {
        let mut acc = 0u64;
        for (i, v) in values.iter().enumerate() {
            let pos = self
                .seed
                .wrapping_add((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut h = FoldHasher { h: pos, k: self.k };
            h.write_value(v.as_bytes());
            acc = acc.wrapping_add(h.h);
        }
        folded_mul(acc ^ self.seed, self.k ^ 0xe703_7ed1_a0b4_28db)
    }
}

impl BuildHasher for LabelHasher {
    type Hasher = FoldHasher;
    #[inline]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            h: self.seed,
            k: self.k,
        }
    }
}

/// The hasher of [`LabelHasher`].
#[derive(Debug)]
pub(crate) struct FoldHasher {
    h: u64,
    k: u64,
}

#[inline]
fn read_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

#[inline]
fn read_u32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w)
}

/// Byte equality without a `memcmp` call for the short strings labels
/// usually are (overlapping fixed-size loads up to 16 bytes).
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n > 16 {
        return a == b;
    }
    if n >= 8 {
        return read_u64(a) == read_u64(b) && read_u64(&a[n - 8..]) == read_u64(&b[n - 8..]);
    }
    if n >= 4 {
        return read_u32(a) == read_u32(b) && read_u32(&a[n - 4..]) == read_u32(&b[n - 4..]);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

#[inline]
fn folded_mul(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

impl FoldHasher {
    #[inline]
    fn mix(&mut self, w: u64) {
        self.h = folded_mul(self.h ^ w, self.k ^ 0xa076_1d64_78bd_642f);
    }
}

impl FoldHasher {
    /// Mixes one label value, its length folded into its last chunk so that
    /// a sequence of values hashes prefix-free with one multiply per 8 bytes.
    #[inline]
    pub(crate) fn write_value(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(read_u64(c));
        }
        // The tail is read with (possibly overlapping) fixed-size loads rather
        // than copied into a buffer: a variable-length copy is a memcpy call.
        let rest = chunks.remainder();
        let n = rest.len();
        let tail = if n >= 4 {
            (u64::from(read_u32(&rest[..4])) << 32) | u64::from(read_u32(&rest[n - 4..]))
        } else if n > 0 {
            (u64::from(rest[0]) << 16) | (u64::from(rest[n / 2]) << 8) | u64::from(rest[n - 1])
        } else {
            0
        };
        self.mix(tail ^ ((bytes.len() as u64) << 56) ^ 0x80);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.write_value(bytes);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i) | 0x100);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64 ^ 0xff00_0000_0000_0000);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    #[inline]
    fn finish(&self) -> u64 {
        folded_mul(self.h, self.k ^ 0xe703_7ed1_a0b4_28db)
    }
}

/// A hasher for keys that already are hashes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`IdentityHasher`]s.
pub(crate) type BuildIdentity = std::hash::BuildHasherDefault<IdentityHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_label_is_the_shared_name() {
        let expected = format!("{}=\"true\"", obs_core::names::metric::OVERFLOW_LABEL);
        assert_eq!(OVERFLOW_LABELS, expected);
    }

    #[test]
    fn names() {
        assert!(validate_metric_name("http_requests_total").is_ok());
        assert!(validate_metric_name("a:b_c9").is_ok());
        assert!(validate_metric_name("").is_err());
        assert!(validate_metric_name("9a").is_err());
        assert!(validate_metric_name("a-b").is_err());
        assert!(validate_label_name("m", "method").is_ok());
        assert!(validate_label_name("m", "__name").is_err());
        assert!(validate_label_name("m", "le").is_err());
        assert!(validate_label_name("m", "a:b").is_err());
        assert!(validate_label_names("m", &["a", "a"]).is_err());
    }

    #[test]
    fn escaping_and_floats() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\"b\\c\nd");
        assert_eq!(s, r#"a\"b\\c\nd"#);
        let mut s = String::new();
        escape_help(&mut s, "x\\y\n\"", true);
        assert_eq!(s, "x\\\\y\\n\\\"");
        let mut s = String::new();
        for v in [1.0, 0.005, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            push_f64(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "1.0 0.005 +Inf -Inf NaN ");
        assert_eq!(render_labels(&["a", "b"], &["x", "\""]), r#"a="x",b="\"""#);
        let r = obs_core::Redactor::new();
        let rendered = render_labels(
            &["route", "api_token", "note"],
            &[
                "/x/AKIAIOSFODNN7EXAMPLE",
                "abc",
                "say \"hi\"\npassword=hunter2",
            ],
        );
        assert_eq!(
            redact_rendered_labels(&rendered, &r).as_deref(),
            Some(
                r#"route="/x/[REDACTED]",api_token="[REDACTED]",note="say \"hi\"\npassword=[REDACTED]""#
            )
        );
        let plain = render_labels(&["method", "route"], &["GET", "/items/{id}"]);
        assert_eq!(redact_rendered_labels(&plain, &r), None);
    }

    #[test]
    fn hashes_differ() {
        let b = LabelHasher::new();
        let h = |v: &[&str]| b.hash_one(v);
        assert_ne!(h(&["ab", "c"]), h(&["a", "bc"]));
        let v = |x: &[&str]| b.hash_values(x);
        assert_ne!(v(&["ab", "c"]), v(&["a", "bc"]));
        assert_ne!(v(&["a", "b"]), v(&["b", "a"]));
        assert_ne!(v(&["", "x"]), v(&["x", ""]));
        assert_ne!(v(&["abcdefgh"]), v(&["abcdefgh", ""]));
        assert_eq!(v(&["GET", "/x"]), v(&["GET", "/x"]));
        assert!(bytes_eq(b"/items/{id}", b"/items/{id}"));
        assert!(!bytes_eq(b"/items/{id}", b"/items/{ix}"));
        assert!(!bytes_eq(b"abcd", b"abce"));
        assert!(bytes_eq(
            b"a long value of more than sixteen bytes",
            b"a long value of more than sixteen bytes"
        ));
        assert_eq!(h(&["GET", "/x"]), h(&["GET", "/x"]));
    }
}
