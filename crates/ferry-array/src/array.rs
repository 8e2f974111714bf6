//! [`Array`]: an n-dimensional array whose data is a `Bytes`: a view of whatever carried it.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, ShapeBuilder};

use crate::{ArrayError, ByteOrder, DType, Element};

/// The most dimensions an array may have (numpy's limit, too).
pub const MAX_DIMS: usize = 32;

/// An n-dimensional array of a numeric [`DType`] whose data is a [`Bytes`]: zero-copy from any
/// frame, shared cheaply, written only through [`Array::make_mut`] (copy-on-write).
///
/// Strides are in bytes, numpy's convention: C order, Fortran order, negative strides, and 0 for
/// broadcast axes are all allowed. Elements are always aligned for their dtype: an array built
/// from misaligned bytes (a frame from a carrier other than ferry's) is copied once, at
/// construction, into aligned memory.
///
/// ```
/// use ferry_array::Array;
/// let a = Array::from_shape_vec(&[2, 3], vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// assert_eq!(a.shape(), &[2, 3]);
/// assert_eq!(a.strides(), &[24, 8]);
/// let view = a.view::<f64>()?;
/// assert_eq!(view[[1, 2]], 6.0);
/// assert_eq!(a.as_slice::<f64>()?, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// # Ok::<(), ferry_array::ArrayError>(())
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

/// C-order strides in bytes for `shape`.
fn c_strides(shape: &[usize], itemsize: usize) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut step = itemsize as isize;
    for (stride, &len) in strides.iter_mut().zip(shape).rev() {
        *stride = step;
        step = step.saturating_mul(len.max(1) as isize);
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

/// A zeroed buffer of `len` bytes whose start is aligned to `align`.
fn aligned_zeroed(len: usize, align: usize) -> BytesMut {
    let mut buf = BytesMut::zeroed(len + align - 1);
    let pad = buf.as_ptr().align_offset(align);
    buf.advance(pad);
    buf.truncate(len);
    buf
}

impl Array {
    /// A 1-D array that takes the vector as its data, without a copy.
    ///
    /// ```
    /// let a = ferry_array::Array::from_vec(vec![1i32, 2, 3]);
    /// assert_eq!((a.shape(), a.dtype()), (&[3][..], ferry_array::DType::I32));
    /// ```
    pub fn from_vec<T: Element>(data: Vec<T>) -> Array {
        let len = data.len();
        Array::from_shape_vec(&[len], data).expect("a vector fits its own length")
    }

    /// An array of `shape` (C order) that takes the vector as its data, without a copy.
    ///
    /// ```
    /// let a = ferry_array::Array::from_shape_vec(&[2, 2], vec![0u8; 4])?;
    /// assert_eq!(a.len(), 4);
    /// assert!(ferry_array::Array::from_shape_vec(&[3, 2], vec![0u8; 4]).is_err());
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn from_shape_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Result<Array, ArrayError> {
        let elements = element_count(shape)?;
        let size = T::DTYPE.size();
        if elements != data.len() {
            return Err(ArrayError::WrongLength {
                elements,
                itemsize: size,
                needed: elements * size,
                len: data.len() * size,
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
    /// else holds (zeroed first).
    ///
    /// ```
    /// let a = ferry_array::Array::build::<f32>(&[3], |xs| xs.copy_from_slice(&[1.0, 2.0, 3.0]))?;
    /// assert_eq!(a.as_slice::<f32>()?, &[1.0, 2.0, 3.0]);
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn build<T: Element>(
        shape: &[usize],
        fill: impl FnOnce(&mut [T]),
    ) -> Result<Array, ArrayError> {
        let elements = element_count(shape)?;
        let mut data = bytemuck::zeroed_vec::<T>(elements);
        fill(&mut data);
        Array::from_shape_vec(shape, data)
    }

    /// An array that takes an `ndarray` array's buffer, in whatever layout it has, without a
    /// copy.
    ///
    /// ```
    /// let f_order = ndarray::Array2::<f64>::zeros((3, 4).f());
    /// # use ndarray::ShapeBuilder;
    /// let a = ferry_array::Array::from_ndarray(f_order);
    /// assert_eq!(a.strides(), &[8, 24]);
    /// assert!(a.is_f_contiguous());
    /// ```
    pub fn from_ndarray<T: Element, D: ndarray::Dimension>(array: ndarray::Array<T, D>) -> Array {
        let size = T::DTYPE.size();
        let shape = array.shape().to_vec();
        let strides = array.strides().iter().map(|&s| s * size as isize).collect();
        let (vec, first) = array.into_raw_vec_and_offset();
        Array {
            dtype: T::DTYPE,
            order: ByteOrder::NATIVE,
            shape,
            strides,
            offset: first.unwrap_or(0) * size,
            data: Bytes::from_owner(VecOwner(vec)),
        }
    }

    /// An array over `data` as described: the checked, untrusted-input constructor.
    ///
    /// Shape and strides are checked (no overflow, every element inside `data`). If the elements
    /// are not aligned for `dtype` in `data`, they are copied once into aligned memory, in C order.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use ferry_array::{Array, ArrayError, ByteOrder, DType};
    /// let data = Bytes::from(vec![0u8; 16]);
    /// let a = Array::from_parts(DType::F64, ByteOrder::Little, vec![2], vec![8], 0, data.clone())?;
    /// assert_eq!(a.len(), 2);
    /// let err = Array::from_parts(DType::F64, ByteOrder::Little, vec![3], vec![8], 0, data);
    /// assert!(matches!(err, Err(ArrayError::OutOfBounds { .. })));
    /// # Ok::<(), ArrayError>(())
    /// ```
    pub fn from_parts(
        dtype: DType,
        order: ByteOrder,
        shape: Vec<usize>,
        strides: Vec<isize>,
        offset: usize,
        data: Bytes,
    ) -> Result<Array, ArrayError> {
        if shape.len() != strides.len() {
            return Err(ArrayError::RankMismatch {
                shape: shape.len(),
                strides: strides.len(),
            });
        }
        if shape.len() > MAX_DIMS {
            return Err(ArrayError::TooManyDimensions(shape.len()));
        }
        element_count(&shape)?;
        let (start, end) =
            span(&shape, &strides, offset, dtype.size()).ok_or_else(|| ArrayError::Overflow {
                shape: shape.clone(),
            })?;
        if start < 0 || end > data.len() as i128 || offset > data.len() {
            return Err(ArrayError::OutOfBounds {
                start,
                end,
                len: data.len(),
            });
        }
        let array = Array {
            dtype,
            order,
            shape,
            strides,
            offset,
            data,
        };
        Ok(if array.is_aligned() {
            array
        } else {
            array.to_contiguous()
        })
    }

    fn is_aligned(&self) -> bool {
        let align = self.dtype.align();
        (self.data.as_ptr() as usize + self.offset).is_multiple_of(align)
            && self
                .strides
                .iter()
                .all(|s| s.unsigned_abs().is_multiple_of(align))
    }

    /// The element type.
    ///
    /// ```
    /// assert_eq!(ferry_array::Array::from_vec(vec![1u16]).dtype(), ferry_array::DType::U16);
    /// ```
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The byte order of the elements.
    ///
    /// ```
    /// let a = ferry_array::Array::from_vec(vec![1u16]);
    /// assert_eq!(a.byte_order(), ferry_array::ByteOrder::NATIVE);
    /// ```
    pub fn byte_order(&self) -> ByteOrder {
        self.order
    }

    /// numpy's dtype string: `<f8`, `>i4`, `|b1`.
    ///
    /// ```
    /// assert_eq!(ferry_array::Array::from_vec(vec![1.0f64]).descr(), "<f8");
    /// ```
    pub fn descr(&self) -> String {
        self.dtype.descr(self.order)
    }

    /// The length of each dimension.
    ///
    /// ```
    /// assert_eq!(ferry_array::Array::from_vec(vec![0i8; 5]).shape(), &[5]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The step, in bytes, between neighbours along each dimension (numpy's convention).
    ///
    /// ```
    /// assert_eq!(ferry_array::Array::from_vec(vec![0i32; 5]).strides(), &[4]);
    /// ```
    pub fn strides(&self) -> &[isize] {
        &self.strides
    }

    /// The byte offset of the first element (index `[0, 0, ...]`) in [`Array::data`].
    ///
    /// ```
    /// assert_eq!(ferry_array::Array::from_vec(vec![0i32; 5]).offset(), 0);
    /// ```
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes the array looks into. Cloning it is cheap.
    ///
    /// ```
    /// assert_eq!(ferry_array::Array::from_vec(vec![0u32; 4]).data().len(), 16);
    /// ```
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The number of elements.
    ///
    /// ```
    /// assert_eq!(ferry_array::Array::from_shape_vec(&[2, 0], Vec::<f32>::new())?.len(), 0);
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no elements.
    ///
    /// ```
    /// assert!(ferry_array::Array::from_vec(Vec::<u8>::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the elements lie in C order, back to back.
    ///
    /// ```
    /// assert!(ferry_array::Array::from_vec(vec![1u8, 2]).is_c_contiguous());
    /// ```
    pub fn is_c_contiguous(&self) -> bool {
        self.contiguous_in(self.shape.iter().zip(&self.strides).rev())
    }

    /// Whether the elements lie in Fortran order, back to back.
    ///
    /// ```
    /// assert!(ferry_array::Array::from_vec(vec![1u8, 2]).is_f_contiguous());
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
        if !T::views(self.dtype) {
            return Err(ArrayError::WrongType {
                actual: self.dtype,
                requested: T::DTYPE,
            });
        }
        if self.order != ByteOrder::NATIVE && self.dtype.size() > 1 {
            return Err(ArrayError::ForeignByteOrder);
        }
        Ok(())
    }

    /// The elements as a slice, in memory order, without a copy: for arrays that are contiguous
    /// (C or Fortran order), in this machine's byte order.
    ///
    /// ```
    /// let a = ferry_array::Array::from_vec(vec![1u64, 2]);
    /// assert_eq!(a.as_slice::<u64>()?, &[1, 2]);
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn as_slice<T: Element>(&self) -> Result<&[T], ArrayError> {
        self.check_view::<T>()?;
        if !(self.is_c_contiguous() || self.is_f_contiguous()) {
            return Err(ArrayError::NotContiguous);
        }
        let bytes = &self.data[self.offset..self.offset + self.len() * self.dtype.size()];
        Ok(bytemuck::cast_slice(bytes))
    }

    /// The array as an `ndarray` view, without a copy, for any strides (negative and broadcast
    /// included), in this machine's byte order.
    ///
    /// ```
    /// let a = ferry_array::Array::from_shape_vec(&[2, 2], vec![1i16, 2, 3, 4])?;
    /// let t = a.transposed();
    /// assert_eq!(t.view::<i16>()?[[0, 1]], 3);
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn view<T: Element>(&self) -> Result<ArrayViewD<'_, T>, ArrayError> {
        self.check_view::<T>()?;
        let size = self.dtype.size() as isize;
        if self.strides.iter().any(|s| s % size != 0) || self.is_empty() {
            // Strides that are not whole elements cannot be an ndarray view; neither can an
            // empty array point anywhere: give each a fresh compact copy's shape.
            if self.is_empty() {
                return Ok(ArrayViewD::from_shape(IxDyn(&self.shape), &[]).expect("an empty view"));
            }
            return Err(ArrayError::NotContiguous);
        }
        let (start, end) = span(&self.shape, &self.strides, self.offset, self.dtype.size())
            .expect("checked when the array was built");
        let elements: &[T] = bytemuck::cast_slice(&self.data[start as usize..end as usize]);
        let abs: Vec<usize> = self
            .strides
            .iter()
            .map(|s| (s.unsigned_abs()) / size as usize)
            .collect();
        let mut view = ArrayViewD::from_shape(IxDyn(&self.shape).strides(IxDyn(&abs)), elements)
            .map_err(|e| ArrayError::Header(format!("ndarray refused the layout: {e}")))?;
        for (axis, &stride) in self.strides.iter().enumerate() {
            if stride < 0 {
                view.invert_axis(Axis(axis));
            }
        }
        Ok(view)
    }

    /// Writes the elements through an `ndarray` view: copy-on-write. When this array is the only
    /// holder of its buffer, it is written in place, no copy; when the buffer is shared (with a
    /// received frame, say, or a clone), the array first gets a compact copy of its own.
    ///
    /// An array built from a `Vec` keeps the vector's allocation, which `Bytes` cannot hand back
    /// for writing: its first `make_mut` copies once, and later ones do not.
    ///
    /// ```
    /// let mut a = ferry_array::Array::from_vec(vec![1.0f32, 2.0]);
    /// let shared = a.clone();
    /// a.make_mut::<f32, _>(|mut v| v[[0]] = 9.0)?;
    /// assert_eq!(a.as_slice::<f32>()?, &[9.0, 2.0]);
    /// assert_eq!(shared.as_slice::<f32>()?, &[1.0, 2.0]); // the clone is untouched
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn make_mut<T: Element, R>(
        &mut self,
        write: impl FnOnce(ArrayViewMutD<'_, T>) -> R,
    ) -> Result<R, ArrayError> {
        self.check_view::<T>()?;
        // In place only for a layout a mutable view can take: positive strides that do not
        // alias (no broadcast), whole elements.
        let size = self.dtype.size() as isize;
        let plain = self
            .strides
            .iter()
            .zip(&self.shape)
            .all(|(&s, &len)| len <= 1 || (s > 0 && s % size == 0))
            && (self.is_c_contiguous() || self.is_f_contiguous());
        let data = std::mem::take(&mut self.data);
        let mut buffer = match (plain, data.try_into_mut()) {
            (true, Ok(buffer)) => buffer,
            (_, Ok(buffer)) => {
                self.data = buffer.freeze();
                *self = self.to_contiguous();
                BytesMut::from(std::mem::take(&mut self.data))
            }
            (_, Err(shared)) => {
                self.data = shared;
                *self = self.to_contiguous();
                std::mem::take(&mut self.data)
                    .try_into_mut()
                    .expect("a fresh copy has one holder")
            }
        };
        let elements = self.len() * self.dtype.size();
        let result = {
            let bytes = &mut buffer[self.offset..self.offset + elements];
            let slice: &mut [T] = bytemuck::cast_slice_mut(bytes);
            let abs: Vec<usize> = self
                .strides
                .iter()
                .map(|&s| s as usize / size as usize)
                .collect();
            let view = ArrayViewMutD::from_shape(IxDyn(&self.shape).strides(IxDyn(&abs)), slice)
                .map_err(|e| ArrayError::Header(format!("ndarray refused the layout: {e}")))?;
            write(view)
        };
        self.data = buffer.freeze();
        Ok(result)
    }

    /// A C-order, compact copy in the same byte order, in freshly aligned memory.
    ///
    /// ```
    /// let a = ferry_array::Array::from_shape_vec(&[2, 3], (0..6).collect::<Vec<i32>>())?;
    /// let t = a.transposed().to_contiguous();
    /// assert_eq!(t.as_slice::<i32>()?, &[0, 3, 1, 4, 2, 5]);
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn to_contiguous(&self) -> Array {
        let size = self.dtype.size();
        let mut out = aligned_zeroed(self.len() * size, self.dtype.align());
        self.copy_elements(|i, bytes| out[i * size..(i + 1) * size].copy_from_slice(bytes));
        Array {
            dtype: self.dtype,
            order: self.order,
            shape: self.shape.clone(),
            strides: c_strides(&self.shape, size),
            offset: 0,
            data: out.freeze(),
        }
    }

    /// A C-order copy in this machine's byte order: the explicit conversion big-endian data needs
    /// before it can be viewed.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use ferry_array::{Array, ByteOrder, DType};
    /// let big = Array::from_parts(DType::I32, ByteOrder::Big, vec![1], vec![4], 0, Bytes::from_static(&[0, 0, 1, 2]))?;
    /// assert!(big.as_slice::<i32>().is_err());
    /// assert_eq!(big.to_native().as_slice::<i32>()?, &[0x0102]);
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn to_native(&self) -> Array {
        let mut out = self.to_contiguous();
        if self.order != ByteOrder::NATIVE {
            let lane = match self.dtype {
                DType::C64 | DType::C128 => self.dtype.size() / 2,
                other => other.size(),
            };
            let mut bytes = BytesMut::from(std::mem::take(&mut out.data));
            for chunk in bytes.chunks_mut(lane) {
                chunk.reverse();
            }
            out.data = bytes.freeze();
            out.order = ByteOrder::NATIVE;
        }
        out
    }

    /// The array with its axes reversed, without a copy (numpy's `.T`).
    ///
    /// ```
    /// let a = ferry_array::Array::from_shape_vec(&[2, 3], vec![0u8; 6])?;
    /// assert_eq!(a.transposed().shape(), &[3, 2]);
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn transposed(&self) -> Array {
        let mut t = self.clone();
        t.shape.reverse();
        t.strides.reverse();
        t
    }

    /// Calls `each(i, bytes)` for every element in C order, with its bytes.
    fn copy_elements(&self, mut each: impl FnMut(usize, &[u8])) {
        let size = self.dtype.size();
        if self.is_empty() {
            return;
        }
        if self.is_c_contiguous() {
            let bytes = &self.data[self.offset..self.offset + self.len() * size];
            for (i, chunk) in bytes.chunks(size).enumerate() {
                each(i, chunk);
            }
            return;
        }
        let mut index = vec![0usize; self.shape.len()];
        for i in 0..self.len() {
            let at: isize = self.offset as isize
                + index
                    .iter()
                    .zip(&self.strides)
                    .map(|(&j, &s)| j as isize * s)
                    .sum::<isize>();
            each(i, &self.data[at as usize..at as usize + size]);
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < self.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
    }

    /// Converts into an owned `ndarray` array (a copy), in this machine's byte order.
    ///
    /// ```
    /// let a = ferry_array::Array::from_vec(vec![1u8, 2]);
    /// assert_eq!(a.to_ndarray::<u8>()?, ndarray::arr1(&[1u8, 2]).into_dyn());
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn to_ndarray<T: Element>(&self) -> Result<ArrayD<T>, ArrayError> {
        let native = if self.order == ByteOrder::NATIVE {
            self.clone()
        } else {
            self.to_native()
        };
        Ok(native.view::<T>()?.to_owned())
    }

    /// The parts the array family sends: the smallest stretch of `data` holding every element,
    /// and the offset within it; or a compact copy when that stretch is larger than the elements
    /// themselves (see the crate docs for the rule).
    pub(crate) fn wire_parts(&self) -> (Bytes, Vec<isize>, usize) {
        let size = self.dtype.size();
        let (start, end) =
            span(&self.shape, &self.strides, self.offset, size).expect("checked at construction");
        let compact = self.len() * size;
        if (end - start) as usize <= compact {
            let stretch = self.data.slice(start as usize..end as usize);
            (stretch, self.strides.clone(), self.offset - start as usize)
        } else {
            let c = self.to_contiguous();
            (c.data, c.strides, 0)
        }
    }
}

/// The number of elements of `shape`, or an error if it overflows.
pub(crate) fn element_count(shape: &[usize]) -> Result<usize, ArrayError> {
    if shape.len() > MAX_DIMS {
        return Err(ArrayError::TooManyDimensions(shape.len()));
    }
    shape
        .iter()
        .try_fold(1usize, |n, &len| n.checked_mul(len))
        .filter(|&n| n.checked_mul(16).is_some())
        .ok_or_else(|| ArrayError::Overflow {
            shape: shape.to_vec(),
        })
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
    /// Same dtype, shape and element values (in C order); layout and byte order may differ.
    fn eq(&self, other: &Array) -> bool {
        if self.dtype != other.dtype || self.shape != other.shape {
            return false;
        }
        let (a, b) = (self.to_native(), other.to_native());
        a.data[..] == b.data[..]
    }
}

#[cfg(test)]
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
        )
        .unwrap();
        assert_eq!(
            odd.as_slice::<u32>().unwrap()[0],
            u32::from_ne_bytes(data[1..5].try_into().unwrap())
        );
        assert_eq!(odd.to_native().as_slice::<u32>().unwrap().len(), 2);
    }

    #[test]
    fn make_mut_in_place_and_after_sharing() {
        let mut a = Array::from_vec(vec![1.0f64, 2.0, 3.0]);
        a.make_mut::<f64, _>(|mut v| v[[0]] = 5.0).unwrap();
        let shared = a.clone();
        a.make_mut::<f64, _>(|mut v| v[[1]] = 6.0).unwrap();
        assert_eq!(a.as_slice::<f64>().unwrap(), &[5.0, 6.0, 3.0]);
        assert_eq!(shared.as_slice::<f64>().unwrap(), &[5.0, 2.0, 3.0]);
        let mut nd = Array::from_ndarray(ndarray::Array2::<i16>::zeros((2, 2)));
        nd.make_mut::<i16, _>(|mut v| v[[1, 1]] = 4).unwrap();
        assert_eq!(nd.to_ndarray::<i16>().unwrap()[[1, 1]], 4);
    }
}
