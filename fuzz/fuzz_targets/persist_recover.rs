//! Fuzz target: pontoon-persist's recovery and snapshot loading, on arbitrary segment and
//! snapshot files (the seeds hold both format versions, 2 and pontoon 0.1's 1; a writable open
//! of a version 1 segment goes on in a version 2 one). Anything may be refused with an error; whatever opens must read back as
//! valid records in sequence, `Log::inspect` must change nothing and find what the open then
//! finds, and a snapshot that loads must carry the sequence its name says.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pontoon_persist::{Durability, Log, LogOptions, load_snapshot, snapshot_file_name};
use pontoon_wire::{Header, Limits, Message};

/// One directory per fuzzing process, on tmpfs when there is one (syncs cost nothing there).
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let base = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        base.join(format!("pontoon-fuzz-persist-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, content)) = data.split_first() else {
        return;
    };
    let dir = dir();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();

    if mode & 4 != 0 {
        damaged_log(dir, mode, content);
    } else if mode & 1 == 0 {
        std::fs::write(dir.join(format!("{:020}.log", 1)), content).unwrap();
        let mut options = LogOptions::default();
        options.salvage = mode & 2 != 0;
        options.max_record_bytes = 1 << 20;
        // Inspecting first changes nothing, and finds what the open then finds and repairs.
        let inspected = Log::inspect(dir, &options).ok().map(|inspection| {
            let raw = inspection.raw_records(0).filter(Result::is_ok).count() as u64;
            assert!(raw <= inspection.recovery.records);
            (inspection.recovery, inspection.next_seq)
        });
        let before = std::fs::read(dir.join(format!("{:020}.log", 1))).unwrap();
        assert!(before == content, "inspect wrote");
        if let Ok((log, recovery)) = Log::open(dir, options) {
            if let Some((inspected, next_seq)) = &inspected {
                assert_eq!(*inspected, recovery, "inspect and open disagree");
                assert_eq!(*next_seq, log.next_seq());
            }
            let mut previous = 0;
            let mut count = 0;
            let mut read_all = true;
            for record in log.records(0).unwrap() {
                // A record whose payload is no message stops the reading there.
                let Ok(record) = record else {
                    read_all = false;
                    break;
                };
                assert!(record.seq > previous, "records out of order");
                if mode & 2 == 0 {
                    assert_eq!(record.seq, previous + 1, "a gap without salvage");
                }
                previous = record.seq;
                count += 1;
            }
            assert!(count <= recovery.records);
            if read_all {
                assert_eq!(log.next_seq(), previous.max(log.first_seq() - 1) + 1);
            }
        }
    } else {
        let seq = u64::from(mode >> 1);
        std::fs::write(dir.join(snapshot_file_name(seq)), content).unwrap();
        if let Ok(loaded) = load_snapshot(dir, &Limits::default()) {
            if let Some(snapshot) = loaded.snapshot {
                assert_eq!(snapshot.last_seq, seq);
            }
        }
    }
});

/// A valid log of records cut from `content` (the first 8 bytes say where to damage it: an
/// offset, a byte to xor there, and whether to cut the file there instead), damaged, then
/// recovered: what comes back without salvage must be exactly a prefix of what was appended.
fn damaged_log(dir: &PathBuf, mode: u8, content: &[u8]) {
    let Some((damage, body)) = content.split_first_chunk::<8>() else {
        return;
    };
    let mut options = LogOptions::default();
    options.durability = Durability::Never;
    let mut appended = Vec::new();
    {
        let (log, _) = Log::open(dir, options.clone()).unwrap();
        for (i, piece) in body.chunks(1 + usize::from(mode >> 3)).enumerate().take(64) {
            let frames = if i % 2 == 0 {
                vec![Bytes::copy_from_slice(piece)]
            } else {
                vec![]
            };
            let message = Message::new(Header::from_serde(&(i as u64, piece)).unwrap(), frames);
            log.append(i as u32, &message).unwrap();
            appended.push(message);
        }
    }
    let path = dir.join(format!("{:020}.log", 1));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = u32::from_le_bytes(damage[..4].try_into().unwrap()) as usize % (bytes.len() + 1);
    if damage[5] & 1 == 0 {
        bytes.truncate(at);
    } else if at < bytes.len() && damage[4] != 0 {
        bytes[at] ^= damage[4];
    }
    std::fs::write(&path, &bytes).unwrap();
    if let Ok((log, recovery)) = Log::open(dir, options) {
        let records: Vec<_> = log.read_all().unwrap();
        assert_eq!(records.len() as u64, recovery.records);
        assert!(records.len() <= appended.len());
        for (record, (seq, message)) in records.iter().zip((1u64..).zip(&appended)) {
            assert_eq!(record.seq, seq);
            assert!(
                record.message == *message,
                "record {seq} came back different"
            );
        }
    }
}
