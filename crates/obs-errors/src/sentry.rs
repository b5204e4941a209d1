//! Forwarding reports to the official [`sentry`] crate.
//!
//! [`SentrySink`] turns each [`Report`] into a `sentry::protocol::Event`
//! (exception chain with the stack trace, breadcrumbs, user, request,
//! tags, trace context, release, environment, fingerprint, occurrence
//! count) and hands it to a `sentry::Hub`, whose client and transport —
//! configured by the application with `sentry::init` or
//! `sentry::Client::with_options` — send it. This crate enables no sentry
//! transport itself: pick one (`reqwest`, `ureq`, `curl`) in your own
//! `sentry` dependency.

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
            unconfirmed: 0,
        }
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
        self.hub.capture_event(to_event(report));
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
