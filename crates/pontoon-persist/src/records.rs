//! [`Records`]: a log's records read back one segment at a time, and the reading helpers that
//! recovery shares.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use pontoon_wire::{Limits, decode_message};

use crate::format::{SEGMENT_HEADER_LEN, parse_segment_header, record_at};
use crate::log::MAX_SEQ;
use crate::log::io;
use crate::resync::Resync;
use crate::{LogError, Record};

/// The resync tables of a segment's `bytes`, built on first use.
pub(crate) fn resync<'t>(
    tables: &'t mut Option<Resync>,
    bytes: &[u8],
    path: &Path,
) -> Result<&'t mut Resync, LogError> {
    if tables.is_none() {
        let built = Resync::new(bytes).map_err(|_| {
            io("allocating memory to resynchronize", path)(std::io::ErrorKind::OutOfMemory.into())
        })?;
        *tables = Some(built);
    }
    tables
        .as_mut()
        .ok_or_else(|| io("resynchronizing", path)(std::io::ErrorKind::OutOfMemory.into()))
}

/// Opens `path` for reading if it is a regular file (a symbolic link to one is followed); a
/// FIFO, device or directory is [`LogError::NotAFile`], refused before it is opened, since
/// opening a FIFO blocks until a writer comes. The type is checked again on the opened file, in
/// case the entry was replaced in between (only a FIFO put there in that instant can still
/// block the open).
pub(crate) fn open_regular(path: &Path) -> Result<File, LogError> {
    let not_a_file = || LogError::NotAFile {
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
) -> Result<(), LogError> {
    buf.clear();
    let file = open_regular(path)?;
    let len = file
        .metadata()
        .map_err(io("reading the size of", path))?
        .len();
    let len = limit.map_or(len, |limit| limit.min(len));
    if len > max {
        return Err(LogError::SegmentTooLarge {
            file: path.to_path_buf(),
            len,
            limit: max,
        });
    }
    let want = usize::try_from(len).unwrap_or(usize::MAX);
    if buf.try_reserve(want).is_err() {
        return Err(io("allocating memory to read", path)(
            std::io::ErrorKind::OutOfMemory.into(),
        ));
    }
    file.take(len)
        .read_to_end(buf)
        .map_err(io("reading", path))?;
    Ok(())
}

/// The records of a log from some sequence number on, read one segment at a time: see
/// [`Log::records_from`](crate::Log::records_from). After an error, it yields nothing more.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn f(log: &pontoon_persist::Log) -> Result<(), pontoon_persist::LogError> {
/// let mut records: pontoon_persist::Records = log.records_from(1)?;
/// while let Some(record) = records.next() {
///     let record = record?;
///     println!("{}", record.seq);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Records {
    pub(crate) plan: std::vec::IntoIter<(PathBuf, Option<u64>)>,
    pub(crate) from: u64,
    pub(crate) max_record_bytes: u64,
    pub(crate) max_segment_bytes: u64,
    pub(crate) limits: Limits,
    /// The segment being read: its path, its bytes, and the offset of the next record.
    pub(crate) current: Option<(PathBuf, Bytes, usize)>,
    /// The current segment's resync tables, built at its first damage.
    pub(crate) tables: Option<Resync>,
    /// The sequence number the next record must have, as in recovery: a record with a valid
    /// checksum but another number (a stale copy that salvage skipped) is not read back.
    pub(crate) expected: u64,
}

impl Iterator for Records {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Result<Record, LogError>> {
        loop {
            let Some((path, bytes, at)) = &mut self.current else {
                let (path, limit) = self.plan.next()?;
                let mut buf = Vec::new();
                if let Err(e) = read_into(&path, limit, self.max_segment_bytes, &mut buf) {
                    self.plan = Vec::new().into_iter();
                    return Some(Err(e));
                }
                match parse_segment_header(&buf) {
                    Ok(first_seq) => self.expected = first_seq,
                    Err(reason) => {
                        self.plan = Vec::new().into_iter();
                        return Some(Err(LogError::Corrupt {
                            file: path,
                            offset: 0,
                            reason: reason.to_string(),
                        }));
                    }
                }
                self.current = Some((path, Bytes::from(buf), SEGMENT_HEADER_LEN));
                self.tables = None;
                continue;
            };
            if *at >= bytes.len() {
                self.current = None;
                continue;
            }
            let expected = self.expected;
            let found = match record_at(bytes, *at, self.max_record_bytes, &mut 0) {
                // The same rule as recovery's, so that exactly the records it kept come back.
                Ok(found) if found.seq == expected && found.seq <= MAX_SEQ => found,
                // Skipped at open (salvage): find the next record.
                Ok(_) | Err(_) => match resync(&mut self.tables, bytes, path).map(|tables| {
                    tables.next_valid(bytes, *at + 1, expected, self.max_record_bytes)
                }) {
                    Err(e) => {
                        self.current = None;
                        self.plan = Vec::new().into_iter();
                        return Some(Err(e));
                    }
                    Ok(Some((next, seq))) => {
                        *at = next;
                        self.expected = seq;
                        continue;
                    }
                    Ok(None) => {
                        self.current = None;
                        continue;
                    }
                },
            };
            let start = *at;
            *at = found.payload.1;
            self.expected = found.seq.saturating_add(1);
            if found.seq < self.from {
                continue;
            }
            let payload = bytes.slice(found.payload.0..found.payload.1);
            return Some(match decode_message(payload, &self.limits) {
                Ok(message) => Ok(Record {
                    seq: found.seq,
                    kind: found.kind,
                    message,
                }),
                Err(source) => {
                    let error = LogError::BadPayload {
                        seq: found.seq,
                        file: path.clone(),
                        offset: start as u64,
                        source,
                    };
                    self.current = None;
                    self.plan = Vec::new().into_iter();
                    Err(error)
                }
            });
        }
    }
}
