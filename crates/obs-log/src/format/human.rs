//! The human formats: `compact` (one line) and `pretty` (a block), with
//! optional ANSI colours.

use std::fmt::Write as _;

use obs_core::IdRecord;
use obs_core::names::field;
use tracing_core::Level;

use super::{LineParts, Spec};
use crate::config::Format;
use crate::json;

impl Spec {
    /// Assembles one human line (compact) or block (pretty). `spans` holds
    /// `name{fields}` renderings, `ranges` their positions innermost first.
    pub(crate) fn human_line(
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
                id(out, field::TRACE_ID, t.to_hex().as_str());
                id(out, field::SPAN_ID, s.to_hex().as_str());
            }
            if let Some(c) = &r.correlation_id {
                id(out, field::CORRELATION_ID, c.as_str());
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

/// Human output keeps one event on one line: control characters are escaped.
pub(crate) fn human_escape(out: &mut Vec<u8>, s: &str) {
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
