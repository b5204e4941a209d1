//! TCP connect and HTTP GET checks, on plain `tokio::net::TcpStream`.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::check::Check;
use crate::error::Error;
use crate::result::CheckResult;

/// The longest status line the HTTP check reads before giving up.
const MAX_STATUS_LINE: usize = 8 * 1024;

/// Passes when a TCP connection to `addr` (`host:port`, resolved on each
/// run) can be opened. Reports `responseTime` (ms); `componentType` is
/// `component`.
///
/// ```
/// let check = obs_health::checks::tcp("redis", "127.0.0.1:6379").unwrap();
/// assert_eq!(check.name(), "redis");
/// assert!(obs_health::checks::tcp("redis", "no-port").is_err());
/// ```
pub fn tcp(name: impl Into<String>, addr: impl Into<String>) -> Result<Check, Error> {
    let addr = addr.into();
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
        _ => return Err(Error::InvalidAddress(addr)),
    }
    Ok(Check::new(name, move || {
        let addr = addr.clone();
        async move {
            let start = Instant::now();
            let res = TcpStream::connect(addr.as_str()).await;
            let ms = obs_core::units::duration_ms(start.elapsed());
            match res {
                Ok(_) => CheckResult::pass(),
                Err(e) => CheckResult::fail(format!("connect to {addr}: {e}")),
            }
            .observe("responseTime", ms, Some("ms"))
        }
    })
    .component_type("component"))
}

/// Passes when an HTTP/1.1 `GET url` answers with a 2xx or 3xx status, as a
/// Kubernetes `httpGet` probe does. Only `http://` is supported (health
/// endpoints of dependencies are normally reached inside the cluster; use a
/// [`Check::new`] closure with your own client for TLS). Only the status
/// line is read. Reports `responseTime` (ms); `componentType` is
/// `component`.
///
/// ```
/// let check = obs_health::checks::http_get("auth", "http://auth:8080/readyz").unwrap();
/// assert_eq!(check.name(), "auth");
/// assert!(obs_health::checks::http_get("auth", "https://auth/readyz").is_err());
/// ```
pub fn http_get(name: impl Into<String>, url: &str) -> Result<Check, Error> {
    let bad = |reason: &str| Error::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(bad(&format!(
                "scheme {other:?} is not supported, only http"
            )));
        }
        None => return Err(bad("no scheme, expected http://host[:port]/path")),
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| host.clone());
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: obs-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let target = format!("{host}:{port}");
    let url = url.to_owned();
    Ok(Check::new(name, move || {
        let (request, target, url) = (request.clone(), target.clone(), url.clone());
        async move {
            let start = Instant::now();
            let res = get_status(&target, request.as_bytes()).await;
            let ms = obs_core::units::duration_ms(start.elapsed());
            match res {
                Ok(code) if (200..400).contains(&code) => CheckResult::pass(),
                Ok(code) => CheckResult::fail(format!("GET {url}: status {code}")),
                Err(e) => CheckResult::fail(format!("GET {url}: {e}")),
            }
            .observe("responseTime", ms, Some("ms"))
        }
    })
    .component_type("component"))
}

async fn get_status(target: &str, request: &[u8]) -> Result<u16, String> {
    let mut stream = TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            return parse_status_line(&buf[..end]);
        }
        if buf.len() > MAX_STATUS_LINE {
            return Err(format!(
                "no status line in the first {MAX_STATUS_LINE} bytes"
            ));
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before a status line".to_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_status_line(line: &[u8]) -> Result<u16, String> {
    let text = String::from_utf8_lossy(line);
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(format!(
            "malformed status line {:?}",
            text.chars().take(80).collect::<String>()
        ));
    }
    code.parse()
        .map_err(|_| format!("malformed status code {code:?}"))
}

#[cfg(test)]
mod tests {
    use super::parse_status_line;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 204 No Content"), Ok(204));
        assert_eq!(parse_status_line(b"HTTP/1.0 503"), Ok(503));
        assert!(parse_status_line(b"SSH-2.0-OpenSSH").is_err());
        assert!(parse_status_line(b"HTTP/1.1 20x OK").is_err());
    }
}
