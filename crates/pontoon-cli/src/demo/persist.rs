//! The demo's fifth part: pontoon-persist's `Durable` state survives kill -9. The `pontoon` binary
//! starts itself again as a writer (`pontoon demo-writer DIR`, hidden from `--help`) that keeps a
//! small bank's balances as a `Durable<Bank, Event>` and acknowledges each event on stdout once
//! `apply` has returned; the demo kills it with SIGKILL mid-stream, reopens the directory, and
//! checks that nothing acknowledged was lost and that the books still balance. Then it logs an
//! array and shows that, read back after reopening the log, it is a view of the segment file's
//! memory map, as the kernel's list of the process's mappings (`/proc/self/maps`) confirms.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use pontoon::array::Array;
use pontoon::family::Registry;
use pontoon::persist::{Durability, Durable, DurableOptions, Log, LogOptions};
use serde::{Deserialize, Serialize};

use super::{duration, size, timed};

/// The bank's accounts, each opened with [`OPENING_BALANCE`].
const ACCOUNTS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// What each account holds before the first event.
const OPENING_BALANCE: i64 = 10_000;

/// A snapshot of the state is taken after this many events.
const SNAPSHOT_EVERY: u64 = 500;

/// Log segments are this small so that pruning after a snapshot shows.
const SEGMENT_BYTES: u64 = 64 << 10;

/// The writer is killed after this many acknowledged events ...
const KILL_AFTER_EVENTS: u64 = 3_000;

/// ... or this long after its first acknowledgement, whichever comes first.
const KILL_AFTER: Duration = Duration::from_millis(500);

/// How long the writer may take to acknowledge its first event.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The writer gives up by itself if it has not been killed by then.
const WRITER_DEADLINE: Duration = Duration::from_secs(60);

/// Events applied after recovery, to show the state carries on.
const MORE_EVENTS: u64 = 3;

/// Samples in the logged array (f64: 4 MiB).
const ARRAY_SAMPLES: usize = 512 << 10;

/// Options of the hidden `pontoon demo-writer`.
#[derive(clap::Args)]
pub(crate) struct WriterArgs {
    /// The directory the durable state is kept in.
    dir: PathBuf,
}

/// The application state: a bank's balances. Money enters only by deposits and moves only by
/// transfers, so the balances always sum to what was deposited.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(super) struct Bank {
    /// Each account's balance.
    balances: BTreeMap<String, i64>,
    /// Transfers made.
    transfers: u64,
    /// Transfers declined for want of funds.
    declined: u64,
    /// All money ever deposited, the opening balances included.
    deposited: i64,
}

/// What changes the bank: every change is one of these, logged before it is applied.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(super) enum Event {
    /// Money comes in.
    Deposit { account: String, amount: i64 },
    /// Money moves between accounts, if `from` has enough.
    Transfer {
        from: String,
        to: String,
        amount: i64,
    },
}

impl Bank {
    /// Every account at [`OPENING_BALANCE`], no transfers yet.
    pub(super) fn opening() -> Bank {
        Bank {
            balances: ACCOUNTS
                .iter()
                .map(|name| (name.to_string(), OPENING_BALANCE))
                .collect(),
            transfers: 0,
            declined: 0,
            deposited: OPENING_BALANCE * ACCOUNTS.len() as i64,
        }
    }

    /// Applies one event (deterministically, as `Durable` requires).
    pub(super) fn apply(&mut self, event: &Event) {
        match event {
            Event::Deposit { account, amount } => {
                *self.balances.entry(account.clone()).or_default() += amount;
                self.deposited += amount;
            }
            Event::Transfer { from, to, amount } => {
                let available = self.balances.get(from).copied().unwrap_or(0);
                if available < *amount {
                    self.declined += 1;
                    return;
                }
                *self.balances.entry(from.clone()).or_default() -= amount;
                *self.balances.entry(to.clone()).or_default() += amount;
                self.transfers += 1;
            }
        }
    }

    /// The sum of all balances: the checksum the writer acknowledges with.
    pub(super) fn total(&self) -> i64 {
        self.balances.values().sum()
    }
}

/// The event with sequence number `seq`: a pseudo-random deposit (one in ten) or transfer, the
/// same in every process, so the demo can replay the events itself and compare.
pub(super) fn event(seq: u64) -> Event {
    // splitmix64
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let n = ACCOUNTS.len() as u64;
    let from = (z >> 8) % n;
    let to = (from + 1 + (z >> 16) % (n - 1)) % n;
    let amount = 1 + ((z >> 24) % 1_000) as i64;
    if z.is_multiple_of(10) {
        Event::Deposit {
            account: ACCOUNTS[from as usize].into(),
            amount,
        }
    } else {
        Event::Transfer {
            from: ACCOUNTS[from as usize].into(),
            to: ACCOUNTS[to as usize].into(),
            amount,
        }
    }
}

/// The options both processes open the state with: a snapshot every [`SNAPSHOT_EVERY`]
/// events, small segments, and the default durability (an `fdatasync` per event).
pub(super) fn options() -> Result<DurableOptions, Box<dyn Error>> {
    let mut options = DurableOptions::default();
    // The log outlives this build: the types need names that do too.
    options.registry.register_type::<Bank>("demo.Bank")?;
    options.registry.register_type::<Event>("demo.Event")?;
    options.snapshot_every = NonZeroU64::new(SNAPSHOT_EVERY);
    options.log.segment_bytes = SEGMENT_BYTES;
    Ok(options)
}

/// Opens (or creates) the bank kept in `dir`.
fn open(dir: &Path) -> Result<Durable<Bank, Event>, Box<dyn Error>> {
    Ok(Durable::open(dir, Bank::opening, Bank::apply, options()?)?)
}

/// `pontoon demo-writer DIR`: applies events to the bank in `DIR` until it is killed, printing
/// `<seq> <total balance>` for each once `apply` has returned (the event is then durable).
pub(crate) fn writer(args: &WriterArgs) -> Result<(), Box<dyn Error>> {
    let mut bank = open(&args.dir)?;
    let start = Instant::now();
    // Stdout is line-buffered: each acknowledgement leaves as soon as it is written.
    let mut out = std::io::stdout().lock();
    loop {
        let seq = bank.last_seq() + 1;
        let acked = bank.apply(&event(seq))?;
        if acked != seq {
            return Err(format!("event {seq} was logged as record {acked}").into());
        }
        writeln!(out, "{acked} {}", bank.state().total())?;
        if start.elapsed() > WRITER_DEADLINE {
            return Err(format!(
                "the writer was not stopped within {} s",
                WRITER_DEADLINE.as_secs()
            )
            .into());
        }
    }
}

/// The writer process: killed and reaped if the demo fails before it has done so.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo's working directory: removed at the end, and on the way out of an error.
pub(super) struct Scratch(pub(super) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One acknowledgement from the writer, and when it arrived.
#[derive(Clone, Copy)]
struct Ack {
    seq: u64,
    total: i64,
    at: Instant,
}

/// Reads the writer's acknowledgements on a thread of its own, so the demo can wait with a
/// timeout. A last line cut short by the kill is dropped: it was never fully acknowledged.
fn read_acks(stdout: ChildStdout) -> Receiver<Result<Ack, String>> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            let ack = match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) if !line.ends_with('\n') => return,
                Ok(_) => parse_ack(&line),
                Err(e) => Err(format!("reading the writer's output: {e}")),
            };
            let failed = ack.is_err();
            if tx.send(ack).is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// Parses one `<seq> <total>` line of the writer's.
fn parse_ack(line: &str) -> Result<Ack, String> {
    let bad = || {
        format!(
            "the writer printed {:?}, not `<seq> <total>`",
            line.trim_end()
        )
    };
    let (seq, total) = line.trim_end().split_once(' ').ok_or_else(bad)?;
    Ok(Ack {
        seq: seq.parse().map_err(|_| bad())?,
        total: total.parse().map_err(|_| bad())?,
        at: Instant::now(),
    })
}

/// The number of segment and snapshot files in `dir`, and their total size.
fn on_disk(dir: &Path) -> Result<(usize, usize, u64), Box<dyn Error>> {
    let (mut segments, mut snapshots, mut bytes) = (0, 0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".log") {
            segments += 1;
        } else if name.ends_with(".snap") {
            snapshots += 1;
        } else {
            continue;
        }
        bytes += entry.metadata()?.len();
    }
    Ok((segments, snapshots, bytes))
}

/// A value holding an array, logged as one record.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Trace {
    probe: String,
    samples: Array,
}

/// The address range of the mapping of `file` in this process that holds `address`, from the
/// kernel's list of the process's mappings (`None` if no mapping of the file holds it).
#[cfg(target_os = "linux")]
fn mapping_holding(file: &Path, address: usize) -> Result<Option<(usize, usize)>, Box<dyn Error>> {
    let file = file.canonicalize()?;
    for line in std::fs::read_to_string("/proc/self/maps")?.lines() {
        // start-end perms offset dev inode path
        let mut fields = line.splitn(6, ' ');
        let (Some(range), Some(path)) = (fields.next(), fields.nth(4)) else {
            continue;
        };
        if Path::new(path.trim_start()) != file {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (start, end) = (
            usize::from_str_radix(start, 16)?,
            usize::from_str_radix(end, 16)?,
        );
        if (start..end).contains(&address) {
            return Ok(Some((start, end)));
        }
    }
    Ok(None)
}

/// Logs an array through the default registry, reopens the log, reads it back, and checks that
/// the array read back is a view of the segment's memory map (and 64-byte aligned): no copy.
fn logged_array_is_a_view(dir: &Path) -> Result<(), Box<dyn Error>> {
    let registry = Registry::new();
    let mut options = LogOptions::default();
    options.durability = Durability::Never;
    let trace = Trace {
        probe: "probe-7".into(),
        samples: Array::build::<f64>(&[ARRAY_SAMPLES], |cells| {
            for (i, cell) in cells.iter_mut().enumerate() {
                *cell = (i as f64 * 0.001).sin();
            }
        })?,
    };
    {
        let (log, _) = Log::open(dir, options.clone())?;
        log.append(1, &registry.serialize(&trace)?)?;
        log.sync()?;
    }
    let (opened, reopen_time) = timed(|| Log::open(dir, options));
    let (log, recovery) = opened?;
    let (read, read_time) = timed(|| -> Result<Trace, Box<dyn Error>> {
        let records = log.read_all()?;
        let record = records.first().ok_or("the log holds no record")?;
        Ok(registry.deserialize(&record.message)?)
    });
    let back = read?;
    // Only the array holds the map from here on.
    drop(log);
    if back != trace {
        return Err("the array read back differs from the one logged".into());
    }
    let segment = dir.join(format!("{:020}.log", 1));
    let address = back.samples.data().as_ptr() as usize;
    if !address.is_multiple_of(64) {
        return Err(format!("the array read back is not 64-byte aligned ({address:#x})").into());
    }
    println!(
        "  array logged      Trace {{ samples: {} {:?} ({}) }} appended, log reopened \
         ({} recovered in {}), read back in {}",
        back.samples.descr(),
        back.samples.shape(),
        size((back.samples.len() * 8) as u64),
        size(recovery.bytes),
        duration(reopen_time),
        duration(read_time)
    );
    #[cfg(target_os = "linux")]
    {
        let Some((start, end)) = mapping_holding(&segment, address)? else {
            return Err(format!(
                "the array read back (at {address:#x}) is not in a mapping of {}: it was copied",
                segment.display()
            )
            .into());
        };
        println!(
            "  read back as view data at {address:#x}, inside the read-only map \
             {start:#x}-{end:#x} of {} (/proc/self/maps), 64-byte aligned: no copy",
            segment.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    #[cfg(not(target_os = "linux"))]
    println!(
        "  read back         data at {address:#x}, 64-byte aligned (checking that it lies in \
         the map of {} needs Linux's /proc/self/maps: skipped here)",
        segment.display()
    );
    Ok(())
}

/// Runs the fifth part.
pub(super) fn run() -> Result<(), Box<dyn Error>> {
    println!("pontoon demo: state that survives kill -9, through pontoon-persist");
    let scratch =
        Scratch(std::env::temp_dir().join(format!("pontoon-demo-{}", std::process::id())));
    let dir = scratch.0.join("state");
    match std::fs::remove_dir_all(&scratch.0) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    std::fs::create_dir_all(&dir)?;

    let mut child = Command::new(std::env::current_exe()?)
        .arg("demo-writer")
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the writer process: {e}"))?;
    let stdout = child.stdout.take().ok_or("the writer has no stdout")?;
    let mut writer = Writer(child);
    println!(
        "  writer            `pontoon demo-writer` (pid {}): Durable<Bank, Event>, {} accounts, \
         fdatasync per event, snapshot every {SNAPSHOT_EVERY}",
        writer.0.id(),
        ACCOUNTS.len()
    );

    // Read acknowledgements until there are enough, or time is up; then kill -9.
    let acks = read_acks(stdout);
    let started = Instant::now();
    let mut first: Option<Ack> = None;
    let mut last: Option<Ack> = None;
    loop {
        let timeout = match &first {
            None => START_TIMEOUT.saturating_sub(started.elapsed()),
            Some(first) => KILL_AFTER.saturating_sub(first.at.elapsed()),
        };
        match acks.recv_timeout(timeout) {
            Ok(ack) => {
                let ack = ack?;
                first.get_or_insert(ack);
                last = Some(ack);
                if ack.seq >= KILL_AFTER_EVENTS {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) if first.is_some() => break,
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "the writer acknowledged nothing within {} s",
                    START_TIMEOUT.as_secs()
                )
                .into());
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = writer.0.wait()?;
                return Err(format!("the writer stopped before it was killed: {status}").into());
            }
        }
    }
    if let Some(status) = writer.0.try_wait()? {
        return Err(format!("the writer stopped before it was killed: {status}").into());
    }
    let ran = first.map_or(Duration::ZERO, |first| first.at.elapsed());
    writer.0.kill()?;
    let status = writer.0.wait()?;
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if status.signal() != Some(9) {
            return Err(format!("the writer was not killed by SIGKILL: {status}").into());
        }
    }
    let (Some(first), Some(mut last)) = (first, last) else {
        return Err("the writer acknowledged nothing".into());
    };
    let running = last.at.duration_since(first.at);
    let rate = (last.seq - first.seq) as f64 / running.as_secs_f64().max(1e-9);
    // Acknowledgements still in the pipe were printed before the kill: they count too.
    for ack in acks {
        last = ack?;
    }
    let (acked, acked_total) = (last.seq, last.total);
    println!(
        "  killed            with SIGKILL after {}, mid-stream; last acknowledged event {acked} \
         ({rate:.0} events/s durable while running)",
        duration(ran),
    );

    // Reopen here, as a restarted service would.
    let (reopened, reopen_time) = timed(|| open(&dir));
    let mut bank = reopened?;
    let recovery = bank.recovery().clone();
    let recovered = bank.last_seq();
    let snapshot = match &recovery.snapshots.snapshot {
        Some(snapshot) => format!("snapshot at event {}", snapshot.last_seq),
        None => "no snapshot".into(),
    };
    let cut = match &recovery.log.cut {
        Some(cut) => format!("torn tail of {} cut", size(cut.bytes)),
        None => "no torn tail".into(),
    };
    let mut leftovers = String::new();
    if !recovery.snapshots.removed_tmp.is_empty() {
        leftovers += &format!(
            ", {} half-written snapshot(s) removed",
            recovery.snapshots.removed_tmp.len()
        );
    }
    if !recovery.snapshots.damaged.is_empty() {
        leftovers += &format!(
            ", {} damaged snapshot(s) skipped",
            recovery.snapshots.damaged.len()
        );
    }
    println!(
        "  reopened          in {}: {snapshot} + {} events replayed, {cut}{leftovers}",
        duration(reopen_time),
        recovery.replayed
    );
    if recovered < acked {
        return Err(format!(
            "events were lost: the writer acknowledged event {acked}, but the state recovered \
             only up to event {recovered}"
        )
        .into());
    }
    println!(
        "  recovered         last_seq {recovered} >= {acked} acknowledged: nothing acknowledged \
         was lost ({} logged but not yet acknowledged)",
        recovered - acked
    );

    // The recovered state must be exactly the events replayed from scratch, and balance.
    let mut expected = Bank::opening();
    for seq in 1..=recovered {
        expected.apply(&event(seq));
        if seq == acked && expected.total() != acked_total {
            return Err(format!(
                "the writer acknowledged event {acked} with total {acked_total}, \
                 but replaying the events gives {}",
                expected.total()
            )
            .into());
        }
    }
    let state = bank.state();
    if *state != expected {
        return Err(
            format!("the recovered state differs from events 1..={recovered} replayed").into(),
        );
    }
    if state.total() != state.deposited {
        return Err(format!(
            "the books do not balance: the balances sum to {}, but {} was deposited",
            state.total(),
            state.deposited
        )
        .into());
    }
    println!(
        "  books             identical to events 1..={recovered} replayed from scratch; \
         balances sum to {} = all deposits ({} transfers, {} declined)",
        state.total(),
        state.transfers,
        state.declined
    );
    let (segments, snapshots, bytes) = on_disk(&dir)?;
    println!(
        "  on disk           {segments} log segment(s), {snapshots} snapshot(s), {} \
         (older ones pruned after each snapshot)",
        size(bytes)
    );

    // And it carries on where it left off.
    for seq in recovered + 1..=recovered + MORE_EVENTS {
        let got = bank.apply(&event(seq))?;
        if got != seq {
            return Err(format!("event {seq} was logged as record {got}").into());
        }
    }
    if bank.state().total() != bank.state().deposited {
        return Err("the books stopped balancing after recovery".into());
    }
    println!(
        "  carried on        events {}..={} applied and acknowledged; balances sum to {}",
        recovered + 1,
        bank.last_seq(),
        bank.state().total()
    );
    drop(bank);
    logged_array_is_a_view(&scratch.0.join("array-log"))?;
    std::fs::remove_dir_all(&scratch.0)?;
    println!("  cleaned up        {}", scratch.0.display());
    Ok(())
}
