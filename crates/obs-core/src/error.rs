//! The one error type of `obs-core`.

use std::fmt;

/// Which kind of id a parse error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A 16-byte W3C trace id.
    TraceId,
    /// An 8-byte W3C span (parent) id.
    SpanId,
    /// A one-byte W3C trace-flags field.
    TraceFlags,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::TraceId => "trace id",
            IdKind::SpanId => "span id",
            IdKind::TraceFlags => "trace flags",
        })
    }
}

/// Why a correlation id was rejected.
///
/// The rejected value itself is deliberately *not* part of this type: a
/// correlation id usually arrives in a request header an attacker controls, and
/// obs never echoes or logs such a value raw (see `docs/ARCHITECTURE.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CorrelationIdError {
    /// The value is empty.
    Empty,
    /// The value is longer than [`CorrelationId::MAX_LEN`](crate::CorrelationId::MAX_LEN).
    TooLong {
        /// Length of the rejected value in bytes.
        len: usize,
    },
    /// The value holds a byte outside the safe set.
    ForbiddenByte {
        /// Zero-based byte offset of the first offending byte.
        position: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The value has the shape of a credential (a JWT, a vendor token or
    /// cloud key, a password in a URL, a long random string): it was most
    /// likely pasted by mistake, and echoing or logging it would leak it.
    SecretShaped,
}

impl fmt::Display for CorrelationIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CorrelationIdError::Empty => f.write_str("the value is empty"),
            CorrelationIdError::TooLong { len } => write!(
                f,
                "the value is {len} bytes long, the maximum is {}",
                crate::CorrelationId::MAX_LEN
            ),
            CorrelationIdError::ForbiddenByte { position, byte } => write!(
                f,
                "byte {} at position {position} is outside the safe set [A-Za-z0-9._~:/+=@-]",
                std::ascii::escape_default(byte)
            ),
            CorrelationIdError::SecretShaped => {
                f.write_str("the value has the shape of a credential (token, key or password)")
            }
        }
    }
}

/// Errors of `obs-core`: every parser and validator here returns one of these,
/// never panics, and names the offending value (escaped and truncated) and
/// where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An id did not have the expected number of hex characters.
    #[error("invalid {kind}: expected {expected} lowercase hex characters, got {len} in {value}")]
    IdLength {
        /// Which id.
        kind: IdKind,
        /// Expected number of hex characters.
        expected: usize,
        /// Number of bytes received.
        len: usize,
        /// The received value, escaped and truncated.
        value: String,
    },
    /// An id held a character that is not lowercase hex.
    #[error(
        "invalid {kind}: {found} at position {position} is not a lowercase hex digit in {value}"
    )]
    IdChar {
        /// Which id.
        kind: IdKind,
        /// The offending character, escaped.
        found: String,
        /// Zero-based byte offset.
        position: usize,
        /// The received value, escaped and truncated.
        value: String,
    },
    /// An all-zero trace or span id, which W3C Trace Context forbids.
    #[error("invalid {kind}: the all-zero value is not a valid id")]
    ZeroId {
        /// Which id.
        kind: IdKind,
    },
    /// A correlation id failed validation.
    #[error("invalid correlation id: {0}")]
    CorrelationId(CorrelationIdError),
    /// A resource attribute list (`OTEL_RESOURCE_ATTRIBUTES` format) was malformed.
    #[error("invalid resource attributes at member {index} ({member}): {reason}")]
    ResourceAttribute {
        /// Zero-based index of the comma-separated member.
        index: usize,
        /// The member, escaped and truncated.
        member: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An environment variable held a value that could not be used.
    #[error("invalid value for environment variable {var}: {reason}")]
    Env {
        /// The variable's name.
        var: String,
        /// What is wrong, including the offending value where it is not secret.
        reason: String,
    },
    /// A carrier exceeded one of its bounds.
    #[error("carrier limit exceeded: {0}")]
    CarrierLimit(String),
    /// A user-supplied redaction pattern did not compile.
    #[error("invalid redaction pattern {pattern}: {reason}")]
    RedactionPattern {
        /// The pattern, escaped and truncated.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
}

/// Escapes `value` for an error message and truncates it to a readable length,
/// so that an error never carries control characters or megabytes of input.
/// A short, escaped, quoted preview of untrusted input for an error message:
/// at most 64 bytes, non-printable bytes escaped, `...` when cut. Errors quote
/// this instead of the whole value, so a megabyte of input is never echoed.
pub fn preview(value: &[u8]) -> String {
    const MAX: usize = 64;
    let mut out = String::with_capacity(value.len().min(MAX) + 8);
    out.push('"');
    for &b in value.iter().take(MAX) {
        out.extend(std::ascii::escape_default(b).map(char::from));
    }
    out.push('"');
    if value.len() > MAX {
        out.push_str("...");
    }
    out
}

/// The `dyn Error` inside the common error containers — `Box<dyn Error>`
/// (with or without `Send`/`Sync`), `Arc<dyn Error + Send + Sync>`,
/// `std::io::Error` — found by type, for code that takes any
/// `Display + Debug` error and wants its `source()` chain where there is
/// one. `None` for any other type.
///
/// ```
/// let boxed: Box<dyn std::error::Error + Send + Sync> = "boom".into();
/// assert_eq!(obs_core::error::dyn_error(&boxed).unwrap().to_string(), "boom");
/// assert!(obs_core::error::dyn_error(&"just text").is_none());
/// ```
pub fn dyn_error<E: 'static>(err: &E) -> Option<&(dyn std::error::Error + 'static)> {
    use std::error::Error;
    let any = err as &dyn std::any::Any;
    if let Some(b) = any.downcast_ref::<Box<dyn Error + Send + Sync>>() {
        return Some(&**b);
    }
    if let Some(b) = any.downcast_ref::<Box<dyn Error + Send>>() {
        return Some(&**b);
    }
    if let Some(b) = any.downcast_ref::<Box<dyn Error>>() {
        return Some(&**b);
    }
    if let Some(a) = any.downcast_ref::<std::sync::Arc<dyn Error + Send + Sync>>() {
        return Some(&**a);
    }
    if let Some(e) = any.downcast_ref::<std::io::Error>() {
        return Some(e);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_escapes_and_truncates() {
        assert_eq!(preview(b"ab\r\n"), r#""ab\r\n""#);
        let long = vec![b'a'; 200];
        let p = preview(&long);
        assert!(p.ends_with("\"..."));
        assert_eq!(p.len(), 64 + 2 + 3);
    }

    #[test]
    fn correlation_error_does_not_carry_value() {
        let e = Error::CorrelationId(CorrelationIdError::ForbiddenByte {
            position: 3,
            byte: b'\n',
        });
        assert_eq!(
            e.to_string(),
            "invalid correlation id: byte \\n at position 3 is outside the safe set [A-Za-z0-9._~:/+=@-]"
        );
    }
}
