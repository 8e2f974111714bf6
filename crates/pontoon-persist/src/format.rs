//! The byte layout of segment files and records (see `docs/persist-format.md`).

/// The first seven bytes of every segment file: `F0 46 52 59 4C 4F 47` (`\xF0FRYLOG`).
pub const SEGMENT_MAGIC: [u8; 7] = *b"\xF0FRYLOG";

/// The segment format version this crate writes and reads.
pub const SEGMENT_VERSION: u8 = 1;

/// Length of a segment's header: magic, version, and the sequence number of its first record.
pub const SEGMENT_HEADER_LEN: usize = 16;

/// Length of a record's header: CRC32C, kind, sequence number, payload length, reserved.
pub const RECORD_HEADER_LEN: usize = 32;

/// The last sequence number a record can have: one less than `u64::MAX`, so that the sequence
/// number after any record (the log's `next_seq`) always fits.
pub const MAX_SEQ: u64 = u64::MAX - 1;

/// A segment's header bytes.
pub(crate) fn segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0u8; SEGMENT_HEADER_LEN];
    out[..7].copy_from_slice(&SEGMENT_MAGIC);
    out[7] = SEGMENT_VERSION;
    out[8..].copy_from_slice(&first_seq.to_le_bytes());
    out
}

/// The CRC32C of a payload given in pieces.
pub(crate) fn payload_crc(payload: &[&[u8]]) -> u32 {
    payload
        .iter()
        .fold(0, |crc, piece| crc32c::crc32c_append(crc, piece))
}

/// How a record's payload enters its checksum.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Payload<'a> {
    /// The payload itself, checksummed after the header: best for small payloads.
    Pieces(&'a [&'a [u8]]),
    /// The payload's own CRC32C ([`payload_crc`]), computed earlier (outside the log's lock),
    /// combined with the header's: a fixed cost of several microseconds, worth it only for
    /// large payloads.
    Crc(u32),
}

/// A record's header bytes for a payload of `len` bytes; the header's CRC covers the header
/// and the payload.
pub(crate) fn record_header(
    kind: u32,
    seq: u64,
    len: u64,
    payload: Payload<'_>,
) -> [u8; RECORD_HEADER_LEN] {
    let mut out = [0u8; RECORD_HEADER_LEN];
    out[4..8].copy_from_slice(&kind.to_le_bytes());
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    out[16..24].copy_from_slice(&len.to_le_bytes());
    let header_crc = crc32c::crc32c(&out[4..]);
    let crc = match payload {
        Payload::Pieces(pieces) => pieces
            .iter()
            .fold(header_crc, |crc, piece| crc32c::crc32c_append(crc, piece)),
        Payload::Crc(crc) => crc32c::crc32c_combine(header_crc, crc, len as usize),
    };
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"))
}

/// A record found valid at some offset of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) kind: u32,
    pub(crate) seq: u64,
    /// The payload's range in the segment.
    pub(crate) payload: (usize, usize),
}

/// Why the bytes at an offset are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Fewer bytes remain than the record needs: a write cut short.
    Short,
    /// The header's fields are impossible, or the checksum does not match.
    Bad,
}

/// Reads the record starting at `at`, if it is whole and its checksum matches.
pub(crate) fn record_at(
    segment: &[u8],
    at: usize,
    max_payload: u64,
    checked: &mut u64,
) -> Result<Found, Fault> {
    let header = segment
        .get(at..at + RECORD_HEADER_LEN)
        .ok_or(Fault::Short)?;
    let len = u64_at(header, 16);
    if len > max_payload || u64_at(header, 24) != 0 {
        return Err(Fault::Bad);
    }
    let start = at + RECORD_HEADER_LEN;
    let end = start.checked_add(len as usize).ok_or(Fault::Bad)?;
    let payload = segment.get(start..end).ok_or(Fault::Short)?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..]), payload);
    *checked += (RECORD_HEADER_LEN - 4 + payload.len()) as u64;
    if crc != u32_at(header, 0) {
        return Err(Fault::Bad);
    }
    Ok(Found {
        kind: u32_at(header, 4),
        seq: u64_at(header, 8),
        payload: (start, end),
    })
}

/// Checks a segment's header; returns the sequence number of its first record.
pub(crate) fn parse_segment_header(segment: &[u8]) -> Result<u64, &'static str> {
    let header = segment
        .get(..SEGMENT_HEADER_LEN)
        .ok_or("the file is shorter than a segment header")?;
    if header[..7] != SEGMENT_MAGIC {
        return Err("not a pontoon log segment (bad magic)");
    }
    if header[7] != SEGMENT_VERSION {
        return Err("unsupported segment format version");
    }
    Ok(u64_at(header, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_any_damage_is_caught() {
        let payload = b"payload bytes";
        let pieces: [&[u8]; 2] = [&payload[..4], &payload[4..]];
        let mut segment = record_header(7, 42, 13, Payload::Pieces(&pieces)).to_vec();
        // Combining the payload's own checksum gives the same header.
        let combined = record_header(7, 42, 13, Payload::Crc(payload_crc(&pieces)));
        assert_eq!(&segment[..], &combined[..]);
        segment.extend_from_slice(payload);
        let found = record_at(&segment, 0, 1 << 20, &mut 0).unwrap();
        assert_eq!((found.kind, found.seq), (7, 42));
        assert_eq!(&segment[found.payload.0..found.payload.1], payload);
        for cut in 0..segment.len() {
            assert_eq!(
                record_at(&segment[..cut], 0, 1 << 20, &mut 0),
                Err(Fault::Short),
                "cut {cut}"
            );
        }
        for at in 0..segment.len() {
            for bit in 0..8 {
                let mut bad = segment.clone();
                bad[at] ^= 1 << bit;
                assert!(
                    record_at(&bad, 0, 1 << 20, &mut 0).is_err(),
                    "flip {at}.{bit}"
                );
            }
        }
    }
}
