//! Correlation spans and log lines first reached before `obs::init`, or on a
//! thread started before it, are recorded once `init` has installed the
//! global subscriber. While no subscriber exists, `tracing` caches `never`
//! for every callsite it meets; installing the global default recomputes
//! every cached interest, and a thread without a scoped default of its own
//! then uses the global one. Nothing in obs caches an interest of its own.
//!
//! Its own test binary, with one test: `init` installs the process's only
//! global subscriber.

use std::sync::mpsc;
use std::time::Duration;

use obs::CorrelationId;

/// One correlation span callsite (inside `sync_scope`) and one log line
/// callsite, whoever calls it.
fn work(id: &str, step: &'static str) {
    obs::correlate::sync_scope(CorrelationId::parse(id).unwrap(), || {
        tracing::info!(step, "work done");
    });
}

#[test]
fn callsites_met_before_init_are_recorded_after_it() {
    // Before any subscriber: a thread that ends, the main thread, and a
    // worker thread that lives on past `init`.
    std::thread::spawn(|| work("gone-before", "early"))
        .join()
        .unwrap();
    work("main-before", "early");
    let (ready, worked) = mpsc::channel::<()>();
    let (go, wait) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        work("worker-before", "early");
        ready.send(()).unwrap();
        wait.recv().unwrap();
        work("worker-after", "late");
    });
    worked.recv().unwrap();

    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let obs = obs::init(
        obs::Config::from_lookup(|_| None)
            .unwrap()
            .service("init-order")
            .log(move |l| l.writer(sink)),
    )
    .unwrap();

    go.send(()).unwrap();
    worker.join().unwrap();
    work("main-after", "late");
    std::thread::spawn(|| work("new-after", "late"))
        .join()
        .unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(obs.shutdown(Duration::from_secs(5)));
    assert!(report.completed, "{report:?}");

    let text = logs.text();
    let mut seen: Vec<(String, String)> = logs
        .json_lines()
        .into_iter()
        .filter(|l| l["message"] == "work done")
        .map(|l| {
            assert_eq!(l["step"], "late", "{text}");
            (
                l["correlation_id"].as_str().unwrap_or("none").to_owned(),
                l["trace_id"].as_str().unwrap_or("none").len().to_string(),
            )
        })
        .collect();
    seen.sort();
    let expected = ["main-after", "new-after", "worker-after"]
        .map(|id| (id.to_owned(), "32".to_owned()))
        .to_vec();
    assert_eq!(
        seen, expected,
        "every line after init carries its correlation id (from the \
         correlation span) and a trace id: {text}"
    );
}
