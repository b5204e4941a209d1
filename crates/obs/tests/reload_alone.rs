//! A runtime log-level change reaches `tracing`'s maximum level: after
//! `reload_log_level("…=debug")` DEBUG lines are written, and after going
//! back they are not, in a service set up by `obs::init` (obs's fused layer
//! alone on the global subscriber, its filter the subscriber's own), for
//! `tracing` events and, with `log-bridge`, records of the `log` crate.
//!
//! Its own test binary, with one test: `init` installs the process's only
//! global subscriber, and no scoped dispatcher of a test helper (which has
//! no level hint, so `tracing` would let every level through) is around to
//! hide a stale maximum level.

use std::time::Duration;

use tracing::level_filters::LevelFilter;

#[tokio::test(flavor = "current_thread")]
async fn a_reloaded_log_level_reaches_the_maximum_level() {
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let obs = obs::init(
        obs::Config::from_lookup(|_| None)
            .unwrap()
            .log(move |l| l.writer(sink).filter("info")),
    )
    .unwrap();
    let line = |n: u64| {
        tracing::debug!(target: "app", n, "debug line");
        // A record of the `log` crate, through the bridge `init` installs.
        log::debug!(target: "app", "bridged {n}");
    };

    line(1);
    assert_eq!(LevelFilter::current(), LevelFilter::INFO);
    obs.reload_log_level("info,app=debug").unwrap();
    assert!(LevelFilter::current() >= LevelFilter::DEBUG);
    line(2);
    // From another thread, as the admin endpoint reloads.
    let handle = obs.clone();
    std::thread::spawn(move || handle.reload_log_level("info").unwrap())
        .join()
        .unwrap();
    assert_eq!(LevelFilter::current(), LevelFilter::INFO);
    line(3);
    std::thread::spawn(move || {
        obs::Obs::global()
            .unwrap()
            .reload_log_level("debug")
            .unwrap();
    })
    .join()
    .unwrap();
    line(4);
    // A target's own level applies to `log` records too, both ways: not
    // only the bridge's `log` target.
    #[cfg(feature = "log-bridge")]
    {
        obs.reload_log_level("debug,noisy=warn").unwrap();
        log::info!(target: "noisy", "bridged noisy info");
        log::warn!(target: "noisy", "bridged noisy warn");
    }

    let report = obs.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed, "{report}");
    let text = logs.text();
    let written = logs.numbers_of("debug line", "n");
    assert_eq!(written, [2, 4], "{text}");
    #[cfg(feature = "log-bridge")]
    {
        let bridged: Vec<_> = logs
            .json_lines()
            .iter()
            .filter_map(|l| l["message"].as_str().map(str::to_owned))
            .filter(|m| m.starts_with("bridged"))
            .collect();
        assert_eq!(
            bridged,
            ["bridged 2", "bridged 4", "bridged noisy warn"],
            "{text}"
        );
    }
}
