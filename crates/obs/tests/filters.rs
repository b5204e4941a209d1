//! The log filter decides which lines are written, and nothing else: spans
//! below the log level still carry trace ids (so WARN lines inside INFO spans
//! have them), and trace context still propagates.

use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "current_thread")]
async fn a_quiet_log_level_does_not_switch_tracing_off() {
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let obs = obs::init(
        obs::Config::from_lookup(|_| None)
            .unwrap()
            .log(move |l| l.writer(sink).filter("warn"))
            .install_global(false),
    )
    .unwrap();
    let subscriber = tracing_subscriber::registry().with(obs.take_layers().unwrap());
    obs_testing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request");
        let _g = span.enter();
        tracing::info!("not written: below the log level");
        tracing::warn!("written, with the span's trace id");
        let ids = obs::IdRecord::current().expect("the INFO span carries ids at log level warn");
        assert!(ids.trace_id.is_some());
    });
    let report = obs.shutdown(Duration::from_secs(2)).await;
    assert!(report.completed);
    let text = logs.text();
    let lines = logs.json_lines();
    let warn: Vec<_> = lines.iter().filter(|l| l["level"] == "WARN").collect();
    assert_eq!(warn.len(), 1, "{text}");
    assert!(warn[0]["trace_id"].is_string(), "{text}");
    assert!(!text.contains("not written"), "{text}");
}

/// Libraries' DEBUG and TRACE spans (hyper, h2, tower) are not recorded by
/// default: no layer wants them, so they cost nothing; `OBS_TRACE_FILTER`
/// opts in.
#[tokio::test(flavor = "current_thread")]
async fn library_trace_spans_are_not_recorded_unless_asked() {
    for (filter, recorded) in [(None, false), (Some("info,noisy=trace"), true)] {
        let obs = obs::init(
            obs::Config::from_lookup(|k| match k {
                "OBS_TRACE_FILTER" => filter.map(str::to_owned),
                _ => None,
            })
            .unwrap()
            .log(|l| l.writer(std::io::sink()))
            .install_global(false),
        )
        .unwrap();
        let subscriber = tracing_subscriber::registry().with(obs.take_layers().unwrap());
        obs_testing::subscriber::with_default(subscriber, || {
            let span = tracing::trace_span!(target: "noisy", "poll_frame");
            let _g = span.enter();
            let ids = obs::IdRecord::current().and_then(|r| r.trace_id);
            assert_eq!(ids.is_some(), recorded, "filter {filter:?}");
        });
        obs.shutdown(Duration::from_secs(2)).await;
    }
}
