//! Snapshots: a round trip; a damaged newest snapshot falls back to the previous one; leftover
//! `.tmp` files are ignored and removed; a crash between any two steps of a write leaves the old
//! snapshot or the new one, never a mix; pruning removes covered segments, never the last.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use pontoon_persist::{
    Log, LogOptions, encode_snapshot, load_snapshot, remove_snapshots_before, snapshot_file_name,
    write_snapshot,
};
use pontoon_wire::{Header, Limits, Message};

#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::at(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("snapshot-{test}-{}", std::process::id())),
    )
}

fn state(i: u64) -> Message {
    Message::new(
        Header::from_serde(&("state", i)).unwrap(),
        vec![Bytes::from(vec![i as u8; 100 + i as usize])],
    )
}

fn loaded(dir: &Path) -> Option<(u64, Message)> {
    load_snapshot(dir, &Limits::default())
        .unwrap()
        .snapshot
        .map(|s| (s.last_seq, s.message))
}

#[test]
fn a_snapshot_round_trips_and_the_newest_wins() {
    let dir = scratch("round-trip");
    assert_eq!(loaded(&dir), None);
    let path = write_snapshot(&dir, 5, &state(5)).unwrap();
    assert_eq!(path, dir.join("snapshot-00000000000000000005.snap"));
    assert_eq!(loaded(&dir), Some((5, state(5))));
    write_snapshot(&dir, 12, &state(12)).unwrap();
    assert_eq!(loaded(&dir), Some((12, state(12))));
    // No temporary file is left behind.
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".snap")), "{names:?}");
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_previous_one() {
    let dir = scratch("damaged");
    write_snapshot(&dir, 5, &state(5)).unwrap();
    let newest = write_snapshot(&dir, 9, &state(9)).unwrap();
    let good = fs::read(&newest).unwrap();
    // Every flipped bit anywhere, and every truncation, is caught.
    for at in (0..good.len()).step_by(3) {
        let mut bad = good.clone();
        bad[at] ^= 1 << (at % 8);
        fs::write(&newest, &bad).unwrap();
        let recovery = load_snapshot(&dir, &Limits::default()).unwrap();
        let snapshot = recovery.snapshot.unwrap();
        assert_eq!(
            (snapshot.last_seq, snapshot.message),
            (5, state(5)),
            "flip at {at}"
        );
        assert_eq!(recovery.damaged.len(), 1);
        assert_eq!(recovery.damaged[0].path, newest);
    }
    for cut in [0, 10, 31, 32, good.len() - 1] {
        fs::write(&newest, &good[..cut]).unwrap();
        assert_eq!(loaded(&dir), Some((5, state(5))), "cut at {cut}");
    }
    // A snapshot under another snapshot's name is damaged too.
    fs::write(&newest, encode_snapshot(8, &state(8)).unwrap()).unwrap();
    assert_eq!(loaded(&dir), Some((5, state(5))));
    // Restored, it is loaded again.
    fs::write(&newest, &good).unwrap();
    assert_eq!(loaded(&dir), Some((9, state(9))));
}

#[test]
fn a_leftover_tmp_is_ignored_and_removed() {
    let dir = scratch("tmp");
    write_snapshot(&dir, 3, &state(3)).unwrap();
    let tmp = dir.join("snapshot-00000000000000000007.tmp");
    fs::write(&tmp, encode_snapshot(7, &state(7)).unwrap()).unwrap();
    let recovery = load_snapshot(&dir, &Limits::default()).unwrap();
    assert_eq!(recovery.snapshot.unwrap().last_seq, 3);
    assert_eq!(recovery.removed_tmp, vec![tmp.clone()]);
    assert!(recovery.damaged.is_empty());
    assert!(!tmp.exists());
}

/// The steps of [`write_snapshot`], performed by hand up to step `k`, as a crash would leave
/// them.
fn write_until(dir: &Path, last_seq: u64, message: &Message, k: usize, torn: usize) {
    let bytes = encode_snapshot(last_seq, message).unwrap();
    let tmp = dir.join(format!("snapshot-{last_seq:020}.tmp"));
    let path = dir.join(snapshot_file_name(last_seq));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .unwrap();
    if k == 1 {
        // Written but not synced: any prefix may have reached the disk.
        file.write_all(&bytes[..torn.min(bytes.len())]).unwrap();
        return;
    }
    file.write_all(&bytes).unwrap();
    file.sync_all().unwrap();
    drop(file);
    if k == 2 {
        return; // synced, not renamed
    }
    fs::rename(&tmp, &path).unwrap();
    if k == 3 {
        return; // renamed, directory not synced
    }
    File::open(dir).unwrap().sync_all().unwrap();
}

#[test]
fn a_crash_between_any_two_steps_of_a_write_leaves_the_old_or_the_new_snapshot() {
    let new_len = encode_snapshot(20, &state(20)).unwrap().len();
    let mut cases = Vec::new();
    for torn in [0, 1, 16, 31, 32, 40, new_len - 1, new_len] {
        cases.push((1, torn));
    }
    cases.extend([(2, 0), (3, 0), (4, 0)]);
    for (k, torn) in cases {
        let dir = scratch(&format!("crash-{k}-{torn}"));
        write_snapshot(&dir, 10, &state(10)).unwrap();
        write_until(&dir, 20, &state(20), k, torn);
        let got = loaded(&dir).unwrap();
        if k <= 2 {
            assert_eq!(got, (10, state(10)), "step {k}, torn {torn}");
        } else {
            assert_eq!(got, (20, state(20)), "step {k}");
        }
        // Whatever was left, the next write and load work.
        write_snapshot(&dir, 30, &state(30)).unwrap();
        assert_eq!(loaded(&dir), Some((30, state(30))));
    }
}

fn segments(dir: &Path) -> Vec<u64> {
    let mut out: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn prune_before_removes_covered_segments_but_never_the_last_one() {
    let dir = scratch("prune");
    let mut options = LogOptions::default();
    options.segment_bytes = 300;
    let (log, _) = Log::open(&dir, options.clone()).unwrap();
    for i in 1..=20 {
        log.append(1, &state(i)).unwrap();
    }
    let before = segments(&dir);
    assert!(before.len() > 3, "{before:?}");
    assert_eq!(log.first_seq(), 1);

    write_snapshot(&dir, 3, &state(3)).unwrap();
    write_snapshot(&dir, 7, &state(7)).unwrap();
    let pruned = log.prune_before(8).unwrap();
    // The log knows no snapshots: removing them is the caller's.
    assert_eq!(segments(&dir).len(), before.len() - pruned.len());
    assert_eq!(
        remove_snapshots_before(&dir, 7).unwrap(),
        vec![dir.join(snapshot_file_name(3))]
    );
    let after = segments(&dir);
    // Every remaining segment but the first starts after 8; the first holds record 8.
    assert!(after[0] <= 8, "{after:?}");
    assert!(after.len() < 2 || after[1] > 8, "{after:?}");
    assert_eq!(pruned.len(), before.len() - after.len());
    // The open log reads what remains, and knows where it starts now.
    assert_eq!(log.first_seq(), after[0]);
    let records = log.read_all().unwrap();
    assert_eq!(records.first().unwrap().seq, after[0]);
    assert_eq!(records.last().unwrap().seq, 20);
    assert_eq!(log.records(15).unwrap().count(), 6);
    drop(log);
    // So does the log opened again.
    let (log, _) = Log::open(&dir, options.clone()).unwrap();
    assert_eq!(log.first_seq(), after[0]);
    assert_eq!(log.read_all().unwrap().first().unwrap().seq, after[0]);

    // Pruning past the end of the log never removes the last segment.
    log.prune_before(u64::MAX).unwrap();
    assert_eq!(segments(&dir), vec![*before.last().unwrap()]);
    drop(log);
    let (log, _) = Log::open(&dir, options).unwrap();
    assert_eq!(log.next_seq(), 21);
    assert_eq!(log.append(1, &state(21)).unwrap(), 21);
}

#[test]
fn a_snapshot_longer_than_the_limits_allow_is_damaged_and_not_read() {
    let dir = scratch("snapshot-too-large");
    std::fs::create_dir_all(&dir).unwrap();
    write_snapshot(&dir, 1, &state(1)).unwrap();
    write_snapshot(
        &dir,
        2,
        &Message::new(state(2).header, vec![Bytes::from(vec![9u8; 4096])]),
    )
    .unwrap();
    let mut limits = Limits::default();
    limits.max_message_bytes = 1024;
    let loaded = load_snapshot(&dir, &limits).unwrap();
    assert_eq!(loaded.snapshot.unwrap().last_seq, 1);
    assert_eq!(loaded.damaged.len(), 1);
    assert!(
        loaded.damaged[0]
            .reason
            .contains("more than the limits allow")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_snapshot_written_vectored_is_byte_for_byte_the_encoded_one_and_loads_back() {
    let dir = scratch("vectored");
    std::fs::create_dir_all(&dir).unwrap();
    let frames = vec![
        Bytes::from(vec![7u8; 100_000]),
        Bytes::from_static(b"small"),
        Bytes::new(),
    ];
    let message = Message::new(Header::from_serde(&("state", 3)).unwrap(), frames);
    let path = write_snapshot(&dir, 42, &message).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        encode_snapshot(42, &message).unwrap()
    );
    let loaded = load_snapshot(&dir, &Limits::default()).unwrap();
    assert_eq!(loaded.snapshot.unwrap().message, message);
}
