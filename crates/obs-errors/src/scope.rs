//! The error scope: user, tags, extra data and request context that every
//! report captured "inside" it carries.
//!
//! A scope is bound to a future ([`bind`], [`ScopeExt`], [`spawn`](crate::spawn))
//! and follows it across `.await` points and onto whichever worker thread
//! polls it, so it survives `tokio::spawn`; synchronous code uses
//! [`with_scope`]. Outside any bound scope, [`configure_scope`] edits the
//! process-wide scope, which every report also carries (bound scopes win
//! on conflicting keys).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use obs_core::Redactor;

/// At most this many tags and as many extra entries are kept on a scope;
/// later keys are ignored (updates of existing keys still apply).
pub const MAX_ENTRIES: usize = 64;
/// Tag, extra and header values are cut to this many bytes.
pub const MAX_VALUE_LEN: usize = 1024;
/// At most this many request headers are kept.
pub const MAX_HEADERS: usize = 48;

/// The user an error happened to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// Stable user id.
    pub id: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// IP address.
    pub ip_address: Option<String>,
}

impl User {
    /// A user known by id.
    pub fn id(id: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            ..Self::default()
        }
    }

    /// Sets the user name.
    pub fn with_username(mut self, v: impl Into<String>) -> Self {
        self.username = Some(v.into());
        self
    }

    /// Sets the e-mail address.
    pub fn with_email(mut self, v: impl Into<String>) -> Self {
        self.email = Some(v.into());
        self
    }

    /// Sets the IP address.
    pub fn with_ip_address(mut self, v: impl Into<String>) -> Self {
        self.ip_address = Some(v.into());
        self
    }
}

/// The HTTP request being served when the error happened.
///
/// Header values are redacted as they are added: credentials headers
/// (`Authorization`, `Cookie`, …, and any name the redactor deems
/// sensitive) become `[REDACTED]`, other values have secret-looking parts
/// replaced.
///
/// ```
/// use obs_errors::RequestContext;
/// let req = RequestContext::new("GET")
///     .with_route("/items/{id}")
///     .with_header("authorization", "Bearer abc.def.ghi")
///     .with_header("accept", "application/json");
/// assert_eq!(req.header("authorization"), Some("[REDACTED]"));
/// assert_eq!(req.header("accept"), Some("application/json"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestContext {
    /// The method (`GET`, …).
    pub method: String,
    /// The matched route template (never the raw path).
    pub route: Option<String>,
    /// The raw path (query string excluded).
    pub path: Option<String>,
    /// Headers, redacted, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl RequestContext {
    /// A request with `method`.
    pub fn new(method: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            ..Self::default()
        }
    }

    /// Sets the route template.
    pub fn with_route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Sets the path (a query string is cut off: it may carry secrets).
    pub fn with_path(mut self, path: &str) -> Self {
        self.path = Some(path.split('?').next().unwrap_or_default().to_owned());
        self
    }

    /// Adds a header, redacted with the default redactor.
    pub fn with_header(self, name: &str, value: &str) -> Self {
        self.with_header_redacted(name, value, &obs_core::redact::DEFAULT)
    }

    /// Adds a header, redacted with `redactor`.
    pub fn with_header_redacted(mut self, name: &str, value: &str, redactor: &Redactor) -> Self {
        if self.headers.len() < MAX_HEADERS {
            let name = name.to_ascii_lowercase();
            let value = redact_header(&name, value, redactor);
            self.headers.push((name, truncate(value, MAX_VALUE_LEN)));
        }
        self
    }

    /// A header's (redacted) value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Builds the context from `http` request parts: method, path and all
    /// headers (redacted); the route from the request's
    /// `obs_core::RouteTemplate`, else from axum's `MatchedPath` when the
    /// `axum` feature is on.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn from_http<B>(req: &http::Request<B>) -> Self {
        let route = Route::of(req.extensions());
        Self::from_parts(
            req.method().as_str(),
            req.uri().path(),
            route.as_ref().map(Route::as_str),
            req.headers()
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
        )
    }

    #[cfg(feature = "http")]
    fn from_parts<'h>(
        method: &str,
        path: &str,
        route: Option<&str>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Self {
        let mut ctx = Self::new(method).with_path(path);
        ctx.route = route.map(str::to_owned);
        for (name, value) in headers {
            let v = String::from_utf8_lossy(value);
            ctx = ctx.with_header(name, &v);
        }
        ctx
    }
}

/// A scope's request context, built (and redacted) only when first read:
/// the tower layer keeps a raw copy of the request's method, path and
/// headers in a pooled buffer, so a request that never reports an error
/// never pays for building and redacting its context.
#[derive(Clone)]
pub(crate) struct RequestSlot(Arc<LazyRequest>);

struct LazyRequest {
    #[cfg(feature = "tower")]
    raw: Option<RawRequest>,
    ready: std::sync::OnceLock<RequestContext>,
}

/// The route template of a request, kept without copying it: its
/// `obs_core::RouteTemplate`, else axum's `MatchedPath` (feature `axum`).
#[cfg(feature = "http")]
#[derive(Clone)]
enum Route {
    Template(std::borrow::Cow<'static, str>),
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
}

#[cfg(feature = "http")]
impl Route {
    fn of(ext: &http::Extensions) -> Option<Self> {
        if let Some(t) = ext.get::<obs_core::RouteTemplate>() {
            return Some(Route::Template(t.0.clone()));
        }
        #[cfg(feature = "axum")]
        if let Some(m) = ext.get::<axum::extract::MatchedPath>() {
            return Some(Route::Matched(m.clone()));
        }
        None
    }

    fn as_str(&self) -> &str {
        match self {
            Route::Template(t) => t,
            #[cfg(feature = "axum")]
            Route::Matched(m) => m.as_str(),
        }
    }
}

#[cfg(feature = "tower")]
struct RawRequest {
    method: http::Method,
    route: Option<Route>,
    /// The path (a context never keeps the query), then each header's name
    /// and value, back to back: copied bytes, not reference-counted clones
    /// of the connection's read buffer. A clone and its drop are two atomic
    /// operations on a count the connection's other requests touch too;
    /// copying a path and a few header values is cheaper, and keeps no
    /// part of that buffer alive after the request.
    bytes: Vec<u8>,
    path_end: usize,
    /// Where each of the first [`MAX_HEADERS`] headers ends in `bytes`, in
    /// the request's order: `(name_end, value_end)`.
    headers: Vec<(usize, usize)>,
}

/// A pooled request slot whose buffer grew past this is not kept.
#[cfg(feature = "tower")]
const KEEP_BYTES: usize = 16 * 1024;

/// Bytes of a header value copied into a slot: a context keeps
/// [`MAX_VALUE_LEN`] of it, and redaction sees twice that, so a secret
/// that starts within the kept part is seen whole or over a kilobyte of
/// it. A larger header costs no more per request than this.
#[cfg(feature = "tower")]
const COPIED_VALUE_MAX: usize = 2 * MAX_VALUE_LEN;

#[cfg(feature = "tower")]
impl RawRequest {
    fn new() -> Self {
        Self {
            method: http::Method::GET,
            route: None,
            bytes: Vec::new(),
            path_end: 0,
            headers: Vec::new(),
        }
    }

    /// Copies what a context is built from out of `req`: the path, and the
    /// first [`MAX_HEADERS`] headers with at most [`COPIED_VALUE_MAX`] bytes
    /// of each value. The values of the credential headers obs-core lists
    /// (`obs_core::names::header::SENSITIVE`) are not copied at all: a
    /// context writes them as `[REDACTED]` by name. Other values reach the
    /// redactor when a context is built from the slot, as before.
    fn fill<B>(&mut self, req: &http::Request<B>, route: Option<Route>) {
        self.method.clone_from(req.method());
        self.route = route;
        self.bytes.clear();
        self.headers.clear();
        self.bytes.extend_from_slice(req.uri().path().as_bytes());
        self.path_end = self.bytes.len();
        for (name, value) in req.headers().iter().take(MAX_HEADERS) {
            let name = name.as_str();
            self.bytes.extend_from_slice(name.as_bytes());
            let name_end = self.bytes.len();
            if !obs_core::names::header::is_sensitive(name) {
                let value = value.as_bytes();
                self.bytes
                    .extend_from_slice(&value[..value.len().min(COPIED_VALUE_MAX)]);
            }
            self.headers.push((name_end, self.bytes.len()));
        }
    }

    /// Forgets the request: its bytes are overwritten, not only dropped
    /// from the length, since the buffer goes back to a pool (a path may
    /// hold an id or a token). `false` when the buffer is too large to keep.
    fn clear(&mut self) -> bool {
        self.method = http::Method::GET;
        self.route = None;
        self.bytes.fill(0);
        self.bytes.clear();
        self.path_end = 0;
        self.headers.clear();
        self.bytes.capacity() <= KEEP_BYTES
    }

    fn context(&self) -> RequestContext {
        let path = String::from_utf8_lossy(&self.bytes[..self.path_end]);
        let mut start = self.path_end;
        let headers = self.headers.iter().map(|&(name_end, value_end)| {
            let name = std::str::from_utf8(&self.bytes[start..name_end]).unwrap_or_default();
            let value = &self.bytes[name_end..value_end];
            start = value_end;
            (name, value)
        });
        RequestContext::from_parts(
            self.method.as_str(),
            &path,
            self.route.as_ref().map(Route::as_str),
            headers,
        )
    }
}

impl RequestSlot {
    pub(crate) fn ready(r: RequestContext) -> Self {
        Self(Arc::new(LazyRequest {
            #[cfg(feature = "tower")]
            raw: None,
            ready: std::sync::OnceLock::from(r),
        }))
    }

    /// The request's method, path, route and headers, kept for a report to
    /// build its context from. The slot and its buffers come from this
    /// thread's pool when it has one (refilled as slots are dropped), so in
    /// steady state this copies bytes into memory it already has.
    #[cfg(feature = "tower")]
    pub(crate) fn lazy<B>(req: &http::Request<B>) -> Self {
        let route = Route::of(req.extensions());
        if let Some(mut slot) = pool::take_request()
            && let Some(lazy) = Arc::get_mut(&mut slot)
            && let Some(raw) = &mut lazy.raw
        {
            raw.fill(req, route);
            return Self(slot);
        }
        let mut raw = RawRequest::new();
        raw.fill(req, route);
        Self(Arc::new(LazyRequest {
            raw: Some(raw),
            ready: std::sync::OnceLock::new(),
        }))
    }

    pub(crate) fn get(&self) -> &RequestContext {
        self.0.ready.get_or_init(|| {
            #[cfg(feature = "tower")]
            if let Some(raw) = &self.0.raw {
                return raw.context();
            }
            RequestContext::default()
        })
    }
}

#[cfg(feature = "tower")]
impl Drop for RequestSlot {
    fn drop(&mut self) {
        // The last reference to a slot built from a request: back to this
        // thread's pool, its buffers' capacity kept.
        if self.0.raw.is_some() && Arc::strong_count(&self.0) == 1 && Arc::weak_count(&self.0) == 0
        {
            let slot = std::mem::replace(&mut self.0, pool::placeholder_request());
            pool::give_request(slot);
        }
    }
}

impl PartialEq for RequestSlot {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.get() == other.get()
    }
}

impl Eq for RequestSlot {}

impl std::fmt::Debug for RequestSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

pub(crate) fn redact_header(name: &str, value: &str, redactor: &Redactor) -> String {
    if obs_core::names::header::SENSITIVE
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
    {
        obs_core::names::field::REDACTED.to_owned()
    } else {
        redactor.redact_field(name, value).into_owned()
    }
}

pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// User, tags, extra data and request context attached to reports.
///
/// ```
/// use obs_errors::{Scope, User};
/// let mut scope = Scope::new();
/// scope.set_user(User::id("u-42"));
/// scope.set_tag("tenant", "acme");
/// scope.set_extra("cart_items", "3");
/// assert_eq!(scope.tag("tenant"), Some("acme"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub(crate) user: Option<User>,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) extra: Vec<(String, String)>,
    pub(crate) request: Option<RequestSlot>,
}

fn set_entry(list: &mut Vec<(String, String)>, key: &str, value: String) -> bool {
    let value = truncate(value, MAX_VALUE_LEN);
    if let Some(slot) = list.iter_mut().find(|(k, _)| k == key) {
        slot.1 = value;
        true
    } else if list.len() < MAX_ENTRIES {
        list.push((key.to_owned(), value));
        true
    } else {
        false
    }
}

impl Scope {
    /// An empty scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the user.
    pub fn set_user(&mut self, user: User) -> &mut Self {
        self.user = Some(user);
        self
    }

    /// Removes the user.
    pub fn clear_user(&mut self) -> &mut Self {
        self.user = None;
        self
    }

    /// Sets a tag; returns `false` when the scope already holds
    /// [`MAX_ENTRIES`] other tags and the tag was not kept.
    pub fn set_tag(&mut self, key: &str, value: impl Into<String>) -> bool {
        set_entry(&mut self.tags, key, value.into())
    }

    /// Sets extra data; returns `false` when it was not kept (see [`set_tag`](Self::set_tag)).
    pub fn set_extra(&mut self, key: &str, value: impl Into<String>) -> bool {
        set_entry(&mut self.extra, key, value.into())
    }

    /// Sets the request context.
    pub fn set_request(&mut self, request: RequestContext) -> &mut Self {
        self.request = Some(RequestSlot::ready(request));
        self
    }

    /// Sets the request context from `req`, built only if a report reads it.
    #[cfg(feature = "tower")]
    pub(crate) fn set_request_lazy<B>(&mut self, req: &http::Request<B>) -> &mut Self {
        self.request = Some(RequestSlot::lazy(req));
        self
    }

    /// The user, if set.
    pub fn user(&self) -> Option<&User> {
        self.user.as_ref()
    }

    /// A tag's value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An extra entry's value.
    pub fn extra(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The request context, if set.
    pub fn request(&self) -> Option<&RequestContext> {
        self.request.as_ref().map(RequestSlot::get)
    }

    /// `self` with `inner`'s entries applied on top (inner wins).
    pub(crate) fn merged_with(&self, inner: &Scope) -> Scope {
        let mut out = self.clone();
        if inner.user.is_some() {
            out.user.clone_from(&inner.user);
        }
        for (k, v) in &inner.tags {
            set_entry(&mut out.tags, k, v.clone());
        }
        for (k, v) in &inner.extra {
            set_entry(&mut out.extra, k, v.clone());
        }
        if inner.request.is_some() {
            out.request.clone_from(&inner.request);
        }
        out
    }
}

/// A shared, mutable scope: what is bound to a task or a thread.
pub(crate) type ScopeCell = Arc<Mutex<Scope>>;

thread_local! {
    static CURRENT: RefCell<Option<ScopeCell>> = const { RefCell::new(None) };
}

static GLOBAL: Mutex<Scope> = Mutex::new(Scope {
    user: None,
    tags: Vec::new(),
    extra: Vec::new(),
    request: None,
});

struct Enter(Option<ScopeCell>);

impl Enter {
    fn new(cell: &ScopeCell) -> Self {
        Self(CURRENT.with(|c| c.replace(Some(Arc::clone(cell)))))
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let prev = self.0.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

fn current_cell() -> Option<ScopeCell> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// The effective scope now: the process-wide scope with the bound one on top.
pub fn current() -> Scope {
    let global = GLOBAL
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    match current_cell() {
        Some(cell) => global.merged_with(&cell.lock().unwrap_or_else(PoisonError::into_inner)),
        None => global,
    }
}

/// The bound scope only (no process-wide entries), forked for a new task.
pub(crate) fn fork() -> Scope {
    current_cell()
        .map(|c| c.lock().unwrap_or_else(PoisonError::into_inner).clone())
        .unwrap_or_default()
}

/// Edits the scope bound to the current task or thread, or the process-wide
/// scope when none is bound.
///
/// ```
/// obs_errors::with_scope(obs_errors::Scope::new(), || {
///     obs_errors::configure_scope(|s| { s.set_tag("job", "import"); });
///     assert_eq!(obs_errors::scope::current().tag("job"), Some("import"));
/// });
/// assert_eq!(obs_errors::scope::current().tag("job"), None);
/// ```
pub fn configure_scope<R>(f: impl FnOnce(&mut Scope) -> R) -> R {
    match current_cell() {
        Some(cell) => f(&mut cell.lock().unwrap_or_else(PoisonError::into_inner)),
        None => f(&mut GLOBAL.lock().unwrap_or_else(PoisonError::into_inner)),
    }
}

/// Sets the user of the current scope (the request's, under obs's server
/// layer; else the process-wide one): reports captured from here on carry
/// it, scrubbed like every other field.
///
/// ```
/// use obs_errors::{Scope, User};
/// obs_errors::with_scope(Scope::new(), || {
///     obs_errors::set_user(User::id("u-42"));
///     assert_eq!(obs_errors::scope::current().user().and_then(|u| u.id.as_deref()), Some("u-42"));
/// });
/// ```
pub fn set_user(user: User) {
    configure_scope(|s| {
        s.set_user(user);
    });
}

/// Runs `f` with `scope` bound to the current thread.
pub fn with_scope<R>(scope: Scope, f: impl FnOnce() -> R) -> R {
    let cell = Arc::new(Mutex::new(scope));
    let _g = Enter::new(&cell);
    f()
}

pin_project_lite::pin_project! {
    /// A future with an error scope bound to it: the scope is current
    /// whenever the future is polled, on whatever thread, so panics and
    /// captures inside it (and the panic hook, which runs before unwinding)
    /// see it.
    #[derive(Debug)]
    pub struct Scoped<F> {
        #[pin]
        inner: F,
        scope: ScopeCell,
    }

    impl<F> PinnedDrop for Scoped<F> {
        fn drop(this: Pin<&mut Self>) {
            // The last reference to the scope: emptied (its request slot
            // goes back to its own pool) and kept for the next request.
            let scope = this.project().scope;
            if Arc::strong_count(scope) == 1 && Arc::weak_count(scope) == 0 {
                let cell = std::mem::replace(scope, pool::placeholder_cell());
                pool::give_cell(cell);
            }
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _g = Enter::new(this.scope);
        this.inner.poll(cx)
    }
}

/// Binds a copy of the current scope to `fut`: changes made inside the
/// future stay there, changes made outside after this call do not reach it.
///
/// ```
/// use obs_errors::{configure_scope, scope, Scope};
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let mut request = Scope::new();
/// request.set_tag("tenant", "acme");
/// let seen = obs_errors::with_scope(request, || {
///     // the copy travels with the task to whatever worker thread polls it
///     rt.spawn(obs_errors::bind(async { scope::current().tag("tenant").map(str::to_owned) }))
/// });
/// assert_eq!(rt.block_on(seen).unwrap().as_deref(), Some("acme"));
/// ```
pub fn bind<F: Future>(fut: F) -> Scoped<F> {
    Scoped {
        inner: fut,
        scope: Arc::new(Mutex::new(fork())),
    }
}

/// The scope of a request the tower layer serves, built in its (pooled)
/// cell: a copy of the current scope with the request's context (built
/// lazily), bound while the service is called ([`RequestScope::enter`]) and
/// then to its future ([`RequestScope::bind`]): built in place, so that
/// neither the scope nor the service's future is moved through a closure.
#[cfg(feature = "tower")]
pub(crate) struct RequestScope(ScopeCell);

#[cfg(feature = "tower")]
impl RequestScope {
    pub(crate) fn new<B>(req: &http::Request<B>) -> Self {
        // A pooled cell was emptied when it was given back.
        let cell = pool::take_cell().unwrap_or_default();
        {
            let mut scope = cell.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(current) = current_cell() {
                scope.clone_from(&current.lock().unwrap_or_else(PoisonError::into_inner));
            }
            scope.set_request_lazy(req);
        }
        RequestScope(cell)
    }

    /// Binds the scope to this thread until the guard is dropped.
    pub(crate) fn enter(&self) -> impl Drop + use<> {
        Enter::new(&self.0)
    }

    /// Binds the scope to `inner`.
    pub(crate) fn bind<F: Future>(self, inner: F) -> Scoped<F> {
        Scoped {
            inner,
            scope: self.0,
        }
    }
}

/// Extension methods binding scopes to futures.
pub trait ScopeExt: Future + Sized {
    /// Binds `scope` to this future.
    fn with_error_scope(self, scope: Scope) -> Scoped<Self> {
        Scoped {
            inner: self,
            scope: Arc::new(Mutex::new(scope)),
        }
    }

    /// Binds a copy of the current scope to this future (see [`bind`]).
    fn in_current_error_scope(self) -> Scoped<Self> {
        bind(self)
    }
}

impl<F: Future> ScopeExt for F {}

/// Per-thread pools of the per-request allocations of the tower layer: the
/// scope cell bound to the request's future and the request slot. Each is
/// given back when its last reference goes and taken by the next request on
/// the same thread, so a request allocates neither in steady state. Bounded:
/// a thread keeps at most [`pool::KEEP`] of each; more are freed.
mod pool {
    use std::cell::RefCell;
    use std::sync::{Arc, Mutex, PoisonError};

    use super::{LazyRequest, Scope, ScopeCell};

    /// At most this many of each kind are kept per thread.
    pub(super) const KEEP: usize = 64;

    thread_local! {
        static CELLS: RefCell<Vec<ScopeCell>> = const { RefCell::new(Vec::new()) };
        static REQUESTS: RefCell<Vec<Arc<LazyRequest>>> = const { RefCell::new(Vec::new()) };
        static EMPTY_CELL: ScopeCell = Arc::new(Mutex::new(Scope::default()));
        static EMPTY_REQUEST: Arc<LazyRequest> = Arc::new(LazyRequest {
            #[cfg(feature = "tower")]
            raw: None,
            ready: std::sync::OnceLock::new(),
        });
    }

    #[cfg(feature = "tower")]
    pub(super) fn take_cell() -> Option<ScopeCell> {
        obs_core::recycle::take(&CELLS)
    }

    /// Empties `cell` (dropping its request slot, which goes to its own
    /// pool) and keeps it.
    pub(super) fn give_cell(cell: ScopeCell) {
        let old = std::mem::take(&mut *cell.lock().unwrap_or_else(PoisonError::into_inner));
        drop(old);
        obs_core::recycle::give(&CELLS, cell, KEEP);
    }

    /// What a dropped `Scoped` holds once its cell went to the pool.
    pub(super) fn placeholder_cell() -> ScopeCell {
        EMPTY_CELL
            .try_with(Arc::clone)
            .unwrap_or_else(|_| Arc::new(Mutex::new(Scope::default())))
    }

    #[cfg(feature = "tower")]
    pub(super) fn take_request() -> Option<Arc<LazyRequest>> {
        obs_core::recycle::take(&REQUESTS)
    }

    /// Forgets the built context and the request, and keeps the slot (its
    /// buffers' capacity with it).
    #[cfg(feature = "tower")]
    pub(super) fn give_request(mut slot: Arc<LazyRequest>) {
        if let Some(lazy) = Arc::get_mut(&mut slot) {
            lazy.ready = std::sync::OnceLock::new();
            // Nothing of the request stays behind in the pool: its bytes
            // are overwritten, and a slot grown past the bound is freed.
            if let Some(raw) = &mut lazy.raw
                && !raw.clear()
            {
                return;
            }
            obs_core::recycle::give(&REQUESTS, slot, KEEP);
        }
    }

    /// What a dropped request slot holds once its allocation went to the
    /// pool.
    #[cfg(feature = "tower")]
    pub(super) fn placeholder_request() -> Arc<LazyRequest> {
        EMPTY_REQUEST.try_with(Arc::clone).unwrap_or_else(|_| {
            Arc::new(LazyRequest {
                raw: None,
                ready: std::sync::OnceLock::new(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_scope_wins_and_is_restored() {
        configure_scope(|s| s.set_tag("region", "eu"));
        let mut inner = Scope::new();
        inner.set_tag("region", "us");
        inner.set_user(User::id("7"));
        with_scope(inner, || {
            let s = current();
            assert_eq!(s.tag("region"), Some("us"));
            assert_eq!(s.user().and_then(|u| u.id.as_deref()), Some("7"));
        });
        assert_eq!(current().tag("region"), Some("eu"));
        assert!(current().user().is_none());
        configure_scope(|s| s.tags.retain(|(k, _)| k != "region"));
    }

    #[test]
    fn entries_are_bounded() {
        let mut s = Scope::new();
        for i in 0..MAX_ENTRIES {
            assert!(s.set_tag(&format!("k{i}"), "v"));
        }
        assert!(!s.set_tag("one-more", "v"));
        assert!(s.set_tag("k0", "updated"));
        assert_eq!(s.tag("k0"), Some("updated"));
        s.set_extra("big", "x".repeat(5000));
        assert!(s.extra("big").unwrap().len() <= MAX_VALUE_LEN + 3);
    }

    #[test]
    fn headers_are_redacted() {
        let r = RequestContext::new("POST")
            .with_path("/login?password=hunter2")
            .with_header("Cookie", "session=abc")
            .with_header("x-api-key", "k")
            .with_header("x-note", "token=abcdef123456");
        assert_eq!(r.path.as_deref(), Some("/login"));
        assert_eq!(r.header("cookie"), Some("[REDACTED]"));
        assert_eq!(r.header("x-api-key"), Some("[REDACTED]"));
        assert!(!r.header("x-note").unwrap().contains("abcdef123456"));
    }

    /// The tower layer's lazy copy keeps the headers a context keeps, in
    /// the request's order, repeated names included, and builds the same
    /// context as `from_http`, also from a recycled slot.
    #[cfg(feature = "tower")]
    #[test]
    fn lazy_request_builds_what_from_http_builds() {
        let mut b = http::Request::post("/orders/7?token=abc").header("authorization", "Bearer x");
        for i in 0..MAX_HEADERS + 10 {
            b = b.header("x-n", i.to_string());
        }
        let req = b.header("accept", "text/plain").body(()).unwrap();
        let expected = RequestContext::from_http(&req);
        assert_eq!(expected.headers.len(), MAX_HEADERS);
        for _ in 0..3 {
            let slot = RequestSlot::lazy(&req);
            let got = slot.get();
            assert_eq!(*got, expected);
            assert_eq!(got.header("authorization"), Some("[REDACTED]"));
            assert_eq!(got.headers[1], ("x-n".to_owned(), "0".to_owned()));
            assert_eq!(got.header("accept"), None, "past the cap");
        }
    }

    #[test]
    fn a_pooled_request_slot_keeps_nothing_of_the_last_request() {
        let first = http::Request::get("/users/42/reset/s3cr3t")
            .header("x-secret-ish", "first-value")
            .header("cookie", "session=abc")
            .body(())
            .unwrap();
        let second = http::Request::put("/b")
            .header("accept", "*/*")
            .body(())
            .unwrap();
        drop(RequestSlot::lazy(&first));
        // The slot went back to this thread's pool, emptied.
        let slot = pool::take_request().expect("the slot was pooled");
        let raw = slot.raw.as_ref().unwrap();
        assert!(raw.bytes.is_empty() && raw.headers.is_empty() && raw.route.is_none());
        pool::give_request(slot);
        let got = RequestSlot::lazy(&second);
        assert_eq!(*got.get(), RequestContext::from_http(&second));
        assert_eq!(got.get().path.as_deref(), Some("/b"));
        assert_eq!(
            got.get().headers,
            vec![("accept".to_owned(), "*/*".to_owned())]
        );
        // A credential header's value is never copied, and reads redacted.
        drop(got);
        let slot = RequestSlot::lazy(&first);
        let raw2 = slot.0.raw.as_ref().unwrap();
        assert!(!raw2.bytes.windows(11).any(|w| w == b"session=abc"));
        assert_eq!(slot.get().header("cookie"), Some("[REDACTED]"));
    }

    #[test]
    fn large_headers_are_copied_in_part_and_an_oversized_slot_is_not_pooled() {
        while pool::take_request().is_some() {}
        // One large value: its first COPIED_VALUE_MAX bytes are copied, the
        // context keeps MAX_VALUE_LEN, and the slot stays small enough to pool.
        let big = "v".repeat(KEEP_BYTES + 1);
        let req = http::Request::get("/")
            .header("x-big", big.as_str())
            .body(())
            .unwrap();
        let slot = RequestSlot::lazy(&req);
        assert_eq!(*slot.get(), RequestContext::from_http(&req));
        assert_eq!(
            slot.get().header("x-big").map(str::len),
            Some(MAX_VALUE_LEN + '…'.len_utf8())
        );
        assert!(slot.0.raw.as_ref().unwrap().bytes.len() <= 1 + 5 + COPIED_VALUE_MAX);
        drop(slot);
        assert!(
            pool::take_request().is_some(),
            "a slot under KEEP_BYTES is pooled"
        );
        // Many large values: the slot outgrows KEEP_BYTES and is freed.
        let mut b = http::Request::get("/");
        for _ in 0..(KEEP_BYTES / COPIED_VALUE_MAX + 1) {
            b = b.header("x-big", big.as_str());
        }
        let req = b.body(()).unwrap();
        let slot = RequestSlot::lazy(&req);
        assert_eq!(*slot.get(), RequestContext::from_http(&req));
        drop(slot);
        assert!(
            pool::take_request().is_none(),
            "a slot past KEEP_BYTES is freed"
        );
    }
}
