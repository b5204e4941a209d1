#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod breadcrumbs;
pub mod config;
mod error;
mod layer;
pub mod report;
mod reporter;
pub mod scope;
mod sink;

#[cfg(feature = "sentry")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentry")))]
pub mod sentry;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use breadcrumbs::Breadcrumb;
pub use config::{BacktraceMode, Config, FingerprintFn, FingerprintMode};
pub use error::Error;
pub use layer::ErrorLayer;
pub use report::{ChainEntry, Frame, Location, Mechanism, Report, Stacktrace};
pub use reporter::{
    Captured, ErrorStats, MAX_CHAIN, MAX_COUNTED_TYPES, Outcome, Reporter, ReporterBuilder,
    TypeCount, capture_display, capture_dyn_error, capture_error,
};
pub use scope::{
    RequestContext, Scope, ScopeExt, Scoped, User, bind, configure_scope, set_user, with_scope,
};
pub use sink::{FnSink, LogSink, MemorySink, Sink};

/// `tokio::spawn` with a copy of the current error scope bound to the task
/// (see [`bind`]).
///
/// ```
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let mut s = obs_errors::Scope::new();
///     s.set_tag("job", "reindex");
///     let handle = obs_errors::with_scope(s, || {
///         obs_errors::spawn(async { obs_errors::scope::current().tag("job").map(str::to_owned) })
///     });
///     assert_eq!(handle.await.unwrap().as_deref(), Some("reindex"));
/// });
/// ```
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(bind(fut))
}
