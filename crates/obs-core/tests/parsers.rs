//! Property tests for every parser in obs-core: valid values round-trip,
//! arbitrary input never panics, and every rejection is a typed error.

use obs_core::error::{CorrelationIdError, IdKind};
use obs_core::resource::parse_attributes;
use obs_core::{CorrelationId, Error, SpanId, TraceFlags, TraceId};
use proptest::prelude::*;

fn hash(id: &CorrelationId) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    thread_local!(static STATE: RandomState = RandomState::new());
    STATE.with(|s| s.hash_one(id))
}

/// Random bytes, mixed with strings of hex and correlation-id characters at
/// and around the id lengths (2, 16, 32), so every parser sees valid input,
/// near misses (one uppercase or foreign byte, one too many) and junk.
fn near_hex_bytes() -> impl Strategy<Value = Vec<u8>> {
    let len = prop_oneof![Just(2usize), Just(16), Just(32), 0usize..=34];
    let hex = len.prop_flat_map(|n| {
        proptest::collection::vec(prop::sample::select(b"0123456789abcdef".to_vec()), n)
    });
    // Lowercase hex, then at most one byte replaced (uppercase, a
    // separator, anything).
    let near_hex = (
        hex,
        prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
    )
        .prop_map(|(mut v, swap)| {
            if let Some((at, b)) = swap
                && !v.is_empty()
            {
                let i = at.index(v.len());
                v[i] = b;
            }
            v
        });
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        near_hex,
        proptest::collection::vec(prop::sample::select(b"AZaz09._~:/+=@- ".to_vec()), 0..140),
    ]
}

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

    /// Arbitrary and near-hex bytes: every parser answers exactly as the
    /// format says, and whatever it accepts round-trips byte for byte (ids
    /// to lowercase hex).
    #[test]
    fn parsers_accept_exactly_their_format(bytes in near_hex_bytes()) {
        let lower_hex = |b: &[u8], len: usize| {
            b.len() == len && b.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        };
        let nonzero = bytes.iter().any(|&c| c != b'0');
        match TraceId::from_hex(&bytes) {
            Ok(id) => prop_assert_eq!(id.to_string(), String::from_utf8_lossy(&bytes)),
            Err(_) => prop_assert!(!(lower_hex(&bytes, 32) && nonzero), "rejected {:?}", bytes),
        }
        match SpanId::from_hex(&bytes) {
            Ok(id) => prop_assert_eq!(id.to_string(), String::from_utf8_lossy(&bytes)),
            Err(_) => prop_assert!(!(lower_hex(&bytes, 16) && nonzero), "rejected {:?}", bytes),
        }
        match TraceFlags::from_hex(&bytes) {
            Ok(f) => prop_assert_eq!(f.to_hex().as_str().to_owned(), String::from_utf8_lossy(&bytes)),
            Err(_) => prop_assert!(!lower_hex(&bytes, 2), "rejected {:?}", bytes),
        }
        let safe = |c: &u8| c.is_ascii_alphanumeric() || b"._~:/+=@-".contains(c);
        match CorrelationId::parse_bytes(&bytes) {
            Ok(id) => prop_assert_eq!(id.as_bytes(), &bytes[..]),
            // Safe bytes shaped like a credential: the redactor hides them too.
            Err(Error::CorrelationId(CorrelationIdError::SecretShaped)) => {
                let s = String::from_utf8_lossy(&bytes);
                prop_assert_ne!(obs_core::redact(&s), s.as_ref());
            }
            Err(_) => prop_assert!(
                bytes.is_empty() || bytes.len() > 128 || !bytes.iter().all(safe),
                "rejected {:?}", bytes
            ),
        }
        // No panic on the text parsers either.
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
    fn wrong_lengths_are_rejected(len in (0usize..69).prop_map(|l| if l >= 32 { l + 1 } else { l })) {
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
        // Ids parsed separately (inline up to 40 bytes, shared beyond) are
        // equal exactly when their text is, and hash alike.
        let again = CorrelationId::parse_bytes(s.as_bytes()).unwrap();
        prop_assert_eq!(&again, &id);
        prop_assert_eq!(hash(&again), hash(&id));
        let other = if s.len() < 128 { format!("{s}x") } else { s[..127].to_owned() };
        // One more byte can make the value credential-shaped (longer than the
        // random-string bound); then it is rejected, which differs too.
        match CorrelationId::parse(&other) {
            Ok(other) => prop_assert_ne!(&other, &id),
            Err(e) => prop_assert_eq!(e, Error::CorrelationId(CorrelationIdError::SecretShaped)),
        }
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
        pairs in proptest::collection::vec(("[a-z][a-z0-9.]{0,12}", "[ -~\u{e9}\u{2713}]{0,16}"), 0..6),
        pads in proptest::collection::vec(("[ \t]{0,2}", "[ \t]{0,2}"), 1..4),
    ) {
        // Percent-encode every byte that is not unreserved, as an operator
        // would, and pad keys and values with raw whitespace, which the
        // parser trims (encoded spaces are part of the value).
        let encoded: Vec<String> = pairs
            .iter()
            .zip(pads.iter().cycle())
            .map(|((k, v), (pk, pv))| {
                let mut e = String::new();
                for b in v.bytes() {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        e.push(b as char);
                    } else {
                        e.push_str(&format!("%{b:02X}"));
                    }
                }
                format!("{pk}{k}{pv}={pv}{e}{pk}")
            })
            .collect();
        let got = parse_attributes(&encoded.join(",")).unwrap();
        let want = pairs;
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
