//! A reload of the directive used as a per-layer filter reaches `tracing`'s
//! maximum level: beside another layer that keeps INFO, a directive more
//! verbose than the one the subscriber started with lets its lines through,
//! and going back stops them. (As the layer's own global filter a reload
//! always rebuilt the interest cache.)
//!
//! Its own test binary, with one test: it installs the process's only
//! global subscriber, and no scoped dispatcher without a level hint (which
//! would let every level through) is around to hide a stale maximum level.

use std::time::Duration;

use obs_log::Config;
use obs_testing::capture::{CaptureLayer, SharedBuf};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn a_per_layer_reload_reaches_the_maximum_level() {
    let buf = SharedBuf::default();
    let (layer, handles) = obs_log::layer(
        Config::new()
            .filter("info")
            .per_layer_filter(true)
            .writer(buf.clone()),
    )
    .unwrap();
    let other = CaptureLayer::new();
    let subscriber = tracing_subscriber::registry()
        .with(layer.with_filter(handles.reload.filter()))
        .with(other.clone().with_filter(LevelFilter::INFO));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let line = |n: u64| tracing::debug!(target: "app", n, "debug line");

    line(1);
    assert_eq!(LevelFilter::current(), LevelFilter::INFO);
    handles.reload.set("info,app=debug").unwrap();
    assert!(LevelFilter::current() >= LevelFilter::DEBUG);
    line(2);
    // From another thread, as an admin endpoint reloads.
    let reload = handles.reload.clone();
    std::thread::spawn(move || reload.set("info").unwrap())
        .join()
        .unwrap();
    assert_eq!(LevelFilter::current(), LevelFilter::INFO);
    line(3);

    handles.guard.flush(Duration::from_secs(5));
    let written = buf.numbers_of("debug line", "n");
    assert_eq!(written, [2], "{}", buf.text());
    // The other layer kept its INFO.
    assert!(other.with_message("debug line").is_empty());
}
