//! What `obs.grpc_server_layer()` costs per call against the stack a user
//! would glue together by hand, in the same run: a unary call from a tonic
//! channel to a tonic server over a real HTTP/2 loopback connection, the
//! server bare, behind obs's gRPC layer, and behind the hand-glued stack,
//! unsampled and sampled.
//!
//! - `baseline/tonic`: the bare server, the floor (not compared).
//! - `obs/grpc_server_layer`: the server span `{package.Service}/{Method}`
//!   ended at the trailers, correlation id, error scope,
//!   `rpc_server_call_duration_seconds`, an access line through obs's
//!   non-blocking writer into `io::sink`. Sampled, spans go to obs's
//!   exporter thread; its OTLP endpoint refuses connections, so exports fail
//!   and are counted, which costs the application thread nothing.
//! - `anchor/tower-http-grpc`: tower-http's `TraceLayer::new_for_grpc()`
//!   (span and response line at INFO), `tracing-subscriber`
//!   `fmt().json()` through `tracing-appender::non_blocking` into
//!   `io::sink`, and `tracing-opentelemetry` over an `opentelemetry_sdk`
//!   tracer whose batch processor exports to a no-op exporter. It records no
//!   metrics and no correlation id: obs does more per call.
//!
//! Found with this bench: obs's dispatch used to enable every library's
//! DEBUG and TRACE callsites (neither the log filter nor the error filter
//! gave `tracing` a maximum level, and breadcrumbs were kept from DEBUG),
//! so hyper's, h2's and tonic's own events were recorded on each call:
//! about 255 µs per call against the anchor's 148 µs. Both filters now give
//! their level and breadcrumbs start at INFO: about 153 µs against 145 µs.
//!
//! Both batch queues hold 65 536 spans and are exported every 100 ms. Each
//! stack is its own `tracing::Dispatch`, set on the bench thread for its
//! rows only; the server and the client run on that thread's
//! current-thread runtime, so the dispatch covers both.

#![allow(
    clippy::print_stderr,
    reason = "the bench reports each stack's shutdown summary"
)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use tonic::transport::{Channel, Endpoint, Server};

#[path = "support/anchors.rs"]
mod anchors;
#[path = "../tests/common/greeter.rs"]
mod greeter;
use anchors::{glued_tracing, obs_config};
use greeter::{GreeterClient, GreeterServer, HelloRequest};

/// Serves the greeter behind `layer` on a free loopback port, in a task of
/// the runtime `rt`; evaluates to the address.
macro_rules! serve {
    ($rt:expr, $layer:expr) => {{
        $rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr: SocketAddr = listener.local_addr().unwrap();
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            tokio::spawn(
                Server::builder()
                    .layer($layer)
                    .add_service(GreeterServer::hello())
                    .serve_with_incoming(incoming),
            );
            addr
        })
    }};
}

fn client(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> GreeterClient<Channel> {
    rt.block_on(async {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        GreeterClient::new(channel)
    })
}

fn bench_calls(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    client: &GreeterClient<Channel>,
) {
    g.bench_function(name, |b| {
        b.iter(|| {
            let mut client = client.clone();
            let reply = rt
                .block_on(client.say_hello(black_box(HelloRequest {
                    name: "world".into(),
                    count: 0,
                })))
                .unwrap();
            assert_eq!(reply.get_ref().message, "Hello, world!");
            reply
        })
    });
}

/// obs, its layers in a dispatch of their own.
fn obs_stack(rt: &tokio::runtime::Runtime, sampled: bool) -> (obs::Obs, tracing::Dispatch) {
    let config = obs_config(sampled).log(|l| {
        l.writer(std::io::sink())
            .non_blocking(obs::log::NonBlocking::new())
    });
    let obs = rt.block_on(async { obs::init(config) }).unwrap();
    // obs alone on a registry, as `obs::init` installs it process-wide.
    let dispatch = tracing::Dispatch::new(obs.take_subscriber().expect("not installed globally"));
    (obs, dispatch)
}

fn bench(c: &mut Criterion) {
    use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for sampled in [false, true] {
        let mut g = c.benchmark_group(if sampled {
            "grpc_server_sampled"
        } else {
            "grpc_server_unsampled"
        });
        g.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));

        let addr = serve!(rt, tower::layer::util::Identity::new());
        bench_calls(&mut g, &rt, "baseline/tonic", &client(&rt, addr));

        let (obs, dispatch) = obs_stack(&rt, sampled);
        tracing::dispatcher::with_default(&dispatch, || {
            let addr = serve!(rt, obs.grpc_server_layer());
            bench_calls(&mut g, &rt, "obs/grpc_server_layer", &client(&rt, addr));
        });
        let text = obs.metrics().encode(obs::metrics::Format::Text);
        assert!(
            text.contains(
                r#"rpc_method="obs.test.Greeter/SayHello",rpc_response_status_code="OK""#
            ),
            "obs recorded no call: {text}"
        );
        drop(dispatch);
        let report = rt.block_on(obs.shutdown(Duration::from_secs(5)));
        eprintln!("obs (sampled: {sampled}): {report}");

        let glued = glued_tracing(sampled);
        tracing::dispatcher::with_default(&glued.dispatch, || {
            let layer = TraceLayer::new_for_grpc()
                .make_span_with(
                    DefaultMakeSpan::new()
                        .level(tracing::Level::INFO)
                        .include_headers(false),
                )
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO));
            let addr = serve!(rt, layer);
            bench_calls(&mut g, &rt, "anchor/tower-http-grpc", &client(&rt, addr));
        });
        drop(glued.dispatch);
        let shutdown = glued.provider.shutdown();
        drop(glued.log_guard);
        eprintln!("hand-glued (sampled: {sampled}): tracer shutdown {shutdown:?}");
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
