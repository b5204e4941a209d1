//! obs-errors against the `sentry` crate, same run:
//! - `breadcrumb`: one `tracing::info!` inside a span through a Registry
//!   with our layer (a breadcrumb per log event) vs `sentry-tracing`'s layer
//!   (which turns INFO events into breadcrumbs), and the bare Registry.
//! - `capture_error_first_occurrence`: a capture that builds the whole
//!   report — obs with no dedup window (every capture is a first occurrence:
//!   message, source chain, scope, ids, scrubbing, queued for the sinks)
//!   against `sentry::capture_error` building its event for a transport that
//!   discards envelopes. No stack trace on either side. obs's queue holds
//!   65 536 reports and is flushed between timed batches (untimed), so no
//!   report is dropped for a full queue.
//! - `capture_error_repeat_in_window`: obs only, no anchor — a repeat of an
//!   error already held in the dedup window, folded into the held report
//!   (a counter bump). The `sentry` crate has nothing that does this work,
//!   so this row is not compared with it.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use obs_errors::{BacktraceMode, Config, FnSink, Reporter};
use tracing_subscriber::layer::SubscriberExt;

struct NoopTransport;

impl sentry::Transport for NoopTransport {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        black_box(envelope);
    }
}

fn sentry_hub() -> Arc<sentry::Hub> {
    let mut options = sentry::ClientOptions::new();
    options.dsn = Some("http://public@127.0.0.1:9/1".parse().expect("dsn"));
    options.transport = Some(Arc::new(Arc::new(NoopTransport)));
    let client = sentry::Client::from(options);
    Arc::new(sentry::Hub::new(
        Some(Arc::new(client)),
        Arc::new(sentry::Scope::default()),
    ))
}

const QUEUE: usize = 65_536;

fn reporter(window: Duration) -> Reporter {
    let config = Config::default()
        .backtrace(BacktraceMode::Off)
        .dedup_window(window)
        .queue_capacity(QUEUE)
        .expect("queue capacity");
    Reporter::builder(config)
        .sink(FnSink::new("discard", |r: &obs_errors::Report| {
            black_box(r);
            Ok(())
        }))
        .build()
        .expect("reporter")
}

#[derive(Debug)]
struct AppError(std::io::Error);

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("order 17 could not be saved")
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn breadcrumb(c: &mut Criterion) {
    let mut g = c.benchmark_group("breadcrumb");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    let bare = tracing_subscriber::registry();
    tracing::subscriber::with_default(bare, || {
        let _s = tracing::info_span!("request").entered();
        g.bench_function("baseline/registry_only", |b| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                tracing::info!(item = i, user = "ann", "loading item");
            })
        });
    });

    let rep = reporter(Duration::from_secs(60));
    let ours = tracing_subscriber::registry().with(rep.layer());
    tracing::subscriber::with_default(ours, || {
        let _s = tracing::info_span!("request").entered();
        g.bench_function("obs/breadcrumb_per_event", |b| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                tracing::info!(item = i, user = "ann", "loading item");
            })
        });
    });

    let hub = sentry_hub();
    sentry::Hub::run(hub, || {
        let theirs = tracing_subscriber::registry().with(sentry::integrations::tracing::layer());
        tracing::subscriber::with_default(theirs, || {
            let _s = tracing::info_span!("request").entered();
            g.bench_function("anchor/sentry_tracing_breadcrumb", |b| {
                let mut i = 0u64;
                b.iter(|| {
                    i += 1;
                    tracing::info!(item = i, user = "ann", "loading item");
                })
            });
        });
    });
    g.finish();
}

#[allow(
    clippy::print_stderr,
    reason = "the bench reports whether any report was dropped"
)]
fn capture(c: &mut Criterion) {
    let err = AppError(std::io::Error::other("disk full"));

    let mut g = c.benchmark_group("capture_error_first_occurrence");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let rep0 = reporter(Duration::ZERO);
    g.bench_function("obs/full_report", |b| {
        b.iter_custom(|iters| {
            // Timed in batches the queue holds, drained between them untimed.
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(QUEUE as u64 / 2);
                let t = Instant::now();
                for _ in 0..n {
                    black_box(rep0.capture_error(black_box(&err)));
                }
                total += t.elapsed();
                rep0.flush(Duration::from_secs(30)).expect("flush");
                left -= n;
            }
            total
        })
    });
    let hub = sentry_hub();
    sentry::Hub::run(hub, || {
        g.bench_function("anchor/sentry_capture_error", |b| {
            b.iter(|| black_box(sentry::capture_error(black_box(&err))))
        });
    });
    g.finish();
    let stats = rep0.stats();
    eprintln!(
        "obs/full_report: {} captured, {} reported, {} dropped",
        stats.captured(),
        stats.reported(),
        stats.dropped()
    );

    let mut g = c.benchmark_group("capture_error_repeat_in_window");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let rep = reporter(Duration::from_secs(3600));
    g.bench_function("obs/repeat_counter_bump", |b| {
        b.iter(|| black_box(rep.capture_error(black_box(&err))))
    });
    g.finish();
    let _ = rep.flush(Duration::from_secs(5));
}

criterion_group!(benches, breadcrumb, capture);
criterion_main!(benches);
