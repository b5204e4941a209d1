//! Corpus test: secrets in error messages, source chains, headers, route,
//! path, user, tags, extra data, event fields and breadcrumbs never reach a
//! sink: the whole report is checked, stack trace included.

mod common;

use std::time::Duration;

use obs_errors::{
    BacktraceMode, Config, LogSink, MemorySink, Report, Reporter, RequestContext, Scope, User,
};
use obs_testing::capture::CaptureLayer;
use tracing_subscriber::layer::SubscriberExt;

/// (secret, a sentence that carries it)
const CORPUS: &[(&str, &str)] = &[
    (
        "hunter2hunter2",
        "login failed for bob password=hunter2hunter2",
    ),
    (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.c2lnbmF0dXJlc2lnbmF0dXJl",
        "bad token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.c2lnbmF0dXJlc2lnbmF0dXJl expired",
    ),
    (
        "AKIAIOSFODNN7EXAMPLE",
        "s3 denied for key AKIAIOSFODNN7EXAMPLE",
    ),
    (
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "git push with ghp_abcdefghijklmnopqrstuvwxyz0123456789 refused",
    ),
    (
        "mF_9.B5f-4.1JqM",
        "upstream said Authorization: Bearer mF_9.B5f-4.1JqM",
    ),
    (
        "s3cr3tpass",
        "cannot connect to postgres://app:s3cr3tpass@db:5432/main",
    ),
    (
        "xoxb-123456789012-abcdefghijklmnop",
        "slack hook xoxb-123456789012-abcdefghijklmnop rejected",
    ),
    (
        "sk_live_abcdefghijklmnop1234",
        "charge failed api_key: sk_live_abcdefghijklmnop1234",
    ),
];

#[derive(Debug)]
struct Wrapped(String, Option<Box<Wrapped>>);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.as_deref().map(|e| e as _)
    }
}

/// The whole report as text: every field through its `Debug` form (new
/// fields included as they are added), plus the symbolized stack trace,
/// which `Debug` leaves out.
fn serialized(r: &Report) -> String {
    format!("{r:#?}\n{}", r.stacktrace_text())
}

#[test]
fn secrets_are_scrubbed_everywhere() {
    let memory = MemorySink::new();
    let capture = CaptureLayer::new();
    let log_dispatch =
        obs_testing::subscriber::dispatch(tracing_subscriber::registry().with(capture.clone()));
    let config = Config::default()
        .dedup_window(Duration::ZERO)
        .backtrace(BacktraceMode::Always);
    let reporter = Reporter::builder(config)
        .sink(memory.clone())
        .sink(LogSink::with_dispatch(log_dispatch))
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(reporter.layer());

    obs_testing::subscriber::with_default(subscriber, || {
        for (i, (secret, sentence)) in CORPUS.iter().enumerate() {
            let span = tracing::info_span!("request", i);
            let _g = span.enter();
            // breadcrumbs: in the message and in fields, by value and by name
            tracing::info!("{sentence}");
            tracing::info!(detail = *sentence, "context");
            tracing::info!(password = *secret, token = *secret, "credentials");
            // headers set raw on the context: the reporter scrubs them again
            let mut req = RequestContext::new("POST")
                .with_path(&format!("/pay/{sentence}"))
                .with_route(format!("/pay/{sentence}"));
            req.headers
                .push(("authorization".into(), format!("Bearer {secret}")));
            req.headers.push(("x-debug".into(), sentence.to_string()));
            req.headers.push(("x-api-key".into(), secret.to_string()));
            let mut scope = Scope::new();
            scope.set_request(req);
            scope.set_user(
                User::id(format!("u-{i} {sentence}"))
                    .with_username(*sentence)
                    .with_email(format!("{sentence} <bob@example.com>")),
            );
            scope.set_tag("note", *sentence);
            scope.set_tag("api_token", *secret);
            scope.set_extra("last_query", *sentence);
            obs_errors::with_scope(scope, || {
                let err = Wrapped(
                    sentence.to_string(),
                    Some(Box::new(Wrapped(format!("cause: {sentence}"), None))),
                );
                reporter.capture_error(&err);
                // the same through an ERROR event with the error as a field
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    secret_field = *sentence,
                    "{sentence}"
                );
            });
        }
    });
    reporter.flush(Duration::from_secs(10)).unwrap();

    let reports = memory.reports();
    assert_eq!(reports.len(), CORPUS.len() * 2);
    for r in &reports {
        let text = serialized(r);
        for (secret, _) in CORPUS {
            assert!(!text.contains(secret), "secret {secret} leaked in {text}");
        }
        assert!(text.contains("[REDACTED]"));
        assert!(!r.breadcrumbs.is_empty());
        // the parts the secrets were put in are all there to be checked
        let user = r.user.as_ref().expect("user");
        assert!(
            user.username
                .as_deref()
                .is_some_and(|u| u.contains("[REDACTED]")),
            "{user:?}"
        );
        let req = r.request.as_ref().expect("request");
        assert!(
            req.route.as_deref().is_some_and(|p| p.starts_with("/pay/")),
            "{req:?}"
        );
        assert!(!r.stacktrace_text().is_empty(), "no stack trace captured");
    }
    // the log lines the log sink wrote are clean too
    let lines = capture.with_message("error report");
    assert_eq!(lines.len(), reports.len());
    for l in &lines {
        let all = format!("{:?}", l.fields);
        for (secret, _) in CORPUS {
            assert!(
                !all.contains(secret),
                "secret {secret} leaked in log line {all}"
            );
        }
    }
}
