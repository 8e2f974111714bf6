//! Message heads: [`MessageHead`] (prefix, frame table and header, read and checked once) and
//! [`FrameLayout`]; the preamble check; turning a head and its frames' bytes into a message.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::codec::{self, Codec, DecompressFailure};
use crate::format::{
    ENTRY_LEN, FLAG_CHECKSUMS, KNOWN_FLAGS, MAGIC, MAX_ALIGN_LOG2, MESSAGE_MARKER, PREAMBLE_LEN,
    PREFIX_LEN, VERSION, align_up, read_u32, read_u64,
};
use crate::header;
use crate::{DecodeError, Header, Limits, Message};

/// A message's head, read and checked once: it owns the head's bytes (prefix, frame table and
/// header) and knows where each frame lies, relative to the message's first byte. For carriers
/// that read frames themselves (straight into buffers of their own, say):
/// [`MessageHead::parse`] the head, read each frame's bytes, then [`MessageHead::assemble`] the
/// message. The header is validated by `parse` and never again.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use pontoon_wire::{Encoder, Header, Limits, Message, MessageHead};
///
/// let message = Message::new(Header::empty(), vec![Bytes::from(vec![7u8; 1000])]);
/// let wire = Encoder::default().encode(&message)?.to_bytes();
/// let mut buf = BytesMut::from(&wire[..100]);
/// let head = MessageHead::parse(&mut buf, &Limits::default())?.expect("the head is in the first 100 bytes");
/// assert_eq!(head.len(), wire.len() as u64);
/// assert_eq!(buf.len() as u64, 100 - head.head_len()); // the head's bytes moved into `head`
/// let frame = &head.frames()[0];
/// let frame_bytes = wire.slice(frame.start as usize..(frame.start + frame.wire_len) as usize);
/// assert_eq!(head.assemble(vec![frame_bytes])?, message);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MessageHead {
    bytes: Bytes,
    /// Stream offset of the message's first byte, for error offsets.
    base: u64,
    len: u64,
    header: Range<usize>,
    checksums: bool,
    frames: Vec<FrameLayout>,
}

/// Where one frame lies in its message, and how it is encoded.
///
/// ```
/// # use pontoon_wire::*;
/// let m = Message::new(Header::empty(), vec![bytes::Bytes::from_static(b"abc")]);
/// let mut wire = bytes::BytesMut::from(&Encoder::default().encode(&m)?.to_bytes()[..]);
/// let head = MessageHead::parse(&mut wire, &Limits::default())?.unwrap();
/// assert_eq!((head.frames()[0].start, head.frames()[0].wire_len), (64, 3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FrameLayout {
    /// Offset of the frame's first byte from the message's first byte (after its padding).
    pub start: u64,
    /// Bytes of the frame on the wire.
    pub wire_len: u64,
    /// Bytes of the frame once decoded.
    pub raw_len: u64,
    /// How the frame is encoded.
    pub codec: Codec,
    crc: u32,
}

impl MessageHead {
    /// Reads and checks a message head at the start of `buf` (no preamble). When the whole head
    /// is there, its bytes are split off the front of `buf` into the returned head (no copy);
    /// `Ok(None)` when `buf` does not hold the whole head yet (nothing is taken). Error offsets
    /// count from `buf[0]`.
    ///
    /// ```
    /// let mut buf = bytes::BytesMut::from(&b"\xF0M"[..]);
    /// let head = pontoon_wire::MessageHead::parse(&mut buf, &pontoon_wire::Limits::default())?;
    /// assert!(head.is_none());
    /// # Ok::<(), pontoon_wire::DecodeError>(())
    /// ```
    pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<MessageHead>, DecodeError> {
        parse_from(buf, 0, limits)
    }

    /// The whole message's length on the wire.
    ///
    /// ```
    /// # use pontoon_wire::*;
    /// let mut wire = bytes::BytesMut::from(&Encoder::default().encode(&Message::default())?.to_bytes()[..]);
    /// assert_eq!(MessageHead::parse(&mut wire, &Limits::default())?.unwrap().len(), 25);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(clippy::len_without_is_empty)] // a message is never empty
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The length of the head: prefix, frame table and header. Padding and frames follow.
    ///
    /// ```
    /// # use pontoon_wire::*;
    /// let mut wire = bytes::BytesMut::from(&Encoder::default().encode(&Message::default())?.to_bytes()[..]);
    /// assert_eq!(MessageHead::parse(&mut wire, &Limits::default())?.unwrap().head_len(), 25);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn head_len(&self) -> u64 {
        self.header.end as u64
    }

    /// Where each frame lies.
    ///
    /// ```
    /// # use pontoon_wire::*;
    /// let mut wire = bytes::BytesMut::from(&Encoder::default().encode(&Message::default())?.to_bytes()[..]);
    /// assert!(MessageHead::parse(&mut wire, &Limits::default())?.unwrap().frames().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn frames(&self) -> &[FrameLayout] {
        &self.frames
    }

    /// The message's header (validated when the head was parsed; a view of the head's bytes).
    ///
    /// ```
    /// # use pontoon_wire::*;
    /// let mut wire = bytes::BytesMut::from(&Encoder::default().encode(&Message::default())?.to_bytes()[..]);
    /// assert_eq!(MessageHead::parse(&mut wire, &Limits::default())?.unwrap().header(), Header::empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn header(&self) -> Header {
        Header::from_validated(self.bytes.slice(self.header.clone()))
    }

    /// Bytes that decompressing this message's compressed frames will make (0 if none is
    /// compressed): what a carrier weighs to decide whether to assemble off its I/O threads.
    ///
    /// ```
    /// # use pontoon_wire::*;
    /// let mut wire = bytes::BytesMut::from(&Encoder::default().encode(&Message::default())?.to_bytes()[..]);
    /// assert_eq!(MessageHead::parse(&mut wire, &Limits::default())?.unwrap().decompressed_bytes(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decompressed_bytes(&self) -> u64 {
        self.frames
            .iter()
            .filter(|f| f.codec != Codec::None)
            .map(|f| f.raw_len)
            .sum()
    }

    /// Builds the message from each frame's wire bytes, checking their lengths and checksums and
    /// decompressing; uncompressed frames are used as given, without a copy. The header is not
    /// checked again: it was checked once, by [`MessageHead::parse`].
    ///
    /// ```
    /// # use pontoon_wire::*;
    /// let mut wire = bytes::BytesMut::from(&Encoder::default().encode(&Message::default())?.to_bytes()[..]);
    /// let head = MessageHead::parse(&mut wire, &Limits::default())?.unwrap();
    /// assert_eq!(head.assemble(vec![])?, Message::default());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn assemble(self, frames: Vec<Bytes>) -> Result<Message, DecodeError> {
        if frames.len() != self.frames.len() {
            let offset = match self.frames.get(frames.len()) {
                Some(missing) => missing.start,
                None => self.len,
            };
            return Err(DecodeError::Truncated {
                offset: self.base.saturating_add(offset),
            });
        }
        for (layout, frame) in self.frames.iter().zip(&frames) {
            if frame.len() as u64 != layout.wire_len {
                return Err(DecodeError::Truncated {
                    offset: self
                        .base
                        .saturating_add(layout.start)
                        .saturating_add((frame.len() as u64).min(layout.wire_len)),
                });
            }
        }
        assemble(self, frames)
    }
}

/// Parses a head at the start of `buf` (`buf[0]` is at stream offset `base`) and, when it is all
/// there, splits its bytes off `buf`.
pub(crate) fn parse_from(
    buf: &mut BytesMut,
    base: u64,
    limits: &Limits,
) -> Result<Option<MessageHead>, DecodeError> {
    match parse_layout(buf, base, limits)? {
        Parsed::Need => Ok(None),
        Parsed::Head(layout) => {
            let bytes = buf.split_to(layout.header.end).freeze();
            Ok(Some(layout.with_bytes(bytes, base)))
        }
    }
}

/// Parses the head of a whole message held in `bytes` (a view, no copy).
pub(crate) fn parse_bytes(bytes: &Bytes, limits: &Limits) -> Result<Parsed, DecodeError> {
    parse_layout(bytes, 0, limits)
}

/// Checks the preamble at the start of `src`: `Ok(false)` if more bytes are needed. Bytes that
/// already disagree with the magic are refused at once, without waiting for all eight.
pub(crate) fn check_preamble(src: &[u8], base: u64) -> Result<bool, DecodeError> {
    let magic_seen = src.len().min(MAGIC.len());
    if src[..magic_seen] != MAGIC[..magic_seen] {
        return Err(DecodeError::BadMagic {
            offset: base,
            found: src[..magic_seen].to_vec(),
        });
    }
    let Some(&[lo, hi]) = src.get(6..PREAMBLE_LEN) else {
        return Ok(false);
    };
    let version = u16::from_le_bytes([lo, hi]);
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion {
            offset: base + 6,
            version,
            supported: VERSION,
        });
    }
    Ok(true)
}

/// A head's layout, before its bytes are split off the buffer it was read from.
pub(crate) struct Layout {
    pub(crate) len: u64,
    pub(crate) header: Range<usize>,
    checksums: bool,
    frames: Vec<FrameLayout>,
}

impl Layout {
    pub(crate) fn with_bytes(self, bytes: Bytes, base: u64) -> MessageHead {
        MessageHead {
            bytes,
            base,
            len: self.len,
            header: self.header,
            checksums: self.checksums,
            frames: self.frames,
        }
    }
}

pub(crate) enum Parsed {
    Head(Layout),
    /// The head is not all there yet.
    Need,
}

/// Reads and checks a message head from the start of `buf`; `base` is `buf[0]`'s stream offset.
fn parse_layout(buf: &[u8], base: u64, limits: &Limits) -> Result<Parsed, DecodeError> {
    if let Some(&[a, b]) = buf.get(..2)
        && [a, b] != MESSAGE_MARKER
    {
        return Err(DecodeError::BadMarker {
            offset: base,
            found: [a, b],
        });
    }
    if buf.len() < PREFIX_LEN {
        return Ok(Parsed::Need);
    }
    let flags = buf[2];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::UnknownFlags {
            offset: base + 2,
            flags,
        });
    }
    let align_log2 = buf[3];
    if align_log2 > MAX_ALIGN_LOG2 {
        return Err(DecodeError::BadAlignment {
            offset: base + 3,
            align_log2,
        });
    }
    let count = read_u64(buf, 8);
    if count > limits.max_frames {
        return Err(DecodeError::TooManyFrames {
            offset: base + 8,
            count,
            limit: limits.max_frames,
        });
    }
    let header_len = read_u64(buf, 16);
    if header_len > limits.max_header_bytes {
        return Err(DecodeError::HeaderTooLarge {
            offset: base + 16,
            len: header_len,
            limit: limits.max_header_bytes,
        });
    }
    let head_len = count
        .checked_mul(ENTRY_LEN as u64)
        .and_then(|table| table.checked_add(PREFIX_LEN as u64))
        .and_then(|n| n.checked_add(header_len))
        .ok_or(DecodeError::LengthOverflow { offset: base + 8 })?;
    if head_len > limits.max_message_bytes {
        return Err(DecodeError::MessageTooLarge {
            offset: base + 8,
            len: head_len,
            limit: limits.max_message_bytes,
        });
    }
    if (buf.len() as u64) < head_len {
        return Ok(Parsed::Need);
    }
    // From here on every offset is below buf.len(), so fits in usize.
    let head_len = head_len as usize;
    let checksums = flags & FLAG_CHECKSUMS != 0;
    if checksums {
        let expected = read_u32(buf, 4);
        let actual = crc32c::crc32c_append(crc32c::crc32c(&buf[..4]), &buf[8..head_len]);
        if expected != actual {
            return Err(DecodeError::ChecksumMismatch {
                offset: base + 4,
                frame: None,
                expected,
                actual,
            });
        }
    } else if read_u32(buf, 4) != 0 {
        return Err(DecodeError::ReservedNotZero { offset: base + 4 });
    }

    let count = count as usize;
    let mut frames = Vec::new();
    // The table is in `buf`, so `count` entries take `24 * count` bytes that have arrived: the
    // reservation is bounded by what the peer sent, and fallible all the same.
    frames
        .try_reserve_exact(count)
        .map_err(|_| DecodeError::OutOfMemory {
            offset: base + PREFIX_LEN as u64,
            frame: 0,
            len: count as u64,
        })?;
    let mut pos = head_len as u64;
    let mut raw_total = 0u64;
    for index in 0..count {
        let at = PREFIX_LEN + index * ENTRY_LEN;
        let offset = base + at as u64;
        let frame = index as u64;
        let wire_len = read_u64(buf, at);
        let raw_len = read_u64(buf, at + 8);
        let codec = Codec::from_id(buf[at + 16]).ok_or(DecodeError::UnknownCodec {
            offset: offset + 16,
            frame,
            codec: buf[at + 16],
        })?;
        if let Some(feature) = codec.feature().filter(|_| !codec.is_built()) {
            return Err(DecodeError::CodecNotBuilt {
                offset: offset + 16,
                frame,
                codec,
                feature,
            });
        }
        if buf[at + 17..at + 20] != [0, 0, 0] {
            return Err(DecodeError::ReservedNotZero {
                offset: offset + 17,
            });
        }
        let crc = read_u32(buf, at + 20);
        if !checksums && crc != 0 {
            return Err(DecodeError::ReservedNotZero {
                offset: offset + 20,
            });
        }
        for (len, field) in [(wire_len, 0), (raw_len, 8)] {
            if len > limits.max_frame_bytes {
                return Err(DecodeError::FrameTooLarge {
                    offset: offset + field,
                    frame,
                    len,
                    limit: limits.max_frame_bytes,
                });
            }
        }
        if codec == Codec::None && raw_len != wire_len {
            return Err(DecodeError::InconsistentFrame {
                offset,
                frame,
                wire_len,
                raw_len,
            });
        }
        if codec != Codec::None {
            let limit = limits.max_expansion(wire_len);
            if raw_len > limit {
                return Err(DecodeError::ExpansionTooLarge {
                    offset: offset + 8,
                    frame,
                    wire_len,
                    raw_len,
                    limit,
                });
            }
        }
        raw_total = raw_total
            .checked_add(raw_len)
            .ok_or(DecodeError::LengthOverflow { offset })?;
        let start = align_up(pos, align_log2).ok_or(DecodeError::LengthOverflow { offset })?;
        pos = start
            .checked_add(wire_len)
            .ok_or(DecodeError::LengthOverflow { offset })?;
        for len in [pos, raw_total] {
            if len > limits.max_message_bytes {
                return Err(DecodeError::MessageTooLarge {
                    offset,
                    len,
                    limit: limits.max_message_bytes,
                });
            }
        }
        frames.push(FrameLayout {
            start,
            wire_len,
            raw_len,
            codec,
            crc,
        });
    }

    let header = head_len - header_len as usize..head_len;
    header::validate(&buf[header.clone()], limits.max_header_depth).map_err(|(at, fault)| {
        DecodeError::MalformedHeader {
            offset: base + (header.start + at) as u64,
            fault,
        }
    })?;
    Ok(Parsed::Head(Layout {
        len: pos,
        header,
        checksums,
        frames,
    }))
}

/// Checks and decompresses each frame's wire bytes (of the right count and lengths) into the
/// message.
pub(crate) fn assemble(head: MessageHead, wires: Vec<Bytes>) -> Result<Message, DecodeError> {
    let mut frames = Vec::with_capacity(head.frames.len());
    for (index, (entry, wire)) in head.frames.iter().zip(wires).enumerate() {
        let frame = index as u64;
        let offset = head.base.saturating_add(entry.start);
        if head.checksums {
            let actual = crc32c::crc32c(&wire);
            if actual != entry.crc {
                return Err(DecodeError::ChecksumMismatch {
                    offset,
                    frame: Some(frame),
                    expected: entry.crc,
                    actual,
                });
            }
        }
        if entry.codec == Codec::None {
            frames.push(wire);
            continue;
        }
        let codec = entry.codec;
        let decompressed =
            codec::decompress(codec, &wire, entry.raw_len).map_err(|failure| match failure {
                DecompressFailure::At { offset: at, fault } => DecodeError::Decompress {
                    offset: offset.saturating_add(at),
                    frame,
                    codec,
                    fault,
                },
                DecompressFailure::OutOfMemory => DecodeError::OutOfMemory {
                    offset,
                    frame,
                    len: entry.raw_len,
                },
            })?;
        frames.push(decompressed);
    }
    Ok(Message {
        header: head.header(),
        frames,
    })
}
