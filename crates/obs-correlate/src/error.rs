//! The one error type of `obs-correlate`.

/// Errors of `obs-correlate`: bad configuration, bad environment values and
/// invalid ids found in carriers. Messages are lowercase and name the
/// offending value, escaped and truncated — except correlation ids, whose raw
/// value comes from outside and is never repeated (only the reason is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configured header name is not a valid HTTP field name.
    #[error(
        "invalid header name {name}: expected 1..=64 token characters [A-Za-z0-9!#$%&'*+.^_`|~-]"
    )]
    HeaderName {
        /// The rejected name, escaped and truncated.
        name: String,
    },
    /// The list of header names to read was empty or too long.
    #[error("expected 1..={max} correlation header names, got {count}")]
    HeaderCount {
        /// Number of names given.
        count: usize,
        /// Most names accepted.
        max: usize,
    },
    /// The configured maximum id length is out of range.
    #[error("max length {value} is outside 1..={max}")]
    MaxLen {
        /// The rejected length.
        value: usize,
        /// The upper bound (obs-core's `CorrelationId::MAX_LEN`).
        max: usize,
    },
    /// An environment variable held a value that could not be used.
    #[error("invalid value for environment variable {var}: {reason}")]
    Env {
        /// The variable's name.
        var: &'static str,
        /// What is wrong, with the offending value escaped and truncated.
        reason: String,
    },
    /// A carrier (job payload, message metadata) held an invalid correlation id.
    #[error("invalid correlation id in {origin}: {source}")]
    InvalidId {
        /// Where the id was found (for example the carrier key).
        origin: String,
        /// Why obs-core rejected it; never contains the value itself.
        source: obs_core::Error,
    },
}

/// Escapes `value` for an error message and truncates it to 64 characters, so
/// an error never carries control characters or megabytes of input.
pub(crate) fn preview(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &value[..cut]),
        None => format!("{value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_escapes_and_truncates() {
        assert_eq!(preview("a\r\nb"), r#""a\r\nb""#);
        let p = preview(&"x".repeat(500));
        assert!(p.ends_with("\"..."));
        assert_eq!(p.len(), 64 + 2 + 3);
    }

    #[test]
    fn messages_name_the_value() {
        let e = Error::HeaderName {
            name: preview("bad name"),
        };
        assert!(
            e.to_string()
                .starts_with("invalid header name \"bad name\""),
            "{e}"
        );
        let e = Error::MaxLen { value: 0, max: 128 };
        assert_eq!(e.to_string(), "max length 0 is outside 1..=128");
    }
}
