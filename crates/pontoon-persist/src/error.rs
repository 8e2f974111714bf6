//! [`LogError`]: what can go wrong opening, appending to, or reading a log.

use std::path::PathBuf;

/// What went wrong with a log. Corruption names the file and the byte offset.
///
/// ```
/// let err = pontoon_persist::LogError::Locked { dir: "/data/log".into() };
/// assert!(err.to_string().contains("another process"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A file operation failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the log open.
    #[error("another process has the log in {dir} open (its LOCK file is locked)")]
    Locked {
        /// The log's directory.
        dir: PathBuf,
    },
    /// A damaged record, not at the tail of the last segment (where a torn write would be), so
    /// not cut: recovery stops rather than lose what follows. Open with salvage to skip it.
    #[error("corrupt log: {file} at byte offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A segment file is longer than the options it is opened with allow (`segment_bytes` plus
    /// one record of `max_record_bytes`): it is refused before it is read into memory. A log
    /// written with larger options must be opened with them.
    #[error(
        "segment {file} is {len} bytes, more than the {limit} that LogOptions::segment_bytes and max_record_bytes allow"
    )]
    SegmentTooLarge {
        /// The segment file.
        file: PathBuf,
        /// Its length.
        len: u64,
        /// The longest allowed.
        limit: u64,
    },
    /// A record's payload is not a pontoon message.
    #[error("record {seq} in {file} at byte offset {offset} holds no valid message")]
    BadPayload {
        /// The record's sequence number.
        seq: u64,
        /// The segment file.
        file: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What the decoder said.
        #[source]
        source: pontoon_wire::DecodeError,
    },
    /// An earlier write or fsync failed: the log no longer knows what is on disk, and refuses
    /// all writes (an fsync error is never retried and then trusted). Reopening recovers what
    /// is on disk.
    #[error("the log refuses writes after an earlier failure ({cause}); reopen it to recover")]
    Poisoned {
        /// The first failure, as it was reported.
        cause: String,
    },
    /// A record larger than [`LogOptions::max_record_bytes`](crate::LogOptions::max_record_bytes)
    /// was not appended.
    #[error("a record of {len} bytes is over the limit of {limit}")]
    TooLarge {
        /// The record's payload length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// Every sequence number has been used: the log cannot number another record (the last one
    /// a log gives is `u64::MAX - 1`, so that the next sequence number always fits).
    #[error(
        "the log has used every sequence number (the last was {last}); no record can be appended"
    )]
    SequenceExhausted {
        /// The last sequence number given.
        last: u64,
    },
    /// A directory entry named like a segment is not a regular file (a directory, a FIFO, a
    /// device): it is refused before it is opened, so that reading it never blocks.
    #[error("{path} is named like a log segment but is not a regular file")]
    NotAFile {
        /// The entry.
        path: PathBuf,
    },
    /// A directory to inspect holds no log.
    #[error("{dir} holds no pontoon log: {reason}")]
    NoLog {
        /// The directory.
        dir: PathBuf,
        /// Why not.
        reason: &'static str,
    },
    /// The message could not be encoded.
    #[error("cannot encode the record's message")]
    Encode(#[from] pontoon_wire::EncodeError),
}

/// An error and each of its causes, joined by `: ` (for a message that outlives the error, such
/// as a poisoned log's first failure).
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
