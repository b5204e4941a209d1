//! Forwarding reports to the official [`sentry`] crate.
//!
//! [`SentrySink`] turns each [`Report`] into a `sentry::protocol::Event`
//! (exception chain with the stack trace, breadcrumbs, user, request,
//! tags, trace context, release, environment, fingerprint, occurrence
//! count) and hands it to a `sentry::Hub`, whose client and transport —
//! configured by the application with `sentry::init` or
//! `sentry::Client::with_options` — send it. With the `sentry-transport`
//! feature, [`SentrySink::from_lookup`] builds the client itself from
//! `SENTRY_DSN`, `SENTRY_ENVIRONMENT`, `SENTRY_RELEASE` and
//! `SENTRY_SAMPLE_RATE`, sending over a blocking `ureq` transport with
//! rustls (no OpenSSL); without it this crate enables no transport: pick one
//! (`reqwest`, `ureq`, `curl`) in your own `sentry` dependency.

use std::sync::Arc;
use std::time::Duration;

use sentry::protocol::{self, Context, Event, Map, Value};
use tracing_core::Level;

use crate::report::{Mechanism, Report};
use crate::{Error, Sink};

/// A sink forwarding reports to a `sentry::Hub`.
///
/// ```
/// use std::sync::Arc;
/// use obs_errors::{Config, Reporter, sentry::SentrySink};
/// let hub = Arc::new(sentry::Hub::new(None, Arc::new(sentry::Scope::default())));
/// let reporter = Reporter::builder(Config::default()).sink(SentrySink::new(hub)).build()?;
/// # let _ = reporter;
/// # Ok::<(), obs_errors::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SentrySink {
    hub: Arc<sentry::Hub>,
    flush_timeout: Duration,
    /// `SENTRY_ENVIRONMENT`: wins over the resource's environment.
    environment: Option<String>,
    /// `SENTRY_RELEASE`: wins over the resource's service version.
    release: Option<String>,
    /// Reports handed to the sentry transport since its last confirmed
    /// flush: the transport drops envelopes silently when its own queue is
    /// full, so a failed flush says how many may be lost.
    unconfirmed: u64,
}

impl SentrySink {
    /// A sink sending through `hub`.
    pub fn new(hub: Arc<sentry::Hub>) -> Self {
        Self {
            hub,
            flush_timeout: Duration::from_secs(5),
            environment: None,
            release: None,
            unconfirmed: 0,
        }
    }

    /// A sink configured from the environment, the way Sentry's own SDKs
    /// read it: `None` when `SENTRY_DSN` is unset or empty.
    ///
    /// - `SENTRY_DSN`: where events go (a malformed DSN is a typed error;
    ///   the error never repeats the DSN's key);
    /// - `SENTRY_ENVIRONMENT`, `SENTRY_RELEASE`: override the environment
    ///   and release taken from the resource;
    /// - `SENTRY_SAMPLE_RATE`: the share of error events sent, `0.0`–`1.0`
    ///   (default `1.0`).
    ///
    /// The sink owns its own client and hub (nothing global is touched, no
    /// Sentry integration or panic handler is installed: obs's reporter
    /// captures panics itself), sending through a blocking transport on
    /// the sentry crate's own thread.
    ///
    /// ```
    /// use obs_errors::sentry::SentrySink;
    /// assert!(SentrySink::from_lookup(|_| None)?.is_none());
    /// let sink = SentrySink::from_lookup(|k| match k {
    ///     "SENTRY_DSN" => Some("https://public@sentry.example.com/42".into()),
    ///     "SENTRY_SAMPLE_RATE" => Some("0.5".into()),
    ///     _ => None,
    /// })?;
    /// assert!(sink.is_some());
    /// let bad = SentrySink::from_lookup(|k| (k == "SENTRY_SAMPLE_RATE").then(|| "2".into()));
    /// assert!(bad.is_err());
    /// # Ok::<(), obs_errors::Error>(())
    /// ```
    #[cfg(feature = "sentry-transport")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentry-transport")))]
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, Error> {
        Ok(Self::from_settings(&SentrySettings::from_lookup(lookup)?))
    }

    /// A sink built from settings read earlier (see [`SentrySettings`]);
    /// `None` when they hold no DSN.
    #[cfg(feature = "sentry-transport")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentry-transport")))]
    pub fn from_settings(settings: &SentrySettings) -> Option<Self> {
        let dsn = settings.dsn.clone()?;
        let mut options = sentry::ClientOptions::new().sample_rate(settings.sample_rate);
        options.dsn = Some(dsn);
        options.environment = settings.environment.clone().map(Into::into);
        options.release = settings.release.clone().map(Into::into);
        // Reports carry obs's own stack traces and breadcrumbs; the client
        // adds nothing of its own.
        options.default_integrations = false;
        options.transport = Some(Arc::new(sentry::transports::DefaultTransportFactory));
        let client = sentry::Client::from(options);
        let hub = Arc::new(sentry::Hub::new(
            Some(Arc::new(client)),
            Arc::new(sentry::Scope::default()),
        ));
        let mut sink = Self::new(hub);
        sink.environment = settings.environment.clone();
        sink.release = settings.release.clone();
        Some(sink)
    }

    /// [`from_lookup`](Self::from_lookup) on the process environment.
    #[cfg(feature = "sentry-transport")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentry-transport")))]
    pub fn from_env() -> Result<Option<Self>, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// A sink sending through the process's main hub (the one `sentry::init` configures).
    pub fn main_hub() -> Self {
        Self::new(sentry::Hub::main())
    }

    /// How long [`Sink::flush`] waits for the sentry transport (default 5 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }
}

impl Sink for SentrySink {
    fn name(&self) -> &str {
        "sentry"
    }

    fn send(&mut self, report: &Report) -> Result<(), Error> {
        if self.hub.client().is_none() {
            return Err(Error::Sink {
                sink: "sentry".into(),
                reason: "the hub has no client bound".into(),
            });
        }
        // The transport queues the envelope and returns: a slow or hung
        // Sentry endpoint never holds the delivery thread here.
        let mut event = to_event(report);
        if let Some(e) = &self.environment {
            event.environment = Some(e.clone().into());
        }
        if let Some(r) = &self.release {
            event.release = Some(r.clone().into());
        }
        self.hub.capture_event(event);
        self.unconfirmed += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        match self.hub.client() {
            Some(c) if !c.flush(Some(self.flush_timeout)) => Err(Error::Sink {
                sink: "sentry".into(),
                reason: format!(
                    "transport not drained within {:?}: up to {} reports not confirmed delivered",
                    self.flush_timeout, self.unconfirmed
                ),
            }),
            _ => {
                self.unconfirmed = 0;
                Ok(())
            }
        }
    }
}

/// `SENTRY_DSN`: where the sink sends events.
pub const ENV_DSN: &str = "SENTRY_DSN";
/// `SENTRY_ENVIRONMENT`: the environment tag of every event.
pub const ENV_ENVIRONMENT: &str = "SENTRY_ENVIRONMENT";
/// `SENTRY_RELEASE`: the release of every event.
pub const ENV_RELEASE: &str = "SENTRY_RELEASE";
/// `SENTRY_SAMPLE_RATE`: the share of error events sent, `0.0`–`1.0`.
pub const ENV_SAMPLE_RATE: &str = "SENTRY_SAMPLE_RATE";

/// The Sentry settings read from the environment: validated when read,
/// turned into a client only by [`SentrySink::from_settings`]. Its `Debug`
/// output never shows the DSN's key.
#[cfg(feature = "sentry-transport")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentry-transport")))]
#[derive(Clone)]
pub struct SentrySettings {
    dsn: Option<sentry::types::Dsn>,
    environment: Option<String>,
    release: Option<String>,
    sample_rate: f32,
}

/// No DSN (nothing is sent), every event sampled.
#[cfg(feature = "sentry-transport")]
impl Default for SentrySettings {
    fn default() -> Self {
        Self {
            dsn: None,
            environment: None,
            release: None,
            sample_rate: 1.0,
        }
    }
}

#[cfg(feature = "sentry-transport")]
impl std::fmt::Debug for SentrySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentrySettings")
            .field("dsn_host", &self.dsn.as_ref().map(|d| d.host().to_owned()))
            .field("environment", &self.environment)
            .field("release", &self.release)
            .field("sample_rate", &self.sample_rate)
            .finish()
    }
}

#[cfg(feature = "sentry-transport")]
impl SentrySettings {
    /// Reads `SENTRY_DSN`, `SENTRY_ENVIRONMENT`, `SENTRY_RELEASE` and
    /// `SENTRY_SAMPLE_RATE` through `lookup`; a bad value is a typed error
    /// naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let bad = |var: &str, value: &str, reason: &str| Error::Env {
            var: var.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let non_empty = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let dsn = match non_empty(ENV_DSN) {
            None => None,
            // The DSN's public key is a credential: the error names the
            // variable and the reason, never the value.
            Some(v) => Some(
                v.parse::<sentry::types::Dsn>()
                    .map_err(|e| bad(ENV_DSN, "<redacted>", &format!("not a Sentry DSN ({e})")))?,
            ),
        };
        let sample_rate = match non_empty(ENV_SAMPLE_RATE) {
            None => 1.0,
            Some(v) => match v.parse::<f32>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    return Err(bad(
                        ENV_SAMPLE_RATE,
                        &v,
                        "expected a number from 0.0 to 1.0",
                    ));
                }
            },
        };
        Ok(Self {
            dsn,
            environment: non_empty(ENV_ENVIRONMENT),
            release: non_empty(ENV_RELEASE),
            sample_rate,
        })
    }

    /// Whether a DSN is set (the sink sends nowhere without one).
    pub fn is_enabled(&self) -> bool {
        self.dsn.is_some()
    }
}

fn level(level: Level, mechanism: Mechanism) -> sentry::Level {
    if mechanism == Mechanism::Panic {
        return sentry::Level::Fatal;
    }
    match level {
        Level::ERROR => sentry::Level::Error,
        Level::WARN => sentry::Level::Warning,
        Level::INFO => sentry::Level::Info,
        _ => sentry::Level::Debug,
    }
}

/// Converts a report into a Sentry event.
///
/// The exception list holds the `source()` chain, root cause first and the
/// reported error last (Sentry's order), the last one carrying the stack
/// trace (oldest frame first) and the mechanism (`panic` is unhandled).
pub fn to_event(r: &Report) -> Event<'static> {
    let mut ev = Event {
        event_id: sentry::types::Uuid::parse_str(&r.event_id)
            .unwrap_or_else(|_| sentry::types::Uuid::from_u128(obs_core::rng::next_u128())),
        level: level(r.level, r.mechanism),
        fingerprint: vec![r.fingerprint.clone().into()].into(),
        timestamp: r.timestamp,
        release: r.release.clone().map(Into::into),
        environment: r.resource.environment().map(|e| e.to_owned().into()),
        logger: Some("obs_errors".into()),
        ..Event::default()
    };
    let mut values: Vec<protocol::Exception> = r
        .chain
        .iter()
        .rev()
        .map(|c| protocol::Exception {
            ty: c.error_type.clone(),
            value: Some(c.message.clone()),
            ..Default::default()
        })
        .collect();
    let stacktrace = r.stacktrace.as_ref().and_then(|s| {
        let frames = s
            .frames()
            .iter()
            .map(|f| protocol::Frame {
                function: Some(f.function.clone()),
                filename: f.file.clone(),
                lineno: f.line.map(u64::from),
                in_app: Some(f.in_app),
                ..Default::default()
            })
            .collect();
        protocol::Stacktrace::from_frames_reversed(frames)
    });
    values.push(protocol::Exception {
        ty: r.error_type.clone(),
        value: Some(r.message.clone()),
        stacktrace,
        mechanism: Some(protocol::Mechanism {
            ty: r.mechanism.as_str().to_owned(),
            handled: Some(r.mechanism != Mechanism::Panic),
            ..Default::default()
        }),
        ..Default::default()
    });
    ev.exception = values.into();
    if let Some(l) = &r.location {
        ev.culprit = Some(l.to_string());
    }
    ev.breadcrumbs = r
        .breadcrumbs
        .iter()
        .map(|b| protocol::Breadcrumb {
            timestamp: b.timestamp,
            ty: "default".into(),
            category: Some(b.target.clone()),
            level: level(b.level, Mechanism::Event),
            message: Some(b.message.clone()),
            data: b
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        })
        .collect::<Vec<_>>()
        .into();
    if let Some(u) = &r.user {
        ev.user = Some(protocol::User {
            id: u.id.clone(),
            email: u.email.clone(),
            username: u.username.clone(),
            ip_address: u.ip_address.as_deref().and_then(|ip| ip.parse().ok()),
            ..Default::default()
        });
    }
    if let Some(req) = &r.request {
        ev.request = Some(protocol::Request {
            method: Some(req.method.clone()),
            headers: req.headers.iter().cloned().collect(),
            ..Default::default()
        });
        if let Some(route) = &req.route {
            ev.transaction = Some(format!("{} {route}", req.method));
        }
    }
    let mut tags: Map<String, String> = r.tags.iter().cloned().collect();
    tags.insert("service".into(), r.resource.service_name().to_owned());
    tags.insert("mechanism".into(), r.mechanism.as_str().to_owned());
    if let Some(c) = r.correlation_id() {
        tags.insert(obs_core::names::field::CORRELATION_ID.into(), c.to_owned());
    }
    if let Some(t) = r.trace_id() {
        tags.insert(obs_core::names::field::TRACE_ID.into(), t);
    }
    ev.tags = tags;
    let mut extra: Map<String, Value> = r
        .extra
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    extra.insert("count".into(), Value::from(r.count));
    if let Some(t) = &r.thread {
        extra.insert("thread".into(), Value::String(t.clone()));
    }
    ev.extra = extra;
    if let Some(ids) = &r.ids
        && let (Some(t), Some(s)) = (ids.trace_id, ids.span_id)
    {
        ev.contexts.insert(
            "trace".into(),
            Context::Trace(Box::new(protocol::TraceContext {
                trace_id: t.to_bytes().into(),
                span_id: s.to_bytes().into(),
                ..Default::default()
            })),
        );
    }
    ev
}
