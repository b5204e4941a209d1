//! A reload from a thread that does not run the layer's dispatcher (an admin
//! endpoint, say) keeps writing the lines the new directive enables, also
//! when the layer runs under a scoped default rather than a global one.
//!
//! Its own test binary, with one test, on purpose: the layer's dispatcher
//! must be the only one in the process, as in a program with one scoped
//! subscriber. That is when tracing-core rebuilds the interest cache from
//! the calling thread's default, which here has none. So the subscriber is
//! installed with plain `tracing`: `obs_testing::subscriber` registers a
//! second dispatcher, which hides the problem (see docs/ARCHITECTURE.md,
//! "Tests and subscribers").

mod common;

use std::time::Duration;

use common::SharedBuf;
use obs_log::Config;
use tracing_subscriber::layer::SubscriberExt;

fn served(n: u64) {
    tracing::info!(target: "app::http", n, "request served");
}

fn query(n: u64) {
    tracing::debug!(target: "app::db", n, "query");
}

#[test]
fn a_reload_from_another_thread_keeps_the_lines_the_directive_enables() {
    let buf = SharedBuf::default();
    let (layer, handles) =
        obs_log::layer(Config::new().filter("info").writer(buf.clone())).unwrap();
    let dispatch = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
    let reload_elsewhere = |directive: &'static str| {
        let reload = handles.reload.clone();
        std::thread::spawn(move || reload.set(directive).unwrap())
            .join()
            .unwrap();
    };

    tracing::dispatcher::with_default(&dispatch, || {
        served(1);
        query(1);
    });
    reload_elsewhere("info,app::db=debug");
    tracing::dispatcher::with_default(&dispatch, || {
        served(2);
        query(2);
    });
    reload_elsewhere("warn");
    tracing::dispatcher::with_default(&dispatch, || {
        served(3);
        query(3);
    });
    reload_elsewhere("info");
    tracing::dispatcher::with_default(&dispatch, || {
        served(4);
        query(4);
    });

    assert!(handles.guard.flush(Duration::from_secs(5)));
    let lines: Vec<(String, u64)> = buf
        .json_lines()
        .iter()
        .map(|v| {
            (
                v["message"].as_str().unwrap().to_owned(),
                v["n"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("request served", 1),
        ("request served", 2),
        ("query", 2),
        ("request served", 4),
    ]
    .map(|(m, n)| (m.to_owned(), n));
    assert_eq!(lines, expected);
}
