//! Arrow: ferry [`Array`]s to and from Arrow arrays without a copy, the `arrow` family for record
//! batches and arrays, and Arrow IPC streams and files.
//!
//! Only arrow-rs crates are used (`arrow-array`, `arrow-buffer`, `arrow-data`, `arrow-schema`,
//! `arrow-ipc`); no Arrow compression codec is built in.
//!
//! # Conversions
//!
//! [`from_arrow`] and [`to_arrow`] (or [`to_primitive`], typed) convert between 1-D ferry arrays
//! and Arrow primitive arrays: integers, floats, `Timestamp` (ferry `datetime64`) and `Duration`
//! (ferry `timedelta64`) in seconds, milli-, micro- and nanoseconds.
//!
//! - **No copy** either way: a `bytes::Bytes` becomes an `arrow_buffer::Buffer` through
//!   `Buffer::from(bytes::Bytes)`, which keeps the `Bytes` alive as the buffer's owner, and an
//!   Arrow `Buffer` becomes a `Bytes` through `bytes::Bytes::from(Buffer)`
//!   (`Bytes::from_owner`). The elements stay where they are.
//! - **Copies, documented:** a ferry array that is not C-contiguous (strided, reversed) or not in
//!   this machine's byte order is compacted first; booleans are bit-packed in Arrow and one byte
//!   each in ferry, so they are converted both ways.
//! - **Refused, with a typed error:** Arrow arrays with nulls ([`ArrayError::ArrowNulls`]: ferry
//!   arrays have no nulls; ferry to Arrow never makes any), types with no counterpart
//!   ([`ArrayError::ArrowType`]: strings, complex numbers, `datetime64[D]`, ...), and ferry arrays
//!   of other than one dimension ([`ArrayError::NotOneDimensional`]). A `Timestamp` with a time
//!   zone becomes a plain `datetime64` of the same instants (UTC), as numpy has no time zones.
//!
//! # The `arrow` family
//!
//! [`ArrowFamily`] serializes a [`RecordBatch`] or an [`ArrayRef`] (any Arrow type the IPC
//! format can describe: nested, dictionary, strings, nulls) as metadata plus **one frame per
//! Arrow buffer**, none of them copied: each frame is the Arrow buffer itself, shared
//! (`bytes::Bytes::from(Buffer)`). On the way in, each frame becomes an Arrow `Buffer` without a
//! copy (`Buffer::from(bytes::Bytes)`), so the columns of the rebuilt batch are views of the
//! received frames.
//!
//! arrow-ipc's record batch reader (`read_record_batch`, `StreamDecoder`) needs the whole message
//! body as one contiguous buffer, which separate frames are not; and its writer would copy every
//! buffer into that one body. So the family does not send the IPC record batch message: it sends
//! the Arrow IPC **schema** message (which carries every type, nested ones included) and, per
//! array node, what `arrow_data::ArrayData` holds besides its buffers. The receiver rebuilds each
//! column with `ArrayDataBuilder::build`, which validates everything (lengths, offsets, UTF-8,
//! dictionary keys, child arrays) exactly as arrow-ipc's own reader does.
//!
//! The metadata is a MessagePack map:
//!
//! | key | value |
//! | --- | --- |
//! | `v` | `1`, the format version |
//! | `kind` | `"batch"` (a `RecordBatch`) or `"array"` (an `ArrayRef`: a schema of one field) |
//! | `schema` | bin: the Arrow IPC schema message, encapsulated (continuation marker and length first), as it opens an IPC stream |
//! | `rows` | the number of rows |
//! | `nodes` | one `[len, offset, nulls, buffers]` per array node, depth first, columns in order; `nulls` is the bit offset of the validity bitmap or nil for none; `buffers` is how many data buffers the node has |
//!
//! The frames follow the nodes in the same order: for each node its validity bitmap (if any),
//! then its data buffers; a node's children (list values, struct fields, dictionary values, ...)
//! come after it, in the order of its type. A column that is a small slice of much larger buffers
//! (more than twice the bytes it needs, and 64 KiB more) is compacted (copied) first, so a slice
//! does not drag its whole parent along.
//!
//! # IPC streams and files
//!
//! [`write_ipc_stream`] and [`read_ipc_stream`] write and read the standard Arrow IPC stream
//! format (what `pyarrow.ipc.new_stream` writes and `pyarrow.ipc.open_stream` reads). Reading
//! is zero-copy (`arrow_ipc::reader::StreamDecoder` over one `Buffer::from(bytes::Bytes)`): the
//! columns, dictionaries included, are views of the bytes given. Compressed streams (LZ4, zstd)
//! are refused with an error, as no codec is built in.
//!
//! [`write_ipc_file`] and [`read_ipc_file`] do the same for the Arrow IPC file format (what
//! `pyarrow.ipc.new_file` writes and `pyarrow.ipc.open_file` reads): the stream's messages
//! between an `ARROW1` magic at each end, with a footer that holds the schema and lists where
//! each dictionary and record batch is. Reading follows the footer and is zero-copy too
//! (`arrow_ipc::reader::FileDecoder` over slices of one `Buffer::from(bytes::Bytes)`).
//!
//! # Untrusted input
//!
//! Every way in treats its input as hostile: malformed input is an [`ArrayError::Arrow`].
//! The family checks what arrow-rs would trust (frame counts, bitmap lengths, fixed-width
//! buffers cut to whole elements) and lets `ArrayDataBuilder::build` validate the rest; the IPC
//! readers check each message's flatbuffer, header and buffer ranges before arrow-ipc decodes
//! it, and the file reader also checks the magic, the footer's length and flatbuffer, and that
//! every block it lists lies inside the file without overlapping another. arrow-ipc's decoder
//! still panics on some malformed bodies (known upstream), so every path also catches a panic
//! from arrow-rs and returns it as an error; this backstop needs unwinding, so with
//! `panic = "abort"` such input would abort instead.

use std::any::{Any, TypeId};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BooleanArray, PrimitiveArray, RecordBatch, RecordBatchOptions,
    make_array,
};
use arrow_buffer::{BooleanBuffer, Buffer, MutableBuffer, NullBuffer, ScalarBuffer};
use arrow_data::transform::MutableArrayData;
use arrow_data::{ArrayData, ArrayDataBuilder, BufferSpec};
use arrow_ipc::Block;
use arrow_ipc::convert::{try_fb_to_schema, try_schema_from_ipc_buffer};
use arrow_ipc::reader::{FileDecoder, StreamDecoder};
use arrow_ipc::writer::{FileWriter, StreamWriter};
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit as ArrowUnit};
use bytes::Bytes;
use ferry_family::rmpv::Value;
use ferry_family::{Context, Dumped, Family, FamilyError, Loaded, Object};

use crate::{Array, ArrayError, ByteOrder, DType, TimeUnit};

impl From<ArrowError> for ArrayError {
    fn from(error: ArrowError) -> ArrayError {
        ArrayError::Arrow(error.to_string())
    }
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

fn ferry_unit(unit: ArrowUnit) -> TimeUnit {
    match unit {
        ArrowUnit::Second => TimeUnit::Second,
        ArrowUnit::Millisecond => TimeUnit::Millisecond,
        ArrowUnit::Microsecond => TimeUnit::Microsecond,
        ArrowUnit::Nanosecond => TimeUnit::Nanosecond,
    }
}

/// The Arrow type of a ferry dtype, if it has one.
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

/// The ferry dtype of an Arrow type, if it has one.
fn ferry_dtype(data_type: &DataType) -> Option<DType> {
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
        DataType::Timestamp(unit, _) => DType::DateTime(ferry_unit(*unit)),
        DataType::Duration(unit) => DType::TimeDelta(ferry_unit(*unit)),
        _ => return None,
    })
}

/// A ferry array of an Arrow primitive array, without a copy: the array's data is the Arrow
/// values buffer, shared. Booleans, bit-packed in Arrow, are converted (a copy).
///
/// An array with nulls is refused ([`ArrayError::ArrowNulls`]), and so is a type with no ferry
/// dtype ([`ArrayError::ArrowType`]). A `Timestamp` with a time zone gives the same instants as
/// a plain `datetime64` (UTC).
///
/// ```
/// use arrow_array::Int32Array;
/// use ferry_array::{ArrayError, arrow::from_arrow};
///
/// let arrow = Int32Array::from(vec![1, 2, 3]);
/// let array = from_arrow(&arrow)?;
/// assert_eq!(array.as_slice::<i32>()?, &[1, 2, 3]);
/// assert_eq!(array.data().as_ptr(), arrow.values().as_ptr().cast()); // no copy
///
/// let with_null = Int32Array::from(vec![Some(1), None]);
/// assert_eq!(from_arrow(&with_null).unwrap_err(), ArrayError::ArrowNulls(1));
/// # Ok::<(), ArrayError>(())
/// ```
pub fn from_arrow(array: &dyn arrow_array::Array) -> Result<Array, ArrayError> {
    let dtype = ferry_dtype(array.data_type())
        .ok_or_else(|| ArrayError::ArrowType(format!("the Arrow type {}", array.data_type())))?;
    let nulls = array.logical_null_count();
    if nulls > 0 {
        return Err(ArrayError::ArrowNulls(nulls));
    }
    let len = array.len();
    if dtype == DType::Bool {
        let bools: Vec<u8> = array.as_boolean().values().iter().map(u8::from).collect();
        return Array::from_parts(
            dtype,
            ByteOrder::NATIVE,
            vec![len],
            vec![1],
            0,
            Bytes::from(bools),
        );
    }
    // A fixed-width primitive array holds its values in one buffer, from `offset` on.
    let size = dtype.size();
    let data = array.to_data();
    let start = data.offset().checked_mul(size);
    let bytes = len.checked_mul(size);
    let values = match (data.buffers().first(), start, bytes) {
        (Some(buffer), Some(start), Some(bytes))
            if start
                .checked_add(bytes)
                .is_some_and(|end| end <= buffer.len()) =>
        {
            buffer.slice_with_length(start, bytes)
        }
        _ => {
            return Err(ArrayError::Arrow(
                "the values buffer is shorter than the array".into(),
            ));
        }
    };
    Array::from_parts(
        dtype,
        ByteOrder::NATIVE,
        vec![len],
        vec![size as isize],
        0,
        Bytes::from(values),
    )
}

/// The elements of a 1-D array, C-contiguous and in this machine's byte order, as exactly their
/// bytes: the array's own when it already is so, else a compact copy.
fn native_bytes(array: &Array) -> Result<(Bytes, usize), ArrayError> {
    if array.shape().len() != 1 {
        return Err(ArrayError::NotOneDimensional(array.shape().len()));
    }
    let size = array.dtype().size();
    let array = if array.byte_order() != ByteOrder::NATIVE && size > 1 {
        array.to_native()
    } else if !array.is_c_contiguous() {
        array.to_contiguous()
    } else {
        array.clone()
    };
    let start = array.offset();
    let bytes = array.data().slice(start..start + array.len() * size);
    Ok((bytes, array.len()))
}

/// An Arrow primitive array of a 1-D ferry array, without a copy: the values buffer is the
/// array's data, shared. `T` must be the Arrow type of the array's dtype (`Int32Type` for
/// `i32`, `TimestampMicrosecondType` for `datetime64[us]`, ...).
///
/// An array that is not C-contiguous or not in this machine's byte order is compacted first (a
/// copy). The result has no nulls.
///
/// ```
/// use arrow_array::types::{Float64Type, TimestampMicrosecondType};
/// use ferry_array::{Array, arrow::to_primitive};
///
/// let array = Array::from_vec(vec![1.5f64, 2.5]);
/// let arrow = to_primitive::<Float64Type>(&array)?;
/// assert_eq!(arrow.values().as_ref(), &[1.5, 2.5]);
/// assert_eq!(arrow.values().as_ptr().cast(), array.data().as_ptr()); // no copy
/// assert!(to_primitive::<TimestampMicrosecondType>(&array).is_err()); // not datetime64[us]
/// # Ok::<(), ferry_array::ArrayError>(())
/// ```
pub fn to_primitive<T: ArrowPrimitiveType>(array: &Array) -> Result<PrimitiveArray<T>, ArrayError> {
    if arrow_type(array.dtype()).as_ref() != Some(&T::DATA_TYPE) || array.dtype() == DType::Bool {
        return Err(ArrayError::ArrowType(format!(
            "the dtype {} as Arrow {}",
            array.dtype(),
            T::DATA_TYPE
        )));
    }
    let (bytes, len) = native_bytes(array)?;
    let mut buffer = Buffer::from(bytes);
    if buffer.as_ptr().align_offset(align_of::<T::Native>()) != 0 {
        // ferry arrays are aligned, so this is only for safety: an aligned copy.
        let mut aligned = MutableBuffer::with_capacity(buffer.len());
        aligned.extend_from_slice(buffer.as_slice());
        buffer = aligned.into();
    }
    Ok(PrimitiveArray::new(ScalarBuffer::new(buffer, 0, len), None))
}

/// An Arrow array of a 1-D ferry array, without a copy (see [`to_primitive`]); `bool` arrays
/// are bit-packed (a copy). Complex arrays, and `datetime64`/`timedelta64` in units Arrow lacks
/// (days, years, ...), have no Arrow type ([`ArrayError::ArrowType`]).
///
/// ```
/// use arrow_array::{Array as _, cast::AsArray, types::Int64Type};
/// use ferry_array::{Array, arrow::to_arrow};
///
/// let arrow = to_arrow(&Array::from_vec(vec![7i64, 8]))?;
/// assert_eq!(arrow.null_count(), 0);
/// assert_eq!(arrow.as_primitive::<Int64Type>().values().as_ref(), &[7, 8]);
/// # Ok::<(), ferry_array::ArrayError>(())
/// ```
pub fn to_arrow(array: &Array) -> Result<ArrayRef, ArrayError> {
    fn p<T: ArrowPrimitiveType>(array: &Array) -> Result<ArrayRef, ArrayError> {
        Ok(Arc::new(to_primitive::<T>(array)?))
    }
    use ArrowUnit as U;
    let no_type = || ArrayError::ArrowType(format!("the dtype {}", array.dtype()));
    match array.dtype() {
        DType::Bool => {
            let (bytes, _) = native_bytes(array)?;
            let bools: Vec<bool> = bytes.iter().map(|&b| b != 0).collect();
            Ok(Arc::new(BooleanArray::from(bools)))
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

/// The `arrow` serialization family: [`RecordBatch`]es and [`ArrayRef`]s as the Arrow IPC schema
/// message plus one frame per Arrow buffer, none copied either way (the format is in the
/// [module docs](self)). Other values are declined.
///
/// Add it to a [`Registry`](ferry_family::Registry) under [`ArrowFamily::NAME`]; Arrow values
/// are not serde types, so they go through `serialize_dyn` and come back from
/// `deserialize_dyn` as the type sent.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int32Array, RecordBatch, StringArray};
/// use ferry_array::arrow::ArrowFamily;
/// use ferry_family::Registry;
///
/// let batch = RecordBatch::try_from_iter([
///     ("id", Arc::new(Int32Array::from(vec![1, 2])) as _),
///     ("name", Arc::new(StringArray::from(vec![Some("a"), None])) as _),
/// ])?;
/// let mut registry = Registry::new();
/// registry.add_family(ArrowFamily)?;
/// registry.set_serializers([ArrowFamily::NAME, "custom", "serde"])?;
/// registry.set_deserializers([ArrowFamily::NAME, "custom", "serde"])?;
///
/// let message = registry.serialize_dyn(&batch)?;
/// let back = registry.deserialize_dyn(&message)?;
/// assert_eq!(back.downcast_ref::<RecordBatch>(), Some(&batch));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ArrowFamily;

/// The metadata format version the family writes and reads.
const VERSION: u64 = 1;
/// How deep types may nest (the IPC schema's flatbuffer is already bounded; this is a backstop).
const MAX_DEPTH: usize = 64;

impl ArrowFamily {
    /// The name the family is usually added under: `arrow`.
    ///
    /// ```
    /// assert_eq!(ferry_array::arrow::ArrowFamily::NAME, "arrow");
    /// ```
    pub const NAME: &'static str = "arrow";

    /// A record batch as the family's metadata and frames. Each frame is one of the batch's
    /// buffers, shared, not copied (except for a column that is a small slice of much larger
    /// buffers, compacted first).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Float64Array, RecordBatch};
    /// use ferry_array::arrow::ArrowFamily;
    ///
    /// let batch = RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(vec![1.0, 2.0])) as _)])?;
    /// let dumped = ArrowFamily::dump_batch(&batch)?;
    /// assert_eq!(dumped.frames.len(), 1); // the values: no nulls, no bitmap
    /// let column = batch.column(0).to_data();
    /// assert_eq!(dumped.frames[0].as_ptr(), column.buffers()[0].as_ptr()); // no copy
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dump_batch(batch: &RecordBatch) -> Result<Dumped, ArrayError> {
        dump(
            "batch",
            batch.schema_ref(),
            batch.num_rows(),
            batch.columns(),
        )
    }

    /// One Arrow array as the family's metadata and frames (see [`ArrowFamily::dump_batch`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{ArrayRef, StringArray};
    /// use ferry_array::arrow::ArrowFamily;
    ///
    /// let array: ArrayRef = Arc::new(StringArray::from(vec!["a", "bc"]));
    /// let dumped = ArrowFamily::dump_array(&array)?;
    /// assert_eq!(dumped.frames.len(), 2); // offsets and bytes
    /// assert_eq!(&ArrowFamily::load_array(&dumped.meta, &dumped.frames)?, &array);
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn dump_array(array: &ArrayRef) -> Result<Dumped, ArrayError> {
        let schema = Schema::new(vec![Field::new("", array.data_type().clone(), true)]);
        dump("array", &schema, array.len(), std::slice::from_ref(array))
    }

    /// Rebuilds a record batch from [`ArrowFamily::dump_batch`]'s metadata and frames. Every
    /// buffer is a view of its frame (unless the frame is misaligned for its type: then that
    /// buffer is copied into aligned memory), and everything is validated: malformed input is
    /// an [`ArrayError::Arrow`], never a panic.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use ferry_array::arrow::ArrowFamily;
    ///
    /// let batch = RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![5, 6])) as _)])?;
    /// let dumped = ArrowFamily::dump_batch(&batch)?;
    /// let back = ArrowFamily::load_batch(&dumped.meta, &dumped.frames)?;
    /// assert_eq!(back, batch);
    /// assert!(ArrowFamily::load_batch(&dumped.meta, &[]).is_err()); // a frame is missing
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_batch(meta: &Value, frames: &[Bytes]) -> Result<RecordBatch, ArrayError> {
        let parsed = Meta::parse(meta)?;
        if parsed.kind != "batch" {
            return Err(malformed(format!(
                "a `{}`, not a record batch",
                parsed.kind
            )));
        }
        parsed.batch(frames)
    }

    /// Rebuilds one Arrow array from [`ArrowFamily::dump_array`]'s metadata and frames (see
    /// [`ArrowFamily::load_batch`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{ArrayRef, UInt8Array};
    /// use ferry_array::arrow::ArrowFamily;
    ///
    /// let array: ArrayRef = Arc::new(UInt8Array::from(vec![1, 2, 3]));
    /// let dumped = ArrowFamily::dump_array(&array)?;
    /// let back = ArrowFamily::load_array(&dumped.meta, &dumped.frames)?;
    /// assert_eq!(back.to_data().buffers()[0].as_ptr(), dumped.frames[0].as_ptr()); // a view
    /// # Ok::<(), ferry_array::ArrayError>(())
    /// ```
    pub fn load_array(meta: &Value, frames: &[Bytes]) -> Result<ArrayRef, ArrayError> {
        let parsed = Meta::parse(meta)?;
        if parsed.kind != "array" {
            return Err(malformed(format!("a `{}`, not an array", parsed.kind)));
        }
        parsed.array(frames)
    }
}

impl Family for ArrowFamily {
    fn name(&self) -> &str {
        ArrowFamily::NAME
    }

    fn produces(&self, _: &str, requested: TypeId) -> bool {
        requested == TypeId::of::<RecordBatch>() || requested == TypeId::of::<ArrayRef>()
    }

    fn dumps(&self, object: &Object<'_>, _: &Context) -> Result<Option<Dumped>, FamilyError> {
        if let Some(batch) = object.downcast_ref::<RecordBatch>() {
            return Ok(Some(ArrowFamily::dump_batch(batch)?));
        }
        if let Some(array) = object.downcast_ref::<ArrayRef>() {
            return Ok(Some(ArrowFamily::dump_array(array)?));
        }
        Ok(None)
    }

    fn loads(
        &self,
        loaded: &Loaded<'_>,
        _: &Context,
    ) -> Result<Box<dyn Any + Send + Sync>, FamilyError> {
        let parsed = Meta::parse(loaded.meta)?;
        match parsed.kind.as_str() {
            "batch" => Ok(Box::new(parsed.batch(loaded.frames)?)),
            "array" => Ok(Box::new(parsed.array(loaded.frames)?)),
            other => Err(malformed(format!("unknown kind `{other}`")).into()),
        }
    }
}

fn malformed(what: impl std::fmt::Display) -> ArrayError {
    ArrayError::Arrow(format!("malformed arrow family data: {what}"))
}

/// The Arrow IPC schema message, encapsulated as it opens an IPC stream.
fn ipc_schema(schema: &Schema) -> Result<Vec<u8>, ArrayError> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    Ok(std::mem::take(writer.get_mut()))
}

fn dump(
    kind: &str,
    schema: &Schema,
    rows: usize,
    columns: &[ArrayRef],
) -> Result<Dumped, ArrayError> {
    let schema_message = ipc_schema(schema)?;
    let mut nodes = Vec::new();
    let mut frames = Vec::new();
    for column in columns {
        dump_node(&compacted(column.to_data()), &mut nodes, &mut frames);
    }
    let meta = Value::Map(vec![
        (Value::from("v"), Value::from(VERSION)),
        (Value::from("kind"), Value::from(kind)),
        (Value::from("schema"), Value::Binary(schema_message)),
        (Value::from("rows"), Value::from(rows as u64)),
        (Value::from("nodes"), Value::Array(nodes)),
    ]);
    Ok(Dumped::new(meta, frames))
}

/// The array itself, or a compact copy when its buffers hold more than twice (and 64 KiB more
/// than) the bytes it needs: a small slice of a large array.
fn compacted(data: ArrayData) -> ArrayData {
    fn sent(data: &ArrayData) -> usize {
        let nulls = data.nulls().map_or(0, |n| n.buffer().len());
        let buffers: usize = data.buffers().iter().map(Buffer::len).sum();
        nulls + buffers + data.child_data().iter().map(sent).sum::<usize>()
    }
    let Ok(needed) = data.get_slice_memory_size() else {
        return data;
    };
    if sent(&data) <= needed.saturating_mul(2).saturating_add(64 << 10) {
        return data;
    }
    let mut copy = MutableArrayData::new(vec![&data], false, data.len());
    let compact = copy.try_extend(0, 0, data.len()).map(|()| copy.freeze());
    compact.unwrap_or(data)
}

fn dump_node(data: &ArrayData, nodes: &mut Vec<Value>, frames: &mut Vec<Bytes>) {
    let nulls = match data.nulls() {
        Some(nulls) => {
            // Only the bytes that hold the array's bits, a view.
            let (offset, len) = (nulls.offset(), nulls.len());
            let bytes = (offset % 8 + len).div_ceil(8);
            frames.push(Bytes::from(
                nulls.buffer().slice_with_length(offset / 8, bytes),
            ));
            Value::from((offset % 8) as u64)
        }
        None => Value::Nil,
    };
    nodes.push(Value::Array(vec![
        Value::from(data.len() as u64),
        Value::from(data.offset() as u64),
        nulls,
        Value::from(data.buffers().len() as u64),
    ]));
    frames.extend(data.buffers().iter().map(|b| Bytes::from(b.clone())));
    for child in data.child_data() {
        dump_node(child, nodes, frames);
    }
}

/// The family's metadata, parsed.
struct Meta<'a> {
    kind: String,
    schema: Arc<Schema>,
    rows: usize,
    nodes: &'a [Value],
}

fn key<'a>(map: &'a [(Value, Value)], name: &str) -> Result<&'a Value, ArrayError> {
    map.iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
        .ok_or_else(|| malformed(format!("no `{name}`")))
}

fn uint(value: &Value, what: &str) -> Result<usize, ArrayError> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| malformed(format!("`{what}` is not a count")))
}

impl<'a> Meta<'a> {
    fn parse(meta: &'a Value) -> Result<Meta<'a>, ArrayError> {
        let map = meta
            .as_map()
            .ok_or_else(|| malformed("the metadata is not a map"))?;
        let version = key(map, "v")?.as_u64();
        if version != Some(VERSION) {
            return Err(malformed(format!(
                "format version {version:?}, this reader knows {VERSION}"
            )));
        }
        let kind = key(map, "kind")?
            .as_str()
            .ok_or_else(|| malformed("`kind` is not a string"))?;
        let schema = match key(map, "schema")? {
            Value::Binary(bytes) => try_schema_from_ipc_buffer(bytes)?,
            _ => return Err(malformed("`schema` is not bin")),
        };
        let rows = uint(key(map, "rows")?, "rows")?;
        let nodes = key(map, "nodes")?
            .as_array()
            .ok_or_else(|| malformed("`nodes` is not an array"))?;
        Ok(Meta {
            kind: kind.to_string(),
            schema: Arc::new(schema),
            rows,
            nodes,
        })
    }

    fn array(&self, frames: &[Bytes]) -> Result<ArrayRef, ArrayError> {
        let batch = self.batch(frames)?;
        if batch.num_columns() != 1 {
            return Err(malformed(format!(
                "{} columns for one array",
                batch.num_columns()
            )));
        }
        Ok(batch.column(0).clone())
    }

    fn batch(&self, frames: &[Bytes]) -> Result<RecordBatch, ArrayError> {
        let mut reader = Reader {
            nodes: self.nodes.iter(),
            frames: frames.iter(),
        };
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|field| {
                let data = reader.node(field.data_type(), 0)?;
                unpanicked(|| make_array(data))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if reader.nodes.len() != 0 || reader.frames.len() != 0 {
            return Err(malformed(format!(
                "{} nodes and {} frames left over",
                reader.nodes.len(),
                reader.frames.len()
            )));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }
}

/// Walks the nodes and frames, depth first.
struct Reader<'a> {
    nodes: std::slice::Iter<'a, Value>,
    frames: std::slice::Iter<'a, Bytes>,
}

/// The types of the children `ArrayData` holds for a type, in order.
fn child_types(data_type: &DataType) -> Vec<&DataType> {
    match data_type {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => vec![f.data_type()],
        DataType::Struct(fields) => fields.iter().map(|f| f.data_type()).collect(),
        DataType::Union(fields, _) => fields.iter().map(|(_, f)| f.data_type()).collect(),
        DataType::Dictionary(_, values) => vec![values.as_ref()],
        DataType::RunEndEncoded(run_ends, values) => vec![run_ends.data_type(), values.data_type()],
        _ => Vec::new(),
    }
}

impl Reader<'_> {
    fn frame(&mut self) -> Result<Buffer, ArrayError> {
        // `Buffer::from(bytes::Bytes)` keeps the frame as the buffer's owner: no copy.
        self.frames
            .next()
            .map(|f| Buffer::from(f.clone()))
            .ok_or_else(|| malformed("too few frames"))
    }

    fn node(&mut self, data_type: &DataType, depth: usize) -> Result<ArrayData, ArrayError> {
        if depth > MAX_DEPTH {
            return Err(malformed(format!("types nested deeper than {MAX_DEPTH}")));
        }
        let node = self
            .nodes
            .next()
            .ok_or_else(|| malformed("too few nodes"))?;
        let [len, offset, nulls, buffers] = node.as_array().map(Vec::as_slice).unwrap_or_default()
        else {
            return Err(malformed("a node is not [len, offset, nulls, buffers]"));
        };
        let (len, offset, buffers) = (
            uint(len, "len")?,
            uint(offset, "offset")?,
            uint(buffers, "buffers")?,
        );
        let nulls = match nulls {
            Value::Nil => None,
            bit_offset => {
                let bit_offset = uint(bit_offset, "nulls")?;
                let bitmap = self.frame()?;
                let fits = bit_offset
                    .checked_add(len)
                    .is_some_and(|bits| bits.div_ceil(8) <= bitmap.len());
                if !fits {
                    return Err(malformed(format!(
                        "a validity bitmap of {} bytes for {len} bits from bit {bit_offset}",
                        bitmap.len()
                    )));
                }
                Some(NullBuffer::new(BooleanBuffer::new(bitmap, bit_offset, len)))
            }
        };
        if buffers > self.frames.len() {
            return Err(malformed(format!(
                "{buffers} buffers but {} frames left",
                self.frames.len()
            )));
        }
        let specs = arrow_data::layout(data_type).buffers;
        let buffers = (0..buffers)
            .map(|i| {
                let buffer = self.frame()?;
                // arrow-data's validation views fixed-width buffers as slices of their type and
                // panics on a length that is not a whole number of elements: trim the rest.
                Ok(match specs.get(i) {
                    Some(BufferSpec::FixedWidth { byte_width, .. }) if *byte_width > 0 => {
                        let whole = buffer.len() - buffer.len() % byte_width;
                        buffer.slice_with_length(0, whole)
                    }
                    _ => buffer,
                })
            })
            .collect::<Result<Vec<_>, ArrayError>>()?;
        let children = child_types(data_type)
            .into_iter()
            .map(|child| self.node(child, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        let builder = ArrayDataBuilder::new(data_type.clone())
            .len(len)
            .offset(offset)
            .nulls(nulls)
            .buffers(buffers)
            .child_data(children)
            .align_buffers(true);
        Ok(unpanicked(|| builder.build())??)
    }
}

/// The Arrow IPC stream of `batches` (the schema, then each batch, then the end marker), as
/// `pyarrow.ipc.open_stream` reads it. The batches must share one schema, which a stream needs,
/// so there must be at least one.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int32Array, RecordBatch};
/// use ferry_array::arrow::{read_ipc_stream, write_ipc_stream};
///
/// let batch = RecordBatch::try_from_iter([("a", Arc::new(Int32Array::from(vec![1, 2])) as _)])?;
/// let stream = write_ipc_stream(&[batch.clone(), batch.clone()])?;
/// assert_eq!(read_ipc_stream(stream.into())?, [batch.clone(), batch]);
/// assert!(write_ipc_stream(&[]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_ipc_stream(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrayError> {
    let first = batches
        .first()
        .ok_or_else(|| ArrayError::Arrow("an IPC stream needs a schema: no batches".into()))?;
    let schema = first.schema();
    let mut writer = StreamWriter::try_new(Vec::new(), &schema)?;
    for (i, batch) in batches.iter().enumerate() {
        if batch.schema_ref() != &schema {
            return Err(ArrayError::Arrow(format!(
                "batch {i} has another schema than batch 0"
            )));
        }
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(std::mem::take(writer.get_mut()))
}

/// The record batches of an Arrow IPC stream (as `pyarrow.ipc.new_stream` writes it), without
/// a copy: each column's buffers are views of `bytes` (a buffer misaligned for its type is
/// copied into aligned memory). A stream with a schema and no batches gives none; input that is
/// not a whole, valid stream is an [`ArrayError::Arrow`], never a panic.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Array as _, Float64Array, RecordBatch};
/// use ferry_array::arrow::{read_ipc_stream, write_ipc_stream};
///
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(vec![0.5; 64])) as _)])?;
/// let stream = bytes::Bytes::from(write_ipc_stream(&[batch])?);
/// let back = read_ipc_stream(stream.clone())?;
/// let values = back[0].column(0).to_data().buffers()[0].as_ptr() as usize;
/// let range = stream.as_ptr() as usize..stream.as_ptr() as usize + stream.len();
/// assert!(range.contains(&values)); // a view of the stream
/// assert!(read_ipc_stream(stream.slice(..stream.len() - 20)).is_err()); // truncated
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_ipc_stream(bytes: Bytes) -> Result<Vec<RecordBatch>, ArrayError> {
    check_ipc_stream(&bytes)?;
    unpanicked(|| {
        let mut decoder = StreamDecoder::new();
        let mut buffer = Buffer::from(bytes);
        let mut batches = Vec::new();
        while !buffer.is_empty() {
            if let Some(batch) = decoder.decode(&mut buffer)? {
                batches.push(batch);
            }
        }
        decoder.finish()?;
        if decoder.schema().is_none() {
            return Err(ArrayError::Arrow("an IPC stream with no schema".into()));
        }
        Ok(batches)
    })?
}

/// The Arrow IPC file of `batches` (the `ARROW1` magic, the schema, each batch, and the footer
/// that indexes them), as `pyarrow.ipc.open_file` reads it. The batches must share one schema,
/// which the file needs, so there must be at least one.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int32Array, RecordBatch};
/// use ferry_array::arrow::{read_ipc_file, write_ipc_file};
///
/// let batch = RecordBatch::try_from_iter([("a", Arc::new(Int32Array::from(vec![1, 2])) as _)])?;
/// let file = write_ipc_file(&[batch.clone(), batch.clone()])?;
/// assert!(file.starts_with(b"ARROW1") && file.ends_with(b"ARROW1"));
/// assert_eq!(read_ipc_file(file.into())?, [batch.clone(), batch]);
/// assert!(write_ipc_file(&[]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_ipc_file(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrayError> {
    let first = batches
        .first()
        .ok_or_else(|| ArrayError::Arrow("an IPC file needs a schema: no batches".into()))?;
    let schema = first.schema();
    let mut writer = FileWriter::try_new(Vec::new(), &schema)?;
    for (i, batch) in batches.iter().enumerate() {
        if batch.schema_ref() != &schema {
            return Err(ArrayError::Arrow(format!(
                "batch {i} has another schema than batch 0"
            )));
        }
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// The record batches of an Arrow IPC file (as `pyarrow.ipc.new_file` writes it), in the order
/// its footer lists them, without a copy: each column's buffers, dictionaries included, are
/// views of `bytes` (a buffer misaligned for its type is copied into aligned memory). A file
/// with no batches gives none; input that is not a whole, valid file is an
/// [`ArrayError::Arrow`], never a panic. Compressed files (LZ4, zstd) are refused, as no codec is
/// built in.
///
/// The footer is what is read: the magic at both ends, the footer's length, every block it
/// lists (which must lie, without overlapping, between the leading magic and the footer) and
/// every buffer of every message are checked before arrow-ipc's `FileDecoder` decodes them.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Array as _, Float64Array, RecordBatch};
/// use ferry_array::arrow::{read_ipc_file, write_ipc_file};
///
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(vec![0.5; 64])) as _)])?;
/// let file = bytes::Bytes::from(write_ipc_file(&[batch])?);
/// let back = read_ipc_file(file.clone())?;
/// let values = back[0].column(0).to_data().buffers()[0].as_ptr() as usize;
/// let range = file.as_ptr() as usize..file.as_ptr() as usize + file.len();
/// assert!(range.contains(&values)); // a view of the file
/// assert!(read_ipc_file(file.slice(..file.len() - 1)).is_err()); // truncated
/// assert!(read_ipc_file(file.slice(1..)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_ipc_file(bytes: Bytes) -> Result<Vec<RecordBatch>, ArrayError> {
    let bad = |what: String| ArrayError::Arrow(format!("malformed IPC file: {what}"));
    // `ARROW1`, two bytes of padding, the messages, the footer, its length (i32), `ARROW1`.
    let len = bytes.len();
    if len < IPC_FILE_HEAD + IPC_FILE_TAIL
        || !bytes.starts_with(IPC_FILE_MAGIC)
        || !bytes.ends_with(IPC_FILE_MAGIC)
    {
        return Err(bad(format!(
            "{len} bytes without the ARROW1 magic at both ends"
        )));
    }
    let footer_end = len - IPC_FILE_TAIL;
    let footer_len = i32::from_le_bytes(
        bytes[footer_end..footer_end + 4]
            .try_into()
            .expect("four bytes"),
    );
    let footer_start = usize::try_from(footer_len)
        .ok()
        .and_then(|footer_len| footer_end.checked_sub(footer_len))
        .filter(|&start| start >= IPC_FILE_HEAD)
        .ok_or_else(|| bad(format!("a footer of {footer_len} bytes in {len}")))?;
    let footer = arrow_ipc::root_as_footer(&bytes[footer_start..footer_end])
        .map_err(|e| bad(format!("the footer: {e}")))?;
    let ipc_schema = footer
        .schema()
        .ok_or_else(|| bad("a footer with no schema".into()))?;
    if !ipc_schema.endianness().equals_to_target_endianness() {
        return Err(ArrayError::Arrow(
            "an IPC file in the other byte order than this machine's".into(),
        ));
    }
    let schema = Arc::new(unpanicked(|| try_fb_to_schema(ipc_schema))??);
    let dictionaries: Vec<Block> = footer.dictionaries().iter().flatten().copied().collect();
    let records: Vec<Block> = footer
        .recordBatches()
        .ok_or_else(|| bad("a footer with no record batch list".into()))?
        .iter()
        .copied()
        .collect();

    // Every block inside the messages, none overlapping another (so decoding is bounded by the
    // size of the input), and every message in it sound.
    let mut ranges = Vec::with_capacity(dictionaries.len() + records.len());
    for block in dictionaries.iter().chain(&records) {
        let range = ipc_block_range(block)
            .filter(|range| range.start >= IPC_FILE_HEAD && range.end <= footer_start)
            .ok_or_else(|| {
                bad(format!(
                    "a block at {} of {}+{} bytes outside the {footer_start} bytes of messages",
                    block.offset(),
                    block.metaDataLength(),
                    block.bodyLength()
                ))
            })?;
        let data = &bytes[range.clone()];
        // As arrow-ipc reads it: after the continuation marker and length, or the length alone.
        let message = match data.starts_with(&[0xff; 4]) {
            true => &data[8..],
            false => &data[4..],
        };
        let message = arrow_ipc::root_as_message(message)
            .map_err(|e| bad(format!("the message at byte {}: {e}", range.start)))?;
        let body = range.len() - usize::try_from(block.metaDataLength()).expect("checked");
        check_message(&message, body).map_err(bad)?;
        ranges.push(range);
    }
    ranges.sort_unstable_by_key(|range| range.start);
    if let Some(pair) = ranges.windows(2).find(|pair| pair[0].end > pair[1].start) {
        return Err(bad(format!(
            "blocks at {:?} and {:?} overlap",
            pair[0], pair[1]
        )));
    }

    unpanicked(|| {
        let version = footer.version();
        let buffer = Buffer::from(bytes.clone());
        let block_buffer = |block: &Block| {
            let range = ipc_block_range(block).expect("checked");
            buffer.slice_with_length(range.start, range.len())
        };
        let mut decoder = FileDecoder::new(schema, version);
        for block in &dictionaries {
            decoder.read_dictionary(block, &block_buffer(block))?;
        }
        let mut batches = Vec::with_capacity(records.len());
        for block in &records {
            if let Some(batch) = decoder.read_record_batch(block, &block_buffer(block))? {
                batches.push(batch);
            }
        }
        Ok(batches)
    })?
}

/// The magic that opens and closes an Arrow IPC file.
const IPC_FILE_MAGIC: &[u8; 6] = b"ARROW1";
/// The bytes before an IPC file's first message: the magic and two bytes of padding.
const IPC_FILE_HEAD: usize = 8;
/// The bytes after an IPC file's footer: its length and the magic.
const IPC_FILE_TAIL: usize = 10;

/// The bytes of an IPC file block (its message, then its body), if its offset and lengths are
/// sound: none negative, the message long enough for its length prefix (arrow-ipc reads 8 bytes
/// of it unchecked), and the end representable.
fn ipc_block_range(block: &Block) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(block.offset()).ok()?;
    let meta = usize::try_from(block.metaDataLength())
        .ok()
        .filter(|&meta| meta >= 8)?;
    let body = usize::try_from(block.bodyLength()).ok()?;
    let end = start.checked_add(meta)?.checked_add(body)?;
    Some(start..end)
}

/// Runs arrow-rs decoding of untrusted bytes, turning a panic into an error.
///
/// arrow-rs means to return errors for malformed input, but some of its checks still panic
/// (upstream issues apache/arrow-rs#7124 and #10437, for instance). What it trusts is checked
/// before it is called wherever that is practical ([`check_ipc_stream`], the checks in
/// [`read_ipc_file`], the buffer trimming in [`Reader::node`]); this is the backstop for the
/// rest. Nothing outlives a caught panic: the
/// closure's state is dropped with it.
fn unpanicked<T>(decode: impl FnOnce() -> T) -> Result<T, ArrayError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .map_err(|_| ArrayError::Arrow("arrow-rs refused malformed input (it panicked)".into()))
}

/// Checks what arrow-ipc's stream decoder trusts: that each message's flatbuffer is sound, that
/// its header is of the type it says, and that every buffer lies inside the message body (the
/// decoder slices the body at the offsets it is given, and panics outside it).
fn check_ipc_stream(bytes: &[u8]) -> Result<(), ArrayError> {
    let bad = |what: String| ArrayError::Arrow(format!("malformed IPC stream: {what}"));
    let mut at = 0usize;
    while at < bytes.len() {
        let word = |at: usize| {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")))
                .ok_or_else(|| bad(format!("cut at byte {at}")))
        };
        let mut len = word(at)?;
        at += 4;
        if len == u32::MAX {
            // The continuation marker, then the length.
            len = word(at)?;
            at += 4;
        }
        if len == 0 {
            break; // The end marker: the decoder refuses anything after it.
        }
        let len = usize::try_from(len).map_err(|_| bad("a message too long".into()))?;
        let message = at
            .checked_add(len)
            .and_then(|end| bytes.get(at..end))
            .ok_or_else(|| bad(format!("a message of {len} bytes cut at byte {at}")))?;
        let message = arrow_ipc::root_as_message(message)
            .map_err(|e| bad(format!("message at byte {at}: {e}")))?;
        at += len;
        let body = usize::try_from(message.bodyLength())
            .ok()
            .filter(|&body| at.checked_add(body).is_some_and(|end| end <= bytes.len()))
            .ok_or_else(|| {
                bad(format!(
                    "a body of {} bytes at byte {at}",
                    message.bodyLength()
                ))
            })?;
        check_message(&message, body).map_err(bad)?;
        at += body;
    }
    Ok(())
}

/// Checks what arrow-ipc's decoders trust in one message whose body is `body` bytes long: that
/// its header is of the type it says, and that every buffer of a record or dictionary batch lies
/// inside the body (the decoders slice the body at the offsets they are given, and panic outside
/// it). The error says what is wrong, for the caller to frame.
fn check_message(message: &arrow_ipc::Message<'_>, body: usize) -> Result<(), String> {
    let header = message.header_type();
    let batch = if header == arrow_ipc::MessageHeader::RecordBatch {
        Some(
            message
                .header_as_record_batch()
                .ok_or_else(|| "no record batch header".to_string())?,
        )
    } else if header == arrow_ipc::MessageHeader::DictionaryBatch {
        let dictionary = message
            .header_as_dictionary_batch()
            .ok_or_else(|| "no dictionary batch header".to_string())?;
        Some(
            dictionary
                .data()
                .ok_or_else(|| "a dictionary batch with no data".to_string())?,
        )
    } else if header == arrow_ipc::MessageHeader::Schema {
        message
            .header_as_schema()
            .ok_or_else(|| "no schema header".to_string())?;
        None
    } else {
        None
    };
    for buffer in batch.and_then(|b| b.buffers()).iter().flatten() {
        let inside = u64::try_from(buffer.offset())
            .ok()
            .zip(u64::try_from(buffer.length()).ok())
            .and_then(|(offset, length)| offset.checked_add(length))
            .is_some_and(|end| end <= body as u64);
        if !inside {
            return Err(format!(
                "a buffer at {}+{} outside a body of {body} bytes",
                buffer.offset(),
                buffer.length()
            ));
        }
    }
    Ok(())
}
