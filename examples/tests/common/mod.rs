//! The harness the examples' end-to-end tests share: the `service` binary as
//! a child process on loopback, its stdout and stderr lines, a plain HTTP
//! client, bounded polling.

#![allow(dead_code, reason = "each test binary uses a part of the harness")]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines a child wrote, shared with the reader threads.
#[derive(Default)]
pub(crate) struct Lines {
    pub(crate) lines: Mutex<Vec<String>>,
    pub(crate) changed: Condvar,
}

impl Lines {
    pub(crate) fn push(&self, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
        self.changed.notify_all();
    }

    pub(crate) fn snapshot(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until a line satisfies `pred`, up to `timeout`.
    pub(crate) fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(l) = g.iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            g = self
                .changed
                .wait_timeout(g, left.min(Duration::from_millis(100)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Like [`read_into`], but stops reading while `paused` is set: the child's
/// stdout pipe then fills up and its writes block, as with a stuck log
/// forwarder.
pub(crate) fn read_into_gated(
    stream: impl Read + Send + 'static,
    into: Arc<Lines>,
    paused: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(4096, stream);
        let mut line = String::new();
        loop {
            while paused.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => into.push(line.trim_end_matches('\n').to_owned()),
            }
        }
    });
}

pub(crate) fn read_into(stream: impl std::io::Read + Send + 'static, into: Arc<Lines>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(l) => into.push(l),
                Err(_) => break,
            }
        }
    });
}

/// The `service` binary running as a child process; killed on drop.
pub(crate) struct Service {
    pub(crate) child: Child,
    pub(crate) stdout: Arc<Lines>,
    pub(crate) stderr: Arc<Lines>,
    pub(crate) http: SocketAddr,
    pub(crate) admin: SocketAddr,
}

impl Service {
    pub(crate) fn start(env: &[(&str, &str)]) -> Service {
        Self::start_with(env, None)
    }

    /// [`start`](Self::start), with the stdout reader paused while
    /// `stdout_paused` is set.
    pub(crate) fn start_with(
        env: &[(&str, &str)],
        stdout_paused: Option<Arc<AtomicBool>>,
    ) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_service"));
        // The test decides the whole obs configuration.
        for (k, _) in std::env::vars() {
            if k.starts_with("OTEL_") || k.starts_with("OBS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("ADMIN_PORT", "0")
            .env_remove("PRICE_SERVICE_URL")
            .env_remove("DATABASE_PATH")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot spawn the service binary");
        let (stdout, stderr) = (Arc::new(Lines::default()), Arc::new(Lines::default()));
        let out = child.stdout.take().expect("piped stdout");
        match stdout_paused {
            Some(p) => read_into_gated(out, stdout.clone(), p),
            None => read_into(out, stdout.clone()),
        }
        read_into(child.stderr.take().expect("piped stderr"), stderr.clone());

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let listening = loop {
            if let Some(l) = stdout.wait_for(Duration::from_millis(200), |l| {
                json(l).is_some_and(|v| v["message"] == "service listening")
            }) {
                break json(&l).expect("checked above");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the service exited before listening ({status}); stdout:\n{}\nstderr:\n{}",
                    stdout.snapshot().join("\n"),
                    stderr.snapshot().join("\n")
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "no 'service listening' line after {STARTUP_TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
                    stdout.snapshot().join("\n"),
                    stderr.snapshot().join("\n")
                );
            }
        };
        let addr = |key: &str| -> SocketAddr {
            listening[key]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no address in {key:?} of the startup line: {listening}"))
        };
        let (http, admin) = (addr("http.addr"), addr("admin.addr"));
        Service {
            child,
            stdout,
            stderr,
            http,
            admin,
        }
    }

    pub(crate) fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub(crate) fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Every stdout line that is a JSON object.
    pub(crate) fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .snapshot()
            .iter()
            .filter_map(|l| json(l))
            .collect()
    }

    pub(crate) fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.snapshot().join("\n"),
            self.stderr.snapshot().join("\n")
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

pub(crate) fn json(line: &str) -> Option<Value> {
    serde_json::from_str::<Value>(line)
        .ok()
        .filter(Value::is_object)
}

/// A response, fully read.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) body: String,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A plain HTTP client (no obs layers: the test is the outside world).
pub(crate) struct Http {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub(crate) fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot build the test runtime");
        let client = {
            let _g = rt.enter();
            Client::builder(TokioExecutor::new()).build_http()
        };
        Self { rt, client }
    }

    pub(crate) fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let mut req = hyper::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .expect("valid request");
        let client = self.client.clone();
        self.rt
            .block_on(async move {
                tokio::time::timeout(REQUEST_TIMEOUT, async move {
                    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
                    let (parts, body) = resp.into_parts();
                    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                    Ok::<_, String>(Resp {
                        status: parts.status.as_u16(),
                        headers: parts.headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    })
                })
                .await
                .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?
            })
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    pub(crate) fn get(&self, url: &str) -> Resp {
        self.send("GET", url, &[], None)
    }
}

/// Polls `f` every 100 ms until it returns `Some`, up to `timeout`.
pub(crate) fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
