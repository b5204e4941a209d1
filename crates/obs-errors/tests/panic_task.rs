//! A panic in a spawned tokio task produces exactly one report carrying the
//! backtrace, the task's breadcrumbs in order, its trace and correlation
//! ids, and the scope bound to the task.
//!
//! One test per binary: the panic hook is process-wide.

mod common;

use std::time::Duration;

use obs_errors::{BacktraceMode, Config, LogSink, Mechanism, MemorySink, Reporter, Scope, User};
use obs_testing::capture::CaptureLayer;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn panic_in_spawned_task_is_reported_once_with_context() {
    let memory = MemorySink::new();
    let capture = CaptureLayer::new();
    let config = Config::new(
        obs_core::Resource::new("worker")
            .with_version("2.0.1")
            .with_environment("test"),
    )
    .backtrace(BacktraceMode::Always);
    let reporter = Reporter::builder(config)
        .sink(memory.clone())
        .sink(LogSink::new())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(reporter.layer())
        .with(capture.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();
    static PREVIOUS_HOOK_CALLS: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);
    std::panic::set_hook(Box::new(|_| {
        PREVIOUS_HOOK_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));
    reporter.install_panic_hook();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let span = tracing::info_span!("job", name = "reindex");
    let (trace_id, span_id, correlation_id) = common::stamp_ids(&span, "job-7f3a");

    let mut scope = Scope::new();
    scope.set_user(User::id("u-1"));
    scope.set_tag("tenant", "acme");
    let handle = obs_errors::with_scope(scope, || {
        rt.spawn(
            obs_errors::bind(async {
                tracing::info!("step one");
                tracing::info!(batch = 2, "step two");
                tokio::task::yield_now().await;
                obs_errors::configure_scope(|s| {
                    s.set_tag("phase", "write");
                });
                tracing::warn!("step three");
                tracing::trace!("below the breadcrumb level");
                panic!("index writer crashed");
            })
            .instrument(span),
        )
    });
    // unrelated work elsewhere must not show up among the task's breadcrumbs
    tracing::info_span!("other").in_scope(|| tracing::info!("noise"));
    let err = rt.block_on(handle).unwrap_err();
    assert!(err.is_panic());
    reporter.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(
        PREVIOUS_HOOK_CALLS.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the hook chains"
    );

    let reports = memory.reports();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let r = &reports[0];
    assert_eq!(r.mechanism, Mechanism::Panic);
    assert_eq!(r.error_type, "panic");
    assert_eq!(r.message, "index writer crashed");
    assert_eq!(r.count, 1);
    assert!(r.location.as_ref().unwrap().file.ends_with("panic_task.rs"));
    let stack = r.stacktrace.as_ref().expect("backtrace captured");
    assert!(!stack.frames().is_empty());
    assert!(
        stack
            .frames()
            .iter()
            .any(|f| f.in_app && f.function.contains("panic_task")),
        "{}",
        stack.text()
    );

    let crumbs: Vec<_> = r.breadcrumbs.iter().map(|b| b.message.as_str()).collect();
    assert_eq!(crumbs, ["step one", "step two", "step three"]);
    assert_eq!(r.breadcrumbs[1].field("batch"), Some("2"));
    assert_eq!(r.breadcrumbs[2].level, tracing::Level::WARN);

    assert_eq!(r.trace_id().as_deref(), Some(trace_id.as_str()));
    assert_eq!(r.span_id().as_deref(), Some(span_id.as_str()));
    assert_eq!(r.correlation_id(), Some(correlation_id.as_str()));

    assert_eq!(r.user.as_ref().and_then(|u| u.id.as_deref()), Some("u-1"));
    assert_eq!(r.tag("tenant"), Some("acme"));
    assert_eq!(r.tag("phase"), Some("write"));
    assert_eq!(r.release.as_deref(), Some("worker@2.0.1"));
    assert_eq!(r.resource.environment(), Some("test"));

    // the structured log line carries the same ids
    let lines = capture.with_message("error report");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].fields["error.type"], "panic");
    assert_eq!(lines[0].trace_id().as_deref(), Some(trace_id.as_str()));
    assert_eq!(
        lines[0].correlation_id().as_deref(),
        Some(correlation_id.as_str())
    );
    // the exception event went into the task's span (the exception-event contract)
    let exc = capture.with_message("exception");
    assert_eq!(exc.len(), 1);
    assert_eq!(exc[0].fields["exception.message"], "index writer crashed");
    assert!(exc[0].fields.contains_key("exception.stacktrace"));
    assert_eq!(exc[0].trace_id().as_deref(), Some(trace_id.as_str()));

    let stats = reporter.stats();
    assert_eq!(stats.captured(), 1);
    assert_eq!(stats.reported(), 1);
    assert!(
        stats
            .by_type()
            .iter()
            .any(|t| t.error_type == "panic" && t.mechanism == "panic" && t.count == 1)
    );
}
