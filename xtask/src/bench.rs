//! `cargo xtask bench`: run every criterion bench of the workspace and write a
//! table of medians with each `obs/...` result set against the `anchor/...`
//! results of the same group, all measured in this run.
//!
//! Criterion writes this run's results into a directory of their own
//! (`CRITERION_HOME=<target>/xtask/criterion`), emptied first, so results of
//! earlier runs or of other benches never enter the report.
//!
//! Row names say what each row is: `obs/...` is measured against every
//! `anchor/...` row of its group (the anchor is named in the ratio column),
//! `baseline/...` is a floor (the work without any observability), and a
//! group without an anchor says so on each `obs/...` row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::say;

/// One measured function.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measured {
    pub(crate) group: String,
    pub(crate) function: String,
    pub(crate) median_ns: f64,
    /// Elements (or bytes) per iteration, when the bench declared them.
    pub(crate) throughput: Option<Throughput>,
}

/// Criterion's declared throughput per iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Throughput {
    Elements(u64),
    Bytes(u64),
}

/// The target directory cargo builds into: `CARGO_TARGET_DIR` when set.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() { d } else { root.join(d) }
        }
        _ => root.join("target"),
    }
}

/// `cargo xtask bench [--quick] [--bench NAME]...`: every bench target, or
/// only the named ones.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut benches = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--bench" {
            benches.push(
                it.next()
                    .ok_or("--bench needs a bench target name")?
                    .clone(),
            );
        }
    }
    let target = target_dir(root);
    let home = target.join("xtask/criterion");
    if home.exists() {
        std::fs::remove_dir_all(&home)
            .map_err(|e| format!("cannot clear {}: {e}", home.display()))?;
    }
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;

    // Bench targets only (`--bench`): the libraries' and binaries'
    // unit-test harnesses would reject criterion's options. All features,
    // so that no bench is left out for a required feature.
    let mut cargo_args: Vec<String> = vec![
        "bench".into(),
        "--workspace".into(),
        "--all-features".into(),
    ];
    if benches.is_empty() {
        cargo_args.extend(["--bench".into(), "*".into()]);
    } else {
        for b in &benches {
            cargo_args.extend(["--bench".into(), b.clone()]);
        }
    }
    cargo_args.extend(["--".into(), "--noplot".into()]);
    if quick {
        cargo_args.push("--quick".into());
    }
    let status = Command::new(crate::cargo())
        .args(&cargo_args)
        .env("CRITERION_HOME", &home)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo bench: {e}"))?;
    if !status.success() {
        return Err(format!("cargo bench failed with {status}"));
    }
    let results = collect(&home)?;
    if results.is_empty() {
        return Err(format!("no criterion results in {}", home.display()));
    }
    let mut table = format!(
        "{} results measured in this run{} (obs/… rows against the anchor/… rows of their group):\n\n",
        results.len(),
        if quick { " with --quick" } else { "" }
    );
    table.push_str(&render(&results));
    let out = target.join("bench-report.md");
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
                let throughput = match &b["throughput"] {
                    Value::Object(t) => t
                        .get("Elements")
                        .and_then(Value::as_u64)
                        .map(Throughput::Elements)
                        .or_else(|| {
                            t.get("Bytes")
                                .and_then(Value::as_u64)
                                .map(Throughput::Bytes)
                        }),
                    _ => None,
                };
                if let Some(m) = e["median"]["point_estimate"].as_f64() {
                    out.push(Measured {
                        group,
                        function,
                        median_ns: m,
                        throughput,
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
    } else if ns < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else {
        format!("{:.2} s", ns / 1_000_000_000.0)
    }
}

fn rate(t: Throughput, ns: f64) -> String {
    let (n, unit) = match t {
        Throughput::Elements(n) => (n, "elem/s"),
        Throughput::Bytes(n) => (n, "B/s"),
    };
    let per_s = n as f64 / (ns / 1e9);
    if per_s >= 1e6 {
        format!("{:.2} M{unit}", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k{unit}", per_s / 1e3)
    } else {
        format!("{per_s:.0} {unit}")
    }
}

/// A markdown table: each row a function; `obs/...` rows carry the ratio to
/// every `anchor/...` row of their group, naming it.
pub(crate) fn render(results: &[Measured]) -> String {
    let mut groups: BTreeMap<&str, Vec<&Measured>> = BTreeMap::new();
    for m in results {
        groups.entry(&m.group).or_default().push(m);
    }
    let mut s = String::from(
        "| group | function | median | throughput | vs anchor (anchor time / ours) |\n|---|---|---:|---:|---|\n",
    );
    for (group, rows) in groups {
        let anchors: Vec<&&Measured> = rows
            .iter()
            .filter(|m| m.function.starts_with("anchor/"))
            .collect();
        for m in &rows {
            let ratio = if m.function.starts_with("obs/") {
                if anchors.is_empty() {
                    "no anchor in this group".to_owned()
                } else {
                    anchors
                        .iter()
                        .map(|a| format!("{:.2}× {}", a.median_ns / m.median_ns, a.function))
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            } else if m.function.starts_with("anchor/") {
                "(anchor)".to_owned()
            } else {
                "(floor, not compared)".to_owned()
            };
            let tp = m
                .throughput
                .map(|t| rate(t, m.median_ns))
                .unwrap_or_default();
            s.push_str(&format!(
                "| {group} | {} | {} | {tp} | {ratio} |\n",
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

    fn m(group: &str, function: &str, median_ns: f64) -> Measured {
        Measured {
            group: group.into(),
            function: function.into(),
            median_ns,
            throughput: None,
        }
    }

    #[test]
    fn ratios_are_anchor_over_ours_and_name_the_anchor() {
        let r = vec![
            m("g", "anchor/a", 500.0),
            m("g", "obs/x", 50.0),
            m("g", "baseline/bare", 5.0),
            m("h", "obs/alone", 7.0),
        ];
        let t = render(&r);
        assert!(
            t.contains("| g | obs/x | 50.0 ns |  | 10.00× anchor/a |"),
            "{t}"
        );
        assert!(
            t.contains("| g | anchor/a | 500.0 ns |  | (anchor) |"),
            "{t}"
        );
        assert!(
            t.contains("| g | baseline/bare | 5.0 ns |  | (floor, not compared) |"),
            "{t}"
        );
        assert!(
            t.contains("| h | obs/alone | 7.0 ns |  | no anchor in this group |"),
            "{t}"
        );
    }

    #[test]
    fn throughput_is_per_second() {
        let mut x = m("g", "obs/x", 1_000_000.0);
        x.throughput = Some(Throughput::Elements(10_000));
        assert!(render(&[x]).contains("| 10.00 Melem/s |"));
    }

    #[test]
    fn collects_criterion_layout() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        let new = dir.join("g/obs_x/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"g","function_id":"obs/x","value_str":null,"throughput":{"Elements":100}}"#,
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
                median_ns: 12.5,
                throughput: Some(Throughput::Elements(100)),
            }]
        );
    }
}
