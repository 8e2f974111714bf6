//! [`ArrayError`]: what can be wrong building an array, viewing it, or copying its elements.

use crate::DType;

/// What was wrong building an array from its parts, viewing it, or copying its elements. Parts
/// from the wire are untrusted: each problem with them is its own variant.
///
/// The errors of the ways in from outside wrap this one: [`ArrayHeaderError`](crate::ArrayHeaderError)
/// (the array family), [`NpyError`](crate::npy::NpyError) (`.npy` files), and the Arrow errors of
/// [`arrow`](crate::arrow).
///
/// ```
/// use pontoon_array::{Array, ArrayError};
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
    /// The number of elements, or the bytes they span, does not fit this machine's `isize`
    /// (ndarray's rule, and the one numpy keeps too): for an empty array, the product of its
    /// non-zero dimensions counts.
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
    /// Elements that would make more memory, once copied or viewed as a whole, than the
    /// receiver's [`Limits::max_expansion`](pontoon_wire::Limits::max_expansion) allows for the
    /// bytes they lie in (a broadcast array, or elements that overlap): refused before anything
    /// is allocated.
    #[error(
        "{logical_bytes} bytes of elements from {referenced_bytes} bytes of data is more than the \
         receiver's limits allow ({limit_bytes} bytes: max_expansion_ratio, max_expanded_bytes)"
    )]
    ExpansionTooLarge {
        /// Elements times bytes per element.
        logical_bytes: u64,
        /// Bytes of data the elements lie in.
        referenced_bytes: u64,
        /// The most bytes the limits allow from `referenced_bytes`.
        limit_bytes: u64,
    },
    /// An allocation for a copy of the elements failed: the machine has not that much memory
    /// to give.
    #[error("cannot allocate {bytes} bytes for a copy of the elements")]
    OutOfMemory {
        /// The bytes asked for.
        bytes: usize,
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
    /// A slice of an array that is not contiguous, or a view of strides that are not whole
    /// elements.
    #[error("the array is not contiguous; use view() or to_contiguous()")]
    NotContiguous,
}

/// `error` and each of its causes, joined by `: `: for the places (serde's custom errors) that
/// keep an error's text only, and would lose its `source()` chain.
pub(crate) fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(source) = cause {
        text.push_str(": ");
        text.push_str(&source.to_string());
        cause = source.source();
    }
    text
}
