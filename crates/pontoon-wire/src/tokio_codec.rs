//! [`MessageCodec`]: pontoon messages as a `tokio_util::codec` `Decoder` and `Encoder`, for
//! `FramedRead`/`FramedWrite` over any `AsyncRead`/`AsyncWrite` (the `tokio-util` feature).

use bytes::BytesMut;

use crate::{DecodeError, Decoder, EncodeError, Encoder, Limits, Message, preamble};

/// pontoon messages over any `AsyncRead`/`AsyncWrite` (a QUIC stream, a WebSocket's bytes, a
/// pipe) with tokio-util's `FramedRead` and `FramedWrite`: the same byte stream as
/// pontoon-transport's (the [`preamble`] first, then each message), decoded by the same
/// [`Decoder`] under the same [`Limits`], so every length a peer sends is checked before
/// anything is allocated.
///
/// Decoding keeps zero copy: each uncompressed frame is a slice of `FramedRead`'s read buffer.
/// Encoding does not: tokio-util's `Encoder` writes into one `BytesMut`, so each frame is copied
/// into it once. Where payloads are large, write [`Encoded::chunks`](crate::Encoded::chunks)
/// with a vectored write instead, as pontoon-transport does.
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use pontoon_wire::{Header, Message, MessageCodec};
/// use tokio_util::codec::{FramedRead, FramedWrite};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let (client, server) = tokio::io::duplex(64 << 10);
/// let mut outgoing = FramedWrite::new(client, MessageCodec::new());
/// let mut incoming = FramedRead::new(server, MessageCodec::new());
///
/// let message = Message::new(Header::from_serde(&"put")?, vec![bytes::Bytes::from(vec![7u8; 100_000])]);
/// let sending = message.clone();
/// tokio::spawn(async move { outgoing.send(sending).await });
/// let received = incoming.next().await.expect("a message")?;
/// assert_eq!(received, message);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MessageCodec {
    decoder: Decoder,
    encoder: Encoder,
    /// Whether the next encode writes the preamble first.
    preamble_due: bool,
}

impl Default for MessageCodec {
    fn default() -> MessageCodec {
        MessageCodec::new()
    }
}

impl MessageCodec {
    /// A codec with default [`Limits`] and a default [`Encoder`]: it writes the preamble before
    /// its first message and expects one before the first message it reads.
    ///
    /// ```
    /// let codec = pontoon_wire::MessageCodec::new();
    /// assert_eq!(*codec.limits(), pontoon_wire::Limits::default());
    /// ```
    pub fn new() -> MessageCodec {
        MessageCodec::with_limits(Limits::default())
    }

    /// A codec that reads under these limits (and writes with a default [`Encoder`]).
    ///
    /// ```
    /// let mut limits = pontoon_wire::Limits::default();
    /// limits.max_message_bytes = 1 << 20;
    /// let codec = pontoon_wire::MessageCodec::with_limits(limits);
    /// assert_eq!(codec.limits().max_message_bytes, 1 << 20);
    /// ```
    pub fn with_limits(limits: Limits) -> MessageCodec {
        MessageCodec {
            decoder: Decoder::with_limits(limits),
            encoder: Encoder::default(),
            preamble_due: true,
        }
    }

    /// A codec for a carrier that has no preamble (or has exchanged it already): it neither
    /// writes nor expects one.
    ///
    /// ```
    /// let codec = pontoon_wire::MessageCodec::without_preamble(pontoon_wire::Limits::default());
    /// # let _ = codec;
    /// ```
    pub fn without_preamble(limits: Limits) -> MessageCodec {
        MessageCodec {
            decoder: Decoder::without_preamble(limits),
            encoder: Encoder::default(),
            preamble_due: false,
        }
    }

    /// The codec, writing with `encoder` (compression, checksums, alignment).
    ///
    /// ```
    /// use pontoon_wire::{EncodeOptions, Encoder, MessageCodec};
    /// let mut options = EncodeOptions::default();
    /// options.checksums = true;
    /// let codec = MessageCodec::new().with_encoder(Encoder::new(options));
    /// # let _ = codec;
    /// ```
    #[must_use = "with_encoder returns the changed codec"]
    pub fn with_encoder(mut self, encoder: Encoder) -> MessageCodec {
        self.encoder = encoder;
        self
    }

    /// The limits incoming messages are read under.
    ///
    /// ```
    /// assert_eq!(pontoon_wire::MessageCodec::new().limits().max_frames, pontoon_wire::Limits::default().max_frames);
    /// ```
    pub fn limits(&self) -> &Limits {
        self.decoder.limits()
    }
}

impl tokio_util::codec::Decoder for MessageCodec {
    type Item = Message;
    type Error = MessageCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, MessageCodecError> {
        Ok(self.decoder.decode(src)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, MessageCodecError> {
        Ok(self.decoder.decode_eof(src)?)
    }
}

impl tokio_util::codec::Encoder<&Message> for MessageCodec {
    type Error = MessageCodecError;

    fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), MessageCodecError> {
        let encoded = self.encoder.encode(message)?;
        let preamble_len = if self.preamble_due {
            preamble().len()
        } else {
            0
        };
        // Sized by this side's own message, not by a peer: reserved in one go (saturating: a
        // length past usize cannot be reserved and fails in the allocator as any other would).
        let len = usize::try_from(encoded.len()).unwrap_or(usize::MAX);
        dst.reserve(len.saturating_add(preamble_len));
        if self.preamble_due {
            dst.extend_from_slice(&preamble());
            self.preamble_due = false;
        }
        for chunk in encoded.chunks() {
            dst.extend_from_slice(chunk);
        }
        Ok(())
    }
}

impl tokio_util::codec::Encoder<Message> for MessageCodec {
    type Error = MessageCodecError;

    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), MessageCodecError> {
        tokio_util::codec::Encoder::<&Message>::encode(self, &message, dst)
    }
}

/// What went wrong reading or writing messages through a [`MessageCodec`].
///
/// ```
/// let error = pontoon_wire::MessageCodecError::from(pontoon_wire::DecodeError::Truncated { offset: 3 });
/// assert_eq!(error.to_string(), "input ends in the middle of a message at byte offset 3");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageCodecError {
    /// The carrier failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The peer's bytes are not a valid message stream, or break this side's limits.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}
