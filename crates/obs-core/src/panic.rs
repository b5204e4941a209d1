//! Whether a panic that is being handled can end the process.
//!
//! Panic hooks that flush buffers (log lines, error reports) make the
//! panicking thread wait for a writer. That is worth it when the process may
//! be about to die, and pure cost when the panic will be caught: a handler
//! that panics under a catch-panic layer would otherwise pay for a flush on
//! every request of a panic storm. A hook cannot see a surrounding
//! `catch_unwind`, so code that catches panics says so with [`caught`].

use std::cell::Cell;

thread_local! {
    static CAUGHT: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` (which wraps its work in `catch_unwind`) marked as a region whose
/// panics are caught: [`may_end_process`] is `false` inside it, unless the
/// binary aborts on panic.
///
/// ```
/// let r = obs_core::panic::caught(|| {
///     assert!(!obs_core::panic::may_end_process() || cfg!(panic = "abort"));
///     std::panic::catch_unwind(|| 42)
/// });
/// assert_eq!(r.ok(), Some(42));
/// assert!(obs_core::panic::may_end_process());
/// ```
pub fn caught<R>(f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            CAUGHT.with(|c| c.set(c.get().saturating_sub(1)));
        }
    }
    CAUGHT.with(|c| c.set(c.get() + 1));
    let _leave = Leave;
    f()
}

/// `false` only when the panic being handled on this thread is known to be
/// caught (inside [`caught`]) and the binary unwinds; `true` otherwise, so a
/// hook flushes whenever the process might die.
pub fn may_end_process() -> bool {
    cfg!(panic = "abort") || CAUGHT.with(Cell::get) == 0
}
