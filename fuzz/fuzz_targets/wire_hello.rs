//! Fuzz target: a peer's preamble and hello, read as the handshake reads them (the hello limits,
//! then Hello::from_message). May refuse, never panic; an accepted hello re-encodes to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pontoon_wire::{Compression, Decoder, Hello, hello_limits, negotiate};

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::with_limits(hello_limits());
    let mut buf = BytesMut::from(data);
    let Ok(Some(message)) = decoder.decode(&mut buf) else {
        return;
    };
    let Ok(hello) = Hello::from_message(&message) else {
        return;
    };
    let again = Hello::from_message(&hello.to_message()).expect("a hello re-encodes");
    assert_eq!(again, hello);
    for compression in [Compression::Off, Compression::Auto] {
        if let Ok(agreed) = negotiate(compression, false, &hello) {
            assert!(
                agreed.send_codec == pontoon_wire::Codec::None
                    || hello.decodes.contains(&agreed.send_codec)
            );
        }
    }
});
