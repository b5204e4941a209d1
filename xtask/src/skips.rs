//! Ignored and skipped tests: `cargo xtask ci` fails on any that the
//! allow-list does not name with a reason.
//!
//! The names come from the runners' own output: nextest (run with
//! `--status-level skip`) prints `SKIP [ ] (───) <binary-id> <test>`, libtest
//! prints `test <name> ... ignored[, <reason>]`. Their summary counts are
//! checked against the names found, so a skip that the output does not name
//! fails too.

use std::path::Path;

/// The allow-list, relative to the workspace root.
pub(crate) const ALLOW_LIST: &str = "xtask/allowed-skips.txt";

/// One allowed skip: the test as the runners name it, and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Allowed {
    pub(crate) test: String,
    pub(crate) reason: String,
}

/// Reads the allow-list: `<test> | <reason>` per line; `#` starts a comment
/// line. `<test>` is a test's name (`module::test`, or a doctest's
/// `src/lib.rs - item (line N)`), optionally preceded by nextest's binary id
/// and a space. A missing file is an empty list; an entry without a reason
/// is an error.
pub(crate) fn read_allow_list(path: &Path) -> Result<Vec<Allowed>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_allow_list(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

pub(crate) fn parse_allow_list(text: &str) -> Result<Vec<Allowed>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let Some((test, reason)) = l.split_once('|') else {
            return Err(format!("line {}: expected `<test> | <reason>`", n + 1));
        };
        let (test, reason) = (test.trim(), reason.trim());
        if test.is_empty() || reason.is_empty() {
            return Err(format!(
                "line {}: every allowed skip needs a test name and a reason",
                n + 1
            ));
        }
        out.push(Allowed {
            test: test.to_owned(),
            reason: reason.to_owned(),
        });
    }
    Ok(out)
}

/// The tests a runner's output reports as skipped or ignored, as
/// `<binary-id> <test>` (nextest) or `<test>` (libtest).
pub(crate) fn skipped_tests(out: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in out.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("SKIP [") {
            // `SKIP [         ] (───) binary-id test::name`
            let rest = rest.split_once(']').map_or("", |(_, r)| r).trim_start();
            let rest = match rest.strip_prefix('(') {
                Some(r) => r.split_once(')').map_or("", |(_, r)| r).trim_start(),
                None => rest,
            };
            if !rest.is_empty() {
                found.push(rest.to_owned());
            }
        } else if let Some(rest) = l.strip_prefix("test ")
            && let Some((name, verdict)) = rest.rsplit_once(" ... ")
            && (verdict == "ignored" || verdict.starts_with("ignored, "))
        {
            found.push(name.to_owned());
        }
    }
    found
}

/// Whether `entry` names `skipped`: the same test name, and the same
/// binary when both carry one.
fn names<'a>(entry: &'a str, skipped: &'a str) -> bool {
    if entry == skipped {
        return true;
    }
    // Either side may carry nextest's `<binary-id> ` prefix. Binary ids hold
    // no spaces; of test names only doctests do, and theirs start with the
    // source file (`src/lib.rs - item (line N)`).
    let test_name = |s: &'a str| -> Option<&'a str> {
        let (bin, name) = s.split_once(' ')?;
        (!bin.ends_with(".rs")).then_some(name)
    };
    match (test_name(entry), test_name(skipped)) {
        (Some(e), None) => e == skipped,
        (None, Some(s)) => entry == s,
        _ => false,
    }
}

/// Checks one step's output: every skipped test must be allowed, and the
/// summaries' count of skipped tests must match the names found. Returns
/// the allow-list entries that were used.
pub(crate) fn check(
    step: &str,
    out: &str,
    counted: u64,
    allowed: &[Allowed],
) -> Result<Vec<String>, String> {
    let found = skipped_tests(out);
    let mut used = Vec::new();
    let mut refused = Vec::new();
    for t in &found {
        match allowed.iter().find(|a| names(&a.test, t)) {
            Some(a) => used.push(a.test.clone()),
            None => refused.push(t.clone()),
        }
    }
    if !refused.is_empty() {
        return Err(format!(
            "step {step}: {} test(s) ignored or skipped and not in {ALLOW_LIST} (`<test> | <reason>`):\n  {}",
            refused.len(),
            refused.join("\n  ")
        ));
    }
    if found.len() as u64 != counted {
        return Err(format!(
            "step {step}: the summaries count {counted} skipped test(s) but the output names {}: {}",
            found.len(),
            if found.is_empty() {
                "none".to_owned()
            } else {
                found.join(", ")
            }
        ));
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEXTEST: &str = "    Starting 1 test across 1 binary (2 tests skipped)
        SKIP [         ] (───) skipdemo tests::b
        SKIP [         ] (───) skipdemo::it tests::c
        PASS [   0.018s] (1/1) skipdemo tests::a
────────────
     Summary [   0.019s] 1 test run: 1 passed, 2 skipped
";
    const LIBTEST: &str = "test tests::a ... ok
test tests::b ... ignored, needs a db
test tests::c ... ignored
test result: ok. 1 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.00s
test src/lib.rs - f (line 1) ... ignored
test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s
";

    #[test]
    fn names_skipped_tests_of_both_runners() {
        assert_eq!(
            skipped_tests(NEXTEST),
            ["skipdemo tests::b", "skipdemo::it tests::c"]
        );
        assert_eq!(
            skipped_tests(LIBTEST),
            ["tests::b", "tests::c", "src/lib.rs - f (line 1)"]
        );
    }

    #[test]
    fn unlisted_skips_fail_and_listed_ones_pass() {
        let err = check("test", NEXTEST, 2, &[]).unwrap_err();
        assert!(
            err.contains("skipdemo tests::b") && err.contains("skipdemo::it tests::c"),
            "{err}"
        );
        let allowed = parse_allow_list(
            "# comment\n\ntests::b | needs a database\nskipdemo::it tests::c | slow\n",
        )
        .unwrap();
        assert_eq!(
            check("test", NEXTEST, 2, &allowed).unwrap(),
            ["tests::b", "skipdemo::it tests::c"]
        );
        // libtest names no binary: the bare name matches an entry with one.
        let allowed = parse_allow_list(
            "tests::b | db\nskipdemo tests::c | slow\nsrc/lib.rs - f (line 1) | pseudo-code\n",
        )
        .unwrap();
        assert!(check("test", LIBTEST, 3, &allowed).is_ok());
        // Another binary's test of the same name is not allowed.
        let allowed =
            parse_allow_list("other tests::b | db\nskipdemo::it tests::c | slow\n").unwrap();
        assert!(check("test", NEXTEST, 2, &allowed).is_err());
    }

    #[test]
    fn a_count_without_names_fails() {
        let out = "     Summary [   0.019s] 1 test run: 1 passed, 2 skipped\n";
        let err = check("test", out, 2, &[]).unwrap_err();
        assert!(err.contains("count 2 skipped"), "{err}");
        assert!(check("test", "all fine\n", 0, &[]).unwrap().is_empty());
    }

    #[test]
    fn every_entry_needs_a_reason() {
        assert!(parse_allow_list("tests::b\n").is_err());
        assert!(parse_allow_list("tests::b |  \n").is_err());
        assert!(parse_allow_list(" | reason\n").is_err());
    }

    #[test]
    fn the_checked_in_allow_list_parses() {
        let root = crate::workspace_root();
        let list = read_allow_list(&root.join(ALLOW_LIST)).unwrap();
        assert!(list.iter().all(|a| !a.reason.is_empty()));
    }
}
