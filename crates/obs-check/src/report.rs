//! The report: one row per rule, as a text table or as stable JSON.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// The JSON report's schema name; bumped only on an incompatible change.
pub const SCHEMA: &str = "obs-check/v1";
/// Longest offending value shown, in characters.
pub const VALUE_CHARS: usize = 120;

/// A rule's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// The service follows the rule.
    Pass,
    /// Not checked: the input it needs was not given (`--logs`, `--otlp-port`).
    Skip,
    /// Probably a problem; does not fail the run.
    Warn,
    /// The service breaks the rule; the run exits non-zero.
    Fail,
}

impl Status {
    /// `pass`, `skip`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Skip => "skip",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One rule's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleResult {
    /// Stable id, `group.name` (see the README's rule table).
    pub id: &'static str,
    /// The outcome.
    pub status: Status,
    /// Why, in one sentence.
    pub reason: String,
    /// The offending value, cut to [`VALUE_CHARS`] characters.
    pub value: Option<String>,
}

impl RuleResult {
    /// A row without an offending value.
    pub fn new(id: &'static str, status: Status, reason: impl Into<String>) -> Self {
        Self {
            id,
            status,
            reason: reason.into(),
            value: None,
        }
    }

    /// Adds the offending value, cut short.
    pub fn value(mut self, v: impl AsRef<str>) -> Self {
        self.value = Some(cut(v.as_ref(), VALUE_CHARS));
        self
    }

    /// The group: the part of the id before the dot.
    pub fn group(&self) -> &'static str {
        self.id.split('.').next().unwrap_or(self.id)
    }
}

/// Cuts `s` to `max` characters (adding `…`), with control characters
/// escaped so a hostile value cannot rewrite the terminal.
pub fn cut(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Every rule's row, in the order they were checked.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The service URL checked.
    pub url: String,
    /// The admin URL used for `/metrics` and the probes.
    pub admin: String,
    /// The rows.
    pub results: Vec<RuleResult>,
}

impl Report {
    /// The row of rule `id`.
    pub fn get(&self, id: &str) -> Option<&RuleResult> {
        self.results.iter().find(|r| r.id == id)
    }

    /// How many rows have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// No rule failed.
    pub fn ok(&self) -> bool {
        self.count(Status::Fail) == 0
    }

    /// The human table.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "obs-check {} — {} (admin {})\n",
            env!("CARGO_PKG_VERSION"),
            self.url,
            self.admin
        );
        let w = self
            .results
            .iter()
            .map(|r| r.id.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(out, "{:<8}{:<w$}  REASON", "STATUS", "RULE");
        for r in &self.results {
            let _ = write!(out, "{:<8}{:<w$}  {}", r.status.as_str(), r.id, r.reason);
            if let Some(v) = &r.value {
                let _ = write!(out, " [{v}]");
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{} pass, {} warn, {} fail, {} skip: {}",
            self.count(Status::Pass),
            self.count(Status::Warn),
            self.count(Status::Fail),
            self.count(Status::Skip),
            if self.ok() { "ok" } else { "FAILED" }
        );
        out
    }

    /// The JSON report (schema [`SCHEMA`], documented in the README).
    pub fn to_json(&self) -> Value {
        json!({
            "schema": SCHEMA,
            "version": env!("CARGO_PKG_VERSION"),
            "url": self.url,
            "admin": self.admin,
            "ok": self.ok(),
            "summary": {
                "pass": self.count(Status::Pass),
                "warn": self.count(Status::Warn),
                "fail": self.count(Status::Fail),
                "skip": self.count(Status::Skip),
            },
            "rules": self.results.iter().map(|r| json!({
                "id": r.id,
                "group": r.group(),
                "status": r.status.as_str(),
                "reason": r.reason,
                "value": r.value,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_escapes_and_shortens() {
        assert_eq!(cut("abc", 2), "ab…");
        assert_eq!(cut("a\x1b[2Jb", 10), "a\\u{1b}[2Jb");
        assert_eq!(cut("héllo", 5), "héllo");
    }

    #[test]
    fn report_shapes() {
        let r = Report {
            url: "http://h/".into(),
            admin: "http://h/".into(),
            results: vec![
                RuleResult::new("metrics.text", Status::Pass, "fine"),
                RuleResult::new("logs.json", Status::Fail, "not JSON").value("x".repeat(500)),
            ],
        };
        assert!(!r.ok());
        let j = r.to_json();
        assert_eq!(j["schema"], SCHEMA);
        assert_eq!(j["summary"]["fail"], 1);
        assert_eq!(j["rules"][1]["group"], "logs");
        assert_eq!(
            j["rules"][1]["value"].as_str().unwrap().chars().count(),
            VALUE_CHARS + 1
        );
        let t = r.to_text();
        assert!(t.contains("fail    logs.json"), "{t}");
        assert!(
            t.ends_with("1 pass, 0 warn, 1 fail, 0 skip: FAILED\n"),
            "{t}"
        );
    }
}
