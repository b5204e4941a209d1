//! Pushgateway push against a local hyper server answering as the gateway
//! does: 200 for an accepted push, 400 with its explanation for a rejected
//! one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use obs_metrics::{Error, Pushgateway, Registry};

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    content_type: String,
    body: String,
}

/// A fake gateway: records each request; rejects bodies holding `# TYPE job_conflict`
/// the way the Pushgateway rejects inconsistent pushes; never answers `/metrics/job/hang`.
async fn fake_gateway() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().path().to_owned();
                            let content_type = req
                                .headers()
                                .get("content-type")
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default();
                            let body = String::from_utf8(
                                req.into_body().collect().await.unwrap().to_bytes().to_vec(),
                            )
                            .unwrap();
                            if path.starts_with("/metrics/job/hang") {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                            let rejected = body.contains("# TYPE job_conflict");
                            log.lock().unwrap().push(Seen {
                                method,
                                path,
                                content_type,
                                body,
                            });
                            let resp = if rejected {
                                http::Response::builder().status(400).body(Full::new(Bytes::from_static(
                                b"pushed metrics are invalid or inconsistent with existing metrics: collected metric \"job_conflict\" is a gauge, was a counter",
                            )))
                            } else {
                                http::Response::builder()
                                    .status(200)
                                    .body(Full::new(Bytes::new()))
                            };
                            Ok::<_, std::convert::Infallible>(resp.unwrap())
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn push_put_post_delete_and_typed_rejection() {
    let (url, seen) = fake_gateway().await;
    let registry = Registry::new();
    registry
        .gauge("batch_rows_processed", "Rows processed.")
        .unwrap()
        .set(1200);
    let gw = Pushgateway::new(&url).unwrap();

    gw.push(&registry, "nightly", &[("instance", "db/1")])
        .await
        .unwrap();
    gw.push_add(&registry, "nightly", &[]).await.unwrap();
    gw.delete("nightly", &[]).await.unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].method, "PUT");
        assert_eq!(
            seen[0].path,
            "/metrics/job/nightly/instance@base64/ZGIvMQ=="
        );
        assert_eq!(
            seen[0].content_type,
            obs_metrics::Format::Text.content_type()
        );
        assert!(seen[0].body.contains("batch_rows_processed 1200\n"));
        assert_eq!(seen[1].method, "POST");
        assert_eq!(seen[2].method, "DELETE");
        assert!(seen[2].body.is_empty());
    }

    let bad = Registry::new();
    bad.gauge("job_conflict", "Conflicts with an earlier push.")
        .unwrap()
        .set(1);
    let err = gw.push(&bad, "nightly", &[]).await.unwrap_err();
    match &err {
        Error::PushRejected { status, body, url } => {
            assert_eq!(*status, 400);
            assert!(
                body.contains("inconsistent with existing metrics"),
                "{body}"
            );
            assert!(url.ends_with("/metrics/job/nightly"));
        }
        other => panic!("expected a rejection, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("rejected the push with status 400")
    );
}

#[tokio::test]
async fn unreachable_and_hung_gateways_are_transport_errors() {
    let (url, _) = fake_gateway().await;
    let registry = Registry::new();
    let gw = Pushgateway::new(&url)
        .unwrap()
        .timeout(Duration::from_millis(300));
    let err = gw.push(&registry, "hang", &[]).await.unwrap_err();
    assert!(matches!(err, Error::PushTransport { .. }), "{err}");

    let port = obs_testing::prometheus::free_port().unwrap();
    let gw = Pushgateway::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let err = gw.push(&registry, "job", &[]).await.unwrap_err();
    assert!(matches!(err, Error::PushTransport { .. }), "{err}");
}
