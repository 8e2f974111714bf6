//! Issue 10's hostile arrays: a peer's few bytes must not make the receiver allocate (or abort
//! on) the logical size of a broadcast, nor reach a panic through an empty array's shape.

use bytes::Bytes;
use pontoon_array::{Array, ArrayError, ArrayFamily, ArrayHeaderError, ByteOrder, DType, npy};
use pontoon_family::rmpv::Value;
use pontoon_family::{Context, Family, Loaded, Registry};
use pontoon_wire::Limits;
use serde::{Deserialize, Serialize};

fn meta(dtype: &str, shape: &[u64], strides: &[i64], offset: u64) -> Value {
    Value::Map(vec![
        ("dtype".into(), dtype.into()),
        (
            "shape".into(),
            Value::Array(shape.iter().map(|&n| n.into()).collect()),
        ),
        (
            "strides".into(),
            Value::Array(strides.iter().map(|&n| n.into()).collect()),
        ),
        ("offset".into(), offset.into()),
    ])
}

fn load(meta: &Value, frame: Bytes, limits: &Limits) -> Result<Array, ArrayHeaderError> {
    let frames = [frame];
    let loaded = Loaded::new("x", meta, &frames, limits);
    match ArrayFamily.loads(&loaded, &Context::new()) {
        Ok(value) => Ok(value.downcast_ref::<Array>().unwrap().clone()),
        Err(e) => Err(e.downcast_ref::<ArrayHeaderError>().unwrap().clone()),
    }
}

/// Failed before the fix: the 9-byte frame was accepted and "copied into aligned memory" with
/// an infallible allocation of 8 TiB, which aborted the process; aligned, it was accepted as
/// 2^40 elements from 8 bytes (and 2^28 made 2 GiB resident on the first copy).
#[test]
fn a_broadcast_header_is_bounded_by_the_receivers_limits() {
    let nine = Bytes::from(vec![0u8; 9]);
    for (shape, offset) in [(1u64 << 40, 1), (1 << 40, 0), (1 << 28, 1), (1 << 28, 0)] {
        let err = load(
            &meta("<f8", &[shape], &[0], offset),
            nine.clone(),
            &Limits::DEFAULT,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ArrayHeaderError::Layout(ArrayError::ExpansionTooLarge {
                logical_bytes: shape * 8,
                referenced_bytes: 8,
                limit_bytes: pontoon_wire::EXPANSION_FLOOR,
            }),
            "{shape} at {offset}"
        );
        assert!(report(&err).contains("max_expansion_ratio"), "{err}");
    }
    // Within the limits (64 KiB from 8 bytes is the floor), a broadcast is accepted.
    let small = load(
        &meta("<f8", &[8192], &[0], 0),
        nine.clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(small.len(), 8192);
    assert_eq!(small.data().as_ptr(), nine.as_ptr(), "a view, not a copy");
    // The ratio counts: a row of 80000 bytes broadcast three times is 3:1.
    let mut limits = Limits::DEFAULT;
    limits.max_expansion_ratio = 2;
    limits.max_expanded_bytes = 1 << 40;
    let frame = Bytes::from(vec![0u8; 80000]);
    let rows = meta("<f8", &[3, 10000], &[0, 8], 0);
    assert!(
        load(&rows, frame.clone(), &limits).is_err(),
        "240000 > 2 x 80000"
    );
    limits.max_expansion_ratio = 3;
    assert_eq!(load(&rows, frame, &limits).unwrap().shape(), &[3, 10000]);
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Holder {
    name: String,
    array: Array,
}

/// Failed before the fix: the same header inside a serde struct got in through the default
/// serde family, unchecked against anything.
#[test]
fn a_broadcast_inside_a_serde_struct_is_bounded_too() {
    let one = Bytes::from(vec![0u8; 8]);
    let huge = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![1 << 40],
        vec![0],
        0,
        one,
        &Limits::UNLIMITED,
    )
    .unwrap();
    let holder = Holder {
        name: "h".into(),
        array: huge,
    };
    let sender = Registry::new();
    let message = sender.serialize(&holder).unwrap();
    assert_eq!(message.frames[0].len(), 8, "a broadcast sends its base");
    let receiver = Registry::new();
    let err = receiver.deserialize::<Holder>(&message).unwrap_err();
    assert!(report(&err).contains("limits allow"), "{err}");
    let mut trusting = Registry::new();
    trusting.set_limits(Limits::UNLIMITED);
    let back: Holder = trusting.deserialize(&message).unwrap();
    assert_eq!(back.array.shape(), &[1 << 40]);
    assert_eq!(back.array.data().as_ptr(), message.frames[0].as_ptr());
}

/// Failed before the fix: a misaligned array was copied at its logical size (8000 bytes here),
/// not over the bytes its elements lie in.
#[test]
fn a_misaligned_array_is_copied_over_the_bytes_it_touches_only() {
    let mut bytes = vec![0u8; 25];
    bytes[1..9].copy_from_slice(&1.5f64.to_ne_bytes());
    bytes[9..17].copy_from_slice(&2.5f64.to_ne_bytes());
    bytes[17..25].copy_from_slice(&3.5f64.to_ne_bytes());
    let frame = Bytes::from(bytes);
    let odd = frame.slice(1..);
    let aligned_already = (odd.as_ptr() as usize).is_multiple_of(8);
    let broadcast = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![1000],
        vec![0],
        0,
        odd.clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(broadcast.strides(), &[0], "a broadcast stays a broadcast");
    if !aligned_already {
        assert_eq!(broadcast.data().len(), 8, "only the one element is copied");
    }
    assert!((broadcast.data().as_ptr() as usize).is_multiple_of(8));
    #[cfg(feature = "ndarray")]
    assert_eq!(broadcast.view::<f64>().unwrap()[[999]], 1.5);
    // Reversed, from the last element: the copy is the 24 bytes, offsets kept relative.
    let reversed = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![3],
        vec![-8],
        16,
        odd,
        &Limits::DEFAULT,
    )
    .unwrap();
    #[cfg(feature = "ndarray")]
    {
        let values: Vec<f64> = reversed.view::<f64>().unwrap().iter().copied().collect();
        assert_eq!(values, [3.5, 2.5, 1.5]);
    }
    if !aligned_already {
        assert_eq!(reversed.data().len(), 24);
    }
}

/// Failed before the fix (it did not compile: these were infallible, and aborted on memory
/// the machine does not have): every copy sized by the array is a typed error.
#[test]
fn copies_the_machine_cannot_hold_are_errors_not_aborts() {
    #[cfg_attr(not(feature = "ndarray"), allow(unused_mut))]
    let mut huge = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![1 << 58],
        vec![0],
        0,
        Bytes::from(vec![0u8; 8]),
        &Limits::UNLIMITED,
    )
    .unwrap();
    let oom = |e: &ArrayError| matches!(e, ArrayError::OutOfMemory { .. });
    assert!(oom(&huge.to_contiguous().unwrap_err()));
    assert!(oom(&huge.to_native().unwrap_err()));
    #[cfg(feature = "ndarray")]
    assert!(oom(&huge.to_ndarray::<f64>().unwrap_err()));
    assert!(oom(&npy::write(&huge).unwrap_err()));
    #[cfg(feature = "arrow")]
    assert!(matches!(
        pontoon_array::arrow::to_arrow(&huge),
        Err(pontoon_array::arrow::ConvertError::Array(
            ArrayError::OutOfMemory { .. }
        ))
    ));
    #[cfg(feature = "ndarray")]
    {
        let err = huge.make_mut::<f64, _>(|_| ()).unwrap_err();
        assert!(oom(&err));
        assert_eq!(
            huge.strides(),
            &[0],
            "a failed make_mut leaves the array as it was"
        );
        assert_eq!(huge.view::<f64>().unwrap()[[12345]], 0.0);
    }
}

/// Failed before the fix: `[0, 2^62, 2^62]` was accepted, and `view` panicked at
/// `expect("an empty view")` because ndarray refuses the shape.
#[test]
fn empty_arrays_whose_other_dimensions_overflow_are_refused_when_built() {
    let empty = Bytes::new();
    for shape in [
        vec![0, 1 << 62, 1 << 62],
        vec![1 << 62, 0, 1 << 62],
        vec![0, usize::MAX],
        vec![0, 1 << 61], // 2^61 elements of 8 bytes: the bytes overflow isize
    ] {
        let strides = vec![8; shape.len()];
        let err = Array::from_parts(
            DType::F64,
            ByteOrder::NATIVE,
            shape.clone(),
            strides,
            0,
            empty.clone(),
            &Limits::DEFAULT,
        )
        .unwrap_err();
        assert!(
            matches!(err, ArrayError::Overflow { .. }),
            "{shape:?}: {err:?}"
        );
    }
    let header = meta("<f8", &[0, 1 << 62, 1 << 62], &[8, 8, 8], 0);
    assert!(matches!(
        load(&header, empty.clone(), &Limits::DEFAULT),
        Err(ArrayHeaderError::Layout(ArrayError::Overflow { .. }))
    ));
    // What ndarray accepts is accepted, and viewable.
    let fine = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![0, 1 << 40, 1 << 10],
        vec![8, 8, 8],
        0,
        empty,
        &Limits::DEFAULT,
    )
    .unwrap();
    #[cfg(feature = "ndarray")]
    assert_eq!(fine.view::<f64>().unwrap().shape(), &[0, 1 << 40, 1 << 10]);
    #[cfg(feature = "ndarray")]
    assert_eq!(fine.to_ndarray::<f64>().unwrap().len(), 0);
    assert_eq!(fine, fine.to_contiguous().unwrap());
}

/// The error and its causes, each once, as a report (anyhow's `{:#}`) prints them.
fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(source) = cause {
        text = format!("{text}: {source}");
        cause = source.source();
    }
    text
}
