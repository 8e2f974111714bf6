//! Reading MessagePack from a peer: strings borrowed, values skipped without allocating, and a
//! family's `meta` decoded only after its cost in memory is known and allowed.

use rmp::Marker;
use rmpv::Value;

/// What one value costs once decoded into an [`rmpv::Value`] tree: the `Value` itself, every
/// array and map's elements at `size_of::<Value>()` each, and the bytes of every string, binary
/// and extension. A skip computes it without allocating, so that the receiver can refuse a
/// value before it decodes it.
const VALUE_BYTES: u64 = std::mem::size_of::<Value>() as u64;

/// Why a value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Not one well-formed MessagePack value (truncated, or a reserved marker).
    Malformed,
    /// Nested deeper than the limit.
    TooDeep,
    /// Decoding it would take more memory than allowed.
    TooLarge {
        /// What decoding it would take.
        decoded_bytes: u64,
    },
    /// The memory for it could not be had.
    OutOfMemory,
}

/// The bytes of a MessagePack string, without checking that they are UTF-8.
pub(crate) fn read_str_bytes<'a>(rd: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (&marker, rest) = rd.split_first()?;
    let (len, rest) = match marker {
        0xa0..=0xbf => (usize::from(marker & 0x1f), rest),
        0xd9 => {
            let (&len, rest) = rest.split_first()?;
            (usize::from(len), rest)
        }
        0xda => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            (usize::from(u16::from_be_bytes(*len)), rest)
        }
        0xdb => {
            let (len, rest) = rest.split_first_chunk::<4>()?;
            (usize::try_from(u32::from_be_bytes(*len)).ok()?, rest)
        }
        _ => return None,
    };
    let (value, rest) = rest.split_at_checked(len)?;
    *rd = rest;
    Some(value)
}

/// Reads a big-endian length of `width` bytes.
fn read_len(rd: &mut &[u8], width: usize) -> Result<u64, Fault> {
    let (field, rest) = rd.split_at_checked(width).ok_or(Fault::Malformed)?;
    *rd = rest;
    Ok(field.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// Skips one value, without allocating, and returns what decoding it would cost in memory (see
/// [`VALUE_BYTES`]). Every length is checked against the bytes that remain.
pub(crate) fn skip_value(rd: &mut &[u8]) -> Result<u64, Fault> {
    // Values still to skip: iterative, so a deep value cannot overflow the stack.
    let mut pending: u64 = 1;
    let mut cost = VALUE_BYTES;
    while pending > 0 {
        pending -= 1;
        let (&byte, rest) = rd.split_first().ok_or(Fault::Malformed)?;
        *rd = rest;
        // (payload bytes to skip, values that follow, heap bytes the payload takes)
        let (skip, children) = match Marker::from_u8(byte) {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                (0, 0)
            }
            Marker::U8 | Marker::I8 => (1, 0),
            Marker::U16 | Marker::I16 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            Marker::FixStr(n) => (u64::from(n), 0),
            Marker::Str8 | Marker::Bin8 => (read_len(rd, 1)?, 0),
            Marker::Str16 | Marker::Bin16 => (read_len(rd, 2)?, 0),
            Marker::Str32 | Marker::Bin32 => (read_len(rd, 4)?, 0),
            Marker::FixExt1 => (2, 0),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::Ext8 => (read_len(rd, 1)? + 1, 0),
            Marker::Ext16 => (read_len(rd, 2)? + 1, 0),
            Marker::Ext32 => (read_len(rd, 4)? + 1, 0),
            Marker::FixArray(n) => (0, u64::from(n)),
            Marker::Array16 => (0, read_len(rd, 2)?),
            Marker::Array32 => (0, read_len(rd, 4)?),
            Marker::FixMap(n) => (0, 2 * u64::from(n)),
            Marker::Map16 => (0, 2 * read_len(rd, 2)?),
            Marker::Map32 => (0, 2 * read_len(rd, 4)?),
            Marker::Reserved => return Err(Fault::Malformed),
        };
        let skip_len = usize::try_from(skip).map_err(|_| Fault::Malformed)?;
        let (_, rest) = rd.split_at_checked(skip_len).ok_or(Fault::Malformed)?;
        *rd = rest;
        // Each value takes at least one byte: a count larger than what remains is truncated.
        if children > rd.len() as u64 {
            return Err(Fault::Malformed);
        }
        pending = pending.saturating_add(children);
        cost = cost
            .saturating_add(skip)
            .saturating_add(children.saturating_mul(VALUE_BYTES));
    }
    Ok(cost)
}

/// Decodes exactly one value from `bytes` into an [`rmpv::Value`], nested at most `max_depth`
/// deep, if decoding it takes at most `max_bytes` of memory; the cost is found (by
/// [`skip_value`]) before anything is allocated, and every allocation is fallible.
pub(crate) fn decode_value(bytes: &[u8], max_depth: usize, max_bytes: u64) -> Result<Value, Fault> {
    let mut rd = bytes;
    let decoded_bytes = skip_value(&mut rd)?;
    if !rd.is_empty() {
        return Err(Fault::Malformed);
    }
    if decoded_bytes > max_bytes {
        return Err(Fault::TooLarge { decoded_bytes });
    }
    let mut rd = bytes;
    read_value(&mut rd, max_depth)
}

/// `len` bytes, copied into a vector allocated fallibly.
fn owned(rd: &mut &[u8], len: u64) -> Result<Vec<u8>, Fault> {
    let len = usize::try_from(len).map_err(|_| Fault::Malformed)?;
    let (bytes, rest) = rd.split_at_checked(len).ok_or(Fault::Malformed)?;
    *rd = rest;
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| Fault::OutOfMemory)?;
    out.extend_from_slice(bytes);
    Ok(out)
}

fn read_value(rd: &mut &[u8], depth_left: usize) -> Result<Value, Fault> {
    let start = *rd;
    let (&byte, rest) = rd.split_first().ok_or(Fault::Malformed)?;
    *rd = rest;
    let int = |rd: &mut &[u8], width: usize| read_len(rd, width);
    let value = match Marker::from_u8(byte) {
        Marker::Null => Value::Nil,
        Marker::True => Value::Boolean(true),
        Marker::False => Value::Boolean(false),
        Marker::FixPos(n) => Value::from(n),
        Marker::FixNeg(n) => Value::from(n),
        Marker::U8 => Value::from(int(rd, 1)?),
        Marker::U16 => Value::from(int(rd, 2)?),
        Marker::U32 => Value::from(int(rd, 4)?),
        Marker::U64 => Value::from(int(rd, 8)?),
        // Two's complement in `width` bytes, sign-extended: the casts keep the bits.
        Marker::I8 => Value::from(int(rd, 1)? as u8 as i8),
        Marker::I16 => Value::from(int(rd, 2)? as u16 as i16),
        Marker::I32 => Value::from(int(rd, 4)? as u32 as i32),
        Marker::I64 => Value::from(int(rd, 8)? as i64),
        Marker::F32 => Value::F32(f32::from_bits(int(rd, 4)? as u32)),
        Marker::F64 => Value::F64(f64::from_bits(int(rd, 8)?)),
        Marker::FixStr(n) => string(start, rd, u64::from(n))?,
        Marker::Str8 => {
            let len = int(rd, 1)?;
            string(start, rd, len)?
        }
        Marker::Str16 => {
            let len = int(rd, 2)?;
            string(start, rd, len)?
        }
        Marker::Str32 => {
            let len = int(rd, 4)?;
            string(start, rd, len)?
        }
        Marker::Bin8 => {
            let len = int(rd, 1)?;
            Value::Binary(owned(rd, len)?)
        }
        Marker::Bin16 => {
            let len = int(rd, 2)?;
            Value::Binary(owned(rd, len)?)
        }
        Marker::Bin32 => {
            let len = int(rd, 4)?;
            Value::Binary(owned(rd, len)?)
        }
        Marker::FixExt1 => ext(rd, 1)?,
        Marker::FixExt2 => ext(rd, 2)?,
        Marker::FixExt4 => ext(rd, 4)?,
        Marker::FixExt8 => ext(rd, 8)?,
        Marker::FixExt16 => ext(rd, 16)?,
        Marker::Ext8 => {
            let len = int(rd, 1)?;
            ext(rd, len)?
        }
        Marker::Ext16 => {
            let len = int(rd, 2)?;
            ext(rd, len)?
        }
        Marker::Ext32 => {
            let len = int(rd, 4)?;
            ext(rd, len)?
        }
        Marker::FixArray(n) => array(rd, u64::from(n), depth_left)?,
        Marker::Array16 => {
            let len = int(rd, 2)?;
            array(rd, len, depth_left)?
        }
        Marker::Array32 => {
            let len = int(rd, 4)?;
            array(rd, len, depth_left)?
        }
        Marker::FixMap(n) => map(rd, u64::from(n), depth_left)?,
        Marker::Map16 => {
            let len = int(rd, 2)?;
            map(rd, len, depth_left)?
        }
        Marker::Map32 => {
            let len = int(rd, 4)?;
            map(rd, len, depth_left)?
        }
        Marker::Reserved => return Err(Fault::Malformed),
    };
    Ok(value)
}

/// A string; one that is not UTF-8 is kept as rmpv keeps it (its bytes, marked invalid), which
/// only rmpv's own decoder can build.
fn string(start: &[u8], rd: &mut &[u8], len: u64) -> Result<Value, Fault> {
    let bytes = owned(rd, len)?;
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Value::String(s.into())),
        Err(_) => {
            let mut whole = &start[..start.len() - rd.len()];
            rmpv::decode::read_value(&mut whole).map_err(|_| Fault::Malformed)
        }
    }
}

fn ext(rd: &mut &[u8], len: u64) -> Result<Value, Fault> {
    let (&tag, rest) = rd.split_first().ok_or(Fault::Malformed)?;
    *rd = rest;
    Ok(Value::Ext(tag as i8, owned(rd, len)?))
}

fn array(rd: &mut &[u8], len: u64, depth_left: usize) -> Result<Value, Fault> {
    let depth_left = depth_left.checked_sub(1).ok_or(Fault::TooDeep)?;
    let len = usize::try_from(len).map_err(|_| Fault::Malformed)?;
    let mut items = Vec::new();
    items
        .try_reserve_exact(len)
        .map_err(|_| Fault::OutOfMemory)?;
    for _ in 0..len {
        items.push(read_value(rd, depth_left)?);
    }
    Ok(Value::Array(items))
}

fn map(rd: &mut &[u8], len: u64, depth_left: usize) -> Result<Value, Fault> {
    let depth_left = depth_left.checked_sub(1).ok_or(Fault::TooDeep)?;
    let len = usize::try_from(len).map_err(|_| Fault::Malformed)?;
    let mut entries = Vec::new();
    entries
        .try_reserve_exact(len)
        .map_err(|_| Fault::OutOfMemory)?;
    for _ in 0..len {
        let key = read_value(rd, depth_left)?;
        let value = read_value(rd, depth_left)?;
        entries.push((key, value));
    }
    Ok(Value::Map(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    #[test]
    fn decodes_what_rmpv_writes_as_rmpv_reads_it() {
        let value = Value::Map(vec![
            (Value::from("op"), Value::from("compute")),
            (Value::from("neg"), Value::from(-70000i64)),
            (Value::from("small"), Value::from(-3i64)),
            (Value::from("big"), Value::from(u64::MAX)),
            (Value::from("f"), Value::F64(1.5)),
            (Value::from("g"), Value::F32(-2.5)),
            (Value::from("bin"), Value::Binary(vec![7; 300])),
            (Value::from("ext"), Value::Ext(-5, vec![1; 70000])),
            (Value::from("fixext"), Value::Ext(3, vec![1; 4])),
            (
                Value::from("list"),
                Value::Array((0..20).map(Value::from).collect()),
            ),
            (Value::from("long"), Value::from("x".repeat(70000))),
            (Value::Nil, Value::Boolean(true)),
        ]);
        let bytes = encode(&value);
        assert_eq!(decode_value(&bytes, 8, u64::MAX), Ok(value.clone()));
        let expected = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        assert_eq!(decode_value(&bytes, 8, u64::MAX), Ok(expected));
    }

    #[test]
    fn invalid_utf8_is_kept_as_rmpv_keeps_it() {
        let bytes = [0xa2, 0xff, 0xfe];
        let expected = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        assert_eq!(decode_value(&bytes, 8, u64::MAX), Ok(expected));
    }

    #[test]
    fn the_cost_is_known_before_anything_is_decoded() {
        // 1000 nils in an array: 1001 values.
        let mut bytes = vec![0xdc, 0x03, 0xe8];
        bytes.extend(std::iter::repeat_n(0xc0, 1000));
        let cost = skip_value(&mut &bytes[..]).unwrap();
        assert_eq!(cost, 1001 * VALUE_BYTES);
        assert_eq!(
            decode_value(&bytes, 8, cost - 1),
            Err(Fault::TooLarge {
                decoded_bytes: cost
            })
        );
        assert!(decode_value(&bytes, 8, cost).is_ok());
    }

    #[test]
    fn bad_values_are_faults() {
        assert_eq!(
            decode_value(&[0x92, 0xc0], 8, u64::MAX),
            Err(Fault::Malformed)
        );
        assert_eq!(decode_value(&[0xc1], 8, u64::MAX), Err(Fault::Malformed));
        assert_eq!(
            decode_value(&[0xc0, 0xc0], 8, u64::MAX),
            Err(Fault::Malformed)
        );
        assert_eq!(
            decode_value(&[0xdd, 0xff, 0xff, 0xff, 0xff], 8, u64::MAX),
            Err(Fault::Malformed)
        );
        assert_eq!(
            decode_value(&[0x91, 0x91, 0x90], 2, u64::MAX),
            Err(Fault::TooDeep)
        );
        assert!(decode_value(&[0x91, 0x91, 0x90], 3, u64::MAX).is_ok());
        assert_eq!(read_str_bytes(&mut &[0xa3, b'a'][..]), None);
        assert_eq!(read_str_bytes(&mut &[0xd9, 1, b'a'][..]), Some(&b"a"[..]));
    }
}
