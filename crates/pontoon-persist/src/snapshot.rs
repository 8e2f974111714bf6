//! Snapshots: one pontoon message (an application's state) and the sequence number of the last
//! log record it includes, in a checksummed file written atomically (temporary file, `fsync`,
//! rename, directory `fsync`), loaded newest first as a view of its memory map, and removed once
//! a newer one is durable.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use pontoon_wire::{Encoder, Limits, Message, decode_message};

use crate::error::{FileError, IoError, SnapshotError};
use crate::files::{Load, io, load, sync_dir, write_all_pieces};
use crate::recovery::parse_seq_digits;

/// The first seven bytes of every snapshot file: `F0 46 52 59 53 4E 50` (`\xF0FRYSNP`).
pub const SNAPSHOT_MAGIC: [u8; 7] = *b"\xF0FRYSNP";

/// The snapshot format version this crate writes (it reads version 1 too).
pub const SNAPSHOT_VERSION: u8 = 2;

/// Length of a version 2 snapshot's header: magic, version, last_seq, len, CRC32C, and zeros up
/// to 64 bytes, so that the message, and each of its frames, is 64-byte aligned in the file.
pub const SNAPSHOT_HEADER_LEN: usize = 64;

/// Length of a version 1 snapshot's header (pontoon 0.1).
const V1_HEADER_LEN: usize = 32;

/// The file name of the snapshot whose last included record is `last_seq`:
/// `snapshot-<last_seq in 20 digits>.snap`.
///
/// ```
/// assert_eq!(pontoon_persist::snapshot_file_name(42), "snapshot-00000000000000000042.snap");
/// ```
pub fn snapshot_file_name(last_seq: u64) -> String {
    format!("snapshot-{last_seq:020}.snap")
}

/// The temporary file a snapshot is written to before it is renamed into place.
fn tmp_file_name(last_seq: u64) -> String {
    format!("snapshot-{last_seq:020}.tmp")
}

/// The bytes of a snapshot file holding `message`, whose last included record is `last_seq`.
///
/// [`write_snapshot`] writes exactly these bytes; they are public so that a test can perform
/// the steps of a write by hand.
///
/// ```
/// let bytes = pontoon_persist::encode_snapshot(7, &pontoon_wire::Message::default())?;
/// assert_eq!(&bytes[..7], b"\xF0FRYSNP");
/// assert_eq!(bytes[8..16], 7u64.to_le_bytes());
/// # Ok::<(), pontoon_persist::SnapshotError>(())
/// ```
pub fn encode_snapshot(last_seq: u64, message: &Message) -> Result<Vec<u8>, SnapshotError> {
    let encoded = Encoder::default().encode(message)?;
    let chunks: Vec<&[u8]> = encoded.chunks().iter().map(|c| &c[..]).collect();
    let header = snapshot_header(last_seq, encoded.len(), &chunks);
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + encoded.len() as usize);
    out.extend_from_slice(&header);
    chunks.iter().for_each(|c| out.extend_from_slice(c));
    Ok(out)
}

/// A snapshot file's header for a payload of `len` bytes given in pieces.
fn snapshot_header(last_seq: u64, len: u64, payload: &[&[u8]]) -> [u8; SNAPSHOT_HEADER_LEN] {
    let mut header = [0u8; SNAPSHOT_HEADER_LEN];
    header[..7].copy_from_slice(&SNAPSHOT_MAGIC);
    header[7] = SNAPSHOT_VERSION;
    header[8..16].copy_from_slice(&last_seq.to_le_bytes());
    header[16..24].copy_from_slice(&len.to_le_bytes());
    let crc = payload
        .iter()
        .fold(crc32c::crc32c(&header[8..24]), |crc, piece| {
            crc32c::crc32c_append(crc, piece)
        });
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Checks a snapshot file's bytes (either version); returns its last_seq and where its payload
/// starts.
fn parse_snapshot(bytes: &[u8]) -> Result<(u64, usize), &'static str> {
    let short = "the file is shorter than a snapshot header";
    let start = bytes.get(..V1_HEADER_LEN).ok_or(short)?;
    if start[..7] != SNAPSHOT_MAGIC {
        return Err("not a pontoon snapshot (bad magic)");
    }
    let header_len = match start[7] {
        1 => V1_HEADER_LEN,
        2 => SNAPSHOT_HEADER_LEN,
        _ => return Err("unsupported snapshot format version"),
    };
    let header = bytes.get(..header_len).ok_or(short)?;
    let last_seq = u64::from_le_bytes(header[8..16].try_into().expect("eight bytes"));
    let len = u64::from_le_bytes(header[16..24].try_into().expect("eight bytes"));
    let crc = u32::from_le_bytes(header[24..28].try_into().expect("four bytes"));
    if header[28..].iter().any(|&b| b != 0) {
        return Err("the reserved field is not zero");
    }
    if len != (bytes.len() - header_len) as u64 {
        return Err("the payload length does not match the file's size");
    }
    let payload = &bytes[header_len..];
    if crc32c::crc32c_append(crc32c::crc32c(&header[8..24]), payload) != crc {
        return Err("checksum mismatch");
    }
    Ok((last_seq, header_len))
}

/// Writes a snapshot of `message`, whose last included log record is `last_seq`, into `dir`,
/// atomically and durably: the bytes go to `snapshot-<last_seq>.tmp`, which is `fsync`ed, then
/// renamed to `snapshot-<last_seq>.snap`, then the directory is `fsync`ed. Returns the
/// snapshot's path. A crash at any point leaves either the old snapshots or the new one, never
/// a partial one under a `.snap` name.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("pontoon-doc-snap-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// # std::fs::create_dir_all(&dir).unwrap();
/// let message = pontoon_wire::Message::new(pontoon_wire::Header::from_serde(&"state")?, vec![]);
/// pontoon_persist::write_snapshot(&dir, 10, &message)?;
/// let loaded = pontoon_persist::load_snapshot(&dir, &pontoon_wire::Limits::default())?;
/// let snapshot = loaded.snapshot.unwrap();
/// assert_eq!((snapshot.last_seq, snapshot.message), (10, message));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_snapshot(
    dir: impl AsRef<Path>,
    last_seq: u64,
    message: &Message,
) -> Result<PathBuf, SnapshotError> {
    let dir = dir.as_ref();
    let started = std::time::Instant::now();
    // Written vectored from the message's own frames: the state is never gathered into one
    // buffer.
    let encoded = Encoder::default().encode(message)?;
    let mut pieces: Vec<&[u8]> = Vec::with_capacity(encoded.chunks().len() + 1);
    pieces.push(&[]);
    pieces.extend(encoded.chunks().iter().map(|c| &c[..]));
    let header = snapshot_header(last_seq, encoded.len(), &pieces[1..]);
    pieces[0] = &header;
    let tmp = dir.join(tmp_file_name(last_seq));
    let path = dir.join(snapshot_file_name(last_seq));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .map_err(io("creating", &tmp))?;
    write_all_pieces(&file, &pieces).map_err(io("writing", &tmp))?;
    file.sync_all().map_err(io("syncing", &tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io("renaming into place", &tmp))?;
    sync_dir(dir)?;
    let seconds = started.elapsed().as_secs_f64();
    let bytes = pieces.iter().map(|piece| piece.len() as u64).sum::<u64>();
    ::metrics::counter!(crate::metrics::SNAPSHOTS_WRITTEN).increment(1);
    ::metrics::counter!(crate::metrics::SNAPSHOT_BYTES).increment(bytes);
    ::metrics::histogram!(crate::metrics::SNAPSHOT_SECONDS).record(seconds);
    tracing::info!(path = %path.display(), last_seq, bytes, seconds, "snapshot written");
    Ok(path)
}

/// A snapshot read back.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The sequence number of the last log record the snapshot includes.
    pub last_seq: u64,
    /// The message it holds.
    pub message: Message,
    /// Its file.
    pub path: PathBuf,
}

/// A snapshot file that did not verify, and was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DamagedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// What [`load_snapshot`] found.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SnapshotRecovery {
    /// The newest snapshot that verified, if any.
    pub snapshot: Option<Snapshot>,
    /// Newer snapshots that did not verify, newest first (left in place, not deleted).
    pub damaged: Vec<DamagedSnapshot>,
    /// Leftover `.tmp` files of writes cut short, which were deleted.
    pub removed_tmp: Vec<PathBuf>,
}

/// Snapshot files (`last_seq`, path), and leftover `.tmp` files.
type Listing = (Vec<(u64, PathBuf)>, Vec<PathBuf>);

/// The snapshot files (`last_seq`, path) in `dir`, newest first, and the leftover `.tmp` files.
fn list(dir: &Path) -> Result<Listing, IoError> {
    let mut snaps = Vec::new();
    let mut tmps = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("listing", dir))? {
        let entry = entry.map_err(io("listing", dir))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(rest) = name.strip_prefix("snapshot-") else {
            continue;
        };
        // Only the exact names this crate writes: anything else is not ours to read or delete.
        if let Some(seq) = rest.strip_suffix(".snap").and_then(parse_seq_digits) {
            snaps.push((seq, entry.path()));
        } else if rest
            .strip_suffix(".tmp")
            .and_then(parse_seq_digits)
            .is_some()
        {
            tmps.push(entry.path());
        }
    }
    snaps.sort_by_key(|&(seq, _)| std::cmp::Reverse(seq));
    Ok((snaps, tmps))
}

/// Loads the newest snapshot in `dir` whose checksum verifies and whose message decodes under
/// `limits`; newer damaged ones are skipped and reported. Leftover `.tmp` files (writes cut
/// short) are deleted, so the caller must be the only writer of snapshots in `dir` (for
/// instance, by holding the directory's [`Log`](crate::Log) open). A missing `dir` has no
/// snapshot.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("pontoon-doc-load-{}", std::process::id()));
/// let loaded = pontoon_persist::load_snapshot(&dir, &pontoon_wire::Limits::default())?;
/// assert!(loaded.snapshot.is_none());
/// # Ok::<(), pontoon_persist::SnapshotError>(())
/// ```
pub fn load_snapshot(
    dir: impl AsRef<Path>,
    limits: &Limits,
) -> Result<SnapshotRecovery, SnapshotError> {
    let dir = dir.as_ref();
    let mut recovery = SnapshotRecovery::default();
    if !dir.exists() {
        return Ok(recovery);
    }
    let (snaps, tmps) = list(dir)?;
    for tmp in tmps {
        fs::remove_file(&tmp).map_err(io("removing", &tmp))?;
        recovery.removed_tmp.push(tmp);
    }
    if !recovery.removed_tmp.is_empty() {
        sync_dir(dir)?;
    }
    // A snapshot holds one message: anything longer than the limits allow is damaged, and is
    // not read into memory.
    let max = (SNAPSHOT_HEADER_LEN as u64).saturating_add(limits.max_message_bytes);
    for (name_seq, path) in snaps {
        // Mapped, not read: the state's frames (its arrays) are views of the file. Snapshot
        // files are written whole under a temporary name and never changed once renamed.
        let bytes = match load(&path, None, max, Load::MapEvery) {
            Ok(bytes) => bytes,
            Err(FileError::NotAFile { .. }) => {
                recovery.damaged.push(DamagedSnapshot {
                    path,
                    reason: "not a regular file".into(),
                });
                continue;
            }
            Err(FileError::TooLarge { len, .. }) => {
                recovery.damaged.push(DamagedSnapshot {
                    path,
                    reason: format!("{len} bytes, more than the limits allow ({max})"),
                });
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let checked = match parse_snapshot(&bytes) {
            Ok((seq, _)) if seq != name_seq => {
                Err("the header's last_seq does not match the file name".to_string())
            }
            // The message's frames are views of the map, not a copy.
            Ok((seq, start)) => decode_message(bytes.slice(start..), limits)
                .map(|message| (seq, message))
                .map_err(|e| format!("the payload is not a valid message: {e}")),
            Err(why) => Err(why.to_string()),
        };
        match checked {
            Ok((last_seq, message)) => {
                recovery.snapshot = Some(Snapshot {
                    last_seq,
                    message,
                    path,
                });
                break;
            }
            Err(reason) => recovery.damaged.push(DamagedSnapshot { path, reason }),
        }
    }
    Ok(recovery)
}

/// What [`Durable::snapshot`](crate::Durable::snapshot) removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pruned {
    /// Log segment files removed, oldest first.
    pub segments: Vec<PathBuf>,
    /// Older snapshot files removed.
    pub snapshots: Vec<PathBuf>,
}

/// Removes every snapshot in `dir` older than the one for `last_seq` (only files with exact
/// snapshot names), then syncs the directory; returns the paths removed. Call it only once the
/// snapshot for `last_seq` is durable ([`write_snapshot`] returned).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("pontoon-doc-rmsnap-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// # std::fs::create_dir_all(&dir).unwrap();
/// let state = pontoon_wire::Message::default();
/// pontoon_persist::write_snapshot(&dir, 3, &state)?;
/// pontoon_persist::write_snapshot(&dir, 7, &state)?;
/// let removed = pontoon_persist::remove_snapshots_before(&dir, 7)?;
/// assert_eq!(removed, [dir.join(pontoon_persist::snapshot_file_name(3))]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), pontoon_persist::SnapshotError>(())
/// ```
pub fn remove_snapshots_before(
    dir: impl AsRef<Path>,
    last_seq: u64,
) -> Result<Vec<PathBuf>, SnapshotError> {
    let dir = dir.as_ref();
    let (snaps, _) = list(dir)?;
    let mut removed = Vec::new();
    for (seq, path) in snaps {
        if seq < last_seq {
            fs::remove_file(&path).map_err(io("removing", &path))?;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(removed)
}
