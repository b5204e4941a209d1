//! Fingerprinting, deduplication and rate limiting, the bounded delivery
//! queue and its drop counter.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use obs_errors::{Config, FingerprintMode, FnSink, MemorySink, Outcome, Reporter};

#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "query failed: {}", self.0)
    }
}

impl std::error::Error for DbError {}

fn reporter(config: Config) -> (Reporter, MemorySink) {
    let memory = MemorySink::new();
    (
        Reporter::builder(config)
            .sink(memory.clone())
            .build()
            .unwrap(),
        memory,
    )
}

#[test]
fn hundred_identical_errors_make_one_report_with_count_100_on_flush() {
    let (reporter, memory) = reporter(Config::default().dedup_window(Duration::from_secs(60)));
    let mut outcomes = Vec::new();
    for i in 0..100 {
        // same type, same line, different message: one group
        outcomes.push(reporter.capture_error(&DbError(format!("row {i}"))).outcome);
    }
    assert_eq!(outcomes[0], Outcome::New);
    assert!(outcomes[1..].iter().all(|o| *o == Outcome::Merged));
    assert!(memory.reports().is_empty(), "held until the window closes");
    reporter.flush(Duration::from_secs(10)).unwrap();
    let reports = memory.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].count, 100);
    assert_eq!(reports[0].message, "query failed: row 0");
    assert!(reports[0].last_seen >= reports[0].timestamp);
    let stats = reporter.stats();
    assert_eq!(
        (stats.captured(), stats.deduplicated(), stats.reported()),
        (100, 99, 1)
    );
    let by_type = stats.by_type();
    assert_eq!(by_type.len(), 1);
    assert!(by_type[0].error_type.ends_with("DbError"));
    assert_eq!((by_type[0].mechanism, by_type[0].count), ("error", 100));
}

#[test]
fn window_close_delivers_without_flush() {
    let (reporter, memory) = reporter(Config::default().dedup_window(Duration::from_millis(200)));
    for _ in 0..100 {
        reporter.capture_error(&DbError("timeout".into()));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while memory.reports().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let reports = memory.reports();
    assert_eq!(reports.len(), 1, "the window closed by itself");
    assert_eq!(reports[0].count, 100);
    // a new window opens for the next occurrence
    reporter.capture_error(&DbError("timeout".into()));
    reporter.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(memory.reports().len(), 2);
    assert_eq!(memory.reports()[1].count, 1);
}

#[test]
fn different_locations_and_types_are_different_groups() {
    let (reporter, memory) = reporter(Config::default());
    let a = reporter.capture_error(&DbError("x".into()));
    let b = reporter.capture_error(&DbError("x".into()));
    let c = reporter.capture_error(&std::io::Error::other("x"));
    assert_ne!(a.fingerprint, b.fingerprint);
    assert_ne!(a.fingerprint, c.fingerprint);
    reporter.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(memory.reports().len(), 3);
}

#[test]
fn message_fingerprint_splits_by_message() {
    let (reporter, memory) =
        reporter(Config::default().fingerprint(FingerprintMode::TypeAndMessage));
    for m in ["a", "b", "a"] {
        reporter.capture_error(&DbError(m.into()));
    }
    reporter.flush(Duration::from_secs(10)).unwrap();
    let mut counts: Vec<_> = memory
        .reports()
        .iter()
        .map(|r| (r.message.clone(), r.count))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            ("query failed: a".to_owned(), 2),
            ("query failed: b".to_owned(), 1)
        ]
    );
}

#[test]
fn frames_fingerprint_uses_in_app_functions() {
    let config = Config::default()
        .backtrace(obs_errors::BacktraceMode::Always)
        .fingerprint(FingerprintMode::TypeAndFrames(2));
    let (reporter, memory) = reporter(config);
    fn fail_here(r: &Reporter) -> u64 {
        r.capture_error(&DbError("a".into())).fingerprint
    }
    let a = fail_here(&reporter);
    let b = fail_here(&reporter);
    assert_eq!(a, b);
    reporter.flush(Duration::from_secs(10)).unwrap();
    let reports = memory.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].count, 2);
    assert!(
        reports[0]
            .stacktrace
            .as_ref()
            .unwrap()
            .frames()
            .iter()
            .any(|f| f.function.contains("fail_here"))
    );
}

#[test]
fn group_table_is_bounded_and_counts_what_it_refuses() {
    let (reporter, memory) = reporter(Config::default().max_groups(2).unwrap());
    let outcomes: Vec<_> = (0..5)
        .map(|i| reporter.capture_message(tracing::Level::ERROR, &format!("m{i}")))
        .collect();
    // one call site, so one group; distinct sites below
    assert_eq!(
        outcomes
            .iter()
            .filter(|c| c.outcome == Outcome::New)
            .count(),
        1
    );
    let x = reporter.capture_error(&DbError("x".into()));
    let y = reporter.capture_error(&DbError("y".into()));
    assert_eq!(x.outcome, Outcome::New);
    assert_eq!(y.outcome, Outcome::Dropped);
    assert_eq!(reporter.stats().rate_limited(), 1);
    reporter.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(memory.reports().len(), 2);
}

#[test]
fn full_queue_drops_and_counts() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let blocking = FnSink::new("slow", move |_r: &obs_errors::Report| {
        let _ = started_tx.send(());
        let _ = release_rx.recv_timeout(Duration::from_secs(30));
        Ok(())
    });
    let memory = MemorySink::new();
    let config = Config::default()
        .dedup_window(Duration::ZERO)
        .queue_capacity(2)
        .unwrap();
    let reporter = Reporter::builder(config)
        .sink(blocking)
        .sink(memory.clone())
        .build()
        .unwrap();
    reporter.capture_message(tracing::Level::ERROR, "first");
    started_rx.recv_timeout(Duration::from_secs(30)).unwrap(); // the sink now blocks the worker
    for i in 0..10 {
        reporter.capture_message(tracing::Level::ERROR, &format!("burst {i}"));
    }
    let stats = reporter.stats();
    assert_eq!(
        stats.dropped(),
        8,
        "two fit in the queue, eight are dropped"
    );
    for _ in 0..3 {
        let _ = release_tx.send(());
    }
    reporter.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(memory.reports().len(), 3);
    assert_eq!(stats.reported() + stats.dropped(), 11);
}

#[test]
fn failing_and_panicking_sinks_are_counted_and_do_not_stop_delivery() {
    let memory = MemorySink::new();
    let reporter = Reporter::builder(Config::default().dedup_window(Duration::ZERO))
        .sink(FnSink::new("err", |_r: &obs_errors::Report| {
            Err(obs_errors::Error::Sink {
                sink: "err".into(),
                reason: "backend down".into(),
            })
        }))
        .sink(memory.clone())
        .build()
        .unwrap();
    reporter.capture_message(tracing::Level::ERROR, "one");
    reporter.capture_message(tracing::Level::ERROR, "two");
    reporter.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(memory.reports().len(), 2);
    assert_eq!(reporter.stats().sink_errors(), 2);
}

#[test]
fn shutdown_flushes_then_drops_later_captures() {
    let (reporter, memory) = reporter(Config::default());
    reporter.capture_message(tracing::Level::ERROR, "before");
    reporter.shutdown(Duration::from_secs(10)).unwrap();
    let summary = reporter.summary();
    assert_eq!(
        (summary.captured, summary.reported, summary.dropped),
        (1, 1, 0)
    );
    assert_eq!(memory.reports().len(), 1);
    assert_eq!(
        reporter
            .capture_message(tracing::Level::ERROR, "after")
            .outcome,
        Outcome::Dropped
    );
    assert!(matches!(
        reporter.flush(Duration::from_secs(1)),
        Err(obs_errors::Error::Closed)
    ));
}
