//! Property tests: random messages round-trip exactly, however the stream is cut into reads.

use std::num::NonZeroUsize;

use bytes::{Bytes, BytesMut};
use pontoon_wire::{
    Codec, Decoder, EncodeOptions, Encoder, Header, Limits, Message, decode_message, preamble,
};
use proptest::prelude::*;

mod common;
use rmpv::Value;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(Value::F64),
        ".{0,40}".prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Binary),
        (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(t, d)| Value::Ext(t, d)),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((inner.clone(), inner), 0..8).prop_map(Value::Map),
        ]
    })
}

/// Frames of every kind: empty, small, and large ones that compress (runs) or do not (noise).
fn frame() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Bytes::from),
        (any::<u8>(), 10_000usize..80_000).prop_map(|(b, n)| Bytes::from(
            (0..n)
                .map(|i| b.wrapping_add((i / 100) as u8))
                .collect::<Vec<_>>()
        )),
        (any::<u64>(), 10_000usize..40_000).prop_map(|(seed, n)| common::noise(seed, n)),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (value(), proptest::collection::vec(frame(), 0..5))
        .prop_map(|(v, frames)| Message::new(Header::from_value(&v), frames))
}

fn options() -> impl Strategy<Value = EncodeOptions> {
    (
        prop_oneof![Just(Codec::None), Just(Codec::Lz4), Just(Codec::Zstd)],
        any::<bool>(),
        prop_oneof![Just(1usize), Just(8), Just(64), Just(4096)],
        prop_oneof![Just(None), (1usize..50_000).prop_map(NonZeroUsize::new)],
    )
        .prop_map(|(codec, checksums, align, shard)| {
            let mut options = EncodeOptions::default();
            options.codec = codec;
            options.checksums = checksums;
            options.alignment = align;
            options.shard_bytes = shard;
            options
        })
}

fn stream(messages: &[Message], options: EncodeOptions) -> Vec<u8> {
    let encoder = Encoder::new(options);
    let mut out = preamble().to_vec();
    for message in messages {
        let encoded = encoder.encode(message).unwrap();
        assert_eq!(encoded.len(), encoded.to_bytes().len() as u64);
        out.extend_from_slice(&encoded.to_bytes());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn messages_round_trip_exactly(message in message(), options in options()) {
        let encoded = Encoder::new(options).encode(&message).unwrap();
        let decoded = decode_message(encoded.to_bytes(), &Limits::default()).unwrap();
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn any_split_of_the_stream_decodes_the_same(
        messages in proptest::collection::vec(message(), 1..4),
        options in options(),
        cuts in proptest::collection::vec(1usize..20_000, 0..40),
    ) {
        let bytes = stream(&messages, options);
        let mut decoder = Decoder::new();
        let mut received = BytesMut::new();
        let mut decoded = Vec::new();
        let mut pos = 0usize;
        for cut in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
            let end = bytes.len().min(pos.saturating_add(cut));
            received.extend_from_slice(&bytes[pos..end]);
            pos = end;
            while let Some(message) = decoder.decode(&mut received).unwrap() {
                decoded.push(message);
            }
        }
        prop_assert_eq!(decoder.decode_eof(&mut received).unwrap(), None);
        prop_assert_eq!(decoded, messages);
    }
}
