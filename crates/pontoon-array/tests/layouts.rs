//! Arrays in every layout: C, Fortran, transposed, reversed, broadcast, 0-d and empty; views of
//! the right values, copy-on-write that copies only when shared, and hostile layouts refused.
#![cfg(feature = "ndarray")]

use bytes::Bytes;
use ndarray::{IxDyn, ShapeBuilder, arr2};
use pontoon_array::{Array, ArrayError, ByteOrder, DType};
use pontoon_wire::Limits;

fn f64s(values: &[f64]) -> Bytes {
    Bytes::from(
        values
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect::<Vec<u8>>(),
    )
}

#[test]
fn views_follow_any_strides() {
    let data = f64s(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    // C order 2x3.
    let c = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![2, 3],
        vec![24, 8],
        0,
        data.clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(
        c.view::<f64>().unwrap(),
        arr2(&[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]).into_dyn()
    );
    assert!(c.is_c_contiguous() && !c.is_f_contiguous());
    // Fortran order 2x3 over the same bytes.
    let f = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![2, 3],
        vec![8, 16],
        0,
        data.clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(
        f.view::<f64>().unwrap(),
        arr2(&[[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]).into_dyn()
    );
    assert!(f.is_f_contiguous());
    assert_eq!(
        f.as_slice::<f64>().unwrap(),
        &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        "memory order"
    );
    // Reversed: negative stride from the last element.
    let rev = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![6],
        vec![-8],
        40,
        data.clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(
        rev.view::<f64>()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    );
    assert!(matches!(
        rev.as_slice::<f64>(),
        Err(ArrayError::NotContiguous)
    ));
    // Every other element.
    let step = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![3],
        vec![16],
        8,
        data.clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(
        step.to_contiguous().unwrap().as_slice::<f64>().unwrap(),
        &[1.0, 3.0, 5.0]
    );
    // Broadcast: a row repeated four times, stride 0.
    let rows = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![4, 3],
        vec![0, 8],
        0,
        data.clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    let view = rows.view::<f64>().unwrap();
    assert_eq!(view.shape(), &[4, 3]);
    assert!(
        view.rows()
            .into_iter()
            .all(|r| r.to_vec() == [0.0, 1.0, 2.0])
    );
    // 0-d and empty.
    let scalar = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![],
        vec![],
        16,
        data.clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(scalar.view::<f64>().unwrap()[IxDyn(&[])], 2.0);
    assert_eq!(scalar.len(), 1);
    let empty = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![0, 5],
        vec![40, 8],
        0,
        Bytes::new(),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.view::<f64>().unwrap().shape(), &[0, 5]);
}

#[test]
fn ndarray_layouts_come_in_without_a_copy() {
    let c = ndarray::Array::from_shape_vec((2, 3), (0..6).map(f64::from).collect()).unwrap();
    let f = ndarray::Array::from_shape_vec((2, 3).f(), (0..6).map(f64::from).collect()).unwrap();
    for source in [c, f] {
        let expected = source.clone().into_dyn();
        let first = source.as_ptr();
        let array = Array::from_ndarray(source).unwrap();
        assert_eq!(array.view::<f64>().unwrap(), expected);
        assert_eq!(array.data().as_ptr() as usize, first as usize);
        assert_eq!(array.to_ndarray::<f64>().unwrap(), expected);
    }
}

#[test]
fn make_mut_copies_only_when_shared() {
    let mut a = Array::from_vec(vec![1i64, 2, 3]);
    a.make_mut::<i64, _>(|mut v| v[[0]] = 10).unwrap(); // built from a Vec: one copy
    let after_first = a.data().as_ptr();
    a.make_mut::<i64, _>(|mut v| v[[1]] = 20).unwrap(); // now its own: in place
    assert_eq!(
        a.data().as_ptr(),
        after_first,
        "a uniquely owned buffer was copied"
    );
    let snapshot = a.clone();
    a.make_mut::<i64, _>(|mut v| v[[2]] = 30).unwrap(); // shared with the clone: copy
    assert_ne!(a.data().as_ptr(), snapshot.data().as_ptr());
    assert_eq!(a.as_slice::<i64>().unwrap(), &[10, 20, 30]);
    assert_eq!(snapshot.as_slice::<i64>().unwrap(), &[10, 20, 3]);
    // A broadcast array becomes a compact one before it is written.
    let base = Array::from_vec(vec![1u16, 2]);
    let mut wide = Array::from_parts(
        DType::U16,
        ByteOrder::NATIVE,
        vec![3, 2],
        vec![0, 2],
        0,
        base.data().clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    wide.make_mut::<u16, _>(|mut v| v[[0, 0]] = 7).unwrap();
    assert_eq!(wide.as_slice::<u16>().unwrap(), &[7, 2, 1, 2, 1, 2]);
}

#[test]
fn big_endian_data_is_readable_by_an_explicit_conversion() {
    let data = Bytes::from_static(&[0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0]);
    let big = Array::from_parts(
        DType::F64,
        ByteOrder::Big,
        vec![2],
        vec![8],
        0,
        data,
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(big.descr(), ">f8");
    assert!(matches!(
        big.view::<f64>(),
        Err(ArrayError::ForeignByteOrder)
    ));
    assert_eq!(
        big.to_native().unwrap().as_slice::<f64>().unwrap(),
        &[1.0, 2.0]
    );
    // Complex numbers swap each half.
    let c = Bytes::from_static(&[0x3f, 0x80, 0, 0, 0x40, 0, 0, 0]);
    let big = Array::from_parts(
        DType::C64,
        ByteOrder::Big,
        vec![1],
        vec![8],
        0,
        c,
        &Limits::DEFAULT,
    )
    .unwrap();
    let native = big.to_native().unwrap();
    let z = native.as_slice::<num_complex::Complex32>().unwrap()[0];
    assert_eq!((z.re, z.im), (1.0, 2.0));
}

#[test]
fn misaligned_data_is_copied_once_into_aligned_memory() {
    let raw = f64s(&[1.0, 2.0, 3.0]);
    let mut padded = vec![0u8];
    padded.extend_from_slice(&raw);
    let frame = Bytes::from(padded);
    // Offset 1 cannot hold an f64 aligned (the allocation itself is aligned to at least 8).
    let a = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![3],
        vec![8],
        1,
        frame.clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(a.as_slice::<f64>().unwrap(), &[1.0, 2.0, 3.0]);
    assert_eq!(a.data().as_ptr() as usize % 8, 0);
    let p = a.data().as_ptr() as usize;
    let inside = (frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len()).contains(&p);
    assert!(
        !inside || !(frame.as_ptr() as usize).is_multiple_of(8),
        "misaligned data was not copied"
    );
}

#[test]
fn hostile_layouts_are_refused() {
    let data = Bytes::from(vec![0u8; 64]);
    let part = |shape: Vec<usize>, strides: Vec<isize>, offset: usize| {
        Array::from_parts(
            DType::F64,
            ByteOrder::NATIVE,
            shape,
            strides,
            offset,
            data.clone(),
            &Limits::DEFAULT,
        )
    };
    assert!(matches!(
        part(vec![2], vec![8, 8], 0),
        Err(ArrayError::RankMismatch { .. })
    ));
    assert!(matches!(
        part(vec![9], vec![8], 0),
        Err(ArrayError::OutOfBounds { .. })
    ));
    assert!(matches!(
        part(vec![2], vec![-8], 0),
        Err(ArrayError::OutOfBounds { .. })
    ));
    assert!(matches!(
        part(vec![2], vec![8], 64),
        Err(ArrayError::OutOfBounds { .. })
    ));
    assert!(matches!(
        part(vec![usize::MAX, 2], vec![8, 8], 0),
        Err(ArrayError::Overflow { .. })
    ));
    assert!(matches!(
        part(vec![1 << 40, 1 << 40], vec![0, 0], 0),
        Err(ArrayError::Overflow { .. })
    ));
    assert!(matches!(
        part(vec![2, 2], vec![isize::MAX, 8], 0),
        Err(ArrayError::OutOfBounds { .. } | ArrayError::Overflow { .. })
    ));
    assert!(matches!(
        part(vec![1; 33], vec![8; 33], 0),
        Err(ArrayError::TooManyDimensions(33))
    ));
    // A huge broadcast of one element: more than the default limits let 8 bytes make, but a
    // valid array under limits that allow it, and then a view that needs no memory.
    assert_eq!(
        part(vec![1 << 30, 1 << 20], vec![0, 0], 0).unwrap_err(),
        ArrayError::ExpansionTooLarge {
            logical_bytes: 1 << 53,
            referenced_bytes: 8,
            limit_bytes: 1 << 16,
        }
    );
    let huge = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![1 << 30, 1 << 20],
        vec![0, 0],
        0,
        data.clone(),
        &Limits::UNLIMITED,
    )
    .unwrap();
    assert_eq!(huge.shape(), &[1 << 30, 1 << 20]);
    assert_eq!(huge.data().as_ptr(), data.as_ptr());
}
