//! W3C Trace Context ids: [`TraceId`], [`SpanId`] and [`TraceFlags`].
//!
//! Parsing accepts exactly the lowercase hex the W3C Recommendation allows and
//! rejects uppercase, wrong lengths and all-zero ids with a typed [`Error`];
//! formatting writes into a stack buffer ([`HexBuf`]) and never allocates.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, IdKind, preview};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Value of each byte as a lowercase hex digit, or `0xff` when it is not one.
/// Uppercase is rejected on purpose: W3C Trace Context requires lowercase.
const UNHEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Both hex digits of every byte, so encoding is one table load per byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0x0f]];
        i += 1;
    }
    t
};

/// Writes `bytes` as lowercase hex into `out` (`out.len() == 2 * bytes.len()`).
#[inline]
pub(crate) fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[*b as usize]);
    }
}

/// [`encode_hex`] for a fixed size, which the compiler fully unrolls.
/// `M` must be `2 * N`.
#[inline(always)]
fn encode_fixed<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u8; M] {
    let mut out = [0u8; M];
    let mut i = 0;
    while i < N && 2 * i + 1 < M {
        let p = HEX_PAIRS[bytes[i] as usize];
        out[2 * i] = p[0];
        out[2 * i + 1] = p[1];
        i += 1;
    }
    out
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Eight lowercase hex characters (first character in the most significant
/// byte of `x`) as 32 bits, in one 64-bit register (SWAR); `None` when any
/// character is not lowercase hex.
#[inline(always)]
fn decode8(x: u64) -> Option<u32> {
    // Below 0x80 in every byte, adding at most 0x50 to a byte never carries
    // into the next one, so each byte's high bit says `c >= bound`.
    let ge = |bound: u8| x.wrapping_add(ONES * u64::from(0x80 - bound)) & HIGH;
    let digit = ge(b'0') & !ge(b'9' + 1);
    let alpha = ge(b'a') & !ge(b'f' + 1);
    if x & HIGH != 0 || (digit | alpha) != HIGH {
        return None;
    }
    // Nibble values: the low four bits, plus 9 for 'a'..='f'.
    let n = (x & (ONES * 0x0f)) + (alpha >> 7) * 9;
    // Pack the eight nibbles (one per byte) into 32 bits.
    let n = (n | (n >> 4)) & 0x00ff_00ff_00ff_00ff;
    let n = (n | (n >> 8)) & 0x0000_ffff_0000_ffff;
    let n = (n | (n >> 16)) & 0x0000_0000_ffff_ffff;
    Some(n as u32)
}

/// Decodes lowercase hex into `out`, reporting the first bad character.
#[inline]
pub(crate) fn decode_hex(kind: IdKind, src: &[u8], out: &mut [u8]) -> Result<(), Error> {
    if src.len() != out.len() * 2 {
        return Err(length_error(kind, out.len() * 2, src));
    }
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(src.chunks_exact(2)) {
        let hi = UNHEX[pair[0] as usize];
        let lo = UNHEX[pair[1] as usize];
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    if bad & 0xf0 != 0 {
        return Err(char_error(kind, src));
    }
    Ok(())
}

/// Decodes exactly `2 * N` lowercase hex characters into `N` bytes, or
/// `None` — without building an error, for hot paths such as header parsing
/// that only need to know whether a field is valid. Uppercase is rejected,
/// as W3C Trace Context requires.
///
/// The loop is branch-free and unrolled: invalid digits (table value `0xff`)
/// are detected once at the end from the OR of all table values.
///
/// ```
/// assert_eq!(obs_core::decode_lower_hex::<2>(b"00ff"), Some([0x00, 0xff]));
/// assert_eq!(obs_core::decode_lower_hex::<2>(b"00FF"), None);
/// assert_eq!(obs_core::decode_lower_hex::<2>(b"00f"), None);
/// ```
#[inline(always)]
pub fn decode_lower_hex<const N: usize>(src: &[u8]) -> Option<[u8; N]> {
    if src.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    if N.is_multiple_of(4) {
        // Ids: eight characters at a time.
        let mut ok = true;
        let mut i = 0;
        while i < N / 4 {
            let mut chunk = [0u8; 8];
            chunk.copy_from_slice(&src[8 * i..8 * i + 8]);
            match decode8(u64::from_be_bytes(chunk)) {
                Some(v) => out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes()),
                None => ok = false,
            }
            i += 1;
        }
        return ok.then_some(out);
    }
    let mut bad = 0u8;
    let mut i = 0;
    while i < N {
        let hi = UNHEX[src[2 * i] as usize];
        let lo = UNHEX[src[2 * i + 1] as usize];
        bad |= hi | lo;
        out[i] = (hi << 4) | (lo & 0x0f);
        i += 1;
    }
    (bad & 0xf0 == 0).then_some(out)
}

/// [`decode_lower_hex`] with a typed error saying what was wrong and where.
#[inline(always)]
fn decode_fixed<const N: usize>(kind: IdKind, src: &[u8]) -> Result<[u8; N], Error> {
    if src.len() != 2 * N {
        return Err(length_error(kind, 2 * N, src));
    }
    decode_lower_hex::<N>(src).ok_or_else(|| char_error(kind, src))
}

#[cold]
fn length_error(kind: IdKind, expected: usize, src: &[u8]) -> Error {
    Error::IdLength {
        kind,
        expected,
        len: src.len(),
        value: preview(src),
    }
}

#[cold]
fn char_error(kind: IdKind, src: &[u8]) -> Error {
    let position = src.iter().position(|&c| !is_lower_hex(c)).unwrap_or(0);
    Error::IdChar {
        kind,
        found: preview(&src[position..position + 1]),
        position,
        value: preview(src),
    }
}

/// Returns whether `b` is a lowercase hex digit.
#[inline]
pub fn is_lower_hex(b: u8) -> bool {
    UNHEX[b as usize] != 0xff
}

/// A fixed-size buffer holding an id formatted as lowercase hex.
///
/// Dereferences to `&str`; returned by the `to_hex` methods so formatting an id
/// never allocates.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexBuf<const N: usize>([u8; N]);

impl<const N: usize> HexBuf<N> {
    /// The hex text.
    #[inline]
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into the buffer, so this
        // conversion cannot fail; the fallback keeps the code panic-free.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The hex text as bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> std::ops::Deref for HexBuf<N> {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Display for HexBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for HexBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

macro_rules! byte_id {
    (
        $(#[$meta:meta])*
        $name:ident, $len:literal, $hex:literal, $kind:expr, $int:ty
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// The invalid all-zero id, useful as a "none" marker in fixed layouts.
            pub const INVALID: Self = Self([0; $len]);

            /// Builds an id from its bytes (big-endian, as on the wire).
            #[inline]
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The id's bytes (big-endian, as on the wire).
            #[inline]
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// The id's bytes by value.
            #[inline]
            pub const fn to_bytes(self) -> [u8; $len] {
                self.0
            }

            /// Builds an id from an integer (big-endian byte order).
            #[inline]
            pub const fn from_int(v: $int) -> Self {
                Self(v.to_be_bytes())
            }

            /// The id as an integer (big-endian byte order).
            #[inline]
            pub const fn to_int(self) -> $int {
                <$int>::from_be_bytes(self.0)
            }

            /// Whether this is a valid (not all-zero) id.
            #[inline]
            pub const fn is_valid(&self) -> bool {
                self.to_int() != 0
            }

            /// Parses lowercase hex, rejecting wrong lengths, uppercase, non-hex
            /// characters and the all-zero id.
            #[inline]
            pub fn from_hex(src: impl AsRef<[u8]>) -> Result<Self, Error> {
                let out = decode_fixed::<$len>($kind, src.as_ref())?;
                let id = Self(out);
                if id.is_valid() { Ok(id) } else { Err(Error::ZeroId { kind: $kind }) }
            }

            /// Formats as lowercase hex without allocating.
            #[inline]
            pub fn to_hex(&self) -> HexBuf<$hex> {
                HexBuf(encode_fixed::<$len, $hex>(&self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.to_hex().as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex().as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::from_hex(s)
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.to_hex().as_str())
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, concat!("a ", $hex, "-character lowercase hex string"))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_hex(v).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

byte_id!(
    /// A W3C trace id: 16 bytes, never all zero when valid.
    ///
    /// ```
    /// use obs_core::TraceId;
    /// let id: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse()?;
    /// assert_eq!(id.to_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert!("4BF92F3577B34DA6A3CE929D0E0E4736".parse::<TraceId>().is_err());
    /// # Ok::<(), obs_core::Error>(())
    /// ```
    TraceId, 16, 32, IdKind::TraceId, u128
);

byte_id!(
    /// A W3C span id (the `parent-id` of a `traceparent`): 8 bytes, never all
    /// zero when valid.
    ///
    /// ```
    /// use obs_core::SpanId;
    /// let id = SpanId::random();
    /// assert!(id.is_valid());
    /// assert_eq!(id.to_hex().parse::<SpanId>()?, id);
    /// # Ok::<(), obs_core::Error>(())
    /// ```
    SpanId, 8, 16, IdKind::SpanId, u64
);

impl TraceId {
    /// A new random, valid trace id from the per-thread generator.
    #[inline]
    pub fn random() -> Self {
        loop {
            let v = crate::rng::next_u128();
            if v != 0 {
                return Self::from_int(v);
            }
        }
    }

    /// The low 64 bits as an unsigned integer: the form Datadog and other
    /// 64-bit tracers use (`dd.trace_id`).
    #[inline]
    pub fn low_u64(&self) -> u64 {
        self.to_int() as u64
    }
}

impl SpanId {
    /// A new random, valid span id from the per-thread generator.
    #[inline]
    pub fn random() -> Self {
        loop {
            let v = crate::rng::next_u64();
            if v != 0 {
                return Self::from_int(v);
            }
        }
    }
}

/// The W3C `trace-flags` byte. Bit 0 is `sampled`; the other bits are kept
/// as received so that future flags survive a hop through obs.
///
/// ```
/// use obs_core::TraceFlags;
/// let f: TraceFlags = "01".parse()?;
/// assert!(f.is_sampled());
/// assert_eq!(TraceFlags::from_byte(0x03).with_sampled(false).to_byte(), 0x02);
/// # Ok::<(), obs_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// No flag set: not sampled.
    pub const NOT_SAMPLED: Self = Self(0);
    /// The `sampled` flag.
    pub const SAMPLED: Self = Self(1);

    /// Builds flags from the raw byte.
    #[inline]
    pub const fn from_byte(b: u8) -> Self {
        Self(b)
    }

    /// The raw byte.
    #[inline]
    pub const fn to_byte(self) -> u8 {
        self.0
    }

    /// Whether the `sampled` bit is set.
    #[inline]
    pub const fn is_sampled(self) -> bool {
        self.0 & 1 == 1
    }

    /// These flags with the `sampled` bit set or cleared.
    #[inline]
    pub const fn with_sampled(self, sampled: bool) -> Self {
        if sampled {
            Self(self.0 | 1)
        } else {
            Self(self.0 & !1)
        }
    }

    /// Parses the two lowercase hex characters of the `trace-flags` field.
    pub fn from_hex(src: impl AsRef<[u8]>) -> Result<Self, Error> {
        let mut out = [0u8; 1];
        decode_hex(IdKind::TraceFlags, src.as_ref(), &mut out)?;
        Ok(Self(out[0]))
    }

    /// Formats as two lowercase hex characters.
    #[inline]
    pub fn to_hex(self) -> HexBuf<2> {
        let mut out = [0u8; 2];
        encode_hex(&[self.0], &mut out);
        HexBuf(out)
    }
}

impl fmt::Display for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceFlags({})", self.to_hex().as_str())
    }
}

impl FromStr for TraceFlags {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_hex(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_round_trip() {
        let s = "4bf92f3577b34da6a3ce929d0e0e4736";
        let id = TraceId::from_hex(s).unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(format!("{id:?}"), format!("TraceId({s})"));
        assert_eq!(id.as_bytes()[0], 0x4b);
        assert_eq!(TraceId::from_int(id.to_int()), id);
        assert_eq!(id.low_u64(), 0xa3ce929d0e0e4736);
    }

    #[test]
    fn rejects_uppercase_with_position() {
        let err = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e473A").unwrap_err();
        match err {
            Error::IdChar {
                kind: IdKind::TraceId,
                position: 31,
                ..
            } => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with("invalid trace id: \"A\" at position 31"),
            "{err}"
        );
    }

    #[test]
    fn rejects_bad_lengths_and_zero() {
        assert!(matches!(
            TraceId::from_hex("abc"),
            Err(Error::IdLength {
                expected: 32,
                len: 3,
                ..
            })
        ));
        assert!(matches!(
            SpanId::from_hex("0000000000000000"),
            Err(Error::ZeroId {
                kind: IdKind::SpanId
            })
        ));
        assert!(matches!(
            SpanId::from_hex("00f067aa0ba902b7 "),
            Err(Error::IdLength { .. })
        ));
        assert!(matches!(
            TraceFlags::from_hex("0g"),
            Err(Error::IdChar { position: 1, .. })
        ));
    }

    #[test]
    fn random_ids_are_valid_and_distinct() {
        let a = TraceId::random();
        let b = TraceId::random();
        assert!(a.is_valid() && b.is_valid());
        assert_ne!(a, b);
        assert!(SpanId::random().is_valid());
    }

    /// The SWAR paths agree with the byte-table paths on every byte value at
    /// every position, and on random inputs.
    #[test]
    fn swar_matches_the_tables() {
        fn table_decode(src: &[u8]) -> Option<Vec<u8>> {
            src.chunks(2)
                .map(|p| {
                    let (h, l) = (UNHEX[p[0] as usize], UNHEX[p[1] as usize]);
                    ((h | l) & 0xf0 == 0).then_some((h << 4) | l)
                })
                .collect()
        }
        let base = *b"0123456789abcdef";
        for pos in 0..16 {
            for b in 0..=255u8 {
                let mut s = base;
                s[pos] = b;
                let got = decode_lower_hex::<8>(&s).map(|a| a.to_vec());
                assert_eq!(got, table_decode(&s), "byte {b:#x} at {pos}");
            }
        }
        // Mostly hex characters, now and then anything.
        for _ in 0..200_000 {
            let r = crate::rng::next_u64().to_be_bytes();
            let c: [u8; 8] = std::array::from_fn(|i| {
                if r[i] < 240 {
                    b"0123456789abcdef"[usize::from(r[i] % 16)]
                } else {
                    r[(i + 1) % 8]
                }
            });
            let got = decode_lower_hex::<4>(&c).map(|a| a.to_vec());
            assert_eq!(got, table_decode(&c), "{c:?}");
        }
        for (s, want) in [
            (&b"ffffffff"[..], Some(vec![0xff; 4])),
            (b"00000000", Some(vec![0; 4])),
            (b"0000000A", None),
            (b"0000000g", None),
            (b"0000000/", None),
            (b"0000000:", None),
            (b"0000000`", None),
        ] {
            assert_eq!(decode_lower_hex::<4>(s).map(|a| a.to_vec()), want);
        }
        for _ in 0..20_000 {
            let bytes = crate::rng::next_u128().to_be_bytes();
            let mut want = [0u8; 32];
            encode_hex(&bytes, &mut want);
            let got = encode_fixed::<16, 32>(&bytes);
            assert_eq!(got, want);
            assert_eq!(decode_lower_hex::<16>(&got), Some(bytes));
        }
    }

    #[test]
    fn flags_keep_unknown_bits() {
        let f = TraceFlags::from_hex("ff").unwrap();
        assert!(f.is_sampled());
        assert_eq!(f.to_hex().as_str(), "ff");
        assert_eq!(f.with_sampled(false).to_byte(), 0xfe);
    }
}
