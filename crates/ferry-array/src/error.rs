//! [`ArrayError`]: what can be wrong with an array, its header, or a view asked of it.

use crate::DType;

/// What was wrong building, viewing or decoding an array. Headers and frames from the wire are
/// untrusted: each problem with them is its own variant.
///
/// ```
/// use ferry_array::{Array, ArrayError};
/// let err = Array::from_vec(vec![1.0f64, 2.0]).as_slice::<i32>().unwrap_err();
/// assert!(matches!(err, ArrayError::WrongType { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArrayError {
    /// A dtype string that is not one of the supported numeric types.
    #[error("unknown or unsupported dtype `{0}`")]
    UnknownDType(String),
    /// Shape and strides have different lengths.
    #[error("{shape} dimensions but {strides} strides")]
    RankMismatch {
        /// Dimensions in the shape.
        shape: usize,
        /// Entries in the strides.
        strides: usize,
    },
    /// More dimensions than supported.
    #[error("{0} dimensions is more than the supported 32")]
    TooManyDimensions(usize),
    /// A negative dimension.
    #[error("dimension {axis} is negative ({len})")]
    NegativeDimension {
        /// The axis.
        axis: usize,
        /// The length given.
        len: i64,
    },
    /// The number of elements, or the bytes they span, overflows.
    #[error("the shape {shape:?} with these strides overflows")]
    Overflow {
        /// The shape.
        shape: Vec<usize>,
    },
    /// The elements reach outside the data.
    #[error("the elements span bytes {start}..{end} from the data start, but the data holds {len}")]
    OutOfBounds {
        /// First byte an element needs (may be before the data, hence signed).
        start: i128,
        /// One past the last byte an element needs.
        end: i128,
        /// Bytes of data available.
        len: usize,
    },
    /// The data length does not match the shape (for contiguous data that must match exactly).
    #[error("{elements} elements of {itemsize} bytes need {needed} bytes, the data holds {len}")]
    WrongLength {
        /// Elements in the shape.
        elements: usize,
        /// Bytes per element.
        itemsize: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        len: usize,
    },
    /// A view of another element type than the array holds.
    #[error("the array holds {actual}, not {requested}")]
    WrongType {
        /// The array's dtype.
        actual: DType,
        /// The element type asked for.
        requested: DType,
    },
    /// A view of non-native byte order data; convert it with [`Array::to_native`](crate::Array::to_native).
    #[error("the array is in the other byte order; convert it with to_native() first")]
    ForeignByteOrder,
    /// A slice of an array that is not contiguous.
    #[error("the array is not contiguous; use view() or to_contiguous()")]
    NotContiguous,
    /// A `bool` array holding a byte other than 0 or 1.
    #[error("a bool element holds {0}, not 0 or 1")]
    InvalidBool(u8),
    /// The array family's header is malformed.
    #[error("bad array header: {0}")]
    Header(String),
    /// An Arrow array with nulls, which a ferry array cannot hold.
    #[error("the Arrow array has {0} nulls; ferry arrays cannot hold nulls")]
    ArrowNulls(usize),
    /// A type with no counterpart on the other side: an Arrow type with no ferry dtype, or a
    /// dtype with no Arrow type.
    #[error("no conversion between Arrow and ferry for {0}")]
    ArrowType(String),
    /// An array of other than one dimension where Arrow needs one.
    #[error("Arrow arrays have one dimension, this array has {0}")]
    NotOneDimensional(usize),
    /// An error from Arrow, or malformed Arrow data (IPC bytes, or the arrow family's metadata
    /// and frames).
    #[error("arrow: {0}")]
    Arrow(String),
    /// A `.npy` file that is malformed or holds what ferry does not support (bad magic, unknown
    /// version, a header that is not numpy's dict, a structured dtype, ...); the message says
    /// which.
    #[error("bad .npy file: {0}")]
    Npy(String),
}
