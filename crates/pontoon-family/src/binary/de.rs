//! The binary decoder: a serde `Deserializer` over a body, with buffers taken from their frames.

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::error::{Error, ErrorKind};
use super::path::{Segment, Track};
use crate::buffer::{BUFFER_NAME, give_to_buffer};

pub(crate) struct Decoder<'de, P> {
    pub(crate) input: &'de [u8],
    /// Offset of the next byte to read in `input`. An index rather than the unread tail as a
    /// slice: a read then updates one field instead of a pointer and a length, and the
    /// bounds it checks against (`input`'s length) stay in a register.
    pub(crate) pos: usize,
    pub(crate) buffers: &'de [Bytes],
    pub(crate) depth: usize,
    pub(crate) max_depth: usize,
    pub(crate) path: P,
    /// Bytes the elements of sequences and maps may still take in memory beyond the bytes they
    /// took in the body: one budget for the whole body, shared by every nested sequence, so
    /// that elements that take no bytes (or few) cannot multiply into gigabytes. `None` until
    /// first needed: most bodies never draw on it, and need not look up the limits.
    pub(crate) budget: Option<u64>,
}

impl<'de, P: Track> Decoder<'de, P> {
    fn eof(&self) -> Error {
        Error::new(ErrorKind::Eof {
            offset: self.input.len(),
        })
    }

    /// Offset of the next byte in the body.
    #[inline]
    fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self.input.get(self.pos).ok_or_else(|| self.eof())?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let bytes = self
            .input
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<N>())
            .ok_or_else(|| self.eof())?;
        self.pos += N;
        Ok(*bytes)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, Error> {
        let start = self.pos();
        let first = self.byte()?;
        if first < 0x80 {
            return Ok(u64::from(first));
        }
        let mut value = u64::from(first & 0x7f);
        for shift in (7..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                if shift == 63 && b > 1 {
                    break;
                }
                return Ok(value);
            }
        }
        Err(Error::new(ErrorKind::BadVarint { offset: start }))
    }

    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// A length prefix for bytes that must follow in the body.
    #[inline]
    fn slice(&mut self) -> Result<(&'de [u8], usize), Error> {
        let offset = self.pos();
        let len = self.varint()?;
        if len > self.remaining() as u64 {
            return Err(Error::new(ErrorKind::BadLength {
                len,
                offset,
                remaining: self.remaining(),
            }));
        }
        let start = self.pos;
        // `len` is at most what remains, checked above.
        let bytes = &self.input[start..start + len as usize];
        self.pos = start + len as usize;
        Ok((bytes, start))
    }

    /// An element count for a sequence or map. Each element takes a byte of the body or is paid
    /// for from the budget as it is decoded ([`Decoder::charge`]), so a count larger than both
    /// together is refused at once, before a visitor can pre-allocate for it.
    fn count(&mut self) -> Result<usize, Error> {
        let offset = self.pos();
        let len = self.varint()?;
        if len > self.remaining() as u64
            && len > (self.remaining() as u64).saturating_add(self.budget())
        {
            return Err(Error::new(ErrorKind::BadLength {
                len,
                offset,
                remaining: self.remaining(),
            }));
        }
        usize::try_from(len).map_err(|_| {
            Error::new(ErrorKind::BadLength {
                len,
                offset,
                remaining: self.remaining(),
            })
        })
    }

    /// Pays from the budget for an element of a sequence or map that takes `size` bytes in
    /// memory (at least one: an element of no size still costs a step) and took `read` bytes of
    /// the body.
    #[inline(always)]
    fn charge(&mut self, size: usize, read: usize) -> Result<(), Error> {
        let made = size.max(1);
        if made > read {
            return self.draw((made - read) as u64);
        }
        Ok(())
    }

    /// What the budget holds now.
    fn budget(&mut self) -> u64 {
        match self.budget {
            Some(left) => left,
            None => {
                let whole = self.max_expansion();
                self.budget = Some(whole);
                whole
            }
        }
    }

    /// The whole budget: the receiver's `Limits::max_expansion` of the body's size.
    fn max_expansion(&self) -> u64 {
        crate::decode_limits().max_expansion(self.input.len() as u64)
    }

    #[cold]
    fn draw(&mut self, extra: u64) -> Result<(), Error> {
        match self.budget().checked_sub(extra) {
            Some(left) => {
                self.budget = Some(left);
                Ok(())
            }
            None => Err(Error::new(ErrorKind::Expansion {
                offset: self.pos(),
                max_bytes: self.max_expansion(),
            })),
        }
    }

    #[inline]
    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(Error::new(ErrorKind::TooDeep {
                limit: self.max_depth,
            }));
        }
        Ok(())
    }

    #[inline]
    fn str(&mut self) -> Result<&'de str, Error> {
        let (bytes, start) = self.slice()?;
        // Most strings on the wire (names, keys, addresses) are short and ASCII, where
        // `is_ascii` checks a word at a time and `from_utf8` goes byte by byte.
        if bytes.is_ascii() {
            // SAFETY: every ASCII byte sequence is valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes).map_err(|_| Error::new(ErrorKind::InvalidUtf8 { offset: start }))
    }

    #[inline]
    fn nested<V>(&mut self, visit: impl FnOnce(&mut Self) -> Result<V, Error>) -> Result<V, Error> {
        self.enter()?;
        let value = visit(self)?;
        self.depth -= 1;
        Ok(value)
    }
}

macro_rules! fixed {
    ($($method:ident => $visit:ident: $ty:ty),*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(<$ty>::from_le_bytes(self.array()?))
        }
    )*};
}

impl<'de, P: Track> de::Deserializer<'de> for &mut Decoder<'de, P> {
    type Error = Error;

    fixed!(deserialize_i8 => visit_i8: i8, deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32, deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128, deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32, deserialize_u64 => visit_u64: u64,
        deserialize_u128 => visit_u128: u128, deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64);

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::new(ErrorKind::NotSelfDescribing))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::new(ErrorKind::NotSelfDescribing))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let offset = self.pos();
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            byte => Err(Error::new(ErrorKind::InvalidTag {
                what: "bool",
                byte,
                offset,
            })),
        }
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u8(self.byte()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let offset = self.pos();
        let value = u32::from_le_bytes(self.array()?);
        let c = char::from_u32(value)
            .ok_or_else(|| Error::new(ErrorKind::InvalidChar { value, offset }))?;
        visitor.visit_char(c)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.str()?)
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.slice()?.0)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.slice()?.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let offset = self.pos();
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => self.nested(|de| visitor.visit_some(de)),
            byte => Err(Error::new(ErrorKind::InvalidTag {
                what: "option",
                byte,
                offset,
            })),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == BUFFER_NAME {
            let offset = self.pos();
            let index = self.varint()?;
            let count = self.buffers.len();
            let bytes = usize::try_from(index)
                .ok()
                .and_then(|i| self.buffers.get(i))
                .ok_or_else(|| {
                    Error::new(ErrorKind::BufferOutOfRange {
                        index,
                        offset,
                        count,
                    })
                })?
                .clone();
            return give_to_buffer(bytes, || {
                visitor.visit_newtype_struct(().into_deserializer())
            });
        }
        self.nested(|de| visitor.visit_newtype_struct(de))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let remaining = self.count()?;
        self.nested(|de| {
            visitor.visit_seq(Access::<_, true> {
                de,
                remaining,
                index: 0,
                fields: None,
            })
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.nested(|de| {
            visitor.visit_seq(Access::<_, false> {
                de,
                remaining: len,
                index: 0,
                fields: None,
            })
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let remaining = self.count()?;
        self.nested(|de| {
            visitor.visit_map(Access::<_, true> {
                de,
                remaining,
                index: 0,
                fields: None,
            })
        })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.nested(|de| {
            visitor.visit_seq(Access::<_, false> {
                de,
                remaining: fields.len(),
                index: 0,
                fields: Some(fields),
            })
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.nested(|de| visitor.visit_enum(Enum { de, variants }))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let offset = self.pos();
        let index = self.varint()?;
        let index = u32::try_from(index).map_err(|_| {
            Error::new(ErrorKind::BadLength {
                len: index,
                offset,
                remaining: self.remaining(),
            })
        })?;
        visitor.visit_u32(index)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Elements of a sequence, tuple, struct or map. `COUNTED`: the body said how many elements
/// there are (a sequence or map), so each is paid for from the budget; a tuple's or struct's
/// count comes from its type. A parameter, not a field, so that structs pay nothing for it.
struct Access<'a, 'de, P, const COUNTED: bool> {
    de: &'a mut Decoder<'de, P>,
    remaining: usize,
    index: usize,
    /// Field names, when the elements are a struct's fields.
    fields: Option<&'static [&'static str]>,
}

impl<'de, P: Track, const COUNTED: bool> Access<'_, 'de, P, COUNTED> {
    fn segment(&self) -> Segment {
        match self.fields.and_then(|f| f.get(self.index)) {
            Some(name) => Segment::Field(name),
            None => Segment::Index(self.index),
        }
    }

    #[inline(always)]
    fn next<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let before = if COUNTED { self.de.pos } else { 0 };
        let value = if P::ON {
            self.de.path.push(self.segment());
            let value = seed.deserialize(&mut *self.de)?;
            self.de.path.pop();
            value
        } else {
            seed.deserialize(&mut *self.de)?
        };
        if COUNTED {
            let read = self.de.pos - before;
            self.de.charge(std::mem::size_of::<T::Value>(), read)?;
        }
        Ok(value)
    }
}

impl<'de, P: Track, const COUNTED: bool> de::SeqAccess<'de> for Access<'_, 'de, P, COUNTED> {
    type Error = Error;

    #[inline(always)]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let value = self.next(seed)?;
        if P::ON {
            self.index += 1;
        }
        Ok(Some(value))
    }

    #[inline(always)]
    fn next_element<T: de::Deserialize<'de>>(&mut self) -> Result<Option<T>, Error> {
        self.next_element_seed(std::marker::PhantomData)
    }

    fn size_hint(&self) -> Option<usize> {
        // Never more elements than bytes remain: a visitor that pre-allocates for the hint
        // allocates no more than the body could back.
        Some(self.remaining.min(self.de.remaining()))
    }
}

impl<'de, P: Track, const COUNTED: bool> de::MapAccess<'de> for Access<'_, 'de, P, COUNTED> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        self.next(seed).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self.next(seed)?;
        self.index += 1;
        Ok(value)
    }

    fn size_hint(&self) -> Option<usize> {
        // Never more elements than bytes remain: a visitor that pre-allocates for the hint
        // allocates no more than the body could back.
        Some(self.remaining.min(self.de.remaining()))
    }
}

/// An enum: its variant index, then its content.
struct Enum<'a, 'de, P> {
    de: &'a mut Decoder<'de, P>,
    variants: &'static [&'static str],
}

impl<'a, 'de, P: Track> de::EnumAccess<'de> for Enum<'a, 'de, P> {
    type Error = Error;
    type Variant = Variant<'a, 'de, P>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Error> {
        let offset = self.de.pos();
        let index = self.de.varint()?;
        let index32 = u32::try_from(index).map_err(|_| {
            Error::new(ErrorKind::BadLength {
                len: index,
                offset,
                remaining: self.de.remaining(),
            })
        })?;
        let value = seed.deserialize(index32.into_deserializer())?;
        let name = self.variants.get(index32 as usize).copied().unwrap_or("?");
        self.de.path.push(Segment::Variant(name));
        Ok((value, Variant { de: self.de }))
    }
}

struct Variant<'a, 'de, P> {
    de: &'a mut Decoder<'de, P>,
}

impl<'de, P: Track> de::VariantAccess<'de> for Variant<'_, 'de, P> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        self.de.path.pop();
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        let value = seed.deserialize(&mut *self.de)?;
        self.de.path.pop();
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let value = visitor.visit_seq(Access::<_, false> {
            de: &mut *self.de,
            remaining: len,
            index: 0,
            fields: None,
        })?;
        self.de.path.pop();
        Ok(value)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let access = Access::<_, false> {
            de: &mut *self.de,
            remaining: fields.len(),
            index: 0,
            fields: Some(fields),
        };
        let value = visitor.visit_seq(access)?;
        self.de.path.pop();
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use crate::binary::{DEFAULT_MAX_DEPTH, ErrorKind, from_slice, to_vec};

    #[test]
    fn strings_come_back_whether_ascii_or_not_and_bad_utf8_is_refused_where_it_is() {
        for text in [
            "",
            "plain ascii, 7 bits",
            "naïve café",
            "日本語",
            "a\u{7f}\u{80}z",
        ] {
            let (body, buffers) = to_vec(&text.to_owned(), DEFAULT_MAX_DEPTH).unwrap();
            let back: String = from_slice(&body, &buffers, DEFAULT_MAX_DEPTH).unwrap();
            assert_eq!(back, text);
        }
        // A length of 3, then bytes that are not UTF-8 (an ASCII byte, then a lone
        // continuation byte).
        let bad = [3u8, b'a', 0x80, b'b'];
        let error = from_slice::<String>(&bad, &[], DEFAULT_MAX_DEPTH).unwrap_err();
        assert_eq!(*error.kind(), ErrorKind::InvalidUtf8 { offset: 1 });
    }
}
