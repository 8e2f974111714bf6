//! [`Limits`]: the bounds every length and count read from the wire is checked against.

use crate::header::DEFAULT_MAX_HEADER_DEPTH;

/// Bounds on what a decoder accepts. Each length or count read from the wire is checked against
/// these *before* anything is allocated for it; input over a limit is refused with an error that
/// names the limit.
///
/// The defaults protect a process from a hostile or broken peer while leaving room for real
/// workloads: 16 GiB per frame and per message (there is no format limit: lengths are 64-bit), a
/// million frames per message, 64 MiB of header nested at most 128 deep. Raise them for larger
/// objects:
///
/// ```
/// let mut limits = ferry_wire::Limits::default();
/// limits.max_frame_bytes = 64 << 30;
/// limits.max_message_bytes = 64 << 30;
/// let decoder = ferry_wire::Decoder::with_limits(limits);
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
}

impl Limits {
    /// The default limits (see the type's docs).
    ///
    /// ```
    /// assert_eq!(ferry_wire::Limits::DEFAULT.max_frames, 1 << 20);
    /// ```
    pub const DEFAULT: Limits = Limits {
        max_frames: 1 << 20,
        max_frame_bytes: 16 << 30,
        max_message_bytes: 16 << 30,
        max_header_bytes: 64 << 20,
        max_header_depth: DEFAULT_MAX_HEADER_DEPTH,
    };

    /// No limits beyond what the format and the machine impose: for trusted input only, such as a
    /// file this process wrote itself.
    ///
    /// ```
    /// assert_eq!(ferry_wire::Limits::UNLIMITED.max_frame_bytes, u64::MAX);
    /// ```
    pub const UNLIMITED: Limits = Limits {
        max_frames: u64::MAX,
        max_frame_bytes: u64::MAX,
        max_message_bytes: u64::MAX,
        max_header_bytes: u64::MAX,
        max_header_depth: DEFAULT_MAX_HEADER_DEPTH,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}
