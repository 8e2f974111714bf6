//! Arrow interop: conversions without copies, the `arrow` family (directly, through a registry
//! and over pontoon-wire), IPC streams and files, and hostile input.
#![cfg(feature = "arrow")]

use std::ops::Range;
use std::sync::Arc;

use arrow_array::builder::{Int32Builder, ListBuilder, StringDictionaryBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{
    Array as _, ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, LargeStringArray, PrimitiveArray, RecordBatch, StringArray,
    StructArray, TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field};
use bytes::Bytes;
use pontoon_array::arrow::{
    ArrowFamily, ConvertError, IpcReadError, IpcWriteError, LoadError, from_arrow, read_ipc_file,
    read_ipc_stream, to_arrow, to_primitive, write_ipc_file, write_ipc_stream,
};
use pontoon_array::{Array, ByteOrder, DType, TimeUnit};
use pontoon_family::rmpv::Value;
use pontoon_family::{Dumped, Registry};
use pontoon_wire::{Encoder, Limits, decode_message};

fn range_of(bytes: &[u8]) -> Range<usize> {
    let start = bytes.as_ptr() as usize;
    start..start + bytes.len()
}

/// Whether every non-empty buffer (and validity bitmap) of `data`, children included, lies
/// inside one of `ranges`.
fn all_inside(data: &arrow_data::ArrayData, ranges: &[Range<usize>]) -> bool {
    let inside = |b: &[u8]| {
        b.is_empty()
            || ranges.iter().any(|r| {
                r.contains(&(b.as_ptr() as usize)) && b.as_ptr() as usize + b.len() <= r.end
            })
    };
    data.buffers().iter().all(|b| inside(b))
        && data.nulls().is_none_or(|n| inside(n.buffer()))
        && data.child_data().iter().all(|c| all_inside(c, ranges))
}

// ---------------------------------------------------------------------------------------------
// pontoon Array <-> Arrow primitive arrays

fn round_trip_primitive<T: ArrowPrimitiveType>(arrow: PrimitiveArray<T>, dtype: DType) {
    let array = from_arrow(&arrow, &Limits::DEFAULT).unwrap();
    assert_eq!(array.dtype(), dtype);
    assert_eq!(array.shape(), &[arrow.len()]);
    // Arrow -> pontoon: the pontoon array's elements are the Arrow values buffer.
    let values = arrow.values().inner().as_slice();
    assert_eq!(&array.data()[array.offset()..], values);
    assert_eq!(array.data().as_ptr(), values.as_ptr(), "{dtype}: copied");
    // pontoon -> Arrow: the same memory again.
    let back = to_primitive::<T>(&array).unwrap();
    assert_eq!(back, arrow);
    assert_eq!(
        back.values().inner().as_ptr(),
        values.as_ptr(),
        "{dtype}: copied back"
    );
    let dynamic = to_arrow(&array).unwrap();
    assert_eq!(dynamic.data_type(), &T::DATA_TYPE);
    assert_eq!(dynamic.as_primitive::<T>(), &arrow);
}

#[test]
fn every_primitive_type_round_trips_without_a_copy() {
    round_trip_primitive(Int8Array::from(vec![-1, 0, 127]), DType::I8);
    round_trip_primitive(Int16Array::from(vec![-1, 0, 300]), DType::I16);
    round_trip_primitive(Int32Array::from(vec![-1, 0, 1 << 20]), DType::I32);
    round_trip_primitive(Int64Array::from(vec![-1, 0, 1 << 40]), DType::I64);
    round_trip_primitive(UInt8Array::from(vec![0, 255]), DType::U8);
    round_trip_primitive(UInt16Array::from(vec![0, 65535]), DType::U16);
    round_trip_primitive(UInt32Array::from(vec![0, u32::MAX]), DType::U32);
    round_trip_primitive(UInt64Array::from(vec![0, u64::MAX]), DType::U64);
    round_trip_primitive(Float32Array::from(vec![0.5, -1.25]), DType::F32);
    round_trip_primitive(Float64Array::from(vec![0.5, f64::MAX]), DType::F64);
    use TimeUnit::*;
    let v = vec![0i64, 1_700_000_000, -5];
    round_trip_primitive(
        PrimitiveArray::<TimestampSecondType>::from(v.clone()),
        DType::DateTime(Second),
    );
    round_trip_primitive(
        PrimitiveArray::<TimestampMillisecondType>::from(v.clone()),
        DType::DateTime(Millisecond),
    );
    round_trip_primitive(
        TimestampMicrosecondArray::from(v.clone()),
        DType::DateTime(Microsecond),
    );
    round_trip_primitive(
        PrimitiveArray::<TimestampNanosecondType>::from(v.clone()),
        DType::DateTime(Nanosecond),
    );
    round_trip_primitive(
        PrimitiveArray::<DurationSecondType>::from(v.clone()),
        DType::TimeDelta(Second),
    );
    round_trip_primitive(
        PrimitiveArray::<DurationMillisecondType>::from(v.clone()),
        DType::TimeDelta(Millisecond),
    );
    round_trip_primitive(
        PrimitiveArray::<DurationMicrosecondType>::from(v.clone()),
        DType::TimeDelta(Microsecond),
    );
    round_trip_primitive(
        PrimitiveArray::<DurationNanosecondType>::from(v),
        DType::TimeDelta(Nanosecond),
    );
    round_trip_primitive(Int32Array::from(Vec::<i32>::new()), DType::I32);
}

#[test]
fn a_sliced_arrow_array_becomes_a_view_of_its_slice() {
    let arrow = Int64Array::from((0..100).collect::<Vec<i64>>());
    let slice = arrow.slice(10, 5);
    let array = from_arrow(&slice, &Limits::DEFAULT).unwrap();
    assert_eq!(array.as_slice::<i64>().unwrap(), &[10, 11, 12, 13, 14]);
    assert_eq!(
        array.as_slice::<i64>().unwrap().as_ptr(),
        arrow.values()[10..].as_ptr()
    );
}

#[test]
fn a_pontoon_array_becomes_arrow_without_a_copy() {
    let array = Array::from_vec((0..1000).map(f64::from).collect());
    let arrow = to_primitive::<Float64Type>(&array).unwrap();
    assert_eq!(arrow.values().as_ptr().cast(), array.data().as_ptr());
    assert_eq!(arrow.null_count(), 0);
    assert!(arrow.nulls().is_none());
    // The Arrow array keeps the memory alive on its own.
    drop(array);
    assert_eq!(arrow.value(999), 999.0);
}

#[test]
fn non_contiguous_and_foreign_arrays_are_compacted() {
    // Every other element of 8 i32: a strided view.
    let data = Bytes::from((0..8i32).flat_map(i32::to_ne_bytes).collect::<Vec<u8>>());
    let strided = Array::from_parts(
        DType::I32,
        ByteOrder::NATIVE,
        vec![4],
        vec![8],
        0,
        data.clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    let arrow = to_primitive::<Int32Type>(&strided).unwrap();
    assert_eq!(arrow.values().as_ref(), &[0, 2, 4, 6]);
    // Reversed.
    let reversed = Array::from_parts(
        DType::I32,
        ByteOrder::NATIVE,
        vec![8],
        vec![-4],
        28,
        data,
        &Limits::DEFAULT,
    )
    .unwrap();
    let arrow = to_arrow(&reversed).unwrap();
    assert_eq!(
        arrow.as_primitive::<Int32Type>().values().as_ref(),
        &[7, 6, 5, 4, 3, 2, 1, 0]
    );
    // Big-endian.
    let big = Array::from_parts(
        DType::U16,
        ByteOrder::Big,
        vec![2],
        vec![2],
        0,
        Bytes::from_static(&[1, 2, 3, 4]),
        &Limits::DEFAULT,
    )
    .unwrap();
    let arrow = to_primitive::<UInt16Type>(&big).unwrap();
    assert_eq!(arrow.values().as_ref(), &[0x0102, 0x0304]);
}

#[test]
fn booleans_convert_both_ways() {
    let arrow = BooleanArray::from(vec![true, false, true]);
    let array = from_arrow(&arrow, &Limits::DEFAULT).unwrap();
    assert_eq!(array.dtype(), DType::Bool);
    assert_eq!(&array.data()[..], &[1, 0, 1]);
    let back = to_arrow(&array).unwrap();
    assert_eq!(back.as_boolean(), &arrow);
    let sliced = from_arrow(&arrow.slice(1, 2), &Limits::DEFAULT).unwrap();
    assert_eq!(&sliced.data()[..], &[0, 1]);
}

#[test]
fn what_cannot_convert_is_a_typed_error() {
    let nulls = Int32Array::from(vec![Some(1), None, None]);
    assert_eq!(
        from_arrow(&nulls, &Limits::DEFAULT).unwrap_err(),
        ConvertError::Nulls(2)
    );
    // A null buffer with no nulls in the slice is fine.
    let array = from_arrow(&nulls.slice(0, 1), &Limits::DEFAULT).unwrap();
    assert_eq!(array.as_slice::<i32>().unwrap(), &[1]);

    let strings = StringArray::from(vec!["a"]);
    assert!(matches!(
        from_arrow(&strings, &Limits::DEFAULT),
        Err(ConvertError::NoCounterpart(_))
    ));
    let dates = arrow_array::Date32Array::from(vec![1]);
    assert!(matches!(
        from_arrow(&dates, &Limits::DEFAULT),
        Err(ConvertError::NoCounterpart(_))
    ));

    let two_d = Array::from_shape_vec(&[2, 2], vec![1i32, 2, 3, 4]).unwrap();
    assert_eq!(
        to_arrow(&two_d).unwrap_err(),
        ConvertError::NotOneDimensional(2)
    );
    let scalar = Array::from_shape_vec(&[], vec![1i32]).unwrap();
    assert_eq!(
        to_arrow(&scalar).unwrap_err(),
        ConvertError::NotOneDimensional(0)
    );

    let complex = Array::from_vec(vec![num_complex::Complex64::new(1.0, 2.0)]);
    assert!(matches!(
        to_arrow(&complex),
        Err(ConvertError::NoCounterpart(_))
    ));
    let days = Array::from_parts(
        DType::DateTime(TimeUnit::Day),
        ByteOrder::NATIVE,
        vec![1],
        vec![8],
        0,
        Bytes::from(vec![0u8; 8]),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert!(matches!(
        to_arrow(&days),
        Err(ConvertError::NoCounterpart(_))
    ));
    // The wrong Arrow type for the dtype.
    let floats = Array::from_vec(vec![1.0f32]);
    assert!(matches!(
        to_primitive::<Int32Type>(&floats),
        Err(ConvertError::NoCounterpart(_))
    ));
    let times = from_arrow(&TimestampMicrosecondArray::from(vec![1]), &Limits::DEFAULT).unwrap();
    assert!(to_primitive::<TimestampNanosecondType>(&times).is_err());
    assert!(to_primitive::<Int64Type>(&times).is_err());
}

#[test]
fn a_time_zone_is_dropped_keeping_the_instants() {
    let arrow = TimestampMicrosecondArray::from(vec![1, 2]).with_timezone("Europe/Paris");
    let array = from_arrow(&arrow, &Limits::DEFAULT).unwrap();
    assert_eq!(array.dtype(), DType::DateTime(TimeUnit::Microsecond));
    assert_eq!(array.as_slice::<i64>().unwrap(), &[1, 2]);
}

// ---------------------------------------------------------------------------------------------
// The arrow family

/// A batch of many kinds of columns, with nulls.
fn mixed_batch() -> RecordBatch {
    let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4)]));
    let floats: ArrayRef = Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5, 3.5]));
    let strings: ArrayRef = Arc::new(StringArray::from(vec![
        Some("pontoon"),
        None,
        Some(""),
        Some("ü"),
    ]));
    let large: ArrayRef = Arc::new(LargeStringArray::from(vec!["a", "b", "c", "d"]));
    let bools: ArrayRef = Arc::new(BooleanArray::from(vec![
        Some(true),
        Some(false),
        None,
        Some(true),
    ]));
    let times: ArrayRef =
        Arc::new(TimestampMicrosecondArray::from(vec![1, 2, 3, 4]).with_timezone("UTC"));
    let mut list = ListBuilder::new(Int32Builder::new());
    list.append_value([Some(1), Some(2)]);
    list.append_null();
    list.append_value([]);
    list.append_value([None, Some(5)]);
    let list: ArrayRef = Arc::new(list.finish());
    let structs: ArrayRef = Arc::new(StructArray::from(vec![
        (
            Arc::new(Field::new("a", DataType::Int8, false)),
            Arc::new(Int8Array::from(vec![1, 2, 3, 4])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("b", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec![None, Some("x"), None, Some("y")])) as ArrayRef,
        ),
    ]));
    let mut dict = StringDictionaryBuilder::<Int16Type>::new();
    dict.append_value("red");
    dict.append_value("blue");
    dict.append_null();
    dict.append_value("red");
    let dict: ArrayRef = Arc::new(dict.finish());
    RecordBatch::try_from_iter([
        ("ints", ints),
        ("floats", floats),
        ("strings", strings),
        ("large", large),
        ("bools", bools),
        ("times", times),
        ("list", list),
        ("structs", structs),
        ("dict", dict),
    ])
    .unwrap()
}

fn frame_ranges(frames: &[Bytes]) -> Vec<Range<usize>> {
    frames.iter().map(|f| range_of(f)).collect()
}

#[test]
fn a_mixed_batch_round_trips_and_its_columns_are_views_of_the_frames() {
    let batch = mixed_batch();
    let dumped = ArrowFamily::dump_batch(&batch).unwrap();
    // Sent without a copy: every frame is one of the batch's buffers.
    let batch_ranges: Vec<_> = batch
        .columns()
        .iter()
        .flat_map(|c| {
            let mut out = Vec::new();
            collect_ranges(&c.to_data(), &mut out);
            out
        })
        .collect();
    for frame in dumped.frames.iter().filter(|f| !f.is_empty()) {
        let r = range_of(frame);
        assert!(
            batch_ranges
                .iter()
                .any(|b| b.start <= r.start && r.end <= b.end),
            "a frame was copied"
        );
    }
    let back = ArrowFamily::load_batch(&dumped.meta, &dumped.frames, &Limits::DEFAULT).unwrap();
    assert_eq!(back, batch);
    let ranges = frame_ranges(&dumped.frames);
    for column in back.columns() {
        assert!(
            all_inside(&column.to_data(), &ranges),
            "{:?} was copied",
            column.data_type()
        );
    }
}

fn collect_ranges(data: &arrow_data::ArrayData, out: &mut Vec<Range<usize>>) {
    out.extend(data.buffers().iter().map(|b| range_of(b)));
    out.extend(data.nulls().map(|n| range_of(n.buffer())));
    for child in data.child_data() {
        collect_ranges(child, out);
    }
}

#[test]
fn empty_and_columnless_batches_round_trip() {
    let empty = mixed_batch().slice(0, 0);
    let dumped = ArrowFamily::dump_batch(&empty).unwrap();
    assert_eq!(
        ArrowFamily::load_batch(&dumped.meta, &dumped.frames, &Limits::DEFAULT).unwrap(),
        empty
    );

    let columnless = RecordBatch::try_new_with_options(
        Arc::new(arrow_schema::Schema::empty()),
        vec![],
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(7)),
    )
    .unwrap();
    let dumped = ArrowFamily::dump_batch(&columnless).unwrap();
    assert!(dumped.frames.is_empty());
    let back = ArrowFamily::load_batch(&dumped.meta, &dumped.frames, &Limits::DEFAULT).unwrap();
    assert_eq!(back.num_rows(), 7);
}

#[test]
fn slices_round_trip_and_small_slices_of_large_arrays_are_compacted() {
    let batch = mixed_batch();
    for (offset, len) in [(1, 2), (3, 1), (0, 4)] {
        let slice = batch.slice(offset, len);
        let dumped = ArrowFamily::dump_batch(&slice).unwrap();
        assert_eq!(
            ArrowFamily::load_batch(&dumped.meta, &dumped.frames, &Limits::DEFAULT).unwrap(),
            slice
        );
    }
    // A 10-row slice of a 1 MB string column sends about 10 strings, not the megabyte.
    let strings: ArrayRef = Arc::new(StringArray::from(
        (0..100_000)
            .map(|i| format!("string {i:04}"))
            .collect::<Vec<_>>(),
    ));
    let big = RecordBatch::try_from_iter([("s", strings)]).unwrap();
    let slice = big.slice(50_000, 10);
    let dumped = ArrowFamily::dump_batch(&slice).unwrap();
    let sent: usize = dumped.frames.iter().map(Bytes::len).sum();
    assert!(sent < 1000, "sent {sent} bytes");
    assert_eq!(
        ArrowFamily::load_batch(&dumped.meta, &dumped.frames, &Limits::DEFAULT).unwrap(),
        slice
    );
    // A primitive slice is a view already: sent as is, without a copy.
    let ints: ArrayRef = Arc::new(Int64Array::from((0..100_000).collect::<Vec<i64>>()));
    let slice = ints.slice(500, 10);
    let dumped = ArrowFamily::dump_array(&slice).unwrap();
    assert_eq!(dumped.frames[0].len(), 80);
    assert_eq!(
        dumped.frames[0].as_ptr(),
        slice.to_data().buffers()[0].as_ptr()
    );
}

#[test]
fn arrays_round_trip_as_arrays() {
    for column in mixed_batch().columns() {
        let dumped = ArrowFamily::dump_array(column).unwrap();
        let back = ArrowFamily::load_array(&dumped.meta, &dumped.frames, &Limits::DEFAULT).unwrap();
        assert_eq!(&back, column);
        // Not a batch.
        assert!(ArrowFamily::load_batch(&dumped.meta, &dumped.frames, &Limits::DEFAULT).is_err());
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.add_family(ArrowFamily).unwrap();
    registry
        .set_serializers(["arrow", "custom", "serde"])
        .unwrap();
    registry
        .set_deserializers(["arrow", "custom", "serde"])
        .unwrap();
    registry
}

#[test]
fn through_a_registry_and_pontoon_wire_the_columns_are_views_of_the_received_bytes() {
    let registry = registry();
    let batch = mixed_batch();
    let message = registry.serialize_dyn(&batch).unwrap();
    // Over the wire: the received bytes are one buffer; frames are views of it.
    let wire = Encoder::default().encode(&message).unwrap().to_bytes();
    let received = decode_message(wire.clone(), &Limits::default()).unwrap();
    let back = registry.deserialize_dyn(&received).unwrap();
    let back = back.downcast_ref::<RecordBatch>().expect("a record batch");
    assert_eq!(back, &batch);
    let wire_range = range_of(&wire);
    for column in back.columns() {
        assert!(
            all_inside(&column.to_data(), std::slice::from_ref(&wire_range)),
            "{:?}",
            column.data_type()
        );
    }

    // An ArrayRef travels as an ArrayRef.
    let column = batch.column(2).clone();
    let message = registry.serialize_dyn(&column).unwrap();
    let back = registry.deserialize_dyn(&message).unwrap();
    assert_eq!(back.downcast_ref::<ArrayRef>(), Some(&column));

    // Other values are declined: the next family takes them.
    let message = registry.serialize(&"not arrow".to_string()).unwrap();
    assert_eq!(
        registry.deserialize::<String>(&message).unwrap(),
        "not arrow"
    );
}

#[test]
fn a_receiver_that_does_not_accept_arrow_refuses_it() {
    let sender = registry();
    let message = sender.serialize_dyn(&mixed_batch()).unwrap();
    let mut receiver = registry();
    receiver.set_deserializers(["serde"]).unwrap();
    assert!(receiver.deserialize_dyn(&message).is_err());
}

// ---------------------------------------------------------------------------------------------
// Hostile input to the family

fn meta_map(meta: &Value) -> Vec<(Value, Value)> {
    meta.as_map().unwrap().clone()
}

fn with_key(meta: &Value, name: &str, value: Option<Value>) -> Value {
    let mut map: Vec<_> = meta_map(meta)
        .into_iter()
        .filter(|(k, _)| k.as_str() != Some(name))
        .collect();
    if let Some(value) = value {
        map.push((Value::from(name), value));
    }
    Value::Map(map)
}

fn load_any(meta: &Value, frames: &[Bytes]) -> Result<(), LoadError> {
    // Batch first; the family also tries arrays.
    let batch = ArrowFamily::load_batch(meta, frames, &Limits::DEFAULT).map(|_| ());
    let array = ArrowFamily::load_array(meta, frames, &Limits::DEFAULT).map(|_| ());
    batch.or(array)
}

#[test]
fn malformed_metadata_is_a_typed_error() {
    let batch = mixed_batch();
    let Dumped { meta, frames, .. } = ArrowFamily::dump_batch(&batch).unwrap();
    let bad = |meta: Value, frames: &[Bytes]| {
        let err = load_any(&meta, frames).unwrap_err();
        assert!(
            matches!(err, LoadError::Malformed(_) | LoadError::Arrow(_)),
            "{err:?}"
        );
    };
    bad(Value::Nil, &frames);
    bad(Value::from("batch"), &frames);
    for key in ["v", "kind", "schema", "rows", "nodes"] {
        bad(with_key(&meta, key, None), &frames);
        bad(with_key(&meta, key, Some(Value::from(-1))), &frames);
        bad(with_key(&meta, key, Some(Value::Array(vec![]))), &frames);
    }
    bad(with_key(&meta, "v", Some(Value::from(2))), &frames);
    bad(
        with_key(&meta, "kind", Some(Value::from("pickle"))),
        &frames,
    );
    bad(with_key(&meta, "rows", Some(Value::from(5))), &frames);
    bad(
        with_key(&meta, "rows", Some(Value::from(u64::MAX))),
        &frames,
    );
    // Garbage schemas.
    for schema in [
        vec![],
        vec![0xff; 8],
        vec![0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0],
        b"not a flatbuffer at all, no".to_vec(),
    ] {
        bad(
            with_key(&meta, "schema", Some(Value::Binary(schema))),
            &frames,
        );
    }
    let Some(Value::Binary(schema)) = meta_map(&meta)
        .into_iter()
        .find(|(k, _)| k.as_str() == Some("schema"))
        .map(|(_, v)| v)
    else {
        panic!("a schema")
    };
    for cut in (0..schema.len()).step_by(7) {
        bad(
            with_key(&meta, "schema", Some(Value::Binary(schema[..cut].to_vec()))),
            &frames,
        );
    }
    // Frames missing, extra, or cut.
    bad(meta.clone(), &frames[..frames.len() - 1]);
    let mut extra = frames.clone();
    extra.push(Bytes::from_static(b"extra"));
    bad(meta.clone(), &extra);
    for i in 0..frames.len() {
        if frames[i].is_empty() {
            continue;
        }
        let mut cut = frames.clone();
        cut[i] = cut[i].slice(..cut[i].len() - 1);
        // A cut that keeps every needed byte (padding) may still load; it must not panic.
        let _ = load_any(&meta, &cut);
        let mut empty = frames.clone();
        empty[i] = Bytes::new();
        bad(meta.clone(), &empty);
    }
}

#[test]
fn every_node_field_mutated_never_panics() {
    let batch = mixed_batch();
    let Dumped { meta, frames, .. } = ArrowFamily::dump_batch(&batch).unwrap();
    let nodes = meta_map(&meta)
        .into_iter()
        .find(|(k, _)| k.as_str() == Some("nodes"))
        .map(|(_, v)| v.as_array().unwrap().clone())
        .unwrap();
    let values = [
        Value::Nil,
        Value::from(0),
        Value::from(1),
        Value::from(3),
        Value::from(7),
        Value::from(100),
        Value::from(1u64 << 32),
        Value::from(u64::MAX),
        Value::from(-1),
        Value::from("x"),
    ];
    let mut errors = 0;
    for n in 0..nodes.len() {
        for field in 0..4 {
            for value in &values {
                let mut mutated = nodes.clone();
                let mut node = mutated[n].as_array().unwrap().clone();
                if node[field] == *value {
                    continue;
                }
                node[field] = value.clone();
                mutated[n] = Value::Array(node);
                let meta = with_key(&meta, "nodes", Some(Value::Array(mutated)));
                if load_any(&meta, &frames).is_err() {
                    errors += 1;
                }
            }
        }
        // Nodes dropped or shaped wrong.
        let mut fewer = nodes.clone();
        fewer.remove(n);
        assert!(
            load_any(
                &with_key(&meta, "nodes", Some(Value::Array(fewer))),
                &frames
            )
            .is_err()
        );
        let mut wrong = nodes.clone();
        wrong[n] = Value::Array(vec![Value::from(1)]);
        assert!(
            load_any(
                &with_key(&meta, "nodes", Some(Value::Array(wrong))),
                &frames
            )
            .is_err()
        );
    }
    assert!(errors > nodes.len() * 10, "only {errors} mutations refused");
}

#[test]
fn garbage_frame_contents_are_refused_not_trusted() {
    // Offsets pointing past the string bytes, and invalid UTF-8.
    let strings: ArrayRef = Arc::new(StringArray::from(vec!["ab", "cd"]));
    let Dumped { meta, frames, .. } = ArrowFamily::dump_array(&strings).unwrap();
    let offsets: Vec<u8> = [0i32, 2, 400]
        .iter()
        .flat_map(|o| o.to_le_bytes())
        .collect();
    let err = ArrowFamily::load_array(
        &meta,
        &[Bytes::from(offsets), frames[1].clone()],
        &Limits::DEFAULT,
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Arrow(_)), "{err:?}");
    let err = ArrowFamily::load_array(
        &meta,
        &[frames[0].clone(), Bytes::from_static(&[0xff, 0xfe, 0, 0])],
        &Limits::DEFAULT,
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Arrow(_)), "{err:?}");
    // Dictionary keys out of range.
    let mut dict = StringDictionaryBuilder::<Int8Type>::new();
    dict.append_value("x");
    let dict: ArrayRef = Arc::new(dict.finish());
    let Dumped { meta, frames, .. } = ArrowFamily::dump_array(&dict).unwrap();
    let mut keys = frames.clone();
    keys[0] = Bytes::from_static(&[9]);
    assert!(ArrowFamily::load_array(&meta, &keys, &Limits::DEFAULT).is_err());
}

#[test]
fn misaligned_frames_are_copied_into_aligned_memory() {
    let array: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
    let Dumped { meta, frames, .. } = ArrowFamily::dump_array(&array).unwrap();
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&frames[0]);
    let shifted = Bytes::from(shifted).slice(1..);
    let back = ArrowFamily::load_array(&meta, &[shifted], &Limits::DEFAULT).unwrap();
    assert_eq!(&back, &array);
}

// ---------------------------------------------------------------------------------------------
// IPC streams

#[test]
fn ipc_streams_round_trip_without_a_copy_on_read() {
    let batch = mixed_batch();
    let stream = Bytes::from(write_ipc_stream(&[batch.clone(), batch.slice(1, 2)]).unwrap());
    let back = read_ipc_stream(stream.clone(), &Limits::DEFAULT).unwrap();
    assert_eq!(back, [batch.clone(), batch.slice(1, 2)]);
    let stream_range = range_of(&stream);
    // Every column, dictionaries included, is a view of the stream.
    for column in back[0].columns() {
        assert!(
            all_inside(&column.to_data(), std::slice::from_ref(&stream_range)),
            "{:?}",
            column.data_type()
        );
    }
    // A stream with a schema and no batches.
    let only_schema = {
        let mut bytes = write_ipc_stream(std::slice::from_ref(&batch)).unwrap();
        let reference = read_ipc_stream(Bytes::from(bytes.clone()), &Limits::DEFAULT).unwrap();
        assert_eq!(reference.len(), 1);
        // Keep the schema message, drop the rest, add the end marker.
        let schema_len = 8 + u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        bytes.truncate(schema_len);
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        bytes
    };
    assert!(
        read_ipc_stream(Bytes::from(only_schema), &Limits::DEFAULT)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn ipc_stream_errors() {
    assert!(matches!(
        write_ipc_stream(&[]),
        Err(IpcWriteError::NoBatches)
    ));
    let a = RecordBatch::try_from_iter([("a", Arc::new(Int32Array::from(vec![1])) as ArrayRef)])
        .unwrap();
    let b = RecordBatch::try_from_iter([("b", Arc::new(Int32Array::from(vec![1])) as ArrayRef)])
        .unwrap();
    assert!(matches!(
        write_ipc_stream(&[a, b]),
        Err(IpcWriteError::SchemaMismatch(1))
    ));
    assert!(matches!(
        read_ipc_stream(Bytes::new(), &Limits::DEFAULT),
        Err(IpcReadError::NoSchema)
    ));
}

#[test]
fn hostile_ipc_streams_are_errors_not_panics() {
    let batch = mixed_batch();
    let stream = write_ipc_stream(&[batch.clone(), batch]).unwrap();
    // Every truncation.
    for cut in 0..stream.len() {
        let result = read_ipc_stream(Bytes::copy_from_slice(&stream[..cut]), &Limits::DEFAULT);
        // A cut exactly after a whole message may read; a cut inside one must fail.
        if let Ok(batches) = result {
            assert!(batches.len() <= 2);
        }
    }
    // Byte flips, deterministic.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = stream.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        let _ = read_ipc_stream(Bytes::from(bytes), &Limits::DEFAULT);
    }
    // Garbage.
    for garbage in [
        &b"\xff\xff\xff\xff\xff\xff\xff\x7f"[..],
        b"\xff\xff\xff\xff\x04\x00\x00\x00abcd",
        &[0u8; 64][..],
    ] {
        assert!(
            read_ipc_stream(Bytes::copy_from_slice(garbage), &Limits::DEFAULT).is_err()
                || garbage.iter().all(|&b| b == 0)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// IPC files

#[test]
fn ipc_files_round_trip_without_a_copy_on_read() {
    let batch = mixed_batch();
    let empty = batch.slice(0, 0);
    let batches = [batch.clone(), empty, batch.slice(1, 2)];
    let file = Bytes::from(write_ipc_file(&batches).unwrap());
    assert!(file.starts_with(b"ARROW1\0\0") && file.ends_with(b"ARROW1"));
    let back = read_ipc_file(file.clone(), &Limits::DEFAULT).unwrap();
    assert_eq!(back, batches);
    let file_range = range_of(&file);
    // Every column, dictionaries included, is a view of the file.
    for column in back[0].columns() {
        assert!(
            all_inside(&column.to_data(), std::slice::from_ref(&file_range)),
            "{:?}",
            column.data_type()
        );
    }
    let floats = back[0].column(1).to_data();
    assert!(file_range.contains(&(floats.buffers()[0].as_ptr() as usize)));
    // The batches outlive the input they are views of.
    drop(file);
    assert_eq!(back, batches);
    // Files and streams hold the same batches.
    let stream = write_ipc_stream(&batches).unwrap();
    assert_eq!(
        read_ipc_stream(Bytes::from(stream), &Limits::DEFAULT).unwrap(),
        batches
    );
}

#[test]
fn ipc_file_errors() {
    assert!(matches!(write_ipc_file(&[]), Err(IpcWriteError::NoBatches)));
    let a = RecordBatch::try_from_iter([("a", Arc::new(Int32Array::from(vec![1])) as ArrayRef)])
        .unwrap();
    let b = RecordBatch::try_from_iter([("b", Arc::new(Int32Array::from(vec![1])) as ArrayRef)])
        .unwrap();
    assert!(matches!(
        write_ipc_file(&[a.clone(), b]),
        Err(IpcWriteError::SchemaMismatch(1))
    ));
    for bytes in [
        &b""[..],
        b"ARROW1",
        b"ARROW1\0\0ARROW1",
        b"ARROW1\0\0\0\0\0\0ARROW1",
        b"ARROW1\0\0\xff\xff\xff\x7fARROW1",
        b"ARROW1\0\0\x08\0\0\0ARROW1",
        b"ARROW1\0\0\xf0\xff\xff\xffARROW1",
    ] {
        let err = read_ipc_file(Bytes::copy_from_slice(bytes), &Limits::DEFAULT).unwrap_err();
        assert!(
            matches!(
                err,
                IpcReadError::Malformed(_) | IpcReadError::Arrow(_) | IpcReadError::NoSchema
            ),
            "{err:?}"
        );
    }
    // A stream is not a file, nor a file a stream.
    let stream = Bytes::from(write_ipc_stream(std::slice::from_ref(&a)).unwrap());
    assert!(matches!(
        read_ipc_file(stream, &Limits::DEFAULT),
        Err(IpcReadError::Malformed(_) | IpcReadError::Arrow(_) | IpcReadError::NoSchema)
    ));
    let file = Bytes::from(write_ipc_file(std::slice::from_ref(&a)).unwrap());
    assert!(matches!(
        read_ipc_stream(file, &Limits::DEFAULT),
        Err(IpcReadError::Malformed(_) | IpcReadError::Arrow(_) | IpcReadError::NoSchema)
    ));
}

/// The footer's start and end in an IPC file.
fn footer_range(file: &[u8]) -> Range<usize> {
    let end = file.len() - 10;
    let len = i32::from_le_bytes(file[end..end + 4].try_into().unwrap()) as usize;
    end - len..end
}

#[test]
fn hostile_ipc_files_are_errors_not_panics() {
    let batch = mixed_batch();
    let file = write_ipc_file(&[batch.clone(), batch]).unwrap();
    // Every truncation, from either end: the footer is at the end, so none reads.
    for cut in 0..file.len() {
        let err =
            read_ipc_file(Bytes::copy_from_slice(&file[..cut]), &Limits::DEFAULT).unwrap_err();
        assert!(
            matches!(
                err,
                IpcReadError::Malformed(_) | IpcReadError::Arrow(_) | IpcReadError::NoSchema
            ),
            "{cut}: {err:?}"
        );
        let err =
            read_ipc_file(Bytes::copy_from_slice(&file[cut + 1..]), &Limits::DEFAULT).unwrap_err();
        assert!(
            matches!(
                err,
                IpcReadError::Malformed(_) | IpcReadError::Arrow(_) | IpcReadError::NoSchema
            ),
            "{cut}: {err:?}"
        );
    }
    // Byte flips, deterministic, anywhere and in the footer alone (block offsets and lengths).
    let footer = footer_range(&file);
    let mut state = 0x6a09_e667_f3bc_c908u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..6000 {
        let mut bytes = file.clone();
        for _ in 0..1 + next() % 4 {
            let at = if round % 2 == 0 {
                (next() % bytes.len() as u64) as usize
            } else {
                footer.start + (next() % footer.len() as u64) as usize
            };
            bytes[at] = next() as u8;
        }
        let _ = read_ipc_file(Bytes::from(bytes), &Limits::DEFAULT);
    }
    // Garbage between intact magics and a footer length that points at it.
    for garbage in [vec![0u8; 64], vec![0xff; 64], (0..=255u8).collect()] {
        let mut bytes = b"ARROW1\0\0".to_vec();
        bytes.extend_from_slice(&garbage);
        bytes.extend_from_slice(&(garbage.len() as i32).to_le_bytes());
        bytes.extend_from_slice(b"ARROW1");
        assert!(read_ipc_file(Bytes::from(bytes), &Limits::DEFAULT).is_err());
    }
}

#[test]
fn ipc_file_blocks_must_lie_inside_the_file_without_overlapping() {
    let a = RecordBatch::try_from_iter([(
        "a",
        Arc::new(Int64Array::from((0..100).collect::<Vec<i64>>())) as ArrayRef,
    )])
    .unwrap();
    let file = write_ipc_file(&[a.clone(), a.clone()]).unwrap();
    let footer = footer_range(&file);
    // The two record batch blocks are 24 bytes each (offset i64, metadata length i32 and
    // padding, body length i64); find the first by its offset, the one of the first batch.
    let blocks = {
        let footer = arrow_ipc::root_as_footer(&file[footer.clone()]).unwrap();
        footer
            .recordBatches()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(blocks.len(), 2);
    let offset_at = |offset: i64| {
        let needle = offset.to_le_bytes();
        let at = file[footer.clone()]
            .windows(8)
            .position(|w| w == needle)
            .unwrap();
        footer.start + at
    };
    let second = offset_at(blocks[1].offset());
    // The second block pointing at the first: overlapping, refused.
    let mut overlapping = file.clone();
    overlapping[second..second + 8].copy_from_slice(&blocks[0].offset().to_le_bytes());
    let err = read_ipc_file(Bytes::from(overlapping), &Limits::DEFAULT).unwrap_err();
    assert!(
        matches!(&err, IpcReadError::Malformed(m) if m.contains("overlap")),
        "{err:?}"
    );
    // Pointing past the messages, or before the first one.
    for offset in [footer.start as i64, 0, 4, -8, i64::MAX] {
        let mut outside = file.clone();
        outside[second..second + 8].copy_from_slice(&offset.to_le_bytes());
        let err = read_ipc_file(Bytes::from(outside), &Limits::DEFAULT).unwrap_err();
        assert!(
            matches!(
                err,
                IpcReadError::Malformed(_) | IpcReadError::Arrow(_) | IpcReadError::NoSchema
            ),
            "{offset}: {err:?}"
        );
    }
    // The untouched file reads.
    assert_eq!(
        read_ipc_file(Bytes::from(file), &Limits::DEFAULT).unwrap(),
        [a.clone(), a]
    );
}

#[test]
fn hostile_family_frames_with_random_flips_never_panic() {
    let batch = mixed_batch();
    let Dumped { meta, frames, .. } = ArrowFamily::dump_batch(&batch).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut frames: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
        let i = (next() % frames.len() as u64) as usize;
        if frames[i].is_empty() {
            continue;
        }
        let at = (next() % frames[i].len() as u64) as usize;
        frames[i][at] = next() as u8;
        let frames: Vec<Bytes> = frames.into_iter().map(Bytes::from).collect();
        let _ = ArrowFamily::load_batch(&meta, &frames, &Limits::DEFAULT);
    }
}
