//! The field visitor: renders an event's or span's fields as line
//! fragments, redacting on the way.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use obs_core::names::field::MESSAGE;
use obs_core::redact::{Redactor, ValueScan};
use tracing_core::field::{Field, Visit};

use crate::callsite::CallsiteInfo;
use crate::format::human_escape;
use crate::json;

const REDACTED: &str = obs_core::names::field::REDACTED;

/// A scan that found nothing to redact and nothing to escape.
const CLEAN: ValueScan = ValueScan {
    may_change: false,
    needs_json_escape: false,
};

/// Writes fields as `,"k":v` (JSON) or ` k=v` (human) fragments, redacting
/// on the way. The message goes to its own buffer.
pub(crate) struct FieldWriter<'a> {
    pub(crate) json: bool,
    pub(crate) out: &'a mut Vec<u8>,
    pub(crate) msg: Option<&'a mut Vec<u8>>,
    pub(crate) tmp: &'a mut String,
    pub(crate) redactor: Option<&'a Redaction>,
    pub(crate) info: &'a CallsiteInfo,
    /// `(name, start, end)` of each fragment (spans only).
    pub(crate) entries: Option<&'a mut Vec<(&'static str, u32, u32)>>,
    pub(crate) skip_log_fields: bool,
    /// Keys from the callsite's cache (rendered for the line's format);
    /// `false` renders them for this writer's own format.
    pub(crate) cached_keys: bool,
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
    #[inline(always)]
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
        self.finish_message();
    }

    /// A message given as a string field (`message = "..."`): copied, not
    /// run through the formatting machinery.
    fn message_str(&mut self, value: &str) {
        let Some(msg) = self.msg.as_deref_mut() else {
            return;
        };
        msg.clear();
        msg.extend_from_slice(value.as_bytes());
        self.finish_message();
    }

    /// Redacts and escapes the message written raw into its buffer.
    fn finish_message(&mut self) {
        let Some(msg) = self.msg.as_deref_mut() else {
            return;
        };
        if self.json
            && match self.redactor {
                Some(r) => r.rules.scan_value(msg) == CLEAN,
                None => !json::needs_escape(msg),
            }
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
pub(crate) fn bit(field: &Field) -> u64 {
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

#[inline(always)]
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
    if json {
        // One pass over the value answers both questions (may redaction
        // change it, must JSON escape it); nearly every value is then
        // copied between its quotes as is.
        let bytes = value.as_bytes();
        let (may_change, escape) = match redactor {
            Some(r) => {
                let scan = r.rules.scan_value(bytes);
                (scan.may_change, scan.needs_json_escape)
            }
            None => (false, json::needs_escape(bytes)),
        };
        if may_change {
            return write_redacted_str(out, redactor, value);
        }
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        if escape {
            json::escape_slow(out, bytes);
        } else {
            out.extend_from_slice(bytes);
        }
        out.push(b'"');
        return;
    }
    let v = match redactor {
        Some(r) => r.redact(value),
        None => Cow::Borrowed(value),
    };
    human_escape(out, &v);
}

/// A JSON string value the redactor may change: redacted, then escaped.
#[cold]
#[inline(never)]
fn write_redacted_str(out: &mut Vec<u8>, redactor: Option<&Redaction>, value: &str) {
    let v = match redactor {
        Some(r) => r.redact(value),
        None => Cow::Borrowed(value),
    };
    json::quoted(out, &v);
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == MESSAGE && self.msg.is_some() {
            return self.message_str(value);
        }
        self.string(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == MESSAGE && self.msg.is_some() {
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
