//! The close message: a code and a short reason a receiver sends before it closes its side,
//! so that the peer learns why instead of seeing an end of stream (see `docs/wire-format.md`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::DecodeError;

/// The two bytes that open a close message: `F0 43` (`\xF0C`), where a message would have
/// [`MESSAGE_MARKER`](crate::MESSAGE_MARKER).
pub const CLOSE_MARKER: [u8; 2] = *b"\xF0C";

/// Length of a close message's fixed part: marker, code, reason length, reserved.
pub const CLOSE_PREFIX_LEN: usize = 8;

/// The longest reason a close message carries, in bytes of UTF-8; a close message is at most
/// `CLOSE_PREFIX_LEN + MAX_CLOSE_REASON_BYTES` = 128 bytes.
pub const MAX_CLOSE_REASON_BYTES: usize = 120;

/// Why a side closes its stream.
///
/// ```
/// use pontoon_wire::CloseCode;
/// assert_eq!(CloseCode::from_u16(CloseCode::TooLarge.to_u16()), CloseCode::TooLarge);
/// assert_eq!(CloseCode::from_u16(900), CloseCode::Other(900));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// 1: the side is shutting down; nothing was wrong.
    GoingAway,
    /// 2: a message was over the receiver's limits.
    TooLarge,
    /// 3: the bytes were not a valid message.
    Malformed,
    /// 4: a well-formed message the receiver does not accept (its family is not on the
    /// receiver's list, say).
    NotAccepted,
    /// 5: the receiver failed for reasons of its own (out of memory, say).
    Internal,
    /// Any other code, kept as sent so that newer peers' codes are not lost.
    Other(u16),
}

impl CloseCode {
    /// The code's number on the wire.
    ///
    /// ```
    /// assert_eq!(pontoon_wire::CloseCode::NotAccepted.to_u16(), 4);
    /// ```
    pub fn to_u16(self) -> u16 {
        match self {
            CloseCode::GoingAway => 1,
            CloseCode::TooLarge => 2,
            CloseCode::Malformed => 3,
            CloseCode::NotAccepted => 4,
            CloseCode::Internal => 5,
            CloseCode::Other(n) => n,
        }
    }

    /// The code with this number.
    ///
    /// ```
    /// assert_eq!(pontoon_wire::CloseCode::from_u16(1), pontoon_wire::CloseCode::GoingAway);
    /// ```
    pub fn from_u16(n: u16) -> CloseCode {
        match n {
            1 => CloseCode::GoingAway,
            2 => CloseCode::TooLarge,
            3 => CloseCode::Malformed,
            4 => CloseCode::NotAccepted,
            5 => CloseCode::Internal,
            n => CloseCode::Other(n),
        }
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseCode::GoingAway => f.write_str("going away"),
            CloseCode::TooLarge => f.write_str("too large"),
            CloseCode::Malformed => f.write_str("malformed"),
            CloseCode::NotAccepted => f.write_str("not accepted"),
            CloseCode::Internal => f.write_str("internal error"),
            CloseCode::Other(n) => write!(f, "code {n}"),
        }
    }
}

/// A close message: what a side sends last, before it shuts its stream.
///
/// ```
/// use pontoon_wire::{CloseCode, CloseMessage};
/// let close = CloseMessage::new(CloseCode::TooLarge, "frame 0 is over 1 MiB");
/// let bytes = close.encode();
/// assert_eq!(&bytes[..2], b"\xF0C");
/// assert_eq!(CloseMessage::decode(&bytes, 0)?, Some((close, bytes.len())));
/// # Ok::<(), pontoon_wire::DecodeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseMessage {
    /// Why.
    pub code: CloseCode,
    /// In words, for people: at most [`MAX_CLOSE_REASON_BYTES`] of UTF-8.
    pub reason: String,
}

impl CloseMessage {
    /// A close message; a reason longer than [`MAX_CLOSE_REASON_BYTES`] is cut at the last
    /// character boundary that fits.
    ///
    /// ```
    /// let close = pontoon_wire::CloseMessage::new(pontoon_wire::CloseCode::Malformed, &"é".repeat(100));
    /// assert_eq!(close.reason.len(), 120);
    /// ```
    pub fn new(code: CloseCode, reason: &str) -> CloseMessage {
        let mut end = reason.len().min(MAX_CLOSE_REASON_BYTES);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        CloseMessage {
            code,
            reason: reason[..end].to_string(),
        }
    }

    /// The message's bytes on the wire.
    ///
    /// ```
    /// let close = pontoon_wire::CloseMessage::new(pontoon_wire::CloseCode::GoingAway, "bye");
    /// assert_eq!(&close.encode()[..], b"\xF0C\x01\x00\x03\x00\x00\x00bye");
    /// ```
    pub fn encode(&self) -> Bytes {
        let reason = &self.reason.as_bytes()[..self.reason.len().min(MAX_CLOSE_REASON_BYTES)];
        let mut out = BytesMut::with_capacity(CLOSE_PREFIX_LEN + reason.len());
        out.put_slice(&CLOSE_MARKER);
        out.put_u16_le(self.code.to_u16());
        out.put_u16_le(reason.len() as u16);
        out.put_u16_le(0);
        out.put_slice(reason);
        out.freeze()
    }

    /// Reads a close message at the start of `buf` (`buf[0]` is at stream offset `base`):
    /// the message and its length, or `Ok(None)` if `buf` does not hold all of it yet. It never
    /// needs more than 128 bytes.
    ///
    /// ```
    /// let err = pontoon_wire::CloseMessage::decode(b"\xF0C\x01\x00\xFF\x00\x00\x00", 0).unwrap_err();
    /// assert!(matches!(err, pontoon_wire::DecodeError::MalformedClose { offset: 4, .. }));
    /// ```
    pub fn decode(buf: &[u8], base: u64) -> Result<Option<(CloseMessage, usize)>, DecodeError> {
        let Some(prefix) = buf.first_chunk::<CLOSE_PREFIX_LEN>() else {
            if let Some(&[a, b]) = buf.get(..2)
                && [a, b] != CLOSE_MARKER
            {
                return Err(DecodeError::BadMarker {
                    offset: base,
                    found: [a, b],
                });
            }
            return Ok(None);
        };
        if prefix[..2] != CLOSE_MARKER {
            return Err(DecodeError::BadMarker {
                offset: base,
                found: [prefix[0], prefix[1]],
            });
        }
        let code = CloseCode::from_u16(u16::from_le_bytes([prefix[2], prefix[3]]));
        let len = usize::from(u16::from_le_bytes([prefix[4], prefix[5]]));
        if len > MAX_CLOSE_REASON_BYTES {
            return Err(DecodeError::MalformedClose {
                offset: base + 4,
                fault: CloseFault::ReasonTooLong { len },
            });
        }
        if prefix[6..8] != [0, 0] {
            return Err(DecodeError::MalformedClose {
                offset: base + 6,
                fault: CloseFault::ReservedNotZero,
            });
        }
        let Some(reason) = buf.get(CLOSE_PREFIX_LEN..CLOSE_PREFIX_LEN + len) else {
            return Ok(None);
        };
        let reason = std::str::from_utf8(reason).map_err(|e| DecodeError::MalformedClose {
            offset: base + (CLOSE_PREFIX_LEN + e.valid_up_to()) as u64,
            fault: CloseFault::ReasonNotUtf8,
        })?;
        Ok(Some((
            CloseMessage {
                code,
                reason: reason.to_string(),
            },
            CLOSE_PREFIX_LEN + len,
        )))
    }
}

impl std::fmt::Display for CloseMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code, self.reason)
    }
}

/// What is wrong with a close message.
///
/// ```
/// let fault = pontoon_wire::CloseFault::ReasonTooLong { len: 500 };
/// assert!(fault.to_string().contains("500"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseFault {
    /// The reason is longer than [`MAX_CLOSE_REASON_BYTES`].
    #[error("a reason of {len} bytes is over the 120 a close message may carry")]
    ReasonTooLong {
        /// The declared length.
        len: usize,
    },
    /// The reserved field is not zero.
    #[error("the reserved field is not zero")]
    ReservedNotZero,
    /// The reason is not UTF-8.
    #[error("the reason is not UTF-8")]
    ReasonNotUtf8,
}
