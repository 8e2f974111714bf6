//! The daemon's spilling to a remote, in its bookkeeping: a spill round is planned under the
//! state's lock (the objects chosen, marked in flight, fused into remote objects that are views
//! of the arena), put by the daemon with the lock released, and finished under the lock again,
//! where each object becomes remote only if it is still there and nobody pinned it meanwhile.
//! Reads of objects on the remote (gets, takes) are planned and finished the same way.

use std::sync::Arc;
use std::sync::mpsc;

use bytes::Bytes;

use super::spilling::{Backend, OnDisk, Spilling};
use super::{ClientId, Object, Phase, State};
use crate::ObjectId;
use crate::alloc::Range;
use crate::arena::Mapping;
use crate::embedded::{high_water, spill_slack};
use crate::error::{ObjectError, RemoteFault};
use crate::protocol::Response;
use crate::spill::Recency;
use crate::spill_remote::{Batch, RemoteAt, RemoteIo, RemoteSpill};

/// The place of an object in memory once it is on the remote.
const NO_RANGE: Range = Range { offset: 0, len: 0 };

/// A spill round planned under the lock; [`put`](RemoteRound::put) runs without it.
pub(crate) struct RemoteRound {
    io: Arc<RemoteIo>,
    store: crate::StoreId,
    ids: Vec<ObjectId>,
    /// Views of the objects' ranges, which stay allocated until the round is finished.
    batches: Vec<Batch>,
    freed: u64,
}

impl RemoteRound {
    /// Puts each remote object of the round, one after another.
    pub(crate) fn put(&self) -> Vec<Result<(), ObjectError>> {
        self.batches
            .iter()
            .map(|batch| self.io.put(self.store, batch))
            .collect()
    }
}

/// A read of an object on the remote, planned under the lock; [`read`](RemoteRead::read)
/// runs without it.
pub(crate) struct RemoteRead {
    io: Arc<RemoteIo>,
    store: crate::StoreId,
    id: ObjectId,
    at: RemoteAt,
    /// The object's bytes.
    pub(crate) len: u64,
}

impl RemoteRead {
    /// The object's bytes: one range read of its record, checked.
    pub(crate) fn read(&self) -> Result<Bytes, ObjectError> {
        let mut message = self.io.read(self.store, &self.id, &self.at)?;
        match message.frames.len() {
            1 if message.frames[0].len() as u64 == self.len => Ok(message.frames.remove(0)),
            frames => Err(ObjectError::SpillRemoteFailed {
                url: self.io.url().to_owned(),
                fault: RemoteFault::Corrupt,
                reason: format!(
                    "the record of {} holds {frames} frames, not one of {} bytes",
                    self.id, self.len
                ),
            }),
        }
    }
}

/// A take of an object on the remote: its read, and whether this take marked it in flight
/// (and so must end that with [`State::end_flight`]).
pub(crate) struct RemoteTake {
    pub(crate) read: RemoteRead,
    pub(crate) marked: bool,
}

impl State {
    /// Spills to `spill`, objects taken from (and back into) `arena`; remote objects left with
    /// no live object are deleted by a thread of its own, which ends with the state.
    pub(crate) fn with_remote_spill(
        mut self,
        spill: RemoteSpill,
        arena: Arc<Mapping>,
    ) -> std::io::Result<State> {
        let (deletes, queue) = mpsc::channel::<u64>();
        let (io, store) = (spill.io(), spill.store());
        std::thread::Builder::new()
            .name("pontoon-store-spill-deletes".to_owned())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut numbers = vec![first];
                    numbers.extend(queue.try_iter());
                    io.delete(store, &numbers);
                }
            })?;
        self.spill = Some(Spilling {
            backend: Backend::Remote { spill, deletes },
            arena,
            recency: Recency::default(),
            in_flight_bytes: 0,
        });
        Ok(self)
    }

    fn remote_spill(&mut self) -> Option<(&mut RemoteSpill, &mpsc::Sender<u64>)> {
        match &mut self.spill.as_mut()?.backend {
            Backend::Remote { spill, deletes } => Some((spill, deletes)),
            Backend::Local(_) => None,
        }
    }

    /// Bytes to spill before an object of `size` bytes is placed: past the high-water mark
    /// (objects on their way out counted as gone) and by the slack, or 0.
    pub(crate) fn remote_goal(&self, size: u64) -> u64 {
        let Some(spilling) = &self.spill else {
            return 0;
        };
        if size == 0 || !matches!(spilling.backend, Backend::Remote { .. }) {
            return 0;
        }
        let capacity = self.alloc.capacity();
        let high = high_water(capacity, self.high_water_percent);
        let after = (capacity - self.alloc.free())
            .saturating_sub(spilling.in_flight_bytes)
            .saturating_add(size);
        if after > high {
            after - high + spill_slack(capacity)
        } else {
            0
        }
    }

    /// Bytes of objects on their way to the remote.
    pub(crate) fn remote_in_flight(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.in_flight_bytes)
    }

    /// Plans a spill of the least recently used objects nobody holds, until `need` bytes are
    /// freed and the next object would take its remote object past a fill of at least one
    /// remote object's worth (a quarter of the capacity at most): a remote object is never
    /// appended to, and a request costs about the same whatever its size. `None` if nothing
    /// may spill.
    pub(crate) fn plan_remote_spill(
        &mut self,
        need: u64,
    ) -> Result<Option<RemoteRound>, ObjectError> {
        let capacity = self.alloc.capacity();
        let Some(Spilling {
            backend: Backend::Remote { spill, .. },
            ..
        }) = &self.spill
        else {
            return Ok(None);
        };
        let cap = spill.file_cap();
        let fill = need
            .div_ceil(cap)
            .saturating_mul(cap)
            .max(cap.min(capacity / 4));
        let mut ids = Vec::new();
        let mut objects = Vec::new();
        let mut freed = 0u64;
        let mut written = pontoon_persist::RECORD_FILE_HEADER_LEN as u64;
        for (id, object) in self.spill_candidates() {
            // A record of one frame: its header, the message's head, the padding.
            let record = object.len + 64 * 5;
            if freed >= need && written.saturating_add(record) > fill {
                break;
            }
            ids.push(id);
            objects.push((id.seq(), self.as_frame(object), object.len));
            freed += object.range.len;
            written += record;
        }
        if ids.is_empty() {
            return Ok(None);
        }
        let Some((spill, _)) = self.remote_spill() else {
            return Ok(None);
        };
        let batches = spill.batches(&objects)?;
        let (io, store) = (spill.io(), spill.store());
        // The batches hold their own views of the ranges.
        drop(objects);
        for id in &ids {
            self.forget_recency(id);
            if let Some(object) = self.objects.get_mut(id) {
                object.in_flight = true;
            }
        }
        if let Some(spilling) = &mut self.spill {
            spilling.in_flight_bytes += freed;
        }
        Ok(Some(RemoteRound {
            io,
            store,
            ids,
            batches,
            freed,
        }))
    }

    /// Finishes a round whose puts gave `results`: each object still there, sealed and
    /// unpinned becomes remote and frees its range; the others stay in memory (a record of
    /// one is dead weight, and a remote object with no live record is deleted). Returns the
    /// bytes freed and the first failed put's error.
    pub(crate) fn finish_remote_spill(
        &mut self,
        round: RemoteRound,
        results: Vec<Result<(), ObjectError>>,
    ) -> (u64, Option<ObjectError>) {
        let RemoteRound {
            ids,
            batches,
            freed,
            ..
        } = round;
        if let Some(spilling) = &mut self.spill {
            spilling.in_flight_bytes = spilling.in_flight_bytes.saturating_sub(freed);
        }
        let mut error = None;
        let mut moved: Vec<(ObjectId, RemoteAt)> = Vec::new();
        let mut stayed: Vec<ObjectId> = Vec::new();
        let mut puts: Vec<(u64, bool)> = Vec::new();
        let mut next = ids.iter();
        for (batch, result) in batches.iter().zip(results) {
            let put = result.is_ok();
            if let Err(e) = result {
                error.get_or_insert(e);
            }
            puts.push((batch.object, put));
            for (id, at) in next.by_ref().take(batch.ats.len()).zip(&batch.ats) {
                let stays = match self.objects.get(id) {
                    Some(object) => {
                        !put || object.pins > 0
                            || object.disk.is_some()
                            || !matches!(object.phase, Phase::Sealed { .. })
                    }
                    None => true,
                };
                if stays {
                    stayed.push(*id);
                } else {
                    moved.push((*id, *at));
                }
            }
        }
        // No view of a range outlives this: the ranges are released below.
        drop(batches);
        let mut released = 0;
        for (id, at) in &moved {
            let Some(object) = self.objects.get_mut(id) else {
                continue;
            };
            object.in_flight = false;
            object.disk = Some(OnDisk::Remote(*at));
            let range = std::mem::replace(&mut object.range, NO_RANGE);
            self.alloc.release(range);
            released += range.len;
            if let Some((spill, _)) = self.remote_spill() {
                spill.add(at);
            }
        }
        for id in &stayed {
            self.end_flight(id);
        }
        if let Some((spill, deletes)) = self.remote_spill() {
            for (object, put) in puts {
                if put && spill.unused(object) {
                    let _ = deletes.send(object);
                }
            }
        }
        (released, error)
    }

    /// The bytes of `id` are no longer read with the lock released: in memory, it may spill
    /// again; deleted or taken meanwhile, what it held is freed once no pin holds it.
    pub(crate) fn end_flight(&mut self, id: &ObjectId) {
        if let Some(object) = self.objects.get_mut(id) {
            object.in_flight = false;
            self.touch(*id);
        } else if let Some(object) = self.zombies.get_mut(id) {
            object.in_flight = false;
            if object.pins == 0
                && let Some(object) = self.zombies.remove(id)
            {
                self.release_object(object);
            }
        }
    }

    /// A get of `id` if it is on the remote (`None` if it is not): pinned for `client` as any
    /// get, its read, and its layout.
    pub(crate) fn get_remote(
        &mut self,
        client: ClientId,
        id: &ObjectId,
    ) -> Option<(RemoteRead, crate::protocol::Layout)> {
        let read = self.remote_read(id)?;
        let (_, layout) = self.sealed(id).ok()?;
        let layout = layout.clone();
        self.pin(client, id);
        Some((read, layout))
    }

    /// The read of `id`, if it is on the remote.
    pub(crate) fn remote_read(&self, id: &ObjectId) -> Option<RemoteRead> {
        let object: &Object = self.objects.get(id)?;
        let Some(OnDisk::Remote(at)) = object.disk else {
            return None;
        };
        let Some(Spilling {
            backend: Backend::Remote { spill, .. },
            ..
        }) = &self.spill
        else {
            return None;
        };
        Some(RemoteRead {
            io: spill.io(),
            store: spill.store(),
            id: *id,
            at,
            len: object.len,
        })
    }

    /// Starts a take of `id` if it is on the remote (`None` if it is in memory): marked in
    /// flight, so that its record stays while it is read even if it is deleted meanwhile.
    pub(crate) fn begin_remote_take(
        &mut self,
        id: &ObjectId,
    ) -> Result<Option<RemoteTake>, ObjectError> {
        self.sealed(id)?;
        let Some(read) = self.remote_read(id) else {
            return Ok(None);
        };
        let Some(object) = self.objects.get_mut(id) else {
            return Ok(None);
        };
        // A second take at once reads it too; one of them finds it gone.
        let marked = !object.in_flight;
        object.in_flight = true;
        Ok(Some(RemoteTake { read, marked }))
    }

    /// Finishes a take of `id` from the remote, whose bytes were read as `bytes`: copied into
    /// memory (`StoreFull` if there is no room: the daemon spills and tries again), the object
    /// removed (its record freed once nothing reads it), and the copy a create of `client`'s
    /// under a new id.
    pub(crate) fn take_remote_copy(
        &mut self,
        client: ClientId,
        id: &ObjectId,
        bytes: &Bytes,
    ) -> Result<Response, ObjectError> {
        let (object, layout) = self.sealed(id)?;
        let (len, layout) = (object.len, layout.clone());
        if !matches!(object.disk, Some(OnDisk::Remote(_))) || bytes.len() as u64 != len {
            return Err(ObjectError::Unknown { id: *id });
        }
        let range = self.allocate(len)?;
        self.take_spilled_into(client, id, range, bytes, layout)
    }
}
