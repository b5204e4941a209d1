//! The non-blocking writer: lossless in blocking mode, exact accounting under
//! drop policies, bounded shutdown.

mod common;

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::SharedBuf;
use obs_log::{Config, NonBlocking, OverflowPolicy};
use tracing_core::Level;
use tracing_subscriber::layer::SubscriberExt;

/// Checks lines as they arrive (1 M lines are too many to keep): each line
/// carries `"t":<thread>,"i":<seq>` and must follow the previous line of
/// its thread.
#[derive(Clone)]
struct OrderChecker {
    state: Arc<Mutex<OrderState>>,
}

struct OrderState {
    partial: Vec<u8>,
    next: Vec<u64>,
    lines: u64,
    other: Vec<String>,
}

fn number_after(line: &[u8], key: &[u8]) -> Option<u64> {
    let pos = line.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = line[pos..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&line[pos..pos + digits])
        .ok()?
        .parse()
        .ok()
}

impl Write for OrderChecker {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let mut s = self.state.lock().unwrap();
        s.partial.extend_from_slice(b);
        let mut start = 0;
        let buf = std::mem::take(&mut s.partial);
        while let Some(nl) = buf[start..].iter().position(|&c| c == b'\n') {
            let line = &buf[start..start + nl];
            start += nl + 1;
            match (number_after(line, b"\"t\":"), number_after(line, b"\"i\":")) {
                (Some(t), Some(i)) => {
                    let t = t as usize;
                    assert_eq!(i, s.next[t], "thread {t}: line out of order or missing");
                    s.next[t] += 1;
                    s.lines += 1;
                }
                _ => s.other.push(String::from_utf8_lossy(line).into_owned()),
            }
        }
        s.partial = buf[start..].to_vec();
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn one_million_lines_arrive_complete_and_in_order() {
    const THREADS: usize = 4;
    const PER_THREAD: u64 = 250_000;
    let checker = OrderChecker {
        state: Arc::new(Mutex::new(OrderState {
            partial: Vec::new(),
            next: vec![0; THREADS],
            lines: 0,
            other: Vec::new(),
        })),
    };
    let config = Config::new()
        .writer(checker.clone())
        .non_blocking(NonBlocking::lossless().capacity(1024));
    let (layer, handles) = obs_log::layer(config).unwrap();
    let dispatch = obs_testing::subscriber::dispatch(tracing_subscriber::registry().with(layer));
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let dispatch = dispatch.clone();
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..PER_THREAD {
                        tracing::info!(t = t as u64, i, "line");
                    }
                });
            });
        }
    });
    let report = handles.guard.shutdown(Duration::from_secs(120));
    assert!(report.completed, "{report}");
    let s = checker.state.lock().unwrap();
    assert_eq!(s.lines, THREADS as u64 * PER_THREAD);
    assert!(s.next.iter().all(|&n| n == PER_THREAD), "{:?}", s.next);
    assert_eq!(report.written, THREADS as u64 * PER_THREAD);
    assert_eq!(report.dropped.total(), 0);
    assert!(
        s.other.is_empty(),
        "no summary line when nothing was lost: {:?}",
        s.other
    );
}

/// A sink that takes a while for every write call.
#[derive(Clone)]
struct SlowSink {
    inner: SharedBuf,
    delay: Duration,
}

impl Write for SlowSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        std::thread::sleep(self.delay);
        self.inner.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts application lines (`"n":`) and the totals announced by summary lines.
fn tally(out: &SharedBuf) -> (u64, Vec<serde_json::Value>) {
    let mut app = 0;
    let mut summaries = Vec::new();
    for v in out.json_lines() {
        if v.get("n").is_some() {
            app += 1;
        } else {
            assert_eq!(v["target"], "obs_log", "{v}");
            summaries.push(v);
        }
    }
    (app, summaries)
}

fn run_slow(
    nb: NonBlocking,
    level: Level,
    total: u64,
) -> (SharedBuf, obs_log::LogStats, obs_log::ShutdownReport) {
    let out = SharedBuf::default();
    let sink = SlowSink {
        inner: out.clone(),
        delay: Duration::from_micros(200),
    };
    let config = Config::new().filter("trace").writer(sink).non_blocking(nb);
    let (layer, handles) = obs_log::layer(config).unwrap();
    let stats = handles.stats.clone();
    let subscriber = tracing_subscriber::registry().with(layer);
    obs_testing::subscriber::with_default(subscriber, || {
        for n in 0..total {
            match level {
                Level::INFO => tracing::info!(n, "burst"),
                Level::DEBUG => tracing::debug!(n, "burst"),
                _ => tracing::warn!(n, "burst"),
            }
        }
    });
    let report = handles.guard.shutdown(Duration::from_secs(60));
    (out, stats, report)
}

#[test]
fn slow_sink_drop_newest_reports_exactly_what_did_not_arrive() {
    const TOTAL: u64 = 20_000;
    let (out, stats, report) = run_slow(NonBlocking::new().capacity(64), Level::INFO, TOTAL);
    assert!(report.completed, "{report}");
    let (arrived, summaries) = tally(&out);
    let dropped = stats.dropped(Level::INFO);
    assert!(
        dropped > 0,
        "the burst must overflow a 64-line queue behind a slow sink"
    );
    assert_eq!(
        arrived + dropped,
        TOTAL,
        "arrived {arrived} + dropped {dropped}"
    );
    assert_eq!(report.dropped.get(Level::INFO), dropped);
    assert_eq!(report.dropped.total(), dropped);
    assert_eq!(report.written, arrived);
    // The final summary line carries the same totals.
    let last = summaries.last().expect("a summary line");
    assert_eq!(last["message"], "obs-log summary");
    assert_eq!(last["dropped"], dropped);
    assert_eq!(last["dropped.info"], dropped);
    assert_eq!(last["written"], arrived);
    // Interim summaries report deltas that add up to at most the total.
    let interim: u64 = summaries[..summaries.len() - 1]
        .iter()
        .map(|s| s["dropped"].as_u64().unwrap())
        .sum();
    assert!(interim <= dropped);
}

#[test]
fn slow_sink_drop_oldest_reports_exactly_what_did_not_arrive() {
    const TOTAL: u64 = 20_000;
    let nb = NonBlocking::new()
        .capacity(64)
        .policy(Level::INFO, OverflowPolicy::DropOldest);
    let (out, stats, report) = run_slow(nb, Level::INFO, TOTAL);
    assert!(report.completed, "{report}");
    let (arrived, _) = tally(&out);
    let dropped = stats.dropped_total();
    assert!(dropped > 0);
    assert_eq!(arrived + dropped, TOTAL);
    // Drop-oldest keeps the newest lines: the last line logged arrived.
    let last_n = out
        .json_lines()
        .iter()
        .filter_map(|v| v.get("n").and_then(|n| n.as_u64()))
        .max();
    assert_eq!(last_n, Some(TOTAL - 1));
}

#[test]
fn debug_lines_go_first_and_blocking_warn_lines_are_never_dropped() {
    let out = SharedBuf::default();
    let sink = SlowSink {
        inner: out.clone(),
        delay: Duration::from_micros(200),
    };
    let config = Config::new().filter("trace").writer(sink).non_blocking(
        NonBlocking::new()
            .capacity(64)
            .policy(Level::WARN, OverflowPolicy::Block),
    );
    let (layer, handles) = obs_log::layer(config).unwrap();
    let stats = handles.stats.clone();
    let subscriber = tracing_subscriber::registry().with(layer);
    obs_testing::subscriber::with_default(subscriber, || {
        for n in 0..5_000u64 {
            tracing::debug!(n, "d");
            tracing::warn!(n, "w");
        }
    });
    let report = handles.guard.shutdown(Duration::from_secs(60));
    assert!(report.completed);
    let lines = out.json_lines();
    let warns = lines.iter().filter(|v| v["message"] == "w").count() as u64;
    let debugs = lines.iter().filter(|v| v["message"] == "d").count() as u64;
    assert_eq!(warns, 5_000, "WARN blocks: every line arrives");
    assert_eq!(stats.dropped(Level::WARN), 0);
    assert!(stats.dropped(Level::DEBUG) > 0);
    assert_eq!(debugs + stats.dropped(Level::DEBUG), 5_000);
}

/// The default: a WARN line waits for room at most `max_wait`, then it is
/// dropped and counted — every line either arrives or is counted, exactly.
#[test]
fn default_warn_lines_wait_briefly_and_every_drop_is_counted() {
    let out = SharedBuf::default();
    let sink = SlowSink {
        inner: out.clone(),
        delay: Duration::from_micros(200),
    };
    let config = Config::new().filter("trace").writer(sink).non_blocking(
        NonBlocking::new()
            .capacity(64)
            .max_wait(Duration::from_micros(100)),
    );
    let (layer, handles) = obs_log::layer(config).unwrap();
    let stats = handles.stats.clone();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for n in 0..5_000u64 {
            tracing::debug!(n, "d");
            tracing::warn!(n, "w");
        }
    });
    let report = handles.guard.shutdown(Duration::from_secs(60));
    assert!(report.completed);
    let lines = out.json_lines();
    let warns = lines.iter().filter(|v| v["message"] == "w").count() as u64;
    let debugs = lines.iter().filter(|v| v["message"] == "d").count() as u64;
    assert_eq!(warns + stats.dropped(Level::WARN), 5_000);
    assert_eq!(debugs + stats.dropped(Level::DEBUG), 5_000);
    assert!(
        stats.dropped(Level::DEBUG) >= stats.dropped(Level::WARN),
        "DEBUG goes first"
    );
}

/// A sink that blocks until released.
#[derive(Clone)]
struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>, Arc<AtomicU64>);

impl Write for Gate {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let (lock, cv) = &*self.0;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        self.1.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn shutdown_is_bounded_by_its_timeout_and_reports_what_is_pending() {
    let gate = Gate(
        Arc::new((Mutex::new(false), std::sync::Condvar::new())),
        Arc::new(AtomicU64::new(0)),
    );
    let config = Config::new()
        .writer(gate.clone())
        .non_blocking(NonBlocking::new().capacity(16));
    let (layer, handles) = obs_log::layer(config).unwrap();
    let stats = handles.stats.clone();
    let subscriber = tracing_subscriber::registry().with(layer);
    let dispatch = obs_testing::subscriber::dispatch(subscriber);
    tracing::dispatcher::with_default(&dispatch, || {
        for n in 0..100u64 {
            tracing::info!(n, "stuck");
        }
    });
    // A watchdog opens the sink after 5 s unless told earlier: a shutdown
    // that ignored its 250 ms timeout would return only then (and find the
    // queue drained), so "returned before the watchdog" is the signal and
    // the 4.75 s between the two is room for a slow machine.
    let timeout = Duration::from_millis(250);
    let watchdog_after = Duration::from_secs(5);
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let watchdog = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            let fired = stopped.recv_timeout(watchdog_after).is_err();
            *gate.0.0.lock().unwrap() = true;
            gate.0.1.notify_all();
            fired
        })
    };
    let started = std::time::Instant::now();
    let report = handles.guard.shutdown(timeout);
    let took = started.elapsed();
    let _ = stop.send(());
    let watchdog_fired = watchdog.join().unwrap();
    assert!(
        !watchdog_fired,
        "shutdown({timeout:?}) returned only after the sink was opened at {watchdog_after:?} (took {took:?})"
    );
    assert!(!report.completed, "{report}");
    assert!(report.pending > 0, "{report}");
    assert!(
        took >= timeout,
        "shutdown gave up before its timeout: {took:?}"
    );
    // After shutdown new lines are dropped and counted, never queued.
    let before = stats.dropped(Level::INFO);
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("late"));
    assert_eq!(stats.dropped(Level::INFO), before + 1);
}

#[test]
fn flush_handle_writes_everything_logged_before() {
    let out = SharedBuf::default();
    let config = Config::new()
        .writer(out.clone())
        .non_blocking(NonBlocking::new());
    let (layer, handles) = obs_log::layer(config).unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    obs_testing::subscriber::with_default(subscriber, || {
        for n in 0..1000u64 {
            tracing::info!(n, "x");
        }
    });
    assert!(handles.guard.flush(Duration::from_secs(30)));
    assert_eq!(out.lines().len(), 1000);
    assert_eq!(handles.stats.written(), 1000);
}

/// A sink that panics on its first write.
struct Panicking;

impl Write for Panicking {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        panic!("sink exploded");
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn lines_lost_with_a_dead_writer_thread_are_counted() {
    let config = Config::new()
        .writer(Panicking)
        .non_blocking(NonBlocking::lossless().capacity(64));
    let (layer, handles) = obs_log::layer(config).unwrap();
    let stats = handles.stats.clone();
    let dispatch = obs_testing::subscriber::dispatch(tracing_subscriber::registry().with(layer));
    // Lossless blocks WARN..TRACE; once the writer is dead nothing may block
    // forever and every line must be accounted for.
    tracing::dispatcher::with_default(&dispatch, || {
        for n in 0..1_000u64 {
            tracing::info!(n, "doomed");
        }
    });
    let report = handles.guard.shutdown(Duration::from_secs(10));
    // Lines handed to the sink before it died count as written; every
    // other line is counted as dropped, none is unaccounted for.
    assert!(report.dropped.get(Level::INFO) > 0, "{report}");
    assert_eq!(
        report.written + report.dropped.get(Level::INFO),
        1_000,
        "every line is either handed to the sink or counted as dropped: {report}"
    );
    assert_eq!(stats.queued(), 0);
}
