//! Arrow IPC streams and files against real pyarrow: pontoon writes (`write_ipc_stream`,
//! `write_ipc_file`), `pyarrow.ipc.open_stream` and `open_file` check; pyarrow writes
//! (`new_stream`, `new_file`), `read_ipc_stream` and `read_ipc_file` check, and the columns must
//! be views of the bytes read. The batches hold every integer width, both float widths,
//! booleans, strings, `timestamp[us]`, a column with nulls, and include an empty batch.
//!
//! The interpreter is `$PONTOON_PYTHON`, which `cargo xtask test` sets to its venv with numpy and
//! pyarrow (`target/pontoon-venv`). Both sides compute the values from the same formulas (see
//! [`batch`] and `expected` in [`COMMON_PY`]), so neither checks itself against its own output.
//! One Python process runs per direction, for streams and files both.
#![cfg(feature = "arrow")]

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

mod common;

use arrow_array::{
    Array as _, ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use pontoon_array::arrow::{read_ipc_file, read_ipc_stream, write_ipc_file, write_ipc_stream};
use pontoon_wire::Limits;

/// The batches on both sides, as `(first row, rows)`: one, an empty one, and another.
const BATCHES: [(u64, u64); 3] = [(0, 10), (10, 0), (10, 37)];

/// A 64-bit hash of row `i`; integers of every width take its low bits.
fn hash(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x0123_4567_89AB_CDEF)
}

/// The schema both sides use: every field nullable, as pyarrow makes them.
fn schema() -> Arc<Schema> {
    let fields = [
        ("i8", DataType::Int8),
        ("i16", DataType::Int16),
        ("i32", DataType::Int32),
        ("i64", DataType::Int64),
        ("u8", DataType::UInt8),
        ("u16", DataType::UInt16),
        ("u32", DataType::UInt32),
        ("u64", DataType::UInt64),
        ("f32", DataType::Float32),
        ("f64", DataType::Float64),
        ("flag", DataType::Boolean),
        ("text", DataType::Utf8),
        ("time", DataType::Timestamp(TimeUnit::Microsecond, None)),
        ("maybe", DataType::Int32),
    ];
    Arc::new(Schema::new(
        fields
            .into_iter()
            .map(|(name, data_type)| Field::new(name, data_type, true))
            .collect::<Vec<_>>(),
    ))
}

/// Rows `start..start + len`; `expected` in [`COMMON_PY`] computes the same.
fn batch(start: u64, len: u64) -> RecordBatch {
    let rows = || start..start + len;
    let float = |i: u64| i as f64 * 0.75 - 5.5;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int8Array::from_iter_values(rows().map(|i| hash(i) as i8))),
        Arc::new(Int16Array::from_iter_values(rows().map(|i| hash(i) as i16))),
        Arc::new(Int32Array::from_iter_values(rows().map(|i| hash(i) as i32))),
        Arc::new(Int64Array::from_iter_values(rows().map(|i| hash(i) as i64))),
        Arc::new(UInt8Array::from_iter_values(rows().map(|i| hash(i) as u8))),
        Arc::new(UInt16Array::from_iter_values(
            rows().map(|i| hash(i) as u16),
        )),
        Arc::new(UInt32Array::from_iter_values(
            rows().map(|i| hash(i) as u32),
        )),
        Arc::new(UInt64Array::from_iter_values(rows().map(hash))),
        Arc::new(Float32Array::from_iter_values(
            rows().map(|i| float(i) as f32),
        )),
        Arc::new(Float64Array::from_iter_values(rows().map(float))),
        Arc::new(BooleanArray::from_iter(rows().map(|i| Some(i % 3 == 1)))),
        Arc::new(StringArray::from_iter_values(
            rows().map(|i| format!("row {i}: ü{}", "x".repeat((i % 5) as usize))),
        )),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows().map(|i| i as i64 * 86_400_000_123 + 1_600_000_000_000_000),
        )),
        Arc::new(Int32Array::from_iter(
            rows().map(|i| (i % 4 != 2).then(|| i as i32 * 7 - 20)),
        )),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

fn batches() -> Vec<RecordBatch> {
    BATCHES
        .iter()
        .map(|&(start, len)| batch(start, len))
        .collect()
}

/// Writes `batches.txt`: one batch a line, `start,len`.
fn write_manifest(dir: &Path) {
    let lines: String = BATCHES
        .iter()
        .map(|(start, len)| format!("{start},{len}\n"))
        .collect();
    std::fs::write(dir.join("batches.txt"), lines).unwrap();
}

/// The schema, the values formula and the manifest reader both scripts start with.
const COMMON_PY: &str = r#"
import pathlib, sys
import pyarrow as pa
import pyarrow.ipc

root = pathlib.Path(sys.argv[1])
BATCHES = [tuple(int(x) for x in line.split(",")) for line in (root / "batches.txt").read_text().split()]

SCHEMA = pa.schema([
    ("i8", pa.int8()), ("i16", pa.int16()), ("i32", pa.int32()), ("i64", pa.int64()),
    ("u8", pa.uint8()), ("u16", pa.uint16()), ("u32", pa.uint32()), ("u64", pa.uint64()),
    ("f32", pa.float32()), ("f64", pa.float64()), ("flag", pa.bool_()), ("text", pa.string()),
    ("time", pa.timestamp("us")), ("maybe", pa.int32()),
])

def integer(i, bits, signed):
    h = (i * 0x9E3779B97F4A7C15 + 0x0123456789ABCDEF) % 2**64
    v = h & ((1 << bits) - 1)
    return v - (1 << bits) if signed and v >= 1 << (bits - 1) else v

def expected(start, length):
    """The same values as `batch` in pyarrow_interop.rs, as Python lists by column name."""
    rows = range(start, start + length)
    columns = {}
    for bits in (8, 16, 32, 64):
        columns[f"i{bits}"] = [integer(i, bits, True) for i in rows]
        columns[f"u{bits}"] = [integer(i, bits, False) for i in rows]
    columns["f32"] = [i * 0.75 - 5.5 for i in rows]  # exact in float32 for these rows
    columns["f64"] = [i * 0.75 - 5.5 for i in rows]
    columns["flag"] = [i % 3 == 1 for i in rows]
    columns["text"] = [f"row {i}: ü" + "x" * (i % 5) for i in rows]
    columns["time"] = [i * 86400000123 + 1600000000000000 for i in rows]
    columns["maybe"] = [None if i % 4 == 2 else i * 7 - 20 for i in rows]
    return columns
"#;

/// Reads the stream and the file pontoon wrote and checks every batch: schema, rows, values.
const CHECK_PY: &str = r#"
failures, count = [], 0

def check(what, batch, start, length):
    global count
    count += 1
    if batch.schema.names != SCHEMA.names or batch.schema.types != SCHEMA.types:
        failures.append(f"{what}: schema {batch.schema}, expected {SCHEMA}")
        return
    if batch.num_rows != length:
        failures.append(f"{what}: {batch.num_rows} rows, expected {length}")
    want = expected(start, length)
    for name in SCHEMA.names:
        column = batch.column(name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        got = column.to_pylist()
        if got != want[name]:
            failures.append(f"{what}: column {name}: {got!r}, expected {want[name]!r}")
    nulls = want["maybe"].count(None)
    if batch.column("maybe").null_count != nulls:
        failures.append(f"{what}: {batch.column('maybe').null_count} nulls, expected {nulls}")

try:
    with pa.ipc.open_stream(root / "pontoon.arrows") as reader:
        stream = list(reader)
except Exception as e:
    failures.append(f"open_stream failed: {e!r}")
    stream = []
if len(stream) != len(BATCHES):
    failures.append(f"stream: {len(stream)} batches, expected {len(BATCHES)}")
for k, (batch, (start, length)) in enumerate(zip(stream, BATCHES)):
    check(f"stream batch {k}", batch, start, length)

try:
    with pa.ipc.open_file(root / "pontoon.arrow") as reader:
        if reader.schema.types != SCHEMA.types:
            failures.append(f"file schema {reader.schema}, expected {SCHEMA}")
        file = [reader.get_batch(k) for k in range(reader.num_record_batches)]
except Exception as e:
    failures.append(f"open_file failed: {e!r}")
    file = []
if len(file) != len(BATCHES):
    failures.append(f"file: {len(file)} batches, expected {len(BATCHES)}")
for k, (batch, (start, length)) in enumerate(zip(file, BATCHES)):
    check(f"file batch {k}", batch, start, length)

print(f"pyarrow {pa.__version__}: checked {count} batches written by pontoon")
for failure in failures:
    print("FAIL", failure)
sys.exit(1 if failures else 0)
"#;

/// Writes the batches as a stream and as a file with pyarrow.
const WRITE_PY: &str = r#"
batches = []
for start, length in BATCHES:
    want = expected(start, length)
    arrays = [pa.array(want[field.name], type=field.type) for field in SCHEMA]
    batches.append(pa.record_batch(arrays, schema=SCHEMA))
with pa.OSFile(str(root / "pyarrow.arrows"), "wb") as sink:
    with pa.ipc.new_stream(sink, SCHEMA) as writer:
        for batch in batches:
            writer.write_batch(batch)
with pa.OSFile(str(root / "pyarrow.arrow"), "wb") as sink:
    with pa.ipc.new_file(sink, SCHEMA) as writer:
        for batch in batches:
            writer.write_batch(batch)
print(f"pyarrow {pa.__version__}: wrote {len(batches)} batches as a stream and a file")
"#;

#[test]
fn pyarrow_reads_the_streams_and_files_pontoon_writes() {
    let dir = common::scratch("pyarrow-interop-pontoon-writes");
    let batches = batches();
    std::fs::write(
        dir.join("pontoon.arrows"),
        write_ipc_stream(&batches).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("pontoon.arrow"), write_ipc_file(&batches).unwrap()).unwrap();
    write_manifest(&dir);
    let stdout = common::run_python(COMMON_PY, CHECK_PY, &dir);
    assert!(
        stdout.contains(&format!("checked {} batches", 2 * BATCHES.len())),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn range_of(bytes: &[u8]) -> Range<usize> {
    let start = bytes.as_ptr() as usize;
    start..start + bytes.len()
}

/// Checks what pontoon read from pyarrow's `what` against [`batches`], and that the primitive
/// columns of the non-empty batches are views of `input`.
fn check_read(what: &str, read: &[RecordBatch], input: &Bytes) {
    let expected = batches();
    assert_eq!(read.len(), expected.len(), "{what}: batches");
    let input = range_of(input);
    for (k, (read, expected)) in read.iter().zip(&expected).enumerate() {
        let what = format!("{what} batch {k}");
        let types = |b: &RecordBatch| {
            b.schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(types(read), types(expected), "{what}: schema");
        assert_eq!(read.num_rows(), expected.num_rows(), "{what}: rows");
        for (name, (got, want)) in expected
            .schema()
            .fields()
            .iter()
            .map(|f| f.name())
            .zip(read.columns().iter().zip(expected.columns()))
        {
            assert_eq!(got, want, "{what}: column {name}");
        }
        assert_eq!(
            read.column(13).null_count(),
            expected.column(13).null_count()
        );
        if read.num_rows() > 0 {
            for name in ["i64", "u32", "f64", "time"] {
                let column = read.column_by_name(name).unwrap().to_data();
                let values = column.buffers()[0].as_ptr() as usize;
                assert!(
                    input.contains(&values),
                    "{what}: column {name} is not a view of the input"
                );
            }
        }
    }
}

#[test]
fn pontoon_reads_the_streams_and_files_pyarrow_writes() {
    let dir = common::scratch("pyarrow-interop-pyarrow-writes");
    write_manifest(&dir);
    let stdout = common::run_python(COMMON_PY, WRITE_PY, &dir);
    assert!(
        stdout.contains(&format!("wrote {} batches", BATCHES.len())),
        "{stdout}"
    );
    let stream = Bytes::from(std::fs::read(dir.join("pyarrow.arrows")).unwrap());
    let read =
        read_ipc_stream(stream.clone(), &Limits::DEFAULT).unwrap_or_else(|e| panic!("stream: {e}"));
    check_read("stream", &read, &stream);
    let file = Bytes::from(std::fs::read(dir.join("pyarrow.arrow")).unwrap());
    let read =
        read_ipc_file(file.clone(), &Limits::DEFAULT).unwrap_or_else(|e| panic!("file: {e}"));
    check_read("file", &read, &file);
    std::fs::remove_dir_all(&dir).unwrap();
}
