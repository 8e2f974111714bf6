//! Dask's per-frame compression: `lz4` (an lz4 block after a little-endian u32 of its
//! decompressed size, as `lz4.block.compress` writes) and `zstd` (a zstandard frame that
//! records its content size); decompression is bounded by the size a frame claims, which is
//! checked against the receiver's limits before anything is allocated.

use bytes::Bytes;

use crate::DecodeError;

/// A codec Dask names in a sub-header's `compression` list.
///
/// ```
/// assert_eq!(pontoon_dask::DaskCodec::Lz4.name(), "lz4");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaskCodec {
    /// `lz4`.
    Lz4,
    /// `zstd`.
    Zstd,
}

impl DaskCodec {
    /// The name Dask writes.
    ///
    /// ```
    /// assert_eq!(pontoon_dask::DaskCodec::Zstd.name(), "zstd");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            DaskCodec::Lz4 => "lz4",
            DaskCodec::Zstd => "zstd",
        }
    }

    fn from_name(name: &str) -> Option<DaskCodec> {
        match name {
            "lz4" if cfg!(feature = "lz4") => Some(DaskCodec::Lz4),
            "zstd" if cfg!(feature = "zstd") => Some(DaskCodec::Zstd),
            _ => None,
        }
    }
}

/// Frames shorter than this are sent as they are (Dask's `min_size`).
pub(crate) const MIN_COMPRESS_LEN: usize = 10_000;

/// `data` compressed with `codec`, or `None` when it is too short or too long to try
/// (Dask compresses 10,000 bytes to 2 GiB) or does not shrink to 70% (Dask's `min_ratio`).
pub(crate) fn maybe_compress(codec: DaskCodec, data: &[u8]) -> Option<Bytes> {
    if data.len() < MIN_COMPRESS_LEN || data.len() > 1 << 31 {
        return None;
    }
    let out = match codec {
        DaskCodec::Lz4 => built::lz4_compress(data)?,
        DaskCodec::Zstd => built::zstd_compress(data)?,
    };
    (out.len() as f64 <= 0.7 * data.len() as f64).then(|| Bytes::from(out))
}

/// `data` decompressed as `name` says, making at most `limit` bytes: the size the frame claims
/// is checked first, the memory reserved fallibly, and a frame that decompresses to another
/// size than it claims is refused.
pub(crate) fn decompress(
    name: &str,
    data: &[u8],
    frame: usize,
    limit: u64,
) -> Result<Bytes, DecodeError> {
    let codec = DaskCodec::from_name(name).ok_or_else(|| DecodeError::UnsupportedCompression {
        frame,
        name: name.to_owned(),
    })?;
    let fault = |detail: String| DecodeError::Decompress {
        frame,
        codec: codec.name(),
        detail,
    };
    let claimed = match codec {
        DaskCodec::Lz4 => match data.first_chunk::<4>() {
            Some(size) => u64::from(u32::from_le_bytes(*size)),
            None => return Err(fault("shorter than its 4-byte size".into())),
        },
        DaskCodec::Zstd => built::zstd_content_size(data).map_err(fault)?,
    };
    if claimed > limit {
        return Err(DecodeError::ExpansionTooLarge {
            frame,
            bytes: claimed,
            limit,
        });
    }
    let claimed = claimed as usize;
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(claimed)
        .map_err(|_| DecodeError::OutOfMemory {
            bytes: claimed as u64,
        })?;
    let made = match codec {
        DaskCodec::Lz4 => {
            out.resize(claimed, 0);
            built::lz4_decompress(&data[4..], &mut out).map_err(fault)?
        }
        DaskCodec::Zstd => built::zstd_decompress(data, &mut out).map_err(fault)?,
    };
    if made != claimed {
        return Err(fault(format!(
            "it claims {claimed} bytes but decompresses to {made}"
        )));
    }
    out.truncate(made);
    Ok(Bytes::from(out))
}

/// The codecs' calls, or stand-ins that refuse when a codec is not built (never reached then:
/// `DaskCodec::from_name` refuses its name first).
mod built {
    #[cfg(feature = "lz4")]
    pub(super) fn lz4_compress(data: &[u8]) -> Option<Vec<u8>> {
        Some(lz4_flex::block::compress_prepend_size(data))
    }

    #[cfg(not(feature = "lz4"))]
    pub(super) fn lz4_compress(_: &[u8]) -> Option<Vec<u8>> {
        None
    }

    /// Decompresses into `out` (sized to the claim); the bytes made.
    #[cfg(feature = "lz4")]
    pub(super) fn lz4_decompress(body: &[u8], out: &mut [u8]) -> Result<usize, String> {
        lz4_flex::block::decompress_into(body, out).map_err(|e| e.to_string())
    }

    #[cfg(not(feature = "lz4"))]
    pub(super) fn lz4_decompress(_: &[u8], _: &mut [u8]) -> Result<usize, String> {
        Err("lz4 is not built in".into())
    }

    #[cfg(feature = "zstd")]
    pub(super) fn zstd_compress(data: &[u8]) -> Option<Vec<u8>> {
        // Dask's default level (`distributed.comm.zstd.level`).
        zstd::bulk::compress(data, 3).ok()
    }

    #[cfg(not(feature = "zstd"))]
    pub(super) fn zstd_compress(_: &[u8]) -> Option<Vec<u8>> {
        None
    }

    #[cfg(feature = "zstd")]
    pub(super) fn zstd_content_size(data: &[u8]) -> Result<u64, String> {
        match zstd::zstd_safe::get_frame_content_size(data) {
            Ok(Some(size)) => Ok(size),
            Ok(None) => Err("the frame does not record its size".into()),
            Err(_) => Err("not a zstandard frame".into()),
        }
    }

    #[cfg(not(feature = "zstd"))]
    pub(super) fn zstd_content_size(_: &[u8]) -> Result<u64, String> {
        Err("zstd is not built in".into())
    }

    /// Decompresses into the spare capacity of `out` (reserved to the claim); the bytes made.
    #[cfg(feature = "zstd")]
    pub(super) fn zstd_decompress(data: &[u8], out: &mut Vec<u8>) -> Result<usize, String> {
        zstd::bulk::Decompressor::new()
            .and_then(|mut d| d.decompress_to_buffer(data, out))
            .map_err(|e| e.to_string())
    }

    #[cfg(not(feature = "zstd"))]
    pub(super) fn zstd_decompress(_: &[u8], _: &mut Vec<u8>) -> Result<usize, String> {
        Err("zstd is not built in".into())
    }
}
