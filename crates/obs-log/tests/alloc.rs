//! Zero allocations per event in steady state, measured with a counting
//! global allocator (`obs_testing::alloc`). It counts only on the measuring thread, so
//! the test harness's own threads do not disturb it; the binary holds this
//! one test, so nothing else runs beside it.

#![allow(
    clippy::print_stdout,
    reason = "the counts per configuration, shown with --nocapture"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use obs_core::{CorrelationId, IdRecord, SpanId, TraceFlags, TraceId};
use obs_log::{Config, NonBlocking, Schema};
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static GLOBAL: obs_testing::alloc::CountingAllocator = obs_testing::alloc::CountingAllocator;

/// Allocations on this thread while logging `n` events inside two spans
/// with ids and five fields.
fn allocations(config: Config, n: u64) -> u64 {
    allocations_with(config, n, || {})
}

/// Holds its first write until the gate opens.
struct GatedSink(Arc<AtomicBool>);

impl std::io::Write for GatedSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        while !self.0.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn allocations_with(config: Config, n: u64, prime: impl FnOnce()) -> u64 {
    let (layer, handles) = obs_log::layer(config.filter("info")).unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let count = obs_testing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("request", route = "/items/{id}", method = "GET");
        IdRecord::update_span_id(&outer.id().unwrap(), |r| {
            *r = IdRecord::with_trace(TraceId::random(), SpanId::random(), TraceFlags::SAMPLED);
            r.correlation_id = Some(CorrelationId::new_v4());
        });
        let _o = outer.enter();
        let inner = tracing::info_span!("db", table = "items");
        let _i = inner.enter();
        prime();
        let log = |i: u64| {
            tracing::info!(user = "ann", item = i, ratio = 0.25, ok = true, debug = ?("a", 1), "served item {}", i);
            tracing::debug!(i, "disabled");
        };
        // Warm up: thread-local buffers, callsite caches, the buffer pool.
        for i in 0..10_000 {
            log(i);
        }
        obs_testing::alloc::count(|| {
            for i in 0..n {
                log(i);
            }
        })
        .0
    });
    drop(handles);
    count
}

#[test]
fn steady_state_logging_allocates_nothing() {
    // The allocator is registered: a known allocation is counted.
    assert_eq!(
        obs_testing::alloc::count(|| Vec::<u8>::with_capacity(8)).0,
        1
    );
    let n = 100_000;
    let mut failures = Vec::new();
    for schema in [
        Schema::Native,
        Schema::Otel,
        Schema::Ecs,
        Schema::Gcp,
        Schema::Datadog,
    ] {
        let blocking = allocations(
            Config::new()
                .schema(schema)
                .writer(std::io::sink())
                .blocking(),
            n,
        );
        println!("{schema:?} blocking: {blocking} allocations for {n} events");
        if blocking != 0 {
            failures.push(format!("{schema:?} blocking: {blocking}"));
        }
    }
    // The non-blocking producer recycles line buffers from the writer
    // thread; the pool holds as many buffers as can be in flight. Saturate it
    // first (a sink that holds the first write until the queue has
    // overflowed), then measure.
    let gate = Arc::new(AtomicBool::new(false));
    let sink = GatedSink(gate.clone());
    let nb = allocations_with(
        Config::new()
            .writer(sink)
            .non_blocking(NonBlocking::new().capacity(256)),
        n,
        || {
            for i in 0..1_000u64 {
                tracing::info!(user = "ann", item = i, ratio = 0.25, ok = true, debug = ?("a", 1), "served item {}", i);
            }
            gate.store(true, Ordering::SeqCst);
        },
    );
    println!("non-blocking: {nb} allocations for {n} events");
    if nb != 0 {
        failures.push(format!("non-blocking: {nb}"));
    }
    let human = allocations(
        Config::new()
            .format(obs_log::Format::Compact)
            .ansi(false)
            .writer(std::io::sink())
            .blocking(),
        n,
    );
    println!("compact: {human} allocations for {n} events");
    if human != 0 {
        failures.push(format!("compact: {human}"));
    }
    assert!(
        failures.is_empty(),
        "allocations in steady state: {failures:?}"
    );
}
