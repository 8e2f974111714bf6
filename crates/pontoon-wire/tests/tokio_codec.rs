//! `MessageCodec` (the `tokio-util` feature): messages through tokio-util's `FramedRead` and
//! `FramedWrite` over an in-memory duplex pipe, and a hostile peer held to the same limits as
//! the sans-IO decoder.
#![cfg(feature = "tokio-util")]

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use pontoon_wire::{
    Codec, DecodeError, EncodeOptions, Encoder, Header, Limits, Message, MessageCodec,
    MessageCodecError, preamble,
};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{FramedRead, FramedWrite};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn messages() -> Vec<Message> {
    let compressible = Bytes::from((0..300_000u32).map(|i| (i / 64) as u8).collect::<Vec<_>>());
    vec![
        Message::new(Header::from_serde(&("op", 1u8)).unwrap(), vec![]),
        Message::new(
            Header::from_serde(&"two frames").unwrap(),
            vec![Bytes::from_static(b"abc"), compressible],
        ),
        Message::new(Header::empty(), vec![Bytes::from(vec![9u8; 1 << 20])]),
    ]
}

#[test]
fn messages_cross_a_small_pipe_whole_and_in_order() {
    runtime().block_on(async {
        // A pipe far smaller than the messages: the reader sees each one arrive in pieces.
        let (client, server) = tokio::io::duplex(4096);
        let encoder = Encoder::new({
            let mut options = EncodeOptions::default();
            options.codec = Codec::Lz4;
            options.checksums = true;
            options
        });
        let mut outgoing = FramedWrite::new(client, MessageCodec::new().with_encoder(encoder));
        let mut incoming = FramedRead::new(server, MessageCodec::new());
        let sent = messages();
        let sending = sent.clone();
        let writer = tokio::spawn(async move {
            for message in sending {
                outgoing.send(message).await?;
            }
            SinkExt::<Message>::close(&mut outgoing).await
        });
        let mut received = Vec::new();
        while let Some(message) = incoming.next().await {
            received.push(message.unwrap());
        }
        writer.await.unwrap().unwrap();
        assert_eq!(received, sent);
    });
}

/// The start of a message after the preamble: prefix and one frame-table entry.
fn hostile_head(wire_len: u64) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put(preamble());
    out.put_slice(b"\xF0M");
    out.put_u8(0); // flags
    out.put_u8(0); // alignment 2^0
    out.put_u32_le(0);
    out.put_u64_le(1); // one frame
    out.put_u64_le(1); // a header of one byte
    out.put_u64_le(wire_len);
    out.put_u64_le(wire_len);
    out.put_u8(0); // stored as is
    out.put_bytes(0, 7);
    out.put_u8(0x80); // the header: an empty map
    out.to_vec()
}

#[test]
fn a_hostile_length_is_refused_before_its_bytes_are_awaited() {
    runtime().block_on(async {
        let (mut peer, ours) = tokio::io::duplex(4096);
        let mut limits = Limits::default();
        limits.max_frame_bytes = 1 << 20;
        let mut incoming = FramedRead::new(ours, MessageCodec::with_limits(limits));
        // 2^62 bytes declared, none sent, and the peer keeps the pipe open: the codec must
        // refuse from the head alone rather than wait (or reserve) for the frame.
        peer.write_all(&hostile_head(1 << 62)).await.unwrap();
        let error = incoming
            .next()
            .await
            .expect("an error, not the end")
            .unwrap_err();
        assert!(
            matches!(
                error,
                MessageCodecError::Decode(DecodeError::FrameTooLarge { len, limit, .. })
                    if len == 1 << 62 && limit == 1 << 20
            ),
            "{error:?}"
        );
        drop(peer);
    });
}

#[test]
fn a_stream_that_ends_inside_a_message_is_an_error_not_the_end() {
    runtime().block_on(async {
        let (mut peer, ours) = tokio::io::duplex(4096);
        let mut incoming = FramedRead::new(ours, MessageCodec::new());
        // The whole head of a 100-byte frame, and 10 of its bytes.
        peer.write_all(&hostile_head(100)).await.unwrap();
        peer.write_all(&[1; 10]).await.unwrap();
        drop(peer);
        let error = incoming
            .next()
            .await
            .expect("an error, not the end")
            .unwrap_err();
        assert!(
            matches!(
                error,
                MessageCodecError::Decode(DecodeError::Truncated { .. })
            ),
            "{error:?}"
        );
    });
}
