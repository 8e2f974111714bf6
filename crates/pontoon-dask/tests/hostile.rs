//! Hostile input: lengths of 2^63, frame counts past the limit, first lengths off a frame
//! boundary, sub-headers pointing past the frames, placeholders with bad offsets, compression
//! claims that lie, layouts outside their frames: each a typed error, never a panic; and
//! random damage to valid messages, which must never panic either.

use bytes::{Bytes, BytesMut};
use pontoon_array::Array;
use pontoon_dask::framing::{self, decode_frames, parse_prelude};
use pontoon_dask::{
    DecodeError, DecodeOptions, EncodeOptions, FramingError, MsgpackFault, NdArray, Object, Value,
    decode, encode,
};
use pontoon_wire::Limits;

fn words(ws: &[u64]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A MessagePack map of string keys, written by this crate's own encoder.
fn msgpack(value: &Value) -> Bytes {
    let frames = encode(value, &EncodeOptions::default()).unwrap();
    assert_eq!(frames.len(), 1);
    frames[0].data.clone()
}

fn placeholder(kind: &str, offset: Value) -> Bytes {
    msgpack(&Value::map([("x", Value::map([(kind, offset)]))]))
}

/// A valid message holding one numpy array: [frame 0, sub-header, data].
fn array_message() -> Vec<Bytes> {
    let array = Array::from_vec((0..16u32).collect::<Vec<_>>());
    let msg = Value::map([("x", NdArray::from(array).into())]);
    encode(&msg, &EncodeOptions::default())
        .unwrap()
        .into_iter()
        .map(|f| f.data)
        .collect()
}

/// The sub-header of `array_message`, with `field` replaced by `value`.
fn with_field(field: &str, value: Value) -> Vec<Bytes> {
    let mut frames = array_message();
    let mut header = decode_header(&frames[1]);
    let Value::Map(items) = &mut header else {
        panic!()
    };
    match items.iter_mut().find(|(k, _)| k.as_str() == Some(field)) {
        Some((_, v)) => *v = value,
        None => items.push((Value::from(field), value)),
    }
    frames[1] = msgpack(&header);
    frames
}

fn decode_header(frame: &Bytes) -> Value {
    // A sub-header alone is a message with no placeholders.
    decode(std::slice::from_ref(frame), &DecodeOptions::default()).unwrap()
}

fn sub_header_field(frames: &mut [Bytes], path: &[&str], value: Value) {
    let mut header = decode_header(&frames[1]);
    let mut at = &mut header;
    for (i, key) in path.iter().enumerate() {
        let Value::Map(items) = at else { panic!() };
        let pos = items
            .iter()
            .position(|(k, _)| k.as_str() == Some(key))
            .unwrap();
        if i + 1 == path.len() {
            items[pos].1 = value;
            break;
        }
        at = &mut items[pos].1;
    }
    frames[1] = msgpack(&header);
}

#[test]
fn framing_refuses_counts_and_lengths_past_the_limits_before_allocating() {
    let limits = Limits::DEFAULT;
    let err = parse_prelude(&words(&[16, 1 << 63]), &limits).unwrap_err();
    assert!(matches!(err, FramingError::TooManyFrames { count, .. } if count == 1 << 63));
    let err = parse_prelude(&words(&[24, 1, 1 << 63]), &limits).unwrap_err();
    assert!(matches!(err, FramingError::FrameTooLarge { index: 0, .. }));
    let err = parse_prelude(&words(&[24, 1, u64::MAX]), &Limits::UNLIMITED).unwrap_err();
    assert!(
        matches!(err, FramingError::BadFirstLength { .. }),
        "{err:?}"
    );
    let mut small = Limits::DEFAULT;
    small.max_message_bytes = 1000;
    let err = parse_prelude(&words(&[32, 2, 600, 600]), &small).unwrap_err();
    assert!(matches!(err, FramingError::MessageTooLarge { .. }));
    // N (the count, the lengths, then whole frames) must end on a frame boundary.
    for n in [24, 24 + 5, 24 + 5 + 2] {
        assert!(
            parse_prelude(&words(&[n, 2, 5, 2]), &limits)
                .unwrap()
                .is_some(),
            "{n}"
        );
    }
    let err = parse_prelude(&words(&[24 + 3, 2, 5, 2]), &limits).unwrap_err();
    assert!(matches!(
        err,
        FramingError::BadFirstLength { declared: 27, .. }
    ));
    // u64::MAX frames under unlimited limits: refused, not overflowed.
    let err = parse_prelude(&words(&[16, u64::MAX]), &Limits::UNLIMITED).unwrap_err();
    assert!(matches!(err, FramingError::TooManyFrames { .. }));
    // A partial prelude needs more bytes; a truncated file is an error.
    let mut buf = BytesMut::from(&words(&[16, 1, 10])[..]);
    assert_eq!(decode_frames(&mut buf, &limits).unwrap(), None);
    assert_eq!(
        buf.len(),
        24,
        "nothing is taken while the message is incomplete"
    );
    let err = framing::decode_stream(Bytes::from(words(&[16, 1, 10])), &limits).unwrap_err();
    assert!(matches!(
        err,
        FramingError::Truncated {
            needed: 34,
            have: 24
        }
    ));
}

#[test]
fn placeholders_with_bad_offsets_are_refused() {
    let frames = |f0: Bytes| vec![f0, Bytes::from_static(b"\x80")];
    for (kind, offset) in [
        ("__Serialized__", Value::Int(0)),
        ("__Serialized__", Value::Int(2)),
        ("__Serialized__", Value::Int(-1)),
        ("__Serialized__", Value::Int(i64::MAX)),
        ("__Serialized__", Value::from("1")),
        ("__Pickled__", Value::Int(7)),
        ("__Pickled__", Value::Nil),
    ] {
        let err = decode(
            &frames(placeholder(kind, offset.clone())),
            &DecodeOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, DecodeError::BadPlaceholder { .. }),
            "{kind} {offset:?}: {err:?}"
        );
    }
    // Two placeholders sharing one object's frames.
    let mut f = array_message();
    f[0] = msgpack(&Value::map([
        ("a", Value::map([("__Serialized__", Value::Int(1))])),
        ("b", Value::map([("__Serialized__", Value::Int(1))])),
    ]));
    let err = decode(&f, &DecodeOptions::default()).unwrap_err();
    assert!(matches!(err, DecodeError::BadPlaceholder { .. }), "{err:?}");
}

#[test]
fn sub_headers_pointing_past_the_frames_are_refused() {
    let err = decode(
        &with_field("num-sub-frames", Value::Int(5)),
        &DecodeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, DecodeError::SubFramesOutOfRange { claimed: 5, .. }),
        "{err:?}"
    );
    let err = decode(
        &with_field("num-sub-frames", Value::Int(-1)),
        &DecodeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, DecodeError::SubFramesOutOfRange { .. }),
        "{err:?}"
    );
    let err = decode(
        &with_field("split-offsets", Value::List(vec![Value::Int(3)])),
        &DecodeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, DecodeError::SubFramesOutOfRange { .. }),
        "{err:?}"
    );
    let err = decode(
        &with_field(
            "split-num-sub-frames",
            Value::List(vec![Value::Int(i64::MAX)]),
        ),
        &DecodeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, DecodeError::SubFramesOutOfRange { .. }),
        "{err:?}"
    );
    let err = decode(
        &with_field("compression", Value::List(vec![])),
        &DecodeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::BadField {
                field: "compression",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn compression_claims_that_lie_are_refused() {
    let data = vec![7u8; 64];
    let check = |name: &str, payload: Vec<u8>, what: &dyn Fn(&DecodeError) -> bool| {
        let mut f = with_field("compression", Value::List(vec![Value::from(name)]));
        f[2] = Bytes::from(payload);
        let err = decode(&f, &DecodeOptions::default()).unwrap_err();
        assert!(what(&err), "{name}: {err:?}");
    };
    // A claimed size of 2^32 - 1 from a few bytes: past the expansion bound, refused unallocated.
    let mut huge = u32::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(&lz4_flex::block::compress(&data));
    check("lz4", huge, &|e| {
        matches!(e, DecodeError::ExpansionTooLarge { .. })
    });
    // A size that is not what the block decompresses to.
    let mut short = 10u32.to_le_bytes().to_vec();
    short.extend_from_slice(&lz4_flex::block::compress(&data));
    check("lz4", short, &|e| {
        matches!(e, DecodeError::Decompress { .. })
    });
    let mut long = 100u32.to_le_bytes().to_vec();
    long.extend_from_slice(&lz4_flex::block::compress(&data));
    check("lz4", long, &|e| {
        matches!(e, DecodeError::Decompress { .. })
    });
    check("lz4", vec![1, 2], &|e| {
        matches!(e, DecodeError::Decompress { .. })
    });
    check("zstd", b"not zstd at all".to_vec(), &|e| {
        matches!(e, DecodeError::Decompress { .. })
    });
    check("zlib", vec![0; 8], &|e| {
        matches!(e, DecodeError::UnsupportedCompression { .. })
    });
    check("snappy", vec![0; 8], &|e| {
        matches!(e, DecodeError::UnsupportedCompression { .. })
    });
}

#[test]
fn array_layouts_outside_their_frames_are_refused() {
    let mut f = array_message();
    sub_header_field(
        &mut f,
        &["sub-header", "shape"],
        Value::List(vec![Value::Int(17)]),
    );
    assert!(matches!(
        decode(&f, &DecodeOptions::default()),
        Err(DecodeError::Array { .. })
    ));
    let mut f = array_message();
    sub_header_field(
        &mut f,
        &["sub-header", "strides"],
        Value::List(vec![Value::Int(-4)]),
    );
    assert!(matches!(
        decode(&f, &DecodeOptions::default()),
        Err(DecodeError::Array { .. })
    ));
    // A broadcast of 16 elements to 2^40: far past the expansion bound.
    let mut f = array_message();
    sub_header_field(
        &mut f,
        &["sub-header", "strides"],
        Value::List(vec![Value::Int(0)]),
    );
    sub_header_field(
        &mut f,
        &["sub-header"],
        Value::map([
            (
                "dtype",
                Value::List(vec![Value::Int(0), Value::from("<u4")]),
            ),
            ("shape", Value::List(vec![Value::Int(1)])),
            ("strides", Value::List(vec![Value::Int(0)])),
            ("writeable", Value::List(vec![Value::Bool(false)])),
            ("broadcast_to", Value::List(vec![Value::Int(1 << 40)])),
        ]),
    );
    assert!(matches!(
        decode(&f, &DecodeOptions::default()),
        Err(DecodeError::Array { .. })
    ));
    let mut f = array_message();
    sub_header_field(
        &mut f,
        &["sub-header", "dtype"],
        Value::List(vec![Value::Int(0), Value::from("|U100")]),
    );
    assert!(matches!(
        decode(&f, &DecodeOptions::default()),
        Err(DecodeError::RawOutOfBounds { .. })
    ));
    let mut f = array_message();
    sub_header_field(
        &mut f,
        &["sub-header", "dtype"],
        Value::List(vec![Value::Int(0), Value::from("|O8")]),
    );
    assert!(matches!(
        decode(&f, &DecodeOptions::default()),
        Err(DecodeError::UnsupportedDType(_))
    ));
    let mut f = array_message();
    sub_header_field(&mut f, &["sub-header", "writeable"], Value::Nil);
    assert!(matches!(
        decode(&f, &DecodeOptions::default()),
        Err(DecodeError::BadField {
            field: "writeable",
            ..
        })
    ));
}

#[test]
fn families_and_their_fields_are_checked() {
    let err = decode(
        &with_field("serializer", Value::from("cuda")),
        &DecodeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, DecodeError::UnknownSerializer(ref s) if s == "cuda"),
        "{err:?}"
    );
    let mut refusing = DecodeOptions::default();
    refusing.deserializers = Some(vec!["msgpack".into()]);
    assert!(matches!(
        decode(&array_message(), &refusing),
        Err(DecodeError::Refused { .. })
    ));
    // A pickle-family header must carry one writeable flag per buffer.
    let msg = Value::map([(
        "x",
        Object::Pickle(pontoon_dask::PickleData::new(
            pontoon_pickle::Graph::single(pontoon_pickle::Node::Int(1)),
        ))
        .into(),
    )]);
    let mut f: Vec<Bytes> = encode(&msg, &EncodeOptions::default())
        .unwrap()
        .into_iter()
        .map(|f| f.data)
        .collect();
    assert_eq!(
        decode(&f, &DecodeOptions::default()).unwrap(),
        decode(&f, &DecodeOptions::default()).unwrap()
    );
    sub_header_field(&mut f, &["writeable"], Value::List(vec![Value::Bool(true)]));
    let err = decode(&f, &DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::BadField {
                field: "writeable",
                ..
            }
        ),
        "{err:?}"
    );
    // Deep MessagePack and a header over the limit.
    let deep = Bytes::from(vec![0x91u8; 10_000]);
    let err = decode(&[deep], &DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Msgpack {
                fault: MsgpackFault::TooDeep,
                ..
            }
        ),
        "{err:?}"
    );
    let mut small = DecodeOptions::default();
    small.limits.max_header_bytes = 4;
    let err = decode(&array_message(), &small).unwrap_err();
    assert!(
        matches!(err, DecodeError::HeaderTooLarge { frame: 0, .. }),
        "{err:?}"
    );
}

/// A small deterministic generator (xorshift), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_damage_to_valid_messages_never_panics() {
    let array = Array::from_shape_vec(&[3, 4], (0..12i64).collect::<Vec<_>>()).unwrap();
    let messages = [
        Value::map([
            ("x", NdArray::from(array.clone()).into()),
            ("s", Value::Set(vec![Value::Int(1)])),
        ]),
        Value::map([(
            "c",
            Object::Collection(pontoon_dask::Collection {
                kind: pontoon_dask::CollectionKind::Dict,
                keys: vec![Value::from("k")],
                items: vec![Object::Array(NdArray::from(array.transposed()))],
            })
            .into(),
        )]),
        Value::map([("b", Object::Bytes(Bytes::from(vec![3u8; 40_000])).into())]),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut options = EncodeOptions::default();
    options.shard_bytes = 10_000;
    options.compression = Some(pontoon_dask::DaskCodec::Lz4);
    let mut decoded = 0;
    for msg in &messages {
        let stream = framing::stream_bytes(&encode(msg, &options).unwrap());
        for _ in 0..3000 {
            let mut damaged = stream.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() % damaged.len() as u64) as usize;
                damaged[at] = rng.next() as u8;
            }
            if rng.next().is_multiple_of(8) {
                damaged.truncate((rng.next() % damaged.len() as u64) as usize);
            }
            let data = Bytes::from(damaged);
            if let Ok((frames, _)) = framing::decode_stream(data.clone(), &Limits::DEFAULT)
                && pontoon_dask::decode_in(&frames, Some(&data), &DecodeOptions::default()).is_ok()
            {
                decoded += 1;
            }
        }
    }
    assert!(decoded > 0, "some damage (inside array data) still decodes");
}

#[test]
fn elements_of_zero_bytes_keep_their_layout_and_dtypes_numpy_has_not_are_refused() {
    let sub_header = |descr: &str| {
        Value::map([
            (
                "dtype",
                Value::List(vec![Value::Int(0), Value::from(descr)]),
            ),
            (
                "shape",
                Value::List(vec![2, 3, 4].into_iter().map(Value::Int).collect()),
            ),
            (
                "strides",
                Value::List(vec![12, 4, 1].into_iter().map(Value::Int).collect()),
            ),
            ("writeable", Value::List(vec![Value::Bool(true)])),
        ])
    };
    // numpy has strings and voids of zero bytes, laid out however the sender had them: sent on
    // as they are, they come back as they were (they used to come back with strides of zero,
    // which read as a broadcast; found by the dask_message fuzz target).
    for descr in ["|S0", "|V0", "<U0"] {
        let frames = with_field("sub-header", sub_header(descr));
        let value = decode(&frames, &DecodeOptions::default()).unwrap();
        let sent: Vec<Bytes> = encode(&value, &EncodeOptions::default())
            .unwrap()
            .into_iter()
            .map(|f| f.data)
            .collect();
        let back = decode(&sent, &DecodeOptions::default()).unwrap();
        assert_eq!(back, value, "{descr}");
    }
    // Elements of zero bytes are counted as a byte each against the expansion limit: a shape of
    // 2^40 of them, broadcast from nothing, would otherwise be 2^40 steps to walk for free.
    let mut frames = with_field("sub-header", sub_header("|S0"));
    sub_header_field(
        &mut frames,
        &["sub-header", "strides"],
        Value::List(vec![Value::Int(0)]),
    );
    sub_header_field(
        &mut frames,
        &["sub-header", "shape"],
        Value::List(vec![Value::Int(1 << 40)]),
    );
    match decode(&frames, &DecodeOptions::default()) {
        Err(DecodeError::ExpansionTooLarge { bytes, .. }) => assert_eq!(bytes, 1 << 40),
        other => panic!("{other:?}"),
    }
    // No numpy array has numbers of zero bytes or of sizes numpy does not make.
    for descr in [
        "|b0", "<f0", "<i0", "<c0", "<i7", "<u3", "<f5", "<c12", "|b2",
    ] {
        let frames = with_field("sub-header", sub_header(descr));
        match decode(&frames, &DecodeOptions::default()) {
            Err(DecodeError::UnsupportedDType(d)) => assert_eq!(d, descr),
            other => panic!("{descr}: {other:?}"),
        }
    }
}
