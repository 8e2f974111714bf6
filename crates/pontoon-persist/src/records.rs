//! Reading a log back: [`Record`]s decoded by [`Records`], or [`RawRecord`]s as they are in the
//! file by [`RawRecords`], one segment at a time, under the same rule as recovery.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use pontoon_wire::{Limits, Message, decode_message};

use crate::error::{IoError, ReadError};
use crate::files::{io, read_into};
use crate::format::{MAX_SEQ, SEGMENT_HEADER_LEN, parse_segment_header, record_at};
use crate::resync::Resync;

/// The resync tables of a segment's `bytes`, built on first use.
pub(crate) fn resync<'t>(
    tables: &'t mut Option<Resync>,
    bytes: &[u8],
    path: &Path,
) -> Result<&'t mut Resync, IoError> {
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

/// One record read back.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn f(log: &pontoon_persist::Log) -> Result<(), pontoon_persist::LogError> {
/// for record in log.read_all()? {
///     println!("{} (kind {}): {} frames", record.seq, record.kind, record.message.frames.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Record {
    /// The record's sequence number (the first record is 1).
    pub seq: u64,
    /// The application's record type.
    pub kind: u32,
    /// The message it holds; frames are slices of the bytes read from the file.
    pub message: Message,
}

/// One record as it is in its segment file, its payload not decoded: what a tool that inspects
/// a log reads, to look at a message's head (header and frame table, with
/// [`pontoon_wire::MessageHead`]) without decompressing frames it never needs.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn f(inspection: &pontoon_persist::Inspection) -> Result<(), pontoon_persist::LogError> {
/// for record in inspection.raw_records(1) {
///     let record = record?;
///     println!("{} in {} at {}: {} bytes", record.seq, record.file.display(), record.offset, record.payload.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RawRecord {
    /// The record's sequence number.
    pub seq: u64,
    /// The application's record type.
    pub kind: u32,
    /// The segment file it is in.
    pub file: PathBuf,
    /// Where the record (its header) starts in the file.
    pub offset: u64,
    /// The payload: one pontoon-wire message, without the stream preamble.
    pub payload: Bytes,
}

/// The records of a log from some sequence number on, their payloads not decoded, read one
/// segment at a time: see [`Inspection::raw_records`](crate::Inspection::raw_records). A record is
/// read back only if recovery keeps it (the sequence number that follows on, a matching
/// checksum); after an error, it yields nothing more.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn f(inspection: &pontoon_persist::Inspection) -> Result<(), pontoon_persist::LogError> {
/// let bytes: usize = inspection
///     .raw_records(1)
///     .map(|record| record.map(|r| r.payload.len()))
///     .sum::<Result<_, _>>()?;
/// # let _ = bytes; Ok(()) }
/// ```
#[derive(Debug)]
pub struct RawRecords {
    /// Segment files to read, each with the length to read of it (`None`: all of it).
    plan: std::vec::IntoIter<(PathBuf, Option<u64>)>,
    from: u64,
    max_record_bytes: u64,
    max_segment_bytes: u64,
    /// The segment being read: its path, its bytes, and the offset of the next record.
    current: Option<(PathBuf, Bytes, usize)>,
    /// The current segment's resync tables, built at its first damage.
    tables: Option<Resync>,
    /// The sequence number the next record must have, as in recovery: a record with a valid
    /// checksum but another number (a stale copy that salvage skipped) is not read back.
    expected: u64,
}

impl RawRecords {
    /// Reads the records numbered `from` and up of the segment files in `plan`, each read up to
    /// the length given with it.
    pub(crate) fn new(
        plan: Vec<(PathBuf, Option<u64>)>,
        from: u64,
        options: &crate::LogOptions,
    ) -> RawRecords {
        RawRecords {
            plan: plan.into_iter(),
            from,
            max_record_bytes: options.max_record_bytes,
            max_segment_bytes: crate::options::max_segment_bytes(options),
            current: None,
            tables: None,
            expected: 0,
        }
    }

    fn stop(&mut self, error: ReadError) -> Option<Result<RawRecord, ReadError>> {
        self.stop_quietly();
        Some(Err(error))
    }

    /// Yields nothing more.
    fn stop_quietly(&mut self) {
        self.current = None;
        self.plan = Vec::new().into_iter();
    }
}

impl Iterator for RawRecords {
    type Item = Result<RawRecord, ReadError>;

    fn next(&mut self) -> Option<Result<RawRecord, ReadError>> {
        loop {
            let Some((path, bytes, at)) = &mut self.current else {
                let (path, limit) = self.plan.next()?;
                let mut buf = Vec::new();
                if let Err(e) = read_into(&path, limit, self.max_segment_bytes, &mut buf) {
                    return self.stop(e.into());
                }
                match parse_segment_header(&buf) {
                    Ok(first_seq) => self.expected = first_seq,
                    Err(reason) => {
                        return self.stop(ReadError::Corrupt {
                            file: path,
                            offset: 0,
                            reason: reason.to_string(),
                        });
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
                    Err(e) => return self.stop(e.into()),
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
            return Some(Ok(RawRecord {
                seq: found.seq,
                kind: found.kind,
                file: path.clone(),
                offset: start as u64,
                payload: bytes.slice(found.payload.0..found.payload.1),
            }));
        }
    }
}

/// The records of a log from some sequence number on, read one segment at a time: see
/// [`Log::records`](crate::Log::records). After an error, it yields nothing more.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn f(log: &pontoon_persist::Log) -> Result<(), pontoon_persist::LogError> {
/// let mut records: pontoon_persist::Records = log.records(1)?;
/// while let Some(record) = records.next() {
///     let record = record?;
///     println!("{}", record.seq);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Records {
    raw: RawRecords,
    limits: Limits,
}

impl Records {
    pub(crate) fn new(raw: RawRecords, limits: Limits) -> Records {
        Records { raw, limits }
    }
}

impl Iterator for Records {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Result<Record, ReadError>> {
        let raw = match self.raw.next()? {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        Some(match decode_message(raw.payload, &self.limits) {
            Ok(message) => Ok(Record {
                seq: raw.seq,
                kind: raw.kind,
                message,
            }),
            Err(source) => {
                // Nothing after a record that does not decode is read.
                self.raw.stop_quietly();
                Err(ReadError::BadPayload {
                    seq: raw.seq,
                    file: raw.file,
                    offset: raw.offset,
                    source,
                })
            }
        })
    }
}
