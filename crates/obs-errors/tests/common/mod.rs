//! Helpers shared by the integration tests (included with `mod common;`).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use obs_core::{CorrelationId, IdRecord, SpanId, TraceFlags, TraceId};

/// Writes trace and correlation ids into `span`'s record, as the trace and
/// correlate layers would. Returns (trace_id, span_id, correlation_id) as strings.
pub(crate) fn stamp_ids(span: &tracing::Span, correlation: &str) -> (String, String, String) {
    let (t, s) = (TraceId::random(), SpanId::random());
    let c = CorrelationId::parse(correlation).expect("valid correlation id");
    let id = span.id().expect("span is enabled");
    let c2 = c.clone();
    assert!(
        IdRecord::update_span_id(&id, move |r| {
            *r = IdRecord {
                correlation_id: Some(c2),
                ..IdRecord::with_trace(t, s, TraceFlags::SAMPLED)
            };
        }),
        "the default dispatcher must be built on Registry"
    );
    (t.to_string(), s.to_string(), c.as_str().to_owned())
}
