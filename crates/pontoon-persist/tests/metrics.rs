//! The metrics a log records, read back from a real recorder (metrics-util's
//! `DebuggingRecorder`) installed for this test binary: each counter moves by exactly what real
//! appends, syncs, recoveries and snapshots did on disk.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use pontoon_persist::{Durability, Log, LogOptions, metrics as m};
use pontoon_wire::{Header, Message};

#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::unmade(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("persist-metrics-{test}-{}", std::process::id())),
    )
}

/// What changed since the last snapshot (the debugging recorder's counters restart at 0 with
/// each snapshot), by metric name.
fn changes(snapshotter: &Snapshotter) -> HashMap<String, DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_string(), value))
        .collect()
}

fn counter(changes: &HashMap<String, DebugValue>, name: &str) -> u64 {
    match changes.get(name) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        Some(other) => panic!("{name} is not a counter: {other:?}"),
    }
}

fn samples(changes: &HashMap<String, DebugValue>, name: &str) -> Vec<f64> {
    match changes.get(name) {
        Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.into_inner()).collect(),
        None => Vec::new(),
        Some(other) => panic!("{name} is not a histogram: {other:?}"),
    }
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .map(|path| std::fs::metadata(path).unwrap().len())
        .sum()
}

fn message(i: usize) -> Message {
    let frame = Bytes::from(vec![i as u8; 100 + i * 37]);
    Message::new(Header::from_serde(&i).unwrap(), vec![frame])
}

/// One test, so nothing else in this binary records while it counts.
#[test]
fn log_metrics_move_by_what_was_done_on_disk() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("no other recorder in this test binary");
    m::describe();

    // Always: one fdatasync per append, each making one record durable.
    let dir = scratch("always");
    let mut options = LogOptions::default();
    options.durability = Durability::Always;
    let (log, _) = Log::open(&dir, options.clone()).unwrap();
    let empty = segment_bytes(&dir);
    let _ = changes(&snapshotter);
    for i in 0..20 {
        log.append(1, &message(i)).unwrap();
    }
    let seen = changes(&snapshotter);
    assert_eq!(counter(&seen, m::APPENDED_RECORDS), 20);
    assert_eq!(
        counter(&seen, m::APPENDED_BYTES),
        segment_bytes(&dir) - empty,
        "appended bytes are what the segment grew by"
    );
    assert_eq!(samples(&seen, m::FDATASYNC_SECONDS).len(), 20);
    assert_eq!(samples(&seen, m::SYNC_BATCH_RECORDS), vec![1.0; 20]);
    assert!(
        samples(&seen, m::FDATASYNC_SECONDS)
            .iter()
            .all(|s| *s >= 0.0)
    );
    drop(log);

    // Recovery counts every record it scanned and the bytes it checked.
    let (log, recovery) = Log::open(&dir, options).unwrap();
    let seen = changes(&snapshotter);
    assert_eq!(recovery.records, 20);
    assert_eq!(counter(&seen, m::RECOVERY_RECORDS), 20);
    assert_eq!(counter(&seen, m::RECOVERY_BYTES), recovery.bytes);
    assert_eq!(samples(&seen, m::RECOVERY_SECONDS).len(), 1);

    // A snapshot: counted once, with the size of its file.
    let path = pontoon_persist::write_snapshot(&dir, 20, &message(3)).unwrap();
    let seen = changes(&snapshotter);
    assert_eq!(counter(&seen, m::SNAPSHOTS_WRITTEN), 1);
    assert_eq!(
        counter(&seen, m::SNAPSHOT_BYTES),
        std::fs::metadata(&path).unwrap().len()
    );
    assert_eq!(samples(&seen, m::SNAPSHOT_SECONDS).len(), 1);
    drop(log);

    // Group commit from many threads: the batches of all syncs add up to every record.
    let dir = scratch("group");
    let mut options = LogOptions::default();
    options.durability = Durability::GroupCommit;
    let (log, _) = Log::open(&dir, options).unwrap();
    let empty = segment_bytes(&dir);
    let _ = changes(&snapshotter);
    std::thread::scope(|s| {
        for t in 0..8 {
            let log = &log;
            s.spawn(move || {
                for i in 0..50 {
                    log.append(t, &message(i)).unwrap();
                }
            });
        }
    });
    let stats = log.stats();
    drop(log);
    let seen = changes(&snapshotter);
    assert_eq!(counter(&seen, m::APPENDED_RECORDS), 400);
    assert_eq!(
        counter(&seen, m::APPENDED_BYTES),
        segment_bytes(&dir) - empty
    );
    let batches = samples(&seen, m::SYNC_BATCH_RECORDS);
    assert_eq!(batches.iter().sum::<f64>(), 400.0);
    assert_eq!(batches.len() as u64, stats.syncs);
    assert_eq!(
        samples(&seen, m::FDATASYNC_SECONDS).len() as u64,
        stats.syncs
    );
}
