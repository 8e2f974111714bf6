//! The stream decoder: [`Decoder`] reads messages incrementally from one contiguous receive
//! buffer, and [`decode_message`] reads one complete message; payload frames come out as views,
//! not copies.

use bytes::{Buf, Bytes, BytesMut};

use crate::format::{PREAMBLE_LEN, PREFIX_LEN};
use crate::head::{self, Parsed};
use crate::{DecodeError, Limits, Message, MessageHead};

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
/// use pontoon_wire::{Decoder, Encoder, Header, Message, preamble};
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
    /// The head of the message now arriving, once it has been read and checked (its bytes are
    /// no longer in the receive buffer).
    head: Option<MessageHead>,
    failed: Option<DecodeError>,
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
    /// let mut decoder = pontoon_wire::Decoder::new();
    /// let mut buf = bytes::BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
    /// assert!(matches!(decoder.decode(&mut buf), Err(pontoon_wire::DecodeError::BadMagic { offset: 0, .. })));
    /// ```
    pub fn new() -> Decoder {
        Decoder::with_limits(Limits::default())
    }

    /// A decoder with these limits that expects the preamble first.
    ///
    /// ```
    /// let mut limits = pontoon_wire::Limits::default();
    /// limits.max_frames = 16;
    /// let decoder = pontoon_wire::Decoder::with_limits(limits);
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
    /// let decoder = pontoon_wire::Decoder::without_preamble(pontoon_wire::Limits::default());
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
    /// assert_eq!(*pontoon_wire::Decoder::new().limits(), pontoon_wire::Limits::default());
    /// ```
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes of the stream consumed so far: the offset, in the stream, of `src[0]`.
    ///
    /// ```
    /// assert_eq!(pontoon_wire::Decoder::new().stream_offset(), 0);
    /// ```
    pub fn stream_offset(&self) -> u64 {
        self.consumed
    }

    /// Decodes the next message from `src` if it is all there (see the type's docs).
    ///
    /// ```
    /// let mut decoder = pontoon_wire::Decoder::new();
    /// let mut buf = bytes::BytesMut::from(&b"\xF0FE"[..]); // the start of a preamble
    /// assert_eq!(decoder.decode(&mut buf)?, None);
    /// # Ok::<(), pontoon_wire::DecodeError>(())
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
    /// let mut decoder = pontoon_wire::Decoder::without_preamble(pontoon_wire::Limits::default());
    /// let mut buf = bytes::BytesMut::from(&b"\xF0M\x00"[..]);
    /// assert!(matches!(decoder.decode_eof(&mut buf), Err(pontoon_wire::DecodeError::Truncated { offset: 3 })));
    /// ```
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        match self.decode(src)? {
            Some(message) => Ok(Some(message)),
            // A clean end only between messages: a head already taken from `src` is a
            // message in progress even when no byte of it is left in the buffer.
            None if src.is_empty() && self.head.is_none() => Ok(None),
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
            if !head::check_preamble(src, self.consumed)? {
                return Ok(None);
            }
            src.advance(PREAMBLE_LEN);
            self.consumed += PREAMBLE_LEN as u64;
            self.expect_preamble = false;
        }
        let head = match self.head.take() {
            Some(head) => head,
            None => match head::parse_from(src, self.consumed, &self.limits)? {
                Some(head) => {
                    // The head's bytes moved out of `src`; the rest of the message follows.
                    self.consumed += head.head_len();
                    head
                }
                None => {
                    reserve_for(src, PREFIX_LEN as u64);
                    return Ok(None);
                }
            },
        };
        let head_len = head.head_len();
        let rest = head.len() - head_len;
        if (src.len() as u64) < rest {
            reserve_for(src, rest);
            self.head = Some(head);
            return Ok(None);
        }
        let body = src.split_to(rest as usize).freeze();
        self.consumed += rest;
        let frames = head
            .frames()
            .iter()
            .map(|f| {
                body.slice(
                    (f.start - head_len) as usize..(f.start - head_len + f.wire_len) as usize,
                )
            })
            .collect();
        head::assemble(head, frames).map(Some)
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
/// use pontoon_wire::{Encoder, Header, Limits, Message, decode_message};
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
    let layout = match head::parse_bytes(&bytes, limits)? {
        Parsed::Head(layout) => layout,
        Parsed::Need => {
            return Err(DecodeError::Truncated {
                offset: bytes.len() as u64,
            });
        }
    };
    match (bytes.len() as u64).cmp(&layout.len) {
        std::cmp::Ordering::Less => Err(DecodeError::Truncated {
            offset: bytes.len() as u64,
        }),
        std::cmp::Ordering::Greater => Err(DecodeError::TrailingBytes { offset: layout.len }),
        std::cmp::Ordering::Equal => {
            let head_len = layout.header.end;
            let head = layout.with_bytes(bytes.slice(..head_len), 0);
            let frames = head
                .frames()
                .iter()
                .map(|f| bytes.slice(f.start as usize..(f.start + f.wire_len) as usize))
                .collect();
            head::assemble(head, frames)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, Header};
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
        let encoder = Encoder::new(EncodeOptions {
            codec: Codec::Lz4,
            checksums: true,
            ..EncodeOptions::default()
        });
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
