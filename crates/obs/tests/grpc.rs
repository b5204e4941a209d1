//! gRPC over real HTTP/2 on loopback: tonic servers and channels behind
//! obs's gRPC layers (`obs.grpc_server_layer()`, `obs.grpc_client_layer()`),
//! spans at obs-testing's OTLP receiver, metrics in the instance's registry,
//! access lines in its log.
//!
//! Each test runs on a current-thread runtime with its own obs instance's
//! subscriber as the thread's default (`obs_testing::subscriber`), so the
//! servers, the clients and their spans all meet on that thread. The
//! propagation test runs its second service on a thread of its own, with an
//! instance of its own, as a second process would.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use obs_testing::otlp::{OtlpReceiver, ReceivedSpan};
use tonic::transport::{Channel, Endpoint, Server};
use tower::Service as _;

#[path = "common/greeter.rs"]
mod greeter;
use greeter::{GreeterClient, GreeterServer, HelloReply, HelloRequest, ReplyStream};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const UNSET: i32 = 0;
const ERROR: i32 = 2;

/// An obs instance exporting spans to `receiver`, its log captured, its
/// subscriber the current thread's default while the guard lives.
struct Instance {
    obs: obs::Obs,
    logs: obs_testing::capture::SharedBuf,
    _default: tracing::subscriber::DefaultGuard,
}

fn instance(service: &str, receiver_url: &str) -> Instance {
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let url = receiver_url.to_owned();
    let service = service.to_owned();
    let env = move |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(url.clone()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".into()),
        "OTEL_BSP_SCHEDULE_DELAY" => Some("50".into()),
        "OTEL_SERVICE_NAME" => Some(service.clone()),
        _ => None,
    };
    let obs = obs::init(
        obs::Config::from_lookup(env)
            .unwrap()
            .log(move |l| l.writer(sink).filter("info"))
            .install_global(false),
    )
    .unwrap();
    // obs alone on a registry, as `obs::init` installs it process-wide.
    let subscriber = obs.take_subscriber().unwrap();
    let _default = obs_testing::subscriber::set_default(subscriber);
    Instance {
        obs,
        logs,
        _default,
    }
}

/// Serves `svc` behind `layer` on a free loopback port; evaluates to the
/// address.
macro_rules! serve {
    ($layer:expr, $svc:expr) => {{
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            Server::builder()
                .layer($layer)
                .add_service($svc)
                .serve_with_incoming(incoming),
        );
        addr
    }};
}

async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A client through obs's client layer.
async fn obs_client(
    obs: &obs::Obs,
    addr: SocketAddr,
) -> GreeterClient<<obs::grpc::GrpcClientLayer as tower::Layer<Channel>>::Service> {
    let svc = tower::ServiceBuilder::new()
        .layer(obs.grpc_client_layer().server(&format!("http://{addr}")))
        .service(channel(addr).await);
    GreeterClient::new(svc)
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.into(),
        count: 0,
    }
}

/// Waits (at most 20 s) until the received spans satisfy `done`.
async fn spans_until(
    receiver: &OtlpReceiver,
    done: impl Fn(&[ReceivedSpan]) -> bool,
) -> Vec<ReceivedSpan> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let spans = receiver.spans();
        if done(&spans) {
            return spans;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spans never arrived: {:#?}",
            spans
                .iter()
                .map(|s| (s.name(), s.attributes()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The spans of `kind` whose `rpc.response.status_code` is `code`.
fn with_status(spans: &[ReceivedSpan], kind: i32, code: &str) -> Vec<ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.kind() == kind && s.attr("rpc.response.status_code").as_deref() == Some(code))
        .cloned()
        .collect()
}

fn one(spans: &[ReceivedSpan], kind: i32, code: &str) -> ReceivedSpan {
    let found = with_status(spans, kind, code);
    assert_eq!(found.len(), 1, "one {kind} span with {code}: {found:#?}");
    found.into_iter().next().unwrap()
}

fn metrics(obs: &obs::Obs) -> String {
    obs.metrics().encode(obs::metrics::Format::Text)
}

/// The access lines (`rpc finished`) logged so far.
fn access_lines(logs: &obs_testing::capture::SharedBuf) -> Vec<serde_json::Value> {
    logs.text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "rpc finished")
        .collect()
}

#[tokio::test]
async fn unary_ok_is_a_server_and_a_client_span_with_metrics_and_an_access_line() {
    let receiver = OtlpReceiver::start();
    let i = instance("grpc-ok", &receiver.http_base_url());
    let addr = serve!(i.obs.grpc_server_layer(), GreeterServer::hello());
    let mut client = obs_client(&i.obs, addr).await;

    let mut req = tonic::Request::new(hello("obs"));
    req.metadata_mut()
        .insert("x-correlation-id", "grpc-corr-1".parse().unwrap());
    let resp = client.say_hello(req).await.unwrap();
    assert_eq!(resp.get_ref().message, "Hello, obs!");
    // The correlation id comes back in the initial metadata.
    assert_eq!(
        resp.metadata()
            .get("x-correlation-id")
            .unwrap()
            .to_str()
            .unwrap(),
        "grpc-corr-1"
    );

    let spans = spans_until(&receiver, |s| {
        with_status(s, SERVER, "OK").len() == 1 && with_status(s, CLIENT, "OK").len() == 1
    })
    .await;
    let server = one(&spans, SERVER, "OK");
    let client_span = one(&spans, CLIENT, "OK");
    for s in [&server, &client_span] {
        assert_eq!(s.name(), "obs.test.Greeter/SayHello");
        assert_eq!(s.attr("rpc.system.name").as_deref(), Some("grpc"));
        assert_eq!(
            s.attr("rpc.method").as_deref(),
            Some("obs.test.Greeter/SayHello")
        );
        assert_eq!(s.attr("server.address").as_deref(), Some("127.0.0.1"));
        assert_eq!(s.attr("server.port"), Some(addr.port().to_string()));
        assert_eq!(s.status_code(), UNSET, "a success leaves the status unset");
        assert_eq!(s.attr("error.type"), None);
        assert_eq!(s.attr("http.request.method"), None, "not an HTTP span");
    }
    assert_eq!(
        server.attr("network.peer.address").as_deref(),
        Some("127.0.0.1")
    );
    assert!(server.attr("network.peer.port").is_some());
    // One trace: the client's context went out in the metadata.
    assert_eq!(server.trace_id(), client_span.trace_id());
    assert_eq!(server.parent_span_id(), Some(client_span.span_id()));

    let text = metrics(&i.obs);
    assert!(text.contains(r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="obs.test.Greeter/SayHello",rpc_response_status_code="OK",error_type=""} 1"#), "{text}");
    assert!(text.contains(&format!(r#"rpc_client_call_duration_seconds_count{{rpc_system_name="grpc",rpc_method="obs.test.Greeter/SayHello",rpc_response_status_code="OK",error_type="",server_address="127.0.0.1",server_port="{}"}} 1"#, addr.port())), "{text}");
    // No HTTP series for gRPC calls.
    assert!(
        !text.contains("http_server_request_duration_seconds_count"),
        "{text}"
    );

    let lines = access_lines(&i.logs);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["rpc.method"], "obs.test.Greeter/SayHello");
    assert_eq!(line["rpc.response.status_code"], "OK");
    assert_eq!(line["correlation_id"], "grpc-corr-1");
    assert_eq!(line["trace_id"], server.trace_id());
    i.obs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn unary_errors_follow_the_server_and_client_rules() {
    let receiver = OtlpReceiver::start();
    let i = instance("grpc-errors", &receiver.http_base_url());
    let svc = GreeterServer::new(
        Arc::new(|req| {
            Box::pin(async move {
                match req.into_inner().name.as_str() {
                    "missing" => Err(tonic::Status::not_found("no such greeting")),
                    _ => Err(tonic::Status::internal("db exploded")),
                }
            })
        }),
        GreeterServer::hello_streaming(),
    );
    let addr = serve!(i.obs.grpc_server_layer(), svc);
    let mut client = obs_client(&i.obs, addr).await;

    let err = client.say_hello(hello("missing")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = client.say_hello(hello("boom")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Internal);

    let spans = spans_until(&receiver, |s| {
        with_status(s, SERVER, "NOT_FOUND").len() == 1
            && with_status(s, SERVER, "INTERNAL").len() == 1
            && with_status(s, CLIENT, "NOT_FOUND").len() == 1
            && with_status(s, CLIENT, "INTERNAL").len() == 1
    })
    .await;

    // NOT_FOUND is the caller's problem: a server span stays unset, a
    // client span fails.
    let server = one(&spans, SERVER, "NOT_FOUND");
    assert_eq!(server.status_code(), UNSET);
    assert_eq!(server.attr("error.type"), None);
    let client_span = one(&spans, CLIENT, "NOT_FOUND");
    assert_eq!(client_span.status_code(), ERROR);
    assert_eq!(client_span.attr("error.type").as_deref(), Some("NOT_FOUND"));
    assert_eq!(client_span.status_message(), "no such greeting");

    // INTERNAL fails both.
    for s in [
        one(&spans, SERVER, "INTERNAL"),
        one(&spans, CLIENT, "INTERNAL"),
    ] {
        assert_eq!(s.status_code(), ERROR, "{s:#?}");
        assert_eq!(s.attr("error.type").as_deref(), Some("INTERNAL"));
        assert_eq!(s.status_message(), "db exploded");
    }

    let text = metrics(&i.obs);
    for line in [
        r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="obs.test.Greeter/SayHello",rpc_response_status_code="NOT_FOUND",error_type=""} 1"#,
        r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="obs.test.Greeter/SayHello",rpc_response_status_code="INTERNAL",error_type="INTERNAL"} 1"#,
        r#"rpc_response_status_code="NOT_FOUND",error_type="NOT_FOUND",server_address="127.0.0.1""#,
        r#"rpc_response_status_code="INTERNAL",error_type="INTERNAL",server_address="127.0.0.1""#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }

    let levels: Vec<_> = access_lines(&i.logs)
        .iter()
        .map(|l| {
            (
                l["rpc.response.status_code"].as_str().unwrap().to_owned(),
                l["level"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        [
            ("NOT_FOUND".to_owned(), "WARN".to_owned()),
            ("INTERNAL".to_owned(), "ERROR".to_owned())
        ]
    );
    i.obs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn trailers_only_responses_and_unknown_methods() {
    let receiver = OtlpReceiver::start();
    let i = instance("grpc-trailers-only", &receiver.http_base_url());
    let addr = serve!(i.obs.grpc_server_layer(), GreeterServer::hello());

    // Without obs on the client side.
    let err = GreeterClient::new(channel(addr).await)
        .unary("/obs.test.Greeter/Nope", hello("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    // Through obs's client too; the method stays the client's.
    let mut client = obs_client(&i.obs, addr).await;
    let err = client
        .unary("/obs.test.Greeter/Nope", hello("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    let spans = spans_until(&receiver, |s| {
        with_status(s, SERVER, "UNIMPLEMENTED").len() == 2
            && with_status(s, CLIENT, "UNIMPLEMENTED").len() == 1
    })
    .await;
    for s in with_status(&spans, SERVER, "UNIMPLEMENTED") {
        // The server does not know the method: `_OTHER`, bounded, the
        // requested name kept apart.
        assert_eq!(s.name(), "grpc");
        assert_eq!(s.attr("rpc.method").as_deref(), Some("_OTHER"));
        assert_eq!(
            s.attr("rpc.method_original").as_deref(),
            Some("obs.test.Greeter/Nope")
        );
        assert_eq!(s.status_code(), ERROR);
        assert_eq!(s.attr("error.type").as_deref(), Some("UNIMPLEMENTED"));
    }
    let c = one(&spans, CLIENT, "UNIMPLEMENTED");
    assert_eq!(c.name(), "obs.test.Greeter/Nope");
    assert_eq!(c.status_code(), ERROR);

    let text = metrics(&i.obs);
    assert!(text.contains(r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="_OTHER",rpc_response_status_code="UNIMPLEMENTED",error_type="UNIMPLEMENTED"} 2"#), "{text}");
    assert!(!text.contains(r#"rpc_method="obs.test.Greeter/Nope",rpc_response_status_code="UNIMPLEMENTED",error_type="UNIMPLEMENTED"} 2"#), "{text}");
    i.obs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_trailers_only_error_is_read_from_the_response_headers() {
    let receiver = OtlpReceiver::start();
    let i = instance("grpc-trailers-only-2", &receiver.http_base_url());
    let svc = GreeterServer::new(
        Arc::new(|_| Box::pin(async { Err(tonic::Status::permission_denied("nope")) })),
        GreeterServer::hello_streaming(),
    );
    let addr = serve!(i.obs.grpc_server_layer(), svc);

    // Check on the wire that this is a trailers-only response.
    let mut raw = channel(addr).await;
    let req = http::Request::post(format!("http://{addr}{}", greeter::SAY_HELLO))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from_static(&[0, 0, 0, 0, 0]),
        )))
        .unwrap();
    let resp = tower::ServiceExt::ready(&mut raw)
        .await
        .unwrap()
        .call(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "7");

    let spans = spans_until(&receiver, |s| {
        with_status(s, SERVER, "PERMISSION_DENIED").len() == 1
    })
    .await;
    let s = one(&spans, SERVER, "PERMISSION_DENIED");
    assert_eq!(s.name(), "obs.test.Greeter/SayHello");
    assert_eq!(s.status_code(), UNSET, "not a server error");
    i.obs.shutdown(Duration::from_secs(5)).await;
}

impl GreeterServer {
    fn hello_streaming() -> greeter::Streaming {
        GreeterServer::streaming_of(|n| {
            Box::pin(tokio_stream::iter((0..n).map(|i| {
                Ok(HelloReply {
                    message: i.to_string(),
                })
            }))) as ReplyStream
        })
    }

    fn streaming_of(f: fn(u32) -> ReplyStream) -> greeter::Streaming {
        Arc::new(move |req| {
            let n = req.into_inner().count;
            Box::pin(async move { Ok(tonic::Response::new(f(n))) })
        })
    }

    fn unary_hello() -> greeter::Unary {
        Arc::new(|req| {
            Box::pin(async move {
                Ok(tonic::Response::new(HelloReply {
                    message: format!("Hello, {}!", req.into_inner().name),
                }))
            })
        })
    }
}

/// Replies 0..n, 30 ms apart, then a `DATA_LOSS` status when `n` is 3.
fn paced(n: u32) -> ReplyStream {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        for i in 0..n {
            tokio::time::sleep(Duration::from_millis(30)).await;
            if tx
                .send(Ok(HelloReply {
                    message: i.to_string(),
                }))
                .await
                .is_err()
            {
                return;
            }
        }
        if n == 3 {
            let _ = tx.send(Err(tonic::Status::data_loss("disk gone"))).await;
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[tokio::test]
async fn a_server_stream_is_one_span_ended_with_the_stream() {
    let receiver = OtlpReceiver::start();
    let i = instance("grpc-stream", &receiver.http_base_url());
    let svc = GreeterServer::new(
        GreeterServer::unary_hello(),
        GreeterServer::streaming_of(paced),
    );
    let addr = serve!(i.obs.grpc_server_layer(), svc);
    let mut client = obs_client(&i.obs, addr).await;

    let started = std::time::Instant::now();
    let mut stream = client
        .count(HelloRequest {
            name: "s".into(),
            count: 5,
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        got.push(item.message);
    }
    let streamed = started.elapsed();
    assert_eq!(got, ["0", "1", "2", "3", "4"]);

    // A stream whose final status, after messages, is an error.
    let mut stream = client
        .count(HelloRequest {
            name: "s".into(),
            count: 3,
        })
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    let err = loop {
        match stream.message().await {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("the stream ended without its error"),
            Err(e) => break e,
        }
    };
    assert_eq!((n, err.code()), (3, tonic::Code::DataLoss));

    let spans = spans_until(&receiver, |s| {
        with_status(s, SERVER, "OK").len() == 1
            && with_status(s, CLIENT, "OK").len() == 1
            && with_status(s, SERVER, "DATA_LOSS").len() == 1
            && with_status(s, CLIENT, "DATA_LOSS").len() == 1
    })
    .await;
    let server = one(&spans, SERVER, "OK");
    assert_eq!(server.name(), "obs.test.Greeter/Count");
    // The span covers the whole stream, not just the response head.
    let span_len =
        Duration::from_nanos(server.span.end_time_unix_nano - server.span.start_time_unix_nano);
    assert!(
        span_len >= Duration::from_millis(140) && span_len <= streamed + Duration::from_millis(50),
        "{span_len:?} for a stream of {streamed:?}"
    );
    for s in [
        one(&spans, SERVER, "DATA_LOSS"),
        one(&spans, CLIENT, "DATA_LOSS"),
    ] {
        assert_eq!(s.status_code(), ERROR);
        assert_eq!(s.attr("error.type").as_deref(), Some("DATA_LOSS"));
        assert_eq!(s.status_message(), "disk gone");
    }
    let text = metrics(&i.obs);
    assert!(text.contains(r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="obs.test.Greeter/Count",rpc_response_status_code="OK",error_type=""} 1"#), "{text}");
    assert!(text.contains(r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="obs.test.Greeter/Count",rpc_response_status_code="DATA_LOSS",error_type="DATA_LOSS"} 1"#), "{text}");
    i.obs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_stream_dropped_by_its_client_is_cancelled_never_a_success() {
    let receiver = OtlpReceiver::start();
    let i = instance("grpc-cancel", &receiver.http_base_url());
    let svc = GreeterServer::new(
        GreeterServer::unary_hello(),
        GreeterServer::streaming_of(paced),
    );
    let addr = serve!(i.obs.grpc_server_layer(), svc);
    let mut client = obs_client(&i.obs, addr).await;

    let mut stream = client
        .count(HelloRequest {
            name: "s".into(),
            count: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    drop(stream);

    let spans = spans_until(&receiver, |s| {
        with_status(s, SERVER, "CANCELLED").len() == 1
            && with_status(s, CLIENT, "CANCELLED").len() == 1
    })
    .await;
    // Cancelled by the caller: not the server's failure, the client's.
    assert_eq!(one(&spans, SERVER, "CANCELLED").status_code(), UNSET);
    let c = one(&spans, CLIENT, "CANCELLED");
    assert_eq!(c.status_code(), ERROR);
    assert_eq!(c.attr("error.type").as_deref(), Some("CANCELLED"));
    assert!(with_status(&spans, SERVER, "OK").is_empty());
    let text = metrics(&i.obs);
    assert!(text.contains(r#"rpc_method="obs.test.Greeter/Count",rpc_response_status_code="CANCELLED",error_type=""} 1"#), "{text}");
    i.obs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_call_past_its_deadline_is_deadline_exceeded() {
    let receiver = OtlpReceiver::start();
    let i = instance("grpc-deadline", &receiver.http_base_url());
    let svc = GreeterServer::new(
        Arc::new(|_| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(tonic::Response::new(HelloReply::default()))
            })
        }),
        GreeterServer::hello_streaming(),
    );
    let addr = serve!(i.obs.grpc_server_layer(), svc);
    let mut client = obs_client(&i.obs, addr).await;

    let mut req = tonic::Request::new(hello("slow"));
    // A second: the server counts a call dropped in the last twentieth of
    // its deadline (50 ms here) as past it. The client's cancellation at
    // its deadline reaches the server a transit later, and the server's
    // clock started a transit after the client's: on a loaded machine (this
    // test shares its runtime thread with the server) 10 ms of slack, a
    // 200 ms deadline's, was not always enough.
    req.set_timeout(Duration::from_secs(1));
    let err = client.say_hello(req).await.unwrap_err();
    // tonic reports its own deadline as CANCELLED ("Timeout expired").
    assert!(
        matches!(
            err.code(),
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
        ),
        "{err:?}"
    );

    let spans = spans_until(&receiver, |s| {
        with_status(s, SERVER, "DEADLINE_EXCEEDED").len() == 1
            && with_status(s, CLIENT, "DEADLINE_EXCEEDED").len() == 1
    })
    .await;
    for s in [
        one(&spans, SERVER, "DEADLINE_EXCEEDED"),
        one(&spans, CLIENT, "DEADLINE_EXCEEDED"),
    ] {
        assert_eq!(s.status_code(), ERROR, "{s:#?}");
        assert_eq!(s.attr("error.type").as_deref(), Some("DEADLINE_EXCEEDED"));
    }
    let text = metrics(&i.obs);
    assert!(text.contains(r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="obs.test.Greeter/SayHello",rpc_response_status_code="DEADLINE_EXCEEDED",error_type="DEADLINE_EXCEEDED"} 1"#), "{text}");
    i.obs.shutdown(Duration::from_secs(5)).await;
}

/// What the second service saw in each call's metadata.
type Seen = Arc<Mutex<Vec<tonic::metadata::MetadataMap>>>;

/// The second service, on a thread and runtime of its own with an obs
/// instance of its own; answers `SayHello` and records the metadata.
fn backend(receiver_url: String) -> (SocketAddr, Seen, std::sync::mpsc::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let i = instance("grpc-backend", &receiver_url);
        rt.block_on(async {
            let svc = GreeterServer::new(
                Arc::new(move |req| {
                    seen2.lock().unwrap().push(req.metadata().clone());
                    Box::pin(async move {
                        Ok(tonic::Response::new(HelloReply {
                            message: format!("backend: {}", req.into_inner().name),
                        }))
                    })
                }),
                GreeterServer::hello_streaming(),
            );
            let addr = serve!(i.obs.grpc_server_layer(), svc);
            addr_tx.send(addr).unwrap();
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
            i.obs.shutdown(Duration::from_secs(5)).await;
        });
    });
    (addr_rx.recv().unwrap(), seen, stop_tx)
}

#[tokio::test]
async fn propagation_into_a_second_service_is_one_trace_at_the_receiver() {
    let receiver = OtlpReceiver::start();
    let (backend_addr, seen, stop) = backend(receiver.http_base_url());
    let i = instance("grpc-front", &receiver.http_base_url());

    // The front service calls the backend through obs's client layer.
    let downstream = obs_client(&i.obs, backend_addr).await;
    let svc = GreeterServer::new(
        Arc::new(move |req| {
            let mut downstream = downstream.clone();
            Box::pin(async move {
                let name = req.into_inner().name;
                let reply = downstream.say_hello(hello(&name)).await?;
                Ok(tonic::Response::new(reply.into_inner()))
            })
        }),
        GreeterServer::hello_streaming(),
    );
    let front = serve!(i.obs.grpc_server_layer(), svc);

    // A caller from elsewhere, with its trace context, state, baggage and
    // correlation id in the metadata (a plain channel: no obs on this side).
    let mut caller = GreeterClient::new(channel(front).await);
    let mut req = tonic::Request::new(hello("relay"));
    let md = req.metadata_mut();
    md.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    md.insert("tracestate", "vendor=abc".parse().unwrap());
    md.insert("baggage", "tenant=acme".parse().unwrap());
    md.insert("x-correlation-id", "corr-relay-7".parse().unwrap());
    let reply = caller.say_hello(req).await.unwrap();
    assert_eq!(reply.get_ref().message, "backend: relay");
    assert_eq!(
        reply
            .metadata()
            .get("x-correlation-id")
            .unwrap()
            .to_str()
            .unwrap(),
        "corr-relay-7"
    );

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let spans = spans_until(&receiver, |s| {
        s.iter()
            .filter(|s| s.trace_id() == trace && s.attr("rpc.method").is_some())
            .count()
            == 3
    })
    .await;
    let in_trace: Vec<_> = spans.iter().filter(|s| s.trace_id() == trace).collect();
    let by = |service: &str, kind: i32| {
        in_trace
            .iter()
            .find(|s| {
                s.resource.get("service.name").map(String::as_str) == Some(service)
                    && s.kind() == kind
            })
            .unwrap_or_else(|| panic!("no {service} span of kind {kind} in {in_trace:#?}"))
    };
    let front_server = by("grpc-front", SERVER);
    let front_client = by("grpc-front", CLIENT);
    let backend_server = by("grpc-backend", SERVER);
    assert_eq!(
        front_server.parent_span_id().as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(front_client.parent_span_id(), Some(front_server.span_id()));
    assert_eq!(
        backend_server.parent_span_id(),
        Some(front_client.span_id())
    );
    for s in [front_server, front_client, backend_server] {
        assert_eq!(s.name(), "obs.test.Greeter/SayHello");
        assert_eq!(s.attr("rpc.response.status_code").as_deref(), Some("OK"));
    }

    // The backend got the context, its state and baggage, and the id.
    let md = seen.lock().unwrap()[0].clone();
    let tp = md.get("traceparent").unwrap().to_str().unwrap();
    assert_eq!(
        tp,
        format!("00-{trace}-{}-01", front_client.span_id()),
        "the client span is the backend's parent"
    );
    assert_eq!(
        md.get("tracestate").unwrap().to_str().unwrap(),
        "vendor=abc"
    );
    assert_eq!(md.get("baggage").unwrap().to_str().unwrap(), "tenant=acme");
    assert_eq!(
        md.get("x-correlation-id").unwrap().to_str().unwrap(),
        "corr-relay-7"
    );

    stop.send(()).unwrap();
    i.obs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn grpc_through_the_plain_http_server_layer_still_works() {
    let receiver = OtlpReceiver::start();
    let i = instance("grpc-over-http-layer", &receiver.http_base_url());
    let addr = serve!(i.obs.server_layer(), GreeterServer::hello());
    let mut client = GreeterClient::new(channel(addr).await);
    let reply = client.say_hello(hello("plain")).await.unwrap();
    assert_eq!(reply.get_ref().message, "Hello, plain!");
    let mut stream = client
        .count(HelloRequest {
            name: "s".into(),
            count: 2,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    assert!(stream.message().await.unwrap().is_some());
    assert!(stream.message().await.unwrap().is_none());
    i.obs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_panicking_handler_is_an_internal_status() {
    let receiver = OtlpReceiver::start();
    let i = instance("grpc-panic", &receiver.http_base_url());
    let svc = GreeterServer::new(
        Arc::new(|_| {
            if std::hint::black_box(true) {
                panic!("handler exploded");
            }
            Box::pin(async { Ok(tonic::Response::new(HelloReply::default())) })
        }),
        GreeterServer::hello_streaming(),
    );
    let addr = serve!(i.obs.grpc_server_layer(), svc);
    let mut client = obs_client(&i.obs, addr).await;
    let err = client.say_hello(hello("x")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Internal);
    // The panic's message stays in the process.
    assert!(!err.message().contains("exploded"), "{err:?}");
    // The server keeps serving.
    let mut ok = obs_client(&i.obs, addr).await;
    assert!(
        ok.count(HelloRequest {
            name: "s".into(),
            count: 1
        })
        .await
        .is_ok()
    );

    let spans = spans_until(&receiver, |s| with_status(s, SERVER, "INTERNAL").len() == 1).await;
    assert_eq!(one(&spans, SERVER, "INTERNAL").status_code(), ERROR);
    let lines = access_lines(&i.logs);
    assert!(
        lines
            .iter()
            .any(|l| l["rpc.response.status_code"] == "INTERNAL" && l["level"] == "ERROR"),
        "{lines:#?}"
    );
    i.obs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_bidirectional_stream_is_one_span_ended_with_the_stream() {
    let receiver = OtlpReceiver::start();
    let i = instance("grpc-bidi", &receiver.http_base_url());
    let addr = serve!(i.obs.grpc_server_layer(), GreeterServer::hello());
    let mut client = obs_client(&i.obs, addr).await;

    // The client streams its requests one at a time, reading each reply
    // before sending the next: a conversation, not a batch.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut replies = client
        .chat(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for name in ["a", "b", "c"] {
        tx.send(hello(name)).await.unwrap();
        let reply = replies.message().await.unwrap().unwrap();
        assert_eq!(reply.message, format!("echo: {name}"));
    }
    drop(tx); // the requests end: the server ends the call with OK
    assert!(replies.message().await.unwrap().is_none());

    let spans = spans_until(&receiver, |s| {
        with_status(s, SERVER, "OK").len() == 1 && with_status(s, CLIENT, "OK").len() == 1
    })
    .await;
    for s in [one(&spans, SERVER, "OK"), one(&spans, CLIENT, "OK")] {
        assert_eq!(s.name(), "obs.test.Greeter/Chat");
        assert_eq!(s.status_code(), UNSET);
    }
    let text = metrics(&i.obs);
    assert!(text.contains(r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="obs.test.Greeter/Chat",rpc_response_status_code="OK",error_type=""} 1"#), "{text}");
    i.obs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_on_the_client() {
    let receiver = OtlpReceiver::start();
    let i = instance("grpc-unreachable", &receiver.http_base_url());
    // A port nothing listens on any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let svc = tower::ServiceBuilder::new()
        .layer(i.obs.grpc_client_layer().server(&format!("http://{addr}")))
        .service(channel);
    let err = GreeterClient::new(svc)
        .say_hello(hello("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");

    let spans = spans_until(&receiver, |s| {
        with_status(s, CLIENT, "UNAVAILABLE").len() == 1
    })
    .await;
    let c = one(&spans, CLIENT, "UNAVAILABLE");
    assert_eq!(c.status_code(), ERROR);
    assert_eq!(c.attr("error.type").as_deref(), Some("UNAVAILABLE"));
    assert_eq!(c.attr("server.port"), Some(addr.port().to_string()));
    let text = metrics(&i.obs);
    assert!(text.contains(r#"rpc_response_status_code="UNAVAILABLE",error_type="UNAVAILABLE",server_address="127.0.0.1""#), "{text}");
    i.obs.shutdown(Duration::from_secs(5)).await;
}
