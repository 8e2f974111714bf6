//! Hostile and broken peers, from raw sockets: each costs its own connection a typed error, and
//! a well-behaved client connecting afterwards to the same listener is still served.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pontoon_family::{DeserializeError, Dumped, Registry, SerializeError};
use pontoon_transport::{
    Address, Config, Endpoint, EndpointError, HandshakeError, Listener, PROTOCOL_VERSION,
    TransportError, connect, listen,
};
use pontoon_wire::{DecodeError, Decoder, Encoder, Header, Limits, Message, preamble};
use rmpv::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::mpsc;

/// Hang guard for every await that should finish.
const GUARD: Duration = Duration::from_secs(30);

async fn guard<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

/// What the server saw on one connection.
#[derive(Debug)]
enum Event {
    Handshake(Result<String, TransportError>),
    Recv(Result<Option<Message>, TransportError>),
}

/// A listener whose accept loop runs each handshake in a task, then echoes every message and
/// records what happened; each connection's events arrive on a channel of their own.
fn serve(mut listener: Listener) -> mpsc::UnboundedReceiver<mpsc::UnboundedReceiver<Event>> {
    let (conns_tx, conns_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(incoming) = listener.accept().await {
            let (tx, rx) = mpsc::unbounded_channel();
            if conns_tx.send(rx).is_err() {
                return;
            }
            tokio::spawn(async move {
                let mut comm = match incoming.handshake().await {
                    Ok(comm) => {
                        let _ = tx.send(Event::Handshake(Ok(comm.peer().identity.clone())));
                        comm
                    }
                    Err(e) => {
                        let _ = tx.send(Event::Handshake(Err(e)));
                        return;
                    }
                };
                loop {
                    let got = comm.recv().await;
                    let done = !matches!(got, Ok(Some(_)));
                    if let Ok(Some(message)) = &got
                        && comm.send(message).await.is_err()
                    {
                        return;
                    }
                    let _ = tx.send(Event::Recv(got));
                    if done {
                        return;
                    }
                }
            });
        }
    });
    conns_rx
}

async fn tcp_server(
    config: Config,
) -> (
    Address,
    mpsc::UnboundedReceiver<mpsc::UnboundedReceiver<Event>>,
) {
    let listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let address = listener.address().clone();
    (address, serve(listener))
}

fn tcp_host(address: &Address) -> String {
    match address {
        Address::Tcp(host_port) => host_port.clone(),
        other => panic!("not tcp: {other}"),
    }
}

/// The hello handshake.rs sends, with this protocol version.
fn hello(protocol: u64, identity: &str) -> Bytes {
    let header = Value::Map(vec![
        ("protocol".into(), protocol.into()),
        ("identity".into(), identity.into()),
        (
            "accepts".into(),
            Value::Array(vec!["custom".into(), "serde".into()]),
        ),
        (
            "decodes".into(),
            Value::Array(vec!["lz4".into(), "zstd".into()]),
        ),
        ("compression".into(), "none".into()),
        ("max_message".into(), (16u64 << 30).into()),
    ]);
    Encoder::default()
        .encode(&Message::new(Header::from_value(&header), vec![]))
        .unwrap()
        .to_bytes()
}

/// Preamble and hello, as a real client sends them.
fn opening() -> Vec<u8> {
    let mut out = preamble().to_vec();
    out.extend_from_slice(&hello(PROTOCOL_VERSION, "raw"));
    out
}

/// Reads the peer's preamble and hello (so that closing later is a clean FIN, not a reset).
async fn read_hello<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Message, DecodeError> {
    let mut limits = Limits::default();
    limits.max_message_bytes = 1 << 20;
    let mut decoder = Decoder::with_limits(limits);
    let mut buf = BytesMut::new();
    loop {
        if let Some(message) = decoder.decode(&mut buf)? {
            return Ok(message);
        }
        let n = guard("read hello", stream.read_buf(&mut buf))
            .await
            .unwrap();
        assert!(n > 0, "the peer closed before its hello");
    }
}

/// A raw client that has done the handshake by hand.
async fn raw_client(address: &Address) -> TcpStream {
    let mut stream = TcpStream::connect(tcp_host(address)).await.unwrap();
    stream.write_all(&opening()).await.unwrap();
    read_hello(&mut stream).await.unwrap();
    stream
}

fn encoded(message: &Message) -> Vec<u8> {
    Encoder::default()
        .encode(message)
        .unwrap()
        .to_bytes()
        .to_vec()
}

fn one_frame(len: usize) -> Message {
    Message::new(
        Header::from_serde(&"frame").unwrap(),
        vec![Bytes::from(vec![0xAB; len])],
    )
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    guard("server event", events.recv())
        .await
        .expect("an event")
}

/// Checks that a well-behaved client is served: it connects, sends, and gets the echo.
async fn well_behaved(
    address: &Address,
    conns: &mut mpsc::UnboundedReceiver<mpsc::UnboundedReceiver<Event>>,
) {
    let mut comm = guard("connect", connect(address, Config::new("good")))
        .await
        .unwrap();
    let mut events = guard("accept", conns.recv()).await.unwrap();
    let message = Message::new(
        Header::from_serde(&("hello", 1u8)).unwrap(),
        vec![Bytes::from(vec![1u8; 100_000])],
    );
    comm.send(&message).await.unwrap();
    assert_eq!(guard("echo", comm.recv()).await.unwrap().unwrap(), message);
    assert!(matches!(next_event(&mut events).await, Event::Handshake(Ok(id)) if id == "good"));
    assert!(matches!(
        next_event(&mut events).await,
        Event::Recv(Ok(Some(_)))
    ));
    comm.close().await.unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Recv(Ok(None))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_the_preamble() {
    let (address, mut conns) = tcp_server(Config::new("server")).await;
    let mut stream = TcpStream::connect(tcp_host(&address)).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut events = guard("accept", conns.recv()).await.unwrap();
    match next_event(&mut events).await {
        Event::Handshake(Err(TransportError::Handshake(HandshakeError::Decode(
            DecodeError::BadMagic { offset: 0, found },
        )))) => assert_eq!(found, b"GET / "),
        other => panic!("expected a handshake error, got {other:?}"),
    }
    drop(stream);
    well_behaved(&address, &mut conns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_of_two_to_the_63_bytes_is_refused_at_once() {
    let (address, mut conns) = tcp_server(Config::new("server")).await;
    let mut stream = raw_client(&address).await;
    let mut events = guard("accept", conns.recv()).await.unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Handshake(Ok(_))
    ));
    // A valid one-frame message, its frame table entry patched to claim 2^63 bytes.
    let mut bytes = encoded(&one_frame(16));
    bytes[24..32].copy_from_slice(&(1u64 << 63).to_le_bytes());
    bytes[32..40].copy_from_slice(&(1u64 << 63).to_le_bytes());
    stream.write_all(&bytes).await.unwrap();
    // The client stays connected and silent: the error must come from the head alone.
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(Event::Recv(Err(TransportError::Decode { source, .. })))) => assert!(
            matches!(
                source,
                DecodeError::FrameTooLarge { .. } | DecodeError::MessageTooLarge { .. }
            ),
            "{source}"
        ),
        other => panic!("expected a decode error at once, got {other:?}"),
    }
    drop(stream);
    well_behaved(&address, &mut conns).await;
}

/// This process's address space, in bytes (`VmSize` in /proc/self/status): what a reservation
/// costs even before its pages are touched.
fn address_space_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmSize:"))
        .expect("a VmSize line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmSize in kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_declared_huge_reserve_only_what_arrives() {
    // Eight peers each declare a 15 GiB frame (within the default limits of 16 GiB) and send
    // 256 KiB of it. Memory is reserved as bytes arrive: the receiver's address space grows by
    // about what was sent, not by the 120 GiB declared.
    let (address, mut conns) = tcp_server(Config::new("server")).await;
    let before = address_space_bytes();
    let mut peers = Vec::new();
    let sent = 256 << 10;
    for _ in 0..8 {
        let mut stream = raw_client(&address).await;
        let mut events = guard("accept", conns.recv()).await.unwrap();
        assert!(matches!(
            next_event(&mut events).await,
            Event::Handshake(Ok(_))
        ));
        let mut bytes = encoded(&one_frame(sent));
        bytes[24..32].copy_from_slice(&(15u64 << 30).to_le_bytes());
        bytes[32..40].copy_from_slice(&(15u64 << 30).to_le_bytes());
        stream.write_all(&bytes).await.unwrap();
        peers.push((stream, events));
    }
    // Give the server tasks a moment to take the bytes (a pause, not a timing assertion): a
    // recv must not return on a partial frame.
    for (_, events) in &mut peers {
        if let Ok(event) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            panic!("the server's recv returned on a partial frame: {event:?}");
        }
    }
    let grown = address_space_bytes().saturating_sub(before);
    assert!(
        grown < 8 << 30,
        "the address space grew by {grown} bytes for 8 x {sent} bytes received"
    );
    // All of them leave. Only one of them at a time can be granted receive budget (together
    // they declare far more than it), and one that waits for budget reads nothing, so each
    // sees its end of stream once the one before it has gone.
    let (streams, events): (Vec<_>, Vec<_>) = peers.into_iter().unzip();
    drop(streams);
    for mut events in events {
        match next_event(&mut events).await {
            Event::Recv(Err(TransportError::Truncated { .. })) => {}
            other => panic!("expected Truncated, got {other:?}"),
        }
    }
    well_behaved(&address, &mut conns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_frames() {
    let mut config = Config::new("server");
    config.limits.max_frames = 8;
    let (address, mut conns) = tcp_server(config).await;
    let mut stream = raw_client(&address).await;
    let mut events = guard("accept", conns.recv()).await.unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Handshake(Ok(_))
    ));
    let frames = (0..9).map(|_| Bytes::from_static(b"x")).collect();
    stream
        .write_all(&encoded(&Message::new(Header::empty(), frames)))
        .await
        .unwrap();
    match next_event(&mut events).await {
        Event::Recv(Err(TransportError::Decode { source, .. })) => assert!(
            matches!(
                source,
                DecodeError::TooManyFrames {
                    count: 9,
                    limit: 8,
                    ..
                }
            ),
            "{source}"
        ),
        other => panic!("expected TooManyFrames, got {other:?}"),
    }
    // And a count near 2^64, with the default limit, from a patched message.
    drop(stream);
    let (address2, mut conns2) = tcp_server(Config::new("server")).await;
    let mut stream = raw_client(&address2).await;
    let mut events = guard("accept", conns2.recv()).await.unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Handshake(Ok(_))
    ));
    let mut bytes = encoded(&one_frame(4));
    bytes[8..16].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    stream.write_all(&bytes).await.unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Recv(Err(TransportError::Decode {
            source: DecodeError::TooManyFrames { .. },
            ..
        }))
    ));
    drop(stream);
    well_behaved(&address, &mut conns).await;
    well_behaved(&address2, &mut conns2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_message_then_silence_then_close() {
    let (address, mut conns) = tcp_server(Config::new("server")).await;
    let mut stream = raw_client(&address).await;
    let mut events = guard("accept", conns.recv()).await.unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Handshake(Ok(_))
    ));
    let bytes = encoded(&one_frame(10_000));
    stream.write_all(&bytes[..bytes.len() / 2]).await.unwrap();
    // The server waits for the rest (a hang guard, not a timing assertion).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.recv())
            .await
            .is_err(),
        "the server's recv returned on half a message"
    );
    drop(stream);
    match next_event(&mut events).await {
        Event::Recv(Err(TransportError::Truncated { .. })) => {}
        other => panic!("expected Truncated, got {other:?}"),
    }
    well_behaved(&address, &mut conns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_in_the_middle_of_a_head_or_a_frame() {
    let (address, mut conns) = tcp_server(Config::new("server")).await;
    let bytes = encoded(&one_frame(300_000));
    // Cut inside the prefix, inside the header, and inside the frame.
    for cut in [10, 30, bytes.len() - 1000] {
        let mut stream = raw_client(&address).await;
        let mut events = guard("accept", conns.recv()).await.unwrap();
        assert!(matches!(
            next_event(&mut events).await,
            Event::Handshake(Ok(_))
        ));
        stream.write_all(&bytes[..cut]).await.unwrap();
        stream.shutdown().await.unwrap();
        match next_event(&mut events).await {
            Event::Recv(Err(TransportError::Truncated { .. })) => {}
            other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
        }
    }
    well_behaved(&address, &mut conns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_mismatch_is_seen_on_both_sides() {
    // A raw client speaking version 2 of the stream format.
    let (address, mut conns) = tcp_server(Config::new("server")).await;
    let mut stream = TcpStream::connect(tcp_host(&address)).await.unwrap();
    let mut opening = preamble().to_vec();
    opening[6..8].copy_from_slice(&2u16.to_le_bytes());
    opening.extend_from_slice(&hello(PROTOCOL_VERSION, "v2"));
    stream.write_all(&opening).await.unwrap();
    let mut events = guard("accept", conns.recv()).await.unwrap();
    match next_event(&mut events).await {
        Event::Handshake(Err(TransportError::VersionMismatch { peer: 2, ours: 1 })) => {}
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
    // The server wrote its preamble and hello first: a real client would see the mismatch too.
    let hello = read_hello(&mut stream).await.unwrap();
    let value = hello.header.to_value().unwrap();
    let protocol = value
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_str() == Some("protocol"))
        .and_then(|(_, v)| v.as_u64());
    assert_eq!(protocol, Some(PROTOCOL_VERSION));
    drop(stream);

    // A raw client whose hello says protocol 2.
    let mut stream = TcpStream::connect(tcp_host(&address)).await.unwrap();
    let mut opening = preamble().to_vec();
    opening.extend_from_slice(&self::hello(2, "p2"));
    stream.write_all(&opening).await.unwrap();
    let mut events = guard("accept", conns.recv()).await.unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Handshake(Err(TransportError::VersionMismatch { peer: 2, ours: 1 }))
    ));
    drop(stream);
    well_behaved(&address, &mut conns).await;
}

/// A raw server that answers every connection with this preamble version and hello protocol.
async fn raw_server(version: u16, protocol: u64) -> Address {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: Address = format!("tcp://{}", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut opening = preamble().to_vec();
                opening[6..8].copy_from_slice(&version.to_le_bytes());
                opening.extend_from_slice(&hello(protocol, "future"));
                let _ = stream.write_all(&opening).await;
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_client_reports_a_version_mismatch() {
    for (version, protocol) in [(2, PROTOCOL_VERSION), (1, 2)] {
        let address = raw_server(version, protocol).await;
        let err = guard("connect", connect(&address, Config::new("client")))
            .await
            .unwrap_err();
        assert!(
            matches!(err, TransportError::VersionMismatch { peer: 2, ours: 1 }),
            "{err}"
        );
    }
}

/// A type that only the `custom` family serializes.
struct Secret(u64);

fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
        let mut registry = Registry::new();
        registry
            .register::<Secret, _, _>(
                "test.Secret",
                |secret, _| Ok(Dumped::new(Value::from(secret.0), vec![])),
                |loaded, _| Ok(Secret(loaded.meta.as_u64().ok_or("not a number")?)),
            )
            .unwrap();
        registry
    });
    &REGISTRY
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_the_receiver_does_not_accept() {
    let mut config = Config::new("server");
    config.accepts = Some(vec!["serde".into()]);
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let address = listener.address().clone();
    let (tx, mut results) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(incoming) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let comm = incoming.handshake().await.unwrap();
                let mut endpoint = Endpoint::new(comm, registry()).unwrap();
                loop {
                    let got = endpoint.recv::<u64>().await;
                    let done = !matches!(got, Ok(Some(_)));
                    if let Ok(Some(n)) = &got {
                        endpoint.send(&(n + 1)).await.unwrap();
                    }
                    let _ = tx.send(got);
                    if done {
                        return;
                    }
                }
            });
        }
    });

    // The client's endpoint only serializes with families the server accepts: a value only
    // `custom` takes is refused before anything is sent, and the connection still works.
    let comm = connect(&address, Config::new("client")).await.unwrap();
    assert_eq!(comm.peer().accepts, ["serde"]);
    let mut endpoint = Endpoint::new(comm, registry()).unwrap();
    let err = endpoint.send_dyn(&Secret(7)).await.unwrap_err();
    assert!(
        matches!(&err, EndpointError::Serialize(SerializeError::NoFamily { tried, .. }) if tried == &["serde"]),
        "{err}"
    );
    endpoint.send(&41u64).await.unwrap();
    assert_eq!(
        guard("echo", endpoint.recv::<u64>()).await.unwrap(),
        Some(42)
    );
    assert!(matches!(
        guard("result", results.recv()).await,
        Some(Ok(Some(41)))
    ));

    // The same value sent raw, through a plain comm, in the `custom` family: the server's
    // endpoint refuses it.
    let mut comm = connect(&address, Config::new("raw")).await.unwrap();
    let message = registry().serialize_dyn(&Secret(7)).unwrap();
    comm.send(&message).await.unwrap();
    match guard("result", results.recv()).await {
        Some(Err(EndpointError::Deserialize(DeserializeError::NotAccepted {
            family,
            deserializers,
        }))) => {
            assert_eq!(family, "custom");
            assert_eq!(deserializers, ["serde"]);
        }
        other => panic!("expected NotAccepted, got {other:?}"),
    }
    drop(comm);

    // A well-behaved client after both.
    let comm = connect(&address, Config::new("good")).await.unwrap();
    let mut endpoint = Endpoint::new(comm, registry()).unwrap();
    endpoint.send(&1u64).await.unwrap();
    assert_eq!(
        guard("echo", endpoint.recv::<u64>()).await.unwrap(),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_over_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("pontoon-hostile-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let address = Address::Unix(path.clone());
    let listener = listen(&address, Config::new("server")).await.unwrap();
    let mut conns = serve(listener);
    let mut stream = UnixStream::connect(&path).await.unwrap();
    stream.write_all(&opening()).await.unwrap();
    read_hello(&mut stream).await.unwrap();
    let mut events = guard("accept", conns.recv()).await.unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Handshake(Ok(_))
    ));
    let mut bytes = encoded(&one_frame(16));
    bytes[0] = b'X';
    stream.write_all(&bytes).await.unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Recv(Err(TransportError::Decode {
            source: DecodeError::BadMarker { .. },
            ..
        }))
    ));
    drop(stream);
    well_behaved(&address, &mut conns).await;
}
