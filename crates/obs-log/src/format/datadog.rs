//! Datadog's reserved attributes (`status`, `dd.trace_id`, …).

use obs_core::names::field;
use obs_core::{IdRecord, Resource};
use tracing_core::Level;

use super::{LineParts, SchemaFormat, Spec, corr, kv, lower};
use crate::json;

const STATUS: &str = "status";
const LOGGER: &str = "logger.name";
const FILE: &str = "file";
const LINE: &str = "line";
const SERVICE: &str = "service";
const DD_SERVICE: &str = "dd.service";
const DD_VERSION: &str = "dd.version";
const DD_ENV: &str = "dd.env";

pub(crate) struct Datadog;

impl SchemaFormat for Datadog {
    const RESERVED: &'static [&'static str] = &[
        field::TIMESTAMP,
        STATUS,
        LOGGER,
        field::MESSAGE,
        field::SPANS,
        "dd.trace_id",
        "dd.span_id",
        field::CORRELATION_ID,
        FILE,
        LINE,
        SERVICE,
        DD_SERVICE,
        DD_VERSION,
        DD_ENV,
    ];

    #[inline]
    fn head(level: Level) -> (&'static str, &'static str, &'static str) {
        (STATUS, lower(level), LOGGER)
    }

    fn resource(out: &mut Vec<u8>, r: &Resource) {
        let name = r.service_name();
        kv(out, SERVICE, name);
        kv(out, DD_SERVICE, name);
        if let Some(v) = r.service_version() {
            kv(out, DD_VERSION, v);
        }
        if let Some(e) = r.environment() {
            kv(out, DD_ENV, e);
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
                // Datadog correlates on the low 64 bits, in decimal.
                out.extend_from_slice(b",\"dd.trace_id\":\"");
                json::int(out, t.low_u64());
                out.extend_from_slice(b"\",\"dd.span_id\":\"");
                json::int(out, s.to_int());
                out.push(b'"');
            }
            corr(out, r, field::CORRELATION_ID);
        }
        spec.file_line(out, p, FILE, LINE);
    }
}
