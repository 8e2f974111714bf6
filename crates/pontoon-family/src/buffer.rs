//! [`Buffer`]: bytes inside a serde value that travel as a frame of their own, never copied.
//!
//! How it crosses the serde boundary: `Buffer` serializes as a newtype struct with a reserved name.
//! The binary encoder recognizes the name, opens a one-value slot on this thread, and the buffer
//! hands its `Bytes` through the slot instead of writing them; the encoder records a frame index.
//! Decoding runs the same way backwards. Any other serde format sees an ordinary newtype around a
//! byte string, so a `Buffer` still works (by copy) with JSON, MessagePack or anything else.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// The newtype name that marks a buffer; reserved for [`Buffer`].
pub(crate) const BUFFER_NAME: &str = "$pontoon::Buffer";

thread_local! {
    /// Set by the encoder just before it asks a buffer to serialize itself.
    static HANDOFF_ARMED: Cell<bool> = const { Cell::new(false) };
    /// The bytes being handed across, in either direction.
    static HANDOFF: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Opens the slot, runs `serialize` (which must be a buffer serializing itself), and returns the
/// bytes the buffer handed over, if it was one.
pub(crate) fn take_from_buffer<R>(serialize: impl FnOnce() -> R) -> (R, Option<Bytes>) {
    HANDOFF_ARMED.with(|armed| armed.set(true));
    let result = serialize();
    HANDOFF_ARMED.with(|armed| armed.set(false));
    (result, HANDOFF.with(|slot| slot.borrow_mut().take()))
}

/// Puts `bytes` in the slot for the buffer that `deserialize` creates, and clears the slot after.
pub(crate) fn give_to_buffer<R>(bytes: Bytes, deserialize: impl FnOnce() -> R) -> R {
    HANDOFF.with(|slot| *slot.borrow_mut() = Some(bytes));
    let result = deserialize();
    HANDOFF.with(|slot| slot.borrow_mut().take());
    result
}

/// Bytes inside a serde value that travel out of band: as a frame of their own, not inside the
/// encoded body, and that come back on decode as a [`Bytes`] slice of that frame, with no copy.
///
/// This is pickle 5's `buffer_callback` and Dask's `register_generic`, for serde: put a `Buffer`
/// in any `#[derive(Serialize, Deserialize)]` struct. The same buffer referenced twice in one value
/// is sent once and comes back shared.
///
/// ```
/// use pontoon_family::{Buffer, Registry};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Model { name: String, weights: Buffer }
///
/// let registry = Registry::new();
/// let model = Model { name: "resnet".into(), weights: Buffer::from(vec![0u8; 1 << 20]) };
/// let message = registry.serialize(&model)?;
/// assert_eq!(message.frames.len(), 1); // the weights, as their own frame
///
/// let back: Model = registry.deserialize(&message)?;
/// assert_eq!(back.weights.as_ptr(), message.frames[0].as_ptr()); // a view, not a copy
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Buffer(Bytes);

impl Buffer {
    /// A buffer holding `bytes` (no copy for `Bytes` and `Vec<u8>`).
    ///
    /// ```
    /// let buffer = pontoon_family::Buffer::new(vec![1u8, 2, 3]);
    /// assert_eq!(&buffer[..], &[1, 2, 3]);
    /// ```
    pub fn new(bytes: impl Into<Bytes>) -> Buffer {
        Buffer(bytes.into())
    }

    /// The bytes.
    ///
    /// ```
    /// let buffer = pontoon_family::Buffer::from(bytes::Bytes::from_static(b"abc"));
    /// assert_eq!(buffer.as_bytes(), &bytes::Bytes::from_static(b"abc"));
    /// ```
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives up the buffer, returning its bytes.
    ///
    /// ```
    /// let bytes = pontoon_family::Buffer::from(vec![7u8; 4]).into_bytes();
    /// assert_eq!(bytes.len(), 4);
    /// ```
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Bytes> for Buffer {
    fn from(bytes: Bytes) -> Buffer {
        Buffer(bytes)
    }
}

impl From<Vec<u8>> for Buffer {
    fn from(bytes: Vec<u8>) -> Buffer {
        Buffer(bytes.into())
    }
}

impl From<Buffer> for Bytes {
    fn from(buffer: Buffer) -> Bytes {
        buffer.0
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buffer({} bytes at {:p})", self.0.len(), self.0.as_ptr())
    }
}

impl Serialize for Buffer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(BUFFER_NAME, &Handoff(&self.0))
    }
}

/// What a buffer serializes inside its newtype: through the slot when the binary encoder asks,
/// as a plain byte string otherwise.
struct Handoff<'a>(&'a Bytes);

impl Serialize for Handoff<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if HANDOFF_ARMED.with(|armed| armed.replace(false)) {
            HANDOFF.with(|slot| *slot.borrow_mut() = Some(self.0.clone()));
            serializer.serialize_unit()
        } else {
            serializer.serialize_bytes(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Buffer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Buffer, D::Error> {
        deserializer.deserialize_newtype_struct(BUFFER_NAME, BufferVisitor)
    }
}

struct BufferVisitor;

impl<'de> Visitor<'de> for BufferVisitor {
    type Value = Buffer;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte buffer")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Buffer, D::Error> {
        match HANDOFF.with(|slot| slot.borrow_mut().take()) {
            Some(bytes) => Ok(Buffer(bytes)),
            None => deserializer.deserialize_byte_buf(BufferVisitor),
        }
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Buffer, E> {
        Ok(Buffer(Bytes::copy_from_slice(bytes)))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Buffer, E> {
        Ok(Buffer(bytes.into()))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Buffer, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(Buffer(bytes.into()))
    }
}
