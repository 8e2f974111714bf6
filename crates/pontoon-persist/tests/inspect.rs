//! `Log::inspect` never writes: a directory's bytes and names are the same before and after,
//! a torn tail is reported as what the next writable open would cut, and a directory that holds
//! no log is refused without anything being created in it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use pontoon_persist::{Log, LogOptions, OpenError};

#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::at(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("inspect-{test}-{}", std::process::id())),
    )
}

/// A copy of a committed fixture.
fn copy_fixture(name: &str, test: &str) -> Scratch {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v1")
        .join(name);
    let to = scratch(test);
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

/// Every entry of `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn inspecting_a_torn_log_changes_no_byte_and_reports_the_cut_to_come() {
    let dir = copy_fixture("log-torn-tail", "torn");
    let before = contents(&dir);
    let inspection = Log::inspect(&dir, &LogOptions::default()).unwrap();
    assert_eq!((inspection.recovery.records, inspection.next_seq), (40, 41));
    let would = inspection.would_cut().cloned().unwrap();
    let seqs: Vec<u64> = inspection.records(1).map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
    assert_eq!(inspection.raw_records(38).count(), 3);
    drop(inspection);
    assert_eq!(contents(&dir), before, "inspect changed the directory");
    // The next writable open makes exactly the cut reported.
    let (_log, recovery) = Log::open(&dir, LogOptions::default()).unwrap();
    assert_eq!(recovery.cut.unwrap(), would);
}

#[test]
fn a_directory_without_a_log_is_refused_and_nothing_is_created() {
    let dir = scratch("empty");
    fs::write(dir.join("notes.txt"), b"not a log").unwrap();
    fs::write(dir.join("1.log"), b"not a segment name").unwrap();
    let before = contents(&dir);
    assert!(matches!(
        Log::inspect(&dir, &LogOptions::default()),
        Err(OpenError::NoLog { .. })
    ));
    assert_eq!(contents(&dir), before);
    assert!(matches!(
        Log::inspect(dir.join("notes.txt"), &LogOptions::default()),
        Err(OpenError::NoLog { .. })
    ));
    assert!(matches!(
        Log::inspect(dir.join("missing"), &LogOptions::default()),
        Err(OpenError::Io(_))
    ));
    assert!(!dir.join("missing").exists());
}

#[test]
fn a_log_open_for_writing_is_not_inspected_and_a_copy_without_lock_is() {
    let dir = copy_fixture("log-segments", "locked");
    let (log, _) = Log::open(&dir, LogOptions::default()).unwrap();
    assert!(matches!(
        Log::inspect(&dir, &LogOptions::default()),
        Err(OpenError::Locked { .. })
    ));
    drop(log);
    // While inspected, a writer cannot open it.
    let inspection = Log::inspect(&dir, &LogOptions::default()).unwrap();
    assert!(matches!(
        Log::open(&dir, LogOptions::default()),
        Err(OpenError::Locked { .. })
    ));
    drop(inspection);
    fs::remove_file(dir.join("LOCK")).unwrap();
    let inspection = Log::inspect(&dir, &LogOptions::default()).unwrap();
    assert_eq!(inspection.recovery.records, 40);
    assert!(!dir.join("LOCK").exists());
}

#[test]
fn a_log_whose_rotation_failed_on_a_full_disk_is_inspected_without_writing() {
    for left in [0usize, 7] {
        let dir = copy_fixture("log-segments", &format!("rotation-{left}"));
        // The next segment was created, but its header never (or only partly) reached the disk.
        let header = b"\xF0FRYLOG\x01\x29\0\0\0\0\0\0\0";
        fs::write(dir.join(format!("{:020}.log", 41)), &header[..left]).unwrap();
        let before = contents(&dir);
        let inspection = Log::inspect(&dir, &LogOptions::default()).unwrap();
        assert_eq!((inspection.recovery.records, inspection.next_seq), (40, 41));
        assert_eq!(inspection.records(1).count(), 40);
        assert_eq!(inspection.would_cut().is_some(), left > 0);
        drop(inspection);
        assert_eq!(contents(&dir), before);
    }
}
