//! Bounded shutdown against collectors that refuse or never answer, on both
//! tokio runtime flavours and outside tokio, with every lost span reported.
//!
//! These are the only tests here that look at a clock, because bounded
//! shutdown is the behaviour under test; the margins are generous.
#![cfg(feature = "otlp-http")]

use std::time::{Duration, Instant};

use obs_testing::otlp::{HungCollector, OtlpReceiver};
use obs_trace::{BatchConfig, Config, ShutdownReport, TracerProvider};
use tracing_subscriber::layer::SubscriberExt;

const SPANS: u64 = 20;
const TIMEOUT: Duration = Duration::from_millis(600);
/// Shutdown must return within its timeout; this margin absorbs a loaded CI box.
const MARGIN: Duration = Duration::from_secs(3);

fn batch() -> BatchConfig {
    BatchConfig {
        max_queue_size: 1024,
        // Nothing leaves before shutdown: every span is still queued then.
        schedule_delay: Duration::from_secs(60),
        max_export_batch_size: 512,
        export_timeout: Duration::from_secs(30),
    }
}

fn provider(endpoint: String) -> TracerProvider {
    let cfg = Config::default()
        .service("shutdown-test")
        .otlp_http(endpoint)
        .batch(batch());
    TracerProvider::from_config(cfg).unwrap()
}

fn make_spans(p: &TracerProvider, n: u64) {
    let subscriber = tracing_subscriber::registry().with(p.layer());
    obs_testing::subscriber::with_default(subscriber, || {
        for i in 0..n {
            let _s = tracing::info_span!("work", i).entered();
        }
    });
}

fn unreachable_url() -> String {
    // Bind and drop: nothing listens on the port any more, connections are refused.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/v1/traces")
}

fn timed_shutdown(p: &TracerProvider) -> (ShutdownReport, Duration) {
    let t = Instant::now();
    let r = p.shutdown(TIMEOUT);
    (r, t.elapsed())
}

fn assert_all_dropped(r: ShutdownReport, took: Duration) {
    assert!(took < TIMEOUT + MARGIN, "shutdown took {took:?}");
    assert_eq!(r.exported, 0, "{r:?}");
    assert_eq!(r.dropped, SPANS, "{r:?}");
}

#[test]
fn hung_collector_outside_tokio() {
    let hung = HungCollector::start();
    let p = provider(hung.traces_url());
    make_spans(&p, SPANS);
    let (r, took) = timed_shutdown(&p);
    assert_all_dropped(r, took);
    // A second call returns the same report at once.
    assert_eq!(p.shutdown(TIMEOUT), r);
}

#[tokio::test(flavor = "current_thread")]
async fn hung_collector_current_thread_runtime() {
    let hung = HungCollector::start();
    let p = provider(hung.traces_url());
    make_spans(&p, SPANS);
    let (r, took) = timed_shutdown(&p);
    assert_all_dropped(r, took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_collector_multi_thread_runtime() {
    let hung = HungCollector::start();
    let p = provider(hung.traces_url());
    make_spans(&p, SPANS);
    let (r, took) = timed_shutdown(&p);
    assert_all_dropped(r, took);
}

#[tokio::test(flavor = "current_thread")]
async fn unreachable_collector_current_thread_runtime() {
    let p = provider(unreachable_url());
    make_spans(&p, SPANS);
    let (r, took) = timed_shutdown(&p);
    assert_all_dropped(r, took);
    assert!(!r.timed_out, "a refused connection fails fast: {r:?}");
    assert_eq!(p.stats().dropped_export_failed(), SPANS);
    let err = p
        .stats()
        .last_error()
        .expect("the failure is kept for operators");
    assert!(err.contains("127.0.0.1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_collector_multi_thread_runtime() {
    let p = provider(unreachable_url());
    make_spans(&p, SPANS);
    let (r, took) = timed_shutdown(&p);
    assert_all_dropped(r, took);
    assert_eq!(p.stats().dropped(), SPANS);
}

#[test]
fn full_queue_drops_newest_and_counts() {
    let hung = HungCollector::start();
    let cfg = Config::default()
        .otlp_http(hung.traces_url())
        .batch(BatchConfig {
            max_queue_size: 4,
            max_export_batch_size: 4,
            ..batch()
        });
    let p = TracerProvider::from_config(cfg).unwrap();
    make_spans(&p, 100);
    let stats = p.stats();
    // 4 fit in the queue; the worker takes them as a full batch (and hangs
    // on the collector), 4 more fit; the rest were dropped as they ended.
    assert!(
        stats.dropped_queue_full() >= 90,
        "{}",
        stats.dropped_queue_full()
    );
    assert_eq!(stats.dropped_queue_full() + stats.pending(), 100);
    let (r, took) = timed_shutdown(&p);
    assert!(took < TIMEOUT + MARGIN);
    assert_eq!((r.exported, r.dropped), (0, 100));
}

#[test]
fn spans_after_shutdown_are_counted() {
    let receiver = OtlpReceiver::start();
    let p = provider(receiver.http_traces_url());
    make_spans(&p, 3);
    let r = p.shutdown(Duration::from_secs(10));
    assert_eq!((r.exported, r.dropped, r.timed_out), (3, 0, false));
    assert_eq!(receiver.wait_for_spans(3, Duration::from_secs(5)).len(), 3);
    make_spans(&p, 2);
    assert_eq!(p.stats().dropped_after_shutdown(), 2);
    assert_eq!(p.stats().exported(), 3);
}

#[test]
fn force_flush_exports_without_stopping() {
    let receiver = OtlpReceiver::start();
    let p = provider(receiver.http_traces_url());
    make_spans(&p, 2);
    assert!(p.force_flush(Duration::from_secs(10)));
    assert_eq!(receiver.spans().len(), 2);
    make_spans(&p, 1);
    let r = p.shutdown(Duration::from_secs(10));
    assert_eq!((r.exported, r.dropped), (3, 0));
}

#[test]
fn disabled_sdk_exports_nothing_and_assigns_no_ids() {
    let receiver = OtlpReceiver::start();
    let cfg = Config::from_lookup(|k| match k {
        "OTEL_SDK_DISABLED" => Some("true".into()),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some(receiver.http_traces_url()),
        _ => None,
    })
    .unwrap();
    let p = TracerProvider::from_config(cfg).unwrap();
    let subscriber = tracing_subscriber::registry().with(p.layer());
    obs_testing::subscriber::with_default(subscriber, || {
        let _s = tracing::info_span!("work").entered();
        assert!(obs_trace::context::current_context().is_none());
    });
    let r = p.shutdown(Duration::from_secs(1));
    assert_eq!((r.exported, r.dropped), (0, 0));
    assert_eq!(receiver.requests(), 0);
}
