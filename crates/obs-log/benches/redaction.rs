//! What redaction costs per access line: the line `obs::http::server_layer()`
//! writes for every request (method, route, path, status, duration, sizes,
//! inside a request span with ids), with the default rules and with
//! redaction off, for a plain path and for a path that carries a token;
//! `tracing-subscriber`'s `fmt().json()` writes the same line in the same run.

use std::hint::black_box;
use std::io;
use std::time::Duration;

mod common;
use common::{obs_dispatch, ts_json_dispatch};

use criterion::{Criterion, criterion_group, criterion_main};
use obs_log::Config;

#[inline]
fn access_line(path: &str, i: u64) {
    tracing::event!(
        target: "obs::access",
        tracing::Level::INFO,
        http.request.method = "GET",
        http.route = "/items/{id}",
        url.path = path,
        http.response.status_code = 200u16,
        duration_ms = 0.25 + (i % 7) as f64,
        http.request.body.size = None::<u64>,
        http.response.body.size = Some(4u64),
        "request finished"
    );
}

fn bench(c: &mut Criterion, group: &str, path: &'static str) {
    let mut g = c.benchmark_group(group);
    let (on, _h1) = obs_dispatch(Config::new().writer(io::sink()));
    let (off, _h2) = obs_dispatch(Config::new().writer(io::sink()).redactor(None));
    let ts = ts_json_dispatch();
    for (name, dispatch) in [
        ("obs/json", &on),
        ("obs/json-no-redaction", &off),
        ("anchor/tracing-subscriber-json (no redaction)", &ts),
    ] {
        tracing::dispatcher::with_default(dispatch, || {
            let span = tracing::info_span!(
                "http.server",
                http.request.method = "GET",
                correlation_id = "550e8400-e29b-41d4-a716-446655440000",
            );
            let _g = span.enter();
            let mut i = 0u64;
            g.bench_function(name, |b| {
                b.iter(|| {
                    i += 1;
                    access_line(black_box(path), i)
                })
            });
        });
    }
    g.finish();
}

fn access_line_plain(c: &mut Criterion) {
    bench(c, "access_line/plain_path", "/items/12345");
}

fn access_line_token(c: &mut Criterion) {
    bench(
        c,
        "access_line/token_in_path",
        "/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
    );
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = access_line_plain, access_line_token
}
criterion_main!(benches);
