//! The by-hand stack (`benches/support/by_hand.rs`) is the floor the
//! whole-request benches measure obs against: obs's behaviours written out
//! by hand. This test keeps its access line obs's: the same keys in the same
//! order, the same values for the request's fields, ids of the same shape,
//! and the correlation id echoed on the response, with and without a `Host`
//! header. A floor that wrote less than obs would measure cheaper than it is.

#[path = "../benches/support/stacks.rs"]
#[allow(dead_code, reason = "the test runs obs's stack and the by-hand one")]
mod stacks;

use obs_testing::capture::SharedBuf;
use tower::ServiceExt;

/// The top-level keys of a JSON object line, in the order written.
fn keys(line: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let (mut depth, mut in_str, mut escaped) = (0_u32, false, false);
    let mut current: Option<String> = None;
    let mut expect_key = false;
    for c in line.chars() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
                if let Some(k) = current.take() {
                    keys.push(k);
                }
                continue;
            }
            if let Some(k) = &mut current {
                k.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                if depth == 1 && expect_key {
                    current = Some(String::new());
                    expect_key = false;
                }
            }
            '{' | '[' => {
                depth += 1;
                expect_key = depth == 1;
            }
            '}' | ']' => depth -= 1,
            ',' => expect_key = depth == 1,
            _ => {}
        }
    }
    keys
}

/// One request through `router` (with `host` as its `Host` header), its
/// echoed correlation id.
fn one(rt: &tokio::runtime::Runtime, router: &axum::Router, host: Option<&'static str>) -> String {
    let mut req = stacks::request();
    if let Some(host) = host {
        req.headers_mut()
            .insert(http::header::HOST, http::HeaderValue::from_static(host));
    }
    let resp = rt.block_on(router.clone().oneshot(req)).unwrap();
    assert_eq!(resp.status(), http::StatusCode::OK);
    resp.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_by_hand_line_is_obs_line() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hosts = [None, Some("api.example.com:8443")];

    let obs_out = SharedBuf::default();
    let (obs, dispatch, router) = stacks::obs_stack_writing(&rt, false, true, obs_out.clone());
    let obs_ids: Vec<String> = tracing::dispatcher::with_default(&dispatch, || {
        hosts.iter().map(|h| one(&rt, &router, *h)).collect()
    });
    drop((dispatch, router));
    let report = rt.block_on(obs.shutdown(std::time::Duration::from_secs(10)));
    assert_eq!(report.log_lines_dropped, 0, "{report}");

    let hand_out = SharedBuf::default();
    let (hand, router) = stacks::by_hand_writing(hand_out.clone());
    let hand_ids: Vec<String> = hosts.iter().map(|h| one(&rt, &router, *h)).collect();
    drop(router);
    assert_eq!(hand.finish(), (2, 0));

    let access = |buf: &SharedBuf| -> Vec<String> {
        buf.text()
            .lines()
            .filter(|l| l.contains(r#""target":"obs::access""#))
            .map(str::to_owned)
            .collect()
    };
    let (obs_lines, hand_lines) = (access(&obs_out), access(&hand_out));
    assert_eq!(obs_lines.len(), 2, "{}", obs_out.text());
    assert_eq!(hand_lines.len(), 2, "{}", hand_out.text());
    for (i, (o, h)) in obs_lines.iter().zip(&hand_lines).enumerate() {
        assert_eq!(keys(o), keys(h), "\nobs:     {o}\nby hand: {h}");
        let (o, h): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(o).unwrap(),
            serde_json::from_str(h).unwrap(),
        );
        for key in keys(&o.to_string()) {
            match key.as_str() {
                "timestamp" | "duration_ms" => {
                    assert_eq!(o[&key].is_string(), h[&key].is_string(), "{key}");
                }
                "trace_id" | "span_id" => {
                    let (a, b) = (o[&key].as_str().unwrap(), h[&key].as_str().unwrap());
                    assert_eq!(a.len(), b.len(), "{key}");
                    assert!(b.bytes().all(|c| c.is_ascii_hexdigit()), "{key}: {b}");
                }
                "correlation_id" => {
                    assert_eq!(o[&key], obs_ids[i].as_str());
                    assert_eq!(h[&key], hand_ids[i].as_str());
                    assert_eq!(obs_ids[i].len(), hand_ids[i].len());
                }
                _ => assert_eq!(o[&key], h[&key], "{key}"),
            }
        }
    }
    // obs's line has 18 fields; with a `Host` header, two more that name
    // the server.
    assert_eq!(keys(&hand_lines[0]).len(), 18, "{}", hand_lines[0]);
    let with_host = keys(&hand_lines[1]);
    assert_eq!(with_host.len(), 20, "{}", hand_lines[1]);
    assert!(with_host.iter().any(|k| k == "server.port"));
}
