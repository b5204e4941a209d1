//! The server and client layers over real HTTP on loopback: axum and plain
//! hyper servers, a hyper client, and raw TCP for bytes a client library
//! refuses to send. Log visibility is checked with obs-testing's
//! `CaptureLayer`, which sees exactly what a log layer sees.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use obs_core::{Carrier, CorrelationId, IdRecord, SpanId, TraceFlags, TraceId};
use obs_correlate::{Config, Correlation, CorrelationLayer, PropagateLayer};
use obs_testing::capture::{CaptureLayer, CapturedEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// One global subscriber for the test binary (servers run on runtime
/// threads); tests tell their events apart by their own correlation ids.
fn capture() -> &'static CaptureLayer {
    static CAPTURE: OnceLock<CaptureLayer> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = CaptureLayer::new();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry()
                .with(TakesNextSpanId)
                .with(capture.clone()),
        )
        .expect("no other global subscriber in this test binary");
        capture
    })
}

/// What obs-trace's and obs-log's layers do as a span opens: take the
/// correlation id handed to it (`Config::span_opened_inside`).
struct TakesNextSpanId;

impl<S> tracing_subscriber::Layer<S> for TakesNextSpanId
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            IdRecord::adopt_next_span_correlation(&mut span.extensions_mut());
        }
    }
}

fn events_for(id: &str) -> Vec<CapturedEvent> {
    capture()
        .events()
        .into_iter()
        .filter(|e| e.correlation_id().as_deref() == Some(id))
        .collect()
}

fn message_for(id: &str, message: &str) -> CapturedEvent {
    let found: Vec<_> = events_for(id)
        .into_iter()
        .filter(|e| e.message.as_deref() == Some(message))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {message:?} event with correlation id {id}"
    );
    found.into_iter().next().unwrap_or_else(|| unreachable!())
}

/// Serves `svc` with hyper-util's auto (HTTP/1 + HTTP/2) connection builder;
/// the HTTP/1 read buffer admits a 1 MB header so the layer, not hyper,
/// decides about such a value.
async fn serve<S>(svc: S) -> SocketAddr
where
    S: tower::Service<
            Request<hyper::body::Incoming>,
            Response = Response<axum::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http1().max_buf_size(4 << 20);
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

async fn serve_router(app: Router) -> SocketAddr {
    serve(app.into_service()).await
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn id(&self) -> &str {
        self.headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .expect("echoed id")
    }
}

async fn send(addr: SocketAddr, path: &str, headers: &[(&str, &[u8])]) -> Reply {
    let mut req = Request::builder().uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(
            *k,
            http::HeaderValue::from_bytes(v).expect("client-sendable value"),
        );
    }
    let res = client()
        .request(req.body(Full::default()).expect("request"))
        .await
        .expect("response");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends `head` verbatim over TCP and returns the raw response.
async fn send_raw(addr: SocketAddr, head: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn is_uuid_v4(s: &str) -> bool {
    s.len() == 36 && s.as_bytes()[14] == b'4' && s.bytes().filter(|&b| b == b'-').count() == 4
}

async fn handler(Correlation(id): Correlation) -> String {
    tracing::info!("handler");
    id.to_string()
}

async fn boom() -> &'static str {
    panic!("handler panicked on purpose")
}

fn app(layer: CorrelationLayer) -> Router {
    Router::new()
        .route("/ok", get(handler))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed") }),
        )
        .route("/panic", get(boom))
        .layer(CatchPanicLayer::new())
        .layer(layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_id_is_taken_echoed_and_logged() {
    capture();
    let layer = CorrelationLayer::new();
    let stats = layer.stats();
    let addr = serve_router(app(layer)).await;

    let r = send(addr, "/ok", &[("x-correlation-id", b"taken-1")]).await;
    assert_eq!(
        (r.status, r.id(), r.body.as_str()),
        (StatusCode::OK, "taken-1", "taken-1")
    );
    let event = message_for("taken-1", "handler");
    assert_eq!(event.spans, ["request"]);

    // The second header name is read when the first is absent, and the id is
    // echoed under both the primary name and the one it came in.
    let r = send(addr, "/ok", &[("x-request-id", b"taken-2")]).await;
    assert_eq!((r.id(), r.body.as_str()), ("taken-2", "taken-2"));
    assert_eq!(r.headers["x-request-id"], "taken-2");
    message_for("taken-2", "handler");
    assert_eq!((stats.incoming(), stats.total()), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_is_generated_when_absent() {
    capture();
    let layer = CorrelationLayer::new();
    let stats = layer.stats();
    let addr = serve_router(app(layer)).await;
    let a = send(addr, "/ok", &[]).await;
    let b = send(addr, "/ok", &[]).await;
    assert!(is_uuid_v4(a.id()), "{}", a.id());
    assert_ne!(a.id(), b.id());
    assert_eq!(a.body, a.id());
    assert!(!a.headers.contains_key("x-request-id"));
    message_for(a.id(), "handler");
    assert_eq!(stats.generated(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_ids_are_replaced_counted_and_never_echoed_or_logged() {
    capture();
    let layer = CorrelationLayer::new();
    let stats = layer.stats();
    let addr = serve_router(app(layer)).await;
    let megabyte = [b"megabyte-".as_slice(), &vec![b'm'; 1 << 20]].concat();
    let too_long = [b"too-long-".as_slice(), &[b'x'; 120]].concat();
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("too long", "x-correlation-id", too_long),
        (
            "control character",
            "x-correlation-id",
            b"ctl-marker\tinjected".to_vec(),
        ),
        (
            "non-ASCII",
            "x-correlation-id",
            "caf\u{e9}-marker".as_bytes().to_vec(),
        ),
        ("space", "x-request-id", b"space marker".to_vec()),
        (
            "list injection",
            "x-correlation-id",
            b"list-marker,second".to_vec(),
        ),
        ("quote", "x-correlation-id", b"quote-marker\"".to_vec()),
        ("1 MB value", "x-correlation-id", megabyte),
    ];
    for (n, (what, header, raw)) in cases.iter().enumerate() {
        let r = send(addr, "/ok", &[(header, raw)]).await;
        assert_eq!(r.status, StatusCode::OK, "{what}");
        assert!(is_uuid_v4(r.id()), "{what}: echoed {:?}", r.id());
        assert_eq!(r.body, r.id(), "{what}: the handler sees the replacement");
        assert_eq!(
            r.headers[*header],
            r.id(),
            "{what}: echoed under the header it came in"
        );
        assert_eq!(stats.replaced(), n as u64 + 1, "{what}");
        let events = events_for(r.id());
        assert!(
            events
                .iter()
                .any(|e| e.message.as_deref() == Some("handler")),
            "{what}"
        );
        let rejected = events
            .iter()
            .find(|e| e.message.as_deref() == Some("replaced an invalid incoming correlation id"))
            .unwrap_or_else(|| panic!("{what}: the replacement is reported"));
        assert_eq!(rejected.fields["header"], *header, "{what}");
        // Nothing anywhere in the captured events carries the raw value.
        let marker = String::from_utf8_lossy(&raw[..raw.len().min(9)]).into_owned();
        for e in capture().events() {
            let text = format!("{:?} {:?}", e.message, e.fields);
            assert!(
                !text.contains(&marker),
                "{what}: raw value logged in {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_max_len_and_repeated_headers_are_replaced() {
    capture();
    let layer = CorrelationLayer::with_config(Config::new().max_len(16).expect("valid max"));
    let stats = layer.stats();
    let addr = serve_router(app(layer)).await;
    let r = send(addr, "/ok", &[("x-correlation-id", b"sixteen-chars-ok")]).await;
    assert_eq!(r.id(), "sixteen-chars-ok");
    let r = send(addr, "/ok", &[("x-correlation-id", b"seventeen-chars-x")]).await;
    assert!(is_uuid_v4(r.id()));
    let r = send(
        addr,
        "/ok",
        &[
            ("x-correlation-id", b"first"),
            ("x-correlation-id", b"second"),
        ],
    )
    .await;
    assert!(
        is_uuid_v4(r.id()),
        "a repeated header is ambiguous: {}",
        r.id()
    );
    assert_eq!((stats.incoming(), stats.replaced()), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_injection_over_the_wire_reaches_nothing() {
    capture();
    let layer = CorrelationLayer::new();
    let stats = layer.stats();
    let addr = serve_router(app(layer)).await;

    // CR LF ends the header: the id is "inj-1", the rest is a separate
    // request header that must not leak into the response.
    let res = send_raw(
        addr,
        b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Correlation-ID: inj-1\r\nSet-Cookie: pwned=1\r\n\r\n",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(
        res.to_ascii_lowercase()
            .contains("x-correlation-id: inj-1\r\n"),
        "{res}"
    );
    assert!(!res.to_ascii_lowercase().contains("set-cookie"), "{res}");
    assert!(!res.contains("pwned"), "{res}");

    // Values a client library refuses to build. hyper refuses bare CR, NUL,
    // DEL and obsolete line folds itself (400: the layer never sees them);
    // raw non-ASCII bytes and tabs reach the layer, which replaces them.
    // Either way the raw value never comes back.
    let hostile: &[(&[u8], u16)] = &[
        (b"evil-cr\rSet-Cookie: pwned=1", 400),
        (b"evil-nul\0x", 400),
        (b"evil-del\x7fx", 400),
        (b"evil-fold\r\n Set-Cookie: pwned=1", 400),
        (b"evil-\xff\xfe-bytes", 200),
        (b"evil-tab\t\tx", 200),
    ];
    for (value, expected) in hostile {
        let head = [
            b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Correlation-ID: ".as_slice(),
            value,
            b"\r\n\r\n",
        ]
        .concat();
        let res = send_raw(addr, &head).await;
        let status: u16 = res.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert_eq!(status, *expected, "{value:?}: {res}");
        assert!(!res.contains("evil"), "{value:?} came back: {res}");
        assert!(
            !res.to_ascii_lowercase().contains("set-cookie"),
            "{value:?}: {res}"
        );
        if status == 200 {
            let echoed = res
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("x-correlation-id: ")
                        .map(str::to_owned)
                })
                .expect("echoed id");
            assert!(is_uuid_v4(&echoed), "{value:?}: {echoed}");
        }
    }
    assert_eq!((stats.incoming(), stats.replaced()), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_is_echoed_on_200_404_500_and_caught_panics() {
    capture();
    let addr = serve_router(app(CorrelationLayer::new())).await;
    for (path, status) in [
        ("/ok", StatusCode::OK),
        ("/missing", StatusCode::NOT_FOUND),
        ("/fail", StatusCode::INTERNAL_SERVER_ERROR),
        ("/panic", StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let sent = format!("echo{}", path.replace('/', "-"));
        let r = send(addr, path, &[("x-correlation-id", sent.as_bytes())]).await;
        assert_eq!((r.status, r.id()), (status, sent.as_str()), "{path}");
        let r = send(addr, path, &[]).await;
        assert_eq!(r.status, status, "{path}");
        assert!(is_uuid_v4(r.id()), "{path}: generated id echoed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_hyper_service_gets_the_layer_too() {
    capture();
    let svc = ServiceBuilder::new()
        .layer(CorrelationLayer::new())
        .service(tower::service_fn(
            |req: Request<hyper::body::Incoming>| async move {
                let id = obs_correlate::from_request(&req)
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                assert_eq!(
                    obs_correlate::current().map(|c| c.to_string()),
                    Some(id.clone())
                );
                tracing::info!("plain hyper");
                Ok::<_, Infallible>(Response::new(axum::body::Body::from(id)))
            },
        ));
    let addr = serve(svc).await;
    let r = send(addr, "/", &[("x-correlation-id", b"hyper-1")]).await;
    assert_eq!((r.id(), r.body.as_str()), ("hyper-1", "hyper-1"));
    message_for("hyper-1", "plain hyper");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_edge_and_traceparent_policies() {
    capture();
    let edge = CorrelationLayer::with_config(Config::new().trust_incoming(false));
    let stats = edge.stats();
    let addr = serve_router(app(edge)).await;
    let r = send(addr, "/ok", &[("x-correlation-id", b"client-chosen")]).await;
    assert!(is_uuid_v4(r.id()));
    assert_eq!(stats.untrusted(), 1);

    let tp = CorrelationLayer::with_config(Config::new().accept_traceparent(true));
    let stats = tp.stats();
    let addr = serve_router(app(tp)).await;
    let traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = send(addr, "/ok", &[("traceparent", traceparent)]).await;
    assert_eq!(r.id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    let r = send(
        addr,
        "/ok",
        &[(
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        )],
    )
    .await;
    assert!(is_uuid_v4(r.id()), "an invalid traceparent gives no id");
    let r = send(
        addr,
        "/ok",
        &[
            ("traceparent", traceparent),
            ("x-correlation-id", b"explicit"),
        ],
    )
    .await;
    assert_eq!(r.id(), "explicit");
    assert_eq!(
        (
            stats.from_traceparent(),
            stats.generated(),
            stats.incoming()
        ),
        (1, 1, 1)
    );
}

#[derive(Clone)]
struct WorkState {
    jobs: mpsc::Sender<Carrier>,
    done: mpsc::Sender<&'static str>,
}

async fn work(State(state): State<WorkState>) -> StatusCode {
    tracing::info!("handler");
    let done = state.done.clone();
    // Runs after the response has been sent.
    obs_correlate::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        tracing::info!("spawned task");
        let _ = done.send("spawned").await;
    });
    let mut job = Carrier::new();
    obs_correlate::carrier::inject(&mut job);
    let _ = state.jobs.send(job).await;
    StatusCode::ACCEPTED
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_follows_spawned_tasks_and_jobs_through_a_channel() {
    capture();
    let (jobs, mut queue) = mpsc::channel::<Carrier>(8);
    let (done, mut finished) = mpsc::channel(8);
    // The consumer starts outside any request.
    let consumer_done = done.clone();
    tokio::spawn(async move {
        let config = Config::new();
        while let Some(job) = queue.recv().await {
            let resolved = config.resolve_carrier(&job);
            let done = consumer_done.clone();
            obs_correlate::scope(resolved.id, async move {
                tracing::info!("job consumed");
                let _ = done.send("job").await;
            })
            .await;
        }
    });
    let app = Router::new()
        .route("/work", get(work))
        .with_state(WorkState { jobs, done })
        .layer(CorrelationLayer::new());
    let addr = serve_router(app).await;

    for sent in [Some("work-1"), None] {
        let headers: Vec<(&str, &[u8])> = sent
            .iter()
            .map(|s| ("x-correlation-id", s.as_bytes()))
            .collect();
        let r = send(addr, "/work", &headers).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let id = r.id().to_owned();
        if let Some(s) = sent {
            assert_eq!(id, s);
        }
        let mut seen = vec![
            finished.recv().await.expect("signal"),
            finished.recv().await.expect("signal"),
        ];
        seen.sort_unstable();
        assert_eq!(seen, ["job", "spawned"]);
        message_for(&id, "handler");
        let spawned = message_for(&id, "spawned task");
        assert_eq!(
            spawned.spans,
            ["request"],
            "the task runs in the request's span"
        );
        let job = message_for(&id, "job consumed");
        assert_eq!(
            job.spans,
            ["correlation"],
            "the job got its id from the carrier, not a span"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_call_carries_the_id_to_a_second_server() {
    capture();
    async fn downstream(Correlation(id): Correlation) -> String {
        tracing::info!("downstream");
        id.to_string()
    }
    let downstream_addr = axum_serve(
        Router::new()
            .route("/echo", get(downstream))
            .layer(CorrelationLayer::new()),
    )
    .await;

    async fn upstream(State(target): State<String>) -> String {
        let mut http = ServiceBuilder::new()
            .layer(PropagateLayer::new())
            .service(client());
        let req = Request::get(target).body(Full::default()).expect("request");
        let res = http
            .ready()
            .await
            .expect("ready")
            .call(req)
            .await
            .expect("downstream reply");
        let body = res.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }
    let app = Router::new()
        .route("/call", get(upstream))
        .with_state(format!("http://{downstream_addr}/echo"))
        .layer(CorrelationLayer::new());
    let addr = axum_serve(app).await;

    let r = send(addr, "/call", &[("x-request-id", b"chain-1")]).await;
    assert_eq!((r.id(), r.body.as_str()), ("chain-1", "chain-1"));
    message_for("chain-1", "downstream");
    // A generated id travels the same way.
    let r = send(addr, "/call", &[]).await;
    assert!(is_uuid_v4(r.id()));
    assert_eq!(r.body, r.id());
    message_for(r.id(), "downstream");
}

/// With `request_extension(false)` the id is not in the request's
/// extensions, yet everything that reads it while the request is served
/// finds it: `from_request`, the extractor, and the client layer forwarding
/// it on an outgoing call made from the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_extension_the_id_is_still_found_and_forwarded() {
    capture();
    let downstream_addr = axum_serve(
        Router::new()
            .route("/echo", get(handler))
            .layer(CorrelationLayer::new()),
    )
    .await;
    async fn upstream(
        State(target): State<String>,
        Correlation(id): Correlation,
        req: Request<axum::body::Body>,
    ) -> String {
        assert!(
            req.extensions().get::<CorrelationId>().is_none(),
            "stored although request_extension is off"
        );
        assert_eq!(obs_correlate::from_request(&req), Some(id.clone()));
        let mut http = ServiceBuilder::new()
            .layer(PropagateLayer::new())
            .service(client());
        let out = Request::get(target).body(Full::default()).expect("request");
        let res = http.ready().await.expect("ready").call(out).await;
        let body = res.expect("reply").into_body().collect().await;
        let forwarded = String::from_utf8_lossy(&body.expect("body").to_bytes()).into_owned();
        format!("{id} {forwarded}")
    }
    let app = Router::new()
        .route("/call", get(upstream))
        .with_state(format!("http://{downstream_addr}/echo"))
        .layer(CorrelationLayer::with_config(
            Config::new().request_extension(false),
        ));
    let addr = axum_serve(app).await;

    let r = send(addr, "/call", &[("x-request-id", b"no-ext-1")]).await;
    assert_eq!((r.id(), r.body.as_str()), ("no-ext-1", "no-ext-1 no-ext-1"));
    let r = send(addr, "/call", &[]).await;
    assert!(is_uuid_v4(r.id()));
    assert_eq!(r.body, format!("{0} {0}", r.id()));
    message_for(r.id(), "handler");

    // On by default: the extension is there.
    let inner = tower::service_fn(|req: Request<()>| async move {
        let stored = req.extensions().get::<CorrelationId>().cloned();
        Ok::<_, Infallible>(Response::new(stored.map(|c| c.to_string())))
    });
    let svc = tower::Layer::layer(&CorrelationLayer::new(), inner);
    let req = Request::builder()
        .header("x-request-id", "ext-1")
        .body(())
        .expect("request");
    let res = svc.oneshot(req).await.expect("response");
    assert_eq!(res.into_body().as_deref(), Some("ext-1"));
}

/// Serves with `axum::serve`, the way most axum users run.
async fn axum_serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_goes_into_an_outer_server_span_without_clobbering_trace_ids() {
    capture();
    let trace_id = TraceId::random();
    for always_new in [false, true] {
        let layer = CorrelationLayer::with_config(Config::new().always_new_span(always_new));
        let svc = tower::Layer::layer(
            &layer,
            tower::service_fn(|_req: Request<()>| async {
                tracing::info!("inside");
                Ok::<_, Infallible>(Response::new(()))
            }),
        );
        // What an outer trace layer does: create and enter its server span,
        // with trace ids in the span's IdRecord.
        let span = tracing::info_span!("server");
        let sid = span.id().expect("enabled span");
        IdRecord::update_span_id(&sid, |r| {
            *r = IdRecord::with_trace(trace_id, SpanId::random(), TraceFlags::SAMPLED);
        });
        let sent = format!("outer-{always_new}");
        let req = Request::builder()
            .header("x-correlation-id", &sent)
            .body(())
            .expect("request");
        let fut = {
            let _entered = span.enter();
            svc.oneshot(req)
        };
        fut.instrument(span.clone()).await.expect("response");
        let event = message_for(&sent, "inside");
        assert_eq!(event.trace_id(), Some(trace_id.to_string()));
        if always_new {
            assert_eq!(event.spans, ["server", "request"]);
        } else {
            assert_eq!(
                event.spans,
                ["server"],
                "no extra span when the server span is active"
            );
            let record = IdRecord::for_span(&sid).expect("record");
            assert_eq!(record.trace_id, Some(trace_id), "trace ids kept");
            assert_eq!(
                record.correlation_id,
                Some(CorrelationId::parse(&sent).expect("valid"))
            );
        }
    }
}

/// With the span-opening layer inside (`span_opened_inside`), the id goes
/// into the record of the span that layer opens as it is created: no
/// `request` span, no lookup of the current span, the same id on the lines
/// in it, in the task-local and on the response; the span's trace ids are
/// kept. A rejected incoming id's line carries the new id too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_goes_into_the_span_opened_inside() {
    capture();
    let layer = CorrelationLayer::with_config(Config::new().span_opened_inside(true));
    let trace_id = TraceId::random();
    let inner = tower::service_fn(move |_req: Request<()>| {
        // What obs-trace's server layer does in `call`: open the server
        // span (its layer writes trace ids into the span's record).
        let span = tracing::info_span!("server");
        let sid = span.id().expect("enabled span");
        IdRecord::update_span_id(&sid, |r| {
            r.trace_id = Some(trace_id);
            r.span_id = Some(SpanId::random());
            r.trace_flags = TraceFlags::SAMPLED;
        });
        async move {
            tracing::info!("inside");
            let task_local = obs_correlate::current().map(|c| c.to_string());
            Ok::<_, Infallible>(Response::new(task_local.unwrap_or_default()))
        }
        .instrument(span)
    });
    let svc = tower::Layer::layer(&layer, inner);
    let resp = svc
        .clone()
        .oneshot(
            Request::builder()
                .header("x-correlation-id", "inside-1")
                .body(())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.headers()["x-correlation-id"], "inside-1");
    assert_eq!(resp.body(), "inside-1", "the task-local holds the id");
    let event = message_for("inside-1", "inside");
    assert_eq!(
        event.spans,
        ["server"],
        "no request span of the layer's own"
    );
    assert_eq!(
        event.trace_id(),
        Some(trace_id.to_string()),
        "trace ids kept"
    );
    assert_eq!(
        IdRecord::take_next_span_correlation(),
        None,
        "nothing left waiting on the thread"
    );

    // A rejected incoming id: replaced, and the debug line says so with the
    // new id although no span is open yet.
    let resp = svc
        .oneshot(
            Request::builder()
                .header("x-correlation-id", "bad id with spaces")
                .body(())
                .expect("request"),
        )
        .await
        .expect("response");
    let new_id = resp.body().clone();
    assert!(is_uuid_v4(&new_id), "{new_id}");
    assert_eq!(resp.headers()["x-correlation-id"], new_id.as_str());
    message_for(&new_id, "inside");
    message_for(&new_id, "replaced an invalid incoming correlation id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_get_the_same_treatment() {
    capture();
    let layer = CorrelationLayer::new();
    let stats = layer.stats();
    let addr = serve_router(app(layer)).await;
    let h2: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    for (sent, valid) in [
        (b"h2-valid-1".as_slice(), true),
        (b"h2 invalid\t1".as_slice(), false),
    ] {
        let req = Request::get(format!("http://{addr}/ok"))
            .header(
                "x-correlation-id",
                HeaderValue::from_bytes(sent).expect("sendable"),
            )
            .body(Full::default())
            .expect("request");
        let res = h2.request(req).await.expect("response");
        assert_eq!(res.version(), http::Version::HTTP_2);
        let echoed = res.headers()["x-correlation-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        if valid {
            assert_eq!(echoed.as_bytes(), sent);
        } else {
            assert!(is_uuid_v4(&echoed), "{echoed}");
        }
        message_for(&echoed, "handler");
    }
    assert_eq!((stats.incoming(), stats.replaced()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_services_never_see_a_rejected_or_untrusted_value() {
    capture();
    async fn seen(headers: HeaderMap) -> String {
        let get = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        format!("{} {}", get("x-correlation-id"), get("x-request-id"))
    }
    let router = || Router::new().route("/seen", get(seen));
    let addr = serve_router(router().layer(CorrelationLayer::new())).await;

    // A valid id in the first header: the request is left as sent.
    let r = send(
        addr,
        "/seen",
        &[("x-correlation-id", b"ok-1"), ("x-request-id", b"other")],
    )
    .await;
    assert_eq!(r.body, "ok-1 other");
    // Taken from the second header: the first is filled in.
    let r = send(addr, "/seen", &[("x-request-id", b"ok-2")]).await;
    assert_eq!(r.body, "ok-2 ok-2");
    // Rejected: every correlation header the handler sees holds the new id.
    let r = send(
        addr,
        "/seen",
        &[
            ("x-correlation-id", b"bad id"),
            ("x-request-id", b"also bad"),
        ],
    )
    .await;
    assert_eq!(r.body, format!("{0} {0}", r.id()));
    // Absent: the generated id is added.
    let r = send(addr, "/seen", &[]).await;
    assert_eq!(r.body, format!("{} -", r.id()));

    let addr = serve_router(router().layer(CorrelationLayer::with_config(
        Config::new().trust_incoming(false),
    )))
    .await;
    let r = send(
        addr,
        "/seen",
        &[("x-correlation-id", b"chosen"), ("x-request-id", b"chosen")],
    )
    .await;
    assert_eq!(r.body, format!("{0} {0}", r.id()));
    assert_ne!(r.id(), "chosen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_format_is_configurable_and_the_extractor_needs_the_layer() {
    capture();
    for (format, check) in [
        (
            obs_core::IdFormat::Hex128,
            (|s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                as fn(&str) -> bool,
        ),
        (obs_core::IdFormat::UuidV7, |s: &str| {
            s.len() == 36 && s.as_bytes()[14] == b'7'
        }),
    ] {
        let addr = serve_router(app(CorrelationLayer::with_config(
            Config::new().format(format),
        )))
        .await;
        let r = send(addr, "/ok", &[]).await;
        assert!(check(r.id()), "{format:?}: {}", r.id());
        let r = send(addr, "/ok", &[("x-correlation-id", b"bad id")]).await;
        assert!(check(r.id()), "{format:?}: replacement {}", r.id());
    }
    let addr = serve_router(Router::new().route("/ok", get(handler))).await;
    let r = send(addr, "/ok", &[("x-correlation-id", b"no-layer")]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.body
            .contains("CorrelationLayer is not in front of the handler"),
        "{}",
        r.body
    );
    assert!(!r.headers.contains_key("x-correlation-id"));
}
