//! [`Log`]: an append-only log of ferry messages in checksummed records, with recovery that
//! cuts a torn tail and names any other damage precisely.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_wire::{Encoder, Limits, Message, decode_message};

use crate::LogError;
use crate::format::{
    Fault, SEGMENT_HEADER_LEN, parse_segment_header, record_at, record_header, segment_header,
};

/// When an append is durable.
///
/// ```
/// assert_eq!(ferry_persist::Durability::default(), ferry_persist::Durability::Always);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// An append returns once its record is on disk: written, then `fdatasync`.
    #[default]
    Always,
    /// Appends are written but not synced; [`Log::sync`] makes everything so far durable.
    Never,
}

/// How a log is opened and written.
///
/// ```
/// let mut options = ferry_persist::LogOptions::default();
/// options.segment_bytes = 1 << 20;
/// assert_eq!(options.durability, ferry_persist::Durability::Always);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LogOptions {
    /// When appends are durable.
    pub durability: Durability,
    /// A new segment file starts once the current one would grow past this.
    pub segment_bytes: u64,
    /// The largest record payload accepted, written or read.
    pub max_record_bytes: u64,
    /// Limits for decoding each record's message.
    pub limits: Limits,
    /// On damage that is not a torn tail, skip to the next valid record (reported) instead of
    /// refusing to open.
    pub salvage: bool,
}

impl Default for LogOptions {
    /// Durability [`Durability::Always`], 64 MiB segments, records up to 1 GiB, no salvage.
    fn default() -> LogOptions {
        let mut limits = Limits::default();
        limits.max_message_bytes = 1 << 30;
        LogOptions {
            durability: Durability::Always,
            segment_bytes: 64 << 20,
            max_record_bytes: 1 << 30,
            limits,
            salvage: false,
        }
    }
}

/// One record read back.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn f(log: &ferry_persist::Log) -> Result<(), ferry_persist::LogError> {
/// for record in log.records()? {
///     println!("{} (kind {}): {} frames", record.seq, record.kind, record.message.frames.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The record's sequence number (the first record is 1).
    pub seq: u64,
    /// The application's record type.
    pub kind: u32,
    /// The message it holds; frames are slices of the bytes read from the file.
    pub message: Message,
}

/// What recovery found when the log was opened.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn f() -> Result<(), ferry_persist::LogError> {
/// let (_log, recovery) = ferry_persist::Log::open("/data/log", Default::default())?;
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
    /// The torn tail cut from the last segment (the cut is durable before `open` returns).
    pub cut: Option<Cut>,
    /// Damaged stretches skipped, with salvage on.
    pub skipped: Vec<Cut>,
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

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
}

/// An append-only log of ferry messages in a directory of segment files.
///
/// Each record carries its length, sequence number, kind and a CRC32C over all of them and the
/// payload (a ferry-wire message); the layout is in `docs/persist-format.md`. One process at a
/// time: `open` locks the directory.
///
/// ```
/// use ferry_persist::{Log, LogOptions};
/// use ferry_wire::{Header, Message};
///
/// let dir = std::env::temp_dir().join(format!("ferry-doc-log-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// {
///     let (mut log, _) = Log::open(&dir, LogOptions::default())?;
///     let seq = log.append(1, &Message::new(Header::from_serde(&"created")?, vec![]))?;
///     assert_eq!(seq, 1); // durable when append returns
/// }
/// let (log, recovery) = Log::open(&dir, LogOptions::default())?;
/// assert_eq!(recovery.records, 1);
/// assert_eq!(log.records()?[0].message.header.deserialize::<String>()?, "created");
/// # drop(log); std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    options: LogOptions,
    _lock: File,
    segments: Vec<Segment>,
    file: File,
    file_len: u64,
    next_seq: u64,
    poisoned: bool,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError::Io { what, path, source }
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing the directory", dir))
}

/// The offset of the first whole, checksummed record after `from` whose sequence number is at
/// least `expected`, if any.
fn next_valid(bytes: &[u8], from: usize, expected: u64, max: u64) -> Option<(usize, u64)> {
    (from..bytes.len()).find_map(|at| match record_at(bytes, at, max) {
        Ok(found) if found.seq >= expected => Some((at, found.seq)),
        _ => None,
    })
}

impl Log {
    /// Opens (or creates) the log in `dir` and recovers it: every segment is checked record by
    /// record; a torn or garbage tail in the last segment is cut, and the cut made durable;
    /// damage anywhere else is [`LogError::Corrupt`], naming the file and byte offset, unless
    /// [`LogOptions::salvage`] is on.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("ferry-doc-open-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let (log, recovery) = ferry_persist::Log::open(&dir, Default::default())?;
    /// assert_eq!((recovery.records, log.next_seq()), (0, 1));
    /// // One process at a time.
    /// assert!(matches!(ferry_persist::Log::open(&dir, Default::default()), Err(ferry_persist::LogError::Locked { .. })));
    /// # drop(log); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), ferry_persist::LogError>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>, options: LogOptions) -> Result<(Log, Recovery), LogError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(LogError::Locked { dir }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io("locking", &lock_path)(e)),
        }

        let mut segments: Vec<Segment> = fs::read_dir(&dir)
            .map_err(io("listing", &dir))?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let first_seq = name.strip_suffix(".log")?.parse().ok()?;
                Some(Segment {
                    first_seq,
                    path: entry.path(),
                })
            })
            .collect();
        segments.sort_by_key(|s| s.first_seq);

        let mut recovery = Recovery::default();
        let mut expected = segments.first().map_or(1, |s| s.first_seq);
        for (i, segment) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            let corrupt = |offset: usize, reason: &str| LogError::Corrupt {
                file: segment.path.clone(),
                offset: offset as u64,
                reason: reason.to_string(),
            };
            let bytes = fs::read(&segment.path).map_err(io("reading", &segment.path))?;
            if last && bytes.len() < SEGMENT_HEADER_LEN {
                // A segment whose creation was cut short holds no record: write it anew.
                let file = OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&segment.path)
                    .map_err(io("opening", &segment.path))?;
                write_segment_header(&file, &segment.path, segment.first_seq)?;
                continue;
            }
            let first_seq = parse_segment_header(&bytes).map_err(|why| corrupt(0, why))?;
            if first_seq != segment.first_seq || first_seq != expected {
                return Err(corrupt(
                    8,
                    &format!("the segment starts at record {first_seq}; expected {expected}"),
                ));
            }
            let max = options.max_record_bytes;
            let mut at = SEGMENT_HEADER_LEN;
            while at < bytes.len() {
                match record_at(&bytes, at, max) {
                    Ok(found) if found.seq == expected => {
                        at = found.payload.1;
                        expected += 1;
                        recovery.records += 1;
                        continue;
                    }
                    Ok(_) | Err(Fault::Short | Fault::Bad) => {}
                }
                let later = next_valid(&bytes, at + 1, expected, max);
                if last && later.is_none() {
                    // A torn tail: nothing valid follows. Cut it, durably.
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&segment.path)
                        .map_err(io("opening", &segment.path))?;
                    file.set_len(at as u64)
                        .map_err(io("cutting the torn tail of", &segment.path))?;
                    file.sync_all().map_err(io("syncing", &segment.path))?;
                    recovery.cut = Some(Cut {
                        file: segment.path.clone(),
                        offset: at as u64,
                        bytes: (bytes.len() - at) as u64,
                    });
                    break;
                }
                match later {
                    Some((next, seq)) if options.salvage => {
                        recovery.skipped.push(Cut {
                            file: segment.path.clone(),
                            offset: at as u64,
                            bytes: (next - at) as u64,
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
        }

        if segments.is_empty() {
            let path = dir.join(segment_name(1));
            let file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&path)
                .map_err(io("creating", &path))?;
            write_segment_header(&file, &path, 1)?;
            sync_dir(&dir)?;
            segments.push(Segment { first_seq: 1, path });
        }
        let path = &segments.last().expect("at least one segment").path;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io("opening", path))?;
        let file_len = file
            .metadata()
            .map_err(io("reading the size of", path))?
            .len();
        Ok((
            Log {
                dir,
                options,
                _lock: lock,
                segments,
                file,
                file_len,
                next_seq: expected,
                poisoned: false,
            },
            recovery,
        ))
    }

    /// The sequence number the next append gets.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &ferry_persist::Log) { assert!(log.next_seq() >= 1); }
    /// ```
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends a record holding `message`, of the application's `kind`; returns its sequence
    /// number. With [`Durability::Always`] the record is on disk when this returns.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &mut ferry_persist::Log) -> Result<(), ferry_persist::LogError> {
    /// let seq = log.append(3, &ferry_wire::Message::default())?;
    /// # let _ = seq; Ok(()) }
    /// ```
    pub fn append(&mut self, kind: u32, message: &Message) -> Result<u64, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let encoded = Encoder::default().encode(message)?;
        let chunks: Vec<&[u8]> = encoded.chunks().iter().map(|c| &c[..]).collect();
        let len = encoded.len();
        if len > self.options.max_record_bytes {
            return Err(LogError::TooLarge {
                len,
                limit: self.options.max_record_bytes,
            });
        }
        let record_len = crate::format::RECORD_HEADER_LEN as u64 + len;
        if self.file_len > SEGMENT_HEADER_LEN as u64
            && self.file_len + record_len > self.options.segment_bytes
        {
            self.rotate()?;
        }
        let seq = self.next_seq;
        let header = record_header(kind, seq, &chunks);
        let path = self
            .segments
            .last()
            .expect("at least one segment")
            .path
            .clone();
        let mut write = || -> std::io::Result<()> {
            if len < 64 << 10 {
                // One write for a small record.
                let mut all = Vec::with_capacity(record_len as usize);
                all.extend_from_slice(&header);
                chunks.iter().for_each(|c| all.extend_from_slice(c));
                self.file.write_all(&all)
            } else {
                self.file.write_all(&header)?;
                chunks.iter().try_for_each(|c| self.file.write_all(c))
            }
        };
        if let Err(e) = write() {
            // A partial record may be on disk: the next open cuts it, but this log cannot go on.
            self.poisoned = true;
            return Err(io("appending to", &path)(e));
        }
        self.file_len += record_len;
        if self.options.durability == Durability::Always {
            self.sync()?;
        }
        self.next_seq += 1;
        Ok(seq)
    }

    /// Makes every record appended so far durable (`fdatasync`). A failure poisons the log.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &mut ferry_persist::Log) -> Result<(), ferry_persist::LogError> {
    /// log.sync()?;
    /// # Ok(()) }
    /// ```
    pub fn sync(&mut self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if let Err(e) = self.file.sync_data() {
            self.poisoned = true;
            let path = self
                .segments
                .last()
                .expect("at least one segment")
                .path
                .clone();
            return Err(io("syncing", &path)(e));
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        self.sync()?;
        let path = self.dir.join(segment_name(self.next_seq));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io("creating", &path))?;
        write_segment_header(&file, &path, self.next_seq)?;
        sync_dir(&self.dir)?;
        self.segments.push(Segment {
            first_seq: self.next_seq,
            path,
        });
        self.file = file;
        self.file_len = SEGMENT_HEADER_LEN as u64;
        Ok(())
    }

    /// Reads every record back, in order. Frames are slices of the bytes read from each file.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &ferry_persist::Log) -> Result<(), ferry_persist::LogError> {
    /// let count = log.records()?.len();
    /// # let _ = count; Ok(()) }
    /// ```
    pub fn records(&self) -> Result<Vec<Record>, LogError> {
        let mut out = Vec::new();
        for segment in &self.segments {
            let bytes = Bytes::from(fs::read(&segment.path).map_err(io("reading", &segment.path))?);
            let mut at = SEGMENT_HEADER_LEN;
            while at < bytes.len() {
                let Ok(found) = record_at(&bytes, at, self.options.max_record_bytes) else {
                    // Skipped at open (salvage): find the next record.
                    match next_valid(&bytes, at + 1, 0, self.options.max_record_bytes) {
                        Some((next, _)) => {
                            at = next;
                            continue;
                        }
                        None => break,
                    }
                };
                let payload = bytes.slice(found.payload.0..found.payload.1);
                let message = decode_message(payload, &self.options.limits).map_err(|source| {
                    LogError::BadPayload {
                        seq: found.seq,
                        file: segment.path.clone(),
                        offset: at as u64,
                        source,
                    }
                })?;
                out.push(Record {
                    seq: found.seq,
                    kind: found.kind,
                    message,
                });
                at = found.payload.1;
            }
        }
        Ok(out)
    }
}

fn write_segment_header(mut file: &File, path: &Path, first_seq: u64) -> Result<(), LogError> {
    file.write_all(&segment_header(first_seq))
        .map_err(io("writing the header of", path))?;
    file.sync_all().map_err(io("syncing", path))
}
