//! pontoon-array benchmarks: encoding and decoding f64 arrays of 1 KiB to 1 GiB through the array
//! family must not grow with the size (the data is never copied); and an Arrow record batch
//! through the arrow family and the wire, next to arrow-ipc's own stream writer and reader.

use std::hint::black_box;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pontoon::array::arrow::ArrowFamily;
use pontoon::array::{Array, ArrayFamily};
use pontoon::family::Registry;
use pontoon::wire::{Encoder, Limits, decode_message};
use pontoon_benches::{Timed, Timing};

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.add_family(ArrayFamily).unwrap();
    registry.set_serializers(["array", "serde"]).unwrap();
    registry.set_deserializers(["array", "serde"]).unwrap();
    registry
}

fn arrays(c: &mut Criterion) {
    let registry = registry();
    let mut group = c.benchmark_group("array/f64");
    for (label, bytes) in [
        ("1KiB", 1usize << 10),
        ("64KiB", 64 << 10),
        ("1MiB", 1 << 20),
        ("100MiB", 100 << 20),
        ("1GiB", 1 << 30),
    ] {
        let elements = bytes / 8;
        // Written once, outside the timing, so the pages are real memory.
        let array = Array::build::<f64>(&[elements], |xs| {
            for (i, x) in xs.iter_mut().enumerate() {
                *x = i as f64;
            }
        })
        .unwrap();
        let message = registry.serialize(&array).unwrap();
        group.bench_with_input(BenchmarkId::new("encode", label), &array, |b, a| {
            b.iter(|| registry.serialize(black_box(a)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("decode", label), &message, |b, m| {
            b.iter(|| registry.deserialize::<Array>(black_box(m)).unwrap())
        });
    }
    group.finish();
}

/// Rows of the record batch: 1,000,000, about 30 MB in all.
const BATCH_ROWS: usize = 1_000_000;

/// Four columns of [`BATCH_ROWS`] rows, no nulls: Int64, Float64, Float32 and Utf8 of short
/// strings (2 to 7 bytes).
fn record_batch() -> RecordBatch {
    let ints = Int64Array::from_iter_values((0..BATCH_ROWS as i64).map(|i| i * 7));
    let doubles = Float64Array::from_iter_values((0..BATCH_ROWS).map(|i| i as f64 * 0.5));
    let floats = Float32Array::from_iter_values((0..BATCH_ROWS).map(|i| i as f32 * 0.25));
    let strings =
        StringArray::from_iter_values((0..BATCH_ROWS).map(|i| format!("s{}", i % 100_000)));
    RecordBatch::try_from_iter([
        ("id", Arc::new(ints) as ArrayRef),
        ("x", Arc::new(doubles) as ArrayRef),
        ("y", Arc::new(floats) as ArrayRef),
        ("name", Arc::new(strings) as ArrayRef),
    ])
    .unwrap()
}

/// The batch as one contiguous pontoon message: the arrow family's metadata and frames, encoded.
fn pontoon_serialize(registry: &Registry, encoder: &Encoder, batch: &RecordBatch) -> bytes::Bytes {
    let message = registry.serialize_dyn(batch).unwrap();
    encoder.encode(&message).unwrap().to_bytes()
}

/// The batch back from [`pontoon_serialize`]'s bytes, its columns views of them.
fn pontoon_deserialize(registry: &Registry, limits: &Limits, bytes: bytes::Bytes) -> RecordBatch {
    let message = decode_message(bytes, limits).unwrap();
    let value = registry.deserialize_dyn(&message).unwrap();
    *value.downcast::<RecordBatch>().unwrap()
}

/// The batch as an Arrow IPC stream (schema, one record batch, end of stream).
fn ipc_write(batch: &RecordBatch) -> Vec<u8> {
    let mut writer = StreamWriter::try_new(Vec::new(), batch.schema_ref()).unwrap();
    writer.write(batch).unwrap();
    writer.into_inner().unwrap()
}

/// The one batch of [`ipc_write`]'s stream, through arrow-ipc's `StreamReader`.
fn ipc_read(stream: &[u8]) -> RecordBatch {
    let mut reader = StreamReader::try_new(Cursor::new(stream), None).unwrap();
    reader.next().unwrap().unwrap()
}

/// One record batch of 4 columns x 1,000,000 rows, through pontoon (the arrow family, then the
/// wire to one contiguous buffer and back) and through arrow-ipc's stream writer and reader:
/// same batch, same run.
fn record_batches(c: &mut Criterion) {
    let mut registry = Registry::new();
    registry.add_family(ArrowFamily).unwrap();
    registry
        .set_serializers([ArrowFamily::NAME, "custom", "serde"])
        .unwrap();
    registry
        .set_deserializers([ArrowFamily::NAME, "custom", "serde"])
        .unwrap();
    let encoder = Encoder::default();
    let limits = Limits::default();

    // Built once, outside the timing; both ways are checked to give the batch back.
    let batch = record_batch();
    let pontoon_bytes = pontoon_serialize(&registry, &encoder, &batch);
    assert_eq!(
        pontoon_deserialize(&registry, &limits, pontoon_bytes.clone()),
        batch
    );
    let ipc_stream = ipc_write(&batch);
    assert_eq!(ipc_read(&ipc_stream), batch);

    let mut group = c.benchmark_group("array/recordbatch");
    group.timing(Timing {
        samples: 10,
        warm_up: Duration::from_secs(1),
        measurement: Duration::from_secs(4),
    });
    group.bench_function("pontoon-roundtrip", |b| {
        b.iter(|| {
            let bytes = pontoon_serialize(&registry, &encoder, black_box(&batch));
            pontoon_deserialize(&registry, &limits, bytes)
        })
    });
    group.bench_function("arrow-ipc-roundtrip", |b| {
        b.iter(|| ipc_read(&ipc_write(black_box(&batch))))
    });
    group.bench_function("pontoon-serialize", |b| {
        b.iter(|| pontoon_serialize(&registry, &encoder, black_box(&batch)))
    });
    group.bench_function("arrow-ipc-write", |b| {
        b.iter(|| ipc_write(black_box(&batch)))
    });
    group.bench_function("pontoon-deserialize", |b| {
        b.iter(|| pontoon_deserialize(&registry, &limits, black_box(pontoon_bytes.clone())))
    });
    group.bench_function("arrow-ipc-read", |b| {
        b.iter(|| ipc_read(black_box(&ipc_stream)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = pontoon_benches::criterion();
    targets = arrays, record_batches
}
criterion_main!(benches);
