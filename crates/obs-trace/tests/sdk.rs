//! The `sdk` feature: an `opentelemetry-otlp` exporter (gRPC, tonic) runs
//! behind obs's queue and exporter thread and reaches the OTLP receiver over
//! loopback, with no tokio runtime in the application.
#![cfg(feature = "sdk")]

use std::time::Duration;

use obs_testing::otlp::OtlpReceiver;
use obs_trace::sdk::{SdkExporter, to_span_data};
use obs_trace::{Error, TracerProvider};
use opentelemetry_otlp::WithExportConfig as _;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn opentelemetry_otlp_exporter_behind_the_obs_pipeline() {
    let receiver = OtlpReceiver::start();
    let url = receiver.grpc_url();
    let exporter = SdkExporter::lazy(move || {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(url)
            .build()
            .map_err(|e| Error::Export(e.to_string()))
    });
    let provider = TracerProvider::builder()
        .config(obs_trace::Config::default().service("sdk-test"))
        .with_exporter(exporter)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(provider.layer());
    obs_testing::subscriber::with_default(subscriber, || {
        let _outer = tracing::info_span!("outer", otel.kind = "server").entered();
        let _inner = tracing::info_span!("inner", n = 7).entered();
        tracing::error!(error = "bad", "failed");
    });
    let report = provider.shutdown(Duration::from_secs(10));
    assert_eq!((report.exported, report.dropped), (2, 0), "{report:?}");
    let spans = receiver.wait_for_spans(2, Duration::from_secs(5));
    let outer = spans.iter().find(|s| s.name() == "outer").unwrap();
    let inner = spans.iter().find(|s| s.name() == "inner").unwrap();
    assert_eq!(inner.parent_span_id(), Some(outer.span_id()));
    assert_eq!(inner.trace_id(), outer.trace_id());
    assert_eq!(inner.attr("n").as_deref(), Some("7"));
    assert_eq!(inner.status_code(), 2);
    assert_eq!(outer.kind(), 2);
    assert_eq!(
        outer.resource.get("service.name").map(String::as_str),
        Some("sdk-test")
    );
}

#[test]
fn conversion_keeps_ids_and_links() {
    let mem = obs_trace::export::InMemoryExporter::default();
    let provider = TracerProvider::builder()
        .with_exporter(mem.clone())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(provider.layer());
    obs_testing::subscriber::with_default(subscriber, || {
        let producer = tracing::info_span!("producer");
        let cx = obs_trace::context::span_context(&producer).unwrap();
        drop(obs_trace::context::linked_to(&cx, || {
            tracing::info_span!("consumer")
        }));
    });
    assert!(provider.force_flush(Duration::from_secs(5)));
    let spans = mem.spans();
    let consumer = spans.iter().find(|s| s.name == "consumer").unwrap();
    let data = to_span_data(consumer);
    assert_eq!(
        data.span_context.trace_id().to_bytes(),
        consumer.trace_id.to_bytes()
    );
    assert_eq!(
        data.span_context.span_id().to_bytes(),
        consumer.span_id.to_bytes()
    );
    assert_eq!(data.links.links.len(), 1);
    assert_eq!(
        data.links.links[0].span_context.span_id().to_bytes(),
        consumer.links[0].span_id.to_bytes()
    );
    assert_eq!(data.name, "consumer");
}
