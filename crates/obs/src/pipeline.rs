//! Data pipelines: a span and metrics per batch of each stage.
//!
//! ```
//! let stage = obs::pipeline::Stage::new("orders_etl", "transform");
//! let batch = stage.batch(1_000);
//! // ... transform rows inside `batch.span()` ...
//! batch.finish(990, 10); // rows out, rows rejected
//! ```

use std::time::Instant;

use crate::Obs;

/// One stage of a pipeline. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Stage {
    pipeline: String,
    stage: String,
    metrics: Option<obs_metrics::sets::PipelineMetrics>,
}

impl Stage {
    /// A stage recording to the instance installed by [`crate::init`]
    /// (metrics are skipped without one; spans and logs still work).
    pub fn new(pipeline: impl Into<String>, stage: impl Into<String>) -> Self {
        match Obs::global() {
            Some(obs) => obs.stage(pipeline, stage),
            None => Self {
                pipeline: pipeline.into(),
                stage: stage.into(),
                metrics: None,
            },
        }
    }

    /// Starts a batch of `rows_in` rows: opens its span.
    pub fn batch(&self, rows_in: u64) -> Batch {
        let span = tracing::info_span!(
            "pipeline.batch",
            otel.name = %format_args!("{} {}", self.pipeline, self.stage),
            otel.kind = "internal",
            pipeline = %self.pipeline,
            stage = %self.stage,
            rows_in,
            rows_out = tracing::field::Empty,
            rows_rejected = tracing::field::Empty,
        );
        Batch {
            stage: self.clone(),
            span,
            rows_in,
            start: Instant::now(),
            finished: false,
            failure: None,
        }
    }
}

impl Obs {
    /// A pipeline stage recording `pipeline_rows_in/out/rejected`,
    /// `pipeline_stage_duration_seconds` and throughput on this instance.
    pub fn stage(&self, pipeline: impl Into<String>, stage: impl Into<String>) -> Stage {
        let metrics = self.inner.metrics.metric_set(
            |s| &s.pipeline,
            "pipeline",
            obs_metrics::sets::PipelineMetrics::new,
        );
        Stage {
            pipeline: pipeline.into(),
            stage: stage.into(),
            metrics,
        }
    }
}

/// A batch in progress; [`finish`](Self::finish) records it. A batch dropped
/// unfinished is recorded with every row rejected, so a failure is visible.
#[derive(Debug)]
pub struct Batch {
    stage: Stage,
    span: tracing::Span,
    rows_in: u64,
    start: Instant,
    finished: bool,
    /// The message and chain of the error the batch failed with.
    failure: Option<(String, String)>,
}

impl Batch {
    /// The batch's span: enter it (or `instrument` futures with it) while
    /// working on the rows.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Records the batch: rows written and rejected, duration, throughput.
    pub fn finish(mut self, rows_out: u64, rows_rejected: u64) {
        self.record(rows_out, rows_rejected);
    }

    /// Records the batch as failed with `err` — any `Display + Debug`
    /// error (`anyhow::Error`, `Box<dyn Error + Send + Sync>`, your own):
    /// every row counts as rejected, the error is reported inside the
    /// batch's span (an `exception` event on it and an error report with
    /// its chain), and the batch line is a WARN line carrying the message
    /// and the chain.
    ///
    /// ```
    /// let stage = obs::pipeline::Stage::new("orders_etl", "load");
    /// let batch = stage.batch(500);
    /// let err: Box<dyn std::error::Error + Send + Sync> = "warehouse unreachable".into();
    /// batch.fail(&err);
    /// ```
    pub fn fail<E>(mut self, err: &E)
    where
        E: std::fmt::Display + std::fmt::Debug + 'static,
    {
        let obs = Obs::global();
        {
            let _g = self.span.enter();
            crate::job::capture(obs.as_ref(), err);
        }
        let failure = crate::job::JobError::new(err);
        self.failure = Some((failure.message(), failure.chain().join(": ")));
        let rows = self.rows_in;
        self.record(0, rows);
    }

    fn record(&mut self, rows_out: u64, rows_rejected: u64) {
        self.finished = true;
        let elapsed = self.start.elapsed();
        self.span.record("rows_out", rows_out);
        self.span.record("rows_rejected", rows_rejected);
        if let Some(m) = &self.stage.metrics {
            m.record_batch(
                &self.stage.pipeline,
                &self.stage.stage,
                self.rows_in,
                rows_out,
                rows_rejected,
                elapsed,
            );
        }
        let _g = self.span.enter();
        let duration_ms = obs_core::units::duration_ms(elapsed);
        match &self.failure {
            None => tracing::info!(
                target: "obs::pipeline",
                rows_in = self.rows_in,
                rows_out,
                rows_rejected,
                duration_ms,
                "batch finished"
            ),
            Some((message, chain)) => tracing::warn!(
                target: "obs::pipeline",
                rows_in = self.rows_in,
                rows_out,
                rows_rejected,
                duration_ms,
                error = %message,
                error.chain = %chain,
                "batch failed"
            ),
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if !self.finished {
            let rows = self.rows_in;
            self.record(0, rows);
        }
    }
}
