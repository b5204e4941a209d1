//! Property tests for every parser in obs-core: valid values round-trip,
//! arbitrary input never panics, and every rejection is a typed error.

use obs_core::error::{CorrelationIdError, IdKind};
use obs_core::resource::parse_attributes;
use obs_core::{CorrelationId, Error, SpanId, TraceFlags, TraceId};
use proptest::prelude::*;

proptest! {
    #[test]
    fn trace_id_round_trips(v in 1u128..) {
        let id = TraceId::from_int(v);
        let hex = id.to_hex();
        prop_assert_eq!(hex.len(), 32);
        prop_assert_eq!(hex.parse::<TraceId>().unwrap(), id);
        prop_assert_eq!(TraceId::from_hex(id.to_string()).unwrap(), id);
    }

    #[test]
    fn span_id_round_trips(v in 1u64..) {
        let id = SpanId::from_int(v);
        prop_assert_eq!(SpanId::from_hex(id.to_hex().as_bytes()).unwrap(), id);
    }

    #[test]
    fn flags_round_trip(b in any::<u8>()) {
        let f = TraceFlags::from_byte(b);
        prop_assert_eq!(TraceFlags::from_hex(f.to_hex().as_str()).unwrap(), f);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = TraceId::from_hex(&bytes);
        let _ = SpanId::from_hex(&bytes);
        let _ = TraceFlags::from_hex(&bytes);
        let _ = CorrelationId::parse_bytes(&bytes);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = parse_attributes(s);
            let _ = obs_core::redact(s);
        }
    }

    #[test]
    fn uppercase_is_rejected_at_its_position(v in 1u128.., pos in 0usize..32) {
        let mut hex = TraceId::from_int(v).to_hex().as_bytes().to_vec();
        // Force a letter at `pos`, then uppercase it.
        hex[pos] = b'A';
        match TraceId::from_hex(&hex) {
            Err(Error::IdChar { kind: IdKind::TraceId, position, .. }) => prop_assert_eq!(position, pos),
            other => prop_assert!(false, "expected IdChar, got {:?}", other),
        }
    }

    #[test]
    fn wrong_lengths_are_rejected(len in 0usize..70) {
        prop_assume!(len != 32);
        let s = "a".repeat(len);
        let is_length_error = matches!(TraceId::from_hex(&s), Err(Error::IdLength { expected: 32, .. }));
        prop_assert!(is_length_error);
    }

    #[test]
    fn safe_correlation_ids_round_trip(s in "[A-Za-z0-9._~:/+=@-]{1,128}") {
        // Safe bytes are accepted exactly, unless the value has the shape of
        // a credential, which the redactor would then hide too.
        let id = match CorrelationId::parse(&s) {
            Err(Error::CorrelationId(CorrelationIdError::SecretShaped)) => {
                prop_assert_ne!(obs_core::redact(&s), s.as_str());
                return Ok(());
            }
            other => other.unwrap(),
        };
        prop_assert_eq!(id.as_str(), s.as_str());
        prop_assert_eq!(id.clone(), id);
    }

    #[test]
    fn overlong_correlation_ids_are_rejected(n in 129usize..2000) {
        let s = "a".repeat(n);
        prop_assert_eq!(
            CorrelationId::parse(&s).unwrap_err(),
            Error::CorrelationId(CorrelationIdError::TooLong { len: n })
        );
    }

    #[test]
    fn non_ascii_correlation_ids_are_rejected(prefix in "[a-z]{0,10}", c in "[^\\x21-\\x7e]") {
        let s = format!("{prefix}{c}x");
        let is_forbidden = matches!(
            CorrelationId::parse(&s),
            Err(Error::CorrelationId(CorrelationIdError::ForbiddenByte { position, .. })) if position == prefix.len()
        );
        prop_assert!(is_forbidden);
    }

    #[test]
    fn resource_attributes_round_trip(
        pairs in proptest::collection::vec(("[a-z][a-z0-9.]{0,12}", "[ -~\u{e9}\u{2713}]{0,16}"), 0..6)
    ) {
        // Percent-encode every byte that is not unreserved, as an operator would.
        let encoded: Vec<String> = pairs
            .iter()
            .map(|(k, v)| {
                let mut e = String::new();
                for b in v.bytes() {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        e.push(b as char);
                    } else {
                        e.push_str(&format!("%{b:02X}"));
                    }
                }
                format!("{k}={e}")
            })
            .collect();
        let parsed = parse_attributes(&encoded.join(",")).unwrap();
        let want: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.clone(), v.trim().to_owned())).collect();
        let got: Vec<(String, String)> = parsed.into_iter().map(|(k, v)| (k, v.trim().to_owned())).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn bad_resource_attributes_are_typed() {
    for bad in [
        "noequals",
        "=v",
        "k=%",
        "k=%g1",
        "k=%C3%28",
        "a b=1",
        "ok=1,,bad",
    ] {
        let r = parse_attributes(bad);
        if bad == "ok=1,,bad" {
            assert!(
                matches!(r, Err(Error::ResourceAttribute { index: 2, .. })),
                "{bad}: {r:?}"
            );
        } else {
            assert!(
                matches!(r, Err(Error::ResourceAttribute { .. })),
                "{bad}: {r:?}"
            );
        }
    }
}

#[test]
fn all_zero_ids_are_rejected() {
    assert_eq!(
        TraceId::from_hex("00000000000000000000000000000000").unwrap_err(),
        Error::ZeroId {
            kind: IdKind::TraceId
        }
    );
    assert_eq!(
        SpanId::from_hex("0000000000000000").unwrap_err(),
        Error::ZeroId {
            kind: IdKind::SpanId
        }
    );
}
