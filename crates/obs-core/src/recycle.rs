//! Per-thread pools of reusable values: what a pillar allocates per request
//! or per span is given back when it is done with and taken by the next one
//! on the same thread, so the hot path allocates nothing in steady state.
//!
//! A pool is a `thread_local!` `RefCell<Vec<T>>` the caller owns; these
//! functions are the one way pillars take from and give to it. They never
//! panic (a pool being torn down with its thread, or already borrowed,
//! simply gives nothing and keeps nothing), and a pool never holds more than
//! the `keep` its caller passes: the rest is freed.
//!
//! ```
//! use std::cell::RefCell;
//! thread_local! {
//!     static BUFS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
//! }
//! let mut buf = obs_core::recycle::take(&BUFS).unwrap_or_default();
//! buf.extend_from_slice(b"line");
//! buf.clear();
//! assert!(obs_core::recycle::give(&BUFS, buf, 8));
//! assert!(obs_core::recycle::take(&BUFS).is_some_and(|b| b.capacity() >= 4));
//! ```

use std::cell::RefCell;
use std::thread::LocalKey;

/// A per-thread pool, as declared by its owner with `thread_local!`.
pub type Pool<T> = LocalKey<RefCell<Vec<T>>>;

/// A value from this thread's `pool`, if it holds one.
#[inline]
pub fn take<T: 'static>(pool: &'static Pool<T>) -> Option<T> {
    pool.try_with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.pop()))
        .ok()
        .flatten()
}

/// Keeps `item` in this thread's `pool` unless it already holds `keep`
/// values (then `item` is dropped); returns whether it was kept.
#[inline]
pub fn give<T: 'static>(pool: &'static Pool<T>, item: T, keep: usize) -> bool {
    pool.try_with(|p| match p.try_borrow_mut() {
        Ok(mut p) if p.len() < keep => {
            p.push(item);
            true
        }
        _ => false,
    })
    .unwrap_or(false)
}
