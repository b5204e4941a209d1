//! What `obs.server_layer()` costs per request against the stack a user
//! would glue together by hand, without a network: an axum router called
//! with `oneshot`, bare, wrapped by obs, and wrapped by the hand-glued
//! stack, in the same run, unsampled and sampled.
//!
//! - `baseline/axum-router`: the bare router, the floor (not compared).
//! - `obs/server_layer`: ids, server span, RED metrics, error scope, an
//!   access line through obs's non-blocking writer into `io::sink`; obs's
//!   layers alone on obs's own span store (`Obs::take_subscriber`), as
//!   `obs::init` installs them process-wide. Sampled,
//!   spans go to obs's exporter thread; its OTLP endpoint refuses
//!   connections, so exports fail and are counted, which costs the
//!   application thread nothing.
//! - `floor/tracing-shape`: what `tracing` itself costs for the shape of
//!   obs's request, with layers that do nothing: a span with the server
//!   span's 14 fields (3 of them empty) entered for the inner call and each
//!   poll, one `record` of the status, one event with the access line's 7
//!   fields, on a registry whose only layer is a no-op (unsampled group
//!   only; not compared). Everything obs adds above it is obs's own work.
//!   `floor/tracing-shape-store`: the same on obs's own span store
//!   (`obs_core::store::sole_subscriber` with a no-op layer), the store
//!   obs's layers stand on when obs is installed alone.
//! - `floor/by-hand`: obs's per-request behaviours written out by hand in
//!   one tower service, without `tracing` (the skip list; the correlation
//!   id read or made, set, echoed and made the thread's current id;
//!   `traceparent` read, trace and span ids; RED metrics; catch-panic; an
//!   access line of the same fields as obs's into a bounded buffer a writer
//!   thread empties): the least those behaviours cost (unsampled group
//!   only; not compared). See `support/by_hand.rs` for what it leaves out.
//! - `anchor/hand-glued`: tower-http `SetRequestIdLayer` /
//!   `PropagateRequestIdLayer` (UUID v4) + `TraceLayer` (span and response
//!   line at INFO), `tracing-subscriber` `fmt().json()` through
//!   `tracing-appender::non_blocking` into `io::sink`, `tracing-opentelemetry`
//!   over an `opentelemetry_sdk` tracer whose batch processor exports to a
//!   no-op exporter, and a `prometheus-client` histogram of request duration
//!   by method, route and status in a middleware.
//!
//! Both batch queues hold 65 536 spans and are exported every 100 ms, so no
//! span is dropped for a full queue on either side. Each stack is its own
//! `tracing::Dispatch`, set on the bench thread for its rows only (nothing
//! is installed globally), so one bench run measures all seven rows.

#![allow(
    clippy::print_stderr,
    reason = "the bench reports each stack's shutdown summary"
)]

#[path = "support/stacks.rs"]
mod stacks;

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use stacks::{app, hand_glued, obs_stack, request, served};
use tower::ServiceExt;

/// Whether the last measured row ran (a filter on the command line skips rows).
static RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn bench_router(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    router: &Router,
) {
    g.bench_function(name, |b| {
        RAN.store(true, std::sync::atomic::Ordering::Relaxed);
        b.iter(|| {
            let resp = rt
                .block_on(router.clone().oneshot(black_box(request())))
                .unwrap();
            assert_eq!(resp.status(), http::StatusCode::OK);
            resp
        })
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for sampled in [false, true] {
        let mut g = c.benchmark_group(if sampled {
            "server_layer_sampled"
        } else {
            "server_layer_unsampled"
        });
        g.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));

        bench_router(&mut g, &rt, "baseline/axum-router", &served(app()));

        let (obs, dispatch, router) = obs_stack(&rt, sampled, true);
        tracing::dispatcher::with_default(&dispatch, || {
            bench_router(&mut g, &rt, "obs/server_layer", &router);
        });
        drop((dispatch, router));
        let report = rt.block_on(obs.shutdown(Duration::from_secs(5)));
        eprintln!("obs (sampled: {sampled}): {report}");

        if !sampled {
            for (name, on_store) in [
                ("floor/tracing-shape", false),
                ("floor/tracing-shape-store", true),
            ] {
                let (floor, router) = stacks::floor(on_store);
                tracing::dispatcher::with_default(&floor, || {
                    bench_router(&mut g, &rt, name, &router);
                });
            }
            let (by_hand, router) = stacks::by_hand();
            bench_router(&mut g, &rt, "floor/by-hand", &router);
            drop(router);
            let (written, dropped) = by_hand.finish();
            eprintln!("by-hand: {written} lines written, {dropped} dropped");
        }

        let glued = hand_glued(sampled);
        RAN.store(false, std::sync::atomic::Ordering::Relaxed);
        tracing::dispatcher::with_default(&glued.dispatch, || {
            bench_router(&mut g, &rt, "anchor/hand-glued", &glued.router);
        });
        let mut metrics = String::new();
        prometheus_client::encoding::text::encode(&mut metrics, &glued.registry).unwrap();
        assert!(
            !RAN.load(std::sync::atomic::Ordering::Relaxed)
                || metrics.contains("route=\"/hello/{name}\""),
            "the anchor recorded no request: {metrics}"
        );
        drop((glued.dispatch, glued.router));
        let shutdown = glued.provider.shutdown();
        drop(glued.log_guard);
        eprintln!("hand-glued (sampled: {sampled}): tracer shutdown {shutdown:?}");
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
