//! Decoding: [`Decoder`] reads messages incrementally from a receive buffer, and
//! [`decode_message`] reads one complete message; payload frames come out as views, not copies.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::codec::{self, Codec, DecompressFault};
use crate::format::{
    ENTRY_LEN, FLAG_CHECKSUMS, KNOWN_FLAGS, MAGIC, MAX_ALIGN_LOG2, MESSAGE_MARKER, PREAMBLE_LEN,
    PREFIX_LEN, VERSION, align_up, read_u32, read_u64,
};
use crate::header::{self, HeaderFault};
use crate::{Header, Limits, Message};

/// The most a decoder reserves in the receive buffer at once for a message still arriving; larger
/// messages grow the buffer as their bytes come in.
const RESERVE_CAP: u64 = 64 << 20;

/// Reads messages from a byte stream as its bytes arrive, with no I/O of its own.
///
/// [`Decoder::decode`] follows the tokio-util `Decoder` contract: `Ok(Some(message))` when a whole
/// message is in the buffer (its bytes are then removed from it), `Ok(None)` when more bytes are
/// needed, and `Err` when the stream is malformed. Each uncompressed frame of a decoded message is
/// a [`Bytes`] slice of the receive buffer: no payload byte is copied.
///
/// Every length and count is checked against the decoder's [`Limits`] before anything is
/// allocated. After an error the stream cannot be trusted to resynchronize: every later call
/// returns the same error.
///
/// ```
/// use bytes::{BufMut, Bytes, BytesMut};
/// use ferry_wire::{Decoder, Encoder, Header, Message, preamble};
///
/// let message = Message::new(Header::from_serde(&"hello")?, vec![Bytes::from(vec![1u8; 4096])]);
/// let mut stream = BytesMut::new();
/// stream.put(preamble());
/// stream.put(Encoder::default().encode(&message)?);
///
/// let mut received = BytesMut::new();
/// let mut decoder = Decoder::new();
/// // Bytes arrive a few at a time; until the message is whole, the decoder asks for more.
/// for chunk in stream.chunks(1000) {
///     assert_eq!(decoder.decode(&mut received)?, None);
///     received.extend_from_slice(chunk);
/// }
/// assert_eq!(decoder.decode(&mut received)?, Some(message));
/// assert!(received.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    expect_preamble: bool,
    /// Stream offset of the first byte in the receive buffer, for error messages.
    consumed: u64,
    /// The head of the message now arriving, once it has been read and checked.
    head: Option<MessageHead>,
    failed: Option<DecodeError>,
}

/// A message's head, read and checked: where its header and each frame lie, relative to the
/// message's first byte. For carriers that read frames themselves (straight into buffers of
/// their own, say): [`MessageHead::parse`] the head, read each frame's bytes, then
/// [`MessageHead::assemble`] the message.
///
/// ```
/// use bytes::Bytes;
/// use ferry_wire::{Encoder, Header, Limits, Message, MessageHead};
///
/// let message = Message::new(Header::empty(), vec![Bytes::from(vec![7u8; 1000])]);
/// let wire = Encoder::default().encode(&message)?.to_bytes();
/// let head = MessageHead::parse(&wire[..100], &Limits::default())?.expect("the head is in the first 100 bytes");
/// assert_eq!(head.len(), wire.len() as u64);
/// let frame = &head.frames()[0];
/// let frame_bytes = wire.slice(frame.start as usize..(frame.start + frame.wire_len) as usize);
/// let head_bytes = wire.slice(..head.head_len());
/// let back = head.assemble(head_bytes, vec![frame_bytes])?;
/// assert_eq!(back, message);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MessageHead {
    len: u64,
    header: Range<usize>,
    checksums: bool,
    frames: Vec<FrameLayout>,
}

/// Where one frame lies in its message, and how it is encoded.
///
/// ```
/// # use ferry_wire::*;
/// let m = Message::new(Header::empty(), vec![bytes::Bytes::from_static(b"abc")]);
/// let wire = Encoder::default().encode(&m)?.to_bytes();
/// let head = MessageHead::parse(&wire, &Limits::default())?.unwrap();
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
    /// Reads and checks a message head at the start of `buf` (no preamble): `Ok(None)` when `buf`
    /// does not hold the whole head yet. Error offsets count from `buf[0]`.
    ///
    /// ```
    /// let head = ferry_wire::MessageHead::parse(b"\xF0M", &ferry_wire::Limits::default())?;
    /// assert!(head.is_none());
    /// # Ok::<(), ferry_wire::DecodeError>(())
    /// ```
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<MessageHead>, DecodeError> {
        match parse_head(buf, 0, limits)? {
            Parsed::Head(head) => Ok(Some(head)),
            Parsed::Need(_) => Ok(None),
        }
    }

    /// The whole message's length on the wire.
    ///
    /// ```
    /// # use ferry_wire::*;
    /// let wire = Encoder::default().encode(&Message::default())?.to_bytes();
    /// assert_eq!(MessageHead::parse(&wire, &Limits::default())?.unwrap().len(), 25);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(clippy::len_without_is_empty)] // a message is never empty
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The length of the head: prefix, frame table and header. Padding and frames follow.
    ///
    /// ```
    /// # use ferry_wire::*;
    /// let wire = Encoder::default().encode(&Message::default())?.to_bytes();
    /// assert_eq!(MessageHead::parse(&wire, &Limits::default())?.unwrap().head_len(), 25);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn head_len(&self) -> usize {
        self.header.end
    }

    /// Where each frame lies.
    ///
    /// ```
    /// # use ferry_wire::*;
    /// let wire = Encoder::default().encode(&Message::default())?.to_bytes();
    /// assert!(MessageHead::parse(&wire, &Limits::default())?.unwrap().frames().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn frames(&self) -> &[FrameLayout] {
        &self.frames
    }

    /// Builds the message from its head's bytes (at least [`MessageHead::head_len`] of them:
    /// the same bytes `parse` read) and each frame's wire bytes, checking checksums, lengths and
    /// the header, and decompressing. Uncompressed frames are used as given, without a copy.
    ///
    /// ```
    /// # use ferry_wire::*;
    /// let wire = Encoder::default().encode(&Message::default())?.to_bytes();
    /// let head = MessageHead::parse(&wire, &Limits::default())?.unwrap();
    /// assert_eq!(head.assemble(wire, vec![])?, Message::default());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn assemble(self, head: Bytes, frames: Vec<Bytes>) -> Result<Message, DecodeError> {
        if head.len() < self.head_len() {
            return Err(DecodeError::Truncated {
                offset: head.len() as u64,
            });
        }
        if frames.len() != self.frames.len() {
            return Err(DecodeError::Truncated {
                offset: self.head_len() as u64,
            });
        }
        for (layout, frame) in self.frames.iter().zip(&frames) {
            if frame.len() as u64 != layout.wire_len {
                return Err(DecodeError::Truncated {
                    offset: layout.start + frame.len() as u64,
                });
            }
        }
        // The head may come from anywhere: check the header again rather than trust it.
        let header = head.slice(self.header.clone());
        header::validate(&header, usize::MAX).map_err(|(at, fault)| {
            DecodeError::MalformedHeader {
                offset: (self.header.start + at) as u64,
                fault,
            }
        })?;
        assemble(self, header, frames, 0)
    }
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with default [`Limits`] that expects the connection [`preamble`](crate::preamble)
    /// before the first message.
    ///
    /// ```
    /// let mut decoder = ferry_wire::Decoder::new();
    /// let mut buf = bytes::BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
    /// assert!(matches!(decoder.decode(&mut buf), Err(ferry_wire::DecodeError::BadMagic { offset: 0, .. })));
    /// ```
    pub fn new() -> Decoder {
        Decoder::with_limits(Limits::default())
    }

    /// A decoder with these limits that expects the preamble first.
    ///
    /// ```
    /// let mut limits = ferry_wire::Limits::default();
    /// limits.max_frames = 16;
    /// let decoder = ferry_wire::Decoder::with_limits(limits);
    /// assert_eq!(decoder.limits().max_frames, 16);
    /// ```
    pub fn with_limits(limits: Limits) -> Decoder {
        Decoder {
            limits,
            expect_preamble: true,
            consumed: 0,
            head: None,
            failed: None,
        }
    }

    /// A decoder for a stream whose preamble has already been read, or that has none (a carrier
    /// that agreed on the version some other way).
    ///
    /// ```
    /// let decoder = ferry_wire::Decoder::without_preamble(ferry_wire::Limits::default());
    /// # let _ = decoder;
    /// ```
    pub fn without_preamble(limits: Limits) -> Decoder {
        Decoder {
            expect_preamble: false,
            ..Decoder::with_limits(limits)
        }
    }

    /// The limits this decoder enforces.
    ///
    /// ```
    /// assert_eq!(*ferry_wire::Decoder::new().limits(), ferry_wire::Limits::default());
    /// ```
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes of the stream consumed so far: the offset, in the stream, of `src[0]`.
    ///
    /// ```
    /// assert_eq!(ferry_wire::Decoder::new().stream_offset(), 0);
    /// ```
    pub fn stream_offset(&self) -> u64 {
        self.consumed
    }

    /// Decodes the next message from `src` if it is all there (see the type's docs).
    ///
    /// ```
    /// let mut decoder = ferry_wire::Decoder::new();
    /// let mut buf = bytes::BytesMut::from(&b"\xF0FE"[..]); // the start of a preamble
    /// assert_eq!(decoder.decode(&mut buf)?, None);
    /// # Ok::<(), ferry_wire::DecodeError>(())
    /// ```
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.decode_inner(src);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// Like [`Decoder::decode`], for when the stream has ended: bytes left over that do not make
    /// a whole message are an error ([`DecodeError::Truncated`]) rather than "need more".
    ///
    /// ```
    /// let mut decoder = ferry_wire::Decoder::without_preamble(ferry_wire::Limits::default());
    /// let mut buf = bytes::BytesMut::from(&b"\xF0M\x00"[..]);
    /// assert!(matches!(decoder.decode_eof(&mut buf), Err(ferry_wire::DecodeError::Truncated { offset: 3 })));
    /// ```
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        match self.decode(src)? {
            Some(message) => Ok(Some(message)),
            None if src.is_empty() => Ok(None),
            None => {
                let error = DecodeError::Truncated {
                    offset: self.consumed + src.len() as u64,
                };
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }

    fn decode_inner(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        if self.expect_preamble {
            if !check_preamble(src, self.consumed)? {
                return Ok(None);
            }
            src.advance(PREAMBLE_LEN);
            self.consumed += PREAMBLE_LEN as u64;
            self.expect_preamble = false;
        }
        let head = match &self.head {
            Some(head) => head,
            None => match parse_head(src, self.consumed, &self.limits)? {
                Parsed::Head(head) => self.head.insert(head),
                Parsed::Need(len) => {
                    reserve_for(src, len);
                    return Ok(None);
                }
            },
        };
        if (src.len() as u64) < head.len {
            reserve_for(src, head.len);
            return Ok(None);
        }
        let head = self.head.take().expect("the head was just read");
        let message = src.split_to(head.len as usize).freeze();
        let base = self.consumed;
        self.consumed += head.len;
        finish(head, message, base).map(Some)
    }
}

/// Reserves room for a message of `len` bytes in total, up to [`RESERVE_CAP`] more at a time.
fn reserve_for(src: &mut BytesMut, len: u64) {
    let missing = len.saturating_sub(src.len() as u64).min(RESERVE_CAP);
    src.reserve(missing as usize);
}

/// Decodes one complete message (no preamble) from `bytes`, which must hold exactly that message.
/// Frames are slices of `bytes`, so a message read from a file or a memory map stays where it is.
///
/// ```
/// use bytes::Bytes;
/// use ferry_wire::{Encoder, Header, Limits, Message, decode_message};
///
/// let message = Message::new(Header::empty(), vec![Bytes::from(vec![3u8; 1 << 16])]);
/// let bytes = Encoder::default().encode(&message)?.to_bytes();
/// let decoded = decode_message(bytes.clone(), &Limits::default())?;
/// assert_eq!(decoded, message);
/// // The frame points into `bytes`.
/// let frame = decoded.frames[0].as_ptr() as usize;
/// assert!((bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len()).contains(&frame));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_message(bytes: Bytes, limits: &Limits) -> Result<Message, DecodeError> {
    let head = match parse_head(&bytes, 0, limits)? {
        Parsed::Head(head) => head,
        Parsed::Need(_) => {
            return Err(DecodeError::Truncated {
                offset: bytes.len() as u64,
            });
        }
    };
    match (bytes.len() as u64).cmp(&head.len) {
        std::cmp::Ordering::Less => Err(DecodeError::Truncated {
            offset: bytes.len() as u64,
        }),
        std::cmp::Ordering::Greater => Err(DecodeError::TrailingBytes { offset: head.len }),
        std::cmp::Ordering::Equal => finish(head, bytes, 0),
    }
}

/// Checks the preamble at the start of `src`: `Ok(false)` if more bytes are needed. Bytes that
/// already disagree with the magic are refused at once, without waiting for all eight.
fn check_preamble(src: &[u8], base: u64) -> Result<bool, DecodeError> {
    let magic_seen = src.len().min(MAGIC.len());
    if src[..magic_seen] != MAGIC[..magic_seen] {
        return Err(DecodeError::BadMagic {
            offset: base,
            found: src[..magic_seen].to_vec(),
        });
    }
    if src.len() < PREAMBLE_LEN {
        return Ok(false);
    }
    let version = u16::from_le_bytes([src[6], src[7]]);
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion {
            offset: base + 6,
            version,
            supported: VERSION,
        });
    }
    Ok(true)
}

enum Parsed {
    Head(MessageHead),
    /// The head is not all there: the message needs at least this many bytes.
    Need(u64),
}

/// Reads and checks a message head from the start of `buf`; `base` is `buf[0]`'s stream offset.
fn parse_head(buf: &[u8], base: u64, limits: &Limits) -> Result<Parsed, DecodeError> {
    if buf.len() < PREFIX_LEN {
        if buf.len() >= 2 && buf[..2] != MESSAGE_MARKER {
            return Err(DecodeError::BadMarker {
                offset: base,
                found: [buf[0], buf[1]],
            });
        }
        return Ok(Parsed::Need(PREFIX_LEN as u64));
    }
    if buf[..2] != MESSAGE_MARKER {
        return Err(DecodeError::BadMarker {
            offset: base,
            found: [buf[0], buf[1]],
        });
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
        return Ok(Parsed::Need(head_len));
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
    let mut frames = Vec::with_capacity(count);
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
    Ok(Parsed::Head(MessageHead {
        len: pos,
        header,
        checksums,
        frames,
    }))
}

/// Cuts the frames out of a whole message, checking and decompressing them.
fn finish(head: MessageHead, message: Bytes, base: u64) -> Result<Message, DecodeError> {
    let wires = head
        .frames
        .iter()
        .map(|entry| message.slice(entry.start as usize..(entry.start + entry.wire_len) as usize))
        .collect();
    let header = message.slice(head.header.clone());
    assemble(head, header, wires, base)
}

/// Checks and decompresses each frame's wire bytes into the message.
fn assemble(
    head: MessageHead,
    header: Bytes,
    wires: Vec<Bytes>,
    base: u64,
) -> Result<Message, DecodeError> {
    let mut frames = Vec::with_capacity(head.frames.len());
    for (index, (entry, wire)) in head.frames.iter().zip(wires).enumerate() {
        let frame = index as u64;
        let offset = base + entry.start;
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
        frames.push(codec::decompress(codec, &wire, entry.raw_len).map_err(
            |fault| match fault {
                DecompressFault::Truncated { offset: at } => DecodeError::Decompress {
                    offset: offset + at,
                    frame,
                    codec,
                    reason: "a block runs past the end of the frame".into(),
                },
                DecompressFault::TrailingBytes { offset: at } => DecodeError::Decompress {
                    offset: offset + at,
                    frame,
                    codec,
                    reason: "bytes follow the last block".into(),
                },
                DecompressFault::Corrupt { offset: at, reason } => DecodeError::Decompress {
                    offset: offset + at,
                    frame,
                    codec,
                    reason,
                },
                DecompressFault::WrongLength {
                    offset: at,
                    expected,
                    actual,
                } => DecodeError::Decompress {
                    offset: offset + at,
                    frame,
                    codec,
                    reason: format!("a block decompressed to {actual} bytes, not {expected}"),
                },
                DecompressFault::OutOfMemory => DecodeError::OutOfMemory {
                    offset,
                    frame,
                    len: entry.raw_len,
                },
            },
        )?);
    }
    Ok(Message {
        header: Header::from_validated(header),
        frames,
    })
}

/// What was wrong with the bytes being decoded. Every variant names the byte offset, counted from
/// the start of the stream (or of the buffer given to [`decode_message`]), where it was found.
///
/// ```
/// use ferry_wire::{DecodeError, Limits, decode_message};
/// let mut limits = Limits::default();
/// limits.max_frames = 2;
/// let mut bytes = b"\xF0M\x00\x06\x00\x00\x00\x00".to_vec();
/// bytes.extend_from_slice(&1000u64.to_le_bytes()); // frame count
/// bytes.extend_from_slice(&1u64.to_le_bytes()); // header length
/// let err = decode_message(bytes.into(), &limits).unwrap_err();
/// assert_eq!(err, DecodeError::TooManyFrames { offset: 8, count: 1000, limit: 2 });
/// assert_eq!(err.to_string(), "frame count 1000 at byte offset 8 is over the limit of 2 (Limits::max_frames)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The stream does not start with ferry's magic number: this is not a ferry peer.
    #[error(
        "not a ferry stream: expected magic F0 46 45 52 52 59, found {found:02X?} at byte offset {offset}"
    )]
    BadMagic {
        /// Where the preamble starts.
        offset: u64,
        /// The bytes found there.
        found: Vec<u8>,
    },
    /// The peer speaks a wire-format version this crate does not.
    #[error(
        "unsupported wire-format version {version} at byte offset {offset} (this side speaks {supported})"
    )]
    UnsupportedVersion {
        /// Where the version field is.
        offset: u64,
        /// The version the peer sent.
        version: u16,
        /// The version this crate speaks.
        supported: u16,
    },
    /// A message does not start with the message marker: the stream is corrupt or out of step.
    #[error("expected a message marker F0 4D at byte offset {offset}, found {found:02X?}")]
    BadMarker {
        /// Where the message should start.
        offset: u64,
        /// The two bytes found there.
        found: [u8; 2],
    },
    /// The message sets flag bits this version does not define.
    #[error("unknown flag bits {flags:#010b} at byte offset {offset}")]
    UnknownFlags {
        /// Where the flags byte is.
        offset: u64,
        /// The flags byte.
        flags: u8,
    },
    /// The message asks for a frame alignment above 4096 bytes.
    #[error("frame alignment 2^{align_log2} at byte offset {offset} is above the maximum 2^12")]
    BadAlignment {
        /// Where the alignment byte is.
        offset: u64,
        /// The alignment asked for, as a power of two.
        align_log2: u8,
    },
    /// A field this version reserves is not zero.
    #[error("reserved field at byte offset {offset} is not zero")]
    ReservedNotZero {
        /// Where the field is.
        offset: u64,
    },
    /// The message has more frames than [`Limits::max_frames`].
    #[error(
        "frame count {count} at byte offset {offset} is over the limit of {limit} (Limits::max_frames)"
    )]
    TooManyFrames {
        /// Where the count is.
        offset: u64,
        /// The count the message declares.
        count: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The header is longer than [`Limits::max_header_bytes`].
    #[error(
        "header length {len} at byte offset {offset} is over the limit of {limit} (Limits::max_header_bytes)"
    )]
    HeaderTooLarge {
        /// Where the length is.
        offset: u64,
        /// The length the message declares.
        len: u64,
        /// The limit in force.
        limit: u64,
    },
    /// A frame is longer than [`Limits::max_frame_bytes`], on the wire or decompressed.
    #[error(
        "frame {frame} length {len} at byte offset {offset} is over the limit of {limit} (Limits::max_frame_bytes)"
    )]
    FrameTooLarge {
        /// Where the length is.
        offset: u64,
        /// Index of the frame.
        frame: u64,
        /// The length declared.
        len: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The message, on the wire or decompressed, is longer than [`Limits::max_message_bytes`].
    #[error(
        "message length {len} (reached at byte offset {offset}) is over the limit of {limit} (Limits::max_message_bytes)"
    )]
    MessageTooLarge {
        /// Where the length that crossed the limit is declared.
        offset: u64,
        /// The message length so far.
        len: u64,
        /// The limit in force.
        limit: u64,
    },
    /// Declared lengths add up to more than 2^64 bytes.
    #[error("lengths declared up to byte offset {offset} overflow 64 bits when added up")]
    LengthOverflow {
        /// Where the length that overflowed is declared.
        offset: u64,
    },
    /// A frame is encoded with a codec this version does not know.
    #[error("frame {frame} uses unknown codec {codec} (byte offset {offset})")]
    UnknownCodec {
        /// Where the codec byte is.
        offset: u64,
        /// Index of the frame.
        frame: u64,
        /// The codec number.
        codec: u8,
    },
    /// An uncompressed frame declares different lengths on the wire and decoded.
    #[error(
        "uncompressed frame {frame} at byte offset {offset} declares {wire_len} bytes on the wire but {raw_len} decoded"
    )]
    InconsistentFrame {
        /// Where the frame's table entry is.
        offset: u64,
        /// Index of the frame.
        frame: u64,
        /// Declared length on the wire.
        wire_len: u64,
        /// Declared decoded length.
        raw_len: u64,
    },
    /// A CRC32C does not match: the bytes were damaged on the way.
    #[error("checksum mismatch for {} at byte offset {offset}: expected {expected:#010x}, computed {actual:#010x}", match frame { Some(i) => format!("frame {i}"), None => "the message head".to_string() })]
    ChecksumMismatch {
        /// Where the checked bytes start (the head's checksum field for the head).
        offset: u64,
        /// The frame, or `None` for the message head.
        frame: Option<u64>,
        /// The checksum the sender wrote.
        expected: u32,
        /// The checksum of the bytes received.
        actual: u32,
    },
    /// The header is not one well-formed MessagePack value.
    #[error("malformed header at byte offset {offset}: {fault}")]
    MalformedHeader {
        /// Where in the stream the fault is.
        offset: u64,
        /// What is wrong.
        fault: HeaderFault,
    },
    /// A compressed frame does not decompress to what its table entry says.
    #[error("cannot decompress frame {frame} ({codec}) at byte offset {offset}: {reason}")]
    Decompress {
        /// Where the bad block starts.
        offset: u64,
        /// Index of the frame.
        frame: u64,
        /// The frame's codec.
        codec: Codec,
        /// What the codec or the block layout said.
        reason: String,
    },
    /// Memory for a decompressed frame could not be had.
    #[error("cannot allocate {len} bytes to decompress frame {frame} at byte offset {offset}")]
    OutOfMemory {
        /// Where the frame starts.
        offset: u64,
        /// Index of the frame.
        frame: u64,
        /// The bytes asked for.
        len: u64,
    },
    /// The input ended in the middle of a message.
    #[error("input ends in the middle of a message at byte offset {offset}")]
    Truncated {
        /// Where the input ends.
        offset: u64,
    },
    /// Bytes follow the one message the input should hold.
    #[error("bytes follow the end of the message at byte offset {offset}")]
    TrailingBytes {
        /// Where the message ends.
        offset: u64,
    },
}

impl DecodeError {
    /// The byte offset the error was found at.
    ///
    /// ```
    /// let err = ferry_wire::DecodeError::Truncated { offset: 7 };
    /// assert_eq!(err.offset(), 7);
    /// ```
    pub fn offset(&self) -> u64 {
        match self {
            DecodeError::BadMagic { offset, .. }
            | DecodeError::UnsupportedVersion { offset, .. }
            | DecodeError::BadMarker { offset, .. }
            | DecodeError::UnknownFlags { offset, .. }
            | DecodeError::BadAlignment { offset, .. }
            | DecodeError::ReservedNotZero { offset }
            | DecodeError::TooManyFrames { offset, .. }
            | DecodeError::HeaderTooLarge { offset, .. }
            | DecodeError::FrameTooLarge { offset, .. }
            | DecodeError::MessageTooLarge { offset, .. }
            | DecodeError::LengthOverflow { offset }
            | DecodeError::UnknownCodec { offset, .. }
            | DecodeError::InconsistentFrame { offset, .. }
            | DecodeError::ChecksumMismatch { offset, .. }
            | DecodeError::MalformedHeader { offset, .. }
            | DecodeError::Decompress { offset, .. }
            | DecodeError::OutOfMemory { offset, .. }
            | DecodeError::Truncated { offset }
            | DecodeError::TrailingBytes { offset } => *offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EncodeOptions, Encoder};

    /// Small enough for miri: a stream of two messages (one compressed, with checksums) fed one
    /// byte at a time decodes to what was sent.
    #[test]
    fn byte_by_byte_stream_decodes() {
        let compressible = Bytes::from((0..12_000u32).map(|i| (i / 100) as u8).collect::<Vec<_>>());
        let messages = [
            Message::new(
                Header::from_serde(&"first").unwrap(),
                vec![Bytes::from_static(b"abc")],
            ),
            Message::new(Header::empty(), vec![compressible, Bytes::new()]),
        ];
        let encoder = Encoder::new(EncodeOptions::default().codec(Codec::Lz4).checksums(true));
        let mut stream = crate::preamble().to_vec();
        for m in &messages {
            stream.extend_from_slice(&encoder.encode(m).unwrap().to_bytes());
        }
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for &byte in &stream {
            buf.extend_from_slice(&[byte]);
            if let Some(m) = decoder.decode(&mut buf).unwrap() {
                decoded.push(m);
            }
        }
        assert_eq!(decoded, messages);
        assert_eq!(decoder.stream_offset(), stream.len() as u64);
    }
}
