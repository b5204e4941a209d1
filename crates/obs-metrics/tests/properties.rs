//! Property tests of the inputs obs-metrics parses or escapes: `Accept`
//! headers, metric and label names, label values.

use obs_metrics::{Format, Registry};
use proptest::prelude::*;

/// Undoes the exposition escaping of a label value.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A media range with a weight in [0, 1] (or none), never OpenMetrics.
fn weighted_part() -> impl Strategy<Value = String> {
    let media = prop_oneof![
        Just("text/plain;version=0.0.4"),
        Just("text/plain"),
        Just("*/*"),
        Just("text/*"),
        Just("application/json"),
        Just("application/openmetrics-text;version=2.0.0"),
    ];
    let q = prop_oneof![
        Just(String::new()),
        (0u32..=1000).prop_map(|m| format!(";q={}", f64::from(m) / 1000.0))
    ];
    (media, q).prop_map(|(m, q)| format!("{m}{q}"))
}

/// `weighted_part` (OpenMetrics only in a version we do not speak), or
/// arbitrary text that does not name OpenMetrics.
fn non_openmetrics_part() -> impl Strategy<Value = String> {
    prop_oneof![
        weighted_part(),
        "[^,]{0,30}".prop_filter("no openmetrics", |p| !p
            .to_ascii_lowercase()
            .contains("openmetrics-text")),
    ]
}

proptest! {
    /// Without `openmetrics-text` in a version we speak among the media
    /// ranges, the answer is the Prometheus text format, whatever else is
    /// listed.
    #[test]
    fn without_openmetrics_the_answer_is_text(parts in prop::collection::vec(non_openmetrics_part(), 0..6)) {
        let accept = parts.join(",");
        prop_assert_eq!(Format::negotiate(Some(&accept)), Format::Text, "{}", accept);
    }

    /// Listed with the highest weight (no `q`, so 1) in a version we speak,
    /// OpenMetrics wins wherever it stands in the list.
    #[test]
    fn openmetrics_with_the_top_weight_wins(
        parts in prop::collection::vec(weighted_part(), 0..6),
        at in any::<prop::sample::Index>(),
        version in prop_oneof![Just(""), Just(";version=1.0.0"), Just(";version=0.0.1"), Just("; version=1.0.0")],
        case in prop_oneof![Just("application/openmetrics-text"), Just("Application/OpenMetrics-Text")],
    ) {
        let mut parts = parts;
        let om = format!("{case}{version}");
        parts.insert(at.index(parts.len() + 1), om);
        let accept = parts.join(",");
        prop_assert_eq!(Format::negotiate(Some(&accept)), Format::OpenMetrics, "{}", accept);
    }

    #[test]
    fn openmetrics_wins_only_when_listed(q in 0.01f32..1.0, text_q in 0.01f32..1.0) {
        let accept = format!("application/openmetrics-text;version=1.0.0;q={q},text/plain;version=0.0.4;q={text_q}");
        let want = if q >= text_q { Format::OpenMetrics } else { Format::Text };
        prop_assert_eq!(Format::negotiate(Some(&accept)), want);
    }

    #[test]
    fn names_are_validated_not_panicked_on(name in prop_oneof!["[a-zA-Z_:][a-zA-Z0-9_:]{0,30}", ".{0,40}"]) {
        let r = Registry::new();
        let ok = r.gauge(&name, "x").is_ok();
        let valid = !name.is_empty()
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        prop_assert_eq!(ok, valid);
    }

    #[test]
    fn any_label_value_round_trips(value in "\\PC{0,40}|[\"\\\\\n]{0,5}") {
        let r = Registry::new();
        r.gauge_family("v", "x", ["k"]).unwrap().get([&value]).set(1);
        let text = r.encode(Format::Text);
        let line = text.lines().find(|l| l.starts_with("v{")).unwrap();
        let inner = line.strip_prefix("v{k=\"").unwrap().strip_suffix("\"} 1").unwrap();
        prop_assert!(!inner.contains('\n'));
        prop_assert_eq!(unescape(inner), value);
    }
}
