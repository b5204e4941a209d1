//! Sustained throughput: 1 M events (inside a span, 5 fields) to a file,
//! obs-log (blocking and non-blocking lossless) against
//! `tracing-subscriber` json + `BufWriter`, in the same run. Prints events
//! per second and checks that every line arrived.

#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

use std::io::{BufRead, BufWriter};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use obs_log::{Config, NonBlocking};
use tracing_subscriber::layer::SubscriberExt;

const EVENTS: u64 = 1_000_000;

fn path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "obs-log-throughput-{}-{name}.log",
        std::process::id()
    ))
}

fn run(name: &str, dispatch: tracing_core::Dispatch, finish: impl FnOnce()) -> f64 {
    let start = Instant::now();
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("job", batch = 7u64);
        let _g = span.enter();
        for i in 0..EVENTS {
            tracing::info!(
                user = "ann",
                item = i,
                ratio = 0.25,
                ok = true,
                method = "GET",
                "processed"
            );
        }
    });
    drop(dispatch);
    finish();
    let secs = start.elapsed().as_secs_f64();
    let rate = EVENTS as f64 / secs;
    println!("{name:<40} {:>10.0} events/s ({secs:.3} s)", rate);
    rate
}

fn count_lines(p: &PathBuf) -> u64 {
    let f = std::fs::File::open(p).unwrap();
    let n = std::io::BufReader::new(f).lines().count() as u64;
    let _ = std::fs::remove_file(p);
    n
}

/// `tracing-subscriber` writes through `MakeWriter`; share one `BufWriter`.
#[derive(Clone)]
struct Shared(Arc<Mutex<BufWriter<std::fs::File>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap().flush()
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let p = path("obs");
    let (layer, handles) = obs_log::layer(Config::new().file(&p).unwrap()).unwrap();
    let d = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
    let obs = run("obs/json blocking (file)", d, || {
        assert!(handles.guard.shutdown(Duration::from_secs(60)).completed);
    });
    assert_eq!(count_lines(&p), EVENTS, "obs blocking lost lines");

    let p = path("obs-nb");
    let (layer, handles) = obs_log::layer(
        Config::new()
            .file(&p)
            .unwrap()
            .non_blocking(NonBlocking::lossless()),
    )
    .unwrap();
    let d = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
    let obs_nb = run("obs/json non-blocking lossless (file)", d, || {
        let r = handles.guard.shutdown(Duration::from_secs(60));
        assert!(r.completed && r.dropped.total() == 0, "{r}");
    });
    assert_eq!(count_lines(&p), EVENTS, "obs non-blocking lost lines");

    let p = path("ts");
    let file = Shared(Arc::new(Mutex::new(BufWriter::new(
        std::fs::File::create(&p).unwrap(),
    ))));
    let flush = file.clone();
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(move || file.clone());
    let d = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
    let anchor = run("anchor/tracing-subscriber-json BufWriter", d, || {
        use std::io::Write;
        flush.0.lock().unwrap().flush().unwrap();
    });
    assert_eq!(count_lines(&p), EVENTS);
    println!(
        "ratio obs blocking / anchor: {:.2}x, obs non-blocking / anchor: {:.2}x",
        obs / anchor,
        obs_nb / anchor
    );
}
