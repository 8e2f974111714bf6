//! The byte layout in `docs/wire-format.md`, checked byte for byte against the encoder, so the
//! spec and the code cannot drift apart. A change here is a breaking change of the format.

use bytes::Bytes;
use pontoon_wire::{EncodeOptions, Encoder, Header, Limits, Message, decode_message, preamble};

#[test]
fn wire_format_example_is_byte_exact() {
    let message = Message::new(Header::empty(), vec![Bytes::from_static(b"abc")]);
    let bytes = Encoder::default().encode(&message).unwrap().to_bytes();
    let mut expected = vec![
        0xF0, 0x4D, 0x00, 0x06, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, // prefix
        1, 0, 0, 0, 0, 0, 0, 0, // header_len
        3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, // wire_len, raw_len
        0, 0, 0, 0, 0, 0, 0, 0,    // codec, reserved, crc
        0x80, // header
    ];
    expected.resize(0x40, 0);
    expected.extend_from_slice(b"abc");
    assert_eq!(&bytes[..], &expected[..]);
    assert_eq!(bytes.len(), 67);
    assert_eq!(decode_message(bytes, &Limits::default()).unwrap(), message);
}

#[test]
fn preamble_is_magic_then_version() {
    assert_eq!(&preamble()[..], b"\xF0FERRY\x01\x00");
}

#[test]
fn head_checksum_covers_the_documented_bytes() {
    let message = Message::new(
        Header::from_serde(&"h").unwrap(),
        vec![Bytes::from_static(b"xyz")],
    );
    let bytes = Encoder::new({
        let mut options = EncodeOptions::default();
        options.checksums = true;
        options.alignment = 1;
        options
    })
    .encode(&message)
    .unwrap()
    .to_bytes();
    assert_eq!(bytes[2], 1, "checksum flag");
    let head_len = 24 + 24 + 2;
    let mut covered = bytes[..4].to_vec();
    covered.extend_from_slice(&bytes[8..head_len]);
    assert_eq!(&bytes[4..8], &crc32c::crc32c(&covered).to_le_bytes());
    assert_eq!(
        &bytes[24 + 20..24 + 24],
        &crc32c::crc32c(b"xyz").to_le_bytes()
    );
    assert_eq!(
        &bytes[head_len..],
        b"xyz",
        "alignment 1 packs the frame right after the header"
    );
}

#[test]
#[cfg(feature = "lz4")]
fn compressed_frames_are_blocks_with_length_prefixes() {
    let raw = vec![7u8; (1 << 20) + 5000];
    let message = Message::new(Header::empty(), vec![Bytes::from(raw.clone())]);
    let options = {
        let mut options = EncodeOptions::default();
        options.codec = pontoon_wire::Codec::Lz4;
        options.alignment = 1;
        options
    };
    let bytes = Encoder::new(options).encode(&message).unwrap().to_bytes();
    assert_eq!(bytes[24 + 16], 1, "codec lz4");
    let wire = &bytes[24 + 24 + 1..];
    let first = u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize;
    let block = lz4_flex::block::decompress(&wire[4..4 + first], 1 << 20).unwrap();
    assert_eq!(block, raw[..1 << 20]);
    let second = u32::from_le_bytes(wire[4 + first..8 + first].try_into().unwrap()) as usize;
    assert_eq!(
        wire.len(),
        8 + first + second,
        "two blocks fill the frame exactly"
    );
    let mut decoder = pontoon_wire::Decoder::without_preamble(Limits::default());
    let decoded = decoder
        .decode(&mut bytes::BytesMut::from(&bytes[..]))
        .unwrap()
        .unwrap();
    assert_eq!(decoded, message);
}

#[test]
fn close_message_example_is_byte_exact() {
    use pontoon_wire::{CloseCode, CloseFault, CloseMessage, DecodeError};
    let close = CloseMessage::new(CloseCode::GoingAway, "bye");
    let bytes = close.encode();
    assert_eq!(&bytes[..], b"\xF0C\x01\x00\x03\x00\x00\x00bye");
    assert_eq!(
        CloseMessage::decode(&bytes, 0),
        Ok(Some((close, bytes.len())))
    );
    // Codes as documented; unknown ones kept.
    for (code, n) in [
        (CloseCode::GoingAway, 1),
        (CloseCode::TooLarge, 2),
        (CloseCode::Malformed, 3),
        (CloseCode::NotAccepted, 4),
        (CloseCode::Internal, 5),
        (CloseCode::Other(77), 77),
    ] {
        assert_eq!(code.to_u16(), n);
        assert_eq!(CloseCode::from_u16(n), code);
    }
    // Every prefix asks for more; each fault is refused with its offset.
    for cut in 0..bytes.len() {
        assert_eq!(
            CloseMessage::decode(&bytes[..cut], 10),
            Ok(None),
            "cut {cut}"
        );
    }
    assert_eq!(
        CloseMessage::decode(b"\xF0C\x01\x00\x79\x00\x00\x00", 10),
        Err(DecodeError::MalformedClose {
            offset: 14,
            fault: CloseFault::ReasonTooLong { len: 121 }
        })
    );
    assert_eq!(
        CloseMessage::decode(b"\xF0C\x01\x00\x00\x00\x00\x01", 0),
        Err(DecodeError::MalformedClose {
            offset: 6,
            fault: CloseFault::ReservedNotZero
        })
    );
    assert_eq!(
        CloseMessage::decode(b"\xF0C\x01\x00\x02\x00\x00\x00a\xFF", 0),
        Err(DecodeError::MalformedClose {
            offset: 9,
            fault: CloseFault::ReasonNotUtf8
        })
    );
    assert!(matches!(
        CloseMessage::decode(b"\xF0M", 0),
        Err(DecodeError::BadMarker { .. })
    ));
}
