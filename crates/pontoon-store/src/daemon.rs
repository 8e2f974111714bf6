//! The store daemon: a Unix socket, one task per client, the protocol's requests applied to the
//! shared [`State`](crate::state::State), replies written from the task that made them and
//! queued per client (with a byte cap) only when its socket is full.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pontoon_wire::{Decoder, EncodeOptions, Encoder, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

use crate::arena::{Arena, Backing, Mapping};
use crate::error::{ObjectError, ServeError};
use crate::outgoing::{Outgoing, SendError};
use crate::protocol::{self, PROTOCOL_VERSION, Request, Response};
use crate::state::{ClientId, State};
use crate::waits::Waits;
use crate::{StoreId, StoreStats, fdpass};

/// How a store daemon is set up.
///
/// ```
/// let options = pontoon_store::ServeOptions::new("/tmp/store.sock", 64 << 20);
/// assert_eq!(options.capacity, 64 << 20);
/// assert_eq!(options.backing, pontoon_store::Backing::Memfd);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// The Unix socket to listen on (a stale socket file there is replaced).
    pub socket: PathBuf,
    /// Bytes of shared memory, reserved at start.
    pub capacity: u64,
    /// Where objects spill to (default `None`: no spilling, a full store is
    /// [`ObjectError::StoreFull`](crate::ObjectError::StoreFull)); also where the memory falls
    /// back to when a memfd cannot be reserved. Locked for this daemon; spill files an earlier
    /// run left there are removed at start. See `docs/store-format.md`, Spilling.
    pub spill_dir: Option<PathBuf>,
    /// Where objects spill to instead of a directory: a remote (`s3://bucket/prefix`, or
    /// `file:///dir`; pontoon-store's feature `remote`), default `None`. Objects are fused
    /// into remote objects of up to `spill_file_bytes`, the remote's I/O runs with the state's
    /// lock released, a get of an object on the remote reads it into memory of the client's
    /// own, and nothing is created on the remote: a create (or a pull from a peer) that does
    /// not fit after spilling is [`ObjectError::StoreFull`](crate::ObjectError::StoreFull).
    /// A pull spills to the remote only when the daemon runs on tokio's multi-threaded runtime. Spill objects an earlier run
    /// left under the prefix are removed at start. Setting both this and `spill_dir` is an
    /// error. See `docs/store-format.md`, Spilling to a remote.
    pub spill_remote: Option<crate::SpillRemote>,
    /// Objects are fused into spill files (or remote objects) of up to this many bytes
    /// (default 100 MiB).
    pub spill_file_bytes: u64,
    /// Where the memory lives.
    pub backing: Backing,
    /// Percent of `capacity` above which unpinned objects spill (with a `spill_dir`).
    pub high_water_percent: u8,
    /// Most reply bytes queued for one client that does not read them; past it the client is
    /// disconnected (with a logged reason) instead of the daemon buffering without bound.
    pub max_queued_reply_bytes: usize,
    /// Most `wait`s one client may have outstanding.
    pub max_waits_per_client: usize,
    /// Most clients connected at once; a connection past it is closed at once (logged), so
    /// clients cannot exhaust the daemon's descriptors or memory by their number.
    pub max_clients: usize,
    /// How long a new connection may take to send its hello before it is closed (default
    /// 10 s), so that connections that say nothing cannot hold all `max_clients` slots.
    pub hello_timeout: Duration,
    /// The socket file's permission bits (default `0o600`: only the daemon's own user can
    /// connect). To serve other users, widen it (e.g. `0o660` with a group they share, or
    /// `0o666`) *and* list them in `allowed_uids`; the mode alone admits nobody.
    pub socket_mode: u32,
    /// The users whose connections are served, by uid, checked with `SO_PEERCRED` at accept
    /// (default: the daemon's own effective uid alone). A connection from any other uid is
    /// closed at once and logged. Whoever is served can read and delete every object.
    pub allowed_uids: Vec<u32>,
    /// Where to serve this store's objects to peer stores (`pontoon store serve --listen`),
    /// which pull them over pontoon-transport; `None` serves no peers. Unauthenticated (unlike
    /// the socket): whoever reaches the address and knows an id reads the object.
    pub peer_listen: Option<pontoon_transport::Address>,
}

impl ServeOptions {
    /// Options with the defaults for everything but the socket and the capacity.
    ///
    /// ```
    /// let options = pontoon_store::ServeOptions::new("/tmp/s.sock", 1 << 30);
    /// assert_eq!(options.max_queued_reply_bytes, 1 << 20);
    /// assert_eq!(options.socket_mode, 0o600);
    /// assert_eq!(options.allowed_uids, [rustix::process::geteuid().as_raw()]);
    /// ```
    pub fn new(socket: impl Into<PathBuf>, capacity: u64) -> ServeOptions {
        ServeOptions {
            socket: socket.into(),
            capacity,
            spill_dir: None,
            spill_remote: None,
            spill_file_bytes: crate::embedded::DEFAULT_SPILL_FILE_BYTES,
            backing: Backing::Memfd,
            high_water_percent: 80,
            max_queued_reply_bytes: 1 << 20,
            max_waits_per_client: 1024,
            max_clients: 1024,
            hello_timeout: Duration::from_secs(10),
            socket_mode: 0o600,
            allowed_uids: vec![rustix::process::geteuid().as_raw()],
            peer_listen: None,
        }
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Who waits for which unsealed objects.
    pub(crate) waits: Waits,
    /// Connections being served (checked against `max_clients` at accept).
    connected: AtomicUsize,
    arena: Arena,
    /// The daemon's own writable view, for the copy a `take` of a pinned object makes, for
    /// spilling's writes and for objects pulled from peers.
    pub(crate) map: Arc<Mapping>,
    pub(crate) store: StoreId,
    options: ServeOptions,
    encoder: Encoder,
    /// Signalled under the state's lock when a spill round to the remote is over.
    pub(crate) spill_done: Condvar,
    /// The file number of the next copy of an object read from the remote (numbers no spill
    /// file has, each used once, so a client never takes one copy's map for another's).
    pub(crate) next_copy: AtomicU64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Each state change completes under the lock before anything can panic, so a poisoned
        // lock still guards a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Releases `state` until the next [`spill_done`](Shared::spill_done).
    pub(crate) fn wait_spill<'s>(&'s self, state: MutexGuard<'s, State>) -> MutexGuard<'s, State> {
        self.spill_done
            .wait(state)
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether objects spill to a remote (its requests then run on a blocking thread).
    pub(crate) fn spills_remotely(&self) -> bool {
        self.options.spill_remote.is_some()
    }

    fn encode(&self, message: &Message) -> Bytes {
        match self.encoder.encode(message) {
            Ok(encoded) => encoded.to_bytes(),
            // A header-only message of our own making is always encodable.
            Err(_) => Bytes::new(),
        }
    }
}

/// A store daemon bound to its socket, with its memory reserved; [`run`](Daemon::run) serves.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// rt.block_on(async {
///     let dir = std::env::temp_dir().join(format!("pontoon-daemon-doc-{}", std::process::id()));
///     std::fs::create_dir_all(&dir)?;
///     let daemon = pontoon_store::Daemon::bind(pontoon_store::ServeOptions::new(dir.join("s.sock"), 1 << 20))?;
///     let socket = daemon.socket().to_owned();
///     let serving = tokio::spawn(daemon.run());
///     let client = pontoon_store::Client::connect(&socket).await?;
///     let id = client.put_raw(&pontoon_wire::Message::new(
///         pontoon_wire::Header::empty(),
///         vec![bytes::Bytes::from_static(b"shared")],
///     )).await?;
///     let object = client.get_raw(&id).await?;
///     assert_eq!(&object.frames[0][..], b"shared");
///     assert!(client.is_shared(&object.frames[0])); // a view of the daemon's memory
///     serving.abort();
///     std::fs::remove_dir_all(&dir)?;
///     Ok(())
/// })
/// # }
/// ```
pub struct Daemon {
    shared: Arc<Shared>,
    listener: UnixListener,
    /// Serving peer stores, once listening (see [`Daemon::listen_peers`]).
    peers: Option<crate::PeerServer>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("store", &self.shared.store)
            .field("socket", &self.shared.options.socket)
            .field("arena", &self.shared.arena)
            .finish()
    }
}

impl Daemon {
    /// Reserves the memory (`fallocate`d, so no later page fault can SIGBUS) and binds the
    /// socket. Must be called inside a tokio runtime. A socket file nobody listens on is
    /// replaced; one a live daemon serves is an error.
    pub fn bind(options: ServeOptions) -> Result<Daemon, ServeError> {
        let arena = Arena::reserve(
            options.capacity,
            &options.backing,
            options.spill_dir.as_deref(),
        )?;
        let map = Mapping::map(arena.fd(), arena.len(), true, false).map_err(|source| {
            ServeError::Memory {
                capacity: arena.len(),
                what: "mapping it".to_owned(),
                source,
            }
        })?;
        let map = Arc::new(map);
        let store = StoreId::random();
        let remote = match (&options.spill_remote, &options.spill_dir) {
            (Some(remote), Some(_)) => {
                return Err(ServeError::SpillRemote(ObjectError::SpillRemoteFailed {
                    url: remote.url.clone(),
                    fault: crate::RemoteFault::Other,
                    reason: "a daemon spills to a directory or to a remote, not both".to_owned(),
                }));
            }
            (Some(remote), None) => Some(
                crate::spill_remote::RemoteSpill::open(remote, store, options.spill_file_bytes)
                    .map_err(ServeError::SpillRemote)?,
            ),
            (None, _) => None,
        };
        let spill = match &options.spill_dir {
            Some(dir) => Some(crate::spill::Spill::new(
                crate::spill_dir::SpillDir::open(dir, store).map_err(|e| ServeError::SpillDir {
                    dir: dir.clone(),
                    what: e.what,
                    source: e.source,
                })?,
                options.spill_file_bytes,
            )),
            None => None,
        };
        let listener = bind_socket(&options.socket, options.socket_mode)?;
        tracing::info!(
            "store {:016x} serving {} bytes ({}) on {}",
            store.0,
            arena.len(),
            arena.description,
            options.socket.display()
        );
        let mut state = State::new(
            store,
            arena.len().min(options.capacity.max(1)),
            options.high_water_percent,
        );
        if let Some(spill) = spill {
            state = state.with_spill(spill, map.clone());
        }
        if let Some(remote) = remote {
            state = state
                .with_remote_spill(remote, map.clone())
                .map_err(|source| ServeError::Memory {
                    capacity: arena.len(),
                    what: "starting the thread that deletes spilled objects".to_owned(),
                    source,
                })?;
        }
        let shared = Shared {
            state: Mutex::new(state),
            waits: Waits::default(),
            connected: AtomicUsize::new(0),
            arena,
            map,
            store,
            options,
            encoder: Encoder::new(EncodeOptions::default()),
            spill_done: Condvar::new(),
            next_copy: AtomicU64::new(1 << 62),
        };
        Ok(Daemon {
            shared: Arc::new(shared),
            listener,
            peers: None,
        })
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.shared.options.socket
    }

    /// The store's id (every object id it makes starts with it).
    pub fn store_id(&self) -> StoreId {
        self.shared.store
    }

    /// Starts serving this store's objects to peer stores at `address` (port 0 picks one),
    /// until the daemon stops; returns the address bound. [`Daemon::run`] does this itself when
    /// [`ServeOptions::peer_listen`] is set. Peers that pull an object pin it until their
    /// connection closes (each such pin is a client of its own in [`StoreStats::clients`]
    /// meanwhile).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// rt.block_on(async {
    ///     let dir = std::env::temp_dir().join(format!("pontoon-peers-doc-{}", std::process::id()));
    ///     std::fs::create_dir_all(&dir)?;
    ///     let mut daemon = pontoon_store::Daemon::bind(pontoon_store::ServeOptions::new(dir.join("s.sock"), 1 << 20))?;
    ///     let peers = daemon.listen_peers(&"tcp://127.0.0.1:0".parse()?).await?;
    ///     assert_eq!(daemon.peer_address(), Some(&peers));
    ///     let socket = daemon.socket().to_owned();
    ///     let serving = tokio::spawn(daemon.run());
    ///     let client = pontoon_store::Client::connect(&socket).await?;
    ///     let id = client.put_raw(&pontoon_wire::Message::new(
    ///         pontoon_wire::Header::empty(),
    ///         vec![bytes::Bytes::from_static(b"for a peer")],
    ///     )).await?;
    ///     let elsewhere = pontoon_store::Store::new(Default::default());
    ///     elsewhere.pull(&id, &peers).await?;
    ///     assert_eq!(&elsewhere.get_raw(&id)?.frames[0][..], b"for a peer");
    ///     serving.abort();
    ///     std::fs::remove_dir_all(&dir)?;
    ///     Ok(())
    /// })
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a future dropped before it completes leaves nothing listening.
    pub async fn listen_peers(
        &mut self,
        address: &pontoon_transport::Address,
    ) -> Result<pontoon_transport::Address, ServeError> {
        let server = crate::daemon_peer::serve_peers(self.shared.clone(), address)
            .await
            .map_err(|source| ServeError::PeerListen {
                address: address.to_string(),
                source,
            })?;
        let bound = server.address().clone();
        tracing::info!(
            "store {:016x} serving peers on {bound}",
            self.shared.store.0
        );
        self.peers = Some(server);
        Ok(bound)
    }

    /// The address peers pull from, once [`Daemon::listen_peers`] has bound it.
    pub fn peer_address(&self) -> Option<&pontoon_transport::Address> {
        self.peers.as_ref().map(crate::PeerServer::address)
    }

    /// A handle that reads the daemon's counters while it runs.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.shared.clone())
    }

    /// Serves clients until the task is dropped: each client in a task of its own; a client
    /// that sends malformed requests, never reads its replies or dies costs its own connection
    /// only, and its pins and unsealed creates are released.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops accepting; clients already connected are served by their own
    /// tasks until they disconnect or the runtime shuts down.
    pub async fn run(mut self) -> Result<(), ServeError> {
        if self.peers.is_none()
            && let Some(address) = self.shared.options.peer_listen.clone()
        {
            self.listen_peers(&address).await?;
        }
        let mut refusals = Refusals::new();
        loop {
            let (stream, _) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) if is_transient(&e) => {
                    tracing::warn!("accepting a store client failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(ServeError::Accept(e)),
            };
            let slot = match self.admit(&stream) {
                Ok(slot) => slot,
                Err(reason) => {
                    refusals.refused(&reason);
                    continue;
                }
            };
            let shared = self.shared.clone();
            tokio::spawn(async move {
                // Held for the task's life, so the slot is given back (and the client taken
                // off the gauge) even if serving panics.
                let slot = slot;
                let _connected = crate::metrics::Connected::new();
                let client = shared.lock().connect();
                tracing::info!(client, "store client connected");
                match serve_client(&shared, stream, client).await {
                    Ok(()) => tracing::info!(client, "store client disconnected"),
                    Err(reason) => {
                        tracing::warn!(client, "store client {client} disconnected: {reason}");
                    }
                }
                // The slot first: a client counted out of the stats may rely on its slot
                // being free.
                drop(slot);
                shared.lock().disconnect(client);
            });
        }
    }

    /// Whether a new connection may be served: from one of `allowed_uids` (the socket's mode
    /// limits who can connect too, but root connects whatever the mode, and a socket file is
    /// open to others for a moment between its bind and its chmod), and within `max_clients`.
    /// Counts it as connected if so, until the returned slot is dropped.
    fn admit(&self, stream: &UnixStream) -> Result<Slot, String> {
        let uid = stream
            .peer_cred()
            .map_err(|e| format!("its credentials cannot be read ({e})"))?
            .uid();
        if !self.shared.options.allowed_uids.contains(&uid) {
            return Err(format!(
                "it runs as uid {uid}, which is not among the allowed uids {:?}",
                self.shared.options.allowed_uids
            ));
        }
        let max = self.shared.options.max_clients;
        let slot = Slot(self.shared.clone());
        let connected = self.shared.connected.fetch_add(1, Ordering::AcqRel);
        if connected >= max {
            return Err(format!("{connected} clients are connected, at most {max}"));
        }
        Ok(slot)
    }
}

/// One of `max_clients`, taken at accept and given back when dropped.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Logs refused connections without letting a flood of them flood the log: the first one, then
/// at most one line a second saying how many more there were.
struct Refusals {
    since_logged: u64,
    logged_at: Option<Instant>,
    /// Every refusal, logged or not.
    counter: ::metrics::Counter,
}

impl Refusals {
    const EVERY: Duration = Duration::from_secs(1);

    fn new() -> Refusals {
        Refusals {
            since_logged: 0,
            logged_at: None,
            counter: crate::metrics::refusals(),
        }
    }

    fn refused(&mut self, reason: &str) {
        self.counter.increment(1);
        let now = Instant::now();
        match self.logged_at {
            Some(at) if now.duration_since(at) < Self::EVERY => self.since_logged += 1,
            _ => {
                if self.since_logged > 0 {
                    tracing::warn!(
                        "refused a store client: {reason} ({} more refused since the last line)",
                        self.since_logged
                    );
                } else {
                    tracing::warn!("refused a store client: {reason}");
                }
                self.since_logged = 0;
                self.logged_at = Some(now);
            }
        }
    }
}

/// Reads a running daemon's counters (from [`Daemon::stats_handle`]).
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatsHandle").field(&self.0.store).finish()
    }
}

impl StatsHandle {
    /// The counters now.
    pub fn stats(&self) -> StoreStats {
        self.0.lock().stats()
    }
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc_errno::EMFILE
                | libc_errno::ENFILE
                | libc_errno::ENOBUFS
                | libc_errno::ENOMEM
                | libc_errno::ECONNABORTED
        )
    )
}

/// The errno values `accept` may return for a moment's shortage.
mod libc_errno {
    pub(super) const EMFILE: i32 = rustix::io::Errno::MFILE.raw_os_error();
    pub(super) const ENFILE: i32 = rustix::io::Errno::NFILE.raw_os_error();
    pub(super) const ENOBUFS: i32 = rustix::io::Errno::NOBUFS.raw_os_error();
    pub(super) const ENOMEM: i32 = rustix::io::Errno::NOMEM.raw_os_error();
    pub(super) const ECONNABORTED: i32 = rustix::io::Errno::CONNABORTED.raw_os_error();
}

fn bind_socket(path: &Path, mode: u32) -> Result<UnixListener, ServeError> {
    let fail = |source| ServeError::Bind {
        path: path.to_owned(),
        source,
    };
    if mode & !0o777 != 0 {
        return Err(fail(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket mode {mode:#o} has bits beyond 0o777"),
        )));
    }
    let listener = bind_or_replace(path).map_err(fail)?;
    // By default the socket is this user's alone: whoever connects can read every object.
    let permissions = std::os::unix::fs::PermissionsExt::from_mode(mode);
    std::fs::set_permissions(path, permissions).map_err(fail)?;
    Ok(listener)
}

fn bind_or_replace(path: &Path) -> io::Result<UnixListener> {
    match UnixListener::bind(path) {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            // A live daemon answers; a stale file from a dead one refuses.
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another store daemon is serving there",
                )),
                Err(_) => {
                    std::fs::remove_file(path)?;
                    UnixListener::bind(path)
                }
            }
        }
        Err(e) => Err(e),
    }
}

/// Replies to one client, written from the task that made them; at most `cap` bytes of them
/// queue behind a client that does not read.
#[derive(Clone)]
struct Outbox {
    out: Arc<Outgoing>,
    cap: usize,
}

impl Outbox {
    /// Sends a reply, or says why the client must be disconnected.
    fn send(&self, bytes: Bytes) -> Result<(), String> {
        self.send_with_fd(bytes, None)
    }

    /// Sends a reply with a descriptor attached, or says why the client must be disconnected.
    fn send_with_fd(&self, bytes: Bytes, fd: Option<std::os::fd::OwnedFd>) -> Result<(), String> {
        self.out
            .send_with_fd(bytes, fd, self.cap)
            .map_err(|e| match e {
                SendError::Closed => "its connection closed".to_owned(),
                SendError::Overfull { queued, cap } => {
                    format!(
                        "it left {queued} bytes of replies unread (at most {cap}); disconnected"
                    )
                }
            })
    }
}

async fn serve_client(
    shared: &Arc<Shared>,
    stream: UnixStream,
    client: ClientId,
) -> Result<(), String> {
    let mut decoder = Decoder::with_limits(protocol::limits());
    let mut input = BytesMut::with_capacity(8 << 10);
    let mut stream = stream;

    // The hello: answered with the memory's descriptor attached.
    let hello_timeout = shared.options.hello_timeout;
    let first = tokio::time::timeout(
        hello_timeout,
        next_message(&mut stream, &mut decoder, &mut input),
    )
    .await
    .map_err(|_| format!("it sent no hello within {hello_timeout:?}"))??
    .ok_or("it closed before its hello")?;
    let (rid, request) = protocol::decode_request(&first).map_err(|e| format!("bad hello: {e}"))?;
    let Request::Hello { version } = request else {
        return Err("its first request was not a hello".to_owned());
    };
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "it speaks protocol {version}, this daemon {PROTOCOL_VERSION}"
        ));
    }
    let hello = Response::Hello {
        version: PROTOCOL_VERSION,
        store: shared.store,
        arena_len: shared.arena.len(),
        fds: 1,
    };
    let mut bytes = BytesMut::new();
    bytes.extend_from_slice(&pontoon_wire::preamble());
    bytes.extend_from_slice(&shared.encode(&hello.to_message(rid)));
    let sent = fdpass::send_with_fd(&stream, &bytes, shared.arena.fd())
        .await
        .map_err(|e| format!("sending the hello: {e}"))?;
    stream
        .write_all(&bytes[sent..])
        .await
        .map_err(|e| format!("sending the hello: {e}"))?;

    let (mut read, write) = stream.into_split();
    let (out, drain) = Outgoing::new(write);
    let outbox = Outbox {
        out: Arc::new(out),
        cap: shared.options.max_queued_reply_bytes,
    };
    let mut writer = tokio::spawn(drain);
    let mut waits = JoinSet::new();
    let result = loop {
        let message = tokio::select! {
            message = next_message(&mut read, &mut decoder, &mut input) => message,
            _ = &mut writer => break Err("its socket stopped taking replies".to_owned()),
        };
        let message = match message {
            Ok(Some(message)) => message,
            Ok(None) => break Ok(()),
            Err(reason) => break Err(reason),
        };
        let (rid, request) = match protocol::decode_request(&message) {
            Ok(decoded) => decoded,
            Err(e) => break Err(format!("it sent a malformed request: {e}")),
        };
        while waits.try_join_next().is_some() {}
        if matches!(request, Request::Hello { .. }) {
            break Err("it sent a second hello".to_owned());
        }
        if let Request::Wait { ids, timeout_ms } = request {
            if waits.len() >= shared.options.max_waits_per_client {
                break Err(format!(
                    "it has more than {} waits outstanding",
                    shared.options.max_waits_per_client
                ));
            }
            let shared = shared.clone();
            let outbox = outbox.clone();
            waits.spawn(async move {
                let ready = wait(&shared, &ids, Duration::from_millis(timeout_ms)).await;
                let _ = outbox.send(shared.encode(&Response::Ready(ready).to_message(rid)));
            });
            continue;
        }
        if let Request::Pull { id, peer } = request {
            // Counted with the waits: both are requests answered later, by a task of their own,
            // cancelled when the client goes.
            if waits.len() >= shared.options.max_waits_per_client {
                break Err(format!(
                    "it has more than {} waits and pulls outstanding",
                    shared.options.max_waits_per_client
                ));
            }
            let shared = shared.clone();
            let outbox = outbox.clone();
            waits.spawn(async move {
                let response = match crate::daemon_peer::pull(&shared, id, &peer).await {
                    Ok(()) => Response::Done,
                    Err(error) => Response::Error(error),
                };
                let _ = outbox.send(shared.encode(&response.to_message(rid)));
            });
            continue;
        }
        let answer = if shared.spills_remotely() && crate::daemon_remote::reaches_remote(&request) {
            // A blocking thread of its own: the remote's I/O may take seconds.
            let on_thread = shared.clone();
            tokio::task::spawn_blocking(move || {
                crate::daemon_remote::handle(&on_thread, client, request)
            })
            .await
            .map_err(|e| format!("serving its request failed: {e}"))
        } else {
            Ok(handle(shared, client, request).map(|response| (response, None)))
        };
        let (response, copy) = match answer {
            Ok(Some(answer)) => answer,
            Ok(None) => continue,
            Err(reason) => break Err(reason),
        };
        let fd = match &response {
            // A copy read from the remote: its own memory, sent with the reply.
            Response::Spilled { .. } if copy.is_some() => copy,
            // The object is pinned (or being created) for this client: its file stays.
            Response::Spilled { file, .. } | Response::CreatedOnDisk { file, .. } => {
                match shared.lock().spill_fd(*file) {
                    Some(fd) => Some(fd),
                    None => break Err(format!("spill file {file} could not be opened for it")),
                }
            }
            _ => None,
        };
        if let Err(reason) = outbox.send_with_fd(shared.encode(&response.to_message(rid)), fd) {
            break Err(reason);
        }
    };
    writer.abort();
    result
}

/// Reads until one message is decoded; `None` at a clean end of stream.
async fn next_message<R: tokio::io::AsyncRead + Unpin>(
    read: &mut R,
    decoder: &mut Decoder,
    input: &mut BytesMut,
) -> Result<Option<Message>, String> {
    loop {
        match decoder.decode(input) {
            Ok(Some(message)) => return Ok(Some(message)),
            Ok(None) => {}
            Err(e) => return Err(format!("it sent bytes that are not a store request: {e}")),
        }
        input.reserve(8 << 10);
        match read.read_buf(input).await {
            Ok(0) => {
                return decoder
                    .decode_eof(input)
                    .map_err(|e| format!("it closed in the middle of a request: {e}"));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("reading its requests failed: {e}")),
        }
    }
}

async fn wait(shared: &Shared, ids: &[crate::ObjectId], timeout: Duration) -> Vec<bool> {
    // A peer's timeout can be anything up to u64::MAX milliseconds: past what an Instant can
    // hold, it waits a year (as good as forever) instead of overflowing.
    let now = tokio::time::Instant::now();
    let deadline = now
        .checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(365 * 86_400));
    let registration = shared.waits.register(|| {
        let state = shared.lock();
        ids.iter()
            .filter(|id| !state.contains(id))
            .copied()
            .collect()
    });
    if let Some(mut registration) = registration {
        let _ = tokio::time::timeout_at(deadline, registration.sealed()).await;
    }
    // Answered from the state, once: an id sealed and then deleted meanwhile is `false`.
    shared.lock().ready(ids)
}

pub(crate) fn handle(shared: &Shared, client: ClientId, request: Request) -> Option<Response> {
    let refused =
        |result: Result<Response, ObjectError>| Some(result.unwrap_or_else(Response::Error));
    match request {
        Request::Hello { .. } | Request::Wait { .. } | Request::Pull { .. } => None,
        Request::Create { size } => refused(shared.lock().create_reply(client, size)),
        Request::Seal { id, layout } => {
            let result = shared.lock().seal(client, &id, layout);
            if result.is_ok() {
                shared.waits.sealed(&id);
            }
            refused(result.map(|()| Response::Done))
        }
        Request::Abort { id } => refused(shared.lock().abort(client, &id).map(|()| Response::Done)),
        Request::Get { id } => refused(shared.lock().get(client, &id)),
        Request::Release { id } => {
            shared.lock().release(client, &id);
            None
        }
        Request::Delete { id } => refused(shared.lock().delete(&id).map(|()| Response::Done)),
        Request::Contains { id } => Some(Response::Bool(shared.lock().contains(&id))),
        Request::Take { id } => {
            let mut state = shared.lock();
            let result = take_in_memory(shared, &mut state, client, &id);
            drop(state);
            refused(result)
        }
        Request::Stats => Some(Response::Stats(shared.lock().stats())),
    }
}

/// A take of an object in memory: moved, or copied into a new range if a pin holds it.
pub(crate) fn take_in_memory(
    shared: &Shared,
    state: &mut State,
    client: ClientId,
    id: &crate::ObjectId,
) -> Result<Response, ObjectError> {
    state.take(client, id).map(|(response, copy)| {
        if let Some((from, to)) = copy {
            // Both ranges were allocated for the object's length (rounded to 64).
            let len = from.len.min(to.len) as usize;
            // SAFETY: both ranges come from the allocator, so they lie inside the mapping
            // and do not overlap; `from` is sealed (nobody writes it) and `to` was just
            // allocated (nobody else knows it), so no other access races this copy.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    shared.map.as_ptr().add(from.offset as usize),
                    shared.map.as_ptr().add(to.offset as usize),
                    len,
                );
            }
        }
        response
    })
}
