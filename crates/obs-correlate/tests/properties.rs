//! Property tests of the correlation-header and `traceparent` parsing.
//!
//! Every generator produces input that reaches an assertion: header values
//! are drawn from the bytes `HeaderValue` accepts (so no case is skipped),
//! and `traceparent` candidates are mutations of a valid header checked
//! against an independent reading of the W3C rules.

use http::{HeaderMap, HeaderValue};
use obs_core::{Carrier, CorrelationId};
use obs_correlate::{Config, Source};
use proptest::prelude::*;

fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            *k,
            HeaderValue::from_bytes(v).expect("generators yield legal header bytes"),
        );
    }
    h
}

/// Bytes `HeaderValue::from_bytes` accepts: tab, visible ASCII and space,
/// and obs-text (0x80..=0xff).
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        1 => Just(b'\t'),
        6 => 0x20u8..=0x7e,
        2 => 0x80u8..=0xff,
    ]
}

/// The bytes a correlation id may hold.
const SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:/+=@-";

/// Candidate ids from the safe set (some longer than the limit), some with
/// one other legal header byte at a random place; and arbitrary legal
/// header values (spaces, tabs, obs-text, empty).
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let id = prop::collection::vec(prop::sample::select(SAFE), 1..=160);
    prop_oneof![
        2 => id.clone(),
        1 => (id, any::<prop::sample::Index>(), header_byte()).prop_map(|(mut v, at, b)| {
            let i = at.index(v.len());
            v[i] = b;
            v
        }),
        1 => prop::collection::vec(header_byte(), 0..200),
    ]
}

/// The W3C Trace Context rules for a `traceparent` value, written out
/// independently of the crate: the trace id it carries, if valid.
fn w3c_trace_id(tp: &[u8]) -> Option<&[u8]> {
    let hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let nonzero = |s: &[u8]| s.iter().any(|&b| b != b'0');
    if tp.len() < 55 {
        return None;
    }
    let (version, trace, span, flags) = (&tp[0..2], &tp[3..35], &tp[36..52], &tp[53..55]);
    let dashes = tp[2] == b'-' && tp[35] == b'-' && tp[52] == b'-';
    let fields_ok = hex(version)
        && version != b"ff"
        && hex(trace)
        && nonzero(trace)
        && hex(span)
        && nonzero(span)
        && hex(flags);
    // Version 00 is exactly 55 bytes; a later version may append `-...`.
    let tail_ok = tp.len() == 55 || (version != b"00" && tp[55] == b'-');
    (dashes && fields_ok && tail_ok).then_some(trace)
}

/// A traceparent candidate: a valid header with one of its bytes replaced,
/// another version, a suffix, or all-zero ids; or plain printable junk.
fn traceparent_candidate() -> impl Strategy<Value = String> {
    let valid = (any::<u128>(), any::<u64>(), any::<u8>())
        .prop_map(|(t, s, f)| format!("00-{:032x}-{:016x}-{f:02x}", t | 1, s | 1));
    let version = prop_oneof![4 => Just("00"), 1 => Just("01"), 1 => Just("cc"), 1 => Just("fe"), 1 => Just("ff"), 1 => Just("0g"), 1 => Just("0A")];
    let suffix = prop_oneof![6 => Just(""), 1 => Just("-"), 1 => Just("-what-ever"), 1 => Just("x"), 1 => Just(" ")];
    let interesting = prop_oneof![
        prop::char::range('0', '9'),
        prop::char::range('a', 'f'),
        prop::char::range('A', 'F'),
        Just('-'),
        Just('g'),
        Just(' '),
        prop::char::range(' ', '~'),
    ];
    prop_oneof![
        // untouched apart from version and suffix
        (valid.clone(), version.clone(), suffix.clone())
            .prop_map(|(v, ver, suf)| format!("{ver}{}{suf}", &v[2..])),
        // one byte replaced
        (valid.clone(), 0usize..55, interesting, version, suffix).prop_map(
            |(v, pos, c, ver, suf)| {
                let mut b = format!("{ver}{}{suf}", &v[2..]).into_bytes();
                b[pos] = c as u8;
                String::from_utf8(b).expect("ASCII")
            }
        ),
        // all-zero trace or span id
        (valid.clone(), any::<bool>()).prop_map(|(v, trace)| {
            let mut b = v.into_bytes();
            let range = if trace { 3..35 } else { 36..52 };
            b[range].fill(b'0');
            String::from_utf8(b).expect("ASCII")
        }),
        // cut short
        (valid, 0usize..55).prop_map(|(v, n)| v[..n].to_owned()),
        "[ -~]{0,80}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any header value is either taken exactly (when valid and within the
    /// length limit) or replaced by a fresh valid id that is never the input.
    #[test]
    fn header_values_are_taken_exactly_or_replaced(
        raw in header_value(),
        max in 1usize..=128,
        second in any::<bool>(),
    ) {
        let name = if second { "x-request-id" } else { "x-correlation-id" };
        let h = headers(&[(name, &raw)]);
        let config = Config::new().max_len(max).unwrap();
        let r = config.resolve_headers(&h);
        let valid = CorrelationId::is_valid(&raw) && raw.len() <= max;
        prop_assert_eq!(r.header(&config), Some(name));
        if valid {
            prop_assert_eq!(r.source, Source::Incoming);
            prop_assert_eq!(r.id.as_bytes(), &raw[..]);
            prop_assert!(r.rejection.is_none());
        } else {
            prop_assert_eq!(r.source, Source::Replaced);
            prop_assert!(r.rejection.is_some());
            prop_assert!(CorrelationId::is_valid(r.id.as_bytes()));
            prop_assert_ne!(r.id.as_bytes(), &raw[..]);
        }
    }

    /// Carriers follow the same policy as headers.
    #[test]
    fn carriers_follow_the_header_policy(raw in prop_oneof!["[A-Za-z0-9._~:/+=@-]{1,140}", "[!-~]{1,20}", "\\PC{0,150}"]) {
        let mut c = Carrier::new();
        c.insert("x-correlation-id", raw.clone()).unwrap();
        let r = Config::new().resolve_carrier(&c);
        if CorrelationId::is_valid(raw.as_bytes()) {
            prop_assert_eq!((r.id.as_str(), r.source), (raw.as_str(), Source::Incoming));
        } else {
            prop_assert_eq!(r.source, Source::Replaced);
            prop_assert_ne!(r.id.as_str(), raw.as_str());
        }
    }

    /// Any valid version-00 traceparent gives its trace id; uppercase or
    /// duplicated ones give nothing.
    #[test]
    fn traceparent_trace_id(
        trace in 1u128..,
        span in 1u64..,
        flags in any::<u8>(),
    ) {
        let config = Config::new().accept_traceparent(true);
        let tp = format!("00-{trace:032x}-{span:016x}-{flags:02x}");
        let r = config.resolve_headers(&headers(&[("traceparent", tp.as_bytes())]));
        prop_assert_eq!(r.source, Source::Traceparent);
        prop_assert_eq!(r.id.as_str(), format!("{trace:032x}"));

        let upper = tp.to_ascii_uppercase();
        if upper != tp {
            let r = config.resolve_headers(&headers(&[("traceparent", upper.as_bytes())]));
            prop_assert_eq!(r.source, Source::Generated);
        }
        // Sent twice, a traceparent is ambiguous and gives nothing.
        let twice = headers(&[("traceparent", tp.as_bytes()), ("traceparent", tp.as_bytes())]);
        prop_assert_eq!(config.resolve_headers(&twice).source, Source::Generated);
    }

    /// Near-valid and junk traceparents give an id exactly when the W3C
    /// rules accept them, and then it is their trace id.
    #[test]
    fn traceparent_follows_the_w3c_rules(tp in traceparent_candidate()) {
        let config = Config::new().accept_traceparent(true);
        let r = config.resolve_headers(&headers(&[("traceparent", tp.as_bytes())]));
        match w3c_trace_id(tp.as_bytes()) {
            Some(trace) => {
                prop_assert_eq!(r.source, Source::Traceparent, "{:?}", tp);
                prop_assert_eq!(r.id.as_bytes(), trace);
            }
            None => prop_assert_eq!(r.source, Source::Generated, "{:?}", tp),
        }
    }
}
