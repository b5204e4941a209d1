//! The metrics rules: the text and OpenMetrics expositions, names, the HTTP
//! duration histogram, process metrics and label cardinality.

use std::collections::{BTreeMap, BTreeSet};

use crate::expo::{self, Family, Format};
use crate::http::Url;
use crate::report::{RuleResult, Status};

use super::Ctx;

pub(super) fn metrics_rules(ctx: &Ctx<'_>) -> Vec<RuleResult> {
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
}
