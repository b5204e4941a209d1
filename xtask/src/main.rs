//! Project automation for obs, run as `cargo xtask <command>`.
//!
//! - `cargo xtask ci` — everything CI checks, in order, stopping at the first
//!   failure with its output: fmt, the dependency rule, clippy, rustdoc, tests,
//!   each facade feature alone, end-to-end tests, a short soak, and the
//!   whole-request budgets (`instructions --check`). A test that is ignored or
//!   skipped fails the run unless `xtask/allowed-skips.txt` names it with a
//!   reason.
//! - `cargo xtask deps [DIR]` — the dependency rule only.
//! - `cargo xtask bench [--quick] [--bench NAME]...` — every criterion bench
//!   (or the named ones) into a fresh results directory, then a table of this
//!   run's medians and obs/anchor ratios in `target/bench-report.md`.
//! - `cargo xtask instructions [--check] [--requests N]` — instructions per
//!   request through each stack of the `server_layer` bench (bare, the
//!   `tracing` floor on the registry and on obs's own span store, obs's
//!   behaviours by hand, obs, obs without its access line,
//!   hand-glued; unsampled and sampled), counted by valgrind's callgrind over
//!   every thread, and the hot code each request runs (64-byte lines of
//!   machine code; see `instructions.rs`); with `--check`, fails when obs
//!   exceeds a whole-request budget (`instructions::BUDGETS`).
//! - `cargo xtask soak [--minutes N]` — the service example under load with
//!   faults injected on a schedule (see `soak.rs`); `ci` runs a 2-minute one.
//! - `cargo xtask check-service URL [ARGS]...` — runs `obs-check` (the
//!   telemetry conformance checker, `crates/obs-check`) against a running
//!   service; its exit status is obs-check's.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

mod bench;
mod deps;
mod instructions;
mod skips;
mod soak;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(&root, &args[1..]),
        Some("deps") => {
            let dir = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(|| root.clone());
            deps_step(&dir).map(|()| say("dependency rule holds"))
        }
        Some("bench") => bench::run(&root, &args[1..]),
        Some("instructions") => instructions::run(&root, &args[1..]),
        Some("soak") => soak::run(&root, &args[1..]),
        Some("check-service") => return check_service(&root, &args[1..]),
        _ => {
            say(
                "usage: cargo xtask <ci [--no-e2e] | deps [DIR] | bench [--quick] [--bench NAME]... | instructions [--check] [--requests N] | soak [--minutes N] | check-service URL [ARGS]...>",
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("xtask: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask check-service URL [ARGS]...`: `cargo run -p obs-check --
/// URL [ARGS]...`, passing obs-check's exit status through (0 every rule
/// passed or warned, 1 one failed, 2 a usage error).
fn check_service(root: &Path, args: &[String]) -> ExitCode {
    if args.is_empty() {
        say(
            "usage: cargo xtask check-service URL [--admin URL] [--logs FILE|-] [--otlp-port PORT] [--format text|json] ...",
        );
        return ExitCode::from(2);
    }
    let status = Command::new(cargo())
        .args(["run", "--quiet", "--package", "obs-check", "--"])
        .args(args)
        .current_dir(root)
        .status();
    match status {
        Ok(s) => match s.code() {
            Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
            None => ExitCode::FAILURE,
        },
        Err(e) => {
            say(&format!("xtask: cannot run cargo: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// xtask's own output. Printing is its whole purpose, so the workspace's
/// `print_stdout` lint does not apply here.
#[allow(clippy::print_stdout, reason = "xtask reports to the terminal")]
pub(crate) fn say(line: &str) {
    println!("{line}");
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Set for every command `ci` runs, to keep the build's disk use small: a CI
/// machine may have only a few GiB free, and a from-scratch `--all-features`
/// test build with incremental state and full debug info takes tens of GiB
/// (every test binary links every dependency's debug info). Line tables are
/// kept, so backtraces still name files and lines.
const CI_ENV: &[(&str, &str)] = &[
    ("CARGO_INCREMENTAL", "0"),
    ("CARGO_PROFILE_DEV_DEBUG", "line-tables-only"),
    ("CARGO_PROFILE_TEST_DEBUG", "line-tables-only"),
];

/// One CI step: a name and the command lines it runs.
struct Step {
    name: String,
    commands: Vec<Vec<String>>,
    env: Vec<(String, String)>,
    /// Fail when a command succeeds but the compiler warned (used for the
    /// feature checks, which run plain `cargo check`: `-D warnings` through
    /// RUSTFLAGS would rebuild every dependency).
    deny_warnings: bool,
}

impl Step {
    fn new(name: &str, commands: &[&[&str]]) -> Self {
        Self {
            name: name.into(),
            commands: commands
                .iter()
                .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
                .collect(),
            env: Vec::new(),
            deny_warnings: false,
        }
    }

    /// A step that runs one command of this tool: `cargo xtask ARGS...`.
    fn xtask(name: &str, args: &[&str]) -> Self {
        let mut cmd = vec!["cargo", "run", "--quiet", "-p", "xtask", "--"];
        cmd.extend_from_slice(args);
        Self::new(name, &[&cmd])
    }

    fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
}

fn ci(root: &Path, args: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let e2e = !args.iter().any(|a| a == "--no-e2e");
    let nextest = Command::new(cargo())
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());

    let mut steps = vec![Step::new(
        "fmt",
        &[&["cargo", "fmt", "--all", "--", "--check"]],
    )];
    steps.push(Step::new(
        "clippy",
        &[&[
            "cargo",
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]],
    ));
    steps.push(
        Step::new(
            "doc",
            &[&["cargo", "doc", "--workspace", "--no-deps", "--all-features"]],
        )
        .env("RUSTDOCFLAGS", "-D warnings"),
    );
    // The examples crate holds the end-to-end tests; they run as their own
    // step, after everything they depend on has passed.
    let e2e = e2e && root.join("examples/tests").is_dir();
    // `--status-level skip` names every skipped test, for the allow-list.
    let mut test_cmd: Vec<&str> = if nextest {
        vec![
            "cargo",
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--no-fail-fast",
            "--status-level",
            "skip",
        ]
    } else {
        vec![
            "cargo",
            "test",
            "--workspace",
            "--all-features",
            "--no-fail-fast",
        ]
    };
    if e2e {
        test_cmd.extend(["--exclude", "examples"]);
    }
    let mut test_step = Step::new("test", &[&test_cmd]);
    if nextest {
        test_step.commands.push(
            ["cargo", "test", "--workspace", "--all-features", "--doc"]
                .map(String::from)
                .to_vec(),
        );
    }
    steps.push(test_step);
    let features = facade_features(root)?;
    let mut feature_cmds: Vec<Vec<String>> = vec![
        ["cargo", "check", "-p", "obs", "--no-default-features"]
            .map(String::from)
            .to_vec(),
    ];
    for f in &features {
        feature_cmds.push(
            [
                "cargo",
                "check",
                "-p",
                "obs",
                "--no-default-features",
                "--features",
                f,
            ]
            .map(String::from)
            .to_vec(),
        );
    }
    steps.push(Step {
        name: "features".into(),
        commands: feature_cmds,
        env: Vec::new(),
        deny_warnings: true,
    });
    if e2e {
        let cmd: &[&str] = if nextest {
            &[
                "cargo",
                "nextest",
                "run",
                "-p",
                "examples",
                "--all-features",
                "--no-fail-fast",
                "--status-level",
                "skip",
            ]
        } else {
            &[
                "cargo",
                "test",
                "-p",
                "examples",
                "--all-features",
                "--no-fail-fast",
            ]
        };
        steps.push(Step::new("e2e", &[cmd]));
        // A short soak: faults injected into the running service under load.
        steps.push(Step::xtask("soak", &["soak", "--minutes", "2"]));
    }

    // The whole-request budgets: instructions and hot code per request
    // through obs's server layer, counted by callgrind, against the
    // hand-glued anchors and the by-hand floor of the same run.
    steps.push(Step::xtask("budgets", &["instructions", "--check"]));

    // The last step needs valgrind: say so before the others run, not
    // after them.
    instructions::require_valgrind()?;

    let allowed = skips::read_allow_list(&root.join(skips::ALLOW_LIST))?;
    let mut used = Vec::new();
    let mut tests_line = None;
    // The rule needs no build, so it runs right after fmt to fail fast.
    let mut ran = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let t = Instant::now();
        let out = run_step(root, step)?;
        if step.name == "test" || step.name == "e2e" {
            let counts = test_counts(&out);
            let skipped = counts.map_or(0, |c| c.2);
            used.extend(skips::check(&step.name, &out, skipped, &allowed)?);
            tests_line = merge_counts(tests_line, counts);
        }
        say(&format!(
            "ok  {:<9} {:>7.1}s",
            step.name,
            t.elapsed().as_secs_f64()
        ));
        if step.name == "budgets" {
            // The counts and the budgets, each table under its heading,
            // for the CI log.
            for line in out.lines().filter(|l| {
                l.starts_with('|')
                    || l.starts_with("Instructions per request")
                    || l.starts_with("Whole-request budgets")
            }) {
                say(line);
            }
        }
        if step.name == "soak" {
            // The soak's table and checks, for the CI log.
            for line in out.lines().filter(|l| {
                l.starts_with('|') || l.starts_with("soak:") || l.starts_with("exit after")
            }) {
                say(line);
            }
        }
        ran.push(step.name.clone());
        if i == 0 {
            let t = Instant::now();
            deps_step(root)?;
            say(&format!(
                "ok  {:<9} {:>7.1}s",
                "deps",
                t.elapsed().as_secs_f64()
            ));
            ran.push("deps".into());
        }
    }
    for entry in allowed.iter().filter(|e| !used.contains(&e.test)) {
        say(&format!(
            "note: {} names `{}`, which no step skipped: remove it if the test is gone",
            skips::ALLOW_LIST,
            entry.test
        ));
    }
    say(&format!(
        "ci passed: {} steps ({}) in {:.1}s; facade features checked alone: {}",
        ran.len(),
        ran.join(", "),
        started.elapsed().as_secs_f64(),
        features.join(", ")
    ));
    // The closing line CI reads: "N passed, N failed" alone on a line.
    if let Some((passed, failed, skipped)) = tests_line {
        say(&format!(
            "tests: {passed} passed, {failed} failed, {skipped} skipped"
        ));
    }
    Ok(())
}

fn deps_step(dir: &Path) -> Result<(), String> {
    let v = deps::check_dir(dir)?;
    if v.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = v.iter().map(|v| format!("  {v}")).collect();
    Err(format!("dependency rule violated:\n{}", lines.join("\n")))
}

/// Runs every command of a step with output captured to
/// `target/xtask/<step>.log`; on failure returns the tail of that log.
fn run_step(root: &Path, step: &Step) -> Result<String, String> {
    let log_dir = root.join("target/xtask");
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
    let mut all = String::new();
    for cmd in &step.commands {
        let program = if cmd[0] == "cargo" {
            cargo()
        } else {
            cmd[0].clone()
        };
        let output = Command::new(&program)
            .args(&cmd[1..])
            .envs(CI_ENV.iter().copied())
            .envs(step.env.iter().map(|(k, v)| (k, v)))
            .current_dir(root)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("step {}: cannot run {}: {e}", step.name, cmd.join(" ")))?;
        let text = format!(
            "$ {}\n{}{}",
            cmd.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        all.push_str(&text);
        let log = log_dir.join(format!("{}.log", step.name));
        let _ = std::fs::write(&log, &all);
        let warned = step.deny_warnings && text.lines().any(|l| l.starts_with("warning:"));
        if !output.status.success() || warned {
            let tail: Vec<&str> = text.lines().collect();
            let start = tail.len().saturating_sub(300);
            return Err(format!(
                "step {} failed: `{}` {}\n--- last {} lines (full log: {}) ---\n{}",
                step.name,
                cmd.join(" "),
                if warned && output.status.success() {
                    "compiled with warnings".to_owned()
                } else {
                    format!("exited with {}", output.status)
                },
                tail.len() - start,
                log.display(),
                tail[start..].join("\n")
            ));
        }
    }
    Ok(all)
}

fn merge_counts(a: Option<(u64, u64, u64)>, b: Option<(u64, u64, u64)>) -> Option<(u64, u64, u64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0 + b.0, a.1 + b.1, a.2 + b.2)),
        (a, b) => a.or(b),
    }
}

/// Sums `N passed` / `N failed` / skipped across libtest and nextest
/// summaries.
fn test_counts(out: &str) -> Option<(u64, u64, u64)> {
    let (mut passed, mut failed, mut skipped, mut seen) = (0u64, 0u64, 0u64, false);
    for line in out.lines() {
        let l = line.trim();
        // libtest: "test result: ok. 36 passed; 0 failed; 0 ignored; ..."
        // nextest: "Summary [  12.3s] 250 tests run: 250 passed, 3 skipped"
        if l.starts_with("test result:") || l.starts_with("Summary [") {
            seen = true;
            let words: Vec<&str> = l
                .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
                .collect();
            for w in words.windows(2) {
                let n = w[0].parse::<u64>().ok();
                match (n, w[1]) {
                    (Some(n), "passed") => passed += n,
                    (Some(n), "failed") => failed += n,
                    (Some(n), "skipped" | "ignored") => skipped += n,
                    _ => {}
                }
            }
        }
    }
    seen.then_some((passed, failed, skipped))
}

fn facade_features(root: &Path) -> Result<Vec<String>, String> {
    let manifest = std::fs::read_to_string(root.join("crates/obs/Cargo.toml"))
        .map_err(|e| format!("cannot read the facade manifest: {e}"))?;
    let mut in_features = false;
    let mut out = Vec::new();
    for line in manifest.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_features = l == "[features]";
            continue;
        }
        if in_features && let Some((name, _)) = l.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') && name != "default" {
                out.push(name.to_owned());
            }
        }
    }
    if out.is_empty() {
        return Err("the facade declares no features".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_libtest_and_nextest() {
        let out = "test result: ok. 36 passed; 1 failed; 2 ignored; 0 measured\n\
                   Summary [  12.3s] 250 tests run: 250 passed, 3 skipped\n";
        assert_eq!(test_counts(out).unwrap(), (286, 1, 5));
        assert_eq!(
            merge_counts(Some((1, 0, 0)), Some((2, 1, 0))),
            Some((3, 1, 0))
        );
        assert!(test_counts("nothing here").is_none());
    }

    #[test]
    fn reads_facade_features() {
        let f = facade_features(&workspace_root()).unwrap();
        for want in [
            "log",
            "metrics",
            "trace",
            "health",
            "correlate",
            "errors",
            "full",
        ] {
            assert!(f.iter().any(|x| x == want), "missing {want} in {f:?}");
        }
        assert!(!f.iter().any(|x| x == "default"));
    }
}
