//! Run with: `cargo run -p examples --bin grpc_server`, then in another
//! terminal `cargo run -p examples --bin grpc_client`.
//!
//! A tonic server with gRPC's standard health service
//! (`grpc.health.v1.Health`, from `tonic-health`) behind
//! `obs.grpc_server_layer()`: one server span per call named
//! `grpc.health.v1.Health/Check` (or `/Watch`) with the RPC semantic
//! conventions, its status read from the trailers; a `Watch` stream is one
//! span until the client lets go of it (`CANCELLED`, not a server error).
//! `rpc_server_call_duration_seconds` is on the admin port's `/metrics`, and
//! every call writes one access line (`"message":"rpc finished"`) with its
//! method and status. With `OTEL_EXPORTER_OTLP_ENDPOINT` set for both
//! processes, the client's spans and these are one trace.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HOST` | `127.0.0.1` | address both listeners bind |
//! | `GRPC_PORT` | `50051` | gRPC port (`0` picks a free one) |
//! | `ADMIN_PORT` | `9465` | admin port: `/metrics` and the probes (`0` picks a free one) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_*`, `OBS_*` | | read by `obs::Config::from_env` |
//!
//! A call whose metadata carries `x-example-delay-ms: N` is answered only
//! after N milliseconds (at most 10 s): the example's slow call, which the
//! client uses to show a call that runs past its deadline.
//!
//! At startup it logs one line `"message":"grpc server listening"` with
//! `grpc.addr` and `admin.addr`; SIGTERM or Ctrl-C stops it, flushing obs.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

/// The service name the health service reports on besides the server (`""`).
const ORDERS: &str = "obs.example.Orders";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let obs = obs::init(obs::Config::from_env()?.service("grpc-server"))?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = env_or("GRPC_PORT", 50051)?;
    let admin_port: u16 = env_or("ADMIN_PORT", 9465)?;

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(ORDERS, ServingStatus::Serving)
        .await;

    let grpc = TcpListener::bind((host.as_str(), port)).await?;
    let admin = TcpListener::bind((host.as_str(), admin_port)).await?;
    tracing::info!(
        grpc.addr = %grpc.local_addr()?,
        admin.addr = %admin.local_addr()?,
        "grpc server listening"
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let admin_router = obs.admin_router();
    let mut admin_stopped = stopped.clone();
    let admin_task = tokio::spawn(async move {
        axum::serve(admin, admin_router)
            .with_graceful_shutdown(async move {
                let _ = admin_stopped.wait_for(|s| *s).await;
            })
            .await
    });
    let mut grpc_stopped = stopped;
    let server = tonic::transport::Server::builder()
        // Every call of every service: span, metrics, correlation id, access line.
        .layer(obs.grpc_server_layer())
        // Inside obs's layer, so the server span covers the wait.
        .layer(tower::layer::layer_fn(Slow))
        .add_service(health)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc),
            async move {
                let _ = grpc_stopped.wait_for(|s| *s).await;
            },
        );
    let server = tokio::spawn(server);

    let signal = shutdown_signal().await;
    tracing::info!(signal, "grpc server stopping");
    let _ = stop.send(true);
    // A `Watch` stream stays open until its client goes; do not wait forever.
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    let _ = admin_task.await;
    let report = obs.shutdown(Duration::from_secs(5)).await;
    #[allow(
        clippy::print_stderr,
        reason = "logs are shut down: the report goes to stderr"
    )]
    {
        eprintln!("obs shutdown: {report}");
    }
    Ok(())
}

/// The metadata key that makes a call slow (milliseconds).
const DELAY: &str = "x-example-delay-ms";

/// Waits `x-example-delay-ms` (capped at 10 s) before passing a call on.
#[derive(Clone)]
struct Slow<S>(S);

impl<S, B> tower::Service<http::Request<B>> for Slow<S>
where
    S: tower::Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let delay = req
            .headers()
            .get(DELAY)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .map(|ms| Duration::from_millis(ms.min(10_000)));
        // The service that was polled ready answers; a clone takes its place.
        let fresh = self.0.clone();
        let mut ready = std::mem::replace(&mut self.0, fresh);
        Box::pin(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            ready.call(req).await
        })
    }
}

fn env_or<T: std::str::FromStr>(var: &str, default: T) -> Result<T, String> {
    match std::env::var(var) {
        Ok(v) => v.parse().map_err(|_| format!("{var}={v:?} is not valid")),
        Err(_) => Ok(default),
    }
}

/// Completes on SIGTERM or Ctrl-C and says which.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
