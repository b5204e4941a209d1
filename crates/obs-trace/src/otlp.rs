//! OTLP exporters built on the official `opentelemetry-proto` message types:
//! HTTP/protobuf (feature `otlp-http`) and gRPC (feature `otlp-grpc`).
//!
//! Each exporter owns a single-threaded tokio runtime that lives on the
//! exporter thread, so it never depends on (or blocks) the application's
//! runtime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use obs_core::Resource;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue as PbKeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span as PbSpan, Status as PbStatus, span, status,
};

use crate::span::{FinishedSpan, KeyValue, SpanKind, Status, Value};

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn pb_value(v: &Value) -> AnyValue {
    AnyValue {
        value: Some(match v {
            Value::Bool(b) => any_value::Value::BoolValue(*b),
            Value::I64(i) => any_value::Value::IntValue(*i),
            Value::F64(f) => any_value::Value::DoubleValue(*f),
            Value::Str(s) => any_value::Value::StringValue(s.to_string()),
        }),
    }
}

fn pb_kv(kv: &KeyValue) -> PbKeyValue {
    PbKeyValue {
        key: kv.key.to_string(),
        value: Some(pb_value(&kv.value)),
        ..Default::default()
    }
}

fn pb_str(k: &str, v: &str) -> PbKeyValue {
    PbKeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_owned())),
        }),
        ..Default::default()
    }
}

// W3C flags in the low byte; bits 8-9 say whether the parent is known to be
// remote (OTLP 1.4 `SpanFlags`).
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn pb_span(s: &FinishedSpan) -> PbSpan {
    let mut flags = u32::from(s.trace_flags.to_byte()) | HAS_IS_REMOTE;
    if s.parent_is_remote {
        flags |= IS_REMOTE;
    }
    PbSpan {
        trace_id: s.trace_id.as_bytes().to_vec(),
        span_id: s.span_id.as_bytes().to_vec(),
        trace_state: s.trace_state.as_str().to_owned(),
        parent_span_id: s
            .parent_span_id
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default(),
        flags,
        name: s.name.to_string(),
        kind: match s.kind {
            SpanKind::Internal => span::SpanKind::Internal,
            SpanKind::Server => span::SpanKind::Server,
            SpanKind::Client => span::SpanKind::Client,
            SpanKind::Producer => span::SpanKind::Producer,
            SpanKind::Consumer => span::SpanKind::Consumer,
        } as i32,
        start_time_unix_nano: nanos(s.start),
        end_time_unix_nano: nanos(s.end),
        attributes: s.attributes.iter().map(pb_kv).collect(),
        dropped_attributes_count: s.dropped_attributes,
        events: s
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: nanos(e.time),
                name: e.name.to_string(),
                attributes: e.attributes.iter().map(pb_kv).collect(),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: s.dropped_events,
        links: s
            .links
            .iter()
            .map(|l| span::Link {
                trace_id: l.trace_id.as_bytes().to_vec(),
                span_id: l.span_id.as_bytes().to_vec(),
                trace_state: l.trace_state.as_str().to_owned(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
                flags: u32::from(l.trace_flags.to_byte()) | HAS_IS_REMOTE | IS_REMOTE,
            })
            .collect(),
        dropped_links_count: 0,
        status: match &s.status {
            Status::Unset => None,
            Status::Ok => Some(PbStatus {
                message: String::new(),
                code: status::StatusCode::Ok as i32,
            }),
            Status::Error(m) => Some(PbStatus {
                message: m.to_string(),
                code: status::StatusCode::Error as i32,
            }),
        },
    }
}

/// Converts a batch into the OTLP request: one resource, one scope per
/// `tracing` target.
///
/// ```
/// # use obs_core::Resource;
/// let req = obs_trace::otlp::to_request(&[], &Resource::new("svc"));
/// assert_eq!(req.resource_spans.len(), 1);
/// ```
pub fn to_request(batch: &[FinishedSpan], resource: &Resource) -> ExportTraceServiceRequest {
    let mut scopes: Vec<ScopeSpans> = Vec::new();
    for s in batch {
        let pb = pb_span(s);
        match scopes
            .iter_mut()
            .find(|sc| sc.scope.as_ref().is_some_and(|x| x.name == s.scope))
        {
            Some(sc) => sc.spans.push(pb),
            None => scopes.push(ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: s.scope.to_owned(),
                    ..Default::default()
                }),
                spans: vec![pb],
                schema_url: String::new(),
            }),
        }
    }
    let mut attributes: Vec<PbKeyValue> = resource.iter().map(|(k, v)| pb_str(k, v)).collect();
    attributes.push(pb_str("telemetry.sdk.name", "obs-trace"));
    attributes.push(pb_str("telemetry.sdk.language", "rust"));
    attributes.push(pb_str("telemetry.sdk.version", env!("CARGO_PKG_VERSION")));
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(PbResource {
                attributes,
                ..Default::default()
            }),
            scope_spans: scopes,
            schema_url: String::new(),
        }],
    }
}

/// Turns an OTLP response into the outcome: a partial success with rejected
/// spans is [`Error::Rejected`](crate::Error::Rejected).
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
fn partial(resp: Option<ExportTraceServiceResponse>) -> Result<(), crate::Error> {
    match resp.and_then(|r| r.partial_success) {
        Some(p) if p.rejected_spans > 0 => Err(crate::Error::Rejected {
            rejected: p.rejected_spans as u64,
            message: p.error_message,
        }),
        _ => Ok(()),
    }
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
fn runtime() -> Result<tokio::runtime::Runtime, crate::Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Export(format!("cannot build the exporter runtime: {e}")))
}

#[cfg(feature = "otlp-http")]
pub use http_exporter::OtlpHttpExporter;

#[cfg(feature = "otlp-http")]
mod http_exporter {
    use super::*;
    use crate::Error;
    use crate::export::SpanExporter;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    use prost::Message;

    /// OTLP over HTTP/protobuf: `POST {endpoint}` with
    /// `content-type: application/x-protobuf`. Plain `http://` endpoints.
    pub struct OtlpHttpExporter {
        uri: http::Uri,
        headers: http::HeaderMap,
        state: Option<(tokio::runtime::Runtime, Client<HttpConnector, Full<Bytes>>)>,
    }

    impl std::fmt::Debug for OtlpHttpExporter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("OtlpHttpExporter")
                .field("uri", &self.uri)
                .finish_non_exhaustive()
        }
    }

    impl OtlpHttpExporter {
        /// An exporter for `endpoint` (the full `/v1/traces` URL) sending
        /// `headers` with every request.
        pub fn new(endpoint: &str, headers: &[(String, String)]) -> Result<Self, Error> {
            let cfg = |reason: String| Error::Config {
                field: "exporter.endpoint",
                reason,
            };
            let uri: http::Uri = endpoint
                .parse()
                .map_err(|e| cfg(format!("{endpoint:?}: {e}")))?;
            match uri.scheme_str() {
                Some("http") => {}
                Some("https") => {
                    return Err(cfg(format!(
                        "{endpoint:?}: the built-in HTTP exporter speaks plain http only; use a TLS-terminating \
                         collector sidecar or the `sdk` feature with an opentelemetry-otlp exporter"
                    )));
                }
                _ => return Err(cfg(format!("{endpoint:?} is not an http:// URL"))),
            }
            let mut map = http::HeaderMap::new();
            for (k, v) in headers {
                let name =
                    http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| Error::Config {
                        field: "exporter.headers",
                        reason: format!("{k:?} is not a header name"),
                    })?;
                let value = http::HeaderValue::from_str(v).map_err(|_| Error::Config {
                    field: "exporter.headers",
                    reason: format!("the value of {k:?} is not a valid header value"),
                })?;
                map.append(name, value);
            }
            Ok(Self {
                uri,
                headers: map,
                state: None,
            })
        }
    }

    impl SpanExporter for OtlpHttpExporter {
        fn export(
            &mut self,
            batch: &[FinishedSpan],
            resource: &Resource,
            timeout: Duration,
        ) -> Result<(), Error> {
            if self.state.is_none() {
                let rt = runtime()?;
                let mut connector = HttpConnector::new();
                connector.set_connect_timeout(Some(timeout));
                let client = Client::builder(TokioExecutor::new()).build(connector);
                self.state = Some((rt, client));
            }
            let Some((rt, client)) = &self.state else {
                return Err(Error::Export("no client".into()));
            };
            let body = to_request(batch, resource).encode_to_vec();
            let mut req = http::Request::post(self.uri.clone())
                .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| Error::Export(e.to_string()))?;
            req.headers_mut().extend(self.headers.clone());
            let fut = async {
                let resp = client
                    .request(req)
                    .await
                    .map_err(|e| Error::Export(format!("{}: {e}", self.uri)))?;
                let status = resp.status();
                // Read the body so the connection can be reused, and for a
                // partial success.
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                if status.is_success() {
                    partial(ExportTraceServiceResponse::decode(body).ok())
                } else {
                    Err(Error::Export(format!("{} answered {status}", self.uri)))
                }
            };
            rt.block_on(async { tokio::time::timeout(timeout, fut).await })
                .map_err(|_| Error::Export(format!("{}: no answer within {timeout:?}", self.uri)))?
        }
    }
}

#[cfg(feature = "otlp-grpc")]
pub use grpc_exporter::OtlpGrpcExporter;

#[cfg(feature = "otlp-grpc")]
mod grpc_exporter {
    use super::*;
    use crate::Error;
    use crate::export::SpanExporter;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use tonic::transport::{Channel, Endpoint};

    /// OTLP over gRPC (`TraceService/Export`), plain `http://` endpoints.
    pub struct OtlpGrpcExporter {
        endpoint: String,
        metadata: tonic::metadata::MetadataMap,
        state: Option<(tokio::runtime::Runtime, TraceServiceClient<Channel>)>,
    }

    impl std::fmt::Debug for OtlpGrpcExporter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("OtlpGrpcExporter")
                .field("endpoint", &self.endpoint)
                .finish_non_exhaustive()
        }
    }

    impl OtlpGrpcExporter {
        /// An exporter for the gRPC server at `endpoint` sending `headers` as
        /// metadata.
        pub fn new(endpoint: &str, headers: &[(String, String)]) -> Result<Self, Error> {
            if !endpoint.starts_with("http://") {
                return Err(Error::Config {
                    field: "exporter.endpoint",
                    reason: format!(
                        "{endpoint:?}: the built-in gRPC exporter speaks plain http:// only"
                    ),
                });
            }
            Endpoint::from_shared(endpoint.to_owned()).map_err(|e| Error::Config {
                field: "exporter.endpoint",
                reason: format!("{endpoint:?}: {e}"),
            })?;
            let mut metadata = tonic::metadata::MetadataMap::new();
            for (k, v) in headers {
                let key =
                    tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|_| Error::Config {
                            field: "exporter.headers",
                            reason: format!("{k:?} is not a header name"),
                        })?;
                let value = v.parse().map_err(|_| Error::Config {
                    field: "exporter.headers",
                    reason: format!("the value of {k:?} is not a valid header value"),
                })?;
                metadata.append(key, value);
            }
            Ok(Self {
                endpoint: endpoint.to_owned(),
                metadata,
                state: None,
            })
        }
    }

    impl SpanExporter for OtlpGrpcExporter {
        fn export(
            &mut self,
            batch: &[FinishedSpan],
            resource: &Resource,
            timeout: Duration,
        ) -> Result<(), Error> {
            if self.state.is_none() {
                let rt = runtime()?;
                let endpoint = Endpoint::from_shared(self.endpoint.clone())
                    .map_err(|e| Error::Export(e.to_string()))?
                    .connect_timeout(timeout);
                let channel = {
                    let _guard = rt.enter();
                    endpoint.connect_lazy()
                };
                self.state = Some((rt, TraceServiceClient::new(channel)));
            }
            let Some((rt, client)) = &mut self.state else {
                return Err(Error::Export("no client".into()));
            };
            let mut req = tonic::Request::new(to_request(batch, resource));
            *req.metadata_mut() = self.metadata.clone();
            req.set_timeout(timeout);
            let endpoint = &self.endpoint;
            rt.block_on(async { tokio::time::timeout(timeout, client.export(req)).await })
                .map_err(|_| Error::Export(format!("{endpoint}: no answer within {timeout:?}")))?
                .map_err(|e| Error::Export(format!("{endpoint}: {e}")))
                .and_then(|r| partial(Some(r.into_inner())))
        }
    }
}

#[cfg(all(test, any(feature = "otlp-http", feature = "otlp-grpc")))]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

    #[test]
    fn partial_success_reports_rejected_spans() {
        assert!(partial(None).is_ok());
        assert!(
            partial(Some(ExportTraceServiceResponse {
                partial_success: None
            }))
            .is_ok()
        );
        let ok = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 0,
                error_message: "warning only".into(),
            }),
        };
        assert!(partial(Some(ok)).is_ok());
        let rejected = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        };
        assert_eq!(
            partial(Some(rejected)),
            Err(crate::Error::Rejected {
                rejected: 3,
                message: "too old".into()
            })
        );
    }
}
