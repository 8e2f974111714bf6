//! Close reasons, over real sockets: a receiver that refuses a message (too large, malformed,
//! not accepted) tells the peer why before it closes, and the peer's next `recv` or `send` gets
//! `ClosedByPeer` with the code, not an end of stream or a broken pipe.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pontoon_transport::{Address, CloseCode, Comm, Config, TransportError, connect, listen};
use pontoon_wire::{
    CloseMessage, DecodeError, Decoder, Encoder, Header, Hello, Limits, Message, MessageReader,
    Received, preamble,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GUARD: Duration = Duration::from_secs(60);

async fn guard<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

fn address(kind: &str) -> Address {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    match kind {
        "tcp" => "tcp://127.0.0.1:0".parse().unwrap(),
        "unix" => {
            let path =
                std::env::temp_dir().join(format!("pontoon-close-{}-{n}.sock", std::process::id()));
            let _ = std::fs::remove_file(&path);
            Address::Unix(path)
        }
        other => panic!("unknown kind {other}"),
    }
}

/// (server side, client side).
async fn pair(kind: &str, server: Config) -> (Comm, Comm) {
    let mut listener = listen(&address(kind), server).await.unwrap();
    let address = listener.address().clone();
    let connecting = tokio::spawn(async move { connect(&address, Config::new("client")).await });
    let server = guard("accept", async {
        listener.accept().await.unwrap().handshake().await.unwrap()
    })
    .await;
    let client = guard("connect", connecting).await.unwrap().unwrap();
    (server, client)
}

fn three_frames() -> Message {
    Message::new(
        Header::from_serde(&"three").unwrap(),
        (0..3).map(|_| Bytes::from_static(b"frame")).collect(),
    )
}

fn expect_closed_by_peer(
    result: Result<impl std::fmt::Debug, TransportError>,
    code: CloseCode,
) -> CloseMessage {
    match result {
        Err(TransportError::ClosedByPeer { close, .. }) if close.code == code => close,
        other => panic!("expected ClosedByPeer with {code}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limits_is_refused_with_a_reason_the_sender_reads() {
    for kind in ["tcp", "unix"] {
        let mut config = Config::new("server");
        config.limits.max_frames = 2;
        let (mut server, mut client) = pair(kind, config).await;
        client.send(&three_frames()).await.unwrap();
        let refused = guard("server recv", server.recv()).await;
        assert!(
            matches!(
                refused,
                Err(TransportError::Decode {
                    source: DecodeError::TooManyFrames { count: 3, .. },
                    ..
                })
            ),
            "{kind}: {refused:?}"
        );
        // The server stays open (its comm is not dropped): the client's recv reads the reason.
        let close = expect_closed_by_peer(
            guard("client recv", client.recv()).await,
            CloseCode::TooLarge,
        );
        assert!(
            close.reason.contains("frame count 3"),
            "{kind}: {}",
            close.reason
        );
        // And so does every later send and recv.
        expect_closed_by_peer(client.send(&Message::default()).await, CloseCode::TooLarge);
        expect_closed_by_peer(client.recv().await, CloseCode::TooLarge);
        drop(server);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_senders_next_send_reports_the_reason_without_a_recv() {
    for kind in ["tcp", "unix"] {
        let mut config = Config::new("server");
        config.limits.max_frames = 2;
        let (mut server, mut client) = pair(kind, config).await;
        client.send(&three_frames()).await.unwrap();
        assert!(guard("server recv", server.recv()).await.is_err());
        // The refusing side is gone entirely.
        drop(server);
        // The client never calls recv: its sends (the first may still reach the socket's
        // buffer before the peer's close is seen) end in ClosedByPeer, not a broken pipe.
        let mut last = Ok(());
        for _ in 0..100 {
            last = guard("send", client.send(&Message::default())).await;
            if last.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        expect_closed_by_peer(last, CloseCode::TooLarge);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_refuses_with_not_accepted() {
    for kind in ["tcp", "unix"] {
        let (mut server, mut client) = pair(kind, Config::new("server")).await;
        client.send(&Message::default()).await.unwrap();
        assert!(guard("server recv", server.recv()).await.unwrap().is_some());
        server
            .refuse(
                CloseCode::NotAccepted,
                "family `custom` is not accepted here",
            )
            .await
            .unwrap();
        let close =
            expect_closed_by_peer(guard("recv", client.recv()).await, CloseCode::NotAccepted);
        assert_eq!(close.reason, "family `custom` is not accepted here");
        expect_closed_by_peer(
            client.send(&Message::default()).await,
            CloseCode::NotAccepted,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_going_away_close_is_a_clean_end() {
    let (mut server, client) = pair("tcp", Config::new("server")).await;
    client.close().await.unwrap();
    assert!(guard("recv", server.recv()).await.unwrap().is_none());
    assert!(guard("recv", server.recv()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_peer_sending_garbage_reads_a_malformed_close() {
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::new("server"))
        .await
        .unwrap();
    let Address::Tcp(host_port) = listener.address().clone() else {
        panic!("tcp")
    };
    let server = tokio::spawn(async move {
        let mut comm = listener.accept().await.unwrap().handshake().await.unwrap();
        let refused = comm.recv().await;
        // Keep the comm until the peer has read the close.
        (refused, comm)
    });
    let mut stream = tokio::net::TcpStream::connect(host_port).await.unwrap();
    let mut opening = preamble().to_vec();
    let hello = Hello::new(
        "raw",
        vec!["serde".into()],
        pontoon_wire::Codec::None,
        1 << 20,
    );
    opening.extend_from_slice(
        &Encoder::default()
            .encode(&hello.to_message())
            .unwrap()
            .to_bytes(),
    );
    stream.write_all(&opening).await.unwrap();
    // The server's preamble and hello.
    let mut buf = BytesMut::new();
    let mut decoder = Decoder::with_limits(Limits::default());
    while decoder.decode(&mut buf).unwrap().is_none() {
        assert!(stream.read_buf(&mut buf).await.unwrap() > 0);
    }
    stream
        .write_all(b"XX not a message at all, padding to 24+")
        .await
        .unwrap();
    let mut reader = MessageReader::without_preamble(Limits::default());
    let close = guard("close", async {
        loop {
            if let Some(received) = reader.read(&mut buf).unwrap() {
                match received {
                    Received::Close(close) => return close,
                    Received::Message(_) => panic!("no message was due"),
                }
            }
            assert!(
                stream.read_buf(&mut buf).await.unwrap() > 0,
                "no close before the end"
            );
        }
    })
    .await;
    assert_eq!(close.code, CloseCode::Malformed);
    assert!(close.reason.contains("marker"), "{}", close.reason);
    // After its close the server sends nothing: the stream ends.
    assert_eq!(stream.read_buf(&mut buf).await.unwrap(), 0);
    let (refused, _comm) = guard("server", server).await.unwrap();
    assert!(matches!(
        refused,
        Err(TransportError::Decode {
            source: DecodeError::BadMarker { .. },
            ..
        })
    ));
}
