//! The gRPC example pair as two processes: `grpc_server` (tonic's health
//! service behind `obs.grpc_server_layer()`) and `grpc_client` (through
//! `obs.grpc_client_layer()`), both exporting spans to one OTLP receiver.
//! The client's run is one trace with the server's spans, the statuses
//! follow the RPC conventions on each side, the server's access lines carry
//! the client's correlation id, and its `/metrics` has the RPC histogram.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obs_testing::otlp::{OtlpReceiver, ReceivedSpan};
use serde_json::Value;

mod common;
use common::{Lines, STARTUP_TIMEOUT, json, read_into};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const ERROR: i32 = 2;
const UNSET: i32 = 0;

/// A child process with its output lines; killed when dropped.
struct Proc {
    child: Child,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
}

impl Proc {
    fn start(bin: &str, env: &[(&str, String)]) -> Proc {
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("OTEL_") || k.starts_with("OBS_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot spawn the example");
        let (stdout, stderr) = (Arc::new(Lines::default()), Arc::new(Lines::default()));
        read_into(child.stdout.take().expect("piped"), stdout.clone());
        read_into(child.stderr.take().expect("piped"), stderr.clone());
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    fn line(&self, message: &str, timeout: Duration) -> Value {
        let line = self
            .stdout
            .wait_for(timeout, |l| {
                json(l).is_some_and(|v| v["message"] == message)
            })
            .unwrap_or_else(|| panic!("no {message:?} line; {}", self.output()));
        json(&line).expect("checked above")
    }

    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .snapshot()
            .iter()
            .filter_map(|l| json(l))
            .collect()
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.snapshot().join("\n"),
            self.stderr.snapshot().join("\n")
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn addr(line: &Value, key: &str) -> SocketAddr {
    line[key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

/// `GET /metrics` over a plain socket.
fn scrape(admin: SocketAddr) -> String {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn of(spans: &[ReceivedSpan], service: &str, kind: i32) -> Vec<ReceivedSpan> {
    spans
        .iter()
        .filter(|s| {
            s.kind() == kind && s.resource.get("service.name").map(String::as_str) == Some(service)
        })
        .cloned()
        .collect()
}

fn status_of<'a>(spans: &'a [ReceivedSpan], name: &str, code: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| s.name() == name && s.attr("rpc.response.status_code").as_deref() == Some(code))
        .unwrap_or_else(|| panic!("no {name} span with {code} in {spans:#?}"))
}

#[test]
fn the_grpc_pair_is_one_trace_across_two_processes() {
    let receiver = OtlpReceiver::start();
    let otlp = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_base_url()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
    ];
    let mut server_env = otlp.to_vec();
    server_env.extend([
        ("HOST", "127.0.0.1".to_owned()),
        ("GRPC_PORT", "0".to_owned()),
        ("ADMIN_PORT", "0".to_owned()),
    ]);
    let server = Proc::start(env!("CARGO_BIN_EXE_grpc_server"), &server_env);
    let listening = server.line("grpc server listening", STARTUP_TIMEOUT);
    let (grpc, admin) = (
        addr(&listening, "grpc.addr"),
        addr(&listening, "admin.addr"),
    );

    let mut client_env = otlp.to_vec();
    client_env.push(("GRPC_TARGET", format!("http://{grpc}")));
    let mut client = Proc::start(env!("CARGO_BIN_EXE_grpc_client"), &client_env);
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let status = loop {
        if let Some(s) = client.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the client did not end; {}",
            client.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}; {}", client.output());
    let done = client.line("grpc client done", Duration::from_secs(1));
    let trace = done["trace_id"].as_str().expect("trace_id").to_owned();
    let correlation = done["correlation_id"]
        .as_str()
        .expect("correlation_id")
        .to_owned();

    // The server's metrics, once the calls ended on its side (the dropped
    // Watch stream ends there when the reset arrives, the slow call at its
    // deadline).
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let m = scrape(admin);
        let ended = m.contains(
            r#"rpc_method="grpc.health.v1.Health/Watch",rpc_response_status_code="CANCELLED""#,
        ) && m.contains(
            r#"rpc_method="grpc.health.v1.Health/Check",rpc_response_status_code="DEADLINE_EXCEEDED""#,
        );
        if ended || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        metrics.contains(r#"rpc_server_call_duration_seconds_count{rpc_system_name="grpc",rpc_method="grpc.health.v1.Health/Check",rpc_response_status_code="NOT_FOUND",error_type=""} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"rpc_method="grpc.health.v1.Health/Watch",rpc_response_status_code="CANCELLED",error_type=""} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"rpc_method="grpc.health.v1.Health/Check",rpc_response_status_code="DEADLINE_EXCEEDED",error_type="DEADLINE_EXCEEDED"} 1"#),
        "{metrics}"
    );

    // Stop the server: its shutdown flushes every span and line it has.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string())
        .status()
        .expect("cannot run kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut server = server;
    let exit = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop; {}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit}; {}", server.output());

    // 5 call spans on each side (the slow call reaches the server, which
    // holds it past the caller's deadline).
    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans: Vec<_> = receiver
            .spans()
            .into_iter()
            .filter(|s| s.trace_id() == trace)
            .collect();
        if of(&spans, "grpc-client", CLIENT).len() == 5
            && of(&spans, "grpc-server", SERVER).len() == 5
        {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "not one trace: {:#?}",
            spans
                .iter()
                .map(|s| (s.name().to_owned(), s.attributes()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let clients = of(&spans, "grpc-client", CLIENT);
    let servers = of(&spans, "grpc-server", SERVER);

    const CHECK: &str = "grpc.health.v1.Health/Check";
    const WATCH: &str = "grpc.health.v1.Health/Watch";
    // Every server span is the child of a client span of the other process.
    for s in &servers {
        assert!(
            clients
                .iter()
                .any(|c| Some(c.span_id()) == s.parent_span_id()),
            "{s:#?}"
        );
        assert_eq!(s.attr("rpc.system.name").as_deref(), Some("grpc"));
        assert_eq!(s.attr("server.port"), Some(grpc.port().to_string()));
    }
    // NOT_FOUND: the caller's problem for the server, an error for the client.
    assert_eq!(status_of(&servers, CHECK, "NOT_FOUND").status_code(), UNSET);
    assert_eq!(status_of(&clients, CHECK, "NOT_FOUND").status_code(), ERROR);
    // The dropped Watch stream: cancelled on both sides, never a success.
    assert_eq!(status_of(&servers, WATCH, "CANCELLED").status_code(), UNSET);
    assert_eq!(status_of(&clients, WATCH, "CANCELLED").status_code(), ERROR);
    // The call past its deadline: an error on both sides.
    let late = status_of(&servers, CHECK, "DEADLINE_EXCEEDED");
    assert_eq!(late.status_code(), ERROR, "{late:#?}");
    let late = status_of(&clients, CHECK, "DEADLINE_EXCEEDED");
    assert_eq!(late.status_code(), ERROR, "{late:#?}");
    assert_eq!(
        late.attr("error.type").as_deref(),
        Some("DEADLINE_EXCEEDED")
    );
    assert_eq!(
        late.attr("server.address").as_deref(),
        Some("127.0.0.1"),
        "{late:#?}"
    );

    // The server's access lines: one per call it saw, with the client's
    // correlation id and trace.
    // (The reader thread may still be draining the pipe of the exited process.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let access = loop {
        let lines: Vec<_> = server
            .json_lines()
            .into_iter()
            .filter(|l| l["message"] == "rpc finished")
            .collect();
        if lines.len() >= servers.len() || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(access.len(), servers.len(), "{}", server.output());
    for l in &access {
        assert_eq!(l["correlation_id"], correlation.as_str(), "{l}");
        assert_eq!(l["trace_id"], trace.as_str(), "{l}");
    }
}
