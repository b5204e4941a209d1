//! The operational docs stay true: the Prometheus rules pass `promtool check
//! rules` and their unit tests (`promtool test rules`, a firing and a silent
//! case for every alert), the dashboard is valid JSON, and every metric the rules and the
//! dashboard query is one that obs really exposes.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(docs().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn rules_pass_promtool() {
    let tools = obs_testing::prometheus::tools().expect("promtool (Debian package prometheus)");
    let out = Command::new(&tools.promtool)
        .args(["check", "rules"])
        .arg(docs().join("prometheus/rules.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rules_unit_tests_pass_promtool() {
    let tools = obs_testing::prometheus::tools().expect("promtool (Debian package prometheus)");
    let out = Command::new(&tools.promtool)
        .args(["test", "rules"])
        .arg(docs().join("prometheus/rules_test.yml"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("SUCCESS") && !text.contains("FAILED"),
        "promtool test rules failed:\n{text}"
    );
}

/// `(alert name, exp_alerts is empty)` for every `alert_rule_test` case.
fn alert_cases(tests: &str) -> Vec<(String, bool)> {
    let mut cases = Vec::new();
    let mut current: Option<String> = None;
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alertname:") {
            current = Some(name.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("exp_alerts:") {
            let name = current.take().expect("exp_alerts without an alertname");
            cases.push((name, rest.trim() == "[]"));
        }
    }
    cases
}

#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let rules = read("prometheus/rules.yml");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    assert!(alerts.len() >= 8, "{alerts:?}");
    let cases = alert_cases(&read("prometheus/rules_test.yml"));
    for alert in &alerts {
        for silent in [false, true] {
            assert!(
                cases.iter().any(|(a, s)| a == alert && *s == silent),
                "rules_test.yml has no case where {alert} {}: {cases:?}",
                if silent { "stays silent" } else { "fires" }
            );
        }
    }
    for (a, _) in &cases {
        assert!(alerts.contains(&a.as_str()), "test of an unknown alert {a}");
    }
    assert!(
        read("prometheus/rules_test.yml").contains("expr: job:http_server_errors:ratio_rate5m"),
        "the error ratio's zero case is not unit-tested"
    );
}

/// Metric families named in `text`: identifiers with a known prefix, with the
/// sample suffixes removed.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_lowercase()
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b':'))
        {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit() || bytes[i] == b'_')
            {
                i += 1;
            }
            let word = &text[start..i];
            let known = [
                "http_server_",
                "http_client_",
                "db_client_",
                "jobs_",
                "job_",
                "obs_",
                "process_",
                "pipeline_",
            ];
            // `job_type` etc. are labels; families have a unit or kind suffix.
            let is_label = bytes.get(i) == Some(&b'=')
                || bytes.get(i) == Some(&b',')
                || bytes.get(i) == Some(&b')') && word.ends_with("_type");
            if known.iter().any(|p| word.starts_with(p))
                && word.contains('_')
                && !is_label
                && word != "job_type"
            {
                let mut fam = word;
                for suffix in ["_bucket", "_count", "_sum", "_total"] {
                    if let Some(f) = fam.strip_suffix(suffix) {
                        fam = f;
                        break;
                    }
                }
                out.insert(fam.to_owned());
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn docs_only_query_metrics_obs_exposes() {
    let obs = obs::init(
        obs::Config::from_lookup(|_| None)
            .unwrap()
            .log(|l| l.writer(std::io::sink()))
            .install_global(false),
    )
    .unwrap();
    // Register the sets a service uses.
    let _server = obs.server_layer();
    let _client = obs.client_layer();
    let _jobs = obs.job_metrics().unwrap();
    let _db = obs::metrics::sets::DbMetrics::new(obs.metrics()).unwrap();
    let exposition = obs.metrics().encode(obs::metrics::Format::Text);
    let families: BTreeSet<String> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.strip_suffix("_total").unwrap_or(n).to_owned())
        .collect();

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("dashboards/service.json")).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 9);
    let mut wanted = referenced(&exprs.join("\n"));
    wanted.extend(referenced(&read("prometheus/rules.yml")));
    // Recording rules define their own names (`route:...`), which contain ':'
    // and are skipped by `referenced`.
    let missing: Vec<&String> = wanted.iter().filter(|w| !families.contains(*w)).collect();
    assert!(
        missing.is_empty(),
        "docs query metrics obs does not expose: {missing:?}\nexposed: {families:?}"
    );
    for name in [
        "http_server_request_duration_seconds",
        "http_server_active_requests",
        "http_client_request_duration_seconds",
        "db_client_operation_duration_seconds",
        "jobs_failed",
        "jobs_started",
        "obs_log_dropped_lines",
        "obs_trace_dropped_spans",
        "obs_metric_label_sets_rejected",
        "obs_health_check_status",
        "obs_errors",
        "process_resident_memory_bytes",
        "process_cpu_seconds",
    ] {
        assert!(
            wanted.contains(name),
            "the docs no longer query {name}: {wanted:?}"
        );
    }
}

#[test]
fn k8s_probes_use_the_admin_router_paths() {
    let manifest = read("k8s/deployment.yaml");
    for path in ["/livez", "/readyz", "/startupz", "/metrics"] {
        assert!(manifest.contains(path), "{path} missing from the manifest");
        assert!(
            obs::http::DEFAULT_SKIP_PATHS.contains(&path),
            "{path} is not an admin path"
        );
    }
}
