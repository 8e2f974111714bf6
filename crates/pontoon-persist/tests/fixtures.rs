//! Logs and snapshots written by earlier releases still open and replay: the fixtures under
//! `tests/fixtures/v<N>/` were written once by the release whose format they show
//! (`examples/write_fixtures.rs`), committed, and are never rewritten.

use std::fs;
use std::path::{Path, PathBuf};

use pontoon_persist::{Durable, DurableOptions, Log, LogOptions};

#[path = "fixtures/content.rs"]
mod content;

fn fixture(version: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(version)
        .join(name)
}

/// A copy of a fixture to open (opening may cut a torn tail and takes the lock: never on the
/// committed files).
fn copy(version: &str, name: &str) -> PathBuf {
    let from = fixture(version, name);
    let to = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fixture-{version}-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&to);
    fs::create_dir_all(&to).unwrap();
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

#[test]
fn v1_log_of_several_segments_opens_and_replays() {
    assert_format_version(&fixture("v1", "log-segments"), 1);
    let dir = copy("v1", "log-segments");
    let files = segments(&dir);
    assert!(files.len() > 5);
    for file in &files[..files.len() - 1] {
        assert!(fs::metadata(file).unwrap().len() <= content::SEGMENT_BYTES);
    }
    let (log, recovery) = Log::open(&dir, LogOptions::default()).unwrap();
    assert_eq!((recovery.records, recovery.cut), (content::RECORDS, None));
    check_records(&log, content::RECORDS);
    // And it goes on: a new record follows the old ones.
    assert_eq!(log.append(1, &content::message(41)).unwrap(), 41);
    drop(log);
    let (log, _) = Log::open(&dir, LogOptions::default()).unwrap();
    assert_eq!(log.read_all().unwrap()[40].message, content::message(41));
}

#[test]
fn v1_log_with_a_torn_tail_opens_and_cuts_it() {
    let committed = fixture("v1", "log-torn-tail");
    assert_format_version(&committed, 1);
    let dir = copy("v1", "log-torn-tail");
    let last = segments(&dir).pop().unwrap();
    let whole = fs::metadata(fixture("v1", "log-segments").join(last.file_name().unwrap()))
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

fn open_ledger(dir: &Path) -> Durable<content::Ledger, content::Entry> {
    let mut options = DurableOptions::default();
    content::name_types(&mut options.registry);
    Durable::open(dir, content::Ledger::default, content::apply, options).unwrap()
}

#[test]
fn v1_durable_state_with_snapshots_opens_and_replays() {
    for name in ["durable-snapshots", "durable-pruned"] {
        assert_format_version(&fixture("v1", name), 1);
        let dir = copy("v1", name);
        let mut ledger = open_ledger(&dir);
        assert_eq!(
            *ledger.state(),
            content::ledger_after(content::EVENTS),
            "{name}"
        );
        let recovery = ledger.recovery();
        let snapshot = recovery.snapshots.snapshot.as_ref().unwrap();
        let newest = content::EVENTS / content::SNAPSHOT_EVERY * content::SNAPSHOT_EVERY;
        assert_eq!(snapshot.last_seq, newest, "{name}");
        assert!(recovery.snapshots.damaged.is_empty(), "{name}");
        assert_eq!(recovery.replayed, content::EVENTS - newest, "{name}");
        // The state goes on from there.
        ledger.apply(&content::entry(content::EVENTS + 1)).unwrap();
        drop(ledger);
        let ledger = open_ledger(&dir);
        assert_eq!(
            *ledger.state(),
            content::ledger_after(content::EVENTS + 1),
            "{name}"
        );
    }
}
