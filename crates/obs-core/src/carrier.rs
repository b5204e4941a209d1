//! The context carrier: the few string pairs that move a request's context
//! across a process boundary (HTTP headers, job payloads, message metadata).

use crate::error::{Error, preview};
use crate::names::header;

/// A small, bounded map of lowercase keys to string values: `traceparent`,
/// `tracestate`, `baggage`, `x-correlation-id` and whatever else a propagator
/// writes.
///
/// Keys are case-insensitive (stored lowercase, like HTTP/2 header names).
/// The carrier is bounded — at most [`MAX_ENTRIES`](Self::MAX_ENTRIES) entries,
/// keys up to [`MAX_KEY_LEN`](Self::MAX_KEY_LEN) and values up to
/// [`MAX_VALUE_LEN`](Self::MAX_VALUE_LEN) bytes — so that a hostile job payload
/// cannot make a consumer allocate without limit; exceeding a bound is a typed
/// error and leaves the carrier unchanged.
///
/// ```
/// use obs_core::{Carrier, CorrelationId};
/// let mut c = Carrier::new();
/// c.insert("TraceParent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
/// c.set_correlation_id(&CorrelationId::parse("job-7")?);
/// assert!(c.get("traceparent").is_some());
/// assert_eq!(c.correlation_id().unwrap()?.as_str(), "job-7");
/// # Ok::<(), obs_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Carrier {
    entries: Vec<(String, String)>,
}

impl Carrier {
    /// Most entries a carrier holds.
    pub const MAX_ENTRIES: usize = 64;
    /// Longest key, in bytes.
    pub const MAX_KEY_LEN: usize = 256;
    /// Longest value, in bytes (W3C baggage allows 8192).
    pub const MAX_VALUE_LEN: usize = 8192;

    /// An empty carrier.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value for `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) -> Result<(), Error> {
        let value = value.into();
        if key.is_empty() || key.len() > Self::MAX_KEY_LEN {
            return Err(Error::CarrierLimit(format!(
                "key {} must be 1..={} bytes",
                preview(key.as_bytes()),
                Self::MAX_KEY_LEN
            )));
        }
        if value.len() > Self::MAX_VALUE_LEN {
            return Err(Error::CarrierLimit(format!(
                "value of {} is {} bytes, the maximum is {}",
                preview(key.as_bytes()),
                value.len(),
                Self::MAX_VALUE_LEN
            )));
        }
        if let Some(slot) = self
            .entries
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            slot.1 = value;
            return Ok(());
        }
        if self.entries.len() >= Self::MAX_ENTRIES {
            return Err(Error::CarrierLimit(format!(
                "the carrier already holds {} entries",
                Self::MAX_ENTRIES
            )));
        }
        self.entries.push((key.to_ascii_lowercase(), value));
        Ok(())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self
            .entries
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(key))?;
        Some(self.entries.remove(i).1)
    }

    /// Iterates over `(key, value)` pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the carrier is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the correlation id under [`header::X_CORRELATION_ID`].
    pub fn set_correlation_id(&mut self, id: &crate::CorrelationId) {
        // Cannot fail: the key is short and an id is at most 128 bytes. If the
        // carrier is full, replace nothing silently: the id is the one entry
        // that must travel, so make room by dropping the oldest unknown key.
        if self.insert(header::X_CORRELATION_ID, id.as_str()).is_err() {
            if let Some(i) = self.entries.iter().position(|(k, _)| {
                !matches!(
                    k.as_str(),
                    header::TRACEPARENT | header::TRACESTATE | header::BAGGAGE
                )
            }) {
                self.entries.remove(i);
            }
            let _ = self.insert(header::X_CORRELATION_ID, id.as_str());
        }
    }

    /// The correlation id, if present; `Some(Err)` when present but invalid.
    pub fn correlation_id(&self) -> Option<Result<crate::CorrelationId, Error>> {
        self.get(header::X_CORRELATION_ID)
            .map(crate::CorrelationId::parse)
    }

    /// Builds a carrier from HTTP headers, keeping only `keys` (for example
    /// the fields a propagator reads). Values that are not visible ASCII or
    /// exceed a bound are skipped: a carrier never holds bytes a header
    /// could not carry back out. Repeated headers are joined with `,` as RFC
    /// 9110 allows for list-valued fields.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn from_headers(headers: &http::HeaderMap, keys: &[&str]) -> Self {
        let mut c = Carrier::new();
        for key in keys {
            let mut joined: Option<String> = None;
            for v in headers.get_all(*key) {
                let Ok(s) = v.to_str() else { continue };
                match &mut joined {
                    None => joined = Some(s.to_owned()),
                    Some(j) => {
                        j.push(',');
                        j.push_str(s);
                    }
                }
            }
            if let Some(v) = joined {
                let _ = c.insert(key, v);
            }
        }
        c
    }

    /// Writes every entry into `headers`, replacing existing values. Entries
    /// whose key or value is not a valid header are skipped and counted in
    /// the return value.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn inject_into(&self, headers: &mut http::HeaderMap) -> usize {
        let mut skipped = 0;
        for (k, v) in self.iter() {
            match (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.insert(name, value);
                }
                _ => skipped += 1,
            }
        }
        skipped
    }
}

impl<'a> IntoIterator for &'a Carrier {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Carrier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Carrier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Carrier;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of string keys to string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Carrier, A::Error> {
                let mut c = Carrier::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    c.insert(&k, v).map_err(serde::de::Error::custom)?;
                }
                Ok(c)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_replace() {
        let mut c = Carrier::new();
        c.insert("TraceState", "a=1").unwrap();
        c.insert("tracestate", "b=2").unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("TRACESTATE"), Some("b=2"));
        assert_eq!(c.iter().next(), Some(("tracestate", "b=2")));
        assert_eq!(c.remove("tracestate").as_deref(), Some("b=2"));
        assert!(c.is_empty());
    }

    #[test]
    fn bounds_are_typed_errors_and_change_nothing() {
        let mut c = Carrier::new();
        assert!(matches!(c.insert("", "x"), Err(Error::CarrierLimit(_))));
        assert!(matches!(
            c.insert("k", "x".repeat(8193)),
            Err(Error::CarrierLimit(_))
        ));
        for i in 0..Carrier::MAX_ENTRIES {
            c.insert(&format!("k{i}"), "v").unwrap();
        }
        let before = c.clone();
        assert!(matches!(
            c.insert("one-more", "v"),
            Err(Error::CarrierLimit(_))
        ));
        assert_eq!(c, before);
        // The correlation id still finds room.
        c.set_correlation_id(&crate::CorrelationId::parse("must-travel").unwrap());
        assert_eq!(c.correlation_id().unwrap().unwrap().as_str(), "must-travel");
        assert_eq!(c.len(), Carrier::MAX_ENTRIES);
    }

    #[test]
    fn invalid_correlation_id_is_reported() {
        let mut c = Carrier::new();
        c.insert("x-correlation-id", "has space").unwrap();
        assert!(c.correlation_id().unwrap().is_err());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trip_and_limits() {
        let mut c = Carrier::new();
        c.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .unwrap();
        c.insert("baggage", "k=v").unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","baggage":"k=v"}"#
        );
        let back: Carrier = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let big = format!(r#"{{"k":"{}"}}"#, "x".repeat(9000));
        let err = serde_json::from_str::<Carrier>(&big).unwrap_err();
        assert!(err.to_string().contains("carrier limit exceeded"), "{err}");
    }

    #[cfg(feature = "http")]
    #[test]
    fn headers_round_trip() {
        let mut h = http::HeaderMap::new();
        h.append("tracestate", "a=1".parse().unwrap());
        h.append("tracestate", "b=2".parse().unwrap());
        h.insert("x-correlation-id", "abc".parse().unwrap());
        h.insert("other", "ignored".parse().unwrap());
        let c = Carrier::from_headers(&h, &["tracestate", "x-correlation-id", "traceparent"]);
        assert_eq!(c.get("tracestate"), Some("a=1,b=2"));
        assert_eq!(c.len(), 2);
        let mut out = http::HeaderMap::new();
        assert_eq!(c.inject_into(&mut out), 0);
        assert_eq!(out.get("x-correlation-id").unwrap(), "abc");
    }
}
