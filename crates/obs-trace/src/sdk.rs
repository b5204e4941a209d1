//! Run any `opentelemetry_sdk::trace::SpanExporter` — for example an
//! `opentelemetry-otlp` exporter with TLS, or a vendor exporter — behind
//! obs's bounded queue and exporter thread.
//!
//! The SDK exporter's future is driven by a single-threaded tokio runtime
//! owned by the exporter thread, so async clients (tonic, reqwest's async
//! client) work without a runtime in the application, and a hung exporter
//! cannot delay the application's shutdown beyond its timeout. Use the
//! async clients: the SDK's *blocking* HTTP clients refuse to run inside a
//! runtime.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use obs_core::Resource;
use opentelemetry::trace::{self as ot, TraceContextExt as _};
use opentelemetry::{Key, KeyValue as OtKeyValue, Value as OtValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::Error;
use crate::export::SpanExporter;
use crate::span::{FinishedSpan, KeyValue, SpanKind, Status, Value};

type Make<E> = Box<dyn FnOnce() -> Result<E, Error> + Send>;

enum State<E> {
    Pending(Make<E>),
    Ready(E),
    Failed,
}

/// Adapts an SDK exporter to [`SpanExporter`].
///
/// ```
/// use obs_trace::{TracerProvider, sdk::SdkExporter};
/// # #[derive(Debug)] struct MyExporter;
/// # impl opentelemetry_sdk::trace::SpanExporter for MyExporter {
/// #     async fn export(&self, _: Vec<opentelemetry_sdk::trace::SpanData>) -> opentelemetry_sdk::error::OTelSdkResult { Ok(()) }
/// # }
/// // Exporters that need a runtime while being built (tonic channels) are
/// // built lazily, inside the exporter thread's runtime.
/// let exporter = SdkExporter::lazy(|| Ok(MyExporter));
/// let provider = TracerProvider::builder().with_exporter(exporter).build()?;
/// # Ok::<(), obs_trace::Error>(())
/// ```
pub struct SdkExporter<E> {
    state: State<E>,
    rt: Option<tokio::runtime::Runtime>,
    resource_set: bool,
}

impl<E> fmt::Debug for SdkExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkExporter")
            .field("ready", &matches!(self.state, State::Ready(_)))
            .finish_non_exhaustive()
    }
}

impl<E: opentelemetry_sdk::trace::SpanExporter + 'static> SdkExporter<E> {
    /// Wraps a ready exporter.
    pub fn new(exporter: E) -> Self {
        Self {
            state: State::Ready(exporter),
            rt: None,
            resource_set: false,
        }
    }

    /// Builds the exporter on first use, inside the exporter thread's
    /// runtime.
    pub fn lazy(make: impl FnOnce() -> Result<E, Error> + Send + 'static) -> Self {
        Self {
            state: State::Pending(Box::new(make)),
            rt: None,
            resource_set: false,
        }
    }
}

fn ot_value(v: &Value) -> OtValue {
    match v {
        Value::Bool(b) => OtValue::Bool(*b),
        Value::I64(i) => OtValue::I64(*i),
        Value::F64(f) => OtValue::F64(*f),
        Value::Str(s) => OtValue::String(s.clone().into()),
    }
}

fn ot_kv(kv: &KeyValue) -> OtKeyValue {
    OtKeyValue::new(Key::from(kv.key.clone()), ot_value(&kv.value))
}

fn ot_context(
    trace_id: obs_core::TraceId,
    span_id: obs_core::SpanId,
    flags: obs_core::TraceFlags,
    remote: bool,
    state: &crate::TraceState,
) -> ot::SpanContext {
    ot::SpanContext::new(
        ot::TraceId::from_bytes(trace_id.to_bytes()),
        ot::SpanId::from_bytes(span_id.to_bytes()),
        ot::TraceFlags::new(flags.to_byte()),
        remote,
        state.as_str().parse().unwrap_or_default(),
    )
}

/// Converts a finished span to the SDK's `SpanData`.
pub fn to_span_data(s: &FinishedSpan) -> SpanData {
    let mut events = SpanEvents::default();
    events.events = s
        .events
        .iter()
        .map(|e| {
            ot::Event::new(
                e.name.clone(),
                e.time,
                e.attributes.iter().map(ot_kv).collect(),
                0,
            )
        })
        .collect();
    events.dropped_count = s.dropped_events;
    let mut links = SpanLinks::default();
    links.links = s
        .links
        .iter()
        .map(|l| {
            ot::Link::with_context(ot_context(
                l.trace_id,
                l.span_id,
                l.trace_flags,
                true,
                &l.trace_state,
            ))
        })
        .collect();
    SpanData {
        span_context: ot_context(s.trace_id, s.span_id, s.trace_flags, false, &s.trace_state),
        parent_span_id: s
            .parent_span_id
            .map(|p| ot::SpanId::from_bytes(p.to_bytes()))
            .unwrap_or(ot::SpanId::INVALID),
        parent_span_is_remote: s.parent_is_remote,
        span_kind: match s.kind {
            SpanKind::Internal => ot::SpanKind::Internal,
            SpanKind::Server => ot::SpanKind::Server,
            SpanKind::Client => ot::SpanKind::Client,
            SpanKind::Producer => ot::SpanKind::Producer,
            SpanKind::Consumer => ot::SpanKind::Consumer,
        },
        name: s.name.clone(),
        start_time: s.start,
        end_time: s.end,
        attributes: s.attributes.iter().map(ot_kv).collect(),
        dropped_attributes_count: s.dropped_attributes,
        events,
        links,
        status: match &s.status {
            Status::Unset => ot::Status::Unset,
            Status::Ok => ot::Status::Ok,
            Status::Error(m) => ot::Status::Error {
                description: m.clone(),
            },
        },
        instrumentation_scope: opentelemetry::InstrumentationScope::builder(Cow::Borrowed(s.scope))
            .build(),
    }
}

fn sdk_resource(r: &Resource) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder_empty()
        .with_attributes(
            r.iter()
                .map(|(k, v)| OtKeyValue::new(k.to_owned(), v.to_owned())),
        )
        .build()
}

impl<E: opentelemetry_sdk::trace::SpanExporter + 'static> SpanExporter for SdkExporter<E> {
    fn export(
        &mut self,
        batch: &[FinishedSpan],
        resource: &Resource,
        timeout: Duration,
    ) -> Result<(), Error> {
        if self.rt.is_none() {
            self.rt = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        Error::Export(format!("cannot build the exporter runtime: {e}"))
                    })?,
            );
        }
        let Some(rt) = &self.rt else {
            return Err(Error::Export("no runtime".into()));
        };
        if let State::Pending(_) = self.state {
            let State::Pending(make) = std::mem::replace(&mut self.state, State::Failed) else {
                return Err(Error::Export("exporter state".into()));
            };
            let _guard = rt.enter();
            self.state = State::Ready(make()?);
        }
        let State::Ready(exporter) = &mut self.state else {
            return Err(Error::Export("the SDK exporter could not be built".into()));
        };
        if !self.resource_set {
            exporter.set_resource(&sdk_resource(resource));
            self.resource_set = true;
        }
        let data: Vec<SpanData> = batch.iter().map(to_span_data).collect();
        let exporter = &*exporter;
        rt.block_on(async { tokio::time::timeout(timeout, exporter.export(data)).await })
            .map_err(|_| {
                Error::Export(format!(
                    "the SDK exporter did not finish within {timeout:?}"
                ))
            })?
            .map_err(|e| Error::Export(e.to_string()))
    }

    fn shutdown(&mut self) {
        if let State::Ready(e) = &self.state {
            let _guard = self.rt.as_ref().map(|rt| rt.enter());
            let _ = e.shutdown_with_timeout(Duration::from_secs(1));
        }
    }
}

/// Makes an OpenTelemetry `Context` carrying `cx` as its remote span, for
/// code that speaks the `opentelemetry` API.
pub fn to_otel_context(cx: &crate::SpanContext) -> opentelemetry::Context {
    opentelemetry::Context::new().with_remote_span_context(ot_context(
        cx.trace_id,
        cx.span_id,
        cx.trace_flags,
        true,
        &cx.trace_state,
    ))
}
