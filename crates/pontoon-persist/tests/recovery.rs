//! Recovery: every truncation and every flipped bit of a log gives exactly the records before
//! the damage (or an error naming where it is), never a wrong record; rotation, locking,
//! salvage.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use pontoon_persist::format::{RECORD_ALIGN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use pontoon_persist::{Durability, Log, LogOptions, OpenError};
use pontoon_wire::{Header, Message};

#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::unmade(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("persist-{test}-{}", std::process::id())),
    )
}

fn message(i: u64) -> Message {
    let frames = if i.is_multiple_of(2) {
        vec![Bytes::from(vec![i as u8; 40 + i as usize])]
    } else {
        vec![]
    };
    Message::new(Header::from_serde(&("event", i)).unwrap(), frames)
}

fn options(durability: Durability) -> LogOptions {
    let mut options = LogOptions::default();
    options.durability = durability;
    options
}

/// Writes `n` records and returns the segment's bytes and where each record ends.
fn write_log(dir: &Path, n: u64) -> (PathBuf, Vec<u8>, Vec<usize>) {
    let (log, _) = Log::open(dir, options(Durability::Never)).unwrap();
    let mut ends = Vec::new();
    let segment = dir.join(format!("{:020}.log", 1));
    for i in 1..=n {
        assert_eq!(log.append(i as u32 % 3, &message(i)).unwrap(), i);
        log.sync().unwrap();
        ends.push(std::fs::metadata(&segment).unwrap().len() as usize);
    }
    drop(log);
    let bytes = std::fs::read(&segment).unwrap();
    (segment, bytes, ends)
}

fn check_prefix(dir: &Path, whole: usize) {
    let (log, _) = Log::open(dir, options(Durability::Never)).unwrap();
    let records = log.read_all().unwrap();
    assert_eq!(records.len(), whole);
    for (i, record) in records.iter().enumerate() {
        let seq = i as u64 + 1;
        assert_eq!((record.seq, u64::from(record.kind)), (seq, seq % 3));
        assert_eq!(record.message, message(seq), "a wrong record at {seq}");
    }
    assert_eq!(log.next_seq(), whole as u64 + 1);
}

#[test]
fn records_survive_reopening_in_order() {
    let dir = scratch("reopen");
    for durability in [Durability::Always, Durability::Never] {
        let _ = std::fs::remove_dir_all(&dir);
        {
            let (log, recovery) = Log::open(&dir, options(durability)).unwrap();
            assert_eq!(recovery.records, 0);
            for i in 1..=20 {
                log.append(i as u32 % 3, &message(i)).unwrap();
            }
            log.sync().unwrap();
        }
        let (log, recovery) = Log::open(&dir, options(durability)).unwrap();
        assert_eq!((recovery.records, recovery.cut.clone()), (20, None));
        assert_eq!(log.append(0, &message(21)).unwrap(), 21);
        drop(log);
        check_prefix(&dir, 21);
    }
}

#[test]
fn every_truncation_keeps_exactly_the_whole_records_before_it() {
    let dir = scratch("truncate");
    let (segment, bytes, ends) = write_log(&dir, 6);
    const HEADER: usize = SEGMENT_HEADER_LEN;
    for cut in HEADER..=bytes.len() {
        std::fs::write(&segment, &bytes[..cut]).unwrap();
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        let (log, recovery) = Log::open(&dir, options(Durability::Never)).unwrap();
        assert_eq!(recovery.records as usize, whole, "cut at {cut}");
        assert_eq!(
            recovery.cut.is_some(),
            !ends.contains(&cut) && cut > HEADER,
            "cut at {cut}"
        );
        drop(log);
        check_prefix(&dir, whole);
        // The cut is durable: the file now ends at the last whole record.
        let end = if whole == 0 { HEADER } else { ends[whole - 1] };
        assert_eq!(std::fs::metadata(&segment).unwrap().len() as usize, end);
    }
}

#[test]
fn every_flipped_bit_gives_the_records_before_it_or_an_error_naming_it() {
    let dir = scratch("flip");
    let (segment, bytes, ends) = write_log(&dir, 4);
    for at in 0..bytes.len() {
        for bit in [0, 3, 7] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << bit;
            std::fs::write(&segment, &damaged).unwrap();
            let record = ends.iter().position(|&end| at < end).unwrap();
            let start = if record == 0 {
                SEGMENT_HEADER_LEN
            } else {
                ends[record - 1]
            };
            match Log::open(&dir, options(Durability::Never)) {
                Ok((log, recovery)) => {
                    assert_eq!(recovery.records as usize, record, "flip at {at}.{bit}");
                    drop(log);
                    check_prefix(&dir, record);
                }
                Err(OpenError::Corrupt { file, offset, .. }) => {
                    assert_eq!(file, segment);
                    assert!(
                        at < SEGMENT_HEADER_LEN || (offset as usize) == start,
                        "flip at {at}.{bit}: reported {offset}, record starts at {start}"
                    );
                }
                Err(other) => panic!("flip at {at}.{bit}: {other}"),
            }
        }
    }
}

#[test]
fn damage_before_valid_records_is_an_error_unless_salvaged() {
    let dir = scratch("salvage");
    let (segment, mut bytes, ends) = write_log(&dir, 5);
    bytes[ends[1] + 10] ^= 0xff; // inside record 3, with records 4 and 5 after it
    std::fs::write(&segment, &bytes).unwrap();
    match Log::open(&dir, options(Durability::Never)) {
        Err(OpenError::Corrupt { offset, .. }) => assert_eq!(offset as usize, ends[1]),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let mut salvage = options(Durability::Never);
    salvage.salvage = true;
    let (log, recovery) = Log::open(&dir, salvage).unwrap();
    assert_eq!(recovery.records, 4);
    assert_eq!(recovery.skipped.len(), 1);
    let seqs: Vec<u64> = log.read_all().unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 4, 5]);
}

#[test]
fn segments_rotate_and_damage_in_an_earlier_one_names_its_file() {
    let dir = scratch("rotate");
    let mut small = options(Durability::Always);
    small.segment_bytes = 300;
    {
        let (log, _) = Log::open(&dir, small.clone()).unwrap();
        for i in 1..=12 {
            log.append(0, &message(i)).unwrap();
        }
    }
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    let (log, recovery) = Log::open(&dir, small.clone()).unwrap();
    assert_eq!(recovery.records, 12);
    assert_eq!(
        log.read_all()
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    drop(log);
    // Cut the first segment short: that is not a torn tail, so it is an error naming the file.
    let first = std::fs::read(&segments[0]).unwrap();
    std::fs::write(&segments[0], &first[..first.len() - 5]).unwrap();
    match Log::open(&dir, small) {
        Err(OpenError::Corrupt { file, .. }) => assert_eq!(file, segments[0]),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn one_process_at_a_time() {
    let dir = scratch("lock");
    let (log, _) = Log::open(&dir, LogOptions::default()).unwrap();
    assert!(matches!(
        Log::open(&dir, LogOptions::default()),
        Err(OpenError::Locked { .. })
    ));
    drop(log);
    assert!(Log::open(&dir, LogOptions::default()).is_ok());
}

#[test]
fn a_last_segment_whose_header_never_became_durable_is_written_anew() {
    let dir = scratch("unborn");
    {
        let (log, _) = Log::open(&dir, options(Durability::Always)).unwrap();
        for i in 1..=6 {
            log.append(0, &message(i)).unwrap();
        }
    }
    // Power lost just after a rotation created the next segment, before its header was
    // durable: the file holds garbage.
    let unborn = dir.join(format!("{:020}.log", 7));
    std::fs::write(&unborn, [0xA5; 40]).unwrap();
    let (log, recovery) = Log::open(&dir, options(Durability::Always)).unwrap();
    let cut = recovery.cut.as_ref().expect("reported as a cut");
    assert_eq!((&cut.file, cut.offset, cut.bytes), (&unborn, 0, 40));
    assert_eq!(recovery.records, 6);
    assert_eq!(log.append(0, &message(7)).unwrap(), 7);
    assert_eq!(log.read_all().unwrap().len(), 7);
    drop(log);

    // A damaged header with a valid record after it is corruption, not a fresh segment.
    let mut damaged = std::fs::read(&unborn).unwrap();
    damaged[0] ^= 0xFF;
    std::fs::write(&unborn, &damaged).unwrap();
    match Log::open(&dir, options(Durability::Always)) {
        Err(OpenError::Corrupt { file, offset, .. }) => assert_eq!((file, offset), (unborn, 0)),
        other => panic!("expected corruption, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_segment_longer_than_the_options_allow_is_refused_before_it_is_read() {
    let dir = scratch("too-large");
    {
        let (log, _) = Log::open(&dir, options(Durability::Never)).unwrap();
        for i in 1..=40 {
            log.append(0, &message(i)).unwrap();
        }
        log.sync().unwrap();
    }
    let mut small = options(Durability::Never);
    small.segment_bytes = 1000;
    small.max_record_bytes = 1000;
    match Log::open(&dir, small) {
        Err(OpenError::SegmentTooLarge { len, limit, .. }) => {
            assert!(
                len > limit
                    && limit
                        == 1000
                            + 1000
                            + (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + RECORD_ALIGN - 1) as u64,
                "{len} {limit}"
            );
        }
        other => panic!("expected SegmentTooLarge, got {other:?}"),
    }
    // With the options it was written under, it opens.
    let (_, recovery) = Log::open(&dir, options(Durability::Never)).unwrap();
    assert_eq!(recovery.records, 40);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_of_a_mebibyte_and_more_checksummed_outside_the_lock_read_back() {
    // From 1 MiB on, a payload's checksum is computed before the lock and combined with the
    // header's; the bytes on disk must be the same as for the in-lock path.
    let dir = scratch("large-crc");
    let big = |i: u64| {
        Message::new(
            Header::from_serde(&("big", i)).unwrap(),
            vec![Bytes::from(vec![i as u8; (1 << 20) + i as usize * 4099])],
        )
    };
    for durability in [Durability::Always, Durability::GroupCommit] {
        let _ = std::fs::remove_dir_all(&dir);
        {
            let (log, _) = Log::open(&dir, options(durability)).unwrap();
            for i in 1..=3 {
                assert_eq!(log.append(0, &big(i)).unwrap(), i);
            }
        }
        let (log, recovery) = Log::open(&dir, options(durability)).unwrap();
        assert_eq!((recovery.records, recovery.cut.clone()), (3, None));
        for (record, i) in log.read_all().unwrap().iter().zip(1..) {
            assert!(
                record.message == big(i),
                "{durability:?}: record {i} differs"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records appended after an open to the segment recovery checked, then rotated away from, read
/// back with the rest (the segment's map from recovery ends before them).
#[test]
fn records_appended_after_open_to_a_recovered_segment_read_back_after_rotation() {
    let dir = scratch("append-after-open");
    let mut small = options(Durability::Never);
    small.segment_bytes = 2048;
    {
        let (log, _) = Log::open(&dir, small.clone()).unwrap();
        for i in 1..=3 {
            log.append(i as u32 % 3, &message(i)).unwrap();
        }
    }
    let (log, recovery) = Log::open(&dir, small.clone()).unwrap();
    assert_eq!(recovery.records, 3);
    for i in 4..=40 {
        log.append(i as u32 % 3, &message(i)).unwrap();
    }
    let segments = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "log")
        })
        .count();
    assert!(segments > 3, "{segments} segments: no rotation");
    let records = log.read_all().unwrap();
    assert_eq!(records.len(), 40);
    for (record, i) in records.iter().zip(1..) {
        assert_eq!((record.seq, &record.message), (i, &message(i)));
    }
    drop(log);
    check_prefix(&dir, 40);
}
