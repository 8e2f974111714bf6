//! Fuzz target: pontoon-dask's reading of one message as Dask's TCP comm writes it (the
//! framing, then frame 0's MessagePack, placeholders, sub-headers, compression, split frames,
//! numpy and pickle families), on arbitrary bytes. Anything may be refused; whatever decodes
//! prints as JSON within a bound, encodes, and decodes back to the same JSON, but for the
//! strides of arrays (the encoder sends a non-contiguous array contiguous, as Dask does); what
//! pontoon wrote then goes round exactly, strides and all.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pontoon_dask::{DecodeOptions, EncodeOptions, decode_in, encode, framing, to_json};
use pontoon_wire::Limits;

#[path = "../../crates/pontoon-dask/tests/layout/mod.rs"]
mod layout;
use layout::without_strides;

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);
    let Ok((frames, _rest)) = framing::decode_stream(input.clone(), &Limits::DEFAULT) else {
        return;
    };
    let options = DecodeOptions::default();
    let Ok(value) = decode_in(&frames, Some(&input), &options) else {
        return;
    };
    let Ok(json) = to_json(&value, 1 << 20) else {
        return;
    };
    let encoded = encode(&value, &EncodeOptions::default()).expect("a decoded message encodes");
    let stream = Bytes::from(framing::stream_bytes(&encoded));
    let (frames, rest) = framing::decode_stream(stream.clone(), &Limits::UNLIMITED)
        .expect("what pontoon writes is framed");
    assert!(rest.is_empty());
    let mut again = DecodeOptions::default();
    again.limits = Limits::UNLIMITED;
    let back =
        decode_in(&frames, Some(&stream), &again).expect("what pontoon writes, pontoon reads");
    let back_json = to_json(&back, 1 << 22).expect("the same value prints the same");
    assert_eq!(
        without_strides(&json),
        without_strides(&back_json),
        "the round trip keeps the value"
    );
    let encoded = encode(&back, &EncodeOptions::default()).expect("a decoded message encodes");
    let stream = Bytes::from(framing::stream_bytes(&encoded));
    let (frames, _) = framing::decode_stream(stream.clone(), &Limits::UNLIMITED)
        .expect("what pontoon writes is framed");
    let twice =
        decode_in(&frames, Some(&stream), &again).expect("what pontoon writes, pontoon reads");
    assert_eq!(
        back_json,
        to_json(&twice, 1 << 22).expect("the same value prints the same"),
        "what pontoon wrote goes round exactly"
    );
});
