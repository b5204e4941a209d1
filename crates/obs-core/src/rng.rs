//! A per-thread fast random number generator for ids.
//!
//! Ids must be unique, not secret: W3C Trace Context asks for random trace ids
//! but not for cryptographic ones, and a syscall per id (what `uuid`'s `v4`
//! does through `getrandom`) costs far more than the id is worth. Each thread
//! seeds a wyrand generator once from the operating system and then produces
//! 64 random bits in about a nanosecond.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut buf = [0u8; 8];
    if getrandom::fill(&mut buf).is_ok() {
        return u64::from_le_bytes(buf);
    }
    // The OS refused randomness (seccomp, very early boot). Fall back to a
    // seed that still differs per thread and per process rather than failing:
    // ids stay unique in practice, and nothing here is a secret.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let local = 0u8;
    t ^ (std::process::id() as u64).rotate_left(32) ^ (&local as *const u8 as u64)
}

/// Returns 64 random bits from the calling thread's generator.
#[inline]
pub fn next_u64() -> u64 {
    STATE.with(|s| {
        // wyrand (Wang Yi, public domain): passes BigCrush and PractRand.
        let state = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(state);
        let t = u128::from(state).wrapping_mul(u128::from(state ^ 0xe703_7ed1_a0b4_28db));
        (t as u64) ^ ((t >> 64) as u64)
    })
}

/// Returns 128 random bits from the calling thread's generator.
#[inline]
pub fn next_u128() -> u128 {
    (u128::from(next_u64()) << 64) | u128::from(next_u64())
}

/// Fills `buf` with random bytes from the calling thread's generator.
pub fn fill(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let r = next_u64().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn values_differ() {
        let set: HashSet<u64> = (0..10_000).map(|_| next_u64()).collect();
        assert_eq!(set.len(), 10_000);
    }

    #[test]
    fn threads_get_different_streams() {
        let a: Vec<u64> = std::thread::spawn(|| (0..4).map(|_| next_u64()).collect())
            .join()
            .unwrap();
        let b: Vec<u64> = std::thread::spawn(|| (0..4).map(|_| next_u64()).collect())
            .join()
            .unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn bits_are_balanced() {
        // A gross bias check: over 64k draws every bit position is set close to half the time.
        let mut counts = [0u32; 64];
        let n = 65_536;
        for _ in 0..n {
            let v = next_u64();
            for (i, c) in counts.iter_mut().enumerate() {
                *c += ((v >> i) & 1) as u32;
            }
        }
        for c in counts {
            assert!((31_000..34_500).contains(&c), "bit count {c} out of range");
        }
    }

    #[test]
    fn fill_covers_odd_lengths() {
        let mut buf = [0u8; 13];
        fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
    }
}
