//! Fuzz target: the stream decoder and the one-shot decoder on arbitrary bytes, arriving in
//! arbitrary pieces. They may refuse input, never panic; what they accept re-encodes to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pontoon_wire::{Decoder, Encoder, Limits, decode_message};

fn limits() -> Limits {
    let mut limits = Limits::default();
    // Small enough that a hostile length cannot make the fuzzer run out of memory.
    limits.max_frame_bytes = 1 << 24;
    limits.max_message_bytes = 1 << 24;
    limits.max_frames = 1 << 12;
    limits
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);

    // The stream decoder, with and without the preamble, fed `step` bytes at a time.
    for mut decoder in [
        Decoder::with_limits(limits()),
        Decoder::without_preamble(limits()),
    ] {
        let mut buf = BytesMut::new();
        let mut failed = false;
        'feed: for piece in data.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(message)) => {
                        let again = Encoder::default()
                            .encode(&message)
                            .expect("re-encode")
                            .to_bytes();
                        let back =
                            decode_message(again, &limits()).expect("a decoded message re-encodes");
                        assert_eq!(back, message);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break 'feed;
                    }
                }
            }
        }
        // The end of the stream: a message in progress (even one whose head alone has come)
        // is an error; a clean end leaves nothing behind.
        if !failed {
            if let Ok(None) = decoder.decode_eof(&mut buf) {
                assert!(buf.is_empty(), "a clean end with bytes left over");
            }
        }
    }

    // The one-shot decoder on the whole input.
    if let Ok(message) = decode_message(bytes::Bytes::copy_from_slice(data), &limits()) {
        assert!(message.frames.len() <= 1 << 12);
    }
});
