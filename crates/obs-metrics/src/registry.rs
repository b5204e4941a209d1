//! The registry: registration with validation, and encoding.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use crate::encode::{Format, Writer};
use crate::error::{Error, MetricType, Result};
use crate::family::{Family, LabelSet, LabelledFamily, Store};
use crate::metric::{
    Counter, FloatGauge, Gauge, Histogram, HistogramSpec, Metric, Summary, SummaryOpts, SummarySpec,
};
use crate::text::{validate_label_names, validate_metric_name};

/// The default number of label sets one metric may hold before new ones go
/// to the overflow series (the OpenTelemetry SDK's default cardinality limit).
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// The description of one metric family as registered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Desc {
    pub(crate) name: Box<str>,
    pub(crate) help: Box<str>,
    pub(crate) ty: MetricType,
    pub(crate) labels: Vec<String>,
}

impl Desc {
    /// The names of the samples this family writes, for collision checks.
    fn sample_names(&self) -> Vec<String> {
        let n = &self.name;
        match self.ty {
            MetricType::Counter => vec![format!("{n}_total"), n.to_string()],
            MetricType::Gauge => vec![n.to_string()],
            MetricType::Histogram => {
                vec![
                    n.to_string(),
                    format!("{n}_bucket"),
                    format!("{n}_sum"),
                    format!("{n}_count"),
                ]
            }
            MetricType::Summary => vec![n.to_string(), format!("{n}_sum"), format!("{n}_count")],
        }
    }
}

/// Something that writes one or more whole metric families at scrape time.
pub(crate) trait Collect: Send + Sync + fmt::Debug + 'static {
    /// Writes the families described by `descs` (headers included).
    fn collect(&self, w: &mut Writer<'_>, descs: &[Desc]);
}

#[derive(Debug)]
struct Single<M>(M);

impl<M: Metric> Collect for Single<M> {
    fn collect(&self, w: &mut Writer<'_>, descs: &[Desc]) {
        let d = &descs[0];
        w.header(&d.name, &d.help, d.ty);
        self.0.encode(w, &d.name, "");
    }
}

impl<K: Send + Sync + 'static, M: Metric> Collect for Store<K, M> {
    fn collect(&self, w: &mut Writer<'_>, descs: &[Desc]) {
        let d = &descs[0];
        w.header(&d.name, &d.help, d.ty);
        self.encode(w);
    }
}

/// What a scrape needs of an entry, cloned out of the lock.
type Body = (Arc<[Desc]>, Arc<dyn Collect>);

struct Entry {
    descs: Arc<[Desc]>,
    body: Arc<dyn Collect>,
    handle: Option<Arc<dyn Any + Send + Sync>>,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    /// Sample name -> index of the entry writing it.
    samples: HashMap<String, usize>,
    /// Family name -> (entry, desc) index.
    families: HashMap<String, (usize, usize)>,
}

struct Inner {
    limit: usize,
    exemplars: bool,
    redactor: Option<Arc<obs_core::Redactor>>,
    state: RwLock<State>,
    rejected: OnceLock<Family<Counter, 1>>,
    bridged: Mutex<Vec<prometheus_client::registry::Registry>>,
}

/// A metric registry: register metrics (validated, typed handles back),
/// encode them as Prometheus text 0.0.4 or OpenMetrics 1.0.
///
/// Cloning is cheap and shares the registry.
///
/// ```
/// use obs_metrics::{Format, Registry};
/// let registry = Registry::new();
/// let hits = registry.counter("cache_hits", "Cache hits.")?;
/// hits.inc();
/// let text = registry.encode(Format::Text);
/// assert!(text.contains("# TYPE cache_hits_total counter\ncache_hits_total 1\n"));
/// let om = registry.encode(Format::OpenMetrics);
/// assert!(om.contains("# TYPE cache_hits counter\ncache_hits_total 1\n"));
/// assert!(om.ends_with("# EOF\n"));
/// // Same name, different type: a typed error, not a panic.
/// assert!(registry.gauge("cache_hits", "Oops.").is_err());
/// # Ok::<(), obs_metrics::Error>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .families
            .len();
        f.debug_struct("Registry")
            .field("families", &n)
            .field("cardinality_limit", &self.inner.limit)
            .field("exemplars", &self.inner.exemplars)
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`Registry`] with non-default options.
///
/// ```
/// let registry = obs_metrics::Registry::builder().cardinality_limit(100).exemplars(false).build();
/// # let _ = registry;
/// ```
#[derive(Debug, Clone)]
pub struct RegistryBuilder {
    limit: usize,
    exemplars: bool,
    redactor: Option<Arc<obs_core::Redactor>>,
}

impl RegistryBuilder {
    /// The default cardinality limit of labelled metrics (at least 1;
    /// default [`DEFAULT_CARDINALITY_LIMIT`]). Metrics may override it.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// Whether counters and histograms record exemplars from sampled spans
    /// by default (default `true`). Metrics may override it.
    pub fn exemplars(mut self, on: bool) -> Self {
        self.exemplars = on;
        self
    }

    /// Redaction rules for the label values of labelled metrics, applied
    /// once when a label set is first seen (default:
    /// `obs_core::Redactor::new()`; `None` turns it off). A secret that
    /// code passes as a label value is exposed as `[REDACTED]`.
    pub fn redactor(mut self, redactor: Option<obs_core::Redactor>) -> Self {
        self.redactor = redactor.map(Arc::new);
        self
    }

    /// The registry.
    pub fn build(self) -> Registry {
        Registry {
            inner: Arc::new(Inner {
                limit: self.limit,
                exemplars: self.exemplars,
                redactor: self.redactor,
                state: RwLock::new(State::default()),
                rejected: OnceLock::new(),
                bridged: Mutex::new(Vec::new()),
            }),
        }
    }
}

impl Registry {
    /// A registry with default options.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a registry with other options.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder {
            limit: DEFAULT_CARDINALITY_LIMIT,
            exemplars: true,
            redactor: Some(Arc::new(obs_core::Redactor::new())),
        }
    }

    /// Starts registering a metric with per-metric options
    /// (cardinality limit, exemplars).
    ///
    /// ```
    /// let registry = obs_metrics::Registry::new();
    /// let f = registry.metric("tenant_requests", "Requests by tenant.").cardinality_limit(50).counter_family(["tenant"])?;
    /// # let _ = f;
    /// # Ok::<(), obs_metrics::Error>(())
    /// ```
    pub fn metric(&self, name: &str, help: &str) -> MetricBuilder<'_> {
        MetricBuilder {
            registry: self,
            name: name.to_owned(),
            help: help.to_owned(),
            limit: None,
            exemplars: None,
        }
    }

    /// Registers (or returns the already registered) counter. A trailing
    /// `_total` in `name` is optional: it is always written on the sample.
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter> {
        self.metric(name, help).counter()
    }
    /// Registers (or returns) an integer gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge> {
        self.metric(name, help).gauge()
    }
    /// Registers (or returns) a float gauge.
    pub fn float_gauge(&self, name: &str, help: &str) -> Result<FloatGauge> {
        self.metric(name, help).float_gauge()
    }
    /// Registers (or returns) a histogram with these bucket boundaries.
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Histogram> {
        self.metric(name, help).histogram(buckets)
    }
    /// Registers (or returns) a summary.
    pub fn summary(&self, name: &str, help: &str, opts: SummaryOpts) -> Result<Summary> {
        self.metric(name, help).summary(opts)
    }
    /// Registers (or returns) a labelled counter family.
    pub fn counter_family<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
    ) -> Result<Family<Counter, N>> {
        self.metric(name, help).counter_family(labels)
    }
    /// Registers (or returns) a labelled integer gauge family.
    pub fn gauge_family<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
    ) -> Result<Family<Gauge, N>> {
        self.metric(name, help).gauge_family(labels)
    }
    /// Registers (or returns) a labelled float gauge family.
    pub fn float_gauge_family<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
    ) -> Result<Family<FloatGauge, N>> {
        self.metric(name, help).float_gauge_family(labels)
    }
    /// Registers (or returns) a labelled histogram family.
    pub fn histogram_family<const N: usize>(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: [&str; N],
    ) -> Result<Family<Histogram, N>> {
        self.metric(name, help).histogram_family(buckets, labels)
    }
    /// Registers (or returns) a labelled summary family.
    pub fn summary_family<const N: usize>(
        &self,
        name: &str,
        help: &str,
        opts: SummaryOpts,
        labels: [&str; N],
    ) -> Result<Family<Summary, N>> {
        self.metric(name, help).summary_family(opts, labels)
    }
    /// Registers (or returns) a counter or gauge family whose label sets
    /// are a type deriving prometheus-client's `EncodeLabelSet`.
    pub fn labelled<M: Metric<Spec = ()>, S: LabelSet>(
        &self,
        name: &str,
        help: &str,
    ) -> Result<LabelledFamily<M, S>> {
        self.metric(name, help).labelled()
    }

    /// Registers a counter whose value `f` returns at scrape time.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
    /// let dropped = Arc::new(AtomicU64::new(7)); // e.g. another pillar's stats
    /// let registry = obs_metrics::Registry::new();
    /// let d = dropped.clone();
    /// registry.callback_counter("obs_log_dropped_lines", "Dropped lines.", move || d.load(Ordering::Relaxed))?;
    /// assert!(registry.encode(obs_metrics::Format::Text).contains("obs_log_dropped_lines_total 7\n"));
    /// # Ok::<(), obs_metrics::Error>(())
    /// ```
    pub fn callback_counter(
        &self,
        name: &str,
        help: &str,
        f: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Result<()> {
        self.callback_counter_family(name, help, [], move |e| e.emit([], f()))
    }

    /// Registers a gauge whose value `f` returns at scrape time.
    pub fn callback_gauge(
        &self,
        name: &str,
        help: &str,
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> Result<()> {
        self.callback_gauge_family(name, help, [], move |e| e.emit([], f()))
    }

    /// Registers a labelled counter whose series `f` emits at scrape time.
    ///
    /// ```
    /// let registry = obs_metrics::Registry::new();
    /// registry.callback_counter_family("obs_log_dropped_lines", "Dropped lines.", ["level"], |e| {
    ///     e.emit(["warn"], 2u64);
    ///     e.emit(["info"], 5u64);
    /// })?;
    /// let text = registry.encode(obs_metrics::Format::Text);
    /// assert!(text.contains("obs_log_dropped_lines_total{level=\"info\"} 5\n"));
    /// # Ok::<(), obs_metrics::Error>(())
    /// ```
    pub fn callback_counter_family<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
        f: impl Fn(&mut Emit<'_, '_, N>) + Send + Sync + 'static,
    ) -> Result<()> {
        self.callback(name, help, MetricType::Counter, labels, f)
    }

    /// Registers a labelled gauge whose series `f` emits at scrape time.
    pub fn callback_gauge_family<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
        f: impl Fn(&mut Emit<'_, '_, N>) + Send + Sync + 'static,
    ) -> Result<()> {
        self.callback(name, help, MetricType::Gauge, labels, f)
    }

    fn callback<const N: usize>(
        &self,
        name: &str,
        help: &str,
        ty: MetricType,
        labels: [&str; N],
        f: impl Fn(&mut Emit<'_, '_, N>) + Send + Sync + 'static,
    ) -> Result<()> {
        let name = normalize(name, ty);
        validate_metric_name(name)?;
        validate_label_names(name, &labels)?;
        let desc = Desc {
            name: name.into(),
            help: help.into(),
            ty,
            labels: labels.iter().map(|s| s.to_string()).collect(),
        };
        let body = Callback {
            labels: labels.map(String::from),
            limit: self.inner.limit,
            f: Box::new(f),
        };
        self.add(vec![desc], Arc::new(body), None)
    }

    /// Registers a collector writing several families (process, runtime).
    pub(crate) fn register_collector(
        &self,
        descs: Vec<Desc>,
        body: Arc<dyn Collect>,
    ) -> Result<()> {
        for d in &descs {
            validate_metric_name(&d.name)?;
        }
        self.add(descs, body, None)
    }

    /// Adds a `prometheus-client` registry whose metrics are encoded after
    /// this registry's own, in either format — to keep metrics an
    /// application already has. Names are not checked against ours.
    pub fn register_prometheus_client(&self, registry: prometheus_client::registry::Registry) {
        self.inner
            .bridged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(registry);
    }

    /// The names of every registered metric family, in registration order
    /// (counters without `_total`).
    pub fn family_names(&self) -> Vec<String> {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        state
            .entries
            .iter()
            .flat_map(|e| e.descs.iter().map(|d| d.name.to_string()))
            .collect()
    }

    /// Label sets rejected so far by the cardinality guard of `metric`.
    pub fn rejected_label_sets(&self, metric: &str) -> u64 {
        self.inner
            .rejected
            .get()
            .map_or(0, |f| f.get([metric]).get())
    }

    /// Encodes every metric in `format` (OpenMetrics output ends with `# EOF`).
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::with_capacity(4096);
        self.encode_into(format, &mut out);
        out
    }

    /// Appends the encoding of every metric to `out`.
    pub fn encode_into(&self, format: Format, out: &mut String) {
        // Snapshot the bodies so that callbacks run without the registry lock
        // (a callback may itself register a metric).
        let bodies: Vec<Body> = {
            let state = self
                .inner
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            state
                .entries
                .iter()
                .map(|e| (e.descs.clone(), e.body.clone()))
                .collect()
        };
        let mut w = Writer { out, format };
        for (descs, body) in &bodies {
            body.collect(&mut w, descs);
        }
        let bridged = self
            .inner
            .bridged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for reg in bridged.iter() {
            // Writing into a String cannot fail.
            let _ = match format {
                Format::Text => prometheus_client::encoding::prometheus_text::encode(w.out, reg),
                Format::OpenMetrics => {
                    prometheus_client::encoding::text::encode_registry(w.out, reg)
                }
            };
        }
        if format == Format::OpenMetrics {
            w.out.push_str("# EOF\n");
        }
    }

    fn add(
        &self,
        descs: Vec<Desc>,
        body: Arc<dyn Collect>,
        handle: Option<Arc<dyn Any + Send + Sync>>,
    ) -> Result<()> {
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for d in &descs {
            check_free(&state, d)?;
        }
        let idx = state.entries.len();
        for (di, d) in descs.iter().enumerate() {
            for s in d.sample_names() {
                state.samples.insert(s, idx);
            }
            state.families.insert(d.name.to_string(), (idx, di));
        }
        state.entries.push(Entry {
            descs: descs.into(),
            body,
            handle,
        });
        Ok(())
    }

    /// Registers a handle-backed metric, or returns the existing handle when
    /// the same name, type and labels were registered before.
    fn get_or_add<H: Clone + Send + Sync + 'static>(
        &self,
        desc: Desc,
        make: impl FnOnce() -> Result<(H, Arc<dyn Collect>)>,
    ) -> Result<H> {
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(&(ei, di)) = state.families.get(&*desc.name) {
            let entry = &state.entries[ei];
            let existing = &entry.descs[di];
            if existing.ty == desc.ty && existing.labels == desc.labels {
                match entry.handle.as_ref().and_then(|h| h.downcast_ref::<H>()) {
                    Some(h) => return Ok(h.clone()),
                    None if entry.handle.is_none() => {
                        return Err(Error::AlreadyRegistered {
                            name: desc.name.to_string(),
                        });
                    }
                    None => {}
                }
            }
            return Err(conflict(existing, &desc));
        }
        check_free(&state, &desc)?;
        let (handle, body) = make()?;
        let idx = state.entries.len();
        for s in desc.sample_names() {
            state.samples.insert(s, idx);
        }
        state.families.insert(desc.name.to_string(), (idx, 0));
        state.entries.push(Entry {
            descs: Arc::from(vec![desc]),
            body,
            handle: Some(Arc::new(handle.clone())),
        });
        Ok(handle)
    }

    fn rejected_counter(&self, metric: &str) -> Counter {
        let family = self.inner.rejected.get_or_init(|| {
            let name = obs_core::names::metric::LABEL_SETS_REJECTED.trim_end_matches("_total");
            let store = Arc::new(Store::new(name, Arc::new(()), false, usize::MAX, Counter::default(), None));
            let family = Family { store: store.clone(), label_names: Arc::new(["metric".into()]) };
            let desc = Desc {
                name: name.into(),
                help: "Label sets rejected by the cardinality guard of each metric (their samples went to the overflow series).".into(),
                ty: MetricType::Counter,
                labels: vec!["metric".into()],
            };
            // The name is ours and valid; a user metric of the same name
            // would merely make this family unlisted, never break a scrape.
            let _ = self.add(vec![desc], store, None);
            family
        });
        family.get([metric])
    }
}

fn normalize(name: &str, ty: MetricType) -> &str {
    if ty == MetricType::Counter {
        name.strip_suffix("_total").unwrap_or(name)
    } else {
        name
    }
}

fn conflict(existing: &Desc, requested: &Desc) -> Error {
    Error::Conflict {
        name: requested.name.to_string(),
        existing: existing.ty,
        requested: requested.ty,
        existing_labels: existing.labels.clone(),
        requested_labels: requested.labels.clone(),
    }
}

fn check_free(state: &State, d: &Desc) -> Result<()> {
    if let Some(&(ei, di)) = state.families.get(&*d.name) {
        let existing = &state.entries[ei].descs[di];
        if state.entries[ei].handle.is_none() && existing.ty == d.ty && existing.labels == d.labels
        {
            return Err(Error::AlreadyRegistered {
                name: d.name.to_string(),
            });
        }
        return Err(conflict(existing, d));
    }
    for s in d.sample_names() {
        if let Some(&ei) = state.samples.get(&s) {
            let other = state.entries[ei]
                .descs
                .iter()
                .find(|o| o.sample_names().contains(&s));
            if let Some(other) = other {
                return Err(conflict(other, d));
            }
        }
    }
    Ok(())
}

/// Registers one metric with per-metric options; made by [`Registry::metric`].
#[derive(Debug)]
#[must_use = "a builder registers nothing until a metric method is called"]
pub struct MetricBuilder<'r> {
    registry: &'r Registry,
    name: String,
    help: String,
    limit: Option<usize>,
    exemplars: Option<bool>,
}

impl MetricBuilder<'_> {
    /// The most label sets this metric holds before new ones go to its
    /// overflow series (at least 1).
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether this counter or histogram records exemplars from sampled spans.
    pub fn exemplars(mut self, on: bool) -> Self {
        self.exemplars = Some(on);
        self
    }

    fn desc(&self, ty: MetricType, labels: &[&str]) -> Result<Desc> {
        let name = normalize(&self.name, ty);
        validate_metric_name(name)?;
        validate_label_names(name, labels)?;
        if self.limit == Some(0) {
            return Err(Error::InvalidLimit {
                metric: name.to_owned(),
                limit: 0,
            });
        }
        Ok(Desc {
            name: name.into(),
            help: self.help.as_str().into(),
            ty,
            labels: labels.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn exemplars_for(&self, ty: MetricType) -> bool {
        matches!(ty, MetricType::Counter | MetricType::Histogram)
            && self.exemplars.unwrap_or(self.registry.inner.exemplars)
    }

    fn single<M: Metric>(self, spec: impl FnOnce(&str) -> Result<M::Spec>) -> Result<M> {
        let desc = self.desc(M::TYPE, &[])?;
        let ex = self.exemplars_for(M::TYPE);
        let name = desc.name.clone();
        self.registry.get_or_add(desc, || {
            let m = M::create(&Arc::new(spec(&name)?), ex);
            Ok((m.clone(), Arc::new(Single(m)) as Arc<dyn Collect>))
        })
    }

    fn family<M: Metric, const N: usize>(
        self,
        labels: [&str; N],
        spec: impl FnOnce(&str) -> Result<M::Spec>,
    ) -> Result<Family<M, N>> {
        let desc = self.desc(M::TYPE, &labels)?;
        let ex = self.exemplars_for(M::TYPE);
        let limit = self.limit.unwrap_or(self.registry.inner.limit);
        let name = desc.name.clone();
        let registry = self.registry;
        let rejected = registry.rejected_counter(&name);
        registry.get_or_add(desc, || {
            let store = Arc::new(Store::new(
                &name,
                Arc::new(spec(&name)?),
                ex,
                limit,
                rejected,
                registry.inner.redactor.clone(),
            ));
            let family = Family {
                store: store.clone(),
                label_names: Arc::new(labels.map(Into::into)),
            };
            Ok((family, store as Arc<dyn Collect>))
        })
    }

    fn labelled_with<M: Metric, S: LabelSet>(
        self,
        spec: impl FnOnce(&str) -> Result<M::Spec>,
    ) -> Result<LabelledFamily<M, S>> {
        // Label names come from the type; they are checked when each set is first rendered.
        let mut desc = self.desc(M::TYPE, &[])?;
        desc.labels = vec![format!("<{}>", std::any::type_name::<S>())];
        let ex = self.exemplars_for(M::TYPE);
        let limit = self.limit.unwrap_or(self.registry.inner.limit);
        let name = desc.name.clone();
        let registry = self.registry;
        let rejected = registry.rejected_counter(&name);
        registry.get_or_add(desc, || {
            let store = Arc::new(Store::new(
                &name,
                Arc::new(spec(&name)?),
                ex,
                limit,
                rejected,
                registry.inner.redactor.clone(),
            ));
            Ok((
                LabelledFamily {
                    store: store.clone(),
                },
                store as Arc<dyn Collect>,
            ))
        })
    }

    /// Registers (or returns) a counter.
    pub fn counter(self) -> Result<Counter> {
        self.single(|_| Ok(()))
    }
    /// Registers (or returns) an integer gauge.
    pub fn gauge(self) -> Result<Gauge> {
        self.single(|_| Ok(()))
    }
    /// Registers (or returns) a float gauge.
    pub fn float_gauge(self) -> Result<FloatGauge> {
        self.single(|_| Ok(()))
    }
    /// Registers (or returns) a histogram.
    pub fn histogram(self, buckets: &[f64]) -> Result<Histogram> {
        self.single(|n| HistogramSpec::new(n, buckets))
    }
    /// Registers (or returns) a summary.
    pub fn summary(self, opts: SummaryOpts) -> Result<Summary> {
        self.single(|n| SummarySpec::new(n, &opts))
    }
    /// Registers (or returns) a labelled counter family.
    pub fn counter_family<const N: usize>(self, labels: [&str; N]) -> Result<Family<Counter, N>> {
        self.family(labels, |_| Ok(()))
    }
    /// Registers (or returns) a labelled integer gauge family.
    pub fn gauge_family<const N: usize>(self, labels: [&str; N]) -> Result<Family<Gauge, N>> {
        self.family(labels, |_| Ok(()))
    }
    /// Registers (or returns) a labelled float gauge family.
    pub fn float_gauge_family<const N: usize>(
        self,
        labels: [&str; N],
    ) -> Result<Family<FloatGauge, N>> {
        self.family(labels, |_| Ok(()))
    }
    /// Registers (or returns) a labelled histogram family.
    pub fn histogram_family<const N: usize>(
        self,
        buckets: &[f64],
        labels: [&str; N],
    ) -> Result<Family<Histogram, N>> {
        self.family(labels, |n| HistogramSpec::new(n, buckets))
    }
    /// Registers (or returns) a labelled summary family.
    pub fn summary_family<const N: usize>(
        self,
        opts: SummaryOpts,
        labels: [&str; N],
    ) -> Result<Family<Summary, N>> {
        self.family(labels, |n| SummarySpec::new(n, &opts))
    }
    /// Registers (or returns) a counter or gauge family with derive-based label sets.
    pub fn labelled<M: Metric<Spec = ()>, S: LabelSet>(self) -> Result<LabelledFamily<M, S>> {
        self.labelled_with(|_| Ok(()))
    }
    /// Registers (or returns) a histogram family with derive-based label sets.
    pub fn labelled_histogram<S: LabelSet>(
        self,
        buckets: &[f64],
    ) -> Result<LabelledFamily<Histogram, S>> {
        self.labelled_with(|n| HistogramSpec::new(n, buckets))
    }
}

// ---------------------------------------------------------------- callbacks

/// A value a callback emits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An unsigned integer.
    U64(u64),
    /// A signed integer.
    I64(i64),
    /// A float.
    F64(f64),
}

impl Value {
    fn as_f64(self) -> f64 {
        match self {
            Value::U64(v) => v as f64,
            Value::I64(v) => v as f64,
            Value::F64(v) => v,
        }
    }
    fn push(self, out: &mut String) {
        match self {
            Value::U64(v) => crate::text::push_u64(out, v),
            Value::I64(v) => crate::text::push_i64(out, v),
            Value::F64(v) => crate::text::push_f64(out, v),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::$v(v.into()) }
        }
    )*};
}
value_from!(u64 => U64, u32 => U64, u16 => U64, u8 => U64, i64 => I64, i32 => I64, f64 => F64, f32 => F64, bool => U64);

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::U64(v as u64)
    }
}

/// Handed to a callback at scrape time to emit its series.
///
/// Past the registry's cardinality limit, further label sets are summed into
/// the overflow series `{otel_metric_overflow="true"}`.
pub struct Emit<'w, 'o, const N: usize> {
    w: &'w mut Writer<'o>,
    name: &'w str,
    labels: &'w [String; N],
    ty: MetricType,
    emitted: usize,
    limit: usize,
    overflow: Option<f64>,
    scratch: String,
}

impl<const N: usize> fmt::Debug for Emit<'_, '_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emit")
            .field("name", &self.name)
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

impl<const N: usize> Emit<'_, '_, N> {
    /// Emits one series.
    pub fn emit(&mut self, values: [&str; N], value: impl Into<Value>) {
        let value = value.into();
        if self.emitted >= self.limit {
            *self.overflow.get_or_insert(0.0) += value.as_f64();
            return;
        }
        self.emitted += 1;
        self.scratch.clear();
        for (i, (n, v)) in self.labels.iter().zip(values).enumerate() {
            if i > 0 {
                self.scratch.push(',');
            }
            self.scratch.push_str(n);
            self.scratch.push_str("=\"");
            crate::text::escape_label_value(&mut self.scratch, v);
            self.scratch.push('"');
        }
        let suffix = if self.ty == MetricType::Counter {
            "_total"
        } else {
            ""
        };
        self.w.start(self.name, suffix, &self.scratch, None);
        value.push(self.w.out);
        self.w.out.push('\n');
    }
}

type CallbackFn<const N: usize> = Box<dyn Fn(&mut Emit<'_, '_, N>) + Send + Sync>;

struct Callback<const N: usize> {
    labels: [String; N],
    limit: usize,
    f: CallbackFn<N>,
}

impl<const N: usize> fmt::Debug for Callback<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl<const N: usize> Collect for Callback<N> {
    fn collect(&self, w: &mut Writer<'_>, descs: &[Desc]) {
        let d = &descs[0];
        w.header(&d.name, &d.help, d.ty);
        let mut emit = Emit {
            w,
            name: &d.name,
            labels: &self.labels,
            ty: d.ty,
            emitted: 0,
            limit: self.limit,
            overflow: None,
            scratch: String::new(),
        };
        // A panicking callback must not take the scrape down: its family
        // keeps the lines written before the panic.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.f)(&mut emit)));
        if let Some(v) = emit.overflow {
            let suffix = if d.ty == MetricType::Counter {
                "_total"
            } else {
                ""
            };
            emit.w
                .f64_sample(&d.name, suffix, crate::text::OVERFLOW_LABELS, v);
        }
    }
}
