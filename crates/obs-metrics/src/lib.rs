#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod encode;
mod error;
mod family;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(feature = "tower")]
mod http;
#[cfg(feature = "tower")]
mod layer;
mod metric;
#[cfg(feature = "push")]
mod push;
mod registry;
mod text;

pub mod process;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod runtime;
pub mod sets;

pub use encode::Format;
pub use error::{Error, MetricType, Result};
pub use family::{Family, LabelSet, LabelledFamily, MAX_LABEL_VALUE_LEN};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use http::MetricsService;
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub use http::{MetricsServer, serve};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{HttpMetricsLayer, HttpMetricsService, ResponseFuture, RouteTemplate};
pub use metric::{
    Counter, FloatGauge, Gauge, GaugeGuard, Histogram, HistogramSpec, HistogramTimer, Metric,
    Summary, SummaryOpts, SummarySpec,
};
#[cfg(feature = "push")]
#[cfg_attr(docsrs, doc(cfg(feature = "push")))]
pub use push::Pushgateway;
pub use registry::{
    DEFAULT_CARDINALITY_LIMIT, Emit, MetricBuilder, Registry, RegistryBuilder, Value,
};

/// Re-export of `prometheus-client`, whose `EncodeLabelSet` derive gives
/// typed label sets ([`Registry::labelled`]).
pub use prometheus_client;
