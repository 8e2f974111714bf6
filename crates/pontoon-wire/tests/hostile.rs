//! Truncated, oversized, inconsistent and garbage input: each gets "need more bytes" or the right
//! typed error with its offset, never a panic and never a wrong message.

use bytes::{BufMut, Bytes, BytesMut};
use pontoon_wire::{
    Codec, DecodeError, Decoder, EncodeOptions, Encoder, Header, HeaderFault, Limits, Message,
    decode_message, preamble,
};

const P: u64 = pontoon_wire::PREAMBLE_LEN as u64;

fn sample_messages() -> Vec<Message> {
    let compressible = Bytes::from((0..12_000u32).map(|i| (i / 50) as u8).collect::<Vec<_>>());
    vec![
        Message::new(
            Header::from_serde(&("op", "compute", 42u32)).unwrap(),
            vec![],
        ),
        Message::new(
            Header::from_serde(&["a", "b"]).unwrap(),
            vec![
                Bytes::from_static(b"small frame"),
                compressible,
                Bytes::new(),
            ],
        ),
    ]
}

fn sample_stream() -> Vec<u8> {
    let encoder = Encoder::new({
        let mut options = EncodeOptions::default();
        options.codec = Codec::Lz4;
        options.checksums = true;
        options
    });
    let mut out = preamble().to_vec();
    for message in sample_messages() {
        out.extend_from_slice(&encoder.encode(&message).unwrap().to_bytes());
    }
    out
}

fn decode_all(bytes: &[u8], limits: Limits) -> Result<Vec<Message>, DecodeError> {
    let mut decoder = Decoder::with_limits(limits);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(message) = decoder.decode(&mut buf)? {
        out.push(message);
    }
    Ok(out)
}

#[test]
fn every_truncation_point_asks_for_more_and_never_gives_a_wrong_message() {
    let stream = sample_stream();
    let expected = sample_messages();
    let first_end = P as usize
        + Encoder::new({
            let mut options = EncodeOptions::default();
            options.codec = Codec::Lz4;
            options.checksums = true;
            options
        })
        .encode(&expected[0])
        .unwrap()
        .len() as usize;
    for cut in 0..stream.len() {
        let decoded = decode_all(&stream[..cut], Limits::default())
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let whole = if cut >= first_end { 1 } else { 0 };
        assert_eq!(decoded, expected[..whole], "cut at {cut}");
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(&stream[..cut]);
        while decoder.decode(&mut buf).unwrap().is_some() {}
        if !buf.is_empty() {
            assert!(matches!(
                decoder.decode_eof(&mut buf),
                Err(DecodeError::Truncated { .. })
            ));
        }
    }
    assert_eq!(decode_all(&stream, Limits::default()).unwrap(), expected);
}

/// A stream: preamble, then a message prefix with these fields, then `rest`.
fn crafted(flags: u8, align_log2: u8, count: u64, header_len: u64, rest: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put(preamble());
    out.put_slice(b"\xF0M");
    out.put_u8(flags);
    out.put_u8(align_log2);
    out.put_u32_le(0);
    out.put_u64_le(count);
    out.put_u64_le(header_len);
    out.put_slice(rest);
    out.to_vec()
}

fn entry(wire_len: u64, raw_len: u64, codec: u8) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u64_le(wire_len);
    out.put_u64_le(raw_len);
    out.put_u8(codec);
    out.put_bytes(0, 7);
    out.to_vec()
}

fn err(bytes: &[u8]) -> DecodeError {
    decode_all(bytes, Limits::default()).expect_err("hostile input must be refused")
}

#[test]
fn a_frame_length_of_two_to_the_63_is_refused_before_allocating() {
    let mut rest = entry(1 << 63, 1 << 63, 0);
    rest.push(0x80);
    let e = err(&crafted(0, 6, 1, 1, &rest));
    assert_eq!(
        e,
        DecodeError::FrameTooLarge {
            offset: P + 24,
            frame: 0,
            len: 1 << 63,
            limit: Limits::DEFAULT.max_frame_bytes
        }
    );
    assert!(e.to_string().contains("byte offset 32"), "{e}");
    // Without limits the length is legal and the message is merely incomplete.
    let mut decoder = Decoder::with_limits(Limits::UNLIMITED);
    let mut buf = BytesMut::from(&crafted(0, 6, 1, 1, &rest)[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(
        buf.capacity() < 1 << 30,
        "reserved {} bytes for a hostile length",
        buf.capacity()
    );
}

#[test]
fn a_frame_count_of_two_to_the_40_is_refused() {
    assert_eq!(
        err(&crafted(0, 6, 1 << 40, 1, &[])),
        DecodeError::TooManyFrames {
            offset: P + 8,
            count: 1 << 40,
            limit: Limits::DEFAULT.max_frames
        }
    );
    // Even with no limits, a count whose table would overflow 64 bits is refused.
    assert_eq!(
        decode_all(&crafted(0, 6, 1 << 62, 1, &[]), Limits::UNLIMITED),
        Err(DecodeError::LengthOverflow { offset: P + 8 })
    );
}

#[test]
fn lengths_that_overflow_when_summed_are_refused() {
    let mut rest = entry(u64::MAX - 100, u64::MAX - 100, 0);
    rest.extend(entry(100, 100, 0));
    rest.push(0x80);
    let bytes = crafted(0, 0, 2, 1, &rest);
    assert_eq!(
        decode_all(&bytes, Limits::UNLIMITED),
        Err(DecodeError::LengthOverflow { offset: P + 48 })
    );
    // Each frame within its limit, the sum over the message limit.
    let mut limits = Limits::default();
    limits.max_frame_bytes = 1 << 40;
    limits.max_message_bytes = (1 << 41) + 200;
    let mut rest = entry(1 << 40, 1 << 40, 0);
    rest.extend(entry(1 << 40, 1 << 40, 0));
    rest.extend(entry(1000, 1000, 0));
    rest.push(0x80);
    assert!(matches!(
        decode_all(&crafted(0, 0, 3, 1, &rest), limits),
        Err(DecodeError::MessageTooLarge { offset, .. }) if offset == P + 72
    ));
    // Decompressed sizes count too: a tiny frame claiming a huge decoded size.
    let mut rest = entry(4, 1 << 40, 1);
    rest.push(0x80);
    if Codec::Lz4.is_built() {
        assert!(
            matches!(err(&crafted(0, 0, 1, 1, &rest)), DecodeError::FrameTooLarge { offset, .. } if offset == P + 32)
        );
    } else {
        assert!(matches!(
            err(&crafted(0, 0, 1, 1, &rest)),
            DecodeError::CodecNotBuilt { .. }
        ));
    }
}

#[test]
fn a_bad_magic_or_version_is_refused_at_once() {
    let e = err(b"GET / HTTP/1.1\r\n");
    assert_eq!(
        e,
        DecodeError::BadMagic {
            offset: 0,
            found: b"GET / ".to_vec()
        }
    );
    // Two bytes are enough to know.
    assert!(matches!(err(b"\xF0X"), DecodeError::BadMagic { .. }));
    let mut bytes = preamble().to_vec();
    bytes[6] = 2;
    assert_eq!(
        err(&bytes),
        DecodeError::UnsupportedVersion {
            offset: 6,
            version: 2,
            supported: 1
        }
    );
}

#[test]
fn a_bad_checksum_is_refused() {
    let stream = sample_stream();
    let clean = decode_all(&stream, Limits::default()).unwrap();
    assert_eq!(clean.len(), 2);
    // Flip one bit in each byte of the stream after the preamble: no flip may yield a message that
    // differs from the original.
    let mut refused_by_checksum = 0;
    for at in P as usize..stream.len() {
        let mut bad = stream.clone();
        bad[at] ^= 0x10;
        match decode_all(&bad, Limits::default()) {
            Ok(messages) => assert_eq!(messages, clean[..messages.len()], "flip at {at}"),
            Err(DecodeError::ChecksumMismatch { .. }) => refused_by_checksum += 1,
            Err(_) => {}
        }
    }
    assert!(
        refused_by_checksum > stream.len() / 2,
        "{refused_by_checksum}"
    );

    let message = Message::new(Header::empty(), vec![Bytes::from_static(b"payload")]);
    let mut bytes = Encoder::new({
        let mut options = EncodeOptions::default();
        options.checksums = true;
        options
    })
    .encode(&message)
    .unwrap()
    .to_bytes()
    .to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let e = decode_message(bytes.into(), &Limits::default()).unwrap_err();
    assert!(
        matches!(e, DecodeError::ChecksumMismatch { frame: Some(0), .. }),
        "{e}"
    );
    assert!(e.to_string().contains("frame 0"), "{e}");
}

#[test]
fn garbage_in_each_field_gets_its_own_error() {
    let h = [0x80u8];
    let mut bytes = crafted(0, 6, 0, 1, &h);
    bytes[P as usize] = b'X';
    assert!(matches!(
        err(&bytes),
        DecodeError::BadMarker { offset: P, .. }
    ));
    assert_eq!(
        err(&crafted(0x80, 6, 0, 1, &h)),
        DecodeError::UnknownFlags {
            offset: P + 2,
            flags: 0x80
        }
    );
    assert_eq!(
        err(&crafted(0, 13, 0, 1, &h)),
        DecodeError::BadAlignment {
            offset: P + 3,
            align_log2: 13
        }
    );
    assert_eq!(
        err(&crafted(0, 6, 0, 1 << 40, &h)),
        DecodeError::HeaderTooLarge {
            offset: P + 16,
            len: 1 << 40,
            limit: Limits::DEFAULT.max_header_bytes
        }
    );
    let mut rest = entry(3, 3, 9);
    rest.extend([0x80, 1, 2, 3]);
    assert_eq!(
        err(&crafted(0, 0, 1, 1, &rest)),
        DecodeError::UnknownCodec {
            offset: P + 40,
            frame: 0,
            codec: 9
        }
    );
    let mut rest = entry(3, 4, 0);
    rest.extend([0x80, 1, 2, 3]);
    assert!(matches!(
        err(&crafted(0, 0, 1, 1, &rest)),
        DecodeError::InconsistentFrame { frame: 0, .. }
    ));
    let mut rest = entry(3, 3, 0);
    rest[18] = 1;
    rest.extend([0x80, 1, 2, 3]);
    assert_eq!(
        err(&crafted(0, 0, 1, 1, &rest)),
        DecodeError::ReservedNotZero {
            offset: P + 24 + 17
        }
    );
    // A header that is not one MessagePack value: the offset points into the header.
    assert_eq!(
        err(&crafted(0, 0, 0, 2, &[0x92, 0x01])),
        DecodeError::MalformedHeader {
            offset: P + 24,
            fault: HeaderFault::Truncated
        }
    );
    assert_eq!(
        err(&crafted(0, 0, 0, 1, &[0xc1])),
        DecodeError::MalformedHeader {
            offset: P + 24,
            fault: HeaderFault::ReservedMarker
        }
    );
    // A compressed frame whose blocks are garbage.
    let mut rest = entry(8, 100, 1);
    rest.extend([0x80]);
    rest.extend([4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    #[cfg(feature = "lz4")]
    assert!(matches!(
        err(&crafted(0, 0, 1, 1, &rest)),
        DecodeError::Decompress {
            frame: 0,
            codec: Codec::Lz4,
            ..
        }
    ));
}

#[test]
fn after_an_error_the_decoder_keeps_refusing() {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(&b"nope nope"[..]);
    let first = decoder.decode(&mut buf).unwrap_err();
    buf.clear();
    buf.extend_from_slice(&sample_stream());
    assert_eq!(decoder.decode(&mut buf).unwrap_err(), first);
}

#[test]
fn one_shot_decoding_wants_exactly_one_message() {
    let bytes = Encoder::default()
        .encode(&sample_messages()[1])
        .unwrap()
        .to_bytes();
    let short = bytes.slice(..bytes.len() - 1);
    assert_eq!(
        decode_message(short, &Limits::default()),
        Err(DecodeError::Truncated {
            offset: bytes.len() as u64 - 1
        })
    );
    let mut long = bytes.to_vec();
    long.push(0);
    assert_eq!(
        decode_message(long.into(), &Limits::default()),
        Err(DecodeError::TrailingBytes {
            offset: bytes.len() as u64
        })
    );
}

#[test]
fn assembling_from_separate_frames_checks_what_it_is_given() {
    use pontoon_wire::MessageHead;
    let message = sample_messages().remove(1);
    let options = {
        let mut options = EncodeOptions::default();
        options.codec = Codec::Lz4;
        options.checksums = true;
        options
    };
    let wire = Encoder::new(options).encode(&message).unwrap().to_bytes();
    let parse = || {
        let mut buf = BytesMut::from(&wire[..]);
        let head = MessageHead::parse(&mut buf, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(buf.len() as u64, wire.len() as u64 - head.head_len());
        head
    };
    let frames = |head: &MessageHead| -> Vec<Bytes> {
        head.frames()
            .iter()
            .map(|f| wire.slice(f.start as usize..(f.start + f.wire_len) as usize))
            .collect()
    };
    let head = parse();
    let good = frames(&head);
    assert_eq!(head.assemble(good.clone()).unwrap(), message);
    // One frame missing, one frame short, a flipped byte in a frame.
    assert!(matches!(
        parse().assemble(good[..2].to_vec()),
        Err(DecodeError::Truncated { .. })
    ));
    let mut short = good.clone();
    short[0] = short[0].slice(1..);
    assert!(matches!(
        parse().assemble(short),
        Err(DecodeError::Truncated { .. })
    ));
    let mut flipped = good.clone();
    let mut bytes = flipped[1].to_vec();
    bytes[0] ^= 1;
    flipped[1] = bytes.into();
    assert!(matches!(
        parse().assemble(flipped),
        Err(DecodeError::ChecksumMismatch { .. })
    ));
}

#[test]
#[cfg(all(feature = "lz4", feature = "zstd"))]
fn a_frame_declaring_more_than_its_expansion_limit_is_refused_from_its_head() {
    // 108 KB of zstd declaring a 2 GiB frame (about 20,000:1): refused from the frame table
    // alone, with no frame byte sent and nothing allocated.
    let wire_len = 108_000;
    let head = crafted(
        0,
        6,
        1,
        1,
        &[entry(wire_len, 2 << 30, 2), vec![0x80]].concat(),
    );
    let mut decoder = Decoder::with_limits(Limits::default());
    let mut buf = BytesMut::from(&head[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::ExpansionTooLarge {
            offset: P + 24 + 8,
            frame: 0,
            wire_len,
            raw_len: 2 << 30,
            limit: Limits::default().max_expansion(wire_len),
        })
    );
    // The same from the reader, and at the ratio's edge: 256:1 passes, one byte more does not.
    let mut reader = pontoon_wire::MessageReader::without_preamble(Limits::default());
    let mut buf = BytesMut::from(&head[P as usize..]);
    assert!(matches!(
        reader.read(&mut buf),
        Err(DecodeError::ExpansionTooLarge { .. })
    ));
    let edge = |raw_len| {
        let bytes = crafted(
            0,
            6,
            1,
            1,
            &[entry(1 << 20, raw_len, 1), vec![0x80]].concat(),
        );
        Decoder::new().decode(&mut BytesMut::from(&bytes[..]))
    };
    assert_eq!(edge(256 << 20), Ok(None));
    assert!(matches!(
        edge((256 << 20) + 1),
        Err(DecodeError::ExpansionTooLarge { .. })
    ));
    // max_expanded_bytes caps it whatever the ratio.
    let mut limits = Limits::default();
    limits.max_expansion_ratio = u64::MAX;
    limits.max_expanded_bytes = 1 << 30;
    let bytes = crafted(
        0,
        6,
        1,
        1,
        &[entry(wire_len, (1 << 30) + 1, 2), vec![0x80]].concat(),
    );
    assert!(matches!(
        Decoder::with_limits(limits).decode(&mut BytesMut::from(&bytes[..])),
        Err(DecodeError::ExpansionTooLarge { limit, .. }) if limit == 1 << 30
    ));
}

#[test]
fn a_compressed_frame_that_lies_about_its_size_is_an_error_of_its_kind() {
    use pontoon_wire::DecompressFault;
    let raw: Vec<u8> = (0..(2u32 << 20) + 5000).map(|i| (i / 300) as u8).collect();
    let message = Message::new(Header::empty(), vec![Bytes::from(raw.clone())]);
    for codec in [Codec::Lz4, Codec::Zstd]
        .into_iter()
        .filter(|c| c.is_built())
    {
        let wire = Encoder::new({
            let mut options = EncodeOptions::default();
            options.codec = codec;
            options
        })
        .encode(&message)
        .unwrap()
        .to_bytes();
        let declared = |raw_len: u64| {
            let mut bytes = wire.to_vec();
            bytes[32..40].copy_from_slice(&raw_len.to_le_bytes());
            let mut limits = Limits::default();
            limits.max_expansion_ratio = u64::MAX;
            decode_message(bytes.into(), &limits)
        };
        assert_eq!(declared(raw.len() as u64).unwrap(), message);
        // Declared shorter: the last block would write past its share.
        match declared(raw.len() as u64 - 100) {
            Err(DecodeError::Decompress {
                fault: DecompressFault::Overrun { block_raw_len },
                frame: 0,
                ..
            }) => assert_eq!(block_raw_len, 5000 - 100, "{codec}"),
            other => panic!("{codec}: expected an overrun, got {other:?}"),
        }
        // Declared longer: the last block falls short.
        match declared(raw.len() as u64 + 100) {
            Err(DecodeError::Decompress {
                fault: DecompressFault::Short { expected, actual },
                ..
            }) => assert_eq!((expected, actual), (5100, 5000), "{codec}"),
            other => panic!("{codec}: expected a short block, got {other:?}"),
        }
        // Declared a whole block shorter: bytes follow the last block the length calls for.
        assert!(matches!(
            declared(2 << 20),
            Err(DecodeError::Decompress {
                fault: DecompressFault::TrailingBytes,
                ..
            })
        ));
    }
}

#[test]
#[cfg(not(all(feature = "lz4", feature = "zstd")))]
fn a_frame_in_a_codec_this_build_lacks_is_refused_from_its_head_naming_the_feature() {
    // Sent by a peer built with every codec; this side lacks at least one. Only the head is
    // here: the refusal needs none of the frame's bytes.
    for codec in [Codec::Lz4, Codec::Zstd]
        .into_iter()
        .filter(|c| !c.is_built())
    {
        let head = crafted(
            0,
            0,
            1,
            1,
            &[entry(4096, 8192, codec.id()), vec![0x80]].concat(),
        );
        let error = Decoder::new()
            .decode(&mut BytesMut::from(&head[..]))
            .unwrap_err();
        assert_eq!(
            error,
            DecodeError::CodecNotBuilt {
                offset: P + 24 + 16,
                frame: 0,
                codec,
                feature: codec.name(),
            }
        );
        let text = error.to_string();
        assert!(text.contains(&format!("compressed with {codec}")), "{text}");
        assert!(
            text.contains(&format!("`{}` feature", codec.name())),
            "{text}"
        );
    }
}

/// Failed before the fix: a stream that ended right after a message's head (the head read and
/// checked, none of its frame bytes come) was a clean end (`Ok(None)`) at `decode_eof`, so a
/// message was lost without an error.
#[test]
fn a_stream_that_ends_right_after_a_head_is_truncated_not_finished() {
    let head = crafted(0, 0, 1, 1, &[entry(100, 100, 0), vec![0x80]].concat());
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(&head[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(
        buf.is_empty(),
        "the head's bytes are taken: the decoder holds the head"
    );
    assert_eq!(
        decoder.decode_eof(&mut buf),
        Err(DecodeError::Truncated {
            offset: head.len() as u64
        })
    );
}
