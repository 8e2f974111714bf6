//! The daemon's bookkeeping: objects and their ranges of the arena (or their places on disk),
//! who is creating what, who pins what, and what a client's death releases. Every request the
//! daemon serves is one call here under one lock. Its only I/O is spilling's, through the
//! spill files (`state_spill.rs`, the spilling policy); spilling to a remote
//! (`state_spill_remote.rs`) is planned and finished here, its I/O done by the daemon between,
//! with the lock released.

use std::collections::{HashMap, HashSet};

use crate::alloc::{Allocator, Range};
use crate::embedded::high_water;
use crate::error::ObjectError;
use crate::metrics::ObjectGauges;
use crate::protocol::{Layout, Response};
use crate::{ObjectId, StoreId, StoreStats};

#[path = "state_spill.rs"]
mod spilling;
pub(crate) use spilling::OnDisk;
#[path = "state_spill_remote.rs"]
mod spilling_remote;

/// A connection's number in the daemon.
pub(crate) type ClientId = u64;

enum Phase {
    Creating { owner: ClientId },
    Sealed { layout: Layout },
}

struct Object {
    /// Its range of the arena (empty, and never released, for an object on disk).
    range: Range,
    len: u64,
    phase: Phase,
    /// Pins held, by all clients together.
    pins: u32,
    /// Where it is on disk (or on the remote), if it is not in memory.
    disk: Option<OnDisk>,
    /// Its bytes (in memory or on the remote) are being read with the lock released (a spill
    /// to the remote, a take from it): what holds them is not freed until that ends, even if
    /// the object is deleted meanwhile.
    in_flight: bool,
}

#[derive(Default)]
struct Holder {
    pins: HashMap<ObjectId, u32>,
    creating: HashSet<ObjectId>,
}

/// What the daemon knows.
pub(crate) struct State {
    store: StoreId,
    next_seq: u64,
    alloc: Allocator,
    high_water_percent: u8,
    objects: HashMap<ObjectId, Object>,
    /// Deleted or taken objects that pins still hold: freed at their last release.
    zombies: HashMap<ObjectId, Object>,
    clients: HashMap<ClientId, Holder>,
    next_client: ClientId,
    /// Spilling, with a spill directory.
    spill: Option<spilling::Spilling>,
    /// The daemon's share of the object gauges, moved with `objects` and their pins.
    gauges: ObjectGauges,
}

impl State {
    pub(crate) fn new(store: StoreId, capacity: u64, high_water_percent: u8) -> State {
        State {
            store,
            next_seq: 1,
            alloc: Allocator::new(capacity),
            high_water_percent,
            objects: HashMap::new(),
            zombies: HashMap::new(),
            clients: HashMap::new(),
            next_client: 1,
            spill: None,
            gauges: ObjectGauges::register(),
        }
    }

    pub(crate) fn connect(&mut self) -> ClientId {
        let id = self.next_client;
        self.next_client += 1;
        self.clients.insert(id, Holder::default());
        id
    }

    /// A client is gone: its pins are dropped and its unsealed creates aborted.
    pub(crate) fn disconnect(&mut self, client: ClientId) {
        let Some(holder) = self.clients.remove(&client) else {
            return;
        };
        for (id, count) in holder.pins {
            for _ in 0..count {
                self.unpin(&id);
            }
        }
        for id in holder.creating {
            if let Some(object) = self.objects.remove(&id) {
                self.release_object(object);
            }
        }
    }

    fn full(&self, error: crate::alloc::NoRoom) -> ObjectError {
        ObjectError::StoreFull {
            need: error.need,
            capacity: self.alloc.capacity(),
            free: error.free,
            largest: error.largest,
        }
    }

    fn new_id(&mut self) -> ObjectId {
        let id = ObjectId::new(self.store, self.next_seq);
        self.next_seq += 1;
        id
    }

    pub(crate) fn create(
        &mut self,
        client: ClientId,
        size: u64,
    ) -> Result<(ObjectId, Range), ObjectError> {
        let range = self.allocate(size)?;
        let id = self.new_id();
        self.insert_create(client, id, range, size);
        Ok((id, range))
    }

    /// Reserves `size` bytes for an object pulled from a peer, under the id its owner gave it:
    /// `Ok(None)` when it is sealed here already, [`ObjectError::NotSealed`] while it is being
    /// created (pulled) here.
    pub(crate) fn create_foreign(
        &mut self,
        client: ClientId,
        id: ObjectId,
        size: u64,
    ) -> Result<Option<Range>, ObjectError> {
        match self.objects.get(&id).map(|object| &object.phase) {
            Some(Phase::Sealed { .. }) => return Ok(None),
            Some(Phase::Creating { .. }) => return Err(ObjectError::NotSealed { id }),
            None => {}
        }
        // Spilling makes room as for a create; a pulled object always lands in memory.
        let range = self.allocate(size)?;
        self.insert_create(client, id, range, size);
        Ok(Some(range))
    }

    fn owned(&self, client: ClientId, id: &ObjectId) -> Result<&Object, ObjectError> {
        let object = self
            .objects
            .get(id)
            .ok_or(ObjectError::Unknown { id: *id })?;
        match object.phase {
            Phase::Sealed { .. } => Err(ObjectError::AlreadySealed { id: *id }),
            Phase::Creating { owner } if owner != client => Err(ObjectError::NotOwner { id: *id }),
            Phase::Creating { .. } => Ok(object),
        }
    }

    fn forget_create(&mut self, client: ClientId, id: &ObjectId) {
        if let Some(holder) = self.clients.get_mut(&client) {
            holder.creating.remove(id);
        }
    }

    pub(crate) fn seal(
        &mut self,
        client: ClientId,
        id: &ObjectId,
        layout: Layout,
    ) -> Result<(), ObjectError> {
        let len = self.owned(client, id)?.len;
        layout.check(*id, len)?;
        if let Some(object) = self.objects.get_mut(id) {
            object.phase = Phase::Sealed { layout };
            self.gauges.sealed(len);
            if object.disk.is_none() {
                self.touch(*id);
            }
        }
        self.forget_create(client, id);
        Ok(())
    }

    pub(crate) fn abort(&mut self, client: ClientId, id: &ObjectId) -> Result<(), ObjectError> {
        self.owned(client, id)?;
        if let Some(object) = self.objects.remove(id) {
            self.release_object(object);
        }
        self.forget_create(client, id);
        Ok(())
    }

    fn sealed(&self, id: &ObjectId) -> Result<(&Object, &Layout), ObjectError> {
        let object = self
            .objects
            .get(id)
            .ok_or(ObjectError::Unknown { id: *id })?;
        match &object.phase {
            Phase::Sealed { layout } => Ok((object, layout)),
            Phase::Creating { .. } => Err(ObjectError::NotSealed { id: *id }),
        }
    }

    pub(crate) fn get(&mut self, client: ClientId, id: &ObjectId) -> Result<Response, ObjectError> {
        let (object, layout) = self.sealed(id)?;
        let response = match &object.disk {
            Some(disk) => {
                let (disk, len, layout) = (*disk, object.len, layout.clone());
                self.on_disk_reply(id, disk, len, layout)?
            }
            None => Response::Object {
                id: *id,
                offset: object.range.offset,
                len: object.len,
                layout: layout.clone(),
            },
        };
        self.pin(client, id);
        Ok(response)
    }

    /// `client` pins `id` (sealed), which was used now.
    fn pin(&mut self, client: ClientId, id: &ObjectId) {
        self.touch(*id);
        if let Some(object) = self.objects.get_mut(id) {
            object.pins += 1;
            if object.pins == 1 {
                self.gauges.pinned(object.len);
            }
        }
        *self
            .clients
            .entry(client)
            .or_default()
            .pins
            .entry(*id)
            .or_insert(0) += 1;
    }

    /// Drops one of `client`'s pins on `id`; a pin it does not hold is ignored (a late release
    /// after a delete, or a confused client: neither may unpin for others).
    pub(crate) fn release(&mut self, client: ClientId, id: &ObjectId) {
        let Some(holder) = self.clients.get_mut(&client) else {
            return;
        };
        let Some(count) = holder.pins.get_mut(id) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            holder.pins.remove(id);
        }
        self.unpin(id);
    }

    fn unpin(&mut self, id: &ObjectId) {
        if let Some(object) = self.objects.get_mut(id) {
            if object.pins == 1 {
                self.gauges.unpinned(object.len);
            }
            object.pins = object.pins.saturating_sub(1);
        } else if let Some(object) = self.zombies.get_mut(id) {
            object.pins = object.pins.saturating_sub(1);
            if object.pins == 0
                && !object.in_flight
                && let Some(object) = self.zombies.remove(id)
            {
                self.release_object(object);
            }
        }
    }

    pub(crate) fn delete(&mut self, id: &ObjectId) -> Result<(), ObjectError> {
        self.sealed(id)?;
        if let Some(object) = self.objects.remove(id) {
            self.gone(&object);
            self.bury(*id, object);
        }
        Ok(())
    }

    /// A sealed object left `objects` (deleted, taken): off the gauges, pinned or not.
    fn gone(&mut self, object: &Object) {
        self.gauges.removed(object.len);
        if object.pins > 0 {
            self.gauges.unpinned(object.len);
        }
    }

    fn bury(&mut self, id: ObjectId, object: Object) {
        self.forget_recency(&id);
        if object.pins == 0 && !object.in_flight {
            self.release_object(object);
        } else {
            self.zombies.insert(id, object);
        }
    }

    pub(crate) fn contains(&self, id: &ObjectId) -> bool {
        self.sealed(id).is_ok()
    }

    pub(crate) fn ready(&self, ids: &[ObjectId]) -> Vec<bool> {
        ids.iter().map(|id| self.contains(id)).collect()
    }

    /// Removes a sealed object and makes its memory a create of `client`'s under a new id: the
    /// same range when no pin holds it, else a new range that the caller must fill with a copy
    /// (`Some(source range)` is returned for that).
    pub(crate) fn take(
        &mut self,
        client: ClientId,
        id: &ObjectId,
    ) -> Result<(Response, Option<(Range, Range)>), ObjectError> {
        let (object, _) = self.sealed(id)?;
        if object.disk.is_some() {
            return self
                .take_from_disk(client, id)
                .map(|response| (response, None));
        }
        self.forget_recency(id);
        let (object, layout) = self.sealed(id)?;
        // Bytes on their way to the remote are read meanwhile: moved, they could be written.
        let (len, layout, pinned, source) = (
            object.len,
            layout.clone(),
            object.pins > 0 || object.in_flight,
            object.range,
        );
        let range = if pinned { self.allocate(len)? } else { source };
        if let Some(object) = self.objects.remove(id) {
            self.gone(&object);
            if pinned {
                self.zombies.insert(*id, object);
            }
        }
        let response = self.taken(client, range, len, pinned, layout);
        Ok((response, pinned.then_some((source, range))))
    }

    /// Makes `range` (`len` bytes) a create of `client`'s under `id`.
    fn insert_create(&mut self, client: ClientId, id: ObjectId, range: Range, len: u64) {
        self.objects.insert(
            id,
            Object {
                range,
                len,
                phase: Phase::Creating { owner: client },
                pins: 0,
                disk: None,
                in_flight: false,
            },
        );
        if let Some(holder) = self.clients.get_mut(&client) {
            holder.creating.insert(id);
        }
    }

    /// The reply to a take whose object is now at `range` (moved there, or `copied`): a
    /// create of `client`'s under a new id.
    fn taken(
        &mut self,
        client: ClientId,
        range: Range,
        len: u64,
        copied: bool,
        layout: Layout,
    ) -> Response {
        let id = self.new_id();
        self.insert_create(client, id, range, len);
        Response::Taken {
            id,
            offset: range.offset,
            len,
            copied,
            layout,
        }
    }

    pub(crate) fn stats(&self) -> StoreStats {
        let capacity = self.alloc.capacity();
        let mut stats = StoreStats {
            capacity,
            used_bytes: capacity - self.alloc.free(),
            high_water_mark: high_water(capacity, self.high_water_percent),
            clients: self.clients.len() as u64,
            ..StoreStats::default()
        };
        for object in self.objects.values() {
            match object.phase {
                Phase::Creating { .. } => stats.creating += 1,
                Phase::Sealed { .. } => {
                    stats.objects += 1;
                    stats.sealed_bytes += object.len;
                    if object.pins > 0 {
                        stats.pinned_objects += 1;
                        stats.pinned_bytes += object.len;
                    }
                }
            }
        }
        self.spill_stats(&mut stats);
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(len: u64) -> Layout {
        Layout::raw(len)
    }

    #[test]
    fn a_dead_client_releases_pins_and_aborts_creates_and_nothing_sealed_is_lost() {
        let mut s = State::new(StoreId(1), 4096, 80);
        let (a, b) = (s.connect(), s.connect());
        let (kept, _) = s.create(a, 100).unwrap();
        s.seal(a, &kept, layout(100)).unwrap();
        let (open, _) = s.create(b, 1000).unwrap();
        s.get(b, &kept).unwrap();
        s.get(b, &kept).unwrap();
        assert_eq!(s.stats().pinned_objects, 1);
        s.disconnect(b);
        let stats = s.stats();
        assert_eq!(
            (stats.pinned_objects, stats.creating, stats.objects),
            (0, 0, 1)
        );
        assert_eq!(stats.used_bytes, 128);
        assert!(matches!(
            s.seal(a, &open, layout(1)),
            Err(ObjectError::Unknown { .. })
        ));
        assert!(s.contains(&kept));
    }

    #[test]
    fn seal_abort_and_release_follow_ownership() {
        let mut s = State::new(StoreId(1), 4096, 80);
        let (a, b) = (s.connect(), s.connect());
        let (id, _) = s.create(a, 10).unwrap();
        assert_eq!(
            s.seal(b, &id, layout(10)),
            Err(ObjectError::NotOwner { id })
        );
        assert_eq!(s.abort(b, &id), Err(ObjectError::NotOwner { id }));
        assert_eq!(s.get(a, &id).unwrap_err(), ObjectError::NotSealed { id });
        assert!(matches!(
            s.seal(a, &id, layout(11)),
            Err(ObjectError::BadLayout { .. })
        ));
        s.seal(a, &id, layout(10)).unwrap();
        assert_eq!(
            s.seal(a, &id, layout(10)),
            Err(ObjectError::AlreadySealed { id })
        );
        assert_eq!(s.abort(a, &id), Err(ObjectError::AlreadySealed { id }));
        // b releases a pin it never took: nothing changes for a's pin.
        s.get(a, &id).unwrap();
        s.release(b, &id);
        assert_eq!(s.stats().pinned_objects, 1);
        // Deleted while pinned: gone from view, memory kept until the last release.
        s.delete(&id).unwrap();
        assert!(!s.contains(&id));
        assert_eq!(s.stats().used_bytes, 64);
        s.release(a, &id);
        assert_eq!(s.stats().used_bytes, 0);
    }

    #[test]
    fn take_moves_in_place_unless_pinned() {
        let mut s = State::new(StoreId(1), 4096, 80);
        let a = s.connect();
        let (id, range) = s.create(a, 64).unwrap();
        s.seal(a, &id, layout(64)).unwrap();
        let (response, copy) = s.take(a, &id).unwrap();
        assert!(copy.is_none());
        let Response::Taken {
            id: new,
            offset,
            copied: false,
            ..
        } = response
        else {
            panic!("{response:?}")
        };
        assert_eq!(offset, range.offset);
        s.seal(a, &new, layout(64)).unwrap();
        s.get(a, &new).unwrap();
        let (_, copy) = s.take(a, &new).unwrap();
        let (from, to) = copy.unwrap();
        assert_ne!(from.offset, to.offset);
        assert_eq!(s.stats().used_bytes, 128);
        s.release(a, &new);
        assert_eq!(s.stats().used_bytes, 64);
    }
}
