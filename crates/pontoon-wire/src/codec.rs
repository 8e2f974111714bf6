//! Per-frame compression: [`Codec`], the keep-it-only-if-it-pays policy, and block (de)compression.

use std::alloc::{Layout, alloc_zeroed};

use bytes::Bytes;

use crate::DecompressFault;
use crate::format::{BLOCK_PREFIX_LEN, COMPRESSION_BLOCK_LEN};

/// Frames shorter than this are never compressed: the saving cannot pay for the work.
pub const MIN_COMPRESS_LEN: usize = 10 * 1024;

/// Bytes in each of the [`SAMPLES`] windows compressed to decide whether a frame is worth it.
const SAMPLE_LEN: usize = 10 * 1024;

/// Windows sampled, spread evenly over the frame.
const SAMPLES: usize = 5;

/// A compressed form is kept only if it is at most 70% of the original: `compressed * 10 <= raw * 7`.
fn pays(compressed: usize, raw: usize) -> bool {
    (compressed as u128) * 10 <= (raw as u128) * 7
}

/// How a frame's bytes are encoded on the wire. Recorded per frame in the message's frame table.
///
/// ```
/// use pontoon_wire::Codec;
/// assert_eq!(Codec::from_id(Codec::Zstd.id()), Some(Codec::Zstd));
/// assert_eq!(Codec::from_id(200), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// Stored as is.
    #[default]
    None,
    /// LZ4 block format, through `lz4_flex`: fast, modest ratio.
    Lz4,
    /// Zstandard: slower, better ratio.
    Zstd,
}

impl Codec {
    /// The codec's number in the frame table.
    ///
    /// ```
    /// assert_eq!(pontoon_wire::Codec::Lz4.id(), 1);
    /// ```
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Lz4 => 1,
            Codec::Zstd => 2,
        }
    }

    /// The codec with this number, if this version knows it.
    ///
    /// ```
    /// assert_eq!(pontoon_wire::Codec::from_id(0), Some(pontoon_wire::Codec::None));
    /// ```
    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::None),
            1 => Some(Codec::Lz4),
            2 => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// A short lower-case name: `none`, `lz4`, `zstd`.
    ///
    /// ```
    /// assert_eq!(pontoon_wire::Codec::Zstd.name(), "zstd");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Compresses `frame` with `codec` if the policy says it pays: never below [`MIN_COMPRESS_LEN`];
/// above it, an evenly spread sample is compressed first, and only if that pays is the whole frame
/// compressed, and kept only if the result is at most 70% of the original.
///
/// Returns `None` when the frame should travel as it is.
pub(crate) fn maybe_compress(
    frame: &[u8],
    codec: Codec,
    zstd_level: i32,
) -> std::io::Result<Option<Bytes>> {
    if codec == Codec::None || frame.len() < MIN_COMPRESS_LEN {
        return Ok(None);
    }
    if frame.len() > SAMPLES * SAMPLE_LEN {
        let stride = frame.len() / SAMPLES;
        let mut sample = Vec::with_capacity(SAMPLES * SAMPLE_LEN);
        for i in 0..SAMPLES {
            sample.extend_from_slice(&frame[i * stride..i * stride + SAMPLE_LEN]);
        }
        if compress_blocks(&sample, codec, zstd_level, budget(sample.len()))?.is_none() {
            return Ok(None);
        }
    }
    Ok(compress_blocks(frame, codec, zstd_level, budget(frame.len()))?.map(Bytes::from))
}

/// The most compressed bytes that still pay for `raw` raw bytes.
fn budget(raw: usize) -> usize {
    ((raw as u128) * 7 / 10) as usize
}

/// Compresses `input` block by block; gives up (`None`) as soon as the output exceeds `budget`.
fn compress_blocks(
    input: &[u8],
    codec: Codec,
    zstd_level: i32,
    budget: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let block_bound = match codec {
        Codec::Lz4 => lz4_flex::block::get_maximum_output_size(COMPRESSION_BLOCK_LEN),
        Codec::Zstd => zstd::zstd_safe::compress_bound(COMPRESSION_BLOCK_LEN),
        Codec::None => unreachable!("Codec::None never reaches compression"),
    };
    let mut scratch = vec![0u8; block_bound];
    let mut zstd = match codec {
        Codec::Zstd => Some(zstd::bulk::Compressor::new(zstd_level)?),
        _ => None,
    };
    let mut out = Vec::with_capacity(budget.min(input.len()) + BLOCK_PREFIX_LEN);
    for block in input.chunks(COMPRESSION_BLOCK_LEN) {
        let n = match zstd.as_mut() {
            Some(z) => z.compress_to_buffer(block, &mut scratch[..])?,
            None => lz4_flex::block::compress_into(block, &mut scratch)
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        };
        let n32 = u32::try_from(n).expect("a compressed 1 MiB block fits in u32");
        if out.len() + BLOCK_PREFIX_LEN + n > budget {
            return Ok(None);
        }
        out.extend_from_slice(&n32.to_le_bytes());
        out.extend_from_slice(&scratch[..n]);
    }
    debug_assert!(pays(out.len(), input.len()));
    Ok(Some(out))
}

/// Why [`decompress`] failed: a fault in the frame's bytes at an offset from the frame's first
/// byte, or no memory for the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecompressFailure {
    At { offset: u64, fault: DecompressFault },
    OutOfMemory,
}

fn at(offset: usize, fault: DecompressFault) -> DecompressFailure {
    DecompressFailure::At {
        offset: offset as u64,
        fault,
    }
}

/// zstd's error number for "destination buffer is too small" (`ZSTD_error_dstSize_tooSmall`);
/// zstd returns error `n` as `0 - n`.
const ZSTD_DST_TOO_SMALL: usize = 70;

/// Decompresses a frame written by [`maybe_compress`] into one allocation of exactly `raw_len`
/// bytes. The caller has checked `raw_len` against its limits (the frame's expansion among them);
/// here each block is held to its share of `raw_len`: a block that would write more is refused
/// before it does (zstd's declared content size is checked first, and both codecs are given an
/// output of exactly the block's share), one that writes less is refused after.
pub(crate) fn decompress(
    codec: Codec,
    wire: &[u8],
    raw_len: u64,
) -> Result<Bytes, DecompressFailure> {
    let raw_len = usize::try_from(raw_len).map_err(|_| DecompressFailure::OutOfMemory)?;
    let mut out = try_zeroed(raw_len).ok_or(DecompressFailure::OutOfMemory)?;
    let mut zstd = match codec {
        Codec::Zstd => {
            Some(zstd::zstd_safe::DCtx::try_create().ok_or(at(0, DecompressFault::Unavailable))?)
        }
        _ => None,
    };
    let mut pos = 0usize;
    for target in out.chunks_mut(COMPRESSION_BLOCK_LEN) {
        let block_at = pos;
        let expected = target.len() as u64;
        let (len, rest) = match wire.get(pos..).and_then(|w| w.split_first_chunk::<4>()) {
            Some((prefix, rest)) => (u32::from_le_bytes(*prefix) as usize, rest),
            None => return Err(at(block_at, DecompressFault::BlockTruncated)),
        };
        let block = rest
            .get(..len)
            .ok_or(at(block_at, DecompressFault::BlockTruncated))?;
        pos = block_at + BLOCK_PREFIX_LEN + len;
        let written = match zstd.as_mut() {
            Some(z) => {
                match zstd::zstd_safe::get_frame_content_size(block) {
                    Ok(Some(declared)) if declared > expected => {
                        return Err(at(
                            block_at,
                            DecompressFault::Overrun {
                                block_raw_len: expected,
                            },
                        ));
                    }
                    Ok(Some(declared)) if declared < expected => {
                        return Err(at(
                            block_at,
                            DecompressFault::Short {
                                expected,
                                actual: declared,
                            },
                        ));
                    }
                    Ok(_) => {}
                    Err(_) => return Err(at(block_at, DecompressFault::Corrupt)),
                }
                z.decompress(target, block).map_err(|code| {
                    if code.wrapping_neg() == ZSTD_DST_TOO_SMALL {
                        at(
                            block_at,
                            DecompressFault::Overrun {
                                block_raw_len: expected,
                            },
                        )
                    } else {
                        at(block_at, DecompressFault::Corrupt)
                    }
                })?
            }
            None => lz4_flex::block::decompress_into(block, target).map_err(|e| match e {
                lz4_flex::block::DecompressError::OutputTooSmall { .. } => at(
                    block_at,
                    DecompressFault::Overrun {
                        block_raw_len: expected,
                    },
                ),
                _ => at(block_at, DecompressFault::Corrupt),
            })?,
        };
        if written as u64 != expected {
            return Err(at(
                block_at,
                DecompressFault::Short {
                    expected,
                    actual: written as u64,
                },
            ));
        }
    }
    if pos != wire.len() {
        return Err(at(pos, DecompressFault::TrailingBytes));
    }
    Ok(Bytes::from(out))
}

/// A zero-filled `Vec` of exactly `len` bytes, or `None` if the allocator refuses (rather than
/// aborting the process, as `vec![0; len]` would). Fresh zeroed pages come from the OS already
/// zero, so this costs no pass over the memory.
fn try_zeroed(len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    let layout = Layout::array::<u8>(len).ok()?;
    // SAFETY: `layout` has a non-zero size (len > 0), as `alloc_zeroed` requires.
    let ptr = unsafe { alloc_zeroed(layout) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` comes from the global allocator with the layout of `[u8; len]` (size `len`,
    // alignment 1), which is what `Vec<u8>` with capacity `len` deallocates with; all `len` bytes
    // are initialized (to zero); length equals capacity.
    Some(unsafe { Vec::from_raw_parts(ptr, len, len) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compressible(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i / 64 % 7) as u8).collect()
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn small_frames_are_never_compressed() {
        let frame = vec![0u8; MIN_COMPRESS_LEN - 1];
        assert_eq!(maybe_compress(&frame, Codec::Lz4, 3).unwrap(), None);
        assert!(
            maybe_compress(&vec![0u8; MIN_COMPRESS_LEN], Codec::Lz4, 3)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "zstd is C code, which miri cannot run; and megabytes are too slow under miri"
    )]
    fn incompressible_frames_stay_raw() {
        for codec in [Codec::Lz4, Codec::Zstd] {
            assert_eq!(
                maybe_compress(&noise(300_000), codec, 3).unwrap(),
                None,
                "{codec}"
            );
            assert_eq!(
                maybe_compress(&noise(20_000), codec, 3).unwrap(),
                None,
                "{codec}"
            );
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "zstd is C code, which miri cannot run; and megabytes are too slow under miri"
    )]
    fn compressible_frames_round_trip_across_block_boundaries() {
        for codec in [Codec::Lz4, Codec::Zstd] {
            for len in [
                MIN_COMPRESS_LEN,
                COMPRESSION_BLOCK_LEN,
                COMPRESSION_BLOCK_LEN * 2 + 17,
            ] {
                let raw = compressible(len);
                let wire = maybe_compress(&raw, codec, 3)
                    .unwrap()
                    .expect("compressible");
                assert!(pays(wire.len(), raw.len()));
                let back = decompress(codec, &wire, raw.len() as u64).unwrap();
                assert_eq!(back, raw, "{codec} {len}");
            }
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "zstd is C code, which miri cannot run; and megabytes are too slow under miri"
    )]
    fn mostly_noise_with_a_compressible_sample_is_still_judged_on_the_whole() {
        // Evenly spaced sample windows land in compressible stripes, the rest is noise: the sample
        // says "compress", the whole frame does not pay, and the frame stays raw.
        let len = 1 << 20;
        let stride = len / SAMPLES;
        let mut frame = noise(len);
        for i in 0..SAMPLES {
            frame[i * stride..i * stride + SAMPLE_LEN].fill(0);
        }
        assert_eq!(maybe_compress(&frame, Codec::Lz4, 3).unwrap(), None);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "zstd is C code, which miri cannot run; and megabytes are too slow under miri"
    )]
    fn corrupt_and_inconsistent_input_is_refused() {
        let raw = compressible(COMPRESSION_BLOCK_LEN + 100);
        let wire = maybe_compress(&raw, Codec::Lz4, 3).unwrap().unwrap();
        let len = raw.len() as u64;
        let fault = |r: Result<Bytes, DecompressFailure>| match r {
            Err(DecompressFailure::At { fault, .. }) => fault,
            other => panic!("expected a fault, got {other:?}"),
        };
        assert_eq!(
            fault(decompress(Codec::Lz4, &wire[..wire.len() - 1], len)),
            DecompressFault::BlockTruncated
        );
        let mut longer = wire.to_vec();
        longer.push(0);
        assert_eq!(
            fault(decompress(Codec::Lz4, &longer, len)),
            DecompressFault::TrailingBytes
        );
        assert!(matches!(
            fault(decompress(Codec::Lz4, &wire, len + 1)),
            DecompressFault::Short { .. } | DecompressFault::Corrupt
        ));
        let mut garbage = wire.to_vec();
        garbage[4..64].fill(0xff);
        assert!(decompress(Codec::Lz4, &garbage, len).is_err());
        assert_eq!(
            fault(decompress(Codec::Zstd, &wire, len)),
            DecompressFault::Corrupt
        );
    }

    #[test]
    fn lz4_round_trips_through_one_exact_allocation() {
        let raw = compressible(MIN_COMPRESS_LEN + 3000);
        let wire = maybe_compress(&raw, Codec::Lz4, 0)
            .unwrap()
            .expect("compressible");
        assert_eq!(
            decompress(Codec::Lz4, &wire, raw.len() as u64).unwrap(),
            raw
        );
        assert!(decompress(Codec::Lz4, &wire[..wire.len() - 1], raw.len() as u64).is_err());
    }

    #[test]
    fn try_zeroed_gives_zeroes_or_refuses() {
        assert_eq!(try_zeroed(0), Some(vec![]));
        assert_eq!(try_zeroed(4096), Some(vec![0; 4096]));
        assert_eq!(try_zeroed(usize::MAX), None);
    }
}
