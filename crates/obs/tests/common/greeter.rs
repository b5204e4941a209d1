//! A small gRPC service written by hand the way `tonic-build` would
//! generate it (no `protoc` needed): `obs.test.Greeter` with a unary
//! `SayHello`, a server-streaming `Count` and a bidirectional `Chat`, its prost messages, a server
//! whose behaviour each test supplies as closures, and a client.

#![allow(dead_code, reason = "each test binary uses the part it needs")]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{BoxFuture, Bytes, StdError, http};
use tonic::server::NamedService;
use tonic_prost::ProstCodec;

/// The service's full name.
pub(crate) const SERVICE: &str = "obs.test.Greeter";
/// The unary method's path.
pub(crate) const SAY_HELLO: &str = "/obs.test.Greeter/SayHello";
/// The server-streaming method's path.
pub(crate) const COUNT: &str = "/obs.test.Greeter/Count";
/// The bidirectional-streaming method's path: one reply per request.
pub(crate) const CHAT: &str = "/obs.test.Greeter/Chat";

/// The request of both methods.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloRequest {
    /// Who to greet (tests use it to pick a behaviour).
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    /// How many replies `Count` streams.
    #[prost(uint32, tag = "2")]
    pub(crate) count: u32,
}

/// The reply of both methods.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub(crate) message: String,
}

/// The stream of replies `Count` answers with.
pub(crate) type ReplyStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<HelloReply, tonic::Status>> + Send>>;

/// `SayHello`'s behaviour.
pub(crate) type Unary = Arc<
    dyn Fn(tonic::Request<HelloRequest>) -> BoxFuture<tonic::Response<HelloReply>, tonic::Status>
        + Send
        + Sync,
>;
/// `Count`'s behaviour.
pub(crate) type Streaming = Arc<
    dyn Fn(tonic::Request<HelloRequest>) -> BoxFuture<tonic::Response<ReplyStream>, tonic::Status>
        + Send
        + Sync,
>;

/// The server: route by path like generated code, unknown methods
/// answered `UNIMPLEMENTED` (trailers-only).
#[derive(Clone)]
pub(crate) struct GreeterServer {
    unary: Unary,
    streaming: Streaming,
}

impl GreeterServer {
    /// A server with these behaviours.
    pub(crate) fn new(unary: Unary, streaming: Streaming) -> Self {
        Self { unary, streaming }
    }

    /// `SayHello` answers `Hello, {name}!`; `Count` streams `count` replies.
    pub(crate) fn hello() -> Self {
        Self::new(
            Arc::new(|req| {
                Box::pin(async move {
                    Ok(tonic::Response::new(HelloReply {
                        message: format!("Hello, {}!", req.into_inner().name),
                    }))
                })
            }),
            Arc::new(|req| {
                Box::pin(async move {
                    let n = req.into_inner().count;
                    let items = (0..n).map(|i| {
                        Ok(HelloReply {
                            message: i.to_string(),
                        })
                    });
                    Ok(tonic::Response::new(
                        Box::pin(tokio_stream::iter(items)) as ReplyStream
                    ))
                })
            }),
        )
    }
}

impl NamedService for GreeterServer {
    const NAME: &'static str = SERVICE;
}

struct SayHelloSvc(Unary);

impl tonic::server::UnaryService<HelloRequest> for SayHelloSvc {
    type Response = HelloReply;
    type Future = BoxFuture<tonic::Response<HelloReply>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        (self.0)(request)
    }
}

struct CountSvc(Streaming);

impl tonic::server::ServerStreamingService<HelloRequest> for CountSvc {
    type Response = HelloReply;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<tonic::Response<ReplyStream>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        (self.0)(request)
    }
}

/// `Chat`: answers every request with `echo: {name}`, and ends when the
/// requests do.
struct ChatSvc;

impl tonic::server::StreamingService<HelloRequest> for ChatSvc {
    type Response = HelloReply;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<tonic::Response<ReplyStream>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<tonic::Streaming<HelloRequest>>) -> Self::Future {
        use tokio_stream::StreamExt as _;
        let replies = request.into_inner().map(|r| {
            r.map(|req| HelloReply {
                message: format!("echo: {}", req.name),
            })
        });
        Box::pin(async move { Ok(tonic::Response::new(Box::pin(replies) as ReplyStream)) })
    }
}

impl<B> tower::Service<http::Request<B>> for GreeterServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match req.uri().path() {
            SAY_HELLO => {
                let svc = SayHelloSvc(self.unary.clone());
                Box::pin(async move {
                    let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                    Ok(grpc.unary(svc, req).await)
                })
            }
            COUNT => {
                let svc = CountSvc(self.streaming.clone());
                Box::pin(async move {
                    let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                    Ok(grpc.server_streaming(svc, req).await)
                })
            }
            CHAT => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.streaming(ChatSvc, req).await)
            }),
            _ => Box::pin(async move {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    tonic::Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            }),
        }
    }
}

/// The client, over any gRPC transport (a tonic `Channel`, or one wrapped
/// in obs's client layer).
#[derive(Clone, Debug)]
pub(crate) struct GreeterClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T> GreeterClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<StdError> + Send,
{
    /// A client over `inner`.
    pub(crate) fn new(inner: T) -> Self {
        Self {
            inner: tonic::client::Grpc::new(inner),
        }
    }

    /// Calls `SayHello`.
    pub(crate) async fn say_hello(
        &mut self,
        request: impl tonic::IntoRequest<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        self.unary(SAY_HELLO, request).await
    }

    /// Calls the unary method at `path` (an unknown one, in some tests).
    pub(crate) async fn unary(
        &mut self,
        path: &'static str,
        request: impl tonic::IntoRequest<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| tonic::Status::unknown(format!("not ready: {}", e.into())))?;
        self.inner
            .unary(
                request.into_request(),
                http::uri::PathAndQuery::from_static(path),
                ProstCodec::default(),
            )
            .await
    }

    /// Calls `Count`.
    pub(crate) async fn count(
        &mut self,
        request: impl tonic::IntoRequest<HelloRequest>,
    ) -> Result<tonic::Response<tonic::Streaming<HelloReply>>, tonic::Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| tonic::Status::unknown(format!("not ready: {}", e.into())))?;
        self.inner
            .server_streaming(
                request.into_request(),
                http::uri::PathAndQuery::from_static(COUNT),
                ProstCodec::default(),
            )
            .await
    }

    /// Calls `Chat` with `requests`.
    pub(crate) async fn chat(
        &mut self,
        requests: impl tokio_stream::Stream<Item = HelloRequest> + Send + 'static,
    ) -> Result<tonic::Response<tonic::Streaming<HelloReply>>, tonic::Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| tonic::Status::unknown(format!("not ready: {}", e.into())))?;
        self.inner
            .streaming(
                tonic::Request::new(requests),
                http::uri::PathAndQuery::from_static(CHAT),
                ProstCodec::default(),
            )
            .await
    }
}
