//! Segment and directory file helpers: typed I/O errors naming what and where, directory
//! `fsync`, opening only regular files, reading a segment into memory with a bound checked first,
//! and writing records and headers whole.

use std::fs::File;
use std::io::{IoSlice, Read, Write};
use std::path::Path;

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

/// Reads a whole segment file into `buf` (reusing its memory), or its first `limit` bytes; a
/// file longer than `max` is refused before anything is allocated for it.
pub(crate) fn read_into(
    path: &Path,
    limit: Option<u64>,
    max: u64,
    buf: &mut Vec<u8>,
) -> Result<(), FileError> {
    buf.clear();
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
    let want = usize::try_from(len).unwrap_or(usize::MAX);
    if buf.try_reserve(want).is_err() {
        return Err(
            io("allocating memory to read", path)(std::io::ErrorKind::OutOfMemory.into()).into(),
        );
    }
    file.take(len)
        .read_to_end(buf)
        .map_err(io("reading", path))?;
    Ok(())
}
