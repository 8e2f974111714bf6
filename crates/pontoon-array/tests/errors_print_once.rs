//! Errors print once: no error's `Display` repeats the `Display` of its `source()`, so a report
//! that walks the chain (anyhow, eyre) shows each cause once.

use std::error::Error;

use bytes::Bytes;
use pontoon_array::npy::{self, NpyError};
use pontoon_array::{ArrayFamily, ArrayHeaderError};
use pontoon_family::{Family, Loaded};
use pontoon_wire::Limits;

/// Walks `error`'s chain; fails if a link's text holds its source's text. Returns the number of
/// links, so a test can say the error was a wrapper at all.
fn assert_prints_once(error: &(dyn Error + 'static)) -> usize {
    let mut links = 1;
    let mut current = error;
    while let Some(source) = current.source() {
        let (outer, inner) = (current.to_string(), source.to_string());
        assert!(
            !outer.contains(&inner),
            "`{outer}` repeats its source `{inner}`"
        );
        links += 1;
        current = source;
    }
    links
}

/// A version 1.0 `.npy` file with this header dict and data.
fn npy_file(dict: &str, data: &[u8]) -> Bytes {
    let mut header = dict.as_bytes().to_vec();
    header.push(b'\n');
    let mut file = b"\x93NUMPY\x01\x00".to_vec();
    file.extend_from_slice(&(header.len() as u16).to_le_bytes());
    file.extend_from_slice(&header);
    file.extend_from_slice(data);
    Bytes::from(file)
}

/// Failed before the fix: `NpyError::DType` and `NpyError::Data` printed their `ArrayError`
/// after their own text and returned it as `source()` as well.
#[test]
fn npy_errors_leave_their_cause_to_source() {
    let bad_descr = npy_file(
        "{'descr': '<q9', 'fortran_order': False, 'shape': (2,), }",
        &[0; 16],
    );
    let error = npy::read(bad_descr).unwrap_err();
    assert!(matches!(error, NpyError::DType(_)), "{error:?}");
    assert_eq!(assert_prints_once(&error), 2);

    let short = npy_file(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }",
        &[0; 16],
    );
    let error = npy::read(short).unwrap_err();
    assert!(matches!(error, NpyError::Data(_)), "{error:?}");
    assert_eq!(assert_prints_once(&error), 2);
}

/// Failed before the fix: the array family's header errors printed their `ArrayError` twice.
#[test]
fn array_header_errors_leave_their_cause_to_source() {
    let meta = pontoon_family::rmpv::Value::Map(vec![
        ("dtype".into(), "<f8".into()),
        (
            "shape".into(),
            pontoon_family::rmpv::Value::Array(vec![4.into()]),
        ),
        (
            "strides".into(),
            pontoon_family::rmpv::Value::Array(vec![8.into()]),
        ),
        ("offset".into(), 0.into()),
    ]);
    let frames = [Bytes::from_static(&[0; 8])]; // 8 bytes for 4 elements of 8
    let loaded = Loaded::new("pontoon_array::Array", &meta, &frames, &Limits::DEFAULT);
    let error = ArrayFamily
        .loads(&loaded, &pontoon_family::Context::new())
        .map(|_| ())
        .unwrap_err();
    let header = error
        .downcast_ref::<ArrayHeaderError>()
        .unwrap_or_else(|| panic!("expected an array header error, got {error}"));
    assert!(matches!(header, ArrayHeaderError::Layout(_)), "{header:?}");
    assert_eq!(assert_prints_once(header), 2);
}

/// Failed before the fix: `ConvertError::Array` printed the `ArrayError` as its own text and
/// returned it as `source()`; it is transparent now.
#[cfg(feature = "arrow")]
#[test]
fn conversion_errors_are_the_array_error_itself() {
    let huge = pontoon_array::Array::from_parts(
        pontoon_array::DType::F64,
        pontoon_array::ByteOrder::NATIVE,
        vec![1 << 58],
        vec![0],
        0,
        Bytes::from(vec![0u8; 8]),
        &Limits::UNLIMITED,
    )
    .unwrap();
    let error = pontoon_array::arrow::to_arrow(&huge).unwrap_err();
    assert!(matches!(
        error,
        pontoon_array::arrow::ConvertError::Array(pontoon_array::ArrayError::OutOfMemory { .. })
    ));
    assert_eq!(assert_prints_once(&error), 1);
}
