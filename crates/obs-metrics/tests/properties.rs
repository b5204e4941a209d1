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

proptest! {
    #[test]
    fn negotiation_never_panics(accept in ".{0,200}") {
        let f = Format::negotiate(Some(&accept));
        prop_assert!(f == Format::Text || f == Format::OpenMetrics);
    }

    #[test]
    fn openmetrics_wins_only_when_listed(q in 0.01f32..1.0, text_q in 0.01f32..1.0) {
        let accept = format!("application/openmetrics-text;version=1.0.0;q={q},text/plain;version=0.0.4;q={text_q}");
        let want = if q >= text_q { Format::OpenMetrics } else { Format::Text };
        prop_assert_eq!(Format::negotiate(Some(&accept)), want);
    }

    #[test]
    fn names_are_validated_not_panicked_on(name in ".{0,40}") {
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
