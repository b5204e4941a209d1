//! The one error type of `obs-metrics`.

/// What kind of metric a name was registered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A monotonically increasing counter.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted into cumulative buckets.
    Histogram,
    /// Observations summarised as quantiles over a sliding window.
    Summary,
}

impl MetricType {
    /// The type as written on a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
        }
    }
}

impl std::fmt::Display for MetricType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of `obs-metrics`. Registration validates everything up front, so
/// encoding a scrape never fails and never panics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {name:?}: {reason}")]
    InvalidMetricName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`, starts with `__`, or is reserved.
    #[error("invalid label name {label:?} for metric {metric:?}: {reason}")]
    InvalidLabelName {
        /// The metric the label belongs to.
        metric: String,
        /// The rejected label name.
        label: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A name was registered again as a different type or with different labels.
    #[error(
        "metric {name:?} is already registered as a {existing} with labels {existing_labels:?}, cannot register it as a {requested} with labels {requested_labels:?}"
    )]
    Conflict {
        /// The metric name.
        name: String,
        /// The type it was first registered as.
        existing: MetricType,
        /// The type of the rejected registration.
        requested: MetricType,
        /// The label names of the first registration.
        existing_labels: Vec<String>,
        /// The label names of the rejected registration.
        requested_labels: Vec<String>,
    },
    /// A metric whose values come from a callback or collector was registered twice.
    #[error(
        "metric {name:?} is already registered by a callback or collector and cannot be registered again"
    )]
    AlreadyRegistered {
        /// The metric name.
        name: String,
    },
    /// Histogram buckets that are empty, not finite or not strictly increasing.
    #[error("invalid buckets for histogram {metric:?}: {reason}")]
    InvalidBuckets {
        /// The histogram's name.
        metric: String,
        /// What is wrong with them.
        reason: String,
    },
    /// Summary options that cannot work (a quantile outside `[0, 1]`, a zero window).
    #[error("invalid summary options for {metric:?}: {reason}")]
    InvalidSummary {
        /// The summary's name.
        metric: String,
        /// What is wrong with them.
        reason: String,
    },
    /// A cardinality limit of zero.
    #[error("invalid cardinality limit {limit} for metric {metric:?}: it must be at least 1")]
    InvalidLimit {
        /// The metric's name.
        metric: String,
        /// The rejected limit.
        limit: usize,
    },
    /// A derive-based label set whose encoding could not be read back.
    #[error("label set of metric {metric:?} cannot be encoded: {reason}")]
    LabelSet {
        /// The metric's name.
        metric: String,
        /// What went wrong.
        reason: String,
    },
    /// Binding or serving the scrape endpoint failed.
    #[error("metrics endpoint on {addr}: {source}")]
    Serve {
        /// The address that was being bound or served.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A Pushgateway URL that cannot be used.
    #[error("invalid pushgateway url {url:?}: {reason}")]
    PushUrl {
        /// The rejected URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The Pushgateway answered with a non-success status.
    #[error("pushgateway {url} rejected the push with status {status}: {body}")]
    PushRejected {
        /// The URL pushed to.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (the gateway's explanation).
        body: String,
    },
    /// The Pushgateway could not be reached or the exchange failed.
    #[error("pushgateway {url} could not be reached: {reason}")]
    PushTransport {
        /// The URL pushed to.
        url: String,
        /// The transport error.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
