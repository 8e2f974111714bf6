//! Frames larger than 4 GiB: no 32-bit length anywhere. Needs about 9 GiB of memory, so it runs
//! with `cargo xtask test --large`.

use std::num::NonZeroUsize;

use bytes::{Bytes, BytesMut};
use pontoon_wire::{Decoder, Encoder, Header, Limits, Message, preamble, shard};

#[test]
#[ignore = "large: allocates ~9 GiB; run with `cargo xtask test --large`"]
fn large_frame_over_4_gib_round_trips() {
    let len = (4usize << 30) + 4099;
    let mut payload = vec![0u8; len];
    for (i, at) in (0..len).step_by(1 << 20).enumerate() {
        payload[at] = i as u8;
    }
    payload[len - 1] = 0xEE;
    let payload = Bytes::from(payload);
    let message = Message::new(
        Header::from_serde(&("big", len as u64)).unwrap(),
        vec![payload.clone()],
    );

    let encoded = Encoder::default().encode(&message).unwrap();
    assert_eq!(encoded.frames()[0].wire_len, len as u64);
    let mut received = BytesMut::with_capacity(encoded.len() as usize + 8);
    received.extend_from_slice(&preamble());
    for chunk in encoded.chunks() {
        received.extend_from_slice(chunk);
    }
    drop(encoded);
    let mut limits = Limits::default();
    limits.max_frame_bytes = u64::MAX;
    limits.max_message_bytes = u64::MAX;
    let decoded = Decoder::with_limits(limits)
        .decode(&mut received)
        .unwrap()
        .expect("whole message");
    assert_eq!(decoded.header, message.header);
    assert_eq!(decoded.frames[0].len(), len);
    assert!(
        decoded.frames[0] == payload,
        "payload differs after the round trip"
    );

    // Split into 1 GiB shards and join back: no copy within the buffer, one copy otherwise.
    let frame = &decoded.frames[0];
    let shards = shard::split(frame, NonZeroUsize::new(1 << 30).unwrap());
    assert_eq!(shards.len(), 5);
    let joined = shard::join_within(frame, &shards);
    assert_eq!(joined.as_ptr(), frame.as_ptr());
    assert_eq!(joined.len(), len);
}
