//! The log filter decides which lines are written, and nothing else: spans
//! below the log level still carry trace ids (so WARN lines inside INFO spans
//! have them), and trace context still propagates.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_quiet_log_level_does_not_switch_tracing_off() {
    let logs = Buf::default();
    let sink = logs.clone();
    let obs = obs::init(
        obs::Config::from_lookup(|_| None)
            .unwrap()
            .log(move |l| l.writer(sink).filter("warn"))
            .install_global(false),
    )
    .unwrap();
    let subscriber = tracing_subscriber::registry().with(obs.take_layers().unwrap());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request");
        let _g = span.enter();
        tracing::info!("not written: below the log level");
        tracing::warn!("written, with the span's trace id");
        let ids = obs::IdRecord::current().expect("the INFO span carries ids at log level warn");
        assert!(ids.trace_id.is_some());
    });
    let report = obs.shutdown(Duration::from_secs(2)).await;
    assert!(report.completed);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let warn: Vec<_> = lines.iter().filter(|l| l["level"] == "WARN").collect();
    assert_eq!(warn.len(), 1, "{text}");
    assert!(warn[0]["trace_id"].is_string(), "{text}");
    assert!(!text.contains("not written"), "{text}");
}
