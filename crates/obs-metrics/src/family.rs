//! Labelled families with cached handles and a cardinality guard.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use crate::encode::Writer;
use crate::metric::{Counter, Metric};
use crate::text::{BuildIdentity, LabelHasher};

/// The longest label value a family stores, in bytes. A label set with a
/// longer value is rejected like one past the cardinality limit (overflow
/// series, counted), so memory stays bounded by limit × labels × this.
pub const MAX_LABEL_VALUE_LEN: usize = 1024;

/// The longest rendered label text of a derive-based label set, in bytes.
const MAX_LABEL_SET_LEN: usize = 4 * MAX_LABEL_VALUE_LEN;

/// Slots of the lock-free first tier (a power of two).
const FAST_SLOTS: usize = 128;
/// Series kept in the first tier: at most half full, so probes stay short.
const FAST_MAX: usize = FAST_SLOTS / 2;

/// The first tier: an insert-only open-addressing table whose slots are
/// written once, under the family's write lock, and read without any lock
/// (`OnceLock::get` is one acquire load). Series are never removed, so a
/// reader that finds a slot empty knows the key is not in this tier (or is
/// being inserted right now, which the locked slow path sorts out).
type FastTable<K, M> = Box<[OnceLock<(u64, K, M)>]>;

/// The series of one hash value: almost always exactly one, kept inline.
#[derive(Debug)]
struct Bucket<K, M> {
    first: (K, M),
    more: Vec<(K, M)>,
}

#[derive(Debug)]
struct Map<K, M> {
    by_hash: HashMap<u64, Bucket<K, M>, BuildIdentity>,
    /// Every series with its rendered labels, in creation order: what a
    /// scrape walks, sequentially and in a stable order.
    order: Vec<(Box<str>, M)>,
}

/// The storage and guard shared by both kinds of family.
pub(crate) struct Store<K, M: Metric> {
    pub(crate) name: Box<str>,
    spec: Arc<M::Spec>,
    exemplars: bool,
    limit: usize,
    pub(crate) hasher: LabelHasher,
    fast: OnceLock<FastTable<K, M>>,
    map: RwLock<Map<K, M>>,
    overflow: OnceLock<M>,
    rejected: Counter,
    /// Applied to the label values of each new series (once, at creation).
    redactor: Option<Arc<obs_core::Redactor>>,
}

impl<K, M: Metric> fmt::Debug for Store<K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<K: Send + Sync + 'static, M: Metric> Store<K, M> {
    pub(crate) fn new(
        name: &str,
        spec: Arc<M::Spec>,
        exemplars: bool,
        limit: usize,
        rejected: Counter,
        redactor: Option<Arc<obs_core::Redactor>>,
    ) -> Self {
        Self {
            redactor,
            name: name.into(),
            spec,
            exemplars,
            limit,
            hasher: LabelHasher::new(),
            fast: OnceLock::new(),
            map: RwLock::new(Map {
                by_hash: HashMap::default(),
                order: Vec::new(),
            }),
            overflow: OnceLock::new(),
            rejected,
        }
    }

    /// Probes the first tier from the hash's home slot to the first empty slot.
    #[inline]
    fn fast_find(&self, hash: u64, eq: &impl Fn(&K) -> bool) -> Option<&M> {
        let table = self.fast.get()?;
        let mut i = hash as usize & (FAST_SLOTS - 1);
        for _ in 0..FAST_SLOTS {
            let (h, k, m) = table[i].get()?;
            if *h == hash && eq(k) {
                return Some(m);
            }
            i = (i + 1) & (FAST_SLOTS - 1);
        }
        None
    }

    /// Runs `f` on the series whose key matches, creating it (or falling
    /// back to the overflow series) on a miss.
    #[inline]
    fn with<R>(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        make: impl FnOnce() -> Option<(K, String)>,
        f: impl FnOnce(&M) -> R,
    ) -> R {
        // The hot path stays small enough to inline: a hit in the lock-free
        // tier. Everything else is out of line.
        if let Some(m) = self.fast_find(hash, &eq) {
            return f(m);
        }
        self.with_locked(hash, eq, make, f)
    }

    #[inline(never)]
    fn with_locked<R>(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        make: impl FnOnce() -> Option<(K, String)>,
        f: impl FnOnce(&M) -> R,
    ) -> R {
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(b) = map.by_hash.get(&hash) {
                if eq(&b.first.0) {
                    return f(&b.first.1);
                }
                for (k, m) in &b.more {
                    if eq(k) {
                        return f(m);
                    }
                }
            }
        }
        let m = self.insert_slow(hash, eq, make).unwrap_or_else(|| {
            self.rejected.inc();
            self.overflow()
        });
        f(&m)
    }

    /// The series whose key matches, created on a miss; `None` when the
    /// family is full or the key is refused, *not* counted: the caller then
    /// records through [`with`](Self::with), which counts the rejection and
    /// hands out the overflow series. For callers that keep the handle: a
    /// rejected label set must be counted on every use, so its handle is
    /// never kept.
    pub(crate) fn series(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        make: impl FnOnce() -> Option<(K, String)>,
    ) -> Option<M> {
        if let Some(m) = self.fast_find(hash, &eq) {
            return Some(m.clone());
        }
        self.insert_slow(hash, eq, make)
    }

    /// Finds the series under the write lock, or creates it; `None` when
    /// rejected (the caller counts it).
    #[cold]
    fn insert_slow(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        make: impl FnOnce() -> Option<(K, String)>,
    ) -> Option<M> {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        // Under the write lock no slot can change: re-check both tiers.
        if let Some(m) = self.fast_find(hash, &eq) {
            return Some(m.clone());
        }
        if let Some(b) = map.by_hash.get(&hash)
            && let Some((_, m)) = std::iter::once(&b.first)
                .chain(&b.more)
                .find(|(k, _)| eq(k))
        {
            return Some(m.clone());
        }
        if map.order.len() >= self.limit {
            return None;
        }
        let (key, mut labels) = make()?;
        if let Some(r) = &self.redactor
            && let Some(clean) = crate::text::redact_rendered_labels(&labels, r)
        {
            labels = clean;
        }
        let metric = M::create(&self.spec, self.exemplars);
        if map.order.len() < FAST_MAX {
            let table = self
                .fast
                .get_or_init(|| (0..FAST_SLOTS).map(|_| OnceLock::new()).collect());
            let mut i = hash as usize & (FAST_SLOTS - 1);
            // At most FAST_MAX of FAST_SLOTS slots are taken: an empty one exists.
            while table[i].get().is_some() {
                i = (i + 1) & (FAST_SLOTS - 1);
            }
            let _ = table[i].set((hash, key, metric.clone()));
            map.order.push((labels.into_boxed_str(), metric.clone()));
            return Some(metric);
        }
        match map.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                e.get_mut().more.push((key, metric.clone()));
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Bucket {
                    first: (key, metric.clone()),
                    more: Vec::new(),
                });
            }
        }
        map.order.push((labels.into_boxed_str(), metric.clone()));
        Some(metric)
    }

    /// The series of every rejected label set.
    #[cold]
    fn overflow(&self) -> M {
        self.overflow
            .get_or_init(|| M::create(&self.spec, self.exemplars))
            .clone()
    }

    /// Number of series, the overflow series included once it exists.
    pub(crate) fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .order
            .len()
            + usize::from(self.overflow.get().is_some())
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            for (labels, metric) in &map.order {
                metric.encode(w, &self.name, labels);
            }
        }
        if let Some(m) = self.overflow.get() {
            m.encode(w, &self.name, crate::text::OVERFLOW_LABELS);
        }
    }
}

/// A family of series with label names fixed at registration and label
/// values given per call as `[&str; N]`.
///
/// [`get`](Self::get) returns a handle to keep (a *cached handle*: using it
/// costs what the metric costs, an atomic add for a counter);
/// [`with`](Self::with) looks the series up and runs a closure on it without
/// cloning the handle. Past the family's cardinality limit, new label sets
/// share one overflow series labelled `otel_metric_overflow="true"` and are
/// counted in `obs_metric_label_sets_rejected_total{metric="<name>"}`; so are
/// label sets with a value longer than [`MAX_LABEL_VALUE_LEN`].
///
/// ```
/// let registry = obs_metrics::Registry::new();
/// let requests = registry.counter_family("requests", "Requests.", ["method", "route"])?;
/// let get_items = requests.get(["GET", "/items/{id}"]); // cache this one
/// get_items.inc();
/// requests.with(["POST", "/items"], |c| c.inc());
/// assert_eq!(requests.get(["GET", "/items/{id}"]).get(), 1);
/// # Ok::<(), obs_metrics::Error>(())
/// ```
pub struct Family<M: Metric, const N: usize> {
    pub(crate) store: Arc<Store<Box<[u8]>, M>>,
    pub(crate) label_names: Arc<[Box<str>; N]>,
}

impl<M: Metric, const N: usize> Clone for Family<M, N> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            label_names: self.label_names.clone(),
        }
    }
}

impl<M: Metric, const N: usize> fmt::Debug for Family<M, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Family")
            .field("name", &self.store.name)
            .field("labels", &self.label_names)
            .field("series", &self.store.len())
            .finish()
    }
}

impl<M: Metric, const N: usize> Family<M, N> {
    /// The series for these label values (created on first use), or the
    /// overflow series when the family is full.
    #[inline]
    pub fn get(&self, values: [&str; N]) -> M {
        self.with(values, M::clone)
    }

    /// Runs `f` on the series for these label values without cloning its handle.
    #[inline]
    pub fn with<R>(&self, values: [&str; N], f: impl FnOnce(&M) -> R) -> R {
        self.store.with(
            self.store.hasher.hash_values(&values),
            |k| key_eq(k, &values),
            || self.make_key(&values),
            f,
        )
    }

    /// The series for these label values (created on first use), or `None`
    /// when they are rejected (not counted; see [`Store::series`]).
    pub(crate) fn series(&self, values: [&str; N]) -> Option<M> {
        self.store.series(
            self.store.hasher.hash_values(&values),
            |k| key_eq(k, &values),
            || self.make_key(&values),
        )
    }

    fn make_key(&self, values: &[&str; N]) -> Option<(Box<[u8]>, String)> {
        if values.iter().any(|v| v.len() > MAX_LABEL_VALUE_LEN) {
            return None;
        }
        let labels = crate::text::render_labels(&self.label_names[..], values);
        Some((pack_key(values), labels))
    }

    /// Number of series, the overflow series included once it exists.
    pub fn series_count(&self) -> usize {
        self.store.len()
    }

    /// The family's label names.
    pub fn label_names(&self) -> &[Box<str>; N] {
        &self.label_names
    }
}

/// Label values packed as (u32 length, bytes)* in one allocation, so a
/// lookup compares against one contiguous buffer.
pub(crate) fn pack_key(values: &[&str]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(values.iter().map(|v| v.len() + 4).sum());
    for v in values {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out.into_boxed_slice()
}

#[inline]
pub(crate) fn key_eq(key: &[u8], values: &[&str]) -> bool {
    let mut rest = key;
    for v in values {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len != v.len() || tail.len() < len || !crate::text::bytes_eq(&tail[..len], v.as_bytes())
        {
            return false;
        }
        rest = &tail[len..];
    }
    rest.is_empty()
}

/// A family whose label sets are a type `S` deriving
/// `prometheus_client::encoding::EncodeLabelSet` (plus `Clone`, `Hash`,
/// `Eq`, `Debug`), as with `prometheus_client::metrics::family::Family`.
///
/// The label text of a set is rendered once, when its series is created.
///
/// ```
/// use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
///
/// #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
/// enum Method { Get, Post }
///
/// #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
/// struct Labels { method: Method, path: String }
///
/// let registry = obs_metrics::Registry::new();
/// let requests = registry.labelled::<obs_metrics::Counter, Labels>("requests", "Requests.")?;
/// requests.get(&Labels { method: Method::Get, path: "/".into() }).inc();
/// let text = registry.encode(obs_metrics::Format::Text);
/// assert!(text.contains("requests_total{method=\"Get\",path=\"/\"} 1\n"));
/// # Ok::<(), obs_metrics::Error>(())
/// ```
pub struct LabelledFamily<M: Metric, S> {
    pub(crate) store: Arc<Store<S, M>>,
}

impl<M: Metric, S> Clone for LabelledFamily<M, S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
        }
    }
}

impl<M: Metric, S> fmt::Debug for LabelledFamily<M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelledFamily")
            .field("name", &self.store.name)
            .finish_non_exhaustive()
    }
}

/// What a derive-based label set must implement.
pub trait LabelSet:
    prometheus_client::encoding::EncodeLabelSet + Clone + Hash + Eq + fmt::Debug + Send + Sync + 'static
{
}
impl<T> LabelSet for T where
    T: prometheus_client::encoding::EncodeLabelSet
        + Clone
        + Hash
        + Eq
        + fmt::Debug
        + Send
        + Sync
        + 'static
{
}

impl<M: Metric, S: LabelSet> LabelledFamily<M, S> {
    /// The series for this label set (created on first use), or the overflow
    /// series when the family is full or the set's label names are invalid.
    #[inline]
    pub fn get(&self, labels: &S) -> M {
        self.with(labels, M::clone)
    }

    /// Runs `f` on the series for this label set without cloning its handle.
    #[inline]
    pub fn with<R>(&self, labels: &S, f: impl FnOnce(&M) -> R) -> R {
        let hash = self.store.hasher.hash_one(labels);
        self.store.with(
            hash,
            |k| k == labels,
            || {
                render_label_set(&self.store.name, labels)
                    .ok()
                    .map(|text| (labels.clone(), text))
            },
            f,
        )
    }

    /// Number of series, the overflow series included once it exists.
    pub fn series_count(&self) -> usize {
        self.store.len()
    }
}

/// Renders a derive-based label set as `a="x",b="y"` by letting
/// prometheus-client encode it once and reading the label list back (its
/// encoder types cannot be built outside that crate), then validates the
/// names.
pub(crate) fn render_label_set<S: LabelSet>(
    metric: &str,
    labels: &S,
) -> Result<String, crate::Error> {
    use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
    use prometheus_client::metrics::{MetricType, TypedMetric};

    #[derive(Debug)]
    struct Probe<S>(S);
    impl<S: LabelSet> TypedMetric for Probe<S> {
        const TYPE: MetricType = MetricType::Gauge;
    }
    impl<S: LabelSet> EncodeMetric for Probe<S> {
        fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
            encoder.encode_family(&self.0)?.encode_gauge(&0i64)
        }
        fn metric_type(&self) -> MetricType {
            MetricType::Gauge
        }
    }

    let err = |reason: String| crate::Error::LabelSet {
        metric: metric.to_owned(),
        reason,
    };
    let mut reg = prometheus_client::registry::Registry::default();
    reg.register("p", "", Probe(labels.clone()));
    let mut text = String::new();
    prometheus_client::encoding::text::encode_registry(&mut text, &reg)
        .map_err(|e| err(e.to_string()))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("p"))
        .ok_or_else(|| err("no sample line".into()))?;
    let inner = match line.strip_prefix("p{") {
        Some(rest) => rest
            .rsplit_once("} ")
            .map(|(a, _)| a)
            .ok_or_else(|| err(format!("unexpected line {line:?}")))?,
        None => "",
    };
    // Walk `k="v",...` honouring escapes, to validate every label name.
    let bytes = inner.as_bytes();
    let mut i = 0;
    let mut names = Vec::new();
    while i < bytes.len() {
        let eq = inner[i..]
            .find("=\"")
            .ok_or_else(|| err(format!("unexpected label text {inner:?}")))?
            + i;
        names.push(&inner[i..eq]);
        let mut j = eq + 2;
        while j < bytes.len() && bytes[j] != b'"' {
            j += if bytes[j] == b'\\' { 2 } else { 1 };
        }
        i = j + 1;
        if i < bytes.len() && bytes[i] == b',' {
            i += 1;
        }
    }
    crate::text::validate_label_names(metric, &names)?;
    if inner.len() > MAX_LABEL_SET_LEN {
        return Err(err(format!(
            "the label set renders to {} bytes, more than {MAX_LABEL_SET_LEN}",
            inner.len()
        )));
    }
    Ok(inner.to_owned())
}

#[cfg(test)]
mod tests {
    use crate::{Format, Registry};

    #[test]
    fn both_tiers_return_the_same_series() {
        let r = Registry::new();
        let f = r.counter_family("tiers", "x", ["a", "b"]).unwrap();
        let n = super::FAST_MAX * 5;
        for round in 0..2 {
            for i in 0..n {
                let v = i.to_string();
                f.with(["k", &v], |c| c.inc());
                if round == 1 {
                    assert_eq!(f.get(["k", &v]).get(), 2, "series {i}");
                }
            }
        }
        assert_eq!(f.series_count(), n);
        let text = r.encode(Format::Text);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("tiers_total{"))
                .count(),
            n
        );
        // Creation order is scrape order.
        let first = text
            .lines()
            .find(|l| l.starts_with("tiers_total{"))
            .unwrap();
        assert_eq!(first, "tiers_total{a=\"k\",b=\"0\"} 2");
    }

    #[test]
    fn packed_keys_do_not_confuse_boundaries() {
        let k = super::pack_key(&["ab", "c"]);
        assert!(super::key_eq(&k, &["ab", "c"]));
        assert!(!super::key_eq(&k, &["a", "bc"]));
        assert!(!super::key_eq(&k, &["ab", "c", ""]));
        assert!(!super::key_eq(&k, &["ab"]));
    }
}
