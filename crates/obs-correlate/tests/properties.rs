//! Property tests of the correlation-header and `traceparent` parsing.

use http::{HeaderMap, HeaderValue};
use obs_core::{Carrier, CorrelationId};
use obs_correlate::{Config, Source};
use proptest::prelude::*;

fn headers(pairs: &[(&'static str, &[u8])]) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_bytes(v).ok()?);
    }
    Some(h)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any header value is either taken exactly (when valid) or replaced by
    /// a fresh valid id that is never the input.
    #[test]
    fn header_values_are_taken_exactly_or_replaced(
        raw in prop::collection::vec(any::<u8>(), 0..200),
        max in 1usize..=128,
        second in any::<bool>(),
    ) {
        let name = if second { "x-request-id" } else { "x-correlation-id" };
        let Some(h) = headers(&[(name, &raw)]) else { return Ok(()) };
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
    fn carriers_follow_the_header_policy(raw in "\\PC{0,150}") {
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

    /// Any valid version-00 traceparent gives its trace id; any other string
    /// gives either nothing or a 32-hex id that appears in it.
    #[test]
    fn traceparent_trace_id(
        trace in any::<u128>().prop_filter("non-zero", |t| *t != 0),
        span in any::<u64>().prop_filter("non-zero", |s| *s != 0),
        flags in any::<u8>(),
        junk in "[ -~]{0,80}",
    ) {
        let config = Config::new().accept_traceparent(true);
        let tp = format!("00-{trace:032x}-{span:016x}-{flags:02x}");
        let r = config.resolve_headers(&headers(&[("traceparent", tp.as_bytes())]).unwrap());
        prop_assert_eq!(r.source, Source::Traceparent);
        prop_assert_eq!(r.id.as_str(), format!("{trace:032x}"));

        let upper = tp.to_ascii_uppercase();
        if upper != tp {
            let r = config.resolve_headers(&headers(&[("traceparent", upper.as_bytes())]).unwrap());
            prop_assert_eq!(r.source, Source::Generated);
        }
        let r = config.resolve_headers(&headers(&[("traceparent", junk.as_bytes())]).unwrap());
        if r.source == Source::Traceparent {
            prop_assert!(junk.contains(r.id.as_str()));
        }
        // Sent twice, a traceparent is ambiguous and gives nothing.
        let twice = headers(&[("traceparent", tp.as_bytes()), ("traceparent", tp.as_bytes())]).unwrap();
        prop_assert_eq!(config.resolve_headers(&twice).source, Source::Generated);
    }
}
