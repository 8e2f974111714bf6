//! [`Log`]'s API: opening (recovery, then the repair it asks for), appending under each
//! durability policy, waiting for durability, rotation, reading back, pruning.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use pontoon_wire::{Encoder, Message};

use crate::error::{AppendError, OpenError, Poisoned, ReadError};
use crate::files::{
    Load, io, load, segment_name, sync_dir, write_all_pieces, write_segment_header,
};
use crate::format::{
    MAX_SEQ, Payload, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, V1, V2, ZEROS, payload_crc,
    record_header,
};
use crate::group::{LogStats, Shared, State, syncer, wake_two};
use crate::options::max_segment_bytes;
use crate::records::{Planned, RawRecords, Record, Records};
use crate::recovery::{Recovery, Repair, Segment, list_segments, scan};
use crate::{Durability, LogOptions};

/// Records smaller than this wait in memory under [`Durability::GroupCommit`], to be written
/// together; larger ones are written at once.
const BATCH_RECORD_BYTES: u64 = 64 << 10;

/// Payloads at least this large are checksummed before the log's lock is taken.
const COMBINE_CRC_BYTES: u64 = 1 << 20;

/// Under [`Durability::GroupCommit`], records waiting in memory are written out by the
/// appender once they reach this many bytes, so memory stays bounded when appends outrun the
/// disk.
const PENDING_LIMIT: usize = 1 << 20;

/// An append-only log of pontoon messages in a directory of segment files.
///
/// Each record carries its length, sequence number, kind and a CRC32C over all of them and the
/// payload (a pontoon-wire message); the layout is in `docs/persist-format.md`. One process at a
/// time: `open` locks the directory. Within the process, a `Log` is shared by reference (it is
/// `Sync`): threads append concurrently, and under [`Durability::GroupCommit`] their appends
/// share `fdatasync`s.
///
/// ```
/// use pontoon_persist::{Log, LogOptions};
/// use pontoon_wire::{Header, Message};
///
/// let dir = std::env::temp_dir().join(format!("pontoon-doc-log-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// {
///     let (log, _) = Log::open(&dir, LogOptions::default())?;
///     let seq = log.append(1, &Message::new(Header::from_serde(&"created")?, vec![]))?;
///     assert_eq!(seq, 1); // durable when append returns
/// }
/// let (log, recovery) = Log::open(&dir, LogOptions::default())?;
/// assert_eq!(recovery.records, 1);
/// assert_eq!(log.read_all()?[0].message.header.deserialize::<String>()?, "created");
/// # drop(log); std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Log {
    shared: Arc<Shared>,
    /// The thread that syncs under `GroupCommit` and `Interval`.
    syncer: Option<JoinHandle<()>>,
    _lock: File,
    /// How many segments this handle has sealed (rolled over from): a remote's uploader is
    /// asked for a round when it changes, without taking the state's mutex to find out.
    sealed: std::sync::atomic::AtomicU64,
    /// The remote the log uploads to, if it was opened with one.
    #[cfg(feature = "remote")]
    remote: Option<Attached>,
}

/// A log's remote: the uploader thread, when appends wait for it, and the sealed segment
/// count when it was last asked for a round.
#[cfg(feature = "remote")]
struct Attached {
    uploader: crate::remote::uploader::Uploader,
    durability: crate::RemoteDurability,
    sealed_seen: AtomicU64,
}

#[cfg(feature = "remote")]
impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached")
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Opens (or creates) the log in `dir` and recovers it: every segment is checked record by
    /// record; a torn or garbage tail in the last segment is cut, and the cut made durable;
    /// damage anywhere else is [`OpenError::Corrupt`], naming the file and byte offset, unless
    /// [`LogOptions::salvage`] is on. Everything recovered is durable when `open` returns (the
    /// last segment is synced, in case a killed writer left records only in the OS's cache).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("pontoon-doc-open-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let (log, recovery) = pontoon_persist::Log::open(&dir, Default::default())?;
    /// assert_eq!((recovery.records, log.next_seq()), (0, 1));
    /// // One process at a time.
    /// assert!(matches!(pontoon_persist::Log::open(&dir, Default::default()), Err(pontoon_persist::OpenError::Locked { .. })));
    /// # drop(log); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), pontoon_persist::LogError>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>, options: LogOptions) -> Result<(Log, Recovery), OpenError> {
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
            Err(std::fs::TryLockError::WouldBlock) => return Err(OpenError::Locked { dir }),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io("locking", &lock_path)(e).into());
            }
        }

        let started = std::time::Instant::now();
        let span = tracing::info_span!("log_open", dir = %dir.display());
        let _entered = span.enter();
        let mut segments = list_segments(&dir)?;
        // One pass over every segment: what it checked is what `records` reads back.
        let scanned = scan(&segments, &options, Load::MapEvery)?;
        for (segment, checked) in segments.iter_mut().zip(scanned.checked) {
            segment.checked = checked;
        }
        match &scanned.repair {
            // A last segment whose creation was cut short: written anew with its header.
            Some(Repair::Rewrite { path, first_seq }) => {
                let file = OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(path)
                    .map_err(io("opening", path))?;
                write_segment_header(&file, path, *first_seq)?;
            }
            // A torn tail: cut, durably.
            Some(Repair::Cut { path, at }) => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io("opening", path))?;
                file.set_len(*at)
                    .map_err(io("cutting the torn tail of", path))?;
                file.sync_all().map_err(io("syncing", path))?;
                // What recovery read of it is mapped anew, up to the cut: no mapping reaches
                // past the end of its file.
                if let Some(last) = segments.last_mut()
                    && let Some(checked) = &mut last.checked
                {
                    checked.bytes = load(path, Some(*at), max_segment_bytes(&options), Load::Map)?;
                }
            }
            None => {}
        }
        let recovery = scanned.recovery;
        let expected = scanned.next_seq;

        // A log written by pontoon 0.1 is upgraded by going on in a version 2 segment; its
        // version 1 segments stay as they are, read as they are, until pruned.
        let last_v1 = segments
            .last()
            .and_then(|s| s.checked.as_ref())
            .is_some_and(|checked| checked.layout == V1);
        if last_v1 {
            let last = segments.last_mut().expect("a last segment");
            if last.first_seq == expected {
                // No record in it: written anew as version 2.
                last.checked = None;
                let file = OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&last.path)
                    .map_err(io("opening", &last.path))?;
                write_segment_header(&file, &last.path, expected)?;
            } else {
                let path = dir.join(segment_name(expected));
                let file = OpenOptions::new()
                    .create_new(true)
                    .write(true)
                    .open(&path)
                    .map_err(io("creating", &path))?;
                write_segment_header(&file, &path, expected)?;
                sync_dir(&dir)?;
                segments.push(Segment {
                    first_seq: expected,
                    path,
                    checked: None,
                    sealed_len: None,
                });
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
            segments.push(Segment {
                first_seq: 1,
                path,
                checked: None,
                sealed_len: None,
            });
        }
        let path = &segments.last().expect("at least one segment").path;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io("opening", path))?;
        // A writer killed under `Never` or `Interval` may have left records in the OS's cache
        // only; what is recovered is durable from here on.
        file.sync_data().map_err(io("syncing", path))?;
        let file_len = file
            .metadata()
            .map_err(io("reading the size of", path))?
            .len();

        let seconds = started.elapsed().as_secs_f64();
        ::metrics::histogram!(crate::metrics::RECOVERY_SECONDS).record(seconds);
        ::metrics::counter!(crate::metrics::RECOVERY_RECORDS).increment(recovery.records);
        ::metrics::counter!(crate::metrics::RECOVERY_BYTES).increment(recovery.bytes);
        tracing::info!(
            segments = segments.len(),
            records = recovery.records,
            bytes = recovery.bytes,
            next_seq = expected,
            cut_bytes = recovery.cut.as_ref().map_or(0, |cut| cut.bytes),
            skipped = recovery.skipped.len(),
            seconds,
            "log recovered"
        );

        let durability = options.durability;
        let shared = Arc::new(Shared {
            dir,
            options,
            state: Mutex::new(State {
                segments,
                file: Arc::new(file),
                file_len,
                next_seq: expected,
                pending: Vec::new(),
                poison: None,
                syncer_idle: false,
                waiters: Vec::new(),
                wakers: Vec::new(),
                closing: false,
                stats: LogStats::default(),
            }),
            work: Condvar::new(),
            durable_seq: AtomicU64::new(expected - 1),
            poisoned: AtomicBool::new(false),
            to_wake: Mutex::new(Vec::new()),
            metrics: crate::metrics::LogMetrics::register(),
        });
        let every = match durability {
            Durability::GroupCommit => Some(None),
            Durability::Interval(interval) => Some(Some(interval)),
            Durability::Always | Durability::Never => None,
        };
        let syncer = match every {
            Some(every) => {
                let for_thread = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("pontoon-log-sync".into())
                    .spawn(move || syncer(&for_thread, every));
                Some(spawned.map_err(io("starting the sync thread for", &shared.dir))?)
            }
            None => None,
        };
        Ok((
            Log {
                shared,
                syncer,
                _lock: lock,
                sealed: std::sync::atomic::AtomicU64::new(0),
                #[cfg(feature = "remote")]
                remote: None,
            },
            recovery,
        ))
    }

    /// [`open`](Log::open) with a remote (feature `remote`): if `dir` holds nothing (missing,
    /// or empty), it is first restored from the newest manifest on `remote` (its sealed
    /// segments and the tail acknowledged there; the log goes on at the manifest's next
    /// sequence number); then a background thread uploads each segment once it is sealed,
    /// and publishes it with a new manifest (one with no snapshot). `durability` says whether
    /// [`append`](Log::append) also waits for its record to be on the remote. The policies,
    /// and what a lost machine loses under each, are in `docs/remote.md`.
    ///
    /// A restore takes a lock beside the directory (`.<name>.restore-lock`), so that two opens
    /// racing for one empty directory restore it once; the lock file stays there afterwards,
    /// whether the restore succeeded or not (removing it would let a third open lock a new
    /// file while a second still waits on the old one). A prefix that holds a
    /// [`Durable`](crate::Durable)'s state (its manifest names a snapshot) is refused with
    /// [`RemoteError::NotALog`](crate::RemoteError::NotALog), on restore and on the first upload.
    ///
    /// ```
    /// use pontoon_persist::{Log, LogOptions, Remote, RemoteDurability};
    /// use pontoon_wire::{Header, Message};
    ///
    /// let base = std::env::temp_dir().join(format!("pontoon-doc-log-remote-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&base);
    /// std::fs::create_dir_all(base.join("remote")).unwrap();
    /// let url = format!("file://{}", base.join("remote").display());
    /// let remote = || Remote::open(&url, Vec::<(String, String)>::new()).unwrap();
    /// {
    ///     let (log, _) = Log::open_remote(base.join("a"), LogOptions::default(), remote(), RemoteDurability::Acknowledged)?;
    ///     log.append(1, &Message::new(Header::from_serde(&"on the remote")?, vec![]))?; // on the remote now
    /// }
    /// // The machine is gone: a fresh directory is restored from the remote.
    /// let (log, _) = Log::open_remote(base.join("b"), LogOptions::default(), remote(), RemoteDurability::Background)?;
    /// assert_eq!(log.read_all()?[0].message.header.deserialize::<String>()?, "on the remote");
    /// assert_eq!(log.next_seq(), 2);
    /// # drop(log); std::fs::remove_dir_all(&base).unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "remote")]
    pub fn open_remote(
        dir: impl AsRef<Path>,
        options: LogOptions,
        remote: crate::Remote,
        durability: crate::RemoteDurability,
    ) -> Result<(Log, Recovery), OpenError> {
        Log::open_attached(
            dir.as_ref(),
            options,
            remote,
            durability,
            crate::remote::Holder::Log,
        )
    }

    /// Opens the log in `dir` with a remote, restored from it first if `dir` is empty, as a
    /// bare log's or as a [`Durable`](crate::Durable) state's (`holder`).
    #[cfg(feature = "remote")]
    pub(crate) fn open_attached(
        dir: &Path,
        options: LogOptions,
        remote: crate::Remote,
        durability: crate::RemoteDurability,
        holder: crate::remote::Holder,
    ) -> Result<(Log, Recovery), OpenError> {
        // A restore holds its lock until the log holds the directory's.
        let restore_lock = crate::remote::restore_if_empty(&remote, dir, &options, holder)?;
        let (mut log, recovery) = Log::open(dir, options)?;
        drop(restore_lock);
        let generation = crate::remote::read_generation(dir)?;
        let uploader =
            crate::remote::uploader::Uploader::start(remote, dir.to_path_buf(), holder, generation)
                .map_err(io("starting the uploader for", dir))?;
        log.remote = Some(Attached {
            uploader,
            durability,
            sealed_seen: AtomicU64::new(0),
        });
        Ok((log, recovery))
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, Poisoned> {
        self.shared
            .state
            .lock()
            .map_err(|_| Poisoned("a thread panicked while holding the log".into()))
    }

    /// The log's directory.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log) { println!("{}", log.dir().display()); }
    /// ```
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The options the log was opened with.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log) { println!("{:?}", log.options().durability); }
    /// ```
    pub fn options(&self) -> &LogOptions {
        &self.shared.options
    }

    /// The sequence number the next append gets.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log) { assert!(log.next_seq() >= 1); }
    /// ```
    pub fn next_seq(&self) -> u64 {
        self.state().map_or(0, |state| state.next_seq)
    }

    /// The sequence number of the oldest record still in the log: records before it were
    /// removed by [`Log::prune_before`]. Equal to [`next_seq`](Log::next_seq) when the log holds no
    /// record.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log) { assert!(log.first_seq() <= log.next_seq()); }
    /// ```
    pub fn first_seq(&self) -> u64 {
        self.state()
            .map_or(0, |state| state.segments.first().map_or(1, |s| s.first_seq))
    }

    /// Every record up to this sequence number is durable (0: none yet).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log) { assert!(log.durable_seq() < log.next_seq()); }
    /// ```
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// What the log has done since it was opened.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log) { assert!(log.stats().syncs <= log.stats().appends + 1); }
    /// ```
    pub fn stats(&self) -> LogStats {
        self.state()
            .map_or(LogStats::default(), |state| state.stats)
    }

    /// Appends a record holding `message`, of the application's `kind`; returns its sequence
    /// number once the record is as durable as [`LogOptions::durability`] promises: on disk
    /// under `Always` and `GroupCommit`, written to the OS under `Interval` and `Never`. A log
    /// opened with a remote under `RemoteDurability::Acknowledged` (feature `remote`) then also
    /// makes it durable locally and publishes it on the remote before returning; if only that
    /// fails, the error is `AppendError::NotOnRemote` and the record stands.
    ///
    /// Threads may append to one log concurrently; sequence numbers follow the order in which
    /// appends take the log's lock.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log) -> Result<(), pontoon_persist::LogError> {
    /// let seq = log.append(3, &pontoon_wire::Message::default())?;
    /// # let _ = seq; Ok(()) }
    /// ```
    pub fn append(&self, kind: u32, message: &Message) -> Result<u64, AppendError> {
        let seq = if self.shared.options.durability != Durability::GroupCommit {
            self.submit_locked(kind, message).map(|(seq, _)| seq)?
        } else {
            let (seq, state) = self.submit_locked(kind, message)?;
            self.wait_locked(state, seq).map(|()| seq)?
        };
        #[cfg(feature = "remote")]
        self.after_append(seq, true)?;
        Ok(seq)
    }

    /// With a remote: asks for a round once a segment was sealed (it is synced before the
    /// next one starts), and, for an `append` under
    /// [`RemoteDurability::Acknowledged`](crate::RemoteDurability::Acknowledged), runs one
    /// that puts record `seq` on the remote and waits for it.
    #[cfg(feature = "remote")]
    fn after_append(&self, seq: u64, wait: bool) -> Result<(), AppendError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let sealed = self.sealed.load(Ordering::Relaxed);
        let sealed_now = remote.sealed_seen.swap(sealed, Ordering::Relaxed) != sealed;
        if wait && remote.durability == crate::RemoteDurability::Acknowledged {
            // Its round uploads a newly sealed segment too.
            let tail = self.durable_tail()?;
            remote
                .uploader
                .upload_now(Some(tail), crate::remote::uploader::Answer::Published)
                .map_err(|source| AppendError::NotOnRemote {
                    seq,
                    source: Box::new(source),
                })?;
        } else if sealed_now {
            remote.uploader.request();
        }
        Ok(())
    }

    /// Appends a record without waiting for it to be durable, and returns its sequence number;
    /// [`wait_durable`](Log::wait_durable) or [`durable_seq`](Log::durable_seq) tell when it
    /// is. Under [`Durability::GroupCommit`] this is the pipelined way to append from one
    /// thread: many records in flight, each acknowledged once a shared `fdatasync` covers it.
    /// Under `Always` the record is durable when this returns, as with `append`.
    ///
    /// Records that are submitted but not yet durable when the log is dropped are written and
    /// synced by the drop.
    ///
    /// ```
    /// use pontoon_persist::{Durability, Log, LogOptions};
    ///
    /// let dir = std::env::temp_dir().join(format!("pontoon-doc-submit-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let mut options = LogOptions::default();
    /// options.durability = Durability::GroupCommit;
    /// let (log, _) = Log::open(&dir, options)?;
    /// let mut last = 0;
    /// for i in 0..1000u32 {
    ///     last = log.submit(i % 4, &pontoon_wire::Message::default())?;
    /// }
    /// log.wait_durable(last)?; // every record up to `last` is on disk
    /// assert!(log.durable_seq() >= 1000);
    /// # drop(log); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), pontoon_persist::LogError>(())
    /// ```
    pub fn submit(&self, kind: u32, message: &Message) -> Result<u64, AppendError> {
        let seq = self.submit_locked(kind, message).map(|(seq, _)| seq)?;
        #[cfg(feature = "remote")]
        self.after_append(seq, false)?;
        Ok(seq)
    }

    /// Appends a record and returns its sequence number with the log still locked.
    fn submit_locked(
        &self,
        kind: u32,
        message: &Message,
    ) -> Result<(u64, MutexGuard<'_, State>), AppendError> {
        let options = &self.shared.options;
        let encoded = Encoder::default().encode(message)?;
        let len = encoded.len();
        if len > options.max_record_bytes {
            return Err(AppendError::TooLarge {
                len,
                limit: options.max_record_bytes,
            });
        }
        let mut pieces: Vec<&[u8]> = Vec::with_capacity(encoded.chunks().len() + 1);
        pieces.push(&[]);
        pieces.extend(encoded.chunks().iter().map(|c| &c[..]));
        // A large payload's checksum is computed outside the lock; a small one's under it,
        // where it costs less than combining two checksums would.
        let crc = (len >= COMBINE_CRC_BYTES).then(|| payload_crc(&pieces[1..]));

        // The encoder aligns frames to 64 bytes from the message's start, and the record puts
        // the message at a 64-byte file offset: every frame is aligned in the file.
        let record_len = V2.record_len(len);
        let padding = &ZEROS[..(record_len - RECORD_HEADER_LEN as u64 - len) as usize];
        pieces.push(padding);

        let mut state = self.state()?;
        state.check()?;
        if state.next_seq > MAX_SEQ {
            return Err(AppendError::SequenceExhausted { last: MAX_SEQ });
        }
        if state.file_len > SEGMENT_HEADER_LEN as u64
            && state.file_len + record_len > options.segment_bytes
        {
            self.rotate(&mut state)?;
        }
        let seq = state.next_seq;
        let payload_pieces = &pieces[1..pieces.len() - 1];
        let payload = match crc {
            Some(crc) => Payload::Crc(crc),
            None => Payload::Pieces(payload_pieces),
        };
        let header = record_header(kind, seq, len, payload);
        pieces[0] = &header;
        let batched = options.durability == Durability::GroupCommit;
        if batched && record_len < BATCH_RECORD_BYTES {
            pieces
                .iter()
                .for_each(|p| state.pending.extend_from_slice(p));
            if state.pending.len() >= PENDING_LIMIT {
                state.write_pending(&self.shared)?;
            }
        } else {
            // Records already waiting go first, so the file keeps the sequence order.
            state.write_pending(&self.shared)?;
            if let Err(e) = write_all_pieces(&state.file, &pieces) {
                let error = io("appending to", state.path())(e);
                return Err(state.poison(&self.shared, error).into());
            }
            state.stats.writes += 1;
        }
        state.stats.appends += 1;
        state.file_len += record_len;
        state.next_seq += 1;
        self.shared.metrics.appended_records.increment(1);
        self.shared.metrics.appended_bytes.increment(record_len);
        tracing::trace!(seq, kind, bytes = record_len, "record appended");
        match options.durability {
            Durability::Always => state.sync(&self.shared)?,
            // Waking the syncer costs a system call: only when it sleeps with nothing to do.
            Durability::GroupCommit | Durability::Interval(_) if state.syncer_idle => {
                state.syncer_idle = false;
                self.shared.work.notify_one();
            }
            _ => {}
        }
        Ok((seq, state))
    }

    /// Waits until every record up to `seq` is durable (a `seq` not yet appended means every
    /// record appended so far). Under `GroupCommit` it waits for the log's sync thread; under
    /// the other policies it syncs, unless that is already done.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log) -> Result<(), pontoon_persist::LogError> {
    /// let seq = log.submit(0, &pontoon_wire::Message::default())?;
    /// log.wait_durable(seq)?;
    /// assert!(log.durable_seq() >= seq);
    /// # Ok(()) }
    /// ```
    pub fn wait_durable(&self, seq: u64) -> Result<(), AppendError> {
        let state = self.state()?;
        self.wait_locked(state, seq)
    }

    /// A future that resolves once every record up to `seq` is durable (a `seq` not yet
    /// appended means every record appended so far): [`wait_durable`](Log::wait_durable) for
    /// async callers, without parking an OS thread. Under [`Durability::GroupCommit`] (and
    /// `Interval`) it is woken by the log's sync thread and never blocks; under `Always` records
    /// are durable when appended; under `Never` the first poll that finds records not yet
    /// durable syncs them, blocking the polling thread for that `fdatasync`, as `wait_durable`
    /// does. A write or sync failure resolves it with the error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops the wait; the records it waited for become
    /// durable all the same, and [`durable_seq`](Log::durable_seq) tells when.
    ///
    /// ```
    /// use pontoon_persist::{Durability, Log, LogOptions};
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl std::task::Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = std::sync::Arc::new(Unpark(std::thread::current())).into();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } std::thread::park() }
    /// # }
    /// let dir = std::env::temp_dir().join(format!("pontoon-doc-async-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let mut options = LogOptions::default();
    /// options.durability = Durability::GroupCommit;
    /// let (log, _) = Log::open(&dir, options)?;
    /// let seq = log.submit(0, &pontoon_wire::Message::default())?;
    /// block_on(log.durable(seq))?; // in async code: log.durable(seq).await?
    /// assert!(log.durable_seq() >= seq);
    /// # drop(log); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), pontoon_persist::LogError>(())
    /// ```
    pub fn durable(&self, seq: u64) -> DurableWait<'_> {
        DurableWait { log: self, seq }
    }

    /// Waits until every record up to `seq` is durable; `state` is released before sleeping.
    fn wait_locked(&self, mut state: MutexGuard<'_, State>, seq: u64) -> Result<(), AppendError> {
        let shared = &self.shared;
        let seq = seq.min(state.next_seq - 1);
        if let Err(error) = state.check() {
            Err(error.into())
        } else if shared.durable_seq.load(Ordering::Acquire) >= seq {
            Ok(())
        } else if shared.options.durability != Durability::GroupCommit {
            state.sync(shared)
        } else {
            state.waiters.push((seq, std::thread::current()));
            drop(state);
            // Woken by the sync that covers `seq` (or a poisoning); an early or stale unpark
            // only costs another look.
            loop {
                if shared.durable_seq.load(Ordering::Acquire) >= seq {
                    wake_two(shared);
                    break Ok(());
                }
                if shared.poisoned.load(Ordering::Acquire) {
                    break self
                        .state()
                        .and_then(|state| state.check())
                        .map_err(Into::into);
                }
                std::thread::park();
            }
        }
    }

    /// Makes every record appended so far durable (`fdatasync`), under any policy. A failure
    /// poisons the log.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log) -> Result<(), pontoon_persist::LogError> {
    /// log.sync()?;
    /// # Ok(()) }
    /// ```
    pub fn sync(&self) -> Result<(), AppendError> {
        self.state()?.sync(&self.shared)
    }

    /// Starts a new segment: the current one is synced first, so that a segment is complete
    /// and durable before any record goes into the next.
    fn rotate(&self, state: &mut State) -> Result<(), AppendError> {
        state.sync(&self.shared)?;
        // Records appended since recovery mapped it are past its map: read back by length.
        let file_len = state.file_len;
        if let Some(last) = state.segments.last_mut()
            && last.checked.is_some()
        {
            last.sealed_len = Some(file_len);
        }
        let path = self.shared.dir.join(segment_name(state.next_seq));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io("creating", &path))?;
        write_segment_header(&file, &path, state.next_seq)?;
        sync_dir(&self.shared.dir)?;
        tracing::debug!(path = %path.display(), first_seq = state.next_seq, "segment started");
        state.segments.push(Segment {
            first_seq: state.next_seq,
            path,
            checked: None,
            sealed_len: None,
        });
        state.file = Arc::new(file);
        state.file_len = SEGMENT_HEADER_LEN as u64;
        self.sealed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Makes every record appended so far durable (unless it is already), then says where
    /// the active segment's durable bytes end, read under the lock so that the three agree.
    #[cfg(feature = "remote")]
    pub(crate) fn durable_tail(&self) -> Result<crate::remote::Tail, AppendError> {
        let mut state = self.state()?;
        state.check()?;
        if !state.pending.is_empty()
            || self.shared.durable_seq.load(Ordering::Acquire) < state.next_seq - 1
        {
            state.sync(&self.shared)?;
        }
        let segment = state.segments.last().expect("at least one segment");
        Ok(crate::remote::Tail {
            first_seq: segment.first_seq,
            len: state.file_len,
            last_seq: state.next_seq - 1,
        })
    }

    /// Asks the remote's uploader, if there is one, for a round in the background (after a
    /// snapshot or a prune).
    #[cfg(feature = "remote")]
    pub(crate) fn request_upload(&self) {
        if let Some(remote) = &self.remote {
            remote.uploader.request();
        }
    }

    /// (Rounds also run in the background, unasked: after an append that sealed a segment,
    /// and after a [`prune_before`](Log::prune_before).)
    ///
    /// Uploads to the remote now the sealed segments it lacks, publishes them with a new
    /// manifest and deletes what that manifest no longer names (segments pruned locally);
    /// waits for it and returns the manifest. The active segment is uploaded only as far as a
    /// tail was asked for ([`wait_remote`](Log::wait_remote), or
    /// [`RemoteDurability::Acknowledged`](crate::RemoteDurability)); otherwise its records
    /// reach the remote once the log rolls over to a new segment
    /// ([`LogOptions::segment_bytes`]). Without a remote, [`AppendError::NoRemote`].
    ///
    /// ```
    /// use pontoon_persist::{Log, LogOptions, Remote, RemoteDurability};
    ///
    /// let base = std::env::temp_dir().join(format!("pontoon-doc-log-sync-remote-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&base);
    /// std::fs::create_dir_all(base.join("remote")).unwrap();
    /// let url = format!("file://{}", base.join("remote").display());
    /// let remote = Remote::open(&url, Vec::<(String, String)>::new())?;
    /// let mut options = LogOptions::default();
    /// options.segment_bytes = 4096;
    /// let (log, _) = Log::open_remote(base.join("a"), options, remote, RemoteDurability::Background)?;
    /// for _ in 0..100 {
    ///     log.append(0, &pontoon_wire::Message::default())?;
    /// }
    /// let manifest = log.sync_remote()?;
    /// assert!(!manifest.segments.is_empty() && manifest.snapshot.is_none());
    /// # drop(log); std::fs::remove_dir_all(&base).unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "remote")]
    pub fn sync_remote(&self) -> Result<crate::RemoteManifest, AppendError> {
        match &self.remote {
            Some(remote) => Ok(remote
                .uploader
                .upload_now(None, crate::remote::uploader::Answer::Finished)?),
            None => Err(AppendError::NoRemote),
        }
    }

    /// Waits until every record up to `seq` (every record so far, if `seq` is later) is on
    /// the remote: makes them durable locally, uploads what the remote lacks of the active
    /// segment as a tail part with whatever else it lacks, publishes a manifest naming it, and
    /// returns that manifest. Records [`submit`](Log::submit)ted before it share its one round:
    /// the way to batch under [`RemoteDurability::Acknowledged`](crate::RemoteDurability), or
    /// to acknowledge a point under `Background`. From then on every round keeps at least that
    /// much of the active segment on the remote. Without a remote, [`AppendError::NoRemote`].
    ///
    /// ```
    /// use pontoon_persist::{Log, LogOptions, Remote, RemoteDurability};
    ///
    /// let base = std::env::temp_dir().join(format!("pontoon-doc-log-wait-remote-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&base);
    /// std::fs::create_dir_all(base.join("remote")).unwrap();
    /// let url = format!("file://{}", base.join("remote").display());
    /// let remote = || Remote::open(&url, Vec::<(String, String)>::new()).unwrap();
    /// {
    ///     let (log, _) = Log::open_remote(base.join("a"), LogOptions::default(), remote(), RemoteDurability::Background)?;
    ///     let mut last = 0;
    ///     for _ in 0..10 {
    ///         last = log.submit(0, &pontoon_wire::Message::default())?;
    ///     }
    ///     assert_eq!(log.wait_remote(last)?.next_seq, 11); // one round for all ten
    ///     assert_eq!(log.remote_status().unwrap().failed_rounds, 0);
    /// }
    /// let (log, _) = Log::open_remote(base.join("b"), LogOptions::default(), remote(), RemoteDurability::Background)?;
    /// assert_eq!(log.read_all()?.len(), 10);
    /// # drop(log); std::fs::remove_dir_all(&base).unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "remote")]
    pub fn wait_remote(&self, seq: u64) -> Result<crate::RemoteManifest, AppendError> {
        let Some(remote) = &self.remote else {
            return Err(AppendError::NoRemote);
        };
        self.wait_durable(seq)?;
        let tail = self.durable_tail()?;
        Ok(remote
            .uploader
            .upload_now(Some(tail), crate::remote::uploader::Answer::Finished)?)
    }

    /// What the upload rounds have done since the log was opened (how many failed, the last
    /// error), or `None` without a remote. A background round's failure shows only here and
    /// as a `tracing` warning.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log) {
    /// if let Some(status) = log.remote_status() && status.last_error.is_some() {
    ///     eprintln!("{} of {} upload rounds failed", status.failed_rounds, status.rounds);
    /// }
    /// # }
    /// ```
    #[cfg(feature = "remote")]
    pub fn remote_status(&self) -> Option<crate::RemoteStatus> {
        self.remote.as_ref().map(|r| r.uploader.status())
    }

    /// Reads every record back at once, in order (frames are views of the segments' memory
    /// maps). [`records`](Log::records) streams them instead.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log) -> Result<(), pontoon_persist::LogError> {
    /// let count = log.read_all()?.len();
    /// # let _ = count; Ok(()) }
    /// ```
    pub fn read_all(&self) -> Result<Vec<Record>, ReadError> {
        self.records(0)?.collect()
    }

    /// The records with sequence numbers `seq` and up, as appended when this is called, in
    /// order; segments wholly before `seq` are skipped. Each record's frames are views of its
    /// segment's read-only memory map (nothing is copied into the heap); segments that
    /// recovery checked at open are read back from its maps without a second check, and
    /// records appended since are checked as they are read. A
    /// [`prune_before`](Log::prune_before) while the records are read does not disturb the
    /// segments recovery mapped; one written since and removed before it is reached is an
    /// error ([`ReadError::Io`], not found), never a wrong record.
    ///
    /// ```
    /// use pontoon_persist::{Durability, Log, LogOptions};
    /// use pontoon_wire::{Header, Message};
    ///
    /// let dir = std::env::temp_dir().join(format!("pontoon-doc-from-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let mut options = LogOptions::default();
    /// options.durability = Durability::Never;
    /// let (log, _) = Log::open(&dir, options)?;
    /// for i in 1..=10u64 {
    ///     log.append(0, &Message::new(Header::from_serde(&i)?, vec![]))?;
    /// }
    /// let tail: Vec<u64> = log
    ///     .records(8)?
    ///     .map(|record| record?.message.header.deserialize::<u64>().map_err(Into::into))
    ///     .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    /// assert_eq!(tail, [8, 9, 10]);
    /// # drop(log); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn records(&self, seq: u64) -> Result<Records, ReadError> {
        let mut state = self.state()?;
        state.check()?;
        state.write_pending(&self.shared)?;
        let segments = &state.segments;
        let mut plan = Vec::new();
        for (i, segment) in segments.iter().enumerate() {
            let next_first = segments.get(i + 1).map(|s| s.first_seq);
            if next_first.is_some_and(|next| next <= seq) {
                continue; // every record in it is before `seq`
            }
            // Appends after this call are not read: the last segment is read up to its length
            // now (a map of it covers no more).
            plan.push(Planned {
                path: segment.path.clone(),
                checked: segment.checked.clone(),
                len: match next_first {
                    None => Some(state.file_len),
                    Some(_) => segment.sealed_len,
                },
            });
        }
        let raw = RawRecords::new(plan, seq, &self.shared.options);
        Ok(Records::new(raw, self.shared.options.limits))
    }

    /// Removes every segment whose records are all numbered below `seq`, oldest first, the
    /// directory synced after each, so that a crash leaves a suffix of the log, never a hole.
    /// The last segment is never removed, so the log keeps its place in the sequence. Returns
    /// the files removed. The log knows nothing of snapshots: the caller decides what is no
    /// longer needed (a [`Durable`](crate::Durable) prunes what its durable snapshot covers).
    /// With a remote (`Log::open_remote`, feature `remote`), an upload round is asked for in
    /// the background, and it deletes the remote segments pruned here.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(log: &pontoon_persist::Log, state: &pontoon_wire::Message) -> Result<(), pontoon_persist::LogError> {
    /// let last = log.next_seq() - 1;
    /// log.sync()?;
    /// pontoon_persist::write_snapshot(log.dir(), last, state)?; // durable when it returns
    /// let removed = log.prune_before(last + 1)?;
    /// println!("removed {} segments; the log now starts at {}", removed.len(), log.first_seq());
    /// # Ok(()) }
    /// ```
    pub fn prune_before(&self, seq: u64) -> Result<Vec<PathBuf>, AppendError> {
        let dir = &self.shared.dir;
        let mut state = self.state()?;
        let mut removed = Vec::new();
        // A segment's records are all below the next segment's first sequence number.
        let mut outcome = Ok(());
        while let Some(next) = state.segments.get(removed.len() + 1) {
            if next.first_seq > seq {
                break;
            }
            let path = state.segments[removed.len()].path.clone();
            if let Err(e) = fs::remove_file(&path).map_err(io("removing", &path)) {
                outcome = Err(e);
                break;
            }
            removed.push(path);
            if let Err(e) = sync_dir(dir) {
                outcome = Err(e);
                break;
            }
        }
        // Removed once, not one at a time: a long log is pruned in linear time.
        state.segments.drain(..removed.len());
        drop(state);
        #[cfg(feature = "remote")]
        if !removed.is_empty() {
            self.request_upload();
        }
        outcome.map(|()| removed).map_err(Into::into)
    }
}

impl Drop for Log {
    /// Stops the sync thread, which first writes and syncs whatever is still in flight.
    fn drop(&mut self) {
        // The uploader first: its round under way gets the remote's close timeout, while the
        // directory is still locked.
        #[cfg(feature = "remote")]
        drop(self.remote.take());
        if let Some(syncer) = self.syncer.take() {
            if let Ok(mut state) = self.shared.state.lock() {
                state.closing = true;
            }
            self.shared.work.notify_one();
            let _ = syncer.join();
        }
    }
}

/// The future [`Log::durable`] returns: resolves once every record up to its sequence number is
/// durable.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f(log: &pontoon_persist::Log) -> Result<(), pontoon_persist::LogError> {
/// let seq = log.submit(0, &pontoon_wire::Message::default())?;
/// let wait: pontoon_persist::DurableWait<'_> = log.durable(seq);
/// wait.await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a future does nothing unless polled"]
pub struct DurableWait<'a> {
    log: &'a Log,
    seq: u64,
}

impl std::future::Future for DurableWait<'_> {
    type Output = Result<(), AppendError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), AppendError>> {
        use std::task::Poll;
        let shared = &self.log.shared;
        let mut state = match self.log.state() {
            Ok(state) => state,
            Err(e) => return Poll::Ready(Err(e.into())),
        };
        let seq = self.seq.min(state.next_seq - 1);
        if let Err(error) = state.check() {
            return Poll::Ready(Err(error.into()));
        }
        if shared.durable_seq.load(Ordering::Acquire) >= seq {
            return Poll::Ready(Ok(()));
        }
        match shared.options.durability {
            // The sync thread advances `durable_seq` under the state lock, which is held here:
            // a waker registered now is woken by the sync that covers `seq`.
            Durability::GroupCommit | Durability::Interval(_) => {
                let waker = cx.waker();
                match state
                    .wakers
                    .iter_mut()
                    .find(|(s, w)| *s == seq && w.will_wake(waker))
                {
                    Some(_) => {}
                    None => state.wakers.push((seq, waker.clone())),
                }
                Poll::Pending
            }
            _ => Poll::Ready(state.sync(shared)),
        }
    }
}
