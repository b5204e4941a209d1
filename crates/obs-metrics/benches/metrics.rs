//! obs-metrics against `prometheus-client` (the anchor), same run.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use obs_metrics::{Format, Registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PcCounter;
use prometheus_client::metrics::family::Family as PcFamily;
use prometheus_client::metrics::histogram::Histogram as PcHistogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    method: String,
    route: String,
    status: String,
}

fn labels(i: usize) -> Labels {
    Labels {
        method: "GET".into(),
        route: format!("/items/{i}"),
        status: "200".into(),
    }
}

fn counter_inc(c: &mut Criterion) {
    let mut g = c.benchmark_group("labelled_counter_inc");
    let registry = Registry::new();
    let family = registry
        .counter_family("requests", "Requests.", ["method", "route", "status"])
        .unwrap();
    let cached = family.get(["GET", "/items/{id}", "200"]);
    g.bench_function("obs/cached_handle", |b| b.iter(|| black_box(&cached).inc()));
    g.bench_function("obs/lookup_with", |b| {
        b.iter(|| family.with(black_box(["GET", "/items/{id}", "200"]), |c| c.inc()))
    });
    g.bench_function("obs/lookup_get_inc", |b| {
        b.iter(|| family.get(black_box(["GET", "/items/{id}", "200"])).inc())
    });

    let typed = registry
        .labelled::<obs_metrics::Counter, Labels>("typed_requests", "Requests.")
        .unwrap();
    let tl = Labels {
        method: "GET".into(),
        route: "/items/{id}".into(),
        status: "200".into(),
    };
    typed.get(&tl).inc();
    g.bench_function("obs/derive_lookup_with", |b| {
        b.iter(|| typed.with(black_box(&tl), |c| c.inc()))
    });

    let pc: PcFamily<Labels, PcCounter> = PcFamily::default();
    let l = Labels {
        method: "GET".into(),
        route: "/items/{id}".into(),
        status: "200".into(),
    };
    let pc_cached = pc.get_or_create(&l).clone();
    g.bench_function("anchor/family_get_or_create_inc", |b| {
        b.iter(|| pc.get_or_create(black_box(&l)).inc())
    });
    g.bench_function("anchor/cached_counter", |b| {
        b.iter(|| black_box(&pc_cached).inc())
    });
    g.finish();
}

fn histogram_observe(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram_observe");
    let buckets = obs_core::names::HTTP_DURATION_BUCKETS;
    let registry = Registry::new();
    let h = registry
        .histogram("latency_seconds", "Latency.", buckets)
        .unwrap();
    let pc = PcHistogram::new(buckets.iter().copied());
    let mut v = 0.0f64;
    g.bench_function("obs/observe", |b| {
        b.iter(|| {
            v = if v > 12.0 { 0.0 } else { v + 0.0137 };
            h.observe(black_box(v))
        })
    });
    let mut v = 0.0f64;
    g.bench_function("anchor/observe", |b| {
        b.iter(|| {
            v = if v > 12.0 { 0.0 } else { v + 0.0137 };
            pc.observe(black_box(v))
        })
    });
    g.finish();
}

fn encode_10k(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut g = c.benchmark_group("encode_10k_series");
    let registry = Registry::builder().cardinality_limit(N).build();
    let family = registry
        .counter_family("requests", "Requests.", ["method", "route", "status"])
        .unwrap();
    let mut pc_reg = prometheus_client::registry::Registry::default();
    let pc: PcFamily<Labels, PcCounter> = PcFamily::default();
    pc_reg.register("requests", "Requests.", pc.clone());
    for i in 0..N {
        family
            .get(["GET", &format!("/items/{i}"), "200"])
            .inc_by(i as u64);
        pc.get_or_create(&labels(i)).inc_by(i as u64);
    }
    let mut out = String::with_capacity(1 << 20);
    g.bench_function("obs/text_0.0.4", |b| {
        b.iter(|| {
            out.clear();
            registry.encode_into(Format::Text, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("anchor/prometheus_text_0.0.4", |b| {
        b.iter(|| {
            out.clear();
            prometheus_client::encoding::prometheus_text::encode(&mut out, &pc_reg).unwrap();
            black_box(out.len())
        })
    });
    g.bench_function("obs/openmetrics", |b| {
        b.iter(|| {
            out.clear();
            registry.encode_into(Format::OpenMetrics, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("anchor/openmetrics_text", |b| {
        b.iter(|| {
            out.clear();
            prometheus_client::encoding::text::encode(&mut out, &pc_reg).unwrap();
            black_box(out.len())
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = counter_inc, histogram_observe, encode_10k }
criterion_main!(benches);
