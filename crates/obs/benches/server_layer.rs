//! What `obs.server_layer()` costs per request, without a network: an axum
//! router called with `oneshot`, bare and wrapped, in the same run (ids,
//! server span, RED metrics, error scope, access log line through obs's
//! non-blocking writer into `io::sink`). Unsampled and sampled (spans go to
//! the exporter thread; no collector listens, so exports fail and are
//! counted, which costs the application thread nothing).

#![allow(
    clippy::print_stderr,
    reason = "the bench reports obs's shutdown summary"
)]

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

async fn hello(axum::extract::Path(name): axum::extract::Path<String>) -> String {
    format!("Hello, {name}!")
}

fn app() -> Router {
    Router::new().route("/hello/{name}", get(hello))
}

fn request() -> http::Request<axum::body::Body> {
    http::Request::get("/hello/world")
        .header("user-agent", "bench")
        .body(axum::body::Body::empty())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sampler = std::env::var("OBS_BENCH_SAMPLER").unwrap_or_else(|_| "always_off".into());
    let lookup = |k: &str| match k {
        "OTEL_SERVICE_NAME" => Some("bench".to_owned()),
        "OTEL_TRACES_SAMPLER" => Some(sampler.clone()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:9".to_owned()),
        _ => None,
    };
    let config = obs::Config::from_lookup(lookup).unwrap().log(|l| {
        l.writer(std::io::sink())
            .non_blocking(obs::log::NonBlocking::new())
    });
    let obs = rt.block_on(async { obs::init(config) }).unwrap();
    let bare = app();
    let wrapped = app().layer(obs.server_layer());

    let mut g = c.benchmark_group(format!("server_layer_per_request_{sampler}"));
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("baseline/axum-router", |b| {
        b.iter(|| {
            rt.block_on(bare.clone().oneshot(black_box(request())))
                .unwrap()
        })
    });
    g.bench_function("obs/server_layer", |b| {
        b.iter(|| {
            rt.block_on(wrapped.clone().oneshot(black_box(request())))
                .unwrap()
        })
    });
    g.finish();
    let report = rt.block_on(obs.shutdown(Duration::from_secs(5)));
    eprintln!("{report}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
