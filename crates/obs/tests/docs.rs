//! The operational docs stay true: the Prometheus rules pass `promtool check
//! rules` and their unit tests (`promtool test rules`, a firing and a silent
//! case for every alert), the dashboard is valid JSON on a sound grid with a
//! `$job` every obs process has, exemplars and a trace link from logs, and the
//! k8s manifest probes the admin paths. That every metric the rules and the
//! dashboard query is one the service, worker and pipeline examples really
//! expose is checked against their scrapes in `examples/tests/ops_kit.rs`
//! (which also runs the rules in a real Prometheus).

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

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("dashboards/service.json")).expect("the dashboard is JSON")
}

fn targets(panel: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    panel["targets"].as_array().into_iter().flatten()
}

#[test]
fn dashboard_selects_every_obs_process_and_links_to_traces() {
    let d = dashboard();
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    // Every obs process (service, worker, pipeline) exports obs_build_info.
    assert_eq!(var("job")["query"], "label_values(obs_build_info, job)");
    assert_eq!(var("datasource")["query"], "prometheus");
    assert_eq!(var("loki")["query"], "loki");

    let panels = d["panels"].as_array().unwrap();
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for row in ["HTTP server", "Errors", "Worker jobs", "Pipeline", "Logs"] {
        assert!(rows.contains(&row), "no {row:?} row: {rows:?}");
    }

    // Panels do not overlap on the 24-column grid.
    let boxes: Vec<(i64, i64, i64, i64, &str)> = panels
        .iter()
        .map(|p| {
            let g = &p["gridPos"];
            let n = |k: &str| g[k].as_i64().unwrap_or_else(|| panic!("gridPos.{k}: {p}"));
            (n("x"), n("y"), n("w"), n("h"), p["title"].as_str().unwrap())
        })
        .collect();
    for (i, a) in boxes.iter().enumerate() {
        assert!(a.0 + a.2 <= 24, "{} is wider than the grid", a.4);
        for b in &boxes[i + 1..] {
            let apart =
                a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
            assert!(apart, "{} overlaps {}", a.4, b.4);
        }
    }

    // Every Prometheus query is scoped to $job; latency quantiles show exemplars.
    let mut quantiles = 0;
    for p in panels
        .iter()
        .filter(|p| p["datasource"]["type"] == "prometheus")
    {
        for t in targets(p) {
            let expr = t["expr"].as_str().unwrap();
            assert!(expr.contains(r#"job="$job""#), "{}: {expr}", p["title"]);
            if expr.starts_with("histogram_quantile(") {
                quantiles += 1;
                assert_eq!(
                    t["exemplar"], true,
                    "{}: no exemplars on {expr}",
                    p["title"]
                );
            }
        }
    }
    assert!(quantiles >= 10, "{quantiles} latency queries");

    // The logs panel reads Loki for $job; the Loki data source turns trace_id into a trace link.
    let logs = panels
        .iter()
        .find(|p| p["type"] == "logs")
        .expect("a logs panel");
    assert_eq!(logs["datasource"]["uid"], "${loki}");
    assert!(
        targets(logs).any(|t| t["expr"].as_str().unwrap().starts_with(r#"{job="$job"}"#)),
        "{logs}"
    );
    let sources = read("dashboards/datasources.yaml");
    for needle in [
        "derivedFields:",
        r#"matcherRegex: '"trace_id":"([0-9a-f]{32})"'"#,
        "exemplarTraceIdDestinations:",
        "- name: trace_id",
        "datasourceUid: tempo",
        "uid: tempo",
    ] {
        assert!(sources.contains(needle), "datasources.yaml lacks {needle}");
    }
}

#[test]
fn pipeline_throughput_comes_from_rate_over_the_rows_counter() {
    let rules = read("prometheus/rules.yml");
    let d = dashboard();
    let exprs: Vec<&str> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(targets)
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(
        !rules.contains("pipeline_throughput")
            && !exprs.iter().any(|e| e.contains("pipeline_throughput")),
        "the last-batch gauge is not for dashboards or alerts"
    );
    assert!(
        exprs
            .iter()
            .any(|e| e.contains(r#"rate(pipeline_rows_out_total{job="$job"}[5m])"#)),
        "{exprs:#?}"
    );
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
