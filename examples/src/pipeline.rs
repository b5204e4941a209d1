//! Run with: `cargo run -p examples --bin pipeline`
//!
//! A small ETL job: orders arrive as CSV lines in batches and go through
//! three stages, each instrumented with `obs::pipeline::Stage` — a span per
//! batch and the `pipeline_rows_in_total`, `pipeline_rows_out_total`,
//! `pipeline_rows_rejected_total` and `pipeline_stage_duration_seconds`
//! metrics by pipeline and stage (throughput is
//! `rate(pipeline_rows_out_total[5m])` in Prometheus; the
//! `pipeline_throughput_rows_per_second` gauge `Stage` also sets is the last
//! batch's rate, see `docs/operations.md`):
//!
//! 1. `parse` — CSV line to order; malformed lines are rejected;
//! 2. `validate` — orders with a non-positive amount or an unknown currency
//!    are rejected;
//! 3. `load` — orders are written to an embedded SQLite database in one
//!    transaction per batch (inside a database span, timed by
//!    `db_client_operation_duration_seconds`).
//!
//! The whole run shares one correlation id, so every log line of every
//! batch can be found with it. The program ends on its own after a few
//! seconds, printing the pipeline metrics and obs's shutdown report. Set
//! `ADMIN_PORT` (`0` picks a free port; `HOST` defaults to `127.0.0.1`) to
//! serve `/metrics` and the probes for Prometheus: the pipeline then logs
//! `"admin listening"` with `admin.addr`, and after the run keeps serving
//! until SIGTERM or Ctrl-C.

use std::time::Duration;

use obs::metrics::sets::DbMetrics;
use obs::pipeline::Stage;
use obs::trace::db::DbSpan;
use obs::{CorrelationId, IdFormat};
use rusqlite::{Connection, params};

mod admin_port;

const PIPELINE: &str = "orders_etl";
const BATCHES: u32 = 5;
const BATCH_ROWS: u32 = 2_000;
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP"];

/// What can stop the pipeline.
#[derive(Debug, thiserror::Error)]
enum PipelineError {
    #[error(transparent)]
    Obs(#[from] obs::Error),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("pipeline task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("admin port: {0}")]
    Admin(#[from] std::io::Error),
}

#[derive(Debug, Clone, PartialEq)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
    currency: String,
}

/// Synthetic input: mostly good lines, about 2 % malformed, about 1 % with
/// a bad amount or currency. Deterministic, so runs are comparable.
fn extract(batch: u32) -> Vec<String> {
    (0..BATCH_ROWS)
        .map(|i| {
            let n = i64::from(batch) * i64::from(BATCH_ROWS) + i64::from(i);
            match n % 100 {
                7 | 53 => format!("{n};broken line without fields"),
                31 => format!("{n},customer-{},-150,EUR", n % 97),
                77 => format!("{n},customer-{},990,XXX", n % 97),
                _ => format!(
                    "{n},customer-{},{},{}",
                    n % 97,
                    100 + (n * 37) % 10_000,
                    CURRENCIES[(n % 3) as usize]
                ),
            }
        })
        .collect()
}

fn parse(line: &str) -> Option<Order> {
    let mut f = line.split(',');
    let order = Order {
        id: f.next()?.trim().parse().ok()?,
        customer: f.next()?.trim().to_owned(),
        amount_cents: f.next()?.trim().parse().ok()?,
        currency: f.next()?.trim().to_owned(),
    };
    f.next().is_none().then_some(order)
}

fn valid(o: &Order) -> bool {
    o.amount_cents > 0 && CURRENCIES.contains(&o.currency.as_str()) && !o.customer.is_empty()
}

/// Writes a batch in one transaction; returns the rows written.
fn load(conn: &mut Connection, db: &DbMetrics, orders: &[Order]) -> rusqlite::Result<u64> {
    const SQL: &str =
        "INSERT INTO orders (id, customer, amount_cents, currency) VALUES (?1, ?2, ?3, ?4)";
    let span = DbSpan::new("sqlite", "INSERT")
        .collection("orders")
        .query(SQL)
        .start();
    let _entered = span.enter();
    db.time("sqlite", "INSERT", "orders", || {
        let tx = conn.transaction()?;
        let mut written = 0;
        {
            let mut stmt = tx.prepare_cached(SQL)?;
            for o in orders {
                written +=
                    stmt.execute(params![o.id, o.customer, o.amount_cents, o.currency])? as u64;
            }
        }
        tx.commit()?;
        Ok(written)
    })
}

/// The pipeline proper; blocking work, run on the blocking pool.
fn run(obs: &obs::Obs) -> Result<(u64, u64), PipelineError> {
    let db = DbMetrics::new(obs.metrics()).map_err(obs::Error::from)?;
    let mut conn = Connection::open_in_memory()?;
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount_cents INTEGER NOT NULL, currency TEXT NOT NULL)",
    )?;
    let [parse_stage, validate_stage, load_stage]: [Stage; 3] =
        ["parse", "validate", "load"].map(|name| obs.stage(PIPELINE, name));
    let (mut loaded, mut rejected) = (0u64, 0u64);
    for b in 0..BATCHES {
        let lines = extract(b);

        let batch = parse_stage.batch(lines.len() as u64);
        let orders: Vec<Order> = batch
            .span()
            .in_scope(|| lines.iter().filter_map(|l| parse(l)).collect());
        let bad = lines.len() as u64 - orders.len() as u64;
        batch.finish(orders.len() as u64, bad);
        rejected += bad;

        let batch = validate_stage.batch(orders.len() as u64);
        let (good, bad): (Vec<Order>, Vec<Order>) = batch
            .span()
            .in_scope(|| orders.into_iter().partition(valid));
        batch.finish(good.len() as u64, bad.len() as u64);
        rejected += bad.len() as u64;

        let batch = load_stage.batch(good.len() as u64);
        let written = batch.span().in_scope(|| load(&mut conn, &db, &good));
        match written {
            Ok(n) => {
                batch.finish(n, good.len() as u64 - n);
                loaded += n;
            }
            Err(e) => {
                batch.span().in_scope(
                    || tracing::error!(batch = b, error = %e, "load failed; batch rejected"),
                );
                batch.finish(0, good.len() as u64);
                rejected += good.len() as u64;
            }
        }
    }
    Ok((loaded, rejected))
}

#[tokio::main]
async fn main() -> Result<(), PipelineError> {
    let obs = obs::init(obs::Config::from_env()?.service("orders-etl"))?;
    let admin = admin_port::serve(&obs).await?;
    let run_id = CorrelationId::generate(IdFormat::UuidV7);

    let o = obs.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        obs::correlate::sync_scope(run_id, || {
            let span = tracing::info_span!("pipeline.run", pipeline = PIPELINE, batches = BATCHES);
            let _entered = span.enter();
            let r = run(&o);
            match &r {
                Ok((loaded, rejected)) => tracing::info!(loaded, rejected, "pipeline finished"),
                Err(e) => tracing::error!(error = %e, "pipeline failed"),
            }
            r
        })
    })
    .await;
    let result = outcome.map_err(PipelineError::from).and_then(|r| r);
    admin_port::linger(admin).await;

    let exposition = obs.metrics().encode(obs::metrics::Format::Text);
    let report = obs.shutdown(Duration::from_secs(5)).await;
    #[allow(
        clippy::print_stdout,
        reason = "the example prints its metrics and report"
    )]
    {
        println!("--- pipeline metrics, as /metrics shows them ---");
        for line in exposition
            .lines()
            .filter(|l| l.starts_with("pipeline_rows"))
        {
            println!("{line}");
        }
        println!("--- obs shutdown: {report}");
    }
    result.map(|_| ())
}
