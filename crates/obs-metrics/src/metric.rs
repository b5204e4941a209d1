//! The metric handles: [`Counter`], [`Gauge`], [`FloatGauge`], [`Histogram`]
//! and [`Summary`]. Each is a cheap, cloneable handle (one `Arc`) onto atomics
//! (a mutex only for the summary's sketch); cloning shares the series.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sketches_ddsketch::{Config as SketchConfig, DDSketch};

use crate::encode::{Exemplar, Writer};
use crate::error::{Error, MetricType};
use crate::text::push_f64;

pub(crate) mod sealed {
    use super::*;

    /// What the registry and families need from a metric type.
    pub trait Sealed: Clone + Send + Sync + std::fmt::Debug + 'static {
        /// Shared per-family configuration (buckets, quantiles).
        type Spec: Send + Sync + std::fmt::Debug + 'static;
        /// The `# TYPE`.
        const TYPE: MetricType;
        /// A fresh series.
        fn create(spec: &Arc<Self::Spec>, exemplars: bool) -> Self;
        /// Writes this series' samples.
        fn encode(&self, w: &mut Writer<'_>, name: &str, labels: &str);
    }
}

/// A metric type that can be registered alone or in a labelled family:
/// [`Counter`], [`Gauge`], [`FloatGauge`], [`Histogram`], [`Summary`].
pub trait Metric: sealed::Sealed {}
impl<T: sealed::Sealed> Metric for T {}

/// Observations of a bucket (of a counter: increments while its value is
/// below this) that are all offered as exemplars.
const EXEMPLAR_WARM: u64 = 16;
/// After those, one observation in this many is offered (a counter: each
/// increment that reaches or crosses a multiple of this).
const EXEMPLAR_EVERY: u64 = 16;

/// Where exemplars of one series are kept: the latest sampled observation
/// among those offered. Every observation of a bucket's first
/// [`EXEMPLAR_WARM`] is offered, then one in [`EXEMPLAR_EVERY`]: a rare,
/// slow bucket gets its exemplar from its first sampled observations, and a
/// hot one refreshes it often while paying the current-span lookup (the
/// costliest part of recording a request's metrics) on one observation in
/// sixteen. The count is the bucket's own (a counter's: its value), so no
/// atomic is added.
#[derive(Debug, Default)]
pub(crate) struct ExemplarCell {
    /// Whether `latest` was ever written: lets a scrape skip the lock.
    set: std::sync::atomic::AtomicBool,
    latest: Mutex<Option<(usize, Exemplar)>>,
}

impl ExemplarCell {
    /// Records `value` (falling in `bucket`) when `due` and the current span
    /// is sampled.
    #[inline]
    fn offer(&self, value: f64, bucket: usize, due: bool) {
        // One relaxed load when no subscriber was ever installed: exemplars
        // cost nothing in programs that do not trace.
        if !due || !tracing_core::dispatcher::has_been_set() {
            return;
        }
        self.offer_slow(value, bucket);
    }

    /// Whether a histogram observation is offered: its bucket had seen
    /// `seen` observations before it.
    #[inline]
    fn due_observation(seen: u64) -> bool {
        seen < EXEMPLAR_WARM || seen.is_multiple_of(EXEMPLAR_EVERY)
    }

    /// Whether a counter increment from `before` by `v` is offered: while
    /// the counter is below [`EXEMPLAR_WARM`], then whenever the increment
    /// reaches or crosses a multiple of [`EXEMPLAR_EVERY`] (one `inc` in 16;
    /// every increment of 16 or more, so a counter stepped by large amounts
    /// is never left with a stale exemplar).
    #[inline]
    fn due_increment(before: u64, v: u64) -> bool {
        before < EXEMPLAR_WARM || before / EXEMPLAR_EVERY != before.wrapping_add(v) / EXEMPLAR_EVERY
    }

    #[cold]
    fn offer_slow(&self, value: f64, bucket: usize) {
        let Some((trace_id, span_id)) = sampled_trace() else {
            return;
        };
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let ex = Exemplar {
            trace_id,
            span_id,
            value,
            timestamp,
        };
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some((bucket, ex));
        self.set.store(true, Ordering::Release);
    }

    fn get(&self) -> Option<(usize, Exemplar)> {
        if !self.set.load(Ordering::Acquire) {
            return None;
        }
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The trace and span id of the current span when it is sampled: the trace
/// half of obs-core's merge rule (`IdRecord::current_trace`), read in place
/// so that no correlation id is cloned on a hot path.
fn sampled_trace() -> Option<(obs_core::TraceId, Option<obs_core::SpanId>)> {
    let (trace_id, span_id, flags) = obs_core::IdRecord::current_trace()?;
    flags.is_sampled().then_some((trace_id, span_id))
}

fn add_f64(cell: &AtomicU64, v: f64) {
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(cur) + v).to_bits();
        match cell.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

// ---------------------------------------------------------------- counter

#[derive(Debug, Default)]
struct CounterCore {
    value: AtomicU64,
    exemplar: Option<ExemplarCell>,
}

/// A monotonically increasing counter. Exposed as `<name>_total`.
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// let jobs = registry.counter("jobs_done", "Jobs finished.")?;
/// jobs.inc();
/// jobs.inc_by(2);
/// assert_eq!(jobs.get(), 3);
/// # Ok::<(), obs_metrics::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<CounterCore>);

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `v`.
    #[inline]
    pub fn inc_by(&self, v: u64) {
        let before = self.0.value.fetch_add(v, Ordering::Relaxed);
        if let Some(cell) = &self.0.exemplar {
            cell.offer(v as f64, 0, ExemplarCell::due_increment(before, v));
        }
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.value.load(Ordering::Relaxed)
    }
}

impl sealed::Sealed for Counter {
    type Spec = ();
    const TYPE: MetricType = MetricType::Counter;
    fn create(_: &Arc<()>, exemplars: bool) -> Self {
        Counter(Arc::new(CounterCore {
            value: AtomicU64::new(0),
            exemplar: exemplars.then(ExemplarCell::default),
        }))
    }
    fn encode(&self, w: &mut Writer<'_>, name: &str, labels: &str) {
        w.start(name, "_total", labels, None);
        crate::text::push_u64(w.out, self.get());
        let ex = self.0.exemplar.as_ref().and_then(ExemplarCell::get);
        w.end(ex.as_ref().map(|(_, e)| e));
    }
}

// ---------------------------------------------------------------- gauges

/// An integer gauge.
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// let queue = registry.gauge("queue_length", "Items waiting.")?;
/// queue.set(5);
/// queue.dec();
/// {
///     let _in_flight = queue.track(); // +1 until dropped
///     assert_eq!(queue.get(), 5);
/// }
/// assert_eq!(queue.get(), 4);
/// # Ok::<(), obs_metrics::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }
    /// Adds `v` (which may be negative).
    #[inline]
    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Adds one now and subtracts it when the guard drops (in-flight tracking).
    pub fn track(&self) -> GaugeGuard {
        self.inc();
        GaugeGuard(self.clone())
    }
}

/// Returned by [`Gauge::track`]; decrements the gauge on drop.
#[derive(Debug)]
#[must_use = "the gauge is decremented when the guard drops"]
pub struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl sealed::Sealed for Gauge {
    type Spec = ();
    const TYPE: MetricType = MetricType::Gauge;
    fn create(_: &Arc<()>, _: bool) -> Self {
        Gauge::default()
    }
    fn encode(&self, w: &mut Writer<'_>, name: &str, labels: &str) {
        w.start(name, "", labels, None);
        crate::text::push_i64(w.out, self.get());
        w.out.push('\n');
    }
}

/// A floating-point gauge.
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// let temp = registry.float_gauge("temperature_celsius", "Room temperature.")?;
/// temp.set(21.5);
/// temp.add(-0.5);
/// assert_eq!(temp.get(), 21.0);
/// # Ok::<(), obs_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FloatGauge(Arc<AtomicU64>);

impl Default for FloatGauge {
    fn default() -> Self {
        FloatGauge(Arc::new(AtomicU64::new(0f64.to_bits())))
    }
}

impl FloatGauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    /// Adds `v` (which may be negative).
    #[inline]
    pub fn add(&self, v: f64) {
        add_f64(&self.0, v);
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl sealed::Sealed for FloatGauge {
    type Spec = ();
    const TYPE: MetricType = MetricType::Gauge;
    fn create(_: &Arc<()>, _: bool) -> Self {
        FloatGauge::default()
    }
    fn encode(&self, w: &mut Writer<'_>, name: &str, labels: &str) {
        w.start(name, "", labels, None);
        push_f64(w.out, self.get());
        w.out.push('\n');
    }
}

// ---------------------------------------------------------------- histogram

/// Bucket boundaries shared by every series of a histogram family.
#[derive(Debug)]
pub struct HistogramSpec {
    bounds: Box<[f64]>,
    le: Box<[Box<str>]>,
}

impl HistogramSpec {
    pub(crate) fn new(metric: &str, bounds: &[f64]) -> Result<Self, Error> {
        let bad = |reason: String| {
            Err(Error::InvalidBuckets {
                metric: metric.to_owned(),
                reason,
            })
        };
        if bounds.is_empty() {
            return bad("no bucket boundaries given".into());
        }
        for (i, b) in bounds.iter().enumerate() {
            if !b.is_finite() {
                return bad(format!(
                    "boundary {b} at index {i} is not finite (+Inf is added automatically)"
                ));
            }
            if i > 0 && bounds[i - 1] >= *b {
                return bad(format!(
                    "boundary {b} at index {i} does not increase on {}",
                    bounds[i - 1]
                ));
            }
        }
        let le = bounds
            .iter()
            .map(|b| {
                let mut s = String::new();
                push_f64(&mut s, *b);
                s.into_boxed_str()
            })
            .collect();
        Ok(Self {
            bounds: bounds.into(),
            le,
        })
    }

    /// The boundaries (without `+Inf`).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }
}

#[derive(Debug)]
struct HistogramCore {
    spec: Arc<HistogramSpec>,
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    exemplar: Option<ExemplarCell>,
}

/// A histogram with fixed buckets.
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// let latency = registry.histogram("work_duration_seconds", "Work time.", &[0.1, 0.5, 1.0])?;
/// latency.observe(0.3);
/// let _timer = latency.start_timer(); // observes the elapsed seconds on drop
/// # drop(_timer);
/// assert_eq!(latency.count(), 2);
/// # Ok::<(), obs_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramCore>);

impl Histogram {
    /// Records one observation.
    #[inline]
    pub fn observe(&self, v: f64) {
        let core = &*self.0;
        let bounds = &core.spec.bounds;
        // Linear scan: buckets are few and this beats a binary search on them.
        let idx = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        let seen = core.buckets[idx].fetch_add(1, Ordering::Relaxed);
        add_f64(&core.sum, v);
        if let Some(cell) = &core.exemplar {
            cell.offer(v, idx, ExemplarCell::due_observation(seen));
        }
    }

    /// Records a duration in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Starts a timer that observes the elapsed seconds when dropped.
    pub fn start_timer(&self) -> HistogramTimer {
        HistogramTimer {
            histogram: Some(self.clone()),
            start: Instant::now(),
        }
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.0.sum.load(Ordering::Relaxed))
    }

    /// Cumulative counts per bucket, `+Inf` last.
    pub fn cumulative_counts(&self) -> Vec<u64> {
        let mut acc = 0;
        self.0
            .buckets
            .iter()
            .map(|b| {
                acc += b.load(Ordering::Relaxed);
                acc
            })
            .collect()
    }
}

/// Observes the elapsed time into a [`Histogram`] when dropped (or [`stop`](Self::stop)ped).
#[derive(Debug)]
#[must_use = "the duration is observed when the timer drops"]
pub struct HistogramTimer {
    histogram: Option<Histogram>,
    start: Instant,
}

impl HistogramTimer {
    /// Observes now and returns the elapsed time.
    pub fn stop(mut self) -> Duration {
        let d = self.start.elapsed();
        if let Some(h) = self.histogram.take() {
            h.observe_duration(d);
        }
        d
    }

    /// Drops the timer without observing anything.
    pub fn discard(mut self) {
        self.histogram = None;
    }
}

impl Drop for HistogramTimer {
    fn drop(&mut self) {
        if let Some(h) = self.histogram.take() {
            h.observe_duration(self.start.elapsed());
        }
    }
}

impl sealed::Sealed for Histogram {
    type Spec = HistogramSpec;
    const TYPE: MetricType = MetricType::Histogram;
    fn create(spec: &Arc<HistogramSpec>, exemplars: bool) -> Self {
        let buckets = (0..=spec.bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram(Arc::new(HistogramCore {
            spec: spec.clone(),
            buckets,
            sum: AtomicU64::new(0f64.to_bits()),
            exemplar: exemplars.then(ExemplarCell::default),
        }))
    }
    fn encode(&self, w: &mut Writer<'_>, name: &str, labels: &str) {
        let core = &*self.0;
        let ex = core.exemplar.as_ref().and_then(ExemplarCell::get);
        let mut acc = 0u64;
        for (i, b) in core.buckets.iter().enumerate() {
            acc += b.load(Ordering::Relaxed);
            let le = core.spec.le.get(i).map_or("+Inf", |s| s);
            w.start(name, "_bucket", labels, Some(("le", le)));
            crate::text::push_u64(w.out, acc);
            let here = ex.as_ref().filter(|(bi, _)| *bi == i).map(|(_, e)| e);
            w.end(here);
        }
        w.f64_sample(name, "_sum", labels, self.sum());
        w.u64_sample(name, "_count", labels, acc);
    }
}

// ---------------------------------------------------------------- summary

/// Options of a [`Summary`]: which quantiles, over what sliding window.
///
/// ```
/// use std::time::Duration;
/// let opts = obs_metrics::SummaryOpts::default().max_age(Duration::from_secs(60)).age_buckets(3);
/// assert_eq!(opts.quantiles(), &[0.5, 0.9, 0.95, 0.99]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryOpts {
    quantiles: Vec<f64>,
    max_age: Duration,
    age_buckets: u32,
    relative_accuracy: f64,
}

impl Default for SummaryOpts {
    /// P50/P90/P95/P99 over the last 10 minutes in 5 rotating sketches, 1 % relative accuracy.
    fn default() -> Self {
        Self {
            quantiles: vec![0.5, 0.9, 0.95, 0.99],
            max_age: Duration::from_secs(600),
            age_buckets: 5,
            relative_accuracy: 0.01,
        }
    }
}

impl SummaryOpts {
    /// The quantiles to report, each in `[0, 1]`.
    pub fn with_quantiles(mut self, q: &[f64]) -> Self {
        self.quantiles = q.to_vec();
        self
    }
    /// How long an observation counts towards the quantiles.
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }
    /// Into how many sketches the window is split; the window slides by `max_age / age_buckets`.
    pub fn age_buckets(mut self, n: u32) -> Self {
        self.age_buckets = n;
        self
    }
    /// Relative accuracy of the quantile sketch (DDSketch `alpha`), e.g. `0.01`.
    pub fn relative_accuracy(mut self, alpha: f64) -> Self {
        self.relative_accuracy = alpha;
        self
    }
    /// The configured quantiles.
    pub fn quantiles(&self) -> &[f64] {
        &self.quantiles
    }
}

/// Quantiles and window shared by every series of a summary family.
#[derive(Debug)]
pub struct SummarySpec {
    quantiles: Box<[(f64, Box<str>)]>,
    slot: Duration,
    age_buckets: usize,
    sketch: SketchConfig,
}

impl SummarySpec {
    pub(crate) fn new(metric: &str, opts: &SummaryOpts) -> Result<Self, Error> {
        let bad = |reason: String| {
            Err(Error::InvalidSummary {
                metric: metric.to_owned(),
                reason,
            })
        };
        if opts.quantiles.is_empty() {
            return bad("no quantiles given".into());
        }
        for q in &opts.quantiles {
            if !(0.0..=1.0).contains(q) {
                return bad(format!("quantile {q} is outside [0, 1]"));
            }
        }
        if opts.age_buckets == 0 || opts.max_age.is_zero() {
            return bad(format!(
                "window {:?} split into {} buckets is empty",
                opts.max_age, opts.age_buckets
            ));
        }
        if !(opts.relative_accuracy > 0.0 && opts.relative_accuracy < 1.0) {
            return bad(format!(
                "relative accuracy {} is outside (0, 1)",
                opts.relative_accuracy
            ));
        }
        let quantiles = opts
            .quantiles
            .iter()
            .map(|q| {
                let mut s = String::new();
                push_f64(&mut s, *q);
                (*q, s.into_boxed_str())
            })
            .collect();
        Ok(Self {
            quantiles,
            slot: opts.max_age / opts.age_buckets,
            age_buckets: opts.age_buckets as usize,
            sketch: SketchConfig::new(opts.relative_accuracy, 2048, 1.0e-9),
        })
    }
}

struct Window {
    sketches: Vec<DDSketch>,
    head: usize,
    head_started: Instant,
    sum: f64,
    count: u64,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("head", &self.head)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Window {
    fn rotate(&mut self, spec: &SummarySpec, now: Instant) {
        let mut elapsed = now.saturating_duration_since(self.head_started);
        if elapsed >= spec.slot * spec.age_buckets as u32 {
            for s in &mut self.sketches {
                *s = DDSketch::new(spec.sketch);
            }
            self.head_started = now;
            return;
        }
        while elapsed >= spec.slot {
            self.head = (self.head + 1) % self.sketches.len();
            self.sketches[self.head] = DDSketch::new(spec.sketch);
            self.head_started += spec.slot;
            elapsed -= spec.slot;
        }
    }
}

#[derive(Debug)]
struct SummaryCore {
    spec: Arc<SummarySpec>,
    window: Mutex<Window>,
}

/// A summary: quantiles over a sliding time window (DDSketch, mergeable,
/// relative-error bounded), plus lifetime `_sum` and `_count`.
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// let sizes = registry.summary("batch_size", "Rows per batch.", obs_metrics::SummaryOpts::default())?;
/// for v in 1..=100 {
///     sizes.observe(v as f64);
/// }
/// let p50 = sizes.quantile(0.5).unwrap();
/// assert!((p50 - 50.0).abs() <= 1.0);
/// # Ok::<(), obs_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Summary(Arc<SummaryCore>);

impl Summary {
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let now = Instant::now();
        let mut w = self.0.window.lock().unwrap_or_else(PoisonError::into_inner);
        w.rotate(&self.0.spec, now);
        let head = w.head;
        w.sketches[head].add(v);
        w.sum += v;
        w.count += 1;
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// The `q` quantile over the current window, `None` when the window is empty or `q` is outside `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.snapshot(&[q]).0.first().copied().flatten()
    }

    /// Lifetime number of observations.
    pub fn count(&self) -> u64 {
        self.0
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .count
    }

    /// Lifetime sum of observations.
    pub fn sum(&self) -> f64 {
        self.0
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sum
    }

    fn snapshot(&self, qs: &[f64]) -> (Vec<Option<f64>>, f64, u64) {
        let spec = &self.0.spec;
        let mut w = self.0.window.lock().unwrap_or_else(PoisonError::into_inner);
        w.rotate(spec, Instant::now());
        let mut merged = DDSketch::new(spec.sketch);
        for s in &w.sketches {
            // Same config on both sides, so a merge cannot fail.
            let _ = merged.merge(s);
        }
        let out = qs
            .iter()
            .map(|q| merged.quantile(*q).ok().flatten())
            .collect();
        (out, w.sum, w.count)
    }
}

impl sealed::Sealed for Summary {
    type Spec = SummarySpec;
    const TYPE: MetricType = MetricType::Summary;
    fn create(spec: &Arc<SummarySpec>, _: bool) -> Self {
        let sketches = (0..spec.age_buckets)
            .map(|_| DDSketch::new(spec.sketch))
            .collect();
        Summary(Arc::new(SummaryCore {
            spec: spec.clone(),
            window: Mutex::new(Window {
                sketches,
                head: 0,
                head_started: Instant::now(),
                sum: 0.0,
                count: 0,
            }),
        }))
    }
    fn encode(&self, w: &mut Writer<'_>, name: &str, labels: &str) {
        let qs: Vec<f64> = self.0.spec.quantiles.iter().map(|(q, _)| *q).collect();
        let (values, sum, count) = self.snapshot(&qs);
        for ((_, qs), v) in self.0.spec.quantiles.iter().zip(values) {
            w.start(name, "", labels, Some(("quantile", qs)));
            push_f64(w.out, v.unwrap_or(f64::NAN));
            w.out.push('\n');
        }
        w.f64_sample(name, "_sum", labels, sum);
        w.u64_sample(name, "_count", labels, count);
    }
}

#[cfg(test)]
mod tests {
    use super::sealed::Sealed;
    use super::*;
    use crate::Format;

    fn render<M: Sealed>(m: &M, labels: &str) -> String {
        let mut out = String::new();
        m.encode(
            &mut Writer {
                out: &mut out,
                format: Format::Text,
            },
            "m",
            labels,
        );
        out
    }

    #[test]
    fn histogram_is_cumulative() {
        let spec = Arc::new(HistogramSpec::new("m", &[1.0, 2.0]).unwrap());
        let h = Histogram::create(&spec, false);
        for v in [0.5, 1.5, 1.5, 3.0] {
            h.observe(v);
        }
        assert_eq!(
            render(&h, "a=\"b\""),
            "m_bucket{a=\"b\",le=\"1.0\"} 1\nm_bucket{a=\"b\",le=\"2.0\"} 3\nm_bucket{a=\"b\",le=\"+Inf\"} 4\nm_sum{a=\"b\"} 6.5\nm_count{a=\"b\"} 4\n"
        );
    }

    #[test]
    fn bad_buckets_and_summaries() {
        assert!(HistogramSpec::new("m", &[]).is_err());
        assert!(HistogramSpec::new("m", &[1.0, 1.0]).is_err());
        assert!(HistogramSpec::new("m", &[f64::INFINITY]).is_err());
        assert!(SummarySpec::new("m", &SummaryOpts::default().with_quantiles(&[1.5])).is_err());
        assert!(SummarySpec::new("m", &SummaryOpts::default().age_buckets(0)).is_err());
    }

    #[test]
    fn summary_window_expires() {
        let opts = SummaryOpts::default()
            .max_age(Duration::from_millis(50))
            .age_buckets(2);
        let spec = Arc::new(SummarySpec::new("m", &opts).unwrap());
        let s = Summary::create(&spec, false);
        for v in 1..=1000 {
            s.observe(f64::from(v));
        }
        let p99 = s.quantile(0.99).unwrap();
        assert!((p99 - 990.0).abs() / 990.0 < 0.02, "{p99}");
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.count(), 1000);
        let text = render(&s, "");
        assert!(text.contains("m{quantile=\"0.5\"} NaN\n"), "{text}");
        assert!(text.contains("m_count 1000\n"));
    }
}
