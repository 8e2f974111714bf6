//! Spilling to a remote (an `s3://bucket/prefix` of S3-compatible object storage, or a
//! `file://` directory standing in for one): objects fused into record files built in memory
//! (views of their frames, no copy) and put as one remote object each, read back with a range
//! read of exactly one record, each remote object counted by the live objects in it and deleted
//! with its last one. The bookkeeping here runs under the store's lock; the network I/O goes
//! through [`RemoteIo`], which the caller uses with the lock released.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use pontoon_persist::RecordChunks;
#[cfg(feature = "remote")]
use pontoon_persist::{RecordFile, Remote, RemoteError};
#[cfg(feature = "remote")]
use pontoon_wire::Limits;
use pontoon_wire::Message;

use crate::error::{ObjectError, RemoteFault};
use crate::metrics::SpillMetrics;
use crate::spill::describe;
#[cfg(feature = "remote")]
use crate::spill_dir::is_spill_file;
use crate::{ObjectId, StoreId};

/// The record kind of a spilled object (as in local spill files).
const KIND_OBJECT: u32 = 1;

/// Where an object spilled to the remote is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RemoteAt {
    /// The remote object's number.
    pub(crate) object: u64,
    /// The record's offset in it.
    pub(crate) offset: u64,
    /// The record's length (header and padding included).
    pub(crate) len: u64,
    /// The object's bytes (as the store counts them).
    pub(crate) bytes: u64,
}

/// The remote and what this store knows about it; the remote itself is behind an `Arc` so
/// that I/O runs with the store's lock released.
pub(crate) struct RemoteSpill {
    io: Arc<RemoteIo>,
    store: StoreId,
    file_cap: u64,
    next_object: u64,
    /// Live objects in each remote object this store put.
    live: HashMap<u64, u64>,
    objects: u64,
    bytes: u64,
    /// The spilled-object gauges, moved with `objects` and `bytes`.
    metrics: SpillMetrics,
}

impl std::fmt::Debug for RemoteSpill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSpill")
            .field("url", &self.io.url())
            .field("remote_objects", &self.live.len())
            .field("objects", &self.objects)
            .finish()
    }
}

/// Network I/O with the remote, without the store's lock. (Without the `remote` feature there
/// is none: no [`RemoteSpill`] can be opened.)
#[cfg(not(feature = "remote"))]
pub(crate) enum RemoteIo {}

#[cfg(not(feature = "remote"))]
impl RemoteIo {
    pub(crate) fn url(&self) -> &str {
        match *self {}
    }

    pub(crate) fn put(&self, _: StoreId, _: &Batch) -> Result<(), ObjectError> {
        match *self {}
    }

    pub(crate) fn read(
        &self,
        _: StoreId,
        _: &ObjectId,
        _: &RemoteAt,
    ) -> Result<Message, ObjectError> {
        match *self {}
    }

    pub(crate) fn delete(&self, _: StoreId, _: &[u64]) {
        match *self {}
    }
}

/// Network I/O with the remote, without the store's lock.
#[cfg(feature = "remote")]
pub(crate) struct RemoteIo {
    /// Always `Some` until dropped (see the `Drop`).
    remote: Option<Remote>,
    /// The spill and restore counters (the gauges are [`RemoteSpill`]'s).
    metrics: SpillMetrics,
}

#[cfg(feature = "remote")]
impl Drop for RemoteIo {
    /// The remote's runtime cannot be dropped inside another runtime (a store dropped in
    /// async code): it then goes on a thread of its own.
    fn drop(&mut self) {
        if let Some(remote) = self.remote.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            std::thread::scope(|s| {
                s.spawn(move || drop(remote));
            });
        }
    }
}

/// One fused remote object, built and ready to put, and where each object in it is.
pub(crate) struct Batch {
    pub(crate) object: u64,
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) chunks: Vec<Bytes>,
    pub(crate) ats: Vec<RemoteAt>,
}

#[cfg(feature = "remote")]
/// The name of remote object `number` of `store` (the local spill files' name, so a listing
/// tells spill objects apart the same way).
fn object_name(store: StoreId, number: u64) -> String {
    format!("spill-{:016x}-{number:08}.rec", store.0)
}

/// The store's error for a remote's `error`, classified.
#[cfg(feature = "remote")]
pub(crate) fn remote_error(url: &str, error: &RemoteError) -> ObjectError {
    let fault = classify(error);
    ObjectError::SpillRemoteFailed {
        url: url.to_owned(),
        fault,
        reason: describe(error),
    }
}

#[cfg(feature = "remote")]
fn classify(error: &RemoteError) -> RemoteFault {
    match error {
        RemoteError::Refused { .. } => return RemoteFault::Refused,
        RemoteError::Manifest { .. } => return RemoteFault::Corrupt,
        _ => {}
    }
    // object_store hides the HTTP client's error types; an io::Error (a `file://` remote) is
    // typed, the rest is told by its words.
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{QuotaExceeded, StorageFull};
            if matches!(io.kind(), StorageFull | QuotaExceeded) {
                return RemoteFault::Full;
            }
        }
        let text = e.to_string();
        if text.contains("status code: 507")
            || text.contains("QuotaExceeded")
            || text.contains("InsufficientStorage")
            || text.contains("No space left")
        {
            return RemoteFault::Full;
        }
        if text.contains("error sending request")
            || text.contains("onnection refused")
            || text.contains("dns error")
            || text.contains("timed out")
        {
            return RemoteFault::Unreachable;
        }
        next = e.source();
    }
    RemoteFault::Other
}

/// Runs `f` on the remote: right here, or, when this thread is inside a tokio runtime (a
/// store used from async code), on a short-lived thread of its own, since the remote drives
/// its requests with a runtime of its own that cannot be entered from inside another.
#[cfg(feature = "remote")]
fn on_remote<T: Send>(io: &RemoteIo, f: impl FnOnce(&Remote) -> T + Send) -> T {
    let remote = io.remote();
    if tokio::runtime::Handle::try_current().is_err() {
        return f(remote);
    }
    std::thread::scope(|s| match s.spawn(|| f(remote)).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

#[cfg(feature = "remote")]
impl RemoteIo {
    fn remote(&self) -> &Remote {
        match &self.remote {
            Some(remote) => remote,
            None => unreachable!("a remote is taken only by its drop"),
        }
    }

    /// The remote's URL.
    pub(crate) fn url(&self) -> &str {
        self.remote().url()
    }

    /// Puts a batch; the error is the store's.
    pub(crate) fn put(&self, store: StoreId, batch: &Batch) -> Result<(), ObjectError> {
        let name = object_name(store, batch.object);
        let chunks = batch.chunks.clone();
        let started = std::time::Instant::now();
        on_remote(self, |remote| remote.put(&name, chunks))
            .map_err(|e| remote_error(self.url(), &e))?;
        let bytes = batch.ats.iter().map(|at| at.bytes).sum();
        self.metrics.spilled(
            batch.ats.len() as u64,
            bytes,
            started.elapsed().as_secs_f64(),
        );
        Ok(())
    }

    /// Reads the object at `at` back: one range read of its record, checked (checksum,
    /// lengths, padding, that it is object `id`), its frames views of a 64-byte-aligned copy.
    pub(crate) fn read(
        &self,
        store: StoreId,
        id: &ObjectId,
        at: &RemoteAt,
    ) -> Result<Message, ObjectError> {
        let name = object_name(store, at.object);
        let end = at.offset.saturating_add(at.len);
        let started = std::time::Instant::now();
        let bytes = on_remote(self, |remote| remote.get_range(&name, at.offset..end))
            .map_err(|e| remote_error(self.url(), &e))?;
        let corrupt = |reason: String| ObjectError::SpillRemoteFailed {
            url: self.url().to_owned(),
            fault: RemoteFault::Corrupt,
            reason,
        };
        let bytes = aligned(bytes);
        // Whoever can write to the bucket can write this record, checksum included: what it
        // may make in memory is bounded by what the object was when it spilled, so a
        // compressed frame that claims more is refused before it is expanded.
        let mut limits = Limits::UNLIMITED;
        limits.max_frame_bytes = at.bytes;
        limits.max_header_bytes = at.bytes;
        limits.max_message_bytes = at.len;
        limits.max_expanded_bytes = at.bytes;
        let record = RecordFile::lone_record(&name, at.offset, bytes, &limits)
            .map_err(|e| corrupt(describe(&e)))?;
        if record.kind != KIND_OBJECT || record.seq != id.seq() {
            return Err(corrupt(format!(
                "{name} at {} holds record {} of kind {}, not object {id}",
                at.offset, record.seq, record.kind
            )));
        }
        self.metrics
            .restored(at.bytes, started.elapsed().as_secs_f64());
        Ok(record.message)
    }

    /// Deletes remote objects that no longer hold a live object; a failure is logged (the
    /// next start of a store on this prefix removes what is left).
    pub(crate) fn delete(&self, store: StoreId, objects: &[u64]) {
        if objects.is_empty() {
            return;
        }
        on_remote(self, |remote| {
            for &number in objects {
                let name = object_name(store, number);
                if let Err(e) = remote.delete(&name) {
                    tracing::warn!(
                        "cannot delete the spilled {name} from {}: {}",
                        remote.url(),
                        describe(&e)
                    );
                }
            }
        });
    }
}

#[cfg(feature = "remote")]
/// `bytes` themselves if they start at a multiple of 64, else a copy that does (the frames in
/// a record are 64-byte aligned from its start, and arrays want them aligned in memory).
fn aligned(bytes: Bytes) -> Bytes {
    if (bytes.as_ptr() as usize).is_multiple_of(64) {
        return bytes;
    }
    let mut vec: Vec<u8> = Vec::with_capacity(bytes.len() + 64);
    let pad = vec.as_ptr().align_offset(64).min(64);
    vec.resize(pad, 0);
    vec.extend_from_slice(&bytes);
    Bytes::from(vec).slice(pad..)
}

impl RemoteSpill {
    /// Without the `remote` feature, a spill remote is refused.
    #[cfg(not(feature = "remote"))]
    pub(crate) fn open(
        at: &crate::SpillRemote,
        _store: StoreId,
        _file_cap: u64,
    ) -> Result<RemoteSpill, ObjectError> {
        Err(ObjectError::SpillRemoteFailed {
            url: at.url.clone(),
            fault: RemoteFault::Other,
            reason: "this pontoon-store is built without its `remote` feature".to_owned(),
        })
    }

    /// Opens the remote `at` names for `store`, and removes the spill objects an
    /// earlier run left under its prefix (nothing in them is trusted). Makes requests, so it
    /// runs before the store is shared.
    #[cfg(feature = "remote")]
    pub(crate) fn open(
        at: &crate::SpillRemote,
        store: StoreId,
        file_cap: u64,
    ) -> Result<RemoteSpill, ObjectError> {
        let url = at.url.as_str();
        let remote = Remote::open_with(url, at.options.iter().cloned(), at.timeouts)
            .map_err(|e| remote_error(url, &e))?;
        let io = RemoteIo {
            remote: Some(remote),
            metrics: SpillMetrics::register(),
        };
        let stale: Vec<String> = on_remote(&io, |remote| remote.list())
            .map_err(|e| remote_error(url, &e))?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| is_spill_file(name))
            .collect();
        on_remote(&io, |remote| {
            stale.iter().try_for_each(|name| remote.delete(name))
        })
        .map_err(|e| remote_error(url, &e))?;
        if !stale.is_empty() {
            tracing::warn!(
                "removed {} spill objects an earlier store left under {url}",
                stale.len()
            );
        }
        Ok(RemoteSpill {
            io: Arc::new(io),
            store,
            file_cap: file_cap.max(1),
            next_object: 1,
            live: HashMap::new(),
            objects: 0,
            bytes: 0,
            metrics: SpillMetrics::register(),
        })
    }

    /// The I/O half, to use without the store's lock.
    pub(crate) fn io(&self) -> Arc<RemoteIo> {
        self.io.clone()
    }

    /// The store whose objects these are.
    pub(crate) fn store(&self) -> StoreId {
        self.store
    }

    /// About how many bytes each remote object holds (an object larger than that gets one of
    /// its own).
    pub(crate) fn file_cap(&self) -> u64 {
        self.file_cap
    }

    /// Live spilled objects, their bytes, and the remote objects holding them.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        (self.objects, self.bytes, self.live.len() as u64)
    }

    /// Lays `objects` (sequence number, message, bytes counted) out as fused record files of
    /// about the size cap each (an object larger than that gets one of its own), numbered now.
    /// Copies no frame.
    pub(crate) fn batches(
        &mut self,
        objects: &[(u64, Message, u64)],
    ) -> Result<Vec<Batch>, ObjectError> {
        let mut batches: Vec<Batch> = Vec::new();
        let mut current: Option<(u64, RecordChunks, Vec<RemoteAt>)> = None;
        for (seq, message, bytes) in objects {
            let estimate = bytes + 64 * (message.frames.len() as u64 + 4);
            if let Some((_, chunks, _)) = &current
                && !chunks.is_empty()
                && chunks.len().saturating_add(estimate) > self.file_cap
                && let Some((object, chunks, ats)) = current.take()
            {
                batches.push(Batch {
                    object,
                    chunks: chunks.into_chunks(),
                    ats,
                });
            }
            let (object, chunks, ats) = current.get_or_insert_with(|| {
                let number = self.next_object;
                self.next_object += 1;
                (number, RecordChunks::new(self.store.0), Vec::new())
            });
            let at = chunks.append(KIND_OBJECT, *seq, message).map_err(|e| {
                ObjectError::SpillRemoteFailed {
                    url: self.io.url().to_owned(),
                    fault: RemoteFault::Other,
                    reason: describe(&e),
                }
            })?;
            ats.push(RemoteAt {
                object: *object,
                offset: at.offset,
                len: at.len,
                bytes: *bytes,
            });
        }
        if let Some((object, chunks, ats)) = current {
            batches.push(Batch {
                object,
                chunks: chunks.into_chunks(),
                ats,
            });
        }
        Ok(batches)
    }

    /// An object now lives on the remote at `at`.
    pub(crate) fn add(&mut self, at: &RemoteAt) {
        *self.live.entry(at.object).or_insert(0) += 1;
        self.objects += 1;
        self.bytes += at.bytes;
        self.metrics.on_disk(1, at.bytes);
    }

    /// A remote object was put but nothing in it is live (every object in it was deleted or
    /// pinned while it went up): the caller deletes it.
    pub(crate) fn unused(&self, object: u64) -> bool {
        !self.live.contains_key(&object)
    }

    /// The object at `at` is gone; returns the remote object to delete if it was its last.
    pub(crate) fn free(&mut self, at: &RemoteAt) -> Option<u64> {
        self.objects = self.objects.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(at.bytes);
        self.metrics.off_disk(at.bytes);
        let live = self.live.get_mut(&at.object)?;
        *live = live.saturating_sub(1);
        if *live == 0 {
            self.live.remove(&at.object);
            return Some(at.object);
        }
        None
    }
}

impl Drop for RemoteSpill {
    /// A store that goes away deletes what it spilled: nothing in it is of use to anyone else.
    fn drop(&mut self) {
        let objects: Vec<u64> = self.live.keys().copied().collect();
        self.io.delete(self.store, &objects);
    }
}
