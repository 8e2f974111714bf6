//! The spill directory: created if missing, owned by one store at a time (an exclusive `flock`
//! on its `LOCK` file, held while the store lives), emptied at start of the spill files an
//! earlier run left (they are trusted only by the store that wrote them), and the names of the
//! files a store puts there.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::StoreId;

/// A spill directory this store owns.
#[derive(Debug)]
pub(crate) struct SpillDir {
    path: PathBuf,
    store: StoreId,
    /// Holds the exclusive lock until the store is dropped.
    _lock: File,
}

/// Why a spill directory cannot be used, with the step that failed.
#[derive(Debug)]
pub(crate) struct DirError {
    pub(crate) what: String,
    pub(crate) source: io::Error,
}

impl std::fmt::Display for DirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

/// Whether a directory entry is a file some store spilled into (a record file of spilled
/// objects, or an object created on disk).
pub(crate) fn is_spill_file(name: &str) -> bool {
    (name.starts_with("spill-") && name.ends_with(".rec"))
        || (name.starts_with("object-") && name.ends_with(".obj"))
}

impl SpillDir {
    /// Creates `path` if needed, locks it for `store`, and removes every spill file in it (left
    /// by an earlier run that died: nothing in them is trusted). Another live store holding the
    /// lock is an error, not a wait.
    pub(crate) fn open(path: &Path, store: StoreId) -> Result<SpillDir, DirError> {
        let fail = |what: String| move |source| DirError { what, source };
        std::fs::create_dir_all(path).map_err(fail(format!("creating {}", path.display())))?;
        let lock_path = path.join("LOCK");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(fail(format!("opening {}", lock_path.display())))?;
        rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
            DirError {
                what: format!(
                    "locking {} (is another store spilling there?)",
                    lock_path.display()
                ),
                source: e.into(),
            }
        })?;
        let mut removed = 0u64;
        for entry in std::fs::read_dir(path).map_err(fail(format!("listing {}", path.display())))? {
            let entry = entry.map_err(fail(format!("listing {}", path.display())))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if is_spill_file(&name) && entry.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::remove_file(entry.path()).map_err(fail(format!(
                    "removing the stale {}",
                    entry.path().display()
                )))?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::warn!(
                "removed {removed} spill files an earlier store left in {}",
                path.display()
            );
        }
        Ok(SpillDir {
            path: path.to_path_buf(),
            store,
            _lock: lock,
        })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The store that owns it (its id is in every file's name, and in record files' tags).
    pub(crate) fn store(&self) -> StoreId {
        self.store
    }

    /// The record file of spilled objects numbered `number`.
    pub(crate) fn records_path(&self, number: u64) -> PathBuf {
        self.path
            .join(format!("spill-{:016x}-{number:08}.rec", self.store.0))
    }

    /// The file of the object created on disk numbered `number`.
    pub(crate) fn object_path(&self, number: u64) -> PathBuf {
        self.path
            .join(format!("object-{:016x}-{number:08}.obj", self.store.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "miri cannot flock or list directories")]
    fn a_second_store_is_refused_and_stale_files_go_at_open() {
        let dir = std::env::temp_dir().join(format!("pontoon-spill-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("spill-00000000000000aa-00000001.rec"), b"old").unwrap();
        std::fs::write(dir.join("object-00000000000000aa-00000002.obj"), b"old").unwrap();
        std::fs::write(dir.join("notes.txt"), b"kept").unwrap();
        let first = SpillDir::open(&dir, StoreId(1)).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["LOCK", "notes.txt"]);
        let err = SpillDir::open(&dir, StoreId(2)).unwrap_err();
        assert!(err.to_string().contains("another store"), "{err}");
        assert!(first.records_path(3).starts_with(&dir));
        drop(first);
        SpillDir::open(&dir, StoreId(2)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
