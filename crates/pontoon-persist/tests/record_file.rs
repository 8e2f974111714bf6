//! Record files against hostile bytes: the fuzz target's seed corpus (truncated files, lengths
//! that overflow, bad checksums, wrong versions) read with the fuzz target's checks, on every
//! test run and not only under the fuzzer; and a write cut back after a failure.

use std::path::Path;

use bytes::Bytes;
use pontoon_persist::{RecordChunks, RecordFile, RecordFileError, RecordFileWriter};
use pontoon_wire::{Header, Limits, Message};

#[test]
#[cfg_attr(miri, ignore = "reads the seed corpus from disk")]
fn the_fuzz_seeds_are_refused_or_read_within_the_file() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/persist_record_file");
    let mut opened = 0;
    let mut read = 0;
    let mut total = 0;
    for entry in std::fs::read_dir(&seeds).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        total += 1;
        let (offset, content) = data.split_first_chunk::<8>().unwrap();
        if let Ok(record) = RecordFile::lone_record(
            "seed.rec",
            64,
            Bytes::copy_from_slice(content),
            &Limits::DEFAULT,
        ) {
            assert_eq!(record.next, 64 + content.len() as u64);
        }
        let Ok(file) = RecordFile::from_bytes("seed.rec", Bytes::copy_from_slice(content)) else {
            continue;
        };
        opened += 1;
        let mut previous = 0;
        for record in file.records(&Limits::DEFAULT) {
            let Ok(record) = record else { break };
            assert!(record.next > previous && record.next <= file.len());
            previous = record.next;
            read += 1;
        }
        if let Ok(record) = file.record_at(u64::from_le_bytes(*offset), &Limits::DEFAULT) {
            assert!(record.next <= file.len());
        }
    }
    assert!(
        total >= 10,
        "the seed corpus is missing: {}",
        seeds.display()
    );
    // The fixture copies open and their 40 records read; the damaged headers do not open.
    assert!(opened >= 5 && read >= 40, "{opened} opened, {read} read");
}

#[test]
#[cfg_attr(miri, ignore = "miri cannot map files")]
fn records_appended_after_a_map_need_a_new_map_and_old_views_stay_valid() {
    let dir =
        std::env::temp_dir().join(format!("pontoon-record-file-remap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r.rec");
    let mut writer = RecordFileWriter::create(&path, 1).unwrap();
    let message = |n: u8| Message::new(Header::empty(), vec![Bytes::from(vec![n; 5000])]);
    let first = writer.append(0, 1, &message(1)).unwrap();
    writer.flush().unwrap();
    let early = RecordFile::open(&path).unwrap();
    let view = early.record_at(first.offset, &Limits::DEFAULT).unwrap();
    let second = writer.append(0, 2, &message(2)).unwrap();
    writer.flush().unwrap();
    assert!(early.record_at(second.offset, &Limits::DEFAULT).is_err());
    let late = RecordFile::open(&path).unwrap();
    assert_eq!(
        late.record_at(second.offset, &Limits::DEFAULT)
            .unwrap()
            .message,
        message(2)
    );
    drop(writer);
    std::fs::remove_dir_all(&dir).unwrap();
    // The file is gone; the views of its map are not.
    assert_eq!(view.message, message(1));
}

/// A record file built in memory holds the very bytes a writer puts in a file (small records
/// and one past the size whose checksum is combined), and each record's bytes alone read back
/// as that record; a flipped byte, a short read and a read with more than the record are
/// refused, naming the offset.
#[test]
#[cfg_attr(miri, ignore = "writes files")]
fn record_chunks_match_the_writer_and_lone_records_read_back_checked() {
    let dir = std::env::temp_dir().join(format!("pontoon-record-chunks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let messages: Vec<Message> = [0usize, 1, 63, 64, 1000, 3 << 20]
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            Message::new(
                Header::from_serde(&i).unwrap(),
                vec![
                    Bytes::from(vec![i as u8 + 1; len]),
                    Bytes::from_static(b"tail"),
                ],
            )
        })
        .collect();
    let mut writer = RecordFileWriter::create(dir.join("w.rec"), 77).unwrap();
    let mut chunks = RecordChunks::new(77);
    let mut places = Vec::new();
    for (seq, message) in messages.iter().enumerate() {
        let written = writer.append(1, seq as u64, message).unwrap();
        let built = chunks.append(1, seq as u64, message).unwrap();
        assert_eq!(written, built);
        places.push(built);
    }
    assert_eq!(writer.finish().unwrap(), chunks.len());
    let built: Vec<u8> = chunks.into_chunks().concat();
    assert_eq!(built, std::fs::read(dir.join("w.rec")).unwrap());
    for (seq, (at, message)) in places.iter().zip(&messages).enumerate() {
        let range = at.offset as usize..(at.offset + at.len) as usize;
        let one = Bytes::copy_from_slice(&built[range.clone()]);
        let record = RecordFile::lone_record("w.rec", at.offset, one, &Limits::UNLIMITED).unwrap();
        assert_eq!((record.kind, record.seq), (1, seq as u64));
        assert_eq!(&record.message, message);
        assert_eq!(record.next, at.offset + at.len);
        let mut flipped = built[range.clone()].to_vec();
        let last = flipped.len() - 70;
        flipped[last] ^= 1;
        let short = Bytes::copy_from_slice(&built[range.start..range.end - 64]);
        let mut bad = vec![Bytes::from(flipped), short];
        // Reading past the record, where another one follows.
        if range.end < built.len() {
            bad.push(Bytes::copy_from_slice(&built[range.start..range.end + 64]));
        }
        for bad in bad {
            let err =
                RecordFile::lone_record("w.rec", at.offset, bad, &Limits::UNLIMITED).unwrap_err();
            assert!(
                matches!(err, RecordFileError::Corrupt { offset, .. } if offset == at.offset),
                "{err}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
