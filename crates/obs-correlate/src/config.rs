//! The policy: which headers to read, whether to trust them, how long an id
//! may be, how new ids look, and whether a `traceparent` may supply one.

use std::fmt;

use obs_core::error::CorrelationIdError;
use obs_core::names::header;
use obs_core::{Carrier, CorrelationId, IdFormat, SpanId, TraceFlags, TraceId, is_lower_hex};

use crate::error::{Error, preview};

/// Where a request's correlation id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// Taken from a valid incoming header (or carrier entry).
    Incoming,
    /// Taken from the trace id of a valid incoming `traceparent`.
    Traceparent,
    /// Generated: nothing usable came in.
    Generated,
    /// Generated because the incoming id was invalid; the rejected value is
    /// neither kept, echoed nor logged.
    Replaced,
    /// Generated because the policy trusts no incoming id (public edge),
    /// although one was sent.
    Untrusted,
}

/// Why an incoming id was rejected. Its `Display` never contains the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// obs-core's validation failed (empty, over 128 bytes, a byte outside
    /// the safe set `[A-Za-z0-9._~:/+=@-]`).
    Invalid(CorrelationIdError),
    /// Valid for obs-core but longer than the configured maximum.
    TooLong {
        /// Length of the rejected value in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The header was sent more than once, so which value is meant is ambiguous.
    Repeated,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Invalid(e) => fmt::Display::fmt(e, f),
            Rejection::TooLong { len, max } => {
                write!(
                    f,
                    "the value is {len} bytes long, the configured maximum is {max}"
                )
            }
            Rejection::Repeated => f.write_str("the header was sent more than once"),
        }
    }
}

/// The outcome of applying a [`Config`] to incoming headers or a carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The id to use for the work.
    pub id: CorrelationId,
    /// Where it came from.
    pub source: Source,
    /// Index into [`Config::header_names`] of the header that supplied or
    /// was rejected for the id.
    pub(crate) header: Option<usize>,
    /// Why the incoming id was rejected, when `source` is [`Source::Replaced`].
    pub rejection: Option<Rejection>,
}

impl Resolution {
    /// The name of the header that supplied the id (or was rejected), if any.
    pub fn header<'c>(&self, config: &'c Config) -> Option<&'c str> {
        self.header
            .and_then(|i| config.names.get(i))
            .map(String::as_str)
    }
}

/// What a lookup of one field found.
pub(crate) enum Lookup<'a, V: ?Sized> {
    Absent,
    One(&'a V),
    #[cfg_attr(
        not(feature = "tower"),
        allow(dead_code, reason = "only HTTP header maps can repeat a field")
    )]
    Repeated,
}

/// The correlation policy shared by the server layer and carrier extraction.
///
/// Defaults: read `x-correlation-id`, then `x-request-id`; trust incoming
/// ids; accept up to 128 bytes; generate UUID v4; do not take the id from
/// `traceparent`; use the current span for the id when one is active;
/// store the id in the request's extensions.
///
/// ```
/// use obs_core::IdFormat;
/// use obs_correlate::Config;
/// let config = Config::new()
///     .headers(["x-correlation-id", "x-request-id", "x-amzn-trace-id"])?
///     .max_len(64)?
///     .format(IdFormat::UuidV7)
///     .accept_traceparent(true);
/// assert_eq!(config.header_names()[2], "x-amzn-trace-id");
/// # Ok::<(), obs_correlate::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) names: Vec<String>,
    #[cfg(feature = "tower")]
    pub(crate) header_names: Vec<http::HeaderName>,
    pub(crate) trust_incoming: bool,
    pub(crate) max_len: usize,
    pub(crate) format: IdFormat,
    pub(crate) accept_traceparent: bool,
    pub(crate) always_new_span: bool,
    pub(crate) span_opened_inside: bool,
    pub(crate) request_extension: bool,
}

impl Default for Config {
    fn default() -> Self {
        let names = vec![
            header::X_CORRELATION_ID.to_owned(),
            header::X_REQUEST_ID.to_owned(),
        ];
        Self {
            #[cfg(feature = "tower")]
            header_names: vec![
                http::HeaderName::from_static(header::X_CORRELATION_ID),
                http::HeaderName::from_static(header::X_REQUEST_ID),
            ],
            names,
            trust_incoming: true,
            max_len: CorrelationId::MAX_LEN,
            format: IdFormat::UuidV4,
            accept_traceparent: false,
            always_new_span: false,
            span_opened_inside: false,
            request_extension: true,
        }
    }
}

/// Environment variable: comma-separated header names, read in order.
pub const ENV_HEADERS: &str = "OBS_CORRELATION_HEADERS";
/// Environment variable: `true` to trust incoming ids, `false` to always generate.
pub const ENV_TRUST_INCOMING: &str = "OBS_CORRELATION_TRUST_INCOMING";
/// Environment variable: longest accepted incoming id, `1..=128`.
pub const ENV_MAX_LEN: &str = "OBS_CORRELATION_MAX_LEN";
/// Environment variable: format of new ids, `uuidv4`, `uuidv7` or `hex128`.
pub const ENV_FORMAT: &str = "OBS_CORRELATION_FORMAT";
/// Environment variable: `true` to take the id from `traceparent` when none is given.
pub const ENV_ACCEPT_TRACEPARENT: &str = "OBS_CORRELATION_ACCEPT_TRACEPARENT";

impl Config {
    /// Most header names a config reads.
    pub const MAX_HEADERS: usize = 8;

    /// The default policy (see the type docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// The default policy overridden by the `OBS_CORRELATION_*` environment
    /// variables ([`ENV_HEADERS`], [`ENV_TRUST_INCOMING`], [`ENV_MAX_LEN`],
    /// [`ENV_FORMAT`], [`ENV_ACCEPT_TRACEPARENT`]).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`
    /// (for tests and for configuration sources other than the process
    /// environment).
    ///
    /// ```
    /// use obs_correlate::Config;
    /// let config = Config::from_lookup(|k| match k {
    ///     "OBS_CORRELATION_TRUST_INCOMING" => Some("false".into()),
    ///     "OBS_CORRELATION_HEADERS" => Some("x-request-id, x-trace".into()),
    ///     _ => None,
    /// })?;
    /// assert!(!config.trusts_incoming());
    /// assert_eq!(config.header_names(), ["x-request-id", "x-trace"]);
    ///
    /// let err = Config::from_lookup(|k| (k == "OBS_CORRELATION_MAX_LEN").then(|| "lots".into()))
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("OBS_CORRELATION_MAX_LEN"));
    /// assert!(err.to_string().contains("\"lots\""));
    /// # Ok::<(), obs_correlate::Error>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut c = Self::default();
        if let Some(v) = lookup(ENV_HEADERS) {
            c = c
                .headers(v.split(',').map(str::trim))
                .map_err(|e| Error::Env {
                    var: ENV_HEADERS,
                    reason: e.to_string(),
                })?;
        }
        if let Some(v) = lookup(ENV_TRUST_INCOMING) {
            c.trust_incoming = parse_bool(ENV_TRUST_INCOMING, &v)?;
        }
        if let Some(v) = lookup(ENV_MAX_LEN) {
            let n = v.trim().parse::<usize>().map_err(|_| Error::Env {
                var: ENV_MAX_LEN,
                reason: format!(
                    "{} is not a number in 1..={}",
                    preview(&v),
                    CorrelationId::MAX_LEN
                ),
            })?;
            c = c.max_len(n).map_err(|e| Error::Env {
                var: ENV_MAX_LEN,
                reason: e.to_string(),
            })?;
        }
        if let Some(v) = lookup(ENV_FORMAT) {
            c.format = v.parse().map_err(|_| Error::Env {
                var: ENV_FORMAT,
                reason: format!("{} is not one of uuidv4, uuidv7, hex128", preview(&v)),
            })?;
        }
        if let Some(v) = lookup(ENV_ACCEPT_TRACEPARENT) {
            c.accept_traceparent = parse_bool(ENV_ACCEPT_TRACEPARENT, &v)?;
        }
        Ok(c)
    }

    /// The header names to read, in order; the first is also the one the id
    /// is echoed under and forwarded in. Names are case-insensitive (stored
    /// lowercase); 1 to [`MAX_HEADERS`](Self::MAX_HEADERS) of them.
    pub fn headers<I, S>(mut self, names: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        for name in names {
            let name = name.as_ref();
            let valid = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid {
                return Err(Error::HeaderName {
                    name: preview(name),
                });
            }
            out.push(name.to_ascii_lowercase());
        }
        if out.is_empty() || out.len() > Self::MAX_HEADERS {
            return Err(Error::HeaderCount {
                count: out.len(),
                max: Self::MAX_HEADERS,
            });
        }
        #[cfg(feature = "tower")]
        {
            let mut names = Vec::with_capacity(out.len());
            for n in &out {
                names.push(
                    http::HeaderName::from_bytes(n.as_bytes())
                        .map_err(|_| Error::HeaderName { name: preview(n) })?,
                );
            }
            self.header_names = names;
        }
        self.names = out;
        Ok(self)
    }

    /// Whether to use ids that come in (`true`, the default) or to generate
    /// one for every request (`false`, for public edges where clients must
    /// not choose the ids that appear in your logs). When `false`,
    /// `traceparent` is not used either.
    pub fn trust_incoming(mut self, trust: bool) -> Self {
        self.trust_incoming = trust;
        self
    }

    /// The longest incoming id accepted, `1..=128` bytes (obs-core's limit).
    /// Longer ids are replaced.
    pub fn max_len(mut self, max: usize) -> Result<Self, Error> {
        if !(1..=CorrelationId::MAX_LEN).contains(&max) {
            return Err(Error::MaxLen {
                value: max,
                max: CorrelationId::MAX_LEN,
            });
        }
        self.max_len = max;
        Ok(self)
    }

    /// How generated ids look (default UUID v4).
    pub fn format(mut self, format: IdFormat) -> Self {
        self.format = format;
        self
    }

    /// When no correlation header comes in, take the trace id of a valid
    /// W3C `traceparent` as the correlation id (32 lowercase hex characters),
    /// so a request's id equals its trace id across services that only
    /// propagate trace context. Off by default. The header is parsed strictly:
    /// an invalid `traceparent` (which restarts the trace) gives no id.
    pub fn accept_traceparent(mut self, accept: bool) -> Self {
        self.accept_traceparent = accept;
        self
    }

    /// By default the server layer records the id on the current `tracing`
    /// span when one is active (the server span an outer trace layer has
    /// entered) and creates a `request` span only otherwise. Set this when
    /// the current span may be wider than one request (for example a span
    /// per connection), so the layer always creates its own span.
    pub fn always_new_span(mut self, always: bool) -> Self {
        self.always_new_span = always;
        self
    }

    /// Set when the layer that opens the request's span runs *inside* this
    /// one (obs-trace's server layer, or any layer whose `tracing` layer
    /// takes [`IdRecord::take_next_span_correlation`](obs_core::IdRecord::take_next_span_correlation);
    /// obs-trace's and obs-log's do): the id is handed to the next span
    /// opened on the thread while the inner service's `call` runs, written
    /// into that span's record as it is created, instead of being recorded
    /// on the current span after looking it up; the layer opens no
    /// `request` span of its own. obs's facade sets it when its trace
    /// pillar is on. Off by default. It wins over
    /// [`always_new_span`](Self::always_new_span): the span opened inside
    /// is the request's own, and a `request` span opened outside it would
    /// not be its parent (the server span continues the incoming trace or
    /// starts one of its own).
    ///
    /// The debug line about a rejected incoming id is written before that
    /// span exists: it carries the new correlation id (through
    /// `IdRecord::in_thread_scope`), not the request's trace ids.
    pub fn span_opened_inside(mut self, inside: bool) -> Self {
        self.span_opened_inside = inside;
        self
    }

    /// Whether the server layer also stores the id in the request's
    /// extensions, where `req.extensions().get::<CorrelationId>()` finds it
    /// (on by default).
    ///
    /// [`from_request`](crate::from_request), the axum `Correlation`
    /// extractor and the client layer find the id without it while the
    /// request is served, through [`current`](crate::current). The
    /// extension is for code that reads the id off a request handed out of
    /// the request's task without [`spawn`](crate::spawn) or
    /// [`scope`](crate::scope), or that reads the extension itself. It
    /// costs two heap allocations per request (`http`'s boxed extension
    /// value, and the extension map growing past the router's entries);
    /// obs's facade turns it off.
    pub fn request_extension(mut self, store: bool) -> Self {
        self.request_extension = store;
        self
    }

    /// Whether the id is stored in the request's extensions
    /// ([`request_extension`](Self::request_extension)).
    pub fn stores_request_extension(&self) -> bool {
        self.request_extension
    }

    /// The header names read, in order (lowercase).
    pub fn header_names(&self) -> &[String] {
        &self.names
    }

    /// Whether incoming ids are used.
    pub fn trusts_incoming(&self) -> bool {
        self.trust_incoming
    }

    /// The longest incoming id accepted.
    pub fn max_length(&self) -> usize {
        self.max_len
    }

    /// The format of generated ids.
    pub fn id_format(&self) -> IdFormat {
        self.format
    }

    /// Whether `traceparent`'s trace id is accepted.
    pub fn accepts_traceparent(&self) -> bool {
        self.accept_traceparent
    }

    /// Applies the policy to a carrier (a job payload or message metadata),
    /// reading the configured names and `traceparent` from it.
    ///
    /// ```
    /// use obs_core::Carrier;
    /// use obs_correlate::{Config, Source};
    /// let mut job = Carrier::new();
    /// job.insert("x-request-id", "job-42")?;
    /// let r = Config::new().resolve_carrier(&job);
    /// assert_eq!((r.id.as_str(), r.source), ("job-42", Source::Incoming));
    ///
    /// job.insert("x-request-id", "not valid!")?;
    /// let r = Config::new().resolve_carrier(&job);
    /// assert_eq!(r.source, Source::Replaced);
    /// assert_ne!(r.id.as_str(), "not valid!");
    /// # Ok::<(), obs_core::Error>(())
    /// ```
    pub fn resolve_carrier(&self, carrier: &Carrier) -> Resolution {
        let get = |name: &str| match carrier.get(name) {
            Some(v) => Lookup::One(v),
            None => Lookup::Absent,
        };
        self.resolve_with(|i| get(&self.names[i]), || get(header::TRACEPARENT))
            .0
    }

    /// Applies the policy to HTTP headers (what the server layer does).
    ///
    /// ```
    /// use obs_correlate::{Config, Source};
    /// let mut h = http::HeaderMap::new();
    /// h.insert("x-correlation-id", "abc".parse().unwrap());
    /// let r = Config::new().resolve_headers(&h);
    /// assert_eq!((r.id.as_str(), r.source), ("abc", Source::Incoming));
    /// let r = Config::new().trust_incoming(false).resolve_headers(&h);
    /// assert_eq!(r.source, Source::Untrusted);
    /// ```
    #[cfg(feature = "tower")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    pub fn resolve_headers(&self, headers: &http::HeaderMap) -> Resolution {
        self.resolve_header_map(headers).0
    }

    /// [`resolve_headers`](Self::resolve_headers), also returning the
    /// incoming header value when it supplied the id (so the server layer
    /// reuses it instead of copying the id).
    #[cfg(feature = "tower")]
    pub(crate) fn resolve_header_map<'h>(
        &self,
        headers: &'h http::HeaderMap,
    ) -> (Resolution, Option<&'h http::HeaderValue>) {
        fn get<'a>(
            h: &'a http::HeaderMap,
            name: impl http::header::AsHeaderName,
        ) -> Lookup<'a, http::HeaderValue> {
            let mut all = h.get_all(name).into_iter();
            match (all.next(), all.next()) {
                (None, _) => Lookup::Absent,
                (Some(v), None) => Lookup::One(v),
                (Some(_), Some(_)) => Lookup::Repeated,
            }
        }
        // Up to `SCANNED` configured names are found in one pass over the
        // headers (a lookup by name hashes the name and probes the map once
        // per name, and an absent id means looking every name up).
        const SCANNED: usize = 4;
        // A long header list (a browser's) costs more to walk than to probe
        // once per name.
        const SCAN_HEADERS_MAX: usize = 8;
        let names = &self.header_names;
        if names.len() > SCANNED || headers.keys_len() > SCAN_HEADERS_MAX {
            return self.resolve_with(
                |i| get(headers, &names[i]),
                || get(headers, header::TRACEPARENT),
            );
        }
        let mut found: [Lookup<'h, http::HeaderValue>; SCANNED] =
            [const { Lookup::Absent }; SCANNED];
        for (name, value) in headers {
            if let Some(i) = names.iter().position(|n| n == name) {
                found[i] = match found[i] {
                    Lookup::Absent => Lookup::One(value),
                    _ => Lookup::Repeated,
                };
            }
        }
        self.resolve_with(
            |i| std::mem::replace(&mut found[i], Lookup::Absent),
            || get(headers, header::TRACEPARENT),
        )
    }

    /// The policy over any lookup of fields by index of the configured names.
    pub(crate) fn resolve_with<'a, V: AsRef<[u8]> + ?Sized>(
        &self,
        mut by_index: impl FnMut(usize) -> Lookup<'a, V>,
        traceparent: impl FnOnce() -> Lookup<'a, V>,
    ) -> (Resolution, Option<&'a V>) {
        let generated = |source, header, rejection| {
            let id = CorrelationId::generate(self.format);
            (
                Resolution {
                    id,
                    source,
                    header,
                    rejection,
                },
                None,
            )
        };
        for i in 0..self.names.len() {
            let value = match by_index(i) {
                Lookup::Absent => continue,
                _ if !self.trust_incoming => return generated(Source::Untrusted, Some(i), None),
                Lookup::Repeated => {
                    return generated(Source::Replaced, Some(i), Some(Rejection::Repeated));
                }
                Lookup::One(v) => v,
            };
            let raw = value;
            let value = value.as_ref();
            // Length first: a megabyte of header is rejected without a scan.
            if value.len() > self.max_len && value.len() <= CorrelationId::MAX_LEN {
                let r = Rejection::TooLong {
                    len: value.len(),
                    max: self.max_len,
                };
                return generated(Source::Replaced, Some(i), Some(r));
            }
            return match CorrelationId::parse_bytes(value) {
                Ok(id) => {
                    let r = Resolution {
                        id,
                        source: Source::Incoming,
                        header: Some(i),
                        rejection: None,
                    };
                    (r, Some(raw))
                }
                Err(obs_core::Error::CorrelationId(e)) => {
                    generated(Source::Replaced, Some(i), Some(Rejection::Invalid(e)))
                }
                Err(_) => generated(
                    Source::Replaced,
                    Some(i),
                    Some(Rejection::Invalid(CorrelationIdError::Empty)),
                ),
            };
        }
        if self.accept_traceparent
            && self.trust_incoming
            && let Lookup::One(tp) = traceparent()
            && let Some(trace_id) = trace_id_of(tp.as_ref())
        {
            let r = Resolution {
                id: CorrelationId::from_trace_id(trace_id),
                source: Source::Traceparent,
                header: None,
                rejection: None,
            };
            return (r, None);
        }
        generated(Source::Generated, None, None)
    }
}

fn parse_bool(var: &'static str, v: &str) -> Result<bool, Error> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::Env {
            var,
            reason: format!("{} is not true or false", preview(v)),
        }),
    }
}

/// The trace id of a W3C `traceparent`, parsed strictly: lowercase hex,
/// version `ff` forbidden, version `00` exactly 55 bytes, later versions at
/// least 55 bytes with a `-` after the flags, non-zero trace and parent ids.
pub(crate) fn trace_id_of(tp: &[u8]) -> Option<TraceId> {
    if tp.len() < 55 || tp[2] != b'-' || tp[35] != b'-' || tp[52] != b'-' {
        return None;
    }
    let version = &tp[..2];
    if !version.iter().all(|&b| is_lower_hex(b)) || version == b"ff" {
        return None;
    }
    if version == b"00" && tp.len() != 55 {
        return None;
    }
    if tp.len() > 55 && tp[55] != b'-' {
        return None;
    }
    let trace_id = TraceId::from_hex(&tp[3..35]).ok()?;
    SpanId::from_hex(&tp[36..52]).ok()?;
    TraceFlags::from_hex(&tp[53..55]).ok()?;
    Some(trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "tower")]
    proptest::proptest! {
        /// The one pass over a request's headers resolves exactly as looking
        /// each configured name up does, repeats and order included, for
        /// one to six names (past four it looks names up) and up to 20
        /// distinct headers (past eight it looks names up).
        #[test]
        fn one_pass_over_headers_resolves_as_lookups_do(
            n in 1usize..=6,
            sent in proptest::collection::vec((0usize..8, proptest::prop_oneof!["[a-z0-9-]{1,12}", "bad value!"]), 0..8),
            fillers in 0usize..=12,
        ) {
            let pool = ["x-a", "x-b", "x-c", "x-d", "x-e", "x-f", "accept", "host"];
            let config = Config::new().headers(pool[..n].iter().copied()).unwrap();
            let mut headers = http::HeaderMap::new();
            for i in 0..fillers {
                headers.append(
                    http::HeaderName::try_from(format!("x-filler-{i}")).unwrap(),
                    http::HeaderValue::from_static("1"),
                );
            }
            for (i, v) in &sent {
                headers.append(pool[*i], v.parse().unwrap());
            }
            let (ours, value) = config.resolve_header_map(&headers);
            let get = |name: &http::HeaderName| {
                let mut all = headers.get_all(name).into_iter();
                match (all.next(), all.next()) {
                    (None, _) => Lookup::Absent,
                    (Some(v), None) => Lookup::One(v),
                    (Some(_), Some(_)) => Lookup::Repeated,
                }
            };
            let (want, want_value) = config.resolve_with(
                |i| get(&config.header_names[i]),
                || get(&http::HeaderName::from_static(header::TRACEPARENT)),
            );
            proptest::prop_assert_eq!(ours.source, want.source);
            proptest::prop_assert_eq!(ours.header, want.header);
            proptest::prop_assert_eq!(ours.rejection, want.rejection);
            proptest::prop_assert_eq!(value, want_value);
            if want.source == Source::Incoming {
                proptest::prop_assert_eq!(ours.id, want.id);
            }
        }
    }

    fn look(v: Option<&[u8]>) -> Lookup<'_, [u8]> {
        v.map_or(Lookup::Absent, Lookup::One)
    }

    fn resolve(config: &Config, values: &[Option<&[u8]>], tp: Option<&[u8]>) -> Resolution {
        config
            .resolve_with(|i| look(values.get(i).copied().flatten()), || look(tp))
            .0
    }

    #[test]
    fn first_present_header_decides() {
        let c = Config::new();
        let r = resolve(&c, &[None, Some(b"req-1")], None);
        assert_eq!(
            (r.id.as_str(), r.source, r.header(&c)),
            ("req-1", Source::Incoming, Some("x-request-id"))
        );
        // An invalid first header is replaced, not skipped in favour of the second.
        let r = resolve(&c, &[Some(b"a b"), Some(b"req-1")], None);
        assert_eq!(r.source, Source::Replaced);
        assert_ne!(r.id.as_str(), "req-1");
        assert_eq!(r.header(&c), Some("x-correlation-id"));
    }

    #[test]
    fn rejections_are_typed_and_never_hold_the_value() {
        let c = Config::new().max_len(8).unwrap();
        let cases: &[(&[u8], Rejection)] = &[
            (b"123456789", Rejection::TooLong { len: 9, max: 8 }),
            (
                &[b'a'; 129],
                Rejection::Invalid(CorrelationIdError::TooLong { len: 129 }),
            ),
            (
                b"a\tb",
                Rejection::Invalid(CorrelationIdError::ForbiddenByte {
                    position: 1,
                    byte: b'\t',
                }),
            ),
            (
                "é".as_bytes(),
                Rejection::Invalid(CorrelationIdError::ForbiddenByte {
                    position: 0,
                    byte: 0xc3,
                }),
            ),
            (b"", Rejection::Invalid(CorrelationIdError::Empty)),
        ];
        for (input, want) in cases {
            let r = resolve(&c, &[Some(input)], None);
            assert_eq!(r.source, Source::Replaced, "{input:?}");
            assert_eq!(r.rejection, Some(*want), "{input:?}");
            assert!(!r.rejection.unwrap().to_string().contains("aaaa"));
        }
        let big = vec![b'x'; 1 << 20];
        let r = resolve(&c, &[Some(&big)], None);
        assert_eq!(
            r.rejection,
            Some(Rejection::Invalid(CorrelationIdError::TooLong {
                len: 1 << 20
            }))
        );
        assert_eq!(r.id.len(), 36);
    }

    #[test]
    fn untrusted_edge_always_generates() {
        let c = Config::new().trust_incoming(false).accept_traceparent(true);
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let r = resolve(&c, &[Some(b"abc")], Some(tp));
        assert_eq!(r.source, Source::Untrusted);
        assert_ne!(r.id.as_str(), "abc");
        let r = resolve(&c, &[None], Some(tp));
        assert_eq!(r.source, Source::Generated);
    }

    #[test]
    fn traceparent_supplies_the_id_only_when_valid() {
        let c = Config::new().accept_traceparent(true);
        let good: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let r = resolve(&c, &[None, None], Some(good));
        assert_eq!(
            (r.id.as_str(), r.source),
            ("4bf92f3577b34da6a3ce929d0e0e4736", Source::Traceparent)
        );
        // A header id wins over traceparent.
        assert_eq!(
            resolve(&c, &[Some(b"x")], Some(good)).source,
            Source::Incoming
        );
        // Off by default.
        assert_eq!(
            resolve(&Config::new(), &[None], Some(good)).source,
            Source::Generated
        );
        let future: &[u8] =
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like";
        assert_eq!(
            trace_id_of(future).map(|t| t.to_string()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let bad: &[&[u8]] = &[
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            b"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ];
        for tp in bad {
            assert_eq!(trace_id_of(tp), None, "{}", String::from_utf8_lossy(tp));
            assert_eq!(resolve(&c, &[None], Some(tp)).source, Source::Generated);
        }
    }

    #[test]
    fn configuration_errors() {
        assert!(matches!(
            Config::new().headers(["bad name"]),
            Err(Error::HeaderName { .. })
        ));
        assert!(matches!(
            Config::new().headers(Vec::<String>::new()),
            Err(Error::HeaderCount { count: 0, .. })
        ));
        assert!(matches!(
            Config::new().headers(vec!["a"; 20]),
            Err(Error::HeaderCount { count: 20, .. })
        ));
        assert!(matches!(
            Config::new().max_len(0),
            Err(Error::MaxLen { value: 0, .. })
        ));
        assert!(matches!(
            Config::new().max_len(129),
            Err(Error::MaxLen { value: 129, .. })
        ));
        let c = Config::new().headers(["X-Request-ID"]).unwrap();
        assert_eq!(c.header_names(), ["x-request-id"]);
    }

    #[test]
    fn env_values_are_checked() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = Config::from_lookup(env(&[
            (ENV_FORMAT, "hex128"),
            (ENV_MAX_LEN, "40"),
            (ENV_ACCEPT_TRACEPARENT, "yes"),
        ]))
        .unwrap();
        assert_eq!(
            (c.id_format(), c.max_length(), c.accepts_traceparent()),
            (IdFormat::Hex128, 40, true)
        );
        for (pairs, var) in [
            (&[(ENV_FORMAT, "snowflake")][..], ENV_FORMAT),
            (&[(ENV_TRUST_INCOMING, "maybe")][..], ENV_TRUST_INCOMING),
            (&[(ENV_MAX_LEN, "500")][..], ENV_MAX_LEN),
            (&[(ENV_HEADERS, "ok, not ok")][..], ENV_HEADERS),
        ] {
            let err = Config::from_lookup(env(pairs)).unwrap_err();
            assert!(
                matches!(&err, Error::Env { var: v, .. } if *v == var),
                "{err}"
            );
            assert!(err.to_string().contains(var), "{err}");
        }
    }
}
