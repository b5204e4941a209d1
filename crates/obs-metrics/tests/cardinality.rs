//! The cardinality guard under attack: a million distinct label values.

use obs_metrics::{Format, Registry};

#[test]
fn a_million_distinct_values_keep_series_at_limit_plus_one() {
    const LIMIT: usize = 1000;
    const ATTACK: usize = 1_000_000;
    let registry = Registry::builder().cardinality_limit(LIMIT).build();
    let requests = registry
        .counter_family(
            "attacked_requests",
            "Requests by a user-controlled header.",
            ["user_agent"],
        )
        .unwrap();
    let mut value = String::new();
    for i in 0..ATTACK {
        value.clear();
        value.push_str("agent-");
        value.push_str(&i.to_string());
        requests.with([&value], |c| c.inc());
    }
    assert_eq!(requests.series_count(), LIMIT + 1);
    assert_eq!(
        registry.rejected_label_sets("attacked_requests"),
        (ATTACK - LIMIT) as u64
    );

    // Known label sets keep their own series after the limit is reached.
    requests.with(["agent-0"], |c| c.inc());
    assert_eq!(requests.get(["agent-0"]).get(), 2);
    assert_eq!(requests.series_count(), LIMIT + 1);

    let text = registry.encode(Format::Text);
    let series = text
        .lines()
        .filter(|l| l.starts_with("attacked_requests_total"))
        .count();
    assert_eq!(series, LIMIT + 1);
    assert!(text.contains(&format!(
        "attacked_requests_total{{otel_metric_overflow=\"true\"}} {}\n",
        ATTACK - LIMIT
    )));
    assert!(text.contains(&format!(
        "obs_metric_label_sets_rejected_total{{metric=\"attacked_requests\"}} {}\n",
        ATTACK - LIMIT
    )));
    // Every increment is accounted for: own series + overflow.
    let total: u64 = text
        .lines()
        .filter(|l| l.starts_with("attacked_requests_total"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, ATTACK as u64 + 1);
}

#[test]
fn per_metric_limits_and_callback_overflow() {
    let registry = Registry::new();
    let f = registry
        .metric("small", "Small family.")
        .cardinality_limit(2)
        .gauge_family(["k"])
        .unwrap();
    for k in ["a", "b", "c", "d"] {
        f.get([k]).set(1);
    }
    assert_eq!(f.series_count(), 3);
    assert_eq!(registry.rejected_label_sets("small"), 2);

    let registry = Registry::builder().cardinality_limit(3).build();
    registry
        .callback_counter_family("cb_items", "Callback family.", ["k"], |e| {
            for i in 0..10u64 {
                e.emit([&i.to_string()], i);
            }
        })
        .unwrap();
    let text = registry.encode(Format::Text);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("cb_items_total"))
            .count(),
        4
    );
    // 3 + 4 + ... + 9 summed into the overflow series.
    assert!(
        text.contains("cb_items_total{otel_metric_overflow=\"true\"} 42.0\n"),
        "{text}"
    );
}

#[test]
fn concurrent_lookups_agree() {
    let registry = Registry::builder().cardinality_limit(50).build();
    let f = registry.counter_family("par", "Parallel.", ["k"]).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let f = f.clone();
            s.spawn(move || {
                for i in 0..10_000 {
                    f.with([&((i + t) % 100).to_string()], |c| c.inc());
                }
            });
        }
    });
    assert_eq!(f.series_count(), 51);
    let text = registry.encode(Format::Text);
    let total: u64 = text
        .lines()
        .filter(|l| l.starts_with("par_total"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 40_000);
}

#[test]
fn oversized_label_values_are_rejected_not_stored() {
    let registry = Registry::new();
    let f = registry
        .counter_family("big_values", "Values from a header.", ["ua"])
        .unwrap();
    let huge = "x".repeat(obs_metrics::MAX_LABEL_VALUE_LEN + 1);
    for _ in 0..3 {
        f.with([&huge], |c| c.inc());
    }
    let ok = "y".repeat(obs_metrics::MAX_LABEL_VALUE_LEN);
    f.with([&ok], |c| c.inc());
    assert_eq!(f.series_count(), 2);
    assert_eq!(registry.rejected_label_sets("big_values"), 3);
    let text = registry.encode(Format::Text);
    assert!(text.contains("big_values_total{otel_metric_overflow=\"true\"} 3\n"));
    assert!(!text.contains(&huge));
}
