//! Out-of-band buffers: each travels as its own frame, comes back as a view of that frame, and the
//! same buffer referenced twice is sent once and comes back shared; end to end through pontoon-wire.

use bytes::{Bytes, BytesMut};
use pontoon_family::{Buffer, Registry};
use pontoon_wire::{Decoder, Encoder, preamble};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Model {
    name: String,
    weights: Buffer,
    layers: Vec<Layer>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Layer {
    bias: Buffer,
    scale: f32,
}

fn filled(len: usize, seed: u8) -> Buffer {
    Buffer::from(
        (0..len)
            .map(|i| seed.wrapping_add(i as u8))
            .collect::<Vec<u8>>(),
    )
}

fn within(buffer: &Bytes, part: &[u8]) -> bool {
    let start = buffer.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    p >= start && p + part.len() <= start + buffer.len()
}

#[test]
fn each_buffer_is_a_frame_and_comes_back_as_a_view_of_it() {
    let model = Model {
        name: "net".into(),
        weights: filled(1 << 20, 1),
        layers: vec![
            Layer {
                bias: filled(4096, 2),
                scale: 0.5,
            },
            Layer {
                bias: filled(10, 3),
                scale: 2.0,
            },
        ],
    };
    let registry = Registry::new();
    let message = registry.serialize(&model).unwrap();
    assert_eq!(message.frames.len(), 3);
    assert!(
        message.header.as_bytes().len() < 200,
        "buffers are not inside the body"
    );
    // Serializing copies nothing either: the frames are the buffers.
    assert_eq!(message.frames[0].as_ptr(), model.weights.as_ptr());

    let back: Model = registry.deserialize(&message).unwrap();
    assert_eq!(back, model);
    assert_eq!(back.weights.as_ptr(), message.frames[0].as_ptr());
    assert_eq!(back.layers[0].bias.as_ptr(), message.frames[1].as_ptr());
}

#[test]
fn a_buffer_referenced_twice_is_sent_once_and_stays_shared() {
    let shared = filled(100_000, 9);
    let model = (
        shared.clone(),
        vec![shared.clone(), shared.clone()],
        filled(8, 1),
    );
    let registry = Registry::new();
    let message = registry.serialize(&model).unwrap();
    assert_eq!(
        message.frames.len(),
        2,
        "one frame for the shared buffer, one for the other"
    );
    let back: (Buffer, Vec<Buffer>, Buffer) = registry.deserialize(&message).unwrap();
    assert_eq!(back.0.as_ptr(), back.1[0].as_ptr());
    assert_eq!(back.1[0].as_ptr(), back.1[1].as_ptr());
    assert_ne!(back.0.as_ptr(), back.2.as_ptr());
    // Slices of one buffer that differ are different buffers.
    let whole = filled(64, 0).into_bytes();
    let parts = (
        Buffer::new(whole.slice(..32)),
        Buffer::new(whole.slice(32..)),
    );
    assert_eq!(registry.serialize(&parts).unwrap().frames.len(), 2);
}

#[test]
fn end_to_end_through_the_wire_nothing_is_copied() {
    let model = Model {
        name: "big".into(),
        weights: filled(8 << 20, 7),
        layers: vec![],
    };
    let registry = Registry::new();
    let message = registry.serialize(&model).unwrap();
    let mut received = BytesMut::new();
    received.extend_from_slice(&preamble());
    for chunk in Encoder::default().encode(&message).unwrap().chunks() {
        received.extend_from_slice(chunk);
    }
    let receive_buffer = Bytes::copy_from_slice(&received); // for the address range only
    let _ = receive_buffer;
    let (start, len) = (received.as_ptr() as usize, received.len());
    let decoded = Decoder::new().decode(&mut received).unwrap().unwrap();
    let back: Model = registry.deserialize(&decoded).unwrap();
    assert_eq!(back, model);
    let p = back.weights.as_ptr() as usize;
    assert!(
        p >= start && p + back.weights.len() <= start + len,
        "the weights were copied"
    );
    assert_eq!(
        p % 64,
        (start + 8) % 64,
        "frames keep their 64-byte alignment relative to the message"
    );
}

#[test]
fn buffers_work_by_copy_with_other_serde_formats() {
    let model = Model {
        name: "m".into(),
        weights: filled(300, 5),
        layers: vec![Layer {
            bias: filled(3, 1),
            scale: 1.0,
        }],
    };
    let bytes = rmp_serde::to_vec_named(&model).unwrap();
    let back: Model = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back, model);
    // The MessagePack holds the bytes inline, as a `bin`.
    let value = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
    assert_eq!(value["weights"].as_slice().map(<[u8]>::len), Some(300));
}

#[test]
fn a_large_body_is_a_view_of_its_frame_too() {
    let registry = Registry::new();
    let words: Vec<String> = (0..2000).map(|i| format!("word{i}")).collect();
    let message = registry.serialize(&(words.clone(), filled(10, 0))).unwrap();
    assert_eq!(message.frames.len(), 2, "body, then the buffer");
    let back: (Vec<String>, Buffer) = registry.deserialize(&message).unwrap();
    assert_eq!(back.0, words);
    assert!(within(&message.frames[1], &back.1));
}

#[test]
fn many_buffers_with_repeats_are_each_sent_once() {
    // More distinct buffers than the encoder scans before it builds an index.
    let distinct: Vec<Buffer> = (0..40).map(|i| filled(100 + i, i as u8)).collect();
    let value: Vec<Buffer> = distinct
        .iter()
        .chain(distinct.iter().rev())
        .cloned()
        .collect();
    let registry = Registry::new();
    let message = registry.serialize(&value).unwrap();
    assert_eq!(message.frames.len(), 40);
    let back: Vec<Buffer> = registry.deserialize(&message).unwrap();
    assert_eq!(back, value);
    for (i, buffer) in back[..40].iter().enumerate() {
        assert_eq!(
            buffer.as_ptr(),
            back[79 - i].as_ptr(),
            "reference {i} and its repeat share memory"
        );
    }
}
