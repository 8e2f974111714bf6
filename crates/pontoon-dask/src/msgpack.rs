//! MessagePack as Python's `msgpack` package reads and writes it for Dask (`use_bin_type=True`,
//! `raw=False`, `strict_map_key=False`): a bounded reader into [`Value`] and a writer that
//! produces the bytes `msgpack.dumps` would.

use bytes::Bytes;

use crate::error::MsgpackFault;
use crate::value::Value;

/// Reads one MessagePack value from `data` (a frame: strings and binaries are views of it),
/// nested at most `max_depth` deep. Trailing bytes are an error, as they are to `msgpack.loads`.
pub(crate) fn read(data: &Bytes, max_depth: usize) -> Result<Value, (usize, MsgpackFault)> {
    let mut reader = Reader {
        data,
        pos: 0,
        max_depth,
    };
    let value = reader.value(0)?;
    if reader.pos != data.len() {
        return Err((reader.pos, MsgpackFault::TrailingBytes));
    }
    Ok(value)
}

struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
    max_depth: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], (usize, MsgpackFault)> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or((self.pos, MsgpackFault::Truncated))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, (usize, MsgpackFault)> {
        let s = self.take(n)?;
        Ok(s.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn bytes(&mut self, n: u64) -> Result<Bytes, (usize, MsgpackFault)> {
        let start = self.pos;
        let n = usize::try_from(n).map_err(|_| (start, MsgpackFault::Truncated))?;
        self.take(n)?;
        Ok(self.data.slice(start..start + n))
    }

    fn str(&mut self, n: u64) -> Result<Value, (usize, MsgpackFault)> {
        let at = self.pos;
        let b = self.bytes(n)?;
        match std::str::from_utf8(&b) {
            Ok(s) => Ok(Value::Str(s.to_owned())),
            Err(_) => Err((at, MsgpackFault::InvalidUtf8)),
        }
    }

    /// Checks a container's item count against the bytes left (each item takes at least one),
    /// so nothing is reserved for items that are not there.
    fn count(&self, n: u64, per_item: u64) -> Result<usize, (usize, MsgpackFault)> {
        let left = (self.data.len() - self.pos) as u64;
        if n.saturating_mul(per_item) > left {
            return Err((self.pos, MsgpackFault::Truncated));
        }
        Ok(n as usize)
    }

    fn value(&mut self, depth: usize) -> Result<Value, (usize, MsgpackFault)> {
        let at = self.pos;
        let marker = self.take(1)?[0];
        Ok(match marker {
            0x00..=0x7f => Value::Int(i64::from(marker)),
            0x80..=0x8f => self.map(u64::from(marker & 0x0f), depth, at)?,
            0x90..=0x9f => self.array(u64::from(marker & 0x0f), depth, at)?,
            0xa0..=0xbf => self.str(u64::from(marker & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let n = self.uint(1)?;
                Value::Bin(self.bytes(n)?)
            }
            0xc5 => {
                let n = self.uint(2)?;
                Value::Bin(self.bytes(n)?)
            }
            0xc6 => {
                let n = self.uint(4)?;
                Value::Bin(self.bytes(n)?)
            }
            0xc7..=0xc9 => {
                let n = self.uint(1 << (marker - 0xc7))?;
                let tag = self.take(1)?[0] as i8;
                Value::Ext(tag, self.bytes(n)?)
            }
            0xca => Value::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.uint(8)?)),
            0xcc => Value::Int(self.uint(1)? as i64),
            0xcd => Value::Int(self.uint(2)? as i64),
            0xce => Value::Int(self.uint(4)? as i64),
            0xcf => {
                let v = self.uint(8)?;
                i64::try_from(v).map_or(Value::UInt(v), Value::Int)
            }
            0xd0 => Value::Int(i64::from(self.uint(1)? as u8 as i8)),
            0xd1 => Value::Int(i64::from(self.uint(2)? as u16 as i16)),
            0xd2 => Value::Int(i64::from(self.uint(4)? as u32 as i32)),
            0xd3 => Value::Int(self.uint(8)? as i64),
            0xd4..=0xd8 => {
                let tag = self.take(1)?[0] as i8;
                Value::Ext(tag, self.bytes(1 << (marker - 0xd4))?)
            }
            0xd9 => {
                let n = self.uint(1)?;
                self.str(n)?
            }
            0xda => {
                let n = self.uint(2)?;
                self.str(n)?
            }
            0xdb => {
                let n = self.uint(4)?;
                self.str(n)?
            }
            0xdc => {
                let n = self.uint(2)?;
                self.array(n, depth, at)?
            }
            0xdd => {
                let n = self.uint(4)?;
                self.array(n, depth, at)?
            }
            0xde => {
                let n = self.uint(2)?;
                self.map(n, depth, at)?
            }
            0xdf => {
                let n = self.uint(4)?;
                self.map(n, depth, at)?
            }
            0xe0..=0xff => Value::Int(i64::from(marker as i8)),
            0xc1 => return Err((at, MsgpackFault::ReservedMarker)),
        })
    }

    fn array(&mut self, n: u64, depth: usize, at: usize) -> Result<Value, (usize, MsgpackFault)> {
        if depth >= self.max_depth {
            return Err((at, MsgpackFault::TooDeep));
        }
        let n = self.count(n, 1)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::List(items))
    }

    fn map(&mut self, n: u64, depth: usize, at: usize) -> Result<Value, (usize, MsgpackFault)> {
        if depth >= self.max_depth {
            return Err((at, MsgpackFault::TooDeep));
        }
        let n = self.count(n, 2)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            items.push((key, value));
        }
        Ok(Value::Map(items))
    }
}

/// The MessagePack writer: the same bytes Python's `msgpack.dumps(..., use_bin_type=True)`
/// writes for the same value (smallest int forms, floats as float 64, str 8 for short text).
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) out: Vec<u8>,
}

impl Writer {
    pub(crate) fn nil(&mut self) {
        self.out.push(0xc0);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.out.push(if v { 0xc3 } else { 0xc2 });
    }

    pub(crate) fn int(&mut self, v: i64) {
        if v >= 0 {
            self.uint(v as u64);
        } else if v >= -32 {
            self.out.push(v as i8 as u8);
        } else if v >= i64::from(i8::MIN) {
            self.out.push(0xd0);
            self.out.push(v as i8 as u8);
        } else if v >= i64::from(i16::MIN) {
            self.out.push(0xd1);
            self.out.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= i64::from(i32::MIN) {
            self.out.push(0xd2);
            self.out.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            self.out.push(0xd3);
            self.out.extend_from_slice(&v.to_be_bytes());
        }
    }

    pub(crate) fn uint(&mut self, v: u64) {
        if v < 128 {
            self.out.push(v as u8);
        } else if v <= u64::from(u8::MAX) {
            self.out.push(0xcc);
            self.out.push(v as u8);
        } else if v <= u64::from(u16::MAX) {
            self.out.push(0xcd);
            self.out.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= u64::from(u32::MAX) {
            self.out.push(0xce);
            self.out.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            self.out.push(0xcf);
            self.out.extend_from_slice(&v.to_be_bytes());
        }
    }

    pub(crate) fn float(&mut self, v: f64) {
        self.out.push(0xcb);
        self.out.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    fn len(&mut self, n: usize, fix: Option<(u8, usize)>, m8: Option<u8>, m16: u8, m32: u8) {
        match (fix, m8) {
            (Some((base, max)), _) if n <= max => self.out.push(base | n as u8),
            (_, Some(m8)) if n <= 0xff => {
                self.out.push(m8);
                self.out.push(n as u8);
            }
            _ if n <= 0xffff => {
                self.out.push(m16);
                self.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => {
                self.out.push(m32);
                self.out.extend_from_slice(&(n as u32).to_be_bytes());
            }
        }
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.len(s.len(), Some((0xa0, 31)), Some(0xd9), 0xda, 0xdb);
        self.out.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn bin(&mut self, b: &[u8]) {
        self.len(b.len(), None, Some(0xc4), 0xc5, 0xc6);
        self.out.extend_from_slice(b);
    }

    pub(crate) fn array_len(&mut self, n: usize) {
        self.len(n, Some((0x90, 15)), None, 0xdc, 0xdd);
    }

    pub(crate) fn map_len(&mut self, n: usize) {
        self.len(n, Some((0x80, 15)), None, 0xde, 0xdf);
    }

    pub(crate) fn ext(&mut self, tag: i8, data: &[u8]) {
        let fixed = match data.len() {
            1 => Some(0xd4),
            2 => Some(0xd5),
            4 => Some(0xd6),
            8 => Some(0xd7),
            16 => Some(0xd8),
            _ => None,
        };
        match fixed {
            Some(m) => self.out.push(m),
            None => self.len(data.len(), None, Some(0xc7), 0xc8, 0xc9),
        }
        self.out.push(tag as u8);
        self.out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_take_the_forms_python_msgpack_writes() {
        let cases: [(i64, &[u8]); 7] = [
            (5, &[0x05]),
            (200, &[0xcc, 200]),
            (-1, &[0xff]),
            (-33, &[0xd0, 0xdf]),
            (70_000, &[0xce, 0, 1, 0x11, 0x70]),
            (-40_000, &[0xd2, 0xff, 0xff, 0x63, 0xc0]),
            (1 << 40, &[0xcf, 0, 0, 1, 0, 0, 0, 0, 0]),
        ];
        for (v, bytes) in cases {
            let mut w = Writer::default();
            w.int(v);
            assert_eq!(w.out, bytes, "{v}");
            let back = read(&Bytes::from(w.out), 8).unwrap();
            assert_eq!(back, Value::Int(v));
        }
    }

    #[test]
    fn counts_larger_than_the_input_are_refused_before_reserving() {
        let data = Bytes::from_static(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(read(&data, 8), Err((5, MsgpackFault::Truncated)));
        let deep = Bytes::from(vec![0x91u8; 200]);
        assert!(matches!(read(&deep, 128), Err((_, MsgpackFault::TooDeep))));
    }
}
