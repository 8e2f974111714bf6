//! Fuzz target: a peer's authentication messages, read as the handshake reads them after the
//! hellos (the hello limits, no preamble, then AuthMessage::from_message), and a proof checked
//! against whatever came in. May refuse, never panic; an accepted message re-encodes to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pontoon_wire::{AuthMessage, AuthRole, Decoder, hello_limits, verify_auth_proof};

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::without_preamble(hello_limits());
    let mut buf = BytesMut::from(data);
    while let Ok(Some(message)) = decoder.decode(&mut buf) {
        let Ok(auth) = AuthMessage::from_message(&message) else {
            continue;
        };
        let again = AuthMessage::from_message(&auth.to_message()).expect("re-encodes");
        assert_eq!(again, auth);
        if let AuthMessage::Proof { mac } = auth {
            // A proof from the wire over all-zero nonces checks only by a forged HMAC.
            assert!(
                verify_auth_proof(b"fuzz secret", AuthRole::Client, &[0; 32], &[0; 32], &mac)
                    .is_err()
                    || mac == pontoon_wire::auth_proof(b"fuzz secret", AuthRole::Client, &[0; 32], &[0; 32])
            );
        }
    }
});
