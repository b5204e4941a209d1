//! The probe endpoints over real HTTP on loopback: status codes and bodies
//! for every status combination, Kubernetes `verbose`/`exclude`, single
//! checks, the IETF JSON format and the plain hyper service.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{get, get_json, request, serve_axum, serve_hyper};
use obs_health::{Check, CheckResult, Health, Status, checks};

fn fixed(name: &str, result: CheckResult) -> Check {
    Check::new(name, move || {
        let r = result.clone();
        async move { r }
    })
}

struct Case {
    what: &'static str,
    checks: Vec<Check>,
    code: u16,
    quiet_body: &'static str,
    verbose_body: &'static str,
    json_status: &'static str,
}

#[tokio::test]
async fn each_status_combination_gives_the_right_code_and_body() {
    let cases = vec![
        Case {
            what: "all pass",
            checks: vec![
                fixed("a", CheckResult::pass()),
                fixed("b", CheckResult::pass()),
            ],
            code: 200,
            quiet_body: "ok",
            verbose_body: "[+]a ok\n[+]b ok\n[+]shutdown ok\nreadyz check passed\n",
            json_status: "pass",
        },
        Case {
            what: "one warn",
            checks: vec![
                fixed("a", CheckResult::pass()),
                fixed("b", CheckResult::warn("slow")),
            ],
            code: 200,
            quiet_body: "ok",
            verbose_body: "[+]a ok\n[+]b warn: slow\n[+]shutdown ok\nreadyz check passed\n",
            json_status: "warn",
        },
        Case {
            what: "critical fail",
            checks: vec![
                fixed("a", CheckResult::pass()),
                fixed("b", CheckResult::fail("down")),
            ],
            code: 503,
            quiet_body: "[+]a ok\n[-]b failed: down\n[+]shutdown ok\nreadyz check failed\n",
            verbose_body: "[+]a ok\n[-]b failed: down\n[+]shutdown ok\nreadyz check failed\n",
            json_status: "fail",
        },
        Case {
            what: "non-critical fail",
            checks: vec![
                fixed("a", CheckResult::pass()),
                fixed("b", CheckResult::fail("down")).non_critical(),
            ],
            code: 200,
            quiet_body: "ok",
            verbose_body: "[+]a ok\n[-]b failed (non-critical): down\n[+]shutdown ok\nreadyz check passed\n",
            json_status: "warn",
        },
        Case {
            what: "warn and critical fail",
            checks: vec![
                fixed("a", CheckResult::warn("slow")),
                fixed("b", CheckResult::fail("down")),
            ],
            code: 503,
            quiet_body: "[+]a warn: slow\n[-]b failed: down\n[+]shutdown ok\nreadyz check failed\n",
            verbose_body: "[+]a warn: slow\n[-]b failed: down\n[+]shutdown ok\nreadyz check failed\n",
            json_status: "fail",
        },
        Case {
            what: "no checks at all",
            checks: vec![],
            code: 200,
            quiet_body: "ok",
            verbose_body: "[+]shutdown ok\nreadyz check passed\n",
            json_status: "pass",
        },
    ];
    for case in cases {
        let mut b = Health::builder();
        for c in case.checks {
            b = b.check(c);
        }
        let health = b.build().expect("valid");
        let addr = serve_axum(&health).await;

        let quiet = get(addr, "/readyz").await;
        assert_eq!(quiet.status, case.code, "{}: code", case.what);
        assert_eq!(quiet.body, case.quiet_body, "{}: body", case.what);
        assert_eq!(quiet.headers["cache-control"], "no-store", "{}", case.what);
        assert_eq!(
            quiet.headers["content-type"], "text/plain; charset=utf-8",
            "{}",
            case.what
        );

        let verbose = get(addr, "/readyz?verbose").await;
        assert_eq!(verbose.status, case.code, "{}: verbose code", case.what);
        assert_eq!(
            verbose.body, case.verbose_body,
            "{}: verbose body",
            case.what
        );

        let (resp, json) = get_json(addr, "/readyz").await;
        assert_eq!(resp.status, case.code, "{}: json code", case.what);
        assert_eq!(
            json["status"], case.json_status,
            "{}: json status",
            case.what
        );
        assert_eq!(
            resp.headers["content-type"], "application/health+json",
            "{}",
            case.what
        );
        assert_eq!(resp.headers["cache-control"], "no-store", "{}", case.what);
    }
}

#[tokio::test]
async fn endpoints_select_checks_by_kind() {
    let health = Health::builder()
        .check(fixed("loop", CheckResult::pass()).liveness())
        .check(fixed("db", CheckResult::fail("refused")))
        .check(fixed("warmup", CheckResult::pass()).startup())
        .build()
        .unwrap();
    let addr = serve_axum(&health).await;

    let live = get(addr, "/livez?verbose").await;
    assert_eq!(
        (live.status, live.body.as_str()),
        (200, "[+]loop ok\nlivez check passed\n")
    );
    let ready = get(addr, "/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.body,
        "[-]db failed: refused\n[+]shutdown ok\nreadyz check failed\n"
    );
    let startup = get(addr, "/startupz?verbose").await;
    assert_eq!(
        (startup.status, startup.body.as_str()),
        (200, "[+]warmup ok\nstartupz check passed\n")
    );
    let all = get(addr, "/healthz").await;
    assert_eq!(all.status, 503);
    assert_eq!(
        all.body,
        "[+]loop ok\n[-]db failed: refused\n[+]warmup ok\n[+]shutdown ok\nhealthz check failed\n"
    );
}

#[tokio::test]
async fn single_check_endpoints() {
    let health = Health::builder()
        .check(fixed("db", CheckResult::pass()))
        .check(fixed("cache", CheckResult::fail("evicted\neverything")))
        .check(fixed("search", CheckResult::warn("lagging")))
        .build()
        .unwrap();
    let addr = serve_axum(&health).await;

    let db = get(addr, "/readyz/db").await;
    assert_eq!((db.status, db.body.as_str()), (200, "ok"));
    let cache = get(addr, "/readyz/cache").await;
    assert_eq!(
        (cache.status, cache.body.as_str()),
        (503, "[-]cache failed: evicted everything\n")
    );
    let search = get(addr, "/readyz/search").await;
    assert_eq!(
        (search.status, search.body.as_str()),
        (200, "ok (warn: lagging)")
    );
    let shutdown = get(addr, "/readyz/shutdown").await;
    assert_eq!((shutdown.status, shutdown.body.as_str()), (200, "ok"));
    // unknown check, and a readiness check asked for on /livez
    assert_eq!(get(addr, "/readyz/nope").await.status, 404);
    assert_eq!(get(addr, "/livez/db").await.status, 404);
    assert_eq!(get(addr, "/livez/shutdown").await.status, 404);

    let (resp, json) = get_json(addr, "/readyz/cache").await;
    assert_eq!(resp.status, 503);
    assert_eq!(json["status"], "fail");
    assert_eq!(
        json["checks"]["cache:responseTime"][0]["output"],
        "evicted\neverything"
    );
}

#[tokio::test]
async fn verbose_and_exclude_behave_like_kubernetes() {
    let bad_runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&bad_runs);
    let health = Health::builder()
        .check(fixed("etcd", CheckResult::pass()))
        .check(Check::new("bad", move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { CheckResult::fail("broken") }
        }))
        .check(fixed("log", CheckResult::pass()))
        .build()
        .unwrap();
    let addr = serve_axum(&health).await;

    let failing = get(addr, "/readyz").await;
    assert_eq!(failing.status, 503);
    assert_eq!(bad_runs.load(Ordering::SeqCst), 1);

    // excluded: not run, reported as "excluded: ok", probe passes
    let quiet = get(addr, "/readyz?exclude=bad").await;
    assert_eq!((quiet.status, quiet.body.as_str()), (200, "ok"));
    let verbose = get(addr, "/readyz?verbose&exclude=bad").await;
    assert_eq!(verbose.status, 200);
    assert_eq!(
        verbose.body,
        "[+]etcd ok\n[+]bad excluded: ok\n[+]log ok\n[+]shutdown ok\nreadyz check passed\n"
    );
    assert_eq!(
        bad_runs.load(Ordering::SeqCst),
        1,
        "an excluded check must not run"
    );

    // repeated exclude, an unknown name reported like kube-apiserver
    let multi = get(
        addr,
        "/readyz?exclude=bad&exclude=log&exclude=nope&exclude=zzz&verbose",
    )
    .await;
    assert_eq!(multi.status, 200);
    assert_eq!(
        multi.body,
        "[+]etcd ok\n[+]bad excluded: ok\n[+]log excluded: ok\n[+]shutdown ok\n\
         warn: some health checks cannot be excluded: no matches for \"nope\", \"zzz\"\n\
         readyz check passed\n"
    );

    // kube treats `verbose` as present whatever its value
    let v0 = get(addr, "/readyz?verbose=0&exclude=bad").await;
    assert!(v0.body.ends_with("readyz check passed\n"), "{}", v0.body);

    // excluding the built-in shutdown check works too
    health.begin_shutdown();
    let drained = get(addr, "/readyz?exclude=bad&exclude=shutdown").await;
    assert_eq!((drained.status, drained.body.as_str()), (200, "ok"));

    // JSON: excluded checks are left out, unknown excludes become notes
    let (resp, json) = get_json(addr, "/readyz?exclude=bad&exclude=shutdown&exclude=nope").await;
    assert_eq!(resp.status, 200);
    let keys: Vec<&String> = json["checks"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["etcd:responseTime", "log:responseTime"]);
    assert_eq!(
        json["notes"][0],
        "some health checks cannot be excluded: no matches for \"nope\""
    );
}

#[tokio::test]
async fn tags_select_checks() {
    let health = Health::builder()
        .check(fixed("db", CheckResult::pass()).tag("storage"))
        .check(
            fixed("s3", CheckResult::fail("403"))
                .tag("storage")
                .tag("external"),
        )
        .check(fixed("auth", CheckResult::fail("timeout")).tag("external"))
        .build()
        .unwrap();
    let addr = serve_axum(&health).await;
    let storage = get(addr, "/healthz?tag=storage").await;
    assert_eq!(storage.status, 503);
    assert_eq!(
        storage.body,
        "[+]db ok\n[-]s3 failed: 403\nhealthz check failed\n"
    );
    let both = get(
        addr,
        "/readyz?tag=storage&tag=external&exclude=s3&exclude=auth&verbose",
    )
    .await;
    assert_eq!(
        both.body,
        "[+]db ok\n[+]s3 excluded: ok\n[+]auth excluded: ok\nreadyz check passed\n"
    );
}

/// The draft's allowed members of a check object.
const CHECK_FIELDS: &[&str] = &[
    "componentId",
    "componentType",
    "observedValue",
    "observedUnit",
    "status",
    "affectedEndpoints",
    "time",
    "output",
    "links",
];
const TOP_FIELDS: &[&str] = &[
    "status",
    "version",
    "releaseId",
    "notes",
    "output",
    "checks",
    "links",
    "serviceId",
    "description",
];

fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && s.bytes()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
}

/// Validates a body against the draft's structure and returns it.
fn validate_ietf(json: &serde_json::Value) {
    let top = json.as_object().expect("top level is an object");
    for k in top.keys() {
        assert!(
            TOP_FIELDS.contains(&k.as_str()),
            "unknown top-level member {k}"
        );
    }
    let status = top["status"].as_str().expect("status is a string");
    assert!(["pass", "warn", "fail"].contains(&status));
    if status == "pass" {
        assert!(
            !top.contains_key("output"),
            "output should be omitted on pass"
        );
    }
    for (key, value) in top["checks"].as_object().expect("checks is an object") {
        let parts: Vec<&str> = key.split(':').collect();
        assert!(
            parts.len() <= 2 && parts.iter().all(|p| !p.is_empty()),
            "bad key {key}"
        );
        let arr = value.as_array().expect("each check maps to an array");
        assert_eq!(arr.len(), 1, "{key}");
        let obj = arr[0].as_object().expect("array of objects");
        for k in obj.keys() {
            assert!(
                CHECK_FIELDS.contains(&k.as_str()),
                "unknown member {k} in {key}"
            );
        }
        let st = obj["status"].as_str().expect("check status");
        assert!(["pass", "warn", "fail"].contains(&st), "{key}: {st}");
        if st == "pass" {
            assert!(!obj.contains_key("output"), "{key}: output on pass");
        }
        if obj.contains_key("observedUnit") {
            assert!(
                obj.contains_key("observedValue"),
                "{key}: unit without value"
            );
        }
        assert!(
            is_rfc3339(obj["time"].as_str().expect("time")),
            "{key}: time {}",
            obj["time"]
        );
        assert!(obj["componentId"].is_string());
    }
}

#[tokio::test]
async fn health_json_follows_the_ietf_draft() {
    let dir = std::env::temp_dir();
    let health = Health::builder()
        .service_id("checkout")
        .version("1")
        .release_id("1.2.3")
        .description("checkout service")
        .check(checks::sql("db", || async {
            // A query that takes at least 20 ms: its reported time can't be less.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok::<_, std::io::Error>(())
        }))
        .check(checks::disk_space("disk", dir, 0, 0).unwrap())
        .check(
            fixed(
                "cache",
                CheckResult::warn("hit ratio low").observe("hitRatio", 0.42, None),
            )
            .component_type("datastore"),
        )
        .check(fixed("queue", CheckResult::fail("broker down")).non_critical())
        .check(fixed(
            "weird",
            CheckResult::pass().observe("a:b", "x\"y\\z\n", Some("text")),
        ))
        .build()
        .unwrap();
    let addr = serve_axum(&health).await;

    let (resp, json) = get_json(addr, "/healthz").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    validate_ietf(&json);
    assert_eq!(json["status"], "warn");
    assert_eq!(json["serviceId"], "checkout");
    assert_eq!(json["version"], "1");
    assert_eq!(json["releaseId"], "1.2.3");
    assert_eq!(json["description"], "checkout service");
    assert_eq!(json["output"], "checks not passing: cache, queue");

    let checks = &json["checks"];
    let db = &checks["db:responseTime"][0];
    assert_eq!(db["componentType"], "datastore");
    assert_eq!(db["observedUnit"], "ms");
    let ms = db["observedValue"].as_f64().unwrap();
    assert!(ms >= 20.0, "a 20 ms query reported {ms} ms");
    assert_eq!(db["status"], "pass");
    let free = &checks["disk:free"][0];
    assert_eq!(
        (
            free["componentType"].as_str(),
            free["observedUnit"].as_str()
        ),
        (Some("system"), Some("bytes"))
    );
    assert!(free["observedValue"].as_u64().unwrap() > 0);
    let util = checks["disk:utilization"][0]["observedValue"]
        .as_f64()
        .unwrap();
    assert!((0.0..=100.0).contains(&util));
    let cache = &checks["cache:hitRatio"][0];
    assert_eq!(
        (cache["status"].as_str(), cache["output"].as_str()),
        (Some("warn"), Some("hit ratio low"))
    );
    assert_eq!(cache["observedValue"], 0.42);
    assert!(cache.get("observedUnit").is_none());
    let queue = &checks["queue:responseTime"][0];
    assert_eq!(
        (queue["status"].as_str(), queue["output"].as_str()),
        (Some("fail"), Some("broker down"))
    );
    assert_eq!(checks["weird:a_b"][0]["observedValue"], "x\"y\\z\n");
    assert_eq!(
        checks["shutdown:responseTime"][0]["componentType"],
        "system"
    );

    // `application/json` also selects the format; a failing probe says fail with 503
    let plain_json = request(
        addr,
        "GET",
        "/livez",
        Some("text/html, application/json;q=0.9"),
    )
    .await;
    assert_eq!(
        plain_json.headers["content-type"],
        "application/health+json"
    );
    let v: serde_json::Value = serde_json::from_str(&plain_json.body).unwrap();
    validate_ietf(&v);
    assert_eq!(
        v,
        serde_json::json!({"status": "pass", "version": "1", "releaseId": "1.2.3",
        "serviceId": "checkout", "description": "checkout service", "checks": {}})
    );

    health.begin_shutdown();
    let (resp, json) = get_json(addr, "/readyz").await;
    assert_eq!(resp.status, 503);
    validate_ietf(&json);
    assert_eq!(json["status"], "fail");
    assert_eq!(
        json["checks"]["shutdown:responseTime"][0]["output"],
        "shutting down"
    );
}

#[tokio::test]
async fn plain_hyper_service_serves_the_same_endpoints() {
    let health = Health::builder()
        .check(fixed("db", CheckResult::pass()))
        .check(fixed("beat", CheckResult::pass()).liveness())
        .build()
        .unwrap();
    let addr = serve_hyper(&health).await;
    let r = get(addr, "/readyz?verbose").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "[+]db ok\n[+]shutdown ok\nreadyz check passed\n")
    );
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(get(addr, "/livez").await.body, "ok");
    assert_eq!(get(addr, "/metrics").await.status, 404);
    let post = request(addr, "POST", "/readyz", None).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET, HEAD");
    let head = request(addr, "HEAD", "/readyz", None).await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let (_, json) = get_json(addr, "/readyz/db").await;
    assert_eq!(json["status"], Status::Pass.as_str());
}

#[tokio::test]
async fn credentials_are_redacted_and_reasons_can_be_withheld() {
    let leaky = || {
        fixed(
            "db",
            CheckResult::fail("connect postgres://app:hunter2@db:5432/app: refused").observe(
                "dsn",
                "postgres://app:hunter2@db/app",
                None,
            ),
        )
    };
    let health = Health::builder().check(leaky()).build().unwrap();
    let addr = serve_axum(&health).await;
    let text = get(addr, "/readyz").await;
    assert_eq!(text.status, 503);
    assert!(!text.body.contains("hunter2"), "{}", text.body);
    assert!(
        text.body
            .starts_with("[-]db failed: connect postgres://app:"),
        "{}",
        text.body
    );
    let (_, json) = get_json(addr, "/readyz").await;
    assert!(!json.to_string().contains("hunter2"), "{json}");

    let quiet = Health::builder()
        .withhold_reasons(true)
        .check(leaky())
        .build()
        .unwrap();
    let addr = serve_axum(&quiet).await;
    let text = get(addr, "/readyz").await;
    assert_eq!(
        text.body,
        "[-]db failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n"
    );
    assert_eq!(
        get(addr, "/readyz/db").await.body,
        "[-]db failed: reason withheld\n"
    );
    let (resp, json) = get_json(addr, "/readyz").await;
    assert_eq!(resp.status, 503);
    assert!(
        json["checks"]["db:dsn"][0].get("output").is_none(),
        "{json}"
    );
    // the reason is still available in process
    let report = quiet
        .probe(obs_health::Probe::Readiness, &Default::default())
        .await;
    assert!(report.checks()[0].output().unwrap().ends_with("refused"));
}
