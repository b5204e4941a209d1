//! The ready-made checks against real peers: a loopback TCP listener, an
//! axum HTTP server, a SQLite database, the real filesystem and /proc.

use std::time::Duration;

use obs_health::checks::{self, Heartbeat};
use obs_health::{Check, Error, Health, Kind, Probe, ProbeOptions, Report, Status};

async fn run(check: Check) -> Report {
    let health = Health::builder().check(check).build().expect("valid check");
    health.probe(Probe::All, &ProbeOptions::default()).await
}

fn first(report: &Report) -> (Status, Option<String>) {
    let c = &report.checks()[0];
    (c.status(), c.output().map(str::to_owned))
}

#[tokio::test]
async fn tcp_connect() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap();
    let report = run(checks::tcp("redis", open.to_string()).unwrap()).await;
    assert_eq!(first(&report), (Status::Pass, None));
    assert_eq!(
        report.checks()[0].observations()[0].measurement,
        "responseTime"
    );

    // a port nobody listens on: bind, learn the port, close
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let report = run(checks::tcp("redis", closed.to_string()).unwrap()).await;
    let (status, output) = first(&report);
    assert_eq!(status, Status::Fail);
    assert!(
        output
            .unwrap()
            .starts_with(&format!("connect to {closed}: "))
    );

    assert_eq!(
        checks::tcp("x", "localhost").unwrap_err(),
        Error::InvalidAddress("localhost".into())
    );
    assert!(checks::tcp("x", "host:99999").is_err());
}

#[tokio::test]
async fn http_get() {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/moved",
            get(|| async { (StatusCode::FOUND, [("location", "/ok")]) }),
        )
        .route(
            "/down",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "nope") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let ok = run(checks::http_get("auth", &format!("http://{addr}/ok")).unwrap()).await;
    assert_eq!(first(&ok), (Status::Pass, None));
    let moved = run(checks::http_get("auth", &format!("http://{addr}/moved?x=1")).unwrap()).await;
    assert_eq!(first(&moved), (Status::Pass, None));
    let down = run(checks::http_get("auth", &format!("http://{addr}/down")).unwrap()).await;
    assert_eq!(
        first(&down),
        (
            Status::Fail,
            Some(format!("GET http://{addr}/down: status 503"))
        )
    );

    // a TCP peer that is not HTTP
    let raw = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw_addr = raw.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut s, _) = raw.accept().await.unwrap();
        s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await.unwrap();
    });
    let garbage = run(checks::http_get("auth", &format!("http://{raw_addr}/")).unwrap()).await;
    let (status, output) = first(&garbage);
    assert_eq!(status, Status::Fail);
    assert!(
        output
            .unwrap()
            .contains("malformed status line \"SSH-2.0-OpenSSH_9.6\"")
    );

    let err = checks::http_get("auth", "https://example.test/").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid url \"https://example.test/\": scheme \"https\" is not supported, only http"
    );
    assert!(checks::http_get("auth", "/just/a/path").is_err());
    assert!(checks::http_get("auth", "http://exa mple/").is_err());
}

#[tokio::test]
async fn sql_select_one_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("obs-health-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("db.sqlite");
    let p = path.clone();
    let check = checks::sql("sqlite", move || {
        let p = p.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(p)?;
                conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            })
            .await
            .expect("blocking task")
        }
    });
    let report = run(check).await;
    assert_eq!(first(&report), (Status::Pass, None));
    assert_eq!(report.checks()[0].component_type(), Some("datastore"));

    let bad = checks::sql("sqlite", move || {
        let p = path.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(p)?;
                conn.query_row("SELECT * FROM missing_table", [], |r| r.get::<_, i64>(0))
            })
            .await
            .expect("blocking task")
        }
    });
    let (status, output) = first(&run(bad).await);
    assert_eq!(status, Status::Fail);
    assert!(output.unwrap().contains("no such table: missing_table"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn disk_space_on_the_real_filesystem() {
    let dir = std::env::temp_dir();
    let pass = run(checks::disk_space("tmp", &dir, 1, 1).unwrap()).await;
    assert_eq!(first(&pass), (Status::Pass, None));
    let obs = pass.checks()[0].observations();
    assert_eq!(
        (&*obs[0].measurement, &*obs[1].measurement),
        ("free", "utilization")
    );

    let warn = run(checks::disk_space("tmp", &dir, u64::MAX, 0).unwrap()).await;
    let (status, output) = first(&warn);
    assert_eq!(status, Status::Warn);
    assert!(output.unwrap().ends_with(&format!("below {}", u64::MAX)));
    let fail = run(checks::disk_space("tmp", &dir, u64::MAX, u64::MAX).unwrap()).await;
    assert_eq!(first(&fail).0, Status::Fail);

    let missing = run(checks::disk_space("gone", "/definitely/not/here", 0, 0).unwrap()).await;
    let (status, output) = first(&missing);
    assert_eq!(status, Status::Fail);
    assert!(
        output
            .unwrap()
            .starts_with("statvfs /definitely/not/here: ")
    );

    assert_eq!(
        checks::disk_space("d", "/", 1, 2).unwrap_err().to_string(),
        "invalid thresholds for check \"d\": the fail threshold must not be above the warn threshold (warn 1, fail 2)"
    );
}

#[tokio::test]
async fn memory_checks_read_proc() {
    let pass = run(checks::process_memory("rss", u64::MAX, u64::MAX).unwrap()).await;
    assert_eq!(first(&pass), (Status::Pass, None));
    let fail = run(checks::process_memory("rss", 1, 1).unwrap()).await;
    let (status, output) = first(&fail);
    assert_eq!(status, Status::Fail);
    assert!(output.unwrap().starts_with("resident set "));

    let avail = run(checks::system_memory("mem", 0, 0).unwrap()).await;
    assert_eq!(first(&avail), (Status::Pass, None));
    assert_eq!(avail.checks()[0].observations()[0].measurement, "available");
    let low = run(checks::system_memory("mem", u64::MAX, 0).unwrap()).await;
    assert_eq!(first(&low).0, Status::Warn);
    assert!(checks::system_memory("mem", 1, 2).is_err());
}

#[tokio::test]
async fn heartbeat_of_a_background_task() {
    let hb = Heartbeat::new();
    let check = checks::heartbeat("worker", &hb, Duration::from_millis(300)).unwrap();
    assert!(check.kind_set().contains(Kind::Liveness));
    let health = Health::builder().check(check).build().unwrap();
    let opts = ProbeOptions::default();
    let live = || health.probe(Probe::Liveness, &opts);

    // a worker that beats keeps liveness passing
    let worker_hb = hb.clone();
    let worker = tokio::spawn(async move {
        loop {
            worker_hb.beat();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(live().await.status(), Status::Pass);

    // the worker dies: once max age passes, liveness fails
    worker.abort();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let report = live().await;
    assert_eq!(report.status(), Status::Fail);
    assert!(
        report.checks()[0]
            .output()
            .unwrap()
            .starts_with("no heartbeat for ")
    );
    hb.beat();
    assert_eq!(live().await.status(), Status::Pass);

    assert!(checks::heartbeat("w", &hb, Duration::ZERO).is_err());
}

#[tokio::test]
async fn closure_checks_accept_several_return_types() {
    let health = Health::builder()
        .check(Check::new("bool", || async { false }))
        .check(Check::new("status", || async { Status::Warn }))
        .check(Check::new("result", || async {
            Err::<(), _>("pool exhausted")
        }))
        .check(Check::new("ok", || async { Ok::<(), std::io::Error>(()) }))
        .build()
        .unwrap();
    let report = health
        .probe(Probe::Readiness, &ProbeOptions::default())
        .await;
    let got: Vec<(Status, Option<&str>)> = report
        .checks()
        .iter()
        .map(|c| (c.status(), c.output()))
        .collect();
    assert_eq!(
        got,
        [
            (Status::Fail, Some("check returned false")),
            (Status::Warn, None),
            (Status::Fail, Some("pool exhausted")),
            (Status::Pass, None),
            (Status::Pass, None),
        ]
    );
}

#[tokio::test]
async fn environment_config_applies_to_the_builder() {
    let env = |k: &str| match k {
        "OBS_HEALTH_TIMEOUT" => Some("200ms".to_owned()),
        "OBS_HEALTH_WITHHOLD_REASONS" => Some("yes".to_owned()),
        _ => None,
    };
    let cfg = obs_health::Config::from_lookup(env).unwrap();
    assert!(cfg.withhold_reasons && !cfg.cached);
    let health = Health::builder()
        .config(&cfg)
        .check(Check::new("hang", || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            true
        }))
        .build()
        .unwrap();
    let report = health
        .probe(Probe::Readiness, &ProbeOptions::default())
        .await;
    assert_eq!(report.checks()[0].output(), Some("timed out after 200ms"));
    // reasons are withheld from the rendered answer only
    assert_eq!(
        report.to_text(false),
        "[-]hang failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n"
    );

    let bad = obs_health::Config::from_lookup(|k| {
        (k == "OBS_HEALTH_CACHED").then(|| "sometimes".to_owned())
    });
    assert_eq!(
        bad.unwrap_err(),
        Error::Env {
            var: "OBS_HEALTH_CACHED",
            value: "sometimes".into(),
            expected: "true or false"
        }
    );
}
