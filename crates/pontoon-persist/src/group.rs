//! The concurrency core of a [`Log`](crate::Log): the state its appenders and its sync thread
//! share, the sync thread that writes what group commit batched and syncs it outside the lock,
//! and how waiting appenders are woken.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::LogOptions;
use crate::error::{AppendError, IoError, Poisoned};
use crate::files::io;
use crate::metrics::LogMetrics;
use crate::recovery::Segment;

/// What the log's users and its syncer thread share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) options: LogOptions,
    pub(crate) state: Mutex<State>,
    /// Wakes the syncer: there is something to sync, or the log is closing.
    pub(crate) work: Condvar,
    /// Every record up to this one is durable. Written only under the state lock (by
    /// [`State::advance`]); read without it, so that a woken appender goes on without
    /// contending for the lock.
    pub(crate) durable_seq: AtomicU64,
    /// Set with [`State::poison`].
    pub(crate) poisoned: AtomicBool,
    /// Appenders a sync made durable and that are still to be unparked: the syncer unparks
    /// two, and each woken appender unparks two more, so the wake-ups (a system call each)
    /// spread over the appenders while the syncer goes on with the next `fdatasync`. An
    /// appender that saw its record durable before it was unparked ends its branch of that
    /// chain, so the syncer unparks whatever is left itself, at its next sync or before it
    /// idles.
    pub(crate) to_wake: Mutex<Vec<Thread>>,
    /// Registered once at open: an append or sync updates handles, never looks a name up.
    pub(crate) metrics: LogMetrics,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) segments: Vec<Segment>,
    /// The last segment, appended to.
    pub(crate) file: Arc<File>,
    /// The last segment's length once `pending` is written.
    pub(crate) file_len: u64,
    pub(crate) next_seq: u64,
    /// Whole records appended but not yet written (only under `GroupCommit`).
    pub(crate) pending: Vec<u8>,
    /// Why the log refuses all writes, once a write or sync failed.
    pub(crate) poison: Option<String>,
    /// The syncer is waiting on `work` (so an append must wake it).
    pub(crate) syncer_idle: bool,
    /// Threads parked until a sequence number is durable (under `GroupCommit`); a sync
    /// unparks exactly those it covers.
    pub(crate) waiters: Vec<(u64, Thread)>,
    /// Tasks waiting (through [`DurableWait`](crate::DurableWait)) until a sequence number is
    /// durable; woken by the sync that covers it, or by a poisoning.
    pub(crate) wakers: Vec<(u64, Waker)>,
    pub(crate) closing: bool,
    pub(crate) stats: LogStats,
}

/// Counts of what a log has done since it was opened: how well appends share syncs.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn f(log: &pontoon_persist::Log) {
/// let stats = log.stats();
/// println!("{} records, {} fdatasyncs", stats.appends, stats.syncs);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStats {
    /// Records appended.
    pub appends: u64,
    /// `fdatasync` calls that made records durable.
    pub syncs: u64,
    /// Write system calls that put records in the segment files.
    pub writes: u64,
}

impl State {
    /// Records that every record up to `seq` is durable, and takes the waiters that this
    /// satisfies, to be unparked (after the lock is released, where it matters).
    #[must_use = "the waiters taken must be unparked"]
    pub(crate) fn advance(&mut self, shared: &Shared, seq: u64) -> Vec<(u64, Thread)> {
        // Never back: a rotation may have synced further than a sync that started earlier.
        if seq > shared.durable_seq.load(Ordering::Acquire) {
            shared.durable_seq.store(seq, Ordering::Release);
        }
        let (ready, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wakers)
            .into_iter()
            .partition(|(waits_for, _)| *waits_for <= seq);
        self.wakers = pending;
        ready.into_iter().for_each(|(_, waker)| waker.wake());
        let (woken, waiting) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(waits_for, _)| *waits_for <= seq);
        self.waiters = waiting;
        woken
    }

    pub(crate) fn check(&self) -> Result<(), Poisoned> {
        match &self.poison {
            Some(cause) => Err(Poisoned(cause.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.segments.last().expect("at least one segment").path
    }

    /// Records `error` as the reason the log refuses writes from now on, and wakes everyone
    /// waiting for durability so that they see it.
    pub(crate) fn poison(&mut self, shared: &Shared, error: IoError) -> IoError {
        self.poison = Some(crate::error::describe(&error));
        shared.poisoned.store(true, Ordering::Release);
        unpark(std::mem::take(&mut self.waiters));
        std::mem::take(&mut self.wakers)
            .into_iter()
            .for_each(|(_, waker)| waker.wake());
        error
    }

    /// Writes the records waiting in memory to the last segment.
    pub(crate) fn write_pending(&mut self, shared: &Shared) -> Result<(), IoError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = (&*self.file).write_all(&self.pending) {
            // Part of a record may be on disk: the next open cuts it; this log cannot go on.
            let error = io("appending to", self.path())(e);
            return Err(self.poison(shared, error));
        }
        self.stats.writes += 1;
        self.pending.clear();
        Ok(())
    }

    /// Writes what is pending and syncs the last segment while holding the lock: everything
    /// appended so far is durable when this returns.
    pub(crate) fn sync(&mut self, shared: &Shared) -> Result<(), AppendError> {
        self.check()?;
        self.write_pending(shared)?;
        let started = Instant::now();
        if let Err(e) = self.file.sync_data() {
            let error = io("syncing", self.path())(e);
            return Err(self.poison(shared, error).into());
        }
        let target = self.next_seq - 1;
        synced(shared, started, target, self.path());
        self.stats.syncs += 1;
        unpark(self.advance(shared, target));
        Ok(())
    }
}

/// Records one `fdatasync` that started at `started` and made every record up to `target`
/// durable; called before `durable_seq` advances, so the batch is what this sync added.
fn synced(shared: &Shared, started: Instant, target: u64, path: &Path) {
    let seconds = started.elapsed().as_secs_f64();
    let records = target.saturating_sub(shared.durable_seq.load(Ordering::Acquire));
    shared.metrics.synced(seconds, records);
    tracing::debug!(
        path = %path.display(),
        records,
        seconds,
        "log synced"
    );
}

pub(crate) fn unpark(waiters: Vec<(u64, Thread)>) {
    waiters.into_iter().for_each(|(_, thread)| thread.unpark());
}

/// Unparks every appender left in `shared.to_wake`.
pub(crate) fn wake_all(shared: &Shared) {
    let all = match shared.to_wake.lock() {
        Ok(mut to_wake) => std::mem::take(&mut *to_wake),
        Err(_) => return,
    };
    all.into_iter().for_each(|thread| thread.unpark());
}

/// Unparks two of the appenders in `shared.to_wake`, if any are left.
pub(crate) fn wake_two(shared: &Shared) {
    let two: Vec<Thread> = match shared.to_wake.lock() {
        Ok(mut to_wake) => {
            let keep = to_wake.len().saturating_sub(2);
            to_wake.split_off(keep)
        }
        Err(_) => return,
    };
    two.into_iter().for_each(|thread| thread.unpark());
}

/// The sync thread of a `GroupCommit` log (`every` is `None`: sync as soon as anything is
/// waiting, again and again) or an `Interval` log (sync once per interval if anything is new).
/// It writes what is pending under the lock, then syncs outside it, so that appends go on
/// during the `fdatasync` and are covered by the next one.
pub(crate) fn syncer(shared: &Shared, every: Option<Duration>) {
    let Ok(mut state) = shared.state.lock() else {
        return;
    };
    let mut due = every.map(|interval| Instant::now() + interval);
    loop {
        let behind = shared.durable_seq.load(Ordering::Acquire) + 1 < state.next_seq;
        if state.poison.is_some() || (state.closing && !behind) {
            break;
        }
        let now = Instant::now();
        let ready = behind && (state.closing || due.is_none_or(|due| now >= due));
        if !ready {
            let waited = match due.filter(|_| behind) {
                // Under `Interval`, with records to sync: until they are due.
                Some(due) => shared
                    .work
                    .wait_timeout(state, due.saturating_duration_since(now))
                    .ok()
                    .map(|(state, _)| state),
                // Nothing to sync: until an append (or the drop) wakes us.
                None => {
                    state.syncer_idle = true;
                    drop(state);
                    wake_all(shared);
                    shared.state.lock().ok().and_then(|state| {
                        // An append, or the drop (`closing`), may have come meanwhile, its
                        // notification sent while nothing waited: look before sleeping.
                        let durable = shared.durable_seq.load(Ordering::Acquire);
                        if state.syncer_idle && !state.closing && durable + 1 >= state.next_seq {
                            shared.work.wait(state).ok()
                        } else {
                            Some(state)
                        }
                    })
                }
            };
            let Some(woken) = waited else { return };
            state = woken;
            state.syncer_idle = false;
            continue;
        }
        if state.write_pending(shared).is_err() {
            break;
        }
        let target = state.next_seq - 1;
        let file = Arc::clone(&state.file);
        let path = state.path().to_path_buf();
        drop(state);
        let started = Instant::now();
        let synced = file.sync_data();
        let Ok(relocked) = shared.state.lock() else {
            return;
        };
        state = relocked;
        match synced {
            Ok(()) => {
                self::synced(shared, started, target, &path);
                state.stats.syncs += 1;
                // A rotation may have synced further meanwhile; `advance` never goes back.
                let woken = state.advance(shared, target);
                if !woken.is_empty() {
                    drop(state);
                    let stranded = match shared.to_wake.lock() {
                        Ok(mut to_wake) => {
                            let stranded = std::mem::take(&mut *to_wake);
                            to_wake.extend(woken.into_iter().map(|(_, thread)| thread));
                            stranded
                        }
                        Err(_) => return,
                    };
                    stranded.into_iter().for_each(|thread| thread.unpark());
                    wake_two(shared);
                    let Ok(relocked) = shared.state.lock() else {
                        return;
                    };
                    state = relocked;
                }
            }
            Err(e) => {
                state.poison(shared, io("syncing", &path)(e));
                break;
            }
        }
        due = every.map(|interval| Instant::now() + interval);
    }
    unpark(std::mem::take(&mut state.waiters));
    std::mem::take(&mut state.wakers)
        .into_iter()
        .for_each(|(_, waker)| waker.wake());
    drop(state);
    wake_all(shared);
}
