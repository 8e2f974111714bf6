//! Round trips over tcp (loopback), unix and inproc comms: messages of every shape come back
//! equal and 64-byte aligned, pipelined and in both directions; the handshake's peer, codecs
//! and context; a clean close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use pontoon_transport::{
    Address, Comm, Compression, Config, FRAME_ALIGN, Listener, TransportError, connect, listen,
};
use pontoon_wire::{Codec, Header, Message};

/// Hang guard for every await that should finish.
const GUARD: Duration = Duration::from_secs(60);

async fn guard<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

/// A unique address for each transport kind.
fn address(kind: &str) -> Address {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    match kind {
        "tcp" => "tcp://127.0.0.1:0".parse().unwrap(),
        "unix" => {
            let path = std::env::temp_dir().join(format!("pontoon-roundtrip-{pid}-{n}.sock"));
            let _ = std::fs::remove_file(&path);
            Address::Unix(path)
        }
        "inproc" => format!("inproc://roundtrip-{pid}-{n}").parse().unwrap(),
        other => panic!("unknown kind {other}"),
    }
}

fn server_config() -> Config {
    let mut config = Config::new("server");
    config.accepts = Some(vec!["serde".into(), "x-family".into()]);
    config.limits.max_message_bytes = 1 << 30;
    config
}

fn client_config() -> Config {
    let mut config = Config::new("client");
    config.accepts = Some(vec!["custom".into()]);
    config.limits.max_message_bytes = 512 << 20;
    config
}

/// One connected pair: (listener, server side, client side).
async fn pair_at(listener: &mut Listener, client: Config) -> (Comm, Comm) {
    let address = listener.address().clone();
    let connecting = tokio::spawn(async move { connect(&address, client).await });
    let server = guard("accept", async {
        listener.accept().await.unwrap().handshake().await.unwrap()
    })
    .await;
    let client = guard("connect", connecting).await.unwrap().unwrap();
    (server, client)
}

async fn pair(kind: &str, server: Config, client: Config) -> (Listener, Comm, Comm) {
    let mut listener = listen(&address(kind), server).await.unwrap();
    let (s, c) = pair_at(&mut listener, client).await;
    (listener, s, c)
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// The messages every transport carries.
fn shapes() -> Vec<Message> {
    let many: Vec<Bytes> = (0..1000).map(|i| pattern(i % 200, i as u8)).collect();
    vec![
        Message::default(),
        Message::new(Header::from_serde(&("no frames", 0u32)).unwrap(), vec![]),
        Message::new(
            Header::from_serde(&("small", 2u32)).unwrap(),
            vec![Bytes::from_static(b"hello"), Bytes::from_static(b"world!")],
        ),
        Message::new(
            Header::from_serde(&"one byte").unwrap(),
            vec![pattern(1, 9)],
        ),
        Message::new(
            Header::from_serde(&"one MiB").unwrap(),
            vec![pattern(1 << 20, 1)],
        ),
        Message::new(
            Header::from_serde(&"64 MiB").unwrap(),
            vec![pattern(64 << 20, 2)],
        ),
        Message::new(Header::from_serde(&"many").unwrap(), many),
    ]
}

fn check_aligned(message: &Message) {
    for (i, frame) in message.frames.iter().enumerate() {
        assert_eq!(
            frame.as_ptr() as usize % FRAME_ALIGN,
            0,
            "frame {i} of {} bytes is not {FRAME_ALIGN}-byte aligned",
            frame.len()
        );
    }
}

/// Sends `messages` from `from` to `to` (concurrently, so that large messages do not deadlock
/// on the buffers) and checks each arrives equal and aligned. Gives both comms back.
async fn carry(mut from: Comm, mut to: Comm, messages: Vec<Message>) -> (Comm, Comm) {
    let expected = messages.clone();
    let sending = tokio::spawn(async move {
        for message in &messages {
            from.send(message).await.unwrap();
        }
        from
    });
    for (i, want) in expected.iter().enumerate() {
        let got = guard("recv", to.recv()).await.unwrap().expect("a message");
        assert_eq!(got.header, want.header, "message {i}: header");
        assert_eq!(
            got.frames.len(),
            want.frames.len(),
            "message {i}: frame count"
        );
        assert!(got == *want, "message {i}: frames differ");
        check_aligned(&got);
    }
    let from = guard("send", sending).await.unwrap();
    (from, to)
}

async fn suite(kind: &str) {
    let (mut listener, server, client) = pair(kind, server_config(), client_config()).await;

    // What each side learnt in the handshake.
    assert_eq!(server.peer().identity, "client");
    assert_eq!(client.peer().identity, "server");
    assert_eq!(client.peer().accepts, ["serde", "x-family"]);
    assert_eq!(server.peer().accepts, ["custom"]);
    assert_eq!(client.peer().max_message_bytes, 1 << 30);
    assert_eq!(server.peer().max_message_bytes, 512 << 20);
    assert_eq!(server.accepts(), ["serde", "x-family"]);
    for comm in [&server, &client] {
        // Auto compression on a local transport sends uncompressed.
        assert_eq!(comm.peer().send_codec, Codec::None, "{kind}");
        assert_eq!(comm.peer().receive_codec, Codec::None, "{kind}");
        let context = comm.context();
        assert_eq!(
            context.sender.as_deref(),
            Some(comm.local_address().to_string().as_str())
        );
        assert_eq!(
            context.recipient.as_deref(),
            Some(comm.remote_address().to_string().as_str())
        );
        assert!(context.shares_memory, "{kind}: shares_memory");
    }

    // Every shape, client to server, then server to client.
    let (client, server) = carry(client, server, shapes()).await;
    let (server, mut client) = carry(server, client, shapes()).await;

    // Pipelined: many small messages fed, then one flush.
    let mut server = server;
    let sending = tokio::spawn(async move {
        for i in 0..2000u32 {
            let frames = if i % 3 == 0 {
                vec![]
            } else {
                vec![pattern(i as usize % 300, i as u8)]
            };
            client
                .feed(&Message::new(Header::from_serde(&i).unwrap(), frames))
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
        client
    });
    for i in 0..2000u32 {
        let got = guard("recv pipelined", server.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.header.deserialize::<u32>().unwrap(), i);
        let want_len = if i % 3 == 0 {
            None
        } else {
            Some(i as usize % 300)
        };
        assert_eq!(got.frames.first().map(Bytes::len), want_len);
        if let Some(frame) = got.frames.first() {
            assert_eq!(*frame, pattern(i as usize % 300, i as u8));
        }
        check_aligned(&got);
    }
    let mut client = guard("send pipelined", sending).await.unwrap();

    // Sequential ping-pong.
    for i in 0..200u32 {
        let ping = Message::new(
            Header::from_serde(&("ping", i)).unwrap(),
            vec![pattern(100, 3)],
        );
        client.send(&ping).await.unwrap();
        let got = guard("ping", server.recv()).await.unwrap().unwrap();
        assert_eq!(got, ping);
        let pong = Message::new(
            Header::from_serde(&("pong", i)).unwrap(),
            vec![pattern(200, 4)],
        );
        server.send(&pong).await.unwrap();
        assert_eq!(guard("pong", client.recv()).await.unwrap().unwrap(), pong);
    }

    // Both directions at once: a second connection carries server-to-client traffic while the
    // first carries client-to-server traffic.
    let (server2, client2) = pair_at(&mut listener, client_config()).await;
    let big = |seed| {
        (0..8)
            .map(|i| {
                Message::new(
                    Header::from_serde(&i).unwrap(),
                    vec![pattern(4 << 20, seed + i as u8)],
                )
            })
            .collect::<Vec<_>>()
    };
    let up = tokio::spawn(carry(client, server, big(10)));
    let down = tokio::spawn(carry(server2, client2, big(50)));
    let (client, server) = guard("up", up).await.unwrap();
    let (server2, client2) = guard("down", down).await.unwrap();
    drop((server2, client2));

    // A clean close reads as the end of the stream.
    let mut server = server;
    guard("close", client.close()).await.unwrap();
    assert!(
        guard("recv after close", server.recv())
            .await
            .unwrap()
            .is_none()
    );
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_tcp() {
    suite("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_unix() {
    suite("unix").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_inproc() {
    suite("inproc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_lz4_over_loopback_round_trips() {
    let mut client = client_config();
    client.compression = Compression::With(Codec::Lz4);
    let (_listener, server, client) = pair("tcp", server_config(), client).await;
    assert_eq!(client.peer().send_codec, Codec::Lz4);
    assert_eq!(server.peer().receive_codec, Codec::Lz4);
    assert_eq!(server.peer().send_codec, Codec::None);
    assert_eq!(client.peer().receive_codec, Codec::None);

    let compressible = Bytes::from(vec![7u8; 4 << 20]);
    let messages = vec![
        Message::new(
            Header::from_serde(&"zeros").unwrap(),
            vec![compressible.clone()],
        ),
        Message::new(
            Header::from_serde(&"mixed").unwrap(),
            vec![
                pattern(1 << 20, 5),
                Bytes::from_static(b"tiny"),
                compressible,
            ],
        ),
        Message::default(),
    ];
    let expected = messages.clone();
    let mut client = client;
    let sending = tokio::spawn(async move {
        for message in &messages {
            client.send(message).await.unwrap();
        }
        client
    });
    let mut server = server;
    for want in &expected {
        let got = guard("recv lz4", server.recv()).await.unwrap().unwrap();
        assert!(got == *want, "an lz4 message came back different");
    }
    let client = guard("send lz4", sending).await.unwrap();
    client.close().await.unwrap();
    assert!(server.recv().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_nothing_is_an_error() {
    let err = connect(&address("inproc"), client_config())
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Inproc(_)), "{err}");
    let err = connect(&address("unix"), client_config())
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Io { .. }), "{err}");
}
