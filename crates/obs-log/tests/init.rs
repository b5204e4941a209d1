//! `obs_log::init` installs the global subscriber (its own test binary, as
//! a global default can be set only once per process).

mod common;

use std::time::Duration;

use common::SharedBuf;
use obs_log::{Config, Error};

#[test]
fn init_installs_the_global_subscriber_once() {
    let buf = SharedBuf::default();
    let handles = obs_log::init(Config::new().writer(buf.clone())).unwrap();
    tracing::info!(answer = 42u64, "global");
    #[cfg(feature = "log")]
    log::warn!(target: "legacy", "through the bridge");
    assert!(handles.guard.flush(Duration::from_secs(5)));
    let lines = buf.json_lines();
    assert_eq!(lines[0]["message"], "global");
    assert_eq!(lines[0]["answer"], 42);
    #[cfg(feature = "log")]
    assert_eq!(lines[1]["target"], "legacy");
    let again = obs_log::init(Config::new().writer(std::io::sink()));
    assert!(matches!(again, Err(Error::Config(_))), "{again:?}");
}
