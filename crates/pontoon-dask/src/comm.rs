//! [`Comm`]: a Dask comm over TCP (tokio). It connects and shakes hands as
//! `distributed.comm.connect` does, writes messages as `distributed.comm.tcp` writes them, and
//! reads them into one 64-byte-aligned buffer per message with every frame at an aligned
//! offset, so arrays are views and the shards of a split frame join without a copy.

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::framing::{self, ALIGN, Prelude, WRITE_PIECE, layout};
use crate::handshake::{Handshake, HandshakeInfo};
use crate::message::{self, DecodeOptions, EncodeOptions};
use crate::value::Value;
use crate::{DecodeError, EncodeError, FramingError};

/// Messages of at most this many bytes are written with one call, as Dask joins them.
const JOIN_BELOW: u64 = 1 << 17;

/// Why a comm failed. After any error but [`CommError::Decode`], the comm is closed.
///
/// ```
/// let err = pontoon_dask::CommError::Closed;
/// assert_eq!(err.to_string(), "the peer closed the connection");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommError {
    /// A socket error.
    #[error("I/O on the comm")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection between messages.
    #[error("the peer closed the connection")]
    Closed,
    /// The framing was refused (the stream cannot be read on).
    #[error("the peer's framing was refused")]
    Framing(#[from] FramingError),
    /// A message's frames arrived but did not decode; the comm can read on.
    #[error("the peer's message was refused")]
    Decode(#[from] DecodeError),
    /// A message could not be encoded; nothing was written.
    #[error("the message could not be encoded")]
    Encode(#[from] EncodeError),
    /// The peer's handshake lacked what Dask's carries.
    #[error("the peer's handshake is not Dask's: {0}")]
    Handshake(String),
    /// An address that is not `tcp://host:port` or `host:port`.
    #[error("`{0}` is not a tcp address")]
    Address(String),
    /// A send was cancelled half-way, so the stream holds part of a message: the comm is unusable.
    #[error("a send was cancelled half-way; the comm is unusable")]
    Poisoned,
}

/// A message in progress, kept across cancelled [`Comm::recv`] calls.
#[derive(Debug, Default)]
struct Incoming {
    head: Vec<u8>,
    prelude: Option<Prelude>,
    buffer: Vec<u8>,
    /// Where each frame starts in `buffer`.
    offsets: Vec<usize>,
    /// The frame being read, and where the buffer's aligned region begins.
    next: usize,
    base: usize,
}

/// A Dask comm over TCP.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn run() -> Result<(), pontoon_dask::CommError> {
/// let mut comm = pontoon_dask::Comm::connect("tcp://127.0.0.1:8786").await?;
/// comm.send(&pontoon_dask::Value::map([("op", "identity".into()), ("reply", true.into())])).await?;
/// let identity = comm.recv().await?;
/// # let _ = identity; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Comm {
    stream: TcpStream,
    handshake: Handshake,
    decode: DecodeOptions,
    encode: EncodeOptions,
    incoming: Incoming,
    /// The buffer of the last large message received, for the next message to reuse once
    /// nothing views it any more (its pages are already mapped).
    last: Option<Bytes>,
    poisoned: bool,
}

/// `host:port` from `tcp://host:port` or `host:port`.
fn socket_address(address: &str) -> Result<&str, CommError> {
    let rest = match address.split_once("://") {
        Some(("tcp", rest)) => rest,
        Some(_) => return Err(CommError::Address(address.to_owned())),
        None => address,
    };
    if rest.rsplit_once(':').is_none() {
        return Err(CommError::Address(address.to_owned()));
    }
    Ok(rest)
}

impl Comm {
    /// Connects to a Dask server (`tcp://host:port`), and shakes hands, with the default
    /// limits and [`HandshakeInfo`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled connect drops the half-made connection.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::CommError> {
    /// let comm = pontoon_dask::Comm::connect("127.0.0.1:8786").await?;
    /// println!("{:?}", comm.handshake().remote);
    /// # Ok(()) }
    /// ```
    pub async fn connect(address: &str) -> Result<Comm, CommError> {
        let stream = TcpStream::connect(socket_address(address)?).await?;
        Comm::handshake_over(stream, HandshakeInfo::default(), DecodeOptions::default()).await
    }

    /// Shakes hands over a connected stream (either side: both write first, then read), and
    /// returns the comm. `decode` bounds everything read from the peer, the handshake
    /// included.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled handshake leaves the stream mid-conversation.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::CommError> {
    /// let stream = tokio::net::TcpStream::connect("127.0.0.1:8786").await?;
    /// let comm = pontoon_dask::Comm::handshake_over(stream, Default::default(), Default::default()).await?;
    /// # let _ = comm; Ok(()) }
    /// ```
    pub async fn handshake_over(
        stream: TcpStream,
        local: HandshakeInfo,
        decode: DecodeOptions,
    ) -> Result<Comm, CommError> {
        stream.set_nodelay(true)?;
        let mut comm = Comm {
            stream,
            handshake: Handshake::agree(local.clone(), local.clone()),
            decode,
            encode: EncodeOptions::default(),
            incoming: Incoming::default(),
            last: None,
            poisoned: false,
        };
        comm.send(&local.to_value()).await?;
        let theirs = comm.recv().await?;
        let remote = HandshakeInfo::from_value(&theirs).ok_or_else(|| {
            CommError::Handshake("it has no `pickle-protocol` (Dask versions out of sync?)".into())
        })?;
        comm.handshake = Handshake::agree(local, remote);
        comm.encode.compression = comm.handshake.compression;
        Ok(comm)
    }

    /// Both handshakes and what they agreed on.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::CommError> {
    /// let comm = pontoon_dask::Comm::connect("127.0.0.1:8786").await?;
    /// assert!(comm.handshake().pickle_protocol <= 5);
    /// # Ok(()) }
    /// ```
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// How messages are encoded (compression as agreed, shard size); change it freely.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::CommError> {
    /// let mut comm = pontoon_dask::Comm::connect("127.0.0.1:8786").await?;
    /// comm.encode_options().shard_bytes = 16 << 20;
    /// # Ok(()) }
    /// ```
    pub fn encode_options(&mut self) -> &mut EncodeOptions {
        &mut self.encode
    }

    /// Writes one message, its frames straight from their `Bytes` (arrays are not copied);
    /// returns the bytes written.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a send cancelled after it started writing leaves part of a message in
    /// the stream, and every later call returns [`CommError::Poisoned`].
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::CommError> {
    /// let mut comm = pontoon_dask::Comm::connect("127.0.0.1:8786").await?;
    /// comm.send(&pontoon_dask::Value::map([("op", "ping".into())])).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&mut self, msg: &Value) -> Result<u64, CommError> {
        if self.poisoned {
            return Err(CommError::Poisoned);
        }
        let frames = message::encode(msg, &self.encode)?;
        let prelude = framing::prelude_bytes(&frames);
        let total = prelude.len() as u64 + frames.iter().map(|f| f.data.len() as u64).sum::<u64>();
        self.poisoned = true;
        if total < JOIN_BELOW {
            self.stream
                .write_all(&framing::stream_bytes(&frames))
                .await?;
        } else {
            self.stream.write_all(&prelude).await?;
            for frame in &frames {
                for piece in frame.data.chunks(WRITE_PIECE) {
                    self.stream.write_all(piece).await?;
                }
            }
        }
        self.stream.flush().await?;
        self.poisoned = false;
        Ok(total)
    }

    /// Reads one message and decodes it. A message that arrives whole but does not decode is
    /// a [`CommError::Decode`] and the comm reads on; any other error ends the comm.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: what was read of a message stays in the comm, and the next call goes on
    /// from there.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::CommError> {
    /// let mut comm = pontoon_dask::Comm::connect("127.0.0.1:8786").await?;
    /// let msg = comm.recv().await?;
    /// # let _ = msg; Ok(()) }
    /// ```
    pub async fn recv(&mut self) -> Result<Value, CommError> {
        let (frames, backing) = self.recv_frames().await?;
        Ok(message::decode_in(&frames, Some(&backing), &self.decode)?)
    }

    /// Reads one message's frames, undecoded, and the buffer they are views of.
    ///
    /// A buffer of 1 MiB or more stays with the comm too: once nothing views it any more (the
    /// frames, the buffer and whatever was decoded from them dropped), the next message of
    /// about its size is read into it, whose pages are already mapped. One still viewed is
    /// never written over.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Comm::recv`].
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::CommError> {
    /// let mut comm = pontoon_dask::Comm::connect("127.0.0.1:8786").await?;
    /// let (frames, _buffer) = comm.recv_frames().await?;
    /// # let _ = frames; Ok(()) }
    /// ```
    pub async fn recv_frames(&mut self) -> Result<(Vec<Bytes>, Bytes), CommError> {
        if self.poisoned {
            return Err(CommError::Poisoned);
        }
        let limits = self.decode.limits;
        let incoming = &mut self.incoming;
        let prelude = loop {
            if let Some(p) = &incoming.prelude {
                break p.clone();
            }
            let want = if incoming.head.len() < 16 {
                16
            } else {
                match framing::parse_prelude(&incoming.head, &limits)? {
                    Some(p) => {
                        incoming.offsets = layout(&p, &limits)?;
                        let size = incoming.offsets.last().copied().unwrap_or(0) + ALIGN;
                        incoming.buffer = receive_buffer(&mut self.last, size)?;
                        incoming.base = incoming.buffer.as_ptr().align_offset(ALIGN);
                        incoming.buffer.resize(incoming.base, 0);
                        incoming.next = 0;
                        incoming.prelude = Some(p);
                        continue;
                    }
                    None => {
                        let count = u64::from_le_bytes(incoming.head[8..16].try_into().expect("8"));
                        (count as usize).saturating_mul(8).saturating_add(16)
                    }
                }
            };
            if !read_some(&mut self.stream, &mut incoming.head, want).await? {
                return Err(if incoming.head.is_empty() {
                    CommError::Closed
                } else {
                    CommError::Io(std::io::ErrorKind::UnexpectedEof.into())
                });
            }
        };
        while incoming.next < prelude.lengths.len() {
            let i = incoming.next;
            let start = incoming.base + incoming.offsets[i];
            let end = start + prelude.lengths[i] as usize;
            if incoming.buffer.len() < start {
                incoming.buffer.resize(start, 0);
            }
            if incoming.buffer.len() < end {
                if !read_some(&mut self.stream, &mut incoming.buffer, end).await? {
                    return Err(CommError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
                continue;
            }
            incoming.next += 1;
        }
        let done = std::mem::take(incoming);
        let backing = Bytes::from(done.buffer);
        if backing.len() >= REUSE_BYTES {
            self.last = Some(backing.clone());
        }
        let frames = prelude
            .lengths
            .iter()
            .zip(&done.offsets)
            .map(|(&len, &off)| {
                let start = done.base + off;
                backing.slice(start..start + len as usize)
            })
            .collect();
        Ok((frames, backing))
    }

    /// Shuts the connection down for writing and drops it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the connection is closed when the comm drops in any case.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::CommError> {
    /// pontoon_dask::Comm::connect("127.0.0.1:8786").await?.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(mut self) -> Result<(), CommError> {
        self.stream.shutdown().await?;
        Ok(())
    }
}

/// Messages whose buffer is at least this large leave it with the comm for the next message.
const REUSE_BYTES: usize = 1 << 20;

/// A buffer of `size` bytes' capacity, empty: the last message's when nothing views it any more
/// and it is the right size (at least `size`, at most twice: a small message must not keep a
/// large buffer alive), else a fresh one, reserved fallibly.
fn receive_buffer(last: &mut Option<Bytes>, size: usize) -> Result<Vec<u8>, FramingError> {
    if let Some(previous) = last.take() {
        match previous.try_into_mut() {
            Ok(unique) if unique.capacity() >= size && unique.capacity() / 2 <= size => {
                let mut buffer = Vec::from(unique);
                buffer.clear();
                return Ok(buffer);
            }
            // Unviewed but the wrong size: freed.
            Ok(_) => {}
            // Still viewed: watched for the next message.
            Err(viewed) => *last = Some(viewed),
        }
    }
    let mut buffer = Vec::new();
    buffer
        .try_reserve_exact(size)
        .map_err(|_| FramingError::OutOfMemory { bytes: size as u64 })?;
    Ok(buffer)
}

/// Reads into `buf` until it holds `want` bytes, never past them: `false` if the stream ended
/// first. Cancel safe, since what a completed read brought is in `buf`.
async fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    want: usize,
) -> Result<bool, CommError> {
    use bytes::BufMut;
    while buf.len() < want {
        let room = want - buf.len();
        if buf.capacity() - buf.len() < room {
            buf.try_reserve_exact(room)
                .map_err(|_| FramingError::OutOfMemory { bytes: want as u64 })?;
        }
        let n = stream.read_buf(&mut (&mut *buf).limit(room)).await?;
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}
