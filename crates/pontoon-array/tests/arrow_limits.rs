//! Issue 10 on the Arrow paths: elements that take no bytes on the wire (nulls, here) are an
//! expansion too, bounded by the receiver's limits before arrow-rs builds anything; and
//! unpacking booleans is checked and fallible.
#![cfg(feature = "arrow")]

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, NullArray, RecordBatch};
use bytes::Bytes;
use pontoon_array::ArrayError;
use pontoon_array::arrow::{
    ArrowFamily, ConvertError, IpcReadError, LoadError, from_arrow, read_ipc_file, read_ipc_stream,
    write_ipc_file, write_ipc_stream,
};
use pontoon_family::Dumped;
use pontoon_wire::Limits;

/// A batch of 2^24 nulls: a few hundred bytes on the wire, whatever the length.
fn nulls() -> RecordBatch {
    let column: ArrayRef = Arc::new(NullArray::new(1 << 24));
    RecordBatch::try_from_iter([("n", column)]).unwrap()
}

fn trusting() -> Limits {
    let mut limits = Limits::DEFAULT;
    limits.max_expansion_ratio = u64::MAX;
    limits.max_expanded_bytes = u64::MAX;
    limits
}

/// Failed before the fix: the stream and the file were read as 2^24 rows (any length a peer
/// wrote, negative ones cast to huge) from a few hundred bytes.
#[test]
fn ipc_lengths_past_the_limits_are_refused_before_decoding() {
    let stream = Bytes::from(write_ipc_stream(&[nulls()]).unwrap());
    let file = Bytes::from(write_ipc_file(&[nulls()]).unwrap());
    assert!(stream.len() < 1024 && file.len() < 2048);
    for err in [
        read_ipc_stream(stream.clone(), &Limits::DEFAULT).unwrap_err(),
        read_ipc_file(file.clone(), &Limits::DEFAULT).unwrap_err(),
    ] {
        assert!(
            matches!(err, IpcReadError::TooManyElements { elements, .. } if elements == 1 << 24),
            "{err:?}"
        );
        assert!(err.to_string().contains("max_expansion_ratio"), "{err}");
    }
    assert_eq!(read_ipc_stream(stream, &trusting()).unwrap(), [nulls()]);
    assert_eq!(read_ipc_file(file, &trusting()).unwrap(), [nulls()]);
}

/// Failed before the fix: the family rebuilt 2^24 rows from no frames at all.
#[test]
fn family_lengths_past_the_limits_are_refused_before_building() {
    let Dumped { meta, frames, .. } = ArrowFamily::dump_batch(&nulls()).unwrap();
    assert!(frames.is_empty());
    let err = ArrowFamily::load_batch(&meta, &frames, &Limits::DEFAULT).unwrap_err();
    assert!(
        matches!(err, LoadError::TooManyElements { elements, received_bytes: 0, .. } if elements == 1 << 24),
        "{err:?}"
    );
    // With no frames at all, a finite ratio allows the floor; no ratio (`u64::MAX`, as a
    // trusting receiver sets) allows what `max_expanded_bytes` does.
    let mut huge_ratio = Limits::DEFAULT;
    huge_ratio.max_expansion_ratio = u64::MAX - 1;
    let err = ArrowFamily::load_batch(&meta, &frames, &huge_ratio).unwrap_err();
    assert!(
        matches!(err, LoadError::TooManyElements { limit, .. } if limit == pontoon_wire::EXPANSION_FLOOR),
        "{err:?}"
    );
    let trusted = ArrowFamily::load_batch(&meta, &frames, &trusting()).unwrap();
    assert_eq!(trusted.num_rows(), 1 << 24);
    let column: ArrayRef = Arc::new(NullArray::new(1 << 16));
    let floor = RecordBatch::try_from_iter([("n", column)]).unwrap();
    let Dumped { meta, frames, .. } = ArrowFamily::dump_batch(&floor).unwrap();
    assert_eq!(
        ArrowFamily::load_batch(&meta, &frames, &Limits::DEFAULT).unwrap(),
        floor
    );
}

/// Booleans unpack to eight times their bitmap: past the limits that is refused before the
/// allocation.
#[test]
fn unpacking_booleans_is_bounded_by_the_limits() {
    let bools = BooleanArray::from(vec![true; 1 << 20]);
    let mut strict = Limits::DEFAULT;
    strict.max_expansion_ratio = 4;
    assert_eq!(
        from_arrow(&bools, &strict).unwrap_err(),
        ConvertError::Array(ArrayError::ExpansionTooLarge {
            logical_bytes: 1 << 20,
            referenced_bytes: 1 << 17,
            limit_bytes: 1 << 19,
        })
    );
    let array = from_arrow(&bools, &Limits::DEFAULT).unwrap();
    assert_eq!(array.len(), 1 << 20);
    assert!(array.as_slice::<u8>().unwrap().iter().all(|&b| b == 1));
}

/// A sparse union whose node claims more elements than its type-id buffer holds: arrow-ipc
/// slices the buffer at the node's length unchecked.
#[test]
fn a_union_longer_than_its_type_ids_is_an_error_not_a_panic() {
    use arrow_schema::{DataType, Field};
    let union: ArrayRef = Arc::new(
        arrow_array::UnionArray::try_new(
            [(0, Arc::new(Field::new("a", DataType::Int32, false)))]
                .into_iter()
                .collect(),
            vec![0i8, 0].into(),
            None,
            vec![Arc::new(arrow_array::Int32Array::from(vec![1, 2])) as ArrayRef],
        )
        .unwrap(),
    );
    let batch = RecordBatch::try_from_iter([("u", union)]).unwrap();
    let stream = write_ipc_stream(std::slice::from_ref(&batch)).unwrap();
    // The union's node, the first of the batch: length 2, no nulls, as 16 bytes; make it 7.
    let node: Vec<u8> = [2i64.to_le_bytes(), 0i64.to_le_bytes()].concat();
    let at = stream
        .windows(16)
        .position(|w| w == node)
        .expect("the union's node");
    let mut hostile = stream.clone();
    hostile[at] = 7;
    let err = read_ipc_stream(Bytes::from(hostile), &Limits::DEFAULT).unwrap_err();
    assert!(!matches!(err, IpcReadError::Panicked), "{err:?}");
}

/// Negative lengths and null counts are refused by name before arrow-ipc casts them to `usize`.
#[test]
fn negative_node_lengths_and_null_counts_are_malformed() {
    let ints: ArrayRef = Arc::new(arrow_array::Int32Array::from(vec![Some(1), None, Some(3)]));
    let batch = RecordBatch::try_from_iter([("i", ints)]).unwrap();
    let stream = write_ipc_stream(std::slice::from_ref(&batch)).unwrap();
    let node: Vec<u8> = [3i64.to_le_bytes(), 1i64.to_le_bytes()].concat();
    let at = stream
        .windows(16)
        .position(|w| w == node)
        .expect("the node");
    for (offset, value, says) in [
        (0, -3i64, "-3 elements"),
        (8, -1, "-1 nulls"),
        (8, 4, "4 nulls"),
    ] {
        let mut hostile = stream.clone();
        hostile[at + offset..at + offset + 8].copy_from_slice(&value.to_le_bytes());
        let err = read_ipc_stream(Bytes::from(hostile), &Limits::DEFAULT).unwrap_err();
        assert!(
            matches!(&err, IpcReadError::Malformed(m) if m.contains(says)),
            "{value}: {err:?}"
        );
    }
}

/// Found by the `arrow_ipc_read` fuzz target: a dictionary batch whose Utf8 offsets buffer is
/// not a whole number of `i32`s made arrow-data's validation panic (behind the backstop) before
/// the layout walk checked dictionary batches and fixed-width buffer lengths.
#[test]
fn fixed_width_buffers_of_part_elements_are_malformed() {
    let stream = include_bytes!(
        "../../../fuzz/seeds/arrow_ipc_read/dictionary-utf8-offsets-not-whole-i32-stream"
    );
    let err = read_ipc_stream(Bytes::from_static(stream), &Limits::DEFAULT).unwrap_err();
    assert!(
        matches!(&err, IpcReadError::Malformed(m) if m.contains("4-byte elements")),
        "{err:?}"
    );
}

/// Found by the `arrow_family_load` fuzz target: a schema with `FixedSizeBinary(-n)` made
/// arrow-data's layout unwrap a negative width (a panic behind the backstop) before the family
/// refused the type.
#[test]
fn a_negative_fixed_size_is_malformed() {
    let mut input: &[u8] =
        include_bytes!("../../../fuzz/seeds/arrow_family_load/fixed-size-binary-negative-width");
    let meta = pontoon_family::rmpv::decode::read_value(&mut input).unwrap();
    // The frames, as the fuzz target reads them: each a length byte and that many bytes.
    let mut frames = Vec::new();
    while let Some((&len, rest)) = input.split_first() {
        let len = usize::from(len).min(rest.len());
        frames.push(Bytes::copy_from_slice(&rest[..len]));
        input = &rest[len..];
    }
    let err = ArrowFamily::load_batch(&meta, &frames, &Limits::DEFAULT).unwrap_err();
    assert!(
        matches!(&err, LoadError::Malformed(m) if m.contains("fixed size of -")),
        "{err:?}"
    );
}

/// The same negative width in an IPC stream's schema (the `arrow_family_load` finding, carried
/// to the IPC path, which walks batches with the same arrow-data layout): refused, no panic.
#[test]
fn a_negative_fixed_size_in_an_ipc_stream_is_malformed() {
    const WIDTH: i32 = 1_234_567;
    let values = vec![vec![7u8; WIDTH as usize]; 2];
    let column: ArrayRef =
        Arc::new(arrow_array::FixedSizeBinaryArray::try_from_iter(values.into_iter()).unwrap());
    let batch = RecordBatch::try_from_iter([("b", column)]).unwrap();
    let stream = write_ipc_stream(std::slice::from_ref(&batch)).unwrap();
    let at = stream
        .windows(4)
        .position(|w| w == WIDTH.to_le_bytes())
        .expect("the width in the schema");
    let mut hostile = stream.clone();
    hostile[at..at + 4].copy_from_slice(&(-WIDTH).to_le_bytes());
    let err = read_ipc_stream(Bytes::from(hostile), &Limits::DEFAULT).unwrap_err();
    assert!(
        matches!(&err, IpcReadError::Malformed(m) if m.contains("fixed size of -")),
        "{err:?}"
    );
}
