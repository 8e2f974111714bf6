//! Errors print each cause once: an error that wraps another says only its own part, and the
//! inner one comes from `source()`. Checked on real errors, walking each chain to its end.

use std::error::Error;
use std::time::Duration;

use bytes::Bytes;
use pontoon_transport::{
    Address, Config, Endpoint, EndpointError, HandshakeError, TransportError, connect, listen,
};
use pontoon_wire::{Encoder, Header, Hello, Message, preamble};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GUARD: Duration = Duration::from_secs(30);

async fn guard<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

/// Walks `error`'s chain: no message contains the message of its source. The chain's length.
fn each_cause_once(error: &(dyn Error + 'static)) -> usize {
    let mut current = error;
    let mut depth = 0;
    while let Some(source) = current.source() {
        let (outer, inner) = (current.to_string(), source.to_string());
        assert!(
            !inner.is_empty() && !outer.contains(&inner),
            "{outer:?} repeats its source {inner:?}"
        );
        current = source;
        depth += 1;
    }
    depth
}

fn host(address: &Address) -> String {
    match address {
        Address::Tcp(host_port) => host_port.clone(),
        other => panic!("not tcp: {other}"),
    }
}

#[tokio::test]
async fn a_refused_connect_names_the_address_and_leaves_the_os_error_to_its_source() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address: Address = format!("tcp://127.0.0.1:{port}").parse().unwrap();
    let error = connect(&address, Config::new("client")).await.unwrap_err();
    assert!(matches!(error, TransportError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains(&format!("127.0.0.1:{port}")));
    assert_eq!(each_cause_once(&error), 1);
    assert!(error.source().unwrap().is::<std::io::Error>());

    // Through an Endpoint, the transport error is the same chain (transparent, not repeated).
    let registry = pontoon_family::Registry::new();
    let error = Endpoint::connect(&address, Config::new("client"), &registry)
        .await
        .unwrap_err();
    assert!(matches!(error, EndpointError::Transport(_)), "{error:?}");
    assert_eq!(each_cause_once(&error), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_preamble_and_a_bad_message_each_print_their_causes_once() {
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::new("server"))
        .await
        .unwrap();
    let address = listener.address().clone();

    // Not pontoon at all: transport error -> handshake error -> decode error.
    let garbage = tokio::spawn({
        let host = host(&address);
        async move {
            let mut stream = TcpStream::connect(host).await.unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink).await;
        }
    });
    let incoming = guard("accept", listener.accept()).await.unwrap();
    let error = guard("handshake", incoming.handshake()).await.unwrap_err();
    assert!(
        matches!(&error, TransportError::Handshake(HandshakeError::Decode(_))),
        "{error:?}"
    );
    assert_eq!(each_cause_once(&error), 2);
    garbage.await.unwrap();

    // A good handshake, then a message whose prefix has a reserved flag set.
    let bad = tokio::spawn({
        let host = host(&address);
        async move {
            let mut stream = TcpStream::connect(host).await.unwrap();
            let mut bytes = preamble().to_vec();
            let hello = Hello::new(
                "raw",
                vec!["serde".into()],
                pontoon_wire::Codec::None,
                1 << 20,
            );
            bytes.extend_from_slice(
                &Encoder::default()
                    .encode(&hello.to_message())
                    .unwrap()
                    .to_bytes(),
            );
            let message = Message::new(Header::empty(), vec![Bytes::from_static(b"x")]);
            let mut wire = Encoder::default()
                .encode(&message)
                .unwrap()
                .to_bytes()
                .to_vec();
            wire[2] |= 0x80;
            bytes.extend_from_slice(&wire);
            stream.write_all(&bytes).await.unwrap();
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink).await;
        }
    });
    let incoming = guard("accept", listener.accept()).await.unwrap();
    let mut comm = guard("handshake", incoming.handshake()).await.unwrap();
    let error = guard("recv", comm.recv()).await.unwrap_err();
    assert!(matches!(error, TransportError::Decode { .. }), "{error:?}");
    assert_eq!(each_cause_once(&error), 1);
    drop(comm);
    bad.await.unwrap();
}
