//! Fuzz target: bytes a peer store sends, read as a store reads them (the stream decoder under
//! the peer protocol's limits, then `decode_request` and `decode_reply` on each message). May
//! refuse, never panic; an accepted request or reply re-encodes to itself, and a chunk's frames
//! add up to no more than a chunk may carry.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pontoon_store::peer_protocol::{self, MAX_CHUNK_BYTES, decode_reply, decode_request};
use pontoon_wire::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::with_limits(peer_protocol::limits());
    let mut buf = BytesMut::from(data);
    while let Ok(Some(message)) = decoder.decode(&mut buf) {
        if let Ok(request) = decode_request(&message) {
            let again = decode_request(&request.to_message()).expect("a request re-encodes");
            assert_eq!(again, request);
        }
        if let Ok(reply) = decode_reply(&message) {
            assert!(reply.chunk_len() <= MAX_CHUNK_BYTES);
            let again = decode_reply(&reply.to_message()).expect("a reply re-encodes");
            assert_eq!(again, reply);
        }
    }
});
