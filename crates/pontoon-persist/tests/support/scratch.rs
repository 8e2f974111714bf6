//! A test's scratch directory, removed with everything in it when its guard drops, so that a
//! test run, passed or failed, leaves nothing behind. Shared by path with other crates' tests.

use std::path::{Path, PathBuf};

/// A fresh directory that is removed on drop.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    /// `dir`, emptied first if an earlier run left it, made, and held as its canonical path.
    pub(crate) fn at(dir: PathBuf) -> Scratch {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir.canonicalize().unwrap())
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

/// So that callers can pass `&dir` to functions taking `impl AsRef<Path>`.
impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
