//! The records `crash_writer` appends, made from an id alone, so that the crash tests
//! (`tests/crash.rs`, which include this file) can rebuild and compare each one.

use bytes::Bytes;
use pontoon_wire::{Header, Message};

/// Ids under `--policy group` start here.
pub(crate) const GROUP_IDS: u64 = 1 << 40;

/// The length of record `id`'s frame: 100..4096 bytes.
pub(crate) fn frame_len(id: u64) -> usize {
    100 + (id.wrapping_mul(2_654_435_761) % 3996) as usize
}

/// Record `id`'s frame: [`frame_len`]`(id)` bytes from an xorshift64 seeded with `id`.
pub(crate) fn frame(id: u64) -> Bytes {
    let mut state = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..frame_len(id))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The message record `id` holds.
pub(crate) fn message(id: u64) -> Message {
    let header = Header::from_serde(&("crash", id)).expect("a tuple serializes");
    Message::new(header, vec![frame(id)])
}
