//! [`Header`]: one MessagePack value, the self-describing part of a message.

use std::fmt;

use bytes::Bytes;
use rmp::Marker;
use serde::{Deserialize, Serialize};

/// The deepest nesting [`Header::from_msgpack`] accepts unless told otherwise.
///
/// Well below the depth limits of `rmpv` and `rmp-serde`, so a header that passed validation can
/// be read by either without hitting theirs.
pub const DEFAULT_MAX_HEADER_DEPTH: usize = 128;

/// The small, self-describing part of a [`Message`](crate::Message): exactly one MessagePack value.
///
/// A `Header` always holds well-formed MessagePack (checked on the way in), so any MessagePack
/// reader can read it. It is built from a serde value, from an [`rmpv::Value`], or from bytes that
/// are validated first. Cloning is cheap: the bytes are a shared [`Bytes`].
///
/// ```
/// use pontoon_wire::Header;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, PartialEq, Debug)]
/// struct TaskDone { op: String, key: String, nbytes: u64 }
///
/// let done = TaskDone { op: "task-finished".into(), key: "x-1".into(), nbytes: 80 };
/// let header = Header::from_serde(&done)?;
/// assert_eq!(header.deserialize::<TaskDone>()?, done);
/// // Any MessagePack reader sees a map with named fields.
/// assert_eq!(header.to_value()?["op"].as_str(), Some("task-finished"));
/// # Ok::<(), pontoon_wire::HeaderError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Header {
    bytes: Bytes,
}

impl Header {
    /// The header of a message that carries no metadata: an empty MessagePack map (`0x80`).
    ///
    /// ```
    /// assert_eq!(&pontoon_wire::Header::empty().as_bytes()[..], &[0x80]);
    /// ```
    pub fn empty() -> Header {
        Header {
            bytes: Bytes::from_static(&[0x80]),
        }
    }

    /// Encodes a serde value as a header, with struct fields as named map keys (`rmp-serde`'s
    /// `to_vec_named`), so that readers in other languages see field names.
    ///
    /// ```
    /// let header = pontoon_wire::Header::from_serde(&("ping", 7u8))?;
    /// assert_eq!(&header.as_bytes()[..], b"\x92\xa4ping\x07");
    /// # Ok::<(), pontoon_wire::HeaderError>(())
    /// ```
    pub fn from_serde<T: Serialize + ?Sized>(value: &T) -> Result<Header, HeaderError> {
        let bytes = rmp_serde::to_vec_named(value).map_err(|e| HeaderError::Encode {
            type_name: std::any::type_name::<T>(),
            reason: e.to_string(),
        })?;
        Ok(Header {
            bytes: bytes.into(),
        })
    }

    /// Encodes a dynamic MessagePack value as a header.
    ///
    /// ```
    /// use rmpv::Value;
    /// let header = pontoon_wire::Header::from_value(&Value::from("hello"));
    /// assert_eq!(header.to_value()?, Value::from("hello"));
    /// # Ok::<(), pontoon_wire::HeaderError>(())
    /// ```
    pub fn from_value(value: &rmpv::Value) -> Header {
        let mut bytes = Vec::new();
        // Writing into a Vec cannot fail.
        rmpv::encode::write_value(&mut bytes, value).expect("writing to a Vec never fails");
        Header {
            bytes: bytes.into(),
        }
    }

    /// Takes bytes that hold one MessagePack value, after checking that they are exactly that:
    /// well-formed, complete, nested at most [`DEFAULT_MAX_HEADER_DEPTH`] deep, nothing after it.
    ///
    /// ```
    /// use pontoon_wire::{Header, HeaderError};
    /// assert!(Header::from_msgpack(bytes::Bytes::from_static(b"\x91\x01")).is_ok());
    /// // An array that announces two elements but holds one is truncated, found at its marker.
    /// let err = Header::from_msgpack(bytes::Bytes::from_static(b"\x92\x01")).unwrap_err();
    /// assert!(matches!(err, HeaderError::Malformed { offset: 0, .. }));
    /// ```
    pub fn from_msgpack(bytes: Bytes) -> Result<Header, HeaderError> {
        Header::from_msgpack_with_depth(bytes, DEFAULT_MAX_HEADER_DEPTH)
    }

    /// [`Header::from_msgpack`] with a nesting limit of your choice.
    ///
    /// ```
    /// use pontoon_wire::{Header, HeaderError};
    /// let nested = bytes::Bytes::from_static(b"\x91\x91\x91\xc0");
    /// assert!(Header::from_msgpack_with_depth(nested.clone(), 3).is_ok());
    /// assert!(matches!(
    ///     Header::from_msgpack_with_depth(nested, 2),
    ///     Err(HeaderError::Malformed { .. })
    /// ));
    /// ```
    pub fn from_msgpack_with_depth(bytes: Bytes, max_depth: usize) -> Result<Header, HeaderError> {
        validate(&bytes, max_depth).map_err(|(offset, fault)| HeaderError::Malformed {
            offset: offset as u64,
            fault,
        })?;
        Ok(Header { bytes })
    }

    /// Takes bytes the caller has just written as one well-formed MessagePack value, without
    /// checking them again (debug builds still check). For encoders that write headers directly;
    /// bytes from anywhere else go through [`Header::from_msgpack`]. Nothing unsafe rests on the
    /// promise: a malformed header is refused by the decoder that receives it.
    ///
    /// ```
    /// let mut bytes = Vec::new();
    /// rmp::encode::write_str(&mut bytes, "ping").unwrap();
    /// let header = pontoon_wire::Header::from_msgpack_unchecked(bytes.into());
    /// assert_eq!(header.to_value()?.as_str(), Some("ping"));
    /// # Ok::<(), pontoon_wire::HeaderError>(())
    /// ```
    pub fn from_msgpack_unchecked(bytes: Bytes) -> Header {
        debug_assert_eq!(
            validate(&bytes, usize::MAX),
            Ok(()),
            "a malformed header was passed as well-formed"
        );
        Header { bytes }
    }

    /// Reads the header into a serde type.
    ///
    /// ```
    /// let header = pontoon_wire::Header::from_serde(&vec![1u32, 2, 3])?;
    /// assert_eq!(header.deserialize::<Vec<u32>>()?, [1, 2, 3]);
    /// # Ok::<(), pontoon_wire::HeaderError>(())
    /// ```
    pub fn deserialize<'de, T: Deserialize<'de>>(&'de self) -> Result<T, HeaderError> {
        rmp_serde::from_slice(&self.bytes).map_err(|e| HeaderError::Decode {
            type_name: std::any::type_name::<T>(),
            reason: e.to_string(),
        })
    }

    /// Reads the header as a dynamic MessagePack value.
    ///
    /// ```
    /// let header = pontoon_wire::Header::from_serde(&[("op", "ping")].into_iter().collect::<std::collections::BTreeMap<_, _>>())?;
    /// assert_eq!(header.to_value()?["op"].as_str(), Some("ping"));
    /// # Ok::<(), pontoon_wire::HeaderError>(())
    /// ```
    pub fn to_value(&self) -> Result<rmpv::Value, HeaderError> {
        let mut rest = &self.bytes[..];
        rmpv::decode::read_value(&mut rest).map_err(|e| HeaderError::Value {
            offset: (self.bytes.len() - rest.len()) as u64,
            reason: e.to_string(),
        })
    }

    /// The encoded MessagePack bytes.
    ///
    /// ```
    /// assert_eq!(pontoon_wire::Header::empty().as_bytes().len(), 1);
    /// ```
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Gives up the header, returning its encoded MessagePack bytes.
    ///
    /// ```
    /// let bytes = pontoon_wire::Header::empty().into_bytes();
    /// assert_eq!(&bytes[..], &[0x80]);
    /// ```
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// A header from bytes the caller has already validated.
    pub(crate) fn from_validated(bytes: Bytes) -> Header {
        Header { bytes }
    }
}

impl Default for Header {
    fn default() -> Header {
        Header::empty()
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_value() {
            Ok(value) => write!(f, "Header({value})"),
            Err(_) => write!(f, "Header({:?})", self.bytes),
        }
    }
}

/// What went wrong building or reading a [`Header`].
///
/// ```
/// use pontoon_wire::{Header, HeaderError};
/// let header = Header::from_serde(&"not a number")?;
/// let err = header.deserialize::<u32>().unwrap_err();
/// assert!(matches!(err, HeaderError::Decode { type_name: "u32", .. }));
/// assert!(err.to_string().starts_with("cannot decode the header as u32: "));
/// # Ok::<(), HeaderError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The bytes are not exactly one well-formed MessagePack value.
    #[error("malformed MessagePack header at byte offset {offset}: {fault}")]
    Malformed {
        /// Offset into the header's bytes where the fault was found.
        offset: u64,
        /// What was wrong there.
        fault: HeaderFault,
    },
    /// A serde value could not be encoded (its `Serialize` failed, or it is a map with keys
    /// MessagePack cannot hold).
    #[error("cannot encode {type_name} as a header: {reason}")]
    Encode {
        /// The type being encoded.
        type_name: &'static str,
        /// What the encoder said.
        reason: String,
    },
    /// The header does not decode into the requested serde type.
    #[error("cannot decode the header as {type_name}: {reason}")]
    Decode {
        /// The type asked for.
        type_name: &'static str,
        /// What the decoder said (rmp-serde's words, of which the header's path is not part).
        reason: String,
    },
    /// The header could not be read as a dynamic value.
    #[error("cannot read the header as a MessagePack value at byte offset {offset}: {reason}")]
    Value {
        /// How far into the header's bytes the reader had read when it failed.
        offset: u64,
        /// What the reader said.
        reason: String,
    },
}

/// The ways header bytes can fail to be one well-formed MessagePack value.
///
/// ```
/// use pontoon_wire::{Header, HeaderError, HeaderFault};
/// let err = Header::from_msgpack(bytes::Bytes::from_static(b"\x80\x80")).unwrap_err();
/// assert!(matches!(err, HeaderError::Malformed { offset: 1, fault: HeaderFault::TrailingBytes }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderFault {
    /// The value, or a string, binary, array or map inside it, runs past the end of the bytes.
    #[error("the value is truncated")]
    Truncated,
    /// Bytes follow the one value a header holds.
    #[error("bytes follow the end of the value")]
    TrailingBytes,
    /// The marker byte `0xC1`, which MessagePack reserves and never writes.
    #[error("reserved marker byte 0xc1")]
    ReservedMarker,
    /// Arrays and maps are nested deeper than the limit.
    #[error("nested deeper than the limit of {limit}")]
    TooDeep {
        /// The nesting limit in force.
        limit: usize,
    },
}

/// Checks that `bytes` hold exactly one well-formed MessagePack value nested at most `max_depth`
/// deep, without allocating anything sized by a length read from the bytes.
///
/// Every declared length is checked against the bytes that remain before it is trusted; an array or
/// map announces how many values follow, and since each takes at least one byte, a count larger
/// than what remains is a truncation found at once.
pub(crate) fn validate(bytes: &[u8], max_depth: usize) -> Result<(), (usize, HeaderFault)> {
    let mut pending = Pending::default();
    pending.push(1);
    let mut pos = 0usize;
    while let Some(top) = pending.last_mut() {
        if *top == 0 {
            pending.pop();
            continue;
        }
        *top -= 1;
        let at = pos;
        let &byte = bytes.get(pos).ok_or((at, HeaderFault::Truncated))?;
        pos += 1;
        let remaining = |pos: usize| (bytes.len() - pos.min(bytes.len())) as u64;
        let read_len = |pos: &mut usize, width: usize| -> Result<u64, (usize, HeaderFault)> {
            let field = bytes
                .get(*pos..*pos + width)
                .ok_or((at, HeaderFault::Truncated))?;
            *pos += width;
            Ok(field.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        };
        // (bytes of payload to skip, values that follow as children)
        let (skip, children): (u64, u64) = match Marker::from_u8(byte) {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                (0, 0)
            }
            Marker::U8 | Marker::I8 => (1, 0),
            Marker::U16 | Marker::I16 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            Marker::FixStr(n) => (u64::from(n), 0),
            Marker::Str8 | Marker::Bin8 => (read_len(&mut pos, 1)?, 0),
            Marker::Str16 | Marker::Bin16 => (read_len(&mut pos, 2)?, 0),
            Marker::Str32 | Marker::Bin32 => (read_len(&mut pos, 4)?, 0),
            Marker::FixExt1 => (2, 0),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::Ext8 => (read_len(&mut pos, 1)? + 1, 0),
            Marker::Ext16 => (read_len(&mut pos, 2)? + 1, 0),
            Marker::Ext32 => (read_len(&mut pos, 4)? + 1, 0),
            Marker::FixArray(n) => (0, u64::from(n)),
            Marker::Array16 => (0, read_len(&mut pos, 2)?),
            Marker::Array32 => (0, read_len(&mut pos, 4)?),
            Marker::FixMap(n) => (0, 2 * u64::from(n)),
            Marker::Map16 => (0, 2 * read_len(&mut pos, 2)?),
            Marker::Map32 => (0, 2 * read_len(&mut pos, 4)?),
            Marker::Reserved => return Err((at, HeaderFault::ReservedMarker)),
        };
        if skip > remaining(pos) {
            return Err((at, HeaderFault::Truncated));
        }
        pos += skip as usize;
        if children > 0 {
            if children > remaining(pos) {
                return Err((at, HeaderFault::Truncated));
            }
            if pending.len() > max_depth {
                return Err((at, HeaderFault::TooDeep { limit: max_depth }));
            }
            pending.push(children);
        }
    }
    if pos != bytes.len() {
        return Err((pos, HeaderFault::TrailingBytes));
    }
    Ok(())
}

/// For each open nesting level, the count of values still expected there. The first levels live
/// inline, so validating a typical header allocates nothing.
#[derive(Default)]
struct Pending {
    inline: [u64; 16],
    len: usize,
    spill: Vec<u64>,
}

impl Pending {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, count: u64) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = count,
            None => self.spill.push(count),
        }
        self.len += 1;
    }

    fn pop(&mut self) {
        self.len -= 1;
        if self.len >= self.inline.len() {
            self.spill.pop();
        }
    }

    fn last_mut(&mut self) -> Option<&mut u64> {
        let top = self.len.checked_sub(1)?;
        match self.inline.get_mut(top) {
            Some(slot) => Some(slot),
            None => self.spill.last_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;

    fn check(bytes: &[u8]) -> Result<(), (usize, HeaderFault)> {
        validate(bytes, DEFAULT_MAX_HEADER_DEPTH)
    }

    #[test]
    fn accepts_what_rmpv_writes() {
        let value = Value::Map(vec![
            (Value::from("op"), Value::from("compute")),
            (Value::from("n"), Value::from(-70000i64)),
            (Value::from("f"), Value::F64(1.5)),
            (Value::from("bin"), Value::Binary(vec![7; 300])),
            (Value::from("ext"), Value::Ext(5, vec![1; 70000])),
            (
                Value::from("list"),
                Value::Array((0..20).map(Value::from).collect()),
            ),
            (Value::Nil, Value::Boolean(true)),
        ]);
        let header = Header::from_value(&value);
        assert_eq!(check(header.as_bytes()), Ok(()));
        assert_eq!(header.to_value().unwrap(), value);
    }

    #[test]
    fn rejects_each_fault_with_its_offset() {
        assert_eq!(check(b""), Err((0, HeaderFault::Truncated)));
        assert_eq!(check(b"\xc1"), Err((0, HeaderFault::ReservedMarker)));
        assert_eq!(check(b"\x01\x02"), Err((1, HeaderFault::TrailingBytes)));
        assert_eq!(check(b"\x91\xa3ab"), Err((1, HeaderFault::Truncated)));
        // A map32 that claims four billion entries in a handful of bytes.
        assert_eq!(
            check(b"\xdf\xff\xff\xff\xff\x00"),
            Err((0, HeaderFault::Truncated))
        );
        // A bin32 whose length field itself is cut.
        assert_eq!(check(b"\xc6\x00\x00"), Err((0, HeaderFault::Truncated)));
        let deep: Vec<u8> = std::iter::repeat_n(0x91, 200).chain([0xc0]).collect();
        assert_eq!(
            check(&deep),
            Err((
                DEFAULT_MAX_HEADER_DEPTH,
                HeaderFault::TooDeep {
                    limit: DEFAULT_MAX_HEADER_DEPTH
                }
            ))
        );
    }

    #[test]
    fn depth_limit_is_exact() {
        let nested = |levels: usize| -> Vec<u8> {
            std::iter::repeat_n(0x91, levels).chain([0xc0]).collect()
        };
        assert_eq!(validate(&nested(4), 4), Ok(()));
        assert!(validate(&nested(5), 4).is_err());
    }
}
