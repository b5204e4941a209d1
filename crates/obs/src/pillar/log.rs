//! The log pillar (`obs-log`): JSON lines, the runtime log level (and its
//! admin endpoint), the log writer's self-metrics, its panic hook and its
//! last-of-all drain at shutdown.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use super::{Lookup, Parts, Pillar, Shared};
use crate::instance::lock;
use crate::{Config, Error, Obs, ShutdownReport};

pub(crate) type Settings = obs_log::Config;

impl super::Settings for obs_log::Config {
    fn from_lookup(lookup: Lookup<'_>) -> Result<Self, Error> {
        Ok(obs_log::Config::from_lookup(lookup)?)
    }
    fn defaults() -> Self {
        obs_log::Config::new()
    }
    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("log_filter", &self.directive());
    }
}

pub(crate) struct State {
    reload: obs_log::ReloadHandle,
    #[cfg_attr(
        not(feature = "metrics"),
        allow(dead_code, reason = "published by the self-metrics")
    )]
    stats: obs_log::LogStats,
    guard: Mutex<Option<obs_log::LogGuard>>,
    /// JSON lines: every line written in a span carries its fields.
    #[cfg_attr(
        not(feature = "http"),
        allow(dead_code, reason = "read by the server stack's access line")
    )]
    json: bool,
}

impl Pillar for State {
    type Settings = Settings;

    fn init(settings: Settings, shared: &Shared<'_>, layers: &mut Parts) -> Result<Self, Error> {
        // The log directive filters log lines only (a per-layer filter): a
        // quiet log level must not switch spans off for the tracer, nor
        // breadcrumbs for error capture.
        let json = settings.format_kind() == obs_log::Format::Json;
        let (layer, handles) = obs_log::layer(
            settings
                .resource(shared.resource.clone())
                .redactor(Some(shared.redactor.clone()))
                .per_layer_filter(true),
        )?;
        // Recorded values join the span's fields; the directive, when it has
        // span filters (an `EnvFilter` one), follows spans in and out.
        // The directive acts on span enter, exit and close only while it
        // has span filters: the fused layer asks it on each callback.
        let filter = handles.reload.filter();
        let lifecycle_filter = filter.clone();
        let callbacks = super::fused::SpanCallbacks {
            record: true,
            lifecycle: super::fused::Lifecycle::While(std::sync::Arc::new(move || {
                lifecycle_filter.acts_on_span_lifecycle()
            })),
        };
        layers.push(super::fused::Part::Log(layer, filter), callbacks);
        Ok(Self {
            reload: handles.reload,
            stats: handles.stats,
            guard: Mutex::new(Some(handles.guard)),
            json,
        })
    }

    #[cfg(feature = "http")]
    fn lines_carry_span_fields(&self) -> bool {
        self.json
    }

    #[cfg(feature = "metrics")]
    fn publish(&self, registry: &obs_metrics::Registry) -> Result<(), Error> {
        use obs_core::names::metric;
        let base = super::metrics::base;
        let stats = self.stats.clone();
        registry.callback_counter_family(
            base(metric::LOG_DROPPED),
            "Log lines dropped by the bounded writer, by level.",
            ["level"],
            move |e| {
                for (level, n) in stats.dropped_by_level().iter() {
                    e.emit([level.as_str()], n);
                }
            },
        )?;
        let stats = self.stats.clone();
        registry.callback_counter(
            base(metric::LOG_SUPPRESSED),
            "Log lines suppressed by the per-callsite rate limit.",
            move || stats.suppressed(),
        )?;
        let stats = self.stats.clone();
        registry.callback_counter(
            "obs_log_lines_written",
            "Log lines written to the sink.",
            move || stats.written(),
        )?;
        let stats = self.stats.clone();
        registry.callback_counter(
            "obs_log_write_errors",
            "Failures of the log sink (full disk, read-only or vanished directory), each counted once until a write succeeds again.",
            move || stats.write_errors(),
        )?;
        #[cfg(feature = "otlp-logs")]
        if let Some(otlp) = lock(&self.guard).as_ref().and_then(|g| g.otlp_stats()) {
            let stats = otlp.clone();
            registry.callback_counter(
                "obs_log_records_exported",
                "Log records exported over OTLP.",
                move || stats.exported(),
            )?;
            registry.callback_counter_family(
                "obs_log_records_dropped",
                "Log records dropped before OTLP export, by reason.",
                ["reason"],
                move |e| {
                    e.emit(["queue_full"], otlp.dropped_queue_full());
                    e.emit(["export_failed"], otlp.dropped_export_failed());
                    e.emit(["shutdown"], otlp.dropped_shutdown());
                },
            )?;
        }
        let stats = self.stats.clone();
        registry.callback_gauge(
            "obs_log_sink_failing",
            "1 while the log sink is failing and lines are being dropped, else 0.",
            move || if stats.sink_failing() { 1.0 } else { 0.0 },
        )?;
        Ok(())
    }

    /// Logs flush last of the panic hooks, so the error report of the panic
    /// is among the lines that reach the sink.
    fn install_panic_hook(&self) {
        if let Some(guard) = lock(&self.guard).as_ref() {
            guard.install_panic_hook(Duration::from_secs(2));
        }
    }

    /// Records of the `log` crate go through the same layer (`log-bridge`).
    fn install_global(&self) -> Result<(), Error> {
        #[cfg(feature = "log-bridge")]
        obs_log::init_log_bridge()?;
        Ok(())
    }

    /// The writer drains last, so that what the other pillars log on the
    /// way down is kept.
    fn shutdown(&self, left: &dyn Fn() -> Duration, report: &mut ShutdownReport) {
        let Some(guard) = lock(&self.guard).take() else {
            return;
        };
        let r = guard.shutdown(left());
        report.log_lines_written = r.written;
        report.log_lines_dropped = r.dropped.total();
        #[cfg(feature = "otlp-logs")]
        if let Some(o) = &r.otlp {
            report.log_records_exported = o.exported;
            report.log_records_dropped = o.dropped;
            if !o.completed {
                report
                    .problems
                    .push("log: OTLP log export did not finish in time".into());
            }
        }
        if !r.completed {
            report.completed = false;
            report
                .problems
                .push("log: the writer did not drain in time".into());
        }
    }
}

impl Config {
    /// Adjusts the log configuration.
    pub fn log(mut self, f: impl FnOnce(obs_log::Config) -> obs_log::Config) -> Self {
        self.log = f(self.log);
        self
    }
}

impl Obs {
    /// The log filter directive in force.
    pub fn log_level(&self) -> String {
        self.inner.log.reload.current()
    }

    /// Replaces the log filter directive at runtime (`warn,my_app=debug`). A
    /// bad directive is a typed error and leaves the old one in force.
    pub fn reload_log_level(&self, directive: &str) -> Result<(), Error> {
        self.inner.log.reload.set(directive)?;
        Ok(())
    }
}

/// `GET` and `PUT /loglevel` on the admin router.
#[cfg(feature = "http")]
mod admin {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::extract::{ConnectInfo, Request};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;

    use super::State;
    use crate::Obs;
    use crate::admin::MAX_ADMIN_BODY;
    use crate::http::{HttpPillar, NoLayer};

    impl HttpPillar for State {
        type Server = NoLayer;
        type Client = NoLayer;
        fn server_layer(&self) -> NoLayer {
            NoLayer::new()
        }
        fn standalone_server() -> NoLayer {
            NoLayer::new()
        }
        fn client_layer(&self) -> NoLayer {
            NoLayer::new()
        }
        fn standalone_client() -> NoLayer {
            NoLayer::new()
        }

        fn admin_routes(&self, obs: &Obs, router: Router) -> Router {
            let (get_obs, put_obs) = (obs.clone(), obs.clone());
            router.route(
                "/loglevel",
                get(move || async move { text(StatusCode::OK, get_obs.log_level() + "\n") })
                    .put(move |req: Request| async move { put_loglevel(&put_obs, req).await }),
            )
        }
    }

    fn text(status: StatusCode, body: String) -> Response {
        (
            status,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    }

    /// Why a mutating request is refused, if it is.
    fn refusal(obs: &Obs, headers: &HeaderMap) -> Option<Response> {
        let Some(token) = &obs.inner.admin_token else {
            return Some(text(
                StatusCode::FORBIDDEN,
                "changes through the admin router are disabled: set OBS_ADMIN_TOKEN \
                 (or Config::admin_token) and send Authorization: Bearer <token>\n"
                    .into(),
            ));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), token.expose().as_bytes())) {
            return None;
        }
        let mut r = text(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required\n".into(),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        Some(r)
    }

    /// Compares without an early exit, so response time does not reveal how
    /// much of a guessed token was right.
    fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    fn too_large() -> Response {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {MAX_ADMIN_BODY} bytes\n"),
        )
    }

    async fn put_loglevel(obs: &Obs, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        if let Some(refused) = refusal(obs, &parts.headers) {
            return refused;
        }
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_ADMIN_BODY as u64) {
            return too_large();
        }
        let Ok(body) = axum::body::to_bytes(body, MAX_ADMIN_BODY).await else {
            return too_large();
        };
        let Ok(directive) = std::str::from_utf8(&body) else {
            return text(
                StatusCode::BAD_REQUEST,
                "the directive is not UTF-8\n".into(),
            );
        };
        let directive = directive.trim();
        if let Err(e) = obs_log::ReloadHandle::validate(directive) {
            return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string());
        // Recorded before the change takes effect: the audit target passes
        // every filter, so even `off` cannot hide its own line.
        tracing::event!(
            target: obs_core::names::target::AUDIT,
            tracing::Level::WARN,
            admin.action = "loglevel.set",
            client.address = peer.as_deref().unwrap_or("unknown"),
            old = %obs.log_level(),
            new = directive,
            "log filter changed through /loglevel"
        );
        match obs.reload_log_level(directive) {
            Ok(()) => text(StatusCode::OK, obs.log_level() + "\n"),
            Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn token_compare() {
            assert!(constant_time_eq(b"abc", b"abc"));
            assert!(!constant_time_eq(b"abc", b"abd"));
            assert!(!constant_time_eq(b"abc", b"ab"));
        }
    }
}
