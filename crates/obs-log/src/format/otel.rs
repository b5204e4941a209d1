//! The OpenTelemetry log data model's JSON (`Timestamp`, `SeverityText`,
//! `Body`, `Attributes`, …): fields always nest under `Attributes`.

use obs_core::names::{field, resource};
use obs_core::{IdRecord, Resource};
use tracing_core::Level;

use super::{LineParts, SchemaFormat, Spec, corr, kv};
use crate::json;

/// Where the OTel schema puts every field (its `fields_key`).
pub(super) const ATTRIBUTES: &str = "Attributes";
const BODY: &str = "Body";
const FILEPATH: &str = "code.filepath";
const LINENO: &str = "code.lineno";

pub(crate) struct Otel;

/// The OTel `SeverityNumber` of a level.
fn severity_number(level: Level) -> u8 {
    match level {
        Level::TRACE => 1,
        Level::DEBUG => 5,
        Level::INFO => 9,
        Level::WARN => 13,
        _ => 17,
    }
}

impl SchemaFormat for Otel {
    /// Nothing: every field nests under `Attributes`.
    const RESERVED: &'static [&'static str] = &[];

    #[inline]
    fn head(level: Level) -> (&'static str, &'static str, &'static str) {
        (field::LEVEL, level.as_str(), field::TARGET)
    }

    fn resource(out: &mut Vec<u8>, r: &Resource) {
        out.extend_from_slice(b",\"Resource\":{");
        json::quoted(out, resource::SERVICE_NAME);
        out.push(b':');
        json::quoted(out, r.service_name());
        if let Some(v) = r.service_version() {
            kv(out, resource::SERVICE_VERSION, v);
        }
        if let Some(e) = r.environment() {
            kv(out, resource::DEPLOYMENT_ENVIRONMENT_NAME, e);
        }
        kv(out, resource::SERVICE_INSTANCE_ID, r.instance_id());
        out.push(b'}');
    }

    #[inline]
    fn body(
        spec: &Spec,
        out: &mut Vec<u8>,
        p: &LineParts<'_>,
        path: &[u8],
        ids: Option<&IdRecord>,
    ) {
        let level = p.level;
        out.extend_from_slice(b"\"Timestamp\":\"");
        json::rfc3339(out, p.ts, spec.precision);
        out.extend_from_slice(b"\",\"SeverityText\":\"");
        out.extend_from_slice(level.as_str().as_bytes());
        out.extend_from_slice(b"\",\"SeverityNumber\":");
        json::int(out, severity_number(level));
        spec.message(out, BODY, p.msg);
        out.extend_from_slice(b",\"Attributes\":{");
        let start = out.len();
        out.extend_from_slice(p.fields);
        spec.path(out, field::SPANS, path);
        if let Some(r) = ids {
            corr(out, r, field::CORRELATION_ID);
        }
        spec.file_line(out, p, FILEPATH, LINENO);
        if out.get(start) == Some(&b',') {
            out.remove(start);
        }
        out.push(b'}');
        if let Some(r) = ids
            && let (Some(t), Some(s)) = (r.trace_id, r.span_id)
        {
            out.extend_from_slice(b",\"TraceId\":\"");
            out.extend_from_slice(t.to_hex().as_bytes());
            out.extend_from_slice(b"\",\"SpanId\":\"");
            out.extend_from_slice(s.to_hex().as_bytes());
            out.extend_from_slice(b"\",\"TraceFlags\":\"");
            out.extend_from_slice(r.trace_flags.to_hex().as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b",\"InstrumentationScope\":{\"Name\":");
        json::quoted(out, p.target);
        out.push(b'}');
    }
}
