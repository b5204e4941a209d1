//! Sustained throughput to a file, in elements (events) per second: batches
//! of 10 000 events (inside a span, 5 fields each), each batch written and
//! flushed to the file before its time is taken. obs-log blocking and
//! non-blocking lossless against `tracing-subscriber` `fmt().json()` over a
//! `BufWriter<File>`, in one criterion group, same run.
//!
//! Between batches (untimed) the file's lines are counted — every event of
//! the batch must be there — and the file is truncated, so the disk holds
//! one batch at a time however long criterion runs.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use obs_log::{Config, NonBlocking};
use tracing_subscriber::layer::SubscriberExt;

const BATCH: u64 = 10_000;

fn path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "obs-log-throughput-{}-{name}.log",
        std::process::id()
    ))
}

fn log_batch() {
    let span = tracing::info_span!("job", batch = 7u64);
    let _g = span.enter();
    for i in 0..BATCH {
        tracing::info!(
            user = "ann",
            item = i,
            ratio = 0.25,
            ok = true,
            method = "GET",
            "processed"
        );
    }
}

fn count_lines_and_truncate(p: &Path) -> u64 {
    let f = std::fs::File::open(p).unwrap();
    let n = std::io::BufReader::new(f).lines().count() as u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(0)
        .unwrap();
    n
}

/// Times `iters` batches through `dispatch`, each followed by `flush`.
fn timed(iters: u64, dispatch: &tracing_core::Dispatch, p: &Path, flush: &dyn Fn()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        tracing::dispatcher::with_default(dispatch, log_batch);
        flush();
        total += t.elapsed();
        assert_eq!(
            count_lines_and_truncate(p),
            BATCH,
            "{} lost lines",
            p.display()
        );
    }
    total
}

/// `tracing-subscriber` writes through `MakeWriter`; share one `BufWriter`.
#[derive(Clone)]
struct Shared(Arc<Mutex<BufWriter<std::fs::File>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap().flush()
    }
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("throughput_to_file");
    g.throughput(Throughput::Elements(BATCH))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    let p = path("obs");
    let (layer, handles) = obs_log::layer(Config::new().file(&p).unwrap()).unwrap();
    let d = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
    g.bench_function("obs/json_blocking", |b| {
        b.iter_custom(|iters| {
            timed(iters, &d, &p, &|| {
                assert!(handles.guard.flush(Duration::from_secs(60)));
            })
        })
    });
    drop(d);
    assert!(handles.guard.shutdown(Duration::from_secs(60)).completed);
    let _ = std::fs::remove_file(&p);

    let p = path("obs-nb");
    let (layer, handles) = obs_log::layer(
        Config::new()
            .file(&p)
            .unwrap()
            .non_blocking(NonBlocking::lossless()),
    )
    .unwrap();
    let d = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
    g.bench_function("obs/json_non_blocking_lossless", |b| {
        b.iter_custom(|iters| {
            timed(iters, &d, &p, &|| {
                assert!(handles.guard.flush(Duration::from_secs(60)));
            })
        })
    });
    drop(d);
    let r = handles.guard.shutdown(Duration::from_secs(60));
    assert!(r.completed && r.dropped.total() == 0, "{r}");
    let _ = std::fs::remove_file(&p);

    let p = path("ts");
    // Appending, as obs-log opens its file, so truncation between batches
    // moves the write position back to the start.
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .unwrap();
    f.set_len(0).unwrap();
    let file = Shared(Arc::new(Mutex::new(BufWriter::new(f))));
    let flush = file.clone();
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(move || file.clone());
    let d = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
    g.bench_function("anchor/tracing-subscriber-json_bufwriter", |b| {
        b.iter_custom(|iters| {
            timed(iters, &d, &p, &|| {
                flush.0.lock().unwrap().flush().unwrap();
            })
        })
    });
    let _ = std::fs::remove_file(&p);
    g.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
