//! Arrow: pontoon [`Array`](crate::Array)s to and from Arrow arrays without a copy, the `arrow`
//! family for record batches and arrays, and Arrow IPC streams and files; one file each
//! (`convert`, `family`, `ipc`), each with the errors of its operations.
//!
//! Only arrow-rs crates are used (`arrow-array`, `arrow-buffer`, `arrow-data`, `arrow-schema`,
//! `arrow-ipc`); no Arrow compression codec is built in.
//!
//! # Conversions
//!
//! [`from_arrow`] and [`to_arrow`] (or [`to_primitive`], typed) convert between 1-D pontoon arrays
//! and Arrow primitive arrays: integers, floats, `Timestamp` (pontoon `datetime64`) and `Duration`
//! (pontoon `timedelta64`) in seconds, milli-, micro- and nanoseconds.
//!
//! - **No copy** either way: a `bytes::Bytes` becomes an `arrow_buffer::Buffer` through
//!   `Buffer::from(bytes::Bytes)`, which keeps the `Bytes` alive as the buffer's owner, and an
//!   Arrow `Buffer` becomes a `Bytes` through `bytes::Bytes::from(Buffer)`
//!   (`Bytes::from_owner`). The elements stay where they are.
//! - **Copies, documented:** a pontoon array that is not C-contiguous (strided, reversed) or not in
//!   this machine's byte order is compacted first; booleans are bit-packed in Arrow and one byte
//!   each in pontoon, so they are converted both ways.
//! - **Refused, with a typed error:** Arrow arrays with nulls ([`ConvertError::Nulls`]: pontoon
//!   arrays have no nulls; pontoon to Arrow never makes any), types with no counterpart
//!   ([`ConvertError::NoCounterpart`]: strings, complex numbers, `datetime64[D]`, ...), and pontoon arrays
//!   of other than one dimension ([`ConvertError::NotOneDimensional`]). A `Timestamp` with a time
//!   zone becomes a plain `datetime64` of the same instants (UTC), as numpy has no time zones.
//!
//! # The `arrow` family
//!
//! [`ArrowFamily`] serializes a [`RecordBatch`](arrow_array::RecordBatch) or an [`ArrayRef`](arrow_array::ArrayRef) (any Arrow type the IPC
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
//! Every way in treats its input as hostile, and each operation has its own error:
//! [`ConvertError`] (conversions), [`LoadError`] (the family's way in), [`IpcReadError`] (IPC
//! reading); arrow-rs's own errors are their `source`. Every way in also takes the receiver's
//! [`Limits`](pontoon_wire::Limits): no node, record batch or converted array may claim more
//! elements than [`Limits::max_expansion`](pontoon_wire::Limits::max_expansion) allows for the
//! bytes received, since Arrow's null, struct, run-end and dictionary types can describe many
//! elements in no bytes at all.
//!
//! The family checks what arrow-rs would trust (frame counts, bitmap lengths, element counts and
//! offsets, fixed-width buffers cut to whole elements) and lets `ArrayDataBuilder::build`
//! validate the rest. The IPC readers check each message before arrow-ipc decodes it: its
//! flatbuffer and header; element and null counts (none negative, none past the limits);
//! variadic buffer counts; every buffer inside the body; and, walking each record or dictionary
//! batch's nodes and buffers against the schema as arrow-ipc's decoder does, every fixed-width
//! buffer a whole number of elements (arrow-data's validation views it as a slice of them and
//! panicked otherwise) and every union's type ids and dense offsets as long as its node
//! (arrow-ipc slices them at the node's length, unchecked). The file reader also checks the
//! magic, the footer's length and flatbuffer, and that every block it lists lies inside the
//! file without overlapping another.
//!
//! What is still only behind a backstop: whatever else in arrow-rs panics on malformed bodies
//! (it has before: apache/arrow-rs#7124, #10437), and batches the walk cannot place (a
//! dictionary batch whose id the schema does not name, a message that does not fit its schema:
//! arrow-ipc refuses those itself). So every path also catches a panic from arrow-rs and returns
//! it as an error (`Panicked`). This backstop needs unwinding, so with `panic = "abort"` such
//! input would abort instead; the fuzz targets run with libFuzzer's aborting panic hook, so that
//! what still reaches the backstop is found.

mod convert;
mod family;
mod ipc;

/// The `arrow-array` crate this one is built with (`RecordBatch`, `ArrayRef` and the typed
/// arrays are in this module's API), so users name the same version.
///
/// ```
/// use pontoon_array::arrow::arrow_array::Int32Array;
/// let column = Int32Array::from(vec![1, 2, 3]);
/// let array = pontoon_array::arrow::from_arrow(&column, &pontoon_wire::Limits::DEFAULT)?;
/// assert_eq!((array.len(), column.values().len()), (3, 3));
/// # Ok::<(), pontoon_array::arrow::ConvertError>(())
/// ```
pub use arrow_array;
/// The `arrow-schema` crate this one is built with (`ArrowError`, `DataType`, `Schema`).
///
/// ```
/// let error = pontoon_array::arrow::arrow_schema::ArrowError::SchemaError("x".into());
/// # let _ = error;
/// ```
pub use arrow_schema;

pub use convert::{ConvertError, from_arrow, to_arrow, to_primitive};
pub use family::{ArrowFamily, DumpError, LoadError};
pub use ipc::{
    IpcReadError, IpcWriteError, read_ipc_file, read_ipc_stream, write_ipc_file, write_ipc_stream,
};

/// arrow-rs panicked while it decoded untrusted bytes.
struct Panicked;

/// Runs arrow-rs decoding of untrusted bytes, turning a panic into an error.
///
/// arrow-rs means to return errors for malformed input, but some of its checks still panic
/// (see the module docs). What it trusts is checked before it is called wherever that is
/// practical; this is the backstop for the rest. Nothing outlives a caught panic: the closure's
/// state is dropped with it.
fn unpanicked<T>(decode: impl FnOnce() -> T) -> Result<T, Panicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).map_err(|_| Panicked)
}

/// What is wrong with `data_type` if it carries a negative fixed size (`FixedSizeBinary`,
/// `FixedSizeList`), which an IPC schema from a peer can: arrow-data's layout unwraps the size
/// into a `usize` and panics, so both ways in refuse such a type before arrow-rs sees it.
fn negative_fixed_size(data_type: &arrow_schema::DataType) -> Option<String> {
    use arrow_schema::DataType;
    match data_type {
        DataType::FixedSizeBinary(size) | DataType::FixedSizeList(_, size) if *size < 0 => {
            Some(format!("a fixed size of {size} in {data_type}"))
        }
        _ => None,
    }
}
