//! The probe rules: `/livez`, `/readyz`, `/healthz`, `?verbose` and the
//! `application/health+json` body.

use std::time::Duration;

use serde_json::Value;

use crate::http::HttpError;
use crate::report::{RuleResult, Status};

use super::Ctx;

/// Probes must answer within this.
const PROBE_DEADLINE: Duration = Duration::from_secs(1);

pub(super) fn probe_rules(ctx: &Ctx<'_>) -> Vec<RuleResult> {
    let mut out = Vec::new();
    for (id, path) in [
        ("probes.livez", "/livez"),
        ("probes.readyz", "/readyz"),
        ("probes.healthz", "/healthz"),
    ] {
        let url = ctx.admin(path);
        out.push(match ctx.send(&url, &[], PROBE_DEADLINE) {
            Err(HttpError::Timeout(_)) => RuleResult::new(
                id,
                Status::Fail,
                format!("no answer within {} ms", PROBE_DEADLINE.as_millis()),
            )
            .value(url.to_string()),
            Err(e) => RuleResult::new(id, Status::Fail, e.to_string()).value(url.to_string()),
            Ok(r) if r.status == 401 || r.status == 403 => RuleResult::new(
                id,
                Status::Fail,
                format!(
                    "answered {} without credentials: probes must not need auth",
                    r.status
                ),
            ),
            Ok(r) if r.status != 200 => {
                RuleResult::new(id, Status::Fail, format!("answered {}, not 200", r.status))
                    .value(r.text())
            }
            Ok(r) => RuleResult::new(
                id,
                Status::Pass,
                format!("200 in {} ms without auth", r.elapsed.as_millis()),
            ),
        });
    }
    // ?verbose: a readable body on each probe.
    let mut problems = Vec::new();
    for path in ["/livez?verbose", "/readyz?verbose", "/healthz?verbose"] {
        match ctx.send(&ctx.admin(path), &[], PROBE_DEADLINE) {
            Err(e) => problems.push(format!("{path}: {e}")),
            Ok(r) if r.status != 200 => problems.push(format!("{path}: answered {}", r.status)),
            Ok(r) => match std::str::from_utf8(&r.body) {
                Err(_) => problems.push(format!("{path}: body is not UTF-8")),
                Ok(t) if t.trim().is_empty() => problems.push(format!("{path}: empty body")),
                Ok(t) if t.len() > 64 * 1024 => {
                    problems.push(format!("{path}: body of {} bytes", t.len()))
                }
                Ok(t)
                    if t.chars()
                        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
                {
                    problems.push(format!("{path}: control characters in the body"));
                }
                Ok(_) => {}
            },
        }
    }
    out.push(if problems.is_empty() {
        RuleResult::new(
            "probes.verbose",
            Status::Pass,
            "?verbose answers 200 with readable text on every probe",
        )
    } else {
        RuleResult::new("probes.verbose", Status::Fail, "?verbose is not readable")
            .value(problems.join("; "))
    });
    out.push(health_json_rule(ctx));
    out
}

const HEALTH_STATUSES: &[&str] = &["pass", "fail", "warn"];
const HEALTH_ALIASES: &[&str] = &["ok", "up", "error", "down"];

fn health_json_rule(ctx: &Ctx<'_>) -> RuleResult {
    let id = "probes.health_json";
    let url = ctx.admin("/healthz");
    let r = match ctx.send(
        &url,
        &[("accept", b"application/health+json")],
        PROBE_DEADLINE,
    ) {
        Err(e) => return RuleResult::new(id, Status::Fail, e.to_string()),
        Ok(r) => r,
    };
    if r.media_type() != "application/health+json" {
        return RuleResult::new(
            id,
            Status::Fail,
            "Accept: application/health+json is not answered with that media type",
        )
        .value(r.header("content-type").unwrap_or("no content-type"));
    }
    let v: Value = match serde_json::from_slice(&r.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return RuleResult::new(id, Status::Fail, "the body is not a JSON object")
                .value(r.text());
        }
    };
    let mut problems = Vec::new();
    let mut warn = Vec::new();
    let status = v["status"].as_str();
    match status {
        Some(s) if HEALTH_STATUSES.contains(&s) => {}
        Some(s) if HEALTH_ALIASES.contains(&s) => warn.push(format!(
            "status {s:?} is a compatibility alias; the draft asks for pass/fail/warn"
        )),
        Some(s) => problems.push(format!("status {s:?} is not pass, fail or warn")),
        None => problems.push("no string \"status\" (required)".into()),
    }
    let fail = matches!(status, Some("fail" | "error" | "down"));
    if fail && !(400..600).contains(&r.status) {
        problems.push(format!(
            "status fail with HTTP {} (the draft requires 4xx–5xx)",
            r.status
        ));
    }
    if !fail && status.is_some() && !(200..400).contains(&r.status) {
        problems.push(format!(
            "status {:?} with HTTP {} (the draft requires 2xx–3xx)",
            status.unwrap_or(""),
            r.status
        ));
    }
    for key in ["version", "releaseId", "output", "serviceId", "description"] {
        if !v[key].is_null() && !v[key].is_string() {
            problems.push(format!("{key} is not a string"));
        }
    }
    if !v["notes"].is_null()
        && !v["notes"]
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string))
    {
        problems.push("notes is not an array of strings".into());
    }
    if !v["links"].is_null() && !v["links"].is_object() {
        problems.push("links is not an object".into());
    }
    match &v["checks"] {
        Value::Null => {}
        Value::Object(checks) => {
            for (name, list) in checks {
                let Some(list) = list.as_array() else {
                    problems.push(format!("checks[{name:?}] is not an array"));
                    continue;
                };
                for c in list {
                    if !c.is_object() {
                        problems.push(format!("checks[{name:?}] holds a non-object"));
                        continue;
                    }
                    if let Some(s) = c.get("status")
                        && !s.as_str().is_some_and(|s| {
                            HEALTH_STATUSES.contains(&s) || HEALTH_ALIASES.contains(&s)
                        })
                    {
                        problems.push(format!("checks[{name:?}] status {s}"));
                    }
                    for key in [
                        "componentId",
                        "componentType",
                        "observedUnit",
                        "time",
                        "output",
                    ] {
                        if c.get(key).is_some_and(|x| !x.is_string()) {
                            problems.push(format!("checks[{name:?}].{key} is not a string"));
                        }
                    }
                    if c.get("affectedEndpoints").is_some_and(|x| {
                        !x.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                    }) {
                        problems.push(format!(
                            "checks[{name:?}].affectedEndpoints is not an array of strings"
                        ));
                    }
                }
            }
        }
        _ => problems.push("checks is not an object".into()),
    }
    if !problems.is_empty() {
        RuleResult::new(
            id,
            Status::Fail,
            "the application/health+json body does not follow the IETF draft",
        )
        .value(problems.join("; "))
    } else if !warn.is_empty() {
        RuleResult::new(id, Status::Warn, warn.join("; "))
    } else {
        let n = v["checks"].as_object().map_or(0, serde_json::Map::len);
        RuleResult::new(
            id,
            Status::Pass,
            format!(
                "application/health+json per the IETF draft: status {:?}, {n} checks",
                status.unwrap_or("")
            ),
        )
    }
}
