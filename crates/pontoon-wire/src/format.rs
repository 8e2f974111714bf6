//! The byte layout's constants: magic numbers, field offsets and sizes (see `docs/wire-format.md`).
//!
//! Everything here is part of the wire format; changing a value is a breaking change.

use bytes::Bytes;

/// The first six bytes of every pontoon stream: `F0 46 45 52 52 59` (`\xF0FERRY`).
///
/// The leading `0xF0` is not ASCII, so a text protocol (HTTP, a Redis command, a shell) that lands
/// on a pontoon port is refused at its first byte. The letters are the project's name before it
/// was renamed to pontoon; they are kept because they are part of the format, and a peer or file
/// of the first release must still be recognised.
pub const MAGIC: [u8; 6] = *b"\xF0FERRY";

/// The wire-format version this crate writes and reads.
pub const VERSION: u16 = 1;

/// Length of the connection preamble: [`MAGIC`] then [`VERSION`] as a little-endian `u16`.
pub const PREAMBLE_LEN: usize = 8;

/// The two bytes that open every message: `F0 4D` (`\xF0M`).
pub const MESSAGE_MARKER: [u8; 2] = *b"\xF0M";

/// Length of the fixed message prefix that precedes the frame table.
pub const PREFIX_LEN: usize = 24;

/// Length of one frame-table entry.
pub const ENTRY_LEN: usize = 24;

/// Prefix flag: every frame carries a CRC32C and the head carries one too.
pub(crate) const FLAG_CHECKSUMS: u8 = 0b0000_0001;

/// The flag bits this version defines; any other bit set is an error.
pub(crate) const KNOWN_FLAGS: u8 = FLAG_CHECKSUMS;

/// The largest frame alignment a message may ask for, as a power of two (2^12 = 4096, one page).
pub const MAX_ALIGN_LOG2: u8 = 12;

/// Raw bytes per compression block: a compressed frame is a run of independently compressed blocks
/// of this many raw bytes each (the last one shorter), so no codec ever sees more than 1 MiB at
/// once and frames of any size compress.
pub const COMPRESSION_BLOCK_LEN: usize = 1 << 20;

/// Length of the little-endian `u32` that precedes each compressed block.
pub(crate) const BLOCK_PREFIX_LEN: usize = 4;

/// Zero bytes that padding chunks are sliced from, so padding never allocates.
pub(crate) static ZEROS: [u8; 1 << MAX_ALIGN_LOG2] = [0; 1 << MAX_ALIGN_LOG2];

/// The connection preamble a sender writes once, before its first message.
///
/// A [`Decoder`](crate::Decoder) created with [`Decoder::new`](crate::Decoder::new) expects it.
///
/// ```
/// let preamble = pontoon_wire::preamble();
/// assert_eq!(&preamble[..], b"\xF0FERRY\x01\x00");
/// ```
pub fn preamble() -> Bytes {
    static PREAMBLE: [u8; PREAMBLE_LEN] = {
        let v = VERSION.to_le_bytes();
        [
            MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], MAGIC[4], MAGIC[5], v[0], v[1],
        ]
    };
    Bytes::from_static(&PREAMBLE)
}

/// Rounds `pos` up to a multiple of `1 << align_log2`, or `None` on overflow.
pub(crate) fn align_up(pos: u64, align_log2: u8) -> Option<u64> {
    let mask = (1u64 << align_log2) - 1;
    pos.checked_add(mask).map(|p| p & !mask)
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_up_rounds_to_the_next_boundary() {
        assert_eq!(align_up(0, 6), Some(0));
        assert_eq!(align_up(1, 6), Some(64));
        assert_eq!(align_up(64, 6), Some(64));
        assert_eq!(align_up(65, 0), Some(65));
        assert_eq!(align_up(u64::MAX - 3, 6), None);
    }
}
