//! The tracing layer: ERROR events become reports with their error field's
//! chain; breadcrumbs are per root span and bounded; scopes follow tasks.

mod common;

use std::time::Duration;

use obs_errors::{Config, Mechanism, MemorySink, Reporter, Scope};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug)]
struct Outer(std::io::Error);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("saving order failed")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn error_events_are_reported_with_chain_ids_and_breadcrumbs() {
    let memory = MemorySink::new();
    let reporter = Reporter::builder(Config::default())
        .sink(memory.clone())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(reporter.layer());
    let (trace_id, correlation_id) = obs_testing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("request");
        let (t, _, c) = common::stamp_ids(&root, "corr-1");
        let _g = root.enter();
        tracing::info!("validated");
        let child = tracing::info_span!("db");
        let _c = child.enter();
        tracing::info!(table = "orders", "insert");
        // Below the default breadcrumb level (INFO), and the access line.
        tracing::debug!("row encoded");
        tracing::info!(target: "obs::access", "request finished");
        // A 5xx access line is how a request ended, not an error report.
        tracing::error!(target: "obs::access", "request finished");
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "disk timeout",
        ));
        tracing::error!(
            error = &err as &dyn std::error::Error,
            order = 17,
            "could not save order"
        );
        (t, c)
    });
    reporter.flush(Duration::from_secs(10)).unwrap();
    let reports = memory.reports();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let r = &reports[0];
    assert_eq!(r.mechanism, Mechanism::Event);
    assert_eq!(r.message, "could not save order");
    assert_eq!(r.error_type, "Outer");
    let chain: Vec<_> = r.chain.iter().map(|c| c.message.as_str()).collect();
    assert_eq!(chain, ["saving order failed", "disk timeout"]);
    assert_eq!(r.trace_id(), Some(trace_id));
    assert_eq!(r.correlation_id(), Some(correlation_id.as_str()));
    let crumbs: Vec<_> = r.breadcrumbs.iter().map(|b| b.message.as_str()).collect();
    assert_eq!(
        crumbs,
        ["validated", "insert"],
        "child spans share the root's ring; DEBUG events and the access line are not kept"
    );
    assert!(r.extra.iter().any(|(k, v)| k == "order" && v == "17"));
}

#[test]
fn breadcrumbs_are_bounded_per_request_and_overall() {
    let memory = MemorySink::new();
    let config = Config::default()
        .max_breadcrumbs(3)
        .unwrap()
        .max_breadcrumb_buffers(2);
    let reporter = Reporter::builder(config)
        .sink(memory.clone())
        .build()
        .unwrap();
    let stats = reporter.stats();
    let subscriber = tracing_subscriber::registry().with(reporter.layer());
    obs_testing::subscriber::with_default(subscriber, || {
        let a = tracing::info_span!("a");
        let b = tracing::info_span!("b");
        let c = tracing::info_span!("c");
        // A ring is made on its request's first breadcrumb, not before: a
        // request that logs nothing worth keeping holds none.
        assert_eq!(stats.breadcrumb_buffers_live(), 0);
        a.in_scope(|| {
            // A child span's events go to its root's ring.
            tracing::info_span!("a.child").in_scope(|| tracing::info!("a0"));
            for i in 1..10 {
                tracing::info!("a{i}");
            }
            reporter.capture_message(tracing::Level::ERROR, "in a");
        });
        assert_eq!(stats.breadcrumb_buffers_live(), 1);
        b.in_scope(|| tracing::info!("b0"));
        assert_eq!(stats.breadcrumb_buffers_live(), 2);
        c.in_scope(|| tracing::info!("c0")); // third live root: no buffer
        assert_eq!(stats.breadcrumb_buffers_live(), 2);
        assert_eq!(stats.breadcrumb_buffers_refused(), 1);
        drop((a, b, c));
        assert_eq!(
            stats.breadcrumb_buffers_live(),
            0,
            "buffers go with their spans"
        );
    });
    reporter.flush(Duration::from_secs(10)).unwrap();
    let r = &memory.reports()[0];
    let crumbs: Vec<_> = r.breadcrumbs.iter().map(|b| b.message.as_str()).collect();
    assert_eq!(crumbs, ["a7", "a8", "a9"]);
    assert_eq!(stats.breadcrumbs_evicted(), 7);
}

#[test]
fn scope_follows_spawned_tasks_and_stays_isolated() {
    let memory = MemorySink::new();
    let reporter = Reporter::builder(Config::default().dedup_window(Duration::ZERO))
        .sink(memory.clone())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut outer = Scope::new();
    outer.set_tag("request", "r-1");
    let r2 = reporter.clone();
    obs_errors::with_scope(outer, || {
        let handle = rt.spawn(obs_errors::bind(async move {
            obs_errors::configure_scope(|s| {
                s.set_tag("step", "child");
            });
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
            r2.capture_message(tracing::Level::ERROR, "in task");
        }));
        rt.block_on(handle).unwrap();
        reporter.capture_message(tracing::Level::ERROR, "in parent");
    });
    reporter.flush(Duration::from_secs(10)).unwrap();
    let reports = memory.reports();
    let task = reports.iter().find(|r| r.message == "in task").unwrap();
    let parent = reports.iter().find(|r| r.message == "in parent").unwrap();
    assert_eq!(task.tag("request"), Some("r-1"));
    assert_eq!(task.tag("step"), Some("child"));
    assert_eq!(parent.tag("request"), Some("r-1"));
    assert_eq!(
        parent.tag("step"),
        None,
        "the task's changes stay in the task"
    );
}

#[test]
fn exception_event_goes_into_the_current_span() {
    let capture = obs_testing::capture::CaptureLayer::new();
    let reporter = Reporter::builder(Config::default()).build().unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(reporter.layer())
        .with(capture.clone());
    obs_testing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("handler");
        let (t, _, _) = common::stamp_ids(&span, "c-9");
        let _g = span.enter();
        let e = "nope".parse::<i32>().unwrap_err();
        for _ in 0..2 {
            reporter.capture_error(&e);
        }
        let events = capture.with_message("exception");
        assert_eq!(events.len(), 2, "every occurrence marks its span");
        assert_eq!(
            events[0].fields["exception.type"],
            "core::num::error::ParseIntError"
        );
        assert_eq!(
            events[0].fields["exception.message"],
            "invalid digit found in string"
        );
        assert_eq!(events[0].spans, ["handler"]);
        assert_eq!(events[0].trace_id(), Some(t));
    });
    // no span: no span event
    let capture2 = obs_testing::capture::CaptureLayer::new();
    obs_testing::subscriber::with_default(
        tracing_subscriber::registry().with(capture2.clone()),
        || {
            reporter.capture_message(tracing::Level::ERROR, "outside");
        },
    );
    assert!(capture2.with_message("exception").is_empty());
}

#[test]
fn counter_hook_sees_every_capture() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let config = Config::default()
        .counter_hook(move |ty, mech| s2.lock().unwrap().push((ty.to_owned(), mech.to_owned())));
    let reporter = Reporter::builder(config).build().unwrap();
    for _ in 0..3 {
        reporter.capture_message(tracing::Level::ERROR, "x");
    }
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(
        seen.lock().unwrap()[0],
        ("message".to_owned(), "message".to_owned())
    );
}

#[test]
fn anyhow_style_errors_keep_their_chain() {
    let memory = MemorySink::new();
    let reporter = Reporter::builder(Config::default())
        .sink(memory.clone())
        .build()
        .unwrap();
    let err = anyhow::Error::new(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "config.toml missing",
    ))
    .context("loading settings");
    reporter.capture_dyn_error(err.as_ref());
    reporter.flush(Duration::from_secs(10)).unwrap();
    let r = &memory.reports()[0];
    assert_eq!(r.message, "loading settings");
    assert_eq!(r.chain.len(), 1);
    assert_eq!(r.chain[0].message, "config.toml missing");
}

#[test]
fn breadcrumb_sizes_are_capped() {
    let memory = MemorySink::new();
    let reporter = Reporter::builder(Config::default())
        .sink(memory.clone())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(reporter.layer());
    obs_testing::subscriber::with_default(subscriber, || {
        let _g = tracing::info_span!("r").entered();
        let long = "é".repeat(2000);
        tracing::info!(
            a = %long, b = 1, c = 2, d = 3, e = 4, f = 5, g = 6, h = 7, i = 8, j = 9, k = 10, l = 11, m = 12, n = 13,
            "{long}"
        );
        reporter.capture_message(tracing::Level::ERROR, "x");
    });
    reporter.flush(Duration::from_secs(10)).unwrap();
    let b = &memory.reports()[0].breadcrumbs[0];
    assert!(b.message.len() <= obs_errors::breadcrumbs::MAX_MESSAGE_LEN);
    assert!(b.message.starts_with("éé"));
    assert_eq!(b.fields.len(), obs_errors::breadcrumbs::MAX_FIELDS);
    assert!(b.field("a").unwrap().len() <= obs_errors::breadcrumbs::MAX_FIELD_LEN);
    assert_eq!(b.field("b"), Some("1"));
}

#[cfg(feature = "anyhow")]
#[test]
fn anyhow_feature_captures_type_and_chain() {
    let memory = MemorySink::new();
    let reporter = Reporter::builder(Config::default())
        .sink(memory.clone())
        .build()
        .unwrap();
    let typed = anyhow::Error::new("7x".parse::<u8>().unwrap_err()).context("reading the port");
    let adhoc = anyhow::anyhow!("no route to {}", "db");
    reporter.capture_anyhow(&typed);
    reporter.capture_anyhow(&adhoc);
    reporter.flush(Duration::from_secs(10)).unwrap();
    let reports = memory.reports();
    let t = reports
        .iter()
        .find(|r| r.message == "reading the port")
        .unwrap();
    assert_eq!(t.chain.len(), 1);
    assert_eq!(t.chain[0].error_type, "ParseIntError");
    let a = reports
        .iter()
        .find(|r| r.message == "no route to db")
        .unwrap();
    assert_eq!(a.error_type, "anyhow::Error");
}
