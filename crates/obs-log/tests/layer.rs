//! Behaviour of the layer: filtering and reload, rate limiting, ids,
//! span-field flattening, redaction, configuration errors, sinks.

mod common;

use std::time::Duration;

use common::SharedBuf;
use obs_core::{CorrelationId, IdRecord, SpanId, TraceFlags, TraceId};
use obs_log::{Config, Error, Format, Schema};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;

fn setup(config: Config) -> (SharedBuf, tracing_core::Dispatch, obs_log::Handles) {
    let buf = SharedBuf::default();
    let (layer, handles) = obs_log::layer(config.writer(buf.clone())).unwrap();
    (
        buf,
        obs_testing::subscriber::dispatch(tracing_subscriber::registry().with(layer)),
        handles,
    )
}

#[test]
fn reload_changes_the_filter_at_runtime() {
    let (buf, dispatch, handles) = setup(Config::new().filter("info"));
    let emit = || {
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::debug!(target: "app::db", "db debug");
            tracing::info!(target: "app::http", "http info");
        })
    };
    emit();
    handles.reload.set("warn,app::db=debug").unwrap();
    emit();
    assert!(
        handles
            .reload
            .would_enable("app::db", tracing_core::Level::DEBUG)
    );
    let err = handles.reload.set("app::db=chatty").unwrap_err();
    assert!(matches!(err, Error::Directive { .. }), "{err}");
    assert!(err.to_string().contains("app::db=chatty"), "{err}");
    assert_eq!(
        handles.reload.current(),
        "warn,app::db=debug",
        "a bad directive leaves the old one"
    );
    handles.reload.set("off").unwrap();
    emit();
    handles.guard.flush(Duration::from_secs(5));
    let msgs: Vec<_> = buf
        .json_lines()
        .iter()
        .map(|v| v["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(msgs, ["http info", "db debug"]);
}

#[test]
fn works_under_a_per_layer_filter() {
    let buf = SharedBuf::default();
    let (layer, _handles) =
        obs_log::layer(Config::new().filter("trace").writer(buf.clone())).unwrap();
    let subscriber =
        tracing_subscriber::registry().with(layer.with_filter(tracing_core::LevelFilter::WARN));
    obs_testing::subscriber::with_default(subscriber, || {
        tracing::info!("no");
        tracing::warn!("yes");
    });
    drop(_handles);
    let lines = buf.json_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["message"], "yes");
}

#[test]
fn rate_limit_suppresses_counts_and_summarises() {
    let (buf, dispatch, handles) = setup(Config::new().rate_limit(5));
    // One callsite for every line.
    let chatty_line = |n: u64| tracing::info!(n, "chatty");
    let burst = || {
        tracing::dispatcher::with_default(&dispatch, || {
            for n in 0..50u64 {
                chatty_line(n);
            }
        })
    };
    burst();
    let suppressed = handles.stats.suppressed();
    let chatty = |buf: &SharedBuf| {
        buf.json_lines()
            .iter()
            .filter(|v| v["message"] == "chatty")
            .count() as u64
    };
    handles.guard.flush(Duration::from_secs(5));
    assert_eq!(chatty(&buf) + suppressed, 50);
    assert!(
        suppressed >= 40,
        "at most 5 lines per second (the burst may straddle two seconds): {suppressed}"
    );
    // The next second's first line is preceded by a summary of what was skipped.
    std::thread::sleep(Duration::from_millis(1100));
    tracing::dispatcher::with_default(&dispatch, || chatty_line(99));
    handles.guard.flush(Duration::from_secs(5));
    let lines = buf.json_lines();
    let summaries: Vec<_> = lines
        .iter()
        .filter(|v| v.get("suppressed").is_some())
        .collect();
    let reported: u64 = summaries
        .iter()
        .map(|v| v["suppressed"].as_u64().unwrap())
        .sum();
    assert_eq!(
        reported, suppressed,
        "summaries account for every suppressed line: {summaries:?}"
    );
    assert_eq!(summaries.last().unwrap()["level"], "WARN");
    assert_eq!(lines.last().unwrap()["n"], 99);
}

#[test]
fn ids_come_from_the_nearest_span_record() {
    let (buf, dispatch, handles) = setup(Config::new());
    let trace = TraceId::random();
    let (s1, s2) = (SpanId::random(), SpanId::random());
    tracing::dispatcher::with_default(&dispatch, || {
        let outer = tracing::info_span!("request");
        IdRecord::update_span_id(&outer.id().unwrap(), |r| {
            *r = IdRecord::with_trace(trace, s1, TraceFlags::SAMPLED);
            r.correlation_id = Some(CorrelationId::parse("corr-1").unwrap());
        });
        let _o = outer.enter();
        tracing::info!("in outer");
        let inner = tracing::info_span!("child");
        IdRecord::update_span_id(&inner.id().unwrap(), |r| {
            *r = IdRecord::with_trace(trace, s2, TraceFlags::SAMPLED)
        });
        let _i = inner.enter();
        tracing::info!("in inner");
    });
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("outside"));
    handles.guard.flush(Duration::from_secs(5));
    let l = buf.json_lines();
    assert_eq!(l[0]["span_id"], s1.to_string());
    assert_eq!(l[1]["span_id"], s2.to_string());
    for v in &l[..2] {
        assert_eq!(v["trace_id"], trace.to_string());
        assert_eq!(v["correlation_id"], "corr-1");
    }
    assert!(l[2].get("trace_id").is_none() && l[2].get("correlation_id").is_none());
}

#[test]
fn span_fields_flatten_inner_wins_event_wins_and_record_updates() {
    let (buf, dispatch, handles) = setup(Config::new());
    tracing::dispatcher::with_default(&dispatch, || {
        let outer = tracing::info_span!(
            "outer",
            a = "outer-a",
            b = "outer-b",
            status = tracing::field::Empty
        );
        let _o = outer.enter();
        let inner = tracing::info_span!("inner", b = "inner-b", c = 1u64);
        let _i = inner.enter();
        outer.record("status", 200u64);
        outer.record("a", "recorded-a");
        tracing::info!(c = 2u64, "event");
    });
    handles.guard.flush(Duration::from_secs(5));
    let line = &buf.lines()[0];
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["a"], "recorded-a");
    assert_eq!(v["b"], "inner-b");
    assert_eq!(v["c"], 2, "the event's own field wins");
    assert_eq!(v["status"], 200);
    assert_eq!(v["spans"], serde_json::json!(["outer", "inner"]));
    assert_eq!(
        line.matches("\"b\":").count(),
        1,
        "no duplicate keys: {line}"
    );
    assert_eq!(
        line.matches("\"c\":").count(),
        1,
        "no duplicate keys: {line}"
    );
}

#[test]
fn redaction_by_name_and_by_value() {
    let (buf, dispatch, handles) = setup(Config::new());
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("req", authorization = "Bearer abcdefghijklmnop");
        let _g = span.enter();
        tracing::info!(
            api_key = 12345u64,
            header = "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2ln",
            user = "ann",
            "login with password=hunter2"
        );
    });
    handles.guard.flush(Duration::from_secs(5));
    let text = buf.text();
    for secret in ["abcdefghijklmnop", "12345", "eyJhbGci", "hunter2"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let v = &buf.json_lines()[0];
    assert_eq!(v["api_key"], "[REDACTED]");
    assert_eq!(v["authorization"], "[REDACTED]");
    assert_eq!(v["user"], "ann");
    assert_eq!(v["message"], "login with password=[REDACTED]");
}

#[test]
fn unusual_values_are_valid_json() {
    let (buf, dispatch, handles) = setup(Config::new().redactor(None));
    #[derive(Debug)]
    #[allow(dead_code, reason = "only Debug reads the field")]
    struct Nested {
        inner: Vec<&'static str>,
    }
    let err = std::io::Error::other("disk \"full\"");
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!(
            nan = f64::NAN,
            inf = f64::INFINITY,
            big = u128::MAX,
            neg = i128::MIN,
            bytes = &b"ok\xff"[..],
            nested = ?Nested { inner: vec!["a\"b", "\u{0}"] },
            error = &err as &(dyn std::error::Error + 'static),
            "ctl \u{1b}[31m\r\n"
        );
    });
    handles.guard.flush(Duration::from_secs(5));
    let v = &buf.json_lines()[0];
    assert_eq!(v["nan"], "NaN");
    assert_eq!(v["inf"], "inf");
    // serde_json reads integers beyond 64 bits as floats: check the text.
    let text = buf.text();
    assert!(text.contains(&format!("\"big\":{}", u128::MAX)), "{text}");
    assert!(text.contains(&format!("\"neg\":{}", i128::MIN)), "{text}");
    assert_eq!(v["bytes"], "ok\u{fffd}");
    assert_eq!(v["nested"], "Nested { inner: [\"a\\\"b\", \"\\0\"] }");
    assert_eq!(v["error"], "disk \"full\"");
    assert_eq!(v["message"], "ctl \u{1b}[31m\r\n");
}

#[test]
fn config_errors_name_the_variable_and_value() {
    let cases = [
        ("OBS_LOG", "info,db=loud"),
        ("OBS_LOG_FORMAT", "xml"),
        ("OBS_LOG_SCHEMA", "splunk"),
        ("OBS_LOG_RATE_LIMIT", "many"),
        ("OBS_LOG_NON_BLOCKING", "perhaps"),
    ];
    for (var, value) in cases {
        let err = Config::from_lookup(|k| (k == var).then(|| value.to_owned())).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::Env { var: v, .. } if v == var),
            "{msg}"
        );
        assert!(msg.contains(var) && msg.contains(value), "{msg}");
    }
    let err = Config::from_lookup(|k| (k == "RUST_LOG").then(|| "=x".to_owned())).unwrap_err();
    assert!(err.to_string().contains("RUST_LOG"), "{err}");
    let c = Config::from_lookup(|k| match k {
        "RUST_LOG" => Some("debug".into()),
        "OBS_LOG_FORMAT" => Some("Compact".into()),
        "OBS_LOG_SCHEMA" => Some("datadog".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        (c.directive(), c.format_kind(), c.schema_kind()),
        ("debug", Format::Compact, Schema::Datadog)
    );
    assert!(matches!(
        obs_log::layer(Config::new().filter("a[b=info")),
        Err(Error::Directive { .. })
    ));
}

#[test]
fn resource_from_env_and_gcp_project() {
    let c = Config::from_lookup(|k| match k {
        "OTEL_SERVICE_NAME" => Some("billing".into()),
        "OTEL_RESOURCE_ATTRIBUTES" => {
            Some("service.version=2.0,deployment.environment.name=staging".into())
        }
        "OBS_LOG_SCHEMA" => Some("gcp".into()),
        "GOOGLE_CLOUD_PROJECT" => Some("proj-1".into()),
        _ => None,
    })
    .unwrap();
    let (buf, dispatch, handles) = setup(c);
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("s");
        IdRecord::update_span_id(&span.id().unwrap(), |r| {
            *r = IdRecord::with_trace(TraceId::random(), SpanId::random(), TraceFlags::NOT_SAMPLED)
        });
        let _g = span.enter();
        tracing::error!("x");
    });
    handles.guard.flush(Duration::from_secs(5));
    let v = &buf.json_lines()[0];
    assert_eq!(
        v["serviceContext"],
        serde_json::json!({"service": "billing", "version": "2.0"})
    );
    assert_eq!(v["logging.googleapis.com/labels"]["environment"], "staging");
    assert!(
        v["logging.googleapis.com/trace"]
            .as_str()
            .unwrap()
            .starts_with("projects/proj-1/traces/")
    );
    assert_eq!(v["logging.googleapis.com/trace_sampled"], false);
    assert_eq!(v["severity"], "ERROR");
}

#[test]
fn file_sink_is_flushed_periodically_and_on_shutdown() {
    let path = std::env::temp_dir().join(format!("obs-log-file-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let config = Config::new()
        .file(&path)
        .unwrap()
        .flush_interval(Duration::from_millis(20));
    let (layer, handles) = obs_log::layer(config).unwrap();
    let dispatch = obs_testing::subscriber::dispatch(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("first"));
    // The periodic flusher writes the line without any further logging.
    let mut seen = String::new();
    for _ in 0..500 {
        seen = std::fs::read_to_string(&path).unwrap_or_default();
        if seen.contains("first") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(seen.contains("first"), "periodic flush did not happen");
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("second"));
    let report = handles.guard.shutdown(Duration::from_secs(5));
    assert!(report.completed);
    assert_eq!(report.written, 2);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let _ = std::fs::remove_file(&path);
}

/// Counts the events another layer of the same subscriber sees.
#[derive(Clone, Default)]
struct Counter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl<S: tracing_core::Subscriber> tracing_subscriber::Layer<S> for Counter {
    fn on_event(&self, _: &tracing_core::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn per_layer_filter_leaves_other_layers_alone_and_reloads() {
    let buf = SharedBuf::default();
    let config = Config::new()
        .filter("info")
        .per_layer_filter(true)
        .writer(buf.clone());
    let (layer, handles) = obs_log::layer(config).unwrap();
    let counter = Counter::default();
    let subscriber = tracing_subscriber::registry()
        .with(layer.with_filter(handles.reload.filter()))
        .with(counter.clone());
    let dispatch = obs_testing::subscriber::dispatch(subscriber);
    let emit = || {
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::debug!("debug line");
            tracing::info!("info line");
        })
    };
    emit();
    handles.reload.set("debug").unwrap();
    emit();
    handles.guard.flush(Duration::from_secs(5));
    let msgs: Vec<_> = buf
        .json_lines()
        .iter()
        .map(|v| v["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(msgs, ["info line", "debug line", "info line"]);
    assert_eq!(
        counter.0.load(std::sync::atomic::Ordering::Relaxed),
        4,
        "the other layer saw every event"
    );
}

#[test]
fn a_field_recorded_many_times_keeps_its_last_value_only() {
    for compact in [false, true] {
        let config = if compact {
            Config::new().format(obs_log::Format::Compact).ansi(false)
        } else {
            Config::new()
        };
        let (buf, dispatch, handles) = setup(config);
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!(
                "job",
                n = tracing::field::Empty,
                fixed = "kept",
                late = tracing::field::Empty
            );
            let _g = span.enter();
            for i in 0..1_000u64 {
                span.record("n", i);
            }
            span.record("late", "added");
            tracing::info!("done");
        });
        handles.guard.flush(Duration::from_secs(5));
        let line = &buf.lines()[0];
        if compact {
            assert!(line.contains("job{fixed=kept n=999 late=added}"), "{line}");
        } else {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["n"], 999);
            assert_eq!(v["fixed"], "kept");
            assert_eq!(v["late"], "added");
            assert_eq!(line.matches("\"n\":").count(), 1, "{line}");
        }
    }
}

/// A name a span declares twice is written once, with its first value,
/// whether the span is the only one around the line or has a parent.
#[test]
fn a_name_declared_twice_on_a_span_is_written_once() {
    let (buf, dispatch, handles) = setup(Config::new());
    tracing::dispatcher::with_default(&dispatch, || {
        let alone = tracing::info_span!("alone", a = 1, a = 2, b = "x");
        alone.in_scope(|| tracing::info!("in the outermost span"));
        let outer = tracing::info_span!("outer", c = 3);
        outer.in_scope(|| {
            let inner = tracing::info_span!("inner", a = 1, a = 2);
            inner.in_scope(|| tracing::info!("in a nested span"));
        });
    });
    handles.guard.flush(Duration::from_secs(5));
    let lines = buf.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line.matches("\"a\":").count(), 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["a"], 1, "{line}");
    }
    assert!(lines[0].contains("\"b\":\"x\""), "{}", lines[0]);
    assert!(lines[1].contains("\"c\":3"), "{}", lines[1]);
}

/// `EnvFilter` syntax (span and field filters) works as a global filter and
/// as a per-layer filter, from the start and after a reload.
#[cfg(feature = "env-filter")]
#[test]
fn env_filter_span_and_field_directives() {
    for per_layer in [false, true] {
        let buf = SharedBuf::default();
        let (layer, handles) = obs_log::layer(
            Config::new()
                .filter("warn,app[request{user=alice}]=debug")
                .per_layer_filter(per_layer)
                .writer(buf.clone()),
        )
        .unwrap();
        let dispatch = if per_layer {
            let filter = handles.reload.filter();
            obs_testing::subscriber::dispatch(
                tracing_subscriber::registry().with(layer.with_filter(filter)),
            )
        } else {
            obs_testing::subscriber::dispatch(tracing_subscriber::registry().with(layer))
        };
        let emit = |tag: &str| {
            tracing::dispatcher::with_default(&dispatch, || {
                for user in ["alice", "bob"] {
                    let span = tracing::info_span!(target: "app", "request", user);
                    let _g = span.enter();
                    tracing::debug!(target: "app", "{tag} debug for {user}");
                }
                tracing::debug!(target: "app", "{tag} debug outside");
                tracing::warn!(target: "app", "{tag} warn outside");
            })
        };
        emit("first");
        // From `target=level` to span syntax and back, at runtime.
        handles.reload.set("app=info").unwrap();
        emit("plain");
        handles
            .reload
            .set("error,app[request{user=bob}]=debug")
            .unwrap();
        emit("second");
        handles.guard.flush(Duration::from_secs(5));
        let msgs: Vec<_> = buf
            .json_lines()
            .iter()
            .map(|v| v["message"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            msgs,
            [
                "first debug for alice",
                "first warn outside",
                "plain warn outside",
                "second debug for bob",
            ],
            "per_layer={per_layer}"
        );
    }
}
