//! Records and snapshots read back as views of their files' memory maps: an array logged is an
//! array read back without a copy, aligned, pointing into the map of its segment (as the
//! kernel's own list of this process's mappings, `/proc/self/maps`, shows); and reading back
//! reuses what recovery mapped and checked instead of reading the files again.
#![cfg(target_os = "linux")]

use std::ops::Range;
use std::path::Path;

use pontoon_array::Array;
use pontoon_family::Registry;
use pontoon_persist::{Durability, Log, LogOptions, load_snapshot, write_snapshot};
use pontoon_wire::{Header, Limits, Message};
use serde::{Deserialize, Serialize};

#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::at(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("persist-mapped-{test}-{}", std::process::id())),
    )
}

/// The address ranges at which this process maps `file`, from `/proc/self/maps`.
fn mappings_of(file: &Path) -> Vec<Range<usize>> {
    let file = file.canonicalize().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|line| {
            // start-end perms offset dev inode path
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let path = fields.nth(4)?.trim_start();
            (Path::new(path) == file).then(|| {
                let (start, end) = range.split_once('-').unwrap();
                usize::from_str_radix(start, 16).unwrap()..usize::from_str_radix(end, 16).unwrap()
            })
        })
        .collect()
}

/// A logged value holding an array.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Reading {
    sensor: String,
    samples: Array,
}

const SAMPLES: usize = 8 << 20; // 64 MiB of f64

fn reading() -> Reading {
    Reading {
        sensor: "probe-7".into(),
        samples: Array::build::<f64>(&[SAMPLES], |cells| {
            for (i, cell) in cells.iter_mut().enumerate() {
                *cell = i as f64 * 0.5;
            }
        })
        .unwrap(),
    }
}

/// `array`'s data lies inside one of the mappings of `file`, 64-byte aligned, and holds the
/// values logged.
fn assert_view_of(array: &Array, file: &Path) {
    let data = array.data();
    let start = data.as_ptr() as usize;
    let maps = mappings_of(file);
    assert!(
        maps.iter()
            .any(|map| map.contains(&start) && start + data.len() <= map.end),
        "the array's data at {start:#x} ({} bytes) is not in a mapping of {}: {maps:x?}",
        data.len(),
        file.display()
    );
    assert_eq!(start % 64, 0, "the array's data is not 64-byte aligned");
    let values = array.as_slice::<f64>().unwrap();
    assert_eq!(values.len(), SAMPLES);
    assert!(values.iter().enumerate().all(|(i, &v)| v == i as f64 * 0.5));
}

#[test]
fn a_logged_64_mib_array_reads_back_as_a_view_of_the_mapped_segment() {
    let dir = scratch("array");
    let registry = Registry::new();
    let mut options = LogOptions::default();
    options.durability = Durability::Never;
    let segment = dir.join(format!("{:020}.log", 1));
    {
        let (log, _) = Log::open(&dir, options.clone()).unwrap();
        log.append(1, &registry.serialize(&reading()).unwrap())
            .unwrap();
        log.sync().unwrap();
        // Read back from the log that wrote it: a map of the segment as it is now.
        let records = log.read_all().unwrap();
        let back: Reading = registry.deserialize(&records[0].message).unwrap();
        assert_view_of(&back.samples, &segment);
    }
    // Read back after reopening: the map recovery checked.
    let (log, recovery) = Log::open(&dir, options).unwrap();
    assert_eq!(recovery.records, 1);
    let records = log.read_all().unwrap();
    drop(log);
    let back: Reading = registry.deserialize(&records[0].message).unwrap();
    drop(records);
    // The array alone keeps the map alive (no heap copy of the segment exists to keep).
    assert_view_of(&back.samples, &segment);
    assert_eq!(back.sensor, "probe-7");
    drop(back);
    assert!(
        mappings_of(&segment).is_empty(),
        "a map outlived every view of it"
    );
}

#[test]
fn a_snapshot_loads_as_a_view_of_the_mapped_file() {
    let dir = scratch("snapshot");
    let registry = Registry::new();
    let path = write_snapshot(&dir, 9, &registry.serialize(&reading()).unwrap()).unwrap();
    let loaded = load_snapshot(&dir, &Limits::default()).unwrap();
    let snapshot = loaded.snapshot.unwrap();
    assert_eq!(snapshot.last_seq, 9);
    let back: Reading = registry.deserialize(&snapshot.message).unwrap();
    assert_view_of(&back.samples, &path);
}

/// Reading back after an open reads no file again: with every segment file removed once the log
/// is open, every record still comes back, from the maps recovery checked.
#[test]
fn reading_back_after_open_reuses_what_recovery_checked() {
    let dir = scratch("once");
    let mut options = LogOptions::default();
    options.durability = Durability::Never;
    options.segment_bytes = 4096;
    let message = |i: u64| {
        let frame = bytes::Bytes::from(vec![i as u8; 100 + i as usize * 7]);
        Message::new(Header::from_serde(&("event", i)).unwrap(), vec![frame])
    };
    {
        let (log, _) = Log::open(&dir, options.clone()).unwrap();
        for i in 1..=100 {
            log.append(0, &message(i)).unwrap();
        }
        log.sync().unwrap();
    }
    let (log, recovery) = Log::open(&dir, options).unwrap();
    assert_eq!(recovery.records, 100);
    let mut removed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            std::fs::remove_file(path).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 5, "{removed} segments");
    let records = log.read_all().unwrap();
    assert_eq!(records.len(), 100);
    for (record, i) in records.iter().zip(1..) {
        assert_eq!((record.seq, &record.message), (i, &message(i)));
    }
}
