//! `docs/family-format.md`, checked byte for byte, so the spec and the code cannot drift apart.

use bytes::Bytes;
use pontoon_family::{Buffer, Registry, binary};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Op {
    Stop,
    Move { dx: i16 },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Sample {
    flag: bool,
    n: u32,
    name: String,
    maybe: Option<u8>,
    ops: Vec<Op>,
    letter: char,
    blob: Buffer,
    again: Buffer,
}

#[test]
fn body_layout_is_byte_exact() {
    let blob = Buffer::new(Bytes::from_static(b"frame"));
    let value = Sample {
        flag: true,
        n: 0x0102_0304,
        name: "hi".into(),
        maybe: Some(7),
        ops: vec![Op::Stop, Op::Move { dx: -2 }],
        letter: 'é',
        blob: blob.clone(),
        again: blob,
    };
    let (body, buffers) = binary::to_vec(&value, 256).unwrap();
    assert_eq!(
        body,
        [
            0x01, // flag
            0x04, 0x03, 0x02, 0x01, // n
            0x02, b'h', b'i', // name
            0x01, 0x07, // maybe
            0x02, 0x00, 0x01, 0xFE, 0xFF, // ops: count, Stop, Move { dx: -2 }
            0xE9, 0x00, 0x00, 0x00, // letter
            0x00, 0x00, // blob and again: both buffer frame 0
        ]
    );
    assert_eq!(buffers, [Bytes::from_static(b"frame")]);
    assert_eq!(
        binary::from_slice::<Sample>(&body, &buffers, 256).unwrap(),
        value
    );
}

#[test]
fn varints_are_leb128() {
    let long = "x".repeat(300);
    let (body, _) = binary::to_vec(&long, 256).unwrap();
    assert_eq!(&body[..2], &[0xAC, 0x02]); // 300 = 0b10_0101100
    assert_eq!(body.len(), 302);
}

#[test]
fn header_layout_is_byte_exact() {
    let message = Registry::new().serialize(&7u8).unwrap();
    let mut expected = vec![0x84];
    for (k, v) in [("family", "serde"), ("type", "u8")] {
        rmp::encode::write_str(&mut expected, k).unwrap();
        rmp::encode::write_str(&mut expected, v).unwrap();
    }
    rmp::encode::write_str(&mut expected, "body").unwrap();
    expected.extend_from_slice(&[0xC6, 0, 0, 0, 1, 7]); // bin 32 of one byte
    rmp::encode::write_str(&mut expected, "buffers").unwrap();
    expected.push(0);
    assert_eq!(&message.header.as_bytes()[..], &expected[..]);
    assert!(message.frames.is_empty());
}
