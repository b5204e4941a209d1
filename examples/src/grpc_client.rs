//! Run with: `cargo run -p examples --bin grpc_client` (with `grpc_server`
//! running).
//!
//! Calls the server's health service through `obs.grpc_client_layer()`,
//! every call inside one root span and one correlation id, so that the run
//! is one trace across both processes (set `OTEL_EXPORTER_OTLP_ENDPOINT` for
//! both) and every access line on either side carries the same
//! `correlation_id`:
//!
//! 1. `Check` of the server as a whole (`""`): `OK`;
//! 2. `Check` of `obs.example.Orders`: `OK`;
//! 3. `Check` of a service the server does not know: `NOT_FOUND` — an
//!    error for the client span, not for the server's (the caller's problem);
//! 4. `Watch` of the server: the first status is read, then the stream is
//!    dropped — `CANCELLED` on both sides, never a success;
//! 5. `Check` with a 1 s deadline that the server, asked to be slow
//!    (`x-example-delay-ms: 3000`), cannot meet: `DEADLINE_EXCEEDED` on both
//!    spans. (A second, not less: the server counts a call dropped in the
//!    last twentieth of its deadline as past it, since the caller's
//!    cancellation arrives a network delay after its own clock ran out; 50 ms
//!    of slack also covers a slow scheduler.)
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `GRPC_TARGET` | `http://127.0.0.1:50051` | the server |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_*`, `OBS_*` | | read by `obs::Config::from_env` |
//!
//! It ends with one line `"message":"grpc client done"` carrying the run's
//! `trace_id`, and the exit status says whether every call went as above.

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let obs = obs::init(obs::Config::from_env()?.service("grpc-client"))?;
    let target = std::env::var("GRPC_TARGET").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let channel = tonic::transport::Endpoint::from_shared(target.clone())?
        .connect()
        .await?;
    // The client layer wraps the channel; `server` names it on spans and metrics.
    let channel = tower::ServiceBuilder::new()
        .layer(obs.grpc_client_layer().server(&target))
        .service(channel);
    let mut health = HealthClient::new(channel);

    let id = obs::CorrelationId::generate(obs::IdFormat::UuidV7);
    let run = async {
        let mut failures = Vec::new();
        let mut expect = |what: &str, got: tonic::Code, want: tonic::Code| {
            tracing::info!(call = what, status = ?got, "call finished");
            if got != want {
                failures.push(format!("{what}: {got:?}, expected {want:?}"));
            }
        };
        let check = |service: &str| HealthCheckRequest {
            service: service.into(),
        };

        expect(
            "check server",
            code(health.check(check("")).await),
            tonic::Code::Ok,
        );
        expect(
            "check orders",
            code(health.check(check("obs.example.Orders")).await),
            tonic::Code::Ok,
        );
        expect(
            "check unknown",
            code(health.check(check("obs.example.Nope")).await),
            tonic::Code::NotFound,
        );

        match health.watch(check("")).await {
            Ok(resp) => {
                let mut stream = resp.into_inner();
                let first = stream.message().await;
                expect("watch first status", code(first), tonic::Code::Ok);
                drop(stream); // the client lets go: CANCELLED on both sides
            }
            Err(s) => expect("watch", s.code(), tonic::Code::Ok),
        }

        let mut late = tonic::Request::new(check(""));
        late.set_timeout(Duration::from_secs(1));
        late.metadata_mut().insert(
            "x-example-delay-ms",
            tonic::metadata::MetadataValue::from(3000u32),
        );
        let got = code(health.check(late).await);
        // tonic reports its own deadline as CANCELLED; the span says DEADLINE_EXCEEDED.
        let got = if got == tonic::Code::Cancelled {
            tonic::Code::DeadlineExceeded
        } else {
            got
        };
        expect(
            "check past its deadline",
            got,
            tonic::Code::DeadlineExceeded,
        );
        tracing::info!(failures = failures.len(), "grpc client done");
        failures
    };
    let failures = obs::correlate::scope(id, run)
        .instrument(tracing::info_span!("grpc client run"))
        .await;

    let report = obs.shutdown(Duration::from_secs(5)).await;
    #[allow(
        clippy::print_stderr,
        reason = "logs are shut down: the report goes to stderr"
    )]
    {
        eprintln!("obs shutdown: {report}");
        for f in &failures {
            eprintln!("unexpected: {f}");
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} calls did not go as expected", failures.len()).into())
    }
}

/// The status code a call ended with.
fn code<T>(r: Result<T, tonic::Status>) -> tonic::Code {
    r.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
}
