//! Google Cloud Logging's structured-log fields (`severity`,
//! `logging.googleapis.com/*`).

use obs_core::names::field;
use obs_core::{IdRecord, Resource};
use tracing_core::Level;

use super::{LineParts, SchemaFormat, Spec, corr};
use crate::json;

const SEVERITY: &str = "severity";
const SERVICE_CONTEXT: &str = "serviceContext";
const TRACE: &str = "logging.googleapis.com/trace";
const SPAN_ID: &str = "logging.googleapis.com/spanId";
const TRACE_SAMPLED: &str = "logging.googleapis.com/trace_sampled";
const SOURCE_LOCATION: &str = "logging.googleapis.com/sourceLocation";
const LABELS: &str = "logging.googleapis.com/labels";

pub(crate) struct Gcp;

impl SchemaFormat for Gcp {
    const RESERVED: &'static [&'static str] = &[
        field::TIMESTAMP,
        SEVERITY,
        field::MESSAGE,
        field::TARGET,
        field::SPANS,
        field::CORRELATION_ID,
        SERVICE_CONTEXT,
        TRACE,
        SPAN_ID,
        TRACE_SAMPLED,
        SOURCE_LOCATION,
        LABELS,
    ];

    #[inline]
    fn head(level: Level) -> (&'static str, &'static str, &'static str) {
        let severity = match level {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            _ => "DEBUG",
        };
        (SEVERITY, severity, field::TARGET)
    }

    fn resource(out: &mut Vec<u8>, r: &Resource) {
        out.extend_from_slice(b",\"serviceContext\":{\"service\":");
        json::quoted(out, r.service_name());
        if let Some(v) = r.service_version() {
            super::kv(out, "version", v);
        }
        out.push(b'}');
        if let Some(e) = r.environment() {
            out.extend_from_slice(b",\"logging.googleapis.com/labels\":{\"environment\":");
            json::quoted(out, e);
            out.push(b'}');
        }
    }

    #[inline]
    fn body(
        spec: &Spec,
        out: &mut Vec<u8>,
        p: &LineParts<'_>,
        path: &[u8],
        ids: Option<&IdRecord>,
    ) {
        spec.common_head(out, field::TIMESTAMP, p, path);
        if let Some(r) = ids {
            if let (Some(t), Some(s)) = (r.trace_id, r.span_id) {
                out.extend_from_slice(b",\"logging.googleapis.com/trace\":\"");
                if let Some(project) = &spec.gcp_project {
                    out.extend_from_slice(b"projects/");
                    json::escape_into(out, project);
                    out.extend_from_slice(b"/traces/");
                }
                out.extend_from_slice(t.to_hex().as_bytes());
                out.extend_from_slice(b"\",\"logging.googleapis.com/spanId\":\"");
                out.extend_from_slice(s.to_hex().as_bytes());
                out.extend_from_slice(b"\",\"logging.googleapis.com/trace_sampled\":");
                out.extend_from_slice(if r.trace_flags.is_sampled() {
                    b"true"
                } else {
                    b"false"
                });
            }
            corr(out, r, field::CORRELATION_ID);
        }
        if spec.file_line
            && let (Some(f), Some(l)) = (p.file, p.line)
        {
            out.extend_from_slice(b",\"logging.googleapis.com/sourceLocation\":{\"file\":");
            json::quoted(out, f);
            out.extend_from_slice(b",\"line\":\"");
            json::int(out, l);
            out.extend_from_slice(b"\"}");
        }
    }
}
