//! The axum extractor.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use obs_core::CorrelationId;

/// Axum extractor for the request's correlation id.
///
/// Reads the request's id as [`from_request`](crate::from_request) does:
/// the id stored in the request extensions, else the
/// [`current`](crate::current) id when the request's headers carry it (the
/// [`CorrelationLayer`](crate::CorrelationLayer) writes it into the first
/// correlation header). Rejects with [`MissingCorrelationId`] (500) when
/// there is none: the layer is not in front of the handler, or the handler
/// runs outside the request's task (a `tokio::spawn` without
/// [`spawn`](crate::spawn)).
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
        crate::server::id_of_parts(&parts.headers, &parts.extensions)
            .map(Correlation)
            .ok_or(MissingCorrelationId)
    }
}

/// `Option<Correlation>`: `None` instead of a rejection when there is no id.
///
/// ```
/// use obs_correlate::Correlation;
/// async fn handler(id: Option<Correlation>) -> String {
///     id.map(|Correlation(id)| id.to_string()).unwrap_or_default()
/// }
/// let app: axum::Router = axum::Router::new().route("/", axum::routing::get(handler));
/// ```
impl<S: Send + Sync> OptionalFromRequestParts<S> for Correlation {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Infallible> {
        Ok(
            <Self as FromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// Rejection of the [`Correlation`] extractor: no correlation id, because the
/// [`CorrelationLayer`](crate::CorrelationLayer) is not installed in front of
/// the handler, or the handler runs outside the request's task. Responds 500.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no correlation id: the obs-correlate CorrelationLayer is not in front of the handler, \
     or the handler runs outside the request's task"
)]
pub struct MissingCorrelationId;

impl IntoResponse for MissingCorrelationId {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
