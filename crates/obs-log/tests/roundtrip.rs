//! Property: any field names and values (strings, bytes, integers, floats
//! including NaN and infinities, booleans) produce exactly one line that
//! `serde_json` parses back to the same names and values.

mod common;

use std::sync::OnceLock;

use common::SharedBuf;
use obs_log::Config;
use proptest::prelude::*;
use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::{FieldSet, Value};
use tracing_core::metadata::Kind;
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Level, Metadata};
use tracing_subscriber::layer::SubscriberExt;

/// A callsite created at run time, so field names can be arbitrary.
struct DynCallsite(OnceLock<Metadata<'static>>);

impl Callsite for DynCallsite {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        self.0.get().expect("metadata set before registration")
    }
}

fn callsite(names: &[String]) -> &'static Metadata<'static> {
    let cs: &'static DynCallsite = Box::leak(Box::new(DynCallsite(OnceLock::new())));
    let names: Vec<&'static str> = names
        .iter()
        .map(|n| &*Box::leak(n.clone().into_boxed_str()))
        .collect();
    let names: &'static [&'static str] = Box::leak(names.into_boxed_slice());
    let meta = Metadata::new(
        "prop",
        "prop",
        Level::INFO,
        None,
        None,
        None,
        FieldSet::new(names, Identifier(cs)),
        Kind::EVENT,
    );
    assert!(cs.0.set(meta).is_ok());
    tracing_core::callsite::register(cs);
    cs.0.get().unwrap()
}

#[derive(Clone, Debug)]
enum V {
    Str(String),
    /// Leaked so that `&&[u8]` can be handed out as a `dyn Value`.
    Bytes(&'static [u8]),
    I(i64),
    U(u64),
    F(f64),
    B(bool),
}

impl V {
    fn as_value(&self) -> &dyn Value {
        match self {
            V::Str(s) => s,
            V::Bytes(b) => b,
            V::I(i) => i,
            V::U(u) => u,
            V::F(f) => f,
            V::B(b) => b,
        }
    }

    fn expected(&self) -> serde_json::Value {
        match self {
            V::Str(s) => s.clone().into(),
            V::Bytes(b) => String::from_utf8_lossy(b).into_owned().into(),
            V::I(i) => (*i).into(),
            V::U(u) => (*u).into(),
            V::F(f) if f.is_nan() => "NaN".into(),
            V::F(f) if f.is_infinite() => (if *f > 0.0 { "inf" } else { "-inf" }).into(),
            V::F(f) => (*f).into(),
            V::B(b) => (*b).into(),
        }
    }
}

fn value() -> impl Strategy<Value = V> {
    prop_oneof![
        any::<String>().prop_map(V::Str),
        "[\\x00-\\x1f\"\\\\\\u{7f}-\\u{a0}\\u{2028}\\u{fffd}a-z]{0,40}".prop_map(V::Str),
        proptest::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| V::Bytes(Box::leak(b.into_boxed_slice()))),
        any::<i64>().prop_map(V::I),
        any::<u64>().prop_map(V::U),
        any::<f64>().prop_map(V::F),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(f64::MIN_POSITIVE)
        ]
        .prop_map(V::F),
        any::<bool>().prop_map(V::B),
    ]
}

fn fields() -> impl Strategy<Value = Vec<(String, V)>> {
    proptest::collection::btree_map(
        any::<String>().prop_filter("message is the event message", |n| n != "message"),
        value(),
        1..8,
    )
    .prop_map(|m| m.into_iter().collect())
}

impl std::fmt::Display for V {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_fields_round_trip(fields in fields(), nested in any::<bool>()) {
        let buf = SharedBuf::default();
        let mut config = Config::new().filter("trace").redactor(None).writer(buf.clone());
        if nested {
            config = config.fields_key("f");
        }
        let (layer, handles) = obs_log::layer(config).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        obs_testing::subscriber::with_default(subscriber, || {
            let names: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
            let meta = callsite(&names);
            let values: Vec<Option<&dyn Value>> = fields.iter().map(|(_, v)| Some(v.as_value())).collect();
            let vs = meta.fields().value_set_all(&values);
            Event::dispatch(meta, &vs);
        });
        drop(handles);
        let text = buf.text();
        prop_assert_eq!(text.matches('\n').count(), 1, "exactly one line: {:?}", text);
        let line: serde_json::Value = serde_json::from_str(text.trim_end_matches('\n')).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        let obj = line.as_object().unwrap();
        for (name, v) in &fields {
            let got = if nested {
                obj["f"].get(name.as_str())
            } else {
                // Names that clash with the schema's own keys move to `fields.<name>`.
                let reserved = ["timestamp", "level", "target", "spans", "trace_id", "span_id", "correlation_id", "file", "line",
                    "service.name", "service.version", "deployment.environment.name"];
                if reserved.contains(&name.as_str()) { obj.get(&format!("fields.{name}")) } else { obj.get(name.as_str()) }
            };
            prop_assert_eq!(got, Some(&v.expected()), "field {:?} in {}", name, text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// The message and span fields take the same path.
    #[test]
    fn message_and_span_fields_round_trip(msg in any::<String>(), s in any::<String>(), b in proptest::collection::vec(any::<u8>(), 0..30)) {
        let buf = SharedBuf::default();
        let (layer, handles) = obs_log::layer(Config::new().redactor(None).writer(buf.clone())).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        obs_testing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("s", sv = s.as_str(), sb = b.as_slice());
            let _g = span.enter();
            tracing::info!("{msg}");
        });
        drop(handles);
        let text = buf.text();
        prop_assert_eq!(text.matches('\n').count(), 1);
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        prop_assert_eq!(&line["message"], &serde_json::Value::from(msg.clone()));
        prop_assert_eq!(&line["sv"], &serde_json::Value::from(s.clone()));
        prop_assert_eq!(&line["sb"], &serde_json::Value::from(String::from_utf8_lossy(&b).into_owned()));
    }
}
