//! The log rules: JSON lines, the request's ids on its lines, and the
//! secret-hygiene rule (run on log lines and on span strings).

use obs_core::SpanId;
use serde_json::Value;

use crate::http::Response;
use crate::report::{RuleResult, Status};

use super::{
    CORRELATION_KEYS, Canaries, LEVEL_KEYS, MESSAGE_KEYS, Probe, SPAN_KEYS, TIMESTAMP_KEYS,
    TRACE_KEYS, find_key, json,
};

pub(super) fn logs_json_rule(lines: &[String], dropped: u64) -> RuleResult {
    let id = "logs.json";
    let mut n = 0usize;
    let mut nested_message = None;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        n += 1;
        let Some(v) = json(line) else {
            return RuleResult::new(
                id,
                Status::Fail,
                format!("line {} is not a JSON object", i + 1),
            )
            .value(line);
        };
        let m = v.as_object().expect("json() keeps objects");
        let has = |keys: &[&str]| keys.iter().any(|k| m.contains_key(*k));
        if !has(TIMESTAMP_KEYS) {
            return RuleResult::new(id, Status::Fail, format!("line {} has no timestamp", i + 1))
                .value(line);
        }
        if !has(LEVEL_KEYS) {
            return RuleResult::new(id, Status::Fail, format!("line {} has no level", i + 1))
                .value(line);
        }
        if !has(MESSAGE_KEYS) {
            if v["fields"]["message"].is_string() {
                nested_message.get_or_insert(i + 1);
            } else {
                return RuleResult::new(id, Status::Fail, format!("line {} has no message", i + 1))
                    .value(line);
            }
        }
    }
    if n == 0 {
        return RuleResult::new(id, Status::Fail, "no log lines to check");
    }
    let dropped = if dropped > 0 {
        format!(" ({dropped} older lines not kept)")
    } else {
        String::new()
    };
    match nested_message {
        Some(l) => RuleResult::new(
            id,
            Status::Warn,
            format!(
                "{n} lines are JSON, but the message is nested under fields.message (from line {l}); shippers look for a top-level message{dropped}"
            ),
        ),
        None => RuleResult::new(
            id,
            Status::Pass,
            format!("{n} lines, each a JSON object with timestamp, level and message{dropped}"),
        ),
    }
}

pub(super) fn request_ids_rule(lines: &[String], main: &Probe) -> RuleResult {
    let id = "logs.request_ids";
    let ours: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(&main.cid) || l.contains(&main.tid))
        .collect();
    if ours.is_empty() {
        return RuleResult::new(
            id,
            Status::Fail,
            "no log line carries the request's correlation id or trace id",
        );
    }
    for line in &ours {
        let Some(v) = json(line) else {
            return RuleResult::new(id, Status::Fail, "a line of the request is not JSON")
                .value(*line);
        };
        let s = |keys: &[&str]| {
            find_key(&v, keys)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (t, sp, c) = (s(TRACE_KEYS), s(SPAN_KEYS), s(CORRELATION_KEYS));
        let missing: Vec<&str> = [
            (t.as_deref() != Some(main.tid.as_str()), "trace id"),
            (
                sp.as_deref().is_none_or(|x| SpanId::from_hex(x).is_err()),
                "span id",
            ),
            (c.as_deref() != Some(main.cid.as_str()), "correlation id"),
        ]
        .into_iter()
        .filter_map(|(bad, what)| bad.then_some(what))
        .collect();
        if !missing.is_empty() {
            return RuleResult::new(
                id,
                Status::Fail,
                format!("a line of the request lacks its {}", missing.join(", ")),
            )
            .value(*line);
        }
    }
    RuleResult::new(
        id,
        Status::Pass,
        format!(
            "{} line(s) of the request carry trace, span and correlation ids",
            ours.len()
        ),
    )
}

pub(super) fn secrets_rule<'a>(
    id: &'static str,
    what: &str,
    c: &Canaries,
    canary_resp: &Result<&Response, String>,
    haystack: impl Iterator<Item = (&'a str, &'a str)>,
    canary_seen: bool,
) -> RuleResult {
    if let Err(e) = canary_resp {
        return RuleResult::new(id, Status::Fail, format!("the canary request failed: {e}"));
    }
    let needles = c.needles();
    let mut scanned = 0usize;
    let mut leaked: Vec<&str> = Vec::new();
    let mut first: Option<String> = None;
    for (key, text) in haystack {
        scanned += 1;
        let mut earliest: Option<usize> = None;
        for (name, needle) in &needles {
            let Some(at) = text.find(*needle) else {
                continue;
            };
            if !leaked.contains(name) {
                leaked.push(name);
            }
            earliest = Some(earliest.map_or(at, |e: usize| e.min(at)));
        }
        if let Some(at) = earliest
            && first.is_none()
        {
            // Show where it is: a little context before the secret.
            let mut start = at.saturating_sub(24);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let excerpt = if start > 0 {
                format!("…{}", &text[start..])
            } else {
                text.to_owned()
            };
            // Spans and exported records name the attribute; a line is
            // shown as it is.
            first = Some(if what != "log" {
                format!("{key}={excerpt}")
            } else {
                excerpt
            });
        }
    }
    if let Some(shown) = first {
        leaked.sort_by_key(|n| needles.iter().position(|(x, _)| x == n));
        return RuleResult::new(
            id,
            Status::Fail,
            format!("canary secrets reached a {what}: {}", leaked.join(", ")),
        )
        .value(shown);
    }
    if !canary_seen {
        return RuleResult::new(
            id,
            Status::Warn,
            format!(
                "no {what} of the canary request found ({scanned} scanned, none leaked; the canary request may not be recorded)"
            ),
        );
    }
    RuleResult::new(
        id,
        Status::Pass,
        format!(
            "no canary secret (bearer, JWT, cloud key, query password) in {scanned} {}",
            match what {
                "log" => "log lines",
                "span" => "span strings (attributes, events, status, resource)",
                _ =>
                    "strings of exported log records (body, attributes, severity text, event name, resource)",
            }
        ),
    )
}
