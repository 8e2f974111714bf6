//! The authentication messages and proofs: the `wire_auth` fuzz target's property replayed on
//! its committed seeds (valid messages and hostile ones), each hostile seed refused with its own
//! error, and the proofs bound to the secret, both nonces in order, and the role.

use std::path::Path;

use bytes::BytesMut;
use pontoon_wire::{
    AuthError, AuthMessage, AuthRole, Decoder, Limits, auth_proof, hello_limits, verify_auth_proof,
};

fn seed(name: &str) -> BytesMut {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds/wire_auth")
        .join(name);
    BytesMut::from(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))[..])
}

/// Every message in the seed, read as the handshake reads them; the decode error ends it.
fn read(name: &str) -> Vec<Result<AuthMessage, AuthError>> {
    let mut buf = seed(name);
    let mut decoder = Decoder::without_preamble(hello_limits());
    let mut out = Vec::new();
    while let Ok(Some(message)) = decoder.decode(&mut buf) {
        out.push(AuthMessage::from_message(&message));
    }
    out
}

#[test]
fn every_seed_is_read_or_refused_and_what_is_read_re_encodes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/wire_auth");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        count += 1;
        for message in read(&name).into_iter().flatten() {
            assert_eq!(
                AuthMessage::from_message(&message.to_message()).as_ref(),
                Ok(&message),
                "{name}"
            );
        }
    }
    assert!(count >= 14, "{count} seeds");
}

#[test]
fn valid_seeds_read_as_what_they_are() {
    assert_eq!(
        read("valid-challenge"),
        [Ok(AuthMessage::Challenge { nonce: [0x5a; 32] })]
    );
    assert_eq!(read("valid-refused"), [Ok(AuthMessage::Refused)]);
    let all = read("challenge-proof-refused");
    assert!(matches!(
        all[..],
        [
            Ok(AuthMessage::Challenge { .. }),
            Ok(AuthMessage::Proof { .. }),
            Ok(AuthMessage::Refused)
        ]
    ));
    let [Ok(AuthMessage::Proof { mac })] = read("valid-proof-that-checks")[..] else {
        panic!("a proof");
    };
    verify_auth_proof(b"fuzz secret", AuthRole::Client, &[0; 32], &[0; 32], &mac).unwrap();
}

#[test]
fn hostile_seeds_are_refused_with_their_own_error() {
    let one = |name: &str| {
        let mut all = read(name);
        assert_eq!(all.len(), 1, "{name}: {all:?}");
        all.remove(0).unwrap_err()
    };
    assert_eq!(
        one("nonce-31-bytes"),
        AuthError::WrongLength {
            len: 31,
            expected: 32
        }
    );
    assert_eq!(
        one("proof-33-bytes"),
        AuthError::WrongLength {
            len: 33,
            expected: 32
        }
    );
    assert!(matches!(
        one("value-is-a-string"),
        AuthError::WrongType { key: "value", .. }
    ));
    assert_eq!(one("missing-value"), AuthError::Missing { key: "value" });
    match one("unknown-kind") {
        AuthError::UnknownKind { kind } => assert_eq!(kind.len(), 64, "cut to 64 characters"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        one("auth-not-a-string"),
        AuthError::WrongType { key: "auth", .. }
    ));
    assert_eq!(one("not-a-map"), AuthError::NotAMap);
    // A frame is refused by the handshake's limits before the message is read at all, and by
    // the message reader when it is read with others.
    let mut framed = seed("with-a-frame");
    assert!(
        Decoder::without_preamble(hello_limits())
            .decode(&mut framed)
            .is_err()
    );
    let framed = Decoder::without_preamble(Limits::default())
        .decode(&mut seed("with-a-frame"))
        .unwrap()
        .unwrap();
    assert_eq!(
        AuthMessage::from_message(&framed),
        Err(AuthError::HasFrames { count: 1 })
    );
    // A hello that requires authentication names its scheme under `auth`: not a kind.
    assert_eq!(
        one("a-hello-instead"),
        AuthError::UnknownKind {
            kind: "hmac-sha256".into()
        }
    );
    assert!(
        read("truncated-proof").is_empty(),
        "a truncated message waits"
    );
}

#[test]
fn a_proof_binds_the_secret_both_nonces_in_order_and_the_role() {
    let (client, server) = ([1; 32], [2; 32]);
    let proof = auth_proof(b"k", AuthRole::Client, &client, &server);
    verify_auth_proof(b"k", AuthRole::Client, &client, &server, &proof).unwrap();
    let wrong = Err(AuthError::WrongProof);
    assert_eq!(
        verify_auth_proof(b"K", AuthRole::Client, &client, &server, &proof),
        wrong
    );
    assert_eq!(
        verify_auth_proof(b"k", AuthRole::Client, &server, &client, &proof),
        wrong,
        "nonces swapped"
    );
    assert_eq!(
        verify_auth_proof(b"k", AuthRole::Server, &client, &server, &proof),
        wrong,
        "reflected as the server's"
    );
    assert_eq!(
        verify_auth_proof(b"k", AuthRole::Client, &client, &[3; 32], &proof),
        wrong,
        "another server nonce: a replay"
    );
    // Keys longer than SHA-256's block are hashed first, and still bind.
    let long = vec![7u8; 200];
    let long_proof = auth_proof(&long, AuthRole::Server, &client, &server);
    verify_auth_proof(&long, AuthRole::Server, &client, &server, &long_proof).unwrap();
    assert_ne!(long_proof, proof);
}
