#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod carrier;
mod correlation;
pub mod error;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod headers;
mod id;
pub mod names;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod panic;
pub mod record;
pub mod recycle;
pub mod redact;
pub mod resource;
pub mod rng;
pub mod route;
pub mod spans;
pub mod store;
pub mod units;

pub use carrier::Carrier;
pub use correlation::{CorrelationId, IdFormat};
pub use error::Error;
pub use id::{HexBuf, SpanId, TraceFlags, TraceId, decode_lower_hex, is_lower_hex};
pub use record::{IdRecord, NextSpanCorrelation, RenderedFields, SpanRecord, SpanState, StateSlot};
pub use redact::{Redactor, Secret, redact};
pub use resource::Resource;
pub use route::RouteTemplate;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
