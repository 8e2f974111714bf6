//! [`DecodeError`] and [`DecompressFault`]: what was wrong with bytes being decoded, and where.

use crate::header::HeaderFault;
use crate::{CloseFault, Codec};

/// What was wrong with the bytes being decoded. Every variant names the byte offset, counted from
/// the start of the stream (or of the buffer given to [`decode_message`](crate::decode_message)), where it was found.
///
/// ```
/// use pontoon_wire::{DecodeError, Limits, decode_message};
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
    /// The stream does not start with pontoon's magic number: this is not a pontoon peer.
    #[error(
        "not a pontoon stream: expected magic F0 46 45 52 52 59, found {found:02X?} at byte offset {offset}"
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
    /// The message has more frames than [`Limits::max_frames`](crate::Limits::max_frames).
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
    /// The header is longer than [`Limits::max_header_bytes`](crate::Limits::max_header_bytes).
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
    /// A frame is longer than [`Limits::max_frame_bytes`](crate::Limits::max_frame_bytes), on the wire or decompressed.
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
    /// The message, on the wire or decompressed, is longer than [`Limits::max_message_bytes`](crate::Limits::max_message_bytes).
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
    /// A frame is compressed with a codec this version knows but this build leaves out
    /// (pontoon-wire built without the codec's feature). Refused from the frame table, before
    /// the frame's bytes are read.
    #[error(
        "frame {frame} (byte offset {offset}) is compressed with {codec}, which this build cannot decode: pontoon-wire is built without its `{feature}` feature"
    )]
    CodecNotBuilt {
        /// Where the codec byte is.
        offset: u64,
        /// Index of the frame.
        frame: u64,
        /// The frame's codec.
        codec: Codec,
        /// The pontoon-wire feature that would build it in.
        feature: &'static str,
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
    /// A compressed frame declares more decompressed bytes than its wire length may make:
    /// over [`Limits::max_expansion`](crate::Limits::max_expansion) of its wire length (which is
    /// at most [`Limits::max_expanded_bytes`](crate::Limits::max_expanded_bytes)). Refused from
    /// the frame table alone, before anything is allocated or decompressed.
    #[error(
        "compressed frame {frame} at byte offset {offset} declares {raw_len} bytes from {wire_len} on the wire, over the {limit} its length allows (Limits::max_expansion_ratio, Limits::max_expanded_bytes)"
    )]
    ExpansionTooLarge {
        /// Where the frame's table entry is.
        offset: u64,
        /// Index of the frame.
        frame: u64,
        /// Declared length on the wire.
        wire_len: u64,
        /// Declared decompressed length.
        raw_len: u64,
        /// The most `wire_len` bytes may expand to.
        limit: u64,
    },
    /// A compressed frame does not decompress to what its table entry says.
    #[error("cannot decompress frame {frame} ({codec}) at byte offset {offset}: {fault}")]
    Decompress {
        /// Where the bad block starts.
        offset: u64,
        /// Index of the frame.
        frame: u64,
        /// The frame's codec.
        codec: Codec,
        /// What was wrong.
        fault: DecompressFault,
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
    /// A close message is malformed.
    #[error("malformed close message at byte offset {offset}: {fault}")]
    MalformedClose {
        /// Where the fault is.
        offset: u64,
        /// What is wrong.
        fault: CloseFault,
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
    /// let err = pontoon_wire::DecodeError::Truncated { offset: 7 };
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
            | DecodeError::CodecNotBuilt { offset, .. }
            | DecodeError::InconsistentFrame { offset, .. }
            | DecodeError::ChecksumMismatch { offset, .. }
            | DecodeError::MalformedHeader { offset, .. }
            | DecodeError::ExpansionTooLarge { offset, .. }
            | DecodeError::Decompress { offset, .. }
            | DecodeError::OutOfMemory { offset, .. }
            | DecodeError::MalformedClose { offset, .. }
            | DecodeError::Truncated { offset }
            | DecodeError::TrailingBytes { offset } => *offset,
        }
    }
}

/// Why a compressed frame does not decompress to what its frame table entry says.
///
/// ```
/// let fault = pontoon_wire::DecompressFault::Overrun { block_raw_len: 1 << 20 };
/// assert!(fault.to_string().contains("more than"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecompressFault {
    /// A block, or its 4-byte length prefix, runs past the end of the frame.
    #[error("a block runs past the end of the frame")]
    BlockTruncated,
    /// Bytes follow the last block the frame's raw length calls for.
    #[error("bytes follow the last block")]
    TrailingBytes,
    /// The codec refused the block's bytes as malformed.
    #[error("the codec refused the block as malformed")]
    Corrupt,
    /// The block would decompress to more bytes than its share of the frame's declared raw
    /// length (a lying size): refused before anything is written past that share.
    #[error(
        "the block decompresses to more than the {block_raw_len} bytes the frame table allows it"
    )]
    Overrun {
        /// The bytes this block should decompress to.
        block_raw_len: u64,
    },
    /// The block decompressed to fewer bytes than its share of the frame's declared raw length.
    #[error("the block decompressed to {actual} bytes, not {expected}")]
    Short {
        /// The bytes this block should decompress to.
        expected: u64,
        /// The bytes it decompressed to.
        actual: u64,
    },
    /// The codec's own state could not be created (out of memory).
    #[error("the decompressor could not be created")]
    Unavailable,
    /// This build of pontoon-wire has not the codec's feature.
    #[error("this build has not the codec (pontoon-wire's feature of that name is off)")]
    NotBuilt,
}
