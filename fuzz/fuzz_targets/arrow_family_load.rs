//! Fuzz target: the arrow family's way in, on arbitrary metadata and frames. Anything may be
//! refused with an error; nothing may panic or allocate past the limits. libFuzzer's panic hook
//! aborts on a panic before pontoon's `catch_unwind` backstop sees it, so what still reaches the
//! backstop is found as a crash.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pontoon_array::arrow::{ArrowFamily, LoadError, from_arrow};
use pontoon_family::rmpv;
use pontoon_wire::Limits;

fuzz_target!(|data: &[u8]| {
    // The metadata, then frames: each a length byte and that many bytes.
    let mut input = data;
    let Ok(meta) = rmpv::decode::read_value(&mut input) else {
        return;
    };
    let mut frames = Vec::new();
    while let Some((&len, rest)) = input.split_first() {
        let len = usize::from(len).min(rest.len());
        frames.push(Bytes::copy_from_slice(&rest[..len]));
        input = &rest[len..];
    }
    match ArrowFamily::load_batch(&meta, &frames, &Limits::DEFAULT) {
        Ok(batch) => {
            for column in batch.columns() {
                let _ = from_arrow(column.as_ref(), &Limits::DEFAULT);
            }
        }
        Err(LoadError::Panicked) => panic!("arrow-rs panicked behind the backstop"),
        Err(_) => {}
    }
    match ArrowFamily::load_array(&meta, &frames, &Limits::DEFAULT) {
        Err(LoadError::Panicked) => panic!("arrow-rs panicked behind the backstop"),
        _ => {}
    }
});
