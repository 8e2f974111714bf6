//! Stores talking to stores over pontoon-transport: serving objects to peers
//! ([`Store::serve_peers`], [`PeerServer`]) and pulling them ([`Store::pull`]), the tokio glue
//! around the sans-IO `peer_protocol` and `pull`. Generic over where objects come from
//! ([`Source`]) and go to ([`Sink`]), so the embedded store and the daemon share it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use pontoon_transport::{Address, Comm, Config, TransportError};
use pontoon_wire::{Header, Message};
use tokio::task::{JoinHandle, JoinSet};

use crate::alloc::ALIGN;
use crate::error::ObjectError;
use crate::peer_protocol::{
    self, MAX_CHUNK_BYTES, MAX_CHUNK_FRAMES, PEER_PROTOCOL_VERSION, PeerRefusal, PeerReply,
    PeerRequest,
};
use crate::protocol::Layout;
use crate::pull::{Pull, PullError, PullOptions};
use crate::pulled::PulledBuffer;
use crate::{ObjectId, Store};

/// Most objects one peer connection may have open (asked for with a pull) at once.
const MAX_OPEN_PER_CONNECTION: usize = 16;
/// Most peer connections served at once; one past it is closed at accept (logged), so peers
/// cannot pin without bound by their number.
const MAX_PEER_CONNECTIONS: usize = 256;

/// Zeros for the padding between frames in a chunk.
static ZEROS: [u8; 4096] = [0; 4096];

/// An object a peer asked for, kept alive for its chunks: its length, layout, and its bytes as
/// segments at offsets (what lies between them is zeros).
pub(crate) struct Served {
    len: u64,
    layout: Layout,
    segments: Vec<(u64, Bytes)>,
}

impl Served {
    /// An embedded store's message laid out flat: each frame at the next 64-byte boundary.
    pub(crate) fn flat(message: &Message) -> Served {
        let mut cursor = 0u64;
        let mut frames = Vec::with_capacity(message.frames.len());
        let mut segments = Vec::with_capacity(message.frames.len());
        for frame in &message.frames {
            let offset = cursor.next_multiple_of(ALIGN);
            frames.push((offset, frame.len() as u64));
            if !frame.is_empty() {
                segments.push((offset, frame.clone()));
            }
            cursor = offset + frame.len() as u64;
        }
        Served {
            len: cursor,
            layout: Layout {
                header: message.header.as_bytes().clone(),
                frames,
            },
            segments,
        }
    }

    /// An object that is one range of memory already (the daemon's).
    pub(crate) fn contiguous(layout: Layout, bytes: Bytes) -> Served {
        Served {
            len: bytes.len() as u64,
            layout,
            segments: vec![(0, bytes)],
        }
    }

    /// Bytes `offset..offset + len`, as views of the object's memory (and zeros between
    /// frames); copied into one buffer only when they would take more than a chunk's frames.
    fn chunk(&self, offset: u64, len: u64) -> Result<Vec<Bytes>, String> {
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= self.len && len <= MAX_CHUNK_BYTES)
            .ok_or_else(|| {
                format!(
                    "a chunk at {offset}+{len} of an object of {} bytes (chunks at most {MAX_CHUNK_BYTES})",
                    self.len
                )
            })?;
        let mut pieces = Vec::new();
        let zeros = |pieces: &mut Vec<Bytes>, mut n: u64| {
            while n > 0 {
                let take = n.min(ZEROS.len() as u64);
                pieces.push(Bytes::from_static(&ZEROS[..take as usize]));
                n -= take;
            }
        };
        let mut at = offset;
        let first = self
            .segments
            .partition_point(|(start, bytes)| start + bytes.len() as u64 <= offset);
        for (start, bytes) in &self.segments[first..] {
            if at >= end || *start >= end {
                break;
            }
            if *start > at {
                zeros(&mut pieces, start - at);
                at = *start;
            }
            let to = (start + bytes.len() as u64).min(end);
            pieces.push(bytes.slice((at - start) as usize..(to - start) as usize));
            at = to;
        }
        zeros(&mut pieces, end - at);
        if pieces.len() <= MAX_CHUNK_FRAMES {
            return Ok(pieces);
        }
        let mut joined = Vec::new();
        joined
            .try_reserve_exact(len as usize)
            .map_err(|_| format!("no memory for a chunk of {len} bytes"))?;
        for piece in &pieces {
            joined.extend_from_slice(piece);
        }
        Ok(vec![Bytes::from(joined)])
    }
}

/// Where a serving store finds the objects peers ask for.
pub(crate) trait Source: Send + Sync + 'static {
    /// Object `id`, kept alive (pinned) as long as the result is.
    fn serve(&self, id: &ObjectId) -> Result<Served, PeerRefusal>;
}

/// A store a pull writes into.
pub(crate) trait Sink {
    /// The object being written; dropping it unsealed aborts it.
    type Target<'a>: Target
    where
        Self: 'a;
    /// Whether a sealed object `id` is here already (then a pull is a no-op).
    fn has(&self, id: &ObjectId) -> bool;
    /// Reserves the whole object before any chunk is asked for; `None` when it is sealed here
    /// already.
    fn reserve(
        &self,
        peer: &str,
        id: ObjectId,
        len: u64,
        layout: &Layout,
    ) -> Result<Option<Self::Target<'_>>, PullError>;
}

/// An object being pulled into a store, reserved for its whole length.
pub(crate) trait Target: Send {
    /// Writes `bytes` at `offset`, which the pull checked lies inside the object.
    fn write(&mut self, offset: u64, bytes: &[u8]);
    /// Seals the object with the layout it was reserved with.
    fn seal(self) -> Result<(), PullError>;
}

/// A running peer server (from [`Store::serve_peers`]): serves pulls from other stores until
/// [`stop`](PeerServer::stop)ped or dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = std::sync::Arc::new(pontoon_store::Store::new(Default::default()));
/// let server = store.serve_peers(&"tcp://127.0.0.1:0".parse()?).await?;
/// assert!(server.address().to_string().starts_with("tcp://127.0.0.1:"));
/// server.stop().await;
/// # Ok(())
/// # }
/// ```
pub struct PeerServer {
    address: Address,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PeerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl PeerServer {
    /// The address it listens on (with the port picked, for `tcp://host:0`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = std::sync::Arc::new(pontoon_store::Store::new(Default::default()));
    /// let server = store.serve_peers(&"inproc://doc-peer-address".parse()?).await?;
    /// assert_eq!(server.address().to_string(), "inproc://doc-peer-address");
    /// # Ok(())
    /// # }
    /// ```
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Stops listening and closes every peer connection; returns once the serving task is gone
    /// (and with it the listener, so the port is free again).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = std::sync::Arc::new(pontoon_store::Store::new(Default::default()));
    /// let server = store.serve_peers(&"inproc://doc-peer-stop".parse()?).await?;
    /// server.stop().await;
    /// let again = store.serve_peers(&"inproc://doc-peer-stop".parse()?).await?;
    /// # drop(again);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the server is stopped at the first poll; a dropped future only skips
    /// waiting for the task to finish.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The transport settings of both ends of a peer connection: the peer protocol's limits.
fn peer_config(identity: String, options: Option<&PullOptions>) -> Config {
    let mut config = Config::new(identity);
    config.limits = peer_protocol::limits();
    if let Some(options) = options {
        config.connect_timeout = options.connect_timeout;
        config.handshake_timeout = options.connect_timeout;
    }
    config
}

/// Listens at `address` and serves `source`'s objects to every peer that connects, each
/// connection in a task of its own.
pub(crate) async fn serve(
    source: Arc<dyn Source>,
    address: &Address,
    identity: String,
) -> Result<PeerServer, TransportError> {
    let mut listener = pontoon_transport::listen(address, peer_config(identity, None)).await?;
    let address = listener.address().clone();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let incoming = tokio::select! {
                incoming = listener.accept() => incoming,
                Some(_) = connections.join_next() => continue,
            };
            let incoming = match incoming {
                Ok(incoming) => incoming,
                Err(e) => {
                    tracing::error!("the peer listener failed, no longer serving peers: {e}");
                    return;
                }
            };
            if connections.len() >= MAX_PEER_CONNECTIONS {
                tracing::warn!(
                    "refused peer {}: {MAX_PEER_CONNECTIONS} peers are connected already",
                    incoming.remote_address()
                );
                continue;
            }
            let source = source.clone();
            connections.spawn(async move {
                let remote = incoming.remote_address().to_string();
                match incoming.handshake().await {
                    Ok(comm) => {
                        if let Err(reason) = serve_connection(&*source, comm).await {
                            tracing::warn!("peer {remote}: {reason}");
                        }
                    }
                    Err(e) => tracing::warn!("peer {remote}: handshake failed: {e}"),
                }
            });
        }
    });
    Ok(PeerServer {
        address,
        task: Some(task),
    })
}

/// Answers one peer's requests in order until it closes; a malformed request is answered with
/// a refusal and ends the connection (never the server).
async fn serve_connection(source: &dyn Source, mut comm: Comm) -> Result<(), String> {
    let mut open: HashMap<ObjectId, Served> = HashMap::new();
    loop {
        let message = match comm.recv().await {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("receiving: {e}")),
        };
        let (reply, fatal) = match peer_protocol::decode_request(&message) {
            Err(e) => (refused(format!("a malformed request: {e}")), true),
            Ok(PeerRequest::Pull { version, id }) => {
                if version != PEER_PROTOCOL_VERSION {
                    let why = format!(
                        "peer protocol version {version}, this store speaks {PEER_PROTOCOL_VERSION}"
                    );
                    (refused(why), true)
                } else if open.len() >= MAX_OPEN_PER_CONNECTION && !open.contains_key(&id) {
                    let why = format!(
                        "more than {MAX_OPEN_PER_CONNECTION} objects pulled on one connection"
                    );
                    (refused(why), false)
                } else {
                    match source.serve(&id) {
                        Ok(served) => {
                            let reply = PeerReply::Object {
                                id,
                                len: served.len,
                                layout: served.layout.clone(),
                            };
                            open.insert(id, served);
                            (reply, false)
                        }
                        Err(refusal) => (PeerReply::Error(refusal), false),
                    }
                }
            }
            Ok(PeerRequest::Chunk { id, offset, len }) => match open.get(&id) {
                None => (
                    refused(format!("a chunk of {id}, not pulled on this connection")),
                    true,
                ),
                Some(served) => match served.chunk(offset, len) {
                    Ok(frames) => (PeerReply::Chunk { id, offset, frames }, false),
                    Err(why) => (refused(why), true),
                },
            },
        };
        if let Err(e) = comm.send(&reply.to_message()).await {
            return Err(format!("sending: {e}"));
        }
        if fatal {
            return Err("it sent a bad request; closed".to_owned());
        }
    }
}

fn refused(reason: String) -> PeerReply {
    PeerReply::Error(PeerRefusal::Refused { reason })
}

/// Pulls object `id` from the store serving peers at `peer` into `sink`: a no-op when it is
/// there already. The local create is reserved whole before the first chunk is asked for, and
/// aborted (dropped) on every error and on cancellation. A task of its own reads the socket
/// while this one copies chunks into the object, so the two overlap.
pub(crate) async fn pull_into<S: Sink>(
    sink: &S,
    id: &ObjectId,
    peer: &Address,
    options: &PullOptions,
    identity: String,
) -> Result<(), PullError> {
    if sink.has(id) {
        return Ok(());
    }
    let transport = |source| PullError::Transport {
        peer: peer.to_string(),
        source,
    };
    let comm = pontoon_transport::connect(peer, peer_config(identity, Some(options)))
        .await
        .map_err(transport)?;
    let (mut send, recv) = comm.split();
    let mut replies = Replies::start(recv);
    let mut pull = Pull::new(peer.to_string(), *id, options);
    send.send(&pull.first().to_message())
        .await
        .map_err(transport)?;
    let reply = replies.next(&pull, options).await?;
    let (len, layout) = pull.described(reply)?;
    let Some(mut target) = sink.reserve(pull.peer(), *id, len, &layout)? else {
        return Ok(());
    };
    while !pull.is_complete() {
        let mut asked = false;
        while let Some(request) = pull.next_request() {
            send.feed(&request.to_message()).await.map_err(transport)?;
            asked = true;
        }
        if asked {
            send.flush().await.map_err(transport)?;
        }
        let reply = replies.next(&pull, options).await?;
        let (offset, frames) = pull.chunk(reply)?;
        let mut at = offset;
        for frame in &frames {
            target.write(at, frame);
            at += frame.len() as u64;
        }
    }
    target.seal()?;
    let _ = send.close().await;
    Ok(())
}

/// The peer's messages, read by a task of its own (aborted when this is dropped) and handed
/// over one at a time: the reader runs at most one message ahead of the copying, so few of
/// the connection's receive buffers are in use at once and they stay warm.
struct Replies {
    rx: tokio::sync::mpsc::Receiver<Result<Option<Message>, TransportError>>,
    reader: JoinHandle<()>,
}

impl Drop for Replies {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Replies {
    fn start(mut recv: pontoon_transport::RecvHalf) -> Replies {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let reader = tokio::spawn(async move {
            loop {
                let message = recv.recv().await;
                let end = !matches!(message, Ok(Some(_)));
                if tx.send(message).await.is_err() || end {
                    return;
                }
            }
        });
        Replies { rx, reader }
    }

    /// The peer's next reply, decoded, within the reply timeout.
    async fn next(&mut self, pull: &Pull, options: &PullOptions) -> Result<PeerReply, PullError> {
        let peer = || pull.peer().to_owned();
        let message = match tokio::time::timeout(options.reply_timeout, self.rx.recv()).await {
            Err(_) => {
                return Err(PullError::Timeout {
                    peer: peer(),
                    id: pull.id(),
                    seconds: options.reply_timeout.as_secs_f64(),
                });
            }
            Ok(Some(Ok(Some(message)))) => message,
            Ok(None | Some(Ok(None)) | Some(Err(TransportError::ClosedByPeer { .. }))) => {
                let (received, len) = pull.progress();
                return Err(PullError::Closed {
                    peer: peer(),
                    id: pull.id(),
                    received,
                    len,
                });
            }
            Ok(Some(Err(source))) => {
                return Err(PullError::Transport {
                    peer: peer(),
                    source,
                });
            }
        };
        peer_protocol::decode_reply(&message).map_err(|source| PullError::Protocol {
            peer: peer(),
            source,
        })
    }
}

impl Source for Store {
    fn serve(&self, id: &ObjectId) -> Result<Served, PeerRefusal> {
        match self.get_raw(id) {
            // The message's frames keep its memory alive for as long as it is served, even if
            // the object is deleted meanwhile.
            Ok(message) => Ok(Served::flat(&message)),
            Err(ObjectError::NotSealed { id }) => Err(PeerRefusal::NotSealed { id }),
            Err(_) => Err(PeerRefusal::Unknown { id: *id }),
        }
    }
}

/// An object being pulled into an embedded store: reserved in its table, written into a block
/// of its own, sealed as views of that block.
pub(crate) struct EmbeddedTarget<'a> {
    store: &'a Store,
    id: ObjectId,
    header: Header,
    frames: Vec<(u64, u64)>,
    buffer: PulledBuffer,
    sealed: bool,
}

impl Sink for Store {
    type Target<'a> = EmbeddedTarget<'a>;

    fn has(&self, id: &ObjectId) -> bool {
        self.contains(id)
    }

    fn reserve(
        &self,
        peer: &str,
        id: ObjectId,
        len: u64,
        layout: &Layout,
    ) -> Result<Option<EmbeddedTarget<'_>>, PullError> {
        // The header comes from the peer: it must be MessagePack before it is stored.
        let header = Header::from_msgpack(layout.header.clone()).map_err(|e| PullError::Lying {
            peer: peer.to_owned(),
            id,
            reason: format!("its header is not MessagePack: {e}"),
        })?;
        let bytes = len + layout.header.len() as u64;
        match self.reserve_foreign(id, bytes) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(ObjectError::NotSealed { id }) => return Err(PullError::InProgress { id }),
            Err(e) => return Err(PullError::Local(e)),
        }
        let Some(buffer) = self.pulled_pool().take(len) else {
            self.forget(&id);
            return Err(PullError::Local(ObjectError::OutOfMemory { bytes: len }));
        };
        Ok(Some(EmbeddedTarget {
            store: self,
            id,
            header,
            frames: layout.frames.clone(),
            buffer,
            sealed: false,
        }))
    }
}

impl Target for EmbeddedTarget<'_> {
    fn write(&mut self, offset: u64, bytes: &[u8]) {
        let start = offset as usize;
        self.buffer.as_mut_slice()[start..start + bytes.len()].copy_from_slice(bytes);
    }

    fn seal(mut self) -> Result<(), PullError> {
        let buffer = std::mem::replace(&mut self.buffer, PulledBuffer::empty());
        let all = Bytes::from_owner(buffer);
        // The pull checked every frame lies inside the object.
        let frames = self
            .frames
            .iter()
            .map(|&(offset, len)| all.slice(offset as usize..(offset + len) as usize))
            .collect();
        let message = Message::new(self.header.clone(), frames);
        self.store.seal_foreign(self.id, message);
        self.sealed = true;
        Ok(())
    }
}

impl Drop for EmbeddedTarget<'_> {
    fn drop(&mut self) {
        if !self.sealed {
            self.store.forget(&self.id);
        }
    }
}

impl Store {
    /// Serves this store's objects to peer stores at `address` (`tcp://host:port`, port 0
    /// picks one; `unix://`, `inproc://`), each connection in a task of its own (at most 256 at
    /// once): a peer asks for an object by id and gets its bytes in the chunks it asks for. An
    /// object is kept alive for a peer until its connection closes, even if deleted meanwhile.
    /// A peer that sends a malformed request loses its connection; the others are served on.
    ///
    /// There is no authentication: whoever reaches the address and knows an object's id can
    /// read the object. Listen on a network whose peers are trusted with every object.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// let owner = Arc::new(pontoon_store::Store::new(Default::default()));
    /// let server = owner.serve_peers(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let id = owner.put_raw(pontoon_wire::Message::new(
    ///     pontoon_wire::Header::empty(),
    ///     vec![bytes::Bytes::from_static(b"far away")],
    /// ))?;
    /// let here = pontoon_store::Store::new(Default::default());
    /// here.pull(&id, server.address()).await?;
    /// assert_eq!(&here.get_raw(&id)?.frames[0][..], b"far away");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a future dropped before it completes leaves nothing listening.
    pub async fn serve_peers(
        self: &Arc<Store>,
        address: &Address,
    ) -> Result<PeerServer, TransportError> {
        let identity = format!("pontoon-store-{:016x}", self.id().0);
        serve(self.clone(), address, identity).await
    }

    /// Pulls object `id` from the store serving peers at `peer` and keeps a sealed local copy
    /// under the same id (evictable like any other object), with the default [`PullOptions`].
    /// A pull of an object already here is a no-op. See [`Store::pull_with`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// let owner = Arc::new(pontoon_store::Store::new(Default::default()));
    /// let server = owner.serve_peers(&"inproc://doc-pull".parse()?).await?;
    /// let registry = pontoon_family::Registry::new();
    /// let id = owner.put(&registry, &vec![1u32, 2, 3])?;
    /// let here = pontoon_store::Store::new(Default::default());
    /// here.pull(&id, server.address()).await?;
    /// here.pull(&id, server.address()).await?; // here already: nothing to do
    /// assert_eq!(here.get::<Vec<u32>>(&registry, &id)?, vec![1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a pull dropped before it completes aborts its local create; nothing is left
    /// of it.
    pub async fn pull(&self, id: &ObjectId, peer: &Address) -> Result<(), PullError> {
        self.pull_with(id, peer, &PullOptions::default()).await
    }

    /// [`Store::pull`] with `options`: chunks of [`PullOptions::chunk_bytes`], at most
    /// [`PullOptions::max_in_flight_bytes`] asked for at once. The whole object is reserved
    /// before the first chunk is asked for: one that does not fit is
    /// [`PullError::Local`]`(`[`ObjectError::StoreFull`]`)`. Every chunk must be one asked for
    /// and lie inside the object, or the pull fails ([`PullError::Lying`]); a failed pull
    /// leaves nothing behind. A pulled object's bytes live in a block of their own; once the
    /// object and every view of it are dropped, the store keeps the block (up to 256 MiB of
    /// such blocks in all) for the next pulls, whose writes then land in warm memory.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// let owner = Arc::new(pontoon_store::Store::new(Default::default()));
    /// let server = owner.serve_peers(&"inproc://doc-pull-with".parse()?).await?;
    /// let id = owner.put_raw(pontoon_wire::Message::new(
    ///     pontoon_wire::Header::empty(),
    ///     vec![bytes::Bytes::from(vec![9u8; 100_000])],
    /// ))?;
    /// let mut options = pontoon_store::PullOptions::default();
    /// options.chunk_bytes = 16 << 10;
    /// let here = pontoon_store::Store::new(Default::default());
    /// here.pull_with(&id, server.address(), &options).await?;
    /// assert_eq!(here.get_raw(&id)?.frames[0].len(), 100_000);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Store::pull`].
    pub async fn pull_with(
        &self,
        id: &ObjectId,
        peer: &Address,
        options: &PullOptions,
    ) -> Result<(), PullError> {
        let identity = format!("pontoon-store-{:016x}", self.id().0);
        pull_into(self, id, peer, options, identity).await
    }

    /// Object `id`: from this store if it is here, else pulled from the store serving peers at
    /// `peer` first (and kept here).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// let owner = Arc::new(pontoon_store::Store::new(Default::default()));
    /// let server = owner.serve_peers(&"inproc://doc-get-from".parse()?).await?;
    /// let id = owner.put_raw(pontoon_wire::Message::new(
    ///     pontoon_wire::Header::empty(),
    ///     vec![bytes::Bytes::from_static(b"x")],
    /// ))?;
    /// let here = pontoon_store::Store::new(Default::default());
    /// assert_eq!(&here.get_from(&id, server.address()).await?.frames[0][..], b"x");
    /// assert!(here.contains(&id));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Store::pull`].
    pub async fn get_from(&self, id: &ObjectId, peer: &Address) -> Result<Message, PullError> {
        if let Ok(message) = self.get_raw(id) {
            return Ok(message);
        }
        self.pull(id, peer).await?;
        self.get_raw(id).map_err(PullError::Local)
    }
}
