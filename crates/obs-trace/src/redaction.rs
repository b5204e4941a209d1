//! Secrets never leave in a span: the exporter thread runs every finished
//! span through the redaction rules before any exporter — OTLP over HTTP or
//! gRPC, an SDK exporter behind [`SdkExporter`](crate::sdk::SdkExporter), a
//! custom [`SpanExporter`](crate::export::SpanExporter) — sees it.
//!
//! Doing it there rather than on the application thread keeps the request
//! path at its cost (a sampled span is a few hundred nanoseconds; the scan
//! of its path, user agent and names would add to every request), while no
//! byte of a span is written anywhere before the scan: the queue between the
//! two threads is process memory.

use std::borrow::Cow;
use std::collections::HashMap;

use obs_core::Redactor;
use obs_core::names::field::REDACTED;

use crate::raw::{RawStr, RawValue, Recording};
use crate::span::{FinishedSpan, KeyValue, Status, Value};

/// Field names are a small, fixed set (they come from callsites); their
/// verdicts are cached on the exporter thread. The bound only guards
/// against names built at run time.
const NAME_CACHE_MAX: usize = 4096;

/// The rules and a cache of name verdicts: what the exporter thread applies
/// to every span. A custom pipeline that hands [`FinishedSpan`]s to
/// exporters of its own can apply the same step.
///
/// ```
/// use obs_trace::redaction::SpanRedactor;
/// let mut r = SpanRedactor::new(obs_core::Redactor::new());
/// # let _ = &mut r;
/// ```
#[derive(Debug)]
pub struct SpanRedactor {
    rules: Redactor,
    names: HashMap<Box<str>, bool>,
    /// Verdicts for `&'static str` keys (every key a callsite gives), found
    /// by the key's address and length: the same address and length are the
    /// same immutable text. A small open-addressed table, so a key costs a
    /// few instructions instead of hashing its text; a key that finds its
    /// neighbourhood full falls back to `names`.
    by_address: Box<[(usize, usize, bool); ADDRESS_SLOTS]>,
}

/// Slots of the address table: more than the distinct keys of a service's
/// usual spans.
const ADDRESS_SLOTS: usize = 1 << ADDRESS_BITS;
const ADDRESS_BITS: u32 = 8;
/// Slots a key may take from its home slot on.
const PROBES: usize = 8;
/// No key has this length: marks an empty slot.
const EMPTY_SLOT: (usize, usize, bool) = (0, usize::MAX, false);

impl SpanRedactor {
    /// Applies `rules`.
    pub fn new(rules: Redactor) -> Self {
        Self {
            rules,
            names: HashMap::new(),
            by_address: Box::new([EMPTY_SLOT; ADDRESS_SLOTS]),
        }
    }

    #[inline]
    #[allow(
        clippy::ptr_arg,
        reason = "whether the key is borrowed for 'static is what is being asked"
    )]
    fn sensitive_key(&mut self, key: &Cow<'static, str>) -> bool {
        let Cow::Borrowed(name) = key else {
            return self.sensitive(key);
        };
        let address = name.as_ptr() as usize;
        // Fibonacci hashing of the address, then up to `PROBES` slots: two
        // keys whose home slots collide both stay in the table (a
        // direct-mapped table let such a pair evict each other on every
        // span, and both went through `names` each time).
        // On `u64`, so that the constant fits on 32-bit targets too.
        let home = (((address ^ name.len()) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            >> (u64::BITS - ADDRESS_BITS)) as usize;
        let mut free = None;
        for i in 0..PROBES {
            let slot = (home + i) % ADDRESS_SLOTS;
            let (a, len, verdict) = self.by_address[slot];
            if a == address && len == name.len() {
                return verdict;
            }
            if len == EMPTY_SLOT.1 && free.is_none() {
                free = Some(slot);
            }
        }
        let verdict = self.sensitive(name);
        // A full neighbourhood keeps its keys (callsite keys are a fixed
        // set: evicting would let two of them replace each other on every
        // span); this key is then found through `names`.
        if let Some(slot) = free {
            self.by_address[slot] = (address, name.len(), verdict);
        }
        verdict
    }

    fn sensitive(&mut self, name: &str) -> bool {
        if let Some(&v) = self.names.get(name) {
            return v;
        }
        let v = self.rules.is_sensitive_name(name);
        if self.names.len() >= NAME_CACHE_MAX {
            self.names.clear();
        }
        self.names.insert(name.into(), v);
        v
    }

    /// Redacts the span's name, attribute values (every value of an
    /// attribute with a sensitive name), event names and attributes, and
    /// status message in place.
    pub fn redact(&mut self, span: &mut FinishedSpan) {
        redact_cow(&self.rules, &mut span.name);
        self.attributes(&mut span.attributes);
        for event in &mut span.events {
            redact_cow(&self.rules, &mut event.name);
            self.attributes(&mut event.attributes);
        }
        if let Status::Error(msg) = &mut span.status {
            redact_cow(&self.rules, msg);
        }
    }

    /// [`redact`](Self::redact) on a recording exported as it is: the same
    /// rules on the same text, read as bytes; a string is turned back into
    /// `&str` only when the cheap pre-check says a rule may change it.
    pub(crate) fn redact_recording(&mut self, rec: &mut Recording) {
        if self.rules.may_change(rec.name_bytes()) {
            let name = match &rec.name {
                Some(n) => n.as_str(),
                None => rec.meta_name,
            };
            if let Cow::Owned(clean) = self.rules.redact(name) {
                rec.name = Some(RawStr::Heap(clean));
            }
        }
        for (key, value) in rec.attributes.iter_mut() {
            if self.sensitive_key(&Cow::Borrowed(*key)) {
                *value = RawValue::Str(RawStr::new(REDACTED));
            } else if let RawValue::Str(s) = value
                && self.rules.may_change(s.as_bytes())
                && let Cow::Owned(clean) = self.rules.redact(s.as_str())
            {
                *s = RawStr::Heap(clean);
            }
        }
        for event in &mut rec.events {
            redact_cow(&self.rules, &mut event.name);
            self.attributes(&mut event.attributes);
        }
        if let Status::Error(msg) = &mut rec.status {
            redact_cow(&self.rules, msg);
        }
    }

    fn attributes(&mut self, attrs: &mut [KeyValue]) {
        for kv in attrs {
            if self.sensitive_key(&kv.key) {
                kv.value = Value::Str(Cow::Borrowed(REDACTED));
            } else if let Value::Str(s) = &mut kv.value {
                redact_cow(&self.rules, s);
            }
        }
    }
}

fn redact_cow(rules: &Redactor, s: &mut Cow<'static, str>) {
    if let Cow::Owned(clean) = rules.redact(s) {
        *s = Cow::Owned(clean);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::SpanEvent;

    fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }

    fn span(name: &'static str) -> FinishedSpan {
        FinishedSpan::for_test(name)
    }

    #[test]
    fn names_values_events_and_status_are_redacted() {
        let mut span =
            span("GET /reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abc123def456ghi789");
        span.attributes = vec![
            kv("url.path", "/x/AKIAIOSFODNN7EXAMPLE"),
            kv(
                "user_agent.original",
                "curl/8 ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            ),
            kv("api_key", 1234i64),
            kv("http.route", "/items/{id}"),
        ];
        span.events = vec![SpanEvent {
            name: "login password=hunter2".into(),
            time: std::time::SystemTime::now(),
            attributes: vec![kv("token", "abc")],
        }];
        span.status = Status::Error("bad Bearer mF_9.B5f-4.1JqM".into());
        let mut r = SpanRedactor::new(Redactor::new());
        r.redact(&mut span);
        assert_eq!(span.name, "GET /reset/[REDACTED]");
        assert_eq!(span.attributes[0].value.to_string(), "/x/[REDACTED]");
        assert_eq!(span.attributes[1].value.to_string(), "curl/8 [REDACTED]");
        assert_eq!(span.attributes[2].value.to_string(), "[REDACTED]");
        assert_eq!(span.attributes[3].value.to_string(), "/items/{id}");
        assert_eq!(span.events[0].name, "login password=[REDACTED]");
        assert_eq!(span.events[0].attributes[0].value.to_string(), "[REDACTED]");
        assert!(matches!(&span.status, Status::Error(m) if m == "bad Bearer [REDACTED]"));
    }

    #[test]
    fn key_verdicts_hold_by_address_and_by_text() {
        let mut r = SpanRedactor::new(Redactor::new());
        // Many distinct static keys, so that slots are shared and replaced.
        let keys: Vec<&'static str> = (0..400)
            .map(|i| &*Box::leak(format!("field_{i}").into_boxed_str()))
            .chain(["api_key", "password", "http.route"])
            .collect();
        for round in 0..3 {
            for &k in &keys {
                let mut s = span("x");
                s.attributes = vec![
                    kv(k, "plain"),
                    KeyValue {
                        key: Cow::Owned(k.to_owned()),
                        value: "plain".into(),
                    },
                ];
                r.redact(&mut s);
                let want = if k == "api_key" || k == "password" {
                    REDACTED
                } else {
                    "plain"
                };
                assert_eq!(s.attributes[0].value.to_string(), want, "{k} round {round}");
                assert_eq!(
                    s.attributes[1].value.to_string(),
                    want,
                    "{k} owned round {round}"
                );
            }
        }
    }

    /// The keys of a span of usual size all stay in the address table
    /// (found without hashing their text), wherever their addresses put
    /// their home slots.
    #[test]
    fn a_span_s_keys_all_stay_in_the_address_table() {
        for attempt in 0..200 {
            let mut r = SpanRedactor::new(Redactor::new());
            let keys: Vec<&'static str> = (0..24)
                .map(|i| &*Box::leak(format!("k{attempt}_{i}").into_boxed_str()))
                .collect();
            let mut s = span("x");
            s.attributes = keys.iter().map(|&k| kv(k, "v")).collect();
            r.redact(&mut s);
            for &k in &keys {
                let found = r
                    .by_address
                    .iter()
                    .any(|&(a, len, _)| a == k.as_ptr() as usize && len == k.len());
                assert!(found, "{k} fell out of the table (attempt {attempt})");
            }
        }
    }
}
