//! Run with: `cargo run -p examples --bin quickstart`
//!
//! The smallest obs program: it identifies the service from the standard
//! OpenTelemetry variables (or embedded defaults), mints the ids a request
//! would carry, puts them in a carrier as they would travel to the next
//! service or job, and redacts a secret before anything is printed. Output is
//! one JSON object per line on stdout, the format obs logs in.

use obs::{Carrier, CorrelationId, IdFormat, Resource, SpanId, TraceFlags, TraceId};
use serde_json::json;

fn main() -> Result<(), obs::Error> {
    let resource = Resource::from_env()?; // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    let (trace_id, span_id) = (TraceId::random(), SpanId::random());
    let request = CorrelationId::generate(IdFormat::UuidV7);

    let mut carrier = Carrier::new();
    carrier.insert(
        obs::core::names::header::TRACEPARENT,
        format!("00-{trace_id}-{span_id}-{}", TraceFlags::SAMPLED),
    )?;
    carrier.set_correlation_id(&request);

    let line = json!({
        "level": "INFO",
        "message": obs::redact("checkout called with password=hunter2"),
        "service.name": resource.service_name(),
        "service.instance.id": resource.instance_id(),
        "trace_id": trace_id.to_hex().as_str(),
        "span_id": span_id.to_hex().as_str(),
        "correlation_id": request.as_str(),
        "carrier": carrier,
    });
    #[allow(clippy::print_stdout, reason = "an example prints its result")]
    {
        println!("{line}");
    }
    Ok(())
}
