//! A runtime log-level change reaches `tracing`'s maximum level when obs's
//! layers sit beside a layer of the user's (`obs::builder(..).with(..)`,
//! obs's filter a per-layer filter): the user's layer keeps its INFO, and
//! obs writes DEBUG lines once its directive asks for them.
//!
//! Its own test binary, with one test: `try_init` installs the process's
//! only global subscriber (see `reload_alone.rs` for why no test helper's
//! scoped dispatcher is used).

use std::time::Duration;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer as _;

#[tokio::test(flavor = "current_thread")]
async fn a_reloaded_log_level_reaches_the_maximum_level_beside_other_layers() {
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let mine = obs_testing::capture::CaptureLayer::new();
    let obs = obs::builder(
        obs::Config::from_lookup(|_| None)
            .unwrap()
            .log(move |l| l.writer(sink).filter("info")),
    )
    .with(mine.clone().with_filter(LevelFilter::INFO))
    .try_init()
    .unwrap();
    let line = |n: u64| tracing::debug!(target: "app", n, "debug line");

    line(1);
    assert_eq!(LevelFilter::current(), LevelFilter::INFO);
    obs.reload_log_level("info,app=debug").unwrap();
    assert!(LevelFilter::current() >= LevelFilter::DEBUG);
    line(2);
    tracing::info!("an info line");
    obs.reload_log_level("info").unwrap();
    assert_eq!(LevelFilter::current(), LevelFilter::INFO);
    line(3);

    let report = obs.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed, "{report}");
    let text = logs.text();
    let written = logs.numbers_of("debug line", "n");
    assert_eq!(written, [2], "{text}");
    // The user's layer, at INFO, saw the INFO line and no DEBUG one.
    assert_eq!(mine.with_message("an info line").len(), 1);
    assert!(mine.with_message("debug line").is_empty());
}
