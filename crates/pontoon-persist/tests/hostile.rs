//! What a hostile or unlucky directory does: impossible or stray file names, files that are not
//! regular files, a damaged tail crafted to make recovery slow. Each is refused with a typed
//! error, ignored as documented, or recovered in work linear in the bytes read; never a panic,
//! a hang, or a sequence number that wraps.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use pontoon_persist::format::{SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEGMENT_VERSION};
use pontoon_persist::{
    AppendError, Durability, Log, LogOptions, OpenError, load_snapshot, write_snapshot,
};
use pontoon_wire::{Header, Limits, Message};

#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::at(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("hostile-{test}-{}", std::process::id())),
    )
}

fn options() -> LogOptions {
    let mut options = LogOptions::default();
    options.durability = Durability::Never;
    options
}

fn message(i: u64) -> Message {
    Message::new(Header::from_serde(&("event", i)).unwrap(), vec![])
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

/// A segment file holding only its header, starting at `first_seq`.
fn empty_segment(dir: &Path, first_seq: u64) -> PathBuf {
    let mut bytes = SEGMENT_MAGIC.to_vec();
    bytes.push(SEGMENT_VERSION);
    bytes.extend_from_slice(&first_seq.to_le_bytes());
    bytes.resize(SEGMENT_HEADER_LEN, 0);
    let path = dir.join(segment_name(first_seq));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_segment_named_zero_is_refused() {
    let dir = scratch("zero");
    let path = empty_segment(&dir, 0);
    match Log::open(&dir, options()) {
        Err(OpenError::Corrupt { file, offset, .. }) => assert_eq!((file, offset), (path, 0)),
        other => panic!("opened a log whose segment starts at record 0: {other:?}"),
    }
}

#[test]
fn a_segment_named_the_largest_sequence_number_is_refused() {
    let dir = scratch("max");
    let path = empty_segment(&dir, u64::MAX);
    match Log::open(&dir, options()) {
        Err(OpenError::Corrupt { file, offset, .. }) => assert_eq!((file, offset), (path, 0)),
        other => panic!("opened a log whose next record would be u64::MAX: {other:?}"),
    }
}

#[test]
fn appending_past_the_last_sequence_number_is_refused_not_wrapped() {
    let dir = scratch("exhausted");
    empty_segment(&dir, u64::MAX - 1);
    {
        let (log, _) = Log::open(&dir, options()).unwrap();
        assert_eq!(log.append(0, &message(1)).unwrap(), u64::MAX - 1);
        assert!(matches!(
            log.append(0, &message(2)),
            Err(AppendError::SequenceExhausted { .. })
        ));
        log.sync().unwrap();
    }
    // The record that fitted reads back, and the log still refuses the next one.
    let (log, recovery) = Log::open(&dir, options()).unwrap();
    assert_eq!(recovery.records, 1);
    assert_eq!(log.read_all().unwrap()[0].seq, u64::MAX - 1);
    assert!(matches!(
        log.submit(0, &message(2)),
        Err(AppendError::SequenceExhausted { .. })
    ));
}

#[test]
fn stray_files_with_names_like_segments_are_ignored() {
    let dir = scratch("stray");
    {
        let (log, _) = Log::open(&dir, options()).unwrap();
        for i in 1..=3 {
            log.append(0, &message(i)).unwrap();
        }
        log.sync().unwrap();
    }
    let segment = dir.join(segment_name(1));
    let strays = [
        "1.log",
        "+0000000000000000001.log",
        "0000000000000000001.log",
        "000000000000000000001.log",
        "00000000000000000001.log.bak",
        "0000000000000000000a.log",
    ];
    for stray in strays {
        std::fs::copy(&segment, dir.join(stray)).unwrap();
    }
    let (log, recovery) = Log::open(&dir, options()).unwrap();
    assert_eq!(recovery.records, 3);
    assert_eq!(log.read_all().unwrap().len(), 3);
    drop(log);
    for stray in strays {
        assert_eq!(
            std::fs::read(dir.join(stray)).unwrap(),
            std::fs::read(&segment).unwrap(),
            "{stray} was touched"
        );
    }
}

#[test]
fn a_directory_named_like_a_segment_is_refused() {
    let dir = scratch("dir-segment");
    Log::open(&dir, options()).unwrap();
    let path = dir.join(segment_name(5));
    std::fs::create_dir(&path).unwrap();
    match Log::open(&dir, options()) {
        Err(OpenError::NotAFile { path: found }) => assert_eq!(found, path),
        other => panic!("a directory named like a segment gave {other:?}"),
    }
}

#[test]
fn a_fifo_named_like_a_segment_is_refused_without_blocking() {
    let dir = scratch("fifo");
    Log::open(&dir, options()).unwrap();
    let path = dir.join(segment_name(5));
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let (tx, rx) = mpsc::channel();
    let for_thread = dir.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(Log::open(&for_thread, options()).map(|_| ()));
    });
    // Not a time limit on the open: a guard so that a hang fails the test instead of stalling it.
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Err(OpenError::NotAFile { path: found })) => assert_eq!(found, path),
        Ok(other) => panic!("a FIFO named like a segment gave {other:?}"),
        Err(_) => panic!("opening a log with a FIFO named like a segment hangs"),
    }
}

#[test]
fn a_directory_named_like_a_snapshot_is_skipped_and_stray_names_ignored() {
    let dir = scratch("dir-snapshot");
    let message = Message::new(Header::from_serde(&"state").unwrap(), vec![]);
    write_snapshot(&dir, 5, &message).unwrap();
    let newer = dir.join(pontoon_persist::snapshot_file_name(10));
    std::fs::create_dir(&newer).unwrap();
    std::fs::write(dir.join("snapshot-20.snap"), b"not a snapshot").unwrap();
    std::fs::write(dir.join("snapshot-+0000000000000000030.snap"), b"no").unwrap();
    let loaded = load_snapshot(&dir, &Limits::default()).unwrap();
    assert_eq!(loaded.snapshot.unwrap().last_seq, 5);
    assert_eq!(loaded.damaged.len(), 1);
    assert_eq!(loaded.damaged[0].path, newer);
}

/// Three good records, then a tail of (length, 0) pairs: every 16th offset looks like a record
/// header claiming `claim` bytes, which a scan that checksums each claim pays for again and
/// again.
fn crafted_tail(dir: &Path, tail_bytes: usize, claim: u64) -> PathBuf {
    {
        let (log, _) = Log::open(dir, options()).unwrap();
        for i in 1..=3 {
            log.append(0, &message(i)).unwrap();
        }
        log.sync().unwrap();
    }
    let path = dir.join(segment_name(1));
    let mut bytes = std::fs::read(&path).unwrap();
    while bytes.len() < tail_bytes {
        bytes.extend_from_slice(&claim.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
    }
    std::fs::write(&path, &bytes).unwrap();
    path
}

#[test]
fn recovering_a_crafted_damaged_tail_takes_work_linear_in_its_size() {
    let dir = scratch("crafted");
    let path = crafted_tail(&dir, 1 << 20, 256 << 10);
    let len = std::fs::metadata(&path).unwrap().len();
    let (log, recovery) = Log::open(&dir, options()).unwrap();
    assert_eq!(recovery.records, 3);
    assert!(recovery.cut.is_some());
    assert!(
        recovery.checksummed_bytes <= 300 * len,
        "{} bytes checksummed to recover {len}",
        recovery.checksummed_bytes
    );
    drop(log);
    // With salvage the same: the damaged stretch is skipped in one pass.
    let dir = scratch("crafted-salvage");
    crafted_tail(&dir, 1 << 20, 256 << 10);
    let mut salvage = options();
    salvage.salvage = true;
    let (_log, recovery) = Log::open(&dir, salvage).unwrap();
    assert_eq!(recovery.records, 3);
    assert!(recovery.checksummed_bytes <= 300 * len);
}

#[test]
fn reading_back_a_salvaged_log_gives_exactly_the_records_recovery_kept() {
    let dir = scratch("salvage-stale");
    let segment = dir.join(segment_name(1));
    let mut ends = Vec::new();
    {
        let (log, _) = Log::open(&dir, options()).unwrap();
        for i in 1..=4 {
            log.append(0, &message(i)).unwrap();
            log.sync().unwrap();
            ends.push(std::fs::metadata(&segment).unwrap().len() as usize);
        }
    }
    // A stale copy of record 1 (a valid checksum, the wrong place) between records 2 and 3.
    let bytes = std::fs::read(&segment).unwrap();
    let mut spliced = bytes[..ends[1]].to_vec();
    spliced.extend_from_slice(&bytes[SEGMENT_HEADER_LEN..ends[0]]);
    spliced.extend_from_slice(&bytes[ends[1]..]);
    std::fs::write(&segment, &spliced).unwrap();
    let mut salvage = options();
    salvage.salvage = true;
    let (log, recovery) = Log::open(&dir, salvage).unwrap();
    assert_eq!((recovery.records, recovery.skipped.len()), (4, 1));
    let seqs: Vec<u64> = log.read_all().unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

/// Found by fuzzing: with salvage, a damaged stretch followed by a record numbered u64::MAX
/// made the log's next sequence number u64::MAX with no record read back (and wrapped before
/// MAX_SEQ existed). Salvage never jumps to a record that cannot be valid.
#[test]
fn salvage_never_jumps_to_a_record_numbered_above_max_seq() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds/persist_recover/salvage-finds-a-record-numbered-u64-max");
    let data = std::fs::read(seed).unwrap();
    let dir = scratch("salvage-max");
    std::fs::write(dir.join(segment_name(1)), &data[1..]).unwrap();
    let mut salvage = options();
    salvage.salvage = true;
    salvage.max_record_bytes = 1 << 20;
    let (log, recovery) = Log::open(&dir, salvage).unwrap();
    let read: Vec<u64> = log.records(0).unwrap().map(|r| r.unwrap().seq).collect();
    assert_eq!(read.len() as u64, recovery.records);
    assert_eq!(log.next_seq(), read.last().map_or(1, |last| last + 1));
}
