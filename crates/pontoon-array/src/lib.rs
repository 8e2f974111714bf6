//! pontoon-array: n-dimensional arrays and Arrow data that cross boundaries as views, never copies.
//!
//! Numeric arrays are why Ray and Dask built serialization of their own: pickle copies them, and
//! copying a gigabyte costs more than everything else in a message. An [`Array`] here is a view of
//! the bytes that carried it: a receive buffer, a memory-mapped file, shared memory.
//!
//! - **Dtypes**: bool, i8–i64, u8–u64, f32, f64, complex64, complex128, datetime64 and
//!   timedelta64 with a unit, named by numpy's dtype strings (`<f8`, `>i4`, `|b1`, `<M8[us]`).
//! - **Layouts**: shape and byte strides as numpy has them: C order, Fortran order, negative
//!   strides, 0 for broadcast. Big-endian arrays are readable; [`Array::to_native`] is the
//!   explicit copy that makes them viewable.
//! - **Building**: from a `Vec<T>` or an `ndarray` array (no copy), or filled in place
//!   ([`Array::build`]); from untrusted parts with [`Array::from_parts`], which checks every
//!   length and stride, and bounds what a broadcast may make by the receiver's
//!   [`Limits::max_expansion`](pontoon_wire::Limits::max_expansion) (`docs/array-format.md`).
//! - **Views without copy**: `ndarray::ArrayViewD<T>` ([`Array::view`]) and `&[T]` when
//!   contiguous ([`Array::as_slice`]). Elements are always aligned: pontoon's transport and store
//!   deliver aligned frames, and a misaligned frame from elsewhere is copied once, when the array
//!   is built: only the bytes its elements lie in.
//! - **Copies are fallible**: every copy whose size comes from the array
//!   ([`Array::to_contiguous`], [`Array::to_native`], [`Array::to_ndarray`], `make_mut`'s) is an
//!   [`ArrayError::OutOfMemory`] when the memory cannot be had, never an abort; `==` copies
//!   nothing.
//! - **Copy-on-write**: [`Array::make_mut`] writes in place when the array is the only holder of
//!   its buffer, and copies once when the buffer is shared.
//! - **Across boundaries**: the [`ArrayFamily`] sends a header (dtype, shape, strides) and one data
//!   frame; an `Array` inside any serde struct travels the same way through pontoon-family's
//!   out-of-band buffers. The sending rule: the smallest stretch of the data holding every
//!   element is sent as is when it is no larger than the elements themselves, and the elements
//!   are compacted to C order otherwise; so a broadcast array sends only its base.
//!
//! ```
//! use pontoon_array::Array;
//! use pontoon_family::Registry;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Frame { name: String, pixels: Array }
//!
//! let pixels = Array::from_shape_vec(&[480, 640], vec![0u8; 480 * 640])?;
//! let registry = Registry::new();
//! let message = registry.serialize(&Frame { name: "cam0".into(), pixels })?;
//! let back: Frame = registry.deserialize(&message)?;
//! assert_eq!(back.pixels.data().as_ptr(), message.frames[0].as_ptr()); // a view of the frame
//! assert_eq!(back.pixels.shape(), &[480, 640]);
//! # #[cfg(feature = "ndarray")]
//! assert_eq!(back.pixels.view::<u8>()?.shape(), &[480, 640]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![doc(test(attr(deny(warnings))))]
#![warn(missing_debug_implementations)]

mod array;
#[cfg(feature = "arrow")]
pub mod arrow;
mod dtype;
mod element;
mod error;
mod family;
pub mod npy;

pub use array::{Array, MAX_DIMS};
pub use dtype::{ByteOrder, DType, TimeUnit};
pub use element::Element;
pub use error::ArrayError;
pub use family::{ArrayFamily, ArrayHeaderError};

/// The `ndarray` crate this one is built with (its views and arrays are in this crate's API),
/// so users name the same version.
///
/// ```
/// let a = pontoon_array::Array::from_ndarray(pontoon_array::ndarray::arr1(&[1u8, 2]))?;
/// assert_eq!(a.len(), 2);
/// # Ok::<(), pontoon_array::ArrayError>(())
/// ```
#[cfg(feature = "ndarray")]
pub use ndarray;

/// The `bytes` crate this one is built with ([`Array::data`] is a `bytes::Bytes`).
///
/// ```
/// let a = pontoon_array::Array::from_vec(vec![1u8]);
/// let data: &pontoon_array::bytes::Bytes = a.data();
/// assert_eq!(&data[..], [1]);
/// ```
pub use bytes;

// The README's example is compiled and run as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
