//! Golden output of every schema preset and the human formats.

mod common;

use common::{SharedBuf, mask_timestamp};
use obs_core::{CorrelationId, IdRecord, Resource, SpanId, TraceFlags, TraceId};
use obs_log::{Config, Format, Schema};
use tracing_subscriber::layer::SubscriberExt;

/// The line of the logged event, named `LINE` in the goldens.
static LINE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OUTER_SPAN: &str = "00f067aa0ba902b7";
const INNER_SPAN: &str = "b7ad6b7169203331";

/// Logs the same scene with `config` and returns the lines, timestamps masked.
fn scene(config: Config) -> Vec<String> {
    let buf = SharedBuf::default();
    let resource = Resource::new("checkout")
        .with_version("1.4.2")
        .with_environment("prod")
        .with_instance_id("i-1");
    let (layer, handles) = obs_log::layer(
        config
            .writer(buf.clone())
            .resource(resource)
            .file_line(true),
    )
    .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    obs_testing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("request", user = "ann", route = "/items/{id}");
        let trace = TraceId::from_hex(TRACE).unwrap();
        IdRecord::update_span_id(&outer.id().unwrap(), |r| {
            *r = IdRecord::with_trace(
                trace,
                SpanId::from_hex(OUTER_SPAN).unwrap(),
                TraceFlags::SAMPLED,
            );
            r.correlation_id = Some(CorrelationId::parse("req-42").unwrap());
        });
        let _o = outer.enter();
        let inner = tracing::info_span!("db", user = "bob", rows = 3_u64);
        IdRecord::update_span_id(&inner.id().unwrap(), |r| {
            *r = IdRecord::with_trace(
                trace,
                SpanId::from_hex(INNER_SPAN).unwrap(),
                TraceFlags::SAMPLED,
            );
        });
        let _i = inner.enter();
        LINE.store(line!() + 1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(target: "shop::db", attempt = 2_i64, ratio = 0.5, ok = false, token = "abc", note = "a\"b\n", "slow query {}", 7);
    });
    drop(handles);
    let n = LINE.load(std::sync::atomic::Ordering::Relaxed);
    buf.lines()
        .iter()
        .map(|l| {
            let mut l = if l.starts_with('{') {
                mask_timestamp(l)
            } else {
                l.clone()
            };
            for (from, to) in [
                (format!("\"line\":{n}"), "\"line\":LINE"),
                (format!("\"code.lineno\":{n}"), "\"code.lineno\":LINE"),
                (
                    format!("\"log.origin.file.line\":{n}"),
                    "\"log.origin.file.line\":LINE",
                ),
                (format!("\"line\":\"{n}\""), "\"line\":\"LINE\""),
                (format!("golden.rs:{n}"), "golden.rs:LINE"),
            ] {
                l = l.replace(&from, to);
            }
            l
        })
        .collect()
}

#[test]
fn native() {
    assert_eq!(
        scene(Config::new().schema(Schema::Native)),
        [
            r#"{"timestamp":"TS","level":"WARN","target":"shop::db","message":"slow query 7","attempt":2,"ratio":0.5,"ok":false,"token":"[REDACTED]","note":"a\"b\n","user":"bob","rows":3,"route":"/items/{id}","spans":["request","db"],"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"b7ad6b7169203331","correlation_id":"req-42","file":"crates/obs-log/tests/golden.rs","line":LINE,"service.name":"checkout","service.version":"1.4.2","deployment.environment.name":"prod"}"#
        ]
    );
}

#[test]
fn native_with_fields_key() {
    assert_eq!(
        scene(
            Config::new()
                .fields_key("fields")
                .span_path(false)
                .file_line(false)
        ),
        [
            r#"{"timestamp":"TS","level":"WARN","target":"shop::db","message":"slow query 7","fields":{"attempt":2,"ratio":0.5,"ok":false,"token":"[REDACTED]","note":"a\"b\n","user":"bob","rows":3,"route":"/items/{id}"},"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"b7ad6b7169203331","correlation_id":"req-42","file":"crates/obs-log/tests/golden.rs","line":LINE,"service.name":"checkout","service.version":"1.4.2","deployment.environment.name":"prod"}"#
        ]
    );
}

#[test]
fn otel() {
    assert_eq!(
        scene(Config::new().schema(Schema::Otel)),
        [
            r#"{"Timestamp":"TS","SeverityText":"WARN","SeverityNumber":13,"Body":"slow query 7","Attributes":{"attempt":2,"ratio":0.5,"ok":false,"token":"[REDACTED]","note":"a\"b\n","user":"bob","rows":3,"route":"/items/{id}","spans":["request","db"],"correlation_id":"req-42","code.filepath":"crates/obs-log/tests/golden.rs","code.lineno":LINE},"TraceId":"4bf92f3577b34da6a3ce929d0e0e4736","SpanId":"b7ad6b7169203331","TraceFlags":"01","InstrumentationScope":{"Name":"shop::db"},"Resource":{"service.name":"checkout","service.version":"1.4.2","deployment.environment.name":"prod","service.instance.id":"i-1"}}"#
        ]
    );
}

#[test]
fn ecs() {
    assert_eq!(
        scene(Config::new().schema(Schema::Ecs)),
        [
            r#"{"@timestamp":"TS","log.level":"warn","log.logger":"shop::db","message":"slow query 7","attempt":2,"ratio":0.5,"ok":false,"token":"[REDACTED]","note":"a\"b\n","user":"bob","rows":3,"route":"/items/{id}","spans":["request","db"],"trace.id":"4bf92f3577b34da6a3ce929d0e0e4736","span.id":"b7ad6b7169203331","labels.correlation_id":"req-42","log.origin.file.name":"crates/obs-log/tests/golden.rs","log.origin.file.line":LINE,"ecs.version":"8.11.0","service.name":"checkout","service.version":"1.4.2","service.environment":"prod"}"#
        ]
    );
}

#[test]
fn gcp() {
    assert_eq!(
        scene(Config::new().schema(Schema::Gcp).gcp_project("my-proj")),
        [
            r#"{"timestamp":"TS","severity":"WARNING","target":"shop::db","message":"slow query 7","attempt":2,"ratio":0.5,"ok":false,"token":"[REDACTED]","note":"a\"b\n","user":"bob","rows":3,"route":"/items/{id}","spans":["request","db"],"logging.googleapis.com/trace":"projects/my-proj/traces/4bf92f3577b34da6a3ce929d0e0e4736","logging.googleapis.com/spanId":"b7ad6b7169203331","logging.googleapis.com/trace_sampled":true,"correlation_id":"req-42","logging.googleapis.com/sourceLocation":{"file":"crates/obs-log/tests/golden.rs","line":"LINE"},"serviceContext":{"service":"checkout","version":"1.4.2"},"logging.googleapis.com/labels":{"environment":"prod"}}"#
        ]
    );
}

#[test]
fn datadog() {
    // 0xa3ce929d0e0e4736 = 11803532876627986230, 0xb7ad6b7169203331 = 13235353014750950193
    assert_eq!(
        scene(Config::new().schema(Schema::Datadog)),
        [
            r#"{"timestamp":"TS","status":"warn","logger.name":"shop::db","message":"slow query 7","attempt":2,"ratio":0.5,"ok":false,"token":"[REDACTED]","note":"a\"b\n","user":"bob","rows":3,"route":"/items/{id}","spans":["request","db"],"dd.trace_id":"11803532876627986230","dd.span_id":"13235353014750950193","correlation_id":"req-42","file":"crates/obs-log/tests/golden.rs","line":LINE,"service":"checkout","dd.service":"checkout","dd.version":"1.4.2","dd.env":"prod"}"#
        ]
    );
    assert_eq!(0xa3ce929d0e0e4736_u64, 11803532876627986230);
    assert_eq!(0xb7ad6b7169203331_u64, 13235353014750950193);
}

#[test]
fn compact() {
    let lines = scene(Config::new().format(Format::Compact).ansi(false));
    let line = lines[0].replacen(&lines[0][..lines[0].find(' ').unwrap()], "TS", 1);
    assert_eq!(
        line,
        r#"TS  WARN request{user=ann route=/items/{id}}:db{user=bob rows=3}: shop::db: slow query 7 attempt=2 ratio=0.5 ok=false token=[REDACTED] note=a"b\n trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=b7ad6b7169203331 correlation_id=req-42 at crates/obs-log/tests/golden.rs:LINE"#
    );
}

#[test]
fn pretty() {
    let lines = scene(Config::new().format(Format::Pretty).ansi(false));
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(
        lines[0].ends_with("  WARN shop::db: slow query 7"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "    attempt=2 ratio=0.5 ok=false token=[REDACTED] note=a\"b\\n"
    );
    assert_eq!(
        lines[2],
        "    trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=b7ad6b7169203331 correlation_id=req-42"
    );
    assert_eq!(lines[3], "    at crates/obs-log/tests/golden.rs:LINE");
    assert_eq!(lines[4], "    in db{user=bob rows=3}");
    assert_eq!(lines[5], "    in request{user=ann route=/items/{id}}");
}

#[test]
fn ansi_colours_when_forced() {
    let lines = scene(Config::new().format(Format::Compact).ansi(true));
    assert!(lines[0].contains("\x1b[33m WARN\x1b[0m"), "{:?}", lines[0]);
}
