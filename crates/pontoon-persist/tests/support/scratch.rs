//! A test's scratch directory, removed with everything in it when its guard drops, so that a
//! test run, passed or failed, leaves nothing behind. Shared by path with other crates' tests.
#![allow(dead_code, reason = "each test file uses one of the two constructors")]

use std::ffi::OsStr;
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

    /// `dir`, removed if an earlier run left it, and not made: for the tests whose code under
    /// test makes the directory itself.
    pub(crate) fn unmade(dir: PathBuf) -> Scratch {
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
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

/// So that `Command::arg(&dir)` takes it.
impl AsRef<OsStr> for Scratch {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
