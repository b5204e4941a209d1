//! Ready metric sets with semantic-convention names, units and buckets.
//!
//! Each set registers its metrics on a [`Registry`] (registering twice
//! returns the same series, so sets are cheap to build where needed) and
//! offers recording helpers that never allocate for label sets already seen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use obs_core::names::{HTTP_DURATION_BUCKETS, metric};

use crate::family::{key_eq, pack_key};
use crate::text::{BuildIdentity, LabelHasher};
use crate::{Counter, Family, FloatGauge, Gauge, GaugeGuard, Histogram, Registry, Result};

/// Body-size buckets in bytes: 100 B … 100 MB, decades.
pub const SIZE_BUCKETS: &[f64] = &[
    100.0,
    1_000.0,
    10_000.0,
    100_000.0,
    1_000_000.0,
    10_000_000.0,
    100_000_000.0,
];

/// Duration buckets of `db.client.operation.duration` from the database
/// semantic conventions, in seconds.
pub const DB_DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// Job duration buckets in seconds: 10 ms … 1 h.
pub const JOB_DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// The HTTP method as the semantic conventions record it: one of the
/// standard methods, `_OTHER` for anything else (so a client cannot mint
/// label values). The one rule every pillar applies, owned by `obs-core`.
pub use obs_core::names::normalize_http_method as normalize_method;

/// Label names of the HTTP server duration histogram.
pub const HTTP_SERVER_LABELS: [&str; 4] = [
    "http_request_method",
    "http_route",
    "http_response_status_code",
    "error_type",
];

/// HTTP server metrics: `http_server_request_duration_seconds` by method,
/// route template, status code and error type; in-flight requests; request
/// and response body sizes.
///
/// ```
/// use std::time::Duration;
/// let registry = obs_metrics::Registry::new();
/// let http = obs_metrics::sets::HttpServerMetrics::new(&registry)?;
/// http.record("GET", "/items/{id}", 200, None, Duration::from_millis(12));
/// let text = registry.encode(obs_metrics::Format::Text);
/// assert!(text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/items/{id}",http_response_status_code="200",error_type=""} 1"#));
/// # Ok::<(), obs_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct HttpServerMetrics {
    /// `http_server_request_duration_seconds`.
    pub duration: Family<Histogram, 4>,
    /// `http_server_active_requests` by method.
    pub active: Family<Gauge, 1>,
    /// `http_server_request_body_size_bytes` by method and route.
    pub request_size: Family<Histogram, 2>,
    /// `http_server_response_body_size_bytes` by method, route and status.
    pub response_size: Family<Histogram, 3>,
    /// The series each request records into, by method, route and status.
    series: Arc<SeriesCache>,
}

/// Label sets of finished requests kept in a [`SeriesCache`] at most; past
/// it, requests record through each family as before.
const SERIES_CACHE_MAX: usize = 1024;

/// The normalised methods, in the order of [`SeriesCache::active`].
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// The series of a finished request, found with one lookup by method, route
/// and status instead of one per family (three per request). The families
/// never drop a series, so a kept handle stays the one a scrape reads. A
/// label set a family rejects (past its cardinality limit) is never kept:
/// every use of it goes through the family, which counts each one.
#[derive(Debug, Default)]
struct SeriesCache {
    hasher: LabelHasher,
    by_hash: RwLock<HashMap<u64, Vec<KeptSeries>, BuildIdentity>>,
    len: AtomicUsize,
    /// `http_server_active_requests` of each normalised method.
    active: [OnceLock<Gauge>; METHODS.len()],
}

/// A packed (method, route, status) key and its series.
type KeptSeries = (Box<[u8]>, RequestSeries);

/// One (method, route, status)'s series. The size series are taken on first
/// use, so a request that never reports a size creates none.
#[derive(Debug)]
struct RequestSeries {
    duration: Histogram,
    request_size: OnceLock<Histogram>,
    response_size: OnceLock<Histogram>,
}

impl HttpServerMetrics {
    /// Registers (or finds) the set on `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        Ok(Self {
            duration: registry.histogram_family(
                metric::HTTP_SERVER_REQUEST_DURATION,
                "Duration of HTTP server requests.",
                HTTP_DURATION_BUCKETS,
                HTTP_SERVER_LABELS,
            )?,
            active: registry.gauge_family(
                metric::HTTP_SERVER_ACTIVE_REQUESTS,
                "Number of active HTTP server requests.",
                ["http_request_method"],
            )?,
            request_size: registry
                .metric(
                    metric::HTTP_SERVER_REQUEST_BODY_SIZE,
                    "Size of HTTP server request bodies.",
                )
                .exemplars(false)
                .histogram_family(SIZE_BUCKETS, ["http_request_method", "http_route"])?,
            response_size: registry
                .metric(
                    metric::HTTP_SERVER_RESPONSE_BODY_SIZE,
                    "Size of HTTP server response bodies.",
                )
                .exemplars(false)
                .histogram_family(
                    SIZE_BUCKETS,
                    [
                        "http_request_method",
                        "http_route",
                        "http_response_status_code",
                    ],
                )?,
            series: Arc::default(),
        })
    }

    /// Counts a request of `method` (normalised) as active until the guard
    /// is dropped. The gauge of each standard method is looked up once.
    ///
    /// ```
    /// let registry = obs_metrics::Registry::new();
    /// let http = obs_metrics::sets::HttpServerMetrics::new(&registry)?;
    /// let guard = http.track_active("get");
    /// assert!(registry.encode(obs_metrics::Format::Text).contains(r#"http_server_active_requests{http_request_method="_OTHER"} 1"#));
    /// drop(guard);
    /// assert!(registry.encode(obs_metrics::Format::Text).contains(r#"http_server_active_requests{http_request_method="_OTHER"} 0"#));
    /// # Ok::<(), obs_metrics::Error>(())
    /// ```
    pub fn track_active(&self, method: &str) -> GaugeGuard {
        let method = normalize_method(method);
        let Some(i) = METHODS.iter().position(|m| *m == method) else {
            return self.active.with([method], Gauge::track);
        };
        let slot = &self.series.active[i];
        if let Some(g) = slot.get() {
            return g.track();
        }
        match self.active.series([method]) {
            Some(g) => slot.get_or_init(|| g).track(),
            None => self.active.with([method], Gauge::track),
        }
    }

    /// Records one finished request. `method` is normalised
    /// ([`normalize_method`]); `route` must be the route template, never
    /// the raw path; `error_type` defaults to the status code for 5xx.
    pub fn record(
        &self,
        method: &str,
        route: &str,
        status: u16,
        error_type: Option<&str>,
        elapsed: Duration,
    ) {
        let method = normalize_method(method);
        let mut buf = itoa::Buffer::new();
        let status_str = buf.format(status);
        let error_type = error_type.unwrap_or(if status >= 500 { status_str } else { "" });
        self.duration
            .with([method, route, status_str, error_type], |h| {
                h.observe_duration(elapsed)
            });
    }

    /// Records one finished request the way [`HttpServerMetrics::layer`]
    /// does: its duration by status (`status` is `None` when the service
    /// failed without a response: no status, error type `_OTHER`), and,
    /// with a response, its body sizes when known. For middleware of its
    /// own that measures requests like the layer.
    ///
    /// ```
    /// use std::time::Duration;
    /// let registry = obs_metrics::Registry::new();
    /// let http = obs_metrics::sets::HttpServerMetrics::new(&registry)?;
    /// http.record_response("GET", "/users/{id}", Some(200), Duration::from_millis(3), None, Some(512));
    /// http.record_response("GET", "/users/{id}", None, Duration::from_millis(9), None, None);
    /// let text = registry.encode(obs_metrics::Format::Text);
    /// assert!(text.contains(r#"http_response_status_code="",error_type="_OTHER""#));
    /// # Ok::<(), obs_metrics::Error>(())
    /// ```
    pub fn record_response(
        &self,
        method: &str,
        route: &str,
        status: Option<u16>,
        elapsed: Duration,
        request_size: Option<u64>,
        response_size: Option<u64>,
    ) {
        match status {
            Some(status) => {
                let method = normalize_method(method);
                let mut buf = itoa::Buffer::new();
                let status_str = buf.format(status);
                let values = [method, route, status_str];
                let hash = self.series.hasher.hash_values(&values);
                {
                    let by_hash = self
                        .series
                        .by_hash
                        .read()
                        .unwrap_or_else(PoisonError::into_inner);
                    if let Some(series) = by_hash
                        .get(&hash)
                        .and_then(|b| b.iter().find(|(k, _)| key_eq(k, &values)))
                        .map(|(_, s)| s)
                    {
                        series.duration.observe_duration(elapsed);
                        self.record_sizes_into(series, values, request_size, response_size);
                        return;
                    }
                }
                self.record(method, route, status, None, elapsed);
                self.record_sizes(method, route, status, request_size, response_size);
                self.keep_series(hash, values, status);
            }
            None => self
                .duration
                .with([normalize_method(method), route, "", "_OTHER"], |h| {
                    h.observe_duration(elapsed)
                }),
        }
    }

    /// Body sizes into a kept request's series (taken on first use).
    fn record_sizes_into(
        &self,
        series: &RequestSeries,
        [method, route, status]: [&str; 3],
        request: Option<u64>,
        response: Option<u64>,
    ) {
        if let Some(n) = request {
            match kept_or_taken(&series.request_size, || {
                self.request_size.series([method, route])
            }) {
                Some(h) => h.observe(n as f64),
                None => self
                    .request_size
                    .with([method, route], |h| h.observe(n as f64)),
            }
        }
        if let Some(n) = response {
            match kept_or_taken(&series.response_size, || {
                self.response_size.series([method, route, status])
            }) {
                Some(h) => h.observe(n as f64),
                None => self
                    .response_size
                    .with([method, route, status], |h| h.observe(n as f64)),
            }
        }
    }

    /// Keeps the series of a request just recorded through the families,
    /// unless the cache is full or the duration family rejects the set.
    #[cold]
    fn keep_series(&self, hash: u64, values: [&str; 3], status: u16) {
        if self.series.len.load(Ordering::Relaxed) >= SERIES_CACHE_MAX {
            return;
        }
        let [method, route, status_str] = values;
        let error_type = if status >= 500 { status_str } else { "" };
        let Some(duration) = self
            .duration
            .series([method, route, status_str, error_type])
        else {
            return;
        };
        let mut by_hash = self
            .series
            .by_hash
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if self.series.len.load(Ordering::Relaxed) >= SERIES_CACHE_MAX {
            return;
        }
        let bucket = by_hash.entry(hash).or_default();
        if bucket.iter().any(|(k, _)| key_eq(k, &values)) {
            return;
        }
        bucket.push((
            pack_key(&values),
            RequestSeries {
                duration,
                request_size: OnceLock::new(),
                response_size: OnceLock::new(),
            },
        ));
        self.series.len.fetch_add(1, Ordering::Relaxed);
    }

    /// Records body sizes when known.
    pub fn record_sizes(
        &self,
        method: &str,
        route: &str,
        status: u16,
        request: Option<u64>,
        response: Option<u64>,
    ) {
        let method = normalize_method(method);
        if let Some(n) = request {
            self.request_size
                .with([method, route], |h| h.observe(n as f64));
        }
        if let Some(n) = response {
            let mut buf = itoa::Buffer::new();
            self.response_size
                .with([method, route, buf.format(status)], |h| h.observe(n as f64));
        }
    }
}

/// The handle kept in `slot`, else the one `take` finds (kept for next
/// time); `None` when the family rejects the label set.
#[inline]
fn kept_or_taken(
    slot: &OnceLock<Histogram>,
    take: impl FnOnce() -> Option<Histogram>,
) -> Option<&Histogram> {
    if let Some(h) = slot.get() {
        return Some(h);
    }
    let h = take()?;
    Some(slot.get_or_init(|| h))
}

/// HTTP client metrics: `http_client_request_duration_seconds` by method,
/// server address, status code and error type.
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// let client = obs_metrics::sets::HttpClientMetrics::new(&registry)?;
/// let call = client.start("GET", "api.example.com");
/// // ... send the request ...
/// call.finish(Some(503), None);
/// assert!(registry.encode(obs_metrics::Format::Text).contains(r#"error_type="503"} 1"#));
/// # Ok::<(), obs_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct HttpClientMetrics {
    /// `http_client_request_duration_seconds`.
    pub duration: Family<Histogram, 4>,
}

impl HttpClientMetrics {
    /// Registers (or finds) the set on `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        Ok(Self {
            duration: registry.histogram_family(
                metric::HTTP_CLIENT_REQUEST_DURATION,
                "Duration of HTTP client requests.",
                HTTP_DURATION_BUCKETS,
                [
                    "http_request_method",
                    "server_address",
                    "http_response_status_code",
                    "error_type",
                ],
            )?,
        })
    }

    /// Records one finished call; `status` is `None` when no response came
    /// (then `error_type` should say why, e.g. `timeout`).
    pub fn record(
        &self,
        method: &str,
        server: &str,
        status: Option<u16>,
        error_type: Option<&str>,
        elapsed: Duration,
    ) {
        let mut buf = itoa::Buffer::new();
        let status_str = status.map_or("", |s| buf.format(s));
        let error_type = error_type.unwrap_or(match status {
            Some(s) if s >= 400 => status_str,
            Some(_) => "",
            None => "_OTHER",
        });
        self.duration.with(
            [normalize_method(method), server, status_str, error_type],
            |h| h.observe_duration(elapsed),
        );
    }

    /// Starts timing a call; finish it with [`ClientCall::finish`].
    pub fn start<'a>(&'a self, method: &'a str, server: &'a str) -> ClientCall<'a> {
        ClientCall {
            metrics: self,
            method,
            server,
            start: Instant::now(),
        }
    }
}

/// A call being timed; see [`HttpClientMetrics::start`].
#[derive(Debug)]
#[must_use = "nothing is recorded until finish is called"]
pub struct ClientCall<'a> {
    metrics: &'a HttpClientMetrics,
    method: &'a str,
    server: &'a str,
    start: Instant,
}

impl ClientCall<'_> {
    /// Records the call with its outcome.
    pub fn finish(self, status: Option<u16>, error_type: Option<&str>) {
        self.metrics.record(
            self.method,
            self.server,
            status,
            error_type,
            self.start.elapsed(),
        );
    }
}

/// Database client metrics: `db_client_operation_duration_seconds` by
/// system, operation, table (collection) and error type.
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// let db = obs_metrics::sets::DbMetrics::new(&registry)?;
/// let rows: Result<u32, std::io::Error> = db.time("sqlite", "SELECT", "items", || Ok(3));
/// assert_eq!(rows.unwrap(), 3);
/// let timer = db.timer("sqlite", "INSERT", "items");
/// timer.fail("constraint");
/// let text = registry.encode(obs_metrics::Format::Text);
/// assert!(text.contains(r#"db_operation_name="INSERT",db_collection_name="items",error_type="constraint"} 1"#));
/// # Ok::<(), obs_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct DbMetrics {
    /// `db_client_operation_duration_seconds`.
    pub duration: Family<Histogram, 4>,
}

impl DbMetrics {
    /// Registers (or finds) the set on `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        Ok(Self {
            duration: registry.histogram_family(
                metric::DB_CLIENT_OPERATION_DURATION,
                "Duration of database client operations.",
                DB_DURATION_BUCKETS,
                [
                    "db_system_name",
                    "db_operation_name",
                    "db_collection_name",
                    "error_type",
                ],
            )?,
        })
    }

    /// A timer guard: records on drop as a success, or with
    /// [`DbTimer::fail`] as a failure.
    pub fn timer<'a>(&'a self, system: &'a str, operation: &'a str, table: &'a str) -> DbTimer<'a> {
        DbTimer {
            metrics: self,
            system,
            operation,
            table,
            start: Instant::now(),
            error: None,
        }
    }

    /// Times `f`; an `Err` is recorded with the error's type name as `error_type`.
    pub fn time<T, E>(
        &self,
        system: &str,
        operation: &str,
        table: &str,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let timer = self.timer(system, operation, table);
        let r = f();
        match &r {
            Ok(_) => drop(timer),
            Err(_) => timer.fail(short_type_name::<E>()),
        }
        r
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// Times one database operation; see [`DbMetrics::timer`].
#[derive(Debug)]
pub struct DbTimer<'a> {
    metrics: &'a DbMetrics,
    system: &'a str,
    operation: &'a str,
    table: &'a str,
    start: Instant,
    error: Option<&'a str>,
}

impl<'a> DbTimer<'a> {
    /// Records the operation as failed with this error type.
    pub fn fail(mut self, error_type: &'a str) {
        self.error = Some(error_type);
    }
}

impl Drop for DbTimer<'_> {
    fn drop(&mut self) {
        let e = self.error.unwrap_or("");
        let d = self.start.elapsed();
        self.metrics
            .duration
            .with([self.system, self.operation, self.table, e], |h| {
                h.observe_duration(d)
            });
    }
}

/// Worker / job metrics by queue and job type: started, succeeded, failed,
/// retried; duration by outcome; queue length and oldest-job age.
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// let jobs = obs_metrics::sets::JobMetrics::new(&registry)?;
/// let job = jobs.start("emails", "welcome");
/// job.succeed();
/// jobs.set_queue("emails", 12, std::time::Duration::from_secs(30));
/// let text = registry.encode(obs_metrics::Format::Text);
/// assert!(text.contains(r#"jobs_succeeded_total{queue="emails",job_type="welcome"} 1"#));
/// assert!(text.contains(r#"job_queue_oldest_age_seconds{queue="emails"} 30.0"#));
/// # Ok::<(), obs_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct JobMetrics {
    /// `jobs_started_total`.
    pub started: Family<Counter, 2>,
    /// `jobs_succeeded_total`.
    pub succeeded: Family<Counter, 2>,
    /// `jobs_failed_total`.
    pub failed: Family<Counter, 2>,
    /// `jobs_retried_total`.
    pub retried: Family<Counter, 2>,
    /// `job_duration_seconds` by queue, job type and outcome.
    pub duration: Family<Histogram, 3>,
    /// `job_queue_length`.
    pub queue_length: Family<Gauge, 1>,
    /// `job_queue_oldest_age_seconds`.
    pub oldest_age: Family<FloatGauge, 1>,
}

impl JobMetrics {
    /// Registers (or finds) the set on `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        let l = ["queue", "job_type"];
        Ok(Self {
            started: registry.counter_family("jobs_started", "Jobs started.", l)?,
            succeeded: registry.counter_family("jobs_succeeded", "Jobs that succeeded.", l)?,
            failed: registry.counter_family("jobs_failed", "Jobs that failed.", l)?,
            retried: registry.counter_family("jobs_retried", "Jobs scheduled for a retry.", l)?,
            duration: registry.histogram_family(
                "job_duration_seconds",
                "Job run time by outcome.",
                JOB_DURATION_BUCKETS,
                ["queue", "job_type", "outcome"],
            )?,
            queue_length: registry.gauge_family(
                "job_queue_length",
                "Jobs waiting in the queue.",
                ["queue"],
            )?,
            oldest_age: registry.float_gauge_family(
                "job_queue_oldest_age_seconds",
                "Age of the oldest job waiting in the queue.",
                ["queue"],
            )?,
        })
    }

    /// Counts a job as started and returns its guard. A guard dropped
    /// without an outcome (a panic, an early return) counts as failed.
    pub fn start<'a>(&'a self, queue: &'a str, job_type: &'a str) -> JobGuard<'a> {
        self.started.with([queue, job_type], Counter::inc);
        JobGuard {
            metrics: self,
            queue,
            job_type,
            start: Instant::now(),
            done: false,
        }
    }

    /// Sets the queue's length and the age of its oldest job.
    pub fn set_queue(&self, queue: &str, length: i64, oldest: Duration) {
        self.queue_length.with([queue], |g| g.set(length));
        self.oldest_age
            .with([queue], |g| g.set(oldest.as_secs_f64()));
    }
}

/// One running job; see [`JobMetrics::start`].
#[derive(Debug)]
pub struct JobGuard<'a> {
    metrics: &'a JobMetrics,
    queue: &'a str,
    job_type: &'a str,
    start: Instant,
    done: bool,
}

impl JobGuard<'_> {
    fn finish(&mut self, outcome: &str) {
        self.done = true;
        let m = self.metrics;
        let l = [self.queue, self.job_type];
        match outcome {
            "success" => m.succeeded.with(l, Counter::inc),
            "retry" => m.retried.with(l, Counter::inc),
            _ => m.failed.with(l, Counter::inc),
        }
        let d = self.start.elapsed();
        m.duration.with([self.queue, self.job_type, outcome], |h| {
            h.observe_duration(d)
        });
    }
    /// The job succeeded.
    pub fn succeed(mut self) {
        self.finish("success");
    }
    /// The job failed for good.
    pub fn fail(mut self) {
        self.finish("failure");
    }
    /// The job failed and will be retried.
    pub fn retry(mut self) {
        self.finish("retry");
    }
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.finish("failure");
        }
    }
}

/// Data pipeline metrics by pipeline and stage: rows in, out and rejected,
/// stage duration, and the last batch's throughput.
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// let p = obs_metrics::sets::PipelineMetrics::new(&registry)?;
/// p.record_batch("orders", "parse", 1000, 990, 10, std::time::Duration::from_millis(500));
/// let text = registry.encode(obs_metrics::Format::Text);
/// assert!(text.contains(r#"pipeline_rows_rejected_total{pipeline="orders",stage="parse"} 10"#));
/// assert!(text.contains(r#"pipeline_throughput_rows_per_second{pipeline="orders",stage="parse"} 1980.0"#));
/// # Ok::<(), obs_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    /// `pipeline_rows_in_total`.
    pub rows_in: Family<Counter, 2>,
    /// `pipeline_rows_out_total`.
    pub rows_out: Family<Counter, 2>,
    /// `pipeline_rows_rejected_total`.
    pub rows_rejected: Family<Counter, 2>,
    /// `pipeline_stage_duration_seconds`.
    pub stage_duration: Family<Histogram, 2>,
    /// `pipeline_throughput_rows_per_second`: rows out per second of the last batch.
    /// A scrape sees only the last batch before it; for throughput over time
    /// (dashboards, alerts) use `rate(pipeline_rows_out_total[5m])`.
    pub throughput: Family<FloatGauge, 2>,
}

impl PipelineMetrics {
    /// Registers (or finds) the set on `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        let l = ["pipeline", "stage"];
        Ok(Self {
            rows_in: registry.counter_family("pipeline_rows_in", "Rows read by a stage.", l)?,
            rows_out: registry.counter_family(
                "pipeline_rows_out",
                "Rows written by a stage.",
                l,
            )?,
            rows_rejected: registry.counter_family(
                "pipeline_rows_rejected",
                "Rows rejected by a stage.",
                l,
            )?,
            stage_duration: registry.histogram_family(
                "pipeline_stage_duration_seconds",
                "Time a stage spent on a batch.",
                JOB_DURATION_BUCKETS,
                l,
            )?,
            throughput: registry.float_gauge_family(
                "pipeline_throughput_rows_per_second",
                "Rows written per second over the last batch of a stage.",
                l,
            )?,
        })
    }

    /// Records one batch of a stage.
    pub fn record_batch(
        &self,
        pipeline: &str,
        stage: &str,
        rows_in: u64,
        rows_out: u64,
        rejected: u64,
        elapsed: Duration,
    ) {
        let l = [pipeline, stage];
        self.rows_in.with(l, |c| c.inc_by(rows_in));
        self.rows_out.with(l, |c| c.inc_by(rows_out));
        self.rows_rejected.with(l, |c| c.inc_by(rejected));
        self.stage_duration.with(l, |h| h.observe_duration(elapsed));
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            self.throughput.with(l, |g| g.set(rows_out as f64 / secs));
        }
    }
}

/// Registers `obs_build_info{service,version,revision} 1`.
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// obs_metrics::sets::build_info(&registry, "checkout", env!("CARGO_PKG_VERSION"), "abc123")?;
/// assert!(registry.encode(obs_metrics::Format::Text).contains(r#"obs_build_info{service="checkout",version="0.1.0",revision="abc123"} 1"#));
/// # Ok::<(), obs_metrics::Error>(())
/// ```
pub fn build_info(registry: &Registry, service: &str, version: &str, revision: &str) -> Result<()> {
    let f = registry.gauge_family(
        "obs_build_info",
        "Build information of the running service; the value is always 1.",
        ["service", "version", "revision"],
    )?;
    f.with([service, version, revision], |g| g.set(1));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    /// The kept series record exactly what the families record: the same
    /// exposition for the same requests, through the cache or not.
    #[test]
    fn kept_series_record_what_the_families_record() {
        let cached = Registry::builder().exemplars(false).build();
        let plain = Registry::builder().exemplars(false).build();
        let http = HttpServerMetrics::new(&cached).unwrap();
        let reference = HttpServerMetrics::new(&plain).unwrap();
        let requests = [
            ("GET", "/items/{id}", Some(200), Some(10), Some(512)),
            ("get", "/items/{id}", Some(200), None, Some(100)),
            ("POST", "/items", Some(503), Some(2_000), None),
            ("BREW", "/pot", Some(418), None, None),
            ("GET", "/items/{id}", None, None, None),
        ];
        for round in 0..3u64 {
            for (i, (m, r, st, req, resp)) in requests.iter().enumerate() {
                let elapsed = Duration::from_micros(100 * (round + 1) * (i as u64 + 1));
                http.record_response(m, r, *st, elapsed, *req, *resp);
                match st {
                    Some(st) => {
                        reference.record(m, r, *st, None, elapsed);
                        reference.record_sizes(m, r, *st, *req, *resp);
                    }
                    None => reference.record_response(m, r, None, elapsed, None, None),
                }
            }
        }
        assert_eq!(http.series.len.load(Ordering::Relaxed), 4);
        assert_eq!(cached.encode(Format::Text), plain.encode(Format::Text));
    }

    /// A label set the family rejects is never kept: each of its requests
    /// goes to the overflow series and is counted as rejected.
    #[test]
    fn rejected_label_sets_are_counted_on_every_request() {
        let registry = Registry::builder()
            .cardinality_limit(1)
            .exemplars(false)
            .build();
        let http = HttpServerMetrics::new(&registry).unwrap();
        for _ in 0..3 {
            http.record_response("GET", "/a", Some(200), Duration::from_millis(1), None, None);
            http.record_response("GET", "/b", Some(200), Duration::from_millis(1), None, None);
        }
        assert_eq!(
            http.series.len.load(Ordering::Relaxed),
            1,
            "only /a is kept"
        );
        assert_eq!(
            registry.rejected_label_sets(metric::HTTP_SERVER_REQUEST_DURATION),
            3
        );
        let text = registry.encode(Format::Text);
        assert!(
            text.contains(
                r#"http_server_request_duration_seconds_count{otel_metric_overflow="true"} 3"#
            ),
            "{text}"
        );
    }

    #[test]
    fn active_requests_are_tracked_by_normalised_method() {
        let registry = Registry::new();
        let http = HttpServerMetrics::new(&registry).unwrap();
        let a = http.track_active("GET");
        let b = http.track_active("GET");
        let c = http.track_active("BREW");
        assert_eq!(http.active.get(["GET"]).get(), 2);
        assert_eq!(http.active.get(["_OTHER"]).get(), 1);
        drop((a, b, c));
        assert_eq!(http.active.get(["GET"]).get(), 0);
        assert_eq!(http.active.get(["_OTHER"]).get(), 0);
    }
}
