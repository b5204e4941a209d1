//! The axum extractor.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use obs_core::CorrelationId;

/// Axum extractor for the request's correlation id.
///
/// Reads the id the [`CorrelationLayer`](crate::CorrelationLayer) stored in
/// the request extensions, falling back to [`current`](crate::current);
/// rejects with [`MissingCorrelationId`] (500) when neither exists, which
/// means the layer is not installed.
///
/// ```
/// use axum::{Router, routing::get};
/// use obs_correlate::{Correlation, CorrelationLayer};
///
/// async fn handler(Correlation(id): Correlation) -> String {
///     format!("your request is {id}")
/// }
/// let app: Router = Router::new().route("/", get(handler)).layer(CorrelationLayer::new());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Correlation(pub CorrelationId);

impl std::ops::Deref for Correlation {
    type Target = CorrelationId;
    fn deref(&self) -> &CorrelationId {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Correlation {
    type Rejection = MissingCorrelationId;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CorrelationId>()
            .cloned()
            .or_else(crate::current)
            .map(Correlation)
            .ok_or(MissingCorrelationId)
    }
}

/// Rejection of the [`Correlation`] extractor: no correlation id, because the
/// [`CorrelationLayer`](crate::CorrelationLayer) is not installed in front of
/// the handler. Responds 500.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no correlation id: the obs-correlate CorrelationLayer is not installed")]
pub struct MissingCorrelationId;

impl IntoResponse for MissingCorrelationId {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
