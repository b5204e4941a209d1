//! The log filter decides which lines are written, and nothing else: spans
//! below the log level still carry trace ids (so WARN lines inside INFO spans
//! have them), and trace context still propagates.
//!
//! Each case runs with obs's layers installed both ways: beside other layers
//! (`take_layers`, the union of the pillars' filters a per-layer filter) and
//! alone (`take_subscriber`, the union the subscriber's own filter).

use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;

/// How obs's layers are installed.
#[derive(Debug, Clone, Copy)]
enum Install {
    /// `registry().with(obs.take_layers())`.
    Beside,
    /// `obs.take_subscriber()`.
    Alone,
}

const BOTH: [Install; 2] = [Install::Beside, Install::Alone];

fn subscriber(obs: &obs::Obs, install: Install) -> Box<dyn tracing::Subscriber + Send + Sync> {
    match install {
        Install::Beside => {
            Box::new(tracing_subscriber::registry().with(obs.take_layers().unwrap()))
        }
        Install::Alone => Box::new(obs.take_subscriber().unwrap()),
    }
}

/// obs with its log level at `warn`, its lines captured, not installed.
fn obs_at_warn() -> (obs::Obs, obs_testing::capture::SharedBuf) {
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let obs = obs::init(
        obs::Config::from_lookup(|_| None)
            .unwrap()
            .log(move |l| l.writer(sink).filter("warn"))
            .install_global(false),
    )
    .unwrap();
    (obs, logs)
}

#[tokio::test(flavor = "current_thread")]
async fn a_quiet_log_level_does_not_switch_tracing_off() {
    for install in BOTH {
        quiet_log_level(install).await;
    }
}

async fn quiet_log_level(install: Install) {
    let (obs, logs) = obs_at_warn();
    obs_testing::subscriber::with_default(subscriber(&obs, install), || {
        let span = tracing::info_span!("request");
        let _g = span.enter();
        tracing::info!("not written: below the log level");
        tracing::warn!("written, with the span's trace id");
        let ids = obs::IdRecord::current().expect("the INFO span carries ids at log level warn");
        assert!(ids.trace_id.is_some());
    });
    let report = obs.shutdown(Duration::from_secs(2)).await;
    assert!(report.completed);
    let text = logs.text();
    let lines = logs.json_lines();
    let warn: Vec<_> = lines.iter().filter(|l| l["level"] == "WARN").collect();
    assert_eq!(warn.len(), 1, "{install:?}: {text}");
    assert!(warn[0]["trace_id"].is_string(), "{install:?}: {text}");
    assert!(!text.contains("not written"), "{install:?}: {text}");
}

/// Libraries' DEBUG and TRACE spans (hyper, h2, tower) are not recorded by
/// default: no layer wants them, so they cost nothing; `OBS_TRACE_FILTER`
/// opts in.
#[tokio::test(flavor = "current_thread")]
async fn library_trace_spans_are_not_recorded_unless_asked() {
    for (filter, recorded, install) in BOTH
        .into_iter()
        .flat_map(|i| [(None, false, i), (Some("info,noisy=trace"), true, i)])
    {
        let obs = obs::init(
            obs::Config::from_lookup(|k| match k {
                "OBS_TRACE_FILTER" => filter.map(str::to_owned),
                _ => None,
            })
            .unwrap()
            .log(|l| l.writer(std::io::sink()))
            .install_global(false),
        )
        .unwrap();
        obs_testing::subscriber::with_default(subscriber(&obs, install), || {
            let span = tracing::trace_span!(target: "noisy", "poll_frame");
            let _g = span.enter();
            let ids = obs::IdRecord::current().and_then(|r| r.trace_id);
            assert_eq!(ids.is_some(), recorded, "filter {filter:?}, {install:?}");
        });
        obs.shutdown(Duration::from_secs(2)).await;
    }
}

/// The facade fuses the log, trace and errors layers into one, and each
/// still decides alone what it sees: a DEBUG span the log directive wants
/// and the trace filter does not is on the log line and not exported, and an
/// event in it is a span event of the nearest traced span; a DEBUG span
/// `OBS_TRACE_FILTER` wants and the log directive does not is exported and
/// is not on the line, whose span id is then that span's (the span the line
/// was written in).
#[tokio::test(flavor = "current_thread")]
async fn each_pillar_sees_what_its_own_filter_enables() {
    for install in BOTH {
        own_filters(install).await;
    }
}

async fn own_filters(install: Install) {
    let receiver = obs_testing::otlp::OtlpReceiver::start();
    let url = receiver.http_base_url();
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    let obs = obs::init(
        obs::Config::from_lookup(move |k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(url.clone()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".into()),
            "OBS_TRACE_FILTER" => Some("info,deep=debug".into()),
            _ => None,
        })
        .unwrap()
        .log(move |l| l.writer(sink).filter("info,app=debug"))
        .install_global(false),
    )
    .unwrap();
    let mut hidden_span_id = None;
    obs_testing::subscriber::with_default(subscriber(&obs, install), || {
        let request = tracing::info_span!(target: "app", "request", route = "/r");
        let _r = request.enter();
        {
            let step = tracing::debug_span!(target: "app", "step", n = 7);
            let _s = step.enter();
            assert!(!step.is_disabled());
            tracing::info!(target: "app", "in the debug span");
        }
        let hidden = tracing::debug_span!(target: "deep", "hidden", kept_out = 1);
        let _h = hidden.enter();
        hidden_span_id = obs::IdRecord::current().and_then(|r| r.span_id);
        tracing::warn!(target: "app", "in the deep span");
    });
    let report = obs.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed);

    let text = logs.text();
    let lines = logs.json_lines();
    let line = |msg: &str| {
        lines
            .iter()
            .find(|l| l["message"] == msg)
            .unwrap_or_else(|| panic!("no line {msg:?} in {text}"))
    };
    let debug = line("in the debug span");
    assert_eq!(debug["n"], 7, "{text}");
    assert_eq!(debug["route"], "/r", "{text}");
    assert_eq!(
        debug["spans"],
        serde_json::json!(["request", "step"]),
        "{text}"
    );
    let quiet = line("in the deep span");
    assert!(quiet.get("kept_out").is_none(), "{text}");
    assert_eq!(quiet["spans"], serde_json::json!(["request"]), "{text}");
    let hidden_span_id = hidden_span_id.expect("the deep span is traced").to_string();
    assert_eq!(quiet["span_id"], hidden_span_id.as_str(), "{text}");

    let spans = receiver.wait_for_spans(2, Duration::from_secs(10));
    let names: Vec<_> = spans.iter().map(|s| s.name()).collect();
    assert!(!names.contains(&"step"), "{names:?}");
    let request = spans.iter().find(|s| s.name() == "request").unwrap();
    assert!(
        request.event_names().contains(&"in the debug span"),
        "{:?}",
        request.event_names()
    );
    let hidden = spans.iter().find(|s| s.name() == "hidden").unwrap();
    assert_eq!(hidden.span_id(), hidden_span_id);
    assert_eq!(hidden.parent_span_id(), Some(request.span_id()));
    assert_eq!(quiet["trace_id"], request.trace_id().as_str(), "{text}");
}

/// Alone, the union filter is the subscriber's: a directive reloaded at
/// runtime decides the next events, both ways, and the taken subscriber is
/// gone from the handle. (Under this binary's test helper, whose dispatcher
/// has no level hint, `tracing`'s maximum level is TRACE throughout; that a
/// reload moves it is `tests/reload_alone.rs`'s, in a process of its own.)
#[tokio::test(flavor = "current_thread")]
async fn alone_a_reloaded_log_level_takes_effect() {
    let (obs, logs) = obs_at_warn();
    let alone = obs.take_subscriber().unwrap();
    assert!(obs.take_subscriber().is_none() && obs.take_layers().is_none());
    obs_testing::subscriber::with_default(alone, || {
        let line = |n: u32| tracing::debug!(target: "app", n, "debug line");
        line(1);
        obs.reload_log_level("warn,app=debug").unwrap();
        line(2);
        obs.reload_log_level("warn").unwrap();
        line(3);
    });
    obs.shutdown(Duration::from_secs(2)).await;
    let text = logs.text();
    assert_eq!(logs.numbers_of("debug line", "n"), [2], "{text}");
}

/// Beside other layers, obs's levels decide what obs writes, never what the
/// other layers see: a layer of the user's gets the INFO and DEBUG events
/// obs's `warn` leaves out.
#[tokio::test(flavor = "current_thread")]
async fn beside_other_layers_obs_levels_hide_nothing_from_them() {
    let (obs, logs) = obs_at_warn();
    let mine = obs_testing::capture::CaptureLayer::new();
    let subscriber = tracing_subscriber::registry()
        .with(obs.take_layers().unwrap())
        .with(mine.clone());
    obs_testing::subscriber::with_default(subscriber, || {
        let span = tracing::debug_span!("inner");
        let _g = span.enter();
        tracing::debug!("a debug event");
        tracing::info!("an info event");
        tracing::warn!("a warn event");
    });
    obs.shutdown(Duration::from_secs(2)).await;
    for m in ["a debug event", "an info event", "a warn event"] {
        assert_eq!(mine.with_message(m).len(), 1, "{m}: {:?}", mine.events());
    }
    let text = logs.text();
    assert!(text.contains("a warn event"), "{text}");
    assert!(!text.contains("an info event"), "{text}");
}

/// A directive with span filters, loaded at runtime, follows spans in and
/// out (the fused layer hands it span enter and exit only while the
/// directive has span filters); reloaded back to `target=level`, it no
/// longer does.
#[tokio::test(flavor = "current_thread")]
async fn a_span_scoped_directive_loaded_at_runtime_follows_spans() {
    for install in BOTH {
        span_scoped_directive(install).await;
    }
}

async fn span_scoped_directive(install: Install) {
    let (obs, logs) = obs_at_warn();
    obs_testing::subscriber::with_default(subscriber(&obs, install), || {
        let in_span = |job: bool, n: u64| {
            let span = if job {
                tracing::info_span!("job")
            } else {
                tracing::info_span!("report")
            };
            let _g = span.enter();
            tracing::debug!(target: "app", n, "debug line");
        };
        in_span(true, 1);
        obs.reload_log_level("warn,[job]=debug").unwrap();
        in_span(true, 2);
        in_span(false, 3);
        tracing::debug!(target: "app", n = 4, "debug line");
        // Entered, left, entered again: the scope is followed.
        let span = tracing::info_span!("job");
        span.in_scope(|| tracing::debug!(target: "app", n = 5, "debug line"));
        tracing::debug!(target: "app", n = 6, "debug line");
        span.in_scope(|| tracing::debug!(target: "app", n = 7, "debug line"));
        obs.reload_log_level("warn").unwrap();
        in_span(true, 8);
        span.in_scope(|| tracing::debug!(target: "app", n = 9, "debug line"));
    });
    let report = obs.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed, "{report}");
    assert_eq!(
        logs.numbers_of("debug line", "n"),
        [2, 5, 7],
        "{install:?}: {}",
        logs.text()
    );
}

/// Alone, obs's layers stand on obs's own span store, and only there do
/// they count as the spans' only readers; beside other layers they stand
/// on a registry. The cases above run on both.
#[tokio::test(flavor = "current_thread")]
async fn alone_obs_stands_on_its_own_span_store() {
    for install in BOTH {
        let (obs, _logs) = obs_at_warn();
        let subscriber = subscriber(&obs, install);
        obs_testing::subscriber::with_default(subscriber, || {
            let (store, registry) = tracing::dispatcher::get_default(|d| {
                (
                    d.is::<obs::core::store::SpanStore>(),
                    d.is::<tracing_subscriber::Registry>(),
                )
            });
            let alone = matches!(install, Install::Alone);
            assert_eq!((store, registry), (alone, !alone), "{install:?}");
            assert_eq!(
                obs::core::record::spans_read_by_obs_only(),
                alone,
                "{install:?}"
            );
            // The current ids are found in either store.
            let span = tracing::warn_span!("request");
            let _g = span.enter();
            let ids = obs::core::IdRecord::current().expect("the span's ids");
            assert!(ids.trace_id.is_some(), "{install:?}");
        });
        obs.shutdown(Duration::from_secs(2)).await;
    }
}
