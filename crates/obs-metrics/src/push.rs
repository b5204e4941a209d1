//! Pushgateway push for batch jobs.

use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{Error, Format, Registry, Result};

/// A Prometheus Pushgateway (`http://` only) to push a batch job's metrics to.
///
/// ```no_run
/// # async fn run() -> Result<(), obs_metrics::Error> {
/// let registry = obs_metrics::Registry::new();
/// registry.gauge("nightly_rows_processed", "Rows processed.")?.set(1200);
/// let gateway = obs_metrics::Pushgateway::new("http://127.0.0.1:9091")?;
/// gateway.push(&registry, "nightly", &[("instance", "db-1")]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Pushgateway {
    base: String,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Pushgateway {
    /// A gateway at `url` (e.g. `http://pushgateway:9091`, a path prefix is kept).
    pub fn new(url: &str) -> Result<Self> {
        let bad = |reason: &str| Error::PushUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        if uri.authority().is_none() {
            return Err(bad("the url has no host"));
        }
        if uri.query().is_some() {
            return Err(bad("the url must not have a query"));
        }
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            timeout: Duration::from_secs(10),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// How long one push may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL of a grouping key: `/metrics/job/<job>{/<label>/<value>}`,
    /// values with `/` (or empty) in the `@base64` form.
    pub fn group_url(&self, job: &str, grouping: &[(&str, &str)]) -> Result<String> {
        if job.is_empty() {
            return Err(Error::PushUrl {
                url: self.base.clone(),
                reason: "the job name is empty".into(),
            });
        }
        let mut url = format!("{}/metrics", self.base);
        push_segment(&mut url, "job", job);
        for (k, v) in grouping {
            crate::text::validate_label_name(job, k)?;
            if *k == "job" {
                return Err(Error::PushUrl {
                    url: self.base.clone(),
                    reason: "`job` is set by the job argument".into(),
                });
            }
            push_segment(&mut url, k, v);
        }
        Ok(url)
    }

    /// Replaces every metric of the group with the registry's (HTTP `PUT`).
    pub async fn push(
        &self,
        registry: &Registry,
        job: &str,
        grouping: &[(&str, &str)],
    ) -> Result<()> {
        self.send(Method::PUT, Some(registry), job, grouping).await
    }

    /// Replaces only the metrics of the same names in the group (HTTP `POST`).
    pub async fn push_add(
        &self,
        registry: &Registry,
        job: &str,
        grouping: &[(&str, &str)],
    ) -> Result<()> {
        self.send(Method::POST, Some(registry), job, grouping).await
    }

    /// Deletes the group (HTTP `DELETE`).
    pub async fn delete(&self, job: &str, grouping: &[(&str, &str)]) -> Result<()> {
        self.send(Method::DELETE, None, job, grouping).await
    }

    async fn send(
        &self,
        method: Method,
        registry: Option<&Registry>,
        job: &str,
        grouping: &[(&str, &str)],
    ) -> Result<()> {
        let url = self.group_url(job, grouping)?;
        let transport = |reason: String| Error::PushTransport {
            url: url.clone(),
            reason,
        };
        let body = registry.map(|r| r.encode(Format::Text)).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(&url)
            .header(CONTENT_TYPE, Format::Text.content_type())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::PushUrl {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            Ok::<_, Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {:?}", self.timeout)))??;
        if status.is_success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(1024)])
            .trim()
            .to_owned();
        Err(Error::PushRejected {
            url,
            status: status.as_u16(),
            body: text,
        })
    }
}

fn push_segment(url: &mut String, key: &str, value: &str) {
    url.push('/');
    url.push_str(key);
    if value.is_empty() || value.contains('/') || value.bytes().any(|b| !is_plain(b)) {
        url.push_str("@base64/");
        if value.is_empty() {
            url.push('=');
        } else {
            base64url(url, value.as_bytes());
        }
    } else {
        url.push('/');
        url.push_str(value);
    }
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn base64url(out: &mut String, bytes: &[u8]) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_urls() {
        let g = Pushgateway::new("http://gw:9091/").unwrap();
        assert_eq!(
            g.group_url("nightly", &[("instance", "db-1")]).unwrap(),
            "http://gw:9091/metrics/job/nightly/instance/db-1"
        );
        assert_eq!(
            g.group_url("a/b", &[("path", "")]).unwrap(),
            "http://gw:9091/metrics/job@base64/YS9i/path@base64/="
        );
        assert!(g.group_url("", &[]).is_err());
        assert!(g.group_url("j", &[("__x", "1")]).is_err());
        assert!(Pushgateway::new("https://gw").is_err());
        assert!(Pushgateway::new("not a url").is_err());
    }
}
