//! The `store_peer` fuzz target's property, replayed on its committed seeds (well-formed pulls,
//! chunks and replies, and the hostile cases) in the ordinary test run: whatever decodes
//! re-encodes to itself, the hostile seeds are refused, nothing panics.

use std::path::Path;

use bytes::BytesMut;
use pontoon_store::peer_protocol::{self, MAX_CHUNK_BYTES, decode_reply, decode_request};
use pontoon_wire::Decoder;

#[test]
fn every_seed_round_trips_or_is_refused() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/store_peer");
    let mut count = 0;
    for entry in std::fs::read_dir(&seeds).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        count += 1;
        let mut decoder = Decoder::with_limits(peer_protocol::limits());
        let mut buf = BytesMut::from(&data[..]);
        let (mut messages, mut accepted) = (0, 0);
        while let Ok(Some(message)) = decoder.decode(&mut buf) {
            messages += 1;
            if let Ok(request) = decode_request(&message) {
                accepted += 1;
                assert_eq!(decode_request(&request.to_message()).unwrap(), request);
            }
            if let Ok(reply) = decode_reply(&message) {
                accepted += 1;
                assert!(reply.chunk_len() <= MAX_CHUNK_BYTES);
                assert_eq!(decode_reply(&reply.to_message()).unwrap(), reply);
            }
        }
        match name.as_str() {
            // Past the transport's limits: refused before it is a message at all.
            "too-many-chunk-frames" => assert_eq!(messages, 0, "{name}"),
            "pull-and-chunks" | "replies" => {
                assert_eq!(
                    accepted, messages,
                    "{name}: a well-formed message was refused"
                )
            }
            // A chunk at an offset that overflows is well formed here: the pull refuses it.
            "chunk-offset-overflows" => assert_eq!(accepted, 1, "{name}"),
            _ => {
                assert!(messages > 0, "{name}: not even a message");
                assert_eq!(accepted, 0, "{name}: a hostile message was accepted")
            }
        }
    }
    assert!(count >= 10, "{count} seeds");
}
