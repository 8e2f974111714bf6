//! Fuzz target: the array family's header decoder and `Array`'s serde form, on arbitrary
//! headers and frames. Anything may be refused; whatever is accepted must be viewable, within
//! the receiver's expansion limits, and every copy of it must succeed or fail with an error.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pontoon_array::{Array, ArrayFamily};
use pontoon_family::{Context, Family, Loaded, binary, rmpv};
use pontoon_wire::Limits;

fn exercise(array: &Array, frame_bytes: usize) {
    // What is accepted makes at most what the limits allow from the bytes it came in.
    let logical = (array.len() * array.dtype().size()) as u64;
    let limit = Limits::DEFAULT.max_expansion(frame_bytes as u64);
    assert!(
        logical <= (frame_bytes as u64).max(limit),
        "{logical} bytes of elements from a {frame_bytes}-byte frame"
    );
    let _ = array.view::<u8>();
    let _ = array.view::<f64>();
    let _ = array.as_slice::<u8>();
    let native = array
        .to_native()
        .expect("a copy within the limits fits in memory");
    let _ = native.view::<u8>();
    let _ = native.view::<f64>();
    let contiguous = array
        .to_contiguous()
        .expect("a copy within the limits fits in memory");
    assert!(contiguous == *array, "a copy equals its original");
    let _ = array.to_ndarray::<u8>();
    let _ = array.to_ndarray::<i64>();
    let _ = pontoon_array::npy::write(array);
    let mut copy = array.clone();
    let _ = copy.make_mut::<u8, _>(|_| ());
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (head, frame) = rest.split_at(split);
    let frame = Bytes::copy_from_slice(frame);

    if let Ok(meta) = rmpv::decode::read_value(&mut &head[..]) {
        let loaded = Loaded::new("fuzz", &meta, std::slice::from_ref(&frame), &Limits::DEFAULT);
        if let Ok(value) = ArrayFamily.loads(&loaded, &Context::new()) {
            exercise(
                value
                    .downcast_ref::<Array>()
                    .expect("the array family makes arrays"),
                frame.len(),
            );
        }
    }
    if let Ok(array) = binary::from_slice::<Array>(head, std::slice::from_ref(&frame), 64) {
        exercise(&array, frame.len());
    }
});
