//! Correlation ids: validated, cheap to clone, fast to generate.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{CorrelationIdError, Error};
use crate::id::encode_hex;

/// Bytes allowed in a correlation id: ASCII letters, digits and `._~:/+=@-`.
///
/// The set is chosen so that an id can travel unquoted through HTTP headers,
/// JSON, logfmt, Prometheus labels and URLs without escaping and can never
/// split a header (CR, LF), a list (`,` `;`), a quoted string (`"` `\`) or
/// markup (`<` `>`).
const fn safe_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'.' | b'_' | b'~' | b':' | b'/' | b'+' | b'=' | b'@' | b'-'
            );
        b += 1;
    }
    t
}
static SAFE: [bool; 256] = safe_table();

/// Longest string kept inline; uuids (36) and 128-bit hex (32) fit.
const INLINE: usize = 40;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Shared(Arc<str>),
}

/// A correlation (request) id: 1 to [`MAX_LEN`](Self::MAX_LEN) bytes from the
/// safe set `[A-Za-z0-9._~:/+=@-]`, and not shaped like a credential (a JWT,
/// a vendor token or cloud key, a password in a URL or a `key=value` pair, a
/// random string of 32 bytes or more): such a value is rejected with
/// [`CorrelationIdError::SecretShaped`](crate::error::CorrelationIdError::SecretShaped).
///
/// Ids up to 40 bytes (every id obs generates) are stored inline, so creating
/// and cloning one never allocates; longer accepted ids share one allocation.
///
/// ```
/// use obs_core::{CorrelationId, IdFormat};
/// let id = CorrelationId::parse("req-42")?;
/// assert_eq!(id.as_str(), "req-42");
/// assert!(CorrelationId::parse("bad\r\nSet-Cookie: x").is_err());
/// let fresh = CorrelationId::generate(IdFormat::UuidV4);
/// assert_eq!(fresh.as_str().len(), 36);
/// # Ok::<(), obs_core::Error>(())
/// ```
#[derive(Clone)]
pub struct CorrelationId(Repr);

/// How new correlation ids are formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum IdFormat {
    /// A random UUID version 4, hyphenated lowercase (36 characters).
    #[default]
    UuidV4,
    /// A time-ordered UUID version 7, hyphenated lowercase (36 characters):
    /// sorts by creation time, which helps databases that index the id.
    UuidV7,
    /// 128 random bits as 32 lowercase hex characters, the same shape as a
    /// W3C trace id.
    Hex128,
}

impl FromStr for IdFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "uuid" | "uuid4" | "uuidv4" | "uuid-v4" => Ok(IdFormat::UuidV4),
            "uuid7" | "uuidv7" | "uuid-v7" => Ok(IdFormat::UuidV7),
            "hex" | "hex128" => Ok(IdFormat::Hex128),
            _ => Err(Error::Env {
                var: "id format".into(),
                reason: format!(
                    "{} is not one of uuidv4, uuidv7, hex128",
                    crate::error::preview(s.as_bytes())
                ),
            }),
        }
    }
}

impl CorrelationId {
    /// Longest accepted id, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates `s` and wraps it. The error never contains the value itself.
    pub fn parse(s: &str) -> Result<Self, Error> {
        Self::parse_bytes(s.as_bytes())
    }

    /// Validates raw bytes (for example an HTTP header value) and wraps them.
    pub fn parse_bytes(b: &[u8]) -> Result<Self, Error> {
        validate(b).map_err(Error::CorrelationId)?;
        Ok(Self::from_validated(b))
    }

    /// Whether `b` would be accepted by [`parse_bytes`](Self::parse_bytes).
    #[inline]
    pub fn is_valid(b: &[u8]) -> bool {
        validate(b).is_ok()
    }

    fn from_validated(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            Self(Repr::Inline {
                len: b.len() as u8,
                buf,
            })
        } else {
            // Validated as ASCII above.
            Self(Repr::Shared(Arc::from(String::from_utf8_lossy(b).as_ref())))
        }
    }

    /// Generates a new id in `format` from the per-thread random generator.
    pub fn generate(format: IdFormat) -> Self {
        let mut buf = [0u8; INLINE];
        let len = match format {
            IdFormat::UuidV4 => {
                let u = uuid::Builder::from_random_bytes(crate::rng::next_u128().to_ne_bytes())
                    .into_uuid();
                u.hyphenated().encode_lower(&mut buf).len()
            }
            IdFormat::UuidV7 => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let mut rand = [0u8; 10];
                crate::rng::fill(&mut rand);
                let u = uuid::Builder::from_unix_timestamp_millis(now, &rand).into_uuid();
                u.hyphenated().encode_lower(&mut buf).len()
            }
            IdFormat::Hex128 => {
                let v = crate::rng::next_u128().to_be_bytes();
                encode_hex(&v, &mut buf[..32]);
                32
            }
        };
        Self(Repr::Inline {
            len: len as u8,
            buf,
        })
    }

    /// A new random UUID v4 id; shorthand for `generate(IdFormat::UuidV4)`.
    pub fn new_v4() -> Self {
        Self::generate(IdFormat::UuidV4)
    }

    /// Builds a correlation id from a trace id (32 lowercase hex characters),
    /// for services that use the trace id as the request id.
    pub fn from_trace_id(id: crate::TraceId) -> Self {
        let mut buf = [0u8; INLINE];
        buf[..32].copy_from_slice(id.to_hex().as_bytes());
        Self(Repr::Inline { len: 32, buf })
    }

    /// The id as a string slice.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, buf } => {
                // Only validated ASCII is stored inline; the fallback keeps this panic-free.
                std::str::from_utf8(&buf[..*len as usize]).unwrap_or_default()
            }
            Repr::Shared(s) => s,
        }
    }

    /// The id's bytes: the same as `as_str().as_bytes()`, without the
    /// UTF-8 check `as_str` makes of an inline id (writers that copy bytes
    /// use this).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..*len as usize],
            Repr::Shared(s) => s.as_bytes(),
        }
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => *len as usize,
            Repr::Shared(s) => s.len(),
        }
    }

    /// Always false: an empty id is never valid. Present for API symmetry.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[inline]
fn validate(b: &[u8]) -> Result<(), CorrelationIdError> {
    if b.is_empty() {
        return Err(CorrelationIdError::Empty);
    }
    if b.len() > CorrelationId::MAX_LEN {
        return Err(CorrelationIdError::TooLong { len: b.len() });
    }
    if let Some(position) = b.iter().position(|&c| !SAFE[c as usize]) {
        return Err(CorrelationIdError::ForbiddenByte {
            position,
            byte: b[position],
        });
    }
    if crate::redact::id_looks_secret(b) {
        return Err(CorrelationIdError::SecretShaped);
    }
    Ok(())
}

impl PartialEq for CorrelationId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for CorrelationId {}

impl std::hash::Hash for CorrelationId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialOrd for CorrelationId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for CorrelationId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl AsRef<str> for CorrelationId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CorrelationId({:?})", self.as_str())
    }
}

impl FromStr for CorrelationId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for CorrelationId {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for CorrelationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for CorrelationId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = CorrelationId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a correlation id of 1..=128 bytes from [A-Za-z0-9._~:/+=@-]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CorrelationId, E> {
                CorrelationId::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_formats() {
        let v4 = CorrelationId::generate(IdFormat::UuidV4);
        let u = uuid::Uuid::parse_str(v4.as_str()).unwrap();
        assert_eq!(u.get_version_num(), 4);
        let v7 = CorrelationId::generate(IdFormat::UuidV7);
        let u = uuid::Uuid::parse_str(v7.as_str()).unwrap();
        assert_eq!(u.get_version_num(), 7);
        let hex = CorrelationId::generate(IdFormat::Hex128);
        assert_eq!(hex.len(), 32);
        assert!(
            hex.as_bytes()
                .iter()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn v7_sorts_by_time() {
        let a = CorrelationId::generate(IdFormat::UuidV7);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = CorrelationId::generate(IdFormat::UuidV7);
        assert!(a < b);
    }

    #[test]
    fn accepts_boundaries() {
        let max = "a".repeat(128);
        assert_eq!(CorrelationId::parse(&max).unwrap().as_str(), max);
        // Longer than the inline buffer: stored shared. A clone outlives
        // its original, and ids compare by text whatever their storage.
        let long = "x".repeat(64);
        let id = CorrelationId::parse(&long).unwrap();
        let copy = id.clone();
        drop(id);
        assert_eq!(copy.as_str(), long);
        assert_eq!(copy, CorrelationId::parse(&long).unwrap());
        assert_ne!(copy, CorrelationId::parse(&"x".repeat(INLINE)).unwrap());
        assert_ne!(copy, CorrelationId::parse(&"x".repeat(63)).unwrap());
        assert_eq!(CorrelationId::parse("a").unwrap().len(), 1);
    }

    #[test]
    fn rejects_with_typed_reason() {
        use CorrelationIdError::*;
        let cases: &[(&[u8], CorrelationIdError)] = &[
            (b"", Empty),
            (&[b'a'; 129], TooLong { len: 129 }),
            (
                b"abc def",
                ForbiddenByte {
                    position: 3,
                    byte: b' ',
                },
            ),
            (
                b"id\r\nX-Evil: 1",
                ForbiddenByte {
                    position: 2,
                    byte: b'\r',
                },
            ),
            (
                "caf\u{e9}".as_bytes(),
                ForbiddenByte {
                    position: 3,
                    byte: 0xc3,
                },
            ),
            (
                b"a\"b",
                ForbiddenByte {
                    position: 1,
                    byte: b'"',
                },
            ),
            (
                b"a,b",
                ForbiddenByte {
                    position: 1,
                    byte: b',',
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                CorrelationId::parse_bytes(input).unwrap_err(),
                Error::CorrelationId(*want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn from_trace_id_matches_hex() {
        let t = crate::TraceId::random();
        assert_eq!(
            CorrelationId::from_trace_id(t).as_str(),
            t.to_hex().as_str()
        );
    }

    #[test]
    fn format_names_parse() {
        assert_eq!("UUIDv7".parse::<IdFormat>().unwrap(), IdFormat::UuidV7);
        assert_eq!("hex".parse::<IdFormat>().unwrap(), IdFormat::Hex128);
        assert!("snowflake".parse::<IdFormat>().is_err());
    }
}
