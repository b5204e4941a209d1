//! Run with: `cargo run -p examples --bin service`
//!
//! An items service with every obs pillar wired in, the way a production
//! service would use them:
//!
//! - `/items` CRUD (`GET /items`, `POST /items`, `GET/PUT/DELETE
//!   /items/{id}`) on an embedded SQLite database; every query runs on the
//!   blocking pool inside a database client span and is timed by the
//!   `db_client_operation_duration_seconds` histogram;
//! - `GET /items/{id}` calls a downstream price service
//!   (`/internal/price/{id}`, a mock route on this same server unless
//!   `PRICE_SERVICE_URL` points elsewhere) through a hyper client wrapped in
//!   `obs.client_layer()`, so `traceparent` and `X-Correlation-ID` travel;
//! - reads and writes enqueue jobs on a bounded in-process queue; the
//!   producer puts `obs::job::carrier()` into the job and the worker runs it
//!   under `obs::job::instrument`, so the job joins the request's trace and
//!   keeps its correlation id;
//! - the admin router (`/metrics`, `/livez`, `/readyz`, `/startupz`,
//!   `/healthz`, `/loglevel`) on a separate port, with a readiness check on
//!   the database. Reads are open; `PUT /loglevel` is refused (`403`) unless
//!   `OBS_ADMIN_TOKEN` is set, and then needs `Authorization: Bearer
//!   <token>`. Both servers run with axum's connect info, so the audit line
//!   of a log level change and the server spans carry the peer address
//!   (`client.address`);
//! - graceful shutdown on SIGTERM or Ctrl-C: readiness fails first, the
//!   server keeps serving for a grace period so load balancers notice, then
//!   stops; obs flushes logs and spans and prints what it flushed and lost.
//!
//! Try it:
//!
//! ```text
//! curl -s localhost:8080/items
//! curl -s -XPOST localhost:8080/items -H 'content-type: application/json' -d '{"name":"lamp","quantity":3}'
//! curl -si localhost:8080/items/1 -H 'x-correlation-id: demo-1'
//! curl -s localhost:9464/metrics | grep http_server_request_duration_seconds_count
//! curl -s 'localhost:9464/readyz?verbose'
//! curl -s localhost:9464/loglevel
//! # only when started with OBS_ADMIN_TOKEN set:
//! curl -s -XPUT localhost:9464/loglevel -H "authorization: Bearer $OBS_ADMIN_TOKEN" -d debug
//! ```
//!
//! Environment (all optional):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HOST` | `127.0.0.1` | address both listeners bind (`0.0.0.0` in a container) |
//! | `PORT` | `8080` | API port (`0` picks a free one) |
//! | `ADMIN_PORT` | `9464` | admin port (`0` picks a free one) |
//! | `DATABASE_PATH` | in memory | SQLite file to use instead |
//! | `PRICE_SERVICE_URL` | this server | base URL of the price service |
//! | `JOB_QUEUE_CAPACITY` | `128` | bound of the job queue (a full queue drops the job, counted) |
//! | `SHUTDOWN_GRACE_MS` | `2000` | how long readiness fails before the server stops |
//! | `SHUTDOWN_TIMEOUT_MS` | `5000` | one deadline for everything after the grace period: connections and the job queue get three quarters of it (then they are closed, and the lost jobs counted), obs's final flush the rest |
//! | `FAULT_ROUTES` | unset | `1` adds `GET /internal/panic`, a handler that panics (fault injection for `cargo xtask soak`) |
//! | `OBS_ADMIN_TOKEN` | unset | bearer token for `PUT /loglevel`; unset, the endpoint answers `403` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_*`, `OBS_*` | | read by `obs::Config::from_env` |
//!
//! At startup the service logs one JSON line with the message `service
//! listening` and the fields `http.addr` and `admin.addr` (the bound
//! addresses, useful with port `0`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use obs::job::Job;
use obs::metrics::sets::{DbMetrics, JobMetrics};
use obs::trace::db::DbSpan;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tower::{Layer, ServiceExt};

/// The job queue's name in metrics and spans.
const QUEUE: &str = "items";
/// Longest accepted item name, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Default of `HOST`: loopback, so a local run is not reachable from other
/// hosts. A container sets `HOST=0.0.0.0` (`docs/k8s/deployment.yaml`).
const DEFAULT_HOST: &str = "127.0.0.1";
/// Default of `PORT`, the API port.
const DEFAULT_PORT: u16 = 8080;
/// Default of `ADMIN_PORT`: `/metrics`, the probes and `/loglevel`.
/// `examples/tests/manifest.rs` checks these defaults against the manifest.
const DEFAULT_ADMIN_PORT: u16 = 9464;

/// What can stop the service from starting.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Obs(#[from] obs::Error),
    #[error("invalid value for environment variable {var}: {value:?} ({reason})")]
    Env {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
}

fn env_parse<T>(var: &'static str, default: T) -> Result<T, StartError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(v) => v.trim().parse().map_err(|e: T::Err| StartError::Env {
            var,
            value: v.chars().take(64).collect(),
            reason: e.to_string(),
        }),
    }
}

/// An item as stored.
#[derive(Debug, Clone, Serialize)]
struct Item {
    id: i64,
    name: String,
    quantity: i64,
    views: i64,
}

/// The body of `POST /items` and `PUT /items/{id}`.
#[derive(Debug, Deserialize)]
struct NewItem {
    name: String,
    #[serde(default)]
    quantity: i64,
}

impl NewItem {
    fn validate(&self) -> Result<(), AppError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(AppError::BadRequest("name must not be empty".into()));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(AppError::BadRequest(format!(
                "name is longer than {MAX_NAME_CHARS} characters"
            )));
        }
        if self.quantity < 0 {
            return Err(AppError::BadRequest(format!(
                "quantity {} is negative",
                self.quantity
            )));
        }
        Ok(())
    }
}

/// The answer of the price service.
#[derive(Debug, Serialize, Deserialize)]
struct Price {
    id: i64,
    price_cents: i64,
}

/// `GET /items/{id}`: the item and its price (absent when the price service
/// failed: the read degrades instead of failing).
#[derive(Debug, Serialize)]
struct ItemWithPrice {
    #[serde(flatten)]
    item: Item,
    price_cents: Option<i64>,
}

/// Errors of request handlers, each with its HTTP status.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("item {0} not found")]
    NotFound(i64),
    #[error("{0}")]
    BadRequest(String),
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Db(_) | AppError::Task(_) => {
                // ERROR events are captured by obs-errors with the request's ids.
                tracing::error!(error = %self, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// The SQLite database: one connection used from the blocking pool.
#[derive(Clone)]
struct Db {
    conn: Arc<Mutex<Connection>>,
    metrics: DbMetrics,
}

impl Db {
    /// Runs `f` on the blocking pool inside a database client span (a child
    /// of the current span) and times it.
    async fn run<T, F>(
        &self,
        operation: &'static str,
        sql: &'static str,
        f: F,
    ) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &'static str) -> rusqlite::Result<T> + Send + 'static,
    {
        let span = DbSpan::new("sqlite", operation)
            .collection("items")
            .query(sql)
            .start();
        let (conn, metrics) = (self.conn.clone(), self.metrics.clone());
        let out = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
                let timer = metrics.timer("sqlite", operation, "items");
                let r = f(&conn, sql);
                if let Err(e) = &r {
                    let kind = sqlite_error_type(e);
                    obs::trace::db::record_error(&span, kind);
                    timer.fail(kind);
                }
                r
            })
        })
        .await??;
        Ok(out)
    }
}

/// A low-cardinality error type for metrics and spans.
fn sqlite_error_type(e: &rusqlite::Error) -> &'static str {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            rusqlite::ErrorCode::ConstraintViolation => "constraint",
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => "busy",
            _ => "sqlite_failure",
        },
        rusqlite::Error::QueryReturnedNoRows => "no_rows",
        _ => "other",
    }
}

/// Opens (or creates) the database and seeds it when empty.
fn open_db(path: Option<&str>) -> Result<Arc<Mutex<Connection>>, rusqlite::Error> {
    let conn = match path {
        Some(p) => Connection::open(p)?,
        None => Connection::open_in_memory()?,
    };
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS items (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             name TEXT NOT NULL,
             quantity INTEGER NOT NULL DEFAULT 0,
             views INTEGER NOT NULL DEFAULT 0
         );
         INSERT INTO items (name, quantity)
             SELECT column1, column2 FROM (VALUES ('notebook', 12), ('pen', 40), ('stapler', 3))
             WHERE NOT EXISTS (SELECT 1 FROM items);",
    )?;
    Ok(Arc::new(Mutex::new(conn)))
}

fn row_to_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: r.get(0)?,
        name: r.get(1)?,
        quantity: r.get(2)?,
        views: r.get(3)?,
    })
}

/// A job on the in-process queue: what to do and the producer's context.
#[derive(Debug)]
struct JobMsg {
    kind: &'static str,
    item_id: i64,
    carrier: obs::Carrier,
    enqueued_at: Instant,
}

/// The queue's gauges: `job_queue_length` and `job_queue_oldest_age_seconds`.
#[derive(Clone)]
struct QueueGauges {
    /// Enqueue times, oldest first.
    waiting: Arc<Mutex<VecDeque<Instant>>>,
    metrics: Option<JobMetrics>,
}

impl QueueGauges {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, waiting: &VecDeque<Instant>) {
        if let Some(m) = &self.metrics {
            let oldest = waiting.front().map_or(Duration::ZERO, Instant::elapsed);
            m.set_queue(
                QUEUE,
                i64::try_from(waiting.len()).unwrap_or(i64::MAX),
                oldest,
            );
        }
    }

    fn dequeued(&self) {
        let mut waiting = self.lock();
        waiting.pop_front();
        self.publish(&waiting);
    }
}

/// The producer side of the bounded job queue. The worker holds no
/// sender, so the queue closes when the last producer (the router) is gone.
#[derive(Clone)]
struct Jobs {
    tx: mpsc::Sender<JobMsg>,
    gauges: QueueGauges,
    dropped: obs::metrics::Counter,
}

impl Jobs {
    /// Enqueues without waiting; a full queue drops the job, counts it in
    /// `service_jobs_dropped_total` and logs a warning.
    fn enqueue(&self, kind: &'static str, item_id: i64) {
        // The carrier holds the current span's trace context and correlation id.
        let msg = JobMsg {
            kind,
            item_id,
            carrier: obs::job::carrier(),
            enqueued_at: Instant::now(),
        };
        let mut waiting = self.gauges.lock();
        match self.tx.try_send(msg) {
            Ok(()) => {
                waiting.push_back(Instant::now());
                self.gauges.publish(&waiting);
            }
            Err(e) => {
                self.dropped.inc();
                tracing::warn!(queue = QUEUE, job_type = kind, reason = %e, "job dropped");
            }
        }
    }
}

/// Runs jobs until every producer is gone and the queue is drained.
/// `GET /internal/panic` (only with `FAULT_ROUTES=1`): panics, as a bug in a
/// handler would. The server layer answers 500 and the panic hook reports it.
async fn panicking_handler() -> &'static str {
    if std::hint::black_box(true) {
        panic!("injected fault: handler panicked");
    }
    "unreachable"
}

/// Runs jobs until the queue is closed: by its last sender going away, or
/// by `closed` (at shutdown, connections that never finish keep a sender
/// alive); then it runs what is still queued and ends.
async fn job_worker(
    mut rx: mpsc::Receiver<JobMsg>,
    gauges: QueueGauges,
    db: Db,
    mut closed: watch::Receiver<bool>,
) {
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => m,
                None => return,
            },
            () = async { drop(closed.wait_for(|c| *c).await) } => {
                rx.close();
                match rx.recv().await {
                    Some(m) => m,
                    None => return,
                }
            }
        };
        gauges.dequeued();
        let waited_ms = msg.enqueued_at.elapsed().as_secs_f64() * 1000.0;
        let job = Job::new(QUEUE, msg.kind).carrier(msg.carrier);
        let (db, id, kind) = (db.clone(), msg.item_id, msg.kind);
        // The job's span continues the request's trace; its log lines carry
        // the request's correlation id.
        let _ = obs::job::instrument(job, async move {
            tracing::debug!(waited_ms, item_id = id, "job started");
            match kind {
                "record_view" => {
                    db.run(
                        "UPDATE",
                        "UPDATE items SET views = views + 1 WHERE id = ?1",
                        move |c, sql| c.execute(sql, params![id]),
                    )
                    .await?;
                    tracing::info!(item_id = id, "view recorded");
                }
                _ => {
                    let name = db
                        .run(
                            "SELECT",
                            "SELECT name FROM items WHERE id = ?1",
                            move |c, sql| {
                                c.query_row(sql, params![id], |r| r.get::<_, String>(0))
                                    .optional()
                            },
                        )
                        .await?;
                    tracing::info!(item_id = id, indexed = name.is_some(), "item indexed");
                }
            }
            Ok::<(), AppError>(())
        })
        .await;
    }
}

/// The price client: hyper with obs's client layer (client span, injected
/// `traceparent`, forwarded correlation id, client metrics).
type HttpClient = Client<HttpConnector, Empty<Bytes>>;
type PriceClient = <obs::http::ClientLayer as Layer<HttpClient>>::Service;

#[derive(Clone)]
struct AppState {
    db: Db,
    jobs: Jobs,
    prices: PriceClient,
    price_base: Arc<str>,
}

impl AppState {
    /// Asks the price service; `None` (with a warning) when it fails, so a
    /// read degrades instead of failing.
    async fn price(&self, id: i64) -> Option<i64> {
        let url = format!("{}/internal/price/{id}", self.price_base);
        let req = match axum::http::Request::get(&url).body(Empty::<Bytes>::new()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(url = %url, error = %e, "bad price service URL");
                return None;
            }
        };
        let call = async {
            let resp = self
                .prices
                .clone()
                .oneshot(req)
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("status {status}"));
            }
            serde_json::from_slice::<Price>(&body).map_err(|e| e.to_string())
        };
        match tokio::time::timeout(Duration::from_secs(2), call).await {
            Ok(Ok(p)) => Some(p.price_cents),
            Ok(Err(e)) => {
                tracing::warn!(item_id = id, error = %e, "price service failed");
                None
            }
            Err(_) => {
                tracing::warn!(item_id = id, "price service timed out after 2s");
                None
            }
        }
    }
}

async fn list_items(State(s): State<AppState>) -> Result<Json<Vec<Item>>, AppError> {
    let items =
        s.db.run(
            "SELECT",
            "SELECT id, name, quantity, views FROM items ORDER BY id",
            |c, sql| {
                let mut stmt = c.prepare_cached(sql)?;
                let rows = stmt.query_map([], row_to_item)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            },
        )
        .await?;
    Ok(Json(items))
}

async fn create_item(
    State(s): State<AppState>,
    Json(new): Json<NewItem>,
) -> Result<(StatusCode, Json<Item>), AppError> {
    new.validate()?;
    let name = new.name.trim().to_owned();
    let quantity = new.quantity;
    let item =
        s.db.run(
            "INSERT",
            "INSERT INTO items (name, quantity) VALUES (?1, ?2)",
            move |c, sql| {
                c.execute(sql, params![name, quantity])?;
                Ok(Item {
                    id: c.last_insert_rowid(),
                    name,
                    quantity,
                    views: 0,
                })
            },
        )
        .await?;
    tracing::info!(item_id = item.id, "item created");
    s.jobs.enqueue("index_item", item.id);
    Ok((StatusCode::CREATED, Json(item)))
}

async fn get_item(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<ItemWithPrice>, AppError> {
    let item =
        s.db.run(
            "SELECT",
            "SELECT id, name, quantity, views FROM items WHERE id = ?1",
            move |c, sql| c.query_row(sql, params![id], row_to_item).optional(),
        )
        .await?
        .ok_or(AppError::NotFound(id))?;
    let price_cents = s.price(id).await;
    s.jobs.enqueue("record_view", id);
    Ok(Json(ItemWithPrice { item, price_cents }))
}

async fn update_item(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    Json(new): Json<NewItem>,
) -> Result<Json<Item>, AppError> {
    new.validate()?;
    let name = new.name.trim().to_owned();
    let quantity = new.quantity;
    let item = s
        .db
        .run(
            "UPDATE",
            "UPDATE items SET name = ?2, quantity = ?3 WHERE id = ?1 RETURNING id, name, quantity, views",
            move |c, sql| c.query_row(sql, params![id, name, quantity], row_to_item).optional(),
        )
        .await?
        .ok_or(AppError::NotFound(id))?;
    s.jobs.enqueue("index_item", id);
    Ok(Json(item))
}

async fn delete_item(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    let n =
        s.db.run(
            "DELETE",
            "DELETE FROM items WHERE id = ?1",
            move |c, sql| c.execute(sql, params![id]),
        )
        .await?;
    if n == 0 {
        return Err(AppError::NotFound(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The mock downstream: a deterministic price per item.
async fn internal_price(Path(id): Path<i64>) -> Json<Price> {
    Json(Price {
        id,
        price_cents: 199 + id.rem_euclid(50) * 100,
    })
}

/// Completes on SIGTERM or Ctrl-C and says which.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

async fn bind(host: &str, port: u16) -> Result<tokio::net::TcpListener, StartError> {
    let addr = format!("{host}:{port}");
    tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            #[allow(
                clippy::print_stderr,
                reason = "logging may not be set up: say why on stderr"
            )]
            {
                eprintln!("items-service: {e}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run() -> Result<(), StartError> {
    let host = std::env::var("HOST").unwrap_or_else(|_| DEFAULT_HOST.into());
    let port: u16 = env_parse("PORT", DEFAULT_PORT)?;
    let admin_port: u16 = env_parse("ADMIN_PORT", DEFAULT_ADMIN_PORT)?;
    let queue_capacity: usize = env_parse("JOB_QUEUE_CAPACITY", 128)?;
    let fault_routes = std::env::var("FAULT_ROUTES").is_ok_and(|v| v == "1");
    let grace = Duration::from_millis(env_parse("SHUTDOWN_GRACE_MS", 2000)?);
    let flush_timeout = Duration::from_millis(env_parse("SHUTDOWN_TIMEOUT_MS", 5000)?);
    if queue_capacity == 0 {
        return Err(StartError::Env {
            var: "JOB_QUEUE_CAPACITY",
            value: "0".into(),
            reason: "the queue needs room for at least one job".into(),
        });
    }
    let db_path = std::env::var("DATABASE_PATH")
        .ok()
        .filter(|p| !p.is_empty());

    // The database opens before obs so that its readiness check can be
    // registered in the config; its metrics attach once the registry exists.
    let conn = open_db(db_path.as_deref())?;
    let check_conn = conn.clone();
    let db_check = obs::health::checks::sql("db", move || {
        let conn = check_conn.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let c = conn.lock().unwrap_or_else(PoisonError::into_inner);
                c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        }
    });

    let obs = obs::init(
        obs::Config::from_env()?
            .service("items-service")
            .version(env!("CARGO_PKG_VERSION"))
            .health_check(db_check),
    )?;
    let db = Db {
        conn,
        metrics: DbMetrics::new(obs.metrics()).map_err(obs::Error::from)?,
    };

    let (tx, rx) = mpsc::channel(queue_capacity);
    let gauges = QueueGauges {
        waiting: Arc::new(Mutex::new(VecDeque::new())),
        metrics: obs.job_metrics(),
    };
    let jobs = Jobs {
        tx,
        gauges: gauges.clone(),
        dropped: obs
            .metrics()
            .counter(
                "service_jobs_dropped",
                "Jobs dropped because the queue was full.",
            )
            .map_err(obs::Error::from)?,
    };
    let gauges_waiting = gauges.waiting.clone();
    let (queue_closed, queue_closed_rx) = watch::channel(false);
    let worker = tokio::spawn(job_worker(rx, gauges, db.clone(), queue_closed_rx));

    let listener = bind(&host, port).await?;
    let admin_listener = bind(&host, admin_port).await?;
    let http_addr: SocketAddr = listener.local_addr()?;
    let admin_addr: SocketAddr = admin_listener.local_addr()?;
    let price_base = std::env::var("PRICE_SERVICE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", http_addr.port()));

    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let state = AppState {
        db,
        jobs,
        prices: obs.client_layer().layer(http),
        price_base: price_base.trim_end_matches('/').into(),
    };
    let mut routes = Router::new()
        .route("/items", get(list_items).post(create_item))
        .route(
            "/items/{id}",
            get(get_item).put(update_item).delete(delete_item),
        )
        .route("/internal/price/{id}", get(internal_price));
    if fault_routes {
        // For `cargo xtask soak`: a handler that panics, so a panic storm can
        // be injected into a running service.
        routes = routes.route("/internal/panic", get(panicking_handler));
    }
    let app = routes.with_state(state).layer(obs.server_layer());
    let admin = obs.admin_router();

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // Connect info puts the peer address in each request: the server span
    // and the `obs::audit` line of `PUT /loglevel` record it.
    let api = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .into_future(),
    );
    let admin_server = tokio::spawn(
        axum::serve(
            admin_listener,
            admin.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop_rx))
        .into_future(),
    );
    tracing::info!(
        http.addr = %http_addr,
        admin.addr = %admin_addr,
        price.url = %price_base,
        db.path = db_path.as_deref().unwrap_or(":memory:"),
        "service listening"
    );

    let signal = shutdown_signal().await;
    // Readiness fails first so the load balancer stops sending traffic while
    // the server still answers what is in flight.
    obs.health().begin_shutdown();
    tracing::info!(
        signal,
        grace_ms = grace.as_millis() as u64,
        "shutting down: readiness now fails"
    );
    tokio::time::sleep(grace).await;
    let _ = stop_tx.send(true);

    // SHUTDOWN_TIMEOUT_MS is one deadline for everything after the grace
    // period: three quarters for connections and the job queue to drain, the
    // rest (at least) for obs to flush logs, spans and error reports.
    let started = tokio::time::Instant::now();
    let drain_deadline = started + flush_timeout.mul_f64(0.75);
    let deadline = started + flush_timeout;
    let mut cut_short = Vec::new();
    for (name, mut task) in [("api", api), ("admin", admin_server)] {
        match tokio::time::timeout_at(drain_deadline, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(server = name, error = %e, "server failed"),
            Ok(Err(e)) => tracing::error!(server = name, error = %e, "server task failed"),
            Err(_) => {
                // Stop accepting; the connections still open end with the
                // process, after obs has flushed.
                task.abort();
                cut_short.push(name);
                tracing::warn!(
                    server = name,
                    "connections still open at the shutdown deadline: closed"
                );
            }
        }
    }
    // No request adds jobs any more: the worker runs what is queued and ends.
    let _ = queue_closed.send(true);
    let mut worker = worker;
    // An idle worker ends as soon as the last sender is gone: give it a
    // moment even when draining the servers used the whole budget.
    let worker_deadline =
        drain_deadline.max(tokio::time::Instant::now() + Duration::from_millis(50));
    match tokio::time::timeout_at(worker_deadline, &mut worker).await {
        Ok(_) => tracing::info!("job queue drained"),
        Err(_) => {
            worker.abort();
            // The truth about what was lost: the jobs still queued, plus the
            // one the worker was running.
            let queued = gauges_waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len();
            cut_short.push("job worker");
            tracing::warn!(
                jobs_lost = queued + 1,
                jobs_queued = queued,
                "job worker still busy at the shutdown deadline: the running job and the queued ones are lost"
            );
        }
    }
    if !cut_short.is_empty() {
        tracing::warn!(cut_short = ?cut_short, "shutdown cut short");
    }
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let report = obs.shutdown(left).await;
    print_report("items-service", &report, &cut_short);
    Ok(())
}

/// Prints obs's shutdown report as one JSON line (the log pipeline itself is
/// closed by then).
fn print_report(service: &str, report: &obs::ShutdownReport, cut_short: &[&str]) {
    let clean = report.completed && report.lost() == 0 && cut_short.is_empty();
    let line = serde_json::json!({
        "level": if clean { "INFO" } else { "WARN" },
        "message": "obs shutdown report",
        "service.name": service,
        "completed": report.completed,
        "elapsed_ms": report.elapsed.as_secs_f64() * 1000.0,
        "log_lines_written": report.log_lines_written,
        "log_lines_dropped": report.log_lines_dropped,
        "spans_exported": report.spans_exported,
        "spans_dropped": report.spans_dropped,
        "error_reports_flushed": report.errors_flushed,
        "error_reports_lost": report.errors_lost,
        "problems": report.problems,
        "cut_short": cut_short,
        "summary": report.to_string(),
    });
    #[allow(
        clippy::print_stdout,
        reason = "the report is the program's last output"
    )]
    {
        println!("{line}");
    }
}
