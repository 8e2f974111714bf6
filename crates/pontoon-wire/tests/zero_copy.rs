//! Payload frames are never copied: not on encode, not on decode, and they land aligned.

use bytes::{Bytes, BytesMut};
use pontoon_wire::{
    Codec, Decoder, EncodeOptions, Encoder, Header, Limits, Message, decode_message, preamble,
};

mod common;

fn within(buffer_start: usize, buffer_len: usize, frame: &Bytes) -> bool {
    let p = frame.as_ptr() as usize;
    p >= buffer_start && p + frame.len() <= buffer_start + buffer_len
}

#[test]
fn encoding_passes_payload_frames_through() {
    let payload = Bytes::from(vec![5u8; 3 << 20]);
    let message = Message::new(
        Header::empty(),
        vec![payload.clone(), payload.slice(10..20)],
    );
    // Sharding and checksums do not copy either.
    let options = {
        let mut options = EncodeOptions::default();
        options.checksums = true;
        options.shard_bytes = std::num::NonZeroUsize::new(1 << 20);
        options
    };
    let encoded = Encoder::new(options).encode(&message).unwrap();
    let from_payload: usize = encoded
        .chunks()
        .iter()
        .filter(|c| within(payload.as_ptr() as usize, payload.len(), c))
        .map(|c| c.len())
        .sum();
    assert_eq!(from_payload, payload.len() + 10);
    assert!(encoded.chunks().iter().all(|c| c.len() <= 1 << 20));
}

#[test]
fn decoded_frames_are_views_of_the_receive_buffer() {
    let message = Message::new(
        Header::from_serde(&"x").unwrap(),
        vec![Bytes::from(vec![1u8; 1 << 20]), Bytes::from(vec![2u8; 100])],
    );
    let mut received = BytesMut::new();
    received.extend_from_slice(&preamble());
    received.extend_from_slice(&Encoder::default().encode(&message).unwrap().to_bytes());
    let (start, len) = (received.as_ptr() as usize, received.len());
    let decoded = Decoder::new().decode(&mut received).unwrap().unwrap();
    assert_eq!(decoded, message);
    for frame in &decoded.frames {
        assert!(within(start, len, frame), "frame was copied");
    }
    assert!(
        within(start, len, decoded.header.as_bytes()),
        "header was copied"
    );
}

#[test]
fn frames_start_at_aligned_offsets_from_the_message_start() {
    let frames: Vec<Bytes> = [1usize, 63, 64, 65, 1000, 0, 7]
        .iter()
        .map(|&n| Bytes::from(vec![9u8; n]))
        .collect();
    for align in [1usize, 8, 64, 4096] {
        let message = Message::new(Header::from_serde(&"align").unwrap(), frames.clone());
        let bytes = Encoder::new({
            let mut options = EncodeOptions::default();
            options.alignment = align;
            options
        })
        .encode(&message)
        .unwrap()
        .to_bytes();
        let decoded = decode_message(bytes.clone(), &Limits::default()).unwrap();
        assert_eq!(decoded, message);
        for frame in decoded.frames.iter().filter(|f| !f.is_empty()) {
            let offset = frame.as_ptr() as usize - bytes.as_ptr() as usize;
            assert_eq!(
                offset % align,
                0,
                "frame at offset {offset} with alignment {align}"
            );
        }
    }
}

#[test]
fn compressed_frames_are_decompressed_and_uncompressed_ones_are_not_copied() {
    let compressible = Bytes::from(vec![0u8; 1 << 20]);
    let noise = common::noise(0x2545_F491_4F6C_DD1D, 1 << 16);
    let message = Message::new(Header::empty(), vec![compressible, noise]);
    // A megabyte of zeros is thousands to one in zstd: over the default expansion ratio, so
    // both sides know this receiver allows any ratio.
    let mut limits = Limits::default();
    limits.max_expansion_ratio = u64::MAX;
    for codec in [Codec::Lz4, Codec::Zstd]
        .into_iter()
        .filter(|c| c.is_built())
    {
        let options = {
            let mut options = EncodeOptions::default();
            options.codec = codec;
            options.receiver_limits = limits;
            options
        };
        let encoded = Encoder::new(options).encode(&message).unwrap();
        assert_eq!(encoded.frames()[0].codec, codec);
        assert_eq!(
            encoded.frames()[1].codec,
            Codec::None,
            "noise must stay raw"
        );
        let bytes = encoded.to_bytes();
        assert!(bytes.len() < (1 << 16) + 10_000);
        let decoded = decode_message(bytes.clone(), &limits).unwrap();
        assert_eq!(decoded, message);
        assert!(within(
            bytes.as_ptr() as usize,
            bytes.len(),
            &decoded.frames[1]
        ));
    }
}
