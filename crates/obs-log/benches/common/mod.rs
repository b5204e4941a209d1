//! Dispatches the obs-log benches share: obs-log's layer and the
//! `tracing-subscriber` `fmt().json()` anchor, both writing to a sink.

#![allow(dead_code, reason = "each bench uses a part")]

use std::io;

use tracing_subscriber::layer::SubscriberExt;

/// obs-log's layer with `config` (filter `info`) on a registry.
pub(crate) fn obs_dispatch(config: obs_log::Config) -> (tracing_core::Dispatch, obs_log::Handles) {
    let (layer, handles) = obs_log::layer(config.filter("info")).unwrap();
    (
        tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer)),
        handles,
    )
}

/// `tracing-subscriber`'s JSON formatter writing to `io::sink`, at INFO.
pub(crate) fn ts_json_dispatch() -> tracing_core::Dispatch {
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(io::sink);
    tracing_core::Dispatch::new(
        tracing_subscriber::registry()
            .with(layer)
            .with(tracing_subscriber::filter::LevelFilter::INFO),
    )
}
