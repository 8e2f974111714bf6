//! Arrow IPC streams and files: written from record batches, read back as views of the bytes
//! given, with what arrow-ipc trusts checked first.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_data::BufferSpec;
use arrow_ipc::Block;
use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::reader::{FileDecoder, StreamDecoder};
use arrow_ipc::writer::{FileWriter, StreamWriter};
use arrow_schema::{ArrowError, DataType, Schema};
use bytes::Bytes;
use pontoon_wire::Limits;

use super::unpanicked;

/// Why record batches could not be written as an IPC stream or file.
///
/// ```
/// use pontoon_array::arrow::{IpcWriteError, write_ipc_stream};
/// assert!(matches!(write_ipc_stream(&[]), Err(IpcWriteError::NoBatches)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpcWriteError {
    /// No batches: a stream or file needs a schema, which comes from the first batch.
    #[error("an IPC stream or file needs a schema: no batches")]
    NoBatches,
    /// A batch whose schema is not the first batch's.
    #[error("batch {0} has another schema than batch 0")]
    SchemaMismatch(usize),
    /// arrow-ipc's writer failed.
    #[error("arrow-ipc cannot write the batches")]
    Arrow(#[source] ArrowError),
}

/// Why bytes could not be read as an IPC stream or file: malformed (what and at which byte),
/// over the receiver's limits, or refused by arrow-ipc.
///
/// ```
/// use pontoon_array::arrow::{IpcReadError, read_ipc_file};
/// let err = read_ipc_file(bytes::Bytes::from_static(b"not arrow"), &pontoon_wire::Limits::DEFAULT);
/// assert!(matches!(err, Err(IpcReadError::Malformed(_))));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpcReadError {
    /// The bytes are not a whole, sound IPC stream or file; says what and where.
    #[error("malformed IPC data: {0}")]
    Malformed(String),
    /// Data in the other byte order than this machine's.
    #[error("IPC data in the other byte order than this machine's")]
    ForeignByteOrder,
    /// A stream with no schema message.
    #[error("an IPC stream with no schema")]
    NoSchema,
    /// A record batch or node of more elements than the receiver's
    /// [`Limits::max_expansion`] allows for the bytes given.
    #[error(
        "a record batch or node of {elements} elements from {received_bytes} bytes is more than \
         the receiver's limits allow ({limit} elements: max_expansion_ratio, max_expanded_bytes)"
    )]
    TooManyElements {
        /// The elements claimed.
        elements: i64,
        /// The bytes given.
        received_bytes: u64,
        /// The most the limits allow.
        limit: u64,
    },
    /// arrow-ipc refused the data (a compressed stream, for instance: no codec is built in).
    #[error("arrow-ipc refused the data")]
    Arrow(#[source] ArrowError),
    /// arrow-ipc panicked on the data (caught: see the module docs).
    #[error("arrow-rs refused malformed input (it panicked)")]
    Panicked,
}

impl From<super::Panicked> for IpcReadError {
    fn from(_: super::Panicked) -> IpcReadError {
        IpcReadError::Panicked
    }
}

impl From<ArrowError> for IpcReadError {
    fn from(error: ArrowError) -> IpcReadError {
        IpcReadError::Arrow(error)
    }
}

/// The Arrow IPC stream of `batches` (the schema, then each batch, then the end marker), as
/// `pyarrow.ipc.open_stream` reads it. The batches must share one schema, which a stream needs,
/// so there must be at least one.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int32Array, RecordBatch};
/// use pontoon_array::arrow::{read_ipc_stream, write_ipc_stream};
///
/// let batch = RecordBatch::try_from_iter([("a", Arc::new(Int32Array::from(vec![1, 2])) as _)])?;
/// let stream = write_ipc_stream(&[batch.clone(), batch.clone()])?;
/// assert_eq!(read_ipc_stream(stream.into(), &pontoon_wire::Limits::DEFAULT)?, [batch.clone(), batch]);
/// assert!(write_ipc_stream(&[]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_ipc_stream(batches: &[RecordBatch]) -> Result<Vec<u8>, IpcWriteError> {
    let first = batches.first().ok_or(IpcWriteError::NoBatches)?;
    let schema = first.schema();
    let mut writer = StreamWriter::try_new(Vec::new(), &schema).map_err(IpcWriteError::Arrow)?;
    for (i, batch) in batches.iter().enumerate() {
        if batch.schema_ref() != &schema {
            return Err(IpcWriteError::SchemaMismatch(i));
        }
        writer.write(batch).map_err(IpcWriteError::Arrow)?;
    }
    writer.finish().map_err(IpcWriteError::Arrow)?;
    Ok(std::mem::take(writer.get_mut()))
}

/// The record batches of an Arrow IPC stream (as `pyarrow.ipc.new_stream` writes it), without
/// a copy: each column's buffers are views of `bytes` (a buffer misaligned for its type is
/// copied into aligned memory). A stream with a schema and no batches gives none; input that is
/// not a whole, valid stream is an [`IpcReadError`], never a panic. No record batch, and no
/// node of one, may claim more elements than `limits` allow for the bytes given
/// ([`IpcReadError::TooManyElements`]): checked before arrow-ipc decodes anything.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Array as _, Float64Array, RecordBatch};
/// use pontoon_array::arrow::{read_ipc_stream, write_ipc_stream};
/// use pontoon_wire::Limits;
///
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(vec![0.5; 64])) as _)])?;
/// let stream = bytes::Bytes::from(write_ipc_stream(&[batch])?);
/// let back = read_ipc_stream(stream.clone(), &Limits::DEFAULT)?;
/// let values = back[0].column(0).to_data().buffers()[0].as_ptr() as usize;
/// let range = stream.as_ptr() as usize..stream.as_ptr() as usize + stream.len();
/// assert!(range.contains(&values)); // a view of the stream
/// assert!(read_ipc_stream(stream.slice(..stream.len() - 20), &Limits::DEFAULT).is_err()); // truncated
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_ipc_stream(bytes: Bytes, limits: &Limits) -> Result<Vec<RecordBatch>, IpcReadError> {
    check_ipc_stream(&bytes, &ElementLimit::new(limits, bytes.len()))?;
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
            return Err(IpcReadError::NoSchema);
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
/// use pontoon_array::arrow::{read_ipc_file, write_ipc_file};
///
/// let batch = RecordBatch::try_from_iter([("a", Arc::new(Int32Array::from(vec![1, 2])) as _)])?;
/// let file = write_ipc_file(&[batch.clone(), batch.clone()])?;
/// assert!(file.starts_with(b"ARROW1") && file.ends_with(b"ARROW1"));
/// assert_eq!(read_ipc_file(file.into(), &pontoon_wire::Limits::DEFAULT)?, [batch.clone(), batch]);
/// assert!(write_ipc_file(&[]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_ipc_file(batches: &[RecordBatch]) -> Result<Vec<u8>, IpcWriteError> {
    let first = batches.first().ok_or(IpcWriteError::NoBatches)?;
    let schema = first.schema();
    let mut writer = FileWriter::try_new(Vec::new(), &schema).map_err(IpcWriteError::Arrow)?;
    for (i, batch) in batches.iter().enumerate() {
        if batch.schema_ref() != &schema {
            return Err(IpcWriteError::SchemaMismatch(i));
        }
        writer.write(batch).map_err(IpcWriteError::Arrow)?;
    }
    writer.finish().map_err(IpcWriteError::Arrow)?;
    writer.into_inner().map_err(IpcWriteError::Arrow)
}

/// The record batches of an Arrow IPC file (as `pyarrow.ipc.new_file` writes it), in the order
/// its footer lists them, without a copy: each column's buffers, dictionaries included, are
/// views of `bytes` (a buffer misaligned for its type is copied into aligned memory). A file
/// with no batches gives none; input that is not a whole, valid file is an [`IpcReadError`],
/// never a panic. Compressed files (LZ4, zstd) are refused, as no codec is built in; element
/// counts are bounded by `limits` as in [`read_ipc_stream`].
///
/// The footer is what is read: the magic at both ends, the footer's length, every block it
/// lists (which must lie, without overlapping, between the leading magic and the footer) and
/// every buffer of every message are checked before arrow-ipc's `FileDecoder` decodes them.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Array as _, Float64Array, RecordBatch};
/// use pontoon_array::arrow::{read_ipc_file, write_ipc_file};
/// use pontoon_wire::Limits;
///
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(vec![0.5; 64])) as _)])?;
/// let file = bytes::Bytes::from(write_ipc_file(&[batch])?);
/// let back = read_ipc_file(file.clone(), &Limits::DEFAULT)?;
/// let values = back[0].column(0).to_data().buffers()[0].as_ptr() as usize;
/// let range = file.as_ptr() as usize..file.as_ptr() as usize + file.len();
/// assert!(range.contains(&values)); // a view of the file
/// assert!(read_ipc_file(file.slice(..file.len() - 1), &Limits::DEFAULT).is_err()); // truncated
/// assert!(read_ipc_file(file.slice(1..), &Limits::DEFAULT).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_ipc_file(bytes: Bytes, limits: &Limits) -> Result<Vec<RecordBatch>, IpcReadError> {
    let bad = |what: String| IpcReadError::Malformed(format!("IPC file: {what}"));
    let limit = ElementLimit::new(limits, bytes.len());
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
    let footer_len = word(&bytes, footer_end)
        .map(|w| i32::from_le_bytes(w.to_le_bytes()))
        .ok_or_else(|| bad(format!("no footer length at byte {footer_end}")))?;
    let footer_start = usize::try_from(footer_len)
        .ok()
        .and_then(|footer_len| footer_end.checked_sub(footer_len))
        .filter(|&start| start >= IPC_FILE_HEAD)
        .ok_or_else(|| bad(format!("a footer of {footer_len} bytes in {len}")))?;
    let footer = bytes
        .get(footer_start..footer_end)
        .ok_or_else(|| bad(format!("a footer at {footer_start}..{footer_end}")))?;
    let footer = arrow_ipc::root_as_footer(footer).map_err(|e| bad(format!("the footer: {e}")))?;
    let ipc_schema = footer
        .schema()
        .ok_or_else(|| bad("a footer with no schema".into()))?;
    if !ipc_schema.endianness().equals_to_target_endianness() {
        return Err(IpcReadError::ForeignByteOrder);
    }
    let schema = Arc::new(unpanicked(|| try_fb_to_schema(ipc_schema))??);
    let types = SchemaTypes::new(&schema, ipc_schema);
    let dictionaries: Vec<Block> = footer.dictionaries().iter().flatten().copied().collect();
    let records: Vec<Block> = footer
        .recordBatches()
        .ok_or_else(|| bad("a footer with no record batch list".into()))?
        .iter()
        .copied()
        .collect();

    // Every block inside the messages, none overlapping another (so decoding is bounded by the
    // size of the input), and every message in it sound.
    let mut ranges = Vec::new();
    ranges
        .try_reserve_exact(dictionaries.len() + records.len())
        .map_err(|_| bad("too many blocks to index".into()))?;
    for block in dictionaries.iter().chain(&records) {
        let outside = || {
            bad(format!(
                "a block at {} of {}+{} bytes outside the {footer_start} bytes of messages",
                block.offset(),
                block.metaDataLength(),
                block.bodyLength()
            ))
        };
        let (range, meta) = ipc_block_range(block)
            .filter(|(range, _)| range.start >= IPC_FILE_HEAD && range.end <= footer_start)
            .ok_or_else(outside)?;
        let data = bytes.get(range.clone()).ok_or_else(outside)?;
        // As arrow-ipc reads it: after the continuation marker and length, or the length alone.
        let message = match data.starts_with(&[0xff; 4]) {
            true => data.get(8..meta),
            false => data.get(4..meta),
        }
        .ok_or_else(outside)?;
        let message = arrow_ipc::root_as_message(message)
            .map_err(|e| bad(format!("the message at byte {}: {e}", range.start)))?;
        check_message(&message, range.len() - meta, &limit, Some(&types))
            .map_err(|e| e.at(range.start, "IPC file"))?;
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
            ipc_block_range(block)
                .map(|(range, _)| buffer.slice_with_length(range.start, range.len()))
                .ok_or_else(|| bad("a block changed".into()))
        };
        let mut decoder = FileDecoder::new(schema, version);
        for block in &dictionaries {
            decoder.read_dictionary(block, &block_buffer(block)?)?;
        }
        let mut batches = Vec::with_capacity(records.len());
        for block in &records {
            if let Some(batch) = decoder.read_record_batch(block, &block_buffer(block)?)? {
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

/// The bytes of an IPC file block (its message, then its body) and the length of its message,
/// if its offset and lengths are sound: none negative, the message long enough for its length
/// prefix (arrow-ipc reads 8 bytes of it unchecked), and the end representable.
fn ipc_block_range(block: &Block) -> Option<(std::ops::Range<usize>, usize)> {
    let start = usize::try_from(block.offset()).ok()?;
    let meta = usize::try_from(block.metaDataLength())
        .ok()
        .filter(|&meta| meta >= 8)?;
    let body = usize::try_from(block.bodyLength()).ok()?;
    let end = start.checked_add(meta)?.checked_add(body)?;
    Some((start..end, meta))
}

/// The little-endian `u32` at byte `at` of `bytes`, if there are four bytes there.
fn word(bytes: &[u8], at: usize) -> Option<u32> {
    match bytes.get(at..at.checked_add(4)?)? {
        &[a, b, c, d] => Some(u32::from_le_bytes([a, b, c, d])),
        _ => None,
    }
}

/// The most elements a record batch or one of its nodes may claim: the receiver's expansion
/// limit for the bytes given, each element counted as one byte (nulls, empty structs and runs
/// take none on the wire).
struct ElementLimit {
    received_bytes: u64,
    limit: u64,
}

impl ElementLimit {
    fn new(limits: &Limits, received: usize) -> ElementLimit {
        let received_bytes = received as u64;
        ElementLimit {
            received_bytes,
            limit: limits.max_expansion(received_bytes),
        }
    }

    /// Refuses a negative count (arrow-ipc would cast it to a huge `usize`) or one past the
    /// limit.
    fn check(&self, elements: i64, what: &str) -> Result<(), MessageError> {
        if elements < 0 {
            return Err(MessageError::Malformed(format!(
                "{what} of {elements} elements"
            )));
        }
        if elements as u64 > self.limit {
            return Err(MessageError::TooMany(IpcReadError::TooManyElements {
                elements,
                received_bytes: self.received_bytes,
                limit: self.limit,
            }));
        }
        Ok(())
    }
}

/// What [`check_message`] found, for the caller to place.
enum MessageError {
    /// Malformed: what is wrong.
    Malformed(String),
    /// Over the limits.
    TooMany(IpcReadError),
}

impl MessageError {
    /// The error, saying where: the message at byte `at` of `what`.
    fn at(self, at: usize, what: &str) -> IpcReadError {
        match self {
            MessageError::Malformed(m) => {
                IpcReadError::Malformed(format!("{what}: the message at byte {at}: {m}"))
            }
            MessageError::TooMany(e) => e,
        }
    }
}

/// Checks what arrow-ipc's stream decoder trusts: that each message's flatbuffer is sound, that
/// its header is of the type it says, that every buffer lies inside the message body (the
/// decoder slices the body at the offsets it is given, and panics outside it), and that no
/// element count is negative or past the limits.
fn check_ipc_stream(bytes: &[u8], limit: &ElementLimit) -> Result<(), IpcReadError> {
    let bad = |what: String| IpcReadError::Malformed(format!("IPC stream: {what}"));
    // The stream's schema, once its message has been read: what batches are checked against.
    let mut schema: Option<SchemaTypes> = None;
    let mut at = 0usize;
    while at < bytes.len() {
        let next = |at: usize| word(bytes, at).ok_or_else(|| bad(format!("cut at byte {at}")));
        let mut len = next(at)?;
        at += 4;
        if len == u32::MAX {
            // The continuation marker, then the length.
            len = next(at)?;
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
        let message_at = at;
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
        if schema.is_none()
            && let Some(fb) = message.header_as_schema()
        {
            schema = unpanicked(|| arrow_ipc::convert::try_fb_to_schema(fb))?
                .ok()
                .map(|converted| SchemaTypes::new(&converted, fb));
        }
        check_message(&message, body, limit, schema.as_ref())
            .map_err(|e| e.at(message_at, "IPC stream"))?;
        at += body;
    }
    Ok(())
}

/// Checks what arrow-ipc's decoders trust in one message whose body is `body` bytes long: that
/// its header is of the type it says, that every buffer of a record or dictionary batch lies
/// inside the body (the decoders slice the body at the offsets they are given, and panic outside
/// it), and that the batch's length and each node's length and null count are neither negative
/// nor past `limit`.
fn check_message(
    message: &arrow_ipc::Message<'_>,
    body: usize,
    limit: &ElementLimit,
    schema: Option<&SchemaTypes>,
) -> Result<(), MessageError> {
    let malformed = |what: &str| MessageError::Malformed(what.to_string());
    let header = message.header_type();
    // The types the batch's nodes are of: the schema's columns, or one dictionary's values.
    let mut types: Option<Vec<&DataType>> = None;
    let batch = if header == arrow_ipc::MessageHeader::RecordBatch {
        types = schema.map(|s| s.fields.iter().collect());
        Some(
            message
                .header_as_record_batch()
                .ok_or_else(|| malformed("no record batch header"))?,
        )
    } else if header == arrow_ipc::MessageHeader::DictionaryBatch {
        let dictionary = message
            .header_as_dictionary_batch()
            .ok_or_else(|| malformed("no dictionary batch header"))?;
        types = schema
            .and_then(|s| s.dictionaries.get(&dictionary.id()))
            .map(|values| vec![values]);
        Some(
            dictionary
                .data()
                .ok_or_else(|| malformed("a dictionary batch with no data"))?,
        )
    } else if header == arrow_ipc::MessageHeader::Schema {
        message
            .header_as_schema()
            .ok_or_else(|| malformed("no schema header"))?;
        None
    } else {
        None
    };
    let Some(batch) = batch else {
        return Ok(());
    };
    limit.check(batch.length(), "a record batch")?;
    for node in batch.nodes().iter().flatten() {
        limit.check(node.length(), "a node")?;
        if node.null_count() < 0 || node.null_count() > node.length() {
            return Err(MessageError::Malformed(format!(
                "a node of {} elements with {} nulls",
                node.length(),
                node.null_count()
            )));
        }
    }
    for count in batch.variadicBufferCounts().iter().flatten() {
        if count < 0 {
            return Err(MessageError::Malformed(format!(
                "a variadic buffer count of {count}"
            )));
        }
    }
    for buffer in batch.buffers().iter().flatten() {
        let inside = u64::try_from(buffer.offset())
            .ok()
            .zip(u64::try_from(buffer.length()).ok())
            .and_then(|(offset, length)| offset.checked_add(length))
            .is_some_and(|end| end <= body as u64);
        if !inside {
            return Err(MessageError::Malformed(format!(
                "a buffer at {}+{} outside a body of {body} bytes",
                buffer.offset(),
                buffer.length()
            )));
        }
    }
    match types {
        Some(types) => LayoutWalk::new(batch, message.version())
            .fields(types.into_iter())
            .or_else(|stop| match stop {
                Stop::Mismatch => Ok(()),
                Stop::Refuse(e) => Err(e),
            }),
        None => Ok(()),
    }
}

/// What the batches of a stream or file are checked against: the column types, and the value
/// type of each dictionary by id.
struct SchemaTypes {
    fields: Vec<DataType>,
    dictionaries: HashMap<i64, DataType>,
}

impl SchemaTypes {
    /// The types of `schema`, and its dictionaries' ids from `fb`, the flatbuffer it was
    /// converted from (walked side by side: each dictionary-encoded field of `fb` is a
    /// `Dictionary` type in `schema`).
    fn new(schema: &Schema, fb: arrow_ipc::Schema<'_>) -> SchemaTypes {
        let mut dictionaries = HashMap::new();
        if let Some(fb_fields) = fb.fields() {
            for (field, fb_field) in schema.fields().iter().zip(fb_fields.iter()) {
                dictionary_types(field.data_type(), fb_field, &mut dictionaries, 0);
            }
        }
        SchemaTypes {
            fields: schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect(),
            dictionaries,
        }
    }
}

/// Records the value type of each dictionary under `data_type` (whose flatbuffer field is `fb`).
fn dictionary_types(
    data_type: &DataType,
    fb: arrow_ipc::Field<'_>,
    out: &mut HashMap<i64, DataType>,
    depth: usize,
) {
    if depth > 64 {
        return; // the flatbuffer verifier bounds nesting already
    }
    let data_type = match (fb.dictionary(), data_type) {
        (Some(encoding), DataType::Dictionary(_, values)) => {
            out.insert(encoding.id(), values.as_ref().clone());
            values.as_ref()
        }
        (Some(_), _) => return,
        (None, data_type) => data_type,
    };
    if let Some(fb_children) = fb.children() {
        for (child, fb_child) in child_types(data_type).into_iter().zip(fb_children.iter()) {
            dictionary_types(child, fb_child, out, depth + 1);
        }
    }
}

/// The types of a type's children, in the order arrow-ipc reads them.
fn child_types(data_type: &DataType) -> Vec<&DataType> {
    use DataType as T;
    match data_type {
        T::List(f)
        | T::LargeList(f)
        | T::ListView(f)
        | T::LargeListView(f)
        | T::FixedSizeList(f, _)
        | T::Map(f, _) => vec![f.data_type()],
        T::Struct(fields) => fields.iter().map(|f| f.data_type()).collect(),
        T::Union(fields, _) => fields.iter().map(|(_, f)| f.data_type()).collect(),
        T::RunEndEncoded(run_ends, values) => vec![run_ends.data_type(), values.data_type()],
        _ => Vec::new(),
    }
}

/// Why a [`LayoutWalk`] stopped.
enum Stop {
    /// The message does not fit the schema (too few nodes or buffers, say): arrow-ipc gives
    /// its own error for that.
    Mismatch,
    /// A buffer arrow-rs would slice past its end, or view as whole elements it does not hold.
    Refuse(MessageError),
}

/// Walks a batch's nodes and buffers against their types as arrow-ipc's decoder does (one
/// node per field, depth first; a validity buffer where the type can have one, then the
/// buffers of its layout), to find what arrow-rs takes without a check: a fixed-width buffer
/// whose length is not a whole number of elements (arrow-data's validation views it as a slice
/// of them, and panics), and a union's type ids and dense offsets, sliced at the node's length.
struct LayoutWalk {
    nodes: std::vec::IntoIter<arrow_ipc::FieldNode>,
    buffers: std::vec::IntoIter<arrow_ipc::Buffer>,
    variadic_counts: std::vec::IntoIter<i64>,
    /// Unions have a validity buffer before version 5.
    union_validity: bool,
}

impl LayoutWalk {
    fn new(batch: arrow_ipc::RecordBatch<'_>, version: arrow_ipc::MetadataVersion) -> Self {
        LayoutWalk {
            nodes: batch
                .nodes()
                .iter()
                .flatten()
                .copied()
                .collect::<Vec<_>>()
                .into_iter(),
            buffers: batch
                .buffers()
                .iter()
                .flatten()
                .copied()
                .collect::<Vec<_>>()
                .into_iter(),
            variadic_counts: batch
                .variadicBufferCounts()
                .iter()
                .flatten()
                .collect::<Vec<_>>()
                .into_iter(),
            union_validity: version < arrow_ipc::MetadataVersion::V5,
        }
    }

    fn fields<'t>(&mut self, types: impl Iterator<Item = &'t DataType>) -> Result<(), Stop> {
        for data_type in types {
            self.field(data_type)?;
        }
        Ok(())
    }

    fn buffer(&mut self) -> Result<arrow_ipc::Buffer, Stop> {
        self.buffers.next().ok_or(Stop::Mismatch)
    }

    fn field(&mut self, data_type: &DataType) -> Result<(), Stop> {
        let len = self.nodes.next().ok_or(Stop::Mismatch)?.length();
        if let Some(what) = super::negative_fixed_size(data_type) {
            return Err(refuse(what));
        }
        let layout = arrow_data::layout(data_type);
        let validity = match data_type {
            DataType::Union(..) => self.union_validity,
            _ => layout.can_contain_null_mask,
        };
        if validity {
            self.buffer()?;
        }
        for (i, spec) in layout.buffers.iter().enumerate() {
            let buffer = self.buffer()?;
            if let BufferSpec::FixedWidth { byte_width, .. } = spec {
                let width = i64::try_from(*byte_width).unwrap_or(i64::MAX).max(1);
                if buffer.length() % width != 0 {
                    return Err(refuse(format!(
                        "a buffer of {} bytes for {width}-byte elements of {data_type}",
                        buffer.length()
                    )));
                }
                if matches!(data_type, DataType::Union(..)) && buffer.length() / width < len {
                    let what = if i == 0 { "type ids" } else { "offsets" };
                    return Err(refuse(format!(
                        "a union of {len} elements with {} bytes of {what}",
                        buffer.length()
                    )));
                }
            }
        }
        if layout.variadic {
            let count = self.variadic_counts.next().ok_or(Stop::Mismatch)?;
            for _ in 0..count {
                self.buffer()?;
            }
        }
        if let DataType::Dictionary(..) = data_type {
            return Ok(()); // its values come in a dictionary batch
        }
        self.fields(child_types(data_type).into_iter())
    }
}

fn refuse(what: String) -> Stop {
    Stop::Refuse(MessageError::Malformed(what))
}
