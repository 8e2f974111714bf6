//! [`Log::inspect`]: a read-only look at a log directory, for tools (`pontoon log verify` and
//! `dump`): the same checks as opening it, without creating, locking exclusively, cutting or
//! writing anything.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::OpenError;
use crate::files::{Load, open_regular};
use crate::records::{Planned, RawRecords, Records};
use crate::recovery::{Checked, list_segments, scan};
use crate::{Cut, Log, LogOptions, Recovery};

/// What [`Log::inspect`] found: the recovery that the next writable open would make, and a way
/// to read the records it would keep. The log's `LOCK` file, if it has one, is locked shared
/// while this lives, so no process opens the log for writing meanwhile.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn f() -> Result<(), pontoon_persist::LogError> {
/// let inspection = pontoon_persist::Log::inspect("/data/log", &Default::default())?;
/// if let Some(cut) = inspection.would_cut() {
///     println!("the next writable open cuts {} bytes of {}", cut.bytes, cut.file.display());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Inspection {
    /// What recovery found; its `cut` is a cut the next writable open would make, not one made.
    pub recovery: Recovery,
    /// The segment files, oldest first.
    pub segments: Vec<PathBuf>,
    /// The sequence number of the first record (the next one, if the log holds none).
    pub first_seq: u64,
    /// The sequence number the next record appended would get.
    pub next_seq: u64,
    /// Each segment file with what recovery checked of it (`None`: a segment whose creation was
    /// cut short, with no record in it).
    checked: Vec<(PathBuf, Option<Checked>)>,
    options: LogOptions,
    _lock: Option<File>,
}

impl Inspection {
    /// The torn tail (or never-finished segment) that the next writable open would cut.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(inspection: &pontoon_persist::Inspection) { assert!(inspection.would_cut().is_none()); }
    /// ```
    pub fn would_cut(&self) -> Option<&Cut> {
        self.recovery.cut.as_ref()
    }

    /// The format version of each segment, in the order of [`segments`](Self::segments) (`None`
    /// for a segment whose creation was cut short, with no valid header): `2` for what this
    /// crate writes, `1` for a segment of pontoon 0.1, which the next writable open leaves as it
    /// is and follows with a version 2 segment (see `docs/persist-format.md`, Upgrading).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(inspection: &pontoon_persist::Inspection) {
    /// let old = inspection.segment_versions().iter().filter(|v| **v == Some(1)).count();
    /// println!("{old} segments in the format of pontoon 0.1");
    /// # }
    /// ```
    pub fn segment_versions(&self) -> Vec<Option<u8>> {
        self.checked
            .iter()
            .map(|(_, checked)| checked.as_ref().map(|c| c.layout.version))
            .collect()
    }

    fn plan(&self) -> Vec<Planned> {
        self.checked
            .iter()
            .filter_map(|(path, checked)| {
                checked.as_ref().map(|checked| Planned {
                    path: path.clone(),
                    checked: Some(checked.clone()),
                    len: None,
                })
            })
            .collect()
    }

    /// The records numbered `from` and up that recovery keeps, their payloads not decoded (views
    /// of the segments as the inspection checked them: nothing is read or checked twice).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(inspection: &pontoon_persist::Inspection) -> Result<(), pontoon_persist::LogError> {
    /// let count = inspection.raw_records(1).count();
    /// # let _ = count; Ok(()) }
    /// ```
    pub fn raw_records(&self, from: u64) -> RawRecords {
        RawRecords::new(self.plan(), from, &self.options)
    }

    /// The records numbered `from` and up that recovery keeps, decoded (compressed frames are
    /// decompressed).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(inspection: &pontoon_persist::Inspection) -> Result<(), pontoon_persist::LogError> {
    /// for record in inspection.records(1) {
    ///     println!("{}", record?.seq);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn records(&self, from: u64) -> Records {
        Records::new(self.raw_records(from), self.options.limits)
    }
}

impl Log {
    /// Looks at the log in `dir` without changing it: lists and checks every segment as
    /// [`Log::open`] would (under the same `options`), but creates nothing, takes the `LOCK`
    /// file's lock only shared (and goes on without it if the directory has no `LOCK`, as a
    /// copy on a read-only medium may not, reading the files into memory rather than mapping
    /// them, since no lock then keeps a writer from cutting one), and cuts nothing: a torn tail is reported as what
    /// the next writable open would cut ([`Inspection::would_cut`]). Every byte of the
    /// directory is the same afterwards. Only regular files are read.
    ///
    /// A `dir` that is not a directory, or holds no segment file, is [`OpenError::NoLog`]; one
    /// that a process has open for writing is [`OpenError::Locked`].
    ///
    /// ```
    /// use pontoon_persist::{Log, LogOptions, OpenError};
    ///
    /// let dir = std::env::temp_dir().join(format!("pontoon-doc-inspect-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir).unwrap();
    /// // Not a log: refused, and nothing is created.
    /// assert!(matches!(Log::inspect(&dir, &LogOptions::default()), Err(OpenError::NoLog { .. })));
    /// assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    /// {
    ///     let (log, _) = Log::open(&dir, LogOptions::default())?;
    ///     log.append(1, &pontoon_wire::Message::default())?;
    /// }
    /// let inspection = Log::inspect(&dir, &LogOptions::default())?;
    /// assert_eq!((inspection.recovery.records, inspection.next_seq), (1, 2));
    /// assert_eq!(inspection.records(1).count(), 1);
    /// # drop(inspection); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), pontoon_persist::LogError>(())
    /// ```
    pub fn inspect(dir: impl AsRef<Path>, options: &LogOptions) -> Result<Inspection, OpenError> {
        let dir = dir.as_ref();
        let no_log = |reason: &'static str| OpenError::NoLog {
            dir: dir.to_path_buf(),
            reason,
        };
        let metadata = std::fs::metadata(dir).map_err(crate::files::io("reading", dir))?;
        if !metadata.is_dir() {
            return Err(no_log("it is not a directory"));
        }
        let lock_path = dir.join("LOCK");
        let lock = match std::fs::symlink_metadata(&lock_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(crate::files::io("reading", &lock_path)(e).into()),
            Ok(_) => {
                let lock = open_regular(&lock_path)?;
                match lock.try_lock_shared() {
                    Ok(()) => {}
                    Err(std::fs::TryLockError::WouldBlock) => {
                        return Err(OpenError::Locked {
                            dir: dir.to_path_buf(),
                        });
                    }
                    Err(std::fs::TryLockError::Error(e)) => {
                        return Err(crate::files::io("locking", &lock_path)(e).into());
                    }
                }
                Some(lock)
            }
        };
        let segments = list_segments(dir)?;
        if segments.is_empty() {
            return Err(no_log("it holds no segment file"));
        }
        // Without a lock, a writer may open the log meanwhile and cut a torn tail, which would
        // fault a map of it: the files are read into memory instead.
        let how = if lock.is_some() {
            Load::MapEvery
        } else {
            Load::Read
        };
        let scanned = scan(&segments, options, how)?;
        let checked = segments
            .iter()
            .zip(scanned.checked)
            .map(|(segment, checked)| (segment.path.clone(), checked))
            .collect();
        Ok(Inspection {
            first_seq: segments.first().map_or(1, |s| s.first_seq),
            next_seq: scanned.next_seq,
            recovery: scanned.recovery,
            segments: segments.into_iter().map(|s| s.path).collect(),
            checked,
            options: options.clone(),
            _lock: lock,
        })
    }
}
