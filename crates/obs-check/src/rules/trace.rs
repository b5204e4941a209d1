//! The trace rules: spans continuing the sent trace, the `traceresponse`
//! header.

use obs_core::{SpanId, TraceId};

use crate::http::{HttpError, Response};
use crate::otlp::Span;
use crate::report::{RuleResult, Status};

use super::Probe;

pub(super) fn spans_rule(
    spans: &[Span],
    main: &Probe,
    (requests, rejected): (u64, u64),
) -> RuleResult {
    let id = "trace.in_spans";
    let of_trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == main.tid).collect();
    if of_trace.is_empty() {
        let extra = match (requests, rejected) {
            (0, 0) => "; no export request arrived: is OTEL_EXPORTER_OTLP_ENDPOINT pointed at the checker, over OTLP/HTTP protobuf?".to_owned(),
            (_, 0) => String::new(),
            (_, r) => format!("; {r} export request(s) refused (the checker takes OTLP/HTTP protobuf on POST /v1/traces)"),
        };
        return RuleResult::new(
            id,
            Status::Fail,
            format!(
                "no span with the sent trace id arrived ({} spans received{extra})",
                spans.len()
            ),
        )
        .value(&main.tid);
    }
    match of_trace.iter().find(|s| s.parent_span_id == main.parent) {
        Some(s) => RuleResult::new(
            id,
            Status::Pass,
            format!(
                "{} span(s) continue the sent trace; {:?} is a child of the sent span",
                of_trace.len(),
                s.name
            ),
        ),
        None => RuleResult::new(
            id,
            Status::Fail,
            "spans carry the trace id, but none is a child of the sent span id",
        )
        .value(&main.parent),
    }
}

pub(super) fn traceresponse_rule(resp: &Result<Response, HttpError>, main: &Probe) -> RuleResult {
    let id = "trace.traceresponse";
    let Ok(r) = resp else {
        return RuleResult::new(id, Status::Fail, "the request failed");
    };
    let Some(v) = r.header("traceresponse") else {
        return RuleResult::new(
            id,
            Status::Pass,
            "no traceresponse header (optional, W3C Trace Context Level 2)",
        );
    };
    let parts: Vec<&str> = v.split('-').collect();
    let valid = parts.len() == 4
        && parts[0] == "00"
        && TraceId::from_hex(parts[1]).is_ok()
        && SpanId::from_hex(parts[2]).is_ok()
        && parts[3].len() == 2
        && parts[3]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if !valid {
        return RuleResult::new(
            id,
            Status::Fail,
            "traceresponse is not version-traceid-childid-flags",
        )
        .value(v);
    }
    if parts[1] != main.tid {
        return RuleResult::new(
            id,
            Status::Fail,
            "traceresponse names another trace than the sent traceparent",
        )
        .value(v);
    }
    if parts[2] == main.parent {
        return RuleResult::new(
            id,
            Status::Fail,
            "traceresponse names the caller's span, not the server's",
        )
        .value(v);
    }
    RuleResult::new(
        id,
        Status::Pass,
        "traceresponse names the sent trace and the server's span",
    )
}
