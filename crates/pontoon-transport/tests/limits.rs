//! Limits a comm enforces: the peer's announced message limit is checked before writing, and a
//! sender to a reader that does not read waits instead of buffering without bound.

use std::time::Duration;

use bytes::Bytes;
use pontoon_transport::{Comm, Config, TransportError, connect, listen};
use pontoon_wire::{Header, Message};

/// Hang guard for every await that should finish.
const GUARD: Duration = Duration::from_secs(60);

async fn guard<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

/// A tcp loopback pair: (server side, client side).
async fn pair(server: Config, client: Config) -> (Comm, Comm) {
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), server)
        .await
        .unwrap();
    let address = listener.address().clone();
    let connecting = tokio::spawn(async move { connect(&address, client).await });
    let server = guard("accept", async {
        listener.accept().await.unwrap().handshake().await.unwrap()
    })
    .await;
    let client = guard("connect", connecting).await.unwrap().unwrap();
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_peers_limit_is_not_sent() {
    let mut config = Config::new("server");
    config.limits.max_message_bytes = 1024;
    let (mut server, mut client) = pair(config, Config::new("client")).await;
    assert_eq!(client.peer().max_message_bytes, 1024);

    let large = Message::new(Header::empty(), vec![Bytes::from(vec![1u8; 2048])]);
    match client.send(&large).await {
        Err(TransportError::TooLarge { len, limit: 1024 }) => assert!(len > 2048, "{len}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Nothing of it was written: the next message is the first the server sees.
    let small = Message::new(
        Header::from_serde(&"small").unwrap(),
        vec![Bytes::from(vec![2u8; 100])],
    );
    client.send(&small).await.unwrap();
    assert_eq!(guard("recv", server.recv()).await.unwrap().unwrap(), small);
    // And the same through feed.
    assert!(matches!(
        client.feed(&large).await,
        Err(TransportError::TooLarge { .. })
    ));
    client.feed(&small).await.unwrap();
    client.flush().await.unwrap();
    assert_eq!(guard("recv", server.recv()).await.unwrap().unwrap(), small);
    client.close().await.unwrap();
    assert!(guard("recv", server.recv()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_waits_for_a_slow_reader() {
    let (mut server, mut client) = pair(Config::new("server"), Config::new("client")).await;
    let frame = Bytes::from(vec![3u8; 64 << 20]);
    let message = Message::new(Header::from_serde(&"big").unwrap(), vec![frame]);
    let expected = message.clone();
    let mut sending = tokio::spawn(async move {
        client.send(&message).await.unwrap();
        client
    });
    // The server does not read: the send cannot finish (socket buffers are far below 64 MiB).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut sending)
            .await
            .is_err(),
        "a 64 MiB send finished with nobody reading"
    );
    // Once the server reads, it does.
    let got = guard("recv", server.recv()).await.unwrap().unwrap();
    assert!(got == expected, "the 64 MiB message came back different");
    let client = guard("send", sending).await.unwrap();
    client.close().await.unwrap();
    assert!(guard("recv", server.recv()).await.unwrap().is_none());
}
