//! The receive budget a listener's connections share, over real sockets: however many peers
//! send large messages at once, the messages still arriving hold at most the budget; every
//! message arrives whole; a message larger than the whole budget is received alone; a silent
//! peer holds only what it sent; messages that cannot all fit never wait on each other for
//! good; a recv cancelled while it waits for budget loses nothing; and the receive pool gives
//! its memory back as connections close.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pontoon_transport::{Address, Comm, Config, Listener, PROTOCOL_VERSION, connect, listen};
use pontoon_wire::{Decoder, Encoder, Header, Limits, Message, preamble};
use rmpv::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Hang guard for every await that should finish.
const GUARD: Duration = Duration::from_secs(60);

async fn guard<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

/// Bytes that differ with the seed and the position, so that a misplaced or lost piece shows.
fn pattern(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn message(len: usize, seed: u64) -> Message {
    Message::new(
        Header::from_serde(&("budget", seed)).unwrap(),
        vec![pattern(len, seed)],
    )
}

async fn tcp_listener(config: Config) -> Listener {
    listen(&"tcp://127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

fn config(budget: u64) -> Config {
    let mut config = Config::new("server");
    config.receive_budget_bytes = budget;
    config
}

/// `n` connected pairs to `listener`: (client, server).
async fn pairs(listener: &mut Listener, n: usize) -> Vec<(Comm, Comm)> {
    let mut out = Vec::new();
    for i in 0..n {
        let address = listener.address().clone();
        let client =
            tokio::spawn(
                async move { connect(&address, Config::new(format!("client-{i}"))).await },
            );
        let server = guard("accept", async {
            listener.accept().await.unwrap().handshake().await.unwrap()
        })
        .await;
        out.push((client.await.unwrap().unwrap(), server));
    }
    out
}

/// Samples `listener.budget_in_use_bytes()` until `done` finishes: the most seen, and `done`'s
/// output.
async fn watch_budget<T>(listener: &Listener, done: tokio::task::JoinHandle<T>) -> (u64, T) {
    let mut peak = 0;
    let mut done = std::pin::pin!(done);
    loop {
        peak = peak.max(listener.budget_in_use_bytes());
        tokio::select! {
            out = &mut done => return (peak, out.unwrap()),
            () = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
    }
}

const MESSAGES_PER_PEER: u64 = 3;

/// Eight peers each send three 3 MiB messages at once to a listener whose budget is 8 MiB, and
/// every server connection receives at the same time: the budget in use never exceeds 8 MiB,
/// and all 24 messages arrive intact. (Granting steps without the banker's rule, this hung:
/// half-received messages each waited for the others' budget.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_peers_share_a_small_budget() {
    const BUDGET: u64 = 8 << 20;
    const FRAME: usize = 3 << 20;
    let mut listener = tcp_listener(config(BUDGET)).await;
    let pairs = pairs(&mut listener, 8).await;
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (peer, (mut client, mut server)) in pairs.into_iter().enumerate() {
        senders.push(tokio::spawn(async move {
            for n in 0..MESSAGES_PER_PEER {
                client
                    .send(&message(FRAME, peer as u64 * 100 + n))
                    .await
                    .unwrap();
            }
            client
        }));
        receivers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..MESSAGES_PER_PEER {
                got.push(server.recv().await.unwrap().expect("a message"));
            }
            (peer as u64, got)
        }));
    }
    let all = tokio::spawn(async move {
        let mut out = Vec::new();
        for receiver in receivers {
            out.push(receiver.await.unwrap());
        }
        out
    });
    let (peak, received) = guard("all messages", watch_budget(&listener, all)).await;
    assert!(
        peak <= BUDGET,
        "{peak} bytes of budget in use, over {BUDGET}"
    );
    assert!(
        peak >= FRAME as u64,
        "the budget was never held by a message ({peak} bytes at most)"
    );
    for (peer, got) in received {
        for (n, m) in got.into_iter().enumerate() {
            assert_eq!(
                m,
                message(FRAME, peer * 100 + n as u64),
                "peer {peer}, message {n}"
            );
        }
    }
    assert_eq!(listener.budget_in_use_bytes(), 0, "budget not given back");
    for sender in senders {
        drop(guard("sender", sender).await.unwrap());
    }
}

/// A message of 4 MiB to a listener whose budget is 1 MiB takes the whole budget and arrives;
/// a 2 MiB message from another peer at the same time waits for it and arrives too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_budget_is_received_alone() {
    const BUDGET: u64 = 1 << 20;
    let mut listener = tcp_listener(config(BUDGET)).await;
    let mut pairs = pairs(&mut listener, 2).await;
    let (mut small_client, mut small_server) = pairs.pop().unwrap();
    let (mut big_client, mut big_server) = pairs.pop().unwrap();
    let big = tokio::spawn(async move {
        big_client.send(&message(4 << 20, 1)).await.unwrap();
        big_client
    });
    let small = tokio::spawn(async move {
        small_client.send(&message(2 << 20, 2)).await.unwrap();
        small_client
    });
    let both = tokio::spawn(async move {
        let (a, b) = tokio::join!(big_server.recv(), small_server.recv());
        (a.unwrap().unwrap(), b.unwrap().unwrap())
    });
    let (peak, (a, b)) = guard("both messages", watch_budget(&listener, both)).await;
    assert_eq!(a, message(4 << 20, 1));
    assert_eq!(b, message(2 << 20, 2));
    assert!(
        peak <= BUDGET,
        "{peak} bytes of budget in use, over {BUDGET}"
    );
    assert_eq!(listener.budget_in_use_bytes(), 0);
    drop((big.await.unwrap(), small.await.unwrap()));
}

/// The hello handshake.rs sends.
fn hello(identity: &str) -> Bytes {
    let header = Value::Map(vec![
        ("protocol".into(), PROTOCOL_VERSION.into()),
        ("identity".into(), identity.into()),
        (
            "accepts".into(),
            Value::Array(vec!["custom".into(), "serde".into()]),
        ),
        ("decodes".into(), Value::Array(vec![])),
        ("compression".into(), "none".into()),
        ("max_message".into(), (16u64 << 30).into()),
    ]);
    Encoder::default()
        .encode(&Message::new(Header::from_value(&header), vec![]))
        .unwrap()
        .to_bytes()
}

/// A raw client that has done the handshake by hand, to send a message a piece at a time.
async fn raw_client(address: &Address) -> TcpStream {
    let Address::Tcp(host_port) = address else {
        panic!("not tcp: {address}");
    };
    let mut stream = TcpStream::connect(host_port).await.unwrap();
    let mut opening = preamble().to_vec();
    opening.extend_from_slice(&hello("raw"));
    stream.write_all(&opening).await.unwrap();
    let mut limits = Limits::default();
    limits.max_message_bytes = 1 << 20;
    let mut decoder = Decoder::with_limits(limits);
    let mut buf = BytesMut::new();
    while decoder.decode(&mut buf).unwrap().is_none() {
        let n = guard("read hello", stream.read_buf(&mut buf))
            .await
            .unwrap();
        assert!(n > 0, "the server closed before its hello");
    }
    stream
}

/// The server side of a raw client: accepts while the client shakes hands.
async fn raw_pair(listener: &mut Listener) -> (TcpStream, Comm) {
    let address = listener.address().clone();
    let client = tokio::spawn(async move { raw_client(&address).await });
    let server = guard("accept", async {
        listener.accept().await.unwrap().handshake().await.unwrap()
    })
    .await;
    (client.await.unwrap(), server)
}

fn wire(message: &Message) -> Vec<u8> {
    Encoder::default()
        .encode(message)
        .unwrap()
        .to_bytes()
        .to_vec()
}

/// Waits (polling the gauge) until the listener's budget in use reaches `at_least`.
async fn budget_reaches(listener: &Listener, at_least: u64) {
    guard("budget taken", async {
        while listener.budget_in_use_bytes() < at_least {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// A slow peer holds budget with a message it sends a piece at a time; a recv on another
/// connection that waits for budget is cancelled by a timeout, again and again, and loses
/// nothing: once the slow message is whole and handed over, the waiting message arrives whole.
/// (Before the budget existed, the second recv did not wait at all: the first timeout did not
/// fire.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recv_cancelled_while_it_waits_for_budget_loses_nothing() {
    const BUDGET: u64 = 1 << 20;
    let mut listener = tcp_listener(config(BUDGET)).await;
    let (mut slow, mut slow_server) = raw_pair(&mut listener).await;
    let (mut client, mut server) = pairs(&mut listener, 1).await.pop().unwrap();

    // All but the last 32 KiB: by then it has been granted all it declared.
    let slow_message = message(960 << 10, 7);
    let slow_wire = wire(&slow_message);
    let first = slow_wire.len() - (32 << 10);
    slow.write_all(&slow_wire[..first]).await.unwrap();
    let slow_recv = tokio::spawn(async move {
        let got = slow_server.recv().await.unwrap().unwrap();
        (got, slow_server)
    });
    budget_reaches(&listener, 960 << 10).await;

    let waiting = message(512 << 10, 8);
    let sent = waiting.clone();
    let sender = tokio::spawn(async move {
        client.send(&sent).await.unwrap();
        client
    });
    let mut cancelled = 0;
    for _ in 0..5 {
        match tokio::time::timeout(Duration::from_millis(20), server.recv()).await {
            Err(_) => cancelled += 1,
            Ok(got) => panic!("received while the budget was spent: {got:?}"),
        }
    }
    assert_eq!(cancelled, 5);
    assert!(listener.budget_in_use_bytes() <= BUDGET);

    // The slow peer finishes; its message is handed over and gives its budget back.
    slow.write_all(&slow_wire[first..]).await.unwrap();
    let (got, _slow_server) = guard("the slow message", slow_recv).await.unwrap();
    assert_eq!(got, slow_message);
    let got = guard("the waiting message", server.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, waiting);
    drop(guard("sender", sender).await.unwrap());
}

/// A peer that declares a 3 MiB message to a listener with a budget of 4 MiB, sends half of
/// it and goes silent holds only about what it sent: two messages of 2 MiB from another peer
/// (which could not both fit beside the 3 MiB it declared) arrive meanwhile, and once the
/// silent peer sends the rest, its message arrives too. (When a message took all it declared
/// at its head, the first 2 MiB message waited for the silent peer and the test hung.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_holds_only_what_it_sent() {
    const BUDGET: u64 = 4 << 20;
    let mut listener = tcp_listener(config(BUDGET)).await;
    let (mut slow, mut slow_server) = raw_pair(&mut listener).await;
    let (mut client, mut server) = pairs(&mut listener, 1).await.pop().unwrap();
    let slow_message = message(3 << 20, 1);
    let slow_wire = wire(&slow_message);
    let half = slow_wire.len() / 2;
    slow.write_all(&slow_wire[..half]).await.unwrap();
    let slow_recv = tokio::spawn(async move { slow_server.recv().await.unwrap().unwrap() });
    budget_reaches(&listener, 1 << 20).await;
    for n in 0..2 {
        let m = message(2 << 20, 10 + n);
        let sent = m.clone();
        let sender = tokio::spawn(async move {
            client.send(&sent).await.unwrap();
            client
        });
        let got = guard("a message beside the silent one", server.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, m);
        client = sender.await.unwrap();
        assert!(listener.budget_in_use_bytes() <= BUDGET);
    }
    assert!(!slow_recv.is_finished());
    for piece in slow_wire[half..].chunks(256 << 10) {
        slow.write_all(piece).await.unwrap();
    }
    assert_eq!(guard("slow", slow_recv).await.unwrap(), slow_message);
    assert_eq!(listener.budget_in_use_bytes(), 0);
}

/// Two peers that each declare 3 MiB to a budget of 4 MiB send their messages in 256 KiB
/// pieces, taking turns: the budget never lets both hold so much that neither could finish
/// (2 MiB each, say), and both arrive. (Granting steps without that rule, this hung.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_messages_that_cannot_both_fit_never_wait_on_each_other() {
    const BUDGET: u64 = 4 << 20;
    let mut listener = tcp_listener(config(BUDGET)).await;
    let (mut p1, mut s1) = raw_pair(&mut listener).await;
    let (mut p2, mut s2) = raw_pair(&mut listener).await;
    let (m1, m2) = (message(3 << 20, 1), message(3 << 20, 2));
    let (w1, w2) = (wire(&m1), wire(&m2));
    let both = tokio::spawn(async move {
        let (a, b) = tokio::join!(s1.recv(), s2.recv());
        (a.unwrap().unwrap(), b.unwrap().unwrap())
    });
    let writer = |mut stream: TcpStream, bytes: Vec<u8>, first: bool| {
        tokio::spawn(async move {
            if !first {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            for piece in bytes.chunks(256 << 10) {
                stream.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            stream
        })
    };
    let (t1, t2) = (writer(p1, w1, true), writer(p2, w2, false));
    let (peak, (got1, got2)) = guard("both", watch_budget(&listener, both)).await;
    assert_eq!((got1, got2), (m1, m2));
    assert!(peak <= BUDGET, "{peak}");
    (p1, p2) = (t1.await.unwrap(), t2.await.unwrap());
    drop((p1, p2));
}

/// A peer that sends only the head of a 4 MiB message and stops holds one read's worth of
/// budget (64 KiB), not a full step: steps grow with what arrives. (With fixed 1 MiB steps, a
/// thousand such peers held a 1 GiB budget for the price of their heads.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_sends_only_a_head_holds_one_reads_worth() {
    let mut listener = tcp_listener(config(64 << 20)).await;
    let mut held = Vec::new();
    for n in 0..4 {
        let (mut peer, mut server) = raw_pair(&mut listener).await;
        let bytes = wire(&message(4 << 20, n));
        let head = bytes.len() - (4 << 20);
        peer.write_all(&bytes[..head]).await.unwrap();
        let recv = tokio::spawn(async move { server.recv().await.map(|_| ()) });
        budget_reaches(&listener, (n + 1) * (64 << 10)).await;
        held.push((peer, recv));
    }
    // Give the receivers a moment to ask for more if they would (a pause, not a timing
    // assertion): nothing more arrived, so nothing more is granted.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(listener.budget_in_use_bytes(), 4 * (64 << 10));
    for (peer, recv) in held {
        drop(peer);
        assert!(guard("truncated", recv).await.unwrap().is_err());
    }
    assert_eq!(listener.budget_in_use_bytes(), 0);
}

/// A peer that leaves in the middle of a message costs its comm a Truncated error, and the
/// budget that message held comes back at once, though the caller keeps the comm. (Before, it
/// stayed held until the comm was dropped.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_comm_gives_its_budget_back_though_it_is_kept() {
    let mut listener = tcp_listener(config(8 << 20)).await;
    let (mut peer, mut server) = raw_pair(&mut listener).await;
    let bytes = wire(&message(4 << 20, 3));
    peer.write_all(&bytes[..2 << 20]).await.unwrap();
    let recv = tokio::spawn(async move {
        let got = server.recv().await;
        (got, server)
    });
    budget_reaches(&listener, 1 << 20).await;
    drop(peer);
    let (got, kept) = guard("recv", recv).await.unwrap();
    assert!(
        matches!(
            got,
            Err(pontoon_transport::TransportError::Truncated { .. })
        ),
        "{got:?}"
    );
    assert_eq!(
        listener.budget_in_use_bytes(),
        0,
        "a failed comm kept its budget"
    );
    drop(kept);
}

/// Eight connections each receive a few 4 MiB messages and then close: the pool, which kept
/// buffers while they were open, gives them all back. (Before it trimmed, 32 MiB stayed
/// pooled.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_gives_memory_back_when_connections_close() {
    let mut config = config(64 << 20);
    config.receive_pool_bytes = 256 << 20;
    let mut listener = tcp_listener(config).await;
    let pairs = pairs(&mut listener, 8).await;
    let mut tasks = Vec::new();
    for (peer, (mut client, mut server)) in pairs.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let sender = tokio::spawn(async move {
                for n in 0..2 {
                    client
                        .send(&message(4 << 20, peer as u64 + n))
                        .await
                        .unwrap();
                }
                client
            });
            for _ in 0..2 {
                let got = server.recv().await.unwrap().unwrap();
                assert_eq!(got.frames[0].len(), 4 << 20);
            }
            (sender.await.unwrap(), server)
        }));
    }
    let mut open = Vec::new();
    for task in tasks {
        open.push(guard("messages", task).await.unwrap());
    }
    let pooled = listener.pooled_bytes();
    assert!(pooled >= 8 << 20, "only {pooled} bytes pooled while open");
    // Half close: the pool keeps at most what the others may use.
    open.truncate(4);
    assert!(listener.pooled_bytes() <= pooled);
    drop(open);
    assert_eq!(
        listener.pooled_bytes(),
        0,
        "the pool kept memory after every connection closed"
    );
}
