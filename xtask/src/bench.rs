//! `cargo xtask bench`: run every criterion bench of the workspace and write a
//! table of medians with each `obs/...` result set against the `anchor/...`
//! results of the same group, measured in the same run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::say;

/// One measured function.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measured {
    pub(crate) group: String,
    pub(crate) function: String,
    pub(crate) median_ns: f64,
}

pub(crate) fn run(root: &Path, quick: bool) -> Result<(), String> {
    // Bench targets only (`--bench '*'`): the libraries' and binaries'
    // unit-test harnesses would reject criterion's options.
    let mut args = vec!["bench", "--workspace", "--bench", "*", "--", "--noplot"];
    if quick {
        args.push("--quick");
    }
    let status = Command::new(crate::cargo())
        .args(&args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo bench: {e}"))?;
    if !status.success() {
        return Err(format!("cargo bench failed with {status}"));
    }
    let results = collect(&root.join("target/criterion"))?;
    let table = render(&results);
    let out = root.join("target/bench-report.md");
    std::fs::write(&out, &table).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    say(&table);
    say(&format!("written to {}", out.display()));
    Ok(())
}

/// Reads every `new/benchmark.json` + `new/estimates.json` pair below `dir`.
pub(crate) fn collect(dir: &Path) -> Result<Vec<Measured>, String> {
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort_by(|a, b| (&a.group, &a.function).cmp(&(&b.group, &b.function)));
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<Measured>) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") {
            let bench = read_json(&p.join("benchmark.json"));
            let est = read_json(&p.join("estimates.json"));
            if let (Some(b), Some(e)) = (bench, est) {
                let group = b["group_id"].as_str().unwrap_or_default().to_owned();
                let mut function = b["function_id"].as_str().unwrap_or_default().to_owned();
                if let Some(v) = b["value_str"].as_str() {
                    function = format!("{function}/{v}");
                }
                if let Some(m) = e["median"]["point_estimate"].as_f64() {
                    out.push(Measured {
                        group,
                        function,
                        median_ns: m,
                    });
                }
            }
        } else {
            walk(&p, out)?;
        }
    }
    Ok(())
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

fn human(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

/// A markdown table: each row a function; `obs/...` rows carry the ratio to
/// every `anchor/...` row of their group.
pub(crate) fn render(results: &[Measured]) -> String {
    let mut groups: BTreeMap<&str, Vec<&Measured>> = BTreeMap::new();
    for m in results {
        groups.entry(&m.group).or_default().push(m);
    }
    let mut s = String::from(
        "| group | function | median | vs anchor (anchor time / ours) |\n|---|---|---:|---|\n",
    );
    for (group, rows) in groups {
        let anchors: Vec<&&Measured> = rows
            .iter()
            .filter(|m| m.function.starts_with("anchor/"))
            .collect();
        for m in &rows {
            let ratio = if m.function.starts_with("obs/") {
                anchors
                    .iter()
                    .map(|a| format!("{:.2}× {}", a.median_ns / m.median_ns, a.function))
                    .collect::<Vec<_>>()
                    .join("; ")
            } else {
                String::new()
            };
            s.push_str(&format!(
                "| {group} | {} | {} | {ratio} |\n",
                m.function,
                human(m.median_ns)
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_anchor_over_ours() {
        let r = vec![
            Measured {
                group: "g".into(),
                function: "anchor/a".into(),
                median_ns: 500.0,
            },
            Measured {
                group: "g".into(),
                function: "obs/x".into(),
                median_ns: 50.0,
            },
        ];
        let t = render(&r);
        assert!(
            t.contains("| g | obs/x | 50.0 ns | 10.00× anchor/a |"),
            "{t}"
        );
        assert!(t.contains("| g | anchor/a | 500.0 ns |  |"), "{t}");
    }

    #[test]
    fn collects_criterion_layout() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        let new = dir.join("g/obs_x/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"g","function_id":"obs/x","value_str":null}"#,
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            r#"{"median":{"point_estimate":12.5}}"#,
        )
        .unwrap();
        let got = collect(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            got,
            vec![Measured {
                group: "g".into(),
                function: "obs/x".into(),
                median_ns: 12.5
            }]
        );
    }
}
