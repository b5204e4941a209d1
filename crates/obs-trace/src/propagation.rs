//! W3C Trace Context (`traceparent`, `tracestate`) and W3C Baggage, written
//! to the letter of the Recommendations.
//!
//! - `traceparent`: lowercase hex only; version `ff` rejected; all-zero trace
//!   or parent ids rejected; version `00` must be exactly 55 characters;
//!   future versions may be longer, but only after a `-`; unknown flag bits
//!   are kept; surrounding spaces and tabs are trimmed; two `traceparent`
//!   headers make the context invalid. Any invalid `traceparent` restarts the
//!   trace (extraction yields no parent) and discards `tracestate`.
//! - `tracestate` (Trace Context Level 2): repeated headers are joined in
//!   order; empty members are skipped; members are trimmed; keys follow the
//!   Level 2 grammar (`@` allowed anywhere after the first character, 256
//!   characters at most); a duplicated key keeps its first member and the
//!   later ones are dropped; more than 32 members or a malformed key or value
//!   drops the whole `tracestate`.
//! - `baggage`: members are parsed individually (an invalid member is
//!   skipped), values percent-decoded, at most 64 members and 8192 bytes.
//!
//! Parsing `traceparent` never allocates; `tracestate` allocates one string
//! only when a valid one is present.
//!
//! ```
//! use obs_trace::propagation::{self, SpanContext};
//! let mut headers = http::HeaderMap::new();
//! headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
//! headers.insert("tracestate", "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7".parse().unwrap());
//! let parent: SpanContext = propagation::extract(&headers).unwrap();
//! assert_eq!(parent.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert!(parent.trace_flags.is_sampled());
//! assert_eq!(parent.trace_state.get("rojo"), Some("00f067aa0ba902b7"));
//!
//! let mut out = http::HeaderMap::new();
//! propagation::inject(&parent, &mut out);
//! assert_eq!(out["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! assert_eq!(out["tracestate"], "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
//! ```

use std::fmt;
use std::sync::Arc;

use obs_core::names::header;
use obs_core::{Carrier, SpanId, TraceFlags, TraceId};

/// Why a `traceparent` value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceparentError {
    /// Shorter than the 55 characters of a version-00 value.
    TooShort,
    /// Version `00` with characters after the flags.
    TrailingData,
    /// A future version whose extra data does not start with `-`.
    BadFutureFormat,
    /// A `-` separator is missing or misplaced.
    Separator,
    /// The version is not two lowercase hex digits.
    Version,
    /// Version `ff`, which the Recommendation forbids.
    VersionFf,
    /// The trace id is not 32 lowercase hex digits.
    TraceId,
    /// The trace id is all zero.
    ZeroTraceId,
    /// The parent id is not 16 lowercase hex digits.
    ParentId,
    /// The parent id is all zero.
    ZeroParentId,
    /// The flags are not two lowercase hex digits.
    Flags,
}

impl fmt::Display for TraceparentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooShort => "the value is shorter than 55 characters",
            Self::TrailingData => "version 00 allows nothing after the flags",
            Self::BadFutureFormat => "data after the flags of a future version must start with '-'",
            Self::Separator => "a '-' separator is missing or misplaced",
            Self::Version => "the version is not two lowercase hex digits",
            Self::VersionFf => "version ff is invalid",
            Self::TraceId => "the trace id is not 32 lowercase hex digits",
            Self::ZeroTraceId => "the trace id is all zero",
            Self::ParentId => "the parent id is not 16 lowercase hex digits",
            Self::ZeroParentId => "the parent id is all zero",
            Self::Flags => "the flags are not two lowercase hex digits",
        })
    }
}

impl std::error::Error for TraceparentError {}

// Pre-built header names: no name parsing on the hot path.
const H_TRACEPARENT: http::HeaderName = http::HeaderName::from_static(header::TRACEPARENT);
const H_TRACESTATE: http::HeaderName = http::HeaderName::from_static(header::TRACESTATE);
const H_BAGGAGE: http::HeaderName = http::HeaderName::from_static(header::BAGGAGE);

/// The most list members a `tracestate` may carry.
pub const TRACESTATE_MAX_MEMBERS: usize = 32;
/// The most list members a `baggage` header may carry.
pub const BAGGAGE_MAX_MEMBERS: usize = 64;
/// The most bytes of baggage obs reads or writes.
pub const BAGGAGE_MAX_BYTES: usize = 8192;

/// The context of a span as it crosses a process boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace id.
    pub trace_id: TraceId,
    /// The span id (a `traceparent`'s `parent-id`).
    pub span_id: SpanId,
    /// The trace flags, unknown bits included.
    pub trace_flags: TraceFlags,
    /// Vendor-specific trace state.
    pub trace_state: TraceState,
    /// Whether this context came from another process.
    pub is_remote: bool,
}

impl SpanContext {
    /// A local context with an empty trace state.
    pub fn new(trace_id: TraceId, span_id: SpanId, trace_flags: TraceFlags) -> Self {
        Self {
            trace_id,
            span_id,
            trace_flags,
            trace_state: TraceState::default(),
            is_remote: false,
        }
    }

    /// Whether the sampled flag is set.
    pub fn is_sampled(&self) -> bool {
        self.trace_flags.is_sampled()
    }

    /// The `traceparent` value (version 00) for this context, without
    /// allocating.
    ///
    /// ```
    /// use obs_trace::propagation::SpanContext;
    /// use obs_core::{SpanId, TraceFlags, TraceId};
    /// let cx = SpanContext::new(TraceId::from_int(1), SpanId::from_int(2), TraceFlags::SAMPLED);
    /// assert_eq!(cx.traceparent().as_str(), "00-00000000000000000000000000000001-0000000000000002-01");
    /// ```
    pub fn traceparent(&self) -> Traceparent {
        let mut b = [0u8; 55];
        b[0] = b'0';
        b[1] = b'0';
        b[2] = b'-';
        b[3..35].copy_from_slice(self.trace_id.to_hex().as_bytes());
        b[35] = b'-';
        b[36..52].copy_from_slice(self.span_id.to_hex().as_bytes());
        b[52] = b'-';
        b[53..55].copy_from_slice(self.trace_flags.to_hex().as_bytes());
        Traceparent(b)
    }
}

/// A formatted `traceparent` value in a stack buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Traceparent([u8; 55]);

impl Traceparent {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into the buffer.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Traceparent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Traceparent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[inline]
fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Parses one `traceparent` value (surrounding spaces and tabs allowed)
/// into `(trace_id, parent_id, flags)`. Never allocates.
///
/// ```
/// use obs_trace::propagation::{parse_traceparent, TraceparentError};
/// let (t, s, f) = parse_traceparent(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-future")?;
/// assert_eq!(f.to_byte(), 0x09);
/// assert_eq!(parse_traceparent(b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), Err(TraceparentError::VersionFf));
/// # Ok::<(), TraceparentError>(())
/// ```
pub fn parse_traceparent(value: &[u8]) -> Result<(TraceId, SpanId, TraceFlags), TraceparentError> {
    let v = trim_ows(value);
    if v.len() < 55 {
        return Err(TraceparentError::TooShort);
    }
    if !(obs_core::is_lower_hex(v[0]) && obs_core::is_lower_hex(v[1])) {
        return Err(TraceparentError::Version);
    }
    if v[0] == b'f' && v[1] == b'f' {
        return Err(TraceparentError::VersionFf);
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return Err(TraceparentError::Separator);
    }
    let version_00 = v[0] == b'0' && v[1] == b'0';
    if v.len() > 55 {
        if version_00 {
            return Err(TraceparentError::TrailingData);
        }
        if v[55] != b'-' {
            return Err(TraceparentError::BadFutureFormat);
        }
    }
    let tb = obs_core::decode_lower_hex::<16>(&v[3..35]).ok_or(TraceparentError::TraceId)?;
    let sb = obs_core::decode_lower_hex::<8>(&v[36..52]).ok_or(TraceparentError::ParentId)?;
    let [fb] = obs_core::decode_lower_hex::<1>(&v[53..55]).ok_or(TraceparentError::Flags)?;
    let (trace_id, span_id) = (TraceId::from_bytes(tb), SpanId::from_bytes(sb));
    if !trace_id.is_valid() {
        return Err(TraceparentError::ZeroTraceId);
    }
    if !span_id.is_valid() {
        return Err(TraceparentError::ZeroParentId);
    }
    Ok((trace_id, span_id, TraceFlags::from_byte(fb)))
}

/// W3C `tracestate`: validated, normalized (members trimmed, joined with
/// `,`, empty members removed), cheap to clone.
///
/// ```
/// use obs_trace::propagation::TraceState;
/// let ts = TraceState::parse([&b"foo=1 \t, \t bar=2"[..], b"", b"baz=3"]).unwrap();
/// assert_eq!(ts.as_str(), "foo=1,bar=2,baz=3");
/// assert_eq!(ts.get("bar"), Some("2"));
/// // A duplicated key keeps its first member.
/// assert_eq!(TraceState::parse([&b"foo=1,bar=2,foo=3"[..]]).unwrap().as_str(), "foo=1,bar=2");
/// // Level 2 keys: `@` anywhere after the first character.
/// assert_eq!(TraceState::parse([&b"foo@=1,bar=2"[..]]).unwrap().get("foo@"), Some("1"));
/// assert!(TraceState::parse([&b"@foo=1,bar=2"[..]]).is_none());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct TraceState(Option<Arc<str>>);

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", self.as_str())
    }
}

fn is_key_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@')
}

/// The Trace Context Level 2 key grammar:
///
/// ```text
/// key     = ( lcalpha / DIGIT ) 0*255 ( keychar )
/// keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
/// ```
///
/// One to 256 characters starting with a lowercase letter or a digit; `@`
/// may appear anywhere after the first character, any number of times. The
/// Level 1 split into `tenant@system` (tenant up to 241, system up to 14
/// characters) is gone: every Level 1 multi-tenant key is still valid, and
/// `foo@`, `foo@@bar`, `foo@bar@baz`, `t…t@v` with a 242-character tenant or
/// `t@v…v` with a 15-character system id now are too. `@foo` is not.
fn valid_tracestate_key(k: &[u8]) -> bool {
    matches!(k.first(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && k.len() <= 256
        && k.iter().all(|&c| is_key_char(c))
}

fn valid_tracestate_value(v: &[u8]) -> bool {
    // value = 0*255(chr) nblk-chr ; chr = %x20 / nblk-chr
    // nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
    let nblk = |c: u8| matches!(c, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    !v.is_empty()
        && v.len() <= 256
        && nblk(v[v.len() - 1])
        && v.iter().all(|&c| c == b' ' || nblk(c))
}

/// Splits `(key, value)` of a trimmed, non-empty member, or `None` if invalid.
fn tracestate_member(m: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = m.iter().position(|&c| c == b'=')?;
    let (k, v) = (&m[..eq], &m[eq + 1..]);
    (valid_tracestate_key(k) && valid_tracestate_value(v)).then_some((k, v))
}

impl TraceState {
    /// Parses the values of every `tracestate` header, in order. Returns
    /// `None` when the combined list is invalid (and must be discarded):
    /// a malformed member or more than 32 members. A key that appears
    /// again keeps its first member; the later ones are dropped (the
    /// Recommendation lets a vendor discard duplicates, and the official
    /// test suite accepts that). An absent or all-empty header gives `Some`
    /// empty state.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<TraceState> {
        // Each non-empty header value holds at least one member, so more than
        // 32 of them is over the limit; collecting on the stack keeps the
        // validation pass allocation-free.
        let mut values = values.into_iter();
        // The common case, no tracestate at all, costs nothing more.
        let Some(first) = values.next() else {
            return Some(TraceState(None));
        };
        let mut slots: [&[u8]; TRACESTATE_MAX_MEMBERS] = [&[]; TRACESTATE_MAX_MEMBERS];
        let mut n = 0;
        for v in std::iter::once(first).chain(values) {
            let v = trim_ows(v);
            if v.iter().all(|&c| c == b',' || c == b' ' || c == b'\t') {
                continue;
            }
            if n == TRACESTATE_MAX_MEMBERS {
                return None;
            }
            slots[n] = v;
            n += 1;
        }
        Self::parse_slices(&slots[..n])
    }

    fn parse_slices(values: &[&[u8]]) -> Option<TraceState> {
        let mut count = 0usize;
        let mut total = 0usize;
        // First pass: validate and count without allocating.
        for v in values {
            for m in v.split(|&c| c == b',') {
                let m = trim_ows(m);
                if m.is_empty() {
                    continue;
                }
                tracestate_member(m)?;
                count += 1;
                if count > TRACESTATE_MAX_MEMBERS {
                    return None;
                }
                total += m.len() + 1;
            }
        }
        if count == 0 {
            return Some(TraceState(None));
        }
        // Duplicated keys: the first occurrence is kept, later ones dropped
        // (at most 32 members: quadratic is fine).
        let mut keys: [&[u8]; TRACESTATE_MAX_MEMBERS] = [&[]; TRACESTATE_MAX_MEMBERS];
        let mut n = 0;
        let mut out = String::with_capacity(total);
        for v in values {
            for m in v.split(|&c| c == b',') {
                let m = trim_ows(m);
                if m.is_empty() {
                    continue;
                }
                let (k, _) = tracestate_member(m)?;
                if keys[..n].contains(&k) {
                    continue;
                }
                keys[n] = k;
                n += 1;
                if !out.is_empty() {
                    out.push(',');
                }
                // Validated as ASCII above.
                out.push_str(std::str::from_utf8(m).ok()?);
            }
        }
        Some(TraceState(Some(out.into())))
    }

    /// The normalized header value (empty when there is no state).
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Iterates over `(key, value)` members in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.as_str()
            .split(',')
            .filter(|m| !m.is_empty())
            .filter_map(|m| m.split_once('='))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// A copy with `key=value` placed first (replacing an earlier value of
    /// `key`), as a vendor updating its entry must do; the last member is
    /// dropped when the list would exceed 32. `None` when the key or value is
    /// not valid.
    ///
    /// ```
    /// use obs_trace::propagation::TraceState;
    /// let ts = TraceState::parse([&b"a=1,b=2"[..]]).unwrap();
    /// assert_eq!(ts.with_entry("b", "3").unwrap().as_str(), "b=3,a=1");
    /// assert!(ts.with_entry("B", "3").is_none());
    /// ```
    pub fn with_entry(&self, key: &str, value: &str) -> Option<TraceState> {
        if !valid_tracestate_key(key.as_bytes()) || !valid_tracestate_value(value.as_bytes()) {
            return None;
        }
        let mut out = format!("{key}={value}");
        let mut n = 1;
        for (k, v) in self.iter() {
            if k == key {
                continue;
            }
            if n == TRACESTATE_MAX_MEMBERS {
                break;
            }
            out.push(',');
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            n += 1;
        }
        Some(TraceState(Some(out.into())))
    }
}

/// One W3C Baggage entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaggageEntry {
    /// The key (an RFC 9110 token).
    pub key: String,
    /// The value, percent-decoded.
    pub value: String,
    /// The raw metadata properties after the first `;`, if any.
    pub properties: Option<String>,
}

/// W3C Baggage: application-defined key/value pairs that travel with the
/// trace context.
///
/// ```
/// use obs_trace::propagation::Baggage;
/// let b = Baggage::parse([&b"userId=alice, serverNode = DF%2028 ;prop=1, bad key=x"[..]]);
/// assert_eq!(b.get("userId"), Some("alice"));
/// assert_eq!(b.get("serverNode"), Some("DF 28"));
/// assert_eq!(b.len(), 2); // the invalid member is skipped
/// assert_eq!(b.to_header_value(), "userId=alice,serverNode=DF%2028;prop=1");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    entries: Vec<BaggageEntry>,
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn percent_decode(v: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let h = v.get(i + 1..i + 3)?;
            let d = |c: u8| (c as char).to_digit(16);
            out.push((d(h[0])? * 16 + d(h[1])?) as u8);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode_into(v: &str, out: &mut String) {
    for &c in v.as_bytes() {
        if is_baggage_octet(c) && c != b'%' {
            out.push(c as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(c >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(c & 15) as usize]));
        }
    }
}

impl Baggage {
    /// An empty baggage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the values of every `baggage` header. Invalid members are
    /// skipped; members beyond 64 or 8192 bytes in total are dropped.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Baggage {
        let mut b = Baggage::default();
        let mut bytes = 0usize;
        for v in values {
            for m in v.split(|&c| c == b',') {
                let m = trim_ows(m);
                if m.is_empty() {
                    continue;
                }
                if b.entries.len() >= BAGGAGE_MAX_MEMBERS || bytes + m.len() > BAGGAGE_MAX_BYTES {
                    return b;
                }
                if let Some(e) = Self::member(m) {
                    bytes += m.len() + 1;
                    b.entries.retain(|x| x.key != e.key);
                    b.entries.push(e);
                }
            }
        }
        b
    }

    fn member(m: &[u8]) -> Option<BaggageEntry> {
        let (kv, props) = match m.iter().position(|&c| c == b';') {
            Some(i) => (&m[..i], Some(trim_ows(&m[i + 1..]))),
            None => (m, None),
        };
        let eq = kv.iter().position(|&c| c == b'=')?;
        let key = trim_ows(&kv[..eq]);
        let value = trim_ows(&kv[eq + 1..]);
        if key.is_empty() || !key.iter().all(|&c| is_tchar(c)) {
            return None;
        }
        if !value.iter().all(|&c| is_baggage_octet(c)) {
            return None;
        }
        let properties = match props {
            Some(p) if !p.is_empty() => {
                if !p
                    .iter()
                    .all(|&c| c.is_ascii_graphic() || c == b' ' || c == b'\t')
                {
                    return None;
                }
                Some(std::str::from_utf8(p).ok()?.to_owned())
            }
            _ => None,
        };
        Some(BaggageEntry {
            key: std::str::from_utf8(key).ok()?.to_owned(),
            value: percent_decode(value)?,
            properties,
        })
    }

    /// Sets `key` to `value` (replacing an earlier value). Returns `false`
    /// and changes nothing when the key is not a token or the baggage is full.
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        if key.is_empty() || !key.bytes().all(is_tchar) {
            return false;
        }
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            e.value = value.to_owned();
            return true;
        }
        if self.entries.len() >= BAGGAGE_MAX_MEMBERS {
            return false;
        }
        self.entries.push(BaggageEntry {
            key: key.to_owned(),
            value: value.to_owned(),
            properties: None,
        });
        true
    }

    /// [`insert`](Self::insert) with metadata properties (the raw text after
    /// the first `;`; empty for none).
    #[cfg(feature = "otel-api")]
    pub(crate) fn insert_with_properties(&mut self, key: &str, value: &str, properties: &str) {
        if self.insert(key, value)
            && let Some(e) = self.entries.iter_mut().find(|e| e.key == key)
        {
            e.properties = (!properties.is_empty()).then(|| properties.to_owned());
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    }

    /// The entries in order.
    pub fn entries(&self) -> &[BaggageEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `baggage` header value: values percent-encoded; entries that
    /// would push it past 8192 bytes are left out.
    pub fn to_header_value(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            let mut m = String::with_capacity(e.key.len() + e.value.len() + 1);
            m.push_str(&e.key);
            m.push('=');
            percent_encode_into(&e.value, &mut m);
            if let Some(p) = &e.properties {
                m.push(';');
                m.push_str(p);
            }
            if out.len() + m.len() + 1 > BAGGAGE_MAX_BYTES {
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&m);
        }
        out
    }
}

/// Which propagation formats are on (`OTEL_PROPAGATORS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Propagators {
    /// W3C Trace Context (`tracecontext`).
    pub trace_context: bool,
    /// W3C Baggage (`baggage`).
    pub baggage: bool,
}

impl Default for Propagators {
    /// `tracecontext,baggage`, the OpenTelemetry default.
    fn default() -> Self {
        Self {
            trace_context: true,
            baggage: true,
        }
    }
}

/// What extraction found: the remote parent (if a valid `traceparent` was
/// present) and the baggage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The remote parent; `None` restarts the trace.
    pub parent: Option<SpanContext>,
    /// The incoming baggage.
    pub baggage: Baggage,
}

impl Propagators {
    /// No propagation at all (`OTEL_PROPAGATORS=none`).
    pub const NONE: Self = Self {
        trace_context: false,
        baggage: false,
    };

    /// Extracts from HTTP headers.
    pub fn extract_headers(&self, headers: &http::HeaderMap) -> Extracted {
        // Most requests at a service's edge carry neither header: one pass
        // over the headers tells so, where each lookup by name hashes the
        // name and probes the map.
        if (self.trace_context || self.baggage)
            && !headers
                .keys()
                .any(|name| name == H_TRACEPARENT || name == H_BAGGAGE)
        {
            return Extracted {
                parent: None,
                baggage: Baggage::default(),
            };
        }
        Extracted {
            parent: if self.trace_context {
                extract(headers)
            } else {
                None
            },
            baggage: if self.baggage {
                Baggage::parse(headers.get_all(&H_BAGGAGE).iter().map(|v| v.as_bytes()))
            } else {
                Baggage::default()
            },
        }
    }

    /// Extracts from a carrier (a job payload, message metadata).
    pub fn extract_carrier(&self, carrier: &Carrier) -> Extracted {
        Extracted {
            parent: if self.trace_context {
                extract_carrier(carrier)
            } else {
                None
            },
            baggage: match carrier.get(header::BAGGAGE) {
                Some(v) if self.baggage => Baggage::parse([v.as_bytes()]),
                _ => Baggage::default(),
            },
        }
    }

    /// Writes the context (and non-empty baggage) into HTTP headers.
    pub fn inject_headers(
        &self,
        cx: &SpanContext,
        baggage: Option<&Baggage>,
        headers: &mut http::HeaderMap,
    ) {
        if self.trace_context {
            inject(cx, headers);
        }
        if self.baggage
            && let Some(b) = baggage.filter(|b| !b.is_empty())
            && let Ok(v) = http::HeaderValue::from_str(&b.to_header_value())
        {
            headers.insert(H_BAGGAGE, v);
        }
    }

    /// Writes the context (and non-empty baggage) into a carrier.
    pub fn inject_carrier(
        &self,
        cx: &SpanContext,
        baggage: Option<&Baggage>,
        carrier: &mut Carrier,
    ) {
        if self.trace_context {
            inject_carrier(cx, carrier);
        }
        if self.baggage
            && let Some(b) = baggage.filter(|b| !b.is_empty())
        {
            // Bounded by BAGGAGE_MAX_BYTES, within the carrier's value limit.
            let _ = carrier.insert(header::BAGGAGE, b.to_header_value());
        }
    }
}

fn context_from<'a>(tp: &[u8], states: impl IntoIterator<Item = &'a [u8]>) -> Option<SpanContext> {
    let (trace_id, span_id, trace_flags) = parse_traceparent(tp).ok()?;
    Some(SpanContext {
        trace_id,
        span_id,
        trace_flags,
        trace_state: TraceState::parse(states).unwrap_or_default(),
        is_remote: true,
    })
}

/// Extracts the W3C trace context from HTTP headers: `None` when
/// `traceparent` is absent, invalid or repeated (the trace restarts).
pub fn extract(headers: &http::HeaderMap) -> Option<SpanContext> {
    let mut tps = headers.get_all(&H_TRACEPARENT).iter();
    let tp = tps.next()?;
    if tps.next().is_some() {
        return None;
    }
    let states = headers.get_all(&H_TRACESTATE);
    context_from(tp.as_bytes(), states.iter().map(|v| v.as_bytes()))
}

/// Extracts the W3C trace context from a carrier.
pub fn extract_carrier(carrier: &Carrier) -> Option<SpanContext> {
    let tp = carrier.get(header::TRACEPARENT)?;
    let ts = carrier.get(header::TRACESTATE).map(str::as_bytes);
    context_from(tp.as_bytes(), ts)
}

/// Writes `traceparent` (and a non-empty `tracestate`) into HTTP headers,
/// replacing earlier values.
pub fn inject(cx: &SpanContext, headers: &mut http::HeaderMap) {
    let tp = cx.traceparent();
    if let Ok(v) = http::HeaderValue::from_bytes(tp.as_bytes()) {
        headers.insert(H_TRACEPARENT, v);
    }
    if cx.trace_state.is_empty() {
        headers.remove(&H_TRACESTATE);
    } else if let Ok(v) = http::HeaderValue::from_str(cx.trace_state.as_str()) {
        headers.insert(H_TRACESTATE, v);
    }
}

/// Writes `traceparent` (and a non-empty `tracestate`) into a carrier.
pub fn inject_carrier(cx: &SpanContext, carrier: &mut Carrier) {
    // Both values are far below the carrier's value limit; the only failure
    // is a full carrier, which the caller sees as a missing entry.
    let _ = carrier.insert(header::TRACEPARENT, cx.traceparent().as_str());
    if cx.trace_state.is_empty() {
        carrier.remove(header::TRACESTATE);
    } else {
        let _ = carrier.insert(header::TRACESTATE, cx.trace_state.as_str());
    }
}
