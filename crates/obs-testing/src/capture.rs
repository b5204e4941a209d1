//! A `tracing` layer that captures every event with its fields and the ids
//! resolved from the obs-core [`IdRecord`]s of its span scope — what any log
//! layer would see. Pillars use it to prove their ids reach log lines without
//! depending on `obs-log`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use obs_core::IdRecord;
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// One captured event.
#[derive(Clone, Debug, PartialEq)]
pub struct CapturedEvent {
    /// The event's level.
    pub level: Level,
    /// The event's target.
    pub target: String,
    /// The `message` field, if any.
    pub message: Option<String>,
    /// Every other field, formatted with `Display` for strings and `Debug` otherwise.
    pub fields: BTreeMap<String, String>,
    /// Names of the enclosing spans, outermost first.
    pub spans: Vec<String>,
    /// The ids resolved from the span scope.
    pub ids: Option<IdRecord>,
}

impl CapturedEvent {
    /// The correlation id as a string, if the scope carried one.
    pub fn correlation_id(&self) -> Option<String> {
        self.ids
            .as_ref()?
            .correlation_id
            .as_ref()
            .map(|c| c.as_str().to_owned())
    }

    /// The trace id as hex, if the scope carried one.
    pub fn trace_id(&self) -> Option<String> {
        self.ids.as_ref()?.trace_id.map(|t| t.to_string())
    }
}

/// The layer; clone it to keep a handle on the captured events.
///
/// ```
/// use obs_testing::capture::CaptureLayer;
/// use tracing_subscriber::layer::SubscriberExt;
/// let capture = CaptureLayer::new();
/// let subscriber = tracing_subscriber::registry().with(capture.clone());
/// tracing::subscriber::with_default(subscriber, || tracing::info!(user = "ann", "hello"));
/// let events = capture.events();
/// assert_eq!(events[0].message.as_deref(), Some("hello"));
/// assert_eq!(events[0].fields["user"], "ann");
/// ```
#[derive(Clone, Debug, Default)]
pub struct CaptureLayer {
    events: Arc<Mutex<Vec<CapturedEvent>>>,
}

impl CaptureLayer {
    /// A new, empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything captured so far.
    pub fn events(&self) -> Vec<CapturedEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets everything captured so far.
    pub fn clear(&self) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The captured events whose message equals `message`.
    pub fn with_message(&self, message: &str) -> Vec<CapturedEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.message.as_deref() == Some(message))
            .collect()
    }
}

struct FieldVisitor<'a> {
    message: &'a mut Option<String>,
    fields: &'a mut BTreeMap<String, String>,
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            *self.message = Some(value.to_owned());
        } else {
            self.fields
                .insert(field.name().to_owned(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let v = format!("{value:?}");
        if field.name() == "message" {
            *self.message = Some(v);
        } else {
            self.fields.insert(field.name().to_owned(), v);
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut message = None;
        let mut fields = BTreeMap::new();
        event.record(&mut FieldVisitor {
            message: &mut message,
            fields: &mut fields,
        });
        let (spans, ids) = match ctx.event_scope(event) {
            Some(scope) => {
                let spans: Vec<_> = scope.collect();
                let names = spans.iter().rev().map(|s| s.name().to_owned()).collect();
                (names, IdRecord::resolve(spans))
            }
            // Outside any span: the thread's scoped ids, as the log layer reads them.
            None => (Vec::new(), IdRecord::thread_scoped()),
        };
        let captured = CapturedEvent {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            message,
            fields,
            spans,
            ids,
        };
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(captured);
    }
}

/// An `io::Write` sink that keeps everything written, for log layers under
/// test; clones share the buffer.
///
/// ```
/// use std::io::Write;
/// let buf = obs_testing::capture::SharedBuf::default();
/// let mut w = buf.clone();
/// writeln!(w, r#"{{"level":"INFO"}}"#).unwrap();
/// assert_eq!(buf.json_lines()[0]["level"], "INFO");
/// ```
#[derive(Clone, Debug, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// Everything written so far, as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// Every line parsed as JSON; panics with the line when one is not JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The unsigned integer field `field` of every JSON line whose message
    /// is `message`, in order: which of a numbered series of lines were
    /// written. Panics when such a line lacks the field.
    ///
    /// ```
    /// use std::io::Write;
    /// let buf = obs_testing::capture::SharedBuf::default();
    /// let mut w = buf.clone();
    /// writeln!(w, r#"{{"message":"step","n":2}}"#).unwrap();
    /// writeln!(w, r#"{{"message":"other","n":3}}"#).unwrap();
    /// assert_eq!(buf.numbers_of("step", "n"), [2]);
    /// ```
    pub fn numbers_of(&self, message: &str, field: &str) -> Vec<u64> {
        self.json_lines()
            .iter()
            .filter(|l| l["message"] == message)
            .map(|l| {
                l[field]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no unsigned {field:?} in {l}"))
            })
            .collect()
    }
}

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
