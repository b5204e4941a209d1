//! A small HTTP/1.1 client over `std::net::TcpStream`: one request per
//! connection (`Connection: close`), a deadline for the whole exchange, a
//! bounded response body. The checker talks to the service like any client,
//! and needs nothing more.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest response body read; a larger one is an error, not a truncation.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Largest response head (status line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// Why a URL or an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not `http://host[:port][/path][?query]`.
    Url(String),
    /// No connection could be made.
    Connect(String),
    /// No complete answer within the deadline.
    Timeout(Duration),
    /// The answer is not valid HTTP/1.1 (or too large).
    Protocol(String),
    /// Reading or writing failed.
    Io(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(m) => write!(f, "invalid URL: {m}"),
            Self::Connect(m) => write!(f, "cannot connect: {m}"),
            Self::Timeout(d) => write!(f, "no complete answer within {} ms", d.as_millis()),
            Self::Protocol(m) => write!(f, "invalid HTTP answer: {m}"),
            Self::Io(m) => write!(f, "I/O error: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host as written (brackets kept for IPv6), used in `Host:`.
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl Url {
    /// Parses `http://host[:port][/path][?query]`. `https` is refused with a
    /// clear error: the checker runs next to the service, on plain HTTP.
    pub fn parse(s: &str) -> Result<Self, HttpError> {
        let rest = s.strip_prefix("http://").ok_or_else(|| {
            if s.starts_with("https://") {
                HttpError::Url(format!(
                    "{s}: https is not supported; point obs-check at the service's plain HTTP port"
                ))
            } else {
                HttpError::Url(format!("{s}: expected http://host[:port][/path]"))
            }
        })?;
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(HttpError::Url(format!(
                "{s}: expected a host (and no user info)"
            )));
        }
        let (host, port) = if let Some(end) = authority.strip_prefix('[').and_then(|a| a.find(']'))
        {
            let host = &authority[..end + 2];
            match &authority[end + 2..] {
                "" => (host, 80),
                p => (host, parse_port(s, p.strip_prefix(':').unwrap_or(p))?),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, parse_port(s, p)?),
                None => (authority, 80),
            }
        };
        if host.is_empty() {
            return Err(HttpError::Url(format!("{s}: empty host")));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            target,
        })
    }

    /// The same host and port with another target (`/metrics`, …).
    pub fn with_target(&self, target: &str) -> Self {
        Self {
            host: self.host.clone(),
            port: self.port,
            target: target.to_owned(),
        }
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    fn addrs(&self) -> Result<Vec<SocketAddr>, HttpError> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        (host, self.port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(|e| HttpError::Connect(format!("{}: {e}", self.host)))
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}:{}{}", self.host, self.port, self.target)
    }
}

fn parse_port(url: &str, p: &str) -> Result<u16, HttpError> {
    p.parse()
        .map_err(|_| HttpError::Url(format!("{url}: invalid port {p:?}")))
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding removed).
    pub body: Vec<u8>,
    /// From connect to the last byte.
    pub elapsed: Duration,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header named `name`.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The media type of `Content-Type`, lowercased, without parameters.
    pub fn media_type(&self) -> String {
        self.header("content-type")
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request: `GET`/`POST` … to `url` with `headers` (raw bytes, so that
/// the checker can send values a strict client library would refuse), all
/// within `timeout`.
pub fn request(
    method: &str,
    url: &Url,
    headers: &[(&str, &[u8])],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, HttpError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(HttpError::Timeout(timeout))
    };
    let mut last = None;
    let mut stream = None;
    for addr in url.addrs()? {
        match TcpStream::connect_timeout(&addr, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(HttpError::Timeout(timeout));
            }
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    let mut stream = stream.ok_or_else(|| {
        HttpError::Connect(last.unwrap_or_else(|| format!("{} resolves to nothing", url.host)))
    })?;
    let _ = stream.set_nodelay(true);

    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(url.target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    head.extend_from_slice(url.host.as_bytes());
    if url.port != 80 {
        head.extend_from_slice(format!(":{}", url.port).as_bytes());
    }
    head.extend_from_slice(b"\r\nConnection: close\r\nUser-Agent: obs-check/");
    head.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (k, v) in headers {
        head.extend_from_slice(k.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v);
        head.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(body);
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| HttpError::Io(e.to_string()))?;
    stream.write_all(&head).map_err(|e| io_err(e, timeout))?;

    // Read until the server closes (we asked it to), the framing says the
    // body is complete, or the deadline passes.
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(resp) = parse_response(&buf, false)? {
            return Ok(Response {
                elapsed: started.elapsed(),
                ..resp
            });
        }
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| HttpError::Io(e.to_string()))?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                return match parse_response(&buf, true)? {
                    Some(resp) => Ok(Response {
                        elapsed: started.elapsed(),
                        ..resp
                    }),
                    None => Err(HttpError::Protocol(
                        "connection closed before a complete answer".into(),
                    )),
                };
            }
            Ok(n) => {
                if buf.len() + n > MAX_HEAD + MAX_BODY {
                    return Err(HttpError::Protocol(format!(
                        "answer larger than {MAX_BODY} bytes"
                    )));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e, timeout)),
        }
    }
}

fn io_err(e: std::io::Error, timeout: Duration) -> HttpError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            HttpError::Timeout(timeout)
        }
        _ => HttpError::Io(e.to_string()),
    }
}

/// Finds the end of the head (`\r\n\r\n`).
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parses a complete response from `buf`; `None` while more bytes are
/// needed. `eof`: the peer closed, so a body without framing ends here.
fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, HttpError> {
    let Some(end) = head_end(buf) else {
        if buf.len() > MAX_HEAD {
            return Err(HttpError::Protocol("response head too large".into()));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end - 4])
        .map_err(|_| HttpError::Protocol("response head is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::Protocol(format!(
            "status line {:?}",
            crate::report::cut(status_line, 60)
        )));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| HttpError::Protocol(format!("status line {status_line:?}")))?;
    let headers = parse_headers(lines)?;
    let rest = &buf[end..];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        Some(Vec::new())
    } else if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        dechunk(rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| HttpError::Protocol(format!("content-length {len:?}")))?;
        if len > MAX_BODY {
            return Err(HttpError::Protocol(format!(
                "content-length {len} is over {MAX_BODY}"
            )));
        }
        (rest.len() >= len).then(|| rest[..len].to_vec())
    } else {
        eof.then(|| rest.to_vec())
    };
    Ok(body.map(|body| Response {
        status,
        headers,
        body,
        elapsed: Duration::ZERO,
    }))
}

/// Parses header lines; names are lowercased.
pub(crate) fn parse_headers<'a>(
    lines: impl Iterator<Item = &'a str>,
) -> Result<Vec<(String, String)>, HttpError> {
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| HttpError::Protocol(format!("header line {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    Ok(headers)
}

/// Removes chunked framing; `None` while incomplete.
pub(crate) fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_line = std::str::from_utf8(&rest[..line_end])
            .map_err(|_| HttpError::Protocol("chunk size is not text".into()))?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| HttpError::Protocol(format!("chunk size {size_hex:?}")))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers, then the final CRLF.
            return Ok(rest.windows(2).position(|w| w == b"\r\n").map(|_| out));
        }
        if out.len() + size > MAX_BODY {
            return Err(HttpError::Protocol(format!("body over {MAX_BODY} bytes")));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:8080/items?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 8080, "/items?x=1")
        );
        assert_eq!(u.path(), "/items");
        let u = Url::parse("http://localhost").unwrap();
        assert_eq!((u.port, u.target.as_str()), (80, "/"));
        let u = Url::parse("http://[::1]:9464").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 9464));
        let u = Url::parse("http://h:1?q").unwrap();
        assert_eq!(u.target, "/?q");
        assert!(matches!(Url::parse("https://h"), Err(HttpError::Url(m)) if m.contains("https")));
        assert!(Url::parse("ftp://h").is_err());
        assert!(Url::parse("http://h:99999").is_err());
        assert!(Url::parse("http://u@h").is_err());
        assert!(Url::parse("http://:80").is_err());
    }

    #[test]
    fn responses() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.header("x-a")),
            (200, &b"ok"[..], Some("b"))
        );
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok", false)
                .unwrap()
                .is_none()
        );
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n1;x=y\r\n!\r\n0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.body, b"ok!");
        let r = parse_response(b"HTTP/1.1 200 OK\r\n\r\nuntil eof", true)
            .unwrap()
            .unwrap();
        assert_eq!(r.body, b"until eof");
        assert!(parse_response(b"SSH-2.0\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
    }
}
