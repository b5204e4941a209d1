//! obs-log against `tracing-subscriber` `fmt().json()`, `slog-json` and
//! `tracing-appender::non_blocking`, in the same run.

#![allow(
    clippy::print_stderr,
    reason = "the bench reports the writer's shutdown summary"
)]

use std::hint::black_box;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

mod common;
use common::{obs_dispatch, ts_json_dispatch};

use criterion::{Criterion, criterion_group, criterion_main};
use obs_log::{Config, NonBlocking};
use slog::Drain;
use tracing_subscriber::layer::SubscriberExt;

/// What `tracing` itself costs a layer before it writes a byte: dispatch,
/// the registry's current-span lookup, and visiting the five fields with a
/// visitor that does nothing. No layer on `tracing` can go below this.
struct Floor;

struct NoVisit;

impl tracing_core::field::Visit for NoVisit {
    fn record_debug(&mut self, _: &tracing_core::Field, v: &dyn std::fmt::Debug) {
        black_box(v);
    }
}

impl<S> tracing_subscriber::Layer<S> for Floor
where
    S: tracing_core::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(
        &self,
        event: &tracing_core::Event<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = ctx.event_span(event);
        black_box(span.map(|s| s.name()));
        event.record(&mut NoVisit);
    }
}

fn floor_dispatch() -> tracing_core::Dispatch {
    tracing_core::Dispatch::new(
        tracing_subscriber::registry()
            .with(Floor)
            .with(tracing_subscriber::filter::LevelFilter::INFO),
    )
}

#[inline]
fn event(i: u64) {
    tracing::info!(
        user = "ann",
        item = i,
        ratio = 0.25,
        ok = true,
        method = "GET",
        "served item"
    );
}

/// Runs `f` with `dispatch` as the default, inside a span with two fields.
fn in_span(dispatch: &tracing_core::Dispatch, f: impl FnOnce()) {
    tracing::dispatcher::with_default(dispatch, || {
        let span = tracing::info_span!("request", route = "/items/{id}", request_id = 42u64);
        let _g = span.enter();
        f();
    });
}

/// Benches `event` under `dispatch`, inside the span of [`in_span`].
fn bench_events(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    dispatch: &tracing_core::Dispatch,
) {
    in_span(dispatch, || {
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                event(black_box(i))
            })
        });
    });
}

fn event_in_span(c: &mut Criterion) {
    let mut g = c.benchmark_group("event_in_span_5_fields");
    let (obs, _h) = obs_dispatch(Config::new().writer(io::sink()));
    bench_events(&mut g, "obs/json", &obs);
    let (obs_plain, _h2) = obs_dispatch(Config::new().writer(io::sink()).redactor(None));
    bench_events(&mut g, "obs/json-no-redaction", &obs_plain);
    let ts = ts_json_dispatch();
    bench_events(&mut g, "anchor/tracing-subscriber-json", &ts);
    let floor = floor_dispatch();
    bench_events(&mut g, "floor/tracing-registry-noop-layer", &floor);
    let drain = Mutex::new(slog_json::Json::default(io::sink())).fuse();
    let root = slog::Logger::root(drain, slog::o!());
    let span_logger = root.new(slog::o!("route" => "/items/{id}", "request_id" => 42u64));
    let mut i = 0u64;
    g.bench_function("anchor/slog-json", |b| {
        b.iter(|| {
            i += 1;
            let i = black_box(i);
            slog::info!(span_logger, "served item"; "user" => "ann", "item" => i, "ratio" => 0.25, "ok" => true, "method" => "GET");
        })
    });
    g.finish();
}

fn span_and_event(c: &mut Criterion) {
    let mut g = c.benchmark_group("span_and_event");
    let (obs, _h) = obs_dispatch(Config::new().writer(io::sink()));
    let ts = ts_json_dispatch();
    for (name, d) in [("obs/json", &obs), ("anchor/tracing-subscriber-json", &ts)] {
        tracing::dispatcher::with_default(d, || {
            let mut i = 0u64;
            g.bench_function(name, |b| {
                b.iter(|| {
                    i += 1;
                    let span =
                        tracing::info_span!("request", route = "/items/{id}", request_id = i);
                    let _g = span.enter();
                    event(black_box(i));
                })
            });
        });
    }
    g.finish();
}

fn disabled_event(c: &mut Criterion) {
    let mut g = c.benchmark_group("disabled_event");
    let (obs, _h) = obs_dispatch(Config::new().writer(io::sink()));
    let ts = ts_json_dispatch();
    for (name, d) in [("obs/json", &obs), ("anchor/tracing-subscriber-json", &ts)] {
        tracing::dispatcher::with_default(d, || {
            g.bench_function(name, |b| {
                b.iter(|| tracing::debug!(x = black_box(1u64), "disabled"))
            });
        });
    }
    g.finish();
}

fn non_blocking_producer(c: &mut Criterion) {
    let mut g = c.benchmark_group("non_blocking_producer");
    let (obs, h) = obs_dispatch(
        Config::new()
            .writer(io::sink())
            .non_blocking(NonBlocking::new()),
    );
    bench_events(&mut g, "obs/json", &obs);
    let report = h.guard.shutdown(Duration::from_secs(10));
    let (obs_lossless, h2) = obs_dispatch(
        Config::new()
            .writer(io::sink())
            .non_blocking(NonBlocking::lossless()),
    );
    bench_events(&mut g, "obs/json-lossless", &obs_lossless);
    let lossless = h2.guard.shutdown(Duration::from_secs(10));
    let (writer, _guard) = tracing_appender::non_blocking(io::sink());
    let layer = tracing_subscriber::fmt::layer().json().with_writer(writer);
    let ts = tracing_core::Dispatch::new(
        tracing_subscriber::registry()
            .with(layer)
            .with(tracing_subscriber::filter::LevelFilter::INFO),
    );
    bench_events(&mut g, "anchor/tracing-appender-json", &ts);
    g.finish();
    eprintln!("obs non-blocking bench (default policy): {report}");
    eprintln!("obs non-blocking bench (lossless): {lossless}");
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = event_in_span, span_and_event, disabled_event, non_blocking_producer
}
criterion_main!(benches);
