//! `.npy` files: every dtype, both byte orders and every layout round trip through
//! `npy::write` and `npy::read` without copies where the layout allows; hostile files (every
//! truncation, bad magic, versions, lengths, dicts and dtypes) are refused with typed errors.

use bytes::Bytes;
use pontoon_array::npy::NpyError;
use pontoon_array::{Array, ArrayError, ByteOrder, DType, TimeUnit, npy};
use pontoon_wire::Limits;

/// Every dtype pontoon supports, with two of the time units.
fn all_dtypes() -> Vec<DType> {
    DType::NUMERIC
        .into_iter()
        .chain([
            DType::DateTime(TimeUnit::Microsecond),
            DType::DateTime(TimeUnit::Day),
            DType::TimeDelta(TimeUnit::Nanosecond),
            DType::TimeDelta(TimeUnit::Second),
        ])
        .collect()
}

/// `count` elements' worth of distinct bytes (0 or 1 for bools).
fn pattern(dtype: DType, count: usize) -> Vec<u8> {
    let size = dtype.size();
    (0..count * size)
        .map(|i| match dtype {
            DType::Bool => (i % 3 == 1) as u8,
            _ => (i as u8).wrapping_mul(37).wrapping_add(11),
        })
        .collect()
}

/// A C-order array of `shape` holding [`pattern`] bytes.
fn c_array(dtype: DType, order: ByteOrder, shape: &[usize]) -> Array {
    let count = shape.iter().product();
    let size = dtype.size() as isize;
    let mut strides = vec![0isize; shape.len()];
    let mut step = size;
    for (stride, &len) in strides.iter_mut().zip(shape).rev() {
        *stride = step;
        step *= len.max(1) as isize;
    }
    let data = Bytes::from(pattern(dtype, count));
    Array::from_parts(
        dtype,
        order,
        shape.to_vec(),
        strides,
        0,
        data,
        &Limits::DEFAULT,
    )
    .unwrap()
}

/// The file `npy::write` makes, as one buffer.
fn file_of(array: &Array) -> Bytes {
    Bytes::from(npy::write(array).unwrap().concat())
}

/// Writes and reads back `array`, checking the values, the byte order and that the file
/// is laid out as numpy's.
fn round_trip(array: &Array) -> Array {
    let chunks = npy::write(array).unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        chunks[0].len() % 64,
        0,
        "the data starts at a multiple of 64"
    );
    assert_eq!(chunks[1].len(), array.len() * array.dtype().size());
    let file = Bytes::from(chunks.concat());
    let back = npy::read(file.clone()).unwrap_or_else(|e| panic!("{array:?}: {e}"));
    assert_eq!(&back, array);
    assert_eq!(back.descr(), array.descr());
    if array.dtype().size() > 1 {
        assert_eq!(back.byte_order(), array.byte_order());
    }
    if !back.is_empty() {
        let data = file.as_ptr_range();
        assert!(
            data.contains(&back.data().as_ptr()),
            "the array views the file's bytes"
        );
    }
    back
}

#[test]
fn every_dtype_round_trips_in_both_byte_orders() {
    for dtype in all_dtypes() {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let a = c_array(dtype, order, &[3, 4]);
            let back = round_trip(&a);
            assert!(back.is_c_contiguous());
            let header = npy::write(&a).unwrap()[0].clone();
            let text = String::from_utf8_lossy(&header);
            let descr = dtype.descr(order);
            assert!(text.contains(&format!("'descr': '{descr}'")), "{text}");
            assert!(text.contains("'fortran_order': False"), "{text}");
            assert!(text.contains("'shape': (3, 4)"), "{text}");
            assert!(text.ends_with('\n'));
        }
    }
}

#[test]
fn big_endian_values_read_back_as_numbers() {
    let data = Bytes::from_static(&[0, 0, 1, 2, 0xff, 0xff, 0xff, 0xfe]);
    let big = Array::from_parts(
        DType::I32,
        ByteOrder::Big,
        vec![2],
        vec![4],
        0,
        data,
        &Limits::DEFAULT,
    )
    .unwrap();
    let back = round_trip(&big);
    assert_eq!(back.descr(), ">i4");
    assert_eq!(
        back.to_native().unwrap().as_slice::<i32>().unwrap(),
        &[0x0102, -2]
    );
}

#[test]
fn contiguous_arrays_are_written_without_a_copy() {
    let a = Array::from_shape_vec(&[2, 3], vec![1u16, 2, 3, 4, 5, 6]).unwrap();
    let chunks = npy::write(&a).unwrap();
    assert_eq!(chunks[1].as_ptr(), a.data().as_ptr());
    // Fortran order: the transposed view, written as it lies, with fortran_order True.
    let f = a.transposed();
    assert!(f.is_f_contiguous() && !f.is_c_contiguous());
    let chunks = npy::write(&f).unwrap();
    assert_eq!(chunks[1].as_ptr(), a.data().as_ptr());
    assert!(String::from_utf8_lossy(&chunks[0]).contains("'fortran_order': True, 'shape': (3, 2)"));
    let back = round_trip(&f);
    assert!(back.is_f_contiguous() && !back.is_c_contiguous());
    #[cfg(feature = "ndarray")]
    assert_eq!(
        back.view::<u16>().unwrap(),
        ndarray::arr2(&[[1u16, 4], [2, 5], [3, 6]]).into_dyn()
    );
    // A contiguous window of a larger buffer: the slice starts at its offset.
    let window = Array::from_parts(
        DType::U16,
        ByteOrder::NATIVE,
        vec![2],
        vec![2],
        4,
        a.data().clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(
        npy::write(&window).unwrap()[1].as_ptr(),
        a.data()[4..].as_ptr()
    );
    assert_eq!(
        npy::read(file_of(&window))
            .unwrap()
            .as_slice::<u16>()
            .unwrap(),
        &[3, 4]
    );
}

#[test]
fn fortran_order_round_trips_for_every_dtype() {
    for dtype in all_dtypes() {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let f = c_array(dtype, order, &[4, 3, 2]).transposed();
            assert!(f.is_f_contiguous());
            let back = round_trip(&f);
            assert!(back.is_f_contiguous() && !back.is_c_contiguous());
        }
    }
}

#[test]
fn zero_d_and_empty_arrays_round_trip() {
    for dtype in all_dtypes() {
        let scalar = c_array(dtype, ByteOrder::Big, &[]);
        let back = round_trip(&scalar);
        assert_eq!(back.shape(), &[0usize; 0]);
        assert!(String::from_utf8_lossy(&npy::write(&scalar).unwrap()[0]).contains("'shape': ()"));
        for shape in [&[0][..], &[2, 0], &[0, 3], &[3, 0, 2]] {
            let empty = c_array(dtype, ByteOrder::NATIVE, shape);
            let back = round_trip(&empty);
            assert_eq!(back.shape(), shape);
            assert!(back.is_empty());
        }
    }
    let one = c_array(DType::F64, ByteOrder::NATIVE, &[1]);
    assert!(String::from_utf8_lossy(&npy::write(&one).unwrap()[0]).contains("'shape': (1,)"));
}

#[test]
fn strided_sliced_and_broadcast_arrays_are_compacted() {
    for dtype in all_dtypes() {
        let size = dtype.size() as isize;
        let base = c_array(dtype, ByteOrder::NATIVE, &[4, 6]);
        let data = base.data().clone();
        let expected_at = |rows: &[usize], cols: &[usize]| {
            let bytes = pattern(dtype, 24);
            let mut out = Vec::new();
            for &r in rows {
                for &c in cols {
                    let at = (r * 6 + c) * size as usize;
                    out.extend_from_slice(&bytes[at..at + size as usize]);
                }
            }
            out
        };
        let cases: Vec<(Array, Vec<u8>)> = vec![
            // a[::-1, ::2]
            (
                Array::from_parts(
                    dtype,
                    ByteOrder::NATIVE,
                    vec![4, 3],
                    vec![-6 * size, 2 * size],
                    18 * size as usize,
                    data.clone(),
                    &Limits::DEFAULT,
                )
                .unwrap(),
                expected_at(&[3, 2, 1, 0], &[0, 2, 4]),
            ),
            // a[1:3, ::-3]
            (
                Array::from_parts(
                    dtype,
                    ByteOrder::NATIVE,
                    vec![2, 2],
                    vec![6 * size, -3 * size],
                    11 * size as usize,
                    data.clone(),
                    &Limits::DEFAULT,
                )
                .unwrap(),
                expected_at(&[1, 2], &[5, 2]),
            ),
            // a[0] broadcast to 3 rows
            (
                Array::from_parts(
                    dtype,
                    ByteOrder::NATIVE,
                    vec![3, 6],
                    vec![0, size],
                    0,
                    data.clone(),
                    &Limits::DEFAULT,
                )
                .unwrap(),
                expected_at(&[0, 0, 0], &[0, 1, 2, 3, 4, 5]),
            ),
        ];
        for (array, expected) in cases {
            assert!(!array.is_c_contiguous() && !array.is_f_contiguous());
            let chunks = npy::write(&array).unwrap();
            assert_eq!(&chunks[1][..], &expected[..], "{dtype}: C-order bytes");
            assert!(String::from_utf8_lossy(&chunks[0]).contains("'fortran_order': False"));
            let back = round_trip(&array);
            assert!(back.is_c_contiguous());
        }
    }
}

#[test]
fn misaligned_files_are_copied_into_aligned_memory() {
    let a = Array::from_vec(vec![1.5f64, -2.0, 3.25]);
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&file_of(&a));
    let file = Bytes::from(shifted).slice(1..);
    let back = npy::read(file).unwrap();
    assert_eq!(back.as_slice::<f64>().unwrap(), &[1.5, -2.0, 3.25]);
}

#[test]
fn bytes_after_the_data_are_ignored() {
    let a = Array::from_vec(vec![7u32, 8]);
    let mut file = file_of(&a).to_vec();
    file.extend_from_slice(b"trailing");
    assert_eq!(npy::read(Bytes::from(file)).unwrap(), a);
}

/// A file with `dict` as its header (version 1.0) followed by `data`.
fn file_with(dict: &str, data: &[u8]) -> Bytes {
    let mut header = dict.as_bytes().to_vec();
    header.push(b'\n');
    let mut file = b"\x93NUMPY\x01\x00".to_vec();
    file.extend_from_slice(&(header.len() as u16).to_le_bytes());
    file.extend_from_slice(&header);
    file.extend_from_slice(data);
    Bytes::from(file)
}

fn npy_error(file: Bytes, says: &str) {
    match npy::read(file) {
        Err(
            e @ (NpyError::NotNpy { .. }
            | NpyError::Truncated { .. }
            | NpyError::Version { .. }
            | NpyError::HeaderLength { .. }
            | NpyError::HeaderEncoding(_)
            | NpyError::Header { .. }
            | NpyError::MissingKeys { .. }),
        ) => {
            assert!(e.to_string().contains(says), "`{e}` does not say `{says}`")
        }
        other => panic!("expected an Npy error saying `{says}`, got {other:?}"),
    }
}

#[test]
fn every_truncation_is_refused_without_a_panic() {
    let a = c_array(DType::C64, ByteOrder::Big, &[2, 3]);
    let file = file_of(&a);
    let header_end = npy::write(&a).unwrap()[0].len();
    for cut in 0..file.len() {
        let err = npy::read(file.slice(..cut)).unwrap_err();
        if cut < header_end {
            assert!(
                !matches!(err, NpyError::DType(_) | NpyError::Data(_)),
                "cut {cut}: {err:?}"
            );
        } else {
            assert_eq!(
                err,
                NpyError::Data(ArrayError::WrongLength {
                    elements: 6,
                    itemsize: 8,
                    needed: 48,
                    len: cut - header_end
                }),
                "cut {cut}"
            );
        }
    }
    npy_error(file.slice(..0), "ends after 0 bytes, inside the magic");
    npy_error(
        Bytes::from_static(b"\x93NUMPX"),
        "starts with \"\\x93NUMPX\"",
    );
    npy_error(file.slice(..3), "inside the magic");
    npy_error(file.slice(..7), "inside the version");
    npy_error(file.slice(..9), "inside the 2-byte header length");
    npy_error(file.slice(..50), "the header claims");
}

#[test]
fn bad_magic_and_versions_are_refused() {
    let good = file_of(&Array::from_vec(vec![1u8, 2, 3]));
    let with = |at: usize, byte: u8| {
        let mut file = good.to_vec();
        file[at] = byte;
        Bytes::from(file)
    };
    npy_error(with(0, b'P'), "not the magic");
    npy_error(with(5, b'X'), "not the magic");
    npy_error(Bytes::from_static(b"PK\x03\x04"), "not the magic");
    npy_error(with(6, 0), "unsupported format version 0.0");
    npy_error(with(6, 4), "unsupported format version 4.0");
    npy_error(with(7, 1), "unsupported format version 1.1");
    // Version 2.0 reads the length as a u32: two header bytes become part of it.
    npy_error(with(6, 2), "the header claims");
    let mut huge = good.to_vec();
    huge[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
    npy_error(Bytes::from(huge), "the header claims 65535 bytes");
}

#[test]
fn unsupported_dtypes_are_refused() {
    for descr in [
        "|O", "<U10", "|S5", "|V8", "<f2", "<f16", "<M8", "f8", "|f8", "<i4 ",
    ] {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}");
        let err = npy::read(file_with(&dict, &[0; 64])).unwrap_err();
        assert!(
            matches!(err, NpyError::DType(ArrayError::UnknownDType(_))),
            "{descr}: {err:?}"
        );
    }
    let structured =
        "{'descr': [('x', '<f8'), ('y', '<i4')], 'fortran_order': False, 'shape': (1,), }";
    npy_error(file_with(structured, &[0; 12]), "structured dtype");
}

#[test]
fn malformed_dicts_are_refused() {
    for (dict, says) in [
        ("", "expected `{`"),
        ("{'descr': '<f8', 'fortran_order': False}", "no shape"),
        ("{'descr': '<f8', 'shape': (1,)}", "no fortran_order"),
        (
            "{'descr': '<f8', 'fortran_order': None, 'shape': (1,)}",
            "found `N`",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 0}",
            "unexpected key `x`",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}",
            "negative dimension",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': 3}",
            "found `3`",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} trailing",
            "after the dict",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)",
            "found the end",
        ),
    ] {
        npy_error(file_with(dict, &[0; 8]), says);
    }
}

#[test]
fn shapes_too_large_are_refused() {
    let dict =
        |shape: &str| format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    let overflow = npy::read(file_with(&dict("(4294967296, 4294967296)"), &[])).unwrap_err();
    assert!(
        matches!(overflow, NpyError::Data(ArrayError::Overflow { .. })),
        "{overflow:?}"
    );
    let bytes_overflow = npy::read(file_with(&dict("(2305843009213693952,)"), &[])).unwrap_err();
    assert!(
        matches!(bytes_overflow, NpyError::Data(ArrayError::Overflow { .. })),
        "{bytes_overflow:?}"
    );
    let short = npy::read(file_with(&dict("(1099511627776,)"), &[0; 16])).unwrap_err();
    assert_eq!(
        short,
        NpyError::Data(ArrayError::WrongLength {
            elements: 1 << 40,
            itemsize: 8,
            needed: 8 << 40,
            len: 16
        })
    );
    let empty = npy::read(file_with(&dict("(0, 1099511627776, 3)"), &[])).unwrap();
    assert_eq!(empty.shape(), &[0, 1 << 40, 3]);
    assert!(empty.is_empty());
    #[cfg(feature = "ndarray")]
    assert_eq!(empty.view::<f64>().unwrap().shape(), &[0, 1 << 40, 3]);
    assert_eq!(npy::write(&empty).unwrap()[1].len(), 0);
    // An empty array whose other dimensions multiply past isize is refused when built, as
    // ndarray would refuse its view (this was accepted, and `view` then panicked).
    for shape in [
        "(0, 18446744073709551615, 3)",
        "(0, 4611686018427387904, 4611686018427387904)",
    ] {
        let err = npy::read(file_with(&dict(shape), &[])).unwrap_err();
        assert!(
            matches!(err, NpyError::Data(ArrayError::Overflow { .. })),
            "{shape}: {err:?}"
        );
    }
    let dims = format!("({})", "1, ".repeat(33));
    assert_eq!(
        npy::read(file_with(&dict(&dims), &[0; 8])).unwrap_err(),
        NpyError::TooManyDimensions(33)
    );
}

#[test]
fn every_byte_of_a_header_may_be_anything_without_a_panic() {
    let file = file_of(&c_array(DType::F32, ByteOrder::Little, &[2, 2]));
    let mut copy = file.to_vec();
    for at in 0..npy::write(&c_array(DType::F32, ByteOrder::Little, &[2, 2])).unwrap()[0].len() {
        for byte in [
            0u8, b' ', b'\'', b'"', b'(', b')', b',', b':', b'{', b'}', b'[', b'9', b'-', 0x80,
            0xff,
        ] {
            let original = copy[at];
            copy[at] = byte;
            let _ = npy::read(Bytes::copy_from_slice(&copy));
            copy[at] = original;
        }
    }
}
