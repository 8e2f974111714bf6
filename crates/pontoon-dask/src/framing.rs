//! Dask's TCP framing, sans-IO: `u64 N`, `u64 count`, one `u64` length per frame (all
//! little-endian), then the frames, where `N` counts the prelude and the first frames (those
//! Dask reads into one buffer). Reading accepts every `N` that ends on a frame boundary;
//! writing picks `N` the way `distributed.comm.tcp` does.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use pontoon_dask::framing::{OutFrame, decode_frames, stream_bytes};
//! let frames = [OutFrame::transient(Bytes::from_static(b"\x80")), OutFrame::buffer(Bytes::from_static(b"data"), 1)];
//! let mut buf = BytesMut::from(&stream_bytes(&frames)[..]);
//! let back = decode_frames(&mut buf, &pontoon_wire::Limits::DEFAULT)?.unwrap();
//! assert_eq!(back, [Bytes::from_static(b"\x80"), Bytes::from_static(b"data")]);
//! # Ok::<(), pontoon_dask::FramingError>(())
//! ```

use bytes::{Bytes, BytesMut};
use pontoon_wire::Limits;

use crate::FramingError;

/// The most bytes `distributed` hands to one socket call (`C_INT_MAX`); frames longer than
/// this are written in pieces of this size.
pub const WRITE_PIECE: usize = (1 << 31) - 1;

/// The parsed prelude of one message: its first length and the frame lengths.
///
/// ```
/// use pontoon_dask::framing::parse_prelude;
/// let mut b = Vec::new();
/// for v in [16u64 + 3, 1, 3] { b.extend_from_slice(&v.to_le_bytes()); }
/// let p = parse_prelude(&b, &pontoon_wire::Limits::DEFAULT)?.unwrap();
/// assert_eq!((p.first_bytes, p.lengths.as_slice(), p.prelude_len()), (19, &[3u64][..], 24));
/// # Ok::<(), pontoon_dask::FramingError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Prelude {
    /// `N`: the prelude's bytes after this field plus those of the first frames.
    pub first_bytes: u64,
    /// Each frame's length.
    pub lengths: Vec<u64>,
}

impl Prelude {
    /// The prelude's length in bytes, `N` included.
    ///
    /// ```
    /// let p = pontoon_dask::framing::Prelude::new(16, vec![]);
    /// assert_eq!(p.prelude_len(), 16);
    /// ```
    pub fn prelude_len(&self) -> u64 {
        16 + 8 * self.lengths.len() as u64
    }

    /// The whole message's length: prelude and frames (saturated at `u64::MAX`).
    ///
    /// ```
    /// let p = pontoon_dask::framing::Prelude::new(24, vec![5]);
    /// assert_eq!(p.message_len(), 29);
    /// ```
    pub fn message_len(&self) -> u64 {
        self.lengths
            .iter()
            .fold(self.prelude_len(), |total, &len| total.saturating_add(len))
    }

    /// A prelude from its parts (unchecked; [`parse_prelude`] checks what a peer sends).
    ///
    /// ```
    /// let p = pontoon_dask::framing::Prelude::new(24, vec![0]);
    /// assert_eq!(p.lengths, [0]);
    /// ```
    pub fn new(first_bytes: u64, lengths: Vec<u64>) -> Prelude {
        Prelude {
            first_bytes,
            lengths,
        }
    }
}

/// Parses the prelude at the start of `buf`: `Ok(None)` while more bytes are needed. The frame
/// count is checked against `limits.max_frames` as soon as its 16 bytes are there, every length
/// against `max_frame_bytes` and their sum against `max_message_bytes`, before anything is
/// allocated; `N` must end on a frame boundary.
///
/// ```
/// use pontoon_dask::framing::parse_prelude;
/// assert_eq!(parse_prelude(&[0; 10], &pontoon_wire::Limits::DEFAULT)?, None);
/// # Ok::<(), pontoon_dask::FramingError>(())
/// ```
pub fn parse_prelude(buf: &[u8], limits: &Limits) -> Result<Option<Prelude>, FramingError> {
    let word = |i: usize| u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    if buf.len() < 16 {
        return Ok(None);
    }
    let first_bytes = word(0);
    let count = word(1);
    if count > limits.max_frames {
        return Err(FramingError::TooManyFrames {
            count,
            limit: limits.max_frames,
        });
    }
    let Some(prelude_len) = 8u64.checked_mul(count).and_then(|b| b.checked_add(16)) else {
        return Err(FramingError::TooManyFrames {
            count,
            limit: limits.max_frames,
        });
    };
    if (buf.len() as u64) < prelude_len {
        return Ok(None);
    }
    let count = count as usize;
    let mut lengths = Vec::new();
    lengths
        .try_reserve_exact(count)
        .map_err(|_| FramingError::OutOfMemory { bytes: prelude_len })?;
    let mut total = prelude_len;
    let mut first_ok = first_bytes == prelude_len - 8;
    let mut covered = prelude_len - 8;
    for index in 0..count {
        let len = word(2 + index);
        if len > limits.max_frame_bytes {
            return Err(FramingError::FrameTooLarge {
                index,
                len,
                limit: limits.max_frame_bytes,
            });
        }
        total = total.saturating_add(len);
        covered = covered.saturating_add(len);
        first_ok |= covered == first_bytes;
        lengths.push(len);
    }
    if total > limits.max_message_bytes {
        return Err(FramingError::MessageTooLarge {
            len: total,
            limit: limits.max_message_bytes,
        });
    }
    if !first_ok {
        return Err(FramingError::BadFirstLength {
            declared: first_bytes,
            prelude: prelude_len,
        });
    }
    Ok(Some(Prelude {
        first_bytes,
        lengths,
    }))
}

/// Takes one whole message off the front of `buf` and returns its frames, views of `buf`'s
/// memory (no copy): `Ok(None)` while more bytes are needed (nothing is taken then).
///
/// ```
/// use bytes::BytesMut;
/// let mut buf = BytesMut::from(&[0u8; 4][..]);
/// assert_eq!(pontoon_dask::framing::decode_frames(&mut buf, &pontoon_wire::Limits::DEFAULT)?, None);
/// # Ok::<(), pontoon_dask::FramingError>(())
/// ```
pub fn decode_frames(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, FramingError> {
    let Some(prelude) = parse_prelude(buf, limits)? else {
        return Ok(None);
    };
    if (buf.len() as u64) < prelude.message_len() {
        return Ok(None);
    }
    let _ = buf.split_to(prelude.prelude_len() as usize);
    let mut message = buf
        .split_to((prelude.message_len() - prelude.prelude_len()) as usize)
        .freeze();
    let mut frames = Vec::with_capacity(prelude.lengths.len());
    for &len in &prelude.lengths {
        frames.push(message.split_to(len as usize));
    }
    Ok(Some(frames))
}

/// The frames of the one message that `data` holds (a file, as Dask's comm writes a message):
/// views of `data`. Input that ends early is [`FramingError::Truncated`]; bytes after the
/// message are returned as the second value.
///
/// ```
/// use bytes::Bytes;
/// let err = pontoon_dask::framing::decode_stream(Bytes::from_static(&[1, 2]), &pontoon_wire::Limits::DEFAULT);
/// assert!(matches!(err, Err(pontoon_dask::FramingError::Truncated { .. })));
/// ```
pub fn decode_stream(data: Bytes, limits: &Limits) -> Result<(Vec<Bytes>, Bytes), FramingError> {
    let have = data.len() as u64;
    let prelude = parse_prelude(&data, limits)?.ok_or(FramingError::Truncated {
        needed: if data.len() < 16 {
            16
        } else {
            16u64.saturating_add(
                8u64.saturating_mul(u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"))),
            )
        },
        have,
    })?;
    if have < prelude.message_len() {
        return Err(FramingError::Truncated {
            needed: prelude.message_len(),
            have,
        });
    }
    let mut at = prelude.prelude_len() as usize;
    let mut frames = Vec::with_capacity(prelude.lengths.len());
    for &len in &prelude.lengths {
        frames.push(data.slice(at..at + len as usize));
        at += len as usize;
    }
    Ok((frames, data.slice(at..)))
}

/// Where each frame of a message starts in the buffers `Comm` and [`decode_aligned`] lay a
/// message out in: a multiple of this.
pub const ALIGN: usize = 64;

/// Each frame's offset in a receive buffer, and the buffer's length last: 64-byte aligned, so a
/// frame that ends aligned is followed directly by the next (shards stay back to back).
pub(crate) fn layout(prelude: &Prelude, limits: &Limits) -> Result<Vec<usize>, FramingError> {
    let mut offsets = Vec::new();
    offsets
        .try_reserve_exact(prelude.lengths.len() + 1)
        .map_err(|_| FramingError::OutOfMemory {
            bytes: prelude.prelude_len(),
        })?;
    let mut at: u64 = 0;
    for &len in &prelude.lengths {
        offsets.push(at as usize);
        at = at.saturating_add(len).saturating_add(ALIGN as u64 - 1) / ALIGN as u64 * ALIGN as u64;
    }
    // The padding is at most 64 bytes a frame on top of what the limits allowed.
    if at
        > limits
            .max_message_bytes
            .saturating_add(64 * prelude.lengths.len() as u64)
        || usize::try_from(at).is_err()
    {
        return Err(FramingError::MessageTooLarge {
            len: at,
            limit: limits.max_message_bytes,
        });
    }
    offsets.push(at as usize);
    Ok(offsets)
}

/// The one message `data` holds, copied once into a buffer laid out as [`Comm`](crate::Comm)
/// lays out what it receives (64-byte aligned, each frame at an aligned offset): the frames,
/// and the buffer they are views of. Arrays decoded from them are views, and shards join as
/// views. Bytes after the message are not read.
///
/// ```
/// use pontoon_dask::framing::{ALIGN, decode_aligned};
/// let stream = pontoon_dask::to_stream(&pontoon_dask::Value::Int(1), &Default::default())?;
/// let (frames, buffer) = decode_aligned(&stream, &pontoon_wire::Limits::DEFAULT)?;
/// assert_eq!(frames[0].as_ptr() as usize % ALIGN, 0);
/// assert_eq!(pontoon_dask::decode_in(&frames, Some(&buffer), &Default::default())?, pontoon_dask::Value::Int(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_aligned(data: &[u8], limits: &Limits) -> Result<(Vec<Bytes>, Bytes), FramingError> {
    let have = data.len() as u64;
    let prelude =
        parse_prelude(data, limits)?.ok_or(FramingError::Truncated { needed: 16, have })?;
    if have < prelude.message_len() {
        return Err(FramingError::Truncated {
            needed: prelude.message_len(),
            have,
        });
    }
    let offsets = layout(&prelude, limits)?;
    let size = offsets.last().copied().unwrap_or(0) + ALIGN;
    let mut buffer: Vec<u8> = Vec::new();
    buffer
        .try_reserve_exact(size)
        .map_err(|_| FramingError::OutOfMemory { bytes: size as u64 })?;
    let base = buffer.as_ptr().align_offset(ALIGN);
    buffer.resize(base, 0);
    let mut at = prelude.prelude_len() as usize;
    for (&len, &offset) in prelude.lengths.iter().zip(&offsets) {
        buffer.resize(base + offset, 0);
        buffer.extend_from_slice(&data[at..at + len as usize]);
        at += len as usize;
    }
    let buffer = Bytes::from(buffer);
    let frames = prelude
        .lengths
        .iter()
        .zip(&offsets)
        .map(|(&len, &offset)| buffer.slice(base + offset..base + offset + len as usize))
        .collect();
    Ok((frames, buffer))
}

/// How `distributed` would hold a frame, which decides how much of a message its comm puts
/// in the first read (`N`): short-lived `bytes` (msgpack, pickles, compressed output) or a
/// buffer an object will keep (an array's data; shards of one buffer share its id).
///
/// ```
/// use pontoon_dask::framing::FrameKind;
/// assert_ne!(FrameKind::Transient, FrameKind::Buffer(0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// Python `bytes`.
    Transient,
    /// A buffer an object keeps; the id tells shards of one buffer from others.
    Buffer(u64),
}

/// One frame to write and how Python would hold it.
///
/// ```
/// let f = pontoon_dask::framing::OutFrame::transient(bytes::Bytes::from_static(b"x"));
/// assert_eq!(f.data.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutFrame {
    /// The bytes.
    pub data: Bytes,
    /// How Python would hold them.
    pub kind: FrameKind,
}

impl OutFrame {
    /// A frame Python would hold as `bytes`.
    ///
    /// ```
    /// let f = pontoon_dask::framing::OutFrame::transient(bytes::Bytes::new());
    /// assert_eq!(f.kind, pontoon_dask::framing::FrameKind::Transient);
    /// ```
    pub fn transient(data: Bytes) -> OutFrame {
        OutFrame {
            data,
            kind: FrameKind::Transient,
        }
    }

    /// A frame of the buffer `id`.
    ///
    /// ```
    /// let f = pontoon_dask::framing::OutFrame::buffer(bytes::Bytes::new(), 7);
    /// assert_eq!(f.kind, pontoon_dask::framing::FrameKind::Buffer(7));
    /// ```
    pub fn buffer(data: Bytes, id: u64) -> OutFrame {
        OutFrame {
            data,
            kind: FrameKind::Buffer(id),
        }
    }
}

/// The prelude `distributed.comm.tcp` writes before `frames`: `N` covers the prelude, every
/// frame up to the first buffer, that buffer (all its shards) if the bytes before it are at
/// most `max(2048, 5% of it)`, and nothing past a second buffer.
///
/// ```
/// use bytes::Bytes;
/// use pontoon_dask::framing::{OutFrame, prelude_bytes};
/// let frames = [OutFrame::transient(Bytes::from_static(b"ab")), OutFrame::buffer(Bytes::from(vec![0; 100]), 1)];
/// let p = prelude_bytes(&frames);
/// assert_eq!(u64::from_le_bytes(p[..8].try_into().unwrap()), 8 + 16 + 2 + 100); // count, 2 lengths, frames
/// ```
pub fn prelude_bytes(frames: &[OutFrame]) -> Vec<u8> {
    let mut nosplit: u64 = 0;
    let mut first_buffer = None;
    for frame in frames {
        let nb = frame.data.len() as u64;
        if let FrameKind::Buffer(id) = frame.kind {
            match first_buffer {
                None => {
                    // As Python: `frames_nbytes_nosplit > max(2048, nb * 0.05)`.
                    if nosplit as f64 > f64::max(2048.0, nb as f64 * 0.05) {
                        break;
                    }
                    first_buffer = Some(id);
                }
                Some(first) if first != id => break,
                Some(_) => {}
            }
        }
        nosplit += nb;
    }
    let prelude_len = 8 + 8 * frames.len() as u64;
    let mut out = Vec::with_capacity(16 + 8 * frames.len());
    out.extend_from_slice(&(prelude_len + nosplit).to_le_bytes());
    out.extend_from_slice(&(frames.len() as u64).to_le_bytes());
    for frame in frames {
        out.extend_from_slice(&(frame.data.len() as u64).to_le_bytes());
    }
    out
}

/// The whole message as bytes, prelude then frames (a copy: for files and tests; the comm
/// writes the frames themselves).
///
/// ```
/// let bytes = pontoon_dask::framing::stream_bytes(&[]);
/// assert_eq!(bytes.len(), 16);
/// ```
pub fn stream_bytes(frames: &[OutFrame]) -> Vec<u8> {
    let mut out = prelude_bytes(frames);
    for frame in frames {
        out.extend_from_slice(&frame.data);
    }
    out
}
