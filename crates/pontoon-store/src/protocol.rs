//! The daemon's protocol, sans-IO: requests and replies, each a pontoon message whose header is
//! one MessagePack array and which has no frames (object bytes never cross the socket; they are
//! in shared memory). Encoding and decoding only, no sockets; the decoder takes hostile bytes
//! and answers with typed errors, within the bounds below. `docs/store-format.md` is the layout.
//!
//! ```
//! use pontoon_store::protocol::{Request, Response, decode_request, decode_response};
//! use pontoon_store::ObjectId;
//!
//! let message = Request::Create { size: 4096 }.to_message(7);
//! assert_eq!(decode_request(&message)?, (7, Request::Create { size: 4096 }));
//!
//! let id = ObjectId::new(pontoon_store::StoreId(1), 1);
//! let reply = Response::Created { id, offset: 0, len: 4096 }.to_message(7);
//! assert_eq!(decode_response(&reply)?, (7, Response::Created { id, offset: 0, len: 4096 }));
//! # Ok::<(), pontoon_store::protocol::ProtocolError>(())
//! ```

use bytes::Bytes;
use pontoon_wire::{Header, Limits, Message};

use crate::error::{ObjectError, RemoteFault};
use crate::{ObjectId, StoreId, StoreStats};

/// The protocol's version, sent in the hello both ways.
pub const PROTOCOL_VERSION: u64 = 1;
/// Most bytes in the header an object is sealed with.
pub const MAX_OBJECT_HEADER: usize = 1 << 20;
/// Most frames in one object.
pub const MAX_OBJECT_FRAMES: usize = 1 << 16;
/// Most ids in one `wait`.
pub const MAX_WAIT_IDS: usize = 1 << 16;
/// Most bytes in an error reply's reason.
pub const MAX_REASON: usize = 1024;

/// The limits both sides decode the socket's messages under: no frames, a header large enough
/// for the largest seal (an object header plus its frame table), nothing more.
///
/// ```
/// assert_eq!(pontoon_store::protocol::limits().max_frames, 0);
/// ```
pub fn limits() -> Limits {
    let mut limits = Limits::DEFAULT;
    limits.max_frames = 0;
    limits.max_frame_bytes = 0;
    limits.max_header_bytes = 4 << 20;
    limits.max_message_bytes = 4 << 20;
    limits.max_header_depth = 4;
    limits.max_expanded_bytes = 0;
    limits
}

/// Where an object's header and frames are, inside its range of the store's memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// The object's header (MessagePack, as its `Message` had it).
    pub header: Bytes,
    /// Each frame as `(offset, len)` from the start of the object.
    pub frames: Vec<(u64, u64)>,
}

impl Layout {
    /// One frame covering `len` bytes and an empty header: a raw object.
    ///
    /// ```
    /// assert_eq!(pontoon_store::protocol::Layout::raw(5).frames, vec![(0, 5)]);
    /// ```
    pub fn raw(len: u64) -> Layout {
        Layout {
            header: Header::empty().into_bytes(),
            frames: vec![(0, len)],
        }
    }

    /// Checks that every frame lies inside an object of `len` bytes.
    pub(crate) fn check(&self, id: ObjectId, len: u64) -> Result<(), ObjectError> {
        if self.frames.len() > MAX_OBJECT_FRAMES || self.header.len() > MAX_OBJECT_HEADER {
            return Err(ObjectError::BadLayout {
                id,
                reason: format!(
                    "{} frames and a {}-byte header (at most {MAX_OBJECT_FRAMES} and {MAX_OBJECT_HEADER})",
                    self.frames.len(),
                    self.header.len()
                ),
            });
        }
        for (i, &(offset, frame_len)) in self.frames.iter().enumerate() {
            if offset.checked_add(frame_len).is_none_or(|end| end > len) {
                return Err(ObjectError::BadLayout {
                    id,
                    reason: format!(
                        "frame {i} at {offset}+{frame_len} lies outside the object's {len} bytes"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A client's request. Each carries a request number chosen by the client, echoed in the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// The first request on a connection.
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        version: u64,
    },
    /// Reserve `size` bytes for a new object, writable by this client until sealed.
    Create {
        /// Bytes.
        size: u64,
    },
    /// Make an object this client created immutable and visible.
    Seal {
        /// The object.
        id: ObjectId,
        /// Its header and frames.
        layout: Layout,
    },
    /// Give up an object this client is creating.
    Abort {
        /// The object.
        id: ObjectId,
    },
    /// Where a sealed object is; pins it for this client until released.
    Get {
        /// The object.
        id: ObjectId,
    },
    /// Drop one pin this client holds (no reply).
    Release {
        /// The object.
        id: ObjectId,
    },
    /// Remove a sealed object; its memory is freed once no pin holds it.
    Delete {
        /// The object.
        id: ObjectId,
    },
    /// Whether a sealed object with this id is in the store.
    Contains {
        /// The object.
        id: ObjectId,
    },
    /// Wait until every object is sealed, or until the timeout.
    Wait {
        /// The objects.
        ids: Vec<ObjectId>,
        /// Milliseconds to wait at most.
        timeout_ms: u64,
    },
    /// Remove a sealed object and hand its memory to this client, writable: in place when no pin
    /// holds it, else a copy.
    Take {
        /// The object.
        id: ObjectId,
    },
    /// The store's counters.
    Stats,
    /// Pull object `id` from the store serving peers at `peer` (a pontoon-transport address);
    /// answered with `Done` once it is sealed here.
    Pull {
        /// The object.
        id: ObjectId,
        /// The peer's address, at most [`MAX_REASON`] bytes.
        peer: String,
    },
}

/// The daemon's reply to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// The request was refused.
    Error(ObjectError),
    /// The hello's answer; the store memory's file descriptors come with it.
    Hello {
        /// The daemon's [`PROTOCOL_VERSION`].
        version: u64,
        /// The store's id.
        store: StoreId,
        /// Bytes of store memory (the length of the mapping).
        arena_len: u64,
        /// File descriptors sent with this message.
        fds: u64,
    },
    /// An object reserved for writing.
    Created {
        /// The object.
        id: ObjectId,
        /// Its offset in the store memory.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// Done (seal, abort, delete).
    Done,
    /// A sealed object, pinned for the client.
    Object {
        /// The object.
        id: ObjectId,
        /// Its offset in the store memory.
        offset: u64,
        /// Its length.
        len: u64,
        /// Its header and frames.
        layout: Layout,
    },
    /// The answer to `contains`.
    Bool(bool),
    /// The answer to `wait`: for each id, whether it is sealed.
    Ready(Vec<bool>),
    /// A taken object: now a create of this client's under a new id.
    Taken {
        /// The new (unsealed) object.
        id: ObjectId,
        /// Its offset in the store memory.
        offset: u64,
        /// Its length.
        len: u64,
        /// Whether the daemon had to copy (another client held a pin).
        copied: bool,
        /// Its header and frames, as sealed before.
        layout: Layout,
    },
    /// The store's counters.
    Stats(StoreStats),
    /// A sealed object that is on disk (spilled, or created there), pinned for the client; the
    /// descriptor of its file comes with this message, and the object is read from a read-only
    /// map of it.
    Spilled {
        /// The object.
        id: ObjectId,
        /// The daemon's number for the file (the same file has the same number for as long
        /// as the daemon runs: a client keeps one map per file).
        file: u64,
        /// Where the object's bytes start in the file.
        offset: u64,
        /// How many bytes from there hold it.
        len: u64,
        /// Its header and frames, from `offset`.
        layout: Layout,
    },
    /// An object reserved for writing in a file of its own on disk (larger than free memory);
    /// the file's descriptor comes with this message, and the client maps it writable.
    CreatedOnDisk {
        /// The object.
        id: ObjectId,
        /// The daemon's number for the file.
        file: u64,
        /// Its length (the file's, from offset 0).
        len: u64,
    },
}

impl Response {
    /// Whether a file descriptor comes with this reply (SCM_RIGHTS, on its first byte).
    ///
    /// ```
    /// assert!(!pontoon_store::protocol::Response::Done.carries_fd());
    /// ```
    pub fn carries_fd(&self) -> bool {
        matches!(
            self,
            Response::Spilled { .. } | Response::CreatedOnDisk { .. }
        )
    }
}

/// A message that is not a request or reply of this protocol.
///
/// ```
/// let message = pontoon_wire::Message::new(pontoon_wire::Header::from_serde(&"hi")?, vec![]);
/// let err = pontoon_store::protocol::decode_request(&message).unwrap_err();
/// assert_eq!(err.to_string(), "bad store message at byte 0: want an array");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes on the socket are not a pontoon message within [`limits`].
    #[error("bad message on the store socket")]
    Wire(#[source] pontoon_wire::DecodeError),
    /// The header is not what the protocol says, at this byte of it.
    #[error("bad store message at byte {offset}: {what}")]
    Malformed {
        /// Byte offset in the header.
        offset: usize,
        /// What was expected.
        what: &'static str,
    },
    /// An operation number this side does not know.
    #[error("unknown store operation {op}")]
    UnknownOp {
        /// The number.
        op: u64,
    },
    /// A list longer than the protocol allows.
    #[error("{what}: {count} items, at most {max}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its length.
        count: u64,
        /// The bound.
        max: u64,
    },
    /// A message with frames: the protocol has none.
    #[error("a store message has {count} frames, want none")]
    Frames {
        /// How many.
        count: usize,
    },
}

mod op {
    pub(super) const HELLO: u64 = 0;
    pub(super) const CREATE: u64 = 1;
    pub(super) const SEAL: u64 = 2;
    pub(super) const ABORT: u64 = 3;
    pub(super) const GET: u64 = 4;
    pub(super) const RELEASE: u64 = 5;
    pub(super) const DELETE: u64 = 6;
    pub(super) const CONTAINS: u64 = 7;
    pub(super) const WAIT: u64 = 8;
    pub(super) const TAKE: u64 = 9;
    pub(super) const STATS: u64 = 10;
    pub(super) const PULL: u64 = 11;
}

mod reply {
    pub(super) const ERROR: u64 = 0;
    pub(super) const HELLO: u64 = 1;
    pub(super) const CREATED: u64 = 2;
    pub(super) const DONE: u64 = 3;
    pub(super) const OBJECT: u64 = 4;
    pub(super) const BOOL: u64 = 5;
    pub(super) const READY: u64 = 6;
    pub(super) const TAKEN: u64 = 7;
    pub(super) const STATS: u64 = 8;
    pub(super) const SPILLED: u64 = 9;
    pub(super) const CREATED_ON_DISK: u64 = 10;
}

mod code {
    pub(super) const UNKNOWN: u64 = 1;
    pub(super) const NOT_SEALED: u64 = 2;
    pub(super) const ALREADY_SEALED: u64 = 3;
    pub(super) const NOT_OWNER: u64 = 4;
    pub(super) const STORE_FULL: u64 = 5;
    pub(super) const BAD_LAYOUT: u64 = 6;
    pub(super) const OUT_OF_MEMORY: u64 = 7;
    pub(super) const SPILL_DISK_FULL: u64 = 8;
    pub(super) const SPILL_FAILED: u64 = 9;
    pub(super) const PULL_FAILED: u64 = 16;
}

/// Writes MessagePack into a vector, which cannot fail. Shared with the peer protocol.
pub(crate) struct Out(pub(crate) Vec<u8>);

impl Out {
    pub(crate) fn array(&mut self, len: usize) {
        let _ = rmp::encode::write_array_len(&mut self.0, len as u32);
    }
    pub(crate) fn uint(&mut self, value: u64) {
        let _ = rmp::encode::write_uint(&mut self.0, value);
    }
    pub(crate) fn id(&mut self, id: &ObjectId) {
        let _ = rmp::encode::write_bin(&mut self.0, id.as_bytes());
    }
    pub(crate) fn bin(&mut self, bytes: &[u8]) {
        let _ = rmp::encode::write_bin(&mut self.0, bytes);
    }
    pub(crate) fn bool(&mut self, value: bool) {
        let _ = rmp::encode::write_bool(&mut self.0, value);
    }
    pub(crate) fn str(&mut self, text: &str) {
        let _ = rmp::encode::write_str(&mut self.0, text);
    }
    pub(crate) fn layout(&mut self, layout: &Layout) {
        self.bin(&layout.header);
        self.array(layout.frames.len() * 2);
        for &(offset, len) in &layout.frames {
            self.uint(offset);
            self.uint(len);
        }
    }
    fn message(self) -> Message {
        self.message_with(Vec::new())
    }
    pub(crate) fn message_with(self, frames: Vec<Bytes>) -> Message {
        // Our own encoder's output is valid MessagePack of depth 2.
        Message::new(Header::from_msgpack_unchecked(Bytes::from(self.0)), frames)
    }
}

impl Request {
    /// This request as a message, with request number `rid`.
    ///
    /// ```
    /// let message = pontoon_store::protocol::Request::Stats.to_message(1);
    /// assert!(message.frames.is_empty());
    /// ```
    pub fn to_message(&self, rid: u64) -> Message {
        let mut out = Out(Vec::with_capacity(32));
        let (op, fields) = match self {
            Request::Hello { .. } => (op::HELLO, 1),
            Request::Create { .. } => (op::CREATE, 1),
            Request::Seal { .. } => (op::SEAL, 3),
            Request::Abort { .. } => (op::ABORT, 1),
            Request::Get { .. } => (op::GET, 1),
            Request::Release { .. } => (op::RELEASE, 1),
            Request::Delete { .. } => (op::DELETE, 1),
            Request::Contains { .. } => (op::CONTAINS, 1),
            Request::Wait { .. } => (op::WAIT, 2),
            Request::Take { .. } => (op::TAKE, 1),
            Request::Stats => (op::STATS, 0),
            Request::Pull { .. } => (op::PULL, 2),
        };
        out.array(2 + fields);
        out.uint(op);
        out.uint(rid);
        match self {
            Request::Hello { version } => out.uint(*version),
            Request::Create { size } => out.uint(*size),
            Request::Seal { id, layout } => {
                out.id(id);
                out.layout(layout);
            }
            Request::Abort { id }
            | Request::Get { id }
            | Request::Release { id }
            | Request::Delete { id }
            | Request::Contains { id }
            | Request::Take { id } => out.id(id),
            Request::Wait { ids, timeout_ms } => {
                out.array(ids.len());
                for id in ids {
                    out.id(id);
                }
                out.uint(*timeout_ms);
            }
            Request::Stats => {}
            Request::Pull { id, peer } => {
                out.id(id);
                out.str(peer);
            }
        }
        out.message()
    }
}

impl Response {
    /// This reply as a message, answering request `rid`.
    ///
    /// ```
    /// let message = pontoon_store::protocol::Response::Done.to_message(1);
    /// assert!(message.frames.is_empty());
    /// ```
    pub fn to_message(&self, rid: u64) -> Message {
        let mut out = Out(Vec::with_capacity(48));
        let (kind, fields) = match self {
            Response::Error(_) => (reply::ERROR, 5),
            Response::Hello { .. } => (reply::HELLO, 4),
            Response::Created { .. } => (reply::CREATED, 3),
            Response::Done => (reply::DONE, 0),
            Response::Object { .. } => (reply::OBJECT, 5),
            Response::Bool(_) => (reply::BOOL, 1),
            Response::Ready(_) => (reply::READY, 1),
            Response::Taken { .. } => (reply::TAKEN, 6),
            Response::Stats(_) => (reply::STATS, 1),
            Response::Spilled { .. } => (reply::SPILLED, 6),
            Response::CreatedOnDisk { .. } => (reply::CREATED_ON_DISK, 3),
        };
        out.array(2 + fields);
        out.uint(kind);
        out.uint(rid);
        match self {
            Response::Error(error) => encode_error(&mut out, error),
            Response::Hello {
                version,
                store,
                arena_len,
                fds,
            } => {
                out.uint(*version);
                out.uint(store.0);
                out.uint(*arena_len);
                out.uint(*fds);
            }
            Response::Created { id, offset, len } => {
                out.id(id);
                out.uint(*offset);
                out.uint(*len);
            }
            Response::Done => {}
            Response::Object {
                id,
                offset,
                len,
                layout,
            } => {
                out.id(id);
                out.uint(*offset);
                out.uint(*len);
                out.layout(layout);
            }
            Response::Bool(value) => out.bool(*value),
            Response::Ready(ready) => {
                out.array(ready.len());
                for &r in ready {
                    out.bool(r);
                }
            }
            Response::Taken {
                id,
                offset,
                len,
                copied,
                layout,
            } => {
                out.id(id);
                out.uint(*offset);
                out.uint(*len);
                out.bool(*copied);
                out.layout(layout);
            }
            Response::Stats(stats) => {
                let fields = stats.fields();
                out.array(fields.len());
                for value in fields {
                    out.uint(value);
                }
            }
            Response::Spilled {
                id,
                file,
                offset,
                len,
                layout,
            } => {
                out.id(id);
                out.uint(*file);
                out.uint(*offset);
                out.uint(*len);
                out.layout(layout);
            }
            Response::CreatedOnDisk { id, file, len } => {
                out.id(id);
                out.uint(*file);
                out.uint(*len);
            }
        }
        out.message()
    }
}

/// A remote fault's number in a spill failure (0: a local spill failed).
fn fault_number(fault: RemoteFault) -> u64 {
    match fault {
        RemoteFault::Unreachable => 1,
        RemoteFault::Refused => 2,
        RemoteFault::Full => 3,
        RemoteFault::Corrupt => 4,
        RemoteFault::Other => 5,
    }
}

/// The fault a spill failure's first number names; a number this side does not know is
/// [`RemoteFault::Other`].
fn fault_of(number: u64) -> Option<RemoteFault> {
    Some(match number {
        0 => return None,
        1 => RemoteFault::Unreachable,
        2 => RemoteFault::Refused,
        3 => RemoteFault::Full,
        4 => RemoteFault::Corrupt,
        _ => RemoteFault::Other,
    })
}

fn encode_error(out: &mut Out, error: &ObjectError) {
    let none = ObjectId::from_bytes([0; 16]);
    // A spill error's directory (and reason) travel in the reason text.
    let spill_reason;
    let (code, id, numbers, reason) = match error {
        ObjectError::SpillDiskFull { dir, need } => {
            spill_reason = dir.display().to_string();
            (
                code::SPILL_DISK_FULL,
                none,
                [*need, 0, 0, 0],
                spill_reason.as_str(),
            )
        }
        ObjectError::SpillFailed { dir, reason } => {
            spill_reason = format!("{}\n{reason}", dir.display());
            (code::SPILL_FAILED, none, [0; 4], spill_reason.as_str())
        }
        // A spill failure naming the remote, its fault as the first number (0, what a local
        // spill failure sends, is none: a client that predates remotes reads a spill failure).
        ObjectError::SpillRemoteFailed { url, fault, reason } => {
            spill_reason = format!("{url}\n{reason}");
            (
                code::SPILL_FAILED,
                none,
                [fault_number(*fault), 0, 0, 0],
                spill_reason.as_str(),
            )
        }
        ObjectError::Unknown { id } => (code::UNKNOWN, *id, [0; 4], ""),
        ObjectError::NotSealed { id } => (code::NOT_SEALED, *id, [0; 4], ""),
        ObjectError::AlreadySealed { id } => (code::ALREADY_SEALED, *id, [0; 4], ""),
        ObjectError::NotOwner { id } => (code::NOT_OWNER, *id, [0; 4], ""),
        ObjectError::StoreFull {
            need,
            capacity,
            free,
            largest,
        } => (
            code::STORE_FULL,
            none,
            [*need, *capacity, *free, *largest],
            "",
        ),
        ObjectError::BadLayout { id, reason } => (code::BAD_LAYOUT, *id, [0; 4], reason.as_str()),
        ObjectError::OutOfMemory { bytes } => (code::OUT_OF_MEMORY, none, [*bytes, 0, 0, 0], ""),
        ObjectError::PullFailed { id, reason } => (code::PULL_FAILED, *id, [0; 4], reason.as_str()),
    };
    out.uint(code);
    out.id(&id);
    out.array(4);
    for n in numbers {
        out.uint(n);
    }
    let mut cut = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    out.str(&reason[..cut]);
    out.uint(0); // reserved
}

/// Reads the fields of one header, each bounded by the bytes that remain.
struct Fields<'a> {
    all: &'a Bytes,
    rest: &'a [u8],
}

type Parsed<T> = Result<T, ProtocolError>;

impl<'a> Fields<'a> {
    fn new(all: &'a Bytes) -> Fields<'a> {
        Fields {
            all,
            rest: &all[..],
        }
    }
    fn offset(&self) -> usize {
        self.all.len() - self.rest.len()
    }
    fn bad(&self, what: &'static str) -> ProtocolError {
        ProtocolError::Malformed {
            offset: self.offset(),
            what,
        }
    }
    fn array(&mut self, what: &'static str) -> Parsed<usize> {
        let at = self.offset();
        let len = rmp::decode::read_array_len(&mut self.rest)
            .map_err(|_| ProtocolError::Malformed { offset: at, what })?;
        // Every item takes at least one byte, so a longer list cannot be there.
        if len as usize > self.rest.len() {
            return Err(ProtocolError::Malformed {
                offset: at,
                what: "a list longer than its bytes",
            });
        }
        Ok(len as usize)
    }
    fn uint(&mut self, what: &'static str) -> Parsed<u64> {
        let at = self.offset();
        rmp::decode::read_int::<u64, _>(&mut self.rest)
            .map_err(|_| ProtocolError::Malformed { offset: at, what })
    }
    fn bool(&mut self, what: &'static str) -> Parsed<bool> {
        let at = self.offset();
        rmp::decode::read_bool(&mut self.rest)
            .map_err(|_| ProtocolError::Malformed { offset: at, what })
    }
    fn bin(&mut self, what: &'static str, max: usize) -> Parsed<Bytes> {
        let at = self.offset();
        let len = rmp::decode::read_bin_len(&mut self.rest)
            .map_err(|_| ProtocolError::Malformed { offset: at, what })? as usize;
        if len > max || len > self.rest.len() {
            return Err(ProtocolError::Malformed { offset: at, what });
        }
        let start = self.offset();
        self.rest = &self.rest[len..];
        Ok(self.all.slice(start..start + len))
    }
    fn str(&mut self, what: &'static str, max: usize) -> Parsed<String> {
        let at = self.offset();
        let len = rmp::decode::read_str_len(&mut self.rest)
            .map_err(|_| ProtocolError::Malformed { offset: at, what })? as usize;
        if len > max || len > self.rest.len() {
            return Err(ProtocolError::Malformed { offset: at, what });
        }
        let text = std::str::from_utf8(&self.rest[..len])
            .map_err(|_| ProtocolError::Malformed { offset: at, what })?
            .to_owned();
        self.rest = &self.rest[len..];
        Ok(text)
    }
    fn id(&mut self) -> Parsed<ObjectId> {
        let at = self.offset();
        let bytes = self.bin("an object id (16 bytes)", 16)?;
        let bytes: [u8; 16] = bytes[..].try_into().map_err(|_| ProtocolError::Malformed {
            offset: at,
            what: "an object id (16 bytes)",
        })?;
        Ok(ObjectId::from_bytes(bytes))
    }
    fn layout(&mut self) -> Parsed<Layout> {
        let header = self.bin("the object's header", MAX_OBJECT_HEADER)?;
        let count = self.array("the object's frame table")?;
        if count % 2 != 0 {
            return Err(self.bad("a frame table of (offset, len) pairs"));
        }
        if count / 2 > MAX_OBJECT_FRAMES {
            return Err(ProtocolError::TooMany {
                what: "frames in an object",
                count: count as u64 / 2,
                max: MAX_OBJECT_FRAMES as u64,
            });
        }
        let mut frames = Vec::with_capacity(count / 2);
        for _ in 0..count / 2 {
            frames.push((
                self.uint("a frame's offset")?,
                self.uint("a frame's length")?,
            ));
        }
        Ok(Layout { header, frames })
    }
    fn end(&self) -> Parsed<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.bad("the end of the message"))
        }
    }
}

fn open<'a>(message: &Message, all: &'a Bytes) -> Parsed<(Fields<'a>, usize, u64, u64)> {
    if !message.frames.is_empty() {
        return Err(ProtocolError::Frames {
            count: message.frames.len(),
        });
    }
    let mut fields = Fields::new(all);
    let len = fields.array("want an array")?;
    if len < 2 {
        return Err(fields.bad("an operation and a request number"));
    }
    let kind = fields.uint("an operation number")?;
    let rid = fields.uint("a request number")?;
    Ok((fields, len - 2, kind, rid))
}

fn expect(fields: &Fields<'_>, got: usize, want: usize) -> Parsed<()> {
    if got == want {
        Ok(())
    } else {
        Err(fields.bad("the operation's number of fields"))
    }
}

/// Reads a request: its number and what it asks.
///
/// ```
/// use pontoon_store::protocol::{Request, decode_request};
/// let (rid, request) = decode_request(&Request::Stats.to_message(3))?;
/// assert_eq!((rid, request), (3, Request::Stats));
/// # Ok::<(), pontoon_store::protocol::ProtocolError>(())
/// ```
pub fn decode_request(message: &Message) -> Result<(u64, Request), ProtocolError> {
    let all = message.header.as_bytes();
    let (mut f, n, op, rid) = open(message, all)?;
    let request = match op {
        op::HELLO => {
            expect(&f, n, 1)?;
            Request::Hello {
                version: f.uint("a version")?,
            }
        }
        op::CREATE => {
            expect(&f, n, 1)?;
            Request::Create {
                size: f.uint("a size")?,
            }
        }
        op::SEAL => {
            expect(&f, n, 3)?;
            let id = f.id()?;
            Request::Seal {
                id,
                layout: f.layout()?,
            }
        }
        op::ABORT | op::GET | op::RELEASE | op::DELETE | op::CONTAINS | op::TAKE => {
            expect(&f, n, 1)?;
            let id = f.id()?;
            match op {
                op::ABORT => Request::Abort { id },
                op::GET => Request::Get { id },
                op::RELEASE => Request::Release { id },
                op::DELETE => Request::Delete { id },
                op::CONTAINS => Request::Contains { id },
                _ => Request::Take { id },
            }
        }
        op::WAIT => {
            expect(&f, n, 2)?;
            let count = f.array("a list of ids")?;
            if count > MAX_WAIT_IDS {
                return Err(ProtocolError::TooMany {
                    what: "ids in a wait",
                    count: count as u64,
                    max: MAX_WAIT_IDS as u64,
                });
            }
            // An id takes 18 bytes (bin8 marker, length, 16 bytes): reserve no more than fit.
            let mut ids = Vec::with_capacity(count.min(f.rest.len() / 18));
            for _ in 0..count {
                ids.push(f.id()?);
            }
            Request::Wait {
                ids,
                timeout_ms: f.uint("a timeout in milliseconds")?,
            }
        }
        op::STATS => {
            expect(&f, n, 0)?;
            Request::Stats
        }
        op::PULL => {
            expect(&f, n, 2)?;
            Request::Pull {
                id: f.id()?,
                peer: f.str("a peer address", MAX_REASON)?,
            }
        }
        op => return Err(ProtocolError::UnknownOp { op }),
    };
    f.end()?;
    Ok((rid, request))
}

/// Reads a reply: the number of the request it answers, and the answer.
///
/// ```
/// use pontoon_store::protocol::{Response, decode_response};
/// let (rid, reply) = decode_response(&Response::Bool(true).to_message(9))?;
/// assert_eq!((rid, reply), (9, Response::Bool(true)));
/// # Ok::<(), pontoon_store::protocol::ProtocolError>(())
/// ```
pub fn decode_response(message: &Message) -> Result<(u64, Response), ProtocolError> {
    let all = message.header.as_bytes();
    let (mut f, n, kind, rid) = open(message, all)?;
    let response = match kind {
        reply::ERROR => {
            expect(&f, n, 5)?;
            let code = f.uint("an error code")?;
            let id = f.id()?;
            if f.array("four numbers")? != 4 {
                return Err(f.bad("four numbers"));
            }
            let mut numbers = [0u64; 4];
            for n in &mut numbers {
                *n = f.uint("a number")?;
            }
            let reason = f.str("a reason", MAX_REASON)?;
            f.uint("a reserved number")?;
            let [need, capacity, free, largest] = numbers;
            Response::Error(match code {
                code::UNKNOWN => ObjectError::Unknown { id },
                code::NOT_SEALED => ObjectError::NotSealed { id },
                code::ALREADY_SEALED => ObjectError::AlreadySealed { id },
                code::NOT_OWNER => ObjectError::NotOwner { id },
                code::STORE_FULL => ObjectError::StoreFull {
                    need,
                    capacity,
                    free,
                    largest,
                },
                code::BAD_LAYOUT => ObjectError::BadLayout { id, reason },
                code::OUT_OF_MEMORY => ObjectError::OutOfMemory { bytes: need },
                code::SPILL_DISK_FULL => ObjectError::SpillDiskFull {
                    dir: reason.into(),
                    need,
                },
                code::SPILL_FAILED => {
                    let (dir, reason) = reason.split_once('\n').unwrap_or(("", &reason));
                    match fault_of(need) {
                        Some(fault) => ObjectError::SpillRemoteFailed {
                            url: dir.to_owned(),
                            fault,
                            reason: reason.to_owned(),
                        },
                        None => ObjectError::SpillFailed {
                            dir: dir.into(),
                            reason: reason.to_owned(),
                        },
                    }
                }
                code::PULL_FAILED => ObjectError::PullFailed { id, reason },
                _ => return Err(f.bad("a known error code")),
            })
        }
        reply::HELLO => {
            expect(&f, n, 4)?;
            Response::Hello {
                version: f.uint("a version")?,
                store: StoreId(f.uint("a store id")?),
                arena_len: f.uint("the memory's length")?,
                fds: f.uint("a descriptor count")?,
            }
        }
        reply::CREATED => {
            expect(&f, n, 3)?;
            Response::Created {
                id: f.id()?,
                offset: f.uint("an offset")?,
                len: f.uint("a length")?,
            }
        }
        reply::DONE => {
            expect(&f, n, 0)?;
            Response::Done
        }
        reply::OBJECT => {
            expect(&f, n, 5)?;
            Response::Object {
                id: f.id()?,
                offset: f.uint("an offset")?,
                len: f.uint("a length")?,
                layout: f.layout()?,
            }
        }
        reply::BOOL => {
            expect(&f, n, 1)?;
            Response::Bool(f.bool("a bool")?)
        }
        reply::READY => {
            expect(&f, n, 1)?;
            let count = f.array("a list of bools")?;
            if count > MAX_WAIT_IDS {
                return Err(ProtocolError::TooMany {
                    what: "answers to a wait",
                    count: count as u64,
                    max: MAX_WAIT_IDS as u64,
                });
            }
            let mut ready = Vec::with_capacity(count);
            for _ in 0..count {
                ready.push(f.bool("a bool")?);
            }
            Response::Ready(ready)
        }
        reply::TAKEN => {
            expect(&f, n, 6)?;
            Response::Taken {
                id: f.id()?,
                offset: f.uint("an offset")?,
                len: f.uint("a length")?,
                copied: f.bool("a bool")?,
                layout: f.layout()?,
            }
        }
        reply::STATS => {
            expect(&f, n, 1)?;
            let count = f.array("the counters")?;
            let mut values = Vec::with_capacity(count.min(64));
            for _ in 0..count {
                values.push(f.uint("a counter")?);
            }
            Response::Stats(StoreStats::from_fields(&values))
        }
        reply::SPILLED => {
            expect(&f, n, 6)?;
            Response::Spilled {
                id: f.id()?,
                file: f.uint("a file number")?,
                offset: f.uint("an offset")?,
                len: f.uint("a length")?,
                layout: f.layout()?,
            }
        }
        reply::CREATED_ON_DISK => {
            expect(&f, n, 3)?;
            Response::CreatedOnDisk {
                id: f.id()?,
                file: f.uint("a file number")?,
                len: f.uint("a length")?,
            }
        }
        op => return Err(ProtocolError::UnknownOp { op }),
    };
    f.end()?;
    Ok((rid, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ObjectId {
        ObjectId::new(StoreId(5), n)
    }

    #[test]
    fn every_request_and_reply_round_trips() {
        let layout = Layout {
            header: Bytes::from_static(b"\x91\x01"),
            frames: vec![(0, 3), (64, 9)],
        };
        let requests = [
            Request::Hello { version: 1 },
            Request::Create { size: u64::MAX },
            Request::Seal {
                id: id(1),
                layout: layout.clone(),
            },
            Request::Abort { id: id(2) },
            Request::Get { id: id(3) },
            Request::Release { id: id(4) },
            Request::Delete { id: id(5) },
            Request::Contains { id: id(6) },
            Request::Wait {
                ids: vec![id(7), id(8)],
                timeout_ms: 100,
            },
            Request::Take { id: id(9) },
            Request::Stats,
            Request::Pull {
                id: id(10),
                peer: "tcp://10.0.0.2:7000".into(),
            },
        ];
        for (rid, request) in requests.into_iter().enumerate() {
            let message = request.to_message(rid as u64);
            assert_eq!(decode_request(&message).unwrap(), (rid as u64, request));
        }
        let replies = [
            Response::Error(ObjectError::StoreFull {
                need: 1,
                capacity: 2,
                free: 3,
                largest: 4,
            }),
            Response::Error(ObjectError::BadLayout {
                id: id(1),
                reason: "é".repeat(600),
            }),
            Response::Error(ObjectError::PullFailed {
                id: id(2),
                reason: "the peer closed".into(),
            }),
            Response::Hello {
                version: 1,
                store: StoreId(3),
                arena_len: 1 << 30,
                fds: 1,
            },
            Response::Created {
                id: id(1),
                offset: 64,
                len: 128,
            },
            Response::Done,
            Response::Object {
                id: id(2),
                offset: 0,
                len: 73,
                layout: layout.clone(),
            },
            Response::Bool(false),
            Response::Ready(vec![true, false]),
            Response::Taken {
                id: id(3),
                offset: 0,
                len: 73,
                copied: true,
                layout,
            },
            Response::Stats(StoreStats {
                objects: 3,
                capacity: 9,
                ..StoreStats::default()
            }),
            Response::Spilled {
                id: id(4),
                file: 7,
                offset: 128,
                len: 200,
                layout: Layout::raw(5),
            },
            Response::CreatedOnDisk {
                id: id(5),
                file: 8,
                len: 1 << 40,
            },
            Response::Error(ObjectError::SpillDiskFull {
                dir: "/spill".into(),
                need: 77,
            }),
            Response::Error(ObjectError::SpillFailed {
                dir: "/spill".into(),
                reason: "EIO".into(),
            }),
            Response::Error(ObjectError::SpillRemoteFailed {
                url: "s3://b/p".into(),
                fault: RemoteFault::Unreachable,
                reason: "connection refused".into(),
            }),
            Response::Error(ObjectError::SpillRemoteFailed {
                url: "file:///r".into(),
                fault: RemoteFault::Corrupt,
                reason: "checksum".into(),
            }),
        ];
        for (rid, reply) in replies.into_iter().enumerate() {
            let (got_rid, got) = decode_response(&reply.to_message(rid as u64)).unwrap();
            assert_eq!(got_rid, rid as u64);
            match (&got, &reply) {
                // A long reason is cut at MAX_REASON bytes, on a character boundary.
                (
                    Response::Error(ObjectError::BadLayout { reason: got, .. }),
                    Response::Error(ObjectError::BadLayout { .. }),
                ) => assert_eq!(got.len(), MAX_REASON),
                _ => assert_eq!(got, reply),
            }
        }
    }

    /// Refused either as MessagePack (as the socket's decoder would) or by the protocol.
    fn refused(bytes: &'static [u8]) -> bool {
        match Header::from_msgpack(Bytes::from_static(bytes)) {
            Err(_) => true,
            Ok(header) => decode_request(&Message::new(header, vec![])).is_err(),
        }
    }

    #[test]
    fn hostile_headers_are_typed_errors() {
        let message = |bytes: &'static [u8]| {
            Message::new(
                Header::from_msgpack(Bytes::from_static(bytes)).unwrap(),
                vec![],
            )
        };
        // A wait claiming 4 billion ids in a few bytes.
        assert!(refused(b"\x94\x08\x00\xdd\xff\xff\xff\xff\x00"));
        // A seal with an odd frame table.
        let err = decode_request(&message(
            b"\x95\x02\x00\xc4\x10AAAAAAAAAAAAAAAA\xc4\x00\x91\x01",
        ))
        .unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed { .. }), "{err}");
        assert_eq!(
            decode_request(&message(b"\x92\x63\x00")).unwrap_err(),
            ProtocolError::UnknownOp { op: 0x63 }
        );
        // An id of 15 bytes, too few fields, a string where a number goes, not an array.
        assert!(refused(b"\x93\x04\x00\xc4\x0fAAAAAAAAAAAAAAA"));
        assert!(refused(b"\x92\x04\x00"));
        assert!(refused(b"\x93\x01\x00\xa1x"));
        assert!(refused(b"\x01"));
        assert!(refused(b""));
        let with_frame = Message::new(Header::empty(), vec![Bytes::from_static(b"x")]);
        assert_eq!(
            decode_request(&with_frame).unwrap_err(),
            ProtocolError::Frames { count: 1 }
        );
    }
}
