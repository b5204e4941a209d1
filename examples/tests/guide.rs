//! `docs/guide.md` keeps one table of every environment variable the code
//! reads. This test scans the sources — the library crates (not the test
//! helpers in `obs-testing`, not the `obs-check` tool, which reads none), the
//! example programs and the HTTP benchmark (`benches/http`) — for the
//! variables they read, and compares them with the table, both ways:
//!
//! - `const ENV_…: &str = "NAME"` declarations;
//! - string literals `"OBS_…"`, `"OTEL_…"`, `"SENTRY_…"` (whole names; the
//!   bare prefixes `"OBS_"`/`"OTEL_"` used to filter are not names);
//! - `var!("PREFIX", "SUFFIX")`: `PREFIX_SUFFIX`, `PREFIX_TRACES_SUFFIX` and
//!   `PREFIX_LOGS_SUFFIX` (the per-signal forms of the exported signals);
//! - `env::var("NAME")`, `env::var_os("NAME")`, and calls with a literal of
//!   helpers that read the variable their parameter names (the service's
//!   `env_parse("PORT", …)`, `http_bench`'s `num("BENCH_SECS", …)`).
//!
//! Each file is read up to its `#[cfg(test)]` module: names only tests use
//! are not read by the code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the examples crate is in the workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries {
        let p = e.expect("directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_uppercase())
        && s.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        && !s.ends_with('_')
}

/// The string literal starting right after `at` (which is just past a `"`).
fn literal_at(text: &str, at: usize) -> Option<&str> {
    let rest = &text[at..];
    rest.find('"').map(|end| &rest[..end])
}

/// The variables `text` reads.
fn names_read(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut names = BTreeSet::new();
    // `const ENV_X: &str = "NAME"`
    for line in code.lines() {
        let line = line.trim();
        if let Some(rest) = line
            .strip_prefix("pub const ENV_")
            .or_else(|| line.strip_prefix("const ENV_"))
            .or_else(|| line.strip_prefix("pub(crate) const ENV_"))
            && let Some(q) = rest.find("&str = \"")
            && let Some(name) = literal_at(rest, q + "&str = \"".len())
            && is_env_name(name)
        {
            names.insert(name.to_owned());
        }
    }
    // env::var("NAME"), env::var_os("NAME")
    let mut helpers: BTreeSet<&str> = BTreeSet::new();
    for call in ["env::var(", "env::var_os("] {
        for (i, _) in code.match_indices(call) {
            let after = i + call.len();
            if code[after..].starts_with('"') {
                if let Some(name) = literal_at(code, after + 1)
                    && is_env_name(name)
                {
                    names.insert(name.to_owned());
                }
            } else if let Some(f) = code[..i].rfind("fn ") {
                // A helper reading the variable named by its parameter
                // (`fn env_parse(var: &str, …)`, `fn num(var: &str, …)`):
                // its calls with a literal name it.
                let name_end = code[f + 3..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(code.len(), |e| f + 3 + e);
                helpers.insert(&code[f + 3..name_end]);
            }
        }
    }
    for helper in helpers {
        let call = format!("{helper}(\"");
        for (i, _) in code.match_indices(&call) {
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(name) = literal_at(code, i + call.len())
                && is_env_name(name)
            {
                names.insert(name.to_owned());
            }
        }
    }
    // `var!("PREFIX", "SUFFIX")` (obs-core's per-signal OTLP variables):
    // `PREFIX_SUFFIX` and the forms of the exported signals,
    // `PREFIX_TRACES_SUFFIX` and `PREFIX_LOGS_SUFFIX`; the prefix alone is
    // no name.
    let mut prefixes = BTreeSet::new();
    for (i, _) in code.match_indices("var!(\"") {
        let at = i + "var!(\"".len();
        if let Some(prefix) = literal_at(code, at)
            && let Some(q) = code[at + prefix.len() + 1..].find('"')
            && let Some(suffix) = literal_at(code, at + prefix.len() + 1 + q + 1)
            && is_env_name(prefix)
            && is_env_name(suffix)
        {
            names.insert(format!("{prefix}_{suffix}"));
            names.insert(format!("{prefix}_TRACES_{suffix}"));
            names.insert(format!("{prefix}_LOGS_{suffix}"));
            prefixes.insert(prefix.to_owned());
        }
    }
    // "OBS_…", "OTEL_…", "SENTRY_…" literals
    for prefix in ["\"OBS_", "\"OTEL_", "\"SENTRY_"] {
        for (i, _) in code.match_indices(prefix) {
            if let Some(name) = literal_at(code, i + 1)
                && is_env_name(name)
                && !prefixes.contains(name)
            {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// The variables of the guide's table, one per row, with their row.
fn table(guide: &str) -> BTreeMap<String, String> {
    let section = guide
        .split("\n## Environment variables\n")
        .nth(1)
        .expect("docs/guide.md has an '## Environment variables' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap_or("").trim();
        let name = cell.trim_matches('`');
        assert!(
            is_env_name(name) && cell.matches('`').count() == 2,
            "one variable per row, in backticks: {line}"
        );
        assert!(
            rows.insert(name.to_owned(), line.to_owned()).is_none(),
            "{name} is in the table twice"
        );
    }
    rows
}

#[test]
fn the_guide_lists_every_environment_variable_the_code_reads() {
    let root = root();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/") {
        let dir = entry.expect("crate directory").path();
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "obs-testing" || name == "obs-check" {
            continue;
        }
        rust_files(&dir.join("src"), &mut files);
    }
    rust_files(&root.join("examples/src"), &mut files);
    rust_files(&root.join("benches/http/src"), &mut files);

    let mut read: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for name in names_read(&text) {
            let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
            read.entry(name).or_default().push(rel);
        }
    }
    // The scan itself works: names every part of the code is known to read.
    for known in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OBS_LOG",
        "RUST_LOG",
        "NO_COLOR",
        "PORT",
        "ADMIN_PORT",
        "BENCH_ROUNDS",
    ] {
        assert!(
            read.contains_key(known),
            "the scan missed {known}: {read:?}"
        );
    }

    let guide = std::fs::read_to_string(root.join("docs/guide.md")).expect("docs/guide.md");
    let rows = table(&guide);
    let missing: Vec<String> = read
        .iter()
        .filter(|(n, _)| !rows.contains_key(*n))
        .map(|(n, files)| format!("{n} (read in {})", files.join(", ")))
        .collect();
    let stale: Vec<&String> = rows.keys().filter(|n| !read.contains_key(*n)).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/guide.md's environment table is out of date:\n  read but not listed: {missing:#?}\n  listed but not read: {stale:#?}"
    );
}

#[test]
fn the_scan_finds_each_form_and_skips_tests() {
    let src = r#"
        pub const ENV_FILTER: &str = "OBS_LOG";
        const ENV_X: &str = "NO_COLOR";
        let p = std::env::var("HOST");
        fn env_parse<T>(var: &'static str, d: T) -> T { match std::env::var(var) { _ => d } }
        let q: u16 = env_parse("PORT", 8080);
        let r = std::env::var_os("PATH");
        fn num(var: &str) -> u64 { std::env::var(var).map_or(1, |v| v.len() as u64) }
        let n = num("BENCH_SECS") + renum("NOT_A_CALL_OF_NUM");
        match k { "OTEL_SERVICE_NAME" => 1, _ if k.starts_with("OBS_") => 2 }
        #[cfg(test)]
        mod tests { const ENV_T: &str = "OBS_ONLY_IN_TESTS"; }
    "#;
    let got: Vec<String> = names_read(src).into_iter().collect();
    assert_eq!(
        got,
        [
            "BENCH_SECS",
            "HOST",
            "NO_COLOR",
            "OBS_LOG",
            "OTEL_SERVICE_NAME",
            "PATH",
            "PORT"
        ]
    );
}
