//! The daemon as a peer store: serving its shared memory's objects to pullers (pinned while a
//! peer holds them) and pulling objects from peers into that memory (`Client::pull`, request
//! op 11), over the glue in `peer.rs`.

use std::sync::Arc;

use bytes::Bytes;
use pontoon_transport::{Address, TransportError};
use pontoon_wire::Header;

use crate::alloc::Range;
use crate::daemon::Shared;
use crate::error::ObjectError;
use crate::peer::{self, Served, Sink, Source, Target};
use crate::peer_protocol::PeerRefusal;
use crate::protocol::{Layout, Response};
use crate::pull::{PullError, PullOptions};
use crate::state::{ClientId, State};
use crate::{ObjectId, PeerServer};

/// A sealed object's range of the daemon's memory, pinned by a client number of its own until
/// dropped: the owner behind the `Bytes` a peer is served.
struct PinnedRange {
    shared: Arc<Shared>,
    holder: ClientId,
    offset: usize,
    len: usize,
}

impl AsRef<[u8]> for PinnedRange {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the range came from the allocator for a sealed object, so it lies inside the
        // mapping `self.shared` keeps mapped; the pin `holder` holds keeps the range from being
        // freed (and so reused or written) until this owner is dropped, and a sealed object is
        // never written.
        unsafe { std::slice::from_raw_parts(self.shared.map.as_ptr().add(self.offset), self.len) }
    }
}

impl Drop for PinnedRange {
    fn drop(&mut self) {
        self.shared.lock().disconnect(self.holder);
    }
}

/// The daemon's memory as a [`Source`] for peers.
struct DaemonSource(Arc<Shared>);

impl Source for DaemonSource {
    fn serve(&self, id: &ObjectId) -> Result<Served, PeerRefusal> {
        let mut state = self.0.lock();
        // A spilled object is served from where it is: a view of its spill file, or a copy
        // read from the remote with the lock released.
        let refused = |e: ObjectError| match e {
            ObjectError::Unknown { id } => PeerRefusal::Unknown { id },
            ObjectError::NotSealed { id } => PeerRefusal::NotSealed { id },
            other => PeerRefusal::Refused {
                reason: format!("object {id} could not be read back from its spill: {other}"),
            },
        };
        if let Some((bytes, layout)) = state.peer_copy(id).map_err(refused)? {
            return Ok(Served::contiguous(layout, bytes));
        }
        // One client number per served object: its pin is released when the object is read
        // from the remote, or when the peer's connection drops the object.
        let holder = state.connect();
        #[cfg(feature = "remote")]
        if let Some((read, layout)) = state.get_remote(holder, id) {
            // Pinned while it is read, so that a delete meanwhile leaves its remote object.
            drop(state);
            let bytes = if can_block_in_place() {
                tokio::task::block_in_place(|| read.read()).map_err(refused)
            } else {
                Err(PeerRefusal::Refused {
                    reason: format!(
                        "object {id} is on this store's spill remote, which it reads for peers \
                         only on tokio's multi-threaded runtime"
                    ),
                })
            };
            self.0.lock().disconnect(holder);
            return Ok(Served::contiguous(layout, bytes?));
        }
        match state.get(holder, id) {
            Ok(Response::Object {
                offset,
                len,
                layout,
                ..
            }) => {
                drop(state);
                let range = PinnedRange {
                    shared: self.0.clone(),
                    holder,
                    offset: offset as usize,
                    len: len as usize,
                };
                Ok(Served::contiguous(layout, Bytes::from_owner(range)))
            }
            result => {
                state.disconnect(holder);
                Err(match result {
                    Err(ObjectError::NotSealed { id }) => PeerRefusal::NotSealed { id },
                    _ => PeerRefusal::Unknown { id: *id },
                })
            }
        }
    }
}

/// Serves the daemon's objects to peer stores at `address`.
pub(crate) async fn serve_peers(
    shared: Arc<Shared>,
    address: &Address,
) -> Result<PeerServer, TransportError> {
    let identity = format!("pontoon-store-{:016x}", shared.store.0);
    peer::serve(Arc::new(DaemonSource(shared)), address, identity).await
}

/// The daemon's memory as a [`Sink`] for pulls.
struct DaemonSink(Arc<Shared>);

/// An object being pulled into the daemon's memory, a create of a client number of its own
/// (whose disconnect aborts it, if the pull fails or is cancelled).
struct DaemonTarget {
    shared: Arc<Shared>,
    holder: ClientId,
    id: ObjectId,
    range: Range,
    layout: Layout,
}

impl Sink for DaemonSink {
    type Target<'a> = DaemonTarget;

    fn has(&self, id: &ObjectId) -> bool {
        self.0.lock().contains(id)
    }

    fn reserve(
        &self,
        peer: &str,
        id: ObjectId,
        len: u64,
        layout: &Layout,
    ) -> Result<Option<DaemonTarget>, PullError> {
        // Clients read the header later: it must be MessagePack before it is stored.
        Header::from_msgpack(layout.header.clone()).map_err(|e| PullError::Lying {
            peer: peer.to_owned(),
            id,
            reason: format!("its header is not MessagePack: {e}"),
        })?;
        let create = |state: &mut State| {
            let holder = state.connect();
            let result = state.create_foreign(holder, id, len);
            match result {
                Ok(Some(range)) => Ok(Some((holder, range))),
                other => {
                    state.disconnect(holder);
                    other.map(|_| None)
                }
            }
        };
        #[cfg(feature = "remote")]
        let created = if self.0.spills_remotely() && can_block_in_place() {
            // Making room may put objects to the remote and wait for other spills: blocking,
            // as the remote's requests from clients are, but in place (the sink is called
            // from the pull's future).
            tokio::task::block_in_place(|| crate::daemon_remote::with_room(&self.0, len, create))
        } else {
            create(&mut self.0.lock())
        };
        #[cfg(not(feature = "remote"))]
        let created = create(&mut self.0.lock());
        match created {
            Ok(Some((holder, range))) => Ok(Some(DaemonTarget {
                shared: self.0.clone(),
                holder,
                id,
                range,
                layout: layout.clone(),
            })),
            Ok(None) => Ok(None),
            Err(ObjectError::NotSealed { id }) => Err(PullError::InProgress { id }),
            Err(e) => Err(PullError::Local(e)),
        }
    }
}

/// Whether this thread may block in place: a worker of a multi-threaded runtime (a pull into a
/// daemon served by a current-thread runtime gets no room from the remote, only a `StoreFull`).
#[cfg(feature = "remote")]
fn can_block_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

impl Target for DaemonTarget {
    fn write(&mut self, offset: u64, bytes: &[u8]) {
        debug_assert!(offset + bytes.len() as u64 <= self.range.len);
        // SAFETY: the pull checked that `offset + bytes.len()` lies inside the object, whose
        // range the allocator gave out inside the mapping; the object is unsealed and this
        // target's own create, so no other process reads or writes it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.shared
                    .map
                    .as_ptr()
                    .add(self.range.offset as usize + offset as usize),
                bytes.len(),
            );
        }
    }

    fn seal(self) -> Result<(), PullError> {
        let result = self
            .shared
            .lock()
            .seal(self.holder, &self.id, self.layout.clone());
        result.map_err(PullError::Local)?;
        self.shared.waits.sealed(&self.id);
        Ok(())
    }
}

impl Drop for DaemonTarget {
    fn drop(&mut self) {
        // Aborts the create if it is not sealed; after the seal, only forgets the number.
        self.shared.lock().disconnect(self.holder);
    }
}

/// Pulls `id` from the peer store at `peer` into the daemon's memory (op 11): the local store's
/// own refusals stay typed (a `StoreFull`), every other failure is `PullFailed` with its reason.
pub(crate) async fn pull(
    shared: &Arc<Shared>,
    id: ObjectId,
    peer: &str,
) -> Result<(), ObjectError> {
    let failed = |reason: String| ObjectError::PullFailed { id, reason };
    let address: Address = peer
        .parse()
        .map_err(|e: TransportError| failed(e.to_string()))?;
    let identity = format!("pontoon-store-{:016x}", shared.store.0);
    let sink = DaemonSink(shared.clone());
    match peer::pull_into(&sink, &id, &address, &PullOptions::default(), identity).await {
        Ok(()) => Ok(()),
        Err(PullError::Local(error)) => Err(error),
        Err(error) => Err(failed(error_chain(&error))),
    }
}

/// An error and its sources, in words, joined by ": ".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
