//! pontoon-persist benchmarks: durable appends under each policy and recovery at open, each next
//! to a raw `std::fs` baseline measured in the same run, in the same directory root.
//!
//! A record's message is a tiny header (`"rec"`) and one payload frame. The raw baselines write
//! as many bytes per record as pontoon's record takes in the segment file (64-byte record header
//! plus the pontoon-wire encoding, padded to a multiple of 64; printed to stderr): 256 bytes for
//! a 100-byte payload and 4,224 for a 4 KiB one at the time of writing.
//!
//! - `persist/always`: one 4 KiB record per `Log::append` under `Durability::Always`, next to a
//!   raw loop on a file opened for appending: one `write_all` of a record's bytes, then
//!   `sync_data`. The two alternate, and each function times only its own appends.
//! - `persist/group`: 64 threads appending 100-byte records to one log under
//!   `Durability::GroupCommit`, next to the physical batching limit: a raw file written 100
//!   records at a time (one `write_all` of 100 records' bytes) then one `sync_data`. Each
//!   append's acknowledgement latency (the time `append` takes) is kept; its median and p99
//!   and the records per `fdatasync` are printed to stderr and written to
//!   `target/pontoon-bench/persist-latency.txt` (warm-up appends included).
//! - `persist/pipelined`: one thread under `GroupCommit`, `Log::submit` in a loop with at most
//!   1024 records not yet durable, ending with `wait_durable` of the last, so every record
//!   counted is durable; compared with the same raw batch-of-100 baseline.
//! - `persist/recovery`: `Log::open` of a log of about 256 MiB (4 KiB records, 64 MiB
//!   segments), which maps every segment and checks every record, next to reading the same
//!   segment files into one reused `Vec` (`read_to_end` into the cleared `Vec`); the page cache
//!   is warm for both (the log was just written, and is read once before timing).
//!
//! Time is per record (`Throughput::Elements(1)`) for appends, so criterion's throughput is
//! durable records per second, and per whole log for recovery (`Throughput::Bytes`). Logs and
//! raw files live under cargo's `target/tmp` (the same file system as `target/`: `fdatasync`'s
//! cost depends on it), in a fresh directory per benchmark, removed afterwards.

use std::cell::OnceCell;
use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use pontoon::persist::format::{RECORD_ALIGN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use pontoon::persist::{Durability, Log, LogOptions};
use pontoon::wire::{Encoder, Header, Message};
use pontoon_benches::{Timed, Timing, payload};

/// Concurrent appenders in `persist/group`.
const APPENDERS: u64 = 64;

/// Records the raw baseline writes per `sync_data` in `persist/group/raw-batch100x100B`.
const RAW_BATCH: u64 = 100;

/// Most records `persist/pipelined` keeps submitted but not yet durable.
const IN_FLIGHT: u64 = 1024;

/// About how large the log `persist/recovery` opens is.
const RECOVERY_LOG_BYTES: u64 = 256 << 20;

/// A fresh, empty directory for one benchmark under cargo's `target/tmp`, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    /// Creates `target/tmp/pontoon-bench-persist-<pid>-<name>`, emptied first.
    fn new(name: &str) -> Scratch {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "pontoon-bench-persist-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    /// The directory.
    fn path(&self) -> &Path {
        &self.0
    }

    /// A new file in the directory, opened for appending (the raw baselines' log).
    fn append_file(&self, name: &str) -> File {
        OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.0.join(name))
            .unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A record's message: a tiny header and one frame of `len` bytes.
fn record(len: usize) -> Message {
    Message::new(Header::from_serde(&"rec").unwrap(), vec![payload(len)])
}

/// The bytes `message` takes in a segment file: record header plus pontoon-wire encoding,
/// padded to the records' alignment.
fn record_len(message: &Message) -> usize {
    let encoded = Encoder::default().encode(message).unwrap().len();
    (RECORD_HEADER_LEN + usize::try_from(encoded).unwrap()).next_multiple_of(RECORD_ALIGN)
}

/// Opens a fresh log in `dir` with `durability` and otherwise default options.
fn open_log(dir: &Path, durability: Durability) -> Log {
    let mut options = LogOptions::default();
    options.durability = durability;
    Log::open(dir, options).unwrap().0
}

/// A line on how many records (of `message`) a log's `fdatasync`s covered, for stderr.
fn sync_summary(id: &str, log: &Log, message: &Message) -> String {
    let stats = log.stats();
    format!(
        "{id}: {} records of {} bytes, {} fdatasyncs ({:.1} records per fdatasync), {} writes",
        stats.appends,
        record_len(message),
        stats.syncs,
        per_sync(log),
        stats.writes
    )
}

/// Records per `fdatasync` since the log was opened.
fn per_sync(log: &Log) -> f64 {
    let stats = log.stats();
    stats.appends as f64 / stats.syncs.max(1) as f64
}

/// The lines of `target/pontoon-bench/persist-latency.txt` written so far in this run.
static LATENCY_LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Adds a line to `target/pontoon-bench/persist-latency.txt` (rewritten whole, so it holds this
/// run's lines only).
fn record_latency_line(line: String) {
    let mut lines = LATENCY_LINES.lock().unwrap();
    lines.push(line);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("pontoon-bench");
    let mut text = String::from(
        "# pontoon-persist acknowledgement latency, from benches/benches/persist.rs (latest run)\n\
         # benchmark | appenders | records | median ack µs | p99 ack µs | records per fdatasync\n",
    );
    for line in lines.iter() {
        text.push_str(line);
        text.push('\n');
    }
    let path = dir.join("persist-latency.txt");
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        eprintln!("could not write {}: {e}", path.display());
    }
}

/// The `q` quantile (0 to 1) of sorted latencies.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at]
}

/// One 4 KiB record per append, each with its own `fdatasync`, vs write + `sync_data`.
fn always(c: &mut Criterion) {
    let mut group = c.benchmark_group("persist/always");
    group.timing(Timing {
        samples: 10,
        warm_up: Duration::from_secs(1),
        measurement: Duration::from_secs(3),
    });
    group.throughput(Throughput::Elements(1));
    let message = record(4 << 10);
    // Both directories are removed only at the end, so that removing one benchmark's files
    // does not disturb the other's fdatasyncs.
    let (pontoon_dir, raw_dir) = (Scratch::new("always-pontoon"), Scratch::new("always-raw"));
    // The two alternate, one of each per iteration, and each function times only its own:
    // an fdatasync's cost follows the disk's state from moment to moment, which run one after
    // the other the two would not share (the ratio swung from 0.76 to 1.42 between runs so).
    let log = open_log(pontoon_dir.path(), Durability::Always);
    let mut file = raw_dir.append_file("raw.log");
    let bytes = payload(record_len(&message));
    let raw_append = |file: &mut File| {
        file.write_all(&bytes).unwrap();
        file.sync_data().unwrap();
    };
    group.bench_function("pontoon-4KiB", |b| {
        b.iter_batched(
            || raw_append(&mut file),
            |()| log.append(0, &message).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("raw-4KiB", |b| {
        b.iter_batched(
            || {
                log.append(0, &message).unwrap();
            },
            |()| raw_append(&mut file),
            BatchSize::PerIteration,
        )
    });
    if log.stats().appends > 0 {
        eprintln!(
            "{}",
            sync_summary("persist/always/pontoon-4KiB", &log, &message)
        );
    }
    group.finish();
}

/// 64 threads appending 100-byte records under `GroupCommit` vs batches of 100 records per
/// `sync_data`.
fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("persist/group");
    group.timing(Timing {
        samples: 10,
        warm_up: Duration::from_secs(1),
        measurement: Duration::from_secs(4),
    });
    group.throughput(Throughput::Elements(1));
    let message = record(100);
    // Removed only at the end (see `always`).
    let (pontoon_dir, raw_dir) = (Scratch::new("group-pontoon"), Scratch::new("group-raw"));
    {
        let log = open_log(pontoon_dir.path(), Durability::GroupCommit);
        // Every acknowledgement of the benchmark (warm-up included).
        let mut latencies: Vec<Duration> = Vec::new();
        group.bench_function("pontoon-64x100B", |b| {
            b.iter_custom(|iters| {
                let barrier = Barrier::new(APPENDERS as usize + 1);
                let (elapsed, per_thread) = std::thread::scope(|s| {
                    let appenders: Vec<_> = (0..APPENDERS)
                        .map(|t| {
                            let n = iters / APPENDERS + u64::from(t < iters % APPENDERS);
                            let (log, message, barrier) = (&log, &message, &barrier);
                            s.spawn(move || {
                                let mut acks = Vec::with_capacity(n as usize);
                                barrier.wait();
                                for _ in 0..n {
                                    let start = Instant::now();
                                    log.append(0, message).unwrap();
                                    acks.push(start.elapsed());
                                }
                                acks
                            })
                        })
                        .collect();
                    barrier.wait();
                    let start = Instant::now();
                    let per_thread: Vec<Vec<Duration>> =
                        appenders.into_iter().map(|h| h.join().unwrap()).collect();
                    (start.elapsed(), per_thread)
                });
                latencies.extend(per_thread.into_iter().flatten());
                elapsed
            })
        });
        if !latencies.is_empty() {
            latencies.sort_unstable();
            let (median, p99) = (quantile(&latencies, 0.5), quantile(&latencies, 0.99));
            let per_sync = per_sync(&log);
            eprintln!(
                "group commit, {APPENDERS} appenders: median ack {:.2} ms, p99 {:.2} ms, \
                 {per_sync:.1} records per fdatasync ({} acks)",
                median.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                latencies.len()
            );
            eprintln!(
                "{}",
                sync_summary("persist/group/pontoon-64x100B", &log, &message)
            );
            record_latency_line(format!(
                "persist/group/pontoon-64x100B | {APPENDERS} | {} | {:.0} | {:.0} | {per_sync:.1}",
                latencies.len(),
                median.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
            ));
        }
    }
    {
        let mut file = raw_dir.append_file("raw.log");
        let batch = payload(RAW_BATCH as usize * record_len(&message));
        group.bench_function("raw-batch100x100B", |b| {
            b.iter_custom(|iters| {
                // Whole batches only; the time is scaled back to `iters` records.
                let batches = iters.div_ceil(RAW_BATCH);
                let start = Instant::now();
                for _ in 0..batches {
                    file.write_all(&batch).unwrap();
                    file.sync_data().unwrap();
                }
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (batches * RAW_BATCH) as f64)
            })
        });
    }
    group.finish();
}

/// One thread submitting 100-byte records under `GroupCommit`, up to 1024 in flight.
fn pipelined(c: &mut Criterion) {
    let mut group = c.benchmark_group("persist/pipelined");
    group.timing(Timing {
        samples: 10,
        warm_up: Duration::from_secs(1),
        measurement: Duration::from_secs(4),
    });
    group.throughput(Throughput::Elements(1));
    let message = record(100);
    let scratch = Scratch::new("pipelined-pontoon");
    let log = open_log(scratch.path(), Durability::GroupCommit);
    group.bench_function("pontoon-100B", |b| {
        b.iter_custom(|iters| submit_pipelined(&log, &message, iters))
    });
    if log.stats().appends > 0 {
        eprintln!(
            "{}",
            sync_summary("persist/pipelined/pontoon-100B", &log, &message)
        );
        let stats = log.stats();
        record_latency_line(format!(
            "persist/pipelined/pontoon-100B | 1 | {} | - | - | {:.1}",
            stats.appends,
            per_sync(&log)
        ));
    }
    group.finish();
}

/// Submits `iters` records with up to `IN_FLIGHT` of them not yet durable; the time until
/// the last is durable.
fn submit_pipelined(log: &Log, message: &Message, iters: u64) -> Duration {
    let start = Instant::now();
    let mut last = 0;
    for _ in 0..iters {
        last = log.submit(0, message).unwrap();
        if last > IN_FLIGHT {
            log.wait_durable(last - IN_FLIGHT).unwrap();
        }
    }
    log.wait_durable(last).unwrap();
    start.elapsed()
}

/// `persist/pipelined/pontoon-100B` again with a Prometheus recorder installed (as `pontoon
/// store serve --metrics` installs it): what recording the appends and syncs costs. Last in the
/// group list, since the recorder stays installed for the rest of the process.
fn pipelined_recorded(c: &mut Criterion) {
    let mut group = c.benchmark_group("persist/pipelined");
    group.timing(Timing {
        samples: 10,
        warm_up: Duration::from_secs(1),
        measurement: Duration::from_secs(4),
    });
    group.throughput(Throughput::Elements(1));
    let message = record(100);
    let mut handle = None;
    let mut log = None;
    let scratch = Scratch::new("pipelined-recorded");
    group.bench_function("pontoon-100B-recorded", |b| {
        // Installed on first use, so that a run filtered to other benchmarks records nothing.
        let handle = handle.get_or_insert_with(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .unwrap()
        });
        let log = log.get_or_insert_with(|| open_log(scratch.path(), Durability::GroupCommit));
        b.iter_custom(|iters| {
            let took = submit_pipelined(log, &message, iters);
            handle.run_upkeep();
            took
        })
    });
    if let (Some(handle), Some(log)) = (&handle, &log) {
        let recorded = handle
            .render()
            .lines()
            .find(|line| line.starts_with("pontoon_persist_appended_records_total "))
            .map(str::to_owned);
        eprintln!(
            "persist/pipelined/pontoon-100B-recorded: {} appends, the recorder says {recorded:?}",
            log.stats().appends
        );
    }
    group.finish();
}

/// The log `persist/recovery` opens, built on first use (so that a run filtered to other
/// benchmarks does not pay for writing 256 MiB).
struct RecoveryLog {
    /// The log's directory, removed on drop.
    scratch: Scratch,
    /// Its segment files, in order.
    segments: Vec<PathBuf>,
    /// Records in it.
    records: u64,
    /// Bytes of segment files.
    bytes: u64,
}

impl RecoveryLog {
    /// Writes `records` copies of `message` under `Durability::Never`, syncs, and reads every
    /// segment once so that the page cache is warm.
    fn build(options: &LogOptions, message: &Message, records: u64) -> RecoveryLog {
        let scratch = Scratch::new("recovery");
        {
            let (log, _) = Log::open(scratch.path(), options.clone()).unwrap();
            for _ in 0..records {
                log.submit(0, message).unwrap();
            }
            log.sync().unwrap();
        }
        let mut segments: Vec<PathBuf> = std::fs::read_dir(scratch.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .collect();
        segments.sort();
        let mut bytes = 0;
        let mut buf = Vec::new();
        for path in &segments {
            buf.clear();
            bytes += File::open(path).unwrap().read_to_end(&mut buf).unwrap() as u64;
        }
        RecoveryLog {
            scratch,
            segments,
            records,
            bytes,
        }
    }
}

/// `Log::open` of about 256 MiB vs reading its segment files, page cache warm.
fn recovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("persist/recovery");
    // Each iteration reads the whole log: a few iterations per sample.
    group.sampling_mode(SamplingMode::Flat);
    group.timing(Timing {
        samples: 10,
        warm_up: Duration::from_secs(1),
        measurement: Duration::from_secs(5),
    });

    let mut options = LogOptions::default();
    options.durability = Durability::Never;
    let message = record(4 << 10);
    let len = record_len(&message) as u64;
    let records = RECOVERY_LOG_BYTES / len;
    // Criterion wants the throughput before the log exists: its size from the layout (each
    // segment a header and as many whole records as fit), checked against the files below.
    let per_segment = (options.segment_bytes - SEGMENT_HEADER_LEN as u64) / len;
    let expected_bytes = records * len + records.div_ceil(per_segment) * SEGMENT_HEADER_LEN as u64;
    group.throughput(Throughput::Bytes(expected_bytes));
    let log = OnceCell::new();
    let log = || {
        log.get_or_init(|| {
            let built = RecoveryLog::build(&options, &message, records);
            if built.bytes != expected_bytes {
                eprintln!(
                    "persist/recovery: the log is {} bytes, not the {expected_bytes} its \
                     throughput assumes",
                    built.bytes
                );
            }
            built
        })
    };

    group.bench_function("pontoon-open", |b| {
        let built = log();
        b.iter(|| {
            // The log holds the directory's lock: dropped each iteration.
            let (opened, recovery) = Log::open(built.scratch.path(), options.clone()).unwrap();
            assert_eq!(
                (recovery.records, recovery.bytes),
                (built.records, built.bytes)
            );
            drop(opened);
        })
    });
    let mut buf = Vec::new();
    group.bench_function("raw-read", |b| {
        let built = log();
        b.iter(|| {
            for path in &built.segments {
                buf.clear();
                File::open(path).unwrap().read_to_end(&mut buf).unwrap();
                black_box(&buf);
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = pontoon_benches::criterion();
    targets = always, group_commit, pipelined, recovery, pipelined_recorded
}
criterion_main!(benches);
