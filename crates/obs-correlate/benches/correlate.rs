//! Id generation and the server layer's per-request cost against
//! `tower-http`'s request-id layers (`SetRequestIdLayer` +
//! `PropagateRequestIdLayer` with `MakeRequestUuid`), in the same run.
//!
//! The layers wrap a trivial `tower::service_fn` and are driven directly (no
//! network, no runtime: every future completes on its first poll), so the
//! numbers are the layers' own cost. Each iteration builds the request
//! (same for every variant) and drops the response; `baseline/service_fn`
//! measures exactly that without a layer, so a layer's overhead is its time
//! minus the baseline. The first groups install no `tracing` subscriber, as
//! the anchor records nothing into spans; the last installs a registry.
//!
//! Run with `cargo bench -p obs-correlate --bench correlate -- --noplot`.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use http::{Request, Response};
use obs_core::{CorrelationId, IdFormat};
use obs_correlate::CorrelationLayer;
use tower::{Service, ServiceBuilder, service_fn};
use tower_http::request_id::{
    MakeRequestId, MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer,
};

fn generation(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_id_as_header_value");
    let req = Request::new(());
    g.bench_function("anchor/tower_http_make_request_uuid", |b| {
        let mut make = MakeRequestUuid;
        b.iter(|| black_box(make.make_request_id(black_box(&req))))
    });
    for (name, format) in [
        ("obs/uuid_v4", IdFormat::UuidV4),
        ("obs/uuid_v7", IdFormat::UuidV7),
        ("obs/hex128", IdFormat::Hex128),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let id = CorrelationId::generate(black_box(format));
                black_box(http::HeaderValue::from_bytes(id.as_bytes()))
            })
        });
    }
    g.finish();
}

fn request(header: Option<&'static str>) -> Request<()> {
    let mut b = Request::builder().uri("/items/42");
    if let Some(v) = header {
        b = b.header("x-request-id", v).header("x-correlation-id", v);
    }
    b.body(()).unwrap_or_default()
}

fn drive<S>(svc: &mut S, req: Request<()>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    // Every future here is ready on its first poll.
    match svc.call(req).now_or_never() {
        Some(Ok(res)) => res,
        _ => Response::new(()),
    }
}

fn per_request(c: &mut Criterion) {
    let handler =
        || service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let anchor = || {
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            .service(handler())
    };
    let ours = || {
        ServiceBuilder::new()
            .layer(CorrelationLayer::new())
            .service(handler())
    };
    for (group, header) in [
        ("layer_per_request/no_incoming_id", None),
        (
            "layer_per_request/valid_incoming_id",
            Some("3f2c6a1e-9b7d-4c2a-8e1f-0a9b8c7d6e5f"),
        ),
    ] {
        let mut g = c.benchmark_group(group);
        let mut svc = handler();
        g.bench_function("baseline/service_fn", |b| {
            b.iter(|| black_box(drive(&mut svc, request(header))))
        });
        let mut svc = anchor();
        g.bench_function("anchor/tower_http_set_and_propagate_request_id", |b| {
            b.iter(|| black_box(drive(&mut svc, request(header))))
        });
        let mut svc = ours();
        g.bench_function("obs/correlation_layer", |b| {
            b.iter(|| black_box(drive(&mut svc, request(header))))
        });
        g.finish();
    }

    // With a `tracing` registry installed the layer also creates the
    // `request` span and writes the id into its IdRecord (what makes log
    // lines carry it); the anchor does no such work.
    let mut g = c.benchmark_group("layer_per_request/with_registry_subscriber");
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry());
    let header = Some("3f2c6a1e-9b7d-4c2a-8e1f-0a9b8c7d6e5f");
    let mut svc = handler();
    g.bench_function("baseline/service_fn", |b| {
        b.iter(|| black_box(drive(&mut svc, request(header))))
    });
    let mut svc = anchor();
    g.bench_function("anchor/tower_http_set_and_propagate_request_id", |b| {
        b.iter(|| black_box(drive(&mut svc, request(header))))
    });
    let mut svc = ours();
    g.bench_function("obs/correlation_layer_with_request_span", |b| {
        b.iter(|| black_box(drive(&mut svc, request(header))))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = generation, per_request }
criterion_main!(benches);
