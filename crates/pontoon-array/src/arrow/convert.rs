//! Conversions between 1-D pontoon [`Array`]s and Arrow primitive arrays, without a copy where
//! the layout allows.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{ArrayRef, ArrowPrimitiveType, BooleanArray, PrimitiveArray};
use arrow_buffer::{BooleanBuffer, Buffer, ScalarBuffer};
use arrow_schema::{DataType, TimeUnit as ArrowUnit};
use bytes::Bytes;
use pontoon_wire::Limits;

use crate::{Array, ArrayError, ByteOrder, DType, TimeUnit};

/// Why an array could not be converted between pontoon and Arrow.
///
/// ```
/// use arrow_array::Int32Array;
/// use pontoon_array::arrow::{ConvertError, from_arrow};
/// let with_null = Int32Array::from(vec![Some(1), None]);
/// let err = from_arrow(&with_null, &pontoon_wire::Limits::DEFAULT).unwrap_err();
/// assert_eq!(err, ConvertError::Nulls(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// An Arrow array with nulls, which a pontoon array cannot hold.
    #[error("the Arrow array has {0} nulls; pontoon arrays cannot hold nulls")]
    Nulls(usize),
    /// A type with no counterpart on the other side: an Arrow type with no pontoon dtype, or a
    /// dtype with no Arrow type (or not the Arrow type asked for).
    #[error("no conversion between Arrow and pontoon for {0}")]
    NoCounterpart(String),
    /// An array of other than one dimension where Arrow needs one.
    #[error("Arrow arrays have one dimension, this array has {0}")]
    NotOneDimensional(usize),
    /// An Arrow array whose values buffer is shorter than its offset and length need.
    #[error(
        "the Arrow array of {len} elements from element {offset} needs more than its {buffer_bytes}-byte values buffer"
    )]
    ValuesOutOfBounds {
        /// The array's offset, in elements.
        offset: usize,
        /// The array's length, in elements.
        len: usize,
        /// Bytes in the values buffer.
        buffer_bytes: usize,
    },
    /// A pontoon array whose data is not aligned for its Arrow type (pontoon arrays always are).
    #[error("the array's data is not aligned for its Arrow type")]
    Misaligned,
    /// The pontoon side: the array the Arrow one makes, or a copy the conversion needs.
    #[error(transparent)]
    Array(#[from] ArrayError),
}

fn arrow_unit(unit: TimeUnit) -> Option<ArrowUnit> {
    match unit {
        TimeUnit::Second => Some(ArrowUnit::Second),
        TimeUnit::Millisecond => Some(ArrowUnit::Millisecond),
        TimeUnit::Microsecond => Some(ArrowUnit::Microsecond),
        TimeUnit::Nanosecond => Some(ArrowUnit::Nanosecond),
        _ => None,
    }
}

fn pontoon_unit(unit: ArrowUnit) -> TimeUnit {
    match unit {
        ArrowUnit::Second => TimeUnit::Second,
        ArrowUnit::Millisecond => TimeUnit::Millisecond,
        ArrowUnit::Microsecond => TimeUnit::Microsecond,
        ArrowUnit::Nanosecond => TimeUnit::Nanosecond,
    }
}

/// The Arrow type of a pontoon dtype, if it has one.
fn arrow_type(dtype: DType) -> Option<DataType> {
    Some(match dtype {
        DType::Bool => DataType::Boolean,
        DType::I8 => DataType::Int8,
        DType::I16 => DataType::Int16,
        DType::I32 => DataType::Int32,
        DType::I64 => DataType::Int64,
        DType::U8 => DataType::UInt8,
        DType::U16 => DataType::UInt16,
        DType::U32 => DataType::UInt32,
        DType::U64 => DataType::UInt64,
        DType::F32 => DataType::Float32,
        DType::F64 => DataType::Float64,
        DType::DateTime(unit) => DataType::Timestamp(arrow_unit(unit)?, None),
        DType::TimeDelta(unit) => DataType::Duration(arrow_unit(unit)?),
        _ => return None,
    })
}

/// The pontoon dtype of an Arrow type, if it has one.
fn pontoon_dtype(data_type: &DataType) -> Option<DType> {
    Some(match data_type {
        DataType::Boolean => DType::Bool,
        DataType::Int8 => DType::I8,
        DataType::Int16 => DType::I16,
        DataType::Int32 => DType::I32,
        DataType::Int64 => DType::I64,
        DataType::UInt8 => DType::U8,
        DataType::UInt16 => DType::U16,
        DataType::UInt32 => DType::U32,
        DataType::UInt64 => DType::U64,
        DataType::Float32 => DType::F32,
        DataType::Float64 => DType::F64,
        DataType::Timestamp(unit, _) => DType::DateTime(pontoon_unit(*unit)),
        DataType::Duration(unit) => DType::TimeDelta(pontoon_unit(*unit)),
        _ => return None,
    })
}

/// A pontoon array of an Arrow primitive array, without a copy: the array's data is the Arrow
/// values buffer, shared. Booleans, bit-packed in Arrow, are unpacked to a byte each: a copy of
/// eight times the bitmap's bytes, checked against `limits` ([`Limits::max_expansion`] of the
/// bitmap's bytes) before it is allocated.
///
/// An array with nulls is refused ([`ConvertError::Nulls`]), and so is a type with no pontoon
/// dtype ([`ConvertError::NoCounterpart`]). A `Timestamp` with a time zone gives the same
/// instants as a plain `datetime64` (UTC).
///
/// ```
/// use arrow_array::Int32Array;
/// use pontoon_array::arrow::{ConvertError, from_arrow};
/// use pontoon_wire::Limits;
///
/// let arrow = Int32Array::from(vec![1, 2, 3]);
/// let array = from_arrow(&arrow, &Limits::DEFAULT)?;
/// assert_eq!(array.as_slice::<i32>()?, &[1, 2, 3]);
/// assert_eq!(array.data().as_ptr(), arrow.values().as_ptr().cast()); // no copy
///
/// let with_null = Int32Array::from(vec![Some(1), None]);
/// assert_eq!(from_arrow(&with_null, &Limits::DEFAULT).unwrap_err(), ConvertError::Nulls(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_arrow(array: &dyn arrow_array::Array, limits: &Limits) -> Result<Array, ConvertError> {
    let dtype = pontoon_dtype(array.data_type()).ok_or_else(|| {
        ConvertError::NoCounterpart(format!("the Arrow type {}", array.data_type()))
    })?;
    let nulls = array.logical_null_count();
    if nulls > 0 {
        return Err(ConvertError::Nulls(nulls));
    }
    let len = array.len();
    if dtype == DType::Bool {
        let values = array
            .as_boolean_opt()
            .ok_or_else(|| ConvertError::NoCounterpart("a Boolean array of another kind".into()))?
            .values();
        let referenced_bytes = len.div_ceil(8) as u64;
        let limit_bytes = limits.max_expansion(referenced_bytes);
        if len as u64 > limit_bytes {
            return Err(ArrayError::ExpansionTooLarge {
                logical_bytes: len as u64,
                referenced_bytes,
                limit_bytes,
            }
            .into());
        }
        let mut bools = Vec::new();
        bools
            .try_reserve_exact(len)
            .map_err(|_| ArrayError::OutOfMemory { bytes: len })?;
        bools.extend(values.iter().map(u8::from));
        return Ok(Array::from_parts(
            dtype,
            ByteOrder::NATIVE,
            vec![len],
            vec![1],
            0,
            Bytes::from(bools),
            limits,
        )?);
    }
    // A fixed-width primitive array holds its values in one buffer, from `offset` on.
    let size = dtype.size();
    let data = array.to_data();
    let buffer_bytes = data.buffers().first().map_or(0, Buffer::len);
    let out_of_bounds = || ConvertError::ValuesOutOfBounds {
        offset: data.offset(),
        len,
        buffer_bytes,
    };
    let start = data.offset().checked_mul(size).ok_or_else(out_of_bounds)?;
    let bytes = len.checked_mul(size).ok_or_else(out_of_bounds)?;
    let values = match data.buffers().first() {
        Some(buffer)
            if start
                .checked_add(bytes)
                .is_some_and(|end| end <= buffer.len()) =>
        {
            buffer.slice_with_length(start, bytes)
        }
        _ => return Err(out_of_bounds()),
    };
    Ok(Array::from_parts(
        dtype,
        ByteOrder::NATIVE,
        vec![len],
        vec![size as isize],
        0,
        Bytes::from(values),
        limits,
    )?)
}

/// The elements of a 1-D array, C-contiguous and in this machine's byte order, as exactly their
/// bytes: the array's own when it already is so, else a compact copy (which may fail).
fn native_bytes(array: &Array) -> Result<(Bytes, usize), ConvertError> {
    if array.shape().len() != 1 {
        return Err(ConvertError::NotOneDimensional(array.shape().len()));
    }
    let size = array.dtype().size();
    let array = if array.byte_order() != ByteOrder::NATIVE && size > 1 {
        array.to_native()?
    } else if !array.is_c_contiguous() {
        array.to_contiguous()?
    } else {
        array.clone()
    };
    let start = array.offset();
    let bytes = array
        .data()
        .get(start..start + array.len() * size)
        .map(|bytes| array.data().slice_ref(bytes))
        .unwrap_or_default();
    Ok((bytes, array.len()))
}

/// An Arrow primitive array of a 1-D pontoon array, without a copy: the values buffer is the
/// array's data, shared. `T` must be the Arrow type of the array's dtype (`Int32Type` for
/// `i32`, `TimestampMicrosecondType` for `datetime64[us]`, ...).
///
/// An array that is not C-contiguous or not in this machine's byte order is compacted first (a
/// copy, which may fail: [`ArrayError::OutOfMemory`]). The result has no nulls.
///
/// ```
/// use arrow_array::types::{Float64Type, TimestampMicrosecondType};
/// use pontoon_array::{Array, arrow::to_primitive};
///
/// let array = Array::from_vec(vec![1.5f64, 2.5]);
/// let arrow = to_primitive::<Float64Type>(&array)?;
/// assert_eq!(arrow.values().as_ref(), &[1.5, 2.5]);
/// assert_eq!(arrow.values().as_ptr().cast(), array.data().as_ptr()); // no copy
/// assert!(to_primitive::<TimestampMicrosecondType>(&array).is_err()); // not datetime64[us]
/// # Ok::<(), pontoon_array::arrow::ConvertError>(())
/// ```
pub fn to_primitive<T: ArrowPrimitiveType>(
    array: &Array,
) -> Result<PrimitiveArray<T>, ConvertError> {
    if arrow_type(array.dtype()).as_ref() != Some(&T::DATA_TYPE) || array.dtype() == DType::Bool {
        return Err(ConvertError::NoCounterpart(format!(
            "the dtype {} as Arrow {}",
            array.dtype(),
            T::DATA_TYPE
        )));
    }
    let (bytes, len) = native_bytes(array)?;
    let mut buffer = Buffer::from(bytes);
    if buffer.as_ptr().align_offset(align_of::<T::Native>()) != 0 {
        if len != 0 {
            // pontoon arrays are aligned, and `ScalarBuffer::new` would panic on one that is not.
            return Err(ConvertError::Misaligned);
        }
        // No elements point anywhere, not even somewhere aligned: give Arrow an empty buffer
        // that is.
        buffer = Buffer::from_vec(Vec::<T::Native>::new());
    }
    Ok(PrimitiveArray::new(ScalarBuffer::new(buffer, 0, len), None))
}

/// An Arrow array of a 1-D pontoon array, without a copy (see [`to_primitive`]); `bool` arrays
/// are bit-packed (a copy of an eighth of their bytes). Complex arrays, and
/// `datetime64`/`timedelta64` in units Arrow lacks (days, years, ...), have no Arrow type
/// ([`ConvertError::NoCounterpart`]).
///
/// ```
/// use arrow_array::{Array as _, cast::AsArray, types::Int64Type};
/// use pontoon_array::{Array, arrow::to_arrow};
///
/// let arrow = to_arrow(&Array::from_vec(vec![7i64, 8]))?;
/// assert_eq!(arrow.null_count(), 0);
/// assert_eq!(arrow.as_primitive::<Int64Type>().values().as_ref(), &[7, 8]);
/// # Ok::<(), pontoon_array::arrow::ConvertError>(())
/// ```
pub fn to_arrow(array: &Array) -> Result<ArrayRef, ConvertError> {
    fn p<T: ArrowPrimitiveType>(array: &Array) -> Result<ArrayRef, ConvertError> {
        Ok(Arc::new(to_primitive::<T>(array)?))
    }
    use ArrowUnit as U;
    let no_type = || ConvertError::NoCounterpart(format!("the dtype {}", array.dtype()));
    match array.dtype() {
        DType::Bool => {
            let (bytes, len) = native_bytes(array)?;
            // Bit-packed: an eighth of the bytes the array holds, in one allocation that may fail.
            let mut bits = Vec::new();
            bits.try_reserve_exact(len.div_ceil(8))
                .map_err(|_| ArrayError::OutOfMemory {
                    bytes: len.div_ceil(8),
                })?;
            bits.extend(bytes.chunks(8).map(|chunk| {
                chunk
                    .iter()
                    .enumerate()
                    .fold(0u8, |byte, (bit, &b)| byte | (u8::from(b != 0) << bit))
            }));
            let values = BooleanBuffer::new(Buffer::from_vec(bits), 0, len);
            Ok(Arc::new(BooleanArray::new(values, None)))
        }
        DType::I8 => p::<Int8Type>(array),
        DType::I16 => p::<Int16Type>(array),
        DType::I32 => p::<Int32Type>(array),
        DType::I64 => p::<Int64Type>(array),
        DType::U8 => p::<UInt8Type>(array),
        DType::U16 => p::<UInt16Type>(array),
        DType::U32 => p::<UInt32Type>(array),
        DType::U64 => p::<UInt64Type>(array),
        DType::F32 => p::<Float32Type>(array),
        DType::F64 => p::<Float64Type>(array),
        DType::DateTime(unit) => match arrow_unit(unit).ok_or_else(no_type)? {
            U::Second => p::<TimestampSecondType>(array),
            U::Millisecond => p::<TimestampMillisecondType>(array),
            U::Microsecond => p::<TimestampMicrosecondType>(array),
            U::Nanosecond => p::<TimestampNanosecondType>(array),
        },
        DType::TimeDelta(unit) => match arrow_unit(unit).ok_or_else(no_type)? {
            U::Second => p::<DurationSecondType>(array),
            U::Millisecond => p::<DurationMillisecondType>(array),
            U::Microsecond => p::<DurationMicrosecondType>(array),
            U::Nanosecond => p::<DurationNanosecondType>(array),
        },
        _ => Err(no_type()),
    }
}
