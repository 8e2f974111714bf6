//! Fuzz target: the array family's header decoder and `Array`'s serde form, on arbitrary
//! headers and frames. Anything may be refused; whatever is accepted must be viewable.
#![no_main]

use bytes::Bytes;
use ferry_array::{Array, ArrayFamily};
use ferry_family::{Context, Family, Loaded, binary, rmpv};
use libfuzzer_sys::fuzz_target;

fn exercise(array: &Array) {
    // Every accepted array can be read element by element, compacted and converted.
    let native = array.to_native();
    let _ = native.view::<u8>();
    let _ = native.view::<f64>();
    let _ = array.to_contiguous();
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let split = usize::from(split).min(rest.len());
    let (head, frame) = rest.split_at(split);
    let frame = Bytes::copy_from_slice(frame);

    if let Ok(meta) = rmpv::decode::read_value(&mut &head[..]) {
        let loaded = Loaded { type_name: "fuzz", meta: &meta, frames: std::slice::from_ref(&frame), limits: &ferry_wire::Limits::DEFAULT };
        if let Ok(value) = ArrayFamily.loads(&loaded, &Context::new()) {
            exercise(value.downcast_ref::<Array>().expect("the array family makes arrays"));
        }
    }
    if let Ok(array) = binary::from_slice::<Array>(head, std::slice::from_ref(&frame), 64) {
        exercise(&array);
    }
});
