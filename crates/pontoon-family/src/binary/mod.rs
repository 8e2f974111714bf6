//! The serde family's body encoding: compact, fixed-width, not self-describing, with buffers out
//! of band. The byte layout is specified in `docs/family-format.md`.
//!
//! Use it directly when you want the bytes without a registry or a header:
//!
//! ```
//! use pontoon_family::binary;
//! let (body, buffers) = binary::to_vec(&("ping", 7u32), binary::DEFAULT_MAX_DEPTH)?;
//! assert!(buffers.is_empty());
//! let back: (String, u32) = binary::from_slice(&body, &buffers, binary::DEFAULT_MAX_DEPTH)?;
//! assert_eq!(back, ("ping".to_string(), 7));
//! # Ok::<(), binary::Error>(())
//! ```

mod de;
mod error;
mod path;
mod ser;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use error::{Error, ErrorKind};

use path::{NoPath, Path, Track};

/// How deep values may nest, on encode and on decode, unless told otherwise.
pub const DEFAULT_MAX_DEPTH: usize = 256;

/// Encodes `value` into a body, and the buffers it holds into frames of their own (each distinct
/// buffer once).
///
/// ```
/// use pontoon_family::{Buffer, binary};
/// let weights = Buffer::from(vec![1u8; 1000]);
/// let (body, buffers) = binary::to_vec(&(weights.clone(), weights), binary::DEFAULT_MAX_DEPTH)?;
/// assert_eq!(buffers.len(), 1); // shared: sent once
/// assert_eq!(body, [0, 0]); // two references to frame 0
/// # Ok::<(), binary::Error>(())
/// ```
pub fn to_vec<T: Serialize + ?Sized>(
    value: &T,
    max_depth: usize,
) -> Result<(Vec<u8>, Vec<Bytes>), Error> {
    let mut body = Vec::with_capacity(128);
    let buffers = to_writer(value, &mut body, max_depth)?;
    Ok((body, buffers))
}

/// Like [`to_vec`], appending the body to `out`; returns the buffers.
///
/// ```
/// let mut out = b"prefix".to_vec();
/// let buffers = pontoon_family::binary::to_writer(&1u16, &mut out, 256)?;
/// assert_eq!(out, b"prefix\x01\x00");
/// assert!(buffers.is_empty());
/// # Ok::<(), pontoon_family::binary::Error>(())
/// ```
pub fn to_writer<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    max_depth: usize,
) -> Result<Vec<Bytes>, Error> {
    let start = out.len();
    match encode::<T, NoPath>(value, out, max_depth) {
        Ok(buffers) => Ok(buffers),
        Err(error) => {
            // Redo the work with path tracking to say where it failed.
            out.truncate(start);
            let mut scratch = Vec::new();
            let error = match encode::<T, Path>(value, &mut scratch, max_depth) {
                Err(tracked) => tracked,
                Ok(_) => error,
            };
            Err(error)
        }
    }
}

fn encode<T: Serialize + ?Sized, P: Track>(
    value: &T,
    out: &mut Vec<u8>,
    max_depth: usize,
) -> Result<Vec<Bytes>, Error> {
    let mut encoder = ser::Encoder {
        out: std::mem::take(out),
        buffers: ser::Buffers::default(),
        depth: 0,
        max_depth,
        path: P::default(),
    };
    let result = value.serialize(&mut encoder);
    *out = encoder.out;
    if let Err(mut error) = result {
        error.set_path(encoder.path.render());
        return Err(*error);
    }
    Ok(encoder.buffers.frames)
}

/// Decodes a value from a body and its buffer frames. Strings and byte slices may borrow from
/// `body`; every [`Buffer`](crate::Buffer) is a slice of its frame, not a copy.
///
/// The elements of all the body's sequences and maps together may take at most
/// [`Limits::max_expansion`](pontoon_wire::Limits::max_expansion) of the body's size in memory
/// beyond their bytes in the body, under the limits of the deserialize running on this thread
/// ([`decode_limits`](crate::decode_limits); the registry's, inside one).
///
/// ```
/// use pontoon_family::binary::{self, ErrorKind};
/// let err = binary::from_slice::<String>(&[5, b'a'], &[], 256).unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::BadLength { len: 5, offset: 0, .. }));
/// ```
pub fn from_slice<'de, T: Deserialize<'de>>(
    body: &'de [u8],
    buffers: &'de [Bytes],
    max_depth: usize,
) -> Result<T, Error> {
    match decode::<T, NoPath>(body, buffers, max_depth) {
        Ok(value) => Ok(value),
        Err(error) => match decode::<T, Path>(body, buffers, max_depth) {
            Err(tracked) => Err(tracked),
            Ok(_) => Err(error),
        },
    }
}

fn decode<'de, T: Deserialize<'de>, P: Track>(
    body: &'de [u8],
    buffers: &'de [Bytes],
    max_depth: usize,
) -> Result<T, Error> {
    let mut decoder = de::Decoder {
        input: body,
        pos: 0,
        buffers,
        depth: 0,
        max_depth,
        path: P::default(),
        budget: None,
    };
    let value = T::deserialize(&mut decoder).map_err(|mut error| {
        error.set_path(decoder.path.render());
        error
    })?;
    if decoder.pos < body.len() {
        return Err(Error::new(ErrorKind::TrailingBytes {
            offset: decoder.pos,
            remaining: body.len() - decoder.pos,
        }));
    }
    Ok(value)
}
