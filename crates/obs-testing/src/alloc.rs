//! A counting global allocator, for tests that assert how many heap
//! allocations an operation makes.
//!
//! Register it once in the test binary, then count what a closure
//! allocates on the calling thread (other threads — the test harness's,
//! obs's background threads — are not counted):
//!
//! ```
//! #[global_allocator]
//! static ALLOC: obs_testing::alloc::CountingAllocator = obs_testing::alloc::CountingAllocator;
//!
//! let (n, v) = obs_testing::alloc::count(|| vec![1u8; 16]);
//! assert_eq!(v.len(), 16);
//! assert_eq!(n, 1);
//! let (n, ()) = obs_testing::alloc::count(|| {});
//! assert_eq!(n, 0);
//! ```
//!
//! Without the registration [`count`] sees nothing and returns 0, so a test
//! should also check that a known allocation is counted (as above).

#![allow(
    unsafe_code,
    reason = "a global allocator is an `unsafe impl GlobalAlloc`; every call forwards to `System`"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// The allocator: `System`, counting allocations and reallocations made on
/// a thread inside [`count`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

#[inline]
fn note() {
    // `try_with`: a thread being torn down has no thread-locals left.
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the arguments it was
// given; the bookkeeping reads and writes const-initialised thread-locals,
// which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns how many allocations (and reallocations) it made
/// on this thread, with its result. Nested calls count into the innermost.
pub fn count<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let was = MEASURING.with(|m| m.replace(true));
    let before = COUNT.with(|c| c.replace(0));
    let out = f();
    let n = COUNT.with(|c| c.replace(before));
    MEASURING.with(|m| m.set(was));
    (n, out)
}
