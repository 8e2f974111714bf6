//! pontoon-wire: messages (a MessagePack header plus payload frames) to bytes and back, with no I/O.
//!
//! This is pontoon's lowest layer, in the spirit of `quinn-proto`: it holds the wire format and
//! nothing else. It opens no socket and no file, reads no clock, and never depends on tokio; the
//! transport, persistence and store layers above it supply the I/O.
//!
//! - A [`Message`] is a [`Header`] (one MessagePack value, readable by any MessagePack reader) and a
//!   list of [`Frame`]s (`bytes::Bytes`). Large payloads are frames of their own.
//! - [`Encoder::encode`] turns a message into [`Encoded`] chunks for a vectored write; payload
//!   frames are passed through, not copied.
//! - [`Decoder::decode`] reads messages incrementally from a `BytesMut` (`Ok(None)` means "need more
//!   bytes"); each uncompressed frame comes out as a slice of the receive buffer.
//!   [`decode_message`] reads one whole message from a `Bytes` (a file, a memory map).
//! - [`MessageReader`] is the receive path of a connection as a state machine: it says what it
//!   [`Want`]s next, takes bytes from a receive buffer or straight into a frame's own aligned
//!   buffer (grown as the frame's bytes arrive, never reserved at a declared length), and yields
//!   each message whole, so a carrier that stops half way loses nothing.
//! - [`Hello`] and [`negotiate`] are a connection's handshake as pure functions, and
//!   [`AuthMessage`], [`auth_agreed`], [`auth_proof`] and [`verify_auth_proof`] its optional
//!   shared-secret challenge and response; a [`CloseMessage`] tells the peer why a side closes.
//! - Frames may be compressed ([`Codec::Lz4`], [`Codec::Zstd`]) where it pays, carry a CRC32C, and
//!   start at aligned offsets; lengths are 64-bit, so no frame or message size limit comes from
//!   the format. Every length and count read is checked against [`Limits`] before any allocation.
//! - [`shard`] splits frames for carriers that cap message sizes and joins them back.
//!
//! The byte layout is specified in `docs/wire-format.md`; changing it is a breaking change.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use pontoon_wire::{Decoder, Encoder, Header, Message, preamble};
//!
//! let payload = Bytes::from(vec![42u8; 1 << 20]);
//! let message = Message::new(Header::from_serde(&("put", "x-1"))?, vec![payload]);
//!
//! // Sender: the preamble once, then each message as chunks for a vectored write.
//! let mut wire = BytesMut::new();
//! wire.extend_from_slice(&preamble());
//! for chunk in Encoder::default().encode(&message)?.chunks() {
//!     wire.extend_from_slice(chunk);
//! }
//!
//! // Receiver: decode from the receive buffer; the frame is a view of it.
//! let mut decoder = Decoder::new();
//! let received = decoder.decode(&mut wire)?.expect("the whole message is here");
//! assert_eq!(received, message);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![doc(test(attr(deny(warnings))))]
#![warn(missing_debug_implementations)]

/// The `bytes` crate this one is built with: [`Frame`] is a `bytes::Bytes`, and decoders read
/// from a `bytes::BytesMut`, so users name the same version.
///
/// ```
/// let frame: pontoon_wire::Frame = pontoon_wire::bytes::Bytes::from_static(b"abc");
/// assert_eq!(frame.len(), 3);
/// ```
pub use bytes;
/// The `rmpv` crate this one is built with: [`Header::from_value`] and [`Header::to_value`] take
/// and give an `rmpv::Value`.
///
/// ```
/// use pontoon_wire::rmpv::Value;
/// let header = pontoon_wire::Header::from_value(&Value::from("ping"));
/// assert_eq!(header.to_value()?, Value::from("ping"));
/// # Ok::<(), pontoon_wire::HeaderError>(())
/// ```
pub use rmpv;

mod auth;
mod close;
mod codec;
mod encode;
mod error;
mod format;
mod head;
mod header;
mod hello;
mod limits;
mod message;
mod reader;
pub mod shard;
mod stream;
#[cfg(feature = "tokio-util")]
mod tokio_codec;

pub use auth::{
    AUTH_LABEL, AUTH_NONCE_LEN, AUTH_PROOF_LEN, AUTH_SCHEME, AuthError, AuthMessage, AuthRole,
    auth_agreed, auth_proof, verify_auth_proof,
};
pub use close::{
    CLOSE_MARKER, CLOSE_PREFIX_LEN, CloseCode, CloseFault, CloseMessage, MAX_CLOSE_REASON_BYTES,
};
pub use codec::{Codec, MIN_COMPRESS_LEN, UnknownCodecName};
pub use encode::{EncodeError, EncodeOptions, Encoded, Encoder, FrameInfo};
pub use error::{DecodeError, DecompressFault};
pub use format::{
    COMPRESSION_BLOCK_LEN, ENTRY_LEN, MAGIC, MAX_ALIGN_LOG2, MESSAGE_MARKER, PREAMBLE_LEN,
    PREFIX_LEN, VERSION, preamble,
};
pub use head::{FrameLayout, MessageHead};
pub use header::{DEFAULT_MAX_HEADER_DEPTH, Header, HeaderError, HeaderFault};
pub use hello::{
    Agreed, Compression, DECODES, Hello, HelloError, PROTOCOL_VERSION, hello_limits, negotiate,
    wanted_codec,
};
pub use limits::{EXPANSION_FLOOR, Limits};
pub use message::{Frame, Message};
pub use reader::{FRAME_ALIGN, FrameBuffers, MessageReader, RawMessage, Received, Want};
pub use stream::{Decoder, decode_message};
#[cfg(feature = "tokio-util")]
pub use tokio_codec::{MessageCodec, MessageCodecError};

// The README's example is compiled and run as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
