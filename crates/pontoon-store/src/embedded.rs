//! The embedded store: objects kept inside this process, as `Bytes` (the default mode).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pontoon_family::Registry;
use pontoon_wire::{Header, Message};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::alloc::ALIGN;
use crate::error::{GetError, ObjectError, PutError};
use crate::{ObjectId, StoreId, StoreStats};

/// How an embedded [`Store`] is set up.
///
/// ```
/// let mut options = pontoon_store::StoreOptions::default();
/// options.capacity = 64 << 20;
/// let store = pontoon_store::Store::new(options);
/// assert_eq!(store.stats().capacity, 64 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Most bytes of objects the store holds (sealed and being created). Default 4 GiB.
    pub capacity: u64,
    /// Percent of `capacity` above which spilling will start once it exists; reported in
    /// [`StoreStats::high_water_mark`]. Default 80.
    pub high_water_percent: u8,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            capacity: 4 << 30,
            high_water_percent: 80,
        }
    }
}

/// Bytes of freed blocks of pulled objects an embedded store keeps warm for the next pulls.
const PULLED_POOL_BYTES: usize = 256 << 20;

enum Entry {
    /// Reserved by a [`Creating`], `bytes` counted.
    Creating { bytes: u64 },
    /// Sealed; `bytes` is what it counts against the capacity.
    Sealed { message: Message, bytes: u64 },
}

struct Table {
    entries: HashMap<ObjectId, Entry>,
    used: u64,
    next_seq: u64,
}

/// An object store inside this process: put a value or a message once, get it back as views of
/// the same memory, no copy either way.
///
/// Objects are immutable once sealed; a [`get_raw`](Store::get_raw) hands out clones of the
/// frames' `Bytes` (views), and [`take`](Store::take) removes an object and hands its frames
/// over, writable in place when nobody else holds them (through `Array::make_mut` or
/// `Bytes::try_into_mut`), copied once otherwise. `Store` is `Sync`: share it in an `Arc`.
///
/// ```
/// use pontoon_store::{Store, StoreOptions};
/// let store = Store::new(StoreOptions::default());
/// let registry = pontoon_family::Registry::new();
/// let id = store.put(&registry, &vec![1.5f64, 2.5])?;
/// assert_eq!(store.get::<Vec<f64>>(&registry, &id)?, vec![1.5, 2.5]);
/// assert!(store.contains(&id));
/// store.delete(&id)?;
/// assert!(!store.contains(&id));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Store {
    id: StoreId,
    options: StoreOptions,
    table: Mutex<Table>,
    sealed: Condvar,
    /// Warm blocks for objects pulled from peers.
    pulled: crate::pulled::PulledPool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("id", &self.id)
            .field("options", &self.options)
            .finish()
    }
}

impl Store {
    /// An empty store.
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// assert_eq!(store.stats().objects, 0);
    /// ```
    pub fn new(options: StoreOptions) -> Store {
        Store {
            id: StoreId::random(),
            options,
            table: Mutex::new(Table {
                entries: HashMap::new(),
                used: 0,
                next_seq: 1,
            }),
            sealed: Condvar::new(),
            pulled: crate::pulled::PulledPool::new(PULLED_POOL_BYTES),
        }
    }

    /// This store's id: every [`ObjectId`] it makes starts with it.
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// let id = store.put_raw(pontoon_wire::Message::default())?;
    /// assert_eq!(id.store(), store.id());
    /// # Ok::<(), pontoon_store::ObjectError>(())
    /// ```
    pub fn id(&self) -> StoreId {
        self.id
    }

    /// Blocks for objects pulled from peers, reused as pulled objects are dropped.
    pub(crate) fn pulled_pool(&self) -> &crate::pulled::PulledPool {
        &self.pulled
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere while holding the lock leaves the table consistent (each change is
        // one insert or remove), so a poisoned lock is still good to use.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reserve(&self, table: &mut Table, bytes: u64) -> Result<ObjectId, ObjectError> {
        let capacity = self.options.capacity;
        let free = capacity.saturating_sub(table.used);
        if bytes > free {
            return Err(ObjectError::StoreFull {
                need: bytes,
                capacity,
                free,
                largest: free,
            });
        }
        table.used += bytes;
        let id = ObjectId::new(self.id, table.next_seq);
        table.next_seq += 1;
        Ok(id)
    }

    /// Serializes `value` through `registry` and stores the message: its frames are kept as
    /// they are, not copied.
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// let registry = pontoon_family::Registry::new();
    /// let id = store.put(&registry, &("answer".to_string(), 42u8))?;
    /// assert_eq!(store.get::<(String, u8)>(&registry, &id)?, ("answer".into(), 42));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put<T: Serialize + std::any::Any>(
        &self,
        registry: &Registry,
        value: &T,
    ) -> Result<ObjectId, PutError> {
        let message = registry.serialize(value).map_err(PutError::Serialize)?;
        self.put_raw(message).map_err(PutError::Store)
    }

    /// Gets a value back through `registry`: arrays and `Buffer`s in it are views of the stored
    /// frames.
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// let registry = pontoon_family::Registry::new();
    /// let id = store.put(&registry, &7u64)?;
    /// assert_eq!(store.get::<u64>(&registry, &id)?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get<T: DeserializeOwned + std::any::Any>(
        &self,
        registry: &Registry,
        id: &ObjectId,
    ) -> Result<T, GetError> {
        let message = self.get_raw(id).map_err(GetError::Store)?;
        registry
            .deserialize(&message)
            .map_err(GetError::Deserialize)
    }

    /// Stores a message as it is (header and frames, no copy) and seals it.
    ///
    /// ```
    /// use bytes::Bytes;
    /// let store = pontoon_store::Store::new(Default::default());
    /// let frame = Bytes::from(vec![7u8; 1 << 20]);
    /// let id = store.put_raw(pontoon_wire::Message::new(pontoon_wire::Header::empty(), vec![frame.clone()]))?;
    /// let back = store.get_raw(&id)?;
    /// assert_eq!(back.frames[0].as_ptr(), frame.as_ptr()); // the same memory
    /// # Ok::<(), pontoon_store::ObjectError>(())
    /// ```
    pub fn put_raw(&self, message: Message) -> Result<ObjectId, ObjectError> {
        let bytes = message.payload_len() + message.header.as_bytes().len() as u64;
        let mut table = self.lock();
        let id = self.reserve(&mut table, bytes)?;
        table.entries.insert(id, Entry::Sealed { message, bytes });
        drop(table);
        self.sealed.notify_all();
        Ok(id)
    }

    /// The sealed object `id`: its header and frames, views of the stored memory.
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// let id = store.put_raw(pontoon_wire::Message::default())?;
    /// assert!(store.get_raw(&id)?.frames.is_empty());
    /// # Ok::<(), pontoon_store::ObjectError>(())
    /// ```
    pub fn get_raw(&self, id: &ObjectId) -> Result<Message, ObjectError> {
        match self.lock().entries.get(id) {
            Some(Entry::Sealed { message, .. }) => Ok(message.clone()),
            Some(Entry::Creating { .. }) => Err(ObjectError::NotSealed { id: *id }),
            None => Err(ObjectError::Unknown { id: *id }),
        }
    }

    /// Reserves `size` bytes for a new object and returns them writable, zeroed; the object
    /// gets its id now (so others can [`wait`](Store::wait) for it) and becomes visible when
    /// [`Creating::seal`] is called. Dropping the buffer unsealed aborts it.
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// let mut buffer = store.create(4)?;
    /// buffer.copy_from_slice(b"abcd");
    /// let id = buffer.seal();
    /// assert_eq!(&store.get_raw(&id)?.frames[0][..], b"abcd");
    /// # Ok::<(), pontoon_store::ObjectError>(())
    /// ```
    pub fn create(&self, size: u64) -> Result<Creating<'_>, ObjectError> {
        let len = usize::try_from(size).map_err(|_| ObjectError::OutOfMemory { bytes: size })?;
        let id = {
            let mut table = self.lock();
            let id = self.reserve(&mut table, size)?;
            table.entries.insert(id, Entry::Creating { bytes: size });
            id
        };
        let mut vec: Vec<u8> = Vec::new();
        let align = ALIGN as usize;
        if vec.try_reserve_exact(len.saturating_add(align)).is_err() {
            self.forget(&id);
            return Err(ObjectError::OutOfMemory { bytes: size });
        }
        let pad = vec.as_ptr().align_offset(align).min(align);
        vec.resize(pad + len, 0);
        Ok(Creating {
            store: self,
            id,
            vec,
            pad,
            done: false,
        })
    }

    /// Reserves `bytes` for an object under an id another store made (a pull): `Ok(false)` when
    /// it is sealed here already, [`ObjectError::NotSealed`] when it is being created here.
    pub(crate) fn reserve_foreign(&self, id: ObjectId, bytes: u64) -> Result<bool, ObjectError> {
        let mut table = self.lock();
        match table.entries.get(&id) {
            Some(Entry::Sealed { .. }) => return Ok(false),
            Some(Entry::Creating { .. }) => return Err(ObjectError::NotSealed { id }),
            None => {}
        }
        let capacity = self.options.capacity;
        let free = capacity.saturating_sub(table.used);
        if bytes > free {
            return Err(ObjectError::StoreFull {
                need: bytes,
                capacity,
                free,
                largest: free,
            });
        }
        table.used += bytes;
        table.entries.insert(id, Entry::Creating { bytes });
        Ok(true)
    }

    /// Seals an object reserved by [`Store::reserve_foreign`].
    pub(crate) fn seal_foreign(&self, id: ObjectId, message: Message) {
        let mut table = self.lock();
        if let Some(entry) = table.entries.get_mut(&id) {
            let bytes = match entry {
                Entry::Creating { bytes } | Entry::Sealed { bytes, .. } => *bytes,
            };
            *entry = Entry::Sealed { message, bytes };
        }
        drop(table);
        self.sealed.notify_all();
    }

    pub(crate) fn forget(&self, id: &ObjectId) {
        let mut table = self.lock();
        if let Some(Entry::Creating { bytes } | Entry::Sealed { bytes, .. }) =
            table.entries.remove(id)
        {
            table.used -= bytes;
        }
    }

    /// Removes the sealed object `id` and hands its message over. Its frames are the stored
    /// `Bytes`: when no other holder has a clone (no `get_raw` result alive), they are unique and
    /// `Array::make_mut` or `Bytes::try_into_mut` writes them in place; otherwise those copy once.
    ///
    /// ```
    /// use bytes::Bytes;
    /// let store = pontoon_store::Store::new(Default::default());
    /// let id = store.put_raw(pontoon_wire::Message::new(
    ///     pontoon_wire::Header::empty(),
    ///     vec![Bytes::from(vec![1u8; 64])],
    /// ))?;
    /// let mut message = store.take(&id)?;
    /// assert!(!store.contains(&id));
    /// let frame = message.frames.pop().unwrap();
    /// assert!(frame.try_into_mut().is_ok()); // nobody else held it: writable in place
    /// # Ok::<(), pontoon_store::ObjectError>(())
    /// ```
    pub fn take(&self, id: &ObjectId) -> Result<Message, ObjectError> {
        let mut table = self.lock();
        match table.entries.get(id) {
            Some(Entry::Sealed { .. }) => {}
            Some(Entry::Creating { .. }) => return Err(ObjectError::NotSealed { id: *id }),
            None => return Err(ObjectError::Unknown { id: *id }),
        }
        match table.entries.remove(id) {
            Some(Entry::Sealed { message, bytes }) => {
                table.used -= bytes;
                Ok(message)
            }
            _ => Err(ObjectError::Unknown { id: *id }),
        }
    }

    /// Removes the sealed object `id`. Frames already handed out stay valid (they are `Bytes`).
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// let id = store.put_raw(pontoon_wire::Message::default())?;
    /// store.delete(&id)?;
    /// assert!(matches!(store.delete(&id), Err(pontoon_store::ObjectError::Unknown { .. })));
    /// # Ok::<(), pontoon_store::ObjectError>(())
    /// ```
    pub fn delete(&self, id: &ObjectId) -> Result<(), ObjectError> {
        self.take(id).map(drop)
    }

    /// Whether a sealed object `id` is in the store.
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// let buffer = store.create(8)?;
    /// assert!(!store.contains(&buffer.id())); // not sealed yet
    /// let id = buffer.seal();
    /// assert!(store.contains(&id));
    /// # Ok::<(), pontoon_store::ObjectError>(())
    /// ```
    pub fn contains(&self, id: &ObjectId) -> bool {
        matches!(self.lock().entries.get(id), Some(Entry::Sealed { .. }))
    }

    /// Blocks until every object in `ids` is sealed or `timeout` passes; says, for each, whether
    /// it is sealed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let store = std::sync::Arc::new(pontoon_store::Store::new(Default::default()));
    /// let buffer = store.create(8)?;
    /// let id = buffer.id();
    /// assert_eq!(store.wait(&[id], Duration::from_millis(1)), vec![false]);
    /// std::thread::scope(|s| {
    ///     s.spawn(move || buffer.seal());
    ///     assert_eq!(store.wait(&[id], Duration::from_secs(60)), vec![true]);
    /// });
    /// # Ok::<(), pontoon_store::ObjectError>(())
    /// ```
    pub fn wait(&self, ids: &[ObjectId], timeout: Duration) -> Vec<bool> {
        let deadline = Instant::now().checked_add(timeout);
        let mut table = self.lock();
        loop {
            let ready: Vec<bool> = ids
                .iter()
                .map(|id| matches!(table.entries.get(id), Some(Entry::Sealed { .. })))
                .collect();
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if ready.iter().all(|&r| r) || left.is_zero() {
                return ready;
            }
            table = self
                .sealed
                .wait_timeout(table, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// The store's counters (`pinned_*` and `clients` are 0: in-process holders are `Bytes`
    /// clones, which the store does not count).
    ///
    /// ```
    /// let mut options = pontoon_store::StoreOptions::default();
    /// options.capacity = 1000;
    /// let store = pontoon_store::Store::new(options);
    /// assert_eq!(store.stats().high_water_mark, 800);
    /// ```
    pub fn stats(&self) -> StoreStats {
        let table = self.lock();
        let mut stats = StoreStats {
            capacity: self.options.capacity,
            high_water_mark: high_water(self.options.capacity, self.options.high_water_percent),
            used_bytes: table.used,
            ..StoreStats::default()
        };
        for entry in table.entries.values() {
            match entry {
                Entry::Creating { .. } => stats.creating += 1,
                Entry::Sealed { message, .. } => {
                    stats.objects += 1;
                    stats.sealed_bytes += message.payload_len();
                }
            }
        }
        stats
    }
}

/// `percent` of `capacity`, without overflow.
pub(crate) fn high_water(capacity: u64, percent: u8) -> u64 {
    (u128::from(capacity) * u128::from(percent.min(100)) / 100) as u64
}

/// An object being created in an embedded [`Store`]: a zeroed, 64-byte-aligned buffer to write
/// into (`DerefMut<Target = [u8]>`), sealed into the store without a copy.
///
/// ```
/// let store = pontoon_store::Store::new(Default::default());
/// let mut buffer = store.create(1 << 20)?;
/// assert_eq!(buffer.as_ptr() as usize % 64, 0);
/// buffer[0] = 1;
/// let ptr = buffer.as_ptr();
/// let id = buffer.seal();
/// assert_eq!(store.get_raw(&id)?.frames[0].as_ptr(), ptr); // sealed in place
/// # Ok::<(), pontoon_store::ObjectError>(())
/// ```
pub struct Creating<'a> {
    store: &'a Store,
    id: ObjectId,
    vec: Vec<u8>,
    pad: usize,
    done: bool,
}

impl std::fmt::Debug for Creating<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creating")
            .field("id", &self.id)
            .field("len", &self.len())
            .finish()
    }
}

impl Creating<'_> {
    /// The id the object will have.
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// let buffer = store.create(1)?;
    /// assert_eq!(buffer.id().store(), store.id());
    /// # Ok::<(), pontoon_store::ObjectError>(())
    /// ```
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// Seals the buffer as one frame with an empty header; from now on it is immutable (this
    /// consumes the buffer, so nothing can write to it after the seal).
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// let id = store.create(3)?.seal();
    /// assert_eq!(store.get_raw(&id)?.frames[0].len(), 3);
    /// # Ok::<(), pontoon_store::ObjectError>(())
    /// ```
    pub fn seal(self) -> ObjectId {
        let len = self.len() as u64;
        match self.seal_with(Header::empty(), &[(0, len)]) {
            Ok(id) => id,
            // One frame covering the whole buffer always lies inside it.
            Err(_) => unreachable_layout(),
        }
    }

    /// Seals the buffer as a message: `header`, and frames at `(offset, len)` of the buffer
    /// (views of it, no copy).
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// let mut buffer = store.create(128)?;
    /// buffer[64..67].copy_from_slice(b"abc");
    /// let id = buffer.seal_with(pontoon_wire::Header::from_serde(&"two")?, &[(0, 3), (64, 3)])?;
    /// assert_eq!(&store.get_raw(&id)?.frames[1][..], b"abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seal_with(
        mut self,
        header: Header,
        frames: &[(u64, u64)],
    ) -> Result<ObjectId, ObjectError> {
        let layout = crate::protocol::Layout {
            header: header.clone().into_bytes(),
            frames: frames.to_vec(),
        };
        layout.check(self.id, self.len() as u64)?;
        let pad = self.pad;
        let all = Bytes::from(std::mem::take(&mut self.vec));
        let frames = frames
            .iter()
            .map(|&(offset, len)| all.slice(pad + offset as usize..pad + (offset + len) as usize))
            .collect();
        let message = Message::new(header, frames);
        self.done = true;
        let mut table = self.store.lock();
        if let Some(entry) = table.entries.get_mut(&self.id) {
            let bytes = match entry {
                Entry::Creating { bytes } | Entry::Sealed { bytes, .. } => *bytes,
            };
            *entry = Entry::Sealed { message, bytes };
        }
        drop(table);
        self.store.sealed.notify_all();
        Ok(self.id)
    }

    /// Gives the object up: its id is forgotten and its bytes freed (dropping the buffer does the
    /// same).
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// let buffer = store.create(8)?;
    /// let id = buffer.id();
    /// buffer.abort();
    /// assert!(matches!(store.get_raw(&id), Err(pontoon_store::ObjectError::Unknown { .. })));
    /// # Ok::<(), pontoon_store::ObjectError>(())
    /// ```
    pub fn abort(self) {
        drop(self);
    }
}

fn unreachable_layout() -> ! {
    unreachable!("a frame covering the whole buffer lies inside it")
}

impl std::ops::Deref for Creating<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.vec[self.pad..]
    }
}

impl std::ops::DerefMut for Creating<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.pad..]
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.store.forget(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_is_typed_and_names_capacity_and_need() {
        let store = Store::new(StoreOptions {
            capacity: 100,
            ..Default::default()
        });
        let _a = store.create(60).unwrap();
        let err = store.create(50).unwrap_err();
        assert_eq!(
            err,
            ObjectError::StoreFull {
                need: 50,
                capacity: 100,
                free: 40,
                largest: 40
            }
        );
        assert!(
            err.to_string().contains("50 bytes needed, 40 of 100 free"),
            "{err}"
        );
        // A capacity smaller than one object.
        assert!(matches!(
            store.create(1000),
            Err(ObjectError::StoreFull { .. })
        ));
    }

    #[test]
    fn a_dropped_create_frees_its_bytes_and_a_bad_layout_is_refused() {
        let store = Store::new(StoreOptions {
            capacity: 100,
            ..Default::default()
        });
        drop(store.create(100).unwrap());
        assert_eq!(store.stats().used_bytes, 0);
        let buffer = store.create(10).unwrap();
        let id = buffer.id();
        let err = buffer.seal_with(Header::empty(), &[(5, 6)]).unwrap_err();
        assert!(matches!(err, ObjectError::BadLayout { .. }), "{err}");
        assert!(matches!(
            store.get_raw(&id),
            Err(ObjectError::Unknown { .. })
        ));
        let err = store
            .create(10)
            .unwrap()
            .seal_with(Header::empty(), &[(u64::MAX, 2)]);
        assert!(matches!(err, Err(ObjectError::BadLayout { .. })));
        assert_eq!(store.stats().used_bytes, 0);
    }

    #[test]
    fn take_is_in_place_when_sole_holder_and_a_copy_otherwise() {
        let store = Store::new(StoreOptions::default());
        let id = store
            .put_raw(Message::new(
                Header::empty(),
                vec![Bytes::from(vec![3u8; 4096])],
            ))
            .unwrap();
        let held = store.get_raw(&id).unwrap();
        let mut taken = store.take(&id).unwrap();
        let frame = taken.frames.pop().unwrap();
        // Another holder: the frame is shared, so a writer must copy.
        let frame = frame.try_into_mut().unwrap_err();
        drop(held);
        let ptr = frame.as_ptr();
        let mut writable = frame.try_into_mut().unwrap();
        writable[0] = 9;
        assert_eq!(writable.as_ptr(), ptr);
        assert!(matches!(store.take(&id), Err(ObjectError::Unknown { .. })));
    }
}
