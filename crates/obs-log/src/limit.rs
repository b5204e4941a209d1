//! The per-callsite rate limiter: at most `limit` lines a second, and a
//! summary line of what was suppressed once the next second admits one.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[derive(Debug)]
pub(crate) struct Limiter {
    window: AtomicU64,
    count: AtomicU32,
    suppressed: AtomicU64,
}

pub(crate) enum Admit {
    Yes,
    No,
    AfterSummary(u64),
}

impl Limiter {
    pub(crate) fn new() -> Self {
        Self {
            window: AtomicU64::new(0),
            count: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn admit(&self, now_secs: u64, limit: u32) -> Admit {
        let w = self.window.load(Ordering::Relaxed);
        if w != now_secs
            && self
                .window
                .compare_exchange(w, now_secs, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.count.store(1, Ordering::Relaxed);
            let s = self.suppressed.swap(0, Ordering::AcqRel);
            return if s > 0 {
                Admit::AfterSummary(s)
            } else {
                Admit::Yes
            };
        }
        if self.count.fetch_add(1, Ordering::Relaxed) < limit {
            Admit::Yes
        } else {
            self.suppressed.fetch_add(1, Ordering::AcqRel);
            Admit::No
        }
    }
}
