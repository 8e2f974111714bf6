//! Fuzz target: pontoon-persist's record files, read back from arbitrary bytes (a record file
//! as a map of it would hold them) at arbitrary offsets: anything may be refused with an error,
//! nothing may panic, and every record that reads back lies inside the file, starts at its
//! offset and has its next record after it; the same bytes read as one record alone
//! (`lone_record`, what a range read returns) are refused or read as exactly that record.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pontoon_persist::RecordFile;
use pontoon_wire::Limits;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes are an offset to read a record at as well; the rest is the file.
    let Some((offset, content)) = data.split_first_chunk::<8>() else {
        return;
    };
    // The same bytes as one record alone, as a range read of it returns them.
    if let Ok(record) =
        RecordFile::lone_record("fuzz.rec", 64, Bytes::copy_from_slice(content), &Limits::DEFAULT)
    {
        assert_eq!(record.next, 64 + content.len() as u64);
    }
    let Ok(file) = RecordFile::from_bytes("fuzz.rec", Bytes::copy_from_slice(content)) else {
        return;
    };
    let limits = Limits::DEFAULT;
    let mut count = 0u64;
    let mut previous = 0u64;
    for record in file.records(&limits) {
        let Ok(record) = record else { break };
        assert!(record.next > previous && record.next <= file.len());
        previous = record.next;
        count += 1;
    }
    assert!(count <= file.len() / 64);
    if let Ok(record) = file.record_at(u64::from_le_bytes(*offset), &limits) {
        assert!(record.next <= file.len());
        assert_eq!(record.next % 64, 0);
    }
});
