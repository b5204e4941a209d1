//! The admin router is safe by default, over real HTTP on loopback: reads
//! are open, `PUT /loglevel` is refused without a configured token, bodies
//! are bounded, errors quote only a short prefix, and every change is
//! audited before it takes effect — even a change to `off`. The server
//! layer skips admin paths only where they are served, and writes the
//! normalised method.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use tracing_subscriber::layer::SubscriberExt;

mod common;
use common::{HttpClient, client};

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    addr
}

async fn send(
    client: &HttpClient,
    method: &str,
    url: String,
    headers: &[(&str, &str)],
    body: String,
) -> (u16, String) {
    let (status, _, body) = common::send(client, method, url, headers, body).await;
    (status, body)
}

/// An instance writing to `logs`, its subscriber installed for the test's
/// thread (the tests run on a current-thread runtime).
fn instance(
    token: Option<&str>,
    logs: &obs_testing::capture::SharedBuf,
) -> (obs::Obs, tracing::subscriber::DefaultGuard) {
    let sink = logs.clone();
    let mut config = obs::Config::from_lookup(|_| None)
        .unwrap()
        .service("admin-test")
        .log(move |l| l.writer(sink).filter("info"))
        .install_global(false);
    if let Some(t) = token {
        config = config.admin_token(t);
    }
    let obs = obs::init(config).unwrap();
    let subscriber = tracing_subscriber::registry().with(obs.take_layers().unwrap());
    let guard = obs_testing::subscriber::set_default(subscriber);
    (obs, guard)
}

#[tokio::test(flavor = "current_thread")]
async fn without_a_token_changes_are_refused_and_reads_stay_open() {
    let logs = obs_testing::capture::SharedBuf::default();
    let (obs, _g) = instance(None, &logs);
    let addr = serve(obs.admin_router()).await;
    let c = client();

    let (status, body) = send(
        &c,
        "PUT",
        format!("http://{addr}/loglevel"),
        &[],
        "off".into(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("OBS_ADMIN_TOKEN"), "{body}");
    assert_eq!(obs.log_level(), "info", "nothing changed");

    for path in ["/loglevel", "/metrics", "/livez", "/readyz", "/healthz"] {
        let (status, _) = send(
            &c,
            "GET",
            format!("http://{addr}{path}"),
            &[],
            String::new(),
        )
        .await;
        assert_eq!(status, 200, "{path}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn with_a_token_changes_are_authorised_bounded_and_audited_first() {
    let logs = obs_testing::capture::SharedBuf::default();
    let (obs, _g) = instance(Some("s3cret-admin-token"), &logs);
    let addr = serve(obs.admin_router()).await;
    let c = client();
    let url = format!("http://{addr}/loglevel");
    let auth = [("authorization", "Bearer s3cret-admin-token")];

    // No or a wrong token: 401.
    let (status, _) = send(&c, "PUT", url.clone(), &[], "debug".into()).await;
    assert_eq!(status, 401);
    let wrong = [("authorization", "Bearer guess")];
    let (status, _) = send(&c, "PUT", url.clone(), &wrong, "debug".into()).await;
    assert_eq!(status, 401);

    // A body over the bound: 413, nothing parsed.
    let huge = "a".repeat(obs::admin::MAX_ADMIN_BODY + 1);
    let (status, _) = send(&c, "PUT", url.clone(), &auth, huge).await;
    assert_eq!(status, 413);

    // A bad directive: 400 quoting at most a short prefix of it.
    let bad = format!("{}=loud", "t".repeat(3000));
    let (status, body) = send(&c, "PUT", url.clone(), &auth, bad.clone()).await;
    assert_eq!(status, 400);
    assert!(body.len() < 400, "the error echoes {} bytes", body.len());
    assert!(!body.contains(&"t".repeat(100)), "{body}");
    assert_eq!(obs.log_level(), "info");

    // Turning logging off is audited, and so is turning it back on while
    // the filter is `off`.
    let (status, _) = send(&c, "PUT", url.clone(), &auth, "off".into()).await;
    assert_eq!(status, 200);
    assert_eq!(obs.log_level(), "off");
    tracing::warn!("a line the `off` filter drops");
    let (status, _) = send(&c, "PUT", url.clone(), &auth, "warn".into()).await;
    assert_eq!(status, 200);

    let report = obs.shutdown(std::time::Duration::from_secs(5)).await;
    assert!(report.completed, "{report}");
    let text = logs.text();
    let audits: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "obs::audit")
        .collect();
    assert_eq!(audits.len(), 2, "{text}");
    assert_eq!(audits[0]["level"], "WARN");
    assert_eq!(audits[0]["old"], "info");
    assert_eq!(audits[0]["new"], "off");
    assert_eq!(
        audits[0]["client.address"]
            .as_str()
            .map(|a| a.starts_with("127.0.0.1:")),
        Some(true)
    );
    assert_eq!(audits[1]["old"], "off");
    assert_eq!(audits[1]["new"], "warn");
    assert!(!text.contains("a line the `off` filter drops"), "{text}");
    assert!(!text.contains("s3cret-admin-token"), "{text}");
}

#[tokio::test(flavor = "current_thread")]
async fn admin_paths_are_skipped_only_where_served_and_methods_are_normalised() {
    let logs = obs_testing::capture::SharedBuf::default();
    let (obs, _g) = instance(None, &logs);
    // The API router does not serve /healthz: such requests are logged and
    // counted like any other.
    let api = serve(
        Router::new()
            .route("/items", get(|| async { "items" }))
            .layer(obs.server_layer()),
    )
    .await;
    // Admin routes merged *under* the layer are served, so they are skipped.
    let merged = serve(
        Router::new()
            .route("/items", get(|| async { "items" }))
            .merge(obs.admin_router())
            .layer(obs.server_layer()),
    )
    .await;
    let c = client();
    let (status, _) = send(
        &c,
        "GET",
        format!("http://{api}/healthz"),
        &[],
        String::new(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &c,
        "GET",
        format!("http://{merged}/readyz"),
        &[],
        String::new(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &c,
        "FOOBAR",
        format!("http://{api}/items"),
        &[],
        String::new(),
    )
    .await;
    assert_eq!(status, 405);
    let (_, metrics) = send(
        &c,
        "GET",
        format!("http://{merged}/metrics"),
        &[],
        String::new(),
    )
    .await;

    let report = obs.shutdown(std::time::Duration::from_secs(5)).await;
    assert!(report.completed, "{report}");
    let text = logs.text();
    let access: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "obs::access")
        .collect();
    assert!(
        access
            .iter()
            .any(|v| v["url.path"] == "/healthz" && v["http.response.status_code"] == 404),
        "{text}"
    );
    assert!(!access.iter().any(|v| v["url.path"] == "/readyz"), "{text}");
    assert!(
        access.iter().any(|v| v["http.request.method"] == "_OTHER"),
        "{text}"
    );
    assert!(!text.contains("FOOBAR"), "{text}");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("http_server_request_duration_seconds_count")
                && l.contains("http_response_status_code=\"404\"")
        ),
        "{metrics}"
    );
}
