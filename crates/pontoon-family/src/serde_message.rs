//! The serde family's messages: a header naming the type, the body inline when small or as
//! frame 0 when large, then the buffer frames.

use std::cell::Cell;

use bytes::Bytes;
use pontoon_wire::{Frame, Header, Message};

use crate::header::{self, Body};
use crate::registry::SERDE;
use crate::{DeserializeError, SerializeError, binary};

thread_local! {
    /// A warm buffer that small values are encoded into; the finished header is copied out of it
    /// at its exact size. Const-initialized, and a `Cell` (no borrow flag): every serialize
    /// touches it.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Scratch bodies larger than this are not kept for the next value.
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

/// Encodes a body (and its buffers) with the serde family, inline in the header when small.
///
/// One function from the scratch buffer to the finished message: the result is built once and
/// returned once, with no layers of closures passing it along.
#[inline]
pub(crate) fn serde_message<E>(
    type_name: &str,
    max_depth: usize,
    encode: E,
) -> Result<Message, SerializeError>
where
    E: FnOnce(&mut Vec<u8>, usize) -> Result<Vec<Bytes>, binary::Error>,
{
    // Taken, not borrowed: a value that serializes another inside its own `Serialize` finds an
    // empty scratch, not a busy one.
    let mut out = SCRATCH.with(Cell::take);
    out.clear();
    header::write_serde_prefix(&mut out, type_name);
    let marker = out.len();
    out.extend_from_slice(&[0xc6, 0, 0, 0, 0]); // bin 32, length patched below
    let body_start = out.len();
    let buffers = match encode(&mut out, max_depth) {
        Ok(buffers) => buffers,
        Err(error) => {
            return Err(SerializeError::Body {
                type_name: type_name.to_string(),
                error,
            });
        }
    };
    let body_len = out.len() - body_start;
    if body_len <= header::INLINE_BODY_MAX_BYTES {
        out[marker + 1..body_start].copy_from_slice(&(body_len as u32).to_be_bytes());
        header::write_buffers(&mut out, buffers.len());
        let header = Header::from_msgpack_unchecked(Bytes::copy_from_slice(&out));
        if out.capacity() <= SCRATCH_KEEP_BYTES {
            SCRATCH.with(|cell| cell.set(out));
        }
        return Ok(Message::new(header, buffers));
    }
    // A large body becomes frame 0 as it is, without a copy.
    let body = Bytes::from(out).slice(body_start..);
    let mut head = Vec::with_capacity(64 + type_name.len());
    header::write_serde_prefix(&mut head, type_name);
    head.push(0xc0); // nil: the body is frame 0
    header::write_buffers(&mut head, buffers.len());
    let mut frames = Vec::with_capacity(1 + buffers.len());
    frames.push(body);
    frames.extend(buffers);
    Ok(Message::new(
        Header::from_msgpack_unchecked(head.into()),
        frames,
    ))
}

/// The serde family's body and buffer frames, after checking the frame count.
pub(crate) fn serde_parts<'m>(
    parsed: &header::Parsed<'m>,
    frames: &'m [Frame],
) -> Result<(&'m [u8], &'m [Frame]), DeserializeError> {
    let body = parsed
        .body
        .ok_or_else(|| DeserializeError::MissingKey { key: "body" })?;
    let buffers = parsed
        .buffers
        .ok_or_else(|| DeserializeError::MissingKey { key: "buffers" })?;
    let body_frames = u64::from(body == Body::Frame);
    let expected = buffers.saturating_add(body_frames);
    if expected != frames.len() as u64 {
        return Err(DeserializeError::FrameCount {
            family: SERDE.to_string(),
            expected,
            found: frames.len(),
        });
    }
    Ok(match body {
        Body::Inline(body) => (body, frames),
        Body::Frame => (&frames[0][..], &frames[1..]),
    })
}
