//! A runner for a real Prometheus server and `promtool` (Debian package
//! `prometheus`, installed when missing) to check and scrape exposition.
//!
//! - [`tools`] finds `promtool` and `prometheus` on the `PATH` (or in
//!   `/usr/bin`), and when either is missing runs `apt-get update` once and
//!   `apt-get install -y prometheus` (as root). When that is impossible it
//!   returns an error saying why — tests fail with it, they never skip.
//! - [`check_metrics`] runs `promtool check metrics` on exposition text.
//! - [`PrometheusServer::start`] runs a real server on a free loopback port
//!   scraping one target every second ([`PrometheusServer::start_with_rules`]
//!   with rule files loaded), and [`PrometheusServer::query`] asks its HTTP
//!   API.
//!
//! ```no_run
//! use obs_testing::prometheus::{PrometheusServer, check_metrics};
//! check_metrics("# HELP up_total Ups.\n# TYPE up_total counter\nup_total 1\n").unwrap();
//! let server = PrometheusServer::start("127.0.0.1:9100".parse().unwrap(), "/metrics").unwrap();
//! let series = server.wait_for("up_total", std::time::Duration::from_secs(30)).unwrap();
//! assert_eq!(series[0]["value"][1], "1");
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What went wrong while preparing or using Prometheus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrometheusError {
    /// `promtool`/`prometheus` are missing and could not be installed.
    #[error("prometheus tools are not installed and could not be installed: {0}")]
    Install(String),
    /// `promtool check metrics` reported problems.
    #[error(
        "promtool check metrics failed (exit status {status}):\n{output}\n--- input ---\n{input}"
    )]
    Check {
        /// promtool's exit status.
        status: i32,
        /// promtool's stdout and stderr.
        output: String,
        /// The checked text (truncated).
        input: String,
    },
    /// Running a process or talking to the server failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server did not become ready, or an API call failed.
    #[error("prometheus server: {0}")]
    Server(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PrometheusError {
    let context = context.into();
    move |source| PrometheusError::Io { context, source }
}

/// Paths of the two binaries of the Debian `prometheus` package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// `promtool`.
    pub promtool: PathBuf,
    /// The `prometheus` server.
    pub prometheus: PathBuf,
}

fn find(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

fn found() -> Option<Tools> {
    Some(Tools {
        promtool: find("promtool")?,
        prometheus: find("prometheus")?,
    })
}

static INSTALL: Mutex<Option<Tools>> = Mutex::new(None);

fn run(cmd: &mut Command, what: &str) -> Result<(), PrometheusError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io(format!("running {what}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(PrometheusError::Install(format!(
        "{what} exited with {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

/// Finds `promtool` and `prometheus`, installing the Debian package
/// `prometheus` when either is missing (`apt-get update` once, then
/// `apt-get install -y prometheus`; needs root). Safe to call from parallel
/// tests: the install runs once per process.
pub fn tools() -> Result<Tools, PrometheusError> {
    let mut cached = INSTALL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(t) = cached.as_ref() {
        return Ok(t.clone());
    }
    if let Some(t) = found() {
        *cached = Some(t.clone());
        return Ok(t);
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(io("running id -u"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err(PrometheusError::Install(
            "not running as root, so `apt-get install -y prometheus` cannot run; install the Debian package `prometheus` first".into(),
        ));
    }
    if find("apt-get").is_none() {
        return Err(PrometheusError::Install(
            "apt-get is not available on this machine".into(),
        ));
    }
    // Wait for a concurrent apt/dpkg (another test binary) rather than failing on its lock.
    let lock = ["-o", "DPkg::Lock::Timeout=600"];
    run(
        Command::new("apt-get").args(lock).args(["-q", "update"]),
        "apt-get update",
    )?;
    run(
        Command::new("apt-get")
            .args(lock)
            .args([
                "-q",
                "install",
                "-y",
                "--no-install-recommends",
                "prometheus",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "apt-get install -y prometheus",
    )?;
    // The package's postinst may start a system service on :9090; tests use
    // their own ports, so it does not matter whether it did.
    let t = found().ok_or_else(|| {
        PrometheusError::Install(
            "apt-get install succeeded but promtool/prometheus are still not found".into(),
        )
    })?;
    *cached = Some(t.clone());
    Ok(t)
}

/// Runs `promtool check metrics` on `text` (Prometheus text format 0.0.4).
/// Any parse error or lint problem is an error carrying promtool's output.
pub fn check_metrics(text: &str) -> Result<(), PrometheusError> {
    let tools = tools()?;
    let mut child = Command::new(&tools.promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("spawning promtool"))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| PrometheusError::Server("promtool has no stdin".into()))?;
    let input = text.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(io("waiting for promtool"))?;
    writer
        .join()
        .map_err(|_| PrometheusError::Server("promtool stdin writer panicked".into()))?
        .map_err(io("writing to promtool"))?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && output.trim().is_empty() {
        return Ok(());
    }
    let input: String = text.chars().take(4000).collect();
    Err(PrometheusError::Check {
        status: out.status.code().unwrap_or(-1),
        output,
        input,
    })
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> Result<u16, PrometheusError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    Ok(l.local_addr().map_err(io("reading the bound port"))?.port())
}

/// A real Prometheus server scraping one target, stopped (and its data
/// removed) on drop.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

static DIR_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl PrometheusServer {
    /// Starts Prometheus on a free loopback port, scraping `target` at
    /// `metrics_path` every second (job `obs`), with exemplar storage on,
    /// and waits (up to 60 s) until it is ready.
    pub fn start(target: SocketAddr, metrics_path: &str) -> Result<Self, PrometheusError> {
        Self::start_with_rules(target, metrics_path, &[])
    }

    /// [`start`](Self::start), with `rule_files` (recording and alerting
    /// rules) loaded; the server refuses to start when a file is invalid.
    /// Rules are evaluated at their group's `interval`, or every second.
    pub fn start_with_rules(
        target: SocketAddr,
        metrics_path: &str,
        rule_files: &[&Path],
    ) -> Result<Self, PrometheusError> {
        let tools = tools()?;
        let seq = DIR_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("obs-prometheus-{}-{seq}", std::process::id()));
        std::fs::create_dir_all(dir.join("data"))
            .map_err(io(format!("creating {}", dir.display())))?;
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: obs\n    metrics_path: {metrics_path:?}\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        if !rule_files.is_empty() {
            config.push_str("rule_files:\n");
            for f in rule_files {
                let f = f
                    .canonicalize()
                    .map_err(io(format!("finding the rule file {}", f.display())))?;
                config.push_str(&format!("  - {:?}\n", f.display().to_string()));
            }
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)
            .map_err(io(format!("writing {}", config_path.display())))?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::fs::File::create(dir.join("prometheus.log"))
            .map_err(io("creating the server log"))?;
        let log2 = log
            .try_clone()
            .map_err(io("cloning the server log handle"))?;
        let child = Command::new(&tools.prometheus)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--enable-feature=exemplar-storage")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io("spawning prometheus"))?;
        let mut server = Self { child, addr, dir };
        server.wait_ready(Duration::from_secs(60))?;
        Ok(server)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), PrometheusError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = http_get(self.addr, "/-/ready") {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(PrometheusError::Server(format!(
                    "exited ({status}) before it was ready; log:\n{}",
                    self.log()
                )));
            }
            if Instant::now() > deadline {
                return Err(PrometheusError::Server(format!(
                    "not ready on {} after {timeout:?}; log:\n{}",
                    self.addr,
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Where the server keeps its config and data.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `GET path` on the server's HTTP API, returning the parsed JSON body.
    pub fn api(&self, path_and_query: &str) -> Result<serde_json::Value, PrometheusError> {
        let (status, body) = http_get(self.addr, path_and_query)?;
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            PrometheusError::Server(format!(
                "{path_and_query}: status {status}, body is not JSON ({e})"
            ))
        })?;
        if status != 200 || json["status"] != "success" {
            return Err(PrometheusError::Server(format!(
                "{path_and_query}: status {status}: {json}"
            )));
        }
        Ok(json)
    }

    /// An instant query; returns `data.result` (a vector of `{metric, value}`).
    pub fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>, PrometheusError> {
        let json = self.api(&format!("/api/v1/query?query={}", urlencode(promql)))?;
        Ok(json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Polls [`query`](Self::query) until it returns at least one series.
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
    ) -> Result<Vec<serde_json::Value>, PrometheusError> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.query(promql)?;
            if !r.is_empty() {
                return Ok(r);
            }
            if Instant::now() > deadline {
                let targets = self
                    .api("/api/v1/targets")
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                return Err(PrometheusError::Server(format!(
                    "no series for {promql:?} after {timeout:?}; targets: {targets}; log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Exemplars stored for `promql` over the last hour (`data` of `/api/v1/query_exemplars`).
    pub fn query_exemplars(&self, promql: &str) -> Result<Vec<serde_json::Value>, PrometheusError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let json = self.api(&format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            urlencode(promql),
            now.saturating_sub(3600),
            now + 60
        ))?;
        Ok(json["data"].as_array().cloned().unwrap_or_default())
    }

    /// The scrape targets' state (`data.activeTargets`), e.g. to read `lastError`.
    pub fn targets(&self) -> Result<Vec<serde_json::Value>, PrometheusError> {
        let json = self.api("/api/v1/targets")?;
        Ok(json["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        // Best effort: the child is ours, and its data dir is ours.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A minimal HTTP/1.0 GET over a fresh loopback connection.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), PrometheusError> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(io(format!("connecting to {addr}")))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io("setting a read timeout"))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(io(format!("sending GET {path}")))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .map_err(io(format!("reading GET {path}")))?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| PrometheusError::Server(format!("GET {path}: malformed response")))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            PrometheusError::Server(format!("GET {path}: bad status line in {head:?}"))
        })?;
    Ok((status, buf[split + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promtool_accepts_valid_and_rejects_invalid() {
        check_metrics("# HELP a_total A counter.\n# TYPE a_total counter\na_total 1\n").unwrap();
        let err = check_metrics("# TYPE a counter\na{b=\"} 1\n").unwrap_err();
        assert!(matches!(err, PrometheusError::Check { .. }), "{err}");
    }

    #[test]
    fn urlencodes() {
        assert_eq!(urlencode("up{job=\"a b\"}"), "up%7Bjob%3D%22a%20b%22%7D");
    }
}
