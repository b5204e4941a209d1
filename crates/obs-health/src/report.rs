//! Probe results and their two renderings: Kubernetes-style plain text and
//! the IETF `application/health+json` draft.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::entry::{Entry, Outcome, ServiceInfo};
use crate::result::{Observation, ObservedValue, Status};
use crate::time::write_rfc3339;

/// Which checks a probe evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Probe {
    /// Liveness checks (`/livez`).
    Liveness,
    /// Readiness checks and the built-in `shutdown` check (`/readyz`).
    Readiness,
    /// Startup checks (`/startupz`).
    Startup,
    /// Every check (`/healthz`).
    All,
}

impl Probe {
    /// The endpoint name: `livez`, `readyz`, `startupz` or `healthz`.
    ///
    /// ```
    /// assert_eq!(obs_health::Probe::All.endpoint(), "healthz");
    /// ```
    pub const fn endpoint(self) -> &'static str {
        match self {
            Probe::Liveness => "livez",
            Probe::Readiness => "readyz",
            Probe::Startup => "startupz",
            Probe::All => "healthz",
        }
    }

    /// The probe served at `/{endpoint}`.
    ///
    /// ```
    /// assert_eq!(obs_health::Probe::from_endpoint("livez"), Some(obs_health::Probe::Liveness));
    /// ```
    pub fn from_endpoint(endpoint: &str) -> Option<Probe> {
        Some(match endpoint {
            "livez" => Probe::Liveness,
            "readyz" => Probe::Readiness,
            "startupz" => Probe::Startup,
            "healthz" => Probe::All,
            _ => return None,
        })
    }
}

/// Options of one probe, the programmatic twin of the HTTP query string.
///
/// ```
/// use obs_health::ProbeOptions;
/// let opts = ProbeOptions::default().exclude("cache").tag("db");
/// assert_eq!(opts.excluded(), ["cache"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeOptions {
    pub(crate) exclude: Vec<String>,
    pub(crate) tags: Vec<String>,
}

impl ProbeOptions {
    /// Skips the check `name`: it is reported as `excluded: ok` and not run
    /// (Kubernetes `?exclude=name`).
    pub fn exclude(mut self, name: impl Into<String>) -> Self {
        self.exclude.push(name.into());
        self
    }

    /// Keeps only checks carrying one of the given tags (`?tag=`). With a
    /// tag filter the built-in `shutdown` check is left out.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// The excluded names.
    pub fn excluded(&self) -> &[String] {
        &self.exclude
    }

    /// The tag filter.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// One check's part of a [`Report`].
#[derive(Debug)]
pub struct CheckReport {
    entry: Arc<Entry>,
    outcome: Outcome,
}

const PENDING_OUTPUT: &str = "no result yet: waiting for the first background run";
const STALE_OUTPUT: &str =
    "stale result: the background poller has missed two rounds (stopped or starved)";

impl CheckReport {
    pub(crate) fn new(entry: Arc<Entry>, outcome: Outcome) -> Self {
        Self { entry, outcome }
    }

    pub(crate) fn entry(&self) -> &Arc<Entry> {
        &self.entry
    }

    pub(crate) fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = outcome;
    }

    /// The check's name.
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// The check's own status (`pass` when excluded; in cached mode `fail`
    /// while no result exists yet or when the latest one is stale).
    pub fn status(&self) -> Status {
        match &self.outcome {
            Outcome::Excluded => Status::Pass,
            Outcome::Pending | Outcome::Stale(_) => Status::Fail,
            Outcome::Done(r) => r.result.status(),
        }
    }

    /// The check's message.
    pub fn output(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Excluded => None,
            Outcome::Pending => Some(PENDING_OUTPUT),
            Outcome::Stale(_) => Some(STALE_OUTPUT),
            Outcome::Done(r) => r.result.output(),
        }
    }

    /// The observed values of the run.
    pub fn observations(&self) -> &[Observation] {
        match &self.outcome {
            Outcome::Done(r) | Outcome::Stale(r) => r.result.observations(),
            _ => &[],
        }
    }

    /// When the run finished (`None` if excluded or pending).
    pub fn time(&self) -> Option<SystemTime> {
        match &self.outcome {
            Outcome::Done(r) | Outcome::Stale(r) => Some(r.time),
            _ => None,
        }
    }

    /// How long the run took (`None` if excluded or pending).
    pub fn duration(&self) -> Option<Duration> {
        match &self.outcome {
            Outcome::Done(r) | Outcome::Stale(r) => Some(r.duration),
            _ => None,
        }
    }

    /// Whether a failure of this check fails the probe.
    pub fn is_critical(&self) -> bool {
        self.entry.critical
    }

    /// Whether the probe excluded it.
    pub fn is_excluded(&self) -> bool {
        matches!(self.outcome, Outcome::Excluded)
    }

    /// The IETF `componentType`, if set.
    pub fn component_type(&self) -> Option<&str> {
        self.entry.component_type.as_deref()
    }

    /// What this check contributes to the probe's status.
    fn effective(&self) -> Status {
        match (self.status(), self.entry.critical) {
            (Status::Fail, false) => Status::Warn,
            (s, _) => s,
        }
    }
}

/// The result of a probe.
///
/// ```
/// use obs_health::{Check, CheckResult, Health, Probe, ProbeOptions};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let health = Health::builder()
///     .check(Check::new("db", || async { CheckResult::fail("connection refused") }))
///     .build()
///     .unwrap();
/// let report = health.probe(Probe::Readiness, &ProbeOptions::default()).await;
/// assert_eq!(report.http_code(), 503);
/// assert_eq!(
///     report.to_text(false),
///     "[-]db failed: connection refused\n[+]shutdown ok\nreadyz check failed\n"
/// );
/// # });
/// ```
#[derive(Debug)]
pub struct Report {
    probe: Probe,
    status: Status,
    checks: Vec<CheckReport>,
    unmatched_excludes: Vec<String>,
    info: Arc<ServiceInfo>,
}

impl Report {
    pub(crate) fn new(
        probe: Probe,
        checks: Vec<CheckReport>,
        unmatched_excludes: Vec<String>,
        info: Arc<ServiceInfo>,
    ) -> Self {
        let status = checks
            .iter()
            .map(CheckReport::effective)
            .max()
            .unwrap_or(Status::Pass);
        Self {
            probe,
            status,
            checks,
            unmatched_excludes,
            info,
        }
    }

    /// The probe's status: `fail` if a critical check fails, `warn` if a
    /// check warns or a non-critical check fails, else `pass`.
    pub fn status(&self) -> Status {
        self.status
    }

    /// 200 on pass and warn, 503 on fail.
    pub fn http_code(&self) -> u16 {
        self.status.http_code()
    }

    /// Which probe this is.
    pub fn probe(&self) -> Probe {
        self.probe
    }

    /// The checks, in registration order (built-in `shutdown` last).
    pub fn checks(&self) -> &[CheckReport] {
        &self.checks
    }

    /// Names given to exclude that matched no check of this probe.
    pub fn unmatched_excludes(&self) -> &[String] {
        &self.unmatched_excludes
    }

    /// The reason shown for a failing or warning check over HTTP.
    fn shown_reason<'a>(&self, c: &'a CheckReport) -> Option<Cow<'a, str>> {
        if self.info.withhold_reasons && c.output().is_some() {
            return Some(Cow::Borrowed("reason withheld"));
        }
        c.output().map(one_line)
    }

    /// Kubernetes-style plain text, as the API server writes it.
    ///
    /// On failure the check list is always written (then
    /// `"{endpoint} check failed"`); on success `"ok"`, or with `verbose` the
    /// list then `"{endpoint} check passed"`. Lines are `[+]name ok`,
    /// `[+]name excluded: ok`, `[+]name warn: output`, `[-]name failed:
    /// output` (non-critical: `[-]name failed (non-critical): output`), then
    /// a `warn: some health checks cannot be excluded: no matches for
    /// "x"` line for unknown excludes.
    pub fn to_text(&self, verbose: bool) -> String {
        if self.status != Status::Fail && !verbose {
            return "ok".to_owned();
        }
        let mut out = String::with_capacity(32 * (self.checks.len() + 1));
        for c in &self.checks {
            let name = c.name();
            match (c.is_excluded(), c.status()) {
                (true, _) => {
                    let _ = writeln!(out, "[+]{name} excluded: ok");
                }
                (false, Status::Pass) => {
                    let _ = writeln!(out, "[+]{name} ok");
                }
                (false, Status::Warn) => match self.shown_reason(c) {
                    Some(o) => {
                        let _ = writeln!(out, "[+]{name} warn: {o}");
                    }
                    None => {
                        let _ = writeln!(out, "[+]{name} warn");
                    }
                },
                (false, Status::Fail) => {
                    let qualifier = if c.is_critical() {
                        ""
                    } else {
                        " (non-critical)"
                    };
                    let reason = self
                        .shown_reason(c)
                        .unwrap_or(Cow::Borrowed("no reason given"));
                    let _ = writeln!(out, "[-]{name} failed{qualifier}: {reason}");
                }
            }
        }
        if !self.unmatched_excludes.is_empty() {
            let _ = writeln!(out, "warn: {}", self.unmatched_note());
        }
        let verdict = if self.status == Status::Fail {
            "failed"
        } else {
            "passed"
        };
        let _ = writeln!(out, "{} check {verdict}", self.probe.endpoint());
        out
    }

    /// Plain text for a single-check endpoint (`/readyz/<name>`): `ok`, or
    /// `"[-]name failed: output"` on failure.
    pub fn to_single_text(&self) -> String {
        match self.checks.first() {
            Some(c) if c.status() == Status::Fail => {
                let reason = self
                    .shown_reason(c)
                    .unwrap_or(Cow::Borrowed("no reason given"));
                format!("[-]{} failed: {reason}\n", c.name())
            }
            Some(c) if c.status() == Status::Warn => match self.shown_reason(c) {
                Some(o) => format!("ok (warn: {o})"),
                None => "ok (warn)".to_owned(),
            },
            _ => "ok".to_owned(),
        }
    }

    fn unmatched_note(&self) -> String {
        let quoted: Vec<String> = self
            .unmatched_excludes
            .iter()
            .map(|n| format!("{n:?}"))
            .collect();
        format!(
            "some health checks cannot be excluded: no matches for {}",
            quoted.join(", ")
        )
    }

    /// The IETF `application/health+json` body (draft-inadarei-api-health-check-06).
    ///
    /// Top level: `status`, then `version`, `releaseId`, `serviceId`,
    /// `description` when configured, `output` naming the failing checks
    /// when not passing, `notes` for unknown excludes, and `checks`. Each
    /// observed value of a check is one key `"{check}:{measurement}"`; a
    /// check with none is keyed `"{check}:responseTime"` with its run time in
    /// ms. Each key maps to a one-element array holding `componentType`,
    /// `observedValue`, `observedUnit`, `status`, `time` (RFC 3339) and
    /// `output` (omitted on pass, as the draft says). Excluded checks are left
    /// out.
    pub fn to_health_json(&self) -> String {
        let mut out = String::with_capacity(128 + 160 * self.checks.len());
        out.push_str("{\"status\":\"");
        out.push_str(self.status.as_str());
        out.push('"');
        let info = &*self.info;
        for (key, value) in [
            ("version", &info.version),
            ("releaseId", &info.release_id),
            ("serviceId", &info.service_id),
            ("description", &info.description),
        ] {
            if let Some(v) = value {
                push_key(&mut out, key);
                push_str(&mut out, v);
            }
        }
        if self.status != Status::Pass {
            let bad: Vec<&str> = self
                .checks
                .iter()
                .filter(|c| !c.is_excluded() && c.status() != Status::Pass)
                .map(CheckReport::name)
                .collect();
            push_key(&mut out, "output");
            push_str(&mut out, &format!("checks not passing: {}", bad.join(", ")));
        }
        if !self.unmatched_excludes.is_empty() {
            push_key(&mut out, "notes");
            out.push('[');
            push_str(&mut out, &self.unmatched_note());
            out.push(']');
        }
        push_key(&mut out, "checks");
        out.push('{');
        let mut first = true;
        for c in self.checks.iter().filter(|c| !c.is_excluded()) {
            let observations = c.observations();
            if observations.is_empty() {
                let response_time = c.duration().map(|d| Observation {
                    measurement: Cow::Borrowed("responseTime"),
                    value: ObservedValue::Float(obs_core::units::duration_ms(d)),
                    unit: Some(Cow::Borrowed("ms")),
                });
                push_check(&mut out, &mut first, c, response_time.as_ref(), info);
            } else {
                for o in observations {
                    push_check(&mut out, &mut first, c, Some(o), info);
                }
            }
        }
        out.push_str("}}");
        out
    }
}

fn push_check(
    out: &mut String,
    first: &mut bool,
    c: &CheckReport,
    obs: Option<&Observation>,
    info: &ServiceInfo,
) {
    if !std::mem::take(first) {
        out.push(',');
    }
    let key = match obs {
        Some(o) => format!("{}:{}", c.name(), o.measurement.replace(':', "_")),
        None => c.name().to_owned(),
    };
    push_str(out, &key);
    out.push_str(":[{");
    out.push_str("\"componentId\":");
    push_str(out, c.name());
    if let Some(ty) = c.component_type() {
        push_key(out, "componentType");
        push_str(out, ty);
    }
    if let Some(o) = obs {
        push_key(out, "observedValue");
        push_value(out, &o.value);
        if let Some(unit) = &o.unit {
            push_key(out, "observedUnit");
            push_str(out, unit);
        }
    }
    push_key(out, "status");
    push_str(out, c.status().as_str());
    if let Some(t) = c.time() {
        push_key(out, "time");
        out.push('"');
        write_rfc3339(out, t);
        out.push('"');
    }
    if c.status() != Status::Pass
        && !info.withhold_reasons
        && let Some(o) = c.output()
    {
        push_key(out, "output");
        push_str(out, o);
    }
    out.push_str("}]");
}

fn one_line(s: &str) -> Cow<'_, str> {
    if s.contains(['\n', '\r']) {
        Cow::Owned(s.replace(['\n', '\r'], " "))
    } else {
        Cow::Borrowed(s)
    }
}

fn push_key(out: &mut String, key: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
}

fn push_value(out: &mut String, v: &ObservedValue) {
    match v {
        ObservedValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        ObservedValue::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        ObservedValue::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        ObservedValue::Float(_) => out.push_str("null"),
        ObservedValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ObservedValue::Text(s) => push_str(out, s),
    }
}

/// Writes `s` as a JSON string.
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
