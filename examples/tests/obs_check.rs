//! `obs-check`, the telemetry conformance checker, against the `service`
//! binary: every rule passes — metrics, correlation ids, trace propagation
//! (in the logs and in the spans the service exports to the checker), probes,
//! log shape and the canary secret scan (of the lines, the spans and the log
//! records the service exports to the checker).
//!
//! Run with `--nocapture` to see the report.

use std::sync::Arc;
use std::time::Duration;

use obs_check::{Config, Logs, OtlpReceiver, Status, Url};

mod common;
use common::Service;

#[test]
fn every_obs_check_rule_passes_against_the_service() {
    let rx = OtlpReceiver::bind("127.0.0.1:0").expect("bind the checker's OTLP receiver");
    let endpoint = rx.endpoint();
    let svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "200"),
        ("OTEL_TRACES_SAMPLER", "always_on"),
    ]);
    let mut config = Config::new(&svc.api("/items")).expect("service URL");
    config.admin = Url::parse(&svc.admin("/")).expect("admin URL");
    config.otlp = Some(rx);
    config.wait = Duration::from_secs(10);
    let lines = svc.stdout.clone();
    config.logs = Logs::Lines(Arc::new(move || lines.snapshot()));

    let report = obs_check::run(&config);
    #[allow(clippy::print_stdout, reason = "the report is what this test shows")]
    {
        println!("{}", report.to_text());
    }
    let not_passed: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.status != Status::Pass)
        .collect();
    assert!(
        not_passed.is_empty(),
        "{}\n{}",
        report.to_text(),
        svc.output()
    );
    assert_eq!(report.results.len(), 25, "{}", report.to_text());
}
