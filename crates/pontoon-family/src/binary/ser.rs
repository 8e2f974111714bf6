//! The binary encoder: a serde `Serializer` that writes the body and collects buffers as frames.

use std::collections::HashMap;

use bytes::Bytes;
use serde::ser::{self, Impossible, Serialize};

use super::error::ErrorKind;
use super::path::{Segment, Track};
use crate::buffer::{BUFFER_NAME, take_from_buffer};

/// The encoder's error: boxed, so that every serialize call returns one register.
pub(crate) type Error = Box<super::error::Error>;

fn error(kind: ErrorKind) -> Error {
    Box::new(super::error::Error::new(kind))
}

/// Buffers found while encoding, each once: the same bytes (same address and length) referenced
/// twice get one frame, so they come back shared.
#[derive(Default)]
pub(crate) struct Buffers {
    pub(crate) frames: Vec<Bytes>,
    /// Built only once there are enough frames that scanning them is slower than hashing; most
    /// values hold no buffer at all and never pay for a map.
    seen: Option<HashMap<(usize, usize), u64>>,
}

/// Frames scanned one by one before an index is built.
const SCAN_LIMIT: usize = 16;

impl Buffers {
    fn index_of(&mut self, bytes: Bytes) -> u64 {
        let key = (bytes.as_ptr() as usize, bytes.len());
        let next = self.frames.len() as u64;
        let found = match &mut self.seen {
            Some(seen) => *seen.entry(key).or_insert(next),
            None => {
                let found = self
                    .frames
                    .iter()
                    .position(|f| (f.as_ptr() as usize, f.len()) == key);
                found.map_or(next, |i| i as u64)
            }
        };
        if found == next {
            self.frames.push(bytes);
            if self.seen.is_none() && self.frames.len() >= SCAN_LIMIT {
                let index = self.frames.iter().enumerate();
                self.seen = Some(
                    index
                        .map(|(i, f)| ((f.as_ptr() as usize, f.len()), i as u64))
                        .collect(),
                );
            }
        }
        found
    }
}

/// Holds its output by value, not through a `&mut Vec`: every write then goes through the
/// `&mut Encoder` a serialize method is given, which the compiler knows nothing else aliases,
/// so the vector's length stays in a register across a struct's fields instead of being
/// reloaded after every byte store (that reload made the mesh data set encode at half
/// postcard's speed).
pub(crate) struct Encoder<P> {
    pub(crate) out: Vec<u8>,
    pub(crate) buffers: Buffers,
    pub(crate) depth: usize,
    pub(crate) max_depth: usize,
    pub(crate) path: P,
}

#[inline]
pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    if v < 0x80 {
        put(out, [v as u8]);
        return;
    }
    // A u64 takes at most ten 7-bit groups.
    out.reserve(10);
    let mut len = out.len();
    let base = out.as_mut_ptr();
    while v >= 0x80 {
        // SAFETY: at most ten bytes are written after the old length, and `reserve(10)` made room.
        unsafe { base.add(len).write((v as u8) | 0x80) };
        len += 1;
        v >>= 7;
    }
    // SAFETY: as above; the bytes up to `len` are written before the length covers them.
    unsafe {
        base.add(len).write(v as u8);
        out.set_len(len + 1);
    }
}

impl<P: Track> Encoder<P> {
    #[inline]
    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(error(ErrorKind::TooDeep {
                limit: self.max_depth,
            }));
        }
        Ok(())
    }

    #[inline]
    fn leave(&mut self) {
        self.depth -= 1;
    }

    #[inline]
    fn nested<T: Serialize + ?Sized>(&mut self, segment: Segment, value: &T) -> Result<(), Error> {
        if !P::ON {
            return value.serialize(&mut *self);
        }
        self.path.push(segment);
        value.serialize(&mut *self)?;
        self.path.pop();
        Ok(())
    }

    fn len(&mut self, len: Option<usize>) -> Result<(), Error> {
        let len = len.ok_or_else(|| error(ErrorKind::UnknownLength))?;
        write_varint(&mut self.out, len as u64);
        Ok(())
    }
}

/// A compound value being written: counts elements for error paths.
pub(crate) struct Compound<'e, P> {
    encoder: &'e mut Encoder<P>,
    index: usize,
}

impl<P: Track> Compound<'_, P> {
    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !P::ON {
            return value.serialize(&mut *self.encoder);
        }
        let index = self.index;
        self.index += 1;
        self.encoder.nested(Segment::Index(index), value)
    }

    fn end(self) -> Result<(), Error> {
        self.encoder.leave();
        Ok(())
    }
}

macro_rules! fixed {
    ($($method:ident: $ty:ty),*) => {$(
        #[inline]
        fn $method(self, v: $ty) -> Result<(), Error> {
            put(&mut self.out, v.to_le_bytes());
            Ok(())
        }
    )*};
}

/// Appends `bytes` to `out`.
#[inline(always)]
fn put<const N: usize>(out: &mut Vec<u8>, bytes: [u8; N]) {
    out.reserve(N);
    let len = out.len();
    // SAFETY: `reserve` made room for `N` more bytes after `len`, which are written (unaligned:
    // the vector is a byte buffer) before the length covers them.
    unsafe {
        out.as_mut_ptr()
            .add(len)
            .cast::<[u8; N]>()
            .write_unaligned(bytes);
        out.set_len(len + N);
    }
}

impl<'e, P: Track> ser::Serializer for &'e mut Encoder<P> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'e, P>;
    type SerializeTuple = Compound<'e, P>;
    type SerializeTupleStruct = Compound<'e, P>;
    type SerializeTupleVariant = Compound<'e, P>;
    type SerializeMap = Compound<'e, P>;
    type SerializeStruct = Compound<'e, P>;
    type SerializeStructVariant = Compound<'e, P>;

    fixed!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64,
        serialize_u128: u128, serialize_f32: f32, serialize_f64: f64);

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        put(&mut self.out, [u8::from(v)]);
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        put(&mut self.out, [v]);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_u32(u32::from(v))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.serialize_bytes(v.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        write_varint(&mut self.out, v.len() as u64);
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.out.push(0);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.out.push(1);
        self.enter()?;
        value.serialize(&mut *self)?;
        self.leave();
        Ok(())
    }

    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), Error> {
        write_varint(&mut self.out, u64::from(index));
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if name == BUFFER_NAME {
            let (result, bytes) = take_from_buffer(|| value.serialize(HandoffOnly));
            result?;
            let bytes = bytes.ok_or_else(|| {
                <Error as ser::Error>::custom(format!(
                    "the newtype name {BUFFER_NAME} is reserved for pontoon_family::Buffer"
                ))
            })?;
            let index = self.buffers.index_of(bytes);
            write_varint(&mut self.out, index);
            return Ok(());
        }
        self.enter()?;
        value.serialize(&mut *self)?;
        self.leave();
        Ok(())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        write_varint(&mut self.out, u64::from(index));
        self.enter()?;
        self.nested(Segment::Variant(variant), value)?;
        self.leave();
        Ok(())
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        self.len(len)?;
        self.enter()?;
        Ok(Compound {
            encoder: self,
            index: 0,
        })
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        self.enter()?;
        Ok(Compound {
            encoder: self,
            index: 0,
        })
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        self.enter()?;
        Ok(Compound {
            encoder: self,
            index: 0,
        })
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        write_varint(&mut self.out, u64::from(index));
        self.enter()?;
        self.path.push(Segment::Variant(variant));
        Ok(Compound {
            encoder: self,
            index: 0,
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        self.len(len)?;
        self.enter()?;
        Ok(Compound {
            encoder: self,
            index: 0,
        })
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        self.enter()?;
        Ok(Compound {
            encoder: self,
            index: 0,
        })
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        write_varint(&mut self.out, u64::from(index));
        self.enter()?;
        self.path.push(Segment::Variant(variant));
        Ok(Compound {
            encoder: self,
            index: 0,
        })
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

impl<P: Track> ser::SerializeSeq for Compound<'_, P> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl<P: Track> ser::SerializeTuple for Compound<'_, P> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl<P: Track> ser::SerializeTupleStruct for Compound<'_, P> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl<P: Track> ser::SerializeTupleVariant for Compound<'_, P> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.encoder.path.pop();
        Compound::end(self)
    }
}

impl<P: Track> ser::SerializeMap for Compound<'_, P> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.encoder.nested(Segment::Index(self.index), key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl<P: Track> ser::SerializeStruct for Compound<'_, P> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.encoder.nested(Segment::Field(name), value)
    }
    fn skip_field(&mut self, name: &'static str) -> Result<(), Error> {
        Err(error(ErrorKind::SkippedField(name)))
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl<P: Track> ser::SerializeStructVariant for Compound<'_, P> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.encoder.nested(Segment::Field(name), value)
    }
    fn skip_field(&mut self, name: &'static str) -> Result<(), Error> {
        Err(error(ErrorKind::SkippedField(name)))
    }
    fn end(self) -> Result<(), Error> {
        self.encoder.path.pop();
        Compound::end(self)
    }
}

/// The serializer a [`Buffer`](crate::Buffer) sees while handing its bytes over: it accepts only
/// the unit the hand-off writes, and refuses anything else under the reserved name.
struct HandoffOnly;

fn reserved() -> Error {
    <Error as ser::Error>::custom(format!(
        "the newtype name {BUFFER_NAME} is reserved for pontoon_family::Buffer"
    ))
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*)),*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<(), Error> {
            Err(reserved())
        }
    )*};
}

impl ser::Serializer for HandoffOnly {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str)
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Error> {
        Err(reserved())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(reserved())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(reserved())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(reserved())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(reserved())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(reserved())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(reserved())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(reserved())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(reserved())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(reserved())
    }
}

#[cfg(test)]
mod tests {
    use super::{put, write_varint};

    /// The varint as the format spec defines it, one byte at a time.
    fn reference(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(low);
                return out;
            }
            out.push(low | 0x80);
        }
    }

    #[test]
    fn varints_match_the_spec_at_every_length_and_grow_a_full_vector() {
        let mut values = vec![0, 1, 0x7f, 0x80, 0x3fff, 0x4000, u64::MAX];
        values.extend((1..64).map(|bit| 1u64 << bit));
        values.extend((1..64).map(|bit| (1u64 << bit) - 1));
        for v in values {
            // Start from a full vector so that every write has to grow it.
            let mut out = vec![0xaa];
            out.shrink_to_fit();
            write_varint(&mut out, v);
            assert_eq!(out[0], 0xaa);
            assert_eq!(out[1..], reference(v)[..], "{v:#x}");
        }
    }

    #[test]
    fn fixed_width_writes_append_little_endian_bytes() {
        let mut out = Vec::with_capacity(1);
        put(&mut out, [1u8]);
        put(&mut out, 0x0203_0405u32.to_le_bytes());
        put(&mut out, [6u8, 7]);
        assert_eq!(out, [1, 5, 4, 3, 2, 6, 7]);
    }
}
