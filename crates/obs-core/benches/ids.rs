//! Id generation and parsing against the crates a user would otherwise reach
//! for, in the same run. Each group holds one anchor doing the same work as
//! the obs rows beside it:
//!
//! - `correlation_id_as_string` (the headline): a new UUID v4 correlation id
//!   as a `String`, obs's `generate(..).to_string()` against `uuid`'s
//!   `new_v4().to_string()`.
//! - `correlation_id_inline`: a new id formatted into an inline buffer, no
//!   heap (what obs's `CorrelationId` holds), against `uuid`'s `new_v4()`
//!   encoded into a stack buffer.
//! - `correlation_id_validate`: checking a 36-byte header value.
//! - `trace_id_parse`, `trace_id_format`, `trace_id_random`: 32-hex parse,
//!   format into a stack buffer, a fresh random 128-bit id.
//!
//! Run with `cargo bench -p obs-core --bench ids`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use obs_core::{CorrelationId, IdFormat, TraceId};

fn correlation_ids(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlation_id_as_string");
    g.bench_function("anchor/uuid_new_v4_to_string", |b| {
        b.iter(|| black_box(uuid::Uuid::new_v4().to_string()))
    });
    g.bench_function("obs/generate_uuid_v4_to_string", |b| {
        b.iter(|| black_box(CorrelationId::generate(IdFormat::UuidV4).to_string()))
    });
    g.finish();

    let mut g = c.benchmark_group("correlation_id_inline");
    g.bench_function("anchor/uuid_new_v4_encode_to_buffer", |b| {
        let mut buf = [0u8; 36];
        b.iter(|| {
            black_box(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf));
        })
    });
    g.bench_function("obs/generate_uuid_v4", |b| {
        b.iter(|| black_box(CorrelationId::generate(IdFormat::UuidV4)))
    });
    g.bench_function("obs/generate_uuid_v7", |b| {
        b.iter(|| black_box(CorrelationId::generate(IdFormat::UuidV7)))
    });
    g.bench_function("obs/generate_hex128", |b| {
        b.iter(|| black_box(CorrelationId::generate(IdFormat::Hex128)))
    });
    g.finish();

    let mut g = c.benchmark_group("correlation_id_validate");
    let header = "3f2c6a1e-9b7d-4c2a-8e1f-0a9b8c7d6e5f";
    g.bench_function("obs/parse_36", |b| {
        b.iter(|| black_box(CorrelationId::parse(black_box(header))))
    });
    g.bench_function("anchor/uuid_parse_str", |b| {
        b.iter(|| black_box(uuid::Uuid::parse_str(black_box(header))))
    });
    g.finish();
}

fn trace_ids(c: &mut Criterion) {
    let hex = "4bf92f3577b34da6a3ce929d0e0e4736";
    let id = TraceId::from_hex(hex).unwrap();
    let mut g = c.benchmark_group("trace_id_parse");
    g.bench_function("obs/parse", |b| {
        b.iter(|| black_box(TraceId::from_hex(black_box(hex))))
    });
    g.bench_function("anchor/uuid_parse_simple", |b| {
        b.iter(|| black_box(uuid::Uuid::try_parse(black_box(hex))))
    });
    g.finish();

    let mut g = c.benchmark_group("trace_id_format");
    g.bench_function("obs/format", |b| {
        b.iter(|| black_box(black_box(id).to_hex()))
    });
    g.bench_function("anchor/uuid_simple_encode", |b| {
        let u = uuid::Uuid::from_bytes(*id.as_bytes());
        let mut buf = [0u8; 32];
        b.iter(|| {
            black_box(black_box(u).simple().encode_lower(&mut buf));
        })
    });
    g.finish();

    let mut g = c.benchmark_group("trace_id_random");
    g.bench_function("obs/random", |b| b.iter(|| black_box(TraceId::random())));
    g.bench_function("anchor/uuid_new_v4", |b| {
        b.iter(|| black_box(uuid::Uuid::new_v4()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = correlation_ids, trace_ids
}
criterion_main!(benches);
