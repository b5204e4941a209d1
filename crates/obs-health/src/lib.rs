#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod check;
pub mod checks;
pub mod config;
mod entry;
mod error;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod http;
mod registry;
mod report;
mod result;
mod time;

pub use check::{Check, Kind, Kinds};
pub use config::Config;
pub use error::Error;
pub use registry::{CheckStats, Health, HealthBuilder, HealthStats, Poller, SHUTDOWN_CHECK};
pub use report::{CheckReport, Probe, ProbeOptions, Report};
pub use result::{CheckResult, IntoCheckResult, Observation, ObservedValue, Status};
