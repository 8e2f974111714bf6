//! The errors, one enum per operation: [`FramingError`] (the TCP framing), [`DecodeError`] (a
//! message from its frames), [`EncodeError`], and [`MsgpackFault`] (what was wrong in a
//! MessagePack frame).

/// What was wrong in a MessagePack frame.
///
/// ```
/// assert_eq!(pontoon_dask::MsgpackFault::Truncated.to_string(), "it ends inside a value");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsgpackFault {
    /// The frame ends inside a value (or a count promises more items than bytes remain).
    #[error("it ends inside a value")]
    Truncated,
    /// Bytes follow the value.
    #[error("bytes follow the value")]
    TrailingBytes,
    /// Nested deeper than the limit.
    #[error("it nests deeper than the limit")]
    TooDeep,
    /// The reserved marker 0xc1.
    #[error("it holds the reserved marker 0xc1")]
    ReservedMarker,
    /// A str that is not UTF-8 (Python's msgpack reads with `raw=False`).
    #[error("a str is not UTF-8")]
    InvalidUtf8,
}

/// Why Dask's TCP framing (`u64 N, u64 count, u64 length...`, then the frames) was refused.
///
/// ```
/// use pontoon_dask::{FramingError, framing::parse_prelude};
/// let mut bytes = 8u64.to_le_bytes().to_vec();
/// bytes.extend_from_slice(&(1u64 << 63).to_le_bytes());
/// let err = parse_prelude(&bytes, &pontoon_wire::Limits::DEFAULT).unwrap_err();
/// assert!(matches!(err, FramingError::TooManyFrames { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// More frames than the receiver's limit.
    #[error("the message has {count} frames, more than the limit of {limit}")]
    TooManyFrames {
        /// The count sent.
        count: u64,
        /// The receiver's limit.
        limit: u64,
    },
    /// A frame longer than the receiver's limit.
    #[error("frame {index} is {len} bytes, more than the limit of {limit}")]
    FrameTooLarge {
        /// Which frame.
        index: usize,
        /// Its length as sent.
        len: u64,
        /// The receiver's limit.
        limit: u64,
    },
    /// The frames together are longer than the receiver's limit.
    #[error("the message is {len} bytes, more than the limit of {limit}")]
    MessageTooLarge {
        /// The sum of the lengths (saturated).
        len: u64,
        /// The receiver's limit.
        limit: u64,
    },
    /// The first length (the bytes Dask reads into one buffer) is not the prelude plus a
    /// whole number of the first frames.
    #[error(
        "the first length {declared} is not the prelude ({prelude} bytes) plus the first frames"
    )]
    BadFirstLength {
        /// The length sent.
        declared: u64,
        /// The prelude's own length.
        prelude: u64,
    },
    /// The input ended before the message did.
    #[error("the input ends after {have} bytes, inside a message of {needed} bytes")]
    Truncated {
        /// Bytes the message needs (from its prelude, or what was needed to read one).
        needed: u64,
        /// Bytes there are.
        have: u64,
    },
    /// A receive buffer the limits allowed could not be allocated.
    #[error("could not allocate {bytes} bytes for a frame")]
    OutOfMemory {
        /// The size asked for.
        bytes: u64,
    },
}

/// Why a message could not be decoded from its frames.
///
/// ```
/// use pontoon_dask::{DecodeError, DecodeOptions, decode};
/// let err = decode(&[], &DecodeOptions::default()).unwrap_err();
/// assert!(matches!(err, DecodeError::NoFrames));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A message has at least frame 0.
    #[error("the message has no frames")]
    NoFrames,
    /// A frame that should be MessagePack is not.
    #[error("frame {frame} is not valid MessagePack at byte {offset}: {fault}")]
    Msgpack {
        /// Which frame.
        frame: usize,
        /// The byte offset in it.
        offset: usize,
        /// What was wrong.
        fault: MsgpackFault,
    },
    /// A frame that should be MessagePack is longer than the header limit.
    #[error("frame {frame} is {len} bytes of MessagePack, more than the limit of {limit}")]
    HeaderTooLarge {
        /// Which frame.
        frame: usize,
        /// Its length.
        len: usize,
        /// `Limits::max_header_bytes`.
        limit: u64,
    },
    /// A `__Serialized__` or `__Pickled__` placeholder names a frame the message does not have
    /// (frame 0 is the message itself).
    #[error("a {kind} placeholder points to frame {offset}, but the message has {frames} frames")]
    BadPlaceholder {
        /// `__Serialized__` or `__Pickled__`.
        kind: &'static str,
        /// The offset sent (as text: it may not be an int).
        offset: String,
        /// The frames in the message.
        frames: usize,
    },
    /// A sub-header claims more sub-frames (or names split offsets) past the message's frames.
    #[error(
        "the sub-header in frame {sub_header} claims {claimed} frames; the message has {frames}"
    )]
    SubFramesOutOfRange {
        /// The sub-header's frame.
        sub_header: usize,
        /// What it claims (saturated).
        claimed: u64,
        /// Frames in the message.
        frames: usize,
    },
    /// A sub-header lacks a field it must have, or has it of the wrong type.
    #[error("the {context} lacks a valid `{field}`{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    BadField {
        /// Which field.
        field: &'static str,
        /// Which header.
        context: &'static str,
        /// More, when there is more to say.
        detail: String,
    },
    /// A serializer family this crate does not decode.
    #[error("serializer `{0}` is not decoded here (dask, pickle, msgpack and error are)")]
    UnknownSerializer(String),
    /// A family the receiver's `DecodeOptions::deserializers` does not accept.
    #[error("the `{family}` family is refused: this receiver accepts {accepted:?}")]
    Refused {
        /// The family sent.
        family: String,
        /// The families accepted.
        accepted: Vec<String>,
    },
    /// A type of the `dask` family this crate does not decode.
    #[error(
        "the dask family's type `{0}` is not decoded here (numpy.ndarray, bytes and bytearray are)"
    )]
    UnsupportedType(String),
    /// A numpy dtype this crate refuses (object arrays hold Python objects).
    #[error("numpy dtype `{0}` is refused")]
    UnsupportedDType(String),
    /// A compression this build cannot undo (zlib, snappy, or a codec not built in).
    #[error("frame {frame} is compressed with `{name}`, which this build does not decompress")]
    UnsupportedCompression {
        /// Which frame.
        frame: usize,
        /// The name sent.
        name: String,
    },
    /// A compressed frame that does not decompress as it claims.
    #[error("frame {frame} does not decompress as `{codec}`: {detail}")]
    Decompress {
        /// Which frame.
        frame: usize,
        /// The codec.
        codec: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// Decompressing or joining frames would make more bytes than the limits allow.
    #[error("frame {frame} would expand to {bytes} bytes, more than the limit of {limit}")]
    ExpansionTooLarge {
        /// Which frame.
        frame: usize,
        /// The bytes it would make.
        bytes: u64,
        /// What the limits allow.
        limit: u64,
    },
    /// Memory for a decompressed or joined frame could not be allocated.
    #[error("could not allocate {bytes} bytes")]
    OutOfMemory {
        /// The size asked for.
        bytes: u64,
    },
    /// An array's layout that pontoon-array refused (out of bounds, overflow, expansion).
    #[error("the numpy array in frame {frame} is refused")]
    Array {
        /// The array's data frame.
        frame: usize,
        /// Why.
        #[source]
        source: pontoon_array::ArrayError,
    },
    /// A string or void array whose elements reach outside its frame.
    #[error(
        "an array of {itemsize}-byte elements, shape {shape:?}, strides {strides:?}, does not lie inside its {len} bytes"
    )]
    RawOutOfBounds {
        /// Bytes per element.
        itemsize: usize,
        /// The shape.
        shape: Vec<usize>,
        /// The strides.
        strides: Vec<isize>,
        /// The frame's length.
        len: usize,
    },
    /// A pickle pontoon-pickle refused.
    #[error("the pickle in frame {frame} is refused")]
    Pickle {
        /// Its frame.
        frame: usize,
        /// Why.
        #[source]
        source: pontoon_pickle::LoadError,
    },
}

/// Why a value could not be encoded as a Dask message.
///
/// ```
/// use pontoon_dask::{EncodeError, EncodeOptions, Value, encode};
/// let mut deep = Value::Nil;
/// for _ in 0..1000 { deep = Value::List(vec![deep]); }
/// assert!(matches!(encode(&deep, &EncodeOptions::default()), Err(EncodeError::TooDeep { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Nested deeper than `EncodeOptions::max_depth` (Python's msgpack refuses such depths too).
    #[error("the value nests deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A string, binary, array or map longer than MessagePack's 2^32 - 1.
    #[error("a {what} of {len} is longer than MessagePack allows")]
    TooLong {
        /// What it was.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A dict collection whose keys and items differ in number.
    #[error("a dict collection has {keys} keys for {items} items")]
    CollectionKeys {
        /// Keys.
        keys: usize,
        /// Items.
        items: usize,
    },
    /// A pickle pontoon-pickle could not write.
    #[error("the pickle could not be written")]
    Pickle(#[source] pontoon_pickle::DumpError),
    /// An array that could not be made contiguous.
    #[error("the array could not be made contiguous")]
    Array(#[source] pontoon_array::ArrayError),
}
