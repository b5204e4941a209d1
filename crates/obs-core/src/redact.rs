//! Redaction: keep credentials out of logs, spans, metrics and error reports.
//!
//! Two kinds of rules:
//!
//! - **By name.** A field, header or attribute whose name contains a sensitive
//!   word (`authorization`, `cookie`, `password`, `token`, `api_key`, …) is
//!   redacted whatever its value. Names are compared word by word, case- and
//!   separator-insensitively: `X-Api-Key`, `apiKey`, `API_KEY` and `apikey` all
//!   match `api_key`, and `db_password` matches `password`, while harmless
//!   look-alikes such as `tokens_used`, `author` or `secretary` do not.
//! - **By value.** Strings are scanned for credentials that stand out by their
//!   shape: `Bearer`/`Basic` credentials, JWTs, AWS access key ids, well-known
//!   vendor token prefixes (GitHub, GitLab, Slack, Stripe, OpenAI, Google),
//!   PEM private keys, passwords in URLs (`https://user:pw@host`),
//!   `password=…`-style pairs inside text, high-entropy base64-like tokens of
//!   24+ characters, and hex runs of 48+ characters.
//!
//! What is deliberately *not* redacted by value: 32-character hex (trace ids,
//! MD5s), 40-character hex (git commit ids), UUIDs, and hex digests written
//! with an algorithm prefix (`sha256:…`). They are everywhere in legitimate
//! telemetry and look exactly like some secrets; secrets of that shape are
//! caught by their field name or `key=value` context instead.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use crate::error::{Error, preview};
use crate::names::field::REDACTED;

/// Sensitive words of the default name rules (compared normalized: lowercase,
/// without `-`, `_`, `.` or spaces).
pub const DEFAULT_SENSITIVE_NAMES: &[&str] = &[
    "authorization",
    "cookie",
    "cookies",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "session",
    "credential",
    "credentials",
    "csrf",
    "xsrf",
    "jwt",
    "bearer",
    "signature",
    "connection_string",
    "dsn",
];

/// Words that may follow a sensitive word in a single lowercase name and keep
/// it sensitive (`sessionid`, `tokenvalue`), as opposed to `tokens`,
/// `tokenizer` or `secretary`.
const SUFFIXES: &[&str] = &[
    "id", "key", "token", "value", "str", "string", "hash", "data",
];

/// A set of redaction rules.
///
/// ```
/// use obs_core::redact::Redactor;
/// let mut r = Redactor::new();
/// r.add_name("ssn");
/// r.add_pattern(r"\b\d{3}-\d{2}-\d{4}\b")?;
/// assert!(r.is_sensitive_name("customer_ssn"));
/// assert_eq!(r.redact("ssn 123-45-6789 ok"), "ssn [REDACTED] ok");
/// assert_eq!(r.redact("Authorization: Bearer abc.def-ghi"), "Authorization: Bearer [REDACTED]");
/// # Ok::<(), obs_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Redactor {
    names: Vec<String>,
    patterns: Vec<regex_lite::Regex>,
    builtin_values: bool,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("names", &self.names)
            .field(
                "patterns",
                &self.patterns.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            )
            .field("builtin_values", &self.builtin_values)
            .finish()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

/// Two redactors are equal when they hold the same rules: the same name
/// words, the same patterns (compared by their source text) and the same
/// built-in switch.
impl PartialEq for Redactor {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
            && self.builtin_values == other.builtin_values
            && self.patterns.len() == other.patterns.len()
            && self
                .patterns
                .iter()
                .zip(&other.patterns)
                .all(|(a, b)| a.as_str() == b.as_str())
    }
}

/// The default rules, used by [`redact`] and [`is_sensitive_name`].
pub static DEFAULT: LazyLock<Redactor> = LazyLock::new(Redactor::new);

/// Redacts `value` with the default rules.
pub fn redact(value: &str) -> Cow<'_, str> {
    DEFAULT.redact(value)
}

/// Whether `name` is sensitive under the default rules.
pub fn is_sensitive_name(name: &str) -> bool {
    DEFAULT.is_sensitive_name(name)
}

fn normalize(word: &str) -> String {
    word.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

impl Redactor {
    /// The default rules: [`DEFAULT_SENSITIVE_NAMES`] and the built-in value
    /// patterns.
    pub fn new() -> Self {
        let mut r = Self::empty();
        for n in DEFAULT_SENSITIVE_NAMES {
            r.add_name(n);
        }
        r.builtin_values = true;
        r
    }

    /// No rules at all: nothing is redacted until rules are added.
    pub fn empty() -> Self {
        Self {
            names: Vec::new(),
            patterns: Vec::new(),
            builtin_values: false,
        }
    }

    /// Adds a sensitive word for name matching.
    pub fn add_name(&mut self, name: &str) -> &mut Self {
        let n = normalize(name);
        if !n.is_empty() && !self.names.contains(&n) {
            self.names.push(n);
        }
        self
    }

    /// Adds a value pattern (regular expression, `regex-lite` syntax); every
    /// match is replaced by `[REDACTED]`.
    pub fn add_pattern(&mut self, pattern: &str) -> Result<&mut Self, Error> {
        let re = regex_lite::Regex::new(pattern).map_err(|e| Error::RedactionPattern {
            pattern: preview(pattern.as_bytes()),
            reason: e.to_string(),
        })?;
        self.patterns.push(re);
        Ok(self)
    }

    /// Whether user patterns were added with [`add_pattern`](Self::add_pattern)
    /// (callers that mirror the built-in rules for a fast path need to know).
    pub fn has_user_patterns(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// Whether the built-in value patterns are on.
    pub fn has_builtin_value_patterns(&self) -> bool {
        self.builtin_values
    }

    /// Turns the built-in value patterns on or off (name rules and added
    /// patterns stay).
    pub fn builtin_value_patterns(&mut self, on: bool) -> &mut Self {
        self.builtin_values = on;
        self
    }

    /// Whether a field, header or attribute called `name` holds a secret.
    pub fn is_sensitive_name(&self, name: &str) -> bool {
        let mut words: [(usize, usize); 16] = [(0, 0); 16];
        let n = split_words(name, &mut words);
        let mut buf = [0u8; 96];
        // Every single word, and windows of two and three words joined.
        for width in 1..=3usize {
            for start in 0..n.saturating_sub(width - 1) {
                let mut len = 0;
                let mut fits = true;
                for &(a, b) in &words[start..start + width] {
                    let w = &name.as_bytes()[a..b];
                    if len + w.len() > buf.len() {
                        fits = false;
                        break;
                    }
                    for (i, c) in w.iter().enumerate() {
                        buf[len + i] = c.to_ascii_lowercase();
                    }
                    len += w.len();
                }
                if fits && self.matches_candidate(&buf[..len]) {
                    return true;
                }
            }
        }
        false
    }

    fn matches_candidate(&self, cand: &[u8]) -> bool {
        self.names.iter().any(|rule| {
            let r = rule.as_bytes();
            if cand == r || (cand.len() > r.len() && cand.ends_with(r)) {
                return true;
            }
            cand.starts_with(r) && SUFFIXES.iter().any(|s| &cand[r.len()..] == s.as_bytes())
        })
    }

    /// Redacts `value` if `name` is sensitive, else scans the value.
    pub fn redact_field<'a>(&self, name: &str, value: &'a str) -> Cow<'a, str> {
        if self.is_sensitive_name(name) {
            Cow::Borrowed(REDACTED)
        } else {
            self.redact(value)
        }
    }

    /// Whether [`redact`](Self::redact) could change `value`: `false` only
    /// when no rule can match it (no user pattern is set and the value fails
    /// the cheap [`may_hold_secret`] pre-check of the built-in rules). Callers
    /// that copy or escape values use it to skip work on the common case.
    #[inline]
    pub fn may_change(&self, value: &[u8]) -> bool {
        !self.patterns.is_empty() || (self.builtin_values && may_hold_secret(value))
    }

    /// [`may_change`](Self::may_change), and whether `value` holds a byte
    /// a JSON string must escape, in one pass over its bytes: a JSON writer
    /// that redacts asks both of every string value.
    ///
    /// ```
    /// let r = obs_core::Redactor::new();
    /// let s = r.scan_value(b"/orders/{id}");
    /// assert!(!s.may_change && !s.needs_json_escape);
    /// let s = r.scan_value(b"say \"token=abc123\"");
    /// assert!(s.may_change && s.needs_json_escape);
    /// ```
    #[inline]
    pub fn scan_value(&self, value: &[u8]) -> ValueScan {
        let class = byte_classes(value);
        let needs_json_escape = class & JSON_ESCAPE != 0;
        let may_change = !self.patterns.is_empty()
            || (self.builtin_values && may_hold_secret_given(value, class));
        ValueScan {
            may_change,
            needs_json_escape,
        }
    }

    /// Replaces every credential found in `value` by `[REDACTED]`. Borrows
    /// (no allocation) when nothing is found.
    #[inline]
    pub fn redact<'a>(&self, value: &'a str) -> Cow<'a, str> {
        if !self.may_change(value.as_bytes()) {
            return Cow::Borrowed(value);
        }
        self.redact_slow(value)
    }

    #[inline(never)]
    fn redact_slow<'a>(&self, value: &'a str) -> Cow<'a, str> {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        if self.builtin_values {
            self.scan(value, &mut ranges, ENTROPY_MIN_LEN);
        }
        for re in &self.patterns {
            for m in re.find_iter(value) {
                if m.start() < m.end() {
                    ranges.push((m.start(), m.end()));
                }
            }
        }
        if ranges.is_empty() {
            return Cow::Borrowed(value);
        }
        ranges.sort_unstable();
        let mut out = String::with_capacity(value.len());
        let mut pos = 0;
        for (a, b) in ranges {
            let a = a.max(pos);
            if b <= a {
                continue;
            }
            out.push_str(&value[pos..a]);
            out.push_str(REDACTED);
            pos = b;
        }
        out.push_str(&value[pos..]);
        Cow::Owned(out)
    }

    /// The built-in value scanner: pushes byte ranges to replace. All ranges
    /// start and end on ASCII bytes, so slicing the `str` at them is safe.
    fn scan(&self, s: &str, out: &mut Vec<(usize, usize)>, entropy_min: usize) {
        let b = s.as_bytes();
        scan_pem(s, out);
        scan_url_userinfo(b, out);
        let mut i = 0;
        let mut prev_scheme: Option<usize> = None; // end of a preceding `Bearer`/`Basic` word
        while i < b.len() {
            if !is_tok(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && is_tok(b[i]) {
                i += 1;
            }
            let tok = &b[start..i];
            // Base64 padding belongs to the token.
            let mut end = i;
            while end < b.len() && b[end] == b'=' && (end + 1 == b.len() || !is_tok(b[end + 1])) {
                end += 1;
            }

            if let Some(scheme_end) = prev_scheme.take() {
                // A credential, not prose: `Basic arithmetic` stays readable.
                let opaque = tok.len() >= 20 || tok.iter().any(|c| !c.is_ascii_lowercase());
                if tok.len() >= 6 && opaque && b[scheme_end..start].iter().all(|&c| c == b' ') {
                    out.push((start, end));
                    i = end;
                    continue;
                }
            }
            if tok.eq_ignore_ascii_case(b"bearer") || tok.eq_ignore_ascii_case(b"basic") {
                prev_scheme = Some(i);
                continue;
            }
            if let Some(v) = sensitive_pair_value(self, b, start, i) {
                out.push(v);
                i = v.1.max(i);
                continue;
            }
            let whole = looks_secret(tok, b, start, entropy_min);
            // A path or a user agent: the secret is one segment of it
            // (`/reset/<jwt>`, `/keys/AKIA…`, `app/1.0/ghp_…`). Segments are
            // redacted alone only when the rest reads as a path; a random
            // token that merely contains `/` (base64) goes whole, so no
            // fragment of it survives.
            if tok.len() >= 20 && tok.contains(&b'/') {
                let before = out.len();
                let rest_plain = scan_segments(tok, b, start, entropy_min, out);
                if out.len() > before && (!whole || rest_plain) {
                    i = end.max(i);
                    continue;
                }
                out.truncate(before);
            }
            if whole {
                out.push((start, end));
            }
            i = end.max(i);
        }
    }
}

/// Bytes that make up a token: base64/base64url, JWT dots, `~`.
#[inline]
fn is_tok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'_' | b'.' | b'-' | b'~')
}

/// `key=value`, `key: value`, `"key":"value"` with a sensitive key: returns
/// the value's range.
fn sensitive_pair_value(
    r: &Redactor,
    b: &[u8],
    start: usize,
    end: usize,
) -> Option<(usize, usize)> {
    let mut j = end;
    let quoted_key = j < b.len() && (b[j] == b'"' || b[j] == b'\'');
    if quoted_key {
        j += 1;
    }
    while j < b.len() && b[j] == b' ' {
        j += 1;
    }
    // `("password", "hunter2")`: a quoted key and a quoted value side by side,
    // as `Debug` prints tuples and pairs.
    let tuple = quoted_key
        && j < b.len()
        && b[j] == b','
        && b[j + 1..]
            .iter()
            .find(|&&c| c != b' ')
            .is_some_and(|&c| c == b'"' || c == b'\'');
    if j >= b.len() || !(b[j] == b'=' || b[j] == b':' || tuple) {
        return None;
    }
    // `::` is a path separator, not a pair.
    if b[j] == b':' && b.get(j + 1) == Some(&b':') {
        return None;
    }
    let key = std::str::from_utf8(&b[start..end]).ok()?;
    if !r.is_sensitive_name(key) {
        return None;
    }
    let sep = j;
    j += 1;
    while j < b.len() && b[j] == b' ' {
        j += 1;
    }
    let quote = match b.get(j) {
        Some(&q @ (b'"' | b'\'')) => {
            j += 1;
            Some(q)
        }
        _ => None,
    };
    // Keep a `Bearer `/`Basic ` scheme word visible: `Authorization: Bearer x` reads better.
    for scheme in [&b"bearer "[..], b"basic "] {
        if b.len() >= j + scheme.len() && b[j..j + scheme.len()].eq_ignore_ascii_case(scheme) {
            j += scheme.len();
            break;
        }
    }
    let vstart = j;
    let header_style = b[sep] == b':';
    while j < b.len() {
        let c = b[j];
        let stop = match quote {
            Some(q) => c == q,
            // `Cookie: a=1; b=2` — a header-style value runs to the end of the line.
            None if header_style => matches!(c, b'\r' | b'\n' | b',' | b'"' | b'}'),
            None => {
                c.is_ascii_whitespace()
                    || matches!(c, b'&' | b';' | b',' | b'"' | b'\'' | b'}' | b')')
            }
        };
        if stop {
            break;
        }
        j += 1;
    }
    if j > vstart { Some((vstart, j)) } else { None }
}

/// Random-looking tokens shorter than this are not redacted by shape alone
/// (identifiers and ids are that short; keys and tokens are longer).
const ENTROPY_MIN_LEN: usize = 24;

/// The same bound for incoming correlation ids: upstream systems send
/// KSUIDs (27 characters) and nanoids (21) that look random but are ids.
const ID_ENTROPY_MIN_LEN: usize = 32;

/// Checks each `/`-separated segment of a token on its own; returns whether
/// every segment it kept reads as a plain path segment (see [`plain_segment`]).
fn scan_segments(
    tok: &[u8],
    all: &[u8],
    start: usize,
    entropy_min: usize,
    out: &mut Vec<(usize, usize)>,
) -> bool {
    let mut seg_start = start;
    let mut rest_plain = true;
    for seg in tok.split(|&c| c == b'/') {
        if looks_secret(seg, all, seg_start, entropy_min) {
            out.push((seg_start, seg_start + seg.len()));
        } else {
            rest_plain &= plain_segment(seg);
        }
        seg_start += seg.len() + 1;
    }
    rest_plain
}

/// A segment a path is made of (`orders`, `12345`, `v1`, `Users`,
/// `items.json`), as opposed to a fragment of random text, which mixes
/// upper case, lower case and digits.
fn plain_segment(seg: &[u8]) -> bool {
    let up = seg.iter().any(u8::is_ascii_uppercase);
    let lo = seg.iter().any(u8::is_ascii_lowercase);
    let dg = seg.iter().any(u8::is_ascii_digit);
    !(up && lo && dg)
}

/// Whether an incoming correlation or request id has the shape of a
/// credential: a JWT, a vendor token or cloud key, a password in a URL or a
/// `key=value` pair with a sensitive key, or a long random string (32 bytes
/// or more of mixed-case letters and digits). Such an id is rejected like an
/// invalid one, so it is never echoed or logged.
pub(crate) fn id_looks_secret(id: &[u8]) -> bool {
    // The shape callers nearly always send first: it settles the question
    // in one pass, where the pre-check scans a UUID's 36 bytes twice.
    if is_uuid_or_hex(id) || !may_hold_secret(id) {
        return false;
    }
    let Ok(s) = std::str::from_utf8(id) else {
        return false;
    };
    let mut ranges = Vec::new();
    DEFAULT.scan(s, &mut ranges, ID_ENTROPY_MIN_LEN);
    !ranges.is_empty()
}

/// UUIDs (any version, either case) and hex strings up to 40 characters:
/// the ids nearly every caller sends, ruled out without a scan.
fn is_uuid_or_hex(b: &[u8]) -> bool {
    // Without a branch per byte: the dashes at their four places, then
    // each group of hex digits folded.
    fn all_hex(b: &[u8]) -> bool {
        b.iter().fold(true, |ok, c| ok & c.is_ascii_hexdigit())
    }
    if b.len() == 36 {
        return (b[8] == b'-') & (b[13] == b'-') & (b[18] == b'-') & (b[23] == b'-')
            && all_hex(&b[..8])
            && all_hex(&b[9..13])
            && all_hex(&b[14..18])
            && all_hex(&b[19..23])
            && all_hex(&b[24..]);
    }
    b.len() <= 40 && all_hex(b)
}

/// Whether one token looks like a credential by shape alone.
fn looks_secret(tok: &[u8], all: &[u8], start: usize, entropy_min: usize) -> bool {
    let len = tok.len();
    if len < 20 {
        return false;
    }
    // JWT: three base64url parts, header starting with `{"` (eyJ).
    if tok.starts_with(b"eyJ") {
        let dots = tok.iter().filter(|&&c| c == b'.').count();
        if dots == 2 {
            let mut parts = tok.split(|&c| c == b'.');
            if parts.next().is_some_and(|p| p.len() >= 10)
                && parts.next().is_some_and(|p| !p.is_empty())
            {
                return true;
            }
        }
    }
    // AWS access key ids.
    if len == 20 {
        const AWS: &[&[u8]] = &[
            b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA", b"ANPA", b"ANVA", b"AIPA", b"ABIA",
            b"ACCA",
        ];
        if AWS.iter().any(|p| tok.starts_with(p))
            && tok[4..]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return true;
        }
    }
    // Vendor prefixes.
    const PREFIXES: &[(&[u8], usize)] = &[
        (b"ghp_", 30),
        (b"gho_", 30),
        (b"ghu_", 30),
        (b"ghs_", 30),
        (b"ghr_", 30),
        (b"github_pat_", 30),
        (b"glpat-", 20),
        (b"xoxb-", 20),
        (b"xoxp-", 20),
        (b"xoxa-", 20),
        (b"xoxr-", 20),
        (b"xoxs-", 20),
        (b"sk_live_", 16),
        (b"sk_test_", 16),
        (b"rk_live_", 16),
        (b"whsec_", 16),
        (b"sk-", 20),
        (b"AIza", 35),
        (b"npm_", 30),
        (b"pypi-", 30),
    ];
    if PREFIXES
        .iter()
        .any(|(p, min)| tok.starts_with(p) && len - p.len() >= *min)
    {
        return true;
    }
    // Long random hex, unless it is a digest written with its algorithm
    // (`aaaa…` or `0000…` padding is not random).
    if len >= 48 && tok.iter().all(u8::is_ascii_hexdigit) && distinct_bytes(tok) >= 8 {
        let before = &all[..start];
        let digest = [
            &b"sha1:"[..],
            b"sha256:",
            b"sha384:",
            b"sha512:",
            b"md5:",
            b"sha256=",
            b"digest ",
        ]
        .iter()
        .any(|p| {
            before.len() >= p.len() && before[before.len() - p.len()..].eq_ignore_ascii_case(p)
        });
        return !digest;
    }
    // High entropy: mixed classes switching often (random base64), not a
    // path (few slashes) nor an identifier (few class switches).
    if len >= entropy_min {
        let (mut up, mut lo, mut dg, mut slashes, mut dots, mut switches) =
            (false, false, false, 0, 0, 0);
        let mut prev = 0u8;
        for &c in tok {
            let class = if c.is_ascii_uppercase() {
                up = true;
                1
            } else if c.is_ascii_lowercase() {
                lo = true;
                2
            } else if c.is_ascii_digit() {
                dg = true;
                3
            } else {
                if c == b'/' {
                    slashes += 1;
                }
                if c == b'.' {
                    dots += 1;
                }
                4
            };
            if prev != 0 && class != prev {
                switches += 1;
            }
            prev = class;
        }
        return up && lo && dg && slashes * 12 <= len && dots <= 1 && switches * 3 >= len;
    }
    false
}

/// A conservative pre-check for the built-in value rules: `false` only when
/// none of them can match. They all need a `key=value` / `key: value`
/// separator, a quote (`("key", "value")`, `('key', 'value')`), a URL's `@`, a PEM `-----` line,
/// a `Bearer` or `Basic` scheme word, or a run of at least 20 token bytes. A property test checks it
/// against the scanner itself.
#[inline(always)]
pub fn may_hold_secret(b: &[u8]) -> bool {
    // Without a separator every built-in rule needs at least 12 bytes
    // (`basic` + space + a 6-byte credential; PEM headers and tokens are
    // longer): short values need one scalar pass, inlined.
    if b.len() < 12 {
        return byte_classes(b) & SEP != 0;
    }
    may_hold_secret_long(b)
}

#[inline(never)]
fn may_hold_secret_long(b: &[u8]) -> bool {
    long_value_may_hold_secret(b, byte_classes(b))
}

/// The union of the [`CLASS`] bits of `b`'s bytes: one branch-free pass.
#[inline(always)]
fn byte_classes(b: &[u8]) -> u8 {
    let mut class = 0u8;
    for &c in b {
        class |= CLASS[c as usize];
    }
    class
}

/// [`may_hold_secret`], given `b`'s [`byte_classes`].
#[inline]
fn may_hold_secret_given(b: &[u8], class: u8) -> bool {
    if b.len() < 12 {
        class & SEP != 0
    } else {
        long_value_may_hold_secret(b, class)
    }
}

/// The rest of the pre-check for a value of 12 bytes or more, given the
/// union of its bytes' [`CLASS`] bits: any separator byte means "scan";
/// without a `-` (a PEM line) or a `b` (a `Bearer` / `Basic` word) only a
/// run of 20 token bytes is left to look for, which a shorter value cannot
/// hold (most route templates, paths and names end here).
#[inline]
fn long_value_may_hold_secret(b: &[u8], class: u8) -> bool {
    if class & SEP != 0 {
        return true;
    }
    if class & (DASH | LETTER_B) == 0 && b.len() < 20 {
        return false;
    }
    token_run_or_scheme(b)
}

/// A run of 20 token bytes, five dashes in a row, or a `Bearer` / `Basic`
/// word.
#[inline(never)]
fn token_run_or_scheme(b: &[u8]) -> bool {
    let mut run = 0usize;
    let mut dashes = 0usize;
    for (i, &c) in b.iter().enumerate() {
        if c == b'-' {
            dashes += 1;
            if dashes >= 5 {
                return true;
            }
        } else {
            dashes = 0;
        }
        if is_tok(c) {
            run += 1;
            if run >= 20 {
                return true;
            }
        } else {
            if (run == 5 || run == 6) && is_scheme(&b[i - run..i]) {
                return true;
            }
            run = 0;
        }
    }
    (run == 5 || run == 6) && is_scheme(&b[b.len() - run..])
}

/// What one pass over a value found, for a writer that both redacts and
/// writes it as a JSON string: [`Redactor::scan_value`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueScan {
    /// Whether [`Redactor::redact`] may change the value (the answer of
    /// [`Redactor::may_change`]).
    pub may_change: bool,
    /// Whether the value holds a byte a JSON string must escape: a control
    /// byte, `"` or `\`.
    pub needs_json_escape: bool,
}

const SEP: u8 = 1;
const DASH: u8 = 2;
const LETTER_B: u8 = 4;
/// Not a pre-check bit: a byte JSON escapes (see [`ValueScan`]).
const JSON_ESCAPE: u8 = 8;

/// Per byte: [`SEP`] for the separators, [`DASH`] for `-`, [`LETTER_B`]
/// for `b` and `B`, [`JSON_ESCAPE`] for the bytes JSON escapes.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = JSON_ESCAPE;
        i += 1;
    }
    t[b'\\' as usize] = JSON_ESCAPE;
    t[b'"' as usize] = SEP | JSON_ESCAPE;
    t[b'\'' as usize] = SEP;
    t[b'=' as usize] = SEP;
    t[b':' as usize] = SEP;
    t[b'@' as usize] = SEP;
    t[b'-' as usize] = DASH;
    t[b'b' as usize] = LETTER_B;
    t[b'B' as usize] = LETTER_B;
    t
};

#[inline]
fn is_scheme(tok: &[u8]) -> bool {
    tok.eq_ignore_ascii_case(b"bearer") || tok.eq_ignore_ascii_case(b"basic")
}

/// How many different bytes `tok` holds.
fn distinct_bytes(tok: &[u8]) -> u32 {
    let mut seen = [0u64; 4];
    for &c in tok {
        seen[(c >> 6) as usize] |= 1 << (c & 63);
    }
    seen.iter().map(|w| w.count_ones()).sum()
}

/// `scheme://user:password@host` → the password's range.
fn scan_url_userinfo(b: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut from = 0;
    while let Some(p) = find(&b[from..], b"://") {
        let auth_start = from + p + 3;
        let mut j = auth_start;
        let mut colon = None;
        while j < b.len()
            && !matches!(b[j], b'/' | b'@' | b'?' | b'#')
            && !b[j].is_ascii_whitespace()
        {
            if b[j] == b':' && colon.is_none() {
                colon = Some(j);
            }
            j += 1;
        }
        if let Some(c) = colon
            && j < b.len()
            && b[j] == b'@'
            && j > c + 1
        {
            out.push((c + 1, j));
        }
        from = auth_start;
    }
}

/// PEM private key blocks, header to footer (or to the end of the text).
fn scan_pem(s: &str, out: &mut Vec<(usize, usize)>) {
    // Nearly every value has no PEM block: rule it out with one byte scan
    // before building a substring searcher.
    if find(s.as_bytes(), b"-----").is_none() {
        return;
    }
    let mut from = 0;
    while let Some(p) = s[from..].find("-----BEGIN ") {
        let start = from + p;
        let Some(hdr_end) = s[start + 11..].find("-----").map(|e| start + 11 + e + 5) else {
            return;
        };
        if !s[start..hdr_end].contains("PRIVATE KEY") {
            from = hdr_end;
            continue;
        }
        let end = match s[hdr_end..].find("-----END ") {
            Some(e) => {
                let f = hdr_end + e + 9;
                s[f..].find("-----").map(|x| f + x + 5).unwrap_or(s.len())
            }
            None => s.len(),
        };
        out.push((start, end));
        from = end;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits a name into words at separators and lowercase→uppercase steps;
/// returns how many of `out` were filled.
fn split_words(name: &str, out: &mut [(usize, usize); 16]) -> usize {
    let b = name.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < b.len() && n < out.len() {
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        i += 1;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            // camelCase: a capital after a lowercase letter starts a new word.
            if b[i].is_ascii_uppercase() && b[i - 1].is_ascii_lowercase() {
                break;
            }
            i += 1;
        }
        out[n] = (start, i);
        n += 1;
    }
    n
}

/// A value that must never be printed: `Debug` and `Display` show
/// `[REDACTED]`. Use it for config fields, tokens and passwords so that a
/// stray `?config` in a log line does not leak them.
///
/// ```
/// use obs_core::Secret;
/// let token = Secret::new("hunter2".to_string());
/// assert_eq!(format!("{token} {token:?}"), "[REDACTED] [REDACTED]");
/// assert_eq!(token.expose(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub const fn new(v: T) -> Self {
        Self(v)
    }

    /// The secret itself; name every use so that it stands out in review.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(v: T) -> Self {
        Self(v)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(feature = "serde")]
impl<T> serde::Serialize for Secret<T> {
    /// Serializes as `"[REDACTED]"`: a secret never leaves through serde either.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

#[cfg(feature = "serde")]
impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for n in [
            "authorization",
            "Authorization",
            "proxy-authorization",
            "cookie",
            "Set-Cookie",
            "password",
            "db_password",
            "PASSWORD",
            "passwd",
            "secret",
            "client_secret",
            "token",
            "access_token",
            "refreshToken",
            "authToken",
            "x-auth-token",
            "api_key",
            "apiKey",
            "X-Api-Key",
            "APIKEY",
            "xapikey",
            "access_key",
            "awsAccessKey",
            "private_key",
            "privateKey",
            "session",
            "session_id",
            "sessionid",
            "SESSION_TOKEN",
            "aws_secret_access_key",
            "x-csrf-token",
            "jwt",
            "credentials",
            "database_dsn",
            "connectionString",
            "password_confirmation",
            "webhook.signature",
        ] {
            assert!(is_sensitive_name(n), "{n} should be sensitive");
        }
        for n in [
            "author",
            "tokens_used",
            "prompt_tokens",
            "tokenizer",
            "secretary",
            "user_id",
            "method",
            "path",
            "status",
            "keyboard",
            "monkey",
            "passage",
            "sessions_count_total",
            "http.request.method",
            "trace_id",
            "message",
            "",
        ] {
            assert!(!is_sensitive_name(n), "{n} should not be sensitive");
        }
    }

    #[test]
    fn field_redaction() {
        assert_eq!(DEFAULT.redact_field("password", "hunter2"), "[REDACTED]");
        assert_eq!(DEFAULT.redact_field("user", "alice"), "alice");
        assert!(matches!(
            DEFAULT.redact_field("user", "alice"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn user_rules() {
        let mut r = Redactor::empty();
        assert_eq!(r.redact("Bearer abcdefghijkl"), "Bearer abcdefghijkl");
        r.add_name("card-number");
        assert!(r.is_sensitive_name("cardNumber"));
        assert!(r.add_pattern("(unclosed").is_err());
        r.add_pattern(r"\d{4}-\d{4}-\d{4}-\d{4}").unwrap();
        assert_eq!(r.redact("card 4111-1111-1111-1111."), "card [REDACTED].");
    }

    #[test]
    fn overlapping_ranges_merge() {
        let mut r = Redactor::new();
        r.add_pattern("hunter2").unwrap();
        assert_eq!(r.redact("password=hunter2 ok"), "password=[REDACTED] ok");
    }

    #[test]
    fn shortcut_cases() {
        for s in [
            "served item",
            "GET",
            "ann",
            "",
            "a b c",
            "tokens used 12",
            "/hello/{name}",
            "GET /hello/{name}",
            "/users/{id}/orders",
        ] {
            assert!(!may_hold_secret(s.as_bytes()), "{s}");
        }
        for s in [
            "Bearer abcdefgh",
            "('pw', 'x')",
            "('password', 'hunter2')",
            "auth BEARER abcdefgh",
            "basic dXNlcjpw",
            "xx-----BEGIN",
            "/a/abcdefghijklmnopqrst",
            "basic dXNlcjpwYXNz",
            "password=hunter2",
            "k: v",
            "https://u:p@host",
            "-----BEGIN PRIVATE KEY-----",
            "AKIAIOSFODNN7EXAMPLE",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
            "/reset/eyJhbGciOiJIUzI1NiJ9",
        ] {
            assert!(may_hold_secret(s.as_bytes()), "{s}");
        }
    }

    /// A pair printed with single quotes is found by the scanner, so the
    /// pre-check must let it through (it used to skip it: no `=`, `:`,
    /// `@` or `"`).
    #[test]
    fn single_quoted_pairs_are_redacted() {
        for s in ["('password', 'hunter2')", "('token','hunter2')"] {
            let out = DEFAULT.redact(s);
            assert!(!out.contains("hunter2"), "{s} -> {out}");
        }
    }

    #[test]
    fn secret_shaped_ids() {
        for id in [
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abc123def456ghi789",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "xoxb-1234567890-1234567890123-AbCdEfGh",
            "password=hunter2",
            "https://user:pw@host",
            "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRkdI",
            "req/ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        ] {
            assert!(
                id_looks_secret(id.as_bytes()),
                "{id} should be secret-shaped"
            );
        }
        for id in [
            "req-42",
            "550e8400-e29b-41d4-a716-446655440000",
            "550E8400-E29B-41D4-A716-446655440000",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "0ujtsYcgvSTl8PAuAdqWYSMnLOv",
            "V1StGXR8_Z5jdHi6B-myT",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "checkout.orders/2024-01-01/batch-7",
            "3f786850e387550fdab836ed7e6dc881de23001b",
        ] {
            assert!(!id_looks_secret(id.as_bytes()), "{id} should pass");
        }
    }

    proptest::proptest! {
        /// The folded shape check answers as a byte-by-byte one, on UUID-
        /// and hex-like strings with any byte changed.
        #[test]
        fn uuid_or_hex_answers_as_a_byte_walk_does(
            base in proptest::prop_oneof![
                "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
                "[0-9a-fA-F]{0,44}",
            ],
            flip in proptest::option::of((0usize..44, proptest::num::u8::ANY)),
        ) {
            let mut b = base.into_bytes();
            if let Some((i, byte)) = flip && i < b.len() {
                b[i] = byte;
            }
            let walk = if b.len() == 36 {
                b.iter().enumerate().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => *c == b'-',
                    _ => c.is_ascii_hexdigit(),
                })
            } else {
                b.len() <= 40 && b.iter().all(u8::is_ascii_hexdigit)
            };
            proptest::prop_assert_eq!(is_uuid_or_hex(&b), walk);
        }
    }

    #[test]
    fn secret_hides() {
        let s = Secret::new(42);
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(*s.expose(), 42);
    }
}
