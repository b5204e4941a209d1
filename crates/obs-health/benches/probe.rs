//! Probe cost: obs-health in cached and direct mode against the anchor a
//! user would write by hand — an axum handler running the same checks
//! serially on every probe. Every request goes through `Router::oneshot`
//! (no network), so the numbers are the handler cost alone.
//!
//! Two check sets: three trivial checks (pure framework overhead) and three
//! checks that each wait 1 ms, standing in for a dependency round trip.

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

fn anchor_app(slow: bool) -> Router {
    if slow {
        Router::new().route(
            "/readyz",
            get(|| async {
                let ok = slow_dep().await && slow_dep().await && slow_dep().await;
                if ok {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "fail")
                }
            }),
        )
    } else {
        Router::new().route(
            "/readyz",
            get(|| async {
                let ok = trivial_dep().await && trivial_dep().await && trivial_dep().await;
                if ok {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "fail")
                }
            }),
        )
    }
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
    for (group_name, slow) in [
        ("readyz_3_trivial_checks", false),
        ("readyz_3_checks_1ms_each", true),
    ] {
        let mut group = c.benchmark_group(group_name);
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        let (cached, _h1, _p1) = obs_app(&rt, slow, true);
        let (direct, _h2, _p2) = obs_app(&rt, slow, false);
        let anchor = anchor_app(slow);
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
        group.bench_function("obs/direct", |b| {
            b.to_async(&rt).iter(|| hit(&direct, "/readyz", false))
        });
        group.bench_function("anchor/axum_serial_handler", |b| {
            b.to_async(&rt).iter(|| hit(&anchor, "/readyz", false))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_probe);
criterion_main!(benches);
