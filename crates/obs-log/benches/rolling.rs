//! Rolling-file throughput for 1 M lines, obs-log against
//! `tracing-appender`'s rolling appender, in one criterion group, same run.
//!
//! `writer/*`: the same pre-formatted 1 M JSON lines (about 180 bytes each)
//! written line by line through each rolling writer's `io::Write` into a
//! fresh temp directory, daily rotation (UTC) and 5 files kept, then
//! flushed. obs-log once with the same settings and once also rotating
//! every 64 MiB (3 size rotations per run) with a 200 MiB total cap.
//!
//! `pipeline/*`: 1 M `tracing::info!` events through a full logging stack
//! onto the same rolling settings: obs-log's layer with its lossless
//! non-blocking writer, against `tracing-subscriber` `fmt().json()` over
//! `tracing-appender`'s lossless non-blocking writer.
//!
//! Between runs (untimed) the lines in the directory are counted, every one
//! must be there, and the directory is removed.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use obs_log::{Config, NonBlocking, RollingFile, Rotation};
use tracing_subscriber::layer::SubscriberExt;

const LINES: u64 = 1_000_000;

fn fresh_dir(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "obs-log-bench-rolling-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Counts the lines of every file in `dir`, then removes it.
fn count_and_remove(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let f = std::fs::File::open(e.unwrap().path()).unwrap();
        n += std::io::BufReader::new(f).lines().count() as u64;
    }
    std::fs::remove_dir_all(dir).unwrap();
    n
}

fn the_line() -> Vec<u8> {
    let mut l = br#"{"timestamp":"2026-12-04T20:17:28.714819Z","level":"INFO","target":"bench","message":"processed","user":"ann","item":42,"ratio":0.25,"ok":true,"method":"GET","spans":["job"]}"#.to_vec();
    l.push(b'\n');
    l
}

fn obs_file(dir: &Path, sized: bool) -> RollingFile {
    let f = RollingFile::builder(dir, "bench")
        .rotation(Rotation::Daily)
        .keep_files(5);
    if sized {
        f.max_bytes(64 << 20).max_total_bytes(200 << 20)
    } else {
        f.max_bytes(0)
    }
}

fn appender(dir: &Path) -> tracing_appender::rolling::RollingFileAppender {
    tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("bench")
        .filename_suffix("log")
        .max_log_files(5)
        .build(dir)
        .unwrap()
}

/// Runs `iters` times: a fresh directory, `run` timed, the lines checked.
fn timed(iters: u64, name: &str, run: &mut dyn FnMut(&Path)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = fresh_dir(name);
        let t = Instant::now();
        run(&dir);
        total += t.elapsed();
        let n = count_and_remove(&dir);
        // With a 200 MiB cap the oldest of 3 rotated files may be gone.
        assert!(n == LINES || name == "obs-sized", "{name}: {n} lines");
    }
    total
}

/// A group of 1 M-line runs: 10 samples of a few seconds each.
fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(LINES))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g
}

fn rolling(c: &mut Criterion) {
    let mut g = group(c, "rolling_file_1m_lines/writer");
    let line = the_line();

    g.bench_function("obs/daily", |b| {
        b.iter_custom(|iters| {
            timed(iters, "obs", &mut |dir| {
                let mut w = obs_file(dir, false).open().unwrap();
                for _ in 0..LINES {
                    w.write_all(&line).unwrap();
                }
                w.flush().unwrap();
                assert_eq!(w.stats().written(), LINES);
            })
        })
    });
    g.bench_function("obs/daily_64MiB_cap200MiB", |b| {
        b.iter_custom(|iters| {
            timed(iters, "obs-sized", &mut |dir| {
                let mut w = obs_file(dir, true).open().unwrap();
                for _ in 0..LINES {
                    w.write_all(&line).unwrap();
                }
                w.flush().unwrap();
                assert_eq!(w.stats().written(), LINES);
                assert_eq!(w.rotations(), 2);
            })
        })
    });
    g.bench_function("anchor/tracing-appender_daily", |b| {
        b.iter_custom(|iters| {
            timed(iters, "ta", &mut |dir| {
                let mut w = appender(dir);
                for _ in 0..LINES {
                    w.write_all(&line).unwrap();
                }
                w.flush().unwrap();
            })
        })
    });

    let events = || {
        let span = tracing::info_span!("job");
        let _g = span.enter();
        for _ in 0..LINES {
            tracing::info!(
                user = "ann",
                item = 42,
                ratio = 0.25,
                ok = true,
                method = "GET",
                "processed"
            );
        }
    };
    g.finish();
    let mut g = group(c, "rolling_file_1m_lines/pipeline");
    g.bench_function("obs/layer_non_blocking_lossless", |b| {
        b.iter_custom(|iters| {
            timed(iters, "obs-pipe", &mut |dir| {
                let (layer, handles) = obs_log::layer(
                    Config::new()
                        .rolling_file(obs_file(dir, false))
                        .non_blocking(NonBlocking::lossless()),
                )
                .unwrap();
                let d = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
                tracing::dispatcher::with_default(&d, events);
                let r = handles.guard.shutdown(Duration::from_secs(60));
                assert!(r.completed && r.written == LINES, "{r}");
            })
        })
    });
    g.bench_function(
        "anchor/fmt-json_tracing-appender_non_blocking_lossless",
        |b| {
            b.iter_custom(|iters| {
                timed(iters, "ta-pipe", &mut |dir| {
                    let (nb, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                        .lossy(false)
                        .finish(appender(dir));
                    let layer = tracing_subscriber::fmt::layer().json().with_writer(nb);
                    let d = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
                    tracing::dispatcher::with_default(&d, events);
                    drop(d);
                    // Dropping the guard drains the queue and flushes.
                    drop(guard);
                })
            })
        },
    );
    g.finish();
}

criterion_group!(benches, rolling);
criterion_main!(benches);
