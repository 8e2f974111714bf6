//! A standalone record file: records (version 2 layout, 64-byte aligned) appended sequentially
//! by one [`RecordFileWriter`], and read back at their offsets by [`RecordFile`] through a
//! read-only memory map. No sequence, no recovery: a container for messages that one writer
//! keeps the offsets of (the object store's spill files). Layout: `docs/persist-format.md`,
//! Record files.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use pontoon_wire::{Encoder, Limits, Message};

use crate::error::{FileError, IoError};
use crate::files::{Load, io, load, sync_dir, write_all_pieces};
use crate::format::{
    Payload, RECORD_HEADER_LEN, V2, ZEROS, header_at, payload_crc, record_at, record_header,
};

/// A message framed as one record: the header, the encoded message, and how many zero bytes
/// pad the record to its alignment.
struct Framed {
    header: [u8; RECORD_HEADER_LEN],
    encoded: pontoon_wire::Encoded,
    padding: usize,
    record_len: u64,
}

/// Encodes `message` and makes its record header, the same for a file written to disk
/// ([`RecordFileWriter`]) and one built in memory ([`RecordChunks`]).
fn frame(
    encoder: &Encoder,
    kind: u32,
    seq: u64,
    message: &Message,
) -> Result<Framed, RecordFileError> {
    let encoded = encoder.encode(message).map_err(RecordFileError::Encode)?;
    let len = encoded.len();
    let pieces: Vec<&[u8]> = encoded.chunks().iter().map(|c| &c[..]).collect();
    let payload = if len >= COMBINE_CRC_BYTES {
        Payload::Crc(payload_crc(&pieces))
    } else {
        Payload::Pieces(&pieces)
    };
    let header = record_header(kind, seq, len, payload);
    let record_len = V2.record_len(len);
    let padding = (record_len - RECORD_HEADER_LEN as u64 - len) as usize;
    Ok(Framed {
        header,
        encoded,
        padding,
        record_len,
    })
}

/// The first seven bytes of every record file: `F0 46 52 59 52 45 43` (`\xF0FRYREC`).
pub const RECORD_FILE_MAGIC: [u8; 7] = *b"\xF0FRYREC";

/// The record file format version this crate writes and reads.
pub const RECORD_FILE_VERSION: u8 = 2;

/// Length of a record file's header: magic, version, the writer's tag, zeros up to 64 bytes.
/// The first record starts there.
pub const RECORD_FILE_HEADER_LEN: usize = 64;

/// A record at most this long is gathered in the writer's reused buffer and written with
/// others in one `write`; a longer one is written straight from the message's frames.
const GATHER_BYTES: usize = 256 << 10;

/// The gathered records are written once they reach this many bytes.
const GATHER_FLUSH: usize = 4 << 20;

/// Payloads at least this long have their checksum computed alone and combined with the
/// header's (see `format::Payload`).
const COMBINE_CRC_BYTES: u64 = 1 << 20;

/// What a record file operation met. Corruption names the file and the byte offset.
///
/// ```
/// let err = pontoon_persist::RecordFile::open("/nonexistent/spill.rec").unwrap_err();
/// assert!(matches!(err, pontoon_persist::RecordFileError::Io(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordFileError {
    /// A file operation failed (`ENOSPC` included: see [`RecordFileError::is_disk_full`]).
    #[error(transparent)]
    Io(#[from] IoError),
    /// The path is not a regular file (a directory, a FIFO, a device).
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file's header, or the record at an offset, is not valid.
    #[error("corrupt record file: {file} at byte offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Where the damage is.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record verifies but its payload is not a pontoon message within the limits given.
    #[error("the record in {file} at byte offset {offset} is not a message")]
    BadPayload {
        /// The file.
        file: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// Why it does not decode.
        #[source]
        source: pontoon_wire::DecodeError,
    },
    /// The message cannot be encoded.
    #[error("cannot encode the message to append")]
    Encode(#[source] pontoon_wire::EncodeError),
}

impl RecordFileError {
    /// Whether the error is the disk (or the quota) being full.
    ///
    /// ```
    /// let err = pontoon_persist::RecordFileError::NotAFile { path: "/x".into() };
    /// assert!(!err.is_disk_full());
    /// ```
    pub fn is_disk_full(&self) -> bool {
        match self {
            RecordFileError::Io(e) => {
                e.source.kind() == std::io::ErrorKind::StorageFull
                    || e.source.kind() == std::io::ErrorKind::QuotaExceeded
            }
            _ => false,
        }
    }
}

impl From<FileError> for RecordFileError {
    fn from(error: FileError) -> RecordFileError {
        match error {
            FileError::Io(e) => RecordFileError::Io(e),
            FileError::NotAFile { path } => RecordFileError::NotAFile { path },
            FileError::TooLarge { file, len, limit } => RecordFileError::Corrupt {
                file,
                offset: 0,
                reason: format!("{len} bytes, more than the {limit} this process can map"),
            },
        }
    }
}

/// Where [`RecordFileWriter::append`] put a record.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("pontoon-appended-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let mut writer = pontoon_persist::RecordFileWriter::create(dir.join("a.rec"), 1)?;
/// let at = writer.append(0, 1, &pontoon_wire::Message::default())?;
/// assert_eq!(at.offset, 64); // right after the file header
/// assert_eq!(at.len % 64, 0);
/// # drop(writer); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Appended {
    /// The record's offset in the file (a multiple of 64).
    pub offset: u64,
    /// Bytes the record takes, its padding included.
    pub len: u64,
}

/// Writes a record file: a header, then records one after another, each at a 64-byte offset.
/// Small records are gathered in one reused buffer and written together; large ones go
/// straight from the message's frames in one vectored `write`.
///
/// A record is readable (by a [`RecordFile`] opened or reopened after it) once
/// [`flush`](RecordFileWriter::flush) returns, and durable once
/// [`finish`](RecordFileWriter::finish) (or [`sync`](RecordFileWriter::sync)) does. If a
/// write fails (a full disk), the file is cut back to its length after the last successful
/// flush: every record appended since is not in it, and the writer goes on from there.
///
/// ```
/// use pontoon_persist::{RecordFile, RecordFileWriter};
/// use pontoon_wire::{Header, Limits, Message};
/// # let dir = std::env::temp_dir().join(format!("pontoon-record-file-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("objects.rec");
/// let mut writer = RecordFileWriter::create(&path, 0xfeed)?;
/// let message = Message::new(Header::from_serde(&"hi")?, vec![bytes::Bytes::from(vec![7u8; 1000])]);
/// let at = writer.append(3, 1, &message)?;
/// writer.finish()?; // one fdatasync, then the directory's fsync
/// let file = RecordFile::open(&path)?;
/// assert_eq!(file.tag(), 0xfeed);
/// let record = file.record_at(at.offset, &Limits::DEFAULT)?;
/// assert_eq!((record.kind, record.seq), (3, 1));
/// assert_eq!(record.message, message);
/// assert_eq!(record.message.frames[0].as_ptr() as usize % 64, 0); // a view of the map
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RecordFileWriter {
    path: PathBuf,
    file: File,
    /// Bytes in the file once every gathered record is written.
    len: u64,
    /// Bytes the file holds for sure: its length after the last successful write.
    written: u64,
    /// Length after the last successful flush: where a failed write cuts the file back to.
    flushed: u64,
    /// Gathered records not written yet (its capacity is kept from flush to flush).
    gather: Vec<u8>,
    encoder: Encoder,
    /// Bytes of the file whose writeback has been started (see [`WRITEBACK_BYTES`]).
    kicked: u64,
}

/// Every this many bytes written, the file's writeback is started (`sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`, which does not wait): the disk then writes while the next records
/// are checksummed and copied, instead of all at the final `fdatasync`.
const WRITEBACK_BYTES: u64 = 8 << 20;

/// Starts writing `len` bytes of `file` from `offset` back to the disk, without waiting. Only a
/// hint: durability still comes from `fdatasync`, so a failure is ignored.
fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: a plain system call on a descriptor `file` keeps open for the call's length;
        // it reads and writes no memory of this process.
        let _ = unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    let _ = (file, offset, len);
}

impl RecordFileWriter {
    /// Creates the file at `path` (it must not exist; mode 0600) and writes its header, which
    /// carries `tag`: a number the reader can check to trust only files of its own writer.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-create-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let writer = pontoon_persist::RecordFileWriter::create(dir.join("x.rec"), 7)?;
    /// assert_eq!(writer.len(), 64);
    /// assert!(pontoon_persist::RecordFileWriter::create(dir.join("x.rec"), 7).is_err()); // exists
    /// # drop(writer); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(path: impl AsRef<Path>, tag: u64) -> Result<RecordFileWriter, RecordFileError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io("creating", &path))?;
        let mut writer = RecordFileWriter {
            path,
            file,
            len: 0,
            written: 0,
            flushed: 0,
            gather: Vec::new(),
            encoder: Encoder::default(),
            kicked: 0,
        };
        writer.gather.extend_from_slice(&file_header(tag));
        writer.len = RECORD_FILE_HEADER_LEN as u64;
        writer.flush()?;
        Ok(writer)
    }

    /// The file's path.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-path-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let writer = pontoon_persist::RecordFileWriter::create(dir.join("p.rec"), 0)?;
    /// assert!(writer.path().ends_with("p.rec"));
    /// # drop(writer); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file (for its descriptor: a reader in another process can be handed it).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-file-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let writer = pontoon_persist::RecordFileWriter::create(dir.join("f.rec"), 0)?;
    /// assert_eq!(writer.file().metadata()?.len(), 64);
    /// # drop(writer); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Bytes in the file, counting records appended but not flushed yet.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-len-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let mut writer = pontoon_persist::RecordFileWriter::create(dir.join("l.rec"), 0)?;
    /// let at = writer.append(0, 0, &pontoon_wire::Message::default())?;
    /// assert_eq!(writer.len(), at.offset + at.len);
    /// # drop(writer); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file holds no record (only its header).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-empty-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let writer = pontoon_persist::RecordFileWriter::create(dir.join("e.rec"), 0)?;
    /// assert!(writer.is_empty());
    /// # drop(writer); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len <= RECORD_FILE_HEADER_LEN as u64
    }

    /// Appends a record holding `message`, with the application's `kind` and `seq` in its
    /// header; returns where it is. It is in the file once [`flush`](Self::flush) returns (a
    /// large record is written before `append` returns).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-append-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let mut writer = pontoon_persist::RecordFileWriter::create(dir.join("a.rec"), 0)?;
    /// let first = writer.append(0, 1, &pontoon_wire::Message::default())?;
    /// let second = writer.append(0, 2, &pontoon_wire::Message::default())?;
    /// assert_eq!(second.offset, first.offset + first.len);
    /// # drop(writer); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append(
        &mut self,
        kind: u32,
        seq: u64,
        message: &Message,
    ) -> Result<Appended, RecordFileError> {
        let Framed {
            header,
            encoded,
            padding,
            record_len,
        } = frame(&self.encoder, kind, seq, message)?;
        let chunks: Vec<&[u8]> = encoded.chunks().iter().map(|c| &c[..]).collect();
        let padding = &ZEROS[..padding];
        let offset = self.len;
        if record_len as usize <= GATHER_BYTES {
            self.gather.extend_from_slice(&header);
            chunks.iter().for_each(|c| self.gather.extend_from_slice(c));
            self.gather.extend_from_slice(padding);
            self.len += record_len;
            if self.gather.len() >= GATHER_FLUSH {
                self.flush()?;
            }
        } else {
            self.flush()?;
            let mut pieces: Vec<&[u8]> = Vec::with_capacity(chunks.len() + 2);
            pieces.push(&header);
            pieces.extend_from_slice(&chunks);
            pieces.push(padding);
            self.len += record_len;
            self.write(&pieces)?;
            self.flushed = self.written;
        }
        Ok(Appended {
            offset,
            len: record_len,
        })
    }

    /// Writes `pieces` at the end of the file; on failure cuts the file back to its length
    /// after the last flush and forgets what was appended since.
    fn write(&mut self, pieces: &[&[u8]]) -> Result<(), RecordFileError> {
        match write_all_pieces(&self.file, pieces) {
            Ok(()) => {
                self.written = self.len;
                if self.written - self.kicked >= WRITEBACK_BYTES {
                    start_writeback(&self.file, self.kicked, self.written - self.kicked);
                    self.kicked = self.written;
                }
                Ok(())
            }
            Err(e) => {
                let error = io("appending to", &self.path)(e);
                self.gather.clear();
                self.len = self.flushed;
                self.written = self.flushed;
                self.kicked = self.kicked.min(self.flushed);
                // Cut back so the file holds only whole records, and the next write lands
                // where the offsets say. A failing cut leaves a tail no offset points into.
                let _ = self.file.set_len(self.flushed);
                let _ = std::io::Seek::seek(&mut self.file, std::io::SeekFrom::Start(self.flushed));
                Err(error.into())
            }
        }
    }

    /// Writes the gathered records: every record appended so far is then in the file, readable
    /// through a map made after this returns (not durable yet).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-flush-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let mut writer = pontoon_persist::RecordFileWriter::create(dir.join("f.rec"), 0)?;
    /// writer.append(0, 0, &pontoon_wire::Message::default())?;
    /// writer.flush()?;
    /// assert_eq!(writer.file().metadata()?.len(), writer.len());
    /// # drop(writer); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&mut self) -> Result<(), RecordFileError> {
        if !self.gather.is_empty() {
            let gather = std::mem::take(&mut self.gather);
            let result = self.write(&[&gather]);
            self.gather = gather;
            self.gather.clear();
            result?;
        }
        self.flushed = self.written;
        Ok(())
    }

    /// Flushes and `fdatasync`s: every record appended so far is durable.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-sync-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let mut writer = pontoon_persist::RecordFileWriter::create(dir.join("s.rec"), 0)?;
    /// writer.append(0, 0, &pontoon_wire::Message::default())?;
    /// writer.sync()?;
    /// # drop(writer); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync(&mut self) -> Result<(), RecordFileError> {
        self.flush()?;
        self.file
            .sync_data()
            .map_err(io("syncing", &self.path))
            .map_err(Into::into)
    }

    /// Flushes, `fdatasync`s the file once and `fsync`s its directory: the file and every
    /// record in it are durable. Returns the file's length.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-finish-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let writer = pontoon_persist::RecordFileWriter::create(dir.join("f.rec"), 0)?;
    /// assert_eq!(writer.finish()?, 64);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish(mut self) -> Result<u64, RecordFileError> {
        self.sync()?;
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            sync_dir(dir)?;
        }
        Ok(self.len)
    }
}

/// A record file built in memory, byte for byte what a [`RecordFileWriter`] would write, as a
/// list of chunks: small pieces (headers, padding) and views of the messages' own frames, so
/// building it copies no payload. For carriers that write the file elsewhere (the object
/// store's spill to an S3-compatible remote); its records read back with
/// [`RecordFile::lone_record`] from just their own bytes.
///
/// ```
/// use pontoon_persist::{RecordChunks, RecordFile};
/// use pontoon_wire::{Header, Limits, Message};
/// let message = Message::new(Header::from_serde(&"x")?, vec![bytes::Bytes::from(vec![5u8; 100])]);
/// let mut chunks = RecordChunks::new(9);
/// let at = chunks.append(1, 2, &message)?;
/// let file: Vec<u8> = chunks.into_chunks().concat();
/// // The whole file opens as a record file ...
/// assert_eq!(RecordFile::from_bytes("f.rec", file.clone().into())?.tag(), 9);
/// // ... and one record's bytes alone read back as that record.
/// let one = bytes::Bytes::copy_from_slice(&file[at.offset as usize..(at.offset + at.len) as usize]);
/// let record = RecordFile::lone_record("f.rec", at.offset, one, &Limits::DEFAULT)?;
/// assert_eq!((record.kind, record.seq, record.message), (1, 2, message));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RecordChunks {
    chunks: Vec<Bytes>,
    len: u64,
    encoder: Encoder,
}

impl RecordChunks {
    /// A record file holding only its header, which carries `tag` (as
    /// [`RecordFileWriter::create`]).
    ///
    /// ```
    /// assert_eq!(pontoon_persist::RecordChunks::new(0).len(), 64);
    /// ```
    pub fn new(tag: u64) -> RecordChunks {
        RecordChunks {
            chunks: vec![Bytes::copy_from_slice(&file_header(tag))],
            len: RECORD_FILE_HEADER_LEN as u64,
            encoder: Encoder::default(),
        }
    }

    /// Bytes of the file so far.
    ///
    /// ```
    /// let mut chunks = pontoon_persist::RecordChunks::new(0);
    /// let at = chunks.append(0, 0, &pontoon_wire::Message::default())?;
    /// assert_eq!(chunks.len(), at.offset + at.len);
    /// # Ok::<(), pontoon_persist::RecordFileError>(())
    /// ```
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no record was appended yet.
    ///
    /// ```
    /// assert!(pontoon_persist::RecordChunks::new(0).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == RECORD_FILE_HEADER_LEN as u64
    }

    /// Appends a record holding `message`, as [`RecordFileWriter::append`] does; returns where
    /// it is in the file.
    ///
    /// ```
    /// let mut chunks = pontoon_persist::RecordChunks::new(0);
    /// assert_eq!(chunks.append(0, 0, &pontoon_wire::Message::default())?.offset, 64);
    /// # Ok::<(), pontoon_persist::RecordFileError>(())
    /// ```
    pub fn append(
        &mut self,
        kind: u32,
        seq: u64,
        message: &Message,
    ) -> Result<Appended, RecordFileError> {
        let Framed {
            header,
            encoded,
            padding,
            record_len,
        } = frame(&self.encoder, kind, seq, message)?;
        let offset = self.len;
        self.chunks.push(Bytes::copy_from_slice(&header));
        self.chunks.extend(encoded.into_chunks());
        if padding > 0 {
            self.chunks.push(Bytes::from_static(&ZEROS[..padding]));
        }
        self.len += record_len;
        Ok(Appended {
            offset,
            len: record_len,
        })
    }

    /// The file's bytes, in order.
    ///
    /// ```
    /// let chunks = pontoon_persist::RecordChunks::new(0).into_chunks();
    /// assert_eq!(chunks.concat().len(), 64);
    /// ```
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.chunks
    }
}

fn file_header(tag: u64) -> [u8; RECORD_FILE_HEADER_LEN] {
    let mut out = [0u8; RECORD_FILE_HEADER_LEN];
    out[..7].copy_from_slice(&RECORD_FILE_MAGIC);
    out[7] = RECORD_FILE_VERSION;
    out[8..16].copy_from_slice(&tag.to_le_bytes());
    out
}

/// One record read back from a [`RecordFile`].
///
/// ```
/// # #[allow(dead_code)]
/// # fn f(file: &pontoon_persist::RecordFile) -> Result<(), pontoon_persist::RecordFileError> {
/// let record = file.record_at(64, &pontoon_wire::Limits::DEFAULT)?;
/// println!("kind {} seq {}: {} frames, next at {}", record.kind, record.seq, record.message.frames.len(), record.next);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FileRecord {
    /// The application's record type.
    pub kind: u32,
    /// The application's number for it.
    pub seq: u64,
    /// The message; its frames are views of the file's memory map.
    pub message: Message,
    /// Where the next record would start.
    pub next: u64,
}

/// A record file opened read-only through a memory map: records are read back at the offsets
/// their writer returned, each checked (checksum, lengths, padding) before it is decoded, and
/// their frames are views of the map (64-byte aligned).
///
/// The map covers the bytes the file held when it was opened; records appended later need a
/// new `RecordFile`. See [`RecordFileWriter`] for an example.
#[derive(Clone, Debug)]
pub struct RecordFile {
    path: PathBuf,
    bytes: Bytes,
    tag: u64,
}

impl RecordFile {
    /// Opens and maps the file at `path` and checks its header.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-open-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// std::fs::write(dir.join("junk.rec"), b"not a record file")?;
    /// let err = pontoon_persist::RecordFile::open(dir.join("junk.rec")).unwrap_err();
    /// assert!(err.to_string().contains("at byte offset 0"), "{err}");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<RecordFile, RecordFileError> {
        let path = path.as_ref().to_path_buf();
        let bytes = load(&path, None, usize::MAX as u64, Load::Map)?;
        let tag = parse_file_header(&bytes).map_err(|reason| RecordFileError::Corrupt {
            file: path.clone(),
            offset: 0,
            reason: reason.to_owned(),
        })?;
        Ok(RecordFile { path, bytes, tag })
    }

    /// Reads a record file already in memory (`bytes` as a map of it would hold them), named
    /// `path` in errors: for bytes that come from elsewhere, and for fuzzing.
    ///
    /// ```
    /// let err = pontoon_persist::RecordFile::from_bytes("x.rec", bytes::Bytes::new()).unwrap_err();
    /// assert!(matches!(err, pontoon_persist::RecordFileError::Corrupt { offset: 0, .. }));
    /// ```
    pub fn from_bytes(
        path: impl Into<PathBuf>,
        bytes: Bytes,
    ) -> Result<RecordFile, RecordFileError> {
        let path = path.into();
        let tag = parse_file_header(&bytes).map_err(|reason| RecordFileError::Corrupt {
            file: path.clone(),
            offset: 0,
            reason: reason.to_owned(),
        })?;
        Ok(RecordFile { path, bytes, tag })
    }

    /// The record that was at `offset` of the record file named `path` (in errors), read from
    /// `bytes`, which hold exactly that record (as a range read of `len` bytes from the
    /// offset [`RecordFileWriter::append`] or [`RecordChunks::append`] returned): checked like
    /// [`record_at`](Self::record_at), every length bounded by `bytes`, the payload decoded
    /// within `limits`. Frames are views of `bytes`, 64-byte aligned if `bytes` is.
    ///
    /// ```
    /// let err = pontoon_persist::RecordFile::lone_record("r.rec", 64, bytes::Bytes::from(vec![0u8; 64]), &pontoon_wire::Limits::DEFAULT).unwrap_err();
    /// assert!(err.to_string().contains("at byte offset 64"), "{err}");
    /// ```
    pub fn lone_record(
        path: impl Into<PathBuf>,
        offset: u64,
        bytes: Bytes,
        limits: &Limits,
    ) -> Result<FileRecord, RecordFileError> {
        let path = path.into();
        let corrupt = |reason: &str| RecordFileError::Corrupt {
            file: path.clone(),
            offset,
            reason: reason.to_owned(),
        };
        let found =
            record_at(V2, &bytes, 0, bytes.len() as u64, &mut 0).map_err(|fault| match fault {
                crate::format::Fault::Short => corrupt("the record runs past the bytes read"),
                crate::format::Fault::Bad => {
                    corrupt("the record does not verify (checksum, length or padding)")
                }
            })?;
        if found.end != bytes.len() {
            return Err(corrupt("the bytes read hold more than the record"));
        }
        let payload = bytes.slice(found.payload.0..found.payload.1);
        let message = pontoon_wire::decode_message(payload, limits).map_err(|source| {
            RecordFileError::BadPayload {
                file: path.clone(),
                offset,
                source,
            }
        })?;
        Ok(FileRecord {
            kind: found.kind,
            seq: found.seq,
            message,
            next: offset.saturating_add(found.end as u64),
        })
    }

    /// The tag its writer put in the header.
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-rf-tag-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// pontoon_persist::RecordFileWriter::create(dir.join("t.rec"), 42)?.finish()?;
    /// let file = pontoon_persist::RecordFile::open(dir.join("t.rec"))?;
    /// assert_eq!(file.tag(), 42);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// The file's path.
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-rf-rpath-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// pontoon_persist::RecordFileWriter::create(dir.join("t.rec"), 42)?.finish()?;
    /// let file = pontoon_persist::RecordFile::open(dir.join("t.rec"))?;
    /// assert!(file.path().ends_with("t.rec"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes mapped (the file's length when it was opened).
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-rf-len-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// pontoon_persist::RecordFileWriter::create(dir.join("t.rec"), 42)?.finish()?;
    /// let file = pontoon_persist::RecordFile::open(dir.join("t.rec"))?;
    /// assert_eq!(file.len(), 64);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the file holds no record.
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-rf-empty-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// pontoon_persist::RecordFileWriter::create(dir.join("t.rec"), 42)?.finish()?;
    /// let file = pontoon_persist::RecordFile::open(dir.join("t.rec"))?;
    /// assert!(file.is_empty());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.bytes.len() <= RECORD_FILE_HEADER_LEN
    }

    /// The mapped bytes: a frame read back lies inside them, at `frame.as_ptr()` minus their
    /// start, which is its offset in the file (what a reader in another process, mapping the same
    /// file, needs).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-as-bytes-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let mut writer = pontoon_persist::RecordFileWriter::create(dir.join("b.rec"), 0)?;
    /// let message = pontoon_wire::Message::new(pontoon_wire::Header::empty(), vec![bytes::Bytes::from_static(b"abc")]);
    /// writer.append(0, 0, &message)?;
    /// writer.flush()?;
    /// let file = pontoon_persist::RecordFile::open(dir.join("b.rec"))?;
    /// let frame = &file.record_at(64, &pontoon_wire::Limits::DEFAULT)?.message.frames[0];
    /// let offset = frame.as_ptr() as usize - file.as_bytes().as_ptr() as usize;
    /// assert_eq!(&std::fs::read(dir.join("b.rec"))?[offset..offset + 3], b"abc");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The record whose header is at `offset` (a multiple of 64, at least 64), checked: every
    /// length is bounded by the mapped bytes before it is used, the checksum and the padding
    /// must match, and the payload must decode as a message within `limits`.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-record-at-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let mut writer = pontoon_persist::RecordFileWriter::create(dir.join("r.rec"), 0)?;
    /// writer.append(0, 0, &pontoon_wire::Message::default())?;
    /// writer.flush()?;
    /// let file = pontoon_persist::RecordFile::open(dir.join("r.rec"))?;
    /// assert!(file.record_at(64, &pontoon_wire::Limits::DEFAULT).is_ok());
    /// assert!(file.record_at(65, &pontoon_wire::Limits::DEFAULT).is_err()); // not aligned
    /// assert!(file.record_at(1 << 40, &pontoon_wire::Limits::DEFAULT).is_err()); // past the end
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_at(&self, offset: u64, limits: &Limits) -> Result<FileRecord, RecordFileError> {
        self.read_at(offset, limits, true)
    }

    /// The record at `offset` like [`record_at`](Self::record_at), every length bounded by the
    /// mapped bytes and the payload decoded within `limits`, but its checksum and padding not
    /// checked again: for a reader that checked this record before (in this map or an earlier
    /// one of the same file) and trusts that nobody else writes the file, so that reading a
    /// record again costs no pass over its bytes.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-record-at-checked-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let mut writer = pontoon_persist::RecordFileWriter::create(dir.join("r.rec"), 0)?;
    /// let at = writer.append(0, 0, &pontoon_wire::Message::default())?;
    /// writer.flush()?;
    /// let file = pontoon_persist::RecordFile::open(dir.join("r.rec"))?;
    /// let limits = pontoon_wire::Limits::DEFAULT;
    /// let first = file.record_at(at.offset, &limits)?; // checked
    /// assert_eq!(file.record_at_checked_before(at.offset, &limits)?, first);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_at_checked_before(
        &self,
        offset: u64,
        limits: &Limits,
    ) -> Result<FileRecord, RecordFileError> {
        self.read_at(offset, limits, false)
    }

    fn read_at(
        &self,
        offset: u64,
        limits: &Limits,
        check: bool,
    ) -> Result<FileRecord, RecordFileError> {
        let corrupt = |reason: &str| RecordFileError::Corrupt {
            file: self.path.clone(),
            offset,
            reason: reason.to_owned(),
        };
        if offset < RECORD_FILE_HEADER_LEN as u64 || !offset.is_multiple_of(64) {
            return Err(corrupt(
                "a record starts at a multiple of 64 after the header",
            ));
        }
        let at = usize::try_from(offset)
            .ok()
            .filter(|&at| at < self.bytes.len())
            .ok_or_else(|| corrupt("the offset is past the end of the file"))?;
        let found = if check {
            record_at(V2, &self.bytes, at, self.bytes.len() as u64, &mut 0).map_err(|fault| {
                match fault {
                    crate::format::Fault::Short => {
                        corrupt("the record runs past the end of the file")
                    }
                    crate::format::Fault::Bad => {
                        corrupt("the record does not verify (checksum, length or padding)")
                    }
                }
            })?
        } else {
            header_at(V2, &self.bytes, at)
                .ok_or_else(|| corrupt("the record runs past the end of the file"))?
        };
        let payload = self.bytes.slice(found.payload.0..found.payload.1);
        let message = pontoon_wire::decode_message(payload, limits).map_err(|source| {
            RecordFileError::BadPayload {
                file: self.path.clone(),
                offset,
                source,
            }
        })?;
        Ok(FileRecord {
            kind: found.kind,
            seq: found.seq,
            message,
            next: found.end as u64,
        })
    }

    /// Every record from the first on, in order, until the end or the first that does not
    /// check (which is yielded as the last item).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-records-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let mut writer = pontoon_persist::RecordFileWriter::create(dir.join("r.rec"), 0)?;
    /// for seq in 0..3 {
    ///     writer.append(0, seq, &pontoon_wire::Message::default())?;
    /// }
    /// writer.finish()?;
    /// let file = pontoon_persist::RecordFile::open(dir.join("r.rec"))?;
    /// let seqs: Vec<u64> = file.records(&pontoon_wire::Limits::DEFAULT).map(|r| r.map(|r| r.seq)).collect::<Result<_, _>>()?;
    /// assert_eq!(seqs, [0, 1, 2]);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn records<'a>(
        &'a self,
        limits: &'a Limits,
    ) -> impl Iterator<Item = Result<FileRecord, RecordFileError>> + 'a {
        let mut at = Some(RECORD_FILE_HEADER_LEN as u64);
        std::iter::from_fn(move || {
            let offset = at.take()?;
            if offset >= self.len() {
                return None;
            }
            let record = self.record_at(offset, limits);
            if let Ok(record) = &record {
                at = Some(record.next);
            }
            Some(record)
        })
    }
}

/// Checks a record file's header; returns its tag.
fn parse_file_header(bytes: &[u8]) -> Result<u64, &'static str> {
    let header = bytes
        .get(..RECORD_FILE_HEADER_LEN)
        .ok_or("the file is shorter than a record file header")?;
    if header[..7] != RECORD_FILE_MAGIC {
        return Err("not a pontoon record file (bad magic)");
    }
    if header[7] != RECORD_FILE_VERSION {
        return Err("unsupported record file version");
    }
    if header[16..].iter().any(|&b| b != 0) {
        return Err("the record file header's reserved bytes are not zero");
    }
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&header[8..16]);
    Ok(u64::from_le_bytes(tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pontoon_wire::Header;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pontoon-record-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    #[cfg_attr(miri, ignore = "miri cannot map files")]
    fn small_and_large_records_read_back_as_aligned_views_and_damage_is_caught() {
        let dir = dir("mixed");
        let path = dir.join("a.rec");
        let mut writer = RecordFileWriter::create(&path, 9).unwrap();
        let sizes = [0usize, 1, 63, 64, 1000, 300 << 10, 3, 2 << 20];
        let messages: Vec<Message> = sizes
            .iter()
            .map(|&n| {
                let frame: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
                Message::new(
                    Header::from_serde(&n).unwrap(),
                    vec![Bytes::from(frame), Bytes::from_static(b"tail")],
                )
            })
            .collect();
        let at: Vec<Appended> = messages
            .iter()
            .zip(0..)
            .map(|(m, seq)| writer.append(1, seq, m).unwrap())
            .collect();
        writer.finish().unwrap();
        let file = RecordFile::open(&path).unwrap();
        assert_eq!(file.len() % 64, 0);
        for ((message, at), seq) in messages.iter().zip(&at).zip(0..) {
            let record = file.record_at(at.offset, &Limits::UNLIMITED).unwrap();
            assert_eq!((record.kind, record.seq), (1, seq));
            assert_eq!(&record.message, message);
            assert_eq!(record.next, at.offset + at.len);
            for frame in &record.message.frames {
                assert_eq!(frame.as_ptr() as usize % 64, 0);
            }
        }
        assert_eq!(
            file.records(&Limits::UNLIMITED)
                .filter(Result::is_ok)
                .count(),
            sizes.len()
        );
        // A flipped byte in a record is caught at that record only.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at[4].offset as usize + 100] ^= 1;
        let damaged = RecordFile::from_bytes("d.rec", Bytes::from(bytes)).unwrap();
        assert!(matches!(
            damaged.record_at(at[4].offset, &Limits::UNLIMITED),
            Err(RecordFileError::Corrupt { .. })
        ));
        assert!(damaged.record_at(at[5].offset, &Limits::UNLIMITED).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn headers_are_checked() {
        let good = file_header(5);
        assert_eq!(parse_file_header(&good), Ok(5));
        assert!(parse_file_header(&good[..63]).is_err());
        let mut bad = good;
        bad[0] ^= 1;
        assert!(parse_file_header(&bad).is_err());
        let mut bad = good;
        bad[7] = 3;
        assert!(parse_file_header(&bad).is_err());
        let mut bad = good;
        bad[40] = 1;
        assert!(parse_file_header(&bad).is_err());
    }
}
