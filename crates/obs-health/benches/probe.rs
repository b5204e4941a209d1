//! Probe cost: obs-health against the handlers a user would write by hand,
//! like for like. Every request goes through `Router::oneshot` (no
//! network), so the numbers are the handler cost alone.
//!
//! - `…_cached`: probes that run no check. obs in cached mode (a background
//!   poller runs the checks; the probe reads their latest results, plain,
//!   verbose or as health+json) against a hand-written handler reading one
//!   flag that a background task refreshes by running the same checks.
//! - `…_uncached`: probes that run the checks. obs in direct mode (the
//!   checks run concurrently, each under its timeout) against a hand-written
//!   handler running the same checks concurrently (`tokio::join!`).
//!
//! Two check sets: three trivial checks (pure framework overhead) and three
//! checks that each wait 1 ms, standing in for a dependency round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use obs_health::{Check, CheckResult, Health, Poller};
use tower::ServiceExt;

async fn trivial_dep() -> bool {
    std::hint::black_box(true)
}

async fn slow_dep() -> bool {
    tokio::time::sleep(Duration::from_millis(1)).await;
    true
}

fn obs_app(
    rt: &tokio::runtime::Runtime,
    slow: bool,
    cached: bool,
) -> (Router, Health, Option<Poller>) {
    let mut b = Health::builder().poll_interval(Duration::from_millis(200));
    for name in ["db", "cache", "queue"] {
        b = if slow {
            b.check(Check::new(name, slow_dep))
        } else {
            b.check(Check::new(name, || async { CheckResult::pass() }))
        };
    }
    let health = b.build().expect("valid checks");
    let poller = cached.then(|| {
        let _guard = rt.enter();
        health.spawn_poller().expect("runtime")
    });
    if cached {
        // let the first background round finish so probes read real results
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    }
    (Router::new().merge(health.router()), health, poller)
}

/// The three checks, run concurrently: all must pass.
async fn run_checks(slow: bool) -> bool {
    if slow {
        let (a, b, c) = tokio::join!(slow_dep(), slow_dep(), slow_dep());
        a && b && c
    } else {
        let (a, b, c) = tokio::join!(trivial_dep(), trivial_dep(), trivial_dep());
        a && b && c
    }
}

fn respond(ok: bool) -> (StatusCode, &'static str) {
    if ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "fail")
    }
}

/// The hand-written probe that runs the checks on every request.
fn anchor_uncached(slow: bool) -> Router {
    Router::new().route(
        "/readyz",
        get(move || async move { respond(run_checks(slow).await) }),
    )
}

/// The hand-written cached probe: a task runs the checks every 200 ms (as
/// obs's poller does here) and stores the verdict; the handler reads it.
fn anchor_cached(
    rt: &tokio::runtime::Runtime,
    slow: bool,
) -> (Router, tokio::task::JoinHandle<()>) {
    let ready = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ready);
    let task = rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            flag.store(run_checks(slow).await, Ordering::Release);
        }
    });
    // let the first round finish so probes read a real result
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    let router = Router::new().route(
        "/readyz",
        get(move || {
            let ready = Arc::clone(&ready);
            async move { respond(ready.load(Ordering::Acquire)) }
        }),
    );
    (router, task)
}

async fn hit(app: &Router, uri: &'static str, json: bool) {
    let mut req = Request::get(uri);
    if json {
        req = req.header("accept", "application/health+json");
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    std::hint::black_box(resp);
}

fn bench_probe(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for (checks, slow) in [("3_trivial_checks", false), ("3_checks_1ms_each", true)] {
        let (cached, _h1, _p1) = obs_app(&rt, slow, true);
        let (anchor, task) = anchor_cached(&rt, slow);
        let mut group = c.benchmark_group(format!("readyz_{checks}_cached"));
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        group.bench_function("obs/cached", |b| {
            b.to_async(&rt).iter(|| hit(&cached, "/readyz", false))
        });
        group.bench_function("obs/cached_verbose", |b| {
            b.to_async(&rt)
                .iter(|| hit(&cached, "/readyz?verbose", false))
        });
        group.bench_function("obs/cached_health_json", |b| {
            b.to_async(&rt).iter(|| hit(&cached, "/readyz", true))
        });
        group.bench_function("anchor/axum_cached_flag_handler", |b| {
            b.to_async(&rt).iter(|| hit(&anchor, "/readyz", false))
        });
        group.finish();
        task.abort();

        let (direct, _h2, _p2) = obs_app(&rt, slow, false);
        let anchor = anchor_uncached(slow);
        let mut group = c.benchmark_group(format!("readyz_{checks}_uncached"));
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        group.bench_function("obs/direct", |b| {
            b.to_async(&rt).iter(|| hit(&direct, "/readyz", false))
        });
        group.bench_function("anchor/axum_concurrent_handler", |b| {
            b.to_async(&rt).iter(|| hit(&anchor, "/readyz", false))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_probe);
criterion_main!(benches);
