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
    let out: Vec<u8> = match codec {
        #[cfg(feature = "lz4")]
        DaskCodec::Lz4 => lz4_flex::block::compress_prepend_size(data),
        #[cfg(feature = "zstd")]
        DaskCodec::Zstd => zstd::bulk::compress(data, 3).ok()?,
        #[allow(unreachable_patterns)]
        _ => return None,
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
    let (claimed, body) = match codec {
        DaskCodec::Lz4 => {
            let Some((size, body)) = data.split_first_chunk::<4>() else {
                return Err(fault("shorter than its 4-byte size".into()));
            };
            (u64::from(u32::from_le_bytes(*size)), body)
        }
        DaskCodec::Zstd => {
            #[cfg(feature = "zstd")]
            let size = match zstd::zstd_safe::get_frame_content_size(data) {
                Ok(Some(size)) => size,
                Ok(None) => return Err(fault("the frame does not record its size".into())),
                Err(_) => return Err(fault("not a zstandard frame".into())),
            };
            #[cfg(not(feature = "zstd"))]
            let size = 0;
            (size, data)
        }
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
        #[cfg(feature = "lz4")]
        DaskCodec::Lz4 => {
            out.resize(claimed, 0);
            lz4_flex::block::decompress_into(body, &mut out).map_err(|e| fault(e.to_string()))?
        }
        #[cfg(feature = "zstd")]
        DaskCodec::Zstd => {
            let _ = body;
            zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress_to_buffer(data, &mut out))
                .map_err(|e| fault(e.to_string()))?
        }
        #[allow(unreachable_patterns)]
        _ => unreachable!("from_name returns only the codecs built in"),
    };
    if made != claimed {
        return Err(fault(format!(
            "it claims {claimed} bytes but decompresses to {made}"
        )));
    }
    out.truncate(made);
    Ok(Bytes::from(out))
}
