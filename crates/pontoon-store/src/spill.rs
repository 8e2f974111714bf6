//! Spilling's files: objects written sequentially into record files in the spill directory
//! (small ones fused into one file up to a size cap), each file counted by the live objects in
//! it and removed once the last is freed; objects created on disk, a file each; and a spilled
//! object read back as views of its file's read-only map. Which objects to spill, and when, is
//! the caller's policy; [`Recency`] is the order it picks them in.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pontoon_persist::{RecordFile, RecordFileError, RecordFileWriter};
use pontoon_wire::{Limits, Message};

use crate::ObjectId;
use crate::error::ObjectError;
use crate::metrics::SpillMetrics;
use crate::spill_dir::SpillDir;

/// A spill file's number, unique in one store's run.
pub(crate) type FileNo = u64;

/// The record kind of a spilled object.
const KIND_OBJECT: u32 = 1;

/// Where a spilled object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spilled {
    pub(crate) file: FileNo,
    /// The record's offset in the file.
    pub(crate) offset: u64,
    /// The record's length in the file (header and padding included).
    pub(crate) len: u64,
    /// The object's bytes (as the store counts them).
    pub(crate) bytes: u64,
}

/// A spilled object read back: its message (frames are views of the map) and each frame's
/// `(offset, len)` in the file.
pub(crate) struct ReadBack {
    pub(crate) message: Message,
    pub(crate) frames: Vec<(u64, u64)>,
}

enum Kind {
    /// Records of spilled objects.
    Records,
    /// One object created on disk.
    Object,
}

struct SpillFile {
    path: PathBuf,
    /// Open for reading (records) or reading and writing (an object created on disk): the
    /// descriptor a daemon's client receives.
    file: Arc<File>,
    kind: Kind,
    /// Live objects in it.
    objects: u64,
    /// The newest map of it (records only), remade when a record lies past its end.
    map: Option<RecordFile>,
    /// Offsets of the records read back and checked once: read again without a second pass
    /// over their bytes (the file is this store's alone).
    checked: HashSet<u64>,
}

/// The files a store spills into; see the module docs.
pub(crate) struct Spill {
    dir: SpillDir,
    file_cap: u64,
    files: HashMap<FileNo, SpillFile>,
    /// The record file being filled.
    writer: Option<(FileNo, RecordFileWriter)>,
    next_file: FileNo,
    /// Live spilled objects (created on disk included) and their bytes.
    objects: u64,
    bytes: u64,
    /// Moved with `objects` and `bytes`, and with each spill and read back.
    metrics: SpillMetrics,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("dir", &self.dir.path())
            .field("files", &self.files.len())
            .field("objects", &self.objects)
            .finish()
    }
}

/// The error a failed spill file operation is, for the store's callers.
pub(crate) fn spill_error(dir: &Path, need: u64, error: &RecordFileError) -> ObjectError {
    if error.is_disk_full() {
        ObjectError::SpillDiskFull {
            dir: dir.to_path_buf(),
            need,
        }
    } else {
        ObjectError::SpillFailed {
            dir: dir.to_path_buf(),
            reason: describe(error),
        }
    }
}

fn io_error(dir: &Path, need: u64, what: &str, error: std::io::Error) -> ObjectError {
    use std::io::ErrorKind::{QuotaExceeded, StorageFull};
    if matches!(error.kind(), StorageFull | QuotaExceeded) {
        ObjectError::SpillDiskFull {
            dir: dir.to_path_buf(),
            need,
        }
    } else {
        ObjectError::SpillFailed {
            dir: dir.to_path_buf(),
            reason: format!("{what}: {error}"),
        }
    }
}

/// `error` and its causes, one line, as a refusal's reason.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

impl Spill {
    /// Spills into `dir`, fusing objects into record files of about `file_cap` bytes (an object
    /// larger than that gets a file of its own).
    pub(crate) fn new(dir: SpillDir, file_cap: u64) -> Spill {
        Spill {
            dir,
            file_cap: file_cap.max(1),
            files: HashMap::new(),
            writer: None,
            next_file: 1,
            objects: 0,
            bytes: 0,
            metrics: SpillMetrics::register(),
        }
    }

    /// The spill directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Live spilled objects, their bytes, and the spill files on disk.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        (self.objects, self.bytes, self.files.len() as u64)
    }

    /// The descriptor of spill file `file` (for a daemon's client to map it).
    pub(crate) fn file(&self, file: FileNo) -> Option<&Arc<File>> {
        self.files.get(&file).map(|f| &f.file)
    }

    /// A record file to append about `need` more bytes to: the current one, unless it is not
    /// empty and `need` would take it past the cap (it is then finished and a new one begun).
    fn writer_for(&mut self, need: u64) -> Result<FileNo, ObjectError> {
        if let Some((number, writer)) = &self.writer
            && (writer.is_empty() || writer.len().saturating_add(need) <= self.file_cap)
        {
            return Ok(*number);
        }
        if let Some((number, writer)) = self.writer.take() {
            let path = writer.path().to_path_buf();
            // The objects in it are readable from the page cache either way; the sync makes
            // each file cost one fdatasync (and the directory one fsync), not one per object.
            if let Err(e) = writer.finish() {
                tracing::error!(
                    "spill file {} did not sync ({}); its objects are read from the page cache",
                    path.display(),
                    describe(&e)
                );
            }
            if self.files.get(&number).is_some_and(|f| f.objects == 0) {
                self.remove(number);
            }
        }
        let number = self.next_file;
        self.next_file += 1;
        let path = self.dir.records_path(number);
        tracing::debug!(path = %path.display(), "spill file started");
        let writer = RecordFileWriter::create(&path, self.dir.store().0).map_err(|e| {
            let _ = std::fs::remove_file(&path);
            spill_error(self.dir.path(), need, &e)
        })?;
        let file = File::open(&path).map_err(|e| {
            let _ = std::fs::remove_file(&path);
            io_error(self.dir.path(), need, "opening a spill file to read", e)
        })?;
        self.files.insert(
            number,
            SpillFile {
                path,
                file: Arc::new(file),
                kind: Kind::Records,
                objects: 0,
                map: None,
                checked: HashSet::new(),
            },
        );
        self.writer = Some((number, writer));
        Ok(number)
    }

    /// Writes each object (its sequence number and message) into record files, in order, and
    /// makes them readable. Returns where the objects went: all of them, or on an error (a
    /// full disk) the ones before the failure, which are spilled, and the error; the rest are
    /// not, and must stay where they are.
    pub(crate) fn write(
        &mut self,
        objects: &[(u64, Message)],
    ) -> (Vec<Spilled>, Option<ObjectError>) {
        let started = std::time::Instant::now();
        let mut done: Vec<Spilled> = Vec::with_capacity(objects.len());
        let mut error = None;
        for (seq, message) in objects {
            let bytes = message.payload_len() + message.header.as_bytes().len() as u64;
            // What the record takes at most: its header, the message's head, frame padding.
            let estimate = bytes + 64 * (message.frames.len() as u64 + 4);
            let number = match self.writer_for(estimate) {
                Ok(number) => number,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            let Some((_, writer)) = self.writer.as_mut() else {
                break;
            };
            match writer.append(KIND_OBJECT, *seq, message) {
                Ok(at) => {
                    done.push(Spilled {
                        file: number,
                        offset: at.offset,
                        len: at.len,
                        bytes,
                    });
                    // Counted now, so that a file finished in this batch is not taken as empty.
                    if let Some(file) = self.files.get_mut(&number) {
                        file.objects += 1;
                    }
                }
                Err(e) => {
                    error = Some(spill_error(self.dir.path(), estimate, &e));
                    break;
                }
            }
        }
        if let Some((_, writer)) = self.writer.as_mut()
            && let Err(e) = writer.flush()
            && error.is_none()
        {
            let need = done.iter().map(|s| s.len).sum();
            error = Some(spill_error(self.dir.path(), need, &e));
        }
        // A failed write cut the current file back to its last flush: what lies past its end
        // is not spilled. Everything in earlier files is.
        if error.is_some()
            && let Some((current, writer)) = &self.writer
        {
            let end = writer.len();
            let kept = done
                .iter()
                .position(|s| s.file == *current && s.offset + s.len > end)
                .unwrap_or(done.len());
            for lost in done.drain(kept..) {
                if let Some(file) = self.files.get_mut(&lost.file) {
                    file.objects -= 1;
                }
            }
        }
        let bytes: u64 = done.iter().map(|spilled| spilled.bytes).sum();
        self.objects += done.len() as u64;
        self.bytes += bytes;
        if !done.is_empty() {
            let seconds = started.elapsed().as_secs_f64();
            self.metrics.on_disk(done.len() as u64, bytes);
            self.metrics.spilled(done.len() as u64, bytes, seconds);
            tracing::debug!(
                dir = %self.dir.path().display(),
                objects = done.len(),
                bytes,
                seconds,
                "objects spilled"
            );
        }
        (done, error)
    }

    /// The spilled object at `at`, read back as views of its file's map: checked (checksum,
    /// lengths, padding) the first time, and only bounded after that.
    pub(crate) fn read(&mut self, at: &Spilled) -> Result<ReadBack, ObjectError> {
        let started = std::time::Instant::now();
        let dir = self.dir.path().to_path_buf();
        let tag = self.dir.store().0;
        let failed = |reason: String| ObjectError::SpillFailed {
            dir: dir.clone(),
            reason,
        };
        let file = self
            .files
            .get_mut(&at.file)
            .ok_or_else(|| failed(format!("no spill file {}", at.file)))?;
        let end = at.offset.saturating_add(at.len);
        if file.map.as_ref().is_none_or(|map| map.len() < end) {
            let map = RecordFile::open(&file.path).map_err(|e| failed(describe(&e)))?;
            if map.tag() != tag {
                return Err(failed(format!(
                    "{} was written by another store",
                    file.path.display()
                )));
            }
            file.map = Some(map);
        }
        let Some(map) = &file.map else {
            return Err(failed("no map".to_owned()));
        };
        let checked = file.checked.contains(&at.offset);
        let record = if checked {
            map.record_at_checked_before(at.offset, &Limits::UNLIMITED)
        } else {
            map.record_at(at.offset, &Limits::UNLIMITED)
        }
        .map_err(|e| failed(describe(&e)))?;
        file.checked.insert(at.offset);
        let base = map.as_bytes().as_ptr() as usize;
        let frames = record
            .message
            .frames
            .iter()
            .map(|f| {
                (
                    (f.as_ptr() as usize).wrapping_sub(base) as u64,
                    f.len() as u64,
                )
            })
            .collect();
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.restored(at.bytes, seconds);
        tracing::trace!(
            file = at.file,
            offset = at.offset,
            bytes = at.bytes,
            checked = !checked,
            seconds,
            "spilled object read back"
        );
        Ok(ReadBack {
            message: record.message,
            frames,
        })
    }

    /// A spilled object is gone: its file is removed once nothing else lives in it (the file
    /// being filled too: the next spill begins a new one). Maps of it stay valid.
    pub(crate) fn free(&mut self, at: &Spilled) {
        self.objects = self.objects.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(at.bytes);
        self.metrics.off_disk(at.bytes);
        let Some(file) = self.files.get_mut(&at.file) else {
            return;
        };
        file.objects = file.objects.saturating_sub(1);
        file.checked.remove(&at.offset);
        if file.objects == 0 {
            if self.writer.as_ref().is_some_and(|(n, _)| *n == at.file) {
                self.writer = None;
            }
            self.remove(at.file);
        }
    }

    fn remove(&mut self, number: FileNo) {
        if let Some(file) = self.files.remove(&number)
            && let Err(e) = std::fs::remove_file(&file.path)
        {
            tracing::warn!("cannot remove spill file {}: {e}", file.path.display());
        }
    }

    /// Creates a file of `size` bytes (all blocks allocated now, so writes through a map of it
    /// cannot SIGBUS for want of space) for an object too large for free memory.
    pub(crate) fn create_object(&mut self, size: u64) -> Result<(FileNo, Arc<File>), ObjectError> {
        let number = self.next_file;
        self.next_file += 1;
        let path = self.dir.object_path(number);
        let dir = self.dir.path().to_path_buf();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_error(&dir, size, "creating a file for an object", e))?;
        let sized = file.set_len(size).and_then(|()| {
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size)
                .map_err(Into::into)
        });
        if let Err(e) = sized {
            let _ = std::fs::remove_file(&path);
            return Err(io_error(&dir, size, "allocating a file for an object", e));
        }
        let file = Arc::new(file);
        self.files.insert(
            number,
            SpillFile {
                path,
                file: file.clone(),
                kind: Kind::Object,
                objects: 1,
                map: None,
                checked: HashSet::new(),
            },
        );
        self.objects += 1;
        self.bytes += size;
        self.metrics.on_disk(1, size);
        tracing::debug!(path = %self.dir.object_path(number).display(), bytes = size, "object created on disk");
        Ok((number, file))
    }

    /// An object created on disk is gone (sealed and freed, or aborted): its file is removed.
    pub(crate) fn free_object(&mut self, number: FileNo, size: u64) {
        if let Some(SpillFile {
            kind: Kind::Object, ..
        }) = self.files.get(&number)
        {
            self.objects = self.objects.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(size);
            self.metrics.off_disk(size);
            self.remove(number);
        }
    }
}

impl Drop for Spill {
    /// A store that goes away removes its spill files: nothing in them is of use to anyone else.
    fn drop(&mut self) {
        self.writer = None;
        let numbers: Vec<FileNo> = self.files.keys().copied().collect();
        for number in numbers {
            self.remove(number);
        }
    }
}

/// The order objects are spilled in: least recently used (created, sealed or got) first.
#[derive(Debug, Default)]
pub(crate) struct Recency {
    order: BTreeSet<(u64, ObjectId)>,
    at: HashMap<ObjectId, u64>,
    tick: u64,
}

impl Recency {
    /// `id` was used now.
    pub(crate) fn touch(&mut self, id: ObjectId) {
        self.tick += 1;
        if let Some(old) = self.at.insert(id, self.tick) {
            self.order.remove(&(old, id));
        }
        self.order.insert((self.tick, id));
    }

    /// `id` is no longer a candidate (spilled, deleted, taken).
    pub(crate) fn remove(&mut self, id: &ObjectId) {
        if let Some(old) = self.at.remove(id) {
            self.order.remove(&(old, *id));
        }
    }

    /// The candidates, least recently used first.
    pub(crate) fn oldest(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.order.iter().map(|&(_, id)| id)
    }
}

/// Bytes of a map (the owner of a `Bytes::from_owner`): a sealed object's, in a file created
/// for it on disk, or in the daemon's arena while it is written to a spill file.
pub(crate) struct MapView {
    pub(crate) map: Arc<crate::arena::Mapping>,
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

impl AsRef<[u8]> for MapView {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the range lies inside the mapping (the object's range of the arena, from the
        // allocator, or a file made for exactly this object), and `self.map` keeps it mapped.
        // The object is sealed: its creator's writable buffer was consumed by the seal (or the
        // client's create is over), so nothing writes these bytes while a view lives, and an
        // arena range is released only after the views made to spill it are dropped. A file is
        // this store's, only ever removed (which leaves a map intact), never truncated.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.offset), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreId;
    use bytes::Bytes;
    use pontoon_wire::Header;

    #[test]
    #[cfg_attr(miri, ignore = "miri cannot map files")]
    fn objects_fuse_into_capped_files_that_go_with_their_last_object() {
        let path = std::env::temp_dir().join(format!("pontoon-spill-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let dir = SpillDir::open(&path, StoreId(7)).unwrap();
        let mut spill = Spill::new(dir, 64 << 10);
        let objects: Vec<(u64, Message)> = (0..40u64)
            .map(|i| {
                let frame = Bytes::from(vec![i as u8; 4000]);
                (
                    i,
                    Message::new(Header::from_serde(&i).unwrap(), vec![frame]),
                )
            })
            .collect();
        let (spilled, error) = spill.write(&objects);
        assert!(error.is_none());
        assert_eq!(spilled.len(), 40);
        // 40 records of about 4 KiB in files of 64 KiB: 3 files, not 40.
        let (_, _, files) = spill.counts();
        assert_eq!(files, 3);
        for (at, (_, message)) in spilled.iter().zip(&objects) {
            let back = spill.read(at).unwrap();
            assert_eq!(&back.message, message);
            let (offset, len) = back.frames[0];
            assert_eq!((offset % 64, len), (0, 4000));
        }
        for at in &spilled[..15] {
            spill.free(at);
        }
        // The first file held the first 15 (or fewer): it is gone.
        let listed = std::fs::read_dir(&path).unwrap().count() - 1; // LOCK
        assert_eq!(listed as u64, spill.counts().2);
        assert!(listed < 3, "{listed}");
        for at in &spilled[15..] {
            spill.free(at);
        }
        // Every file went with its last object, the one being filled too.
        assert_eq!(spill.counts(), (0, 0, 0));
        assert_eq!(std::fs::read_dir(&path).unwrap().count(), 1);
        std::fs::remove_dir_all(&path).unwrap();
    }
}
