//! W3C Trace Context and Baggage edge cases, table-driven. The traceparent and
//! tracestate tables cover every case of the official w3c/trace-context test
//! suite (`test/test.py`) plus the Recommendation's own examples.

use obs_core::Carrier;
use obs_trace::propagation::{
    self, Baggage, Propagators, SpanContext, TraceState, TraceparentError, parse_traceparent,
};
use proptest::prelude::*;

const TID: &str = "12345678901234567890123456789012";

fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    h
}

/// What extraction yields from these headers: the trace id kept, if any.
fn extracted_trace(pairs: &[(&str, &str)]) -> Option<String> {
    propagation::extract(&headers(pairs)).map(|cx| cx.trace_id.to_string())
}

#[test]
fn traceparent_cases_from_the_official_suite() {
    // (name, header name, value, trace id kept?)
    let cases: &[(&str, &str, &str, bool)] = &[
        (
            "valid",
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01",
            true,
        ),
        (
            "header name trace-parent",
            "trace-parent",
            "00-12345678901234567890123456789012-1234567890123456-01",
            false,
        ),
        (
            "header name trace.parent",
            "trace.parent",
            "00-12345678901234567890123456789012-1234567890123456-01",
            false,
        ),
        (
            "casing TraceParent",
            "TraceParent",
            "00-12345678901234567890123456789012-1234567890123456-01",
            true,
        ),
        (
            "casing TrAcEpArEnT",
            "TrAcEpArEnT",
            "00-12345678901234567890123456789012-1234567890123456-01",
            true,
        ),
        (
            "casing TRACEPARENT",
            "TRACEPARENT",
            "00-12345678901234567890123456789012-1234567890123456-01",
            true,
        ),
        (
            "v00 trailing dot",
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01.",
            false,
        ),
        (
            "v00 trailing future data",
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            false,
        ),
        (
            "future version cc",
            "traceparent",
            "cc-12345678901234567890123456789012-1234567890123456-01",
            true,
        ),
        (
            "future version cc with data",
            "traceparent",
            "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            true,
        ),
        (
            "future version cc bad separator",
            "traceparent",
            "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
            false,
        ),
        (
            "version ff",
            "traceparent",
            "ff-12345678901234567890123456789012-1234567890123456-01",
            false,
        ),
        (
            "version .0",
            "traceparent",
            ".0-12345678901234567890123456789012-1234567890123456-01",
            false,
        ),
        (
            "version 0.",
            "traceparent",
            "0.-12345678901234567890123456789012-1234567890123456-01",
            false,
        ),
        (
            "version 000",
            "traceparent",
            "000-12345678901234567890123456789012-1234567890123456-01",
            false,
        ),
        (
            "version 0000",
            "traceparent",
            "0000-12345678901234567890123456789012-1234567890123456-01",
            false,
        ),
        (
            "version 0",
            "traceparent",
            "0-12345678901234567890123456789012-1234567890123456-01",
            false,
        ),
        (
            "trace id all zero",
            "traceparent",
            "00-00000000000000000000000000000000-1234567890123456-01",
            false,
        ),
        (
            "trace id leading dot",
            "traceparent",
            "00-.2345678901234567890123456789012-1234567890123456-01",
            false,
        ),
        (
            "trace id trailing dot",
            "traceparent",
            "00-1234567890123456789012345678901.-1234567890123456-01",
            false,
        ),
        (
            "trace id too long",
            "traceparent",
            "00-123456789012345678901234567890123-1234567890123456-01",
            false,
        ),
        (
            "trace id too short",
            "traceparent",
            "00-1234567890123456789012345678901-1234567890123456-01",
            false,
        ),
        (
            "parent id all zero",
            "traceparent",
            "00-12345678901234567890123456789012-0000000000000000-01",
            false,
        ),
        (
            "parent id leading dot",
            "traceparent",
            "00-12345678901234567890123456789012-.234567890123456-01",
            false,
        ),
        (
            "parent id trailing dot",
            "traceparent",
            "00-12345678901234567890123456789012-123456789012345.-01",
            false,
        ),
        (
            "parent id too long",
            "traceparent",
            "00-12345678901234567890123456789012-12345678901234567-01",
            false,
        ),
        (
            "parent id too short",
            "traceparent",
            "00-12345678901234567890123456789012-123456789012345-01",
            false,
        ),
        (
            "flags .0",
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-.0",
            false,
        ),
        (
            "flags 0.",
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-0.",
            false,
        ),
        (
            "flags too long",
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-001",
            false,
        ),
        (
            "flags too short",
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-1",
            false,
        ),
        (
            "OWS leading space",
            "traceparent",
            " 00-12345678901234567890123456789012-1234567890123456-01",
            true,
        ),
        (
            "OWS leading tab",
            "traceparent",
            "\t00-12345678901234567890123456789012-1234567890123456-01",
            true,
        ),
        (
            "OWS trailing space",
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01 ",
            true,
        ),
        (
            "OWS trailing tab",
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01\t",
            true,
        ),
        (
            "OWS both",
            "traceparent",
            "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
            true,
        ),
        // Beyond the suite: the Recommendation's own rules.
        (
            "uppercase trace id",
            "traceparent",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            false,
        ),
        (
            "uppercase parent id",
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            false,
        ),
        (
            "uppercase version",
            "traceparent",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            false,
        ),
        (
            "uppercase flags",
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            false,
        ),
        ("empty", "traceparent", "", false),
        (
            "separators swapped",
            "traceparent",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            false,
        ),
    ];
    for (name, header, value, kept) in cases {
        let got = extracted_trace(&[(header, value)]);
        if *kept {
            assert_eq!(
                got.as_deref(),
                Some(TID),
                "{name}: {value:?} should be accepted"
            );
        } else {
            assert_eq!(got, None, "{name}: {value:?} should restart the trace");
        }
    }
}

#[test]
fn duplicated_traceparent_restarts_the_trace() {
    let got = extracted_trace(&[
        (
            "traceparent",
            "00-12345678901234567890123456789011-1234567890123456-01",
        ),
        (
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01",
        ),
    ]);
    assert_eq!(got, None);
    // The same through a carrier, where repeated headers arrive joined
    // (as `Carrier::from_headers` joins them).
    let mut c = Carrier::new();
    c.insert(
        "traceparent",
        "00-12345678901234567890123456789011-1234567890123456-01,00-12345678901234567890123456789012-1234567890123456-01",
    )
    .unwrap();
    assert_eq!(propagation::extract_carrier(&c), None);
    // Even two future-version values cannot sneak through joined.
    let c = {
        let mut c = Carrier::new();
        c.insert("traceparent", "cc-12345678901234567890123456789011-1234567890123456-01,cc-12345678901234567890123456789012-1234567890123456-01").unwrap();
        c
    };
    assert_eq!(propagation::extract_carrier(&c), None);
}

#[test]
fn parse_errors_are_typed() {
    let cases: &[(&str, TraceparentError)] = &[
        (
            "00-12345678901234567890123456789012-1234567890123456-0",
            TraceparentError::TooShort,
        ),
        (
            "00-12345678901234567890123456789012-1234567890123456-01-",
            TraceparentError::TrailingData,
        ),
        (
            "01-12345678901234567890123456789012-1234567890123456-01x",
            TraceparentError::BadFutureFormat,
        ),
        (
            "ff-12345678901234567890123456789012-1234567890123456-01",
            TraceparentError::VersionFf,
        ),
        (
            "0g-12345678901234567890123456789012-1234567890123456-01",
            TraceparentError::Version,
        ),
        (
            "00+12345678901234567890123456789012-1234567890123456-01",
            TraceparentError::Separator,
        ),
        (
            "00-1234567890123456789012345678901x-1234567890123456-01",
            TraceparentError::TraceId,
        ),
        (
            "00-00000000000000000000000000000000-1234567890123456-01",
            TraceparentError::ZeroTraceId,
        ),
        (
            "00-12345678901234567890123456789012-123456789012345x-01",
            TraceparentError::ParentId,
        ),
        (
            "00-12345678901234567890123456789012-0000000000000000-01",
            TraceparentError::ZeroParentId,
        ),
        (
            "00-12345678901234567890123456789012-1234567890123456-0x",
            TraceparentError::Flags,
        ),
    ];
    for (v, e) in cases {
        assert_eq!(parse_traceparent(v.as_bytes()), Err(*e), "{v}");
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn unknown_flags_are_kept_and_sampled_bit_read() {
    let cx = propagation::extract(&headers(&[(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
    )]))
    .unwrap();
    assert_eq!(cx.trace_flags.to_byte(), 0xff);
    assert!(cx.is_sampled());
    assert!(cx.is_remote);
    let mut out = http::HeaderMap::new();
    propagation::inject(&cx, &mut out);
    assert_eq!(
        out["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff"
    );
    let cx = propagation::extract(&headers(&[(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    )]))
    .unwrap();
    assert!(!cx.is_sampled());
}

#[test]
fn future_version_is_answered_with_version_00() {
    let cx = propagation::extract(&headers(&[(
        "traceparent",
        "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
    )]))
    .unwrap();
    assert_eq!(
        cx.traceparent().as_str(),
        "00-12345678901234567890123456789012-1234567890123456-01"
    );
}

const TP: (&str, &str) = (
    "traceparent",
    "00-12345678901234567890123456789012-1234567890123456-00",
);

/// The tracestate that extraction keeps (`None` when the context is invalid).
fn tracestate(extra: &[(&str, &str)]) -> Option<TraceState> {
    let mut pairs = vec![TP];
    pairs.extend_from_slice(extra);
    propagation::extract(&headers(&pairs)).map(|cx| cx.trace_state)
}

#[test]
fn tracestate_cases_from_the_official_suite() {
    // Discarded without a valid traceparent.
    assert_eq!(
        propagation::extract(&headers(&[("tracestate", "foo=1")])),
        None
    );
    assert_eq!(
        propagation::extract(&headers(&[("tracestate", "foo=1,bar=2")])),
        None
    );

    // Inherited with a traceparent.
    let ts = tracestate(&[("tracestate", "foo=1,bar=2")]).unwrap();
    assert_eq!((ts.get("foo"), ts.get("bar")), (Some("1"), Some("2")));

    // Wrong header names are ignored; casing is not significant.
    for name in ["trace-state", "trace.state"] {
        assert!(tracestate(&[(name, "foo=1")]).unwrap().is_empty(), "{name}");
    }
    for name in ["TraceState", "TrAcEsTaTe", "TRACESTATE"] {
        assert_eq!(
            tracestate(&[(name, "foo=1")]).unwrap().get("foo"),
            Some("1"),
            "{name}"
        );
    }

    // Empty headers.
    assert!(tracestate(&[("tracestate", "")]).unwrap().is_empty());
    for pairs in [
        [("tracestate", "foo=1"), ("tracestate", "")],
        [("tracestate", ""), ("tracestate", "foo=1")],
    ] {
        let ts = tracestate(&pairs).unwrap();
        assert_eq!(ts.get("foo"), Some("1"));
        assert_eq!(ts.as_str(), "foo=1");
    }

    // Multiple headers are combined in order.
    let ts = tracestate(&[
        ("tracestate", "foo=1,bar=2"),
        ("tracestate", "rojo=1,congo=2"),
        ("tracestate", "baz=3"),
    ])
    .unwrap();
    assert_eq!(ts.as_str(), "foo=1,bar=2,rojo=1,congo=2,baz=3");

    // Duplicated keys (test_tracestate_duplicated_keys, Level 2): the
    // tracestate is inherited; obs keeps the first member of a key and drops
    // the later ones, which the suite accepts ("either kept as-is or one of
    // them discarded").
    for (pairs, kept) in [
        (vec![("tracestate", "foo=1,foo=1")], "foo=1"),
        (vec![("tracestate", "foo=1,foo=2")], "foo=1"),
        (
            vec![("tracestate", "foo=1"), ("tracestate", "foo=1")],
            "foo=1",
        ),
        (
            vec![("tracestate", "foo=1"), ("tracestate", "foo=2")],
            "foo=1",
        ),
        (
            vec![("tracestate", "foo=1,bar=2"), ("tracestate", "bar=3,baz=4")],
            "foo=1,bar=2,baz=4",
        ),
    ] {
        let mut all = vec![TP];
        all.extend_from_slice(&pairs);
        let cx = propagation::extract(&headers(&all)).unwrap();
        assert_eq!(cx.trace_id.to_string(), TID, "{pairs:?}");
        assert_eq!(cx.trace_state.as_str(), kept, "{pairs:?}");
    }

    // All allowed characters.
    let key: String = ('a'..='z').chain('0'..='9').chain("_-*/".chars()).collect();
    let value: String = (0x20u8..=0x2b)
        .chain(0x2d..=0x3c)
        .chain(0x3e..=0x7e)
        .map(char::from)
        .collect();
    let ts = tracestate(&[("tracestate", &format!("{key}={value}"))]).unwrap();
    assert_eq!(ts.get(&key), Some(value.as_str()));
    let vkey = format!("{key}@a-z0-9_-*/");
    let ts = tracestate(&[("tracestate", &format!("{vkey}={value}"))]).unwrap();
    assert_eq!(ts.get(&vkey), Some(value.as_str()));

    // OWS handling.
    for v in [
        "foo=1 \t , \t bar=2, \t baz=3",
        "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
    ] {
        let ts = tracestate(&[("tracestate", v)]).unwrap();
        assert_eq!(ts.as_str(), "foo=1,bar=2,baz=3", "{v:?}");
    }
    for v in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
        assert_eq!(
            tracestate(&[("tracestate", v)]).unwrap().get("foo"),
            Some("1"),
            "{v:?}"
        );
    }

    // Illegal keys drop the list.
    for v in ["foo =1", "FOO=1", "foo.bar=1"] {
        assert!(
            tracestate(&[("tracestate", v)]).unwrap().is_empty(),
            "{v:?}"
        );
    }
    // Keys with `@` (test_tracestate_key_illegal_vendor_format, Level 2
    // key grammar): `@` is allowed anywhere but first, any number of times.
    for (v, key) in [
        ("foo@=1,bar=2", "foo@"),
        ("foo@@bar=1,bar=2", "foo@@bar"),
        ("foo@bar@baz=1,bar=2", "foo@bar@baz"),
    ] {
        let ts = tracestate(&[("tracestate", v)]).unwrap();
        assert_eq!(ts.as_str(), v, "{v:?}");
        assert_eq!(
            (ts.get(key), ts.get("bar")),
            (Some("1"), Some("2")),
            "{v:?}"
        );
    }
    // A key must start with a lowercase letter or a digit: `@foo` drops the
    // list, valid members included.
    let ts = tracestate(&[("tracestate", "@foo=1,bar=2")]).unwrap();
    assert!(ts.is_empty());
    // Level 2 lets simple keys start with a digit.
    let ts = tracestate(&[("tracestate", "1special=x,2=y")]).unwrap();
    assert_eq!((ts.get("1special"), ts.get("2")), (Some("x"), Some("y")));

    // 32 members are fine, 33 drop the list.
    let m = |r: std::ops::RangeInclusive<u32>| {
        r.map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let ts = tracestate(&[
        ("tracestate", &m(1..=10)),
        ("tracestate", &m(11..=20)),
        ("tracestate", &m(21..=30)),
        ("tracestate", &m(31..=32)),
    ])
    .unwrap();
    assert_eq!(ts.get("bar01"), Some("01"));
    assert_eq!(ts.len(), 32);
    let ts = tracestate(&[
        ("tracestate", &m(1..=10)),
        ("tracestate", &m(11..=20)),
        ("tracestate", &m(21..=30)),
        ("tracestate", &m(31..=33)),
    ])
    .unwrap();
    assert_eq!(ts.get("bar01"), None);

    // Key length limits (test_tracestate_key_length_limit, Level 2): 256
    // characters in all, wherever the `@` signs are.
    let kept = |k: &str| {
        let ts = tracestate(&[("tracestate", "foo=1"), ("tracestate", &format!("{k}=1"))]).unwrap();
        match (ts.get("foo"), ts.get(k)) {
            (Some("1"), Some("1")) => true,
            (None, None) => false,
            other => panic!("{k:?}: half a list kept: {other:?}"),
        }
    };
    assert!(kept(&"z".repeat(256)));
    assert!(!kept(&"z".repeat(257)));
    // The longest Level 1 multi-tenant key: a 241-character tenant, `@` and a
    // 14-character system id, 256 characters.
    let max_tenant = format!("{}@{}", "t".repeat(241), "v".repeat(14));
    assert_eq!(max_tenant.len(), 256);
    assert!(kept(&max_tenant));
    // Level 2 no longer bounds the two halves on their own.
    assert!(kept(&format!("{}@v", "t".repeat(242))));
    assert!(kept(&format!("t@{}", "v".repeat(15))));
    // ...but the whole key still is.
    assert!(!kept(&format!("{}@{}", "t".repeat(241), "v".repeat(15))));
    assert!(!kept(&format!("{}@{}", "t".repeat(242), "v".repeat(14))));

    // Illegal values.
    assert_eq!(
        tracestate(&[("tracestate", "foo=bar=baz")])
            .unwrap()
            .get("foo"),
        None
    );
    let ts = tracestate(&[("tracestate", "foo=,bar=3")]).unwrap();
    assert_eq!((ts.get("foo"), ts.get("bar")), (None, None));
    // A value may hold spaces but not end with one (after trimming it cannot).
    assert_eq!(
        tracestate(&[("tracestate", "foo=a b")]).unwrap().get("foo"),
        Some("a b")
    );
    // Value length: 256 allowed, 257 not.
    assert!(
        tracestate(&[("tracestate", &format!("foo={}", "v".repeat(256)))])
            .unwrap()
            .get("foo")
            .is_some()
    );
    assert!(
        tracestate(&[("tracestate", &format!("foo={}", "v".repeat(257)))])
            .unwrap()
            .is_empty()
    );
    // Empty list members between commas are allowed.
    assert_eq!(
        tracestate(&[("tracestate", "foo=1,,bar=2, ,")])
            .unwrap()
            .as_str(),
        "foo=1,bar=2"
    );
}

#[test]
fn tracestate_round_trips_through_inject() {
    let cx = propagation::extract(&headers(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", " congo=t61rcWkgMzE"),
        ("tracestate", "rojo=00f067aa0ba902b7 "),
    ]))
    .unwrap();
    let mut out = http::HeaderMap::new();
    propagation::inject(&cx, &mut out);
    assert_eq!(out["tracestate"], "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    let mut carrier = Carrier::new();
    propagation::inject_carrier(&cx, &mut carrier);
    assert_eq!(propagation::extract_carrier(&carrier), Some(cx));
    // An empty state removes a stale header.
    let bare = SpanContext::new(
        obs_core::TraceId::random(),
        obs_core::SpanId::random(),
        Default::default(),
    );
    propagation::inject(&bare, &mut out);
    assert!(out.get("tracestate").is_none());
}

/// A service built on the server and client layers passes the incoming
/// `tracestate` on to its outgoing calls: Level 2 keys with `@`, the longest
/// multi-tenant key and lists with duplicated keys are inherited, not dropped.
#[cfg(feature = "tower")]
#[test]
fn server_and_client_layers_propagate_level_2_tracestate() {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};
    use tower::{Service, ServiceBuilder, ServiceExt};
    use tracing_subscriber::layer::SubscriberExt;

    let provider = obs_trace::TracerProvider::builder()
        .sampler(obs_trace::Sampler::AlwaysOn)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(provider.layer()));
    let max_tenant = format!("{}@{}", "t".repeat(241), "v".repeat(14));
    let cases: Vec<(Vec<String>, String)> = vec![
        (vec!["foo@=1,bar=2".into()], "foo@=1,bar=2".into()),
        (vec!["foo=1,foo=1".into()], "foo=1".into()),
        (vec!["foo=1".into(), "foo=2".into()], "foo=1".into()),
        (
            vec!["foo=1".into(), format!("{max_tenant}=1")],
            format!("foo=1,{max_tenant}=1"),
        ),
        (
            vec!["foo@bar@baz=1, ,bar=2".into()],
            "foo@bar@baz=1,bar=2".into(),
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (incoming, want) in cases {
        let seen: Arc<Mutex<Option<http::HeaderMap>>> = Arc::default();
        let s = seen.clone();
        let backend = tower::service_fn(move |req: http::Request<()>| {
            *s.lock().unwrap() = Some(req.headers().clone());
            async { Ok::<_, Infallible>(http::Response::new(())) }
        });
        let client = ServiceBuilder::new()
            .layer(obs_trace::tower::TraceClientLayer::new())
            .service(backend);
        let app = tower::service_fn(move |_req: http::Request<()>| {
            let mut client = client.clone();
            async move {
                let call = http::Request::get("http://downstream.test/")
                    .body(())
                    .unwrap();
                client.ready().await?;
                client.call(call).await
            }
        });
        let server = ServiceBuilder::new()
            .layer(obs_trace::tower::TraceServerLayer::new())
            .service(app);
        let mut req = http::Request::get("/in").header("traceparent", TP.1);
        for v in &incoming {
            req = req.header("tracestate", v.as_str());
        }
        let req = req.body(()).unwrap();
        tracing::dispatcher::with_default(&dispatch, || {
            rt.block_on(server.oneshot(req)).unwrap();
        });
        let out = seen.lock().unwrap().take().expect("the backend was called");
        let tp = out["traceparent"].to_str().unwrap();
        assert!(tp.starts_with(&format!("00-{TID}-")), "{tp}");
        assert_eq!(out["tracestate"], want.as_str(), "{incoming:?}");
    }
}

#[test]
fn baggage_edge_cases() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "key1=value1,key2=value2",
            &[("key1", "value1"), ("key2", "value2")],
        ),
        (
            " key1 = value1 , key2=value2 ",
            &[("key1", "value1"), ("key2", "value2")],
        ),
        (
            "key1=value1;property1;p2=v2,key2=value2",
            &[("key1", "value1"), ("key2", "value2")],
        ),
        ("key1=%20v%C3%A9", &[("key1", " v\u{e9}")]),
        ("key1=", &[("key1", "")]),
        ("=novalue,k=v", &[("k", "v")]),
        ("bad key=v,k=v", &[("k", "v")]),
        ("k=bad\"quote,k2=v", &[("k2", "v")]),
        ("k=%zz,k2=v", &[("k2", "v")]),
        ("novalue,k=v", &[("k", "v")]),
        ("k=1,k=2", &[("k", "2")]),
        ("", &[]),
        (",,", &[]),
    ];
    for (input, want) in cases {
        let b = Baggage::parse([input.as_bytes()]);
        let got: Vec<(&str, &str)> = b
            .entries()
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(&got, want, "{input:?}");
    }
    // Limits: at most 64 members.
    let many: String = (0..100)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(Baggage::parse([many.as_bytes()]).len(), 64);
    // At most 8192 bytes.
    let big = format!("a={},b=1", "x".repeat(8190));
    let b = Baggage::parse([big.as_bytes()]);
    assert_eq!(b.get("b"), None);
    // Values are percent-encoded on the way out and round-trip.
    let mut b = Baggage::new();
    assert!(b.insert("user", "ann, the \"admin\"=1;x"));
    assert!(!b.insert("bad key", "v"));
    let v = b.to_header_value();
    assert!(!v.contains(' ') && !v.contains('"'), "{v}");
    assert_eq!(
        Baggage::parse([v.as_bytes()]).get("user"),
        Some("ann, the \"admin\"=1;x")
    );
}

#[test]
fn propagators_respect_configuration() {
    let h = headers(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("baggage", "k=v"),
    ]);
    let all = Propagators::default().extract_headers(&h);
    assert!(all.parent.is_some());
    assert_eq!(all.baggage.get("k"), Some("v"));
    let none = Propagators::NONE.extract_headers(&h);
    assert!(none.parent.is_none() && none.baggage.is_empty());
    // Either header alone, among others, is found; neither gives nothing.
    let tp_only = headers(&[
        ("accept", "*/*"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ]);
    let got = Propagators::default().extract_headers(&tp_only);
    assert_eq!(got.parent, all.parent);
    assert!(got.baggage.is_empty());
    let bag_only = headers(&[("host", "x"), ("baggage", "k=v")]);
    let got = Propagators::default().extract_headers(&bag_only);
    assert!(got.parent.is_none());
    assert_eq!(got.baggage.get("k"), Some("v"));
    let neither = headers(&[("host", "x"), ("tracestate", "a=b")]);
    let got = Propagators::default().extract_headers(&neither);
    assert!(got.parent.is_none() && got.baggage.is_empty());
    let mut out = http::HeaderMap::new();
    Propagators::default().inject_headers(
        all.parent.as_ref().unwrap(),
        Some(&all.baggage),
        &mut out,
    );
    assert_eq!(out["baggage"], "k=v");
    let mut carrier = Carrier::new();
    Propagators::default().inject_carrier(
        all.parent.as_ref().unwrap(),
        Some(&all.baggage),
        &mut carrier,
    );
    let back = Propagators::default().extract_carrier(&carrier);
    assert_eq!(back, all);
}

/// The W3C Trace Context rules for a `traceparent` value, written out
/// independently of the crate (optional whitespace around the value is
/// allowed): `(trace id, parent id, flags)` as hex, if valid.
fn w3c_fields(value: &[u8]) -> Option<(String, String, String)> {
    let mut v = value;
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    let hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let nonzero = |s: &[u8]| s.iter().any(|&b| b != b'0');
    if v.len() < 55 {
        return None;
    }
    let (version, trace, span, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    let ok = hex(version)
        && version != b"ff"
        && v[2] == b'-'
        && v[35] == b'-'
        && v[52] == b'-'
        && hex(trace)
        && nonzero(trace)
        && hex(span)
        && nonzero(span)
        && hex(flags)
        && (v.len() == 55 || (version != b"00" && v[55] == b'-'));
    let s = |b: &[u8]| String::from_utf8(b.to_vec()).expect("checked hex");
    ok.then(|| (s(trace), s(span), s(flags)))
}

/// Near-valid traceparents: a valid one in another version, with optional
/// whitespace around it and a suffix, one byte replaced, or an id zeroed.
fn near_valid_traceparent() -> impl Strategy<Value = Vec<u8>> {
    let valid = (any::<u128>(), any::<u64>(), any::<u8>())
        .prop_map(|(t, s, f)| format!("{:032x}-{:016x}-{f:02x}", t | 1, s | 1));
    let version = prop_oneof![4 => Just("00"), 1 => Just("01"), 1 => Just("cc"), 1 => Just("fe"), 1 => Just("ff"), 1 => Just("0A"), 1 => Just("g0")];
    let ows = prop_oneof![3 => Just(""), 1 => Just(" "), 1 => Just("\t "), 1 => Just("x")];
    let suffix = prop_oneof![6 => Just(""), 1 => Just("-"), 1 => Just("-what-ever"), 1 => Just("x"), 1 => Just("01")];
    let byte = prop_oneof![
        prop::sample::select(b"0123456789abcdefABCDEF-g \t".to_vec()),
        any::<u8>(),
    ];
    let replace = prop_oneof![2 => Just(None), 1 => (0usize..58, byte).prop_map(Some)];
    (valid, version, ows, suffix, replace, 0u8..12).prop_map(|(v, ver, ows, suf, replace, zero)| {
        let mut b = format!("{ver}-{v}{suf}").into_bytes();
        match zero {
            0 => b[3..35].fill(b'0'),
            1 => b[36..52].fill(b'0'),
            _ => {}
        }
        if let Some((pos, c)) = replace
            && pos < b.len()
        {
            b[pos] = c;
        }
        let mut out = ows.as_bytes().to_vec();
        out.extend_from_slice(&b);
        out.extend_from_slice(ows.as_bytes());
        out
    })
}

/// A `tracestate` or `baggage`-like header value: `key=value` members with
/// optional whitespace (mostly well-formed), or arbitrary bytes.
fn list_header(prefix: &'static str) -> impl Strategy<Value = Vec<u8>> {
    // Well-formed members with distinct keys (simple and multi-tenant,
    // starting with `prefix` so two lists share none),
    // values of visible ASCII without ',' or '=', optional whitespace around
    // them; a quarter of the lists then get one bad member (uppercase key,
    // empty value, repeated key).
    let value = prop::collection::vec(
        prop::sample::select(b"abcXYZ019!#$%&'()*+-./:;<>?@[]^_`{|}~".to_vec()),
        1..8,
    );
    let ows = prop::sample::select(vec!["", "", "", " ", "\t"]);
    let members = prop::collection::vec((any::<bool>(), value, ows), 0..=16).prop_map(move |ms| {
        ms.into_iter()
            .enumerate()
            .map(|(i, (tenant, v, ows))| {
                let key = if tenant {
                    format!("{prefix}t{i}@acme")
                } else {
                    format!("{prefix}k{i}")
                };
                format!("{ows}{key}={}{ows}", String::from_utf8(v).expect("ASCII"))
            })
            .collect::<Vec<_>>()
    });
    let bad = prop_oneof![
        3 => Just(None),
        1 => prop::sample::select(vec!["Upper=1", "k0=", "k0=1,k0=2", "=v", "k@=1", "big=1,b1=1,b2=1,b3=1,b4=1,b5=1,b6=1,b7=1,b8=1,b9=1,b10=1,b11=1,b12=1,b13=1,b14=1,b15=1,b16=1"]).prop_map(Some),
    ];
    prop_oneof![
        3 => (members, bad, any::<prop::sample::Index>()).prop_map(|(mut m, bad, at)| {
            if let Some(b) = bad {
                m.insert(at.index(m.len() + 1), b.to_owned());
            }
            m.join(",").into_bytes()
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..600),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes and near-valid values: `parse_traceparent` accepts
    /// exactly what the W3C rules accept, and then gives those fields.
    #[test]
    fn traceparent_parsing_follows_the_w3c_rules(
        bytes in prop_oneof![proptest::collection::vec(any::<u8>(), 0..120), near_valid_traceparent()],
    ) {
        match (parse_traceparent(&bytes), w3c_fields(&bytes)) {
            (Ok((t, s, f)), Some((wt, ws, wf))) => {
                prop_assert_eq!((t.to_string(), s.to_string(), f.to_hex().as_str().to_owned()), (wt, ws, wf));
                prop_assert!(t.is_valid() && s.is_valid());
            }
            (Err(_), None) => {}
            (got, want) => prop_assert!(false, "{:?}: parsed {:?}, W3C says {:?}", String::from_utf8_lossy(&bytes), got, want),
        }
        // Extraction from headers agrees with the parser.
        if let Ok(value) = http::HeaderValue::from_bytes(&bytes) {
            let mut h = http::HeaderMap::new();
            h.insert("traceparent", value);
            prop_assert_eq!(
                propagation::extract(&h).map(|cx| cx.trace_id.to_string()),
                w3c_fields(&bytes).map(|(t, _, _)| t)
            );
        }
    }

    #[test]
    fn arbitrary_tracestate_and_baggage_stay_bounded_and_reparse(a in list_header("a"), b in list_header("b")) {
        if let Some(ts) = TraceState::parse([a.as_slice(), b.as_slice()]) {
            prop_assert!(ts.len() <= 32);
            // A kept state re-parses to itself.
            prop_assert_eq!(TraceState::parse([ts.as_str().as_bytes()]), Some(ts.clone()));
        }
        let bag = Baggage::parse([a.as_slice(), b.as_slice()]);
        prop_assert!(bag.len() <= 64);
        let _ = bag.to_header_value();
    }

    #[test]
    fn valid_contexts_round_trip(t in 1u128.., s in 1u64.., f in any::<u8>()) {
        let cx = SpanContext::new(obs_core::TraceId::from_int(t), obs_core::SpanId::from_int(s), obs_core::TraceFlags::from_byte(f));
        let (pt, ps, pf) = parse_traceparent(cx.traceparent().as_bytes()).unwrap();
        prop_assert_eq!((pt, ps, pf), (cx.trace_id, cx.span_id, cx.trace_flags));
    }
}
