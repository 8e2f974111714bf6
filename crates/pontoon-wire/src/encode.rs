//! Encoding: [`Encoder`] turns a [`Message`] into [`Encoded`] chunks for a vectored write.

use std::io::IoSlice;
use std::num::NonZeroUsize;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::{self, Codec};
use crate::format::{
    ENTRY_LEN, FLAG_CHECKSUMS, MAX_ALIGN_LOG2, MESSAGE_MARKER, PREFIX_LEN, ZEROS, align_up,
};
use crate::{Limits, Message, shard};

/// How an [`Encoder`] writes messages. Every choice is recorded in the message itself, so a
/// decoder needs no options to read it. Like pontoon's other configuration structs, it has
/// public fields and a [`Default`]; set the ones you need.
///
/// ```
/// use pontoon_wire::{Codec, EncodeOptions, Encoder};
/// let mut options = EncodeOptions::default();
/// options.codec = Codec::Lz4;
/// options.checksums = true;
/// options.alignment = 64;
/// let encoder = Encoder::new(options);
/// assert_eq!(encoder.options().codec, Codec::Lz4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncodeOptions {
    /// Compress frames with this codec where it pays (see [`Codec`] and the crate docs);
    /// default [`Codec::None`]. A codec this build lacks ([`Codec::is_built`]) sends frames as
    /// they are.
    pub codec: Codec,
    /// The zstd compression level (1 to 22, default 3; 0 means zstd's default).
    pub zstd_level: i32,
    /// Write a CRC32C of every frame and of the message head, checked by the decoder (default
    /// off).
    pub checksums: bool,
    /// Start every frame at a multiple of this many bytes from the start of its message (a
    /// power of two, 1 to 4096; default 64), so that a receiver that places the message at an
    /// aligned address gets every frame aligned too. Another value is an
    /// [`EncodeError::Alignment`] when encoding.
    pub alignment: usize,
    /// Split each frame's bytes into chunks of at most this many bytes in the encoded output,
    /// for carriers that cap the size of one write or one datagram (default `None`: no
    /// splitting). Shards of a frame are contiguous on the wire, so the byte stream is the same
    /// either way; see [`shard`] to split and join frames directly.
    pub shard_bytes: Option<NonZeroUsize>,
    /// The limits of the receiver the messages are for (default [`Limits::DEFAULT`]). A frame
    /// whose compressed form expands past what they allow
    /// ([`Limits::max_expansion`] of its compressed length: more than 256:1, or more than 1 GiB
    /// once decompressed, by default) travels uncompressed instead, so that a receiver never
    /// refuses what this encoder wrote.
    ///
    /// ```
    /// use pontoon_wire::{Codec, EncodeOptions, Encoder, Header, Limits, Message};
    /// let zeros = Message::new(Header::empty(), vec![bytes::Bytes::from(vec![0u8; 1 << 20])]);
    /// let mut options = EncodeOptions::default();
    /// options.codec = Codec::Zstd;
    /// // 1 MiB of zeros compresses far past 256:1: by default it travels raw ...
    /// let encoded = Encoder::new(options).encode(&zeros)?;
    /// assert_eq!(encoded.frames()[0].codec, Codec::None);
    /// let back = pontoon_wire::decode_message(encoded.to_bytes(), &Limits::DEFAULT)?; // accepted
    /// assert_eq!(back, zeros);
    /// // ... and compressed to a receiver known to accept that.
    /// options.receiver_limits = Limits::UNLIMITED;
    /// let expected = if Codec::Zstd.is_built() { Codec::Zstd } else { Codec::None };
    /// assert_eq!(Encoder::new(options).encode(&zeros)?.frames()[0].codec, expected);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub receiver_limits: Limits,
}

impl Default for EncodeOptions {
    /// No compression, no checksums, frames aligned to 64 bytes, no sharding.
    fn default() -> EncodeOptions {
        EncodeOptions {
            codec: Codec::None,
            zstd_level: 3,
            checksums: false,
            alignment: 64,
            shard_bytes: None,
            receiver_limits: Limits::DEFAULT,
        }
    }
}

/// Encodes messages into chunks of bytes, copying no payload frame.
///
/// ```
/// use bytes::{Buf, Bytes};
/// use pontoon_wire::{Encoder, Header, Message};
///
/// let payload = Bytes::from(vec![7u8; 100_000]);
/// let message = Message::new(Header::from_serde(&"put")?, vec![payload.clone()]);
/// let encoded = Encoder::default().encode(&message)?;
/// // The payload chunk is the caller's buffer itself, ready for a vectored write.
/// assert!(encoded.chunks().iter().any(|c| c.as_ptr() == payload.as_ptr()));
/// assert_eq!(encoded.remaining() as u64, encoded.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    options: EncodeOptions,
}

/// What the encoder wrote for one frame; see [`Encoded::frames`].
///
/// ```
/// let message = pontoon_wire::Message::new(pontoon_wire::Header::empty(), vec![bytes::Bytes::from_static(b"abc")]);
/// let info = pontoon_wire::Encoder::default().encode(&message)?.frames()[0];
/// assert_eq!((info.codec, info.raw_len, info.wire_len), (pontoon_wire::Codec::None, 3, 3));
/// # Ok::<(), pontoon_wire::EncodeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FrameInfo {
    /// The codec the frame travels in ([`Codec::None`] when compression did not pay).
    pub codec: Codec,
    /// The frame's length before encoding.
    pub raw_len: u64,
    /// The frame's length on the wire.
    pub wire_len: u64,
}

impl Encoder {
    /// An encoder with these options.
    ///
    /// ```
    /// let mut options = pontoon_wire::EncodeOptions::default();
    /// options.checksums = true;
    /// let encoder = pontoon_wire::Encoder::new(options);
    /// # let _ = encoder;
    /// ```
    pub fn new(options: EncodeOptions) -> Encoder {
        Encoder { options }
    }

    /// The options this encoder writes with.
    ///
    /// ```
    /// assert_eq!(*pontoon_wire::Encoder::default().options(), pontoon_wire::EncodeOptions::default());
    /// ```
    pub fn options(&self) -> &EncodeOptions {
        &self.options
    }

    /// Encodes one message (without the connection [`preamble`](crate::preamble)).
    ///
    /// Frames are compressed here when the options ask for it and it pays; otherwise each frame is
    /// passed through as the same `Bytes`.
    ///
    /// ```
    /// let message = pontoon_wire::Message::default();
    /// let encoded = pontoon_wire::Encoder::default().encode(&message)?;
    /// assert_eq!(encoded.len(), 25); // prefix + an empty-map header
    /// # Ok::<(), pontoon_wire::EncodeError>(())
    /// ```
    pub fn encode(&self, message: &Message) -> Result<Encoded, EncodeError> {
        let o = &self.options;
        let align_log2 = match o.alignment {
            bytes if bytes.is_power_of_two() && bytes <= 1 << MAX_ALIGN_LOG2 => {
                bytes.trailing_zeros() as u8
            }
            alignment => return Err(EncodeError::Alignment { alignment }),
        };
        let mut wire_frames = Vec::with_capacity(message.frames.len());
        let mut infos = Vec::with_capacity(message.frames.len());
        for (index, frame) in message.frames.iter().enumerate() {
            // A frame larger than the receiver decompresses at all is not worth compressing.
            let wanted = if frame.len() as u64 <= o.receiver_limits.max_expanded_bytes {
                o.codec
            } else {
                Codec::None
            };
            let (codec, wire) = match codec::maybe_compress(frame, wanted, o.zstd_level) {
                // Kept only if the receiver will take it: within its expansion limits.
                Ok(Some(compressed))
                    if frame.len() as u64
                        <= o.receiver_limits.max_expansion(compressed.len() as u64) =>
                {
                    (o.codec, compressed)
                }
                Ok(_) => (Codec::None, frame.clone()),
                Err(source) => {
                    return Err(EncodeError::Compress {
                        frame: index,
                        codec: o.codec,
                        source,
                    });
                }
            };
            infos.push(FrameInfo {
                codec,
                raw_len: frame.len() as u64,
                wire_len: wire.len() as u64,
            });
            wire_frames.push(wire);
        }

        let header = message.header.as_bytes();
        let head_len = (PREFIX_LEN + ENTRY_LEN * wire_frames.len() + header.len()) as u64;
        // The padding before the first frame ends the head chunk. Sized exactly, the head freezes
        // into `Bytes` without a second allocation.
        let mut pos = match wire_frames.is_empty() {
            true => head_len,
            false => align_up(head_len, align_log2).expect("a message in memory fits in u64"),
        };
        let mut head = BytesMut::with_capacity(pos as usize);
        head.put_slice(&MESSAGE_MARKER);
        head.put_u8(if o.checksums { FLAG_CHECKSUMS } else { 0 });
        head.put_u8(align_log2);
        head.put_u32_le(0); // head CRC, filled in below
        head.put_u64_le(wire_frames.len() as u64);
        head.put_u64_le(header.len() as u64);
        for (info, wire) in infos.iter().zip(&wire_frames) {
            head.put_u64_le(info.wire_len);
            head.put_u64_le(info.raw_len);
            head.put_u8(info.codec.id());
            head.put_bytes(0, 3);
            head.put_u32_le(if o.checksums { crc32c::crc32c(wire) } else { 0 });
        }
        head.put_slice(header);
        if o.checksums {
            let crc = crc32c::crc32c_append(crc32c::crc32c(&head[..4]), &head[8..]);
            head[4..8].copy_from_slice(&crc.to_le_bytes());
        }
        head.put_bytes(0, pos as usize - head.len());

        let mut chunks = Vec::with_capacity(1 + 2 * wire_frames.len());
        chunks.push(head.freeze());
        for (i, wire) in wire_frames.into_iter().enumerate() {
            if i > 0 {
                let start = align_up(pos, align_log2).expect("a message in memory fits in u64");
                if start > pos {
                    chunks.push(Bytes::from_static(&ZEROS[..(start - pos) as usize]));
                }
                pos = start;
            }
            pos += wire.len() as u64;
            match o.shard_bytes {
                Some(size) if wire.len() > size.get() => chunks.extend(shard::split(&wire, size)),
                _ if wire.is_empty() => {}
                _ => chunks.push(wire),
            }
        }
        Ok(Encoded {
            chunks,
            index: 0,
            len: pos,
            remaining: pos,
            frames: infos,
        })
    }
}

/// An encoded message: a list of chunks that, written in order, form its bytes on the wire.
///
/// Payload chunks are the message's own frames (or their compressed forms); nothing was copied.
/// `Encoded` implements [`Buf`] with [`Buf::chunks_vectored`], so it can go straight to a
/// vectored write (`write_all_buf` in tokio), or be gathered with [`Encoded::to_bytes`].
///
/// ```
/// use bytes::Buf;
/// let encoded = pontoon_wire::Encoder::default().encode(&pontoon_wire::Message::default())?;
/// let mut slices = [std::io::IoSlice::new(&[]); 8];
/// let n = encoded.chunks_vectored(&mut slices);
/// assert_eq!(slices[..n].iter().map(|s| s.len()).sum::<usize>(), encoded.remaining());
/// # Ok::<(), pontoon_wire::EncodeError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Encoded {
    chunks: Vec<Bytes>,
    /// The first chunk not yet fully consumed through [`Buf::advance`].
    index: usize,
    len: u64,
    remaining: u64,
    frames: Vec<FrameInfo>,
}

impl Encoded {
    /// The message's length on the wire.
    ///
    /// ```
    /// let encoded = pontoon_wire::Encoder::default().encode(&pontoon_wire::Message::default())?;
    /// assert_eq!(encoded.len(), encoded.to_bytes().len() as u64);
    /// # Ok::<(), pontoon_wire::EncodeError>(())
    /// ```
    #[allow(clippy::len_without_is_empty)] // an encoded message is never empty
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The chunks not yet consumed, in order.
    ///
    /// ```
    /// let encoded = pontoon_wire::Encoder::default().encode(&pontoon_wire::Message::default())?;
    /// assert_eq!(encoded.chunks().len(), 1);
    /// # Ok::<(), pontoon_wire::EncodeError>(())
    /// ```
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks[self.index..]
    }

    /// The chunks not yet consumed, by value.
    ///
    /// ```
    /// let encoded = pontoon_wire::Encoder::default().encode(&pontoon_wire::Message::default())?;
    /// let chunks: Vec<bytes::Bytes> = encoded.into_chunks();
    /// # let _ = chunks;
    /// # Ok::<(), pontoon_wire::EncodeError>(())
    /// ```
    pub fn into_chunks(mut self) -> Vec<Bytes> {
        self.chunks.drain(..self.index);
        self.chunks
    }

    /// What was written for each frame: codec and lengths.
    ///
    /// ```
    /// use pontoon_wire::{Codec, EncodeOptions, Encoder, Header, Message};
    /// let frame = bytes::Bytes::from(vec![0u8; 1 << 20]);
    /// let message = Message::new(Header::empty(), vec![frame]);
    /// let mut options = EncodeOptions::default();
    /// options.codec = Codec::Lz4;
    /// let encoded = Encoder::new(options).encode(&message)?;
    /// // Without the `lz4` feature the frame travels raw.
    /// let expected = if Codec::Lz4.is_built() { Codec::Lz4 } else { Codec::None };
    /// assert_eq!(encoded.frames()[0].codec, expected);
    /// # #[cfg(feature = "lz4")]
    /// assert!(encoded.frames()[0].wire_len < encoded.frames()[0].raw_len / 100);
    /// # Ok::<(), pontoon_wire::EncodeError>(())
    /// ```
    pub fn frames(&self) -> &[FrameInfo] {
        &self.frames
    }

    /// Gathers the remaining chunks into one contiguous buffer (one copy of everything).
    ///
    /// ```
    /// let encoded = pontoon_wire::Encoder::default().encode(&pontoon_wire::Message::default())?;
    /// assert_eq!(&encoded.to_bytes()[..2], b"\xF0M");
    /// # Ok::<(), pontoon_wire::EncodeError>(())
    /// ```
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.remaining as usize);
        for chunk in self.chunks() {
            out.put_slice(chunk);
        }
        out.freeze()
    }
}

impl Buf for Encoded {
    fn remaining(&self) -> usize {
        self.remaining as usize
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.get(self.index).map_or(&[], |c| &c[..])
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(
            cnt as u64 <= self.remaining,
            "advance past the end of an encoded message"
        );
        self.remaining -= cnt as u64;
        while cnt > 0 {
            let chunk = &mut self.chunks[self.index];
            if cnt < chunk.len() {
                chunk.advance(cnt);
                return;
            }
            cnt -= chunk.len();
            self.index += 1;
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.chunks()) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }
}

/// What went wrong encoding a message.
///
/// Encoding fails only if a compressor does (zstd refusing a level, say):
///
/// ```
/// use pontoon_wire::{Codec, EncodeError, EncodeOptions, Encoder, Header, Message};
/// let frame = bytes::Bytes::from(vec![0u8; 1 << 16]);
/// let message = Message::new(Header::empty(), vec![frame]);
/// let mut options = EncodeOptions::default();
/// options.codec = Codec::Zstd;
/// options.zstd_level = 1_000;
/// let encoder = Encoder::new(options);
/// match encoder.encode(&message) {
///     // zstd clamps the level (and a build without zstd sends the frame raw)
///     Ok(encoded) => assert!(encoded.frames()[0].codec == Codec::Zstd || !Codec::Zstd.is_built()),
///     Err(EncodeError::Compress { frame, .. }) => assert_eq!(frame, 0),
///     Err(other) => panic!("{other}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// [`EncodeOptions::alignment`] is not a power of two from 1 to 4096.
    #[error("frame alignment {alignment} is not a power of two from 1 to 4096")]
    Alignment {
        /// The alignment asked for, in bytes.
        alignment: usize,
    },
    /// The compressor failed on a frame.
    #[error("cannot compress frame {frame} with {codec}")]
    Compress {
        /// Index of the frame in the message.
        frame: usize,
        /// The codec that failed.
        codec: Codec,
        /// The compressor's error.
        #[source]
        source: std::io::Error,
    },
}
