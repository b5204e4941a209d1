//! The dependency rule on the real workspace: it holds as committed, and a
//! deliberately added sibling dependency makes `cargo xtask deps` (the step
//! `cargo xtask ci` runs) fail with the offending edge named.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Copies the workspace's tracked and untracked-but-not-ignored files (no
/// `target/`) into a fresh directory.
fn copy_workspace() -> PathBuf {
    let dst = std::env::temp_dir().join(format!("obs-deps-rule-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    let files = Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
        ])
        .current_dir(root())
        .output()
        .expect("git ls-files");
    assert!(files.status.success());
    for rel in files.stdout.split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let rel = std::str::from_utf8(rel).unwrap();
        let src = root().join(rel);
        if !src.is_file() {
            continue;
        }
        let to = dst.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&src, &to).unwrap();
    }
    dst
}

fn xtask_deps(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("deps")
        .arg(dir)
        .output()
        .expect("run xtask")
}

#[test]
fn rule_holds_on_the_workspace_and_fails_on_an_added_sibling_edge() {
    let ws = copy_workspace();
    let ok = xtask_deps(&ws);
    assert!(
        ok.status.success(),
        "the committed workspace must satisfy the rule: {}",
        String::from_utf8_lossy(&ok.stdout)
    );

    let manifest = ws.join("crates/obs-log/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let broken = text.replacen(
        "[dependencies]\n",
        "[dependencies]\nobs-metrics.workspace = true\n",
        1,
    );
    assert_ne!(
        text, broken,
        "obs-log's manifest has a [dependencies] table"
    );
    std::fs::write(&manifest, broken).unwrap();

    let bad = xtask_deps(&ws);
    let out = String::from_utf8_lossy(&bad.stdout);
    std::fs::remove_dir_all(&ws).unwrap();
    assert!(!bad.status.success(), "a sibling edge must fail the rule");
    assert!(
        out.contains("obs-log -> obs-metrics (normal dependency)"),
        "{out}"
    );
}
