//! An OTLP receiver built on the official `opentelemetry-proto` types (gRPC and
//! HTTP/protobuf) that collects what a test app exports over real loopback.
