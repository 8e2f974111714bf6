//! [`MessageReader`]: the receive path as a state machine with no I/O. It owns the message in
//! progress, says what it wants next, takes the bytes, and yields each message whole.

use std::sync::{Arc, Weak};

use bytes::buf::Limit;
use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::close::{CLOSE_MARKER, CloseMessage};
use crate::format::PREAMBLE_LEN;
use crate::head::{self, check_preamble};
use crate::{DecodeError, Limits, Message, MessageHead};

/// Frames start at addresses aligned to this many bytes on the way in.
pub const FRAME_ALIGN: usize = 64;

/// The least a frame buffer grows by at a time: a frame is reserved as its bytes arrive, a
/// step at a time, never all at once at the length a peer declared.
const GROW_MIN: usize = 64 << 10;

/// Where a [`MessageReader`] gets the memory its frames land in, and where that memory goes
/// when the frames are dropped: a pool of warm buffers, say.
///
/// ```
/// use std::sync::Arc;
/// struct Fresh;
/// impl pontoon_wire::FrameBuffers for Fresh {
///     fn take(&self, _len: u64) -> Vec<u8> { Vec::new() }
///     fn recycle(&self, _buffer: Vec<u8>) {}
/// }
/// let reader = pontoon_wire::MessageReader::new(pontoon_wire::Limits::default()).with_buffers(Arc::new(Fresh));
/// # let _ = reader;
/// ```
pub trait FrameBuffers: Send + Sync {
    /// An empty vector to start a frame of `len` bytes in: a warm one with room for the whole
    /// frame and 63 bytes of alignment, or a new one with none, which the reader grows as the
    /// frame's bytes arrive. The reader never reserves more than that.
    fn take(&self, len: u64) -> Vec<u8>;
    /// A buffer whose frame is no longer used by anything, to keep or to drop.
    fn recycle(&self, buffer: Vec<u8>);
}

/// [`FrameBuffers`] that keeps nothing: every frame gets a new buffer.
struct Fresh;

impl FrameBuffers for Fresh {
    fn take(&self, _len: u64) -> Vec<u8> {
        Vec::new()
    }
    fn recycle(&self, _buffer: Vec<u8>) {}
}

/// What a [`MessageReader`] needs next.
///
/// ```
/// let reader = pontoon_wire::MessageReader::new(pontoon_wire::Limits::default());
/// assert_eq!(reader.want(), pontoon_wire::Want::Preamble);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Want {
    /// The stream's preamble.
    Preamble,
    /// Bytes of the next message's head (or of a close message): give them to
    /// [`MessageReader::read`].
    Head,
    /// Padding bytes to skip before frame `index`.
    Padding {
        /// The frame that follows.
        index: usize,
        /// Bytes of padding still to come.
        len: u64,
    },
    /// Bytes of frame `index`: from [`MessageReader::read`], or read straight into
    /// [`MessageReader::frame_space`].
    Frame {
        /// Index of the frame in its message.
        index: usize,
        /// Bytes of the frame still to come.
        remaining: u64,
    },
}

/// What a [`MessageReader`] yields.
///
/// ```
/// # use pontoon_wire::*;
/// let mut reader = MessageReader::without_preamble(Limits::default());
/// let mut buf = bytes::BytesMut::from(&CloseMessage::new(CloseCode::GoingAway, "bye").encode()[..]);
/// assert!(matches!(reader.read(&mut buf)?, Some(Received::Close(c)) if c.code == CloseCode::GoingAway));
/// # Ok::<(), DecodeError>(())
/// ```
#[derive(Debug)]
pub enum Received {
    /// A message whose bytes have all arrived.
    Message(RawMessage),
    /// The peer's close message: it sends nothing after it.
    Close(CloseMessage),
}

/// A message whose bytes have all arrived, before its frames are checked and decompressed:
/// [`RawMessage::decode`] does that (a pass over every byte; decompression may be long, so a
/// carrier may run it off its I/O threads).
///
/// ```
/// # use pontoon_wire::*;
/// let mut reader = MessageReader::without_preamble(Limits::default());
/// let mut buf = bytes::BytesMut::from(&Encoder::default().encode(&Message::default())?.to_bytes()[..]);
/// let Some(Received::Message(raw)) = reader.read(&mut buf)? else { panic!("a message") };
/// assert_eq!(raw.head().decompressed_bytes(), 0);
/// assert_eq!(raw.decode()?, Message::default());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "a RawMessage is a whole received message: dropping it loses the message"]
pub struct RawMessage {
    head: MessageHead,
    frames: Vec<Bytes>,
}

impl RawMessage {
    /// The message's head.
    ///
    /// ```
    /// # use pontoon_wire::*;
    /// # let mut reader = MessageReader::without_preamble(Limits::default());
    /// # let mut buf = bytes::BytesMut::from(&Encoder::default().encode(&Message::default())?.to_bytes()[..]);
    /// # let Some(Received::Message(raw)) = reader.read(&mut buf)? else { panic!() };
    /// assert_eq!(raw.head().header(), Header::empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn head(&self) -> &MessageHead {
        &self.head
    }

    /// Checks checksums and decompresses: the message.
    ///
    /// ```
    /// # use pontoon_wire::*;
    /// # let mut reader = MessageReader::without_preamble(Limits::default());
    /// # let mut buf = bytes::BytesMut::from(&Encoder::default().encode(&Message::default())?.to_bytes()[..]);
    /// # let Some(Received::Message(raw)) = reader.read(&mut buf)? else { panic!() };
    /// assert!(raw.decode()?.frames.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode(self) -> Result<Message, DecodeError> {
        head::assemble(self.head, self.frames)
    }
}

/// A frame's buffer while its bytes arrive: `vec` holds `pad` bytes of alignment, then what has
/// arrived; it grows as bytes come.
struct Filling {
    vec: Vec<u8>,
    pad: usize,
    len: usize,
}

impl Filling {
    fn filled(&self) -> usize {
        self.vec.len() - self.pad
    }

    fn remaining(&self) -> usize {
        self.len - self.filled()
    }

    /// Makes room for at least one more byte (when any is due), growing by at least
    /// [`GROW_MIN`] and at most doubling what has arrived, and keeps the frame aligned.
    fn make_room(&mut self) -> Option<()> {
        let remaining = self.remaining();
        if remaining == 0 || self.vec.capacity() > self.vec.len() {
            return Some(());
        }
        let grow = remaining.min(self.filled().max(GROW_MIN));
        // Room for the alignment too, in case the allocator moves the buffer.
        self.vec.try_reserve_exact(grow + FRAME_ALIGN - 1).ok()?;
        let pad = self.vec.as_ptr().align_offset(FRAME_ALIGN);
        if pad != self.pad {
            // The allocator moved the buffer to an address of another alignment: move the
            // bytes that arrived so far to the new aligned start (rare: large buffers are
            // remapped whole).
            let filled = self.filled();
            if pad > self.pad {
                self.vec.resize(self.vec.len() + (pad - self.pad), 0);
            }
            self.vec.copy_within(self.pad..self.pad + filled, pad);
            self.vec.truncate(pad + filled);
            self.pad = pad;
        }
        Some(())
    }

    fn space(&mut self) -> Limit<&mut Vec<u8>> {
        let spare = self.vec.capacity() - self.vec.len();
        let n = spare.min(self.remaining());
        (&mut self.vec).limit(n)
    }
}

/// A frame's bytes once they have all arrived: returned to its [`FrameBuffers`] when the last
/// `Bytes` of it is dropped.
struct Landed {
    vec: Vec<u8>,
    pad: usize,
    buffers: Weak<dyn FrameBuffers>,
}

impl AsRef<[u8]> for Landed {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.pad..]
    }
}

impl Drop for Landed {
    fn drop(&mut self) {
        if let Some(buffers) = self.buffers.upgrade() {
            buffers.recycle(std::mem::take(&mut self.vec));
        }
    }
}

enum State {
    Preamble,
    Head,
    Body {
        head: MessageHead,
        /// The frame now arriving (or the next one).
        index: usize,
        /// Offset from the message's start of the next byte to take.
        pos: u64,
        frames: Vec<Bytes>,
        filling: Option<Filling>,
    },
    Closed,
}

/// Reads a stream of messages as its bytes arrive, with no I/O of its own, in the way of
/// `quinn-proto`: the carrier asks [`MessageReader::want`], supplies bytes through
/// [`MessageReader::read`] (from a receive buffer) or [`MessageReader::frame_space`] (straight
/// from a socket into the frame's own buffer), and gets each message whole as a [`RawMessage`].
///
/// Everything about the message in progress lives in the reader and the receive buffer, so a
/// carrier that stops in the middle (an async read cancelled) and comes back later loses
/// nothing. The head is checked once, when it is whole; each frame lands in a buffer of its own,
/// aligned to [`FRAME_ALIGN`] bytes and grown as its bytes arrive, never reserved at the length
/// the peer declared. Every length is checked against the reader's [`Limits`] first. After an
/// error, every later call returns it again.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use pontoon_wire::{Encoder, Header, Limits, Message, MessageReader, Received, preamble};
///
/// let message = Message::new(Header::from_serde(&"put")?, vec![Bytes::from(vec![9u8; 100_000])]);
/// let mut stream = preamble().to_vec();
/// stream.extend_from_slice(&Encoder::default().encode(&message)?.to_bytes());
///
/// let mut reader = MessageReader::new(Limits::default());
/// let mut buf = BytesMut::new();
/// let mut received = None;
/// for piece in stream.chunks(4096) {
///     buf.extend_from_slice(piece); // as a socket would deliver it
///     if let Some(Received::Message(raw)) = reader.read(&mut buf)? {
///         received = Some(raw.decode()?);
///     }
/// }
/// let received = received.expect("the whole message arrived");
/// assert_eq!(received, message);
/// assert_eq!(received.frames[0].as_ptr() as usize % 64, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MessageReader {
    limits: Limits,
    /// Stream offset of the next byte the reader takes, not counting the bytes of a frame
    /// still arriving (those are counted when it is whole).
    offset: u64,
    state: State,
    buffers: Arc<dyn FrameBuffers>,
    failed: Option<DecodeError>,
}

impl std::fmt::Debug for MessageReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageReader")
            .field("offset", &self.offset)
            .field("want", &self.want())
            .finish()
    }
}

impl MessageReader {
    /// A reader that expects the stream's [`preamble`](crate::preamble) first.
    ///
    /// ```
    /// let reader = pontoon_wire::MessageReader::new(pontoon_wire::Limits::default());
    /// assert_eq!(reader.stream_offset(), 0);
    /// ```
    pub fn new(limits: Limits) -> MessageReader {
        MessageReader {
            limits,
            offset: 0,
            state: State::Preamble,
            buffers: Arc::new(Fresh),
            failed: None,
        }
    }

    /// A reader for a stream whose preamble has been read already (or that has none).
    ///
    /// ```
    /// let reader = pontoon_wire::MessageReader::without_preamble(pontoon_wire::Limits::default());
    /// assert_eq!(reader.want(), pontoon_wire::Want::Head);
    /// ```
    pub fn without_preamble(limits: Limits) -> MessageReader {
        MessageReader {
            state: State::Head,
            ..MessageReader::new(limits)
        }
    }

    /// The same reader, taking frame buffers from `buffers`.
    ///
    /// ```
    /// # struct Fresh;
    /// # impl pontoon_wire::FrameBuffers for Fresh {
    /// #     fn take(&self, _len: u64) -> Vec<u8> { Vec::new() }
    /// #     fn recycle(&self, _buffer: Vec<u8>) {}
    /// # }
    /// let reader = pontoon_wire::MessageReader::new(pontoon_wire::Limits::default())
    ///     .with_buffers(std::sync::Arc::new(Fresh));
    /// # let _ = reader;
    /// ```
    #[must_use = "with_buffers returns the changed reader"]
    pub fn with_buffers(mut self, buffers: Arc<dyn FrameBuffers>) -> MessageReader {
        self.buffers = buffers;
        self
    }

    /// The limits this reader enforces.
    ///
    /// ```
    /// let reader = pontoon_wire::MessageReader::new(pontoon_wire::Limits::default());
    /// assert_eq!(*reader.limits(), pontoon_wire::Limits::default());
    /// ```
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes of the stream taken so far.
    ///
    /// ```
    /// let reader = pontoon_wire::MessageReader::new(pontoon_wire::Limits::default());
    /// assert_eq!(reader.stream_offset(), 0);
    /// ```
    pub fn stream_offset(&self) -> u64 {
        self.offset
    }

    /// What the reader needs next.
    ///
    /// ```
    /// let reader = pontoon_wire::MessageReader::without_preamble(pontoon_wire::Limits::default());
    /// assert_eq!(reader.want(), pontoon_wire::Want::Head);
    /// ```
    pub fn want(&self) -> Want {
        match &self.state {
            State::Preamble => Want::Preamble,
            State::Head | State::Closed => Want::Head,
            State::Body {
                head,
                index,
                pos,
                filling,
                ..
            } => match (filling, head.frames().get(*index)) {
                (Some(f), _) => Want::Frame {
                    index: *index,
                    remaining: f.remaining() as u64,
                },
                (None, Some(layout)) if layout.start > *pos => Want::Padding {
                    index: *index,
                    len: layout.start - *pos,
                },
                (None, Some(layout)) => Want::Frame {
                    index: *index,
                    remaining: layout.wire_len,
                },
                (None, None) => Want::Head,
            },
        }
    }

    /// Whether the reader is between messages (nothing of a message has been taken), so that an
    /// end of stream here is clean.
    ///
    /// ```
    /// let reader = pontoon_wire::MessageReader::without_preamble(pontoon_wire::Limits::default());
    /// assert!(reader.is_between_messages());
    /// ```
    pub fn is_between_messages(&self) -> bool {
        matches!(self.state, State::Head | State::Preamble | State::Closed)
    }

    /// Takes what it can from `src`: the preamble, a head (split off `src` once whole, with no
    /// copy), padding, and frame bytes (copied into the frame's buffer). Returns a message or
    /// close message once one is whole, leaving any later bytes in `src`; `Ok(None)` when it
    /// needs more (then `src` holds at most the start of a head).
    ///
    /// ```
    /// let mut reader = pontoon_wire::MessageReader::new(pontoon_wire::Limits::default());
    /// let mut buf = bytes::BytesMut::from(&b"GET / HTTP/1.1"[..]);
    /// assert!(matches!(reader.read(&mut buf), Err(pontoon_wire::DecodeError::BadMagic { .. })));
    /// ```
    pub fn read(&mut self, src: &mut BytesMut) -> Result<Option<Received>, DecodeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.read_inner(src);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// Room for the next bytes of the frame now arriving, to read into straight from a socket
    /// (then call [`MessageReader::read`] to move on): `Ok(None)` unless [`MessageReader::want`]
    /// is [`Want::Frame`] with bytes to come. The room is at most what the frame still needs,
    /// and is reserved a step at a time as bytes arrive.
    ///
    /// ```
    /// use bytes::{BufMut, BytesMut};
    /// use pontoon_wire::{Encoder, Header, Limits, Message, MessageReader, Received, Want};
    ///
    /// let message = Message::new(Header::empty(), vec![bytes::Bytes::from(vec![5u8; 1 << 20])]);
    /// let wire = Encoder::default().encode(&message)?.to_bytes();
    /// let mut reader = MessageReader::without_preamble(Limits::default());
    /// let head_len = wire.len() - (1 << 20);
    /// let mut buf = BytesMut::from(&wire[..head_len]);
    /// assert!(reader.read(&mut buf)?.is_none());
    /// assert_eq!(reader.want(), Want::Frame { index: 0, remaining: 1 << 20 });
    /// let mut sent = &wire[head_len..];
    /// while let Some(mut space) = reader.frame_space()? {
    ///     let n = space.remaining_mut().min(sent.len());
    ///     space.put_slice(&sent[..n]); // a socket read, in real life
    ///     sent = &sent[n..];
    /// }
    /// let Some(Received::Message(raw)) = reader.read(&mut buf)? else { panic!("whole") };
    /// assert_eq!(raw.decode()?, message);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn frame_space(&mut self) -> Result<Option<Limit<&mut Vec<u8>>>, DecodeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if let Err(error) = self.start_frame() {
            self.failed = Some(error.clone());
            return Err(error);
        }
        let State::Body {
            head,
            index,
            filling: Some(filling),
            ..
        } = &mut self.state
        else {
            return Ok(None);
        };
        if filling.remaining() == 0 {
            return Ok(None);
        }
        if filling.make_room().is_none() {
            let error = DecodeError::OutOfMemory {
                offset: self.offset,
                frame: *index as u64,
                len: head
                    .frames()
                    .get(*index)
                    .map_or(0, |layout| layout.wire_len),
            };
            self.failed = Some(error.clone());
            return Err(error);
        }
        Ok(Some(filling.space()))
    }

    /// At the end of the stream: `Ok` if it ended between messages with nothing left in `src`,
    /// [`DecodeError::Truncated`] otherwise.
    ///
    /// ```
    /// let reader = pontoon_wire::MessageReader::without_preamble(pontoon_wire::Limits::default());
    /// assert!(reader.end_of_stream(&bytes::BytesMut::new()).is_ok());
    /// assert!(reader.end_of_stream(&bytes::BytesMut::from(&b"\xF0M"[..])).is_err());
    /// ```
    pub fn end_of_stream(&self, src: &BytesMut) -> Result<(), DecodeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if self.is_between_messages() && src.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Truncated {
                offset: self.offset + src.len() as u64 + self.frame_bytes_held(),
            })
        }
    }

    fn frame_bytes_held(&self) -> u64 {
        match &self.state {
            State::Body {
                filling: Some(f), ..
            } => f.filled() as u64,
            _ => 0,
        }
    }

    /// When frame bytes are due and no buffer holds them yet, takes one.
    fn start_frame(&mut self) -> Result<(), DecodeError> {
        let State::Body {
            head,
            index,
            pos,
            filling,
            ..
        } = &mut self.state
        else {
            return Ok(());
        };
        let Some(layout) = head.frames().get(*index) else {
            return Ok(());
        };
        if filling.is_some() || layout.start > *pos {
            return Ok(());
        }
        let len = usize::try_from(layout.wire_len).map_err(|_| DecodeError::OutOfMemory {
            offset: self.offset,
            frame: *index as u64,
            len: layout.wire_len,
        })?;
        let mut vec = self.buffers.take(layout.wire_len);
        vec.clear();
        let pad = vec.as_ptr().align_offset(FRAME_ALIGN);
        let pad = if vec.capacity() >= pad + len { pad } else { 0 };
        if pad > 0 {
            vec.resize(pad, 0);
        }
        let mut f = Filling { vec, pad, len };
        // A buffer with no room yet gets its first step now, so that its alignment is known;
        // an empty frame gets room for its alignment alone, so that it is aligned too.
        if f.vec.capacity() == 0 {
            let room = match len {
                0 => f.vec.try_reserve_exact(FRAME_ALIGN).ok().map(|()| {
                    f.pad = f.vec.as_ptr().align_offset(FRAME_ALIGN);
                    f.vec.resize(f.pad, 0);
                }),
                _ => f.make_room(),
            };
            room.ok_or(DecodeError::OutOfMemory {
                offset: self.offset,
                frame: *index as u64,
                len: layout.wire_len,
            })?;
        }
        *filling = Some(f);
        Ok(())
    }

    fn read_inner(&mut self, src: &mut BytesMut) -> Result<Option<Received>, DecodeError> {
        loop {
            match &mut self.state {
                State::Closed => {
                    return match src.first() {
                        None => Ok(None),
                        Some(_) => Err(DecodeError::TrailingBytes {
                            offset: self.offset,
                        }),
                    };
                }
                State::Preamble => {
                    if !check_preamble(src, self.offset)? {
                        return Ok(None);
                    }
                    src.advance(PREAMBLE_LEN);
                    self.offset += PREAMBLE_LEN as u64;
                    self.state = State::Head;
                }
                State::Head => {
                    if src.len() >= 2 && src[..2] == CLOSE_MARKER {
                        let Some((close, len)) = CloseMessage::decode(src, self.offset)? else {
                            return Ok(None);
                        };
                        src.advance(len);
                        self.offset += len as u64;
                        self.state = State::Closed;
                        return Ok(Some(Received::Close(close)));
                    }
                    let Some(head) = head::parse_from(src, self.offset, &self.limits)? else {
                        return Ok(None);
                    };
                    let pos = head.head_len();
                    self.offset += pos;
                    let mut frames = Vec::new();
                    frames.try_reserve_exact(head.frames().len()).map_err(|_| {
                        DecodeError::OutOfMemory {
                            offset: self.offset,
                            frame: 0,
                            len: head.frames().len() as u64,
                        }
                    })?;
                    self.state = State::Body {
                        head,
                        index: 0,
                        pos,
                        frames,
                        filling: None,
                    };
                }
                State::Body { .. } => {
                    if let Some(raw) = self.step_body(src)? {
                        return Ok(Some(Received::Message(raw)));
                    }
                    if !matches!(self.state, State::Body { .. }) {
                        continue;
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// Moves a message's body on with the bytes in `src`: the message when it is whole.
    fn step_body(&mut self, src: &mut BytesMut) -> Result<Option<RawMessage>, DecodeError> {
        loop {
            self.start_frame()?;
            let State::Body {
                head,
                index,
                pos,
                frames,
                filling,
            } = &mut self.state
            else {
                return Ok(None);
            };
            let Some(layout) = head.frames().get(*index).copied() else {
                let State::Body { head, frames, .. } =
                    std::mem::replace(&mut self.state, State::Head)
                else {
                    return Ok(None);
                };
                return Ok(Some(RawMessage { head, frames }));
            };
            match filling {
                None => {
                    // Padding before the frame.
                    let skip = (layout.start - *pos).min(src.len() as u64);
                    if skip == 0 {
                        return Ok(None);
                    }
                    src.advance(skip as usize);
                    *pos += skip;
                    self.offset += skip;
                }
                Some(f) if f.remaining() == 0 => {
                    let f = filling.take().map(|f| (f.vec, f.pad));
                    if let Some((vec, pad)) = f {
                        let landed = Landed {
                            vec,
                            pad,
                            buffers: Arc::downgrade(&self.buffers),
                        };
                        frames.push(Bytes::from_owner(landed));
                    }
                    *pos = layout.start + layout.wire_len;
                    self.offset += layout.wire_len;
                    *index += 1;
                }
                Some(f) => {
                    if src.is_empty() {
                        return Ok(None);
                    }
                    if f.make_room().is_none() {
                        return Err(DecodeError::OutOfMemory {
                            offset: self.offset,
                            frame: *index as u64,
                            len: layout.wire_len,
                        });
                    }
                    let mut space = f.space();
                    let n = space.remaining_mut().min(src.len());
                    space.put_slice(&src[..n]);
                    src.advance(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, EncodeOptions, Encoder, Header};

    fn stream() -> (Vec<Message>, Vec<u8>) {
        let compressible = Bytes::from((0..12_000u32).map(|i| (i / 100) as u8).collect::<Vec<_>>());
        let messages = vec![
            Message::new(
                Header::from_serde(&"first").unwrap(),
                vec![Bytes::from_static(b"abc"), Bytes::new()],
            ),
            Message::new(
                Header::empty(),
                vec![compressible, Bytes::from(vec![7u8; 300])],
            ),
            Message::default(),
        ];
        let encoder = Encoder::new(EncodeOptions {
            codec: Codec::Lz4,
            checksums: true,
            ..EncodeOptions::default()
        });
        let mut bytes = crate::preamble().to_vec();
        for m in &messages {
            bytes.extend_from_slice(&encoder.encode(m).unwrap().to_bytes());
        }
        (messages, bytes)
    }

    /// Small enough for miri: fed a byte at a time, the reader yields what was sent, aligned.
    #[test]
    fn byte_by_byte_through_read() {
        let (messages, bytes) = stream();
        let mut reader = MessageReader::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &byte in &bytes {
            buf.extend_from_slice(&[byte]);
            while let Some(received) = reader.read(&mut buf).unwrap() {
                let Received::Message(raw) = received else {
                    panic!("no close was sent")
                };
                // Frames that arrive as they are land aligned (decompressed ones are new
                // memory, aligned as the allocator gives it).
                let raw_codecs: Vec<_> = raw.head().frames().iter().map(|f| f.codec).collect();
                let message = raw.decode().unwrap();
                for (frame, codec) in message.frames.iter().zip(raw_codecs) {
                    if codec == crate::Codec::None {
                        assert_eq!(frame.as_ptr() as usize % FRAME_ALIGN, 0);
                    }
                }
                got.push(message);
            }
        }
        assert_eq!(got, messages);
        assert_eq!(reader.stream_offset(), bytes.len() as u64);
        assert!(reader.end_of_stream(&buf).is_ok());
    }

    /// Frame bytes written straight into the frame's space, a few at a time, as a socket would.
    #[test]
    fn frames_straight_into_their_space() {
        let (messages, bytes) = stream();
        let mut reader = MessageReader::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            if let Some(mut space) = reader.frame_space().unwrap() {
                let n = space.remaining_mut().min(rest.len()).min(777);
                space.put_slice(&rest[..n]);
                rest = &rest[n..];
            } else {
                let n = rest.len().min(5);
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            while let Some(Received::Message(raw)) = reader.read(&mut buf).unwrap() {
                got.push(raw.decode().unwrap());
            }
        }
        assert_eq!(got, messages);
        assert_eq!(reader.stream_offset(), bytes.len() as u64);
    }

    #[test]
    fn a_huge_declared_frame_is_reserved_as_it_arrives() {
        let message = Message::new(Header::empty(), vec![Bytes::from(vec![1u8; 1000])]);
        let mut wire = Encoder::default()
            .encode(&message)
            .unwrap()
            .to_bytes()
            .to_vec();
        wire[24..32].copy_from_slice(&(1u64 << 40).to_le_bytes());
        wire[32..40].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let limits = Limits {
            max_frame_bytes: 1 << 41,
            max_message_bytes: 1 << 41,
            ..Limits::DEFAULT
        };
        let mut reader = MessageReader::without_preamble(limits);
        let mut buf = BytesMut::from(&wire[..]);
        assert!(reader.read(&mut buf).unwrap().is_none());
        assert_eq!(
            reader.want(),
            Want::Frame {
                index: 0,
                remaining: (1 << 40) - 1000
            }
        );
        let State::Body {
            filling: Some(f), ..
        } = &reader.state
        else {
            panic!("a frame is arriving")
        };
        assert!(
            f.vec.capacity() <= 2 * GROW_MIN + FRAME_ALIGN,
            "{}",
            f.vec.capacity()
        );
        let space = reader.frame_space().unwrap().unwrap();
        assert!(space.remaining_mut() <= 2 * GROW_MIN);
        assert!(matches!(
            reader.end_of_stream(&buf),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn a_close_message_ends_the_stream() {
        let close = CloseMessage::new(crate::CloseCode::TooLarge, "frame 3 is over 1 GiB");
        let mut bytes = Encoder::default()
            .encode(&Message::default())
            .unwrap()
            .to_bytes()
            .to_vec();
        bytes.extend_from_slice(&close.encode());
        let mut reader = MessageReader::without_preamble(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &byte in &bytes {
            buf.extend_from_slice(&[byte]);
            while let Some(r) = reader.read(&mut buf).unwrap() {
                got.push(r);
            }
        }
        assert!(matches!(&got[..], [Received::Message(_), Received::Close(c)] if *c == close));
        buf.extend_from_slice(b"more");
        assert!(matches!(
            reader.read(&mut buf),
            Err(DecodeError::TrailingBytes { .. })
        ));
    }
}
