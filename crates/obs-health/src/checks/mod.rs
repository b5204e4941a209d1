//! Ready-made checks: TCP connect, HTTP GET, a SQL `SELECT 1` helper, disk
//! free space, memory, and a background-task heartbeat.
//!
//! Each returns a [`Check`] that can be further configured (kinds, tags,
//! timeout, criticality) before registration. Dependency checks (TCP, HTTP,
//! SQL) default to readiness; the heartbeat defaults to liveness because it
//! watches the process itself.

mod disk;
mod heartbeat;
mod memory;
mod net;
mod threshold;

use std::fmt::Display;
use std::future::Future;
use std::time::Instant;

pub use disk::disk_space;
pub use heartbeat::{Heartbeat, heartbeat};
pub use memory::{process_memory, system_memory};
pub use net::{http_get, tcp};

use crate::check::Check;
use crate::result::CheckResult;

/// A database check generic over any async query function, typically a
/// `SELECT 1` through the application's own pool.
///
/// `query` returns a future of `Result<T, E>`; `Ok` passes, `Err` fails with
/// the error's text. The run time is reported as `responseTime` (ms) and the
/// IETF `componentType` is `datastore`.
///
/// ```
/// use obs_health::checks;
/// # #[derive(Clone)] struct Pool;
/// # impl Pool { async fn select_one(&self) -> Result<i64, std::io::Error> { Ok(1) } }
/// let pool = Pool;
/// // With sqlx: `async move { sqlx::query("SELECT 1").execute(&pool).await }`
/// let check = checks::sql("postgres", move || {
///     let pool = pool.clone();
///     async move { pool.select_one().await }
/// });
/// assert_eq!(check.name(), "postgres");
/// ```
pub fn sql<F, Fut, T, E>(name: impl Into<String>, query: F) -> Check
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Display + 'static,
{
    Check::new(name, move || {
        let fut = query();
        async move {
            let start = Instant::now();
            let res = fut.await;
            let ms = obs_core::units::duration_ms(start.elapsed());
            let result = match res {
                Ok(_) => CheckResult::pass(),
                Err(e) => CheckResult::fail(e.to_string()),
            };
            result.observe("responseTime", ms, Some("ms"))
        }
    })
    .component_type("datastore")
}
