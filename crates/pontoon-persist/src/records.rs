//! Reading a log back: [`Record`]s decoded by [`Records`], or [`RawRecord`]s as they are in the
//! file by [`RawRecords`], one segment at a time: what recovery checked is read back without a
//! second check, and frames are views of the segments' memory maps.

use std::path::PathBuf;

use bytes::Bytes;
use pontoon_wire::{Limits, Message, decode_message};

use crate::error::ReadError;
use crate::files::{Load, load};
use crate::format::{Layout, MAX_SEQ, header_at, parse_segment_header, record_at};
use crate::recovery::{Checked, Skip};

/// A segment to read back: what recovery checked of it, and how much of the file to read.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub(crate) path: PathBuf,
    /// What recovery checked (`None`: a segment written since the log was opened).
    pub(crate) checked: Option<Checked>,
    /// Bytes of the file to read (`None`: as many as recovery checked, or the whole file).
    /// Records past what recovery checked (appended since) are checked as they are read.
    pub(crate) len: Option<u64>,
}

/// The segment being read.
#[derive(Debug)]
struct Reading {
    path: PathBuf,
    layout: Layout,
    bytes: Bytes,
    /// Where the next record starts.
    at: usize,
    /// Records starting below this offset were checked by recovery.
    trusted: usize,
    /// The stretches recovery skipped (salvage), in order, not yet reached.
    skips: std::vec::IntoIter<Skip>,
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
    /// The message it holds; its frames are views of the segment file's memory map.
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
/// segment at a time: see [`Inspection::raw_records`](crate::Inspection::raw_records). Exactly the
/// records recovery kept are read back (records appended since are checked as they are read);
/// after an error, it yields nothing more.
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
    plan: std::vec::IntoIter<Planned>,
    from: u64,
    max_record_bytes: u64,
    max_segment_bytes: u64,
    current: Option<Reading>,
    /// The sequence number the next record must have.
    expected: u64,
}

impl RawRecords {
    /// Reads the records numbered `from` and up of the segments in `plan`.
    pub(crate) fn new(plan: Vec<Planned>, from: u64, options: &crate::LogOptions) -> RawRecords {
        RawRecords {
            plan: plan.into_iter(),
            from,
            max_record_bytes: options.max_record_bytes,
            max_segment_bytes: crate::options::max_segment_bytes(options),
            current: None,
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

    /// Starts reading a segment: the bytes recovery checked, or a fresh map of the file.
    fn start(&mut self, planned: Planned) -> Result<Reading, ReadError> {
        let Planned { path, checked, len } = planned;
        let (layout, first_seq, bytes, trusted, skips) = match checked {
            Some(checked) => {
                let trusted = checked.bytes.len();
                let bytes = match len {
                    Some(len) if len > trusted as u64 => {
                        load(&path, Some(len), self.max_segment_bytes, Load::Map)?
                    }
                    Some(len) => checked.bytes.slice(..len as usize),
                    None => checked.bytes,
                };
                let trusted = trusted.min(bytes.len());
                (
                    checked.layout,
                    checked.first_seq,
                    bytes,
                    trusted,
                    checked.skips,
                )
            }
            None => {
                let bytes = load(&path, len, self.max_segment_bytes, Load::Map)?;
                let (layout, first_seq) =
                    parse_segment_header(&bytes).map_err(|reason| ReadError::Corrupt {
                        file: path.clone(),
                        offset: 0,
                        reason: reason.to_string(),
                    })?;
                (layout, first_seq, bytes, 0, Vec::new())
            }
        };
        self.expected = first_seq;
        Ok(Reading {
            path,
            layout,
            bytes,
            at: layout.segment_header,
            trusted,
            skips: skips.into_iter(),
        })
    }
}

impl Iterator for RawRecords {
    type Item = Result<RawRecord, ReadError>;

    fn next(&mut self) -> Option<Result<RawRecord, ReadError>> {
        loop {
            let Some(reading) = &mut self.current else {
                let planned = self.plan.next()?;
                match self.start(planned) {
                    Ok(reading) => self.current = Some(reading),
                    Err(e) => return self.stop(e),
                }
                continue;
            };
            if let Some(skip) = reading.skips.as_slice().first().copied()
                && skip.from <= reading.at
            {
                reading.skips.next();
                reading.at = skip.to;
                self.expected = skip.seq;
                continue;
            }
            if reading.at >= reading.bytes.len() {
                self.current = None;
                continue;
            }
            let (layout, at, expected) = (reading.layout, reading.at, self.expected);
            let found = if at < reading.trusted {
                header_at(layout, &reading.bytes, at)
            } else {
                record_at(layout, &reading.bytes, at, self.max_record_bytes, &mut 0).ok()
            };
            let Some(found) = found.filter(|f| f.seq == expected && f.seq <= MAX_SEQ) else {
                let file = reading.path.clone();
                return self.stop(ReadError::Corrupt {
                    file,
                    offset: at as u64,
                    reason: format!("record {expected} does not verify"),
                });
            };
            reading.at = found.end;
            self.expected = found.seq.saturating_add(1);
            if found.seq < self.from {
                continue;
            }
            return Some(Ok(RawRecord {
                seq: found.seq,
                kind: found.kind,
                file: reading.path.clone(),
                offset: at as u64,
                payload: reading.bytes.slice(found.payload.0..found.payload.1),
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
