//! The native schema: flat keys named by `obs_core::names`.

use obs_core::names::{field, resource};
use obs_core::{IdRecord, Resource};
use tracing_core::Level;

use super::{FlatKeys, LineParts, SchemaFormat, Spec, flat_line, kv};

/// Where a line's source location goes.
const FILE: &str = "file";
const LINE: &str = "line";

const KEYS: FlatKeys = FlatKeys {
    timestamp: field::TIMESTAMP,
    trace_id: field::TRACE_ID,
    span_id: field::SPAN_ID,
    correlation_id: field::CORRELATION_ID,
    file: FILE,
    line: LINE,
    tail: b"",
};

pub(crate) struct Native;

impl SchemaFormat for Native {
    const RESERVED: &'static [&'static str] = &[
        field::TIMESTAMP,
        field::LEVEL,
        field::TARGET,
        field::MESSAGE,
        field::SPANS,
        field::TRACE_ID,
        field::SPAN_ID,
        field::CORRELATION_ID,
        FILE,
        LINE,
        resource::SERVICE_NAME,
        resource::SERVICE_VERSION,
        resource::DEPLOYMENT_ENVIRONMENT_NAME,
    ];

    #[inline]
    fn head(level: Level) -> (&'static str, &'static str, &'static str) {
        (field::LEVEL, level.as_str(), field::TARGET)
    }

    fn resource(out: &mut Vec<u8>, r: &Resource) {
        kv(out, resource::SERVICE_NAME, r.service_name());
        if let Some(v) = r.service_version() {
            kv(out, resource::SERVICE_VERSION, v);
        }
        if let Some(e) = r.environment() {
            kv(out, resource::DEPLOYMENT_ENVIRONMENT_NAME, e);
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
        flat_line(spec, out, p, path, ids, &KEYS);
    }
}
