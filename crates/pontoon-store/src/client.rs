//! A client of the store daemon: connects, receives the store memory's descriptor, maps it
//! read-only, and turns replies into views of that mapping. A reader task routes replies to
//! callers; requests are written whole from the caller's thread ([`Outgoing`]), so no cancelled
//! call can cut a request in two.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pontoon_family::Registry;
use pontoon_wire::{Decoder, EncodeOptions, Encoder, Header, Message};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use crate::alloc::ALIGN;
use crate::arena::Mapping;
use crate::error::{ClientError, GetError, ObjectError, PutError};
use crate::object::{Pin, View};
use crate::outgoing::Outgoing;
use crate::protocol::{self, Layout, PROTOCOL_VERSION, ProtocolError, Request, Response};
use crate::{ObjectId, StoreId, StoreStats, fdpass};

pub(crate) struct Inner {
    store: StoreId,
    fd: OwnedFd,
    arena_len: u64,
    read_only: Arc<Mapping>,
    writable: Mutex<Option<Arc<Mapping>>>,
    out: Outgoing,
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    /// Descriptors that came with replies (spill files), by request number, until their
    /// caller takes them.
    fds: Mutex<HashMap<u64, OwnedFd>>,
    /// One read-only map per spill file, shared by the objects got from it while any lives.
    spill_maps: Mutex<HashMap<u64, Weak<Mapping>>>,
    next_rid: AtomicU64,
    encoder: Encoder,
}

/// Most descriptors a client holds that came with replies nobody has taken yet: a daemon that
/// sends more is not speaking this protocol.
const MAX_QUEUED_FDS: usize = 64;

impl Inner {
    fn pending(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<Response>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fds(&self) -> MutexGuard<'_, HashMap<u64, OwnedFd>> {
        self.fds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spill_maps(&self) -> MutexGuard<'_, HashMap<u64, Weak<Mapping>>> {
        self.spill_maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a request whose reply nobody waits for (releases, aborts from `Drop`).
    pub(crate) fn send_only(&self, request: &Request) {
        let rid = self.next_rid.fetch_add(1, Ordering::Relaxed);
        if let Ok(encoded) = self.encoder.encode(&request.to_message(rid)) {
            // A closed connection has released everything on the daemon's side already.
            let _ = self.out.send(encoded.to_bytes(), usize::MAX);
        }
    }

    /// What a reply nobody waits for leaves behind (its caller was cancelled) is undone: a pin
    /// released, a create aborted.
    fn orphan(&self, response: Response) {
        match response {
            Response::Object { id, .. } | Response::Spilled { id, .. } => {
                self.send_only(&Request::Release { id })
            }
            Response::Created { id, .. }
            | Response::Taken { id, .. }
            | Response::CreatedOnDisk { id, .. } => self.send_only(&Request::Abort { id }),
            _ => {}
        }
    }
}

/// A connection to a store daemon ([`Daemon`](crate::Daemon), `pontoon store serve`). Cheap to
/// clone; clones share the connection. Objects it gets are views of the daemon's memory, mapped
/// read-only: nothing is copied, and each pins its object until the last view of it is dropped.
///
/// Every method needs a tokio runtime (the connection's tasks run on it). See
/// [`Daemon`](crate::Daemon) for a runnable example.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("store", &self.inner.store)
            .field("arena_len", &self.inner.arena_len)
            .finish()
    }
}

/// Drops a waiting caller's slot when its future is dropped, undoing a reply that already came.
struct Waiting<'a> {
    inner: &'a Inner,
    rid: u64,
    rx: Option<oneshot::Receiver<Response>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.inner.pending().remove(&self.rid);
        self.inner.fds().remove(&self.rid);
        if let Some(mut rx) = self.rx.take()
            && let Ok(response) = rx.try_recv()
        {
            self.inner.orphan(response);
        }
    }
}

impl Client {
    /// Connects to the daemon at `socket`, receives its memory's descriptor (exactly one, or
    /// the connection is refused) and maps the memory read-only.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future drops the half-made connection, and the daemon forgets
    /// it.
    pub async fn connect(socket: impl AsRef<Path>) -> Result<Client, ClientError> {
        let path = socket.as_ref();
        let mut stream =
            UnixStream::connect(path)
                .await
                .map_err(|source| ClientError::Connect {
                    path: path.to_owned(),
                    source,
                })?;
        let encoder = Encoder::new(EncodeOptions::default());
        let mut hello = BytesMut::new();
        hello.extend_from_slice(&pontoon_wire::preamble());
        let message = Request::Hello {
            version: PROTOCOL_VERSION,
        }
        .to_message(0);
        hello.extend_from_slice(
            &encoder
                .encode(&message)
                .map_err(|_| ClientError::Closed)?
                .to_bytes(),
        );
        // A daemon that refuses this client (past its `max_clients`) closes the socket at once.
        let closed = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                ClientError::Closed
            }
            _ => ClientError::Io(e),
        };
        stream.write_all(&hello).await.map_err(closed)?;

        // Read with recvmsg until the hello is whole, keeping every descriptor that came.
        let mut decoder = Decoder::with_limits(protocol::limits());
        let mut input = BytesMut::new();
        let mut fds: Vec<OwnedFd> = Vec::new();
        let reply = loop {
            if let Some(message) = decoder
                .decode(&mut input)
                .map_err(|e| ClientError::Protocol(ProtocolError::Wire(e)))?
            {
                break message;
            }
            let mut chunk = [0u8; 4096];
            let (n, got) = fdpass::recv_with_fds(&stream, &mut chunk)
                .await
                .map_err(closed)?;
            fds.extend(got);
            if fds.len() > fdpass::MAX_FDS {
                return Err(ClientError::Descriptors {
                    got: fds.len(),
                    want: 1,
                });
            }
            if n == 0 {
                return Err(ClientError::Closed);
            }
            input.extend_from_slice(&chunk[..n]);
        };
        let (_, response) = protocol::decode_response(&reply).map_err(ClientError::Protocol)?;
        let Response::Hello {
            version,
            store,
            arena_len,
            fds: promised,
        } = response
        else {
            return Err(ClientError::Protocol(ProtocolError::Malformed {
                offset: 0,
                what: "a hello",
            }));
        };
        if version != PROTOCOL_VERSION {
            return Err(ClientError::Version {
                daemon: version,
                client: PROTOCOL_VERSION,
            });
        }
        if promised != 1 || fds.len() != 1 {
            return Err(ClientError::Descriptors {
                got: fds.len(),
                want: 1,
            });
        }
        let fd = fds
            .pop()
            .ok_or(ClientError::Descriptors { got: 0, want: 1 })?;
        // A map past the end of the file would SIGBUS on first touch: the memory must really
        // be as long as the daemon says before anything maps it.
        let file_len = rustix::fs::fstat(&fd)
            .map_err(|e| ClientError::Map(e.into()))?
            .st_size;
        if u64::try_from(file_len).unwrap_or(0) < arena_len {
            return Err(ClientError::Map(std::io::Error::other(format!(
                "the store memory holds {file_len} bytes, not the {arena_len} the daemon says"
            ))));
        }
        let read_only =
            Arc::new(Mapping::map(fd.as_fd(), arena_len, false, false).map_err(ClientError::Map)?);

        let (read, write) = stream.into_split();
        let (out, drain) = Outgoing::new(write);
        tokio::spawn(drain);
        let inner = Arc::new(Inner {
            store,
            fd,
            arena_len,
            read_only,
            writable: Mutex::new(None),
            out,
            pending: Mutex::new(HashMap::new()),
            fds: Mutex::new(HashMap::new()),
            spill_maps: Mutex::new(HashMap::new()),
            next_rid: AtomicU64::new(1),
            encoder,
        });
        tokio::spawn(read_replies(Arc::downgrade(&inner), read, decoder, input));
        Ok(Client { inner })
    }

    /// The store's id.
    pub fn store_id(&self) -> StoreId {
        self.inner.store
    }

    /// Whether `bytes` lie in the store's shared memory as this process maps it: true for every
    /// frame [`get_raw`](Client::get_raw) returns, which is how a caller (or a test) can see
    /// that nothing was copied.
    pub fn is_shared(&self, bytes: &[u8]) -> bool {
        bytes.is_empty()
            || self.inner.read_only.holds(bytes.as_ptr())
            || self
                .inner
                .spill_maps()
                .values()
                .filter_map(Weak::upgrade)
                .any(|map| map.holds(bytes.as_ptr()))
    }

    async fn call(&self, request: Request) -> Result<Response, ClientError> {
        self.call_with_fd(request)
            .await
            .map(|(response, _)| response)
    }

    /// A call whose reply may come with a descriptor (a spill file's).
    async fn call_with_fd(
        &self,
        request: Request,
    ) -> Result<(Response, Option<OwnedFd>), ClientError> {
        let inner = &*self.inner;
        let rid = inner.next_rid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        inner.pending().insert(rid, tx);
        let mut waiting = Waiting {
            inner,
            rid,
            rx: Some(rx),
        };
        let encoded = inner
            .encoder
            .encode(&request.to_message(rid))
            .map_err(|_| ClientError::Closed)?;
        inner
            .out
            .send(encoded.to_bytes(), usize::MAX)
            .map_err(|_| ClientError::Closed)?;
        let rx = waiting.rx.as_mut().ok_or(ClientError::Closed)?;
        let response = rx.await.map_err(|_| ClientError::Closed)?;
        waiting.rx = None;
        let fd = inner.fds().remove(&rid);
        match response {
            Response::Error(error) => Err(ClientError::Refused(error)),
            response => Ok((response, fd)),
        }
    }

    /// The read-only map of spill file `file` (numbered by the daemon), covering at least
    /// `need` bytes: the one objects already got from it share, or a new one of `fd`.
    fn spill_map(&self, file: u64, fd: &OwnedFd, need: u64) -> Result<Arc<Mapping>, ClientError> {
        let mut maps = self.inner.spill_maps();
        if let Some(map) = maps.get(&file).and_then(Weak::upgrade)
            && map.len() as u64 >= need
        {
            return Ok(map);
        }
        // A map past the end of the file would SIGBUS on first touch.
        let size = rustix::fs::fstat(fd)
            .map_err(|e| ClientError::Map(e.into()))?
            .st_size;
        let size = u64::try_from(size).unwrap_or(0);
        if size < need || need == 0 {
            return Err(ClientError::Protocol(ProtocolError::Malformed {
                offset: 0,
                what: "an object inside its spill file",
            }));
        }
        let map = Arc::new(Mapping::map(fd.as_fd(), size, false, false).map_err(ClientError::Map)?);
        maps.retain(|_, map| map.strong_count() > 0);
        maps.insert(file, Arc::downgrade(&map));
        Ok(map)
    }

    fn unexpected() -> ClientError {
        ClientError::Protocol(ProtocolError::Malformed {
            offset: 0,
            what: "the reply that answers this request",
        })
    }

    fn writable(&self) -> Result<Arc<Mapping>, ClientError> {
        let mut slot = self
            .inner
            .writable
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(map) = &*slot {
            return Ok(map.clone());
        }
        let map = Arc::new(
            Mapping::map(self.inner.fd.as_fd(), self.inner.arena_len, true, true)
                .map_err(ClientError::Map)?,
        );
        *slot = Some(map.clone());
        Ok(map)
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<(), ClientError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.inner.arena_len => Ok(()),
            _ => Err(ClientError::Protocol(ProtocolError::Malformed {
                offset: 0,
                what: "an object inside the store memory",
            })),
        }
    }

    fn creating(
        &self,
        id: ObjectId,
        offset: u64,
        len: u64,
        layout: Option<Layout>,
        copied: bool,
    ) -> Result<ClientCreating, ClientError> {
        let creating = |map| ClientCreating {
            client: self.clone(),
            id,
            map,
            offset: offset as usize,
            len: len as usize,
            layout,
            copied,
            done: false,
        };
        let map = match self.check_range(offset, len).and_then(|()| self.writable()) {
            Ok(map) => map,
            Err(e) => {
                self.inner.send_only(&Request::Abort { id });
                return Err(e);
            }
        };
        Ok(creating(map))
    }

    /// Reserves `size` bytes of store memory for a new object, writable by this process until
    /// [`ClientCreating::seal`]; a producer builds its data there, with no copy.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a create whose reply comes after the future was dropped is aborted.
    pub async fn create(&self, size: u64) -> Result<ClientCreating, ClientError> {
        match self.call_with_fd(Request::Create { size }).await? {
            (Response::Created { id, offset, len }, _) => {
                self.creating(id, offset, len, None, false)
            }
            // Larger than the daemon's free memory: a file of its own, mapped writable here.
            (Response::CreatedOnDisk { id, len, .. }, Some(fd)) => {
                let map = self.disk_map(&fd, len).inspect_err(|_| {
                    self.inner.send_only(&Request::Abort { id });
                })?;
                Ok(ClientCreating {
                    client: self.clone(),
                    id,
                    map,
                    offset: 0,
                    len: len as usize,
                    layout: None,
                    copied: false,
                    done: false,
                })
            }
            (Response::CreatedOnDisk { id, .. }, None) => {
                self.inner.send_only(&Request::Abort { id });
                Err(ClientError::Descriptors { got: 0, want: 1 })
            }
            _ => Err(Client::unexpected()),
        }
    }

    /// A writable map of the file an object is created in, checked to be `len` bytes long.
    fn disk_map(&self, fd: &OwnedFd, len: u64) -> Result<Arc<Mapping>, ClientError> {
        let size = rustix::fs::fstat(fd)
            .map_err(|e| ClientError::Map(e.into()))?
            .st_size;
        if u64::try_from(size).unwrap_or(0) < len || len == 0 {
            return Err(ClientError::Protocol(ProtocolError::Malformed {
                offset: 0,
                what: "a file as long as the object created in it",
            }));
        }
        usize::try_from(len).map_err(|_| ClientError::Map(std::io::Error::other("too large")))?;
        Ok(Arc::new(
            Mapping::map(fd.as_fd(), len, true, false).map_err(ClientError::Map)?,
        ))
    }

    /// Stores a message: its frames are copied once, each to a 64-byte-aligned place in store
    /// memory, and the object is sealed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: an object left half-made by a dropped future is aborted, never sealed.
    pub async fn put_raw(&self, message: &Message) -> Result<ObjectId, ClientError> {
        let mut frames = Vec::with_capacity(message.frames.len());
        let mut end = 0u64;
        for frame in &message.frames {
            let offset = end.div_ceil(ALIGN) * ALIGN;
            frames.push((offset, frame.len() as u64));
            end = offset + frame.len() as u64;
        }
        let mut creating = self.create(end).await?;
        for (frame, &(offset, len)) in message.frames.iter().zip(&frames) {
            creating[offset as usize..(offset + len) as usize].copy_from_slice(frame);
        }
        creating.seal_with(message.header.clone(), frames).await
    }

    /// Serializes `value` through `registry` and stores it.
    ///
    /// # Cancel safety
    ///
    /// As [`put_raw`](Client::put_raw).
    pub async fn put<T: Serialize + std::any::Any>(
        &self,
        registry: &Registry,
        value: &T,
    ) -> Result<ObjectId, PutError> {
        let message = registry.serialize(value).map_err(PutError::Serialize)?;
        Ok(self.put_raw(&message).await?)
    }

    /// The sealed object `id`: its frames are views of the store's memory (no copy), and they
    /// pin the object until the last of them is dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a pin whose reply comes after the future was dropped is released.
    pub async fn get_raw(&self, id: &ObjectId) -> Result<Message, ClientError> {
        let (map, id, offset, len, layout, pin) =
            match self.call_with_fd(Request::Get { id: *id }).await? {
                (
                    Response::Object {
                        id,
                        offset,
                        len,
                        layout,
                    },
                    _,
                ) => {
                    let pin = Arc::new(Pin::new(self.inner.clone(), id));
                    self.check_range(offset, len)?;
                    (self.inner.read_only.clone(), id, offset, len, layout, pin)
                }
                // On disk: views of a read-only map of its file, which came with the reply.
                (
                    Response::Spilled {
                        id,
                        file,
                        offset,
                        len,
                        layout,
                    },
                    fd,
                ) => {
                    let pin = Arc::new(Pin::new(self.inner.clone(), id));
                    let fd = fd.ok_or(ClientError::Descriptors { got: 0, want: 1 })?;
                    let end = offset.checked_add(len).ok_or_else(Client::unexpected)?;
                    let map = self.spill_map(file, &fd, end.max(1))?;
                    (map, id, offset, len, layout, pin)
                }
                _ => return Err(Client::unexpected()),
            };
        layout.check(id, len).map_err(ClientError::Refused)?;
        let header = Header::from_msgpack(layout.header).map_err(|_| {
            ClientError::Protocol(ProtocolError::Malformed {
                offset: 0,
                what: "an object header",
            })
        })?;
        let frames = layout
            .frames
            .iter()
            .map(|&(at, frame_len)| {
                Bytes::from_owner(View::new(
                    map.clone(),
                    (offset + at) as usize,
                    frame_len as usize,
                    pin.clone(),
                ))
            })
            .collect();
        Ok(Message::new(header, frames))
    }

    /// Gets a value back through `registry`; arrays and `Buffer`s in it are views of the store's
    /// memory.
    ///
    /// # Cancel safety
    ///
    /// As [`get_raw`](Client::get_raw).
    pub async fn get<T: DeserializeOwned + std::any::Any>(
        &self,
        registry: &Registry,
        id: &ObjectId,
    ) -> Result<T, GetError> {
        let message = self.get_raw(id).await?;
        registry
            .deserialize(&message)
            .map_err(GetError::Deserialize)
    }

    /// Removes the sealed object `id` and hands its memory over writable: in place when no
    /// client pins it, otherwise a copy the daemon makes ([`ClientCreating::copied`] says
    /// which). Seal it again to store the changed object under a new id.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a take whose reply comes after the future was dropped is aborted (the
    /// object is then gone).
    pub async fn take(&self, id: &ObjectId) -> Result<ClientCreating, ClientError> {
        match self.call(Request::Take { id: *id }).await? {
            Response::Taken {
                id,
                offset,
                len,
                copied,
                layout,
            } => self.creating(id, offset, len, Some(layout), copied),
            _ => Err(Client::unexpected()),
        }
    }

    async fn done(&self, request: Request) -> Result<(), ClientError> {
        match self.call(request).await? {
            Response::Done => Ok(()),
            _ => Err(Client::unexpected()),
        }
    }

    /// Removes the sealed object `id`; views already handed out stay valid until dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, but the delete may have happened.
    pub async fn delete(&self, id: &ObjectId) -> Result<(), ClientError> {
        self.done(Request::Delete { id: *id }).await
    }

    /// Whether a sealed object `id` is in the store.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn contains(&self, id: &ObjectId) -> Result<bool, ClientError> {
        match self.call(Request::Contains { id: *id }).await? {
            Response::Bool(b) => Ok(b),
            _ => Err(Client::unexpected()),
        }
    }

    /// Waits until every object in `ids` is sealed, or `timeout` passes; says, for each,
    /// whether it is sealed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the daemon's answer is dropped.
    pub async fn wait(
        &self,
        ids: &[ObjectId],
        timeout: Duration,
    ) -> Result<Vec<bool>, ClientError> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        match self
            .call(Request::Wait {
                ids: ids.to_vec(),
                timeout_ms,
            })
            .await?
        {
            Response::Ready(ready) if ready.len() == ids.len() => Ok(ready),
            _ => Err(Client::unexpected()),
        }
    }

    /// Asks the daemon to pull object `id` from the store serving peers at `peer` (a
    /// pontoon-transport address such as `tcp://10.0.0.2:7000`) into its memory; returns once
    /// the object is sealed there, so a [`get_raw`](Client::get_raw) finds it. A pull of an
    /// object the daemon holds already is a no-op. A daemon that spills makes room for it as
    /// for a create (to a spill remote only when it runs on tokio's multi-threaded runtime, as
    /// `pontoon store serve` does). An object that still does not fit is
    /// [`ObjectError::StoreFull`](crate::ObjectError::StoreFull); every other failure [`ObjectError::PullFailed`](crate::ObjectError::PullFailed), with the
    /// reason, and nothing of it is left in the store.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe on this side (the answer is dropped), but the daemon goes on with the pull
    /// until this client disconnects; its disconnect aborts it.
    pub async fn pull(
        &self,
        id: &ObjectId,
        peer: &pontoon_transport::Address,
    ) -> Result<(), ClientError> {
        let peer = peer.to_string();
        // The daemon reads at most `MAX_REASON` bytes of address and drops a client that sends
        // more: refused here instead, with the connection kept.
        if peer.len() > crate::protocol::MAX_REASON {
            return Err(ClientError::Refused(ObjectError::PullFailed {
                id: *id,
                reason: format!(
                    "the peer address is {} bytes; the daemon reads at most {}",
                    peer.len(),
                    crate::protocol::MAX_REASON
                ),
            }));
        }
        self.done(Request::Pull { id: *id, peer }).await
    }

    /// The daemon's counters.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn stats(&self) -> Result<StoreStats, ClientError> {
        match self.call(Request::Stats).await? {
            Response::Stats(stats) => Ok(stats),
            _ => Err(Client::unexpected()),
        }
    }
}

async fn read_replies(
    inner: std::sync::Weak<Inner>,
    read: tokio::net::unix::OwnedReadHalf,
    mut decoder: Decoder,
    mut input: BytesMut,
) {
    // Replies about objects on disk carry their file's descriptor: read with recvmsg, and
    // give each such reply the next descriptor that came (they come in the replies' order).
    let mut fds: std::collections::VecDeque<OwnedFd> = std::collections::VecDeque::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let message = match decoder.decode(&mut input) {
            Ok(Some(message)) => message,
            Ok(None) => match fdpass::recv_with_fds(read.as_ref(), &mut chunk).await {
                Ok((n, got)) if n > 0 => {
                    fds.extend(got);
                    if fds.len() > MAX_QUEUED_FDS {
                        tracing::warn!(
                            "the store daemon sent more descriptors than replies that take them; closing"
                        );
                        break;
                    }
                    input.extend_from_slice(&chunk[..n]);
                    continue;
                }
                _ => break,
            },
            Err(e) => {
                tracing::warn!("the store daemon sent bytes that are not a reply ({e}); closing");
                break;
            }
        };
        let Some(inner) = inner.upgrade() else { break };
        let Ok((rid, response)) = protocol::decode_response(&message) else {
            tracing::warn!("the store daemon sent a malformed reply; closing");
            break;
        };
        let fd = if response.carries_fd() {
            let Some(fd) = fds.pop_front() else {
                tracing::warn!("the store daemon sent a reply without its descriptor; closing");
                inner.orphan(response);
                break;
            };
            Some(fd)
        } else {
            None
        };
        let waiter = inner.pending().remove(&rid);
        match waiter {
            Some(tx) => {
                if let Some(fd) = fd {
                    inner.fds().insert(rid, fd);
                }
                if let Err(response) = tx.send(response) {
                    inner.fds().remove(&rid);
                    inner.orphan(response);
                }
            }
            None => inner.orphan(response),
        }
    }
    // Every caller still waiting learns the connection is closed.
    if let Some(inner) = inner.upgrade() {
        inner.pending().clear();
    }
}

/// An object being created in the daemon's memory: writable here (`DerefMut<Target = [u8]>`),
/// 64-byte aligned, sealed in place. Dropping it unsealed aborts it.
pub struct ClientCreating {
    client: Client,
    id: ObjectId,
    map: Arc<Mapping>,
    offset: usize,
    len: usize,
    layout: Option<Layout>,
    copied: bool,
    done: bool,
}

impl std::fmt::Debug for ClientCreating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCreating")
            .field("id", &self.id)
            .field("len", &self.len)
            .finish()
    }
}

impl ClientCreating {
    /// The object's id (others may [`wait`](Client::wait) for it).
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// For a taken object: whether the daemon copied it (another client held a pin) rather
    /// than handing the memory over in place.
    pub fn copied(&self) -> bool {
        self.copied
    }

    /// For a taken object: the header and frame layout it was sealed with.
    pub fn layout(&self) -> Option<&Layout> {
        self.layout.as_ref()
    }

    /// Seals the object: the layout it was taken with, or else one frame of all its bytes and
    /// an empty header. Consumes the buffer, so nothing here writes it after the seal.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe in effect: if dropped, the object may or may not have been sealed.
    pub async fn seal(mut self) -> Result<ObjectId, ClientError> {
        let layout = self
            .layout
            .take()
            .unwrap_or_else(|| Layout::raw(self.len as u64));
        self.seal_layout(layout).await
    }

    /// Seals the object as a message: `header`, and frames at `(offset, len)` of the buffer.
    ///
    /// # Cancel safety
    ///
    /// As [`seal`](ClientCreating::seal).
    pub async fn seal_with(
        self,
        header: Header,
        frames: Vec<(u64, u64)>,
    ) -> Result<ObjectId, ClientError> {
        self.seal_layout(Layout {
            header: header.into_bytes(),
            frames,
        })
        .await
    }

    async fn seal_layout(mut self, layout: Layout) -> Result<ObjectId, ClientError> {
        layout
            .check(self.id, self.len as u64)
            .map_err(ClientError::Refused)?;
        self.done = true;
        let id = self.id;
        match self.client.call(Request::Seal { id, layout }).await? {
            Response::Done => Ok(id),
            _ => Err(Client::unexpected()),
        }
    }

    /// Gives the object up (dropping it unsealed does the same, without waiting).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the abort is sent either way.
    pub async fn abort(mut self) -> Result<(), ClientError> {
        self.done = true;
        let id = self.id;
        self.client.done(Request::Abort { id }).await
    }
}

impl std::ops::Deref for ClientCreating {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `offset..offset+len` was checked to lie inside the mapping, which `self.map`
        // keeps alive; the daemon's allocator gives this range to this create alone until it is
        // sealed or aborted, which consumes `self`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.offset), self.len) }
    }
}

impl std::ops::DerefMut for ClientCreating {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the range.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr().add(self.offset), self.len) }
    }
}

impl Drop for ClientCreating {
    fn drop(&mut self) {
        if !self.done {
            self.client.inner.send_only(&Request::Abort { id: self.id });
        }
    }
}

impl From<ObjectError> for GetError {
    fn from(error: ObjectError) -> GetError {
        GetError::Store(error)
    }
}
