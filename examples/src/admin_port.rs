//! `ADMIN_PORT` for the examples that end on their own (`worker`,
//! `pipeline`): with it set, obs's admin router (`/metrics`, the probes,
//! `/loglevel`) is served on `HOST:ADMIN_PORT` while the program runs, and
//! after its run the program keeps serving until SIGTERM or Ctrl-C, so
//! Prometheus scrapes the final counters. Unset, nothing is served and the
//! program ends as soon as its work is done.

use std::net::SocketAddr;

/// Serves `obs.admin_router()` when `ADMIN_PORT` is set (`0` picks a free
/// port) and logs `"admin listening"` with the bound `admin.addr`.
pub(crate) async fn serve(obs: &obs::Obs) -> std::io::Result<Option<SocketAddr>> {
    let Ok(port) = std::env::var("ADMIN_PORT") else {
        return Ok(None);
    };
    let port: u16 = port.trim().parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("ADMIN_PORT={port:?}: {e}"),
        )
    })?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    let addr = listener.local_addr()?;
    let admin = obs
        .admin_router()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, admin).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    tracing::info!(admin.addr = %addr, "admin listening");
    Ok(Some(addr))
}

/// After the run: with the admin port open, waits for SIGTERM or Ctrl-C.
pub(crate) async fn linger(admin: Option<SocketAddr>) {
    if admin.is_none() {
        return;
    }
    tracing::info!("run finished; serving /metrics until SIGTERM or Ctrl-C");
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
