//! The `tracing-subscriber` layer and the line formatters.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use obs_core::redact::Redactor;
use obs_core::{IdRecord, Resource};
use tracing_core::callsite::Identifier;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Level, LevelFilter, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{Format, Precision, Schema, level_index};
use crate::filter::FilterState;
use crate::json::{self, Timestamp};
use crate::writer::{LogStats, Output};

const REDACTED: &str = obs_core::names::field::REDACTED;
/// Scratch buffers that grew past this are shrunk back after the event.
const SCRATCH_KEEP: usize = 64 * 1024;

// ------------------------------------------------------------------- spec

/// Everything about the shape of a line, shared with the writer thread
/// (which writes summary lines in the same shape).
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) schema: Schema,
    pub(crate) format: Format,
    pub(crate) precision: Precision,
    /// Where fields go; `None` = top level.
    pub(crate) fields_key: Option<String>,
    pub(crate) file_line: bool,
    pub(crate) span_path: bool,
    pub(crate) resource_json: Vec<u8>,
    pub(crate) gcp_project: Option<String>,
    pub(crate) ansi: bool,
}

/// Keys each schema writes at top level; a field with one of these names is
/// written as `fields.<name>` so a line never has duplicate keys.
fn reserved(schema: Schema) -> &'static [&'static str] {
    match schema {
        Schema::Native => &[
            "timestamp",
            "level",
            "target",
            "message",
            "spans",
            "trace_id",
            "span_id",
            "correlation_id",
            "file",
            "line",
            "service.name",
            "service.version",
            "deployment.environment.name",
        ],
        Schema::Otel => &[],
        Schema::Ecs => &[
            "@timestamp",
            "log.level",
            "log.logger",
            "message",
            "spans",
            "trace.id",
            "span.id",
            "labels.correlation_id",
            "log.origin.file.name",
            "log.origin.file.line",
            "service.name",
            "service.version",
            "service.environment",
            "ecs.version",
        ],
        Schema::Gcp => &[
            "timestamp",
            "severity",
            "message",
            "target",
            "spans",
            "correlation_id",
            "serviceContext",
            "logging.googleapis.com/trace",
            "logging.googleapis.com/spanId",
            "logging.googleapis.com/trace_sampled",
            "logging.googleapis.com/sourceLocation",
            "logging.googleapis.com/labels",
        ],
        Schema::Datadog => &[
            "timestamp",
            "status",
            "logger.name",
            "message",
            "spans",
            "dd.trace_id",
            "dd.span_id",
            "correlation_id",
            "file",
            "line",
            "service",
            "dd.service",
            "dd.version",
            "dd.env",
        ],
    }
}

fn render_resource(schema: Schema, r: Option<&Resource>) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(r) = r else { return out };
    let kv = |out: &mut Vec<u8>, k: &str, v: &str| {
        out.push(b',');
        json::quoted(out, k);
        out.push(b':');
        json::quoted(out, v);
    };
    let name = r.service_name();
    match schema {
        Schema::Native => {
            kv(&mut out, "service.name", name);
            if let Some(v) = r.service_version() {
                kv(&mut out, "service.version", v);
            }
            if let Some(e) = r.environment() {
                kv(&mut out, "deployment.environment.name", e);
            }
        }
        Schema::Otel => {
            out.extend_from_slice(b",\"Resource\":{");
            json::quoted(&mut out, "service.name");
            out.push(b':');
            json::quoted(&mut out, name);
            if let Some(v) = r.service_version() {
                kv(&mut out, "service.version", v);
            }
            if let Some(e) = r.environment() {
                kv(&mut out, "deployment.environment.name", e);
            }
            kv(&mut out, "service.instance.id", r.instance_id());
            out.push(b'}');
        }
        Schema::Ecs => {
            kv(&mut out, "service.name", name);
            if let Some(v) = r.service_version() {
                kv(&mut out, "service.version", v);
            }
            if let Some(e) = r.environment() {
                kv(&mut out, "service.environment", e);
            }
        }
        Schema::Gcp => {
            out.extend_from_slice(b",\"serviceContext\":{\"service\":");
            json::quoted(&mut out, name);
            if let Some(v) = r.service_version() {
                kv(&mut out, "version", v);
            }
            out.push(b'}');
            if let Some(e) = r.environment() {
                out.extend_from_slice(b",\"logging.googleapis.com/labels\":{\"environment\":");
                json::quoted(&mut out, e);
                out.push(b'}');
            }
        }
        Schema::Datadog => {
            kv(&mut out, "service", name);
            kv(&mut out, "dd.service", name);
            if let Some(v) = r.service_version() {
                kv(&mut out, "dd.version", v);
            }
            if let Some(e) = r.environment() {
                kv(&mut out, "dd.env", e);
            }
        }
    }
    out
}

/// Key names of a flat schema (see `Spec::flat_line`).
struct FlatKeys {
    timestamp: &'static [u8],
    trace_id: &'static str,
    span_id: &'static str,
    correlation_id: &'static str,
    file: &'static str,
    line: &'static str,
    /// Written last, before the resource fields.
    tail: &'static [u8],
}

const NATIVE_KEYS: FlatKeys = FlatKeys {
    timestamp: b"\"timestamp\":\"",
    trace_id: "trace_id",
    span_id: "span_id",
    correlation_id: "correlation_id",
    file: "file",
    line: "line",
    tail: b"",
};

const ECS_KEYS: FlatKeys = FlatKeys {
    timestamp: b"\"@timestamp\":\"",
    trace_id: "trace.id",
    span_id: "span.id",
    correlation_id: "labels.correlation_id",
    file: "log.origin.file.name",
    line: "log.origin.file.line",
    tail: b",\"ecs.version\":\"8.11.0\"",
};

impl Spec {
    #[allow(
        clippy::too_many_arguments,
        reason = "crate-internal constructor fed field by field from Config"
    )]
    pub(crate) fn new(
        schema: Schema,
        format: Format,
        precision: Precision,
        fields_key: Option<String>,
        file_line: bool,
        span_path: bool,
        resource: Option<&Resource>,
        gcp_project: Option<String>,
        ansi: bool,
    ) -> Self {
        let fields_key = if schema == Schema::Otel {
            Some("Attributes".to_owned())
        } else {
            fields_key
        };
        Self {
            schema,
            format,
            precision,
            fields_key,
            file_line,
            span_path,
            resource_json: render_resource(schema, resource),
            gcp_project,
            ansi,
        }
    }

    fn is_reserved(&self, name: &str) -> bool {
        self.format == Format::Json
            && self.fields_key.is_none()
            && reserved(self.schema).contains(&name)
    }

    /// A line written by obs-log itself (summaries), in the configured shape.
    pub(crate) fn internal_line(
        &self,
        buf: &mut Vec<u8>,
        level: Level,
        target: &str,
        message: &str,
        extra: &[(&str, u64)],
    ) {
        let mut fields = Vec::with_capacity(extra.len() * 24);
        for (k, v) in extra {
            match self.format {
                Format::Json => {
                    fields.push(b',');
                    json::quoted(&mut fields, k);
                    fields.push(b':');
                }
                _ => {
                    fields.push(b' ');
                    fields.extend_from_slice(k.as_bytes());
                    fields.push(b'=');
                }
            }
            json::int(&mut fields, *v);
        }
        let mut msg = Vec::new();
        match self.format {
            Format::Json => json::escape_into(&mut msg, message),
            _ => msg.extend_from_slice(message.as_bytes()),
        }
        let line = LineParts {
            ts: Timestamp::now(),
            level,
            target,
            file: None,
            line: None,
            msg: Some(&msg),
            fields: &fields,
            head: None,
        };
        match self.format {
            Format::Json => self.json_line(buf, &line, b"", None),
            _ => self.human_line(buf, &line, &[], &[], None),
        }
    }

    /// Assembles one JSON line. `fields` holds `,"k":v` fragments, `msg`
    /// the escaped message, `path` span names innermost first.
    fn json_line(&self, out: &mut Vec<u8>, p: &LineParts<'_>, path: &[u8], ids: Option<&IdRecord>) {
        let q = json::quoted;
        let level = p.level;
        out.push(b'{');
        match self.schema {
            Schema::Native => self.flat_line(out, p, path, ids, &NATIVE_KEYS),
            Schema::Otel => {
                out.extend_from_slice(b"\"Timestamp\":\"");
                json::rfc3339(out, p.ts, self.precision);
                out.extend_from_slice(b"\",\"SeverityText\":\"");
                out.extend_from_slice(level.as_str().as_bytes());
                out.extend_from_slice(b"\",\"SeverityNumber\":");
                json::int(out, severity_number(level));
                self.message(out, "Body", p.msg);
                out.extend_from_slice(b",\"Attributes\":{");
                let start = out.len();
                out.extend_from_slice(p.fields);
                self.path(out, "spans", path);
                if let Some(r) = ids {
                    corr(out, r, "correlation_id");
                }
                self.file_line(out, p, "code.filepath", "code.lineno");
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
                q(out, p.target);
                out.push(b'}');
            }
            Schema::Ecs => self.flat_line(out, p, path, ids, &ECS_KEYS),
            Schema::Gcp => {
                out.extend_from_slice(b"\"timestamp\":\"");
                json::rfc3339(out, p.ts, self.precision);
                self.level_target(out, p);
                self.message(out, "message", p.msg);
                self.fields(out, p.fields);
                self.path(out, "spans", path);
                if let Some(r) = ids {
                    if let (Some(t), Some(s)) = (r.trace_id, r.span_id) {
                        out.extend_from_slice(b",\"logging.googleapis.com/trace\":\"");
                        if let Some(project) = &self.gcp_project {
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
                    corr(out, r, "correlation_id");
                }
                if self.file_line
                    && let (Some(f), Some(l)) = (p.file, p.line)
                {
                    out.extend_from_slice(b",\"logging.googleapis.com/sourceLocation\":{\"file\":");
                    q(out, f);
                    out.extend_from_slice(b",\"line\":\"");
                    json::int(out, l);
                    out.extend_from_slice(b"\"}");
                }
            }
            Schema::Datadog => {
                out.extend_from_slice(b"\"timestamp\":\"");
                json::rfc3339(out, p.ts, self.precision);
                self.level_target(out, p);
                self.message(out, "message", p.msg);
                self.fields(out, p.fields);
                self.path(out, "spans", path);
                if let Some(r) = ids {
                    if let (Some(t), Some(s)) = (r.trace_id, r.span_id) {
                        // Datadog correlates on the low 64 bits, in decimal.
                        out.extend_from_slice(b",\"dd.trace_id\":\"");
                        json::int(out, t.low_u64());
                        out.extend_from_slice(b"\",\"dd.span_id\":\"");
                        json::int(out, s.to_int());
                        out.push(b'"');
                    }
                    corr(out, r, "correlation_id");
                }
                self.file_line(out, p, "file", "line");
            }
        }
        out.extend_from_slice(&self.resource_json);
        out.extend_from_slice(b"}\n");
    }

    /// The body of a schema whose fields, ids and file/line sit at the top
    /// level next to each other (native, ECS), with its key names.
    fn flat_line(
        &self,
        out: &mut Vec<u8>,
        p: &LineParts<'_>,
        path: &[u8],
        ids: Option<&IdRecord>,
        k: &FlatKeys,
    ) {
        out.extend_from_slice(k.timestamp);
        json::rfc3339(out, p.ts, self.precision);
        self.level_target(out, p);
        self.message(out, "message", p.msg);
        self.fields(out, p.fields);
        self.path(out, "spans", path);
        if let Some(r) = ids {
            hex_ids(out, r, k.trace_id, k.span_id);
            corr(out, r, k.correlation_id);
        }
        self.file_line(out, p, k.file, k.line);
        out.extend_from_slice(k.tail);
    }

    /// `","level":"INFO","target":"…"` (in the schema's names), from the
    /// callsite's pre-rendered copy when there is one.
    #[inline]
    fn level_target(&self, out: &mut Vec<u8>, p: &LineParts<'_>) {
        match p.head {
            Some(h) => out.extend_from_slice(h),
            None => self.render_level_target(out, p.level, p.target),
        }
    }

    /// What [`level_target`](Self::level_target) writes (not for the OTel
    /// schema, whose level and target are apart).
    fn render_level_target(&self, out: &mut Vec<u8>, level: Level, target: &str) {
        let (level_key, level_text, target_key): (&[u8], &str, &[u8]) = match self.schema {
            Schema::Native | Schema::Otel => (b"level", level.as_str(), b"target"),
            Schema::Ecs => (b"log.level", lower(level), b"log.logger"),
            Schema::Gcp => (
                b"severity",
                match level {
                    Level::ERROR => "ERROR",
                    Level::WARN => "WARNING",
                    Level::INFO => "INFO",
                    _ => "DEBUG",
                },
                b"target",
            ),
            Schema::Datadog => (b"status", lower(level), b"logger.name"),
        };
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(level_key);
        out.extend_from_slice(b"\":\"");
        out.extend_from_slice(level_text.as_bytes());
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(target_key);
        out.extend_from_slice(b"\":");
        json::quoted(out, target);
    }

    #[inline]
    fn message(&self, out: &mut Vec<u8>, key: &str, msg: Option<&[u8]>) {
        if let Some(m) = msg {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":\"");
            out.extend_from_slice(m);
            out.push(b'"');
        }
    }

    #[inline]
    fn fields(&self, out: &mut Vec<u8>, fields: &[u8]) {
        if fields.is_empty() {
            return;
        }
        match &self.fields_key {
            None => out.extend_from_slice(fields),
            Some(k) => {
                out.push(b',');
                json::quoted(out, k);
                out.extend_from_slice(b":{");
                out.extend_from_slice(&fields[1..]);
                out.push(b'}');
            }
        }
    }

    /// `,"key":[…]` from the pre-rendered `"outer","inner"` fragment.
    #[inline]
    fn path(&self, out: &mut Vec<u8>, key: &str, path: &[u8]) {
        if !self.span_path || path.is_empty() {
            return;
        }
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":[");
        out.extend_from_slice(path);
        out.push(b']');
    }

    #[inline]
    fn file_line(&self, out: &mut Vec<u8>, p: &LineParts<'_>, fk: &str, lk: &str) {
        if !self.file_line {
            return;
        }
        if let Some(f) = p.file {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(fk.as_bytes());
            out.extend_from_slice(b"\":");
            json::quoted(out, f);
        }
        if let Some(l) = p.line {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(lk.as_bytes());
            out.extend_from_slice(b"\":");
            json::int(out, l);
        }
    }

    /// Assembles one human line (compact) or block (pretty). `spans` holds
    /// `name{fields}` renderings, `ranges` their positions innermost first.
    fn human_line(
        &self,
        out: &mut Vec<u8>,
        p: &LineParts<'_>,
        spans: &[u8],
        ranges: &[(u32, u32)],
        ids: Option<&IdRecord>,
    ) {
        let (dim, reset, bold) = if self.ansi {
            ("\x1b[2m", "\x1b[0m", "\x1b[1m")
        } else {
            ("", "", "")
        };
        let colour = if self.ansi {
            match p.level {
                Level::ERROR => "\x1b[31m",
                Level::WARN => "\x1b[33m",
                Level::INFO => "\x1b[32m",
                Level::DEBUG => "\x1b[34m",
                _ => "\x1b[35m",
            }
        } else {
            ""
        };
        let pretty = self.format == Format::Pretty;
        if pretty {
            out.extend_from_slice(b"  ");
        }
        out.extend_from_slice(dim.as_bytes());
        json::rfc3339(out, p.ts, self.precision);
        out.extend_from_slice(reset.as_bytes());
        let _ = write!(json::Raw(out), " {colour}{:>5}{reset} ", p.level.as_str());
        if !pretty && !ranges.is_empty() {
            for (i, &(a, b)) in ranges.iter().rev().enumerate() {
                if i > 0 {
                    out.push(b':');
                }
                out.extend_from_slice(&spans[a as usize..b as usize]);
            }
            out.extend_from_slice(b": ");
        }
        out.extend_from_slice(dim.as_bytes());
        out.extend_from_slice(p.target.as_bytes());
        out.extend_from_slice(b":");
        out.extend_from_slice(reset.as_bytes());
        if let Some(m) = p.msg {
            out.push(b' ');
            out.extend_from_slice(bold.as_bytes());
            out.extend_from_slice(m);
            out.extend_from_slice(reset.as_bytes());
        }
        let nl = |out: &mut Vec<u8>| out.extend_from_slice(if pretty { b"\n    " } else { b" " });
        if !p.fields.is_empty() {
            if pretty {
                out.extend_from_slice(b"\n   ");
            }
            out.extend_from_slice(p.fields);
        }
        if let Some(r) = ids {
            let mut first = true;
            let mut id = |out: &mut Vec<u8>, k: &str, v: &str| {
                if first || !pretty {
                    nl(out);
                } else {
                    out.push(b' ');
                }
                first = false;
                let _ = write!(json::Raw(out), "{dim}{k}={reset}{v}");
            };
            if let (Some(t), Some(s)) = (r.trace_id, r.span_id) {
                id(out, "trace_id", t.to_hex().as_str());
                id(out, "span_id", s.to_hex().as_str());
            }
            if let Some(c) = &r.correlation_id {
                id(out, "correlation_id", c.as_str());
            }
        }
        if self.file_line
            && let (Some(f), Some(l)) = (p.file, p.line)
        {
            nl(out);
            let _ = write!(json::Raw(out), "{dim}at{reset} {f}:{l}");
        }
        if pretty {
            for &(a, b) in ranges {
                nl(out);
                out.extend_from_slice(dim.as_bytes());
                out.extend_from_slice(b"in");
                out.extend_from_slice(reset.as_bytes());
                out.push(b' ');
                out.extend_from_slice(&spans[a as usize..b as usize]);
            }
        }
        out.push(b'\n');
    }
}

fn lower(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        _ => "trace",
    }
}

fn severity_number(level: Level) -> u8 {
    match level {
        Level::TRACE => 1,
        Level::DEBUG => 5,
        Level::INFO => 9,
        Level::WARN => 13,
        _ => 17,
    }
}

fn hex_ids(out: &mut Vec<u8>, r: &IdRecord, tk: &str, sk: &str) {
    if let (Some(t), Some(s)) = (r.trace_id, r.span_id) {
        let _ = write!(
            json::Raw(out),
            ",\"{tk}\":\"{}\",\"{sk}\":\"{}\"",
            t.to_hex().as_str(),
            s.to_hex().as_str()
        );
    }
}

fn corr(out: &mut Vec<u8>, r: &IdRecord, key: &str) {
    if let Some(c) = &r.correlation_id {
        // Correlation ids are validated to a JSON-safe set; escape anyway.
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        json::quoted(out, c.as_str());
    }
}

struct LineParts<'a> {
    ts: Timestamp,
    level: Level,
    target: &'a str,
    file: Option<&'a str>,
    line: Option<u32>,
    msg: Option<&'a [u8]>,
    fields: &'a [u8],
    /// The callsite's pre-rendered level and target (see `level_target`).
    head: Option<&'a [u8]>,
}

// --------------------------------------------------------------- visitor

/// Writes fields as `,"k":v` (JSON) or ` k=v` (human) fragments, redacting
/// on the way. The message goes to its own buffer.
struct FieldWriter<'a> {
    json: bool,
    out: &'a mut Vec<u8>,
    msg: Option<&'a mut Vec<u8>>,
    tmp: &'a mut String,
    redactor: Option<&'a Redaction>,
    info: &'a CallsiteInfo,
    /// `(name, start, end)` of each fragment (spans only).
    entries: Option<&'a mut Vec<(&'static str, u32, u32)>>,
    skip_log_fields: bool,
    /// Keys from the callsite's cache (rendered for the line's format);
    /// `false` renders them for this writer's own format.
    cached_keys: bool,
}

impl FieldWriter<'_> {
    /// Fields left out of the line: the `log` bridge's `log.*` metadata,
    /// and a span's `otel.*` fields (instructions for the tracer — span
    /// name, kind, status — which the line already carries otherwise).
    #[inline(always)]
    fn skipped(&self, field: &Field) -> bool {
        (self.entries.is_some() && self.info.tracer_only & bit(field) != 0)
            || (self.skip_log_fields && field.name().starts_with("log."))
    }

    #[inline(always)]
    fn begin(&mut self, field: &Field) -> Option<usize> {
        if self.skipped(field) {
            return None;
        }
        let start = self.out.len();
        if !(self.cached_keys && self.info.put_key(field, self.out)) {
            self.render_key(field);
        }
        Some(start)
    }

    /// A key of a field from another callsite (a span recorded later).
    #[cold]
    fn render_key(&mut self, field: &Field) {
        let name = field.name();
        if self.json {
            self.out.extend_from_slice(b",\"");
            if self.info.reserved & bit(field) != 0 {
                self.out.extend_from_slice(b"fields.");
            }
            if self.info.plain_names & bit(field) != 0 {
                self.out.extend_from_slice(name.as_bytes());
            } else {
                json::escape_into(self.out, name);
            }
            self.out.extend_from_slice(b"\":");
        } else {
            self.out.push(b' ');
            human_escape(self.out, name);
            self.out.push(b'=');
        }
    }

    #[inline(always)]
    fn end(&mut self, field: &Field, start: usize) {
        if let Some(entries) = self.entries.as_deref_mut() {
            entries.push((field.name(), start as u32, self.out.len() as u32));
        }
    }

    #[inline]
    fn sensitive(&self, field: &Field) -> bool {
        self.redactor.is_some() && self.info.sensitive & bit(field) != 0
    }

    /// A string value, redacted and escaped.
    #[inline]
    fn string(&mut self, field: &Field, value: &str) {
        let Some(start) = self.begin(field) else {
            return;
        };
        let sensitive = self.sensitive(field);
        write_str_value(self.out, self.json, self.redactor, sensitive, value);
        self.end(field, start);
    }

    fn message(&mut self, value: &dyn fmt::Debug) {
        let Some(msg) = self.msg.as_deref_mut() else {
            return;
        };
        // Formatted straight into place; nearly every message needs neither
        // redaction nor escaping, and is then done.
        msg.clear();
        let _ = write!(json::Raw(msg), "{value:?}");
        if self.json
            && self.redactor.is_none_or(|r| !r.rules.may_change(msg))
            && !json::needs_escape(msg)
        {
            return;
        }
        self.tmp.clear();
        self.tmp.push_str(&String::from_utf8_lossy(msg));
        msg.clear();
        let v = match self.redactor {
            Some(r) => r.redact(self.tmp),
            None => Cow::Borrowed(self.tmp.as_str()),
        };
        if self.json {
            json::escape_into(msg, &v);
        } else {
            human_escape(msg, &v);
        }
    }

    #[inline]
    fn number(&mut self, field: &Field, f: impl FnOnce(&mut Vec<u8>)) {
        let Some(start) = self.begin(field) else {
            return;
        };
        if self.sensitive(field) {
            write_redacted(self.out, self.json);
        } else {
            f(self.out);
        }
        self.end(field, start);
    }
}

#[inline]
fn bit(field: &Field) -> u64 {
    let i = field.index();
    if i < 64 { 1 << i } else { 0 }
}

fn write_redacted(out: &mut Vec<u8>, json: bool) {
    if json {
        out.push(b'"');
        out.extend_from_slice(REDACTED.as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(REDACTED.as_bytes());
    }
}

/// The redaction rules of the layer (their cheap pre-check lives in
/// `obs_core::redact`, shared by every pillar).
#[derive(Debug)]
pub(crate) struct Redaction {
    pub(crate) rules: Redactor,
}

impl Redaction {
    #[inline]
    fn redact<'a>(&self, value: &'a str) -> Cow<'a, str> {
        self.rules.redact(value)
    }
}

#[inline]
fn write_str_value(
    out: &mut Vec<u8>,
    json: bool,
    redactor: Option<&Redaction>,
    sensitive: bool,
    value: &str,
) {
    if sensitive {
        return write_redacted(out, json);
    }
    let v = match redactor {
        Some(r) => r.redact(value),
        None => Cow::Borrowed(value),
    };
    if json {
        json::quoted(out, &v);
    } else {
        human_escape(out, &v);
    }
}

/// Human output keeps one event on one line: control characters are escaped.
fn human_escape(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\x1b' => out.extend_from_slice(b"\\e"),
            c if c.is_control() => {
                let _ = write!(json::Raw(out), "\\u{{{:x}}}", c as u32);
            }
            c => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" && self.msg.is_some() {
            return self.message(&format_args!("{value}"));
        }
        self.string(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && self.msg.is_some() {
            return self.message(value);
        }
        if self.skipped(field) {
            return;
        }
        let mut tmp = std::mem::take(self.tmp);
        tmp.clear();
        let _ = write!(tmp, "{value:?}");
        self.string(field, &tmp);
        *self.tmp = tmp;
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut tmp = std::mem::take(self.tmp);
        tmp.clear();
        let _ = write!(tmp, "{value}");
        let mut source = value.source();
        while let Some(s) = source {
            let _ = write!(tmp, ": {s}");
            source = s.source();
        }
        self.string(field, &tmp);
        *self.tmp = tmp;
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        match std::str::from_utf8(value) {
            Ok(s) => self.string(field, s),
            Err(_) => {
                let Some(start) = self.begin(field) else {
                    return;
                };
                if self.sensitive(field) {
                    write_redacted(self.out, self.json);
                } else if self.redactor.is_none() && self.json {
                    json::quoted_lossy(self.out, value);
                } else {
                    let lossy = String::from_utf8_lossy(value);
                    write_str_value(self.out, self.json, self.redactor, false, &lossy);
                }
                self.end(field, start);
            }
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, |o| json::int(o, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, |o| json::int(o, value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.number(field, |o| json::int(o, value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.number(field, |o| json::int(o, value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let json = self.json;
        self.number(field, |o| {
            if json {
                json::float(o, value);
            } else {
                let _ = write!(json::Raw(o), "{value}");
            }
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, |o| {
            o.extend_from_slice(if value { b"true" } else { b"false" })
        });
    }
}

// ------------------------------------------------------------- callsites

/// Per-callsite decisions made once: which fields are secret by name, which
/// clash with the schema's own keys, and the rate limiter.
#[derive(Debug)]
pub(crate) struct CallsiteInfo {
    has_message: bool,
    /// The callsite's field names.
    names: Box<[&'static str]>,
    /// Level and target as the JSON line writes them (events, JSON formats
    /// but OTel's).
    head: Option<Box<[u8]>>,
    /// Fields whose names need no JSON escaping (written as they are).
    plain_names: u64,
    /// Each field's key fragment as written (`,"name":` in JSON, ` name=`
    /// in the human formats), concatenated; `key_ends[i]` ends field `i`'s.
    keys: Box<[u8]>,
    key_ends: Box<[u32]>,
    /// The same keys padded to `KEY_PAD` bytes (length in the last byte;
    /// 0 = too long): appended with one fixed-size copy, then truncated,
    /// instead of a variable-length `memcpy` call per field.
    padded: Box<[[u8; KEY_PAD]]>,
    /// The callsite the keys belong to.
    callsite: Identifier,
    sensitive: u64,
    reserved: u64,
    /// `otel.*` fields: read by the tracer, not written by the log layer.
    tracer_only: u64,
    limiter: Option<Limiter>,
}

/// Room of a padded key (see `CallsiteInfo::padded`).
const KEY_PAD: usize = 32;

impl CallsiteInfo {
    /// Appends the pre-rendered key of `field` when it belongs to this
    /// callsite; `false` when the caller must render it.
    #[inline(always)]
    fn put_key(&self, field: &Field, out: &mut Vec<u8>) -> bool {
        let Some(p) = self.padded.get(field.index()) else {
            return false;
        };
        if field.callsite() != self.callsite {
            return false;
        }
        let n = p[KEY_PAD - 1] as usize;
        if n == 0 {
            return match self.key(field) {
                Some(k) => {
                    out.extend_from_slice(k);
                    true
                }
                None => false,
            };
        }
        let at = out.len();
        out.extend_from_slice(p);
        out.truncate(at + n);
        true
    }

    /// The pre-rendered key of `field`, when it belongs to this callsite.
    #[inline]
    fn key(&self, field: &Field) -> Option<&[u8]> {
        let i = field.index();
        let end = *self.key_ends.get(i)? as usize;
        if field.callsite() != self.callsite {
            return None;
        }
        let start = match i {
            0 => 0,
            _ => self.key_ends[i - 1] as usize,
        };
        self.keys.get(start..end)
    }
}

#[derive(Debug)]
struct Limiter {
    window: AtomicU64,
    count: AtomicU32,
    suppressed: AtomicU64,
}

enum Admit {
    Yes,
    No,
    AfterSummary(u64),
}

impl Limiter {
    #[inline]
    fn admit(&self, now_secs: u64, limit: u32) -> Admit {
        let w = self.window.load(Ordering::Relaxed);
        if w != now_secs
            && self
                .window
                .compare_exchange(w, now_secs, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.count.store(1, Ordering::Relaxed);
            let s = self.suppressed.swap(0, Ordering::AcqRel);
            return if s > 0 {
                Admit::AfterSummary(s)
            } else {
                Admit::Yes
            };
        }
        if self.count.fetch_add(1, Ordering::Relaxed) < limit {
            Admit::Yes
        } else {
            self.suppressed.fetch_add(1, Ordering::AcqRel);
            Admit::No
        }
    }
}

/// FxHash-style hasher: callsite identities are pointers.
#[derive(Default)]
struct PtrHasher(u64);

impl Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type InfoMap = HashMap<Identifier, Arc<CallsiteInfo>, BuildHasherDefault<PtrHasher>>;

/// Registration inserts into `all` (O(1)); the hot path reads the lock-free
/// `snapshot`, which is re-cloned from `all` only when an event misses it —
/// once per callsite that fires, never once per registration, so a layer
/// installed over thousands of callsites does not pay a quadratic copy.
struct Callsites {
    snapshot: ArcSwap<InfoMap>,
    all: Mutex<InfoMap>,
}

// ------------------------------------------------------------------ layer

/// Per-thread scratch space, reused across events.
#[derive(Default)]
struct Scratch {
    line: Vec<u8>,
    fields: Vec<u8>,
    msg: Vec<u8>,
    tmp: String,
    seen: Vec<&'static str>,
    path: Vec<&'static str>,
    /// The span path as written (`"outer","inner"`).
    pathbuf: Vec<u8>,
    spans: Vec<u8>,
    ranges: Vec<(u32, u32)>,
}

impl Scratch {
    /// Room for typical lines up front, so a message or line that grows by a
    /// few bytes does not reallocate.
    fn sized() -> Self {
        Self {
            line: Vec::with_capacity(1024),
            fields: Vec::with_capacity(512),
            msg: Vec::with_capacity(256),
            tmp: String::with_capacity(256),
            spans: Vec::with_capacity(256),
            pathbuf: Vec::with_capacity(128),
            ..Self::default()
        }
    }

    fn trim(&mut self) {
        for v in [
            &mut self.line,
            &mut self.fields,
            &mut self.msg,
            &mut self.spans,
            &mut self.pathbuf,
        ] {
            if v.capacity() > SCRATCH_KEEP {
                *v = Vec::with_capacity(256);
            }
        }
        if self.tmp.capacity() > SCRATCH_KEEP {
            self.tmp = String::new();
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::sized());
}

/// Span fields pre-formatted when the span is created or recorded.
struct SpanFields {
    buf: Vec<u8>,
    entries: Vec<(&'static str, u32, u32)>,
    /// Where `buf` holds this span's path, `"outer","inner"` (JSON only;
    /// empty when not known at creation): an event copies it whole instead
    /// of quoting every span name again.
    path: (u32, u32),
}

impl SpanFields {
    fn path(&self) -> &[u8] {
        &self.buf[self.path.0 as usize..self.path.1 as usize]
    }

    /// Rewrites `buf` without the bytes of replaced values once they make
    /// up more than half of it.
    fn compact(&mut self) {
        let live: usize = self
            .entries
            .iter()
            .map(|&(_, a, b)| (b - a) as usize)
            .sum::<usize>()
            + (self.path.1 - self.path.0) as usize;
        if self.buf.len() <= 2 * live + 64 {
            return;
        }
        let mut buf = Vec::with_capacity(live);
        for e in &mut self.entries {
            let start = buf.len() as u32;
            buf.extend_from_slice(&self.buf[e.1 as usize..e.2 as usize]);
            *e = (e.0, start, buf.len() as u32);
        }
        let start = buf.len() as u32;
        buf.extend_from_slice(self.path());
        self.path = (start, buf.len() as u32);
        self.buf = buf;
    }
}

pub(crate) struct Inner {
    pub(crate) spec: Arc<Spec>,
    /// `None` when the filter is applied as a per-layer filter instead.
    pub(crate) filter: Option<Arc<FilterState>>,
    pub(crate) redactor: Option<Redaction>,
    pub(crate) rate_limit: Option<u32>,
    pub(crate) out: Output,
    pub(crate) stats: LogStats,
    callsites: Callsites,
    /// Records exported over OTLP as well as written as lines.
    #[cfg(feature = "otlp")]
    pub(crate) otlp: Option<Arc<crate::otlp::OtlpSink>>,
}

/// The log layer: add it to a `tracing_subscriber::Registry` (it filters by
/// its own reloadable directive). Build it with [`crate::layer`].
pub struct LogLayer {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for LogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLayer")
            .field("spec", &self.inner.spec)
            .finish_non_exhaustive()
    }
}

impl LogLayer {
    pub(crate) fn new(
        spec: Arc<Spec>,
        filter: Option<Arc<FilterState>>,
        redactor: Option<Redaction>,
        rate_limit: Option<u32>,
        out: Output,
        stats: LogStats,
        #[cfg(feature = "otlp")] otlp: Option<Arc<crate::otlp::OtlpSink>>,
    ) -> Self {
        let callsites = Callsites {
            snapshot: ArcSwap::from_pointee(InfoMap::default()),
            all: Mutex::new(InfoMap::default()),
        };
        Self {
            inner: Arc::new(Inner {
                spec,
                filter,
                redactor,
                rate_limit,
                out,
                stats,
                callsites,
                #[cfg(feature = "otlp")]
                otlp,
            }),
        }
    }
}

pub(crate) fn is_log_bridge(meta: &Metadata<'_>) -> bool {
    meta.target() == "log" && meta.fields().field("log.target").is_some()
}

impl Inner {
    fn info_for(&self, meta: &'static Metadata<'static>) -> CallsiteInfo {
        let mut sensitive = 0;
        let mut reserved = 0;
        for f in meta.fields() {
            let b = bit(&f);
            if self
                .redactor
                .as_ref()
                .is_some_and(|r| r.rules.is_sensitive_name(f.name()))
            {
                sensitive |= b;
            }
            if f.name() != "message" && self.spec.is_reserved(f.name()) {
                reserved |= b;
            }
        }
        let limiter =
            (self.rate_limit.is_some() && meta.is_event() && !is_log_bridge(meta)).then(|| {
                Limiter {
                    window: AtomicU64::new(0),
                    count: AtomicU32::new(0),
                    suppressed: AtomicU64::new(0),
                }
            });
        let mut plain_names = 0;
        for f in meta.fields() {
            if !f
                .name()
                .bytes()
                .any(|b| b < 0x20 || b == b'"' || b == b'\\')
            {
                plain_names |= bit(&f);
            }
        }
        let json = self.spec.format == Format::Json;
        let mut keys = Vec::new();
        let mut key_ends = Vec::new();
        for f in meta.fields() {
            if json {
                keys.extend_from_slice(b",\"");
                if reserved & bit(&f) != 0 {
                    keys.extend_from_slice(b"fields.");
                }
                json::escape_into(&mut keys, f.name());
                keys.extend_from_slice(b"\":");
            } else {
                keys.push(b' ');
                human_escape(&mut keys, f.name());
                keys.push(b'=');
            }
            key_ends.push(keys.len() as u32);
        }
        CallsiteInfo {
            has_message: meta.fields().field("message").is_some(),
            names: meta.fields().iter().map(|f| f.name()).collect(),
            head: (json && meta.is_event() && self.spec.schema != Schema::Otel).then(|| {
                let mut h = Vec::new();
                self.spec
                    .render_level_target(&mut h, *meta.level(), meta.target());
                h.into_boxed_slice()
            }),
            plain_names,
            padded: (0..key_ends.len())
                .map(|i| {
                    let start = if i == 0 { 0 } else { key_ends[i - 1] as usize };
                    let k = &keys[start..key_ends[i] as usize];
                    let mut p = [0u8; KEY_PAD];
                    if k.len() < KEY_PAD {
                        p[..k.len()].copy_from_slice(k);
                        p[KEY_PAD - 1] = k.len() as u8;
                    }
                    p
                })
                .collect(),
            keys: keys.into_boxed_slice(),
            key_ends: key_ends.into_boxed_slice(),
            callsite: meta.callsite(),
            sensitive,
            reserved,
            tracer_only: meta
                .fields()
                .iter()
                .filter(|f| f.name().starts_with("otel."))
                .fold(0, |acc, f| acc | bit(&f)),
            limiter,
        }
    }

    fn register(&self, meta: &'static Metadata<'static>) {
        let id = meta.callsite();
        if self.callsites.snapshot.load().contains_key(&id) {
            return;
        }
        let mut all = self
            .callsites
            .all
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.entry(id)
            .or_insert_with(|| Arc::new(self.info_for(meta)));
    }

    #[inline]
    fn with_info<R>(
        &self,
        meta: &'static Metadata<'static>,
        f: impl FnOnce(&CallsiteInfo) -> R,
    ) -> R {
        {
            let map = self.callsites.snapshot.load();
            if let Some(info) = map.get(&meta.callsite()) {
                return f(info);
            }
        }
        self.with_info_slow(meta, f)
    }

    #[cold]
    fn with_info_slow<R>(
        &self,
        meta: &'static Metadata<'static>,
        f: impl FnOnce(&CallsiteInfo) -> R,
    ) -> R {
        let id = meta.callsite();
        let info = {
            let mut all = self
                .callsites
                .all
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let info = all
                .entry(id.clone())
                .or_insert_with(|| Arc::new(self.info_for(meta)))
                .clone();
            if all.len() > self.callsites.snapshot.load().len() {
                self.callsites.snapshot.store(Arc::new(all.clone()));
            }
            info
        };
        f(&info)
    }

    fn span_fields(
        &self,
        meta: &'static Metadata<'static>,
        record: impl FnOnce(&mut dyn Visit),
    ) -> SpanFields {
        // Room for every declared field (about 48 bytes each) and the path,
        // so recording the span's fields does not grow the buffers.
        let n = meta.fields().len();
        let mut sf = SpanFields {
            buf: Vec::with_capacity(48 * n + 64),
            entries: Vec::with_capacity(n),
            path: (0, 0),
        };
        self.record_into(&mut sf, meta, record);
        sf
    }

    /// Appends recorded fields to `sf`; a field recorded again replaces its
    /// earlier value (whose bytes stay behind until the next compaction).
    fn record_into(
        &self,
        sf: &mut SpanFields,
        meta: &'static Metadata<'static>,
        record: impl FnOnce(&mut dyn Visit),
    ) {
        let before = sf.entries.len();
        SCRATCH.with(|cell| {
            let mut fresh = String::new();
            let mut scratch = cell.try_borrow_mut();
            let tmp = match &mut scratch {
                Ok(s) => &mut s.tmp,
                Err(_) => &mut fresh,
            };
            self.with_info(meta, |info| {
                let mut w = FieldWriter {
                    json: self.spec.format == Format::Json,
                    out: &mut sf.buf,
                    msg: None,
                    tmp,
                    redactor: self.redactor.as_ref(),
                    info,
                    entries: Some(&mut sf.entries),
                    skip_log_fields: false,
                    cached_keys: true,
                };
                record(&mut w);
            });
        });
        if before == 0 {
            return;
        }
        let (old, new) = sf.entries.split_at(before);
        if !old.iter().any(|o| new.iter().any(|n| n.0 == o.0)) {
            return;
        }
        let new_names: Vec<&'static str> = new.iter().map(|e| e.0).collect();
        let mut i = 0;
        sf.entries.retain(|e| {
            i += 1;
            i > before || !new_names.contains(&e.0)
        });
        sf.compact();
    }

    fn on_event<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        let ts = Timestamp::now();
        self.with_info(meta, |info| {
            let mut summary = None;
            if let (Some(l), Some(limit)) = (&info.limiter, self.rate_limit) {
                match l.admit(ts.secs, limit) {
                    Admit::Yes => {}
                    Admit::No => {
                        self.stats.inner.suppressed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Admit::AfterSummary(n) => summary = Some(n),
                }
            }
            SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut s) => {
                    self.format_event(&mut s, event, ctx, info, ts, summary);
                    s.trim();
                }
                // Re-entered from a `Debug` impl that logs: use a fresh scratch.
                Err(_) => self.format_event(&mut Scratch::default(), event, ctx, info, ts, summary),
            });
        });
    }

    fn format_event<S>(
        &self,
        s: &mut Scratch,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
        info: &CallsiteInfo,
        ts: Timestamp,
        summary: Option<u64>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        #[cfg(feature = "log")]
        let normalized = {
            use tracing_log::NormalizeEvent;
            event.normalized_metadata()
        };
        #[cfg(feature = "log")]
        let (target, file, line, is_log) = match &normalized {
            Some(n) => (n.target(), n.file(), n.line(), true),
            None => (meta.target(), meta.file(), meta.line(), false),
        };
        #[cfg(not(feature = "log"))]
        let (target, file, line, is_log) = (meta.target(), meta.file(), meta.line(), false);

        let json = self.spec.format == Format::Json;
        let level = *meta.level();
        if let Some(n) = summary {
            s.line.clear();
            let extra = [
                ("suppressed", n),
                ("callsite.line", u64::from(line.unwrap_or(0))),
            ];
            self.spec.internal_line(
                &mut s.line,
                Level::WARN,
                target,
                "rate limit: lines of this callsite were suppressed",
                &extra,
            );
            self.out
                .write_line(level_index(Level::WARN), &s.line, false);
        }

        s.fields.clear();
        s.msg.clear();
        s.seen.clear();
        s.path.clear();
        s.pathbuf.clear();
        s.spans.clear();
        s.ranges.clear();
        let has_msg = info.has_message;
        {
            let mut w = FieldWriter {
                json,
                out: &mut s.fields,
                msg: Some(&mut s.msg),
                tmp: &mut s.tmp,
                redactor: self.redactor.as_ref(),
                info,
                entries: None,
                skip_log_fields: is_log,
                cached_keys: true,
            };
            event.record(&mut w);
        }

        let mut ids: Option<IdRecord> = None;
        // `event_span` + `parent` visits what `event_scope` would, with one
        // registry lookup less (the scope iterator looks its first span up again).
        let mut next = ctx.event_span(event);
        let mut path_known = false;
        while let Some(span) = next {
            {
                let ext = span.extensions();
                let sf = ext.get::<SpanFields>();
                if json && !path_known {
                    match sf {
                        // The innermost span knows the whole path.
                        Some(sf) if s.path.is_empty() && sf.path.1 > sf.path.0 => {
                            s.pathbuf.extend_from_slice(sf.path());
                            path_known = true;
                        }
                        _ => s.path.push(span.name()),
                    }
                }
                if let Some(rec) = ext.get::<IdRecord>() {
                    match &mut ids {
                        None => ids = Some(rec.clone()),
                        Some(acc) => acc.fill_from(rec),
                    }
                }
                if json {
                    if let Some(sf) = sf {
                        for &(name, a, b) in &sf.entries {
                            // The event's own fields and inner spans' win.
                            if !info.names.contains(&name) && !s.seen.contains(&name) {
                                s.seen.push(name);
                                s.fields.extend_from_slice(&sf.buf[a as usize..b as usize]);
                            }
                        }
                    }
                } else {
                    let a = s.spans.len() as u32;
                    s.spans.extend_from_slice(span.name().as_bytes());
                    if let Some(sf) = sf.filter(|sf| !sf.entries.is_empty()) {
                        s.spans.push(b'{');
                        for (i, &(_, a, b)) in sf.entries.iter().enumerate() {
                            // Each fragment is ` k=v`: no space after the brace.
                            let a = a as usize + usize::from(i == 0);
                            s.spans.extend_from_slice(&sf.buf[a..b as usize]);
                        }
                        s.spans.push(b'}');
                    }
                    s.ranges.push((a, s.spans.len() as u32));
                }
            }
            next = span.parent();
        }

        // Outside any span, a thread may log on behalf of a request (an
        // error report's delivery thread): its scoped ids are the line's.
        if ids.is_none() {
            ids = IdRecord::thread_scoped();
        }
        if json && !path_known {
            for (i, name) in s.path.iter().rev().enumerate() {
                if i > 0 {
                    s.pathbuf.push(b',');
                }
                json::quoted(&mut s.pathbuf, name);
            }
        }
        let parts = LineParts {
            ts,
            level,
            target,
            file,
            line,
            msg: has_msg.then_some(s.msg.as_slice()),
            fields: &s.fields,
            // A `log` record's target is its own, not the bridge callsite's.
            head: if is_log { None } else { info.head.as_deref() },
        };
        s.line.clear();
        if json {
            self.spec
                .json_line(&mut s.line, &parts, &s.pathbuf, ids.as_ref());
        } else {
            self.spec
                .human_line(&mut s.line, &parts, &s.spans, &s.ranges, ids.as_ref());
        }
        self.out.write_line(level_index(level), &s.line, true);
        #[cfg(feature = "otlp")]
        if let Some(sink) = &self.otlp {
            self.otlp_record(sink, event, info, &parts, target, is_log, ids.as_ref());
        }
    }

    /// Hands the event to the OTLP exporter: from the line's own redacted
    /// fields in the JSON format; the other formats visit the event once
    /// more with a JSON field writer (the event's own fields only).
    #[cfg(feature = "otlp")]
    #[allow(clippy::too_many_arguments, reason = "the parts of one event")]
    #[cold]
    fn otlp_record(
        &self,
        sink: &crate::otlp::OtlpSink,
        event: &Event<'_>,
        info: &CallsiteInfo,
        parts: &LineParts<'_>,
        target: &str,
        is_log: bool,
        ids: Option<&IdRecord>,
    ) {
        let time_nanos = parts.ts.secs * 1_000_000_000 + u64::from(parts.ts.nanos);
        // A `log` record's target is its own, owned by the normalised
        // metadata; a tracing target is static.
        let target: std::borrow::Cow<'static, str> = if is_log {
            target.to_owned().into()
        } else {
            event.metadata().target().into()
        };
        let record = if self.spec.format == Format::Json {
            crate::otlp::Record::new(
                time_nanos,
                parts.level,
                target,
                parts.msg,
                parts.fields,
                ids,
            )
        } else {
            let (mut fields, mut msg, mut tmp) = (Vec::new(), Vec::new(), String::new());
            let mut w = FieldWriter {
                json: true,
                out: &mut fields,
                msg: Some(&mut msg),
                tmp: &mut tmp,
                redactor: self.redactor.as_ref(),
                info,
                entries: None,
                skip_log_fields: is_log,
                cached_keys: false,
            };
            event.record(&mut w);
            crate::otlp::Record::new(
                time_nanos,
                parts.level,
                target,
                info.has_message.then_some(msg.as_slice()),
                &fields,
                ids,
            )
        };
        sink.send(record);
    }
}

impl<S> tracing_subscriber::Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        let Some(filter) = &self.inner.filter else {
            self.inner.register(meta);
            return Interest::always();
        };
        if is_log_bridge(meta) {
            // One callsite per level carries every `log` record: decide per record.
            self.inner.register(meta);
            return Interest::sometimes();
        }
        let interest = filter.interest::<S>(meta);
        if !interest.is_never() {
            self.inner.register(meta);
        }
        interest
    }

    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner
            .filter
            .as_ref()
            .is_none_or(|f| f.enabled(meta, &ctx))
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(f) = &self.inner.filter {
            f.on_enter(id, &ctx);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(f) = &self.inner.filter {
            f.on_exit(id, &ctx);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(f) = &self.inner.filter {
            f.on_close(&id, &ctx);
        }
    }

    fn on_register_dispatch(&self, dispatch: &tracing_core::Dispatch) {
        // A reload rebuilds the interest cache from this dispatcher.
        if let Some(filter) = &self.inner.filter {
            filter.attach(dispatch);
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner.filter.as_ref().map(|f| f.max_level())
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(f) = &self.inner.filter {
            f.on_new_span(attrs, id, &ctx);
        }
        let Some(span) = ctx.span(id) else { return };
        let mut sf = self
            .inner
            .span_fields(attrs.metadata(), |v| attrs.record(v));
        let spec = &self.inner.spec;
        if spec.span_path && spec.format == Format::Json {
            // The parent's path plus this name; unknown (left empty, so
            // events render it) when the parent has none.
            let start = sf.buf.len();
            let known = match span.parent() {
                None => true,
                Some(parent) => match parent.extensions().get::<SpanFields>() {
                    Some(p) if p.path.1 > p.path.0 => {
                        sf.buf.extend_from_slice(p.path());
                        sf.buf.push(b',');
                        true
                    }
                    _ => false,
                },
            };
            if known {
                json::quoted(&mut sf.buf, span.name());
                sf.path = (start as u32, sf.buf.len() as u32);
            } else {
                sf.buf.truncate(start);
            }
        }
        span.extensions_mut().insert(sf);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(f) = &self.inner.filter {
            f.on_record(id, values, &ctx);
        }
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(sf) => self
                .inner
                .record_into(sf, span.metadata(), |v| values.record(v)),
            None => {
                let new = self
                    .inner
                    .span_fields(span.metadata(), |v| values.record(v));
                ext.insert(new);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.inner.on_event(event, &ctx);
    }
}
