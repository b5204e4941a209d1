//! Run with: `cargo run -p examples --bin quickstart`
//!
//! One call sets up JSON logs with ids, metrics, tracing (exported over OTLP
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set) and error capture. Lines in a
//! span carry `trace_id`, `span_id` and `correlation_id`; secrets are redacted.
//! The one captured error is an ERROR line here, and reaches Sentry with
//! `SENTRY_DSN=https://key@host/project cargo run -p examples --bin quickstart`.
use std::time::Duration;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), obs::Error> {
    let obs = obs::init(obs::Config::from_env()?.service("quickstart"))?;
    let request = obs::CorrelationId::generate(obs::IdFormat::UuidV7);
    let checkout = async {
        let work = async {
            tracing::info!(order_id = 42, password = "hunter2", "order placed");
            obs::errors::set_user(obs::errors::User::id("customer-7"));
            let err = std::io::Error::other("payment provider timed out");
            obs::errors::capture_error(&err); // a report with the ids, user and breadcrumb
        };
        obs::correlate::scope(request, work).await; // the id joins the current span
    };
    checkout.instrument(tracing::info_span!("checkout")).await;
    let metrics = obs.metrics().encode(obs::metrics::Format::Text);
    let series = metrics.lines().filter(|l| !l.starts_with('#')).count();
    tracing::info!(series, "metrics ready for /metrics");
    let report = obs.shutdown(Duration::from_secs(2)).await; // flushes logs and spans
    #[allow(
        clippy::print_stderr,
        reason = "logs are shut down: the report goes to stderr"
    )]
    {
        eprintln!("obs shutdown: {report}");
    }
    Ok(())
}
