//! Finding the next valid record after damage, in work linear in the bytes scanned, however the
//! damage is crafted.
//!
//! A damaged stretch is scanned byte by byte for a record whose checksum matches (to tell a torn
//! tail from damage with records after it, and for salvage). Checking each candidate's claimed
//! payload afresh costs its length at every offset: quadratic in a crafted stretch. Instead, the
//! CRC32C of any range `[a, e)` comes from prefix checksums: `crc(a..e) = P(e) ^ P(a)·x^(8(e-a))`
//! over GF(2) modulo the CRC32C polynomial, where `P(i)` is the checksum of the segment's first
//! `i` bytes. `P` is kept at every [`STRIDE`]th byte (and `P(a)` runs along the scan), so a
//! candidate costs at most `STRIDE` bytes of CRC32C and two multiplications. In a version 2
//! segment only offsets that are multiples of 64 can start a record, so only those are
//! candidates.

use std::collections::TryReserveError;
use std::path::Path;

use crate::error::IoError;
use crate::files::io;

use crate::format::{Layout, MAX_SEQ};

/// The resync tables of a segment's `bytes`, built on first use.
pub(crate) fn resync<'t>(
    tables: &'t mut Option<Resync>,
    bytes: &[u8],
    path: &Path,
) -> Result<&'t mut Resync, IoError> {
    if tables.is_none() {
        let built = Resync::new(bytes).map_err(|_| {
            io("allocating memory to resynchronize", path)(std::io::ErrorKind::OutOfMemory.into())
        })?;
        *tables = Some(built);
    }
    tables
        .as_mut()
        .ok_or_else(|| io("resynchronizing", path)(std::io::ErrorKind::OutOfMemory.into()))
}

/// The CRC32C polynomial, bit-reflected (as the checksum is computed).
const POLY: u32 = 0x82F6_3B78;

/// `x^0` in the reflected representation.
const ONE: u32 = 0x8000_0000;

/// Prefix checksums are kept every this many bytes.
const STRIDE: usize = 256;

/// The product of `a` and `b` modulo the CRC32C polynomial (both reflected).
fn mult(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    for bit in 0..32 {
        if a & (ONE >> bit) != 0 {
            product ^= b;
        }
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    product
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

/// What is needed to checksum any range of one segment's bytes in bounded work. Every method
/// takes those same bytes.
#[derive(Debug)]
pub(crate) struct Resync {
    /// `prefix[q]` is the CRC32C of `bytes[..q * STRIDE]`.
    prefix: Vec<u32>,
    /// `strides[q]` is `x^(8 * STRIDE * q)`.
    strides: Vec<u32>,
    /// `shifts[r]` is `x^(8r)`, for `r < STRIDE`.
    shifts: Vec<u32>,
    /// Bytes fed to CRC32C so far (building the tables included).
    pub(crate) checksummed_bytes: u64,
}

impl Resync {
    /// Builds the tables for `bytes`: one pass of CRC32C over them, and memory of an eighth of
    /// their length; a failed allocation is an error, not an abort.
    pub(crate) fn new(bytes: &[u8]) -> Result<Resync, TryReserveError> {
        let entries = bytes.len() / STRIDE + 1;
        let mut prefix = Vec::new();
        prefix.try_reserve_exact(entries)?;
        let mut strides = Vec::new();
        strides.try_reserve_exact(entries)?;
        let mut shifts = Vec::with_capacity(STRIDE);
        let x8 = ONE >> 8;
        let mut shift = ONE;
        for _ in 0..STRIDE {
            shifts.push(shift);
            shift = mult(shift, x8);
        }
        let stride_shift = shift; // x^(8 * STRIDE)
        let mut crc = 0;
        let mut stride = ONE;
        prefix.push(crc);
        strides.push(stride);
        for chunk in bytes.chunks_exact(STRIDE) {
            crc = crc32c::crc32c_append(crc, chunk);
            stride = mult(stride, stride_shift);
            prefix.push(crc);
            strides.push(stride);
        }
        Ok(Resync {
            prefix,
            strides,
            shifts,
            checksummed_bytes: bytes.len() as u64,
        })
    }

    /// The CRC32C of `bytes[..at]` (`at` at most the length).
    fn prefix_at(&mut self, bytes: &[u8], at: usize) -> u32 {
        let q = at / STRIDE;
        let from = q * STRIDE;
        let rest = bytes.get(from..at).unwrap_or_default();
        self.checksummed_bytes += rest.len() as u64;
        crc32c::crc32c_append(self.prefix.get(q).copied().unwrap_or_default(), rest)
    }

    /// `x^(8n)`, for `n` at most the length.
    fn shift(&self, n: usize) -> u32 {
        let strides = self.strides.get(n / STRIDE).copied().unwrap_or(ONE);
        let bytes = self.shifts.get(n % STRIDE).copied().unwrap_or(ONE);
        mult(strides, bytes)
    }

    /// The offset and sequence number of the first whole record with a matching checksum and
    /// zero padding that starts at or after `from` (at a multiple of the layout's alignment),
    /// whose payload is at most `max_payload` bytes and whose sequence number is at least
    /// `expected` (and at most `MAX_SEQ`): exactly what checking every such offset with
    /// [`record_at`](crate::format::record_at) finds, in linear work.
    pub(crate) fn next_valid(
        &mut self,
        layout: Layout,
        bytes: &[u8],
        from: usize,
        expected: u64,
        max_payload: u64,
    ) -> Option<(usize, u64)> {
        let len = bytes.len();
        let from = layout.align_up(from)?;
        if from.checked_add(layout.record_header)? > len {
            return None;
        }
        // The checksum of everything before the candidate's checksummed bytes (which start
        // after its own 4-byte CRC), carried along the scan one step at a time.
        let mut before = self.prefix_at(bytes, from + 4);
        let mut at = from;
        while at + layout.record_header <= len {
            if let Some(found) = self.candidate(layout, bytes, at, before, expected, max_payload) {
                return Some(found);
            }
            let step = bytes.get(at + 4..(at + 4 + layout.align).min(len));
            let step = step.unwrap_or_default();
            before = crc32c::crc32c_append(before, step);
            self.checksummed_bytes += step.len() as u64;
            at += layout.align;
        }
        None
    }

    /// The record at `at`, if it is one; `before` is the CRC32C of `bytes[..at + 4]`.
    fn candidate(
        &mut self,
        layout: Layout,
        bytes: &[u8],
        at: usize,
        before: u32,
        expected: u64,
        max_payload: u64,
    ) -> Option<(usize, u64)> {
        let seq = le_u64(bytes, at + 8)?;
        let payload = le_u64(bytes, at + 16)?;
        // A record numbered above `MAX_SEQ` is never valid: salvage must not jump to it.
        if payload > max_payload || seq < expected || seq > MAX_SEQ {
            return None;
        }
        let reserved = bytes.get(at + 24..at + layout.record_header)?;
        if reserved.iter().any(|&b| b != 0) {
            return None;
        }
        let end = u64::try_from(at + layout.record_header)
            .ok()?
            .checked_add(payload)?;
        let end = usize::try_from(end).ok()?;
        // At most `align - 1` bytes of padding: a bounded cost per candidate.
        let padded = layout
            .align_up(end)
            .filter(|&padded| padded <= bytes.len())?;
        if bytes[end..padded].iter().any(|&b| b != 0) {
            return None;
        }
        let through = self.prefix_at(bytes, end);
        let crc = through ^ mult(before, self.shift(end - (at + 4)));
        (crc == le_u32(bytes, at)?).then_some((at, seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Payload, V1, V2, record_at, record_header};

    /// A record of `layout` (whose header differs from version 2's only in length).
    fn record(layout: Layout, seq: u64, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u64;
        let mut header =
            record_header(1, seq, len, Payload::Pieces(&[]))[..layout.record_header].to_vec();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..]), payload);
        header[..4].copy_from_slice(&crc.to_le_bytes());
        header.extend_from_slice(payload);
        header.resize(layout.record_len(len) as usize, 0);
        header
    }

    /// Every offset of a stretch with records in it, in both layouts: the tables find exactly
    /// what checking every (aligned) offset directly finds.
    #[test]
    fn finds_what_checking_every_offset_finds() {
        for layout in [V1, V2] {
            let mut bytes: Vec<u8> = (0..1024u32).map(|i| (i * 13 % 251) as u8).collect();
            let mut starts = Vec::new();
            for (seq, len) in [(5u64, 10usize), (6, 0), (7, 700), (8, 3)] {
                let payload: Vec<u8> = (0..len)
                    .map(|i| (i as u8).wrapping_mul(seq as u8))
                    .collect();
                starts.push(bytes.len());
                bytes.extend_from_slice(&record(layout, seq, &payload));
                bytes.extend((0..layout.align_up(37).unwrap()).map(|i| (i as u8).wrapping_mul(7)));
            }
            let mut resync = Resync::new(&bytes).unwrap();
            // Every valid record at every offset where one can start, checked directly.
            let valid: Vec<(usize, u64)> = (0..bytes.len())
                .step_by(layout.align)
                .filter_map(|at| match record_at(layout, &bytes, at, 1 << 20, &mut 0) {
                    Ok(found) if found.seq <= MAX_SEQ => Some((at, found.seq)),
                    _ => None,
                })
                .collect();
            // Under miri (a thousand times slower) a sample of the offsets, every alignment
            // class among them.
            let (step, expecting): (usize, &[u64]) = if cfg!(miri) {
                (127, &[0, 8])
            } else {
                (1, &[0, 6, 8, 9])
            };
            for from in (0..bytes.len()).step_by(step) {
                for &expected in expecting {
                    let direct = valid
                        .iter()
                        .copied()
                        .find(|&(at, seq)| at >= from && seq >= expected);
                    assert_eq!(
                        resync.next_valid(layout, &bytes, from, expected, 1 << 20),
                        direct,
                        "from {from}"
                    );
                }
            }
            assert!(starts.iter().all(|&s| {
                resync
                    .next_valid(layout, &bytes, s, 0, 1 << 20)
                    .is_some_and(|(at, _)| at == s)
            }));
        }
    }

    #[test]
    fn multiplying_by_a_shift_is_appending_zeros() {
        let bytes = vec![0u8; 3000];
        let resync = Resync::new(&bytes).unwrap();
        for n in [0usize, 1, 255, 256, 257, 2999] {
            let crc = crc32c::crc32c(b"some bytes");
            let appended = crc32c::crc32c_append(crc, &bytes[..n]);
            let zeros = crc32c::crc32c_append(0, &bytes[..n]);
            assert_eq!(mult(crc, resync.shift(n)) ^ zeros, appended, "n {n}");
        }
    }
}
