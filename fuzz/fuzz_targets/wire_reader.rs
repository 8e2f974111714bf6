//! Fuzz target: the sans-IO MessageReader on arbitrary bytes, arriving in arbitrary pieces,
//! some through `read` and some straight into `frame_space`. It may refuse input, never panic;
//! the messages it yields are the ones the stream Decoder yields from the same bytes.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use pontoon_wire::{Decoder, Limits, MessageReader, Received};

fn limits() -> Limits {
    let mut limits = Limits::default();
    // Small enough that a hostile length cannot make the fuzzer run out of memory.
    limits.max_frame_bytes = 1 << 24;
    limits.max_message_bytes = 1 << 24;
    limits.max_frames = 1 << 12;
    limits.max_expanded_bytes = 1 << 24;
    limits
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 64).max(1);
    let direct = step % 2 == 0;

    let mut reader = MessageReader::without_preamble(limits());
    let mut buf = BytesMut::new();
    let mut from_reader = Vec::new();
    let mut closed = false;
    let mut rest = data;
    'feed: while !rest.is_empty() {
        let n = rest.len().min(step);
        match reader.frame_space() {
            Ok(Some(mut space)) if direct => {
                let n = n.min(space.remaining_mut());
                space.put_slice(&rest[..n]);
                rest = &rest[n..];
            }
            Ok(_) => {
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            Err(_) => break 'feed,
        }
        loop {
            match reader.read(&mut buf) {
                Ok(Some(Received::Message(raw))) => match raw.decode() {
                    Ok(message) => from_reader.push(message),
                    Err(_) => break 'feed,
                },
                Ok(Some(Received::Close(close))) => {
                    assert!(close.reason.len() <= pontoon_wire::MAX_CLOSE_REASON_BYTES);
                    closed = true;
                    break 'feed;
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }

    // The stream decoder on the same bytes, all at once.
    let mut decoder = Decoder::without_preamble(limits());
    let mut all = BytesMut::from(data);
    let mut from_decoder = Vec::new();
    while let Ok(Some(message)) = decoder.decode(&mut all) {
        from_decoder.push(message);
    }
    // The decoder knows no close message: it stops there, as the reader does. Where the reader
    // stopped early (an error, a close) it yields a prefix of the decoder's messages.
    assert!(from_reader.len() <= from_decoder.len() || closed);
    let common = from_reader.len().min(from_decoder.len());
    assert_eq!(from_reader[..common], from_decoder[..common]);
});
