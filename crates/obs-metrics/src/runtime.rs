//! Tokio runtime metrics: the figures stable tokio exposes
//! (`tokio::runtime::RuntimeMetrics` without `tokio_unstable`).

use crate::{Registry, Result};

/// Registers, for the runtime of `handle` (read at scrape time):
/// `tokio_workers`, `tokio_alive_tasks`, `tokio_global_queue_depth`, and per
/// worker `tokio_worker_busy_seconds_total{worker}` and
/// `tokio_worker_parks_total{worker}`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), obs_metrics::Error> {
/// let registry = obs_metrics::Registry::new();
/// obs_metrics::runtime::register(&registry, tokio::runtime::Handle::current())?;
/// assert!(registry.encode(obs_metrics::Format::Text).contains("tokio_workers 1\n"));
/// # Ok(()) }
/// ```
pub fn register(registry: &Registry, handle: tokio::runtime::Handle) -> Result<()> {
    let h = handle.clone();
    registry.callback_gauge_family(
        "tokio_workers",
        "Worker threads of the tokio runtime.",
        [],
        move |e| {
            e.emit([], h.metrics().num_workers());
        },
    )?;
    let h = handle.clone();
    registry.callback_gauge_family(
        "tokio_alive_tasks",
        "Tasks alive in the tokio runtime.",
        [],
        move |e| {
            e.emit([], h.metrics().num_alive_tasks());
        },
    )?;
    let h = handle.clone();
    registry.callback_gauge_family(
        "tokio_global_queue_depth",
        "Tasks waiting in the tokio runtime's global queue.",
        [],
        move |e| e.emit([], h.metrics().global_queue_depth()),
    )?;
    let h = handle.clone();
    registry.callback_counter_family(
        "tokio_worker_busy_seconds",
        "Time each tokio worker spent busy.",
        ["worker"],
        move |e| {
            let m = h.metrics();
            let mut buf = itoa::Buffer::new();
            for w in 0..m.num_workers() {
                e.emit(
                    [buf.format(w)],
                    m.worker_total_busy_duration(w).as_secs_f64(),
                );
            }
        },
    )?;
    let h = handle;
    registry.callback_counter_family(
        "tokio_worker_parks",
        "Times each tokio worker parked.",
        ["worker"],
        move |e| {
            let m = h.metrics();
            let mut buf = itoa::Buffer::new();
            for w in 0..m.num_workers() {
                e.emit([buf.format(w)], m.worker_park_count(w));
            }
        },
    )?;
    Ok(())
}
