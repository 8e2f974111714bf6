//! [`Array`]: an n-dimensional array whose data is a `Bytes`: a view of whatever carried it.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use pontoon_wire::Limits;

use crate::{ArrayError, ByteOrder, DType, Element};

#[cfg(feature = "ndarray")]
mod ndarray_views;

/// The most dimensions an array may have (numpy's limit, too).
pub const MAX_DIMS: usize = 32;

/// An n-dimensional array of a numeric [`DType`] whose data is a [`Bytes`]: zero-copy from any
/// frame, shared cheaply, written only through [`Array::make_mut`] (copy-on-write).
///
/// Strides are in bytes, numpy's convention: C order, Fortran order, negative strides, and 0 for
/// broadcast axes are all allowed. Elements are always aligned for their dtype: an array built
/// from misaligned bytes (a frame from a carrier other than pontoon's) is copied once, at
/// construction, into aligned memory.
///
/// ```
/// use pontoon_array::Array;
/// let a = Array::from_shape_vec(&[2, 3], vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// assert_eq!(a.shape(), &[2, 3]);
/// assert_eq!(a.strides(), &[24, 8]);
/// # #[cfg(feature = "ndarray")]
/// assert_eq!(a.view::<f64>()?[[1, 2]], 6.0); // with the `ndarray` feature (default)
/// assert_eq!(a.as_slice::<f64>()?, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// # Ok::<(), pontoon_array::ArrayError>(())
/// ```
#[derive(Clone)]
pub struct Array {
    dtype: DType,
    order: ByteOrder,
    shape: Vec<usize>,
    strides: Vec<isize>,
    /// Byte offset, in `data`, of the element at index `[0, 0, ...]`.
    offset: usize,
    data: Bytes,
}

/// Keeps a `Vec<T>` alive as the memory of a `Bytes`, so building from a vector copies nothing.
struct VecOwner<T>(Vec<T>);

impl<T: Element> AsRef<[u8]> for VecOwner<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// C-order strides in bytes for `shape`. Only an empty array (whose strides are never followed)
/// can have dimensions whose product overflows: its strides saturate.
fn c_strides(shape: &[usize], itemsize: usize) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut step = isize::try_from(itemsize).unwrap_or(isize::MAX);
    for (stride, &len) in strides.iter_mut().zip(shape).rev() {
        *stride = step;
        step = step.saturating_mul(isize::try_from(len.max(1)).unwrap_or(isize::MAX));
    }
    strides
}

/// The bytes the elements span, relative to the data start: `start..end` (empty for no elements).
fn span(
    shape: &[usize],
    strides: &[isize],
    offset: usize,
    itemsize: usize,
) -> Option<(i128, i128)> {
    if shape.contains(&0) {
        return Some((offset as i128, offset as i128));
    }
    let (mut lo, mut hi) = (offset as i128, offset as i128 + itemsize as i128);
    for (&len, &stride) in shape.iter().zip(strides) {
        let reach = (len as i128 - 1).checked_mul(stride as i128)?;
        if reach < 0 {
            lo += reach;
        } else {
            hi += reach;
        }
    }
    Some((lo, hi))
}

/// A zeroed buffer of `len` bytes whose start is aligned to `align`, or an error if the memory
/// cannot be had: its size comes from the array, which may come from a peer.
fn aligned_zeroed(len: usize, align: usize) -> Result<BytesMut, ArrayError> {
    let total = len
        .checked_add(align.saturating_sub(1))
        .ok_or(ArrayError::OutOfMemory { bytes: len })?;
    let mut vec = Vec::new();
    vec.try_reserve_exact(total)
        .map_err(|_| ArrayError::OutOfMemory { bytes: total })?;
    vec.resize(total, 0u8);
    // A `Bytes` made from a vector it alone holds becomes a `BytesMut` without a copy.
    let mut buf = BytesMut::from(Bytes::from(vec));
    let pad = buf.as_ptr().align_offset(align).min(total - len);
    buf.advance(pad);
    buf.truncate(len);
    Ok(buf)
}

/// A copy of `src` whose start is aligned to `align`, or an error if the memory cannot be had.
/// The bytes are written once, by the copy: zeroing the buffer first would touch every fresh
/// page twice, and fresh pages are what a large copy costs.
fn aligned_copy(src: &[u8], align: usize) -> Result<BytesMut, ArrayError> {
    let total = src
        .len()
        .checked_add(align.saturating_sub(1))
        .ok_or(ArrayError::OutOfMemory { bytes: src.len() })?;
    let mut vec: Vec<u8> = Vec::new();
    vec.try_reserve_exact(total)
        .map_err(|_| ArrayError::OutOfMemory { bytes: total })?;
    let pad = vec.as_ptr().align_offset(align).min(total - src.len());
    vec.resize(pad, 0u8);
    vec.extend_from_slice(src);
    let mut buf = BytesMut::from(Bytes::from(vec));
    buf.advance(pad);
    Ok(buf)
}

/// The byte offset of every element in C order (last index fastest), from the data start,
/// without allocating: the index lives on the stack.
struct ElementOffsets<'a> {
    shape: &'a [usize],
    strides: &'a [isize],
    index: [usize; MAX_DIMS],
    at: isize,
    left: usize,
}

impl<'a> ElementOffsets<'a> {
    /// The offsets of `array`'s elements. Its layout was checked when it was built: every
    /// offset lies inside its data and every reach along an axis fits `isize`.
    fn of(array: &'a Array) -> ElementOffsets<'a> {
        ElementOffsets {
            shape: &array.shape,
            strides: &array.strides,
            index: [0; MAX_DIMS],
            at: isize::try_from(array.offset).unwrap_or(isize::MAX),
            left: array.len(),
        }
    }
}

impl Iterator for ElementOffsets<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.left = self.left.checked_sub(1)?;
        let here = usize::try_from(self.at).ok()?;
        for ((index, &len), &stride) in self
            .index
            .iter_mut()
            .zip(self.shape)
            .zip(self.strides)
            .rev()
        {
            if *index + 1 < len {
                *index += 1;
                self.at = self.at.wrapping_add(stride);
                break;
            }
            // Back to the start of this axis: (len - 1) * stride is inside the checked span.
            self.at = self
                .at
                .wrapping_sub(stride.wrapping_mul(isize::try_from(*index).unwrap_or(0)));
            *index = 0;
        }
        Some(here)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Reverses each lane of `element` in place: a whole element, or each half of a complex one.
fn swap_lanes(dtype: DType, element: &mut [u8]) {
    let lane = match dtype {
        DType::C64 | DType::C128 => dtype.size() / 2,
        other => other.size(),
    };
    for chunk in element.chunks_mut(lane.max(1)) {
        chunk.reverse();
    }
}

/// Checks what ndarray (and numpy) require of a shape for `itemsize`-byte elements: the product
/// of its non-zero dimensions, in elements and in bytes, fits `isize`. Returns the number of
/// elements.
fn checked_elements(shape: &[usize], itemsize: usize) -> Result<usize, ArrayError> {
    if shape.len() > MAX_DIMS {
        return Err(ArrayError::TooManyDimensions(shape.len()));
    }
    let overflow = || ArrayError::Overflow {
        shape: shape.to_vec(),
    };
    let nonzero = shape
        .iter()
        .filter(|&&len| len != 0)
        .try_fold(1usize, |n, &len| n.checked_mul(len))
        .ok_or_else(overflow)?;
    let fits = nonzero
        .checked_mul(itemsize.max(1))
        .is_some_and(|bytes| isize::try_from(bytes).is_ok());
    if !fits {
        return Err(overflow());
    }
    Ok(if shape.contains(&0) { 0 } else { nonzero })
}

impl Array {
    /// A 1-D array that takes the vector as its data, without a copy.
    ///
    /// ```
    /// let a = pontoon_array::Array::from_vec(vec![1i32, 2, 3]);
    /// assert_eq!((a.shape(), a.dtype()), (&[3][..], pontoon_array::DType::I32));
    /// ```
    pub fn from_vec<T: Element>(data: Vec<T>) -> Array {
        let size = T::DTYPE.size();
        Array {
            dtype: T::DTYPE,
            order: ByteOrder::NATIVE,
            shape: vec![data.len()],
            // A vector's bytes fit `isize`, so its length in elements does too.
            strides: vec![isize::try_from(size).unwrap_or(isize::MAX)],
            offset: 0,
            data: Bytes::from_owner(VecOwner(data)),
        }
    }

    /// An array of `shape` (C order) that takes the vector as its data, without a copy.
    ///
    /// ```
    /// let a = pontoon_array::Array::from_shape_vec(&[2, 2], vec![0u8; 4])?;
    /// assert_eq!(a.len(), 4);
    /// assert!(pontoon_array::Array::from_shape_vec(&[3, 2], vec![0u8; 4]).is_err());
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn from_shape_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Result<Array, ArrayError> {
        let size = T::DTYPE.size();
        let elements = checked_elements(shape, size)?;
        if elements != data.len() {
            return Err(ArrayError::WrongLength {
                elements,
                itemsize: size,
                needed: elements.saturating_mul(size),
                len: data.len().saturating_mul(size),
            });
        }
        Ok(Array {
            dtype: T::DTYPE,
            order: ByteOrder::NATIVE,
            shape: shape.to_vec(),
            strides: c_strides(shape, size),
            offset: 0,
            data: Bytes::from_owner(VecOwner(data)),
        })
    }

    /// An array of `shape` (C order) whose elements `fill` writes in place, in a buffer no one
    /// else holds (zeroed first). A buffer that cannot be allocated is an
    /// [`ArrayError::OutOfMemory`].
    ///
    /// ```
    /// let a = pontoon_array::Array::build::<f32>(&[3], |xs| xs.copy_from_slice(&[1.0, 2.0, 3.0]))?;
    /// assert_eq!(a.as_slice::<f32>()?, &[1.0, 2.0, 3.0]);
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn build<T: Element>(
        shape: &[usize],
        fill: impl FnOnce(&mut [T]),
    ) -> Result<Array, ArrayError> {
        let elements = checked_elements(shape, T::DTYPE.size())?;
        let mut data = Vec::new();
        data.try_reserve_exact(elements)
            .map_err(|_| ArrayError::OutOfMemory {
                bytes: elements.saturating_mul(T::DTYPE.size()),
            })?;
        data.resize(elements, T::zeroed());
        fill(&mut data);
        Array::from_shape_vec(shape, data)
    }

    /// An array over `data` as described: the checked constructor for parts from outside.
    ///
    /// Checked before anything is allocated: shape and strides (no overflow, ndarray's rules,
    /// every element inside `data`), and the logical size (elements × bytes per element)
    /// against `limits`: elements that lie in fewer bytes than they make (a broadcast array,
    /// overlapping strides) may make at most [`Limits::max_expansion`] of the bytes they lie in
    /// ([`ArrayError::ExpansionTooLarge`] otherwise). A broadcast array stays a view.
    ///
    /// If the elements are not aligned for `dtype` in `data`, the bytes they lie in (never more)
    /// are copied once into aligned memory; only strides that are not a multiple of the
    /// alignment make a compact C-order copy instead. A copy that cannot be allocated is an
    /// [`ArrayError::OutOfMemory`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use pontoon_array::{Array, ArrayError, ByteOrder, DType};
    /// use pontoon_wire::Limits;
    /// let data = Bytes::from(vec![0u8; 16]);
    /// let a = Array::from_parts(DType::F64, ByteOrder::Little, vec![2], vec![8], 0, data.clone(), &Limits::DEFAULT)?;
    /// assert_eq!(a.len(), 2);
    /// let err = Array::from_parts(DType::F64, ByteOrder::Little, vec![3], vec![8], 0, data.clone(), &Limits::DEFAULT);
    /// assert!(matches!(err, Err(ArrayError::OutOfBounds { .. })));
    /// // 2^40 elements broadcast from one: 8 TiB from 8 bytes.
    /// let err = Array::from_parts(DType::F64, ByteOrder::Little, vec![1 << 40], vec![0], 0, data, &Limits::DEFAULT);
    /// assert!(matches!(err, Err(ArrayError::ExpansionTooLarge { .. })));
    /// # Ok::<(), ArrayError>(())
    /// ```
    ///
    /// [`Limits::max_expansion`]: pontoon_wire::Limits::max_expansion
    pub fn from_parts(
        dtype: DType,
        order: ByteOrder,
        shape: Vec<usize>,
        strides: Vec<isize>,
        offset: usize,
        data: Bytes,
        limits: &Limits,
    ) -> Result<Array, ArrayError> {
        if shape.len() != strides.len() {
            return Err(ArrayError::RankMismatch {
                shape: shape.len(),
                strides: strides.len(),
            });
        }
        let size = dtype.size();
        let elements = checked_elements(&shape, size)?;
        let (start, end) =
            span(&shape, &strides, offset, size).ok_or_else(|| ArrayError::Overflow {
                shape: shape.clone(),
            })?;
        if start < 0 || end > data.len() as i128 || offset > data.len() {
            return Err(ArrayError::OutOfBounds {
                start,
                end,
                len: data.len(),
            });
        }
        // Inside `data`, so both fit `usize`; the shape check bounds the logical size.
        let (start, end) = (start as usize, end as usize);
        let referenced_bytes = (end - start) as u64;
        let logical_bytes = (elements * size) as u64;
        let limit_bytes = limits.max_expansion(referenced_bytes);
        if logical_bytes > referenced_bytes && logical_bytes > limit_bytes {
            return Err(ArrayError::ExpansionTooLarge {
                logical_bytes,
                referenced_bytes,
                limit_bytes,
            });
        }
        let mut array = Array {
            dtype,
            order,
            shape,
            strides,
            offset,
            data,
        };
        if array.is_aligned() {
            return Ok(array);
        }
        let align = dtype.align();
        if array
            .strides
            .iter()
            .all(|s| s.unsigned_abs().is_multiple_of(align))
        {
            // Only the start is off: copy the bytes the elements lie in, strides unchanged.
            array.data = aligned_copy(&array.data[start..end], align)?.freeze();
            array.offset -= start;
            Ok(array)
        } else {
            array.to_contiguous()
        }
    }

    fn is_aligned(&self) -> bool {
        let align = self.dtype.align();
        (self.data.as_ptr() as usize)
            .wrapping_add(self.offset)
            .is_multiple_of(align)
            && self
                .strides
                .iter()
                .all(|s| s.unsigned_abs().is_multiple_of(align))
    }
    /// The element type.
    ///
    /// ```
    /// assert_eq!(pontoon_array::Array::from_vec(vec![1u16]).dtype(), pontoon_array::DType::U16);
    /// ```
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The byte order of the elements.
    ///
    /// ```
    /// let a = pontoon_array::Array::from_vec(vec![1u16]);
    /// assert_eq!(a.byte_order(), pontoon_array::ByteOrder::NATIVE);
    /// ```
    pub fn byte_order(&self) -> ByteOrder {
        self.order
    }

    /// numpy's dtype string: `<f8`, `>i4`, `|b1`.
    ///
    /// ```
    /// assert_eq!(pontoon_array::Array::from_vec(vec![1.0f64]).descr(), "<f8");
    /// ```
    pub fn descr(&self) -> String {
        self.dtype.descr(self.order)
    }

    /// The length of each dimension.
    ///
    /// ```
    /// assert_eq!(pontoon_array::Array::from_vec(vec![0i8; 5]).shape(), &[5]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The step, in bytes, between neighbours along each dimension (numpy's convention).
    ///
    /// ```
    /// assert_eq!(pontoon_array::Array::from_vec(vec![0i32; 5]).strides(), &[4]);
    /// ```
    pub fn strides(&self) -> &[isize] {
        &self.strides
    }

    /// The byte offset of the first element (index `[0, 0, ...]`) in [`Array::data`].
    ///
    /// ```
    /// assert_eq!(pontoon_array::Array::from_vec(vec![0i32; 5]).offset(), 0);
    /// ```
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes the array looks into. Cloning it is cheap.
    ///
    /// ```
    /// assert_eq!(pontoon_array::Array::from_vec(vec![0u32; 4]).data().len(), 16);
    /// ```
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The number of elements.
    ///
    /// ```
    /// assert_eq!(pontoon_array::Array::from_shape_vec(&[2, 0], Vec::<f32>::new())?.len(), 0);
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no elements.
    ///
    /// ```
    /// assert!(pontoon_array::Array::from_vec(Vec::<u8>::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the elements lie in C order, back to back.
    ///
    /// ```
    /// assert!(pontoon_array::Array::from_vec(vec![1u8, 2]).is_c_contiguous());
    /// ```
    pub fn is_c_contiguous(&self) -> bool {
        self.contiguous_in(self.shape.iter().zip(&self.strides).rev())
    }

    /// Whether the elements lie in Fortran order, back to back.
    ///
    /// ```
    /// assert!(pontoon_array::Array::from_vec(vec![1u8, 2]).is_f_contiguous());
    /// ```
    pub fn is_f_contiguous(&self) -> bool {
        self.contiguous_in(self.shape.iter().zip(&self.strides))
    }

    fn contiguous_in<'a>(&self, axes: impl Iterator<Item = (&'a usize, &'a isize)>) -> bool {
        if self.is_empty() {
            return true; // as numpy says: no elements lie anywhere
        }
        let mut expected = self.dtype.size() as isize;
        for (&len, &stride) in axes {
            if len > 1 && stride != expected {
                return false;
            }
            expected = expected.saturating_mul(len as isize);
        }
        true
    }

    fn check_view<T: Element>(&self) -> Result<(), ArrayError> {
        self.check_type::<T>()?;
        if self.order != ByteOrder::NATIVE && self.dtype.size() > 1 {
            return Err(ArrayError::ForeignByteOrder);
        }
        Ok(())
    }

    fn check_type<T: Element>(&self) -> Result<(), ArrayError> {
        if !T::views(self.dtype) {
            return Err(ArrayError::WrongType {
                actual: self.dtype,
                requested: T::DTYPE,
            });
        }
        Ok(())
    }

    /// The elements as a slice, in memory order, without a copy: for arrays that are contiguous
    /// (C or Fortran order), in this machine's byte order.
    ///
    /// ```
    /// let a = pontoon_array::Array::from_vec(vec![1u64, 2]);
    /// assert_eq!(a.as_slice::<u64>()?, &[1, 2]);
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn as_slice<T: Element>(&self) -> Result<&[T], ArrayError> {
        self.check_view::<T>()?;
        if !(self.is_c_contiguous() || self.is_f_contiguous()) {
            return Err(ArrayError::NotContiguous);
        }
        if self.is_empty() {
            return Ok(&[]);
        }
        let bytes = self
            .data
            .get(self.offset..self.offset + self.len() * self.dtype.size())
            .ok_or(ArrayError::NotContiguous)?;
        bytemuck::try_cast_slice(bytes).map_err(|_| ArrayError::NotContiguous)
    }

    /// The elements in C order, compact, in freshly aligned memory of exactly their size.
    fn compact_bytes(&self) -> Result<BytesMut, ArrayError> {
        let size = self.dtype.size();
        let mut out = aligned_zeroed(self.len() * size, self.dtype.align())?;
        if self.is_c_contiguous() {
            let start = self.offset;
            if let Some(bytes) = self.data.get(start..start + out.len()) {
                out.copy_from_slice(bytes);
                return Ok(out);
            }
        }
        for (chunk, at) in out.chunks_exact_mut(size).zip(ElementOffsets::of(self)) {
            if let Some(bytes) = self.data.get(at..at + size) {
                chunk.copy_from_slice(bytes);
            }
        }
        Ok(out)
    }

    /// A C-order, compact copy in the same byte order, in freshly aligned memory. Its size is
    /// the array's logical size, bounded by the receiver's limits for an array built from a
    /// peer's parts; a copy that cannot be allocated is an [`ArrayError::OutOfMemory`].
    ///
    /// ```
    /// let a = pontoon_array::Array::from_shape_vec(&[2, 3], (0..6).collect::<Vec<i32>>())?;
    /// let t = a.transposed().to_contiguous()?;
    /// assert_eq!(t.as_slice::<i32>()?, &[0, 3, 1, 4, 2, 5]);
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn to_contiguous(&self) -> Result<Array, ArrayError> {
        Ok(Array {
            dtype: self.dtype,
            order: self.order,
            shape: self.shape.clone(),
            strides: c_strides(&self.shape, self.dtype.size()),
            offset: 0,
            data: self.compact_bytes()?.freeze(),
        })
    }

    /// A C-order copy in this machine's byte order: the explicit conversion big-endian data needs
    /// before it can be viewed. Fallible as [`Array::to_contiguous`] is.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use pontoon_array::{Array, ByteOrder, DType};
    /// let data = Bytes::from_static(&[0, 0, 1, 2]);
    /// let big = Array::from_parts(DType::I32, ByteOrder::Big, vec![1], vec![4], 0, data, &pontoon_wire::Limits::DEFAULT)?;
    /// assert!(big.as_slice::<i32>().is_err());
    /// assert_eq!(big.to_native()?.as_slice::<i32>()?, &[0x0102]);
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn to_native(&self) -> Result<Array, ArrayError> {
        let mut bytes = self.compact_bytes()?;
        if self.order != ByteOrder::NATIVE {
            for element in bytes.chunks_exact_mut(self.dtype.size()) {
                swap_lanes(self.dtype, element);
            }
        }
        Ok(Array {
            dtype: self.dtype,
            order: ByteOrder::NATIVE,
            shape: self.shape.clone(),
            strides: c_strides(&self.shape, self.dtype.size()),
            offset: 0,
            data: bytes.freeze(),
        })
    }

    /// The array with its axes reversed, without a copy (numpy's `.T`).
    ///
    /// ```
    /// let a = pontoon_array::Array::from_shape_vec(&[2, 3], vec![0u8; 6])?;
    /// assert_eq!(a.transposed().shape(), &[3, 2]);
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn transposed(&self) -> Array {
        let mut t = self.clone();
        t.shape.reverse();
        t.strides.reverse();
        t
    }

    /// The parts the array family sends: the smallest stretch of `data` holding every element,
    /// and the offset within it; or a compact copy when that stretch is larger than the elements
    /// themselves (see the crate docs for the rule), which may fail.
    pub(crate) fn wire_parts(&self) -> Result<(Bytes, Vec<isize>, usize), ArrayError> {
        let size = self.dtype.size();
        let compact = self.len() * size;
        let stretch = span(&self.shape, &self.strides, self.offset, size)
            .and_then(|(start, end)| {
                Some((usize::try_from(start).ok()?, usize::try_from(end).ok()?))
            })
            .filter(|(start, end)| end - start <= compact && *end <= self.data.len());
        match stretch {
            Some((start, end)) => Ok((
                self.data.slice(start..end),
                self.strides.clone(),
                self.offset - start,
            )),
            None => {
                let c = self.to_contiguous()?;
                Ok((c.data, c.strides, 0))
            }
        }
    }
}

impl fmt::Debug for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("dtype", &self.descr())
            .field("shape", &self.shape)
            .field("strides", &self.strides)
            .field("offset", &self.offset)
            .field(
                "data",
                &format_args!("{} bytes at {:p}", self.data.len(), self.data.as_ptr()),
            )
            .finish()
    }
}

impl PartialEq for Array {
    /// Same dtype, shape and element values (in C order, byte for byte once in one byte order);
    /// layout and byte order may differ. Compares element by element and allocates nothing.
    fn eq(&self, other: &Array) -> bool {
        if self.dtype != other.dtype || self.shape != other.shape {
            return false;
        }
        let size = self.dtype.size();
        let swap = self.order != other.order && size > 1;
        let mut scratch = [0u8; 16];
        ElementOffsets::of(self)
            .zip(ElementOffsets::of(other))
            .all(|(a, b)| {
                let (Some(a), Some(b)) = (self.data.get(a..a + size), other.data.get(b..b + size))
                else {
                    return false;
                };
                if !swap {
                    return a == b;
                }
                let Some(element) = scratch.get_mut(..size) else {
                    return false;
                };
                element.copy_from_slice(b);
                swap_lanes(self.dtype, element);
                a == element
            })
    }
}

#[cfg(all(test, feature = "ndarray"))]
mod tests {
    //! Small cases of every way bytes become typed views, sized for miri.

    use super::*;

    #[test]
    fn typed_views_of_every_layout() {
        let data = Bytes::from((0u8..48).collect::<Vec<u8>>());
        let c = Array::from_parts(
            DType::U16,
            ByteOrder::NATIVE,
            vec![2, 3],
            vec![6, 2],
            0,
            data.clone(),
            &Limits::DEFAULT,
        )
        .unwrap();
        assert_eq!(c.as_slice::<u16>().unwrap().len(), 6);
        let f = Array::from_parts(
            DType::U32,
            ByteOrder::NATIVE,
            vec![2, 3],
            vec![4, 8],
            0,
            data.clone(),
            &Limits::DEFAULT,
        )
        .unwrap();
        assert_eq!(f.view::<u32>().unwrap().shape(), &[2, 3]);
        let reversed = Array::from_parts(
            DType::U64,
            ByteOrder::NATIVE,
            vec![3],
            vec![-8],
            16,
            data.clone(),
            &Limits::DEFAULT,
        )
        .unwrap();
        let values: Vec<u64> = reversed.view::<u64>().unwrap().iter().copied().collect();
        assert_eq!(
            values[0],
            u64::from_ne_bytes(data[16..24].try_into().unwrap())
        );
        let broadcast = Array::from_parts(
            DType::I32,
            ByteOrder::NATIVE,
            vec![4, 2],
            vec![0, 4],
            0,
            data.clone(),
            &Limits::DEFAULT,
        )
        .unwrap();
        assert_eq!(
            broadcast.view::<i32>().unwrap()[[3, 1]],
            broadcast.view::<i32>().unwrap()[[0, 1]]
        );
        // Misaligned: copied once into aligned memory, then viewable.
        let odd = Array::from_parts(
            DType::U32,
            ByteOrder::NATIVE,
            vec![2],
            vec![4],
            1,
            data.clone(),
            &Limits::DEFAULT,
        )
        .unwrap();
        assert_eq!(
            odd.as_slice::<u32>().unwrap()[0],
            u32::from_ne_bytes(data[1..5].try_into().unwrap())
        );
        assert_eq!(odd.to_native().unwrap().as_slice::<u32>().unwrap().len(), 2);
    }

    #[test]
    fn make_mut_in_place_and_after_sharing() {
        let mut a = Array::from_vec(vec![1.0f64, 2.0, 3.0]);
        a.make_mut::<f64, _>(|mut v| v[[0]] = 5.0).unwrap();
        let shared = a.clone();
        a.make_mut::<f64, _>(|mut v| v[[1]] = 6.0).unwrap();
        assert_eq!(a.as_slice::<f64>().unwrap(), &[5.0, 6.0, 3.0]);
        assert_eq!(shared.as_slice::<f64>().unwrap(), &[5.0, 2.0, 3.0]);
        let mut nd = Array::from_ndarray(ndarray::Array2::<i16>::zeros((2, 2))).unwrap();
        nd.make_mut::<i16, _>(|mut v| v[[1, 1]] = 4).unwrap();
        assert_eq!(nd.to_ndarray::<i16>().unwrap()[[1, 1]], 4);
    }
}
