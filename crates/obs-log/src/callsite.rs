//! The callsite cache: what the layer decides once per callsite (secret and
//! reserved fields, pre-rendered keys and head, the rate limiter), behind a
//! lock-free snapshot keyed by the callsite's pointer.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use obs_core::names::field::MESSAGE;
use tracing_core::Metadata;
use tracing_core::callsite::Identifier;
use tracing_core::field::Field;

use crate::config::{Format, Schema};
use crate::format::{Spec, human_escape};
use crate::json;
use crate::limit::Limiter;
use crate::visit::{Redaction, bit};

/// Per-callsite decisions made once: which fields are secret by name, which
/// clash with the schema's own keys, and the rate limiter.
#[derive(Debug)]
pub(crate) struct CallsiteInfo {
    pub(crate) has_message: bool,
    /// The callsite's field names.
    pub(crate) names: Box<[&'static str]>,
    /// Bit `len % 64` of each name's length: most names of other
    /// callsites are told apart from these by length alone.
    name_lens: u64,
    /// Some name is declared twice (`tracing` allows it): a span's
    /// rendered fields then keep the first of each name, so that its
    /// entries are unique as a line's copy of them assumes.
    pub(crate) repeated_names: bool,
    /// Level and target as the JSON line writes them (events, JSON formats
    /// but OTel's).
    pub(crate) head: Option<Box<[u8]>>,
    /// Fields whose names need no JSON escaping (written as they are).
    pub(crate) plain_names: u64,
    /// Each field's key fragment as written (`,"name":` in JSON, ` name=`
    /// in the human formats), concatenated; `key_ends[i]` ends field `i`'s.
    pub(crate) keys: Box<[u8]>,
    pub(crate) key_ends: Box<[u32]>,
    /// The same keys padded to `KEY_PAD` bytes (length in the last byte;
    /// 0 = too long): appended with one fixed-size copy, then truncated,
    /// instead of a variable-length `memcpy` call per field.
    pub(crate) padded: Box<[[u8; KEY_PAD]]>,
    /// The callsite the keys belong to.
    pub(crate) callsite: Identifier,
    pub(crate) sensitive: u64,
    pub(crate) reserved: u64,
    /// `otel.*` fields: read by the tracer, not written by the log layer.
    pub(crate) tracer_only: u64,
    pub(crate) limiter: Option<Limiter>,
}

/// Room of a padded key (see `CallsiteInfo::padded`).
const KEY_PAD: usize = 32;

impl CallsiteInfo {
    /// Decides everything about `meta` once, for lines of `spec`'s shape.
    pub(crate) fn new(
        meta: &'static Metadata<'static>,
        spec: &Spec,
        redactor: Option<&Redaction>,
        rate_limited: bool,
    ) -> Self {
        let mut sensitive = 0;
        let mut reserved = 0;
        for f in meta.fields() {
            let b = bit(&f);
            if redactor.is_some_and(|r| r.rules.is_sensitive_name(f.name())) {
                sensitive |= b;
            }
            if f.name() != MESSAGE && spec.is_reserved(f.name()) {
                reserved |= b;
            }
        }
        let limiter = (rate_limited && meta.is_event() && !is_log_bridge(meta)).then(Limiter::new);
        let mut plain_names = 0;
        for f in meta.fields() {
            if !f
                .name()
                .bytes()
                .any(|b| b < 0x20 || b == b'"' || b == b'\\')
            {
                plain_names |= bit(&f);
            }
        }
        let json = spec.format == Format::Json;
        let mut keys = Vec::new();
        let mut key_ends = Vec::new();
        for f in meta.fields() {
            if json {
                keys.extend_from_slice(b",\"");
                if reserved & bit(&f) != 0 {
                    keys.extend_from_slice(b"fields.");
                }
                json::escape_into(&mut keys, f.name());
                keys.extend_from_slice(b"\":");
            } else {
                keys.push(b' ');
                human_escape(&mut keys, f.name());
                keys.push(b'=');
            }
            key_ends.push(keys.len() as u32);
        }
        CallsiteInfo {
            has_message: meta.fields().field(MESSAGE).is_some(),
            names: meta.fields().iter().map(|f| f.name()).collect(),
            name_lens: meta
                .fields()
                .iter()
                .fold(0, |acc, f| acc | 1 << (f.name().len() % 64)),
            repeated_names: meta
                .fields()
                .iter()
                .enumerate()
                .any(|(i, f)| meta.fields().iter().take(i).any(|g| g.name() == f.name())),
            head: (json && meta.is_event() && spec.schema != Schema::Otel).then(|| {
                let mut h = Vec::new();
                spec.render_level_target(&mut h, *meta.level(), meta.target());
                h.into_boxed_slice()
            }),
            plain_names,
            padded: (0..key_ends.len())
                .map(|i| {
                    let start = if i == 0 { 0 } else { key_ends[i - 1] as usize };
                    let k = &keys[start..key_ends[i] as usize];
                    let mut p = [0u8; KEY_PAD];
                    if k.len() < KEY_PAD {
                        p[..k.len()].copy_from_slice(k);
                        p[KEY_PAD - 1] = k.len() as u8;
                    }
                    p
                })
                .collect(),
            keys: keys.into_boxed_slice(),
            key_ends: key_ends.into_boxed_slice(),
            callsite: meta.callsite(),
            sensitive,
            reserved,
            tracer_only: meta
                .fields()
                .iter()
                .filter(|f| f.name().starts_with("otel."))
                .fold(0, |acc, f| acc | bit(&f)),
            limiter,
        }
    }

    /// Whether one of this callsite's fields is called `name`.
    #[inline]
    pub(crate) fn has_name(&self, name: &str) -> bool {
        self.name_lens & (1 << (name.len() % 64)) != 0 && self.names.contains(&name)
    }

    /// Appends the pre-rendered key of `field` when it belongs to this
    /// callsite; `false` when the caller must render it.
    #[inline(always)]
    pub(crate) fn put_key(&self, field: &Field, out: &mut Vec<u8>) -> bool {
        let Some(p) = self.padded.get(field.index()) else {
            return false;
        };
        if field.callsite() != self.callsite {
            return false;
        }
        let n = p[KEY_PAD - 1] as usize;
        if n == 0 {
            return match self.key(field) {
                Some(k) => {
                    out.extend_from_slice(k);
                    true
                }
                None => false,
            };
        }
        let at = out.len();
        out.extend_from_slice(p);
        out.truncate(at + n);
        true
    }

    /// The pre-rendered key of `field`, when it belongs to this callsite.
    #[inline]
    pub(crate) fn key(&self, field: &Field) -> Option<&[u8]> {
        let i = field.index();
        let end = *self.key_ends.get(i)? as usize;
        if field.callsite() != self.callsite {
            return None;
        }
        let start = match i {
            0 => 0,
            _ => self.key_ends[i - 1] as usize,
        };
        self.keys.get(start..end)
    }
}

#[derive(Default)]
struct PtrHasher(u64);

impl Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type InfoMap = HashMap<Identifier, Arc<CallsiteInfo>, BuildHasherDefault<PtrHasher>>;

/// Registration inserts into `all` (O(1)); the hot path reads the lock-free
/// `snapshot`, which is re-cloned from `all` only when an event misses it —
/// once per callsite that fires, never once per registration, so a layer
/// installed over thousands of callsites does not pay a quadratic copy.
pub(crate) struct Callsites {
    snapshot: ArcSwap<InfoMap>,
    all: Mutex<InfoMap>,
}

impl Callsites {
    pub(crate) fn new() -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(InfoMap::default()),
            all: Mutex::new(InfoMap::default()),
        }
    }

    /// Registers `meta` (built by `make`) unless it already is.
    pub(crate) fn register(
        &self,
        meta: &'static Metadata<'static>,
        make: impl FnOnce() -> CallsiteInfo,
    ) {
        let id = meta.callsite();
        if self.snapshot.load().contains_key(&id) {
            return;
        }
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        all.entry(id).or_insert_with(|| Arc::new(make()));
    }

    /// Runs `f` with the callsite's info, built by `make` when missing.
    #[inline]
    pub(crate) fn with_info<R>(
        &self,
        meta: &'static Metadata<'static>,
        make: impl FnOnce() -> CallsiteInfo,
        f: impl FnOnce(&CallsiteInfo) -> R,
    ) -> R {
        {
            let map = self.snapshot.load();
            if let Some(info) = map.get(&meta.callsite()) {
                return f(info);
            }
        }
        self.with_info_slow(meta, make, f)
    }

    #[cold]
    fn with_info_slow<R>(
        &self,
        meta: &'static Metadata<'static>,
        make: impl FnOnce() -> CallsiteInfo,
        f: impl FnOnce(&CallsiteInfo) -> R,
    ) -> R {
        let id = meta.callsite();
        let info = {
            let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
            let info = all
                .entry(id.clone())
                .or_insert_with(|| Arc::new(make()))
                .clone();
            if all.len() > self.snapshot.load().len() {
                self.snapshot.store(Arc::new(all.clone()));
            }
            info
        };
        f(&info)
    }
}

/// Whether `meta` is the `log` bridge's callsite (one per level carries
/// every `log` record).
/// The metadata of the `log` record `event` carries (its own target, level,
/// file and line), as `tracing-log` normalizes it; `None` for any other
/// event. Every callsite of `tracing-log`'s bridge has the target `log`, so
/// an event of any other target is answered by one comparison, before
/// `tracing-log` looks its level's bridge callsite up.
#[cfg(feature = "log")]
#[inline]
pub(crate) fn log_record_metadata<'a>(event: &'a tracing_core::Event<'a>) -> Option<Metadata<'a>> {
    if event.metadata().target() != "log" {
        return None;
    }
    use tracing_log::NormalizeEvent;
    event.normalized_metadata()
}

pub(crate) fn is_log_bridge(meta: &Metadata<'_>) -> bool {
    meta.target() == "log" && meta.fields().field("log.target").is_some()
}
