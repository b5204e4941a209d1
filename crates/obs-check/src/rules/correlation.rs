//! The correlation rules on the checker's extra requests: an invalid id
//! refused or replaced, a missing id generated (the echo and log rules are in
//! `run`).

use obs_core::CorrelationId;

use crate::http::{HttpError, Response};
use crate::report::{RuleResult, Status};

pub(super) fn invalid_id_rule(
    id: &'static str,
    what: &str,
    sent: &str,
    resp: &Result<Response, HttpError>,
    idh: &str,
    logs: Option<&[String]>,
) -> RuleResult {
    let r = match resp {
        Err(e) => {
            return RuleResult::new(
                id,
                Status::Fail,
                format!("the request with {what} failed: {e}"),
            );
        }
        Ok(r) => r,
    };
    // The distinctive part of the value: an echo with it is an echo, even
    // when the rest was trimmed.
    let core = sent
        .trim_start_matches("obs-check-")
        .split(['\t', '\u{9b}'])
        .next()
        .unwrap_or(sent);
    let core = if core.len() > 40 {
        &core[core.len() - 40..]
    } else {
        core
    };
    let echoed: Vec<&str> = r
        .headers_named(idh)
        .filter(|v| v.contains(core) || *v == sent)
        .collect();
    if let Some(v) = echoed.first() {
        return RuleResult::new(id, Status::Fail, format!("{what} was echoed in {idh}")).value(*v);
    }
    if let Some(line) = logs.and_then(|l| l.iter().find(|x| x.contains(core))) {
        return RuleResult::new(id, Status::Fail, format!("{what} reached the logs")).value(line);
    }
    match r.header(idh) {
        Some(v) if CorrelationId::is_valid(v.as_bytes()) => {
            RuleResult::new(id, Status::Pass, format!("{what} was replaced by a new id"))
        }
        Some(v) => RuleResult::new(
            id,
            Status::Fail,
            format!("{what} was answered with an invalid id"),
        )
        .value(v),
        None if (400..500).contains(&r.status) => RuleResult::new(
            id,
            Status::Pass,
            format!("{what} was refused with {}", r.status),
        ),
        None => RuleResult::new(
            id,
            Status::Fail,
            format!("{what} was dropped, not replaced: no {idh} in the response"),
        ),
    }
}

pub(super) fn generated_rule(resps: &[Result<Response, HttpError>], idh: &str) -> RuleResult {
    let id = "correlation.generated";
    let mut ids = Vec::new();
    for r in resps {
        match r {
            Err(e) => return RuleResult::new(id, Status::Fail, format!("the request failed: {e}")),
            Ok(r) => match r.header(idh) {
                None => {
                    return RuleResult::new(
                        id,
                        Status::Fail,
                        format!("no {idh} generated for a request without one"),
                    );
                }
                Some(v) if !CorrelationId::is_valid(v.as_bytes()) => {
                    return RuleResult::new(
                        id,
                        Status::Fail,
                        "the generated id is not a valid correlation id",
                    )
                    .value(v);
                }
                Some(v) => ids.push(v.to_owned()),
            },
        }
    }
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return RuleResult::new(id, Status::Fail, "two requests got the same generated id")
            .value(&ids[0]);
    }
    RuleResult::new(
        id,
        Status::Pass,
        format!("a missing {idh} is generated, unique per request"),
    )
}
