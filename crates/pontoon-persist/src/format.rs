//! The byte layout of segment files and records, in both versions a log can hold (see
//! `docs/persist-format.md`): version 2, written now, where every record starts at a 64-byte
//! file offset, and version 1 (pontoon 0.1), still read.

/// The first seven bytes of every segment file: `F0 46 52 59 4C 4F 47` (`\xF0FRYLOG`).
pub const SEGMENT_MAGIC: [u8; 7] = *b"\xF0FRYLOG";

/// The segment format version this crate writes (it reads version 1 too).
pub const SEGMENT_VERSION: u8 = 2;

/// Length of a version 2 segment's header: magic, version, the sequence number of its first
/// record, and zeros up to 64 bytes.
pub const SEGMENT_HEADER_LEN: usize = 64;

/// Length of a version 2 record's header: CRC32C, kind, sequence number, payload length, and
/// zeros up to 64 bytes.
pub const RECORD_HEADER_LEN: usize = 64;

/// Every version 2 record starts at a multiple of this many bytes from the start of its file,
/// and is followed by zeros up to the next multiple. A payload, a pontoon-wire message written
/// with frames aligned to 64 bytes from its start, thus has every frame 64-byte aligned in the
/// file, and in a memory map of it.
pub const RECORD_ALIGN: usize = 64;

/// The last sequence number a record can have: one less than `u64::MAX`, so that the sequence
/// number after any record (the log's `next_seq`) always fits.
pub const MAX_SEQ: u64 = u64::MAX - 1;

/// Zeros to pad a record with (at most `RECORD_ALIGN - 1` are ever needed).
pub(crate) const ZEROS: [u8; RECORD_ALIGN] = [0; RECORD_ALIGN];

/// The sizes that differ between segment format versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The version byte of the segment header.
    pub(crate) version: u8,
    /// Bytes of the segment header; the first record starts there.
    pub(crate) segment_header: usize,
    /// Bytes of a record's header; its payload starts there. Bytes 24 up to it are zero.
    pub(crate) record_header: usize,
    /// Records start at multiples of this from the file's start, zero-padded up to it.
    pub(crate) align: usize,
}

/// pontoon 0.1's layout: 16-byte segment header, 32-byte record header, no padding.
pub(crate) const V1: Layout = Layout {
    version: 1,
    segment_header: 16,
    record_header: 32,
    align: 1,
};

/// The layout written now.
pub(crate) const V2: Layout = Layout {
    version: SEGMENT_VERSION,
    segment_header: SEGMENT_HEADER_LEN,
    record_header: RECORD_HEADER_LEN,
    align: RECORD_ALIGN,
};

impl Layout {
    /// `at` rounded up to a multiple of the alignment (`None` on overflow).
    pub(crate) fn align_up(&self, at: usize) -> Option<usize> {
        Some(at.checked_add(self.align - 1)? / self.align * self.align)
    }

    /// Bytes a record of a `len`-byte payload takes in a file, its padding included.
    pub(crate) fn record_len(&self, len: u64) -> u64 {
        let align = self.align as u64;
        (self.record_header as u64 + len).div_ceil(align) * align
    }
}

/// A version 2 segment's header bytes.
pub(crate) fn segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0u8; SEGMENT_HEADER_LEN];
    out[..7].copy_from_slice(&SEGMENT_MAGIC);
    out[7] = SEGMENT_VERSION;
    out[8..16].copy_from_slice(&first_seq.to_le_bytes());
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

/// A version 2 record's header bytes for a payload of `len` bytes; the header's CRC covers
/// the rest of the header and the payload (the padding after it is checked to be zero).
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

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// A record found at some offset of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) kind: u32,
    pub(crate) seq: u64,
    /// The payload's range in the segment.
    pub(crate) payload: (usize, usize),
    /// Where the next record starts (after the padding).
    pub(crate) end: usize,
}

/// Why the bytes at an offset are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Fewer bytes remain than the record needs: a write cut short.
    Short,
    /// The header's fields are impossible, the padding is not zero, or the checksum does not
    /// match.
    Bad,
}

/// The record whose header starts at `at`, its fields read but its checksum not checked: for
/// records that recovery has already checked. `None` if the fields do not fit the bytes.
pub(crate) fn header_at(layout: Layout, segment: &[u8], at: usize) -> Option<Found> {
    let start = at.checked_add(layout.record_header)?;
    let len = usize::try_from(u64_at(segment, at.checked_add(16)?)?).ok()?;
    let payload_end = start.checked_add(len)?;
    let end = layout.align_up(payload_end)?;
    (end <= segment.len()).then_some(Found {
        kind: u32_at(segment, at + 4)?,
        seq: u64_at(segment, at + 8)?,
        payload: (start, payload_end),
        end,
    })
}

/// Reads the record starting at `at`, if it is whole, its checksum matches and its padding is
/// zero. `checked` counts the bytes fed to CRC32C.
pub(crate) fn record_at(
    layout: Layout,
    segment: &[u8],
    at: usize,
    max_payload: u64,
    checked: &mut u64,
) -> Result<Found, Fault> {
    let header_end = at.checked_add(layout.record_header).ok_or(Fault::Bad)?;
    let header = segment.get(at..header_end).ok_or(Fault::Short)?;
    let len = u64_at(header, 16).ok_or(Fault::Short)?;
    if len > max_payload || header[24..].iter().any(|&b| b != 0) {
        return Err(Fault::Bad);
    }
    let len = usize::try_from(len).map_err(|_| Fault::Bad)?;
    let payload_end = header_end.checked_add(len).ok_or(Fault::Bad)?;
    let end = layout.align_up(payload_end).ok_or(Fault::Bad)?;
    let padded = segment.get(header_end..end).ok_or(Fault::Short)?;
    let (payload, padding) = padded.split_at(len);
    if padding.iter().any(|&b| b != 0) {
        return Err(Fault::Bad);
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..]), payload);
    *checked += (layout.record_header - 4 + payload.len()) as u64;
    if Some(crc) != u32_at(header, 0) {
        return Err(Fault::Bad);
    }
    Ok(Found {
        kind: u32_at(header, 4).ok_or(Fault::Short)?,
        seq: u64_at(header, 8).ok_or(Fault::Short)?,
        payload: (header_end, payload_end),
        end,
    })
}

/// Checks a segment's header; returns its layout and the sequence number of its first record.
pub(crate) fn parse_segment_header(segment: &[u8]) -> Result<(Layout, u64), &'static str> {
    let short = "the file is shorter than a segment header";
    let start = segment.get(..V1.segment_header).ok_or(short)?;
    if start[..7] != SEGMENT_MAGIC {
        return Err("not a pontoon log segment (bad magic)");
    }
    let layout = match start[7] {
        1 => V1,
        2 => V2,
        _ => return Err("unsupported segment format version"),
    };
    let header = segment.get(..layout.segment_header).ok_or(short)?;
    if header[16..].iter().any(|&b| b != 0) {
        return Err("the segment header's reserved bytes are not zero");
    }
    Ok((layout, u64_at(header, 8).ok_or(short)?))
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
        segment.resize(V2.record_len(13) as usize, 0);
        assert_eq!(segment.len(), 128);
        let found = record_at(V2, &segment, 0, 1 << 20, &mut 0).unwrap();
        assert_eq!((found.kind, found.seq, found.end), (7, 42, 128));
        assert_eq!(&segment[found.payload.0..found.payload.1], payload);
        assert_eq!(header_at(V2, &segment, 0), Some(found));
        for cut in 0..segment.len() {
            assert_eq!(
                record_at(V2, &segment[..cut], 0, 1 << 20, &mut 0),
                Err(Fault::Short),
                "cut {cut}"
            );
        }
        // Every bit counts, the padding's included.
        for at in 0..segment.len() {
            for bit in 0..8 {
                let mut bad = segment.clone();
                bad[at] ^= 1 << bit;
                assert!(
                    record_at(V2, &bad, 0, 1 << 20, &mut 0).is_err(),
                    "flip {at}.{bit}"
                );
            }
        }
    }

    #[test]
    fn segment_headers_of_both_versions_parse() {
        let v2 = segment_header(9);
        assert_eq!(parse_segment_header(&v2), Ok((V2, 9)));
        assert!(parse_segment_header(&v2[..63]).is_err());
        let mut v1 = v2[..16].to_vec();
        v1[7] = 1;
        assert_eq!(parse_segment_header(&v1), Ok((V1, 9)));
        let mut reserved = v2;
        reserved[40] = 1;
        assert!(parse_segment_header(&reserved).is_err());
        let mut future = v2;
        future[7] = 3;
        assert!(parse_segment_header(&future).is_err());
    }
}
