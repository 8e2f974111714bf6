//! The `arrow` family: record batches and arrays as the Arrow IPC schema message plus one frame
//! per Arrow buffer, shared on the way out and viewed on the way in.

use std::any::{Any, TypeId};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, make_array};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow_data::transform::MutableArrayData;
use arrow_data::{ArrayData, ArrayDataBuilder, BufferSpec};
use arrow_ipc::convert::try_schema_from_ipc_buffer;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, DataType, Field, Schema};
use bytes::Bytes;
use pontoon_family::rmpv::Value;
use pontoon_family::{Context, Dumped, Family, FamilyError, Loaded, Object};
use pontoon_wire::Limits;

use super::unpanicked;

/// Why a record batch or array could not be dumped as the family's metadata and frames.
///
/// ```
/// use pontoon_array::arrow::DumpError;
/// let err = DumpError::Arrow(arrow_schema::ArrowError::SchemaError("x".into()));
/// assert!(std::error::Error::source(&err).is_some());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    /// arrow-ipc could not write the schema message.
    #[error("arrow-ipc cannot write the schema")]
    Arrow(#[source] ArrowError),
}

/// Why the family's metadata and frames could not be loaded back: malformed, over the
/// receiver's limits, or refused by arrow-rs's validation.
///
/// ```
/// use pontoon_array::arrow::{ArrowFamily, LoadError};
/// let meta = pontoon_family::rmpv::Value::from(3);
/// let err = ArrowFamily::load_array(&meta, &[], &pontoon_wire::Limits::DEFAULT).unwrap_err();
/// assert!(matches!(err, LoadError::Malformed(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The metadata or the frames are not what [`ArrowFamily`] writes; says what and where.
    #[error("malformed arrow family data: {0}")]
    Malformed(String),
    /// A node of more elements (or a batch of more rows) than the receiver's
    /// [`Limits::max_expansion`] allows for the bytes received: elements that take no bytes on
    /// the wire (nulls, empty structs, runs) are an expansion too.
    #[error(
        "a node of {elements} elements from {received_bytes} bytes of frames is more than the \
         receiver's limits allow ({limit} elements: max_expansion_ratio, max_expanded_bytes)"
    )]
    TooManyElements {
        /// The elements (offset included) or rows claimed.
        elements: u64,
        /// The bytes of all frames.
        received_bytes: u64,
        /// The most the limits allow.
        limit: u64,
    },
    /// arrow-rs refused the schema or a column (its validation of lengths, offsets, UTF-8,
    /// dictionary keys, ...).
    #[error("arrow-rs refused the data")]
    Arrow(#[source] ArrowError),
    /// arrow-rs panicked on the data (caught: see the module docs).
    #[error("arrow-rs refused malformed input (it panicked)")]
    Panicked,
}

impl From<super::Panicked> for LoadError {
    fn from(_: super::Panicked) -> LoadError {
        LoadError::Panicked
    }
}

/// The `arrow` serialization family: [`RecordBatch`]es and [`ArrayRef`]s as the Arrow IPC schema
/// message plus one frame per Arrow buffer, none copied either way (the format is in the
/// [module docs](crate::arrow)). Other values are declined.
///
/// Add it to a [`Registry`](pontoon_family::Registry) under [`ArrowFamily::NAME`]; Arrow values
/// are not serde types, so they go through `serialize_dyn` and come back from
/// `deserialize_dyn` as the type sent.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int32Array, RecordBatch, StringArray};
/// use pontoon_array::arrow::ArrowFamily;
/// use pontoon_family::Registry;
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
    /// assert_eq!(pontoon_array::arrow::ArrowFamily::NAME, "arrow");
    /// ```
    pub const NAME: &'static str = "arrow";

    /// A record batch as the family's metadata and frames. Each frame is one of the batch's
    /// buffers, shared, not copied (except for a column that is a small slice of much larger
    /// buffers, compacted first).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Float64Array, RecordBatch};
    /// use pontoon_array::arrow::ArrowFamily;
    ///
    /// let batch = RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(vec![1.0, 2.0])) as _)])?;
    /// let dumped = ArrowFamily::dump_batch(&batch)?;
    /// assert_eq!(dumped.frames.len(), 1); // the values: no nulls, no bitmap
    /// let column = batch.column(0).to_data();
    /// assert_eq!(dumped.frames[0].as_ptr(), column.buffers()[0].as_ptr()); // no copy
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dump_batch(batch: &RecordBatch) -> Result<Dumped, DumpError> {
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
    /// use pontoon_array::arrow::ArrowFamily;
    ///
    /// let array: ArrayRef = Arc::new(StringArray::from(vec!["a", "bc"]));
    /// let dumped = ArrowFamily::dump_array(&array)?;
    /// assert_eq!(dumped.frames.len(), 2); // offsets and bytes
    /// let limits = pontoon_wire::Limits::DEFAULT;
    /// assert_eq!(&ArrowFamily::load_array(&dumped.meta, &dumped.frames, &limits)?, &array);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dump_array(array: &ArrayRef) -> Result<Dumped, DumpError> {
        let schema = Schema::new(vec![Field::new("", array.data_type().clone(), true)]);
        dump("array", &schema, array.len(), std::slice::from_ref(array))
    }

    /// Rebuilds a record batch from [`ArrowFamily::dump_batch`]'s metadata and frames. Every
    /// buffer is a view of its frame (unless the frame is misaligned for its type: then that
    /// buffer is copied into aligned memory), and everything is validated: malformed input is
    /// a [`LoadError`], never a panic. No node may claim more elements, nor the batch more rows,
    /// than `limits` allow for the bytes of all frames ([`LoadError::TooManyElements`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use pontoon_array::arrow::ArrowFamily;
    ///
    /// let batch = RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![5, 6])) as _)])?;
    /// let dumped = ArrowFamily::dump_batch(&batch)?;
    /// let limits = pontoon_wire::Limits::DEFAULT;
    /// let back = ArrowFamily::load_batch(&dumped.meta, &dumped.frames, &limits)?;
    /// assert_eq!(back, batch);
    /// assert!(ArrowFamily::load_batch(&dumped.meta, &[], &limits).is_err()); // a frame is missing
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_batch(
        meta: &Value,
        frames: &[Bytes],
        limits: &Limits,
    ) -> Result<RecordBatch, LoadError> {
        let parsed = Meta::parse(meta)?;
        if parsed.kind != "batch" {
            return Err(malformed(format!(
                "a `{}`, not a record batch",
                parsed.kind
            )));
        }
        parsed.batch(frames, limits)
    }

    /// Rebuilds one Arrow array from [`ArrowFamily::dump_array`]'s metadata and frames (see
    /// [`ArrowFamily::load_batch`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{ArrayRef, UInt8Array};
    /// use pontoon_array::arrow::ArrowFamily;
    ///
    /// let array: ArrayRef = Arc::new(UInt8Array::from(vec![1, 2, 3]));
    /// let dumped = ArrowFamily::dump_array(&array)?;
    /// let back = ArrowFamily::load_array(&dumped.meta, &dumped.frames, &pontoon_wire::Limits::DEFAULT)?;
    /// assert_eq!(back.to_data().buffers()[0].as_ptr(), dumped.frames[0].as_ptr()); // a view
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_array(
        meta: &Value,
        frames: &[Bytes],
        limits: &Limits,
    ) -> Result<ArrayRef, LoadError> {
        let parsed = Meta::parse(meta)?;
        if parsed.kind != "array" {
            return Err(malformed(format!("a `{}`, not an array", parsed.kind)));
        }
        parsed.array(frames, limits)
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
            "batch" => Ok(Box::new(parsed.batch(loaded.frames, loaded.limits)?)),
            "array" => Ok(Box::new(parsed.array(loaded.frames, loaded.limits)?)),
            other => Err(malformed(format!("unknown kind `{other}`")).into()),
        }
    }
}

fn malformed(what: impl std::fmt::Display) -> LoadError {
    LoadError::Malformed(what.to_string())
}

/// The Arrow IPC schema message, encapsulated as it opens an IPC stream.
fn ipc_schema(schema: &Schema) -> Result<Vec<u8>, DumpError> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema).map_err(DumpError::Arrow)?;
    Ok(std::mem::take(writer.get_mut()))
}

fn dump(
    kind: &str,
    schema: &Schema,
    rows: usize,
    columns: &[ArrayRef],
) -> Result<Dumped, DumpError> {
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

fn key<'a>(map: &'a [(Value, Value)], name: &str) -> Result<&'a Value, LoadError> {
    map.iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
        .ok_or_else(|| malformed(format!("no `{name}`")))
}

fn uint(value: &Value, what: &str) -> Result<usize, LoadError> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| malformed(format!("`{what}` is not a count")))
}

impl<'a> Meta<'a> {
    fn parse(meta: &'a Value) -> Result<Meta<'a>, LoadError> {
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
            Value::Binary(bytes) => {
                unpanicked(|| try_schema_from_ipc_buffer(bytes))?.map_err(LoadError::Arrow)?
            }
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

    fn array(&self, frames: &[Bytes], limits: &Limits) -> Result<ArrayRef, LoadError> {
        let batch = self.batch(frames, limits)?;
        if batch.num_columns() != 1 {
            return Err(malformed(format!(
                "{} columns for one array",
                batch.num_columns()
            )));
        }
        Ok(batch.column(0).clone())
    }

    fn batch(&self, frames: &[Bytes], limits: &Limits) -> Result<RecordBatch, LoadError> {
        let received_bytes = frames.iter().map(|f| f.len() as u64).sum::<u64>();
        let mut reader = Reader {
            nodes: self.nodes.iter(),
            frames: frames.iter(),
            received_bytes,
            limit: limits.max_expansion(received_bytes),
        };
        reader.check_elements(self.rows, 0)?;
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|field| {
                let data = reader.node(field.data_type(), 0)?;
                Ok::<_, LoadError>(unpanicked(|| make_array(data))?)
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
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(LoadError::Arrow)
    }
}

/// Walks the nodes and frames, depth first.
struct Reader<'a> {
    nodes: std::slice::Iter<'a, Value>,
    frames: std::slice::Iter<'a, Bytes>,
    /// The bytes of all frames.
    received_bytes: u64,
    /// The most elements a node may have (its offset included), from the receiver's limits.
    limit: u64,
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
    /// Refuses `offset + len` elements past the limit, before arrow-rs sees (or adds) them.
    fn check_elements(&self, len: usize, offset: usize) -> Result<(), LoadError> {
        let elements = (len as u64).saturating_add(offset as u64);
        if elements > self.limit {
            return Err(LoadError::TooManyElements {
                elements,
                received_bytes: self.received_bytes,
                limit: self.limit,
            });
        }
        Ok(())
    }

    fn frame(&mut self) -> Result<Buffer, LoadError> {
        // `Buffer::from(bytes::Bytes)` keeps the frame as the buffer's owner: no copy.
        self.frames
            .next()
            .map(|f| Buffer::from(f.clone()))
            .ok_or_else(|| malformed("too few frames"))
    }

    fn node(&mut self, data_type: &DataType, depth: usize) -> Result<ArrayData, LoadError> {
        if depth > MAX_DEPTH {
            return Err(malformed(format!("types nested deeper than {MAX_DEPTH}")));
        }
        if let Some(what) = super::negative_fixed_size(data_type) {
            return Err(malformed(what));
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
        self.check_elements(len, offset)?;
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
            .collect::<Result<Vec<_>, LoadError>>()?;
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
        unpanicked(|| builder.build())?.map_err(LoadError::Arrow)
    }
}
