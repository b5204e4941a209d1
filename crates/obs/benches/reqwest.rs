//! What the reqwest middleware costs per call, without a network: a
//! `reqwest-middleware` client whose last middleware answers `200` at once,
//! bare, with `obs::reqwest::middleware()`, and with `reqwest-tracing`'s
//! `TracingMiddleware`, in the same run, sampled and unsampled.
//!
//! - `baseline/terminal`: the client and the answering middleware alone, the
//!   floor (not compared).
//! - `obs/middleware`: client span, `traceparent` (and `tracestate`) written
//!   into the request, `http_client_request_duration_seconds`, the span
//!   handed to obs's exporter thread when sampled (its OTLP endpoint refuses
//!   connections, which costs the calling thread nothing).
//! - `anchor/reqwest-tracing`: `TracingMiddleware::default()` under
//!   `tracing-opentelemetry` over an `opentelemetry_sdk` tracer with a batch
//!   processor and a no-op exporter. reqwest-tracing 0.7 supports
//!   OpenTelemetry only up to 0.32 while the workspace uses 0.33, so the
//!   anchor injects no `traceparent` and records no metric: it does less
//!   work than obs's row.
//!
//! Each stack is its own `tracing::Dispatch`, set on the bench thread for its
//! rows only.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::Extensions;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tracing_subscriber::layer::SubscriberExt;

#[path = "support/anchors.rs"]
#[allow(
    dead_code,
    reason = "this bench's anchor has a tracing half of its own"
)]
mod anchors;
use anchors::{NoopExporter, obs_config};

/// Answers every request with an empty `200`.
struct Answer;

#[async_trait::async_trait]
impl Middleware for Answer {
    async fn handle(
        &self,
        req: reqwest::Request,
        _: &mut Extensions,
        _: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        black_box(req);
        Ok(reqwest::Response::from(http::Response::new(
            reqwest::Body::from(""),
        )))
    }
}

fn obs_stack(
    rt: &tokio::runtime::Runtime,
    sampled: bool,
) -> (obs::Obs, tracing::Dispatch, ClientWithMiddleware) {
    let config = obs_config(sampled).log(|l| l.writer(std::io::sink()));
    let obs = rt.block_on(async { obs::init(config) }).unwrap();
    // obs alone on a registry, as `obs::init` installs it process-wide.
    let dispatch = tracing::Dispatch::new(obs.take_subscriber().expect("not installed globally"));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(obs.reqwest_middleware())
        .with(Answer)
        .build();
    (obs, dispatch, client)
}

fn anchor_stack(sampled: bool) -> (SdkTracerProvider, tracing::Dispatch, ClientWithMiddleware) {
    let provider = SdkTracerProvider::builder()
        .with_sampler(if sampled {
            Sampler::AlwaysOn
        } else {
            Sampler::AlwaysOff
        })
        .with_span_processor(BatchSpanProcessor::builder(NoopExporter).build())
        .build();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
    );
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(reqwest_tracing::TracingMiddleware::default())
        .with(Answer)
        .build();
    (provider, dispatch, client)
}

fn call(rt: &tokio::runtime::Runtime, client: &ClientWithMiddleware) -> reqwest::Response {
    let resp = rt
        .block_on(client.get("http://api.example.com/items/42").send())
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bare = ClientBuilder::new(reqwest::Client::new())
        .with(Answer)
        .build();
    for sampled in [false, true] {
        let suffix = if sampled { "sampled" } else { "unsampled" };
        let mut g = c.benchmark_group(format!("reqwest_middleware_{suffix}"));
        g.bench_function("baseline/terminal", |b| b.iter(|| call(&rt, &bare)));
        let (obs, dispatch, client) = obs_stack(&rt, sampled);
        tracing::dispatcher::with_default(&dispatch, || {
            g.bench_function("obs/middleware", |b| b.iter(|| call(&rt, &client)));
        });
        let _ = obs.shutdown_blocking(std::time::Duration::from_secs(2));
        let (provider, dispatch, client) = anchor_stack(sampled);
        tracing::dispatcher::with_default(&dispatch, || {
            g.bench_function("anchor/reqwest-tracing", |b| b.iter(|| call(&rt, &client)));
        });
        let _ = provider.shutdown();
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
