//! Execution: per-check timeouts, concurrency, cached mode, graceful drain,
//! panics, state-change logging and the stats handle.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{get, serve_axum};
use obs_health::{Check, CheckResult, Error, Health, Probe, ProbeOptions, Status};
use tokio::sync::oneshot;

/// Counts the runs of checks in flight and the most seen at once.
#[derive(Clone, Default)]
struct InFlight(Arc<(AtomicUsize, AtomicUsize)>);

/// Decrements the in-flight count when the run ends or is abandoned.
struct Running(InFlight);

impl InFlight {
    fn enter(&self) -> Running {
        let now = self.0.0.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.1.fetch_max(now, Ordering::SeqCst);
        Running(self.clone())
    }
    fn peak(&self) -> usize {
        self.0.1.load(Ordering::SeqCst)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A check that never finishes (it is abandoned at `timeout`) and counts
/// itself in `flight` while it runs.
fn hanging_counted(name: &str, timeout: Duration, flight: &InFlight) -> Check {
    let flight = flight.clone();
    Check::new(name, move || {
        let running = flight.enter();
        async move {
            let _running = running;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            CheckResult::pass()
        }
    })
    .timeout(timeout)
}

#[tokio::test]
async fn a_hanging_check_times_out_and_fails_without_blocking_others() {
    let flight = InFlight::default();
    let health = Health::builder()
        .check(Check::new("fast", || async { CheckResult::pass() }))
        .check(hanging_counted("hang1", Duration::from_secs(1), &flight))
        .check(hanging_counted("hang2", Duration::from_secs(1), &flight))
        .check(hanging_counted("hang3", Duration::from_secs(1), &flight))
        .check(Check::new("slowish", || async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            CheckResult::pass()
        }))
        .build()
        .unwrap();
    let addr = serve_axum(&health).await;
    let start = Instant::now();
    let resp = get(addr, "/readyz?verbose").await;
    let elapsed = start.elapsed();
    assert_eq!(resp.status, 503);
    assert_eq!(
        resp.body,
        "[+]fast ok\n[-]hang1 failed: timed out after 1s\n[-]hang2 failed: timed out after 1s\n\
         [-]hang3 failed: timed out after 1s\n[+]slowish ok\n[+]shutdown ok\nreadyz check failed\n"
    );
    // The three hanging checks ran at the same time (counted, not timed:
    // run one after another, at most one would ever be in flight) and each
    // was abandoned at its timeout, not before.
    assert_eq!(flight.peak(), 3, "hanging checks in flight at once");
    assert_eq!(
        flight.0.0.load(Ordering::SeqCst),
        0,
        "abandoned runs dropped"
    );
    assert!(elapsed >= Duration::from_secs(1), "probe took {elapsed:?}");
    let stats = health.stats().checks();
    assert_eq!(
        stats.iter().map(|s| s.timeouts).collect::<Vec<_>>(),
        [0, 1, 1, 1, 0]
    );
}

#[tokio::test]
async fn a_panicking_check_fails_alone() {
    let health = Health::builder()
        .check(Check::new("boom", || async {
            if std::hint::black_box(true) {
                panic!("kaboom");
            }
            CheckResult::pass()
        }))
        .check(Check::new("ok", || async { true }))
        .build()
        .unwrap();
    let report = health
        .probe(Probe::Readiness, &ProbeOptions::default())
        .await;
    assert_eq!(report.status(), Status::Fail);
    assert_eq!(report.checks()[0].output(), Some("check panicked: kaboom"));
    assert_eq!(report.checks()[1].status(), Status::Pass);
}

#[tokio::test]
async fn cached_mode_answers_while_a_check_sleeps() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let health = Health::builder()
        .check(
            Check::new("slow-db", move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    // first run is quick, every later run hangs
                    if n > 0 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    CheckResult::warn(format!("run {n}"))
                }
            })
            .timeout(Duration::from_secs(3600))
            .interval(Duration::from_millis(50)),
        )
        .build()
        .unwrap();
    let addr = serve_axum(&health).await;
    let poller = health.spawn_poller().unwrap();
    assert!(health.is_cached());

    // wait (bounded) until the first run is cached and the second one sleeps
    for _ in 0..200 {
        if runs.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        runs.load(Ordering::SeqCst) >= 2,
        "the poller did not start a second run"
    );

    // A probe that ran the check would hang for an hour; one that reads the
    // cache answers at once. The 10 s bounds only separate the two.
    let bound = Duration::from_secs(10);
    let resp = tokio::time::timeout(bound, get(addr, "/readyz?verbose"))
        .await
        .expect("the HTTP probe waited for the running check");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.body,
        "[+]slow-db warn: run 0\n[+]shutdown ok\nreadyz check passed\n"
    );
    let report = tokio::time::timeout(
        bound,
        health.probe(Probe::Readiness, &ProbeOptions::default()),
    )
    .await
    .expect("the in-process probe waited for the running check");
    assert_eq!(report.status(), Status::Warn);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "probes must not run checks in cached mode"
    );

    // the single-check endpoint reads the cache too
    let single = tokio::time::timeout(bound, get(addr, "/readyz/slow-db"))
        .await
        .expect("the single-check probe waited for the running check");
    assert_eq!(
        (single.status, single.body.as_str()),
        (200, "ok (warn: run 0)")
    );

    drop(poller);
    assert!(!health.is_cached());
}

#[tokio::test]
async fn cached_mode_before_the_first_result_fails_honestly() {
    let health = Health::builder()
        .check(
            Check::new("never-yet", || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                true
            })
            .timeout(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    let _poller = health.spawn_poller().unwrap();
    let addr = serve_axum(&health).await;
    let resp = get(addr, "/readyz").await;
    assert_eq!(resp.status, 503);
    assert_eq!(
        resp.body,
        "[-]never-yet failed: no result yet: waiting for the first background run\n\
         [+]shutdown ok\nreadyz check failed\n"
    );
}

#[test]
fn spawn_poller_outside_a_runtime_is_an_error() {
    let health = Health::builder().build().unwrap();
    let err = health.spawn_poller().unwrap_err();
    assert!(matches!(err, Error::NoRuntime(_)), "{err}");
}

#[tokio::test]
async fn shutdown_flips_readiness_first_then_the_server_stops_after_the_grace_period() {
    let health = Health::builder()
        .check(Check::new("db", || async { true }))
        .check(Check::new("loop", || async { true }).liveness())
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let grace = Duration::from_secs(1);
    let app = axum::Router::new().merge(health.router());
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(health.drain_on(
                async {
                    rx.await.ok();
                },
                grace,
            ))
            .into_future(),
    );

    assert_eq!(get(addr, "/readyz").await.status, 200);
    let signalled = Instant::now();
    tx.send(()).unwrap();
    // readiness flips as soon as the signal is seen (bounded wait)
    let mut ready = get(addr, "/readyz?verbose").await;
    for _ in 0..50 {
        if ready.status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        ready = get(addr, "/readyz?verbose").await;
    }
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.body,
        "[+]db ok\n[-]shutdown failed: shutting down\nreadyz check failed\n"
    );
    assert!(health.is_shutting_down() && health.stats().is_shutting_down());
    // during the grace period the server still serves, liveness unaffected
    let live = get(addr, "/livez").await;
    assert_eq!((live.status, live.body.as_str()), (200, "ok"));
    // then the server is told to stop (generous upper margin)
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stopped")
        .unwrap()
        .unwrap();
    assert!(
        signalled.elapsed() >= grace,
        "stopped before the grace period: {:?}",
        signalled.elapsed()
    );
}

/// A minimal capturing layer: (level, message, fields) of every event.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

#[derive(Clone, Debug)]
struct Captured {
    level: tracing::Level,
    message: Option<String>,
    fields: BTreeMap<String, String>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct V<'a>(&'a mut Captured);
        impl tracing::field::Visit for V<'_> {
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                self.0.fields.insert(f.name().to_owned(), v.to_owned());
            }
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                let text = format!("{v:?}");
                if f.name() == "message" {
                    self.0.message = Some(text);
                } else {
                    self.0.fields.insert(f.name().to_owned(), text);
                }
            }
        }
        let mut c = Captured {
            level: *event.metadata().level(),
            message: None,
            fields: BTreeMap::new(),
        };
        event.record(&mut V(&mut c));
        self.0.lock().unwrap().push(c);
    }
}

impl Capture {
    fn events(&self) -> Vec<Captured> {
        self.0.lock().unwrap().clone()
    }
}

#[test]
fn state_changes_are_logged_once() {
    let capture = Capture::default();
    let subscriber = {
        use tracing_subscriber::layer::SubscriberExt;
        tracing_subscriber::registry().with(capture.clone())
    };
    let _guard = obs_testing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&healthy);
    let health = Health::builder()
        .check(Check::new("db", move || {
            let ok = flag.load(Ordering::SeqCst);
            async move {
                if ok {
                    CheckResult::pass()
                } else {
                    CheckResult::fail("refused")
                }
            }
        }))
        .build()
        .unwrap();
    let probe = |n: usize| {
        for _ in 0..n {
            rt.block_on(health.probe(Probe::Readiness, &ProbeOptions::default()));
        }
    };
    let changes = |msg: &str| {
        capture
            .events()
            .iter()
            .filter(|e| e.message.as_deref() == Some(msg))
            .count()
    };
    probe(3);
    assert_eq!(changes("health check first result"), 1);
    healthy.store(false, Ordering::SeqCst);
    probe(3);
    assert_eq!(changes("health check status changed"), 1);
    let event = capture
        .events()
        .into_iter()
        .find(|e| e.message.as_deref() == Some("health check status changed"))
        .unwrap();
    assert_eq!(event.level, tracing::Level::WARN);
    assert_eq!(event.fields["check"], "db");
    assert_eq!(event.fields["from"], "pass");
    assert_eq!(event.fields["to"], "fail");
    assert_eq!(event.fields["output"], "refused");
    healthy.store(true, Ordering::SeqCst);
    probe(3);
    assert_eq!(changes("health check recovered"), 1);
    assert_eq!(changes("health check status changed"), 1);
    health.begin_shutdown();
    health.begin_shutdown();
    assert_eq!(changes("shutting down: readiness now fails"), 1);
}

#[tokio::test]
async fn stats_expose_latest_status_and_duration() {
    let health = Health::builder()
        .check(Check::new("db", || async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            CheckResult::pass()
        }))
        .check(Check::new("cache", || async { CheckResult::warn("slow") }).liveness())
        .check(Check::new("s3", || async { CheckResult::fail("403") }).non_critical())
        .build()
        .unwrap();
    let stats = health.stats();
    assert!(
        stats
            .checks()
            .iter()
            .all(|s| s.status.is_none() && s.runs == 0)
    );
    health.probe(Probe::All, &ProbeOptions::default()).await;
    health
        .probe(Probe::Readiness, &ProbeOptions::default())
        .await;
    let snap = stats.checks();
    let view: Vec<(&str, Option<f64>, u64, u64, bool)> = snap
        .iter()
        .map(|s| (&*s.name, s.status_value(), s.runs, s.failures, s.critical))
        .collect();
    assert_eq!(
        view,
        [
            ("db", Some(1.0), 2, 0, true),
            ("cache", Some(0.5), 1, 0, true),
            ("s3", Some(0.0), 2, 2, false),
        ]
    );
    assert!(
        snap.iter()
            .all(|s| s.duration_seconds().is_some() && s.last_run.is_some())
    );
    // The duration is the latest run's: `db` sleeps 20 ms, so it can't be less.
    let db_secs = snap[0].duration_seconds().unwrap();
    assert!(db_secs >= 0.020, "a 20 ms check took {db_secs} s");
}

#[test]
fn the_builder_rejects_bad_input_with_clear_errors() {
    let ok = || async { true };
    let err = |c: Check| Health::builder().check(c).build().unwrap_err().to_string();
    assert_eq!(
        err(Check::new("", ok)),
        "invalid check name \"\": the name is empty"
    );
    assert_eq!(
        err(Check::new("a b", ok)),
        "invalid check name \"a b\": only ASCII letters, digits, '.', '_' and '-' are allowed"
    );
    assert!(err(Check::new("x".repeat(64), ok)).contains("longer than 63 bytes"));
    assert_eq!(
        err(Check::new("shutdown", ok)),
        "check name \"shutdown\" is reserved for the built-in check"
    );
    assert_eq!(
        err(Check::new("db", ok).timeout(Duration::ZERO)),
        "invalid timeout for check \"db\": 0ns (must be greater than zero)"
    );
    assert_eq!(
        err(Check::new("db", ok).interval(Duration::ZERO)),
        "invalid interval for check \"db\": 0ns (must be greater than zero)"
    );
    let dup = Health::builder()
        .check(Check::new("db", ok))
        .check(Check::new("db", ok))
        .build();
    assert_eq!(dup.unwrap_err().to_string(), "duplicate check name \"db\"");
    let zero = Health::builder()
        .default_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(
        zero.to_string(),
        "invalid timeout for check \"*\": 0ns (must be greater than zero)"
    );
}

#[test]
fn a_cached_result_goes_stale_when_the_poller_dies_with_its_runtime() {
    let health = Health::builder()
        .check(
            Check::new("db", || async { CheckResult::pass() })
                .interval(Duration::from_millis(200))
                .timeout(Duration::from_millis(200)),
        )
        .build()
        .unwrap();
    // the poller lives on a runtime that is shut down later, without the
    // `Poller` being dropped: the cached `pass` must not live on
    let poller_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let poller = poller_rt.block_on(async {
        let poller = health.spawn_poller().unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        poller
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let probe = || rt.block_on(health.probe(Probe::Readiness, &ProbeOptions::default()));
    // the current-thread runtime only polls while blocked on, so the result
    // (from the round at 200 ms) is about 50 ms old: fresh (stale after 600 ms)
    assert_eq!(probe().status(), Status::Pass);
    drop(poller_rt);
    std::thread::sleep(Duration::from_millis(1500));
    let report = probe();
    assert_eq!(report.status(), Status::Fail);
    assert_eq!(
        report.checks()[0].output(),
        Some("stale result: the background poller has missed two rounds (stopped or starved)")
    );
    let stats = health.stats().checks();
    assert!(stats[0].stale);
    assert_eq!(stats[0].status, Some(Status::Pass));
    assert_eq!(stats[0].status_value(), Some(0.0));
    drop(poller);
}
