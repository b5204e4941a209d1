//! `cargo xtask instructions [--requests N]`: the instructions one request
//! costs through each stack of `crates/obs/benches/server_layer.rs`, counted
//! by callgrind, every thread included (obs's writer and exporter threads,
//! the anchors' worker threads).
//!
//! Instruction counts are not time: they miss cache misses, contention and
//! the kernel. But for the same binary and input they repeat to within
//! about 200 instructions per request whatever else the machine runs (what
//! moves is thread timing: how often the log queue's buffer grows), so they
//! show a change of a few hundred instructions that a timed bench on a
//! shared machine cannot. Each stack runs twice, at `WARM` and at `WARM + N` requests, and
//! the difference divided by N is what one request costs in steady state:
//! start-up, first-request work (callsite registration, pools filling) and
//! shutdown cancel out.
//!
//! The last run of each stack leaves its profile in
//! `target/xtask/callgrind/<stack>.out` for `callgrind_annotate`.

use std::path::Path;
use std::process::Command;

use crate::bench::target_dir;
use crate::{cargo, say};

/// The stacks of `examples/request_cost.rs`, in the report's order.
const STACKS: [(&str, &str); 6] = [
    ("bare", "bare axum router"),
    (
        "floor",
        "floor: tracing for obs's request shape, no-op layer",
    ),
    ("obs", "obs.server_layer(), unsampled"),
    ("glued", "hand-glued anchors, unsampled"),
    ("obs-sampled", "obs.server_layer(), sampled"),
    ("glued-sampled", "hand-glued anchors, sampled"),
];

/// Requests every run starts with, so that the first-request work is in
/// both runs of a stack.
const WARM: u64 = 1_000;

pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let mut requests: u64 = 5_000;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--requests" => {
                requests = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--requests needs a positive number")?;
            }
            other => return Err(format!("instructions: unknown argument `{other}`")),
        }
    }
    match Command::new("valgrind").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            return Err(
                "valgrind not found: install it (Debian: `apt-get install valgrind`); \
                 this command counts instructions with its callgrind tool"
                    .into(),
            );
        }
    }
    say("building examples/request_cost (release)");
    let status = Command::new(cargo())
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "obs",
            "--all-features",
            "--example",
            "request_cost",
        ])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building examples/request_cost failed".into());
    }
    let target = target_dir(root);
    let binary = target.join("release/examples/request_cost");
    let out_dir = target.join("xtask/callgrind");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;

    let mut rows = Vec::new();
    for (stack, what) in STACKS {
        say(&format!(
            "{stack}: {WARM} and {} requests under callgrind",
            WARM + requests
        ));
        let out = out_dir.join(format!("{stack}.out"));
        let low = collected(&binary, stack, WARM, &out)?;
        let high = collected(&binary, stack, WARM + requests, &out)?;
        let per_request = high.saturating_sub(low) as f64 / requests as f64;
        rows.push((stack, what, per_request));
    }

    let of = |name: &str| rows.iter().find(|r| r.0 == name).map(|r| r.2);
    let bare = of("bare").unwrap_or(0.0);
    say("");
    say(&format!(
        "Instructions per request, steady state ({requests} requests, every thread):"
    ));
    say("");
    say("| stack | instructions / request | over bare | against hand-glued |");
    say("|---|---:|---:|---:|");
    for (stack, what, per_request) in &rows {
        let over = if *stack == "bare" {
            "—".to_owned()
        } else {
            format!("{:+.0}", per_request - bare)
        };
        let anchor = match *stack {
            "obs" => of("glued"),
            "obs-sampled" => of("glued-sampled"),
            _ => None,
        };
        let ratio = anchor.map_or_else(
            || "—".to_owned(),
            |a| {
                format!(
                    "{:.2}× of its added cost",
                    (per_request - bare) / (a - bare)
                )
            },
        );
        say(&format!("| {what} | {per_request:.0} | {over} | {ratio} |"));
    }
    say("");
    say(&format!("profiles: {}", out_dir.display()));
    Ok(())
}

/// The instructions callgrind counted for `n` requests through `stack`.
fn collected(binary: &Path, stack: &str, n: u64, out: &Path) -> Result<u64, String> {
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(binary)
        .arg(stack)
        .arg(n.to_string())
        .output()
        .map_err(|e| format!("cannot run valgrind: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "request_cost {stack} {n} failed under callgrind:\n{stderr}"
        ));
    }
    parse_collected(&stderr)
        .ok_or_else(|| format!("no `Collected` line in callgrind's output:\n{stderr}"))
}

/// The total of callgrind's summary line, `==PID== Collected : 123456789`.
fn parse_collected(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        let (_, rest) = l.split_once("Collected :")?;
        rest.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::parse_collected;

    #[test]
    fn reads_callgrind_summary() {
        let stderr = "==42== Callgrind, a call-graph generating cache profiler\n\
                      ==42== Events    : Ir\n\
                      ==42== Collected : 201062867\n\
                      ==42== \n\
                      ==42== I   refs:      201,062,867\n";
        assert_eq!(parse_collected(stderr), Some(201_062_867));
    }

    #[test]
    fn no_summary_is_none() {
        assert_eq!(parse_collected("==42== Events    : Ir\n"), None);
        assert_eq!(parse_collected("==42== Collected : many\n"), None);
    }
}
