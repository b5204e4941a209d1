//! Breadcrumbs: the last N log events of a request/task, kept in a bounded
//! ring buffer shared by every span under one root span.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use obs_core::Redactor;
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Level};

/// A message is cut to this many bytes.
pub const MAX_MESSAGE_LEN: usize = 512;
/// At most this many fields are kept per breadcrumb.
pub const MAX_FIELDS: usize = 12;
/// A field value is cut to this many bytes.
pub const MAX_FIELD_LEN: usize = 256;
/// All field values of one breadcrumb together are cut to this many bytes.
pub const MAX_FIELDS_LEN: usize = 1024;

/// One recorded log event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Breadcrumb {
    /// When it was logged.
    pub timestamp: SystemTime,
    /// Its level.
    pub level: Level,
    /// Its target.
    pub target: String,
    /// Its message (scrubbed in reports).
    pub message: String,
    /// Its other fields (scrubbed in reports), in order.
    pub fields: Vec<(String, String)>,
}

impl Breadcrumb {
    /// A field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One reusable slot: strings keep their capacity between events, so a
/// warm ring records without allocating.
struct Slot {
    timestamp: SystemTime,
    level: Level,
    target: &'static str,
    message: String,
    fields: String,
    ranges: Vec<(&'static str, u32, u32)>,
}

impl Slot {
    fn empty() -> Self {
        Self {
            timestamp: SystemTime::UNIX_EPOCH,
            level: Level::INFO,
            target: "",
            message: String::new(),
            fields: String::new(),
            ranges: Vec::new(),
        }
    }
}

struct Ring {
    slots: Vec<Slot>,
    next: usize,
    len: usize,
    cap: usize,
}

impl Ring {
    /// Heap bytes the ring keeps (slot buffers).
    fn retained(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.message.capacity() + s.fields.capacity() + 24 * s.ranges.capacity())
            .sum::<usize>()
            + self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

/// Rings of finished root spans kept for reuse, so a request's breadcrumbs
/// are recorded into warm buffers instead of new allocations.
const POOL_RINGS: usize = 64;
/// A ring keeping more heap than this is not pooled.
const POOL_RING_BYTES: usize = 16 * 1024;

/// Shared counters of all rings, and the pool of rings for reuse.
#[derive(Default)]
pub(crate) struct CrumbStats {
    pub(crate) live: AtomicUsize,
    pub(crate) refused: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) recorded: AtomicU64,
    pool: Mutex<Vec<Ring>>,
}

impl fmt::Debug for CrumbStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrumbStats")
            .field("live", &self.live)
            .field("refused", &self.refused)
            .field("evicted", &self.evicted)
            .field("recorded", &self.recorded)
            .finish_non_exhaustive()
    }
}

/// A breadcrumb buffer, stored in span extensions: the root span's, made on
/// the request's first breadcrumb, and a clone in each descendant that has
/// logged one, so its next event finds it in one lookup.
#[derive(Clone)]
pub(crate) struct Crumbs(Arc<CrumbsInner>);

struct CrumbsInner {
    ring: Mutex<Ring>,
    stats: Arc<CrumbStats>,
}

impl Drop for CrumbsInner {
    fn drop(&mut self) {
        self.stats.live.fetch_sub(1, Ordering::Relaxed);
        let ring = self.ring.get_mut().unwrap_or_else(PoisonError::into_inner);
        if ring.retained() <= POOL_RING_BYTES
            && let Ok(mut pool) = self.stats.pool.try_lock()
            && pool.len() < POOL_RINGS
        {
            let mut ring = std::mem::replace(
                ring,
                Ring {
                    slots: Vec::new(),
                    next: 0,
                    len: 0,
                    cap: 0,
                },
            );
            ring.next = 0;
            ring.len = 0;
            pool.push(ring);
        }
    }
}

impl fmt::Debug for Crumbs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Crumbs")
    }
}

impl Crumbs {
    /// A new ring, unless `max_live` rings already exist.
    pub(crate) fn new(cap: usize, stats: &Arc<CrumbStats>, max_live: usize) -> Option<Self> {
        if cap == 0 {
            return None;
        }
        if stats.live.fetch_add(1, Ordering::Relaxed) >= max_live {
            stats.live.fetch_sub(1, Ordering::Relaxed);
            stats.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let pooled = stats
            .pool
            .try_lock()
            .ok()
            .and_then(|mut p| p.pop())
            .filter(|r| r.cap == cap);
        let ring = pooled.unwrap_or(Ring {
            slots: Vec::new(),
            next: 0,
            len: 0,
            cap,
        });
        Some(Self(Arc::new(CrumbsInner {
            ring: Mutex::new(ring),
            stats: Arc::clone(stats),
        })))
    }

    /// Records `event` into the ring, overwriting the oldest when full.
    pub(crate) fn record(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let now = SystemTime::now();
        let mut ring = self.0.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let idx = ring.next;
        if ring.slots.len() <= idx {
            ring.slots.push(Slot::empty());
        }
        if ring.len == ring.cap {
            self.0.stats.evicted.fetch_add(1, Ordering::Relaxed);
        } else {
            ring.len += 1;
        }
        ring.next = (idx + 1) % ring.cap;
        let slot = &mut ring.slots[idx];
        slot.timestamp = now;
        slot.level = *meta.level();
        slot.target = meta.target();
        slot.message.clear();
        slot.fields.clear();
        slot.ranges.clear();
        event.record(&mut SlotVisitor(slot));
        drop(ring);
        self.0.stats.recorded.fetch_add(1, Ordering::Relaxed);
    }

    /// The breadcrumbs, oldest first, scrubbed with `redactor`.
    pub(crate) fn snapshot(&self, redactor: &Redactor) -> Vec<Breadcrumb> {
        let ring = self.0.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let start = (ring.next + ring.cap - ring.len) % ring.cap;
        (0..ring.len)
            .map(|i| {
                let s = &ring.slots[(start + i) % ring.cap];
                Breadcrumb {
                    timestamp: s.timestamp,
                    level: s.level,
                    target: s.target.to_owned(),
                    message: redactor.redact(&s.message).into_owned(),
                    fields: s
                        .ranges
                        .iter()
                        .map(|&(name, a, b)| {
                            let v = &s.fields[a as usize..b as usize];
                            (name.to_owned(), redactor.redact_field(name, v).into_owned())
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

/// Appends to `buf` and cuts at `max` bytes (on a char boundary).
struct Bounded<'a> {
    buf: &'a mut String,
    start: usize,
    max: usize,
}

impl fmt::Write for Bounded<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.max.saturating_sub(self.buf.len() - self.start);
        if s.len() <= room {
            self.buf.push_str(s);
            Ok(())
        } else {
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.buf.push_str(&s[..cut]);
            Err(fmt::Error)
        }
    }
}

struct SlotVisitor<'a>(&'a mut Slot);

impl SlotVisitor<'_> {
    /// Writes one value with `put` into the message or the field buffer,
    /// within the size caps.
    fn put(&mut self, field: &Field, put: impl FnOnce(&mut Bounded<'_>)) {
        let slot = &mut *self.0;
        if field.name() == "message" {
            let start = slot.message.len();
            put(&mut Bounded {
                buf: &mut slot.message,
                start,
                max: MAX_MESSAGE_LEN,
            });
            return;
        }
        if slot.ranges.len() >= MAX_FIELDS || slot.fields.len() >= MAX_FIELDS_LEN {
            return;
        }
        let start = slot.fields.len();
        put(&mut Bounded {
            buf: &mut slot.fields,
            start,
            max: MAX_FIELD_LEN.min(MAX_FIELDS_LEN - start),
        });
        let end = slot.fields.len();
        slot.ranges.push((field.name(), start as u32, end as u32));
    }
}

impl Visit for SlotVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| {
            let _ = w.write_str(value);
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        let mut b = itoa::Buffer::new();
        let s = b.format(value);
        self.put(field, |w| {
            let _ = w.write_str(s);
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let mut b = itoa::Buffer::new();
        let s = b.format(value);
        self.put(field, |w| {
            let _ = w.write_str(s);
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| {
            let _ = w.write_str(if value { "true" } else { "false" });
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, |w| {
            let _ = write!(w, "{value}");
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |w| {
            let _ = write!(w, "{value:?}");
        });
    }
}

/// The ring of events logged outside any span.
pub(crate) struct Orphans(Mutex<Option<Crumbs>>);

impl Orphans {
    pub(crate) const fn new() -> Self {
        Self(Mutex::new(None))
    }

    pub(crate) fn get_or_init(&self, f: impl FnOnce() -> Option<Crumbs>) -> Option<Crumbs> {
        let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if g.is_none() {
            *g = f();
        }
        g.clone()
    }

    pub(crate) fn get(&self) -> Option<Crumbs> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
