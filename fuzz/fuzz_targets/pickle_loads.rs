//! Fuzz target: pontoon-pickle's decoder on arbitrary bytes, with two out-of-band buffers (the
//! input's first 16 bytes, and nothing) and opaque globals allowed so that every opcode path
//! runs. Anything may be refused; whatever decodes prints as JSON within a bound, encodes, and
//! decodes back to the same JSON.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pontoon_pickle::{DumpOptions, LoadOptions, Opaque, dumps, loads, to_json};

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);
    let buffers = [input.slice(..input.len().min(16)), Bytes::new()];
    let mut options = LoadOptions::default();
    options.opaque = Opaque::All;
    let Ok(graph) = loads(&input, &buffers, &options) else { return };
    let Ok(json) = to_json(&graph, 1 << 20) else { return };
    let pickled = dumps(&graph, &DumpOptions::default()).expect("a decoded graph encodes");
    // Re-encoding can nest marks where the input appended one item at a time.
    let mut again = options.clone();
    again.max_depth = usize::MAX;
    let back = loads(&pickled.data, &pickled.buffers, &again).expect("what pontoon writes, pontoon reads");
    let json_back = to_json(&back, 1 << 22).expect("the same value prints the same");
    assert_eq!(json, json_back, "the round trip keeps the value");
});
