//! Protobuf wire primitives for the hand-written OTLP encoders. A message
//! is written once, in place: its length first when it is cheap to know
//! ([`put_len_field`]), else room for it, filled in once the body is written
//! ([`put_nested`]). Default values are left out and every length is a
//! minimal varint, as prost writes them. Field numbers are the callers'
//! (from the OTLP `.proto` files).

/// Wire type of varints.
pub const VARINT: u32 = 0;
/// Wire type of 64-bit fixed fields.
pub const FIXED64: u32 = 1;
/// Wire type of length-delimited fields.
pub const LEN: u32 = 2;
/// Wire type of 32-bit fixed fields.
pub const FIXED32: u32 = 5;

/// Bytes of `v` as a varint.
#[inline]
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Writes `v` as a varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes of a field's key.
#[inline]
pub fn key_len(field: u32) -> usize {
    varint_len(u64::from(field << 3))
}

/// Writes a field's key.
#[inline]
pub fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(out, u64::from((field << 3) | wire_type));
}

/// Bytes of a length-delimited field whose body is `n` bytes.
#[inline]
pub fn field_len(field: u32, n: usize) -> usize {
    key_len(field) + varint_len(n as u64) + n
}

/// Writes the key and length of a length-delimited field; the caller
/// writes its `n` bytes next.
#[inline]
pub fn put_len_field(out: &mut Vec<u8>, field: u32, n: usize) {
    put_key(out, field, LEN);
    put_varint(out, n as u64);
}

/// Writes a length-delimited field whose body `body` writes, without
/// computing the body's length first: `room` bytes (1 to 5) are kept for
/// the length, and once the body is written the length goes there; when
/// its varint needs another number of bytes, the body moves (one
/// `memmove`). Callers pick `room` for the usual size of the message (1
/// below 128 bytes, 2 below 16 KiB, 3 below 2 MiB), so the body rarely
/// moves; the varint is minimal either way.
///
/// ```
/// use obs_core::otlp::wire::{put_nested, put_string_field};
/// let mut one = Vec::new();
/// put_nested(&mut one, 3, 1, |o| put_string_field(o, 1, "x"));
/// assert_eq!(one, [0x1a, 3, 0x0a, 1, b'x']);
/// let mut moved = Vec::new();
/// put_nested(&mut moved, 3, 2, |o| put_string_field(o, 1, "x"));
/// assert_eq!(moved, one);
/// ```
#[inline]
pub fn put_nested(out: &mut Vec<u8>, field: u32, room: usize, body: impl FnOnce(&mut Vec<u8>)) {
    put_key(out, field, LEN);
    let at = out.len();
    out.resize(at + room, 0);
    body(out);
    let n = out.len() - at - room;
    let need = varint_len(n as u64);
    if need == 1 && room == 1 {
        out[at] = n as u8;
        return;
    }
    let mut len = [0u8; 10];
    let mut v = n as u64;
    for b in len.iter_mut().take(need) {
        *b = (v as u8 & 0x7f) | 0x80;
        v >>= 7;
    }
    len[need - 1] &= 0x7f;
    if need == room {
        out[at..at + room].copy_from_slice(&len[..need]);
    } else {
        out.splice(at..at + room, len[..need].iter().copied());
    }
}

/// Bytes of a string field (left out when empty).
#[inline]
pub fn string_field_len(field: u32, s: &str) -> usize {
    bytes_field_len(field, s.as_bytes())
}

/// Bytes of a bytes field (left out when empty).
#[inline]
pub fn bytes_field_len(field: u32, b: &[u8]) -> usize {
    if b.is_empty() {
        0
    } else {
        field_len(field, b.len())
    }
}

/// Writes a string field (nothing when empty).
#[inline]
pub fn put_string_field(out: &mut Vec<u8>, field: u32, s: &str) {
    put_bytes_field(out, field, s.as_bytes());
}

/// Writes a bytes field (nothing when empty).
#[inline]
pub fn put_bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        put_len_field(out, field, b.len());
        out.extend_from_slice(b);
    }
}

/// Bytes of a varint field (left out when 0).
#[inline]
pub fn uint_field_len(field: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(field) + varint_len(v)
    }
}

/// Writes a varint field (nothing when 0).
#[inline]
pub fn put_uint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_key(out, field, VARINT);
        put_varint(out, v);
    }
}

/// Bytes of a `fixed64` field (left out when 0).
#[inline]
pub fn fixed64_field_len(field: u32, v: u64) -> usize {
    if v == 0 { 0 } else { key_len(field) + 8 }
}

/// Writes a `fixed64` field (nothing when 0).
#[inline]
pub fn put_fixed64_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_key(out, field, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Bytes of a `fixed32` field (left out when 0).
#[inline]
pub fn fixed32_field_len(field: u32, v: u32) -> usize {
    if v == 0 { 0 } else { key_len(field) + 4 }
}

/// Writes a `fixed32` field (nothing when 0).
#[inline]
pub fn put_fixed32_field(out: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        put_key(out, field, FIXED32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Bytes of a string-valued `KeyValue { key = 1; value = 2 { string_value = 1 } }`.
#[inline]
pub fn str_kv_len(k: &str, v: &str) -> usize {
    string_field_len(1, k) + field_len(2, field_len(1, v.len()))
}

/// Writes a string-valued `KeyValue` (resource attributes).
pub fn put_str_kv(out: &mut Vec<u8>, k: &str, v: &str) {
    put_string_field(out, 1, k);
    put_len_field(out, 2, field_len(1, v.len()));
    put_len_field(out, 1, v.len());
    out.extend_from_slice(v.as_bytes());
}

/// Reads a varint at `*at`, moving past it.
fn read_varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Calls `f(field, wire_type, value)` for each field of the message in
/// `buf`: `value` is the varint for [`VARINT`] fields, the body for
/// [`LEN`] fields, and the little-endian bytes for fixed fields. `None`
/// when the message is malformed.
pub fn for_each_field(buf: &[u8], mut f: impl FnMut(u32, u32, u64, &[u8])) -> Option<()> {
    let mut at = 0;
    while at < buf.len() {
        let key = read_varint(buf, &mut at)?;
        let (field, wire_type) = ((key >> 3) as u32, (key & 7) as u32);
        match wire_type {
            VARINT => {
                let v = read_varint(buf, &mut at)?;
                f(field, wire_type, v, &[]);
            }
            LEN => {
                let n = usize::try_from(read_varint(buf, &mut at)?).ok()?;
                let body = buf.get(at..at.checked_add(n)?)?;
                at += n;
                f(field, wire_type, 0, body);
            }
            FIXED64 | FIXED32 => {
                let n = if wire_type == FIXED64 { 8 } else { 4 };
                let body = buf.get(at..at + n)?;
                at += n;
                f(field, wire_type, 0, body);
            }
            _ => return None,
        }
    }
    Some(())
}

/// The partial success of an `Export*ServiceResponse` (field 1, with the
/// rejected count in field 1 and the message in field 2: the same shape
/// for traces, logs and metrics). `None` when the response reports none,
/// or nothing was rejected.
pub fn partial_success(response: &[u8]) -> Option<(u64, String)> {
    let mut partial = None;
    for_each_field(response, |field, wt, _, body| {
        if field == 1 && wt == LEN {
            partial = Some(body.to_vec());
        }
    })?;
    let body = partial?;
    let (mut rejected, mut message) = (0u64, String::new());
    for_each_field(&body, |field, wt, v, b| match (field, wt) {
        (1, VARINT) => rejected = v,
        (2, LEN) => message = String::from_utf8_lossy(b).into_owned(),
        _ => {}
    })?;
    (rejected > 0 || !message.is_empty()).then_some((rejected, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            let mut at = 0;
            assert_eq!(read_varint(&out, &mut at), Some(v));
        }
    }

    #[test]
    fn partial_success_is_read_and_malformed_input_is_none() {
        let mut inner = Vec::new();
        put_uint_field(&mut inner, 1, 3);
        put_string_field(&mut inner, 2, "too big");
        let mut resp = Vec::new();
        put_len_field(&mut resp, 1, inner.len());
        resp.extend_from_slice(&inner);
        assert_eq!(partial_success(&resp), Some((3, "too big".into())));
        assert_eq!(partial_success(&[]), None);
        assert_eq!(partial_success(&[0x0a, 0x05, 0x08]), None, "truncated");
        let mut empty = Vec::new();
        put_len_field(&mut empty, 1, 0);
        assert_eq!(partial_success(&empty), None, "nothing rejected");
    }
}
