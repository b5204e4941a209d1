//! The stacks `benches/server_layer.rs` times, `examples/request_cost.rs`
//! runs under callgrind (`cargo xtask instructions`) and
//! `tests/alloc_per_request.rs` counts allocations of, in one place so all
//! three measure the same thing: the bare
//! router, obs's `server_layer()` on obs's layers alone, the floor of
//! `tracing` for the shape of obs's request, obs's behaviours written by
//! hand, and the hand-glued anchors.
//! See the bench's module docs for what each stack holds.

#[path = "anchors.rs"]
mod anchors;
#[path = "by_hand.rs"]
pub(crate) mod by_hand;
#[path = "../../tests/support/hyper_request.rs"]
mod hyper_request;

use std::sync::Arc;
use std::time::Instant;

use anchors::{GluedTracing, glued_tracing, obs_config};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;

async fn hello(axum::extract::Path(name): axum::extract::Path<String>) -> String {
    format!("Hello, {name}!")
}

pub(crate) fn app() -> Router {
    Router::new().route("/hello/{name}", get(hello))
}

/// `router` as a server runs it: `axum::serve` and `into_make_service` call
/// `with_state(())` once per connection, which turns every handler (and the
/// layers added with `Router::layer`) into its route ahead of the requests.
/// A router called as it is converts the handler on every request, and
/// builds every layer's service again each time (`Layer::layer` per
/// request): a cost no server pays, and one that grows with the layers.
/// Every row is measured served.
pub(crate) fn served(router: Router) -> Router {
    router.with_state(())
}

/// The request of every row, built as hyper builds it (see the helper,
/// shared with `tests/alloc_per_request.rs`).
pub(crate) fn request() -> http::Request<axum::body::Body> {
    hyper_request::hyper_request("/hello/world", "bench")
}

/// obs, its layers in a dispatch of their own, its access line on or off
/// (`ServerLayer::access_log`; off, the difference is what the line costs).
pub(crate) fn obs_stack(
    rt: &tokio::runtime::Runtime,
    sampled: bool,
    access_line: bool,
) -> (obs::Obs, tracing::Dispatch, Router) {
    obs_stack_writing(rt, sampled, access_line, std::io::sink())
}

/// obs's behaviours written by hand (see [`by_hand`]).
pub(crate) fn by_hand() -> (by_hand::ByHand, Router) {
    by_hand_writing(std::io::sink())
}

/// [`by_hand`], its lines written to `out`.
pub(crate) fn by_hand_writing(
    out: impl std::io::Write + Send + 'static,
) -> (by_hand::ByHand, Router) {
    let stack = by_hand::ByHand::new("bench", out);
    let router = served(app().layer(stack.layer()));
    (stack, router)
}

/// [`obs_stack`], its lines written to `out`.
pub(crate) fn obs_stack_writing(
    rt: &tokio::runtime::Runtime,
    sampled: bool,
    access_line: bool,
    out: impl std::io::Write + Send + 'static,
) -> (obs::Obs, tracing::Dispatch, Router) {
    let config =
        obs_config(sampled).log(|l| l.writer(out).non_blocking(obs::log::NonBlocking::new()));
    let obs = rt.block_on(async { obs::init(config) }).unwrap();
    // obs's layers alone, as `obs::init` installs them process-wide.
    let subscriber = obs.take_subscriber().expect("not installed globally");
    let dispatch = tracing::Dispatch::new(subscriber);
    let router = served(app().layer(obs.server_layer().access_log(access_line)));
    (obs, dispatch, router)
}

/// Labels of the anchor's request-duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

type Histogram = prometheus_client::metrics::histogram::Histogram;
type DurationFamily =
    prometheus_client::metrics::family::Family<RouteLabels, Histogram, fn() -> Histogram>;

fn new_histogram() -> Histogram {
    Histogram::new(obs::core::names::HTTP_DURATION_BUCKETS.iter().copied())
}

/// The anchor's metrics middleware: one histogram observation per request.
async fn record_duration(
    State(family): State<Arc<DurationFamily>>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    family
        .get_or_create(&RouteLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .observe(start.elapsed().as_secs_f64());
    response
}

/// The floor row's layer: the span and event of obs's request, recorded by
/// nothing (see the module docs).
#[derive(Clone)]
struct ShapeLayer;

impl<S> tower::Layer<S> for ShapeLayer {
    type Service = Shape<S>;
    fn layer(&self, inner: S) -> Shape<S> {
        Shape { inner }
    }
}

#[derive(Clone)]
struct Shape<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Shape<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ShapeFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use tracing::Instrument as _;
        let route = req.extensions().get::<MatchedPath>().cloned();
        let span = tracing::info_span!(
            "http.server",
            otel.name = "GET /hello/{name}",
            otel.kind = "server",
            http.request.method = req.method().as_str(),
            url.path = req.uri().path(),
            url.scheme = "http",
            http.route = route.as_ref().map(MatchedPath::as_str),
            http.response.status_code = tracing::field::Empty,
            server.address = "localhost",
            server.port = 80_i64,
            client.address = "127.0.0.1",
            user_agent.original = "bench",
            network.protocol.version = "1.1",
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let path = req.uri().path_and_query().cloned();
        let fut = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ShapeFuture {
            end: span.clone(),
            fut: fut.instrument(span),
            route,
            path,
            start: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The floor row's future: records the status and writes the access
    /// event, in the span, when the inner future ends.
    struct ShapeFuture<F> {
        #[pin]
        fut: tracing::instrument::Instrumented<F>,
        end: tracing::Span,
        route: Option<MatchedPath>,
        path: Option<http::uri::PathAndQuery>,
        start: Instant,
    }
}

impl<F, E> std::future::Future for ShapeFuture<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let out = std::task::ready!(this.fut.poll(cx));
        if let Ok(res) = &out {
            let status = res.status().as_u16();
            this.end.record("http.response.status_code", status);
            this.end.in_scope(|| {
                tracing::event!(
                    target: "obs::access",
                    tracing::Level::INFO,
                    http.request.method = "GET",
                    http.route = this.route.as_ref().map(MatchedPath::as_str),
                    url.path = this.path.as_ref().map_or("", |p| p.path()),
                    http.response.status_code = status,
                    duration_ms = this.start.elapsed().as_secs_f64() * 1000.0,
                    http.request.body.size = 0_u64,
                    http.response.body.size = 12_u64,
                    "request finished"
                );
            });
        }
        std::task::Poll::Ready(out)
    }
}

/// What stays alive while the hand-glued stack is measured.
pub(crate) struct Glued {
    pub(crate) dispatch: tracing::Dispatch,
    pub(crate) router: Router,
    pub(crate) provider: SdkTracerProvider,
    pub(crate) log_guard: tracing_appender::non_blocking::WorkerGuard,
    pub(crate) registry: prometheus_client::registry::Registry,
}

pub(crate) fn hand_glued(sampled: bool) -> Glued {
    use tower::ServiceBuilder;
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

    let GluedTracing {
        dispatch,
        provider,
        log_guard,
    } = glued_tracing(sampled);

    let mut registry = prometheus_client::registry::Registry::default();
    let family: DurationFamily = DurationFamily::new_with_constructor(new_histogram as fn() -> _);
    registry.register(
        "http_server_request_duration_seconds",
        "Duration of HTTP server requests",
        family.clone(),
    );
    let router = app()
        .layer(middleware::from_fn_with_state(
            Arc::new(family),
            record_duration,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(
                            DefaultMakeSpan::new()
                                .level(tracing::Level::INFO)
                                .include_headers(false),
                        )
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id()),
        );
    let router = served(router);
    Glued {
        dispatch,
        router,
        provider,
        log_guard,
        registry,
    }
}

/// The floor stack: the router under [`ShapeLayer`], and a subscriber whose
/// only layer does nothing: on `tracing-subscriber`'s registry, or on obs's
/// own span store (`on_store`), the one obs stands on when installed alone.
pub(crate) fn floor(on_store: bool) -> (tracing::Dispatch, Router) {
    let nothing = tracing_subscriber::layer::Identity::new();
    let dispatch = if on_store {
        tracing::Dispatch::new(obs_core::store::sole_subscriber(nothing))
    } else {
        tracing::Dispatch::new(tracing_subscriber::registry().with(nothing))
    };
    (dispatch, served(app().layer(ShapeLayer)))
}
