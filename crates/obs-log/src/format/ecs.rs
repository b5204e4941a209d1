//! Elastic Common Schema 8.11.

use obs_core::names::{field, resource};
use obs_core::{IdRecord, Resource};
use tracing_core::Level;

use super::{FlatKeys, LineParts, SchemaFormat, Spec, flat_line, kv, lower};

const TIMESTAMP: &str = "@timestamp";
const LEVEL: &str = "log.level";
const LOGGER: &str = "log.logger";
const TRACE_ID: &str = "trace.id";
const SPAN_ID: &str = "span.id";
const CORRELATION_ID: &str = "labels.correlation_id";
const FILE: &str = "log.origin.file.name";
const LINE: &str = "log.origin.file.line";
const ENVIRONMENT: &str = "service.environment";
const ECS_VERSION: &str = "ecs.version";

const KEYS: FlatKeys = FlatKeys {
    timestamp: TIMESTAMP,
    trace_id: TRACE_ID,
    span_id: SPAN_ID,
    correlation_id: CORRELATION_ID,
    file: FILE,
    line: LINE,
    tail: b",\"ecs.version\":\"8.11.0\"",
};

pub(crate) struct Ecs;

impl SchemaFormat for Ecs {
    const RESERVED: &'static [&'static str] = &[
        TIMESTAMP,
        LEVEL,
        LOGGER,
        field::MESSAGE,
        field::SPANS,
        TRACE_ID,
        SPAN_ID,
        CORRELATION_ID,
        FILE,
        LINE,
        resource::SERVICE_NAME,
        resource::SERVICE_VERSION,
        ENVIRONMENT,
        ECS_VERSION,
    ];

    #[inline]
    fn head(level: Level) -> (&'static str, &'static str, &'static str) {
        (LEVEL, lower(level), LOGGER)
    }

    fn resource(out: &mut Vec<u8>, r: &Resource) {
        kv(out, resource::SERVICE_NAME, r.service_name());
        if let Some(v) = r.service_version() {
            kv(out, resource::SERVICE_VERSION, v);
        }
        if let Some(e) = r.environment() {
            kv(out, ENVIRONMENT, e);
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
