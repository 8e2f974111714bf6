//! Logs and snapshots written by earlier releases still open and replay: the fixtures under
//! `tests/fixtures/v<N>/` were written once by the release whose format they show
//! (`examples/write_fixtures.rs`), committed, and are never rewritten.

use std::fs;
use std::path::{Path, PathBuf};

use pontoon_persist::{Durable, DurableOptions, Log, LogOptions};

#[path = "fixtures/content.rs"]
mod content;
#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn fixture(version: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(version)
        .join(name)
}

/// A copy of a fixture to open (opening may cut a torn tail and takes the lock: never on the
/// committed files). Each call makes its own: tests run in parallel threads of one process, and
/// two of them may copy the same fixture.
fn copy(version: &str, name: &str) -> Scratch {
    static COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let copy = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let from = fixture(version, name);
    let to = Scratch::at(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "fixture-{version}-{name}-{}-{copy}",
        std::process::id()
    )));
    for entry in fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

/// The segment files of a fixture, in order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    out.sort();
    out
}

/// Every segment and snapshot of the fixture says format version `version` in its header.
fn assert_format_version(dir: &Path, version: u8) {
    let mut files = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log" || e == "snap") {
            let bytes = fs::read(&path).unwrap();
            assert_eq!(bytes[..4], *b"\xF0FRY", "{}", path.display());
            assert_eq!(bytes[7], version, "{}", path.display());
            files += 1;
        }
    }
    assert!(files > 0, "no segment or snapshot in {}", dir.display());
}

fn check_records(log: &Log, records: u64) {
    let read = log.read_all().unwrap();
    assert_eq!(read.len() as u64, records);
    for (record, i) in read.iter().zip(1..) {
        assert_eq!((record.seq, record.kind), (i, content::kind(i)));
        assert_eq!(record.message, content::message(i), "record {i}");
    }
    assert_eq!(log.next_seq(), records + 1);
}

/// The format version a fixture directory's name says (`v1` -> 1).
fn version_of(version: &str) -> u8 {
    version.trim_start_matches('v').parse().unwrap()
}

/// Each committed fixture version: v1 from pontoon 0.1, v2 from the first build writing it.
const VERSIONS: [&str; 2] = ["v1", "v2"];

#[test]
fn logs_of_several_segments_open_and_replay() {
    for version in VERSIONS {
        assert_format_version(&fixture(version, "log-segments"), version_of(version));
        let dir = copy(version, "log-segments");
        let files = segments(&dir);
        assert!(files.len() > 5);
        for file in &files[..files.len() - 1] {
            assert!(fs::metadata(file).unwrap().len() <= content::SEGMENT_BYTES);
        }
        // Read-only first: every record, and nothing changed.
        let inspection = Log::inspect(&dir, &LogOptions::default()).unwrap();
        assert_eq!(inspection.recovery.records, content::RECORDS, "{version}");
        assert_eq!(inspection.records(1).count() as u64, content::RECORDS);
        drop(inspection);
        let (log, recovery) = Log::open(&dir, LogOptions::default()).unwrap();
        assert_eq!((recovery.records, recovery.cut), (content::RECORDS, None));
        check_records(&log, content::RECORDS);
        // And it goes on: a new record follows the old ones.
        assert_eq!(log.append(1, &content::message(41)).unwrap(), 41);
        drop(log);
        let (log, _) = Log::open(&dir, LogOptions::default()).unwrap();
        assert_eq!(log.read_all().unwrap()[40].message, content::message(41));
    }
}

/// The documented upgrade: a writable open of a version 1 log leaves its segments exactly as
/// they were and goes on in a new version 2 segment; version 1 segments are read until pruned.
#[test]
fn a_v1_log_opened_for_writing_goes_on_in_a_v2_segment() {
    let committed = fixture("v1", "log-segments");
    let dir = copy("v1", "log-segments");
    let old = segments(&dir);
    let (log, _) = Log::open(&dir, LogOptions::default()).unwrap();
    let new = dir.join(format!("{:020}.log", content::RECORDS + 1));
    assert_eq!(segments(&dir), [old.clone(), vec![new.clone()]].concat());
    assert_eq!(fs::read(&new).unwrap()[7], 2);
    assert_eq!(log.append(1, &content::message(41)).unwrap(), 41);
    for file in &old {
        let name = file.file_name().unwrap();
        assert_eq!(
            fs::read(file).unwrap(),
            fs::read(committed.join(name)).unwrap()
        );
    }
    // Pruning removes version 1 segments like any others.
    let removed = log.prune_before(content::RECORDS + 1).unwrap();
    assert_eq!(removed, old);
    drop(log);
    assert_format_version(&dir, 2);
    let (log, recovery) = Log::open(&dir, LogOptions::default()).unwrap();
    assert_eq!(recovery.records, 1);
    assert_eq!(log.read_all().unwrap()[0].message, content::message(41));
}

/// A version 1 log whose last segment holds only its header (the writer rotated and stopped
/// before a record): the upgrade rewrites that empty segment as version 2 instead of adding one.
#[test]
fn a_v1_log_whose_last_segment_is_empty_goes_on_in_it_as_v2() {
    let dir = copy("v1", "log-segments");
    let empty = dir.join(format!("{:020}.log", content::RECORDS + 1));
    let mut header = b"\xF0FRYLOG\x01".to_vec();
    header.extend_from_slice(&(content::RECORDS + 1).to_le_bytes());
    fs::write(&empty, &header).unwrap();
    let before = segments(&dir);
    let (log, recovery) = Log::open(&dir, LogOptions::default()).unwrap();
    assert_eq!((recovery.records, recovery.cut), (content::RECORDS, None));
    assert_eq!(segments(&dir), before, "no segment added");
    let rewritten = fs::read(&empty).unwrap();
    assert_eq!(rewritten.len(), 64);
    assert_eq!(rewritten[7], 2);
    assert_eq!(rewritten[8..16], (content::RECORDS + 1).to_le_bytes());
    assert_eq!(log.append(1, &content::message(41)).unwrap(), 41);
    drop(log);
    let (log, _) = Log::open(&dir, LogOptions::default()).unwrap();
    let read = log.read_all().unwrap();
    assert_eq!(read.len() as u64, content::RECORDS + 1);
    assert_eq!(read[40].message, content::message(41));
}

#[test]
fn logs_with_a_torn_tail_open_and_cut_it() {
    for version in VERSIONS {
        let committed = fixture(version, "log-torn-tail");
        assert_format_version(&committed, version_of(version));
        let dir = copy(version, "log-torn-tail");
        let last = segments(&dir).pop().unwrap();
        let whole = fs::metadata(fixture(version, "log-segments").join(last.file_name().unwrap()))
            .unwrap()
            .len();
        let torn = fs::metadata(&last).unwrap().len();
        assert!(torn > whole);
        let (log, recovery) = Log::open(&dir, LogOptions::default()).unwrap();
        assert_eq!(recovery.records, content::RECORDS);
        let cut = recovery.cut.unwrap();
        assert_eq!(
            (cut.file, cut.offset, cut.bytes),
            (last.clone(), whole, torn - whole)
        );
        check_records(&log, content::RECORDS);
        assert_eq!(fs::metadata(&last).unwrap().len(), whole);
    }
}

fn open_ledger(dir: &Path) -> Durable<content::Ledger, content::Entry> {
    let mut options = DurableOptions::default();
    content::name_types(&mut options.registry);
    Durable::open(dir, content::Ledger::default, content::apply, options).unwrap()
}

#[test]
fn durable_states_with_snapshots_open_and_replay() {
    for version in VERSIONS {
        for name in ["durable-snapshots", "durable-pruned"] {
            assert_format_version(&fixture(version, name), version_of(version));
            let dir = copy(version, name);
            let mut ledger = open_ledger(&dir);
            assert_eq!(
                *ledger.state(),
                content::ledger_after(content::EVENTS),
                "{version} {name}"
            );
            let recovery = ledger.recovery();
            let snapshot = recovery.snapshots.snapshot.as_ref().unwrap();
            let newest = content::EVENTS / content::SNAPSHOT_EVERY * content::SNAPSHOT_EVERY;
            assert_eq!(snapshot.last_seq, newest, "{version} {name}");
            assert!(recovery.snapshots.damaged.is_empty(), "{version} {name}");
            assert_eq!(
                recovery.replayed,
                content::EVENTS - newest,
                "{version} {name}"
            );
            // The state goes on from there.
            ledger.apply(&content::entry(content::EVENTS + 1)).unwrap();
            drop(ledger);
            let ledger = open_ledger(&dir);
            assert_eq!(
                *ledger.state(),
                content::ledger_after(content::EVENTS + 1),
                "{version} {name}"
            );
        }
    }
}

/// Truncation and bit flips on an upgraded version 1 log: every cut of its new version 2
/// segment keeps exactly the whole records before the cut (the 40 version 1 records always),
/// and any flipped bit in a version 1 segment before it is an error naming that file, never a
/// wrong record.
#[test]
fn truncations_and_bit_flips_of_an_upgraded_v1_log() {
    let dir = copy("v1", "log-segments");
    let mut options = LogOptions::default();
    options.durability = pontoon_persist::Durability::Never;
    let mut ends = Vec::new();
    let new = dir.join(format!("{:020}.log", content::RECORDS + 1));
    {
        let (log, _) = Log::open(&dir, options.clone()).unwrap();
        for i in 41..=43 {
            log.append(content::kind(i), &content::message(i)).unwrap();
            log.sync().unwrap();
            ends.push(fs::metadata(&new).unwrap().len());
        }
    }
    let bytes = fs::read(&new).unwrap();
    for cut in 64..=bytes.len() {
        fs::write(&new, &bytes[..cut]).unwrap();
        let whole = ends.iter().filter(|&&end| end <= cut as u64).count() as u64;
        let (log, recovery) = Log::open(&dir, options.clone()).unwrap();
        assert_eq!(recovery.records, content::RECORDS + whole, "cut at {cut}");
        let read = log.read_all().unwrap();
        assert_eq!(read.len() as u64, content::RECORDS + whole, "cut at {cut}");
        for (record, i) in read.iter().zip(1..) {
            assert_eq!(
                record.message,
                content::message(i),
                "cut at {cut}: record {i}"
            );
        }
    }
    fs::write(&new, &bytes).unwrap();
    let old = segments(&dir);
    let v1_last = &old[old.len() - 2];
    let original = fs::read(v1_last).unwrap();
    for at in 0..original.len() {
        let mut damaged = original.clone();
        damaged[at] ^= 0x10;
        fs::write(v1_last, &damaged).unwrap();
        match Log::open(&dir, options.clone()) {
            Err(pontoon_persist::OpenError::Corrupt { file, .. }) => assert_eq!(&file, v1_last),
            other => panic!("a flip at {at} of {} gave {other:?}", v1_last.display()),
        }
    }
    fs::write(v1_last, &original).unwrap();
    let (log, recovery) = Log::open(&dir, options).unwrap();
    assert_eq!(recovery.records, content::RECORDS + 3);
    drop(log);
}

/// The version 2 record file fixture opens, carries its writer's tag, and every record reads
/// back at the offset its writer returned, as the content says, frames 64-byte aligned.
#[test]
#[cfg_attr(miri, ignore = "miri cannot map files")]
fn v2_record_file_opens_and_reads_back_at_its_offsets() {
    use pontoon_persist::{RecordFile, RecordFileError};
    let dir = fixture("v2", "record-file");
    let bytes = fs::read(dir.join("records.rec")).unwrap();
    assert_eq!(bytes[..8], *b"\xF0FRYREC\x02");
    let file = RecordFile::open(dir.join("records.rec")).unwrap();
    assert_eq!(file.tag(), content::RECORD_FILE_TAG);
    let offsets: Vec<u64> = fs::read_to_string(dir.join("offsets.txt"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(offsets.len() as u64, content::RECORDS);
    for (i, &offset) in (1..).zip(&offsets) {
        let record = file.record_at(offset, &Default::default()).unwrap();
        assert_eq!((record.kind, record.seq), (content::kind(i), i));
        assert_eq!(record.message, content::message(i), "record {i}");
        for frame in &record.message.frames {
            assert_eq!(frame.as_ptr() as usize % 64, 0);
        }
    }
    let all: Vec<_> = file.records(&Default::default()).collect();
    assert_eq!(all.len() as u64, content::RECORDS);
    // An offset between records is refused, not misread.
    assert!(matches!(
        file.record_at(offsets[1] + 64, &Default::default()),
        Err(RecordFileError::Corrupt { .. })
    ));
}
