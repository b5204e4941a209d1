//! Moving the id through job payloads and channel messages with the obs-core
//! [`Carrier`].

use obs_core::names::header;
use obs_core::{Carrier, CorrelationId};

use crate::Error;

/// Writes the current correlation id (see [`current`](crate::current)) into
/// `carrier` under `x-correlation-id`, returning it; `None` (and the carrier
/// unchanged) when there is no current id.
///
/// The producer side of a job queue: inject when enqueuing, then on the
/// consumer side [`extract`] (or [`Config::resolve_carrier`](crate::Config::resolve_carrier))
/// and run the job in [`scope`](crate::scope).
///
/// ```
/// use obs_core::{Carrier, CorrelationId};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let id = CorrelationId::parse("req-5").unwrap();
/// let job = obs_correlate::scope(id, async {
///     let mut c = Carrier::new();
///     obs_correlate::carrier::inject(&mut c);
///     c
/// })
/// .await;
/// assert_eq!(obs_correlate::carrier::extract(&job).unwrap().unwrap().as_str(), "req-5");
/// # });
/// ```
pub fn inject(carrier: &mut Carrier) -> Option<CorrelationId> {
    let id = crate::current()?;
    carrier.set_correlation_id(&id);
    Some(id)
}

/// Reads the correlation id from `carrier`: `Ok(None)` when absent, an
/// [`Error::InvalidId`] (naming the key and the reason, never the value) when
/// present but invalid.
///
/// ```
/// use obs_core::Carrier;
/// let mut c = Carrier::new();
/// assert_eq!(obs_correlate::carrier::extract(&c)?, None);
/// c.insert("x-correlation-id", "two words")?;
/// let err = obs_correlate::carrier::extract(&c).unwrap_err();
/// assert!(err.to_string().starts_with("invalid correlation id in carrier key x-correlation-id"));
/// assert!(!err.to_string().contains("two words"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn extract(carrier: &Carrier) -> Result<Option<CorrelationId>, Error> {
    carrier
        .correlation_id()
        .transpose()
        .map_err(|source| Error::InvalidId {
            origin: format!("carrier key {}", header::X_CORRELATION_ID),
            source,
        })
}
