//! Run with: `cargo run -p examples --bin worker`
//!
//! A background worker: a producer enqueues a batch of "send receipt" jobs
//! on a bounded queue and two workers run them under `obs::job::instrument`.
//! Each job runs in a consumer span continuing the producer's trace and
//! logs with the batch's correlation id. Some jobs fail once with a
//! error and are retried with exponential backoff (counted in
//! `jobs_retried_total`); one job fails all three attempts and ends in
//! `jobs_failed_total`. The queue's length and the age of its oldest job are
//! published as `job_queue_length` and `job_queue_oldest_age_seconds`.
//!
//! The program ends on its own after a few seconds, printing the job metrics
//! as `/metrics` would show them and obs's shutdown report. Set
//! `OTEL_EXPORTER_OTLP_ENDPOINT` to see the spans in a collector, and
//! `ADMIN_PORT` (`0` picks a free port; `HOST` defaults to `127.0.0.1`) to
//! serve `/metrics` and the probes for Prometheus: the worker then logs
//! `"admin listening"` with `admin.addr`, and after the batch keeps serving
//! until SIGTERM or Ctrl-C.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use obs::job::Job;
use obs::metrics::sets::JobMetrics;
use obs::{CorrelationId, IdFormat};
use tokio::sync::mpsc;
use tracing::Instrument;

mod admin_port;

const QUEUE: &str = "receipts";
const JOB_TYPE: &str = "send_receipt";
const JOBS: u32 = 30;
const WORKERS: usize = 2;
const MAX_ATTEMPTS: u32 = 3;
/// The order whose job never succeeds: its address is invalid.
const POISON_ORDER: u32 = 13;

#[derive(Debug)]
struct Msg {
    order: u32,
    attempt: u32,
    carrier: obs::Carrier,
}

/// Why sending a receipt failed (treated as transient: retried while
/// attempts remain).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SendError(String);

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SendError {}

/// The bounded queue with the bookkeeping for its gauges.
#[derive(Clone)]
struct Queue {
    tx: mpsc::Sender<Msg>,
    waiting: Arc<Mutex<VecDeque<Instant>>>,
    metrics: Option<JobMetrics>,
}

impl Queue {
    /// Waits for room (backpressure on the producer), then enqueues.
    async fn push(&self, msg: Msg) -> Result<(), mpsc::error::SendError<()>> {
        let permit = self.tx.reserve().await?;
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        permit.send(msg);
        waiting.push_back(Instant::now());
        self.publish(&waiting);
        Ok(())
    }

    fn popped(&self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        waiting.pop_front();
        self.publish(&waiting);
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
}

/// The simulated work: a few milliseconds, a failure on the first attempt
/// of every seventh order, and one order that fails every attempt.
async fn send_receipt(order: u32, attempt: u32) -> Result<(), SendError> {
    tokio::time::sleep(Duration::from_millis(20 + u64::from(order % 5) * 10)).await;
    if order == POISON_ORDER {
        return Err(SendError(format!("order {order}: mailbox unavailable")));
    }
    if order % 7 == 3 && attempt == 1 {
        return Err(SendError(format!("order {order}: smtp timeout")));
    }
    tracing::info!(order, attempt, "receipt sent");
    Ok(())
}

/// Final outcome of one order's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Failed,
}

async fn worker(
    id: usize,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Msg>>>,
    queue: Queue,
    done: mpsc::UnboundedSender<Outcome>,
) {
    loop {
        let msg = { rx.lock().await.recv().await };
        let Some(msg) = msg else { break };
        queue.popped();
        // A failure is retried while attempts remain: counted in
        // `jobs_retried_total`; the last attempt's failure in `jobs_failed_total`.
        let retryable_attempt = msg.attempt < MAX_ATTEMPTS;
        let job = Job::new(QUEUE, JOB_TYPE)
            .carrier(msg.carrier.clone())
            .will_retry(retryable_attempt);
        let r = obs::job::instrument(job, async {
            tracing::debug!(
                worker = id,
                order = msg.order,
                attempt = msg.attempt,
                "job picked up"
            );
            send_receipt(msg.order, msg.attempt).await
        })
        .await;
        match r {
            Ok(()) => {
                let _ = done.send(Outcome::Sent);
            }
            Err(_) if retryable_attempt => {
                let backoff = Duration::from_millis(100 * 2u64.pow(msg.attempt - 1));
                let (queue, next) = (
                    queue.clone(),
                    Msg {
                        attempt: msg.attempt + 1,
                        ..msg
                    },
                );
                // The retry waits off the worker, so other jobs keep flowing.
                tokio::spawn(async move {
                    tokio::time::sleep(backoff).await;
                    if queue.push(next).await.is_err() {
                        tracing::error!("queue closed before a retry could be enqueued");
                    }
                });
            }
            Err(_) => {
                let _ = done.send(Outcome::Failed);
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let obs = obs::init(obs::Config::from_env()?.service("receipts-worker"))?;
    let admin = admin_port::serve(&obs).await?;

    let (tx, rx) = mpsc::channel(8);
    let queue = Queue {
        tx,
        waiting: Arc::new(Mutex::new(VecDeque::new())),
        metrics: obs.job_metrics(),
    };
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| tokio::spawn(worker(i, rx.clone(), queue.clone(), done_tx.clone())))
        .collect();
    drop(done_tx);

    // The producer: one span and one correlation id for the whole batch;
    // every job carries both.
    let batch = CorrelationId::generate(IdFormat::UuidV7);
    let producer = {
        let queue = queue.clone();
        let enqueue_all = async move {
            for order in 1..=JOBS {
                let msg = Msg {
                    order,
                    attempt: 1,
                    carrier: obs::job::carrier(),
                };
                if queue.push(msg).await.is_err() {
                    tracing::error!(order, "queue closed; job not enqueued");
                }
            }
            tracing::info!(jobs = JOBS, "batch enqueued");
        };
        // `scope` is called inside the producer span, so the id lands on it.
        async move { obs::correlate::scope(batch, enqueue_all).await }.instrument(
            tracing::info_span!("enqueue receipts", otel.kind = "producer", jobs = JOBS),
        )
    };
    producer.await;

    let (mut sent, mut failed) = (0u32, 0u32);
    let finished = tokio::time::timeout(Duration::from_secs(30), async {
        while sent + failed < JOBS {
            match done_rx.recv().await {
                Some(Outcome::Sent) => sent += 1,
                Some(Outcome::Failed) => failed += 1,
                None => break,
            }
        }
    })
    .await;
    if finished.is_err() {
        tracing::error!(
            sent,
            failed,
            "jobs still running after 30s; stopping anyway"
        );
    }
    tracing::info!(sent, failed, "worker finished");
    // Every job has its outcome; the workers (which keep queue handles for
    // retries) are stopped explicitly.
    drop(queue);
    for w in workers {
        w.abort();
    }
    admin_port::linger(admin).await;

    let exposition = obs.metrics().encode(obs::metrics::Format::Text);
    let report = obs.shutdown(Duration::from_secs(5)).await;
    #[allow(
        clippy::print_stdout,
        reason = "the example prints its metrics and report"
    )]
    {
        println!("--- job metrics, as /metrics shows them ---");
        for line in exposition.lines().filter(|l| {
            (l.starts_with("jobs_") || l.starts_with("job_queue")) && !l.starts_with('#')
        }) {
            println!("{line}");
        }
        println!("--- obs shutdown: {report}");
    }
    Ok(())
}
