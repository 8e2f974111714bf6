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

    /// Whether this build can compress and decompress with the codec: [`Codec::None`] always,
    /// the others when pontoon-wire is built with their feature (`lz4`, `zstd`; both default).
    ///
    /// ```
    /// assert!(pontoon_wire::Codec::None.is_built());
    /// assert_eq!(pontoon_wire::Codec::Zstd.is_built(), cfg!(feature = "zstd"));
    /// ```
    pub fn is_built(self) -> bool {
        match self {
            Codec::None => true,
            Codec::Lz4 => cfg!(feature = "lz4"),
            Codec::Zstd => cfg!(feature = "zstd"),
        }
    }

    /// The pontoon-wire feature that builds the codec in (`None` for [`Codec::None`], which
    /// needs none).
    ///
    /// ```
    /// assert_eq!(pontoon_wire::Codec::Zstd.feature(), Some("zstd"));
    /// ```
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Codec::None => None,
            Codec::Lz4 => Some("lz4"),
            Codec::Zstd => Some("zstd"),
        }
    }

    /// Every codec this version knows, built in or not, in their frame-table order.
    ///
    /// ```
    /// assert_eq!(pontoon_wire::Codec::ALL.len(), 3);
    /// ```
    pub const ALL: [Codec; 3] = [Codec::None, Codec::Lz4, Codec::Zstd];

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

/// Reads a codec from its [`name`](Codec::name) (`none`, `lz4`, `zstd`; exactly, lower case),
/// whether or not this build has it: [`Codec::is_built`] says that.
///
/// ```
/// use pontoon_wire::{Codec, UnknownCodecName};
/// let _: Result<Codec, UnknownCodecName> = "none".parse();
/// assert_eq!("zstd".parse::<Codec>(), Ok(Codec::Zstd));
/// let err = "brotli".parse::<Codec>().unwrap_err();
/// assert_eq!(err.to_string(), "unknown codec `brotli`: expected none, lz4 or zstd");
/// ```
impl std::str::FromStr for Codec {
    type Err = UnknownCodecName;

    fn from_str(name: &str) -> Result<Codec, UnknownCodecName> {
        Codec::ALL
            .into_iter()
            .find(|codec| codec.name() == name)
            .ok_or_else(|| UnknownCodecName {
                name: name.chars().take(64).collect(),
            })
    }
}

/// A name that is no [`Codec`]'s, from [`Codec`]'s `FromStr`.
///
/// ```
/// let err = "LZ4".parse::<pontoon_wire::Codec>().unwrap_err();
/// assert_eq!(err.name(), "LZ4");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec `{name}`: expected none, lz4 or zstd")]
pub struct UnknownCodecName {
    name: String,
}

impl UnknownCodecName {
    /// The name given (its first 64 characters).
    ///
    /// ```
    /// let err = "br".parse::<pontoon_wire::Codec>().unwrap_err();
    /// assert_eq!(err.name(), "br");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
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
    // A codec this build lacks sends the frame as it is: a sender is never stuck for a codec.
    if codec == Codec::None || !codec.is_built() || frame.len() < MIN_COMPRESS_LEN {
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
    let mut compressor = BlockCompressor::new(codec, zstd_level)?;
    let mut out = Vec::with_capacity(budget.min(input.len()) + BLOCK_PREFIX_LEN);
    for block in input.chunks(COMPRESSION_BLOCK_LEN) {
        let compressed = compressor.compress(block)?;
        let n = compressed.len();
        let n32 = u32::try_from(n).map_err(|_| std::io::Error::other("block over 4 GiB"))?;
        if out.len() + BLOCK_PREFIX_LEN + n > budget {
            return Ok(None);
        }
        out.extend_from_slice(&n32.to_le_bytes());
        out.extend_from_slice(compressed);
    }
    debug_assert!(pays(out.len(), input.len()));
    Ok(Some(out))
}

/// One codec's block compressor with its scratch space, for the codecs this build has.
enum BlockCompressor {
    #[cfg(feature = "lz4")]
    Lz4 { scratch: Vec<u8> },
    #[cfg(feature = "zstd")]
    Zstd {
        scratch: Vec<u8>,
        compressor: Box<zstd::bulk::Compressor<'static>>,
    },
}

impl BlockCompressor {
    #[cfg_attr(not(feature = "zstd"), allow(unused_variables))]
    fn new(codec: Codec, zstd_level: i32) -> std::io::Result<BlockCompressor> {
        match codec {
            #[cfg(feature = "lz4")]
            Codec::Lz4 => Ok(BlockCompressor::Lz4 {
                scratch: vec![0u8; lz4_flex::block::get_maximum_output_size(COMPRESSION_BLOCK_LEN)],
            }),
            #[cfg(feature = "zstd")]
            Codec::Zstd => Ok(BlockCompressor::Zstd {
                scratch: vec![0u8; zstd::zstd_safe::compress_bound(COMPRESSION_BLOCK_LEN)],
                compressor: Box::new(zstd::bulk::Compressor::new(zstd_level)?),
            }),
            // `maybe_compress` stops these before they get here.
            _ => Err(std::io::Error::other(format!(
                "codec {codec} is not built in"
            ))),
        }
    }

    /// The block's compressed bytes, in the scratch space.
    #[cfg_attr(not(any(feature = "lz4", feature = "zstd")), allow(unused_variables))]
    fn compress(&mut self, block: &[u8]) -> std::io::Result<&[u8]> {
        match self {
            #[cfg(feature = "lz4")]
            BlockCompressor::Lz4 { scratch } => {
                let n = lz4_flex::block::compress_into(block, scratch)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                Ok(&scratch[..n])
            }
            #[cfg(feature = "zstd")]
            BlockCompressor::Zstd {
                scratch,
                compressor,
            } => {
                let n = compressor.compress_to_buffer(block, &mut scratch[..])?;
                Ok(&scratch[..n])
            }
            #[cfg(not(any(feature = "lz4", feature = "zstd")))]
            _ => match *self {},
        }
    }
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
#[cfg(feature = "zstd")]
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
    let mut block_decompressor = BlockDecompressor::new(codec)?;
    let mut out = try_zeroed(raw_len).ok_or(DecompressFailure::OutOfMemory)?;
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
        let written = block_decompressor
            .decompress(block, target)
            .map_err(|fault| at(block_at, fault))?;
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

/// One codec's block decompressor, for the codecs this build has.
enum BlockDecompressor {
    #[cfg(feature = "lz4")]
    Lz4,
    #[cfg(feature = "zstd")]
    Zstd(zstd::zstd_safe::DCtx<'static>),
}

impl BlockDecompressor {
    /// The decompressor for `codec`; a codec this build lacks is [`DecompressFault::NotBuilt`]
    /// (the frame table check refuses such frames before their bytes arrive; this is the
    /// backstop).
    fn new(codec: Codec) -> Result<BlockDecompressor, DecompressFailure> {
        match codec {
            #[cfg(feature = "lz4")]
            Codec::Lz4 => Ok(BlockDecompressor::Lz4),
            #[cfg(feature = "zstd")]
            Codec::Zstd => Ok(BlockDecompressor::Zstd(
                zstd::zstd_safe::DCtx::try_create().ok_or(at(0, DecompressFault::Unavailable))?,
            )),
            _ => Err(at(0, DecompressFault::NotBuilt)),
        }
    }

    /// Decompresses `block` into exactly `target` (the block's share of the frame): the bytes
    /// written, or why not.
    #[cfg_attr(not(any(feature = "lz4", feature = "zstd")), allow(unused_variables))]
    fn decompress(&mut self, block: &[u8], target: &mut [u8]) -> Result<usize, DecompressFault> {
        let overrun = DecompressFault::Overrun {
            block_raw_len: target.len() as u64,
        };
        match self {
            #[cfg(feature = "zstd")]
            BlockDecompressor::Zstd(z) => {
                let expected = target.len() as u64;
                match zstd::zstd_safe::get_frame_content_size(block) {
                    Ok(Some(declared)) if declared > expected => return Err(overrun),
                    Ok(Some(declared)) if declared < expected => {
                        return Err(DecompressFault::Short {
                            expected,
                            actual: declared,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => return Err(DecompressFault::Corrupt),
                }
                z.decompress(target, block).map_err(|code| {
                    if code.wrapping_neg() == ZSTD_DST_TOO_SMALL {
                        overrun
                    } else {
                        DecompressFault::Corrupt
                    }
                })
            }
            #[cfg(feature = "lz4")]
            BlockDecompressor::Lz4 => {
                lz4_flex::block::decompress_into(block, target).map_err(|e| match e {
                    lz4_flex::block::DecompressError::OutputTooSmall { .. } => overrun,
                    _ => DecompressFault::Corrupt,
                })
            }
            #[cfg(not(any(feature = "lz4", feature = "zstd")))]
            _ => match *self {},
        }
    }
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
    #[cfg(feature = "lz4")]
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
        for codec in [Codec::Lz4, Codec::Zstd]
            .into_iter()
            .filter(|c| c.is_built())
        {
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
        for codec in [Codec::Lz4, Codec::Zstd]
            .into_iter()
            .filter(|c| c.is_built())
        {
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
    #[cfg(feature = "lz4")]
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
    #[cfg(all(feature = "lz4", feature = "zstd"))]
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
    #[cfg(feature = "lz4")]
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
    fn a_codec_not_built_in_sends_raw_and_is_refused_on_the_way_in() {
        for codec in [Codec::Lz4, Codec::Zstd]
            .into_iter()
            .filter(|c| !c.is_built())
        {
            let raw = compressible(MIN_COMPRESS_LEN * 4);
            assert_eq!(maybe_compress(&raw, codec, 3).unwrap(), None, "{codec}");
            assert_eq!(
                decompress(codec, &raw, raw.len() as u64),
                Err(at(0, DecompressFault::NotBuilt)),
                "{codec}"
            );
        }
    }

    #[test]
    fn codec_names_parse_back() {
        for codec in Codec::ALL {
            assert_eq!(codec.name().parse::<Codec>(), Ok(codec));
            assert_eq!(Codec::from_id(codec.id()), Some(codec));
        }
        let long = "x".repeat(1000);
        assert_eq!(long.parse::<Codec>().unwrap_err().name().len(), 64);
        assert!("Zstd".parse::<Codec>().is_err());
    }

    #[test]
    fn try_zeroed_gives_zeroes_or_refuses() {
        assert_eq!(try_zeroed(0), Some(vec![]));
        assert_eq!(try_zeroed(4096), Some(vec![0; 4096]));
        assert_eq!(try_zeroed(usize::MAX), None);
    }
}
