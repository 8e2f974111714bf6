//! The embedded store: objects kept inside this process, as `Bytes` (the default mode), and
//! spilled to its spill directory under memory pressure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pontoon_family::Registry;
use pontoon_wire::{Header, Message};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::alloc::ALIGN;
use crate::arena::Mapping;
use crate::error::{GetError, ObjectError, PutError};
use crate::metrics::ObjectGauges;
use crate::spill::{FileNo, MapView, Recency, Spill, Spilled};
use crate::spill_dir::SpillDir;
use crate::spill_remote::{RemoteAt, RemoteSpill};
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
    /// Percent of `capacity` above which unpinned objects spill (with a `spill_dir`);
    /// reported in [`StoreStats::high_water_mark`]. Default 80.
    pub high_water_percent: u8,
    /// Where objects spill to (default `None`: no spilling, and an object that does not fit is
    /// [`ObjectError::StoreFull`]). With a directory, a put or create that would take the
    /// store above its high-water mark first spills the least recently used objects nobody
    /// holds (no `get_raw` result alive) until it is below, and an object larger than the
    /// memory left is created on disk; the directory is locked for this store, and spill files
    /// an earlier run left there are removed. See `docs/store-format.md`, Spilling.
    pub spill_dir: Option<PathBuf>,
    /// Objects are fused into spill files (or remote objects) of up to this many bytes (an
    /// object larger than that gets one of its own). Default 100 MiB.
    pub spill_file_bytes: u64,
    /// Where objects spill to instead of a directory: a remote (`s3://bucket/prefix`, or
    /// `file:///dir`), default `None`. Objects are fused into remote objects of up to
    /// `spill_file_bytes`, read back with a range read of one object's record, and each remote
    /// object is deleted once every object in it is; spill objects an earlier run left under
    /// the prefix are removed at start, so one prefix serves one store at a time. No object
    /// is created on the remote: one larger than the memory left is
    /// [`ObjectError::StoreFull`]. Setting both this and `spill_dir` is an error, and so is
    /// a remote in a build without the crate's `remote` feature. See `docs/store-format.md`,
    /// Spilling to a remote.
    pub spill_remote: Option<SpillRemote>,
}

/// A remote to spill to ([`StoreOptions::spill_remote`]): its URL and the options that reach
/// it, with `object_store`'s `AmazonS3ConfigKey` names (`aws_endpoint`, `aws_access_key_id`,
/// `aws_secret_access_key`, `aws_region`, `aws_allow_http`, ...), which win over the usual
/// `AWS_*` environment variables. `Debug` shows the option names, never their values.
///
/// ```
/// let remote = pontoon_store::SpillRemote::new("s3://bucket/spill")
///     .option("aws_endpoint", "http://127.0.0.1:8333")
///     .option("aws_secret_access_key", "hidden");
/// assert!(!format!("{remote:?}").contains("hidden"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpillRemote {
    /// `s3://bucket/prefix` or `file:///dir`.
    pub url: String,
    /// `(key, value)` pairs for `object_store`.
    pub options: Vec<(String, String)>,
    /// How long a request may take and how often it is retried (feature `remote`;
    /// pontoon-persist's defaults: 3 retries within 15 s). A spill or a get that reaches an
    /// unreachable remote fails once these are spent, so they bound how long a put that must
    /// spill can wait on a remote that is gone.
    #[cfg(feature = "remote")]
    pub timeouts: pontoon_persist::RemoteTimeouts,
}

impl SpillRemote {
    /// The remote at `url`, with no options (the environment's `AWS_*` variables only).
    ///
    /// ```
    /// assert_eq!(pontoon_store::SpillRemote::new("file:///tmp").url, "file:///tmp");
    /// ```
    pub fn new(url: impl Into<String>) -> SpillRemote {
        SpillRemote {
            url: url.into(),
            options: Vec::new(),
            #[cfg(feature = "remote")]
            timeouts: pontoon_persist::RemoteTimeouts::default(),
        }
    }

    /// Sets [`timeouts`](SpillRemote::timeouts) (feature `remote`).
    ///
    /// ```
    /// let mut timeouts = pontoon_persist::RemoteTimeouts::default();
    /// timeouts.max_retries = 0;
    /// let remote = pontoon_store::SpillRemote::new("s3://b/p").timeouts(timeouts);
    /// assert_eq!(remote.timeouts.max_retries, 0);
    /// ```
    #[cfg(feature = "remote")]
    pub fn timeouts(mut self, timeouts: pontoon_persist::RemoteTimeouts) -> SpillRemote {
        self.timeouts = timeouts;
        self
    }

    /// Adds an option.
    ///
    /// ```
    /// let remote = pontoon_store::SpillRemote::new("s3://b/p").option("aws_region", "eu-west-1");
    /// assert_eq!(remote.options.len(), 1);
    /// ```
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> SpillRemote {
        self.options.push((key.into(), value.into()));
        self
    }
}

impl std::fmt::Debug for SpillRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Option values hold secrets.
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("SpillRemote")
            .field("url", &self.url)
            .field("options", &keys)
            .finish()
    }
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            capacity: 4 << 30,
            high_water_percent: 80,
            spill_dir: None,
            spill_file_bytes: DEFAULT_SPILL_FILE_BYTES,
            spill_remote: None,
        }
    }
}

/// The default size cap of one spill file: 16,000 objects of 1 MiB spilled make about 160 files.
pub(crate) const DEFAULT_SPILL_FILE_BYTES: u64 = 100 << 20;

/// An object created on disk: its file and its size.
type OnDisk = Option<(FileNo, u64)>;
/// Bytes of freed blocks of pulled objects an embedded store keeps warm for the next pulls.
const PULLED_POOL_BYTES: usize = 256 << 20;

enum Entry {
    /// Reserved by a [`Creating`], `bytes` counted (0 for an object created on disk).
    Creating { bytes: u64, disk: OnDisk },
    /// Sealed; `bytes` is what it counts against the capacity. `pins` has one more strong
    /// count for each frame handed out and alive (with spilling on).
    Sealed {
        message: Message,
        bytes: u64,
        pins: Arc<()>,
        disk: OnDisk,
    },
    /// Sealed and spilled: in a spill file.
    Spilled { at: Spilled },
    /// Sealed and spilled to the remote.
    Remote { at: RemoteAt },
}

struct Table {
    entries: HashMap<ObjectId, Entry>,
    used: u64,
    next_seq: u64,
    /// Objects in memory that may spill, least recently used first.
    recency: Recency,
    /// Where objects spill (`Err`: the spill directory could not be opened, and why).
    spill: Option<Result<Spill, ObjectError>>,
    /// Where objects spill with a remote (`Err`: it could not be opened, and why).
    remote: Option<Result<RemoteSpill, ObjectError>>,
    /// Bytes of objects on their way to the remote (still in memory, counted in `used`).
    spilling: u64,
    /// This store's share of the object gauges, moved with `entries`.
    gauges: ObjectGauges,
}

impl Table {
    /// Whether objects may spill (to a directory or a remote), so handed-out frames pin.
    fn spills(&self) -> bool {
        self.spill.is_some() || self.remote.is_some()
    }
}

/// Where a new object goes.
enum Place {
    Memory,
    Disk,
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
    /// Signalled when a spill to the remote is over (see [`Store::place_remote`]).
    spill_done: Condvar,
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
    /// An empty store. With a spill remote, this lists its prefix (and removes the spill
    /// objects an earlier run left there) before it returns; a remote that fails then fails
    /// the spills (see [`open`](Store::open) to have the error now).
    ///
    /// ```
    /// let store = pontoon_store::Store::new(Default::default());
    /// assert_eq!(store.stats().objects, 0);
    /// ```
    pub fn new(options: StoreOptions) -> Store {
        let id = StoreId::random();
        let spill = options.spill_dir.as_ref().map(|dir| {
            SpillDir::open(dir, id)
                .map(|d| Spill::new(d, options.spill_file_bytes))
                .map_err(|e| ObjectError::SpillFailed {
                    dir: dir.clone(),
                    reason: e.to_string(),
                })
        });
        let remote = options.spill_remote.as_ref().map(|remote| {
            if options.spill_dir.is_some() {
                return Err(ObjectError::SpillRemoteFailed {
                    url: remote.url.clone(),
                    fault: crate::RemoteFault::Other,
                    reason: "a store spills to a directory or to a remote, not both".to_owned(),
                });
            }
            RemoteSpill::open(remote, id, options.spill_file_bytes)
        });
        Store {
            id,
            options,
            table: Mutex::new(Table {
                entries: HashMap::new(),
                used: 0,
                next_seq: 1,
                recency: Recency::default(),
                spill,
                remote,
                spilling: 0,
                gauges: ObjectGauges::register(),
            }),
            sealed: Condvar::new(),
            spill_done: Condvar::new(),
            pulled: crate::pulled::PulledPool::new(PULLED_POOL_BYTES),
        }
    }

    /// A store as [`new`](Store::new) makes it, but a spill directory that cannot be opened
    /// and locked, or a spill remote that cannot be reached (or refuses the credentials), is
    /// an error now rather than at the first spill.
    ///
    /// ```
    /// let mut options = pontoon_store::StoreOptions::default();
    /// options.spill_dir = Some("/proc/version/spill".into());
    /// assert!(matches!(pontoon_store::Store::open(options), Err(pontoon_store::ObjectError::SpillFailed { .. })));
    /// ```
    pub fn open(options: StoreOptions) -> Result<Store, ObjectError> {
        let store = Store::new(options);
        let table = store.lock();
        if let Some(Err(e)) = &table.spill {
            return Err(e.clone());
        }
        if let Some(Err(e)) = &table.remote {
            return Err(e.clone());
        }
        drop(table);
        Ok(store)
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

    /// Makes room for `bytes` more: with spilling on, spills unpinned objects (least recently
    /// used first) until the store would be below its high-water mark (by `spill_slack`, so
    /// that spills come in batches); then says where
    /// the object goes (memory if it fits, else disk) or why it cannot go anywhere. A failed
    /// spill matters only if the object then does not fit.
    fn place<'s>(
        &'s self,
        mut table: MutexGuard<'s, Table>,
        bytes: u64,
    ) -> (MutexGuard<'s, Table>, Result<Place, ObjectError>) {
        if table.remote.is_some() {
            return self.place_remote(table, bytes);
        }
        let placed = self.place_local(&mut table, bytes);
        (table, placed)
    }

    fn place_local(&self, table: &mut Table, bytes: u64) -> Result<Place, ObjectError> {
        let capacity = self.options.capacity;
        let high = high_water(capacity, self.options.high_water_percent);
        let mut spill_error = None;
        if table.spill.is_some() && table.used.saturating_add(bytes) > high {
            let goal = table.used.saturating_add(bytes) - high + spill_slack(capacity);
            if let Err(e) = spill_oldest(table, goal) {
                spill_error = Some(e);
            }
        }
        let free = capacity.saturating_sub(table.used);
        if bytes <= free {
            return Ok(Place::Memory);
        }
        match (&table.spill, spill_error) {
            (Some(Ok(_)), None) => Ok(Place::Disk),
            (Some(Ok(_)), Some(e)) => Err(e),
            (Some(Err(e)), _) => Err(e.clone()),
            (None, _) => Err(ObjectError::StoreFull {
                need: bytes,
                capacity,
                free,
                largest: free,
            }),
        }
    }

    /// [`place`](Store::place) with a remote: the objects to spill are chosen and taken out
    /// of the running under the lock, put on the remote with the lock released (they stay in
    /// memory, readable, meanwhile), and replaced by their remote places under the lock again,
    /// each only if it is still there and nobody pinned it in the meantime. A failed put
    /// leaves its objects in memory. Nothing is created on the remote: an object that does not
    /// fit in memory after the spill is refused.
    fn place_remote<'s>(
        &'s self,
        mut table: MutexGuard<'s, Table>,
        bytes: u64,
    ) -> (MutexGuard<'s, Table>, Result<Place, ObjectError>) {
        let capacity = self.options.capacity;
        let high = high_water(capacity, self.options.high_water_percent);
        loop {
            let mut error = None;
            // Objects already on their way out count as gone, so that concurrent placers do not
            // spill the same bytes' worth twice.
            let after = table
                .used
                .saturating_sub(table.spilling)
                .saturating_add(bytes);
            // A remote that could not be opened matters only if the object does not fit.
            if let Some(Err(e)) = &table.remote {
                error = Some(e.clone());
            } else if after > high {
                let need = after - high + spill_slack(capacity);
                // Remote objects are never appended to, so each spill goes on until its last
                // remote object is about full (a request costs the same whatever its size), and
                // at least to one remote object's worth, a quarter of the capacity at most.
                let cap = self.options.spill_file_bytes.max(1);
                let fill = need
                    .div_ceil(cap)
                    .saturating_mul(cap)
                    .max(cap.min(capacity / 4));
                let (guard, spilled) = self.spill_to_remote(table, need, fill);
                table = guard;
                error = spilled.err();
            }
            let free = capacity.saturating_sub(table.used);
            if bytes <= free {
                return (table, Ok(Place::Memory));
            }
            // Another request's spill is under way and may free the room this one needs: wait
            // for it, then look again.
            if error.is_none() && table.spilling > 0 {
                table = self
                    .spill_done
                    .wait(table)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            let refused = error.unwrap_or_else(|| self.full(&table, bytes));
            return (table, Err(refused));
        }
    }

    /// Spills the least recently used objects nobody holds to the remote, until `need` bytes
    /// are freed and the next object would take the records past `fill` bytes, or none is
    /// left; see [`place_remote`](Store::place_remote).
    fn spill_to_remote<'s>(
        &'s self,
        mut table: MutexGuard<'s, Table>,
        need: u64,
        fill: u64,
    ) -> (MutexGuard<'s, Table>, Result<(), ObjectError>) {
        let mut ids = Vec::new();
        let mut objects: Vec<(u64, Message, u64)> = Vec::new();
        let mut freed = 0u64;
        // What the records take (each with its header, the message's head and padding), and
        // the remote object's header.
        let mut written = pontoon_persist::RECORD_FILE_HEADER_LEN as u64;
        for id in table.recency.oldest() {
            if let Some(Entry::Sealed {
                message,
                bytes,
                pins,
                disk: None,
            }) = table.entries.get(&id)
                && Arc::strong_count(pins) == 1
            {
                let record = bytes + 64 * (message.frames.len() as u64 + 4);
                if freed >= need && written.saturating_add(record) > fill {
                    break;
                }
                ids.push(id);
                objects.push((id.seq(), message.clone(), *bytes));
                freed += bytes;
                written += record;
            }
        }
        if ids.is_empty() {
            return (table, Ok(()));
        }
        let table_ref = &mut *table;
        let Some(Ok(remote)) = &mut table_ref.remote else {
            return (table, Ok(()));
        };
        let batches = match remote.batches(&objects) {
            Ok(batches) => batches,
            Err(e) => return (table, Err(e)),
        };
        let (io, store) = (remote.io(), remote.store());
        // Out of the running while they go up: no other spill picks them.
        for id in &ids {
            table.recency.remove(id);
        }
        table.spilling += freed;
        drop(table);
        let results: Vec<Result<(), ObjectError>> =
            batches.iter().map(|batch| io.put(store, batch)).collect();
        // The table's entries are then the only holders of the frames (unless someone got
        // them meanwhile): replacing them frees them.
        drop(objects);
        let mut table = self.lock();
        table.spilling -= freed;
        self.spill_done.notify_all();
        let mut error = None;
        let mut unused = Vec::new();
        let mut next = ids.iter();
        for (batch, result) in batches.iter().zip(results) {
            let batch_ids: Vec<ObjectId> = next.by_ref().take(batch.ats.len()).copied().collect();
            if let Err(e) = result {
                for id in &batch_ids {
                    if matches!(table.entries.get(id), Some(Entry::Sealed { .. })) {
                        table.recency.touch(*id);
                    }
                }
                error = Some(e);
                continue;
            }
            let table = &mut *table;
            let Some(Ok(remote)) = &mut table.remote else {
                continue;
            };
            for (id, at) in batch_ids.iter().zip(&batch.ats) {
                // Deleted, taken or pinned while it went up: its record is dead weight.
                let Some(entry) = table.entries.get_mut(id) else {
                    continue;
                };
                let Entry::Sealed {
                    message,
                    bytes,
                    pins,
                    disk: None,
                } = entry
                else {
                    continue;
                };
                if Arc::strong_count(pins) != 1 {
                    continue;
                }
                table.used -= *bytes;
                table.gauges.recounted(message.payload_len(), at.bytes);
                *entry = Entry::Remote { at: *at };
                table.recency.remove(id);
                remote.add(at);
            }
            if remote.unused(batch.object) {
                unused.push(batch.object);
            }
        }
        drop(batches);
        if !unused.is_empty() {
            drop(table);
            io.delete(store, &unused);
            table = self.lock();
        }
        (table, error.map_or(Ok(()), Err))
    }

    fn new_id(&self, table: &mut Table) -> ObjectId {
        let id = ObjectId::new(self.id, table.next_seq);
        table.next_seq += 1;
        id
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
        let payload = message.payload_len();
        let (mut table, placed) = self.place(self.lock(), bytes);
        let entry = match placed? {
            Place::Memory => {
                table.used += bytes;
                table.gauges.sealed(payload);
                Entry::Sealed {
                    message,
                    bytes,
                    pins: Arc::new(()),
                    disk: None,
                }
            }
            // Larger than the memory left: it goes straight to a spill file.
            Place::Disk => {
                let seq = table.next_seq;
                let Some(Ok(spill)) = &mut table.spill else {
                    return Err(self.full(&table, bytes));
                };
                let (mut done, error) = spill.write(&[(seq, message)]);
                match (done.pop(), error) {
                    (Some(at), _) => {
                        table.gauges.sealed(at.bytes);
                        Entry::Spilled { at }
                    }
                    (None, Some(e)) => return Err(e),
                    (None, None) => return Err(self.full(&table, bytes)),
                }
            }
        };
        let id = self.new_id(&mut table);
        if matches!(entry, Entry::Sealed { .. }) {
            table.recency.touch(id);
        }
        table.entries.insert(id, entry);
        drop(table);
        self.sealed.notify_all();
        Ok(id)
    }

    fn full(&self, table: &Table, need: u64) -> ObjectError {
        let free = self.options.capacity.saturating_sub(table.used);
        ObjectError::StoreFull {
            need,
            capacity: self.options.capacity,
            free,
            largest: free,
        }
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
        let mut guard = self.lock();
        if let Some(Entry::Remote { at }) = guard.entries.get(id) {
            let at = *at;
            return self.read_remote(guard, id, &at);
        }
        let table = &mut *guard;
        match table.entries.get(id) {
            Some(Entry::Sealed { message, pins, .. }) => {
                if !table.spills() {
                    return Ok(message.clone());
                }
                let pinned = pinned(message, pins);
                table.recency.touch(*id);
                Ok(pinned)
            }
            // Views of the spill file's map: no read copy.
            Some(Entry::Spilled { at }) => {
                let at = *at;
                match &mut table.spill {
                    Some(Ok(spill)) => spill.read(&at).map(|read| read.message),
                    _ => Err(ObjectError::Unknown { id: *id }),
                }
            }
            Some(Entry::Creating { .. }) => Err(ObjectError::NotSealed { id: *id }),
            Some(Entry::Remote { .. }) | None => Err(ObjectError::Unknown { id: *id }),
        }
    }

    /// Reads object `id` back from the remote at `at`, with the lock let go for the read. A
    /// failed read of an object deleted meanwhile is [`ObjectError::Unknown`].
    fn read_remote(
        &self,
        table: MutexGuard<'_, Table>,
        id: &ObjectId,
        at: &RemoteAt,
    ) -> Result<Message, ObjectError> {
        let Some(Ok(remote)) = &table.remote else {
            return Err(ObjectError::Unknown { id: *id });
        };
        let (io, store) = (remote.io(), remote.store());
        drop(table);
        io.read(store, id, at).map_err(|e| {
            let still = matches!(
                self.lock().entries.get(id),
                Some(Entry::Remote { at: now }) if now == at
            );
            if still {
                e
            } else {
                ObjectError::Unknown { id: *id }
            }
        })
    }

    /// Removes object `id`, spilled to the remote at `at`, from the table; deletes its remote
    /// object (with the lock let go) if it was the last live one there.
    fn drop_remote(&self, mut table: MutexGuard<'_, Table>, id: &ObjectId, at: &RemoteAt) {
        if table.entries.remove(id).is_some() {
            table.gauges.removed(at.bytes);
        }
        let Some(Ok(remote)) = &mut table.remote else {
            return;
        };
        let last = remote.free(at);
        let (io, store) = (remote.io(), remote.store());
        drop(table);
        if let Some(object) = last {
            io.delete(store, &[object]);
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
        let (mut table, placed) = self.place(self.lock(), size);
        if let Place::Disk = placed? {
            return self.create_on_disk(table, size, len);
        }
        table.used += size;
        let id = self.new_id(&mut table);
        table.entries.insert(
            id,
            Entry::Creating {
                bytes: size,
                disk: None,
            },
        );
        drop(table);
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
            buffer: Buffer::Memory { vec, pad },
            done: false,
        })
    }

    /// An object larger than the memory left, created in a file of its own in the spill
    /// directory and written through a shared map of it.
    fn create_on_disk(
        &self,
        mut table: MutexGuard<'_, Table>,
        size: u64,
        len: usize,
    ) -> Result<Creating<'_>, ObjectError> {
        let Some(Ok(spill)) = &mut table.spill else {
            return Err(self.full(&table, size));
        };
        let dir = spill.dir().to_path_buf();
        let (file, handle) = spill.create_object(size)?;
        let map = match Mapping::map(std::os::fd::AsFd::as_fd(&*handle), size, true, false) {
            Ok(map) => Arc::new(map),
            Err(e) => {
                spill.free_object(file, size);
                return Err(ObjectError::SpillFailed {
                    dir,
                    reason: format!("mapping a file for an object: {e}"),
                });
            }
        };
        let id = self.new_id(&mut table);
        table.entries.insert(
            id,
            Entry::Creating {
                bytes: 0,
                disk: Some((file, size)),
            },
        );
        Ok(Creating {
            store: self,
            id,
            buffer: Buffer::Disk { map, len },
            done: false,
        })
    }

    /// Reserves `bytes` for an object under an id another store made (a pull): `Ok(false)` when
    /// it is sealed here already (in memory or spilled), [`ObjectError::NotSealed`] when it is
    /// being created here. With spilling on, room is made as for a create; a pulled object
    /// always lands in memory, so one larger than what spilling can free is refused
    /// (`StoreFull`), not created on disk.
    pub(crate) fn reserve_foreign(&self, id: ObjectId, bytes: u64) -> Result<bool, ObjectError> {
        let table = self.lock();
        match table.entries.get(&id) {
            Some(Entry::Sealed { .. } | Entry::Spilled { .. } | Entry::Remote { .. }) => {
                return Ok(false);
            }
            Some(Entry::Creating { .. }) => return Err(ObjectError::NotSealed { id }),
            None => {}
        }
        let (mut table, placed) = self.place(table, bytes);
        match placed? {
            Place::Memory => {}
            Place::Disk => return Err(self.full(&table, bytes)),
        }
        // The lock was let go while objects spilled to a remote: the id may have come in
        // since.
        match table.entries.get(&id) {
            Some(Entry::Creating { .. }) => return Err(ObjectError::NotSealed { id }),
            Some(_) => return Ok(false),
            None => {}
        }
        table.used += bytes;
        table
            .entries
            .insert(id, Entry::Creating { bytes, disk: None });
        Ok(true)
    }

    /// Seals an object reserved by [`Store::reserve_foreign`]; from then on it may spill like
    /// any other.
    pub(crate) fn seal_foreign(&self, id: ObjectId, message: Message) {
        let mut guard = self.lock();
        let table = &mut *guard;
        if let Some(entry) = table.entries.get_mut(&id)
            && let Entry::Creating { bytes, disk } = *entry
        {
            table.gauges.sealed(message.payload_len());
            *entry = Entry::Sealed {
                message,
                bytes,
                pins: Arc::new(()),
                disk,
            };
            table.recency.touch(id);
        }
        drop(guard);
        self.sealed.notify_all();
    }

    pub(crate) fn forget(&self, id: &ObjectId) {
        let mut guard = self.lock();
        if let Some(Entry::Remote { at }) = guard.entries.get(id) {
            let at = *at;
            return self.drop_remote(guard, id, &at);
        }
        let table = &mut *guard;
        let removed = table.entries.remove(id);
        if let Some(Entry::Sealed { message, .. }) = &removed {
            table.gauges.removed(message.payload_len());
        }
        match removed {
            Some(Entry::Creating { bytes, disk } | Entry::Sealed { bytes, disk, .. }) => {
                table.used -= bytes;
                table.recency.remove(id);
                if let (Some((file, size)), Some(Ok(spill))) = (disk, &mut table.spill) {
                    spill.free_object(file, size);
                }
            }
            Some(Entry::Spilled { at }) => {
                table.gauges.removed(at.bytes);
                if let Some(Ok(spill)) = &mut table.spill {
                    spill.free(&at);
                }
            }
            Some(Entry::Remote { .. }) | None => {}
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
        let mut guard = self.lock();
        if let Some(Entry::Remote { at }) = guard.entries.get(id) {
            // Read first, removed only once read: a failed read loses nothing.
            let at = *at;
            let message = self.read_remote(guard, id, &at)?;
            let table = self.lock();
            if !matches!(table.entries.get(id), Some(Entry::Remote { at: now }) if *now == at) {
                // Taken or deleted by someone else meanwhile.
                return Err(ObjectError::Unknown { id: *id });
            }
            self.drop_remote(table, id, &at);
            return Ok(message);
        }
        let table = &mut *guard;
        match table.entries.get(id) {
            Some(Entry::Sealed { .. }) => {}
            Some(Entry::Spilled { at }) => {
                // Views of the spill file, which outlive its removal; a writer copies once.
                let at = *at;
                let Some(Ok(spill)) = &mut table.spill else {
                    return Err(ObjectError::Unknown { id: *id });
                };
                let read = spill.read(&at)?;
                spill.free(&at);
                table.entries.remove(id);
                table.gauges.removed(at.bytes);
                return Ok(read.message);
            }
            Some(Entry::Creating { .. }) => return Err(ObjectError::NotSealed { id: *id }),
            Some(Entry::Remote { .. }) | None => return Err(ObjectError::Unknown { id: *id }),
        }
        match table.entries.remove(id) {
            Some(Entry::Sealed {
                message,
                bytes,
                disk,
                ..
            }) => {
                table.used -= bytes;
                table.gauges.removed(message.payload_len());
                table.recency.remove(id);
                if let (Some((file, size)), Some(Ok(spill))) = (disk, &mut table.spill) {
                    spill.free_object(file, size);
                }
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
        let table = self.lock();
        if let Some(Entry::Remote { at }) = table.entries.get(id) {
            // Nothing to read back: only its remote object's count goes down.
            let at = *at;
            self.drop_remote(table, id, &at);
            return Ok(());
        }
        drop(table);
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
        matches!(
            self.lock().entries.get(id),
            Some(Entry::Sealed { .. } | Entry::Spilled { .. } | Entry::Remote { .. })
        )
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
                .map(|id| {
                    matches!(
                        table.entries.get(id),
                        Some(Entry::Sealed { .. } | Entry::Spilled { .. } | Entry::Remote { .. })
                    )
                })
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

    /// The store's counters (`clients` is 0; `pinned_*` count objects with frames handed out
    /// and alive, with spilling on, and are 0 without: in-process holders are then `Bytes`
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
                Entry::Sealed { message, pins, .. } => {
                    stats.objects += 1;
                    stats.sealed_bytes += message.payload_len();
                    if Arc::strong_count(pins) > 1 {
                        stats.pinned_objects += 1;
                        stats.pinned_bytes += message.payload_len();
                    }
                }
                Entry::Spilled { at } => {
                    stats.objects += 1;
                    stats.sealed_bytes += at.bytes;
                }
                Entry::Remote { at } => {
                    stats.objects += 1;
                    stats.sealed_bytes += at.bytes;
                }
            }
        }
        if let Some(Ok(remote)) = &table.remote {
            (
                stats.spilled_objects,
                stats.spilled_bytes,
                stats.spill_files,
            ) = remote.counts();
        }
        if let Some(Ok(spill)) = &table.spill {
            (
                stats.spilled_objects,
                stats.spilled_bytes,
                stats.spill_files,
            ) = spill.counts();
        }
        stats
    }
}

/// Spills the least recently used objects that nobody holds, until `goal` bytes of memory are
/// freed or none is left; what could be spilled stays spilled if an error stops the rest.
fn spill_oldest(table: &mut Table, goal: u64) -> Result<(), ObjectError> {
    let mut ids = Vec::new();
    let mut objects: Vec<(u64, Message)> = Vec::new();
    let mut freed = 0u64;
    for id in table.recency.oldest() {
        if freed >= goal {
            break;
        }
        if let Some(Entry::Sealed {
            message,
            bytes,
            pins,
            disk: None,
        }) = table.entries.get(&id)
            && Arc::strong_count(pins) == 1
        {
            ids.push(id);
            objects.push((id.seq(), message.clone()));
            freed += bytes;
        }
    }
    let Some(Ok(spill)) = &mut table.spill else {
        return Ok(());
    };
    if objects.is_empty() {
        return Ok(());
    }
    let (done, error) = spill.write(&objects);
    // The table's entries are then the only holders of the frames: replacing them frees them.
    drop(objects);
    for (id, at) in ids.iter().zip(done) {
        table.recency.remove(id);
        if let Some(Entry::Sealed { bytes, message, .. }) =
            table.entries.insert(*id, Entry::Spilled { at })
        {
            table.used -= bytes;
            table.gauges.recounted(message.payload_len(), at.bytes);
        }
    }
    error.map_or(Ok(()), Err)
}

/// The frames of `message`, each holding a strong count of `pins` while alive.
fn pinned(message: &Message, pins: &Arc<()>) -> Message {
    let frames = message
        .frames
        .iter()
        .map(|frame| {
            Bytes::from_owner(PinnedFrame {
                frame: frame.clone(),
                _pin: pins.clone(),
            })
        })
        .collect();
    Message::new(message.header.clone(), frames)
}

/// A frame handed out by an embedded store with spilling on: its object cannot spill while
/// this lives.
struct PinnedFrame {
    frame: Bytes,
    _pin: Arc<()>,
}

impl AsRef<[u8]> for PinnedFrame {
    fn as_ref(&self) -> &[u8] {
        &self.frame
    }
}

/// How far below the high-water mark a spill goes: objects put one by one above the mark then
/// spill in batches (one sequential write each), not one at a time. A sixteenth of the
/// capacity, at most 64 MiB.
pub(crate) fn spill_slack(capacity: u64) -> u64 {
    (capacity / 16).min(64 << 20)
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
    buffer: Buffer,
    done: bool,
}

/// Where a [`Creating`]'s bytes are.
enum Buffer {
    /// In memory: `vec[pad..]`, 64-byte aligned.
    Memory { vec: Vec<u8>, pad: usize },
    /// A writable shared map of a file of its own (an object larger than free memory).
    Disk { map: Arc<Mapping>, len: usize },
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
        let buffer = std::mem::replace(
            &mut self.buffer,
            Buffer::Memory {
                vec: Vec::new(),
                pad: 0,
            },
        );
        let frames = match buffer {
            Buffer::Memory { vec, pad } => {
                let all = Bytes::from(vec);
                frames
                    .iter()
                    .map(|&(offset, len)| {
                        all.slice(pad + offset as usize..pad + (offset + len) as usize)
                    })
                    .collect()
            }
            Buffer::Disk { map, .. } => frames
                .iter()
                .map(|&(offset, len)| {
                    Bytes::from_owner(MapView {
                        map: map.clone(),
                        offset: offset as usize,
                        len: len as usize,
                    })
                })
                .collect(),
        };
        let message = Message::new(header, frames);
        self.done = true;
        let mut guard = self.store.lock();
        let table = &mut *guard;
        if let Some(entry) = table.entries.get_mut(&self.id)
            && let Entry::Creating { bytes, disk } = *entry
        {
            table.gauges.sealed(message.payload_len());
            *entry = Entry::Sealed {
                message,
                bytes,
                pins: Arc::new(()),
                disk,
            };
            if disk.is_none() {
                table.recency.touch(self.id);
            }
        }
        drop(guard);
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
        match &self.buffer {
            Buffer::Memory { vec, pad } => &vec[*pad..],
            // SAFETY: the map is `len` bytes long (made for this object's file of exactly that
            // size) and kept alive by `map`; the file is this create's alone, so only this
            // buffer reaches those bytes until the seal consumes it.
            Buffer::Disk { map, len } => unsafe { std::slice::from_raw_parts(map.as_ptr(), *len) },
        }
    }
}

impl std::ops::DerefMut for Creating<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.buffer {
            Buffer::Memory { vec, pad } => &mut vec[*pad..],
            // SAFETY: as in `deref`; the map is writable, and `&mut self` makes this the only
            // reference to its bytes.
            Buffer::Disk { map, len } => unsafe {
                std::slice::from_raw_parts_mut(map.as_ptr(), *len)
            },
        }
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
