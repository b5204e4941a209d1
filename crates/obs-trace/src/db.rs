//! Database client spans per the OpenTelemetry database semantic conventions.

use obs_core::redact;

/// Builds a database client span (`otel.kind = client`).
///
/// The span is named `{operation} {collection}` (or just the operation) and
/// carries `db.system.name` (and the pre-1.30 `db.system`, which many
/// backends still read), `db.operation.name`, `db.collection.name` and,
/// when given, `db.query.text` after redaction (passwords, tokens and other
/// credentials in the text become `[REDACTED]`).
///
/// ```
/// use obs_trace::db::DbSpan;
/// let span = DbSpan::new("postgresql", "SELECT")
///     .collection("users")
///     .query("SELECT * FROM users WHERE api_key = 'sk_live_abcdefghijklmnopqrstuvwx'")
///     .start();
/// let _guard = span.enter();
/// // run the query here
/// ```
#[derive(Clone, Debug)]
pub struct DbSpan<'a> {
    system: &'a str,
    operation: &'a str,
    collection: Option<&'a str>,
    query: Option<&'a str>,
}

impl<'a> DbSpan<'a> {
    /// A span for `operation` (`SELECT`, `findAndModify`, …) on a database of
    /// kind `system` (`postgresql`, `sqlite`, `mongodb`, …).
    pub fn new(system: &'a str, operation: &'a str) -> Self {
        Self {
            system,
            operation,
            collection: None,
            query: None,
        }
    }

    /// The table or collection.
    pub fn collection(mut self, collection: &'a str) -> Self {
        self.collection = Some(collection);
        self
    }

    /// The query text; redacted before it is recorded.
    pub fn query(mut self, query: &'a str) -> Self {
        self.query = Some(query);
        self
    }

    /// The span name this builder gives.
    pub fn name(&self) -> String {
        match self.collection {
            Some(c) => format!("{} {c}", self.operation),
            None => self.operation.to_owned(),
        }
    }

    /// Creates the span (not entered).
    pub fn start(self) -> tracing::Span {
        let name = self.name();
        let span = tracing::info_span!(
            "db.client",
            otel.name = %name,
            otel.kind = "client",
            db.system.name = self.system,
            db.system = self.system,
            db.operation.name = self.operation,
            db.collection.name = tracing::field::Empty,
            db.query.text = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        if let Some(c) = self.collection {
            span.record("db.collection.name", c);
        }
        if let Some(q) = self.query {
            span.record("db.query.text", redact(q).as_ref());
        }
        span
    }
}

/// Marks `span` as failed with `error_type` (for example the driver's error
/// code or type name), per the semantic conventions.
pub fn record_error(span: &tracing::Span, error_type: &str) {
    span.record("error.type", error_type);
}
