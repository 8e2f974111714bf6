//! The daemon's spilling policy, part of its bookkeeping: a create that would take the memory
//! in use above the high-water mark first spills the least recently used sealed objects no
//! client pins, until it would be below (by a sixteenth of the capacity, at most 64 MiB, so
//! that spills come in batches); one that still does not fit spills more, and one
//! larger than what spilling can free is created on disk. A pinned object is never spilled or
//! freed. Objects on disk are got from their file (the reply carries it), and taken back into
//! memory with a copy. With a remote instead of a directory, the policy is the same but
//! planned and finished here with the I/O between (`state_spill_remote.rs`), and nothing is
//! created on disk.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;
use pontoon_wire::{Header, Message};

use super::{Object, Phase, State};
use crate::alloc::Range;
use crate::arena::Mapping;
use crate::embedded::{high_water, spill_slack};
use crate::error::ObjectError;
use crate::protocol::{Layout, Response};
use crate::spill::{FileNo, MapView, Recency, Spill, Spilled};
use crate::spill_remote::{RemoteAt, RemoteSpill};
use crate::{ObjectId, StoreStats};

/// Where an object on disk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnDisk {
    /// Spilled: a record in a spill file.
    Spilled(Spilled),
    /// Created on disk: a file of its own, the object from offset 0.
    Created(FileNo),
    /// Spilled to the remote: a record in a remote object.
    Remote(RemoteAt),
}

/// Where objects spill to.
#[allow(clippy::large_enum_variant, reason = "one per daemon, never moved")]
pub(super) enum Backend {
    /// Spill files in a directory, written and read under the state's lock.
    Local(Spill),
    /// A remote, whose I/O the daemon does with the lock released; remote objects left with
    /// no live object go to `deletes`, a thread that deletes them.
    Remote {
        spill: RemoteSpill,
        deletes: std::sync::mpsc::Sender<u64>,
    },
}

/// What spilling needs besides the state's own bookkeeping.
pub(super) struct Spilling {
    pub(super) backend: Backend,
    /// The daemon's writable map of the arena, to write objects out from and take them back
    /// into.
    pub(super) arena: Arc<Mapping>,
    /// Sealed objects in memory, least recently used first.
    pub(super) recency: Recency,
    /// Bytes of objects on their way to the remote (still in memory).
    pub(super) in_flight_bytes: u64,
}

impl Spilling {
    fn local(&mut self) -> Option<&mut Spill> {
        match &mut self.backend {
            Backend::Local(spill) => Some(spill),
            Backend::Remote { .. } => None,
        }
    }
}

/// No object is ever placed at this range: the range of an object on disk.
const NO_RANGE: Range = Range { offset: 0, len: 0 };

impl State {
    /// Spills into `spill`, writing objects out of (and back into) `arena`, the daemon's map
    /// of the memory this state allocates.
    pub(crate) fn with_spill(mut self, spill: Spill, arena: Arc<Mapping>) -> State {
        self.spill = Some(Spilling {
            backend: Backend::Local(spill),
            arena,
            recency: Recency::default(),
            in_flight_bytes: 0,
        });
        self
    }

    /// Whether objects spill to a directory (so they can be created on disk too).
    fn spills_locally(&self) -> bool {
        self.spill
            .as_ref()
            .is_some_and(|s| matches!(s.backend, Backend::Local(_)))
    }

    /// The least recently used objects that may spill now: sealed, in memory, unpinned, and
    /// not on their way out already.
    pub(super) fn spill_candidates(&self) -> impl Iterator<Item = (ObjectId, &super::Object)> {
        self.spill
            .iter()
            .flat_map(|spilling| spilling.recency.oldest())
            .filter_map(|id| Some((id, self.objects.get(&id)?)))
            .filter(|(_, object)| object.pins == 0 && object.disk.is_none() && !object.in_flight)
    }

    /// `id` (sealed, in memory) was used now.
    pub(super) fn touch(&mut self, id: ObjectId) {
        let in_memory = self
            .objects
            .get(&id)
            .is_some_and(|o| o.disk.is_none() && matches!(o.phase, Phase::Sealed { .. }));
        if let Some(spilling) = &mut self.spill
            && in_memory
        {
            spilling.recency.touch(id);
        }
    }

    /// `id` may not spill any more (deleted, taken).
    pub(super) fn forget_recency(&mut self, id: &ObjectId) {
        if let Some(spilling) = &mut self.spill {
            spilling.recency.remove(id);
        }
    }

    /// Frees what an object holds: its range of memory, or its place on disk.
    pub(super) fn release_object(&mut self, object: Object) {
        match object.disk {
            None => self.alloc.release(object.range),
            Some(disk) => {
                if let Some(spilling) = &mut self.spill {
                    match (&mut spilling.backend, disk) {
                        (Backend::Local(spill), OnDisk::Spilled(at)) => spill.free(&at),
                        (Backend::Local(spill), OnDisk::Created(file)) => {
                            spill.free_object(file, object.len)
                        }
                        (Backend::Remote { spill, deletes }, OnDisk::Remote(at)) => {
                            if let Some(number) = spill.free(&at) {
                                // The deleting thread ends only with the state.
                                let _ = deletes.send(number);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// A range of `size` bytes of memory, spilling first as the policy says (see the module
    /// docs). A spill that failed is the error only if the range then cannot be had.
    pub(super) fn allocate(&mut self, size: u64) -> Result<Range, ObjectError> {
        // A remote spill's I/O cannot run under the lock: the daemon spills and tries again.
        if !self.spills_locally() {
            return self.alloc.allocate(size).map_err(|e| self.full(e));
        }
        let capacity = self.alloc.capacity();
        let high = high_water(capacity, self.high_water_percent);
        let used = capacity - self.alloc.free();
        let mut spill_error = None;
        if used.saturating_add(size) > high
            && let Err(e) =
                self.spill_oldest(used.saturating_add(size) - high + spill_slack(capacity))
        {
            spill_error = Some(e);
        }
        loop {
            match self.alloc.allocate(size) {
                Ok(range) => return Ok(range),
                Err(no_room) => {
                    if let Some(e) = spill_error {
                        return Err(e);
                    }
                    // Free memory is scattered, or the goal was short of a fit: spill more.
                    match self.spill_oldest(no_room.need) {
                        Ok(0) => return Err(self.full(no_room)),
                        Ok(_) => {}
                        Err(e) => spill_error = Some(e),
                    }
                }
            }
        }
    }

    /// Spills the least recently used unpinned objects in memory until `goal` bytes are freed
    /// or none is left; returns the bytes freed. What was written before an error stays
    /// spilled; the rest stays in memory.
    fn spill_oldest(&mut self, goal: u64) -> Result<u64, ObjectError> {
        let mut victims: Vec<(ObjectId, Range)> = Vec::new();
        let mut objects: Vec<(u64, Message)> = Vec::new();
        let mut freed = 0u64;
        for (id, object) in self.spill_candidates() {
            if freed >= goal {
                break;
            }
            objects.push((id.seq(), self.as_frame(object)));
            victims.push((id, object.range));
            freed += object.range.len;
        }
        if victims.is_empty() {
            return Ok(0);
        }
        let Some(spilling) = &mut self.spill else {
            return Ok(0);
        };
        let Some(spill) = spilling.local() else {
            return Ok(0);
        };
        let (done, error) = spill.write(&objects);
        // No view of the ranges outlives this: they are released below.
        drop(objects);
        let mut released = 0;
        for ((id, range), at) in victims.into_iter().zip(done) {
            spilling.recency.remove(&id);
            if let Some(object) = self.objects.get_mut(&id) {
                object.disk = Some(OnDisk::Spilled(at));
                object.range = NO_RANGE;
            }
            self.alloc.release(range);
            released += range.len;
        }
        match error {
            Some(e) if released < goal => Err(e),
            _ => Ok(released),
        }
    }

    /// An object in memory as a message of one frame, a view of the arena (its layout stays
    /// in the state: a header a client sealed with is never parsed here).
    pub(super) fn as_frame(&self, object: &super::Object) -> Message {
        let Some(spilling) = &self.spill else {
            return Message::new(Header::empty(), Vec::new());
        };
        let frame = Bytes::from_owner(MapView {
            map: spilling.arena.clone(),
            offset: object.range.offset as usize,
            len: object.len as usize,
        });
        Message::new(Header::empty(), vec![frame])
    }

    /// A create: in memory (spilling to make room), or on disk if it cannot fit there.
    pub(crate) fn create_reply(
        &mut self,
        client: super::ClientId,
        size: u64,
    ) -> Result<Response, ObjectError> {
        match self.create(client, size) {
            Ok((id, range)) => Ok(Response::Created {
                id,
                offset: range.offset,
                len: size,
            }),
            Err(ObjectError::StoreFull { .. }) if self.spills_locally() && size > 0 => {
                self.create_on_disk(client, size)
            }
            Err(e) => Err(e),
        }
    }

    fn create_on_disk(
        &mut self,
        client: super::ClientId,
        size: u64,
    ) -> Result<Response, ObjectError> {
        let Some(spill) = self.spill.as_mut().and_then(Spilling::local) else {
            return Err(ObjectError::OutOfMemory { bytes: size });
        };
        let (file, _) = spill.create_object(size)?;
        let id = self.new_id();
        self.objects.insert(
            id,
            Object {
                range: NO_RANGE,
                len: size,
                phase: Phase::Creating { owner: client },
                pins: 0,
                disk: Some(OnDisk::Created(file)),
                in_flight: false,
            },
        );
        if let Some(holder) = self.clients.get_mut(&client) {
            holder.creating.insert(id);
        }
        Ok(Response::CreatedOnDisk {
            id,
            file,
            len: size,
        })
    }

    /// The reply to a get of an object on disk: its file, where it is in it, its layout.
    pub(super) fn on_disk_reply(
        &mut self,
        id: &ObjectId,
        disk: OnDisk,
        len: u64,
        layout: Layout,
    ) -> Result<Response, ObjectError> {
        // An object on the remote is got through `get_remote` (the daemon reads it with the
        // lock released); nobody else reads it.
        let Some(spill) = self.spill.as_mut().and_then(Spilling::local) else {
            return Err(ObjectError::Unknown { id: *id });
        };
        let (file, offset) = match disk {
            OnDisk::Created(file) => (file, 0),
            OnDisk::Spilled(at) => {
                // Read (and checked) here, so a client never maps a record that fails its
                // checksum.
                let read = spill.read(&at)?;
                let &(offset, frame_len) =
                    read.frames
                        .first()
                        .ok_or_else(|| ObjectError::SpillFailed {
                            dir: spill.dir().to_path_buf(),
                            reason: format!("the record of {id} holds no frame"),
                        })?;
                if frame_len != len {
                    return Err(ObjectError::SpillFailed {
                        dir: spill.dir().to_path_buf(),
                        reason: format!("the record of {id} holds {frame_len} bytes, not {len}"),
                    });
                }
                (at.file, offset)
            }
            OnDisk::Remote(_) => return Err(ObjectError::Unknown { id: *id }),
        };
        Ok(Response::Spilled {
            id: *id,
            file,
            offset,
            len,
            layout,
        })
    }

    /// A descriptor of spill file `file`, to send with a reply about it.
    pub(crate) fn spill_fd(&self, file: FileNo) -> Option<OwnedFd> {
        let spilling = self.spill.as_ref()?;
        let Backend::Local(spill) = &spilling.backend else {
            return None;
        };
        let handle: &Arc<File> = spill.file(file)?;
        handle.try_clone().ok().map(OwnedFd::from)
    }

    /// A take of an object on disk: copied into memory (spilling others to make room), then
    /// removed from disk; the copy is a create of `client`'s under a new id.
    pub(super) fn take_from_disk(
        &mut self,
        client: super::ClientId,
        id: &ObjectId,
    ) -> Result<Response, ObjectError> {
        let (object, layout) = self.sealed(id)?;
        let (len, layout, disk) = (object.len, layout.clone(), object.disk);
        if let Some(OnDisk::Remote(_)) = disk {
            // The daemon reads it first, with the lock released (`take_remote_copy`).
            return Err(ObjectError::Unknown { id: *id });
        }
        let range = self.allocate(len)?;
        let bytes = match self.disk_bytes(id, disk, len) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.alloc.release(range);
                return Err(e);
            }
        };
        self.take_spilled_into(client, id, range, &bytes, layout)
    }

    /// The end of a take of spilled object `id`: its bytes (read back from disk or the remote,
    /// so outside the arena) copied into `range`, just allocated for them, the spilled object
    /// removed, and the copy a create of `client`'s under a new id.
    pub(super) fn take_spilled_into(
        &mut self,
        client: super::ClientId,
        id: &ObjectId,
        range: Range,
        bytes: &Bytes,
        layout: crate::protocol::Layout,
    ) -> Result<Response, ObjectError> {
        let len = bytes.len() as u64;
        let Some(spilling) = &self.spill else {
            self.alloc.release(range);
            return Err(ObjectError::Unknown { id: *id });
        };
        // SAFETY: `range` was just allocated for `len` bytes (rounded up to 64), so it lies
        // inside the arena's map and nobody else knows it yet; `bytes` are a map of a spill
        // file or memory read from the remote, neither of which can overlap the arena's map.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                spilling.arena.as_ptr().add(range.offset as usize),
                len as usize,
            );
        }
        if let Some(object) = self.objects.remove(id) {
            self.gone(&object);
            self.bury(*id, object);
        }
        Ok(self.taken(client, range, len, true, layout))
    }

    /// The bytes of object `id` (`len` bytes, at `disk` in the local spill directory), read
    /// back and checked: a view of the spill file's map, not a copy.
    fn disk_bytes(
        &mut self,
        id: &ObjectId,
        disk: Option<OnDisk>,
        len: u64,
    ) -> Result<Bytes, ObjectError> {
        let Some(spilling) = &mut self.spill else {
            return Err(ObjectError::Unknown { id: *id });
        };
        let Backend::Local(spill) = &mut spilling.backend else {
            return Err(ObjectError::Unknown { id: *id });
        };
        let bytes: Bytes = match disk {
            Some(OnDisk::Spilled(at)) => match spill.read(&at) {
                Ok(mut read) if read.message.frames.len() == 1 => read.message.frames.remove(0),
                Ok(_) => Bytes::new(),
                Err(e) => return Err(e),
            },
            Some(OnDisk::Created(file)) => {
                let map = spill.file(file).map(|f| {
                    Mapping::map(std::os::fd::AsFd::as_fd(&**f), len.max(1), false, false)
                });
                match map {
                    Some(Ok(map)) => Bytes::from_owner(MapView {
                        map: Arc::new(map),
                        offset: 0,
                        len: len as usize,
                    }),
                    _ => Bytes::new(),
                }
            }
            Some(OnDisk::Remote(_)) | None => Bytes::new(),
        };
        if bytes.len() as u64 != len {
            return Err(ObjectError::SpillFailed {
                dir: spill.dir().to_path_buf(),
                reason: format!("object {id} could not be read back whole"),
            });
        }
        Ok(bytes)
    }

    /// Sealed object `id` and its layout as a peer is served it, if it is in the local spill
    /// directory: read back and checked, a view of the spill file's map that needs no pin
    /// (a spill file is only ever removed, which leaves a map of it intact). `None` for an
    /// object in memory or on a remote.
    pub(crate) fn peer_copy(
        &mut self,
        id: &ObjectId,
    ) -> Result<Option<(Bytes, crate::protocol::Layout)>, ObjectError> {
        let (object, layout) = self.sealed(id)?;
        let (len, layout, disk) = (object.len, layout.clone(), object.disk);
        match disk {
            Some(OnDisk::Spilled(_) | OnDisk::Created(_)) => {
                let bytes = self.disk_bytes(id, disk, len)?;
                self.touch(*id);
                Ok(Some((bytes, layout)))
            }
            Some(OnDisk::Remote(_)) | None => Ok(None),
        }
    }

    /// The spill counters.
    pub(super) fn spill_stats(&self, stats: &mut StoreStats) {
        if let Some(spilling) = &self.spill {
            (
                stats.spilled_objects,
                stats.spilled_bytes,
                stats.spill_files,
            ) = match &spilling.backend {
                Backend::Local(spill) => spill.counts(),
                Backend::Remote { spill, .. } => spill.counts(),
            };
        }
    }
}
