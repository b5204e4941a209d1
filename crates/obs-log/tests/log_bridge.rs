//! Records of the `log` crate reach the same JSON lines, with their own
//! target, file and line.
//!
//! Its own test binary, with one test: the `log` bridge is the process's one
//! `log` logger, set once.
#![cfg(feature = "log")]

mod common;

use std::time::Duration;

use common::SharedBuf;
use obs_log::Config;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn log_crate_records_reach_the_same_json() {
    let buf = SharedBuf::default();
    let (layer, handles) = obs_log::layer(
        Config::new()
            .filter("info,noisy=warn")
            .file_line(true)
            .writer(buf.clone()),
    )
    .unwrap();
    let dispatch = obs_testing::subscriber::dispatch(tracing_subscriber::registry().with(layer));
    obs_log::init_log_bridge().unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("job", job = "sync");
        let _g = span.enter();
        log::info!(target: "legacy::client", "connected to {}", "db");
        log::info!(target: "noisy", "filtered");
        log::warn!(target: "noisy", "kept");
    });
    handles.guard.flush(Duration::from_secs(5));
    let l = buf.json_lines();
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l[0]["target"], "legacy::client");
    assert_eq!(l[0]["message"], "connected to db");
    assert_eq!(l[0]["job"], "sync");
    assert_eq!(l[0]["file"], "crates/obs-log/tests/log_bridge.rs");
    assert!(
        l[0].get("log.target").is_none(),
        "bridge fields are folded in: {}",
        l[0]
    );
    assert_eq!(l[1]["level"], "WARN");
    assert_eq!(l[1]["message"], "kept");
}
