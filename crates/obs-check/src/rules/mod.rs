//! The rules. Each returns one [`RuleResult`]; ids are stable (README).

use std::time::{Duration, Instant};

use obs_core::{SpanId, TraceId};
use serde_json::Value;

use crate::http::{self, HttpError, Response, Url};
use crate::report::{RuleResult, Status};
use crate::{Config, LogReader};

mod correlation;
mod logs;
mod metrics;
mod probes;
mod trace;

use correlation::{generated_rule, invalid_id_rule};
use logs::{logs_json_rule, request_ids_rule, secrets_rule};
use metrics::metrics_rules;
use probes::probe_rules;
use trace::{spans_rule, traceresponse_rule};

/// Keys under which log schemas put each field (searched at the top level
/// first, then in nested objects such as `fields` or `span`).
const TRACE_KEYS: &[&str] = &[
    "trace_id",
    "traceId",
    "trace.id",
    "traceid",
    "dd.trace_id",
    "logging.googleapis.com/trace",
];
const SPAN_KEYS: &[&str] = &[
    "span_id",
    "spanId",
    "span.id",
    "spanid",
    "dd.span_id",
    "logging.googleapis.com/spanId",
];
const CORRELATION_KEYS: &[&str] = &[
    "correlation_id",
    "correlationId",
    "correlation.id",
    "request_id",
    "requestId",
    "request.id",
    "x_request_id",
    "x-request-id",
    "x-correlation-id",
    "req_id",
];
const TIMESTAMP_KEYS: &[&str] = &["timestamp", "time", "ts", "@timestamp", "@t", "datetime"];
const LEVEL_KEYS: &[&str] = &[
    "level",
    "severity",
    "lvl",
    "log.level",
    "@l",
    "severity_text",
    "levelname",
];
const MESSAGE_KEYS: &[&str] = &["message", "msg", "@m", "@mt", "event"];

fn hex16() -> String {
    SpanId::random().to_hex().as_str().to_owned()
}

/// The values the checker sends, unique per run.
struct Probe {
    cid: String,
    tid: String,
    parent: String,
}

impl Probe {
    fn new(prefix: &str) -> Self {
        Self {
            cid: format!("obs-check-{prefix}-{}", hex16()),
            tid: TraceId::random().to_hex().as_str().to_owned(),
            parent: hex16(),
        }
    }

    fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.tid, self.parent)
    }
}

/// Secrets sent in the canary request; none may reach logs or spans.
struct Canaries {
    bearer: String,
    jwt: String,
    cloud_key: String,
    password: String,
}

impl Canaries {
    fn new() -> Self {
        let sig = format!("{}{}", hex16(), hex16());
        Self {
            bearer: format!("obschk{}{}", hex16(), hex16()),
            // {"alg":"HS256","typ":"JWT"} . {"sub":"obs-check","canary":true} . random signature
            jwt: format!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvYnMtY2hlY2siLCJjYW5hcnkiOnRydWV9.{sig}"
            ),
            cloud_key: format!("AKIA{}", hex16().to_ascii_uppercase()),
            password: format!("pw-{}", hex16()),
        }
    }

    /// What to look for: each secret's distinctive part, with its name.
    fn needles(&self) -> Vec<(&'static str, &str)> {
        let jwt_sig = self.jwt.rsplit('.').next().unwrap_or(&self.jwt);
        vec![
            ("bearer token", self.bearer.as_str()),
            ("JWT", jwt_sig),
            ("cloud key", self.cloud_key.as_str()),
            ("password in the query", self.password.as_str()),
        ]
    }
}

struct Ctx<'a> {
    config: &'a Config,
}

impl Ctx<'_> {
    fn send(
        &self,
        url: &Url,
        headers: &[(&str, &[u8])],
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        http::request("GET", url, headers, &[], timeout)
    }

    fn admin(&self, target: &str) -> Url {
        let base = self.config.admin.path().trim_end_matches('/');
        self.config.admin.with_target(&format!("{base}{target}"))
    }
}

pub(crate) fn run(config: &Config, logs: &LogReader) -> Vec<RuleResult> {
    let ctx = Ctx { config };
    let mut out = Vec::new();
    let idh = config.id_header.as_str();

    // ---- requests to the service ------------------------------------------
    let main = Probe::new("main");
    let main_resp = ctx.send(
        &config.url,
        &[
            (idh, main.cid.as_bytes()),
            ("traceparent", main.traceparent().as_bytes()),
        ],
        config.timeout,
    );
    let oversize = format!("obs-check-oversize-{}", "x".repeat(300));
    let control = format!("obs-check-ctl-{}\t\u{9b}31m", hex16());
    let secret_id = Canaries::new().jwt;
    let invalid: Vec<(&'static str, &str, String)> = vec![
        (
            "correlation.oversize",
            "an oversize id (319 bytes)",
            oversize,
        ),
        (
            "correlation.control_chars",
            "an id with control characters (tab, C1 CSI)",
            control,
        ),
        (
            "correlation.secret_shaped",
            "a secret-shaped id (a JWT)",
            secret_id,
        ),
    ];
    let invalid_resps: Vec<_> = invalid
        .iter()
        .map(|(_, _, v)| ctx.send(&config.url, &[(idh, v.as_bytes())], config.timeout))
        .collect();
    let missing = [
        ctx.send(&config.url, &[], config.timeout),
        ctx.send(&config.url, &[], config.timeout),
    ];

    let canary = Probe::new("canary");
    let secrets = Canaries::new();
    let canary_url = {
        let sep = if config.url.target.contains('?') {
            '&'
        } else {
            '?'
        };
        config.url.with_target(&format!(
            "{}{sep}password={}&aws_access_key_id={}&id_token={}",
            config.url.target, secrets.password, secrets.cloud_key, secrets.jwt
        ))
    };
    let bearer = format!("Bearer {}", secrets.bearer);
    let cookie = format!("session={}", secrets.jwt);
    let canary_resp = ctx.send(
        &canary_url,
        &[
            (idh, canary.cid.as_bytes()),
            ("traceparent", canary.traceparent().as_bytes()),
            ("authorization", bearer.as_bytes()),
            ("cookie", cookie.as_bytes()),
        ],
        config.timeout,
    );

    // ---- metrics (after the requests, so they are counted) ---------------
    out.extend(metrics_rules(&ctx));

    // ---- probes ------------------------------------------------------------
    out.extend(probe_rules(&ctx));

    // ---- wait for the requests' log lines and spans ------------------------
    let deadline = Instant::now() + config.wait;
    // When the lines and spans are in: a service that exports its logs may
    // send its first batch a little after its spans.
    let mut rest_done: Option<Instant> = None;
    let (lines, spans) = loop {
        let lines = logs.lines();
        let logs_done = !logs.enabled()
            || lines.as_ref().is_ok_and(|l| {
                [&main.cid, &canary.cid]
                    .iter()
                    .all(|id| l.iter().any(|x| x.contains(id.as_str())))
            });
        // Polled in place: the receiver may hold many spans and records.
        let spans_done = config.otlp.as_ref().is_none_or(|rx| {
            rx.with_spans(|s| {
                [&main.tid, &canary.tid]
                    .iter()
                    .all(|t| s.iter().any(|x| &x.trace_id == *t))
            })
        });
        if logs_done && spans_done {
            rest_done.get_or_insert_with(Instant::now);
        }
        // Exported log records: the canary's, once the service sends any;
        // none at all a second after the rest came in means it exports none.
        let exported_done = config.otlp.as_ref().is_none_or(|rx| {
            rx.with_logs(|r| {
                if r.is_empty() {
                    rest_done.is_some_and(|t| t.elapsed() >= Duration::from_secs(1))
                } else {
                    r.iter().any(|x| x.trace_id == canary.tid)
                }
            })
        });
        if (logs_done && spans_done && exported_done) || Instant::now() >= deadline {
            // A little longer, for the lines written after the first ones.
            std::thread::sleep(Duration::from_millis(200));
            break (
                logs.lines(),
                config.otlp.as_ref().map(crate::OtlpReceiver::spans),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Option<Result<Vec<String>, String>> = logs.enabled().then_some(lines);
    let log_lines: Option<&[String]> = match &lines {
        Some(Ok(l)) => Some(l),
        _ => None,
    };

    // ---- correlation -------------------------------------------------------
    out.push(match &main_resp {
        Err(e) => RuleResult::new(
            "correlation.echo",
            Status::Fail,
            format!("the request failed: {e}"),
        )
        .value(config.url.to_string()),
        Ok(r) => match r.header(idh) {
            Some(v) if v == main.cid => RuleResult::new(
                "correlation.echo",
                Status::Pass,
                format!("{idh} echoed unchanged"),
            ),
            Some(v) => RuleResult::new(
                "correlation.echo",
                Status::Fail,
                format!("{idh} answered with another value than the valid one sent"),
            )
            .value(v),
            None => RuleResult::new(
                "correlation.echo",
                Status::Fail,
                format!("no {idh} in the response to a request that sent a valid one"),
            ),
        },
    });
    for ((id, what, value), resp) in invalid.iter().zip(&invalid_resps) {
        out.push(invalid_id_rule(id, what, value, resp, idh, log_lines));
    }
    out.push(generated_rule(&missing, idh));
    out.push(match log_lines {
        None => skip_logs("correlation.in_logs", &lines),
        Some(l) => {
            let with_key = l.iter().filter_map(|x| json(x)).any(|v| {
                find_key(&v, CORRELATION_KEYS)
                    .is_some_and(|x| x.as_str() == Some(main.cid.as_str()))
            });
            if with_key {
                RuleResult::new(
                    "correlation.in_logs",
                    Status::Pass,
                    "the request's log lines carry its correlation id",
                )
            } else if l.iter().any(|x| x.contains(&main.cid)) {
                RuleResult::new(
                    "correlation.in_logs",
                    Status::Warn,
                    "the id appears in the logs, but not in a correlation id field",
                )
                .value(
                    l.iter()
                        .find(|x| x.contains(&main.cid))
                        .cloned()
                        .unwrap_or_default(),
                )
            } else {
                RuleResult::new(
                    "correlation.in_logs",
                    Status::Fail,
                    "no log line carries the correlation id the request sent",
                )
                .value(&main.cid)
            }
        }
    });

    // ---- trace -------------------------------------------------------------
    out.push(match log_lines {
        None => skip_logs("trace.in_logs", &lines),
        Some(l) => {
            let hit = l.iter().filter_map(|x| json(x)).any(|v| {
                find_key(&v, TRACE_KEYS).is_some_and(|x| x.as_str() == Some(main.tid.as_str()))
            });
            if hit {
                RuleResult::new("trace.in_logs", Status::Pass, "the sent traceparent's trace id is on the request's log lines")
            } else if l.iter().any(|x| x.contains(&main.tid)) {
                RuleResult::new("trace.in_logs", Status::Warn, "the trace id appears in the logs, but not in a trace id field")
            } else {
                RuleResult::new("trace.in_logs", Status::Fail, "no log line carries the trace id of the sent traceparent (not continued, or not logged)").value(&main.tid)
            }
        }
    });
    out.push(match &spans {
        None => RuleResult::new(
            "trace.in_spans",
            Status::Skip,
            "needs --otlp-port (the service exporting its spans to the checker)",
        ),
        Some(spans) => spans_rule(
            spans,
            &main,
            config
                .otlp
                .as_ref()
                .map_or((0, 0), |r| (r.requests(), r.rejected())),
        ),
    });
    out.push(traceresponse_rule(&main_resp, &main));

    // ---- logs --------------------------------------------------------------
    out.push(match &lines {
        None => skip_logs("logs.json", &lines),
        Some(Err(e)) => RuleResult::new(
            "logs.json",
            Status::Fail,
            format!("cannot read the logs: {e}"),
        ),
        Some(Ok(l)) => logs_json_rule(l, logs.dropped()),
    });
    out.push(match log_lines {
        None => skip_logs("logs.request_ids", &lines),
        Some(l) => request_ids_rule(l, &main),
    });

    // ---- secrets -----------------------------------------------------------
    let canary_ok = canary_resp.as_ref().map_err(ToString::to_string);
    out.push(match log_lines {
        None => skip_logs("secrets.logs", &lines),
        Some(l) => secrets_rule(
            "secrets.logs",
            "log",
            &secrets,
            &canary_ok,
            l.iter().map(|x| ("line", x.as_str())),
            l.iter().any(|x| x.contains(&canary.cid)),
        ),
    });
    out.push(match &spans {
        None => RuleResult::new("secrets.spans", Status::Skip, "needs --otlp-port"),
        Some(s) => secrets_rule(
            "secrets.spans",
            "span",
            &secrets,
            &canary_ok,
            s.iter()
                .flat_map(|x| x.strings.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            s.iter().any(|x| x.trace_id == canary.tid),
        ),
    });
    // Log records the service exports over OTLP (`/v1/logs`), when it does.
    let exported = config.otlp.as_ref().map(crate::OtlpReceiver::logs);
    out.push(match &exported {
        None => RuleResult::new("secrets.exported_logs", Status::Skip, "needs --otlp-port"),
        Some(r) if r.is_empty() => RuleResult::new(
            "secrets.exported_logs",
            Status::Skip,
            "no log record arrived over OTLP (the service does not export its logs)",
        ),
        Some(r) => secrets_rule(
            "secrets.exported_logs",
            "log record exported over OTLP",
            &secrets,
            &canary_ok,
            r.iter()
                .flat_map(|x| x.strings.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            r.iter().any(|x| x.trace_id == canary.tid),
        ),
    });
    out
}

fn skip_logs(id: &'static str, lines: &Option<Result<Vec<String>, String>>) -> RuleResult {
    match lines {
        Some(Err(e)) => RuleResult::new(id, Status::Fail, format!("cannot read the logs: {e}")),
        _ => RuleResult::new(id, Status::Skip, "needs --logs"),
    }
}

fn json(line: &str) -> Option<Value> {
    serde_json::from_str::<Value>(line)
        .ok()
        .filter(Value::is_object)
}

/// The first value under one of `keys`: top level first, then nested
/// objects and arrays (breadth first, a bounded depth).
fn find_key<'v>(v: &'v Value, keys: &[&str]) -> Option<&'v Value> {
    let mut level = vec![v];
    for _ in 0..4 {
        let mut next = Vec::new();
        for v in level {
            match v {
                Value::Object(m) => {
                    if let Some(x) = keys.iter().find_map(|k| m.get(*k)) {
                        return Some(x);
                    }
                    next.extend(m.values());
                }
                Value::Array(a) => next.extend(a.iter()),
                _ => {}
            }
        }
        level = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use obs_core::CorrelationId;

    use super::*;

    #[test]
    fn keys_are_found_nested() {
        let v: Value = serde_json::json!({"level":"INFO","span":{"trace_id":"t"},"spans":[{"request_id":"r"}]});
        assert_eq!(find_key(&v, TRACE_KEYS), Some(&Value::from("t")));
        assert_eq!(find_key(&v, CORRELATION_KEYS), Some(&Value::from("r")));
        assert_eq!(find_key(&v, SPAN_KEYS), None);
    }

    #[test]
    fn canaries_are_valid_shapes() {
        let c = Canaries::new();
        assert_eq!(c.jwt.split('.').count(), 3);
        assert!(c.cloud_key.starts_with("AKIA") && c.cloud_key.len() == 20);
        // The secret-shaped correlation id must be refused by obs's own rule,
        // or the rule would test nothing.
        assert!(!CorrelationId::is_valid(c.jwt.as_bytes()));
    }
}
