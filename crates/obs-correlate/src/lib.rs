#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
mod axum;
pub mod carrier;
#[cfg(feature = "tower")]
mod client;
mod config;
mod context;
mod error;
#[cfg(feature = "tower")]
mod server;
mod stats;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use crate::axum::{Correlation, MissingCorrelationId};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use client::{PropagateLayer, PropagateService};
pub use config::{
    Config, ENV_ACCEPT_TRACEPARENT, ENV_FORMAT, ENV_HEADERS, ENV_MAX_LEN, ENV_TRUST_INCOMING,
    Rejection, Resolution, Source,
};
pub use context::{CorrelateExt, WithCorrelation, current, in_current, scope, spawn, sync_scope};
pub use error::Error;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use server::{CorrelationLayer, CorrelationService, ResponseFuture, from_request};
pub use stats::{RejectReason, Stats};

pub use obs_core::{CorrelationId, IdFormat};
