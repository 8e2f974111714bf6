//! Fuzz target: bytes a store client sends the daemon, read as the daemon reads them (the
//! socket decoder under the protocol's limits, then `decode_request` on each message); and the
//! same messages read as replies, as a client reads the daemon. May refuse, never panic; an
//! accepted request or reply re-encodes to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pontoon_store::protocol::{self, decode_request, decode_response};
use pontoon_wire::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::with_limits(protocol::limits());
    let mut buf = BytesMut::from(data);
    while let Ok(Some(message)) = decoder.decode(&mut buf) {
        if let Ok((rid, request)) = decode_request(&message) {
            let again = decode_request(&request.to_message(rid)).expect("a request re-encodes");
            assert_eq!(again, (rid, request));
        }
        if let Ok((rid, response)) = decode_response(&message) {
            let again = decode_response(&response.to_message(rid)).expect("a reply re-encodes");
            assert_eq!(again, (rid, response));
        }
    }
});
