//! Writes the log and snapshot fixtures that `tests/fixtures.rs` opens, with this build's format:
//! `cargo run -p pontoon-persist --example write_fixtures -- <dir>` writes `<dir>/log-segments`,
//! `log-torn-tail`, `durable-snapshots`, `durable-pruned` and `record-file` (each only if missing). The fixtures of a released format
//! are written once, by the build that wrote that format, and then committed and never rewritten
//! (`tests/fixtures/v1/` came from the 0.1 code, `v2/` from the first build writing format 2),
//! so that every later build is tested against what older builds really wrote.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use pontoon_persist::{Durability, Durable, DurableOptions, Log, LogOptions, RecordFileWriter};

#[path = "../tests/fixtures/content.rs"]
mod content;

fn log_options() -> LogOptions {
    let mut options = LogOptions::default();
    options.durability = Durability::Never;
    options.segment_bytes = content::SEGMENT_BYTES;
    options
}

fn write_log(dir: &Path) {
    let (log, _) = Log::open(dir, log_options()).unwrap();
    for i in 1..=content::RECORDS {
        assert_eq!(
            log.append(content::kind(i), &content::message(i)).unwrap(),
            i
        );
    }
    log.sync().unwrap();
}

/// The last segment file of the log in `dir`.
fn last_segment(dir: &Path) -> PathBuf {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    names.sort();
    names.pop().unwrap()
}

fn write_durable(dir: &Path, prune: bool) {
    let mut options = DurableOptions::default();
    options.log = log_options();
    options.log.segment_bytes = 256;
    options.snapshot_every = NonZeroU64::new(content::SNAPSHOT_EVERY);
    options.prune = prune;
    content::name_types(&mut options.registry);
    let mut ledger = Durable::open(dir, content::Ledger::default, content::apply, options).unwrap();
    for i in 1..=content::EVENTS {
        ledger.apply(&content::entry(i)).unwrap();
    }
    assert_eq!(*ledger.state(), content::ledger_after(content::EVENTS));
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: write_fixtures <dir>"),
    );
    // Each fixture is written only where it is missing: fixtures are never rewritten, and a
    // kind of file added later (the record file) joins the directory of its format version.
    let missing = |name: &str| !out.join(name).exists();
    if missing("log-segments") {
        write_log(&out.join("log-segments"));
    }
    if missing("log-torn-tail") {
        let torn = out.join("log-torn-tail");
        write_log(&torn);
        // A crash in the middle of writing one more record: its header and part of its payload.
        let segment = last_segment(&torn);
        let mut bytes = std::fs::read(&segment).unwrap();
        let whole = bytes.len();
        // Without rotation, so that the record goes into the same segment.
        let mut one_segment = log_options();
        one_segment.segment_bytes = 1 << 40;
        let (log, _) = Log::open(&torn, one_segment).unwrap();
        log.append(9, &content::message(1000)).unwrap();
        drop(log);
        let with_next = std::fs::read(&segment).unwrap();
        bytes.extend_from_slice(&with_next[whole..whole + (with_next.len() - whole) / 2]);
        std::fs::write(&segment, &bytes).unwrap();
    }
    if missing("durable-snapshots") {
        write_durable(&out.join("durable-snapshots"), false);
    }
    if missing("durable-pruned") {
        write_durable(&out.join("durable-pruned"), true);
    }
    if missing("record-file") {
        write_record_file(&out.join("record-file"));
    }
}

/// A record file of the content's records (kind and number as in the log), its offsets in
/// `offsets.txt` next to it, one per line, as its writer returned them.
fn write_record_file(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut writer =
        RecordFileWriter::create(dir.join("records.rec"), content::RECORD_FILE_TAG).unwrap();
    let mut offsets = String::new();
    for i in 1..=content::RECORDS {
        let at = writer
            .append(content::kind(i), i, &content::message(i))
            .unwrap();
        offsets.push_str(&format!("{}\n", at.offset));
    }
    writer.finish().unwrap();
    std::fs::write(dir.join("offsets.txt"), offsets).unwrap();
}
