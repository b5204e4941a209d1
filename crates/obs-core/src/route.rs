//! The route template of a request (`/items/{id}`, never the raw path): the
//! one hook through which every pillar learns it.
//!
//! With axum the pillars read axum's `MatchedPath` themselves (their `axum`
//! features). Any other server — a plain tower service, hyper, a router of
//! your own — inserts a [`RouteTemplate`] into the request's extensions
//! before obs's layers see the request; the metrics labels, the server
//! span's name and `http.route`, error reports and the access line all use
//! it. When both are present the explicit [`RouteTemplate`] wins. Without
//! either, the route is empty: the raw path is never used as a label.
//!
//! ```
//! use obs_core::RouteTemplate;
//! let mut ext = http::Extensions::new();
//! ext.insert(RouteTemplate::new("/items/{id}"));
//! assert_eq!(ext.get::<RouteTemplate>().map(RouteTemplate::as_str), Some("/items/{id}"));
//! ```

use std::borrow::Cow;

/// A request's route template, as a request extension (see the
/// [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteTemplate(pub Cow<'static, str>);

impl RouteTemplate {
    /// The template `t` (`/items/{id}`).
    pub fn new(t: impl Into<Cow<'static, str>>) -> Self {
        Self(t.into())
    }

    /// The template.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
