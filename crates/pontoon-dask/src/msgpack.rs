//! MessagePack as Python's `msgpack` package reads and writes it for Dask (`use_bin_type=True`,
//! `raw=False`, `strict_map_key=False`): a bounded reader into [`Value`] and a writer that
//! produces the bytes `msgpack.dumps` would.

use std::ops::Range;

use bytes::Bytes;

use crate::error::MsgpackFault;
use crate::value::Value;

/// What the reader builds: an owned [`Value`] (frame 0 and `msgpack` objects, given to the
/// user) or nothing at all (`Checked`, in the tests: the reader as a check alone).
pub(crate) trait Build<'a>: Sized {
    fn nil() -> Self;
    fn bool(v: bool) -> Self;
    fn int(v: i64) -> Self;
    fn uint(v: u64) -> Self;
    fn float(v: f64) -> Self;
    fn str(s: &'a str) -> Self;
    fn bin(frame: &'a Bytes, range: Range<usize>) -> Self;
    fn ext(tag: i8, frame: &'a Bytes, range: Range<usize>) -> Self;
    fn list(items: Vec<Self>) -> Self;
    fn map(items: Vec<(Self, Self)>) -> Self;
}

impl<'a> Build<'a> for Value {
    fn nil() -> Self {
        Value::Nil
    }
    fn bool(v: bool) -> Self {
        Value::Bool(v)
    }
    fn int(v: i64) -> Self {
        Value::Int(v)
    }
    fn uint(v: u64) -> Self {
        Value::UInt(v)
    }
    fn float(v: f64) -> Self {
        Value::Float(v)
    }
    fn str(s: &'a str) -> Self {
        Value::Str(s.to_owned())
    }
    fn bin(frame: &'a Bytes, range: Range<usize>) -> Self {
        Value::Bin(frame.slice(range))
    }
    fn ext(tag: i8, frame: &'a Bytes, range: Range<usize>) -> Self {
        Value::Ext(tag, frame.slice(range))
    }
    fn list(items: Vec<Self>) -> Self {
        Value::List(items)
    }
    fn map(items: Vec<(Self, Self)>) -> Self {
        Value::Map(items)
    }
}

/// Building nothing: [`read`] as a check alone (a `Vec` of a zero-sized type never allocates).
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Checked;

#[cfg(test)]
impl<'a> Build<'a> for Checked {
    fn nil() -> Self {
        Checked
    }
    fn bool(_: bool) -> Self {
        Checked
    }
    fn int(_: i64) -> Self {
        Checked
    }
    fn uint(_: u64) -> Self {
        Checked
    }
    fn float(_: f64) -> Self {
        Checked
    }
    fn str(_: &'a str) -> Self {
        Checked
    }
    fn bin(_: &'a Bytes, _: Range<usize>) -> Self {
        Checked
    }
    fn ext(_: i8, _: &'a Bytes, _: Range<usize>) -> Self {
        Checked
    }
    fn list(_: Vec<Self>) -> Self {
        Checked
    }
    fn map(_: Vec<(Self, Self)>) -> Self {
        Checked
    }
}

/// A MessagePack value borrowing the frame it was read from: what sub-headers are read into.
/// Lists and maps are read lazily ([`Items`]): the frame was checked whole first
/// ([`read_raw`]), so reading a field costs no allocation, only a walk over the bytes before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Raw<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
    Bin(&'a [u8]),
    Ext(i8, &'a [u8]),
    List(Items<'a>),
    Map(Items<'a>),
}

/// The keys of Dask's sub-headers (and the numpy sub-header inside them) that decoding reads,
/// named by [`Field`] (in its order): a lookup is an index, and a key misspelt does not compile.
const FIELDS: [&str; 18] = [
    "num-sub-frames",
    "compression",
    "split-num-sub-frames",
    "split-offsets",
    "is-collection",
    "serializer",
    "writeable",
    "type-serialized",
    "sub-header",
    "sub-headers",
    "frame-lengths",
    "key",
    "pickled-obj",
    "pickle",
    "dtype",
    "strides",
    "shape",
    "broadcast_to",
];

/// A key of [`FIELDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    NumSubFrames,
    Compression,
    SplitNumSubFrames,
    SplitOffsets,
    IsCollection,
    Serializer,
    Writeable,
    TypeSerialized,
    SubHeader,
    SubHeaders,
    FrameLengths,
    Key,
    PickledObj,
    Pickle,
    Dtype,
    Strides,
    Shape,
    BroadcastTo,
}

/// A sub-header's [`FIELDS`], found in one walk: asking for each no longer walks the map again.
/// It keeps where each value starts, not the value: a few words to move and to fill, where a
/// [`Raw`] a field would be most of a kilobyte, copied each time the fields are handed on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields<'a> {
    /// The bytes the map lies in.
    data: &'a [u8],
    /// Where the value of each of [`FIELDS`] starts in `data`; 0 for a field the map lacks (no
    /// value of a map starts at 0: the map's marker and the value's key come first).
    at: [usize; FIELDS.len()],
}

impl<'a> Fields<'a> {
    /// The value under `field` (the first, if its key repeats).
    pub(crate) fn get(&self, field: Field) -> Option<Raw<'a>> {
        match self.at[field as usize] {
            0 => None,
            pos => Cursor {
                data: self.data,
                pos,
            }
            .value_within(),
        }
    }
}

/// The items of a [`Raw`] list (`count` values) or map (`count` key-value pairs), starting at
/// `start` in `data`, a frame [`read_raw`] checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Items<'a> {
    data: &'a [u8],
    start: usize,
    count: usize,
    values: usize,
}

impl<'a> Items<'a> {
    /// Items of a list; pairs of a map.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The values one after the other (a map's keys and values alternating).
    pub(crate) fn iter(&self) -> ItemsIter<'a> {
        ItemsIter {
            cursor: Cursor {
                data: self.data,
                pos: self.start,
            },
            left: self.values,
        }
    }
}

impl<'a> IntoIterator for Items<'a> {
    type Item = Raw<'a>;
    type IntoIter = ItemsIter<'a>;

    fn into_iter(self) -> ItemsIter<'a> {
        self.iter()
    }
}

/// The values of [`Items`], read as they are asked for.
pub(crate) struct ItemsIter<'a> {
    cursor: Cursor<'a>,
    left: usize,
}

impl<'a> Iterator for ItemsIter<'a> {
    type Item = Raw<'a>;

    fn next(&mut self) -> Option<Raw<'a>> {
        self.left = self.left.checked_sub(1)?;
        // The frame was checked whole, so this fails only on a bug: the items end there.
        let value = self.cursor.value();
        if value.is_none() {
            self.left = 0;
        }
        value
    }
}

impl<'a> Raw<'a> {
    /// The value under string key `key`, if this is a map that has it (the first, if the key
    /// repeats), by a walk over the map: the tests' way to read any key; decoding reads
    /// [`Fields`].
    #[cfg(test)]
    pub(crate) fn get(self, key: &str) -> Option<Raw<'a>> {
        let Raw::Map(items) = self else {
            return None;
        };
        let mut cursor = Cursor {
            data: items.data,
            pos: items.start,
        };
        for _ in 0..items.count {
            if cursor.key()? == Some(key.as_bytes()) {
                return cursor.value();
            }
            cursor.skip()?;
        }
        None
    }

    /// The fields of [`FIELDS`] this map has, found in one walk over it (the first of a
    /// repeated key); nothing if this is not a map.
    pub(crate) fn fields(self) -> Fields<'a> {
        let mut fields = Fields {
            data: &[],
            at: [0; FIELDS.len()],
        };
        let Raw::Map(items) = self else {
            return fields;
        };
        fields.data = items.data;
        let mut cursor = Cursor {
            data: items.data,
            pos: items.start,
        };
        for _ in 0..items.count {
            let Some(key) = cursor.key() else {
                break;
            };
            let slot = key.and_then(|k| FIELDS.iter().position(|f| f.as_bytes() == k));
            if let Some(at @ 0) = slot.and_then(|i| fields.at.get_mut(i)) {
                *at = cursor.pos;
            }
            if cursor.skip().is_none() {
                break;
            }
        }
        fields
    }

    pub(crate) fn as_str(self) -> Option<&'a str> {
        match self {
            Raw::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_i64(self) -> Option<i64> {
        match self {
            Raw::Int(v) => Some(v),
            Raw::UInt(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    pub(crate) fn as_list(self) -> Option<Items<'a>> {
        match self {
            Raw::List(items) => Some(items),
            _ => None,
        }
    }

    /// The value as an owned [`Value`]; binaries become views of `frame`, which they lie in.
    pub(crate) fn to_value(self, frame: &Bytes) -> Value {
        match self {
            Raw::Nil => Value::Nil,
            Raw::Bool(v) => Value::Bool(v),
            Raw::Int(v) => Value::Int(v),
            Raw::UInt(v) => Value::UInt(v),
            Raw::Float(v) => Value::Float(v),
            Raw::Str(s) => Value::Str(s.to_owned()),
            Raw::Bin(b) => Value::Bin(frame.slice_ref(b)),
            Raw::Ext(tag, b) => Value::Ext(tag, frame.slice_ref(b)),
            Raw::List(items) => Value::List(items.iter().map(|v| v.to_value(frame)).collect()),
            Raw::Map(items) => {
                let mut values = items.iter();
                let mut pairs = Vec::with_capacity(items.len());
                while let (Some(k), Some(v)) = (values.next(), values.next()) {
                    pairs.push((k.to_value(frame), v.to_value(frame)));
                }
                Value::Map(pairs)
            }
        }
    }
}

/// Reads one MessagePack value from `data` as a [`Raw`]: checked whole first, with the bounds
/// and errors of [`read`], then read lazily.
pub(crate) fn read_raw(data: &Bytes, max_depth: usize) -> Result<Raw<'_>, (usize, MsgpackFault)> {
    let mut checker = Cursor { data, pos: 0 };
    checker.check(0, max_depth)?;
    if checker.pos != data.len() {
        return Err((checker.pos, MsgpackFault::TrailingBytes));
    }
    // The value spans the frame: a list or map is not walked again to find its end.
    Cursor { data, pos: 0 }
        .value_within()
        .ok_or((0, MsgpackFault::Truncated))
}

/// `bytes` as text, if they are UTF-8. ASCII (every key and name Dask writes) is told apart
/// first, cheaply: the general check costs more than the short strings it looks at.
fn text(bytes: &[u8]) -> Option<&str> {
    if is_ascii(bytes) {
        // SAFETY: every byte is below 0x80, so this is ASCII, which is UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

/// Whether `bytes` are ASCII, with one or two word loads for the short strings of keys and
/// names (up to 16 bytes, two loads that may overlap), where the general check costs most.
fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(HIGH, u64::from_ne_bytes)
    };
    let half = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(HIGH, |w| u64::from(u32::from_ne_bytes(w)))
    };
    let n = bytes.len();
    match n {
        0..4 => bytes.iter().all(|&b| b < 0x80),
        4..8 => (half(0) | half(n - 4)) & HIGH == 0,
        8..=16 => (word(0) | word(n - 8)) & HIGH == 0,
        _ => bytes.is_ascii(),
    }
}

/// The lazy reader over a checked frame. Every read is still bounded (`get`, no indexing), so
/// that a bug cannot read past the frame; a failure is `None`.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn uint(&mut self, n: usize) -> Option<u64> {
        let s = self.take(n)?;
        Some(s.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn len(&mut self, n: u64) -> Option<&'a [u8]> {
        self.take(usize::try_from(n).ok()?)
    }

    fn need(&mut self, n: usize) -> Result<&'a [u8], (usize, MsgpackFault)> {
        self.take(n).ok_or((self.pos, MsgpackFault::Truncated))
    }

    fn need_uint(&mut self, n: usize) -> Result<u64, (usize, MsgpackFault)> {
        let s = self.need(n)?;
        Ok(s.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Moves past one value, checking it as [`read`] does, with the same errors at the same
    /// offsets: lengths inside the frame, counts no larger than the bytes left, nesting at most
    /// `max_depth`, `str` UTF-8, no reserved marker.
    fn check(&mut self, depth: usize, max_depth: usize) -> Result<(), (usize, MsgpackFault)> {
        let at = self.pos;
        let marker = self.need(1)?[0];
        // (bytes that follow, whether they are text) or (items that follow, per item).
        let (payload, text, items) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => return Ok(()),
            0x80..=0x8f => (0, false, Some((u64::from(marker & 0x0f), 2))),
            0x90..=0x9f => (0, false, Some((u64::from(marker & 0x0f), 1))),
            0xa0..=0xbf => (u64::from(marker & 0x1f), true, None),
            0xc4..=0xc6 => (self.need_uint(1 << (marker - 0xc4))?, false, None),
            0xc7..=0xc9 => {
                let n = self.need_uint(1 << (marker - 0xc7))?;
                self.need(1)?;
                (n, false, None)
            }
            0xca => (4, false, None),
            0xcb => (8, false, None),
            0xcc..=0xcf => (1 << (marker - 0xcc), false, None),
            0xd0..=0xd3 => (1 << (marker - 0xd0), false, None),
            0xd4..=0xd8 => {
                self.need(1)?;
                (1 << (marker - 0xd4), false, None)
            }
            0xd9..=0xdb => (self.need_uint(1 << (marker - 0xd9))?, true, None),
            0xdc | 0xdd => (0, false, Some((self.need_uint(2 << (marker - 0xdc))?, 1))),
            0xde | 0xdf => (0, false, Some((self.need_uint(2 << (marker - 0xde))?, 2))),
            0xc1 => return Err((at, MsgpackFault::ReservedMarker)),
        };
        if let Some((n, per_item)) = items {
            if depth >= max_depth {
                return Err((at, MsgpackFault::TooDeep));
            }
            let left = (self.data.len() - self.pos) as u64;
            if n.saturating_mul(per_item) > left {
                return Err((self.pos, MsgpackFault::Truncated));
            }
            for _ in 0..n * per_item {
                self.check(depth + 1, max_depth)?;
            }
            return Ok(());
        }
        let start = self.pos;
        let n = usize::try_from(payload).map_err(|_| (start, MsgpackFault::Truncated))?;
        let bytes = self.need(n)?;
        // ASCII (every key Dask writes) is UTF-8; the full check only for the rest.
        if text && !is_ascii(bytes) && std::str::from_utf8(bytes).is_err() {
            return Err((start, MsgpackFault::InvalidUtf8));
        }
        Ok(())
    }

    /// Moves past a key: `Some(Some(bytes))` for a `str`, `Some(None)` for any other key.
    fn key(&mut self) -> Option<Option<&'a [u8]>> {
        let marker = *self.data.get(self.pos)?;
        let n = match marker {
            0xa0..=0xbf => {
                self.pos += 1;
                u64::from(marker & 0x1f)
            }
            0xd9..=0xdb => {
                self.pos += 1;
                self.uint(1 << (marker - 0xd9))?
            }
            _ => {
                self.skip()?;
                return Some(None);
            }
        };
        Some(Some(self.len(n)?))
    }

    /// Moves past one value, walking (not recursing) through containers: each step consumes
    /// at least one byte, so this is linear in the bytes skipped.
    fn skip(&mut self) -> Option<()> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let marker = self.take(1)?[0];
            let (payload, items): (u64, u64) = match marker {
                0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
                0x80..=0x8f => (0, u64::from(marker & 0x0f) * 2),
                0x90..=0x9f => (0, u64::from(marker & 0x0f)),
                0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
                0xc4..=0xc6 => (self.uint(1 << (marker - 0xc4))?, 0),
                0xc7..=0xc9 => (self.uint(1 << (marker - 0xc7))? + 1, 0),
                0xca => (4, 0),
                0xcb => (8, 0),
                0xcc..=0xcf => (1 << (marker - 0xcc), 0),
                0xd0..=0xd3 => (1 << (marker - 0xd0), 0),
                0xd4..=0xd8 => ((1 << (marker - 0xd4)) + 1, 0),
                0xd9..=0xdb => (self.uint(1 << (marker - 0xd9))?, 0),
                0xdc | 0xdd => (0, self.uint(2 << (marker - 0xdc))?),
                0xde | 0xdf => (0, self.uint(2 << (marker - 0xde))?.checked_mul(2)?),
                0xc1 => return None,
            };
            self.len(payload)?;
            pending = pending.checked_add(items)?;
        }
        Some(())
    }

    fn items(&mut self, n: u64, per_item: usize) -> Option<Items<'a>> {
        let count = usize::try_from(n).ok()?;
        let values = count.checked_mul(per_item)?;
        let start = self.pos;
        for _ in 0..values {
            self.skip()?;
        }
        Some(Items {
            data: self.data,
            start,
            count,
            values,
        })
    }

    /// [`Cursor::value`] for the last value of the data: a list's or map's items are not
    /// walked (the cursor is left at their start).
    fn value_within(&mut self) -> Option<Raw<'a>> {
        let at = self.pos;
        let marker = self.take(1)?[0];
        let (n, per_item) = match marker {
            0x80..=0x8f => (u64::from(marker & 0x0f), 2),
            0x90..=0x9f => (u64::from(marker & 0x0f), 1),
            0xdc | 0xdd => (self.uint(2 << (marker - 0xdc))?, 1),
            0xde | 0xdf => (self.uint(2 << (marker - 0xde))?, 2),
            _ => {
                self.pos = at;
                return self.value();
            }
        };
        let count = usize::try_from(n).ok()?;
        let items = Items {
            data: self.data,
            start: self.pos,
            count,
            values: count.checked_mul(per_item)?,
        };
        Some(if per_item == 2 {
            Raw::Map(items)
        } else {
            Raw::List(items)
        })
    }

    fn value(&mut self) -> Option<Raw<'a>> {
        let marker = self.take(1)?[0];
        Some(match marker {
            0x00..=0x7f => Raw::Int(i64::from(marker)),
            0x80..=0x8f => Raw::Map(self.items(u64::from(marker & 0x0f), 2)?),
            0x90..=0x9f => Raw::List(self.items(u64::from(marker & 0x0f), 1)?),
            0xa0..=0xbf => Raw::Str(text(self.len(u64::from(marker & 0x1f))?)?),
            0xc0 => Raw::Nil,
            0xc2 => Raw::Bool(false),
            0xc3 => Raw::Bool(true),
            0xc4..=0xc6 => {
                let n = self.uint(1 << (marker - 0xc4))?;
                Raw::Bin(self.len(n)?)
            }
            0xc7..=0xc9 => {
                let n = self.uint(1 << (marker - 0xc7))?;
                let tag = self.take(1)?[0] as i8;
                Raw::Ext(tag, self.len(n)?)
            }
            0xca => Raw::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => Raw::Float(f64::from_bits(self.uint(8)?)),
            0xcc => Raw::Int(self.uint(1)? as i64),
            0xcd => Raw::Int(self.uint(2)? as i64),
            0xce => Raw::Int(self.uint(4)? as i64),
            0xcf => {
                let v = self.uint(8)?;
                i64::try_from(v).map_or(Raw::UInt(v), Raw::Int)
            }
            0xd0 => Raw::Int(i64::from(self.uint(1)? as u8 as i8)),
            0xd1 => Raw::Int(i64::from(self.uint(2)? as u16 as i16)),
            0xd2 => Raw::Int(i64::from(self.uint(4)? as u32 as i32)),
            0xd3 => Raw::Int(self.uint(8)? as i64),
            0xd4..=0xd8 => {
                let tag = self.take(1)?[0] as i8;
                Raw::Ext(tag, self.len(1 << (marker - 0xd4))?)
            }
            0xd9..=0xdb => {
                let n = self.uint(1 << (marker - 0xd9))?;
                Raw::Str(text(self.len(n)?)?)
            }
            0xdc | 0xdd => {
                let n = self.uint(2 << (marker - 0xdc))?;
                Raw::List(self.items(n, 1)?)
            }
            0xde | 0xdf => {
                let n = self.uint(2 << (marker - 0xde))?;
                Raw::Map(self.items(n, 2)?)
            }
            0xe0..=0xff => Raw::Int(i64::from(marker as i8)),
            0xc1 => return None,
        })
    }
}

/// Reads one MessagePack value from `data` (a frame), nested at most `max_depth` deep, as a
/// [`Value`] (strings and binaries views of `data`) or a [`Raw`]. Trailing bytes are an error,
/// as they are to `msgpack.loads`.
pub(crate) fn read<'a, T: Build<'a>>(
    data: &'a Bytes,
    max_depth: usize,
) -> Result<T, (usize, MsgpackFault)> {
    read_hooked(data, max_depth, &mut Plain).map_err(|fault| match fault {
        Fault::Msgpack(offset, fault) => (offset, fault),
        Fault::Hook(never) => match never {},
    })
}

/// [`read`] with `hook` given each map as soon as its items are read, as Python's
/// `msgpack.loads(object_hook=...)` does: what the hook returns stands in for the map.
pub(crate) fn read_hooked<'a, T: Build<'a>, H: Hook<T>>(
    data: &'a Bytes,
    max_depth: usize,
    hook: &mut H,
) -> Result<T, Fault<H::Error>> {
    let mut reader = Reader {
        data,
        pos: 0,
        max_depth,
        hook,
    };
    let value = reader.value(0)?;
    if reader.pos != data.len() {
        return Err(Fault::Msgpack(reader.pos, MsgpackFault::TrailingBytes));
    }
    Ok(value)
}

/// What [`read_hooked`] does with the maps it reads.
pub(crate) trait Hook<T> {
    type Error;
    /// Whether a map of one entry, `{"__Serialized__": n}` or `{"__Pickled__": n}` with `n` a
    /// fixint (0 to 127; the hook refuses 0 as the general path does), goes to [`Hook::placeholder`] without being built: Dask's frame 0 is
    /// mostly such maps, and building one costs a string and a vector dropped at once.
    const PLACEHOLDERS: bool;
    /// The value that stands in for such a map (`pickled` for `__Pickled__`).
    fn placeholder(&mut self, pickled: bool, offset: i64) -> Result<T, Self::Error>;
    /// The value that stands in for a map read whole (its keys and values hooked already).
    fn map(&mut self, items: Vec<(T, T)>) -> Result<T, Self::Error>;
}

/// A fault [`read_hooked`] stops at: in the MessagePack (at an offset), or the hook's.
#[derive(Debug, PartialEq)]
pub(crate) enum Fault<E> {
    Msgpack(usize, MsgpackFault),
    Hook(E),
}

impl<E> From<(usize, MsgpackFault)> for Fault<E> {
    fn from((offset, fault): (usize, MsgpackFault)) -> Self {
        Fault::Msgpack(offset, fault)
    }
}

/// No hook: a map is a map.
struct Plain;

impl<'a, T: Build<'a>> Hook<T> for Plain {
    type Error = std::convert::Infallible;
    const PLACEHOLDERS: bool = false;
    fn placeholder(&mut self, _: bool, _: i64) -> Result<T, Self::Error> {
        unreachable!("Plain::PLACEHOLDERS is false: no placeholder is handed to it")
    }
    fn map(&mut self, items: Vec<(T, T)>) -> Result<T, Self::Error> {
        Ok(T::map(items))
    }
}

/// A placeholder's key as Dask writes it, with its `fixstr` marker.
const SERIALIZED_KEY: &[u8] = b"\xae__Serialized__";
const PICKLED_KEY: &[u8] = b"\xab__Pickled__";

struct Reader<'a, 'h, H> {
    data: &'a Bytes,
    pos: usize,
    max_depth: usize,
    hook: &'h mut H,
}

impl<'a, H> Reader<'a, '_, H> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], (usize, MsgpackFault)> {
        let data: &'a Bytes = self.data;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or((self.pos, MsgpackFault::Truncated))?;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, (usize, MsgpackFault)> {
        let s = self.take(n)?;
        Ok(s.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn range(&mut self, n: u64) -> Result<Range<usize>, (usize, MsgpackFault)> {
        let start = self.pos;
        let n = usize::try_from(n).map_err(|_| (start, MsgpackFault::Truncated))?;
        self.take(n)?;
        Ok(start..start + n)
    }

    fn bin<T: Build<'a>>(&mut self, n: u64) -> Result<T, (usize, MsgpackFault)> {
        let range = self.range(n)?;
        Ok(T::bin(self.data, range))
    }

    fn str<T: Build<'a>>(&mut self, n: u64) -> Result<T, (usize, MsgpackFault)> {
        let at = self.pos;
        let range = self.range(n)?;
        let data: &'a Bytes = self.data;
        match text(&data[range]) {
            Some(s) => Ok(T::str(s)),
            None => Err((at, MsgpackFault::InvalidUtf8)),
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

    fn value<T: Build<'a>>(&mut self, depth: usize) -> Result<T, Fault<H::Error>>
    where
        H: Hook<T>,
    {
        let at = self.pos;
        let marker = self.take(1)?[0];
        Ok(match marker {
            0x00..=0x7f => T::int(i64::from(marker)),
            0x80..=0x8f => self.map(u64::from(marker & 0x0f), depth, at)?,
            0x90..=0x9f => self.array(u64::from(marker & 0x0f), depth, at)?,
            0xa0..=0xbf => self.str(u64::from(marker & 0x1f))?,
            0xc0 => T::nil(),
            0xc2 => T::bool(false),
            0xc3 => T::bool(true),
            0xc4..=0xc6 => {
                let n = self.uint(1 << (marker - 0xc4))?;
                self.bin(n)?
            }
            0xc7..=0xc9 => {
                let n = self.uint(1 << (marker - 0xc7))?;
                let tag = self.take(1)?[0] as i8;
                let range = self.range(n)?;
                T::ext(tag, self.data, range)
            }
            0xca => T::float(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => T::float(f64::from_bits(self.uint(8)?)),
            0xcc => T::int(self.uint(1)? as i64),
            0xcd => T::int(self.uint(2)? as i64),
            0xce => T::int(self.uint(4)? as i64),
            0xcf => {
                let v = self.uint(8)?;
                i64::try_from(v).map_or(T::uint(v), T::int)
            }
            0xd0 => T::int(i64::from(self.uint(1)? as u8 as i8)),
            0xd1 => T::int(i64::from(self.uint(2)? as u16 as i16)),
            0xd2 => T::int(i64::from(self.uint(4)? as u32 as i32)),
            0xd3 => T::int(self.uint(8)? as i64),
            0xd4..=0xd8 => {
                let tag = self.take(1)?[0] as i8;
                let range = self.range(1 << (marker - 0xd4))?;
                T::ext(tag, self.data, range)
            }
            0xd9..=0xdb => {
                let n = self.uint(1 << (marker - 0xd9))?;
                self.str(n)?
            }
            0xdc | 0xdd => {
                let n = self.uint(2 << (marker - 0xdc))?;
                self.array(n, depth, at)?
            }
            0xde | 0xdf => {
                let n = self.uint(2 << (marker - 0xde))?;
                self.map(n, depth, at)?
            }
            0xe0..=0xff => T::int(i64::from(marker as i8)),
            0xc1 => return Err(Fault::Msgpack(at, MsgpackFault::ReservedMarker)),
        })
    }

    fn array<T: Build<'a>>(&mut self, n: u64, depth: usize, at: usize) -> Result<T, Fault<H::Error>>
    where
        H: Hook<T>,
    {
        if depth >= self.max_depth {
            return Err(Fault::Msgpack(at, MsgpackFault::TooDeep));
        }
        let n = self.count(n, 1)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(T::list(items))
    }

    fn map<T: Build<'a>>(&mut self, n: u64, depth: usize, at: usize) -> Result<T, Fault<H::Error>>
    where
        H: Hook<T>,
    {
        if depth >= self.max_depth {
            return Err(Fault::Msgpack(at, MsgpackFault::TooDeep));
        }
        if H::PLACEHOLDERS
            && n == 1
            && let Some((pickled, offset)) = self.placeholder()
        {
            return self.hook.placeholder(pickled, offset).map_err(Fault::Hook);
        }
        let n = self.count(n, 2)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            items.push((key, value));
        }
        self.hook.map(items).map_err(Fault::Hook)
    }

    /// At a map's one entry: if it is a placeholder's key and a fixint, moves past both and
    /// says which placeholder and its offset.
    fn placeholder(&mut self) -> Option<(bool, i64)> {
        let rest = self.data.get(self.pos..)?;
        let (pickled, key) = if rest.starts_with(SERIALIZED_KEY) {
            (false, SERIALIZED_KEY.len())
        } else if rest.starts_with(PICKLED_KEY) {
            (true, PICKLED_KEY.len())
        } else {
            return None;
        };
        match rest.get(key) {
            Some(&offset @ 0x00..=0x7f) => {
                self.pos += key + 1;
                Some((pickled, i64::from(offset)))
            }
            _ => None,
        }
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
    fn the_word_ascii_check_agrees_with_the_byte_one_at_every_length_and_position() {
        for len in 0..40 {
            let plain = vec![b'k'; len];
            assert!(is_ascii(&plain), "{len}");
            for at in 0..len {
                let mut high = plain.clone();
                high[at] = 0x80;
                assert!(!is_ascii(&high), "{len} {at}");
            }
        }
    }

    #[test]
    fn text_is_what_from_utf8_says_whatever_the_length() {
        let long = "k".repeat(33);
        let cases: [&[u8]; 8] = [
            b"",
            b"op",
            &long.as_bytes()[..32],
            long.as_bytes(),
            "caf\u{e9}".as_bytes(),
            b"caf\xe9",
            b"\xff",
            b"\x7f\x00",
        ];
        for case in cases {
            assert_eq!(text(case), std::str::from_utf8(case).ok(), "{case:?}");
        }
    }

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
            let data = Bytes::from(w.out);
            let back: Value = read(&data, 8).unwrap();
            assert_eq!(back, Value::Int(v));
        }
    }

    #[test]
    fn counts_larger_than_the_input_are_refused_before_reserving() {
        let data = Bytes::from_static(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(read::<Value>(&data, 8), Err((5, MsgpackFault::Truncated)));
        let deep = Bytes::from(vec![0x91u8; 200]);
        assert!(matches!(
            read_raw(&deep, 128),
            Err((_, MsgpackFault::TooDeep))
        ));
    }

    fn sample() -> Bytes {
        let mut w = Writer::default();
        w.map_len(4);
        w.str("shape");
        w.array_len(2);
        w.int(3);
        w.uint(1 << 40);
        w.str("nested");
        w.map_len(2);
        w.str("a");
        w.array_len(1);
        w.map_len(1);
        w.int(-7);
        w.bin(b"xyz");
        w.str("b");
        w.ext(5, b"12345678");
        w.str("shape");
        w.nil();
        w.int(1);
        w.str(&"long text ".repeat(30));
        Bytes::from(w.out)
    }

    #[test]
    fn lazy_reads_see_what_the_owned_read_sees() {
        let data = sample();
        let raw = read_raw(&data, 8).unwrap();
        let owned: Value = read(&data, 8).unwrap();
        assert_eq!(raw.to_value(&data), owned);
        // The first of a repeated key, by `get` and by `fields` alike.
        let shape = raw.get("shape").and_then(Raw::as_list).unwrap();
        assert_eq!(shape.len(), 2);
        assert_eq!(
            shape.iter().map(Raw::as_i64).collect::<Vec<_>>(),
            [Some(3), Some(1 << 40)]
        );
        assert_eq!(raw.fields().get(Field::Shape), raw.get("shape"));
        assert_eq!(raw.fields().get(Field::Dtype), None);
        // A key outside the fields reads by a walk.
        let nested = raw.get("nested").unwrap();
        assert!(matches!(nested.get("b"), Some(Raw::Ext(5, b"12345678"))));
        assert_eq!(raw.get("missing"), None);
        assert_eq!(Raw::Int(1).get("shape"), None);
        assert!(Raw::Nil.fields().get(Field::Shape).is_none());
        // Every field is found by its own key, and no other.
        let named = [
            (Field::NumSubFrames, "num-sub-frames"),
            (Field::Compression, "compression"),
            (Field::SplitNumSubFrames, "split-num-sub-frames"),
            (Field::SplitOffsets, "split-offsets"),
            (Field::IsCollection, "is-collection"),
            (Field::Serializer, "serializer"),
            (Field::Writeable, "writeable"),
            (Field::TypeSerialized, "type-serialized"),
            (Field::SubHeader, "sub-header"),
            (Field::SubHeaders, "sub-headers"),
            (Field::FrameLengths, "frame-lengths"),
            (Field::Key, "key"),
            (Field::PickledObj, "pickled-obj"),
            (Field::Pickle, "pickle"),
            (Field::Dtype, "dtype"),
            (Field::Strides, "strides"),
            (Field::Shape, "shape"),
            (Field::BroadcastTo, "broadcast_to"),
        ];
        assert_eq!(named.len(), FIELDS.len());
        for (field, name) in named {
            let mut w = Writer::default();
            w.out.push(0x82);
            w.str("other");
            w.int(0);
            w.str(name);
            w.int(7);
            let data = Bytes::from(w.out);
            let fields = read_raw(&data, 8).unwrap().fields();
            assert_eq!(fields.at.iter().filter(|&&at| at != 0).count(), 1, "{name}");
            assert_eq!(fields.get(field), Some(Raw::Int(7)), "{name}");
        }
    }

    #[test]
    fn lazy_reads_refuse_what_the_owned_read_refuses() {
        let data = sample();
        for cut in 0..data.len() {
            let short = data.slice(..cut);
            let err = read_raw(&short, 8).unwrap_err();
            assert_eq!(
                Err(err),
                read::<Checked>(&short, 8).map(|_| ()),
                "cut at {cut}"
            );
        }
        for depth in 0..4 {
            assert_eq!(
                read_raw(&data, depth).map(|_| ()),
                read::<Checked>(&data, depth).map(|_| ()),
                "depth {depth}"
            );
        }
        for marker in [0xc1u8, 0xdd, 0xdf, 0xc6, 0xdb, 0xc9, 0xd8] {
            let one = Bytes::from(vec![marker, 0xff, 0xff, 0xff]);
            assert_eq!(
                read_raw(&one, 8).map(|_| ()),
                read::<Checked>(&one, 8).map(|_| ()),
                "marker {marker:#x}"
            );
        }
        let mut bad = data.to_vec();
        let at = bad.iter().position(|&b| b == b'x').unwrap();
        bad[at] = 0xff; // inside the bin: still fine
        assert!(read_raw(&Bytes::from(bad.clone()), 8).is_ok());
        let at = bad.iter().position(|&b| b == b'l').unwrap();
        bad[at] = 0xff; // inside the str: invalid UTF-8
        assert!(matches!(
            read_raw(&Bytes::from(bad), 8),
            Err((_, MsgpackFault::InvalidUtf8))
        ));
        assert!(matches!(
            read_raw(&data, 2),
            Err((_, MsgpackFault::TooDeep))
        ));
    }

    /// Records what the hooked reader hands it, and stands in a marker string for each.
    #[derive(Default)]
    struct Recorder {
        placeholders: Vec<(bool, i64)>,
        maps: usize,
    }

    impl Hook<Value> for Recorder {
        type Error = &'static str;
        const PLACEHOLDERS: bool = true;
        fn placeholder(&mut self, pickled: bool, offset: i64) -> Result<Value, &'static str> {
            self.placeholders.push((pickled, offset));
            Ok(Value::Str(format!("placeholder {offset}")))
        }
        fn map(&mut self, items: Vec<(Value, Value)>) -> Result<Value, &'static str> {
            self.maps += 1;
            if items.is_empty() {
                return Err("empty map");
            }
            Ok(Value::Map(items))
        }
    }

    #[test]
    fn the_hook_sees_each_placeholder_unbuilt_and_every_other_map_whole_inner_first() {
        let mut w = Writer::default();
        // [{"__Serialized__": 1}, {"__Pickled__": 2}, {"__Serialized__": 200},
        //  {"__Serialized__": 3, "x": 1}, {"a": {"__Pickled__": 4}}]
        w.out.push(0x95);
        for (key, offset) in [
            ("__Serialized__", 1),
            ("__Pickled__", 2),
            ("__Serialized__", 200),
        ] {
            w.out.push(0x81);
            w.str(key);
            w.int(offset);
        }
        w.out.push(0x82);
        w.str("__Serialized__");
        w.int(3);
        w.str("x");
        w.int(1);
        w.out.push(0x81);
        w.str("a");
        w.out.push(0x81);
        w.str("__Pickled__");
        w.int(4);
        let data = Bytes::from(w.out);

        let mut hook = Recorder::default();
        let value = read_hooked::<Value, _>(&data, 8, &mut hook).unwrap();
        // Only fixint offsets take the short way; the rest are maps, read whole.
        assert_eq!(hook.placeholders, [(false, 1), (true, 2), (true, 4)]);
        assert_eq!(hook.maps, 3);
        let Value::List(items) = &value else {
            panic!("{value:?}")
        };
        assert_eq!(items[0].as_str(), Some("placeholder 1"));
        assert_eq!(items[1].as_str(), Some("placeholder 2"));
        assert!(matches!(&items[2], Value::Map(m) if m.len() == 1));
        assert!(matches!(&items[3], Value::Map(m) if m.len() == 2));
        assert_eq!(
            items[4],
            Value::Map(vec![("a".into(), Value::Str("placeholder 4".into()))])
        );

        // Without a hook the same bytes are plain maps.
        let plain: Value = read(&data, 8).unwrap();
        assert!(matches!(&plain, Value::List(l) if matches!(&l[0], Value::Map(_))));

        // The hook's error stops the read; a fault in the bytes is still the reader's.
        let empty = Bytes::from_static(b"\x91\x80");
        let err = read_hooked::<Value, _>(&empty, 8, &mut Recorder::default());
        assert_eq!(err, Err(Fault::Hook("empty map")));
        let cut = data.slice(..data.len() - 1);
        let err = read_hooked::<Value, _>(&cut, 8, &mut Recorder::default());
        assert!(matches!(
            err,
            Err(Fault::Msgpack(_, MsgpackFault::Truncated))
        ));
        // A placeholder key with nothing after it is cut short, not a placeholder.
        let key_only = Bytes::from_static(b"\x81\xae__Serialized__");
        let err = read_hooked::<Value, _>(&key_only, 8, &mut Recorder::default());
        assert!(matches!(
            err,
            Err(Fault::Msgpack(_, MsgpackFault::Truncated))
        ));
    }
}
