//! Fuzz target: `.npy` reading on arbitrary bytes. Anything may be refused; whatever is
//! accepted views the file's bytes (or an aligned copy of no more of them), reads element by
//! element, and writes back as a file that reads as the same array.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pontoon_array::npy;

fuzz_target!(|data: &[u8]| {
    let file = Bytes::copy_from_slice(data);
    let Ok(array) = npy::read(file) else { return };
    assert!(
        array.len() * array.dtype().size() <= data.len(),
        "the data is in the file"
    );
    let _ = array.view::<u8>();
    let _ = array.view::<f64>();
    let native = array
        .to_native()
        .expect("a copy of bytes the file holds fits in memory");
    assert!(native == array, "the native copy equals the array");
    let chunks = npy::write(&array).expect("the array is contiguous: no copy to fail");
    let back = npy::read(Bytes::from(chunks.concat())).expect("what pontoon writes, pontoon reads");
    assert!(back == array, "the file written reads as the same array");
});
