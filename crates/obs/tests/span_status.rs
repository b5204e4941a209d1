//! Where the server span's status goes. The span's readers get it: the
//! exporter when the span is sampled, and any layer of the user's beside
//! obs's. Under obs's layers alone the access line carries the status
//! itself, and the span's fields are not rendered again for it: unsampled,
//! nobody reads it and it is not recorded; sampled, it goes straight into
//! the span's record for export. Either way a line written in the span after
//! the response (a task the handler left running in it) carries the
//! request's ids but no status, whatever the sampling decision was.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tower::ServiceExt as _;
use tracing::Instrument as _;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Names of the fields recorded after creation on spans named `http.server`.
#[derive(Clone, Default)]
struct RecordedFields(Arc<Mutex<Vec<String>>>);

impl RecordedFields {
    fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Names<'a>(&'a mut Vec<String>);

impl tracing::field::Visit for Names<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, _: &dyn std::fmt::Debug) {
        self.0.push(field.name().to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for RecordedFields
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_record(&self, id: &tracing::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if ctx.span(id).is_some_and(|s| s.name() == "http.server") {
            let mut names = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            values.record(&mut Names(&mut names));
        }
    }
}

/// obs capturing its lines, sampling as `sampler` says, exporting to `otlp`.
fn obs_with(
    sampler: &'static str,
    otlp: Option<String>,
) -> (obs::Obs, obs_testing::capture::SharedBuf) {
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let env = move |k: &str| match k {
        "OTEL_TRACES_SAMPLER" => Some(sampler.to_owned()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => otlp.clone(),
        "OTEL_BSP_SCHEDULE_DELAY" => Some("50".into()),
        "OTEL_LOGS_EXPORTER" => Some("none".into()),
        _ => None,
    };
    let obs = obs::init(
        obs::Config::from_lookup(env)
            .unwrap()
            .log(move |l| l.writer(sink))
            .install_global(false),
    )
    .unwrap();
    (obs, logs)
}

/// A request whose handler leaves a task running in the request's span,
/// which writes one line once the response is out.
async fn request_with_a_line_after_the_response(obs: &obs::Obs) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rx = Arc::new(Mutex::new(Some(rx)));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let done_tx = Arc::new(Mutex::new(Some(done_tx)));
    let app = Router::new()
        .route(
            "/items/{id}",
            get(move || {
                let rx = rx.lock().unwrap().take().unwrap();
                let done = done_tx.lock().unwrap().take().unwrap();
                async move {
                    tokio::spawn(
                        async move {
                            let _ = rx.await;
                            tracing::info!("after the response");
                            let _ = done.send(());
                        }
                        .in_current_span(),
                    );
                    "item"
                }
            }),
        )
        .layer(obs.server_layer());
    let req = http::Request::get("/items/7")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), done_rx)
        .await
        .expect("the task wrote its line")
        .unwrap();
}

/// The one server span the receiver got.
fn server_span(receiver: &obs_testing::otlp::OtlpReceiver) -> obs_testing::otlp::ReceivedSpan {
    let spans = receiver.wait_for_spans(1, Duration::from_secs(20));
    spans
        .iter()
        .find(|s| s.kind() == 2)
        .cloned()
        .unwrap_or_else(|| panic!("the server span: {spans:#?}"))
}

/// The line written after the response, and the access line.
fn lines(logs: &obs_testing::capture::SharedBuf) -> (serde_json::Value, serde_json::Value) {
    let lines = logs.json_lines();
    let find = |m: &str| {
        lines
            .iter()
            .find(|l| l["message"] == m)
            .cloned()
            .unwrap_or_else(|| panic!("a {m:?} line: {lines:#?}"))
    };
    (find("after the response"), find("request finished"))
}

#[tokio::test(flavor = "current_thread")]
async fn beside_a_users_layer_the_status_is_recorded_for_it() {
    let (obs, logs) = obs_with("always_off", None);
    let seen = RecordedFields::default();
    let subscriber = tracing_subscriber::registry()
        .with(obs.take_layers().unwrap())
        .with(seen.clone());
    let guard = obs_testing::subscriber::set_default(subscriber);
    assert!(!obs_core::record::spans_read_by_obs_only());
    request_with_a_line_after_the_response(&obs).await;
    drop(guard);
    assert!(obs.shutdown(Duration::from_secs(5)).await.completed);

    assert!(
        seen.names()
            .contains(&"http.response.status_code".to_owned()),
        "the user's layer saw the status recorded: {:?}",
        seen.names()
    );
    let (after, access) = lines(&logs);
    assert_eq!(access["http.response.status_code"], 200);
    assert_eq!(after["http.response.status_code"], 200);
}

#[tokio::test(flavor = "current_thread")]
async fn alone_and_unsampled_the_status_is_on_the_access_line_only() {
    let (obs, logs) = obs_with("always_off", None);
    let guard = obs_testing::subscriber::set_default(obs.take_subscriber().unwrap());
    assert!(obs_core::record::spans_read_by_obs_only());
    request_with_a_line_after_the_response(&obs).await;
    drop(guard);
    assert!(obs.shutdown(Duration::from_secs(5)).await.completed);

    let (after, access) = lines(&logs);
    assert_eq!(access["http.response.status_code"], 200);
    assert_eq!(access["http.route"], "/items/{id}");
    // The late line is still the request's: its ids and the span's fields.
    assert_eq!(after["trace_id"], access["trace_id"]);
    assert_eq!(after["correlation_id"], access["correlation_id"]);
    assert_eq!(after["http.route"], "/items/{id}");
    assert!(
        after.get("http.response.status_code").is_none(),
        "no reader, no record: {after}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn alone_and_sampled_the_exported_span_has_its_status() {
    let receiver = obs_testing::otlp::OtlpReceiver::start();
    let (obs, logs) = obs_with("always_on", Some(receiver.http_base_url()));
    let guard = obs_testing::subscriber::set_default(obs.take_subscriber().unwrap());
    assert!(obs_core::record::spans_read_by_obs_only());
    request_with_a_line_after_the_response(&obs).await;
    drop(guard);
    assert!(obs.shutdown(Duration::from_secs(5)).await.completed);

    let server = server_span(&receiver);
    assert_eq!(server.name(), "GET /items/{id}");
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(server.attr("error.type"), None);
    assert_eq!(server.status_code(), 0, "unset");
    let (after, access) = lines(&logs);
    assert_eq!(access["http.response.status_code"], 200);
    assert_eq!(after["trace_id"], access["trace_id"]);
    assert!(
        after.get("http.response.status_code").is_none(),
        "as unsampled: {after}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn alone_and_sampled_a_failed_request_is_exported_as_an_error() {
    let receiver = obs_testing::otlp::OtlpReceiver::start();
    let (obs, logs) = obs_with("always_on", Some(receiver.http_base_url()));
    let guard = obs_testing::subscriber::set_default(obs.take_subscriber().unwrap());
    let app = Router::new()
        .route(
            "/fail",
            get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .layer(obs.server_layer());
    let req = http::Request::get("/fail")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.oneshot(req).await.unwrap().status(), 503);
    drop(guard);
    assert!(obs.shutdown(Duration::from_secs(5)).await.completed);

    let server = server_span(&receiver);
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("503")
    );
    assert_eq!(server.attr("error.type").as_deref(), Some("503"));
    assert_eq!(server.status_code(), 2, "error");
    let access = logs
        .json_lines()
        .into_iter()
        .find(|l| l["message"] == "request finished")
        .expect("the access line");
    assert_eq!(access["http.response.status_code"], 503);
    assert_eq!(access["level"], "ERROR");
}
