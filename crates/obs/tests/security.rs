//! No secret leaves the process by any path.
//!
//! A service instrumented through the facade receives a corpus of secrets
//! over real HTTP on loopback — in path segments, the query, `User-Agent`,
//! `Referer`, `X-Forwarded-For`, the correlation header, cookies and
//! credentials, a JSON body — and its handlers put them into span fields,
//! log fields, error messages, breadcrumbs and a metric label. Then every
//! place obs writes to is read back and searched: the JSON log lines, the
//! spans an OTLP receiver got, the error reports (a Sentry envelope posted
//! to a local endpoint among them) and the `/metrics` exposition. None of
//! the secrets may appear; harmless look-alikes must pass through unchanged.
//!
//! The secrets are fabricated: they have the shape of real credentials and no
//! value anywhere.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
use axum::routing::{get, post};
use tracing_subscriber::layer::SubscriberExt;

mod common;
use common::{HttpClient, send};

const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlMTIzNDU2";
const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
const GCP: &str = "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe";
const GITHUB: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
const STRIPE: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
const SLACK: &str = "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
const BEARER: &str = "mF_9.B5f-4.1JqMzz";
const BASIC: &str = "dXNlcjpwYXNzd29yZA";
const URL_PASSWORD: &str = "hunter2hunter2";
const QUERY_PASSWORD: &str = "Pa55w0rdPa55";
const BODY_PASSWORD: &str = "CorrectHorse99";
const COOKIE: &str = "38afes7a8xyz";
const PEM_BODY: &str = "MIIEowIBAAKCAQEA7bqSecretKeyMaterial";

/// Every secret, as the substring that must never be found.
const PROBES: &[&str] = &[
    JWT,
    "eyJhbGciOiJIUzI1NiJ9",
    AWS,
    GCP,
    GITHUB,
    STRIPE,
    "xoxb-1234567890",
    BEARER,
    BASIC,
    URL_PASSWORD,
    QUERY_PASSWORD,
    BODY_PASSWORD,
    COOKIE,
    PEM_BODY,
];

/// Harmless values that look a bit like secrets; each must reach the log
/// line unchanged.
const LOOK_ALIKES: &[&str] = &[
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "550e8400-e29b-41d4-a716-446655440000",
    "3f786850e387550fdab836ed7e6dc881de23001b",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "/api/v1/orders/12345",
    "com.example.payments.CheckoutService",
];

fn pairs<'a>(h: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    h.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn assert_clean(place: &str, text: &str) {
    for probe in PROBES {
        assert!(
            !text.contains(probe),
            "secret {probe:?} reached {place}:\n{}",
            excerpt(text, probe)
        );
    }
}

fn excerpt(text: &str, probe: &str) -> String {
    let at = text.find(probe).unwrap_or(0);
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(200)
        .map_or(0, |(i, _)| i);
    let end = (at + probe.len() + 200).min(text.len());
    text.get(start..end).unwrap_or(text).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_spans_error_reports_or_metrics() {
    let receiver = obs_testing::otlp::OtlpReceiver::start();
    let sentry_endpoint = obs_testing::endpoint::Endpoint::start();
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    // Error reports to Sentry and to memory, through the facade's reporter.
    let mut options = sentry::ClientOptions::new();
    options.dsn = Some(
        format!("http://publickey@{}/42", sentry_endpoint.addr())
            .parse()
            .unwrap(),
    );
    options.transport = Some(Arc::new(sentry::transports::DefaultTransportFactory));
    let hub = Arc::new(sentry::Hub::new(
        Some(Arc::new(sentry::Client::from(options))),
        Arc::new(sentry::Scope::default()),
    ));
    let memory = obs::errors::MemorySink::new();
    let endpoint = receiver.http_base_url();
    let obs = obs::init(
        obs::Config::from_lookup(|k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".into()),
            "OTEL_BSP_SCHEDULE_DELAY" => Some("50".into()),
            _ => None,
        })
        .unwrap()
        .service("security-test")
        .redact_names(["tenant_secret"])
        .log(move |l| l.writer(sink).filter("debug"))
        .error_sink(obs::errors::sentry::SentrySink::new(hub))
        .error_sink(memory.clone())
        .install_global(false),
    )
    .unwrap();

    let subscriber = tracing_subscriber::registry().with(obs.take_layers().unwrap());
    // The server's tasks run on the runtime's worker threads: the one test
    // of this binary installs the subscriber process-wide.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let tenants = obs
        .metrics()
        .counter_family("tenant_requests", "Requests by tenant.", ["tenant"])
        .unwrap();
    let secret_labels = obs
        .metrics()
        .counter_family(
            "secret_labels",
            "A label whose name is sensitive.",
            ["tenant_secret"],
        )
        .unwrap();

    let app = Router::new()
        .route(
            "/x/{value}",
            get(move |Path(value): Path<String>, Query(q): Query<Vec<(String, String)>>| {
                let tenants = tenants.clone();
                let secret_labels = secret_labels.clone();
                async move {
                    // Span fields and log fields set by user code.
                    let span = tracing::info_span!(
                        "lookup",
                        api_key = %value,
                        note = %format!("called with Bearer {BEARER}"),
                        path_value = %value,
                    );
                    let _g = span.enter();
                    tracing::info!(value = %value, query = ?q, "looked up");
                    tracing::info!(dsn = %format!("postgres://app:{URL_PASSWORD}@db/x"), "connecting");
                    tenants.get([value.as_str()]).inc();
                    secret_labels.get(["acme"]).inc();
                    "ok"
                }
            }),
        )
        .route(
            "/login",
            post(|body: String| async move {
                tracing::info!(body = %body, "login attempt");
                // A breadcrumb, then an error whose message holds secrets.
                tracing::info!(token = GITHUB, "using the deploy token");
                tracing::error!(
                    error = %format!("login failed for https://bob:{URL_PASSWORD}@idp.example with {STRIPE}"),
                    "login failed"
                );
                (http::StatusCode::INTERNAL_SERVER_ERROR, "failed")
            }),
        )
        .route(
            "/echo",
            get(|Query(q): Query<Vec<(String, String)>>| async move {
                for (_, v) in &q {
                    tracing::info!(lookalike = %v, "echo");
                }
                "echo"
            }),
        )
        .layer(obs.server_layer());
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = api.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            api,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let admin_router = obs.admin_router();
    tokio::spawn(async move { axum::serve(admin, admin_router).await.unwrap() });

    let client: HttpClient = common::client();
    let base = format!("http://{api_addr}");
    let headers = |ua: String| -> Vec<(&'static str, String)> {
        vec![
            ("user-agent", ua),
            (
                "referer",
                format!("https://app.example/cb?access_token={JWT}&x=1"),
            ),
            ("x-forwarded-for", format!("{AWS}, 10.0.0.1")),
            ("authorization", format!("Bearer {BEARER}")),
            ("proxy-authorization", format!("Basic {BASIC}==")),
            ("cookie", format!("session={COOKIE}; theme=dark")),
        ]
    };

    let mut correlation_ids = Vec::new();
    // Secrets as path segments, with the others in the query and headers.
    for secret in [JWT, AWS, GCP, GITHUB, STRIPE, SLACK] {
        let url = format!(
            "{base}/x/{secret}?password={QUERY_PASSWORD}&q={JWT}&u=https://bob:{URL_PASSWORD}@h"
        );
        let mut h = headers(format!("curl/8.5.0 {secret}"));
        // A secret as the correlation id: rejected, never echoed.
        h.push(("x-correlation-id", secret.to_owned()));
        let (status, resp_headers, _) = send(&client, "GET", &url, &pairs(&h), "").await;
        assert_eq!(status, 200, "{url}");
        let echoed = resp_headers["x-correlation-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(echoed, secret, "a secret-shaped id was echoed");
        correlation_ids.push(echoed);
    }
    // A JSON body with a password and a PEM block.
    let body = format!(
        r#"{{"user":"bob","password":"{BODY_PASSWORD}","key":"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"}}"#
    );
    let (status, _, _) = send(
        &client,
        "POST",
        &format!("{base}/login"),
        &pairs(&headers("Mozilla/5.0 (X11; Linux x86_64)".into())),
        &body,
    )
    .await;
    assert_eq!(status, 500);
    // Look-alikes pass through.
    let query: Vec<String> = LOOK_ALIKES.iter().map(|v| format!("v={v}")).collect();
    let (status, _, _) = send(
        &client,
        "GET",
        &format!("{base}/echo?{}", query.join("&")),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200);

    let (status, _, metrics) = send(
        &client,
        "GET",
        &format!("http://{admin_addr}/metrics"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200);

    // Everything out: spans exported, reports delivered, lines written.
    obs.errors().flush(Duration::from_secs(20)).unwrap();
    let envelopes = sentry_endpoint.wait_for(1, Duration::from_secs(20));
    let report = obs.shutdown(Duration::from_secs(10)).await;
    assert!(report.completed, "{report}");
    let spans = receiver.wait_for_spans(8, Duration::from_secs(10));

    // Logs.
    let log_text = logs.text();
    assert!(log_text.contains("request finished"), "{log_text}");
    assert_clean("the log lines", &log_text);
    for id in &correlation_ids {
        assert!(
            log_text.contains(id.as_str()),
            "generated id {id} is logged"
        );
    }
    for v in LOOK_ALIKES {
        assert!(
            log_text.contains(&format!("\"lookalike\":\"{v}\"")),
            "look-alike {v:?} was changed:\n{log_text}"
        );
    }

    // Spans at the OTLP receiver: names, attributes, events, status.
    assert!(spans.len() >= 8, "got {} spans", spans.len());
    let span_text = format!("{spans:?}");
    assert_clean("the exported spans", &span_text);
    assert!(
        spans.iter().any(|s| s
            .attr("url.path")
            .is_some_and(|p| p.starts_with("/x/[REDACTED]"))),
        "the server span keeps the path around the redaction"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.attr("api_key").as_deref() == Some("[REDACTED]")),
        "a sensitive span field is redacted by name"
    );

    // Error reports, in memory and as the Sentry envelope on the wire.
    let reports = memory.reports();
    assert!(!reports.is_empty(), "the login error was reported");
    assert_clean("the error reports", &format!("{reports:?}"));
    assert!(!envelopes.is_empty(), "the Sentry envelope arrived");
    for e in &envelopes {
        assert_clean("the Sentry envelope", &String::from_utf8_lossy(&e.body));
    }

    // Metrics: the secret label value and the sensitive label name.
    assert_clean("/metrics", &metrics);
    assert!(
        metrics.contains("tenant_requests_total{tenant=\"[REDACTED]\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("secret_labels_total{tenant_secret=\"[REDACTED]\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("obs_correlation_ids_rejected_total{reason=\"secret_shaped\"} 6"),
        "{metrics}"
    );
}
