//! Group commit, pipelining and interval syncing: concurrent appenders share `fdatasync`s and
//! each append still returns only once its own record is durable; nothing submitted is lost,
//! and the file keeps sequence order whatever the mix of record sizes.

use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pontoon_persist::{Durability, Log, LogOptions};
use pontoon_wire::{Header, Message};

#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::unmade(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("persist-group-{test}-{}", std::process::id())),
    )
}

fn options(durability: Durability) -> LogOptions {
    let mut options = LogOptions::default();
    options.durability = durability;
    options
}

/// The record appender `thread` makes the `i`th time: its frame is large (past the in-memory
/// batching size) now and then, so batched and direct writes interleave.
fn message(thread: u64, i: u64) -> Message {
    let len = if (thread + i).is_multiple_of(37) {
        100 << 10
    } else {
        100
    };
    let frame = Bytes::from(vec![(thread * 31 + i) as u8; len]);
    Message::new(Header::from_serde(&(thread, i)).unwrap(), vec![frame])
}

/// Reopens `dir` and checks it holds records 1..=`n`, each the message `expected[seq]` says.
fn check(dir: &Path, expected: &[(u64, u64)]) {
    let (log, recovery) = Log::open(dir, LogOptions::default()).unwrap();
    assert_eq!(recovery.records, expected.len() as u64);
    for (record, seq) in log.records(1).unwrap().zip(1u64..) {
        let record = record.unwrap();
        assert_eq!(record.seq, seq);
        let (thread, i) = expected[seq as usize - 1];
        assert!(record.message == message(thread, i), "record {seq} differs");
        assert_eq!(u64::from(record.kind), thread);
    }
}

#[test]
fn concurrent_appenders_share_syncs_and_each_append_returns_durable() {
    const THREADS: u64 = 16;
    const EACH: u64 = 150;
    let dir = scratch("concurrent");
    let mut options = options(Durability::GroupCommit);
    options.segment_bytes = 1 << 20; // rotations under load, too
    let (log, _) = Log::open(&dir, options).unwrap();
    let start = Barrier::new(THREADS as usize);
    let appended: Vec<Vec<(u64, u64)>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (log, start) = (&log, &start);
                scope.spawn(move || {
                    start.wait();
                    (0..EACH)
                        .map(|i| {
                            let seq = log.append(thread as u32, &message(thread, i)).unwrap();
                            // Acknowledged means durable.
                            assert!(log.durable_seq() >= seq, "{seq} returned before durable");
                            (seq, i)
                        })
                        .collect()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let stats = log.stats();
    assert_eq!(stats.appends, THREADS * EACH);
    assert!(stats.syncs < stats.appends, "no sync was shared: {stats:?}");
    drop(log);

    let mut expected = vec![(u64::MAX, 0); (THREADS * EACH) as usize];
    for (thread, seqs) in appended.iter().enumerate() {
        // One thread's appends are in its order.
        assert!(seqs.windows(2).all(|w| w[0].0 < w[1].0));
        for &(seq, i) in seqs {
            let slot = &mut expected[seq as usize - 1];
            assert_eq!(slot.0, u64::MAX, "seq {seq} given twice");
            *slot = (thread as u64, i);
        }
    }
    check(&dir, &expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_pipelined_appender_gets_every_record_acknowledged_in_order() {
    let dir = scratch("pipelined");
    let (log, _) = Log::open(&dir, options(Durability::GroupCommit)).unwrap();
    let mut expected = Vec::new();
    let mut acknowledged = 0;
    for i in 0..5000 {
        let seq = log.submit(0, &message(0, i)).unwrap();
        expected.push((0, i));
        assert_eq!(seq, i + 1);
        // At most 256 in flight.
        if seq > 256 {
            log.wait_durable(seq - 256).unwrap();
            assert!(log.durable_seq() >= seq - 256);
        }
        let durable = log.durable_seq();
        assert!(durable >= acknowledged && durable <= seq);
        acknowledged = durable;
    }
    log.wait_durable(u64::MAX).unwrap(); // everything so far
    assert_eq!(log.durable_seq(), 5000);
    let stats = log.stats();
    assert!(stats.syncs < 5000 && stats.writes < 5000, "{stats:?}");
    drop(log);
    check(&dir, &expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_submitted_but_not_awaited_are_written_by_the_drop() {
    let dir = scratch("drop");
    let (log, _) = Log::open(&dir, options(Durability::GroupCommit)).unwrap();
    let expected: Vec<(u64, u64)> = (0..300).map(|i| (0, i)).collect();
    for &(thread, i) in &expected {
        log.submit(0, &message(thread, i)).unwrap();
    }
    drop(log);
    check(&dir, &expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reading_back_sees_records_still_waiting_in_memory() {
    let dir = scratch("read-pending");
    let (log, _) = Log::open(&dir, options(Durability::GroupCommit)).unwrap();
    for i in 0..50 {
        log.submit(0, &message(0, i)).unwrap();
    }
    assert_eq!(log.read_all().unwrap().len(), 50);
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn interval_acknowledges_on_write_and_syncs_in_the_background() {
    let dir = scratch("interval");
    let (log, _) = Log::open(
        &dir,
        options(Durability::Interval(Duration::from_millis(5))),
    )
    .unwrap();
    let expected: Vec<(u64, u64)> = (0..20).map(|i| (0, i)).collect();
    for &(thread, i) in &expected {
        log.append(0, &message(thread, i)).unwrap();
    }
    // No one asks for a sync: the log's thread makes everything durable on its own. (A
    // liveness check with a generous bound, not a timing assertion.)
    let deadline = Instant::now() + Duration::from_secs(60);
    while log.durable_seq() < 20 {
        assert!(
            Instant::now() < deadline,
            "nothing synced in 60 s: {:?}",
            log.stats()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // And an explicit wait syncs at once.
    let seq = log.append(0, &message(0, 20)).unwrap();
    log.wait_durable(seq).unwrap();
    assert!(log.durable_seq() >= seq);
    drop(log);
    let mut expected = expected;
    expected.push((0, 20));
    check(&dir, &expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn always_and_never_keep_their_meaning_through_the_shared_log() {
    let dir = scratch("always-never");
    {
        let (log, _) = Log::open(&dir, options(Durability::Always)).unwrap();
        for i in 0..10 {
            let seq = log.append(0, &message(0, i)).unwrap();
            assert_eq!(log.durable_seq(), seq);
        }
        assert_eq!(log.stats().syncs, 10);
    }
    {
        let (log, _) = Log::open(&dir, options(Durability::Never)).unwrap();
        // Opening synced what it recovered.
        assert_eq!(log.durable_seq(), 10);
        for i in 10..20 {
            log.append(0, &message(0, i)).unwrap();
        }
        assert_eq!((log.durable_seq(), log.stats().syncs), (10, 0));
        log.wait_durable(15).unwrap();
        assert_eq!(log.durable_seq(), 20);
    }
    check(&dir, &(0..20).map(|i| (0, i)).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn appenders_pipeliners_readers_and_syncs_mixed_never_lose_or_stall() {
    const APPENDERS: u64 = 24;
    const EACH: u64 = 200;
    let dir = scratch("mixed");
    let mut options = options(Durability::GroupCommit);
    options.segment_bytes = 256 << 10;
    let (log, _) = Log::open(&dir, options).unwrap();
    let appended: Vec<Vec<(u64, u64)>> = std::thread::scope(|scope| {
        let log = &log;
        // A pipelining thread: submits in bursts, waits for the middle of each burst.
        let pipeliner = scope.spawn(move || {
            let mut mine = Vec::new();
            for burst in 0..20u64 {
                let seqs: Vec<u64> = (0..25)
                    .map(|k| {
                        let i = burst * 25 + k;
                        let seq = log
                            .submit(APPENDERS as u32, &message(APPENDERS, i))
                            .unwrap();
                        mine.push((seq, i));
                        seq
                    })
                    .collect();
                log.wait_durable(seqs[12]).unwrap();
                assert!(log.durable_seq() >= seqs[12]);
            }
            mine
        });
        // A reader and an explicit syncer, while the appends go on.
        let reader = scope.spawn(move || {
            for _ in 0..20 {
                let seen = log.records(1).unwrap().count() as u64;
                assert!(seen < log.next_seq());
                log.sync().unwrap();
            }
        });
        let appenders: Vec<_> = (0..APPENDERS)
            .map(|thread| {
                scope.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let seq = log.append(thread as u32, &message(thread, i)).unwrap();
                            assert!(log.durable_seq() >= seq);
                            (seq, i)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        reader.join().unwrap();
        let mut all: Vec<Vec<(u64, u64)>> =
            appenders.into_iter().map(|t| t.join().unwrap()).collect();
        all.push(pipeliner.join().unwrap());
        all
    });
    drop(log);
    let total: usize = appended.iter().map(Vec::len).sum();
    let mut expected = vec![(u64::MAX, 0); total];
    for (thread, seqs) in appended.iter().enumerate() {
        for &(seq, i) in seqs {
            expected[seq as usize - 1] = (thread as u64, i);
        }
    }
    assert!(expected.iter().all(|&(thread, _)| thread != u64::MAX));
    check(&dir, &expected);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Dropping a group-commit log never hangs: the drop's wake-up can come just as the sync
/// thread goes idle, and must not be lost.
#[test]
fn dropping_a_group_commit_log_never_hangs() {
    let dir = scratch("drop-race");
    let (done, finished) = std::sync::mpsc::channel();
    let for_thread = dir.to_path_buf();
    std::thread::spawn(move || {
        for i in 0..300 {
            let (log, _) = Log::open(&for_thread, options(Durability::GroupCommit)).unwrap();
            let seq = log.submit(0, &message(0, i)).unwrap();
            log.wait_durable(seq).unwrap();
            drop(log);
        }
        let _ = done.send(());
    });
    // A guard against a hang, not a time limit on the drops.
    assert!(
        finished.recv_timeout(Duration::from_secs(120)).is_ok(),
        "a Log::drop hangs: the sync thread missed the wake-up"
    );
}
