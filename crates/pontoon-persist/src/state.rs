//! [`Durable`]: resilient application state as a library. Every event is logged durably
//! before it is applied; snapshots bound the replay; reopening after a crash gives exactly the
//! state after the last acknowledged event.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use pontoon_family::{DeserializeError, Registry, SerializeError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{AppendError, OpenError, ReadError, SnapshotError};
use crate::snapshot::{
    Pruned, SnapshotRecovery, load_snapshot, remove_snapshots_before, write_snapshot,
};
use crate::{DurableWait, Log, LogError, LogOptions, Recovery};

/// The user's function that applies an event to the state.
type ApplyFn<S, E> = Box<dyn Fn(&mut S, &E) + Send>;

/// Why a [`Durable`]'s check refused an event.
pub type Refusal = Box<dyn std::error::Error + Send + Sync>;

/// The user's check that may refuse an event before it is logged.
type CheckFn<S, E> = Box<dyn Fn(&S, &E) -> Result<(), Refusal> + Send>;

/// The log record kind [`Durable`] writes its events as.
pub const KIND_EVENT: u32 = 1;

/// What went wrong with a [`Durable`] state.
///
/// ```
/// let err = pontoon_persist::StateError::Gap { snapshot_seq: 10, found_seq: 21 };
/// assert!(err.to_string().contains("missing"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The log or a snapshot file failed (each operation's error, as a [`LogError`]).
    #[error(transparent)]
    Log(#[from] LogError),
    /// The check given with [`Durable::with_check`] refused the event: nothing was logged or
    /// applied.
    #[error("the event was refused by the check before it was logged")]
    Refused {
        /// The check's reason.
        #[source]
        source: Refusal,
    },
    /// An event could not be serialized (nothing was logged or applied).
    #[error("cannot serialize the event")]
    SerializeEvent(#[source] SerializeError),
    /// The state could not be serialized for a snapshot.
    #[error("cannot serialize the state")]
    SerializeState(#[source] SerializeError),
    /// A logged event could not be deserialized while replaying.
    #[error("cannot deserialize the event in record {seq}")]
    DeserializeEvent {
        /// The record's sequence number.
        seq: u64,
        /// What the registry said.
        #[source]
        source: DeserializeError,
    },
    /// A snapshot's state could not be deserialized.
    #[error("cannot deserialize the state in {path}")]
    DeserializeState {
        /// The snapshot file.
        path: PathBuf,
        /// What the registry said.
        #[source]
        source: DeserializeError,
    },
    /// The log holds a record of a kind other than [`KIND_EVENT`]: it is not a `Durable`'s log.
    #[error("record {seq} has kind {kind}; a durable state's log holds only events (kind 1)")]
    UnexpectedKind {
        /// The record's sequence number.
        seq: u64,
        /// Its kind.
        kind: u32,
    },
    /// Records after the snapshot are missing from the log (removed with an older snapshot's
    /// prune, or skipped by salvage): the state cannot be rebuilt exactly.
    #[error(
        "records are missing: the snapshot covers records up to {snapshot_seq}, \
         but the next record in the log is {found_seq}"
    )]
    Gap {
        /// The last record the snapshot includes (0: no snapshot).
        snapshot_seq: u64,
        /// The sequence number found where `snapshot_seq + 1` was expected.
        found_seq: u64,
    },
    /// The snapshot includes records the log does not have (the log was replaced or lost its
    /// tail): appending would reuse sequence numbers.
    #[error(
        "the snapshot covers records up to {snapshot_seq}, but the log ends before record {next_seq}"
    )]
    SnapshotAhead {
        /// The last record the snapshot includes.
        snapshot_seq: u64,
        /// The log's next sequence number.
        next_seq: u64,
    },
    /// The state or the event type has no stable name in [`DurableOptions::registry`]: its
    /// messages would carry its Rust name, which may change with the next build or when the type
    /// moves module, and leave the log unreadable. Nothing was opened or written.
    #[error(
        "the {role} type `{type_name}` has no stable name, and a durable log must outlive this \
         build: implement `pontoon_family::TypeName` for it and call \
         `options.registry.register_named::<T>()`, or call \
         `options.registry.register_type::<T>(\"app.Name\")`"
    )]
    UnnamedType {
        /// `"state"` or `"event"`.
        role: &'static str,
        /// The type's Rust name.
        type_name: &'static str,
    },
    /// The event `seq` was logged durably and applied, but the automatic snapshot after it
    /// failed. The state is intact; the snapshot can be retried with [`Durable::snapshot`].
    #[error("event {seq} was committed, but the automatic snapshot failed")]
    AutoSnapshot {
        /// The committed event's sequence number.
        seq: u64,
        /// Why the snapshot failed.
        #[source]
        source: Box<StateError>,
    },
    /// The remote failed: restoring from it, or an upload asked for with
    /// [`Durable::sync_remote`].
    #[cfg(feature = "remote")]
    #[error(transparent)]
    Remote(#[from] crate::RemoteError),
    /// Under [`RemoteDurability::Acknowledged`](crate::RemoteDurability::Acknowledged), event
    /// `seq` was logged durably and applied locally, but the round that was to publish it on
    /// the remote failed: it is not acknowledged as on the remote. The state is intact; the
    /// next round (or [`Durable::wait_remote`]) uploads it.
    #[cfg(feature = "remote")]
    #[error("event {seq} was committed locally, but putting it on the remote failed")]
    NotOnRemote {
        /// The committed event's sequence number.
        seq: u64,
        /// Why the upload failed.
        #[source]
        source: Box<crate::RemoteError>,
    },
    /// [`Durable::sync_remote`] was called on a state opened without a remote.
    #[cfg(feature = "remote")]
    #[error("the state was opened without a remote")]
    NoRemote,
}

impl From<OpenError> for StateError {
    fn from(error: OpenError) -> StateError {
        StateError::Log(error.into())
    }
}

impl From<AppendError> for StateError {
    fn from(error: AppendError) -> StateError {
        StateError::Log(error.into())
    }
}

impl From<ReadError> for StateError {
    fn from(error: ReadError) -> StateError {
        StateError::Log(error.into())
    }
}

impl From<SnapshotError> for StateError {
    fn from(error: SnapshotError) -> StateError {
        StateError::Log(error.into())
    }
}

/// How a [`Durable`] state is opened and kept.
///
/// ```
/// let mut options = pontoon_persist::DurableOptions::default();
/// options.snapshot_every = std::num::NonZeroU64::new(1000);
/// assert!(options.prune);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct DurableOptions {
    /// The event log's options (durability, segment size, limits). Its limits also apply to
    /// snapshots. Salvage makes records go missing, which opening then refuses
    /// ([`StateError::Gap`]).
    pub log: LogOptions,
    /// Serializes events and the state (into pontoon messages), and deserializes them back. The
    /// state and event types must have stable names in it (`register_named`, `register_type`):
    /// [`Durable::open`] refuses them otherwise ([`StateError::UnnamedType`]).
    pub registry: Registry,
    /// Take a snapshot automatically after this many events since the last one (`None`: only
    /// when [`Durable::snapshot`] is called).
    pub snapshot_every: Option<NonZeroU64>,
    /// After each snapshot, remove the log segments ([`Log::prune_before`](crate::Log::prune_before))
    /// and the older snapshots it covers. With a remote, the next upload then deletes the
    /// remote objects the snapshot covers.
    pub prune: bool,
    /// Where sealed segments and snapshots are uploaded in the background, and where
    /// [`Durable::open`] restores from when the directory holds no state (feature `remote`).
    #[cfg(feature = "remote")]
    pub remote: Option<crate::Remote>,
    /// Whether [`Durable::apply`] waits for its event to be on the remote
    /// ([`RemoteDurability::Acknowledged`](crate::RemoteDurability)) or not (`Background`, the
    /// default). Without a remote it changes nothing.
    #[cfg(feature = "remote")]
    pub remote_durability: crate::RemoteDurability,
}

impl Default for DurableOptions {
    /// The default [`LogOptions`] and [`Registry`], no automatic snapshots, pruning on.
    fn default() -> DurableOptions {
        DurableOptions {
            log: LogOptions::default(),
            registry: Registry::new(),
            snapshot_every: None,
            prune: true,
            #[cfg(feature = "remote")]
            remote: None,
            #[cfg(feature = "remote")]
            remote_durability: crate::RemoteDurability::Background,
        }
    }
}

/// What opening a [`Durable`] state found.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DurableRecovery {
    /// The log's recovery (a torn tail cut, and so on).
    pub log: Recovery,
    /// The snapshots found: the one loaded, damaged ones skipped, `.tmp` leftovers removed.
    pub snapshots: SnapshotRecovery,
    /// Events replayed from the log on top of the snapshot (or of the initial state).
    pub replayed: u64,
}

/// A state of type `S`, changed only by events of type `E`, that survives crashes: each event
/// is appended to a [`Log`] (durable per [`LogOptions::durability`]) before it is applied to
/// the state in memory, and snapshots of the state bound what must be replayed when it is
/// opened again. After a crash, opening gives exactly the state after the last acknowledged
/// event.
///
/// The log, the snapshots and a `LOCK` file share one directory; one process at a time.
///
/// The state's and the events' types need stable names in the options' registry (the log
/// outlives the build), declared with [`pontoon_family::TypeName`] or given at registration:
///
/// ```
/// use pontoon_persist::{Durable, DurableOptions};
///
/// let dir = std::env::temp_dir().join(format!("pontoon-doc-durable-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let options = || {
///     let mut options = DurableOptions::default();
///     options.registry.register_type::<u64>("counter.Amount").unwrap(); // state and events
///     options
/// };
/// let add = |total: &mut u64, n: &u64| *total += n;
/// {
///     let mut counter = Durable::open(&dir, || 0u64, add, options())?;
///     counter.apply(&5)?; // durable when it returns
///     counter.apply(&6)?;
/// } // no snapshot taken: the events are replayed
/// let counter = Durable::open(&dir, || 0u64, add, options())?;
/// assert_eq!(*counter.state(), 11);
/// # drop(counter); std::fs::remove_dir_all(&dir).unwrap();
///
/// // Without stable names it refuses, before it touches the directory.
/// let err = Durable::open(&dir, || 0u64, add, DurableOptions::default()).unwrap_err();
/// assert!(matches!(err, pontoon_persist::StateError::UnnamedType { role: "state", .. }));
/// assert!(!dir.exists());
/// # Ok::<(), pontoon_persist::StateError>(())
/// ```
pub struct Durable<S, E> {
    dir: PathBuf,
    log: Log,
    state: S,
    apply: ApplyFn<S, E>,
    check: Option<CheckFn<S, E>>,
    registry: Registry,
    snapshot_every: Option<NonZeroU64>,
    prune: bool,
    last_seq: u64,
    since_snapshot: u64,
    recovery: DurableRecovery,
}

impl<S, E> std::fmt::Debug for Durable<S, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("dir", &self.dir)
            .field("last_seq", &self.last_seq)
            .field("since_snapshot", &self.since_snapshot)
            .finish_non_exhaustive()
    }
}

impl<S, E> Durable<S, E>
where
    S: Serialize + DeserializeOwned + 'static,
    E: Serialize + DeserializeOwned + 'static,
{
    /// Opens (or creates) the state kept in `dir`: opens and recovers the log, loads the newest
    /// snapshot that verifies (or starts from `initial()`), then applies every logged event
    /// after it, in order, with `apply`.
    ///
    /// `S` and `E` must have stable names in [`DurableOptions::registry`]; without,
    /// [`StateError::UnnamedType`], before the directory is touched.
    ///
    /// `apply` must be deterministic: replaying the same events on the same state must give
    /// the same result.
    pub fn open(
        dir: impl AsRef<Path>,
        initial: impl FnOnce() -> S,
        apply: impl Fn(&mut S, &E) + Send + 'static,
        options: DurableOptions,
    ) -> Result<Durable<S, E>, StateError> {
        let dir = dir.as_ref().to_path_buf();
        stable_name::<S>(&options.registry, "state")?;
        stable_name::<E>(&options.registry, "event")?;
        let limits = options.log.limits;
        // The log first: it locks the directory before the snapshots are touched. With a
        // remote, the log's own (restoring an empty directory, uploading in the background),
        // as a durable state's: with its snapshots.
        #[cfg(feature = "remote")]
        let (log, log_recovery) = match options.remote {
            Some(remote) => Log::open_attached(
                &dir,
                options.log,
                remote,
                options.remote_durability,
                crate::remote::Holder::Durable,
            )
            .map_err(|e| match e {
                OpenError::Remote(e) => StateError::Remote(*e),
                e => e.into(),
            })?,
            None => Log::open(&dir, options.log)?,
        };
        #[cfg(not(feature = "remote"))]
        let (log, log_recovery) = Log::open(&dir, options.log)?;
        let snapshots = load_snapshot(&dir, &limits)?;
        let registry = options.registry;
        let (mut state, snapshot_seq) = match &snapshots.snapshot {
            Some(snapshot) => (
                registry
                    .deserialize::<S>(&snapshot.message)
                    .map_err(|source| StateError::DeserializeState {
                        path: snapshot.path.clone(),
                        source,
                    })?,
                snapshot.last_seq,
            ),
            None => (initial(), 0),
        };
        if log.next_seq() <= snapshot_seq {
            return Err(StateError::SnapshotAhead {
                snapshot_seq,
                next_seq: log.next_seq(),
            });
        }
        let mut expected = snapshot_seq + 1;
        let mut replayed = 0;
        for record in log.records(snapshot_seq + 1)? {
            let record = record?;
            if record.seq != expected {
                return Err(StateError::Gap {
                    snapshot_seq,
                    found_seq: record.seq,
                });
            }
            if record.kind != KIND_EVENT {
                return Err(StateError::UnexpectedKind {
                    seq: record.seq,
                    kind: record.kind,
                });
            }
            let event: E = registry.deserialize(&record.message).map_err(|source| {
                StateError::DeserializeEvent {
                    seq: record.seq,
                    source,
                }
            })?;
            apply(&mut state, &event);
            expected += 1;
            replayed += 1;
        }
        if log.next_seq() != expected {
            return Err(StateError::Gap {
                snapshot_seq,
                found_seq: log.next_seq(),
            });
        }
        Ok(Durable {
            dir,
            log,
            state,
            apply: Box::new(apply),
            check: None,
            registry,
            snapshot_every: options.snapshot_every,
            prune: options.prune,
            last_seq: expected - 1,
            since_snapshot: replayed,
            recovery: DurableRecovery {
                log: log_recovery,
                snapshots,
                replayed,
            },
        })
    }

    /// Adds a check that every event must pass before it is logged: an event it refuses is
    /// [`StateError::Refused`], and neither logged nor applied. The check sees the state the
    /// event would apply to. Replaying logged events never runs it (they passed it once).
    ///
    /// ```
    /// use pontoon_persist::{Durable, DurableOptions, StateError};
    ///
    /// let dir = std::env::temp_dir().join(format!("pontoon-doc-check-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let mut options = DurableOptions::default();
    /// options.registry.register_type::<i64>("balance.Amount").unwrap();
    /// let mut balance = Durable::open(&dir, || 0i64, |b: &mut i64, n: &i64| *b += n, options)?
    ///     .with_check(|b: &i64, n: &i64| {
    ///         if b + n < 0 { Err("the balance would go negative".into()) } else { Ok(()) }
    ///     });
    /// balance.apply(&10)?;
    /// assert!(matches!(balance.apply(&-11), Err(StateError::Refused { .. })));
    /// assert_eq!((*balance.state(), balance.last_seq()), (10, 1)); // nothing logged
    /// # drop(balance); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), StateError>(())
    /// ```
    #[must_use = "with_check returns the state with the check; the original is moved"]
    pub fn with_check(
        mut self,
        check: impl Fn(&S, &E) -> Result<(), Refusal> + Send + 'static,
    ) -> Self {
        self.check = Some(Box::new(check));
        self
    }

    /// Logs `event`, then applies it to the state; returns its sequence number once it is
    /// durable (per [`LogOptions::durability`], and, with the feature `remote`, under
    /// `RemoteDurability::Acknowledged`, once it is durable locally and published on the
    /// remote; if only that fails, the error is `StateError::NotOnRemote` and the event
    /// stands). If logging fails, the state is unchanged.
    /// Then takes a snapshot if [`DurableOptions::snapshot_every`] events have accumulated;
    /// if only that fails, the error is [`StateError::AutoSnapshot`] and the event stands.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(counter: &mut pontoon_persist::Durable<u64, u64>) -> Result<(), pontoon_persist::StateError> {
    /// let seq = counter.apply(&5)?; // durable now
    /// # let _ = seq; Ok(()) }
    /// ```
    pub fn apply(&mut self, event: &E) -> Result<u64, StateError> {
        self.log_and_apply(event, true)
    }

    /// Logs `event` and applies it to the state at once, without waiting for it to be
    /// durable: pipelining, so that under [`Durability::GroupCommit`](crate::Durability) many
    /// events share one `fdatasync`. Returns its sequence number; acknowledge the event to
    /// the outside world only once [`wait_durable`](Durable::wait_durable) (or the future
    /// [`durable`](Durable::durable)) says it is durable: until then a crash loses it, and
    /// [`state`](Durable::state) shows it already. Snapshots sync the log first, so they never
    /// include an event that is not durable.
    ///
    /// ```
    /// use pontoon_persist::{Durability, Durable, DurableOptions};
    ///
    /// let dir = std::env::temp_dir().join(format!("pontoon-doc-pipe-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let mut options = DurableOptions::default();
    /// options.log.durability = Durability::GroupCommit;
    /// options.registry.register_type::<u64>("counter.Amount").unwrap();
    /// let mut counter = Durable::open(&dir, || 0u64, |t: &mut u64, n: &u64| *t += n, options)?;
    /// let mut last = 0;
    /// for n in 1..=100 {
    ///     last = counter.submit(&n)?; // applied now
    /// }
    /// counter.wait_durable(last)?; // all 100 durable: now acknowledge them
    /// assert_eq!((*counter.state(), counter.durable_seq()), (5050, 100));
    /// # drop(counter); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), pontoon_persist::StateError>(())
    /// ```
    pub fn submit(&mut self, event: &E) -> Result<u64, StateError> {
        self.log_and_apply(event, false)
    }

    /// Waits until every event up to `seq` is durable (see [`Log::wait_durable`]).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(counter: &mut pontoon_persist::Durable<u64, u64>) -> Result<(), pontoon_persist::StateError> {
    /// let seq = counter.submit(&5)?;
    /// counter.wait_durable(seq)?;
    /// # Ok(()) }
    /// ```
    pub fn wait_durable(&self, seq: u64) -> Result<(), StateError> {
        Ok(self.log.wait_durable(seq)?)
    }

    /// A future that resolves once every event up to `seq` is durable, for tokio (or any async)
    /// callers, without parking an OS thread (see [`Log::durable`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops the wait.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(counter: &mut pontoon_persist::Durable<u64, u64>) -> Result<(), pontoon_persist::StateError> {
    /// let seq = counter.submit(&5)?;
    /// counter.durable(seq).await?;
    /// # Ok(()) }
    /// ```
    pub fn durable(&self, seq: u64) -> DurableWait<'_> {
        self.log.durable(seq)
    }

    /// The event log (to read its [`stats`](Log::stats), say).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(counter: &pontoon_persist::Durable<u64, u64>) { println!("{} syncs", counter.log().stats().syncs); }
    /// ```
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Every event up to this sequence number is durable (0: none yet).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(counter: &pontoon_persist::Durable<u64, u64>) { assert!(counter.durable_seq() <= counter.last_seq()); }
    /// ```
    pub fn durable_seq(&self) -> u64 {
        self.log.durable_seq()
    }

    fn log_and_apply(&mut self, event: &E, wait: bool) -> Result<u64, StateError> {
        if let Some(check) = &self.check {
            check(&self.state, event).map_err(|source| StateError::Refused { source })?;
        }
        let message = self
            .registry
            .serialize(event)
            .map_err(StateError::SerializeEvent)?;
        // The log's remote, if any, uploads sealed segments and (under `Acknowledged`, for
        // `append`) puts the event on the remote before `append` returns.
        let appended = if wait {
            self.log.append(KIND_EVENT, &message)
        } else {
            self.log.submit(KIND_EVENT, &message)
        };
        let seq = match appended {
            Ok(seq) => seq,
            // Logged durably; only the remote failed: the event stands, applied.
            #[cfg(feature = "remote")]
            Err(AppendError::NotOnRemote { seq, source }) => {
                (self.apply)(&mut self.state, event);
                self.last_seq = seq;
                self.since_snapshot += 1;
                return Err(StateError::NotOnRemote { seq, source });
            }
            Err(e) => return Err(e.into()),
        };
        (self.apply)(&mut self.state, event);
        self.last_seq = seq;
        self.since_snapshot += 1;
        if let Some(every) = self.snapshot_every
            && self.since_snapshot >= every.get()
        {
            self.snapshot().map_err(|source| StateError::AutoSnapshot {
                seq,
                source: Box::new(source),
            })?;
        }
        Ok(seq)
    }

    /// Takes a snapshot of the state now: syncs the log (so that it holds every event the
    /// snapshot includes), writes the snapshot atomically and durably, then, with
    /// [`DurableOptions::prune`], removes the log segments and older snapshots it covers.
    /// Returns what was pruned.
    pub fn snapshot(&mut self) -> Result<Pruned, StateError> {
        let message = self
            .registry
            .serialize(&self.state)
            .map_err(StateError::SerializeState)?;
        self.log.sync()?;
        write_snapshot(&self.dir, self.last_seq, &message)?;
        self.since_snapshot = 0;
        if self.prune {
            // The snapshot is durable: the segments and snapshots it covers can go, oldest
            // first (segments, then snapshots), so a crash meanwhile leaves a state that opens.
            let segments = self.log.prune_before(self.last_seq.saturating_add(1))?;
            let snapshots = remove_snapshots_before(&self.dir, self.last_seq)?;
            #[cfg(feature = "remote")]
            self.log.request_upload();
            Ok(Pruned {
                segments,
                snapshots,
            })
        } else {
            #[cfg(feature = "remote")]
            self.log.request_upload();
            Ok(Pruned::default())
        }
    }

    /// (Rounds also run in the background, unasked: after each snapshot, and after an event
    /// whose append sealed a segment.)
    ///
    /// Uploads to the remote now what it lacks (the newest snapshot, the sealed segments after
    /// it), publishes it with a new manifest and deletes what that manifest no longer names;
    /// waits for it and returns the manifest. The log's active segment is uploaded only as far
    /// as a tail was asked for ([`wait_remote`](Durable::wait_remote), or
    /// [`RemoteDurability::Acknowledged`](crate::RemoteDurability)); otherwise its records reach
    /// the remote once the log rolls over to a new segment
    /// ([`LogOptions::segment_bytes`](crate::LogOptions::segment_bytes)), or in a snapshot.
    ///
    /// ```
    /// use pontoon_persist::{Durable, DurableOptions, Remote};
    ///
    /// let base = std::env::temp_dir().join(format!("pontoon-doc-sync-remote-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&base);
    /// std::fs::create_dir_all(base.join("remote")).unwrap();
    /// let url = format!("file://{}", base.join("remote").display());
    /// let options = || {
    ///     let mut options = DurableOptions::default();
    ///     options.registry.register_type::<u64>("counter.Amount").unwrap();
    ///     options.remote = Some(Remote::open(&url, Vec::<(String, String)>::new()).unwrap());
    ///     options
    /// };
    /// let add = |total: &mut u64, n: &u64| *total += n;
    /// {
    ///     let mut counter = Durable::open(base.join("a"), || 0u64, add, options())?;
    ///     counter.apply(&5)?;
    ///     counter.snapshot()?;
    ///     let manifest = counter.sync_remote()?;
    ///     assert!(manifest.snapshot.is_some());
    /// }
    /// // The machine is gone: a fresh directory is restored from the remote.
    /// let counter = Durable::open(base.join("b"), || 0u64, add, options())?;
    /// assert_eq!(*counter.state(), 5);
    /// # drop(counter); std::fs::remove_dir_all(&base).unwrap();
    /// # Ok::<(), pontoon_persist::StateError>(())
    /// ```
    #[cfg(feature = "remote")]
    pub fn sync_remote(&self) -> Result<crate::RemoteManifest, StateError> {
        self.log.sync_remote().map_err(remote_error)
    }

    /// Waits until every event up to `seq` (every event so far, if `seq` is later) is on the
    /// remote: makes them durable locally, uploads what the remote lacks of the active
    /// segment as a tail part with whatever else it lacks, publishes a manifest naming it,
    /// and returns that manifest. Events [`submit`](Durable::submit)ted before it share its one
    /// round: the way to batch under [`RemoteDurability::Acknowledged`](crate::RemoteDurability),
    /// or to acknowledge a point under `Background`. From then on every round keeps at least
    /// that much of the active segment on the remote.
    ///
    /// ```
    /// use pontoon_persist::{Durable, DurableOptions, Remote};
    ///
    /// let base = std::env::temp_dir().join(format!("pontoon-doc-wait-remote-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&base);
    /// std::fs::create_dir_all(base.join("remote")).unwrap();
    /// let url = format!("file://{}", base.join("remote").display());
    /// let options = || {
    ///     let mut options = DurableOptions::default();
    ///     options.registry.register_type::<u64>("counter.Amount").unwrap();
    ///     options.remote = Some(Remote::open(&url, Vec::<(String, String)>::new()).unwrap());
    ///     options
    /// };
    /// let add = |total: &mut u64, n: &u64| *total += n;
    /// {
    ///     let mut counter = Durable::open(base.join("a"), || 0u64, add, options())?;
    ///     let mut last = 0;
    ///     for n in 1..=10 {
    ///         last = counter.submit(&n)?;
    ///     }
    ///     let manifest = counter.wait_remote(last)?; // one round for all ten
    ///     assert_eq!(manifest.next_seq, 11);
    /// }
    /// let counter = Durable::open(base.join("b"), || 0u64, add, options())?;
    /// assert_eq!(*counter.state(), 55);
    /// # drop(counter); std::fs::remove_dir_all(&base).unwrap();
    /// # Ok::<(), pontoon_persist::StateError>(())
    /// ```
    #[cfg(feature = "remote")]
    pub fn wait_remote(&self, seq: u64) -> Result<crate::RemoteManifest, StateError> {
        self.log.wait_remote(seq).map_err(remote_error)
    }

    /// What the upload rounds have done since the state was opened (how many failed, the last
    /// error), or `None` without a remote. A background round's failure shows only here and
    /// as a `tracing` warning.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(state: &pontoon_persist::Durable<u64, u64>) {
    /// if let Some(status) = state.remote_status() && status.last_error.is_some() {
    ///     eprintln!("{} of {} upload rounds failed", status.failed_rounds, status.rounds);
    /// }
    /// # }
    /// ```
    #[cfg(feature = "remote")]
    pub fn remote_status(&self) -> Option<crate::RemoteStatus> {
        self.log.remote_status()
    }

    /// The state after every event applied so far.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The sequence number of the last event applied (0: none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// What opening found: the log's recovery, the snapshots, the events replayed.
    pub fn recovery(&self) -> &DurableRecovery {
        &self.recovery
    }

    /// The directory the state is kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A log's remote error as a state's: the remote's own, or [`StateError::NoRemote`].
#[cfg(feature = "remote")]
fn remote_error(error: AppendError) -> StateError {
    match error {
        AppendError::Remote(e) => StateError::Remote(*e),
        AppendError::NoRemote => StateError::NoRemote,
        e => e.into(),
    }
}

/// Checks that `T` has a stable name in `registry`: the name its messages carry, which must
/// survive rebuilds and refactors for the log to stay readable.
fn stable_name<T: 'static>(registry: &Registry, role: &'static str) -> Result<(), StateError> {
    match registry.stable_name::<T>() {
        Some(_) => Ok(()),
        None => Err(StateError::UnnamedType {
            role,
            type_name: std::any::type_name::<T>(),
        }),
    }
}
