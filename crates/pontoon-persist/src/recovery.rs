//! Recovery's scan of a log directory: lists the segment files, checks each once, record by
//! record, and says what a writable open must repair (a torn tail to cut, a segment header to
//! write anew). It never writes: [`Log::open`](crate::Log::open) applies the repair,
//! [`Log::inspect`](crate::Log::inspect) only reports it.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::LogOptions;
use crate::error::{IoError, OpenError};
use crate::files::{Load, io, load};
use crate::format::{Fault, Layout, MAX_SEQ, V1, V2, parse_segment_header, record_at};
use crate::options::max_segment_bytes;
use crate::resync::{Resync, resync};

/// What recovery found when the log was opened.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn f() -> Result<(), pontoon_persist::LogError> {
/// let (_log, recovery) = pontoon_persist::Log::open("/data/log", Default::default())?;
/// if let Some(cut) = &recovery.cut {
///     println!("cut a torn tail of {} bytes from {}", cut.bytes, cut.file.display());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Valid records in the log.
    pub records: u64,
    /// Bytes of segment files read and checked.
    pub bytes: u64,
    /// The torn tail cut from the last segment (the cut is durable before `open` returns).
    pub cut: Option<Cut>,
    /// Damaged stretches skipped, with salvage on.
    pub skipped: Vec<Cut>,
    /// Bytes fed to CRC32C while checking: at most a small multiple of [`bytes`](Self::bytes),
    /// however the damage is crafted.
    pub checksummed_bytes: u64,
}

/// A stretch of a segment file removed or skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cut {
    /// The segment file.
    pub file: PathBuf,
    /// Where the stretch starts.
    pub offset: u64,
    /// Its length in bytes.
    pub bytes: u64,
}

/// A segment file: the sequence number its name gives, its path, and what recovery checked of
/// it.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub(crate) first_seq: u64,
    pub(crate) path: PathBuf,
    /// Its bytes as recovery checked them (`None`: created since, or holding no record).
    pub(crate) checked: Option<Checked>,
    /// Its length once the log went on in a newer segment, if records were appended to it
    /// after recovery checked it (they are read back from a fresh map, checked as read).
    pub(crate) sealed_len: Option<u64>,
}

/// A segment's bytes that recovery checked, record by record: reading them back needs no
/// second pass over them (the records' headers are read again, their payloads not).
#[derive(Clone, Debug)]
pub(crate) struct Checked {
    pub(crate) layout: Layout,
    /// The sequence number of its first record.
    pub(crate) first_seq: u64,
    /// The segment's bytes up to the end of its last whole record: a view of its mapping.
    pub(crate) bytes: Bytes,
    /// Damaged stretches that salvage skipped, in order.
    pub(crate) skips: Vec<Skip>,
}

/// A damaged stretch `from..to` of a segment skipped by salvage; the record at `to` (if any)
/// is numbered `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Skip {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) seq: u64,
}

/// What a writable open must change for the log to be whole; at most one, in the last segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Repair {
    /// The last segment's creation was cut short (its header never durable) and it holds no
    /// record: write it anew, holding only its header.
    Rewrite { path: PathBuf, first_seq: u64 },
    /// The last segment ends in a torn tail: cut it at `at`.
    Cut { path: PathBuf, at: u64 },
}

/// What a scan found.
#[derive(Debug)]
pub(crate) struct Scan {
    /// What recovery reports (its `cut` is the one [`Scan::repair`] makes).
    pub(crate) recovery: Recovery,
    /// The sequence number the next record gets.
    pub(crate) next_seq: u64,
    /// What a writable open must change.
    pub(crate) repair: Option<Repair>,
    /// Each segment as checked (`None`: a segment to be written anew, with no record in it).
    pub(crate) checked: Vec<Option<Checked>>,
}

/// The sequence number a segment file name gives: exactly 20 decimal digits and `.log`
/// (`00000000000000000734.log`); any other name (`1.log`, `+0000000000000000001.log`, a
/// backup copy) is not a segment and is ignored.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    parse_seq_digits(name.strip_suffix(".log")?)
}

/// Exactly 20 ASCII decimal digits as a number (which `str::parse` alone would accept with a
/// sign or fewer digits).
pub(crate) fn parse_seq_digits(digits: &str) -> Option<u64> {
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files in `dir`, by first sequence number.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<Segment>, IoError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("listing", dir))? {
        let entry = entry.map_err(io("listing", dir))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(first_seq) = parse_segment_name(&name) {
            segments.push(Segment {
                first_seq,
                path: entry.path(),
                checked: None,
                sealed_len: None,
            });
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// Checks every segment, record by record, bringing each into memory once, as `how` says;
/// see `docs/persist-format.md`, Recovery.
pub(crate) fn scan(
    segments: &[Segment],
    options: &LogOptions,
    how: Load,
) -> Result<Scan, OpenError> {
    let mut recovery = Recovery::default();
    let mut repair = None;
    let mut checked = Vec::with_capacity(segments.len());
    let mut expected = segments.first().map_or(1, |s| s.first_seq);
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let corrupt = |offset: usize, reason: &str| OpenError::Corrupt {
            file: segment.path.clone(),
            offset: offset as u64,
            reason: reason.to_string(),
        };
        if segment.first_seq == 0 || segment.first_seq > MAX_SEQ {
            return Err(corrupt(
                0,
                &format!(
                    "no segment can start at record {}: records are numbered from 1 to {MAX_SEQ}",
                    segment.first_seq
                ),
            ));
        }
        let bytes = load(&segment.path, None, max_segment_bytes(options), how)?;
        recovery.bytes += bytes.len() as u64;
        let max = options.max_record_bytes;
        // Built on the first damage found, once per segment: recovery is linear in the bytes
        // it reads however the damage is crafted (see `resync`).
        let mut tables: Option<Resync> = None;
        // A last segment whose creation was cut short (its header never made durable, so
        // missing, partial or garbage) holds no record: to be written anew. Only if no valid
        // record (of either layout) is in it, though; otherwise its damaged header is
        // corruption.
        let header = parse_segment_header(&bytes);
        let unborn = header.is_err() && {
            let tables = resync(&mut tables, &bytes, &segment.path)?;
            [V2, V1].iter().all(|&layout| {
                tables
                    .next_valid(layout, &bytes, 0, expected, max)
                    .is_none()
            })
        };
        if last && unborn && segment.first_seq == expected {
            recovery.checksummed_bytes += tables.map_or(0, |t| t.checksummed_bytes);
            repair = Some(Repair::Rewrite {
                path: segment.path.clone(),
                first_seq: segment.first_seq,
            });
            if !bytes.is_empty() {
                recovery.cut = Some(Cut {
                    file: segment.path.clone(),
                    offset: 0,
                    bytes: bytes.len() as u64,
                });
            }
            checked.push(None);
            continue;
        }
        let (layout, first_seq) = header.map_err(|why| corrupt(0, why))?;
        if first_seq != segment.first_seq || first_seq != expected {
            return Err(corrupt(
                8,
                &format!("the segment starts at record {first_seq}; expected {expected}"),
            ));
        }
        let mut skips = Vec::new();
        let mut at = layout.segment_header;
        let mut end = bytes.len();
        while at < bytes.len() {
            match record_at(layout, &bytes, at, max, &mut recovery.checksummed_bytes) {
                // `expected` stays at most `MAX_SEQ + 1`: no addition here can overflow.
                Ok(found) if found.seq == expected && found.seq <= MAX_SEQ => {
                    at = found.end;
                    expected += 1;
                    recovery.records += 1;
                    continue;
                }
                Ok(_) | Err(Fault::Short | Fault::Bad) => {}
            }
            let later = resync(&mut tables, &bytes, &segment.path)?.next_valid(
                layout,
                &bytes,
                at + 1,
                expected,
                max,
            );
            if last && later.is_none() {
                // A torn tail: nothing valid follows.
                repair = Some(Repair::Cut {
                    path: segment.path.clone(),
                    at: at as u64,
                });
                recovery.cut = Some(Cut {
                    file: segment.path.clone(),
                    offset: at as u64,
                    bytes: (bytes.len() - at) as u64,
                });
                end = at;
                break;
            }
            match later {
                Some((next, seq)) if options.salvage => {
                    recovery.skipped.push(Cut {
                        file: segment.path.clone(),
                        offset: at as u64,
                        bytes: (next - at) as u64,
                    });
                    skips.push(Skip {
                        from: at,
                        to: next,
                        seq,
                    });
                    expected = seq;
                    at = next;
                }
                _ if options.salvage => {
                    recovery.skipped.push(Cut {
                        file: segment.path.clone(),
                        offset: at as u64,
                        bytes: (bytes.len() - at) as u64,
                    });
                    skips.push(Skip {
                        from: at,
                        to: bytes.len(),
                        seq: expected,
                    });
                    break;
                }
                _ => {
                    return Err(corrupt(
                        at,
                        &format!("record {expected} is damaged, and valid records follow"),
                    ));
                }
            }
        }
        recovery.checksummed_bytes += tables.map_or(0, |t| t.checksummed_bytes);
        checked.push(Some(Checked {
            layout,
            first_seq,
            bytes: bytes.slice(..end),
            skips,
        }));
    }
    Ok(Scan {
        recovery,
        next_seq: expected,
        repair,
        checked,
    })
}
