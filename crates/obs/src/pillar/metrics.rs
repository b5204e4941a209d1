//! The metrics pillar (`obs-metrics`): the registry with the process
//! collector, `obs_build_info` and every pillar's self-metrics, the metric
//! sets registered on first use (HTTP server and client, jobs, pipelines),
//! the HTTP server set the server stack records into, the client metrics
//! layer, and `/metrics` on the admin router.

use std::fmt;
use std::sync::OnceLock;

use super::{Lookup, Parts, Pillar, Shared};
use crate::config::{ENV_CARDINALITY_LIMIT, parse_var};
use crate::instance::Inner;
use crate::{Config, Error, Obs};

pub(crate) struct Settings {
    cardinality_limit: usize,
}

impl super::Settings for Settings {
    fn from_lookup(lookup: Lookup<'_>) -> Result<Self, Error> {
        Ok(Self {
            cardinality_limit: parse_var(lookup, ENV_CARDINALITY_LIMIT)?
                .unwrap_or(obs_metrics::DEFAULT_CARDINALITY_LIMIT),
        })
    }
    fn defaults() -> Self {
        Self {
            cardinality_limit: obs_metrics::DEFAULT_CARDINALITY_LIMIT,
        }
    }
    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("cardinality_limit", &self.cardinality_limit);
    }
}

pub(crate) struct State {
    registry: obs_metrics::Registry,
    /// The metric sets of the integrations, registered on first use.
    pub(crate) sets: Sets,
}

/// A cell per metric set: registered on first use, `None` when the
/// registration failed.
#[derive(Default)]
pub(crate) struct Sets {
    #[cfg(feature = "http")]
    pub(crate) http_server: OnceLock<Option<obs_metrics::sets::HttpServerMetrics>>,
    #[cfg(feature = "http")]
    pub(crate) http_client: OnceLock<Option<std::sync::Arc<obs_metrics::sets::HttpClientMetrics>>>,
    #[cfg(feature = "trace")]
    pub(crate) job: OnceLock<Option<obs_metrics::sets::JobMetrics>>,
    #[cfg(feature = "trace")]
    pub(crate) pipeline: OnceLock<Option<obs_metrics::sets::PipelineMetrics>>,
}

impl Pillar for State {
    type Settings = Settings;

    fn init(settings: Settings, shared: &Shared<'_>, _: &mut Parts) -> Result<Self, Error> {
        let registry = obs_metrics::Registry::builder()
            .cardinality_limit(settings.cardinality_limit)
            .redactor(Some(shared.redactor.clone()))
            .build();
        obs_metrics::process::register(&registry)?;
        Ok(Self {
            registry,
            sets: Sets::default(),
        })
    }
}

/// Prometheus counters are registered without their `_total` suffix; the
/// registry adds it.
#[cfg_attr(
    not(any(feature = "log", feature = "trace", feature = "errors")),
    allow(dead_code, reason = "used by the pillars that publish counters")
)]
pub(crate) fn base(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// Publishes `obs_build_info` and every pillar's self-metrics (their stats
/// handles, the stats-handle contract): dropped and suppressed log lines,
/// exported and dropped spans, correlation ids generated and replaced,
/// health check status and duration, captured errors.
pub(crate) fn publish(inner: &Inner) -> Result<(), Error> {
    let registry = &inner.metrics.registry;
    let resource = &inner.resource;
    let revision = resource
        .get("vcs.revision")
        .or_else(|| resource.get("service.revision"));
    obs_metrics::sets::build_info(
        registry,
        resource.service_name(),
        resource.service_version().unwrap_or("unknown"),
        revision.unwrap_or("unknown"),
    )?;
    inner.log.publish(registry)?;
    inner.trace.publish(registry)?;
    inner.correlate.publish(registry)?;
    inner.health.publish(registry)?;
    inner.errors.publish(registry)?;
    Ok(())
}

impl Config {
    /// Label sets kept per metric before new ones go to the overflow series.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.metrics.cardinality_limit = limit;
        self
    }
}

impl Obs {
    /// The metrics registry (`/metrics` encodes it).
    pub fn metrics(&self) -> &obs_metrics::Registry {
        &self.inner.metrics.registry
    }
}

impl State {
    /// A ready metric set registered on this instance's registry on first
    /// use and cached in `cell`; a registration error is logged once and
    /// the set is then absent.
    #[cfg_attr(
        not(any(feature = "http", feature = "trace")),
        allow(dead_code, reason = "used by the HTTP layers, jobs and pipelines")
    )]
    pub(crate) fn metric_set<T: Clone>(
        &self,
        cell: impl FnOnce(&Sets) -> &OnceLock<Option<T>>,
        what: &str,
        register: impl FnOnce(&obs_metrics::Registry) -> obs_metrics::Result<T>,
    ) -> Option<T> {
        cell(&self.sets).get_or_init(|| match register(&self.registry) {
            Ok(set) => Some(set),
            Err(e) => {
                tracing::error!(target: "obs", error = %e, "cannot register the {what} metrics");
                None
            }
        })
        .clone()
    }
}

#[cfg(feature = "http")]
pub use http::{ClientMetrics, ClientMetricsFuture, ClientMetricsLayer};

/// RED metrics on the server layer, client metrics on the client layer,
/// `/metrics` on the admin router.
#[cfg(feature = "http")]
pub(crate) mod http {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Instant;

    use http::{Request, Response};
    use obs_metrics::sets::{HttpClientMetrics, HttpServerMetrics};
    use tower_layer::Layer;
    use tower_service::Service;

    use super::State;
    use crate::Obs;
    use crate::http::HttpPillar;

    pub(crate) type Server = ServerMetrics;

    /// The HTTP server metric set the server stack records each request
    /// into (in its last service, next to the access line). Public only as
    /// a type parameter of [`crate::http::FinishFuture`].
    #[derive(Clone, Debug)]
    pub struct ServerMetrics(Arc<HttpServerMetrics>);

    impl crate::http::RecordRequests for ServerMetrics {
        type Active = obs_metrics::GaugeGuard;

        fn start(&self, method: &'static str) -> Self::Active {
            self.0.track_active(method)
        }

        fn record(&self, end: &crate::http::RequestEnd<'_>) {
            self.0.record_response(
                end.method,
                end.route,
                end.status,
                end.elapsed,
                end.request_size,
                end.response_size,
            );
        }
    }
    pub(crate) type Client = ClientMetricsLayer;

    impl HttpPillar for State {
        type Server = Server;
        type Client = Client;
        fn server_layer(&self) -> Self::Server {
            // Registered on the instance's registry by the first server
            // layer; every later one shares the set.
            ServerMetrics(Arc::new(self.http_server_metrics()))
        }
        fn standalone_server() -> Self::Server {
            ServerMetrics(Arc::new(detached_server_metrics()))
        }
        fn client_layer(&self) -> Self::Client {
            ClientMetricsLayer {
                metrics: self.http_client_metrics(),
            }
        }
        fn standalone_client() -> Self::Client {
            ClientMetricsLayer { metrics: None }
        }
        fn admin_routes(&self, _: &Obs, router: axum::Router) -> axum::Router {
            router.route_service("/metrics", self.registry.service())
        }
    }

    impl State {
        /// The HTTP server metric set of this instance, registered on first
        /// use (a detached one if registration failed).
        fn http_server_metrics(&self) -> HttpServerMetrics {
            self.metric_set(|s| &s.http_server, "HTTP server", HttpServerMetrics::new)
                .unwrap_or_else(detached_server_metrics)
        }

        /// The HTTP client metric set of this instance, registered on first use.
        pub(crate) fn http_client_metrics(&self) -> Option<Arc<HttpClientMetrics>> {
            self.metric_set(
                |s| &s.http_client,
                "HTTP client",
                |r| HttpClientMetrics::new(r).map(Arc::new),
            )
        }
    }

    impl Obs {
        /// The HTTP client metric set of this instance, registered on first use.
        #[cfg_attr(
            not(feature = "reqwest"),
            allow(dead_code, reason = "used by the reqwest middleware")
        )]
        pub(crate) fn http_client_metrics(&self) -> Option<Arc<HttpClientMetrics>> {
            self.inner.metrics.http_client_metrics()
        }
    }

    fn detached_server_metrics() -> HttpServerMetrics {
        let registry = obs_metrics::Registry::new();
        match HttpServerMetrics::new(&registry) {
            Ok(m) => m,
            // A fresh registry has no conflicting names; registration cannot fail.
            Err(e) => unreachable!("fresh registry refused the HTTP metric set: {e}"),
        }
    }

    /// Records `http_client_request_duration_seconds` for every call.
    #[derive(Clone, Debug)]
    pub struct ClientMetricsLayer {
        metrics: Option<Arc<HttpClientMetrics>>,
    }

    impl<S> Layer<S> for ClientMetricsLayer {
        type Service = ClientMetrics<S>;
        fn layer(&self, inner: S) -> ClientMetrics<S> {
            ClientMetrics {
                inner,
                metrics: self.metrics.clone(),
            }
        }
    }

    /// The service of [`ClientMetricsLayer`].
    #[derive(Clone, Debug)]
    pub struct ClientMetrics<S> {
        inner: S,
        metrics: Option<Arc<HttpClientMetrics>>,
    }

    impl<S, B, RB> Service<Request<B>> for ClientMetrics<S>
    where
        S: Service<Request<B>, Response = Response<RB>>,
    {
        type Response = Response<RB>;
        type Error = S::Error;
        type Future = ClientMetricsFuture<S::Future>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, req: Request<B>) -> Self::Future {
            let call = self.metrics.clone().map(|m| {
                // `server.address` is the host alone; the semantic
                // conventions keep the port in `server.port`.
                let server = req.uri().host().unwrap_or_default().to_owned();
                (m, req.method().as_str().to_owned(), server)
            });
            ClientMetricsFuture {
                fut: self.inner.call(req),
                call,
                start: Instant::now(),
            }
        }
    }

    type PendingCall = (Arc<HttpClientMetrics>, String, String);

    pin_project_lite::pin_project! {
        /// The future of [`ClientMetrics`].
        pub struct ClientMetricsFuture<F> {
            #[pin]
            fut: F,
            call: Option<PendingCall>,
            start: Instant,
        }
    }

    impl<F, RB, E> Future for ClientMetricsFuture<F>
    where
        F: Future<Output = Result<Response<RB>, E>>,
    {
        type Output = F::Output;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = self.project();
            let out = std::task::ready!(this.fut.poll(cx));
            if let Some((m, method, server)) = this.call.take() {
                let (status, error) = match &out {
                    Ok(r) => (Some(r.status().as_u16()), None),
                    Err(_) => (None, Some("transport")),
                };
                m.record(&method, &server, status, error, this.start.elapsed());
            }
            Poll::Ready(out)
        }
    }
}
