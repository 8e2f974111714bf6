//! The protocol between stores, sans-IO: a puller asks a peer store what an object is, then for
//! its bytes in chunks. Each message is a pontoon message whose header is one MessagePack array;
//! a chunk reply carries the object's bytes as frames. Encoding and decoding only; the decoder
//! takes hostile bytes and answers with typed errors, every length a peer picks checked against
//! the bounds below before anything is allocated for it. `docs/store-format.md` is the layout.
//!
//! ```
//! use pontoon_store::peer_protocol::{PeerReply, PeerRequest, decode_reply, decode_request};
//! use pontoon_store::{ObjectId, StoreId};
//!
//! let id = ObjectId::new(StoreId(1), 1);
//! let ask = PeerRequest::Chunk { id, offset: 0, len: 3 };
//! assert_eq!(decode_request(&ask.to_message())?, ask);
//!
//! let reply = PeerReply::Chunk { id, offset: 0, frames: vec![bytes::Bytes::from_static(b"abc")] };
//! assert_eq!(decode_reply(&reply.to_message())?, reply);
//! # Ok::<(), pontoon_store::peer_protocol::PeerProtocolError>(())
//! ```

use bytes::Bytes;
use pontoon_wire::{Limits, Message};

use crate::ObjectId;
use crate::protocol::{Layout, MAX_OBJECT_FRAMES, MAX_OBJECT_HEADER, Out};

/// The peer protocol's version, sent with every pull request.
pub const PEER_PROTOCOL_VERSION: u64 = 1;
/// Most bytes one chunk may carry (a puller asks for less: [`PullOptions::chunk_bytes`](crate::PullOptions::chunk_bytes)).
pub const MAX_CHUNK_BYTES: u64 = 64 << 20;
/// Most frames one chunk reply may carry its bytes in.
pub const MAX_CHUNK_FRAMES: usize = 64;
/// Most bytes in an error reply's reason.
pub const MAX_PEER_REASON: usize = 1024;

/// The limits a store decodes a peer's messages under (set on the transport, which checks them
/// before it allocates): a chunk's frames, a header large enough for the largest object
/// description (an object header plus its frame table), nothing more.
///
/// ```
/// let limits = pontoon_store::peer_protocol::limits();
/// assert_eq!(limits.max_frames, 64);
/// ```
pub fn limits() -> Limits {
    let mut limits = Limits::DEFAULT;
    limits.max_frames = MAX_CHUNK_FRAMES as u64;
    limits.max_frame_bytes = MAX_CHUNK_BYTES;
    limits.max_header_bytes = 4 << 20;
    limits.max_message_bytes = MAX_CHUNK_BYTES + (4 << 20);
    limits.max_header_depth = 4;
    limits.max_expanded_bytes = 0;
    limits
}

/// What a puller asks a peer store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerRequest {
    /// What is object `id` (its length and layout)? The peer keeps it alive for this
    /// connection's chunk requests until the connection closes.
    Pull {
        /// The puller's [`PEER_PROTOCOL_VERSION`].
        version: u64,
        /// The object.
        id: ObjectId,
    },
    /// Bytes `offset..offset + len` of object `id` (asked for with `Pull` on this connection).
    Chunk {
        /// The object.
        id: ObjectId,
        /// Where the chunk starts in the object.
        offset: u64,
        /// Its length, at most [`MAX_CHUNK_BYTES`].
        len: u64,
    },
}

/// Why a peer store refuses a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerRefusal {
    /// The peer has no object with this id.
    #[error("the peer has no object {id}")]
    Unknown {
        /// The object.
        id: ObjectId,
    },
    /// The peer's object is still being created.
    #[error("object {id} is not sealed at the peer yet")]
    NotSealed {
        /// The object.
        id: ObjectId,
    },
    /// The peer refused for another reason (a bad request, a version it does not speak).
    #[error("the peer refused: {reason}")]
    Refused {
        /// The peer's reason (at most [`MAX_PEER_REASON`] bytes).
        reason: String,
    },
}

/// What a peer store answers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerReply {
    /// The object asked for with `Pull`: `len` bytes, holding its header and frames as `layout`
    /// says.
    Object {
        /// The object.
        id: ObjectId,
        /// Its length in bytes (frames and the padding between them).
        len: u64,
        /// Where its frames are in those bytes, and its header.
        layout: Layout,
    },
    /// Bytes of an object, from `offset`, as frames (their lengths add up to the chunk's).
    Chunk {
        /// The object.
        id: ObjectId,
        /// Where the chunk starts in the object.
        offset: u64,
        /// The bytes, in at most [`MAX_CHUNK_FRAMES`] pieces.
        frames: Vec<Bytes>,
    },
    /// The request was refused.
    Error(PeerRefusal),
}

impl PeerReply {
    /// A chunk reply's length: its frames' lengths added up (0 for other replies).
    ///
    /// ```
    /// use pontoon_store::peer_protocol::PeerReply;
    /// let id = pontoon_store::ObjectId::new(pontoon_store::StoreId(1), 1);
    /// let frames = vec![bytes::Bytes::from_static(b"ab"), bytes::Bytes::from_static(b"c")];
    /// assert_eq!(PeerReply::Chunk { id, offset: 0, frames }.chunk_len(), 3);
    /// ```
    pub fn chunk_len(&self) -> u64 {
        match self {
            PeerReply::Chunk { frames, .. } => frames.iter().map(|f| f.len() as u64).sum(),
            _ => 0,
        }
    }
}

/// A message that is not a request or reply of the peer protocol.
///
/// ```
/// let message = pontoon_wire::Message::new(pontoon_wire::Header::from_serde(&"hi")?, vec![]);
/// let err = pontoon_store::peer_protocol::decode_request(&message).unwrap_err();
/// assert_eq!(err.to_string(), "bad peer store message at byte 0: want an array");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerProtocolError {
    /// The header is not what the protocol says, at this byte of it.
    #[error("bad peer store message at byte {offset}: {what}")]
    Malformed {
        /// Byte offset in the header.
        offset: usize,
        /// What was expected.
        what: &'static str,
    },
    /// A kind of message this side does not know.
    #[error("unknown peer store message kind {kind}")]
    UnknownKind {
        /// The number.
        kind: u64,
    },
    /// A length or count past the protocol's bounds.
    #[error("{what}: {value}, at most {max}")]
    TooLarge {
        /// Which length.
        what: &'static str,
        /// The value sent.
        value: u64,
        /// The bound.
        max: u64,
    },
    /// Frames where the message has none, or a chunk whose frames disagree with it.
    #[error("a peer store message has {count} frames, {what}")]
    Frames {
        /// How many came.
        count: usize,
        /// What was expected.
        what: &'static str,
    },
}

mod kind {
    pub(super) const PULL: u64 = 0;
    pub(super) const CHUNK: u64 = 1;
    pub(super) const OBJECT: u64 = 2;
    pub(super) const ERROR: u64 = 3;
    pub(super) const CHUNK_REPLY: u64 = 4;
}

mod code {
    pub(super) const UNKNOWN: u64 = 1;
    pub(super) const NOT_SEALED: u64 = 2;
    pub(super) const REFUSED: u64 = 3;
}

impl PeerRequest {
    /// This request as a message.
    ///
    /// ```
    /// let id = pontoon_store::ObjectId::new(pontoon_store::StoreId(1), 1);
    /// let message = pontoon_store::peer_protocol::PeerRequest::Pull { version: 1, id }.to_message();
    /// assert!(message.frames.is_empty());
    /// ```
    pub fn to_message(&self) -> Message {
        let mut out = Out(Vec::with_capacity(40));
        match self {
            PeerRequest::Pull { version, id } => {
                out.array(3);
                out.uint(kind::PULL);
                out.uint(*version);
                out.bin(id.as_bytes());
            }
            PeerRequest::Chunk { id, offset, len } => {
                out.array(4);
                out.uint(kind::CHUNK);
                out.bin(id.as_bytes());
                out.uint(*offset);
                out.uint(*len);
            }
        }
        out.message_with(Vec::new())
    }
}

impl PeerReply {
    /// This reply as a message (a chunk's bytes as its frames, not copied).
    ///
    /// ```
    /// use pontoon_store::peer_protocol::{PeerRefusal, PeerReply};
    /// let id = pontoon_store::ObjectId::new(pontoon_store::StoreId(1), 1);
    /// let message = PeerReply::Error(PeerRefusal::Unknown { id }).to_message();
    /// assert!(message.frames.is_empty());
    /// ```
    pub fn to_message(&self) -> Message {
        let mut out = Out(Vec::with_capacity(48));
        match self {
            PeerReply::Object { id, len, layout } => {
                out.array(5);
                out.uint(kind::OBJECT);
                out.bin(id.as_bytes());
                out.uint(*len);
                out.layout(layout);
                out.message_with(Vec::new())
            }
            PeerReply::Chunk { id, offset, frames } => {
                out.array(4);
                out.uint(kind::CHUNK_REPLY);
                out.bin(id.as_bytes());
                out.uint(*offset);
                out.uint(self.chunk_len());
                out.message_with(frames.clone())
            }
            PeerReply::Error(refusal) => {
                let none = ObjectId::from_bytes([0; 16]);
                let (code, id, reason) = match refusal {
                    PeerRefusal::Unknown { id } => (code::UNKNOWN, *id, ""),
                    PeerRefusal::NotSealed { id } => (code::NOT_SEALED, *id, ""),
                    PeerRefusal::Refused { reason } => (code::REFUSED, none, reason.as_str()),
                };
                out.array(4);
                out.uint(kind::ERROR);
                out.uint(code);
                out.bin(id.as_bytes());
                let mut cut = reason.len().min(MAX_PEER_REASON);
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.str(&reason[..cut]);
                out.message_with(Vec::new())
            }
        }
    }
}

/// Reads the fields of one header, each bounded by the bytes that remain.
struct Fields<'a> {
    all: &'a Bytes,
    rest: &'a [u8],
}

type Parsed<T> = Result<T, PeerProtocolError>;

fn bad(offset: usize, what: &'static str) -> PeerProtocolError {
    PeerProtocolError::Malformed { offset, what }
}

impl<'a> Fields<'a> {
    fn offset(&self) -> usize {
        self.all.len() - self.rest.len()
    }
    fn array(&mut self, what: &'static str) -> Parsed<usize> {
        let at = self.offset();
        let len = rmp::decode::read_array_len(&mut self.rest).map_err(|_| bad(at, what))?;
        // Every item takes at least one byte, so a longer list cannot be there.
        if len as usize > self.rest.len() {
            return Err(bad(at, "a list longer than its bytes"));
        }
        Ok(len as usize)
    }
    fn uint(&mut self, what: &'static str) -> Parsed<u64> {
        let at = self.offset();
        rmp::decode::read_int::<u64, _>(&mut self.rest).map_err(|_| bad(at, what))
    }
    fn bin(&mut self, what: &'static str, max: usize) -> Parsed<Bytes> {
        let at = self.offset();
        let len = rmp::decode::read_bin_len(&mut self.rest).map_err(|_| bad(at, what))? as usize;
        if len > max || len > self.rest.len() {
            return Err(bad(at, what));
        }
        let start = self.offset();
        self.rest = &self.rest[len..];
        Ok(self.all.slice(start..start + len))
    }
    fn str(&mut self, what: &'static str, max: usize) -> Parsed<String> {
        let at = self.offset();
        let len = rmp::decode::read_str_len(&mut self.rest).map_err(|_| bad(at, what))? as usize;
        if len > max || len > self.rest.len() {
            return Err(bad(at, what));
        }
        let text = std::str::from_utf8(&self.rest[..len])
            .map_err(|_| bad(at, what))?
            .to_owned();
        self.rest = &self.rest[len..];
        Ok(text)
    }
    fn id(&mut self) -> Parsed<ObjectId> {
        let at = self.offset();
        let bytes = self.bin("an object id (16 bytes)", 16)?;
        let bytes: [u8; 16] = bytes[..]
            .try_into()
            .map_err(|_| bad(at, "an object id (16 bytes)"))?;
        Ok(ObjectId::from_bytes(bytes))
    }
    fn chunk_len(&mut self) -> Parsed<u64> {
        let len = self.uint("a chunk length")?;
        if len > MAX_CHUNK_BYTES {
            return Err(PeerProtocolError::TooLarge {
                what: "a chunk's length",
                value: len,
                max: MAX_CHUNK_BYTES,
            });
        }
        Ok(len)
    }
    fn end(&self) -> Parsed<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(bad(self.offset(), "the end of the message"))
        }
    }
}

/// Opens a header: its array, then its kind, whose number of fields `fields` says (`None`: not a
/// kind of this direction).
fn open<'a>(all: &'a Bytes, fields: fn(u64) -> Option<usize>) -> Parsed<(Fields<'a>, u64)> {
    let mut f = Fields {
        all,
        rest: &all[..],
    };
    let len = f.array("want an array")?;
    if len == 0 {
        return Err(bad(0, "a message kind"));
    }
    let kind = f.uint("a message kind")?;
    match fields(kind) {
        Some(want) if want == len => Ok((f, kind)),
        Some(_) => Err(bad(0, "the message kind's number of fields")),
        None => Err(PeerProtocolError::UnknownKind { kind }),
    }
}

fn no_frames(message: &Message) -> Parsed<()> {
    if message.frames.is_empty() {
        Ok(())
    } else {
        Err(PeerProtocolError::Frames {
            count: message.frames.len(),
            what: "want none",
        })
    }
}

/// Reads a puller's request.
///
/// ```
/// use pontoon_store::peer_protocol::{PeerRequest, decode_request};
/// let id = pontoon_store::ObjectId::new(pontoon_store::StoreId(1), 1);
/// let ask = PeerRequest::Pull { version: 1, id };
/// assert_eq!(decode_request(&ask.to_message())?, ask);
/// # Ok::<(), pontoon_store::peer_protocol::PeerProtocolError>(())
/// ```
pub fn decode_request(message: &Message) -> Result<PeerRequest, PeerProtocolError> {
    no_frames(message)?;
    let (mut f, kind) = open(message.header.as_bytes(), |kind| match kind {
        kind::PULL => Some(3),
        kind::CHUNK => Some(4),
        _ => None,
    })?;
    let request = match kind {
        kind::PULL => PeerRequest::Pull {
            version: f.uint("a version")?,
            id: f.id()?,
        },
        _ => PeerRequest::Chunk {
            id: f.id()?,
            offset: f.uint("a chunk offset")?,
            len: f.chunk_len()?,
        },
    };
    f.end()?;
    Ok(request)
}

/// Reads a peer's reply. A chunk's frames must add up to the length its header declares, and
/// be at most [`MAX_CHUNK_FRAMES`]; an object's layout at most [`MAX_OBJECT_FRAMES`] frames and a
/// [`MAX_OBJECT_HEADER`]-byte header.
///
/// ```
/// use pontoon_store::peer_protocol::{PeerRefusal, PeerReply, decode_reply};
/// let id = pontoon_store::ObjectId::new(pontoon_store::StoreId(1), 1);
/// let reply = PeerReply::Error(PeerRefusal::NotSealed { id });
/// assert_eq!(decode_reply(&reply.to_message())?, reply);
/// # Ok::<(), pontoon_store::peer_protocol::PeerProtocolError>(())
/// ```
pub fn decode_reply(message: &Message) -> Result<PeerReply, PeerProtocolError> {
    let (mut f, kind) = open(message.header.as_bytes(), |kind| match kind {
        kind::OBJECT => Some(5),
        kind::ERROR | kind::CHUNK_REPLY => Some(4),
        _ => None,
    })?;
    let reply = match kind {
        kind::CHUNK_REPLY => {
            let id = f.id()?;
            let offset = f.uint("a chunk offset")?;
            let len = f.chunk_len()?;
            if message.frames.len() > MAX_CHUNK_FRAMES {
                return Err(PeerProtocolError::Frames {
                    count: message.frames.len(),
                    what: "more than a chunk may have",
                });
            }
            let carried: u64 = message.frames.iter().map(|f| f.len() as u64).sum();
            if carried != len {
                return Err(PeerProtocolError::Frames {
                    count: message.frames.len(),
                    what: "whose lengths do not add up to the chunk's declared length",
                });
            }
            PeerReply::Chunk {
                id,
                offset,
                frames: message.frames.clone(),
            }
        }
        kind::OBJECT => {
            no_frames(message)?;
            let id = f.id()?;
            let len = f.uint("an object length")?;
            let header = f.bin("the object's header", MAX_OBJECT_HEADER)?;
            let at = f.offset();
            let count = f.array("the object's frame table")?;
            if count % 2 != 0 {
                return Err(bad(at, "a frame table of (offset, len) pairs"));
            }
            if count / 2 > MAX_OBJECT_FRAMES {
                return Err(PeerProtocolError::TooLarge {
                    what: "frames in an object",
                    value: count as u64 / 2,
                    max: MAX_OBJECT_FRAMES as u64,
                });
            }
            let mut frames = Vec::with_capacity(count / 2);
            for _ in 0..count / 2 {
                frames.push((f.uint("a frame's offset")?, f.uint("a frame's length")?));
            }
            PeerReply::Object {
                id,
                len,
                layout: Layout { header, frames },
            }
        }
        kind::ERROR => {
            no_frames(message)?;
            let at = f.offset();
            let code = f.uint("an error code")?;
            let id = f.id()?;
            let reason = f.str("a reason", MAX_PEER_REASON)?;
            PeerReply::Error(match code {
                code::UNKNOWN => PeerRefusal::Unknown { id },
                code::NOT_SEALED => PeerRefusal::NotSealed { id },
                code::REFUSED => PeerRefusal::Refused { reason },
                _ => return Err(bad(at, "a known error code")),
            })
        }
        kind => return Err(PeerProtocolError::UnknownKind { kind }),
    };
    f.end()?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreId;
    use pontoon_wire::Header;

    fn id(n: u64) -> ObjectId {
        ObjectId::new(StoreId(5), n)
    }

    fn header(bytes: &'static [u8]) -> Option<Header> {
        Header::from_msgpack(Bytes::from_static(bytes)).ok()
    }

    #[test]
    fn every_request_and_reply_round_trips() {
        for request in [
            PeerRequest::Pull {
                version: PEER_PROTOCOL_VERSION,
                id: id(1),
            },
            PeerRequest::Chunk {
                id: id(2),
                offset: u64::MAX,
                len: MAX_CHUNK_BYTES,
            },
        ] {
            assert_eq!(decode_request(&request.to_message()).unwrap(), request);
            assert!(decode_reply(&request.to_message()).is_err());
        }
        for reply in [
            PeerReply::Object {
                id: id(3),
                len: 200,
                layout: Layout {
                    header: Bytes::from_static(b"\x91\x01"),
                    frames: vec![(0, 3), (64, 100)],
                },
            },
            PeerReply::Chunk {
                id: id(4),
                offset: 64,
                frames: vec![Bytes::from_static(b"abc"), Bytes::new()],
            },
            PeerReply::Error(PeerRefusal::Unknown { id: id(5) }),
            PeerReply::Error(PeerRefusal::NotSealed { id: id(6) }),
            PeerReply::Error(PeerRefusal::Refused {
                reason: "version 9".into(),
            }),
        ] {
            assert_eq!(decode_reply(&reply.to_message()).unwrap(), reply);
            assert!(decode_request(&reply.to_message()).is_err());
        }
        let long = PeerReply::Error(PeerRefusal::Refused {
            reason: "é".repeat(600),
        });
        match decode_reply(&long.to_message()).unwrap() {
            PeerReply::Error(PeerRefusal::Refused { reason }) => {
                assert_eq!(reason.len(), MAX_PEER_REASON)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hostile_messages_are_typed_errors() {
        let chunk_header = |len: u64| {
            let mut out = Out(Vec::new());
            out.array(4);
            out.uint(kind::CHUNK_REPLY);
            out.bin(id(1).as_bytes());
            out.uint(0);
            out.uint(len);
            Header::from_msgpack(Bytes::from(out.0)).unwrap()
        };
        // A chunk that declares more bytes than its frames carry, and one that declares less.
        let lying = Message::new(chunk_header(10), vec![Bytes::from_static(b"abc")]);
        assert!(matches!(
            decode_reply(&lying),
            Err(PeerProtocolError::Frames { count: 1, .. })
        ));
        let short = Message::new(chunk_header(1), vec![Bytes::from_static(b"abc")]);
        assert!(decode_reply(&short).is_err());
        // A chunk past the protocol's bound.
        let huge = Message::new(chunk_header(u64::MAX), vec![]);
        assert!(matches!(
            decode_reply(&huge),
            Err(PeerProtocolError::TooLarge { .. })
        ));
        // Too many frames.
        let many = Message::new(chunk_header(0), vec![Bytes::new(); MAX_CHUNK_FRAMES + 1]);
        assert!(decode_reply(&many).is_err());
        // An object with one frame more than an object may have.
        let mut out = Out(Vec::new());
        out.array(5);
        out.uint(kind::OBJECT);
        out.bin(id(1).as_bytes());
        out.uint(0);
        out.bin(b"");
        out.array((MAX_OBJECT_FRAMES + 1) * 2);
        for _ in 0..(MAX_OBJECT_FRAMES + 1) * 2 {
            out.uint(0);
        }
        let table = Header::from_msgpack(Bytes::from(out.0)).unwrap();
        assert!(matches!(
            decode_reply(&Message::new(table, vec![])),
            Err(PeerProtocolError::TooLarge { .. })
        ));
        // An odd frame table.
        let odd = header(b"\x95\x02\xc4\x10AAAAAAAAAAAAAAAA\x00\xc4\x00\x91\x01").unwrap();
        assert!(matches!(
            decode_reply(&Message::new(odd, vec![])),
            Err(PeerProtocolError::Malformed { .. })
        ));
        // Unknown kinds, wrong field counts, a short id, not an array, a frame on a request.
        for bytes in [
            &b"\x92\x63\x00"[..],
            b"\x92\x00\x01",
            b"\x93\x00\x01\xc4\x0fAAAAAAAAAAAAAAA",
            b"\x01",
            b"\x90",
        ] {
            let Some(h) = Header::from_msgpack(Bytes::copy_from_slice(bytes)).ok() else {
                continue;
            };
            let message = Message::new(h, vec![]);
            assert!(decode_request(&message).is_err(), "{bytes:?}");
            assert!(decode_reply(&message).is_err(), "{bytes:?}");
        }
        let pull = PeerRequest::Pull {
            version: 1,
            id: id(1),
        }
        .to_message();
        let with_frame = Message::new(pull.header, vec![Bytes::from_static(b"x")]);
        assert!(matches!(
            decode_request(&with_frame),
            Err(PeerProtocolError::Frames { .. })
        ));
    }
}
