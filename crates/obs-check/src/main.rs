//! `obs-check URL [--admin URL] [--logs FILE|-] [--otlp-port PORT] [--format text|json]`
//!
//! Exit status: 0 when no rule failed, 1 when one did, 2 for a usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use obs_check::{Config, Logs, OtlpReceiver};

const USAGE: &str = "usage: obs-check URL [--admin URL] [--logs FILE|-] [--otlp-port PORT] [--format text|json]
                 [--id-header NAME] [--wait SECS] [--timeout SECS] [--max-series N] [--metrics-path PATH]

  URL              the service URL the checker requests (its path is the request target)
  --admin URL      base URL of /metrics and the probes (default: URL's host and port)
  --logs FILE|-    the service's JSON log lines: a file, or - for stdin
  --otlp-port PORT receive the service's spans and log records on this port (OTLP/HTTP protobuf,
                   POST /v1/traces and /v1/logs);
                   point the service's OTEL_EXPORTER_OTLP_ENDPOINT at http://HOST:PORT
  --otlp-host HOST address the receiver binds (default 127.0.0.1)
  --format F       text (default) or json
  --id-header NAME correlation id header (default x-correlation-id)
  --wait SECS      how long to wait for the requests' log lines and spans (default 5)
  --timeout SECS   deadline of one request (default 5; probes always get 1)
  --max-series N   series per metric family above which metrics.cardinality fails (default 1000)
  --metrics-path P path of the metrics endpoint under --admin (default /metrics)";

#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool: the report is its output"
)]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Some((config, json))) => {
            let report = obs_check::run(&config);
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("obs-check: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn secs(flag: &str, v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag} {v:?}: expected seconds between 0 and 3600"))
}

/// `None` for `--help`.
fn parse(args: &[String]) -> Result<Option<(Config, bool)>, String> {
    let mut url = None;
    let mut opts: Vec<(&str, &str)> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            flag if flag.starts_with("--") => {
                let (name, value) = match flag.split_once('=') {
                    Some((n, v)) => (n, v),
                    None => (
                        flag,
                        it.next()
                            .map(String::as_str)
                            .ok_or_else(|| format!("{flag} needs a value"))?,
                    ),
                };
                opts.push((name, value));
            }
            u if url.is_none() => url = Some(u),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let url = url.ok_or("missing URL")?;
    let mut config = Config::new(url).map_err(|e| e.to_string())?;
    let mut json = false;
    let mut otlp: Option<(String, u16)> = None;
    let mut otlp_host = "127.0.0.1".to_owned();
    for (name, v) in opts {
        match name {
            "--admin" => config.admin = obs_check::Url::parse(v).map_err(|e| e.to_string())?,
            "--logs" => {
                config.logs = if v == "-" {
                    Logs::Stdin
                } else {
                    Logs::File(PathBuf::from(v))
                }
            }
            "--otlp-port" => {
                let port = v
                    .parse()
                    .map_err(|_| format!("--otlp-port {v:?}: expected a port number"))?;
                otlp = Some((String::new(), port));
            }
            "--otlp-host" => otlp_host = v.to_owned(),
            "--format" => {
                json = match v {
                    "json" => true,
                    "text" => false,
                    _ => return Err(format!("--format {v:?}: expected text or json")),
                }
            }
            "--id-header" => {
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(format!("--id-header {v:?}: expected a header name"));
                }
                config.id_header = v.to_ascii_lowercase();
            }
            "--wait" => config.wait = secs(name, v)?,
            "--timeout" => config.timeout = secs(name, v)?,
            "--max-series" => {
                config.max_series = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--max-series {v:?}: expected a positive number"))?;
            }
            "--metrics-path" => {
                if !v.starts_with('/') {
                    return Err(format!(
                        "--metrics-path {v:?}: expected a path starting with /"
                    ));
                }
                config.metrics_path = v.to_owned();
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if let Some((_, port)) = otlp {
        let rx = OtlpReceiver::bind((otlp_host.as_str(), port))
            .map_err(|e| format!("--otlp-port {port}: cannot bind {otlp_host}:{port}: {e}"))?;
        config.otlp = Some(rx);
    }
    Ok(Some((config, json)))
}
