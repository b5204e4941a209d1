//! Serving scrapes: a tower [`MetricsService`] usable from axum and plain
//! hyper, content negotiation, gzip, and a standalone [`serve`].

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;

use crate::{Format, Registry};

/// Answers scrapes of a [`Registry`]: text 0.0.4 or OpenMetrics by the
/// request's `Accept`, gzip-compressed when `Accept-Encoding` allows it and
/// the `gzip` feature is on. Ignores the request path: route it where you
/// want it.
///
/// With axum:
/// ```
/// # #[cfg(feature = "axum")] {
/// let registry = obs_metrics::Registry::new();
/// let app: axum::Router = axum::Router::new().route_service("/metrics", registry.service());
/// # }
/// ```
/// With plain hyper, call [`MetricsService::respond`] from a `service_fn`.
#[derive(Debug, Clone)]
pub struct MetricsService {
    registry: Registry,
}

impl Registry {
    /// A tower service answering scrapes of this registry.
    pub fn service(&self) -> MetricsService {
        MetricsService {
            registry: self.clone(),
        }
    }
}

impl MetricsService {
    /// The scrape response for a request with these headers.
    ///
    /// ```
    /// let registry = obs_metrics::Registry::new();
    /// registry.counter("ticks", "Ticks.")?.inc();
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert(http::header::ACCEPT, "application/openmetrics-text; version=1.0.0".parse().unwrap());
    /// let resp = registry.service().respond(&headers);
    /// assert_eq!(resp.headers()["content-type"], obs_metrics::Format::OpenMetrics.content_type());
    /// # Ok::<(), obs_metrics::Error>(())
    /// ```
    pub fn respond(&self, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
        let format = Format::negotiate(accept);
        let text = self.registry.encode(format);
        let mut builder = Response::builder()
            .status(StatusCode::OK)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            )
            .header(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
        let mut body = Bytes::from(text);
        if accepts_gzip(headers)
            && let Some(gz) = gzip(&body)
        {
            body = gz;
            builder = builder.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        builder
            .body(Full::new(body))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }
}

/// Whether `Accept-Encoding` lists gzip (or `*`) with a non-zero quality.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    if !cfg!(feature = "gzip") {
        return false;
    }
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let q = it
                .filter_map(|p| p.trim().strip_prefix("q="))
                .next()
                .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q > 0.0
        })
}

#[cfg(feature = "gzip")]
fn gzip(body: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(body).ok()?;
    enc.finish().ok().map(Bytes::from)
}

#[cfg(not(feature = "gzip"))]
fn gzip(_: &[u8]) -> Option<Bytes> {
    None
}

impl<B> tower_service::Service<Request<B>> for MetricsService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        std::future::ready(Ok(self.respond(req.headers())))
    }
}

#[cfg(feature = "serve")]
pub use serve_impl::{MetricsServer, serve};

#[cfg(feature = "serve")]
mod serve_impl {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;
    use tokio::sync::{Semaphore, watch};

    use super::*;
    use crate::Error;

    /// Most scrape connections served at once; more wait in the kernel's backlog.
    const MAX_CONNECTIONS: usize = 64;

    /// A running standalone scrape endpoint; see [`serve`].
    #[derive(Debug)]
    pub struct MetricsServer {
        addr: SocketAddr,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl MetricsServer {
        /// The bound address (useful with port 0).
        pub fn local_addr(&self) -> SocketAddr {
            self.addr
        }

        /// Stops accepting connections, asks open (keep-alive) connections
        /// to close once their current request is answered, and waits for
        /// the accept loop to end (the port is free when this returns).
        pub async fn shutdown(mut self) {
            let _ = self.stop.send(true);
            let _ = (&mut self.task).await;
        }
    }

    impl Drop for MetricsServer {
        fn drop(&mut self) {
            let _ = self.stop.send(true);
        }
    }

    /// Serves `registry` at `GET /metrics` on its own port (HTTP/1.1), in a
    /// task of the current tokio runtime; other paths get 404.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), obs_metrics::Error> {
    /// let registry = obs_metrics::Registry::new();
    /// let server = obs_metrics::serve(registry, "127.0.0.1:0".parse().unwrap()).await?;
    /// println!("scrape http://{}/metrics", server.local_addr());
    /// server.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn serve(registry: Registry, addr: SocketAddr) -> Result<MetricsServer, Error> {
        let err = |source| Error::Serve {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(err)?;
        let local = listener.local_addr().map_err(err)?;
        let (stop, mut stopped) = watch::channel(false);
        let service = registry.service();
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let task = tokio::spawn(async move {
            loop {
                let permit = tokio::select! {
                    _ = stopped.changed() => break,
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                };
                let stream = tokio::select! {
                    _ = stopped.changed() => break,
                    r = listener.accept() => match r {
                        Ok((s, _)) => s,
                        // Transient accept errors (EMFILE, aborted handshakes):
                        // keep serving, without spinning on them.
                        Err(_) => {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let service = service.clone();
                let mut conn_stopped = stopped.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let resp = if req.uri().path() == "/metrics" {
                            service.respond(req.headers())
                        } else {
                            let mut r = Response::new(Full::new(Bytes::from_static(
                                b"not found; metrics are at /metrics\n",
                            )));
                            *r.status_mut() = StatusCode::NOT_FOUND;
                            r
                        };
                        std::future::ready(Ok::<_, Infallible>(resp))
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = conn_stopped.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                    drop(permit);
                });
            }
        });
        Ok(MetricsServer {
            addr: local,
            stop,
            task,
        })
    }
}
