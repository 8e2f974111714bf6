//! The store's memory: one memfd (or a file in a directory, as the fallback) reserved with
//! `fallocate` at the daemon's start, and its mappings, read-only or writable, in any process
//! that holds the descriptor.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use rustix::fs::{FallocateFlags, MemfdFlags, Mode, OFlags};
use rustix::mm::{MapFlags, ProtFlags};

use crate::error::ServeError;

/// Where a daemon's memory lives.
///
/// ```
/// let backing = pontoon_store::Backing::Directory("/dev/shm".into());
/// assert_ne!(backing, pontoon_store::Backing::Memfd);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backing {
    /// An anonymous memfd (counted against memory, not /dev/shm's size). If it cannot be
    /// reserved, the daemon warns and falls back to a file in its spill directory.
    Memfd,
    /// A file in this directory (`/dev/shm`, or a disk directory), unlinked as soon as it is
    /// open, so nothing is left behind when the daemon dies.
    Directory(PathBuf),
}

/// The reserved memory and its descriptor.
pub(crate) struct Arena {
    fd: OwnedFd,
    len: u64,
    /// What backs it, for `stats` and the logs.
    pub(crate) description: String,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("len", &self.len)
            .field("backing", &self.description)
            .finish()
    }
}

impl Arena {
    /// Reserves `capacity` bytes (rounded up to a page) on `backing`; a memfd that cannot be
    /// reserved falls back, with a warning, to a file in `fallback`.
    pub(crate) fn reserve(
        capacity: u64,
        backing: &Backing,
        fallback: Option<&Path>,
    ) -> Result<Arena, ServeError> {
        let page = rustix::param::page_size() as u64;
        let len = capacity.max(1).div_ceil(page).saturating_mul(page);
        match backing {
            Backing::Memfd => match Arena::memfd(len) {
                Ok(arena) => Ok(arena),
                Err(error) => match fallback {
                    Some(dir) => {
                        tracing::warn!(
                            "cannot reserve {len} bytes of shared memory ({error}); falling back to a file in {}: object memory will be disk-backed and slower",
                            dir.display()
                        );
                        Arena::file(len, dir)
                    }
                    None => Err(error),
                },
            },
            Backing::Directory(dir) => Arena::file(len, dir),
        }
    }

    fn memfd(len: u64) -> Result<Arena, ServeError> {
        let fail = |what: &str, source: io::Error| ServeError::Memory {
            capacity: len,
            what: format!("{what} on a memfd"),
            source,
        };
        let fd = rustix::fs::memfd_create("pontoon-store", MemfdFlags::CLOEXEC)
            .map_err(|e| fail("memfd_create", e.into()))?;
        Arena::allocate(fd, len, "memfd".to_owned()).map_err(|(what, e)| fail(what, e))
    }

    fn file(len: u64, dir: &Path) -> Result<Arena, ServeError> {
        let fail = |what: &str, source: io::Error| ServeError::Memory {
            capacity: len,
            what: format!("{what} in {}", dir.display()),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail("creating the directory", e))?;
        let mut attempt = 0u32;
        let (fd, path) = loop {
            let path = dir.join(format!(
                "pontoon-store-{}-{:08x}.arena",
                std::process::id(),
                crate::StoreId::random().0 as u32
            ));
            match rustix::fs::open(
                &path,
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => break (fd, path),
                Err(rustix::io::Errno::EXIST) if attempt < 16 => attempt += 1,
                Err(e) => return Err(fail("creating the memory file", e.into())),
            }
        };
        // The descriptor keeps the file alive; its name would only outlive a crash.
        let _ = std::fs::remove_file(&path);
        Arena::allocate(fd, len, format!("file in {}", dir.display()))
            .map_err(|(what, e)| fail(what, e))
    }

    /// Sizes the file and allocates every block now, so that a later page fault finds its
    /// block and cannot SIGBUS for want of space.
    fn allocate(
        fd: OwnedFd,
        len: u64,
        description: String,
    ) -> Result<Arena, (&'static str, io::Error)> {
        rustix::fs::ftruncate(&fd, len).map_err(|e| ("ftruncate", e.into()))?;
        rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, len)
            .map_err(|e| ("fallocate", e.into()))?;
        Ok(Arena {
            fd,
            len,
            description,
        })
    }

    /// The descriptor clients receive.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Bytes reserved.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// One mapping of the store's memory, unmapped on drop.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a mapping is plain memory with no thread affinity; `Mapping` hands out only raw
// pointers, and every reference made from them is made under the rules in `object.rs`.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` allows no mutation of the mapping itself.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared: read-only, or writable; `populate` fills its page tables
    /// now (`MAP_POPULATE`), so that writes into it run at warm-memory speed.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        len: u64,
        writable: bool,
        populate: bool,
    ) -> io::Result<Mapping> {
        let len = usize::try_from(len)
            .map_err(|_| io::Error::other("store memory larger than the address space"))?;
        if len == 0 {
            return Err(io::Error::other("store memory of 0 bytes"));
        }
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        let flags = if populate {
            MapFlags::SHARED | MapFlags::POPULATE
        } else {
            MapFlags::SHARED
        };
        // SAFETY: a fresh mapping at an address the kernel picks (null hint) aliases no Rust
        // object; `len` is non-zero and the descriptor is open for the call's duration.
        let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) }?;
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// The mapping's first byte.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Its length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether `ptr` lies inside this mapping.
    pub(crate) fn holds(&self, ptr: *const u8) -> bool {
        let start = self.ptr.as_ptr() as usize;
        (start..start + self.len).contains(&(ptr as usize))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` is exactly the mapping made in `map`, and every view of it holds
        // an `Arc<Mapping>`, so none outlives this.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
