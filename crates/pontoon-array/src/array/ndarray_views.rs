//! [`Array`] and `ndarray`: arrays taken from ndarray without a copy, views, copy-on-write
//! writes through a view, and owned copies (the `ndarray` feature).

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, ShapeBuilder};

use bytes::{Bytes, BytesMut};

use super::{ElementOffsets, MAX_DIMS, VecOwner, c_strides, span, swap_lanes};
use crate::{Array, ArrayError, ByteOrder, Element};

impl Array {
    /// An array that takes an `ndarray` array's buffer, in whatever layout it has, without a
    /// copy. More than [`MAX_DIMS`] dimensions is an [`ArrayError::TooManyDimensions`].
    ///
    /// ```
    /// let f_order = ndarray::Array2::<f64>::zeros((3, 4).f());
    /// # use ndarray::ShapeBuilder;
    /// let a = pontoon_array::Array::from_ndarray(f_order)?;
    /// assert_eq!(a.strides(), &[8, 24]);
    /// assert!(a.is_f_contiguous());
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn from_ndarray<T: Element, D: ndarray::Dimension>(
        array: ndarray::Array<T, D>,
    ) -> Result<Array, ArrayError> {
        if array.ndim() > MAX_DIMS {
            return Err(ArrayError::TooManyDimensions(array.ndim()));
        }
        let size = T::DTYPE.size();
        let shape = array.shape().to_vec();
        // ndarray keeps every byte extent of its arrays inside `isize`.
        let strides = array
            .strides()
            .iter()
            .map(|&s| s.saturating_mul(size as isize))
            .collect();
        let (vec, first) = array.into_raw_vec_and_offset();
        Ok(Array {
            dtype: T::DTYPE,
            order: ByteOrder::NATIVE,
            shape,
            strides,
            offset: first.unwrap_or(0).saturating_mul(size),
            data: Bytes::from_owner(VecOwner(vec)),
        })
    }

    /// The array as an `ndarray` view, without a copy, for any strides (negative and broadcast
    /// included), in this machine's byte order. Strides that are not whole elements are an
    /// [`ArrayError::NotContiguous`].
    ///
    /// ```
    /// let a = pontoon_array::Array::from_shape_vec(&[2, 2], vec![1i16, 2, 3, 4])?;
    /// let t = a.transposed();
    /// assert_eq!(t.view::<i16>()?[[0, 1]], 3);
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn view<T: Element>(&self) -> Result<ArrayViewD<'_, T>, ArrayError> {
        self.check_view::<T>()?;
        let overflow = || ArrayError::Overflow {
            shape: self.shape.clone(),
        };
        if self.is_empty() {
            // An empty array points nowhere: a view of no elements of its shape (which the
            // shape check at construction made acceptable to ndarray).
            return ArrayViewD::from_shape(IxDyn(&self.shape), &[]).map_err(|_| overflow());
        }
        let abs = self.element_strides().ok_or(ArrayError::NotContiguous)?;
        let (start, end) = span(&self.shape, &self.strides, self.offset, self.dtype.size())
            .ok_or_else(overflow)?;
        let bytes = usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(start, end)| self.data.get(start..end))
            .ok_or_else(overflow)?;
        let elements: &[T] = bytemuck::try_cast_slice(bytes).map_err(|_| overflow())?;
        let mut view = ArrayViewD::from_shape(IxDyn(&self.shape).strides(IxDyn(&abs)), elements)
            .map_err(|_| overflow())?;
        for (axis, (&stride, &len)) in self.strides.iter().zip(&self.shape).enumerate() {
            if stride < 0 && len > 1 {
                view.invert_axis(Axis(axis));
            }
        }
        Ok(view)
    }

    /// Writes the elements through an `ndarray` view: copy-on-write. When this array is the only
    /// holder of its buffer, it is written in place, no copy; when the buffer is shared (with a
    /// received frame, say, or a clone), the array first gets a compact copy of its own. A copy
    /// that cannot be allocated is an [`ArrayError::OutOfMemory`], and leaves the array as it
    /// was.
    ///
    /// An array built from a `Vec` keeps the vector's allocation, which `Bytes` cannot hand back
    /// for writing: its first `make_mut` copies once, and later ones do not.
    ///
    /// ```
    /// let mut a = pontoon_array::Array::from_vec(vec![1.0f32, 2.0]);
    /// let shared = a.clone();
    /// a.make_mut::<f32, _>(|mut v| v[[0]] = 9.0)?;
    /// assert_eq!(a.as_slice::<f32>()?, &[9.0, 2.0]);
    /// assert_eq!(shared.as_slice::<f32>()?, &[1.0, 2.0]); // the clone is untouched
    /// # Ok::<(), pontoon_array::ArrayError>(())
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
            (false, Ok(buffer)) => {
                self.data = buffer.freeze();
                self.compact_in_place()?
            }
            (_, Err(shared)) => {
                self.data = shared;
                self.compact_in_place()?
            }
        };
        let elements = self.len() * self.dtype.size();
        let result = (|| {
            let abs = self.element_strides().ok_or(ArrayError::NotContiguous)?;
            let bytes = buffer
                .get_mut(self.offset..self.offset + elements)
                .ok_or(ArrayError::NotContiguous)?;
            let slice: &mut [T] =
                bytemuck::try_cast_slice_mut(bytes).map_err(|_| ArrayError::NotContiguous)?;
            let view = ArrayViewMutD::from_shape(IxDyn(&self.shape).strides(IxDyn(&abs)), slice)
                .map_err(|_| ArrayError::NotContiguous)?;
            Ok(write(view))
        })();
        self.data = buffer.freeze();
        result
    }

    /// Converts into an owned `ndarray` array (a copy), in this machine's byte order: one
    /// allocation of the array's logical size, which may fail ([`ArrayError::OutOfMemory`]).
    ///
    /// ```
    /// let a = pontoon_array::Array::from_vec(vec![1u8, 2]);
    /// assert_eq!(a.to_ndarray::<u8>()?, ndarray::arr1(&[1u8, 2]).into_dyn());
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn to_ndarray<T: Element>(&self) -> Result<ArrayD<T>, ArrayError> {
        self.check_type::<T>()?;
        let size = self.dtype.size();
        let mut elements = Vec::new();
        elements
            .try_reserve_exact(self.len())
            .map_err(|_| ArrayError::OutOfMemory {
                bytes: self.len() * size,
            })?;
        let foreign = self.order != ByteOrder::NATIVE;
        let mut scratch = [0u8; 16];
        for at in ElementOffsets::of(self) {
            let (Some(bytes), Some(element)) =
                (self.data.get(at..at + size), scratch.get_mut(..size))
            else {
                break;
            };
            element.copy_from_slice(bytes);
            if foreign {
                swap_lanes(self.dtype, element);
            }
            elements.push(bytemuck::pod_read_unaligned::<T>(element));
        }
        ArrayD::from_shape_vec(IxDyn(&self.shape), elements).map_err(|_| ArrayError::Overflow {
            shape: self.shape.clone(),
        })
    }

    /// The strides in elements for an ndarray view, absolute; an axis of one element or none
    /// has no step to take, so its stride (whatever it is) counts as 0. `None` when a stride is
    /// not a whole number of elements.
    fn element_strides(&self) -> Option<Vec<usize>> {
        let size = self.dtype.size();
        self.strides
            .iter()
            .zip(&self.shape)
            .map(|(&s, &len)| match (len, s.unsigned_abs()) {
                (0 | 1, _) => Some(0),
                (_, abs) if abs.is_multiple_of(size) => Some(abs / size),
                _ => None,
            })
            .collect()
    }

    /// Replaces the layout by C order and returns the compact copy of the elements the array
    /// will hold once it is frozen into `data` again.
    fn compact_in_place(&mut self) -> Result<BytesMut, ArrayError> {
        let copy = self.compact_bytes()?;
        self.strides = c_strides(&self.shape, self.dtype.size());
        self.offset = 0;
        Ok(copy)
    }
}
