//! The Kubernetes manifest (`docs/k8s/deployment.yaml`) agrees with the
//! `service` example (`examples/src/service.rs`) and with the admin router:
//!
//! - the container sets `HOST=0.0.0.0` (the example binds loopback by
//!   default, which the kubelet's probes and Prometheus cannot reach);
//! - `PORT` and `ADMIN_PORT`, when set, and the `http` and `admin`
//!   containerPorts equal the example's `DEFAULT_PORT` and
//!   `DEFAULT_ADMIN_PORT`;
//! - the liveness, readiness and startup probes target the admin port at
//!   `/livez`, `/readyz` and `/startupz`, and the Prometheus annotations the
//!   admin port at `/metrics`; each path is answered by `obs.admin_router()`;
//! - `OBS_ADMIN_TOKEN` and any other variable with a sensitive name come from
//!   a Secret, never a literal.
//!
//! Changing one side only (a default in the example, a port or path in the
//! manifest) fails a test here. The manifest is read with a small YAML subset
//! parser (block and flow collections, plain and quoted scalars, comments),
//! which fails loudly on anything it does not support.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

fn read(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The defaults of the `service` example, read from its source.
#[derive(Debug)]
struct Defaults {
    host: String,
    port: u16,
    admin_port: u16,
}

/// The value of `const NAME: TYPE = VALUE;` in `src`, quotes removed.
fn const_value(src: &str, name: &str) -> String {
    let decl = format!("const {name}:");
    let lines: Vec<&str> = src
        .lines()
        .map(str::trim)
        .filter(|l| l.strip_prefix("pub ").unwrap_or(l).starts_with(&decl))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "examples/src/service.rs must declare `{decl} ... = ...;` exactly once, found {lines:?}"
    );
    let value = lines[0]
        .split_once('=')
        .and_then(|(_, v)| v.trim().strip_suffix(';'))
        .unwrap_or_else(|| panic!("cannot read the value of {name} from {:?}", lines[0]));
    value.trim().trim_matches('"').to_owned()
}

fn service_defaults() -> Defaults {
    let src = read("examples/src/service.rs");
    // The constants must be what the example actually falls back to.
    let compact: String = src.chars().filter(|c| !c.is_whitespace()).collect();
    for (usage, what) in [
        (
            r#"std::env::var("HOST").unwrap_or_else(|_|DEFAULT_HOST.into())"#,
            "HOST",
        ),
        (r#"env_parse("PORT",DEFAULT_PORT)"#, "PORT"),
        (
            r#"env_parse("ADMIN_PORT",DEFAULT_ADMIN_PORT)"#,
            "ADMIN_PORT",
        ),
    ] {
        assert!(
            compact.contains(usage),
            "examples/src/service.rs no longer reads {what} as `{usage}`: keep the default in \
             its DEFAULT_* constant (and update this test if the code moved)"
        );
    }
    let port = |name: &str| -> u16 {
        let v = const_value(&src, name);
        v.parse()
            .unwrap_or_else(|e| panic!("{name} = {v:?} is not a port: {e}"))
    };
    Defaults {
        host: const_value(&src, "DEFAULT_HOST"),
        port: port("DEFAULT_PORT"),
        admin_port: port("DEFAULT_ADMIN_PORT"),
    }
}

/// What the tests need from the manifest's one container.
#[derive(Debug)]
struct Container {
    /// `name` → the env entry (`value` or `valueFrom`).
    env: BTreeMap<String, Value>,
    /// containerPort `name` → number.
    ports: BTreeMap<String, u16>,
    /// `livenessProbe` etc. → the probe.
    probes: BTreeMap<String, Value>,
    /// The pod template's annotations.
    annotations: BTreeMap<String, String>,
}

impl Container {
    /// A probe's or annotation's port: a number, or the name of a containerPort.
    fn resolve_port(&self, port: &str) -> u16 {
        match port.parse() {
            Ok(n) => n,
            Err(_) => *self.ports.get(port).unwrap_or_else(|| {
                panic!("port {port:?} names no containerPort: {:?}", self.ports)
            }),
        }
    }

    fn env_value(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(|e| {
            e.get("value")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("env {name} has no literal value: {e}"))
        })
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| {
        v.get(k)
            .unwrap_or_else(|| panic!("the manifest has no {}", path.join(".")))
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => panic!("expected a scalar, found {other}"),
    }
}

fn container() -> Container {
    let doc = yaml::parse(&read("docs/k8s/deployment.yaml"))
        .unwrap_or_else(|e| panic!("docs/k8s/deployment.yaml: {e}"));
    assert_eq!(text(at(&doc, &["kind"])), "Deployment");
    let containers = at(&doc, &["spec", "template", "spec", "containers"])
        .as_array()
        .expect("containers is a list");
    assert_eq!(
        containers.len(),
        1,
        "this test expects one container (the service)"
    );
    let c = &containers[0];

    let mut env = BTreeMap::new();
    for e in at(c, &["env"]).as_array().expect("env is a list") {
        let name = text(at(e, &["name"]));
        assert!(
            env.insert(name.clone(), e.clone()).is_none(),
            "env {name} is set twice"
        );
    }
    let mut ports = BTreeMap::new();
    for p in at(c, &["ports"]).as_array().expect("ports is a list") {
        let name = text(at(p, &["name"]));
        let number = text(at(p, &["containerPort"]));
        let number: u16 = number
            .parse()
            .unwrap_or_else(|e| panic!("containerPort {number:?}: {e}"));
        assert!(
            ports.insert(name.clone(), number).is_none(),
            "port {name} is declared twice"
        );
    }
    let mut probes = BTreeMap::new();
    for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
        probes.insert(kind.to_owned(), at(c, &[kind]).clone());
    }
    let annotations = at(&doc, &["spec", "template", "metadata", "annotations"])
        .as_object()
        .expect("annotations is a mapping")
        .iter()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    Container {
        env,
        ports,
        probes,
        annotations,
    }
}

#[test]
fn env_binds_every_interface_and_keeps_the_default_ports() {
    let d = service_defaults();
    let c = container();
    assert_eq!(
        d.host, "127.0.0.1",
        "the example's default HOST changed; review HOST in the manifest"
    );
    assert_eq!(
        c.env_value("HOST"),
        Some("0.0.0.0"),
        "the container must set HOST=0.0.0.0: the example binds {} by default, \
         which probes and scrapes from outside the pod cannot reach",
        d.host
    );
    for (var, default) in [("PORT", d.port), ("ADMIN_PORT", d.admin_port)] {
        if let Some(v) = c.env_value(var) {
            assert_eq!(
                v,
                default.to_string(),
                "the manifest sets {var}={v}, the example's default is {default}"
            );
        }
    }
}

#[test]
fn container_ports_are_the_example_defaults() {
    let d = service_defaults();
    let c = container();
    assert_ne!(d.port, d.admin_port, "API and admin ports must differ");
    assert_eq!(
        c.ports.get("http"),
        Some(&d.port),
        "containerPort `http` must be the API port (DEFAULT_PORT {}): {:?}",
        d.port,
        c.ports
    );
    assert_eq!(
        c.ports.get("admin"),
        Some(&d.admin_port),
        "containerPort `admin` must be the admin port (DEFAULT_ADMIN_PORT {}): {:?}",
        d.admin_port,
        c.ports
    );
}

/// `(annotation or probe, port, path)` of everything that must reach the
/// admin router.
fn admin_targets(c: &Container) -> Vec<(String, u16, String)> {
    let mut out = Vec::new();
    for (kind, probe) in &c.probes {
        let port = c.resolve_port(&text(at(probe, &["httpGet", "port"])));
        out.push((kind.clone(), port, text(at(probe, &["httpGet", "path"]))));
    }
    let ann = |k: &str| {
        c.annotations
            .get(k)
            .unwrap_or_else(|| panic!("annotation {k} missing: {:?}", c.annotations))
            .clone()
    };
    assert_eq!(ann("prometheus.io/scrape"), "true");
    out.push((
        "prometheus.io annotations".into(),
        c.resolve_port(&ann("prometheus.io/port")),
        ann("prometheus.io/path"),
    ));
    out
}

#[test]
fn probes_and_scrape_use_the_admin_port_and_the_right_paths() {
    let d = service_defaults();
    let c = container();
    let expected: BTreeMap<&str, &str> = [
        // /healthz runs every check: a database outage would restart pods.
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/startupz"),
        ("prometheus.io annotations", "/metrics"),
    ]
    .into();
    let targets = admin_targets(&c);
    assert_eq!(targets.len(), expected.len());
    for (what, port, path) in &targets {
        assert_eq!(
            *port, d.admin_port,
            "{what} targets port {port}, the admin port is {}",
            d.admin_port
        );
        assert_eq!(Some(&path.as_str()), expected.get(what.as_str()), "{what}");
    }
}

#[tokio::test]
async fn the_admin_router_serves_every_manifest_path() {
    let c = container();
    let obs = obs::init(
        obs::Config::from_lookup(|_| None)
            .unwrap()
            .log(|l| l.writer(std::io::sink()))
            .install_global(false),
    )
    .unwrap();
    let router = obs.admin_router();
    for (what, _, path) in admin_targets(&c) {
        let resp = router
            .clone()
            .oneshot(Request::get(&path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(
            resp.status() != StatusCode::NOT_FOUND
                && resp.status() != StatusCode::METHOD_NOT_ALLOWED,
            "{what}: GET {path} answers {} on the admin router",
            resp.status()
        );
    }
    let _report = obs.shutdown(Duration::from_secs(2)).await;
}

#[test]
fn secrets_come_from_secret_refs() {
    let c = container();
    for (name, entry) in &c.env {
        if name != "OBS_ADMIN_TOKEN" && !obs::core::redact::is_sensitive_name(name) {
            continue;
        }
        assert!(
            entry.get("value").is_none(),
            "env {name} must not be a literal in the manifest"
        );
        let r = at(entry, &["valueFrom", "secretKeyRef"]);
        assert!(
            r.get("name").is_some() && r.get("key").is_some(),
            "env {name}: secretKeyRef needs name and key: {r}"
        );
    }
}

#[test]
fn the_yaml_subset_parser_reads_what_the_manifest_uses() {
    let doc = yaml::parse(
        "# comment\n\
         a: 1 # trailing\n\
         b: { c: \"x: y\", d: [1, 'it''s'] }\n\
         e:\n\
         - name: f\n\
         \x20 value: \"#not a comment\"\n\
         - { name: g, value: http://h:80/p }\n\
         i:\n\
         \x20 j: plain text\n\
         \x20 k.l/m: \"true\"\n",
    )
    .unwrap();
    let want = serde_json::json!({
        "a": "1",
        "b": { "c": "x: y", "d": ["1", "it's"] },
        "e": [
            { "name": "f", "value": "#not a comment" },
            { "name": "g", "value": "http://h:80/p" }
        ],
        "i": { "j": "plain text", "k.l/m": "true" }
    });
    assert_eq!(doc, want);
    for bad in [
        "a: |\n  text\n",
        "a: plain\n  continued\n",
        "a: { b: 1\n",
        "a: 1\na: 2\n",
    ] {
        assert!(yaml::parse(bad).is_err(), "accepted {bad:?}");
    }
}

/// A YAML subset: block mappings and sequences, flow mappings and sequences
/// on one line, plain, single- and double-quoted scalars, comments. Every
/// scalar is a string. Anything else (block scalars, multi-line values,
/// anchors, several documents) is an error, never a silent misreading.
mod yaml {
    use serde_json::{Map, Value};

    struct Line {
        no: usize,
        indent: usize,
        text: String,
    }

    pub(crate) fn parse(src: &str) -> Result<Value, String> {
        let mut lines = Vec::new();
        for (i, raw) in src.lines().enumerate() {
            let no = i + 1;
            let text = strip_comment(raw).trim_end();
            let content = text.trim_start();
            if content.is_empty() {
                continue;
            }
            let indent = text.len() - content.len();
            if text[..indent].contains('\t') {
                return Err(format!("line {no}: tab in indentation"));
            }
            if content == "---" || content == "..." || content.starts_with(['&', '*', '!', '%']) {
                return Err(format!("line {no}: unsupported YAML: {content}"));
            }
            lines.push(Line {
                no,
                indent,
                text: content.to_owned(),
            });
        }
        let mut p = Parser { lines, pos: 0 };
        let Some(first) = p.lines.first() else {
            return Ok(Value::Null);
        };
        let v = p.block(first.indent)?;
        match p.lines.get(p.pos) {
            Some(l) => Err(format!("line {}: unexpected indentation", l.no)),
            None => Ok(v),
        }
    }

    /// The line without a `#` comment (one at the start or after a space,
    /// outside quotes). A quote opens a quoted scalar only where one can
    /// start, so the apostrophe of `it's` opens nothing.
    fn strip_comment(line: &str) -> &str {
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for (i, ch) in line.char_indices() {
            match (quote, ch) {
                (None, '\'' | '"') if prev.is_whitespace() || "[{,:-".contains(prev) => {
                    quote = Some(ch);
                }
                (None, '#') if prev.is_whitespace() => return &line[..i],
                (Some('\''), '\'') => quote = None,
                (Some('"'), '"') if prev != '\\' => quote = None,
                _ => {}
            }
            prev = ch;
        }
        line
    }

    fn is_item(text: &str) -> bool {
        text == "-" || text.starts_with("- ")
    }

    /// `key: rest` of a block mapping entry; `None` when `text` is a value.
    fn split_key(text: &str) -> Result<Option<(String, &str)>, String> {
        if text.starts_with(['{', '[']) {
            return Ok(None);
        }
        if text.starts_with(['"', '\'']) {
            let mut f = Flow::new(text);
            let key = f.quoted()?;
            let rest = f.rest();
            return Ok(match rest.strip_prefix(':') {
                Some(r) if r.is_empty() || r.starts_with(' ') => Some((key, r.trim())),
                _ => None,
            });
        }
        let bytes = text.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            if b == b':' && bytes.get(i + 1).is_none_or(|n| *n == b' ') {
                return Ok(Some((text[..i].trim().to_owned(), text[i + 1..].trim())));
            }
        }
        Ok(None)
    }

    struct Parser {
        lines: Vec<Line>,
        pos: usize,
    }

    impl Parser {
        fn block(&mut self, indent: usize) -> Result<Value, String> {
            if is_item(&self.lines[self.pos].text) {
                self.seq(indent)
            } else {
                self.map(indent)
            }
        }

        /// After an entry: the next line must not be indented deeper.
        fn no_continuation(&self, indent: usize) -> Result<(), String> {
            match self.lines.get(self.pos) {
                Some(l) if l.indent > indent => Err(format!(
                    "line {}: unexpected indentation (multi-line values are not supported)",
                    l.no
                )),
                _ => Ok(()),
            }
        }

        fn seq(&mut self, indent: usize) -> Result<Value, String> {
            let mut out = Vec::new();
            while let Some(line) = self.lines.get(self.pos) {
                if line.indent != indent || !is_item(&line.text) {
                    break;
                }
                let no = line.no;
                let rest = line.text[1..].trim_start().to_owned();
                let column = indent + (line.text.len() - rest.len());
                if rest.is_empty() {
                    self.pos += 1;
                    match self.lines.get(self.pos) {
                        Some(next) if next.indent > indent => {
                            let inner = next.indent;
                            out.push(self.block(inner)?);
                        }
                        _ => out.push(Value::Null),
                    }
                } else if is_item(&rest) {
                    return Err(format!("line {no}: nested `- -` items are not supported"));
                } else if split_key(&rest)?.is_some() {
                    // A mapping that starts on the item's line, at its column.
                    self.lines[self.pos].indent = column;
                    self.lines[self.pos].text = rest;
                    out.push(self.map(column)?);
                } else {
                    self.pos += 1;
                    out.push(inline(&rest).map_err(|e| format!("line {no}: {e}"))?);
                }
                self.no_continuation(indent)?;
            }
            Ok(Value::Array(out))
        }

        fn map(&mut self, indent: usize) -> Result<Value, String> {
            let mut out = Map::new();
            while let Some(line) = self.lines.get(self.pos) {
                if line.indent != indent || is_item(&line.text) {
                    break;
                }
                let no = line.no;
                let text = line.text.clone();
                let (key, rest) = split_key(&text)?
                    .ok_or_else(|| format!("line {no}: expected `key: value`, found {text:?}"))?;
                self.pos += 1;
                let value = if rest.is_empty() {
                    match self.lines.get(self.pos) {
                        Some(next) if next.indent > indent => {
                            let inner = next.indent;
                            self.block(inner)?
                        }
                        // `key:` followed by `- item` at the key's indentation.
                        Some(next) if next.indent == indent && is_item(&next.text) => {
                            self.seq(indent)?
                        }
                        _ => Value::Null,
                    }
                } else if rest.starts_with(['|', '>']) {
                    return Err(format!("line {no}: block scalars are not supported"));
                } else {
                    inline(rest).map_err(|e| format!("line {no}: {e}"))?
                };
                if out.insert(key.clone(), value).is_some() {
                    return Err(format!("line {no}: duplicate key {key:?}"));
                }
                self.no_continuation(indent)?;
            }
            Ok(Value::Object(out))
        }
    }

    /// A value on one line: a scalar or a flow collection.
    fn inline(text: &str) -> Result<Value, String> {
        let mut f = Flow::new(text);
        let v = f.value(false)?;
        f.ws();
        match f.rest() {
            "" => Ok(v),
            rest => Err(format!("unexpected {rest:?} after a value")),
        }
    }

    struct Flow<'a> {
        s: &'a str,
        i: usize,
    }

    impl<'a> Flow<'a> {
        fn new(s: &'a str) -> Self {
            Flow { s, i: 0 }
        }

        fn rest(&self) -> &'a str {
            &self.s[self.i..]
        }

        fn peek(&self) -> Option<char> {
            self.rest().chars().next()
        }

        fn bump(&mut self) -> Option<char> {
            let c = self.peek()?;
            self.i += c.len_utf8();
            Some(c)
        }

        fn ws(&mut self) {
            while self.peek().is_some_and(char::is_whitespace) {
                self.bump();
            }
        }

        fn expect(&mut self, want: char) -> Result<(), String> {
            self.ws();
            match self.bump() {
                Some(c) if c == want => Ok(()),
                Some(c) => Err(format!("expected {want:?}, found {c:?}")),
                None => Err(format!(
                    "expected {want:?} before the end of the line (multi-line flow collections are not supported)"
                )),
            }
        }

        fn value(&mut self, in_flow: bool) -> Result<Value, String> {
            self.ws();
            match self.peek() {
                Some('{') => self.map(),
                Some('[') => self.seq(),
                Some('"' | '\'') => self.quoted().map(Value::String),
                _ => self.plain(in_flow).map(Value::String),
            }
        }

        fn map(&mut self) -> Result<Value, String> {
            self.expect('{')?;
            let mut out = Map::new();
            self.ws();
            if self.peek() == Some('}') {
                self.bump();
                return Ok(Value::Object(out));
            }
            loop {
                self.ws();
                let key = match self.peek() {
                    Some('"' | '\'') => self.quoted()?,
                    _ => self.plain(true)?,
                };
                self.expect(':')?;
                let value = self.value(true)?;
                if out.insert(key.clone(), value).is_some() {
                    return Err(format!("duplicate key {key:?}"));
                }
                self.ws();
                match self.bump() {
                    Some(',') => {}
                    Some('}') => return Ok(Value::Object(out)),
                    Some(c) => return Err(format!("expected ',' or '}}', found {c:?}")),
                    None => {
                        return Err(
                            "unclosed '{' (multi-line flow collections are not supported)".into(),
                        );
                    }
                }
            }
        }

        fn seq(&mut self) -> Result<Value, String> {
            self.expect('[')?;
            let mut out = Vec::new();
            self.ws();
            if self.peek() == Some(']') {
                self.bump();
                return Ok(Value::Array(out));
            }
            loop {
                out.push(self.value(true)?);
                self.ws();
                match self.bump() {
                    Some(',') => {}
                    Some(']') => return Ok(Value::Array(out)),
                    Some(c) => return Err(format!("expected ',' or ']', found {c:?}")),
                    None => {
                        return Err(
                            "unclosed '[' (multi-line flow collections are not supported)".into(),
                        );
                    }
                }
            }
        }

        fn quoted(&mut self) -> Result<String, String> {
            let q = self.bump().ok_or("expected a quote")?;
            let mut out = String::new();
            loop {
                match self.bump() {
                    None => return Err("unterminated quoted string".into()),
                    Some('\'') if q == '\'' => {
                        if self.peek() == Some('\'') {
                            self.bump();
                            out.push('\'');
                        } else {
                            return Ok(out);
                        }
                    }
                    Some('"') if q == '"' => return Ok(out),
                    Some('\\') if q == '"' => match self.bump() {
                        Some('"') => out.push('"'),
                        Some('\\') => out.push('\\'),
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        other => return Err(format!("unsupported escape \\{other:?}")),
                    },
                    Some(c) => out.push(c),
                }
            }
        }

        /// A plain scalar; inside a flow collection it ends at `,`, `]`, `}`
        /// or `: `.
        fn plain(&mut self, in_flow: bool) -> Result<String, String> {
            let start = self.i;
            while let Some(c) = self.peek() {
                if in_flow {
                    if matches!(c, ',' | ']' | '}') {
                        break;
                    }
                    let after = self.rest()[c.len_utf8()..].chars().next();
                    if c == ':'
                        && after.is_none_or(|a| a.is_whitespace() || matches!(a, ',' | ']' | '}'))
                    {
                        break;
                    }
                }
                self.bump();
            }
            let text = self.s[start..self.i].trim();
            if text.is_empty() {
                return Err(format!("expected a value at {:?}", self.rest()));
            }
            if !in_flow && (text.contains(": ") || text.ends_with(':')) {
                return Err(format!("{text:?}: a plain value must not contain `: `"));
            }
            Ok(text.to_owned())
        }
    }
}
