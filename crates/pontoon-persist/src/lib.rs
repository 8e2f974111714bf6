//! pontoon-persist: state that survives kill -9 and power loss, with nothing acknowledged ever
//! lost.
//!
//! A [`Log`] is an append-only sequence of records in segment files. Each record holds a pontoon
//! message (header and frames), so anything a pontoon-family registry can serialize can be logged;
//! each carries its length, a sequence number, a kind, and a CRC32C over all of them and the
//! payload. An append is acknowledged only once it is durable under the chosen [`Durability`]:
//! its own `fdatasync` (`Always`), one shared with every concurrent append (`GroupCommit`, for
//! many threads appending to one `Log`, or one thread pipelining with [`Log::submit`] and
//! [`Log::wait_durable`]), a background sync every interval (`Interval`), or only when asked
//! (`Never`). Opening a log recovers it: a torn or garbage tail in the last segment is cut (durably), and
//! damage anywhere else is an error naming the file and byte offset, unless salvage is asked for.
//!
//! A snapshot ([`write_snapshot`], [`load_snapshot`]) holds one message and the sequence number
//! of the last record it includes, written atomically; [`Log::prune_before`] then removes the
//! segments it covers. [`Durable`] puts them together: application state changed only by events, each
//! logged before it is applied, rebuilt exactly after a crash from the newest snapshot and the
//! events after it.
//!
//! A [`RecordFileWriter`] writes a standalone record file (records in the same aligned layout,
//! appended by one writer that keeps their offsets, finished with one `fdatasync`), and a
//! [`RecordFile`] reads a record back at its offset as a message whose frames are views of the
//! file's map: the object store's spill files.
//!
//! [`Log::inspect`] looks at a log without changing it (nothing created, locked exclusively, cut
//! or written), for tools such as `pontoon log verify`.
//!
//! With the feature `remote`, a [`Durable`] state, or a bare [`Log`] (`Log::open_remote`),
//! also lives on S3-compatible object storage (or a `file://` directory standing in for it):
//! `Remote` names it, a background thread uploads the sealed segments (and, for a state, the
//! newest snapshot, and only the segments after it) and publishes them with a conditionally
//! created [`RemoteManifest`], and opening an empty directory restores from it
//! (`docs/remote.md`; the examples are `Log::open_remote`'s and `Durable::sync_remote`'s).
//! Under `RemoteDurability`'s `Acknowledged`, `append` (or `apply`) returns only once its
//! record is on the remote too (the active segment's tail goes up as parts); `wait_remote`
//! puts many submitted records there in one round. A `Durable` with a remote is its log's
//! remote; a bare log refuses a state's prefix (`RemoteError::NotALog`).
//!
//! Records start at 64-byte aligned file offsets, and segments and snapshots are read through
//! read-only memory maps: a frame read back is a view of the map, so an array logged is an array
//! read back without a copy. Logs of pontoon 0.1 (format version 1) still open.
//!
//! The byte layout, what is assumed of the medium, and what must not be done to mapped files
//! are in `docs/persist-format.md`.
#![doc(test(attr(deny(warnings))))]

mod error;
mod files;
pub mod format;
mod group;
mod inspect;
mod log;
mod manifest;
pub mod metrics;
mod options;
mod record_file;
mod records;
mod recovery;
#[cfg(feature = "remote")]
mod remote;
mod resync;
mod snapshot;
mod state;

pub use error::{AppendError, IoError, LogError, OpenError, ReadError, SnapshotError};
pub use format::MAX_SEQ;
pub use group::LogStats;
pub use inspect::Inspection;
pub use log::{DurableWait, Log};
pub use manifest::RemoteManifest;
pub use options::{Durability, LogOptions};
pub use record_file::{
    Appended, FileRecord, RECORD_FILE_HEADER_LEN, RECORD_FILE_MAGIC, RECORD_FILE_VERSION,
    RecordChunks, RecordFile, RecordFileError, RecordFileWriter,
};
pub use records::{RawRecord, RawRecords, Record, Records};
pub use recovery::{Cut, Recovery};
#[cfg(feature = "remote")]
pub use remote::uploader::RemoteStatus;
#[cfg(feature = "remote")]
pub use remote::{Remote, RemoteDurability, RemoteError, RemoteTimeouts};
pub use snapshot::{
    DamagedSnapshot, Pruned, SNAPSHOT_HEADER_LEN, SNAPSHOT_MAGIC, SNAPSHOT_VERSION, Snapshot,
    SnapshotRecovery, encode_snapshot, load_snapshot, remove_snapshots_before, snapshot_file_name,
    write_snapshot,
};
pub use state::{Durable, DurableOptions, DurableRecovery, KIND_EVENT, Refusal, StateError};

// The README's example is compiled and run as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
