//! The shape of a line: [`Spec`] (schema × format, shared by the layer, the
//! writer thread's summary lines and the OTLP exporter), the JSON schemas
//! behind [`SchemaFormat`] (one module each) and the human formats.
//!
//! Adding a schema: a module here implementing [`SchemaFormat`], a variant
//! of [`Schema`] (with its `FromStr` name) and one arm in [`with_schema!`].

use obs_core::names::field;
use obs_core::{IdRecord, Resource};
use tracing_core::Level;

use crate::config::{Format, Precision, Schema};
use crate::json::{self, Timestamp};

mod datadog;
mod ecs;
mod gcp;
mod human;
mod native;
mod otel;

pub(crate) use human::human_escape;

/// One JSON schema: its top-level keys, resource fields and line body.
///
/// Implemented by unit types and called through [`with_schema!`], so the
/// per-event path dispatches with a `match`, never through a vtable.
pub(crate) trait SchemaFormat {
    /// Keys the schema writes at top level; a field with one of these names
    /// is written as `fields.<name>` so a line never has duplicate keys.
    const RESERVED: &'static [&'static str];

    /// `(level key, level text, target key)` of the line's head (unused by
    /// schemas whose level and target are apart).
    fn head(level: Level) -> (&'static str, &'static str, &'static str);

    /// The resource fragment (`,"k":"v"…`) every line ends with.
    fn resource(out: &mut Vec<u8>, r: &Resource);

    /// The line between `{` and the resource fragment.
    fn body(spec: &Spec, out: &mut Vec<u8>, p: &LineParts<'_>, path: &[u8], ids: Option<&IdRecord>);
}

/// Runs `$e` with `$S` the [`SchemaFormat`] of `$schema`.
macro_rules! with_schema {
    ($schema:expr, $S:ident => $e:expr) => {
        match $schema {
            Schema::Native => {
                type $S = native::Native;
                $e
            }
            Schema::Otel => {
                type $S = otel::Otel;
                $e
            }
            Schema::Ecs => {
                type $S = ecs::Ecs;
                $e
            }
            Schema::Gcp => {
                type $S = gcp::Gcp;
                $e
            }
            Schema::Datadog => {
                type $S = datadog::Datadog;
                $e
            }
        }
    };
}

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

/// The parts of one line, rendered or borrowed by the caller.
pub(crate) struct LineParts<'a> {
    pub(crate) ts: Timestamp,
    pub(crate) level: Level,
    pub(crate) target: &'a str,
    pub(crate) file: Option<&'a str>,
    pub(crate) line: Option<u32>,
    pub(crate) msg: Option<&'a [u8]>,
    pub(crate) fields: &'a [u8],
    /// The callsite's pre-rendered level and target (see `level_target`).
    pub(crate) head: Option<&'a [u8]>,
}

fn render_resource(schema: Schema, r: Option<&Resource>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(r) = r {
        with_schema!(schema, S => S::resource(&mut out, r));
    }
    out
}

/// `,"k":"v"` with both escaped.
pub(crate) fn kv(out: &mut Vec<u8>, k: &str, v: &str) {
    out.push(b',');
    json::quoted(out, k);
    out.push(b':');
    json::quoted(out, v);
}

/// `"key":"` (a string value follows).
#[inline]
fn open_str(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
}

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
            Some(otel::ATTRIBUTES.to_owned())
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

    pub(crate) fn is_reserved(&self, name: &str) -> bool {
        self.format == Format::Json
            && self.fields_key.is_none()
            && with_schema!(self.schema, S => S::RESERVED).contains(&name)
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
    pub(crate) fn json_line(
        &self,
        out: &mut Vec<u8>,
        p: &LineParts<'_>,
        path: &[u8],
        ids: Option<&IdRecord>,
    ) {
        out.push(b'{');
        with_schema!(self.schema, S => S::body(self, out, p, path, ids));
        out.extend_from_slice(&self.resource_json);
        out.extend_from_slice(b"}\n");
    }

    /// `"timestamp":"…"` under the schema's key (the line's first member).
    #[inline]
    fn timestamp(&self, out: &mut Vec<u8>, key: &str, p: &LineParts<'_>) {
        open_str(out, key);
        json::rfc3339(out, p.ts, self.precision);
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
    pub(crate) fn render_level_target(&self, out: &mut Vec<u8>, level: Level, target: &str) {
        let (level_key, level_text, target_key) = with_schema!(self.schema, S => S::head(level));
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(level_key.as_bytes());
        out.extend_from_slice(b"\":\"");
        out.extend_from_slice(level_text.as_bytes());
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(target_key.as_bytes());
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

    /// The timestamp, level/target, message, fields and span path every
    /// schema but OTel's starts with (inlined like [`flat_line`]: its keys
    /// are the schema's constants).
    #[inline(always)]
    fn common_head(&self, out: &mut Vec<u8>, ts_key: &str, p: &LineParts<'_>, path: &[u8]) {
        self.timestamp(out, ts_key, p);
        self.level_target(out, p);
        self.message(out, field::MESSAGE, p.msg);
        self.fields(out, p.fields);
        self.path(out, field::SPANS, path);
    }
}

/// Key names of a flat schema (see [`flat_line`]).
pub(crate) struct FlatKeys {
    pub(crate) timestamp: &'static str,
    pub(crate) trace_id: &'static str,
    pub(crate) span_id: &'static str,
    pub(crate) correlation_id: &'static str,
    pub(crate) file: &'static str,
    pub(crate) line: &'static str,
    /// Written last, before the resource fields.
    pub(crate) tail: &'static [u8],
}

/// The body of a schema whose fields, ids and file/line sit at the top
/// level next to each other (native, ECS), with its key names: inlined
/// into each schema, whose keys are then constants.
#[inline(always)]
fn flat_line(
    spec: &Spec,
    out: &mut Vec<u8>,
    p: &LineParts<'_>,
    path: &[u8],
    ids: Option<&IdRecord>,
    k: &FlatKeys,
) {
    spec.common_head(out, k.timestamp, p, path);
    if let Some(r) = ids {
        hex_ids(out, r, k.trace_id, k.span_id);
        corr(out, r, k.correlation_id);
    }
    spec.file_line(out, p, k.file, k.line);
    out.extend_from_slice(k.tail);
}

pub(crate) fn lower(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        _ => "trace",
    }
}

// Inlined into each schema's line, where the keys are constants: every
// copy below then has a known length and needs no call to `memcpy`.
#[inline(always)]
fn hex_ids(out: &mut Vec<u8>, r: &IdRecord, tk: &str, sk: &str) {
    if let (Some(t), Some(s)) = (r.trace_id, r.span_id) {
        // Straight copies: the keys are the format's own, the ids hex.
        out.reserve(tk.len() + sk.len() + 2 * 16 + 2 * 8 + 12);
        out.extend_from_slice(b",\"");
        out.extend_from_slice(tk.as_bytes());
        out.extend_from_slice(b"\":\"");
        out.extend_from_slice(t.to_hex().as_bytes());
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(sk.as_bytes());
        out.extend_from_slice(b"\":\"");
        out.extend_from_slice(s.to_hex().as_bytes());
        out.push(b'"');
    }
}

#[inline(always)]
fn corr(out: &mut Vec<u8>, r: &IdRecord, key: &str) {
    if let Some(c) = &r.correlation_id {
        // A `CorrelationId` only ever holds bytes of `[A-Za-z0-9._~:/+=@-]`
        // (obs-core validates every one it makes), none of which JSON
        // escapes: copied as is.
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":\"");
        out.extend_from_slice(c.as_bytes());
        out.push(b'"');
    }
}
