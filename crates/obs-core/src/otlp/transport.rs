//! The OTLP transport: one encoded export request in, the collector's
//! response message out, over HTTP/protobuf or gRPC, plain or TLS, gzipped
//! or not. It runs on the exporter's own thread, with a current-thread tokio
//! runtime of its own, so it never touches the application's runtime.

use std::time::Duration;

use super::{Compression, Error, ExporterConfig, Protocol, Signal, TlsConfig};

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Export(format!("cannot build the exporter runtime: {e}")))
}

fn config_err(field: &'static str, reason: String) -> Error {
    Error::Config { field, reason }
}

/// The export request's extra headers, checked: each name and value must be
/// valid in HTTP (and, for gRPC, in metadata). Both transports use this.
fn header_map(headers: &[(String, String)]) -> Result<http::HeaderMap, Error> {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| config_err("exporter.headers", format!("{k:?} is not a header name")))?;
        let value = http::HeaderValue::from_str(v).map_err(|_| {
            config_err(
                "exporter.headers",
                format!("the value of {k:?} is not a valid header value"),
            )
        })?;
        map.append(name, value);
    }
    Ok(map)
}

/// Sends encoded OTLP export requests of one [`Signal`] to one collector.
///
/// Built from an [`ExporterConfig`]: the endpoint and headers are checked
/// and the TLS files loaded when it is built (a bad file is an
/// [`Error::TlsFile`] naming it); the connection is made on the first
/// [`send`](Self::send) and reused. A TLS handshake failure is an
/// [`Error::Tls`] naming the peer, whatever the HTTP or gRPC stack made of
/// it on the way up.
pub struct Transport {
    endpoint: String,
    signal: Signal,
    compression: Compression,
    inner: Inner,
}

enum Inner {
    #[cfg(feature = "otlp-http")]
    Http(http_client::HttpTransport),
    #[cfg(feature = "otlp-grpc")]
    Grpc(grpc_client::GrpcTransport),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("endpoint", &self.endpoint)
            .field("signal", &self.signal)
            .field("compression", &self.compression)
            .field("tls", &self.endpoint.starts_with("https://"))
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "otlp-tls")]
type TlsClientConfig = Option<std::sync::Arc<rustls::ClientConfig>>;

/// Loads the TLS files for an `https://` endpoint (`None` for `http://`).
#[cfg(feature = "otlp-tls")]
fn tls_for(endpoint: &str, tls: &TlsConfig, alpn: &[u8]) -> Result<TlsClientConfig, Error> {
    if endpoint.starts_with("https://") {
        Ok(Some(super::connect::client_config(tls, alpn)?))
    } else {
        Ok(None)
    }
}

/// Refuses an `https://` endpoint in a build without TLS.
#[cfg(not(feature = "otlp-tls"))]
fn no_tls(endpoint: &str) -> Result<(), Error> {
    if endpoint.starts_with("https://") {
        return Err(Error::FeatureDisabled {
            what: format!("the https:// endpoint {endpoint:?} (TLS)"),
            feature: "tls",
        });
    }
    Ok(())
}

impl Transport {
    /// A transport for `signal` as `config` says. Checks the endpoint, the
    /// headers and the build's features, and loads the TLS files.
    pub fn new(config: &ExporterConfig, signal: Signal) -> Result<Self, Error> {
        let endpoint = config.endpoint.trim().to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(config_err(
                "exporter.endpoint",
                format!("{endpoint:?} is not an http:// or https:// URL"),
            ));
        }
        #[cfg(not(feature = "otlp-tls"))]
        no_tls(&endpoint)?;
        let inner = match config.protocol {
            #[cfg(feature = "otlp-http")]
            Protocol::HttpProtobuf => Inner::Http(http_client::HttpTransport::new(
                &endpoint,
                &config.headers,
                &config.tls,
            )?),
            #[cfg(feature = "otlp-grpc")]
            Protocol::Grpc => Inner::Grpc(grpc_client::GrpcTransport::new(
                &endpoint,
                &config.headers,
                &config.tls,
                config.compression,
            )?),
            #[allow(
                unreachable_patterns,
                reason = "reached when a protocol is compiled out"
            )]
            p => {
                return Err(Error::FeatureDisabled {
                    what: match p {
                        Protocol::HttpProtobuf => "OTLP over http/protobuf".into(),
                        Protocol::Grpc => "OTLP over grpc".into(),
                    },
                    feature: match p {
                        Protocol::HttpProtobuf => "otlp-http",
                        Protocol::Grpc => "otlp-grpc",
                    },
                });
            }
        };
        Ok(Self {
            endpoint,
            signal,
            compression: config.compression,
            inner,
        })
    }

    /// Sets the request compression (takes effect on the next connection
    /// for gRPC). Without gzip support (`otlp-gzip`) requests go
    /// uncompressed: [`ExporterConfig::validate`] and the variables refuse
    /// that combination before a transport is built.
    pub fn set_compression(&mut self, compression: Compression) {
        self.compression = compression;
        match &mut self.inner {
            #[cfg(feature = "otlp-grpc")]
            Inner::Grpc(g) => g.set_compression(compression),
            #[cfg(feature = "otlp-http")]
            Inner::Http(_) => {}
        }
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends one encoded `Export*ServiceRequest` and returns the response
    /// message's bytes, within `timeout` (connecting included). A non-2xx
    /// answer, a gRPC error status, a timeout or a refused connection is an
    /// [`Error::Export`]; a failed TLS handshake an [`Error::Tls`]. A
    /// partial success is left to the caller
    /// ([`wire::partial_success`](super::wire::partial_success)).
    pub fn send(&mut self, body: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, Error> {
        #[cfg(all(feature = "otlp-gzip", feature = "otlp-http"))]
        let body = match (&self.inner, self.compression) {
            // gRPC compresses in its framing layer.
            (Inner::Http(_), Compression::Gzip) => super::gzip(&body),
            _ => body,
        };
        match &mut self.inner {
            #[cfg(feature = "otlp-http")]
            Inner::Http(h) => h.send(
                body,
                cfg!(feature = "otlp-gzip") && self.compression == Compression::Gzip,
                timeout,
            ),
            #[cfg(feature = "otlp-grpc")]
            Inner::Grpc(g) => g.send(body, timeout, self.signal),
        }
    }
}

#[cfg(feature = "otlp-http")]
mod http_client {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    type Body = Full<Bytes>;

    /// The client: plain, or TLS with where its handshake failures go.
    enum HttpClient {
        Plain(Client<HttpConnector, Body>),
        #[cfg(feature = "otlp-tls")]
        Tls(
            Client<super::super::connect::TlsConnector, Body>,
            super::super::connect::FailureSlot,
        ),
    }

    impl HttpClient {
        fn request(&self, req: http::Request<Body>) -> hyper_util::client::legacy::ResponseFuture {
            match self {
                HttpClient::Plain(c) => c.request(req),
                #[cfg(feature = "otlp-tls")]
                HttpClient::Tls(c, _) => c.request(req),
            }
        }

        /// The TLS failure behind a failed request, if there was one.
        fn tls_failure(&self) -> Option<Error> {
            match self {
                HttpClient::Plain(_) => None,
                #[cfg(feature = "otlp-tls")]
                HttpClient::Tls(_, slot) => slot.take(),
            }
        }
    }

    /// OTLP over HTTP/protobuf: `POST {endpoint}` with
    /// `content-type: application/x-protobuf`.
    pub(super) struct HttpTransport {
        uri: http::Uri,
        headers: http::HeaderMap,
        #[cfg(feature = "otlp-tls")]
        tls: TlsClientConfig,
        state: Option<(tokio::runtime::Runtime, HttpClient)>,
    }

    impl HttpTransport {
        #[cfg_attr(
            not(feature = "otlp-tls"),
            allow(unused_variables, reason = "no TLS in this build")
        )]
        pub(super) fn new(
            endpoint: &str,
            headers: &[(String, String)],
            tls: &TlsConfig,
        ) -> Result<Self, Error> {
            let uri: http::Uri = endpoint
                .parse()
                .map_err(|e| config_err("exporter.endpoint", format!("{endpoint:?}: {e}")))?;
            Ok(Self {
                #[cfg(feature = "otlp-tls")]
                tls: tls_for(endpoint, tls, b"http/1.1")?,
                uri,
                headers: header_map(headers)?,
                state: None,
            })
        }

        fn client(&self, connect_timeout: Duration) -> HttpClient {
            #[cfg(feature = "otlp-tls")]
            if let Some(config) = &self.tls {
                let connector =
                    super::super::connect::TlsConnector::new(config.clone(), Some(connect_timeout));
                let failures = connector.failures();
                return HttpClient::Tls(
                    Client::builder(TokioExecutor::new()).build(connector),
                    failures,
                );
            }
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(connect_timeout));
            HttpClient::Plain(Client::builder(TokioExecutor::new()).build(connector))
        }

        pub(super) fn send(
            &mut self,
            body: Vec<u8>,
            gzipped: bool,
            timeout: Duration,
        ) -> Result<Vec<u8>, Error> {
            if self.state.is_none() {
                let rt = runtime()?;
                let client = self.client(timeout);
                self.state = Some((rt, client));
            }
            let Some((rt, client)) = &self.state else {
                return Err(Error::Export("no client".into()));
            };
            // A failure left by an earlier connection is not this one's.
            let _ = client.tls_failure();
            let mut req = http::Request::post(self.uri.clone())
                .header(http::header::CONTENT_TYPE, "application/x-protobuf");
            if gzipped {
                req = req.header(http::header::CONTENT_ENCODING, "gzip");
            }
            let mut req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| Error::Export(e.to_string()))?;
            req.headers_mut().extend(self.headers.clone());
            let uri = &self.uri;
            let fut = async {
                let resp = client
                    .request(req)
                    .await
                    .map_err(|e| Error::Export(format!("{uri}: {e}")))?;
                let status = resp.status();
                // Read the body so the connection can be reused, and for a
                // partial success.
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes().to_vec())
                    .unwrap_or_default();
                if status.is_success() {
                    Ok(body)
                } else {
                    Err(Error::Export(format!("{uri} answered {status}")))
                }
            };
            rt.block_on(async { tokio::time::timeout(timeout, fut).await })
                .map_err(|_| Error::Export(format!("{uri}: no answer within {timeout:?}")))
                .and_then(|r| r)
                .map_err(|e| client.tls_failure().unwrap_or(e))
        }
    }
}

#[cfg(feature = "otlp-grpc")]
mod grpc_client {
    use super::*;
    use tonic::client::Grpc;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    use tonic::transport::{Channel, Endpoint};

    /// Sends the bytes of an encoded request as they are and hands back the
    /// response message's bytes: no generated types, no second encoding.
    #[derive(Clone, Copy, Debug, Default)]
    struct Raw;

    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;

        fn encoder(&mut self) -> Self::Encoder {
            Raw
        }

        fn decoder(&mut self) -> Self::Decoder {
            Raw
        }
    }

    impl Encoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;

        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            bytes::BufMut::put_slice(dst, &item);
            Ok(())
        }
    }

    impl Decoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;

        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
            use bytes::Buf;
            let mut out = vec![0; src.remaining()];
            src.copy_to_slice(&mut out);
            Ok(Some(out))
        }
    }

    /// OTLP over gRPC (`{Signal}Service/Export`).
    pub(super) struct GrpcTransport {
        endpoint: String,
        metadata: tonic::metadata::MetadataMap,
        compression: Compression,
        #[cfg(feature = "otlp-tls")]
        tls: TlsClientConfig,
        state: Option<GrpcState>,
    }

    struct GrpcState {
        rt: tokio::runtime::Runtime,
        client: Grpc<Channel>,
        #[cfg(feature = "otlp-tls")]
        failures: Option<super::super::connect::FailureSlot>,
    }

    impl GrpcState {
        /// The TLS failure behind a failed call, if there was one.
        fn tls_failure(&self) -> Option<Error> {
            #[cfg(feature = "otlp-tls")]
            if let Some(slot) = &self.failures {
                return slot.take();
            }
            None
        }
    }

    impl GrpcTransport {
        #[cfg_attr(
            not(feature = "otlp-tls"),
            allow(unused_variables, reason = "no TLS in this build")
        )]
        pub(super) fn new(
            endpoint: &str,
            headers: &[(String, String)],
            tls: &TlsConfig,
            compression: Compression,
        ) -> Result<Self, Error> {
            Endpoint::from_shared(endpoint.to_owned())
                .map_err(|e| config_err("exporter.endpoint", format!("{endpoint:?}: {e}")))?;
            // Binary (`-bin`) metadata wants base64 values: not a header
            // a variable can carry.
            if let Some((k, _)) = headers
                .iter()
                .find(|(k, _)| k.to_ascii_lowercase().ends_with("-bin"))
            {
                return Err(config_err(
                    "exporter.headers",
                    format!("{k:?} is not a header name"),
                ));
            }
            let metadata = tonic::metadata::MetadataMap::from_headers(header_map(headers)?);
            Ok(Self {
                #[cfg(feature = "otlp-tls")]
                tls: tls_for(endpoint, tls, b"h2")?,
                endpoint: endpoint.to_owned(),
                metadata,
                compression,
                state: None,
            })
        }

        pub(super) fn set_compression(&mut self, compression: Compression) {
            self.compression = compression;
            self.state = None;
        }

        /// A lazy channel: tonic's own connector for `http://`, the TLS
        /// connector for `https://`.
        fn connect(&self, timeout: Duration) -> Result<GrpcState, Error> {
            let rt = runtime()?;
            let bad = |e: tonic::transport::Error| Error::Export(format!("{}: {e}", self.endpoint));
            #[cfg(feature = "otlp-tls")]
            if let Some(config) = &self.tls {
                // tonic is handed an `http://` URI with the port spelled
                // out, so that it never looks for TLS of its own (a tonic
                // built with a `tls-*` feature by another crate would
                // otherwise refuse an https URI it has no TLS config for);
                // the origin keeps `https` for the `:scheme` of requests.
                let uri: http::Uri = self
                    .endpoint
                    .parse()
                    .map_err(|e| Error::Export(format!("{}: {e}", self.endpoint)))?;
                let peer = super::super::connect::peer_of(&uri);
                let connector = super::super::connect::TlsConnector::new(config.clone(), None);
                let failures = connector.failures();
                let endpoint = Endpoint::from_shared(format!("http://{peer}"))
                    .map_err(bad)?
                    .origin(uri)
                    .connect_timeout(timeout);
                let channel = {
                    let _guard = rt.enter();
                    endpoint.connect_with_connector_lazy(connector)
                };
                return Ok(GrpcState {
                    rt,
                    client: self.grpc(channel),
                    failures: Some(failures),
                });
            }
            let endpoint = Endpoint::from_shared(self.endpoint.clone())
                .map_err(bad)?
                .connect_timeout(timeout);
            let channel = {
                let _guard = rt.enter();
                endpoint.connect_lazy()
            };
            Ok(GrpcState {
                rt,
                client: self.grpc(channel),
                #[cfg(feature = "otlp-tls")]
                failures: None,
            })
        }

        /// tonic does the compressing: its framing layer gzips whatever the
        /// codec wrote, so the request bytes go through the raw codec
        /// unchanged and are compressed as one message.
        fn grpc(&self, channel: Channel) -> Grpc<Channel> {
            let grpc = Grpc::new(channel);
            #[cfg(feature = "otlp-gzip")]
            let grpc = if self.compression == Compression::Gzip {
                grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip)
            } else {
                grpc
            };
            grpc
        }

        pub(super) fn send(
            &mut self,
            body: Vec<u8>,
            timeout: Duration,
            signal: Signal,
        ) -> Result<Vec<u8>, Error> {
            if self.state.is_none() {
                self.state = Some(self.connect(timeout)?);
            }
            let Some(state) = &mut self.state else {
                return Err(Error::Export("no client".into()));
            };
            // A failure left by an earlier connection is not this one's.
            let _ = state.tls_failure();
            let GrpcState { rt, client, .. } = state;
            let mut req = tonic::Request::new(body);
            *req.metadata_mut() = self.metadata.clone();
            req.set_timeout(timeout);
            let endpoint = &self.endpoint;
            let call = async {
                client
                    .ready()
                    .await
                    .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                client
                    .unary(
                        req,
                        http::uri::PathAndQuery::from_static(signal.grpc_path()),
                        Raw,
                    )
                    .await
            };
            rt.block_on(async { tokio::time::timeout(timeout, call).await })
                .map_err(|_| Error::Export(format!("{endpoint}: no answer within {timeout:?}")))
                .and_then(|r| r.map_err(|e| Error::Export(format!("{endpoint}: {e}"))))
                .map_err(|e| state.tls_failure().unwrap_or(e))
                .map(tonic::Response::into_inner)
        }
    }
}
