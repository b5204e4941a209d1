//! A service built on the `obs` facade — one server layer and the admin
//! router, exporting its spans and log records to the checker — passes
//! every rule.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use obs_check::{Config, Logs, OtlpReceiver, Status};
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn a_service_on_the_facade_passes_every_rule() {
    let rx = OtlpReceiver::bind("127.0.0.1:0").unwrap();
    let endpoint = rx.endpoint();
    let logs = obs_testing::capture::SharedBuf::default();
    let sink = logs.clone();
    // The exporter's tasks live on this runtime.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let obs = {
        let _enter = rt.enter();
        obs::init(
            obs::Config::from_lookup(|k| match k {
                "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
                "OTEL_BSP_SCHEDULE_DELAY" => Some("100".into()),
                "OTEL_BLRP_SCHEDULE_DELAY" => Some("100".into()),
                "OTEL_TRACES_SAMPLER" => Some("always_on".into()),
                _ => None,
            })
            .unwrap()
            .service("facade-fixture")
            .log(move |l| l.writer(sink).filter("info"))
            .install_global(false),
        )
        .unwrap()
    };
    let subscriber = tracing_subscriber::registry().with(obs.take_layers().unwrap());
    let app = Router::new()
        .route("/items", get(|| async { "[]" }))
        .layer(obs.server_layer())
        .merge(obs.admin_router());

    // The server runs on one thread with the subscriber as its default, so
    // every request's span and line reach obs's layers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let _default = obs_testing::subscriber::set_default(subscriber);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });

    let mut config = Config::new(&format!("http://{addr}/items")).unwrap();
    config.otlp = Some(rx);
    config.logs = Logs::Lines(Arc::new(move || {
        logs.text().lines().map(str::to_owned).collect()
    }));
    let report = obs_check::run(&config);
    let _ = stop_tx.send(());
    server.join().unwrap();
    rt.block_on(obs.shutdown(Duration::from_secs(2)));

    assert!(
        report.results.iter().all(|r| r.status == Status::Pass),
        "{}",
        report.to_text()
    );
    assert_eq!(report.results.len(), 25);
    // The access lines went out over OTLP too, and were scanned.
    let exported = report.get("secrets.exported_logs").unwrap();
    assert_eq!(exported.status, Status::Pass, "{}", report.to_text());
    assert!(
        exported.reason.contains("strings of exported log records"),
        "{}",
        report.to_text()
    );
}
