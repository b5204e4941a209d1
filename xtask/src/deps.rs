//! The dependency rule (docs/ARCHITECTURE.md, "Invariants"), checked from
//! `cargo metadata`:
//!
//! - `obs-core` depends on no workspace crate;
//! - a pillar depends on `obs-core` and no other workspace crate (its tests may
//!   also use `obs-testing`);
//! - `obs-testing` follows the pillars' rule;
//! - only the facade `obs` depends on pillars; `examples`, the HTTP benchmark
//!   `obs-http-bench` (`benches/http`) and `xtask` may use anything;
//! - the tool `obs-check` depends on `obs-core` only; its tests may use any
//!   workspace crate (they check fixtures built on the facade).

use std::fmt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The crates the rule constrains, by role.
pub(crate) const CORE: &str = "obs-core";
pub(crate) const FACADE: &str = "obs";
pub(crate) const TESTING: &str = "obs-testing";
pub(crate) const PILLARS: &[&str] = &[
    "obs-correlate",
    "obs-log",
    "obs-metrics",
    "obs-trace",
    "obs-health",
    "obs-errors",
];
/// Tools: built on `obs-core` alone, tested against anything.
pub(crate) const TOOLS: &[&str] = &["obs-check"];
/// Crates outside the rule.
const FREE: &[&str] = &["examples", "obs-http-bench", "xtask"];

/// One dependency edge that breaks the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) kind: String,
    pub(crate) why: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} ({} dependency): {}",
            self.from, self.to, self.kind, self.why
        )
    }
}

/// Runs `cargo metadata --no-deps` in `dir` and checks the rule.
pub(crate) fn check_dir(dir: &Path) -> Result<Vec<Violation>, String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let meta: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cargo metadata printed invalid JSON: {e}"))?;
    check_metadata(&meta)
}

/// Checks the rule on parsed `cargo metadata` output.
pub(crate) fn check_metadata(meta: &Value) -> Result<Vec<Violation>, String> {
    let packages = meta["packages"]
        .as_array()
        .ok_or("metadata has no packages array")?;
    let members: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut violations = Vec::new();
    for pkg in packages {
        let from = pkg["name"].as_str().unwrap_or_default();
        let deps = pkg["dependencies"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for dep in deps {
            let to = dep["name"].as_str().unwrap_or_default();
            // Only edges between workspace members (path dependencies) matter.
            if !members.contains(&to) || dep["path"].is_null() {
                continue;
            }
            // A crate may name itself as a dev-dependency to turn on its own
            // features in tests; that is no edge between crates.
            if from == to {
                continue;
            }
            let kind = dep["kind"].as_str().unwrap_or("normal").to_owned();
            if let Some(why) = forbidden(from, to, &kind) {
                violations.push(Violation {
                    from: from.into(),
                    to: to.into(),
                    kind,
                    why,
                });
            }
        }
    }
    Ok(violations)
}

fn forbidden(from: &str, to: &str, kind: &str) -> Option<&'static str> {
    if FREE.contains(&from) {
        return None;
    }
    if from == CORE {
        return Some("obs-core must not depend on any workspace crate");
    }
    if PILLARS.contains(&from) || from == TESTING {
        if to == CORE || (to == TESTING && kind == "dev" && from != TESTING) {
            return None;
        }
        return Some(
            "a pillar (and obs-testing) may depend only on obs-core (and obs-testing for tests)",
        );
    }
    if TOOLS.contains(&from) {
        if to == CORE || kind == "dev" {
            return None;
        }
        return Some(
            "a tool (obs-check) may depend only on obs-core (any workspace crate for tests)",
        );
    }
    if from == FACADE {
        if to == CORE || PILLARS.contains(&to) || (to == TESTING && kind == "dev") {
            return None;
        }
        return Some("the facade may depend only on obs-core and the pillars");
    }
    Some("unknown workspace crate: add it to the rule in xtask/src/deps.rs")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pkg(name: &str, deps: &[(&str, &str)]) -> Value {
        json!({
            "name": name,
            "dependencies": deps.iter().map(|(d, kind)| json!({
                "name": d,
                "kind": if *kind == "normal" { Value::Null } else { json!(kind) },
                "path": format!("/ws/crates/{d}"),
            })).collect::<Vec<_>>(),
        })
    }

    fn workspace(extra: &[(&str, &str)]) -> Value {
        let mut log_deps = vec![("obs-core", "normal"), ("obs-testing", "dev")];
        log_deps.extend_from_slice(extra);
        let mut packages = vec![
            pkg("obs-core", &[]),
            pkg("obs-log", &log_deps),
            pkg("obs-metrics", &[("obs-core", "normal")]),
            pkg("obs-testing", &[("obs-core", "normal")]),
            pkg(
                "obs",
                &[
                    ("obs-core", "normal"),
                    ("obs-log", "normal"),
                    ("obs-metrics", "normal"),
                ],
            ),
            pkg("examples", &[("obs", "normal"), ("obs-testing", "dev")]),
            pkg(
                "obs-http-bench",
                &[("obs", "normal"), ("obs-testing", "normal")],
            ),
        ];
        for p in PILLARS
            .iter()
            .filter(|p| !["obs-log", "obs-metrics"].contains(p))
        {
            packages.push(pkg(p, &[("obs-core", "normal")]));
        }
        json!({ "packages": packages })
    }

    #[test]
    fn clean_workspace_passes() {
        assert_eq!(check_metadata(&workspace(&[])).unwrap(), vec![]);
    }

    #[test]
    fn sibling_edge_is_named() {
        let v = check_metadata(&workspace(&[("obs-metrics", "normal")])).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].from, "obs-log");
        assert_eq!(v[0].to, "obs-metrics");
        assert!(
            v[0].to_string()
                .starts_with("obs-log -> obs-metrics (normal dependency)")
        );
    }

    #[test]
    fn sibling_dev_dependency_is_also_refused() {
        let v = check_metadata(&workspace(&[("obs-metrics", "dev")])).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, "dev");
    }

    #[test]
    fn self_dev_dependency_is_no_edge() {
        let v = check_metadata(&workspace(&[("obs-log", "dev")])).unwrap();
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn core_depending_on_anything_fails() {
        let mut ws = workspace(&[]);
        ws["packages"][0] = pkg("obs-core", &[("obs-testing", "dev")]);
        let v = check_metadata(&ws).unwrap();
        assert_eq!(v[0].from, "obs-core");
    }

    #[test]
    fn non_workspace_deps_are_ignored() {
        let mut ws = workspace(&[]);
        ws["packages"][1]["dependencies"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "serde", "kind": null, "path": null}));
        assert!(check_metadata(&ws).unwrap().is_empty());
    }

    #[test]
    fn the_tool_builds_on_core_alone() {
        let mut ws = workspace(&[]);
        let packages = ws["packages"].as_array_mut().unwrap();
        packages.push(pkg(
            "obs-check",
            &[
                ("obs-core", "normal"),
                ("obs", "dev"),
                ("obs-testing", "dev"),
            ],
        ));
        assert!(check_metadata(&ws).unwrap().is_empty());
        ws["packages"]
            .as_array_mut()
            .unwrap()
            .push(pkg("obs-check", &[("obs-log", "normal")]));
        let v = check_metadata(&ws).unwrap();
        assert_eq!((v.len(), v[0].from.as_str()), (1, "obs-check"));
    }
}
