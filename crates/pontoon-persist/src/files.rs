//! Segment and directory file helpers: typed I/O errors naming what and where, directory
//! `fsync`, opening only regular files, mapping (or reading) a file with a bound checked first,
//! and writing records and headers whole.

use std::fs::File;
use std::io::{IoSlice, Read, Write};
use std::path::Path;

use bytes::Bytes;
use memmap2::MmapOptions;

use crate::error::{FileError, IoError};
use crate::format::segment_header;

/// Makes an operating system error an [`IoError`] saying what was being done, and where.
pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IoError {
    let path = path.to_path_buf();
    move |source| IoError { what, path, source }
}

pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing the directory", dir))
}

/// Writes every piece, in as few system calls as the OS allows.
pub(crate) fn write_all_pieces(mut file: &File, pieces: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(crate) fn write_segment_header(
    mut file: &File,
    path: &Path,
    first_seq: u64,
) -> Result<(), IoError> {
    file.write_all(&segment_header(first_seq))
        .map_err(io("writing the header of", path))?;
    file.sync_all().map_err(io("syncing", path))
}

/// Opens `path` for reading if it is a regular file (a symbolic link to one is followed); a
/// FIFO, device or directory is not a file, refused before it is opened, since
/// opening a FIFO blocks until a writer comes. The type is checked again on the opened file, in
/// case the entry was replaced in between (only a FIFO put there in that instant can still
/// block the open).
pub(crate) fn open_regular(path: &Path) -> Result<File, FileError> {
    let not_a_file = || FileError::NotAFile {
        path: path.to_path_buf(),
    };
    let before = std::fs::metadata(path).map_err(io("reading the type of", path))?;
    if !before.is_file() {
        return Err(not_a_file());
    }
    let file = File::open(path).map_err(io("opening", path))?;
    let opened = file.metadata().map_err(io("reading the type of", path))?;
    if !opened.is_file() {
        return Err(not_a_file());
    }
    Ok(file)
}

/// How a file's bytes are brought into memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Load {
    /// A read-only memory map: the bytes stay in the page cache, and a frame read back is a
    /// view of the mapping.
    Map,
    /// A map, as [`Load::Map`], with every page brought in when it is made (`MAP_POPULATE`):
    /// for a caller about to read every byte (recovery's check), which then pays one pass in
    /// the kernel instead of a page fault every few pages (a third of recovery's time here).
    MapEvery,
    /// Read into memory: for a directory no lock protects from a writer that may cut a file
    /// under a map (see `docs/persist-format.md`, Memory maps).
    Read,
}

/// The bytes of the file at `path`, or its first `limit` bytes, as `how` says; a file longer
/// than `max` is refused before anything is mapped or allocated for it. A mapping covers
/// exactly the bytes that were in the file when it was opened (never more), so reading it
/// cannot fault unless another process truncates the file meanwhile.
pub(crate) fn load(
    path: &Path,
    limit: Option<u64>,
    max: u64,
    how: Load,
) -> Result<Bytes, FileError> {
    let file = open_regular(path)?;
    let len = file
        .metadata()
        .map_err(io("reading the size of", path))?
        .len();
    let len = limit.map_or(len, |limit| limit.min(len));
    if len > max {
        return Err(FileError::TooLarge {
            file: path.to_path_buf(),
            len,
            limit: max,
        });
    }
    let Ok(want) = usize::try_from(len) else {
        return Err(io("mapping", path)(std::io::ErrorKind::OutOfMemory.into()).into());
    };
    if want == 0 {
        return Ok(Bytes::new());
    }
    match how {
        Load::Map | Load::MapEvery => {
            let mut map = MmapOptions::new();
            map.len(want);
            if how == Load::MapEvery {
                map.populate();
            }
            // SAFETY: the mapping is read-only and covers only bytes the file held when its
            // size was read above. Files in a log directory are only ever appended to, cut at
            // open (before any of their mappings is handed out) or removed, which leaves a
            // mapping intact; the directory's LOCK keeps other pontoon writers out. Another
            // program that changes or truncates the file under the map is outside what this
            // crate can guard (documented in `docs/persist-format.md`, Memory maps).
            let map = unsafe { map.map(&file) }.map_err(io("mapping", path))?;
            Ok(Bytes::from_owner(map))
        }
        Load::Read => {
            let mut buf = Vec::new();
            if buf.try_reserve_exact(want).is_err() {
                return Err(io("allocating memory to read", path)(
                    std::io::ErrorKind::OutOfMemory.into(),
                )
                .into());
            }
            file.take(len)
                .read_to_end(&mut buf)
                .map_err(io("reading", path))?;
            Ok(Bytes::from(buf))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map covers exactly the bytes asked for (never past the file's end), reading gives the
    /// same bytes, and a file over the bound is refused before either.
    #[test]
    #[cfg_attr(miri, ignore = "miri cannot map files")]
    fn load_maps_or_reads_only_what_is_there() {
        let path = std::env::temp_dir().join(format!("pontoon-load-{}", std::process::id()));
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        for how in [Load::Map, Load::MapEvery, Load::Read] {
            assert_eq!(load(&path, None, 1 << 20, how).unwrap(), bytes);
            assert_eq!(load(&path, Some(100), 1 << 20, how).unwrap(), bytes[..100]);
            // A limit past the end is the end.
            assert_eq!(load(&path, Some(1 << 19), 1 << 20, how).unwrap(), bytes);
            assert!(load(&path, Some(0), 1 << 20, how).unwrap().is_empty());
            assert!(matches!(
                load(&path, None, 9_999, how),
                Err(FileError::TooLarge { len: 10_000, .. })
            ));
        }
        std::fs::remove_file(&path).unwrap();
    }
}
