//! Fuzz target: decompression. Arbitrary wire bytes framed as one compressed frame of a declared
//! raw length: the decoder refuses what breaks the expansion limits before allocating, and a
//! frame that decodes has exactly its declared length.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use pontoon_wire::{Limits, decode_message};

fuzz_target!(|data: &[u8]| {
    let Some((&[codec, a, b, c], wire)) = data.split_first_chunk::<4>().map(|(h, w)| (h, w)) else {
        return;
    };
    let codec = 1 + codec % 2; // lz4 or zstd
    // Up to 16 MiB declared.
    let raw_len = u64::from(u32::from_le_bytes([a, b, c, 0]));
    let mut limits = Limits::default();
    limits.max_expanded_bytes = 1 << 24;
    let mut message = BytesMut::new();
    message.put_slice(b"\xF0M");
    message.put_u8(0); // flags
    message.put_u8(0); // packed
    message.put_u32_le(0);
    message.put_u64_le(1);
    message.put_u64_le(1);
    message.put_u64_le(wire.len() as u64);
    message.put_u64_le(raw_len);
    message.put_u8(codec);
    message.put_bytes(0, 7);
    message.put_u8(0x80);
    message.put_slice(wire);
    if let Ok(decoded) = decode_message(message.freeze(), &limits) {
        assert_eq!(decoded.frames[0].len() as u64, raw_len);
        assert!(raw_len <= limits.max_expansion(wire.len() as u64));
    }
});
