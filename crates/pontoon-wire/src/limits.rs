//! [`Limits`]: the bounds every length and count read from the wire is checked against.

use crate::header::DEFAULT_MAX_HEADER_DEPTH;

/// Bounds on what a decoder accepts. Each length or count read from the wire is checked against
/// these *before* anything is allocated for it; input over a limit is refused with an error that
/// names the limit.
///
/// The defaults protect a process from a hostile or broken peer while leaving room for real
/// workloads: 16 GiB per frame and per message as sent (there is no format limit: lengths are
/// 64-bit), a million frames per message, 64 MiB of header nested at most 128 deep, and at most
/// 256 bytes made in memory per byte received, and 1 GiB in all, by any one expansion
/// (decompression, a broadcast array; see [`Limits::max_expansion`]). Raise them for larger
/// objects:
///
/// ```
/// let mut limits = pontoon_wire::Limits::default();
/// limits.max_frame_bytes = 64 << 30;
/// limits.max_message_bytes = 64 << 30;
/// let decoder = pontoon_wire::Decoder::with_limits(limits);
/// # let _ = decoder;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most frames in one message.
    pub max_frames: u64,
    /// Most bytes in one frame, both as sent and once decompressed.
    pub max_frame_bytes: u64,
    /// Most bytes in one message: its encoded length, and separately the sum of its frames once
    /// decompressed.
    pub max_message_bytes: u64,
    /// Most bytes in one message's header.
    pub max_header_bytes: u64,
    /// Deepest nesting of arrays and maps in a header.
    pub max_header_depth: usize,
    /// Most bytes a decoder may make in memory per byte it received, in any one expansion: a
    /// frame decompressed, a broadcast array made contiguous, elements that take no bytes on the
    /// wire. See [`Limits::max_expansion`].
    pub max_expansion_ratio: u64,
    /// Most bytes any one expansion may make in all, whatever the ratio allows.
    pub max_expanded_bytes: u64,
}

/// An expansion of this many bytes or fewer is always allowed, whatever the ratio: a scalar
/// broadcast to a small array, a short run of zeros compressed.
pub const EXPANSION_FLOOR: u64 = 64 << 10;

impl Limits {
    /// The default limits (see the type's docs).
    ///
    /// ```
    /// assert_eq!(pontoon_wire::Limits::DEFAULT.max_frames, 1 << 20);
    /// ```
    pub const DEFAULT: Limits = Limits {
        max_frames: 1 << 20,
        max_frame_bytes: 16 << 30,
        max_message_bytes: 16 << 30,
        max_header_bytes: 64 << 20,
        max_header_depth: DEFAULT_MAX_HEADER_DEPTH,
        max_expansion_ratio: 256,
        max_expanded_bytes: 1 << 30,
    };

    /// No limits beyond what the format and the machine impose: for trusted input only, such as a
    /// file this process wrote itself.
    ///
    /// ```
    /// assert_eq!(pontoon_wire::Limits::UNLIMITED.max_frame_bytes, u64::MAX);
    /// ```
    pub const UNLIMITED: Limits = Limits {
        max_frames: u64::MAX,
        max_frame_bytes: u64::MAX,
        max_message_bytes: u64::MAX,
        max_header_bytes: u64::MAX,
        max_header_depth: DEFAULT_MAX_HEADER_DEPTH,
        max_expansion_ratio: u64::MAX,
        max_expanded_bytes: u64::MAX,
    };

    /// The most bytes a decoder may make in memory from `received` bytes of input: the ratio's
    /// share of `received` (at least [`EXPANSION_FLOOR`]), and never more than
    /// [`max_expanded_bytes`](Limits::max_expanded_bytes). A ratio of `u64::MAX` means no ratio:
    /// then only `max_expanded_bytes` applies, even to an expansion from zero bytes. Every decoder that can make more
    /// than it was given checks its output size against this *before* it allocates.
    ///
    /// ```
    /// let limits = pontoon_wire::Limits::default();
    /// assert_eq!(limits.max_expansion(1 << 20), 256 << 20); // 256:1
    /// assert_eq!(limits.max_expansion(8), pontoon_wire::EXPANSION_FLOOR); // small is always fine
    /// assert_eq!(limits.max_expansion(1 << 30), 1 << 30); // never more than 1 GiB
    /// assert_eq!(pontoon_wire::Limits::UNLIMITED.max_expansion(0), u64::MAX); // no ratio at all
    /// ```
    pub fn max_expansion(&self, received: u64) -> u64 {
        if self.max_expansion_ratio == u64::MAX {
            // No ratio at all (as in `UNLIMITED`), even for an expansion from nothing.
            return self.max_expanded_bytes;
        }
        received
            .saturating_mul(self.max_expansion_ratio)
            .max(EXPANSION_FLOOR)
            .min(self.max_expanded_bytes)
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}
