#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alloc;
pub mod capture;
pub mod endpoint;
pub mod otlp;
pub mod prometheus;
pub mod subscriber;
