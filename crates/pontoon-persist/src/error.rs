//! Errors, one type per operation (opening, appending, reading, snapshots) over one I/O error
//! type, and [`LogError`], the umbrella any of them converts into for `?`.

use std::path::PathBuf;

/// A file operation failed: what was being done, to which file or directory, and the operating
/// system's error (its [`source`](std::error::Error::source)).
///
/// ```
/// let err = pontoon_persist::Log::open("/proc/version/log", Default::default()).unwrap_err();
/// assert!(matches!(err, pontoon_persist::OpenError::Io(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}")]
#[non_exhaustive]
pub struct IoError {
    /// What was being done.
    pub what: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The error from the operating system.
    #[source]
    pub source: std::io::Error,
}

/// Why opening ([`Log::open`](crate::Log::open)) or inspecting
/// ([`Log::inspect`](crate::Log::inspect)) a log failed. Corruption names the file and the byte
/// offset.
///
/// ```
/// let err = pontoon_persist::OpenError::Locked { dir: "/data/log".into() };
/// assert!(err.to_string().contains("another process"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
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
    /// Restoring the empty directory from the log's remote failed
    /// ([`Log::open_remote`](crate::Log::open_remote)): the directory is left as it was.
    /// (Boxed: the remote's errors are large, and every open returns this type.)
    #[cfg(feature = "remote")]
    #[error(transparent)]
    Remote(Box<crate::RemoteError>),
}

/// Why appending, syncing, waiting for durability or pruning failed.
///
/// ```
/// let err = pontoon_persist::AppendError::TooLarge { len: 10, limit: 5 };
/// assert!(err.to_string().contains("over the limit"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
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
    /// a log gives is [`MAX_SEQ`](crate::MAX_SEQ), so that the next sequence number always
    /// fits).
    #[error(
        "the log has used every sequence number (the last was {last}); no record can be appended"
    )]
    SequenceExhausted {
        /// The last sequence number given.
        last: u64,
    },
    /// The message could not be encoded.
    #[error("cannot encode the record's message")]
    Encode(#[from] pontoon_wire::EncodeError),
    /// Under [`RemoteDurability::Acknowledged`](crate::RemoteDurability::Acknowledged), record
    /// `seq` was appended and is durable locally, but the round that was to publish it on the
    /// remote failed: it is not acknowledged as on the remote. The record stands; the next
    /// round (or [`Log::wait_remote`](crate::Log::wait_remote)) uploads it.
    #[cfg(feature = "remote")]
    #[error("record {seq} was appended locally, but putting it on the remote failed")]
    NotOnRemote {
        /// The appended record's sequence number.
        seq: u64,
        /// Why the upload failed.
        #[source]
        source: Box<crate::RemoteError>,
    },
    /// An upload asked for with [`Log::sync_remote`](crate::Log::sync_remote) or
    /// [`Log::wait_remote`](crate::Log::wait_remote) failed. (Boxed: the remote's errors
    /// are large, and every append returns this type.)
    #[cfg(feature = "remote")]
    #[error(transparent)]
    Remote(Box<crate::RemoteError>),
    /// [`Log::sync_remote`](crate::Log::sync_remote) or
    /// [`Log::wait_remote`](crate::Log::wait_remote) was called on a log opened without a
    /// remote.
    #[cfg(feature = "remote")]
    #[error("the log was opened without a remote")]
    NoRemote,
}

/// Why reading records back failed.
///
/// ```
/// let err = pontoon_persist::ReadError::Poisoned { cause: "disk full".into() };
/// assert!(err.to_string().contains("disk full"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A file operation failed (a segment removed by a prune while it was to be read, say).
    #[error(transparent)]
    Io(#[from] IoError),
    /// An earlier write or fsync failed, so the log cannot say what it holds.
    #[error("the log refuses reads after an earlier write failure ({cause}); reopen it to recover")]
    Poisoned {
        /// The first failure, as it was reported.
        cause: String,
    },
    /// A segment changed under the reader since it was recovered.
    #[error("corrupt log: {file} at byte offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A segment file is longer than the options allow (see [`OpenError::SegmentTooLarge`]).
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
    /// A segment to read is not a regular file (see [`OpenError::NotAFile`]).
    #[error("{path} is named like a log segment but is not a regular file")]
    NotAFile {
        /// The entry.
        path: PathBuf,
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
}

/// Why writing, loading or removing snapshots failed.
///
/// ```
/// let err = pontoon_persist::write_snapshot("/proc/version/x", 1, &Default::default()).unwrap_err();
/// assert!(matches!(err, pontoon_persist::SnapshotError::Io(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The message could not be encoded.
    #[error("cannot encode the snapshot's message")]
    Encode(#[from] pontoon_wire::EncodeError),
}

/// Any error of this crate, for `?` in code that opens, appends, reads and snapshots: each
/// operation's own error converts into it, and it prints (and chains) exactly as that error.
///
/// ```
/// fn run(dir: &std::path::Path) -> Result<u64, pontoon_persist::LogError> {
///     let (log, _) = pontoon_persist::Log::open(dir, Default::default())?; // an OpenError
///     Ok(log.append(1, &pontoon_wire::Message::default())?) // an AppendError
/// }
/// let dir = std::env::temp_dir().join(format!("pontoon-doc-logerror-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// assert_eq!(run(&dir)?, 1);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), pontoon_persist::LogError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// Opening or inspecting failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Appending (or syncing, waiting, pruning) failed.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// Reading records failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A snapshot operation failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// What reading a segment file can fail with, during recovery or when reading records back.
#[derive(Debug)]
pub(crate) enum FileError {
    Io(IoError),
    TooLarge { file: PathBuf, len: u64, limit: u64 },
    NotAFile { path: PathBuf },
}

impl From<IoError> for FileError {
    fn from(error: IoError) -> FileError {
        FileError::Io(error)
    }
}

impl From<FileError> for OpenError {
    fn from(error: FileError) -> OpenError {
        match error {
            FileError::Io(e) => OpenError::Io(e),
            FileError::TooLarge { file, len, limit } => {
                OpenError::SegmentTooLarge { file, len, limit }
            }
            FileError::NotAFile { path } => OpenError::NotAFile { path },
        }
    }
}

impl From<FileError> for ReadError {
    fn from(error: FileError) -> ReadError {
        match error {
            FileError::Io(e) => ReadError::Io(e),
            FileError::TooLarge { file, len, limit } => {
                ReadError::SegmentTooLarge { file, len, limit }
            }
            FileError::NotAFile { path } => ReadError::NotAFile { path },
        }
    }
}

impl From<FileError> for SnapshotError {
    /// Only I/O errors reach a snapshot's caller (a snapshot that is too large or not a file is
    /// skipped as damaged).
    fn from(error: FileError) -> SnapshotError {
        match error {
            FileError::Io(e) => SnapshotError::Io(e),
            FileError::TooLarge { file, .. } | FileError::NotAFile { path: file } => {
                SnapshotError::Io(IoError {
                    what: "reading",
                    path: file,
                    source: std::io::ErrorKind::InvalidData.into(),
                })
            }
        }
    }
}

/// The log refuses writes (and reads) after an earlier write failure: the first failure's
/// description.
#[derive(Debug)]
pub(crate) struct Poisoned(pub(crate) String);

impl From<Poisoned> for AppendError {
    fn from(poisoned: Poisoned) -> AppendError {
        AppendError::Poisoned { cause: poisoned.0 }
    }
}

impl From<Poisoned> for ReadError {
    fn from(poisoned: Poisoned) -> ReadError {
        ReadError::Poisoned { cause: poisoned.0 }
    }
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

#[cfg(feature = "remote")]
impl From<crate::RemoteError> for OpenError {
    fn from(error: crate::RemoteError) -> OpenError {
        OpenError::Remote(Box::new(error))
    }
}

#[cfg(feature = "remote")]
impl From<crate::RemoteError> for AppendError {
    fn from(error: crate::RemoteError) -> AppendError {
        AppendError::Remote(Box::new(error))
    }
}
