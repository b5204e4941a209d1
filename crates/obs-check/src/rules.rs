//! The rules. Each returns one [`RuleResult`]; ids are stable (README).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use obs_core::{CorrelationId, SpanId, TraceId};
use serde_json::Value;

use crate::expo::{self, Family, Format};
use crate::http::{self, HttpError, Response, Url};
use crate::otlp::Span;
use crate::report::{RuleResult, Status};
use crate::{Config, LogReader};

/// Probes must answer within this.
const PROBE_DEADLINE: Duration = Duration::from_secs(1);

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
    let (lines, spans) = loop {
        let lines = logs.lines();
        let spans = config.otlp.as_ref().map(crate::OtlpReceiver::spans);
        let logs_done = !logs.enabled()
            || lines.as_ref().is_ok_and(|l| {
                [&main.cid, &canary.cid]
                    .iter()
                    .all(|id| l.iter().any(|x| x.contains(id.as_str())))
            });
        let spans_done = spans.as_ref().is_none_or(|s| {
            [&main.tid, &canary.tid]
                .iter()
                .all(|t| s.iter().any(|x| &x.trace_id == *t))
        });
        if (logs_done && spans_done) || Instant::now() >= deadline {
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

// ------------------------------------------------------------- metrics ---

fn metrics_rules(ctx: &Ctx<'_>) -> Vec<RuleResult> {
    let url = ctx.admin(&ctx.config.metrics_path);
    let mut out = Vec::new();
    let text = ctx.send(
        &url,
        &[("accept", b"text/plain;version=0.0.4")],
        ctx.config.timeout,
    );
    let parsed: Result<(Vec<Family>, Format), RuleResult> = match &text {
        Err(e) => Err(RuleResult::new(
            "metrics.text",
            Status::Fail,
            format!("GET {url}: {e}"),
        )),
        Ok(r) if r.status != 200 => Err(RuleResult::new(
            "metrics.text",
            Status::Fail,
            format!("GET {url} answered {}", r.status),
        )),
        Ok(r) => {
            let format = if r.media_type() == "application/openmetrics-text" {
                Format::OpenMetrics
            } else {
                Format::Text
            };
            match expo::parse(&r.text(), format) {
                Ok(f) => Ok((f, format)),
                Err(e) => Err(RuleResult::new(
                    "metrics.text",
                    Status::Fail,
                    format!("the text exposition does not parse: {e}"),
                )
                .value(e.text)),
            }
        }
    };
    let families = match parsed {
        Ok((f, format)) => {
            let samples: usize = f.iter().map(|x| x.samples.len()).sum();
            out.push(if format == Format::Text {
                RuleResult::new(
                    "metrics.text",
                    Status::Pass,
                    format!("{} families, {samples} samples parse strictly", f.len()),
                )
            } else {
                // Valid, and Prometheus reads it; but a text/plain client
                // (an older scraper, a curl in an incident) gets a format
                // it did not ask for.
                RuleResult::new(
                    "metrics.text",
                    Status::Warn,
                    format!(
                        "asked for text/plain;version=0.0.4, got OpenMetrics ({} families, {samples} samples parse strictly)",
                        f.len()
                    ),
                )
            });
            f
        }
        Err(r) => {
            let reason = format!("no valid exposition ({})", r.reason);
            out.push(r);
            out.push(openmetrics_rule(ctx, &url));
            for id in [
                "metrics.naming",
                "metrics.http_duration",
                "metrics.process",
                "metrics.cardinality",
            ] {
                out.push(RuleResult::new(id, Status::Fail, reason.clone()));
            }
            return out;
        }
    };
    out.push(openmetrics_rule(ctx, &url));
    out.push(naming_rule(&families));
    out.push(http_duration_rule(&families));
    out.push(process_rule(&families));
    out.push(cardinality_rule(&families, ctx.config.max_series));
    out
}

fn openmetrics_rule(ctx: &Ctx<'_>, url: &Url) -> RuleResult {
    let id = "metrics.openmetrics";
    match ctx.send(url, &[("accept", b"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")], ctx.config.timeout) {
        Err(e) => RuleResult::new(id, Status::Fail, format!("GET {url}: {e}")),
        Ok(r) if r.status != 200 => RuleResult::new(id, Status::Fail, format!("GET {url} answered {}", r.status)),
        Ok(r) if r.media_type() != "application/openmetrics-text" => RuleResult::new(
            id,
            Status::Warn,
            "no OpenMetrics negotiation: asked for application/openmetrics-text, got another format (exemplars and _created need OpenMetrics)",
        )
        .value(r.header("content-type").unwrap_or("no content-type")),
        Ok(r) => match expo::parse(&r.text(), Format::OpenMetrics) {
            Ok(f) => RuleResult::new(id, Status::Pass, format!("negotiated OpenMetrics: {} families, ends with # EOF", f.len())),
            Err(e) => RuleResult::new(id, Status::Fail, format!("invalid OpenMetrics: {e}")).value(e.text),
        },
    }
}

/// Name tokens that are not base units.
const NON_BASE_UNITS: &[(&str, &str)] = &[
    ("milliseconds", "seconds"),
    ("millis", "seconds"),
    ("ms", "seconds"),
    ("microseconds", "seconds"),
    ("us", "seconds"),
    ("nanoseconds", "seconds"),
    ("ns", "seconds"),
    ("minutes", "seconds"),
    ("hours", "seconds"),
    ("days", "seconds"),
    ("kilobytes", "bytes"),
    ("kb", "bytes"),
    ("kib", "bytes"),
    ("megabytes", "bytes"),
    ("mb", "bytes"),
    ("mib", "bytes"),
    ("gigabytes", "bytes"),
    ("gb", "bytes"),
    ("gib", "bytes"),
    ("percent", "a ratio (0–1)"),
];

fn naming_rule(families: &[Family]) -> RuleResult {
    let mut problems: Vec<String> = Vec::new();
    for f in families {
        let n = &f.name;
        if n.contains(':') {
            problems.push(format!("{n}: colons are for recording rules"));
        } else if !n
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            || n.starts_with('_')
        {
            problems.push(format!("{n}: not snake_case"));
        }
        if f.help.as_deref().is_none_or(|h| h.trim().is_empty()) {
            problems.push(format!("{n}: no HELP"));
        }
        if f.kind == "untyped" {
            problems.push(format!("{n}: no TYPE"));
        }
        match f.kind.as_str() {
            "counter" => {
                if let Some(s) = f
                    .samples
                    .iter()
                    .find(|s| !s.name.ends_with("_total") && !s.name.ends_with("_created"))
                {
                    problems.push(format!("{}: a counter not ending in _total", s.name));
                }
            }
            _ => {
                if n.ends_with("_total") {
                    problems.push(format!(
                        "{n}: a {} ending in _total (reserved for counters)",
                        f.kind
                    ));
                }
            }
        }
        if !matches!(f.kind.as_str(), "histogram" | "summary") {
            for suffix in ["_count", "_sum", "_bucket"] {
                if n.ends_with(suffix) {
                    problems.push(format!(
                        "{n}: a {} ending in {suffix} (reserved for histogram and summary series)",
                        f.kind
                    ));
                }
            }
        }
        for tok in n.split('_') {
            if let Some((_, base)) = NON_BASE_UNITS.iter().find(|(u, _)| *u == tok) {
                problems.push(format!("{n}: unit {tok:?}, use {base}"));
            }
        }
    }
    if problems.is_empty() {
        RuleResult::new(
            "metrics.naming",
            Status::Pass,
            format!(
                "{} families: snake_case, HELP and TYPE, _total counters, base units",
                families.len()
            ),
        )
    } else {
        RuleResult::new(
            "metrics.naming",
            Status::Fail,
            format!("{} naming problem(s)", problems.len()),
        )
        .value(problems.join("; "))
    }
}

const ROUTE_LABELS: &[&str] = &["http_route", "route", "handler", "endpoint"];

fn http_duration_rule(families: &[Family]) -> RuleResult {
    let id = "metrics.http_duration";
    let is_http_duration = |n: &str| {
        n.starts_with("http_server") && n.contains("duration")
            || n == "http_request_duration_seconds"
    };
    let candidates: Vec<&Family> = families
        .iter()
        .filter(|f| is_http_duration(&f.name))
        .collect();
    let Some(f) = candidates.iter().find(|f| f.kind == "histogram").copied() else {
        return match candidates.first() {
            Some(f) => RuleResult::new(
                id,
                Status::Fail,
                format!(
                    "the HTTP server duration is a {}, not a histogram (percentiles need buckets)",
                    f.kind
                ),
            )
            .value(&f.name),
            None => RuleResult::new(
                id,
                Status::Fail,
                "no HTTP server duration histogram (http_server_request_duration_seconds)",
            ),
        };
    };
    if !f.name.ends_with("_seconds") {
        return RuleResult::new(
            id,
            Status::Fail,
            "the HTTP server duration histogram is not in seconds",
        )
        .value(&f.name);
    }
    let labels: BTreeSet<&str> = f
        .samples
        .iter()
        .flat_map(|s| s.labels.iter().map(|(k, _)| k.as_str()))
        .collect();
    match ROUTE_LABELS.iter().find(|l| labels.contains(**l)) {
        Some(l) => RuleResult::new(
            id,
            Status::Pass,
            format!("{} is a histogram with a {l} label", f.name),
        ),
        None if f.samples.is_empty() => RuleResult::new(
            id,
            Status::Fail,
            format!("{} has no series after the checker's requests", f.name),
        ),
        None => RuleResult::new(
            id,
            Status::Fail,
            format!(
                "{} has no route label ({})",
                f.name,
                ROUTE_LABELS.join(", ")
            ),
        )
        .value(labels.into_iter().collect::<Vec<_>>().join(",")),
    }
}

fn process_rule(families: &[Family]) -> RuleResult {
    let id = "metrics.process";
    let want = [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
    ];
    let has = |n: &str| {
        families
            .iter()
            .any(|f| f.samples.iter().any(|s| s.name == n))
    };
    let missing: Vec<&str> = want.iter().copied().filter(|n| !has(n)).collect();
    match missing.len() {
        0 => RuleResult::new(
            id,
            Status::Pass,
            "CPU, resident memory, start time and open fds are exported",
        ),
        n if n == want.len() => {
            RuleResult::new(id, Status::Fail, "no process metrics").value(want.join(", "))
        }
        _ => RuleResult::new(id, Status::Warn, "some process metrics are missing")
            .value(missing.join(", ")),
    }
}

/// Why a label value looks unbounded, if it does.
fn id_like(v: &str) -> Option<&'static str> {
    let b = v.as_bytes();
    let is_uuid = |s: &str| {
        s.len() == 36
            && s.bytes().enumerate().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    c == b'-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    let is_hex_id = |s: &str| {
        s.len() >= 16
            && s.bytes().all(|c| c.is_ascii_hexdigit())
            && s.bytes().any(|c| c.is_ascii_digit())
    };
    let is_num_id = |s: &str| s.len() >= 2 && s.bytes().all(|c| c.is_ascii_digit());
    if is_uuid(v) {
        return Some("a UUID");
    }
    if let Some((user, domain)) = v.split_once('@')
        && !user.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !v.contains(' ')
    {
        return Some("an email address");
    }
    if b.first() == Some(&b'/')
        && v.split('/')
            .any(|seg| is_uuid(seg) || is_hex_id(seg) || is_num_id(seg))
    {
        return Some("a raw path with an id in it (use the route template)");
    }
    if is_hex_id(v) {
        return Some("an id");
    }
    if v.len() >= 6 && is_num_id(v) {
        return Some("a numeric id");
    }
    None
}

fn cardinality_rule(families: &[Family], max_series: usize) -> RuleResult {
    let id = "metrics.cardinality";
    let mut largest: Option<(&str, usize)> = None;
    let mut over = Vec::new();
    let mut suspicious = Vec::new();
    for f in families {
        let mut series: BTreeSet<Vec<(&str, &str)>> = BTreeSet::new();
        let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for s in &f.samples {
            let key: Vec<(&str, &str)> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "le" && k != "quantile")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            for (k, v) in &key {
                values.entry(k).or_default().insert(v);
            }
            series.insert(key);
        }
        if largest.is_none_or(|(_, n)| series.len() > n) {
            largest = Some((&f.name, series.len()));
        }
        if series.len() > max_series {
            over.push(format!("{}: {} series", f.name, series.len()));
        }
        // Info metrics carry one series of build or instance facts.
        if f.kind == "info" || f.name.ends_with("_info") {
            continue;
        }
        for (label, vals) in values {
            if let Some((v, why)) = vals.iter().find_map(|v| id_like(v).map(|w| (*v, w))) {
                suspicious.push(format!(
                    "{}{{{label}}} ({} values) looks like {why}: {v}",
                    f.name,
                    vals.len()
                ));
            }
        }
    }
    let (name, n) = largest.unwrap_or(("none", 0));
    if !over.is_empty() {
        RuleResult::new(
            id,
            Status::Fail,
            format!("{} families over {max_series} series", over.len()),
        )
        .value(over.join("; "))
    } else if !suspicious.is_empty() {
        RuleResult::new(
            id,
            Status::Warn,
            format!(
                "{} label(s) with id-like values (unbounded cardinality)",
                suspicious.len()
            ),
        )
        .value(suspicious.join("; "))
    } else {
        RuleResult::new(
            id,
            Status::Pass,
            format!("largest family {name}: {n} series; no id-like label values"),
        )
    }
}

// -------------------------------------------------------------- probes ---

fn probe_rules(ctx: &Ctx<'_>) -> Vec<RuleResult> {
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

// --------------------------------------------------------- correlation ---

fn invalid_id_rule(
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

fn generated_rule(resps: &[Result<Response, HttpError>], idh: &str) -> RuleResult {
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

// --------------------------------------------------------------- trace ---

fn spans_rule(spans: &[Span], main: &Probe, (requests, rejected): (u64, u64)) -> RuleResult {
    let id = "trace.in_spans";
    let of_trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == main.tid).collect();
    if of_trace.is_empty() {
        let extra = match (requests, rejected) {
            (0, 0) => "; no export request arrived: is OTEL_EXPORTER_OTLP_ENDPOINT pointed at the checker, over OTLP/HTTP protobuf?".to_owned(),
            (_, 0) => String::new(),
            (_, r) => format!("; {r} export request(s) refused (the checker takes OTLP/HTTP protobuf on POST /v1/traces)"),
        };
        return RuleResult::new(
            id,
            Status::Fail,
            format!(
                "no span with the sent trace id arrived ({} spans received{extra})",
                spans.len()
            ),
        )
        .value(&main.tid);
    }
    match of_trace.iter().find(|s| s.parent_span_id == main.parent) {
        Some(s) => RuleResult::new(
            id,
            Status::Pass,
            format!(
                "{} span(s) continue the sent trace; {:?} is a child of the sent span",
                of_trace.len(),
                s.name
            ),
        ),
        None => RuleResult::new(
            id,
            Status::Fail,
            "spans carry the trace id, but none is a child of the sent span id",
        )
        .value(&main.parent),
    }
}

fn traceresponse_rule(resp: &Result<Response, HttpError>, main: &Probe) -> RuleResult {
    let id = "trace.traceresponse";
    let Ok(r) = resp else {
        return RuleResult::new(id, Status::Fail, "the request failed");
    };
    let Some(v) = r.header("traceresponse") else {
        return RuleResult::new(
            id,
            Status::Pass,
            "no traceresponse header (optional, W3C Trace Context Level 2)",
        );
    };
    let parts: Vec<&str> = v.split('-').collect();
    let valid = parts.len() == 4
        && parts[0] == "00"
        && TraceId::from_hex(parts[1]).is_ok()
        && SpanId::from_hex(parts[2]).is_ok()
        && parts[3].len() == 2
        && parts[3]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if !valid {
        return RuleResult::new(
            id,
            Status::Fail,
            "traceresponse is not version-traceid-childid-flags",
        )
        .value(v);
    }
    if parts[1] != main.tid {
        return RuleResult::new(
            id,
            Status::Fail,
            "traceresponse names another trace than the sent traceparent",
        )
        .value(v);
    }
    if parts[2] == main.parent {
        return RuleResult::new(
            id,
            Status::Fail,
            "traceresponse names the caller's span, not the server's",
        )
        .value(v);
    }
    RuleResult::new(
        id,
        Status::Pass,
        "traceresponse names the sent trace and the server's span",
    )
}

// ---------------------------------------------------------------- logs ---

fn logs_json_rule(lines: &[String], dropped: u64) -> RuleResult {
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

fn request_ids_rule(lines: &[String], main: &Probe) -> RuleResult {
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

fn secrets_rule<'a>(
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
            first = Some(if what == "span" {
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
            if what == "log" {
                "log lines"
            } else {
                "span strings (attributes, events, status, resource)"
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_like_values() {
        assert_eq!(
            id_like("550e8400-e29b-41d4-a716-446655440000"),
            Some("a UUID")
        );
        assert_eq!(id_like("ann@example.com"), Some("an email address"));
        assert!(id_like("/items/42").is_some());
        assert!(id_like("/users/550e8400-e29b-41d4-a716-446655440000/x").is_some());
        assert!(id_like("4bf92f3577b34da6a3ce929d0e0e4736").is_some());
        assert!(id_like("1234567").is_some());
        for ok in [
            "/items/{id}",
            "/items",
            "GET",
            "200",
            "0.005",
            "+Inf",
            "items-service",
            "0.1.0",
            "sqlite",
            "2xx",
            "x86_64",
        ] {
            assert_eq!(id_like(ok), None, "{ok}");
        }
    }

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
