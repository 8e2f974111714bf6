//! Cancel safety, over real tcp and unix sockets: a `recv` dropped under a short timeout, again
//! and again, loses nothing (every message arrives whole and equal), and a comm split into its
//! halves works from two tasks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use pontoon_transport::{Address, Comm, Compression, Config, TransportError, connect, listen};
use pontoon_wire::{Codec, Header, Message};

/// Hang guard for every await that should finish.
const GUARD: Duration = Duration::from_secs(120);

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
            let path = std::env::temp_dir()
                .join(format!("pontoon-cancel-{}-{n}.sock", std::process::id()));
            let _ = std::fs::remove_file(&path);
            Address::Unix(path)
        }
        other => panic!("unknown kind {other}"),
    }
}

/// (server side, client side) over `kind`.
async fn pair(kind: &str, server: Config, client: Config) -> (Comm, Comm) {
    let mut listener = listen(&address(kind), server).await.unwrap();
    let address = listener.address().clone();
    let connecting = tokio::spawn(async move { connect(&address, client).await });
    let server = guard("accept", async {
        listener.accept().await.unwrap().handshake().await.unwrap()
    })
    .await;
    let client = guard("connect", connecting).await.unwrap().unwrap();
    (server, client)
}

/// Bytes that differ from message to message and from place to place, so that a lost, doubled
/// or shifted piece shows.
fn pattern(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Bytes::from(
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>(),
    )
}

fn messages() -> Vec<Message> {
    (0..3u64)
        .map(|i| {
            Message::new(
                Header::from_serde(&("big", i)).unwrap(),
                vec![pattern(100 + i as usize, i), pattern(64 << 20, 10 + i)],
            )
        })
        .collect()
}

/// Receives `count` messages with `recv` wrapped in a 200 µs timeout, retried until each
/// arrives. Returns the messages and how many `recv`s were cut short.
async fn recv_under_timeouts(comm: &mut Comm, count: usize) -> (Vec<Message>, usize) {
    let mut got = Vec::new();
    let mut cut = 0;
    while got.len() < count {
        match tokio::time::timeout(Duration::from_micros(200), comm.recv()).await {
            Err(_) => cut += 1,
            Ok(Ok(Some(message))) => got.push(message),
            Ok(other) => panic!("after {cut} timeouts, recv gave {other:?}"),
        }
    }
    (got, cut)
}

async fn timeouts_lose_nothing(kind: &str, compression: Compression) {
    let mut config = Config::new("client");
    config.compression = compression;
    let (mut server, mut client) = pair(kind, Config::new("server"), config).await;
    let sent = messages();
    let to_send = sent.clone();
    let sending = tokio::spawn(async move {
        for message in &to_send {
            client.send(message).await.unwrap();
        }
        client
    });
    let (got, cut) = guard("receive", recv_under_timeouts(&mut server, sent.len())).await;
    assert!(
        cut > 0,
        "no recv was ever cut short: the test tested nothing"
    );
    for (i, (got, sent)) in got.iter().zip(&sent).enumerate() {
        assert!(
            got == sent,
            "{kind}: message {i} differs after {cut} timeouts"
        );
    }
    let client = guard("send", sending).await.unwrap();
    client.close().await.unwrap();
    assert!(guard("end", server.recv()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_under_a_timeout_loses_nothing_over_tcp() {
    timeouts_lose_nothing("tcp", Compression::Off).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_under_a_timeout_loses_nothing_over_unix() {
    timeouts_lose_nothing("unix", Compression::Off).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_under_a_timeout_loses_nothing_while_decompressing() {
    // Compressible frames: each message decompresses off the I/O threads, and a recv dropped
    // during that hands the message to the next recv.
    let mut config = Config::new("client");
    config.compression = Compression::With(Codec::Lz4);
    let (mut server, mut client) = pair("tcp", Config::new("server"), config).await;
    let sent: Vec<Message> = (0..3u8)
        .map(|i| {
            let frame: Vec<u8> = (0..32u32 << 20).map(|j| ((j >> 12) as u8) ^ i).collect();
            Message::new(Header::from_serde(&i).unwrap(), vec![Bytes::from(frame)])
        })
        .collect();
    let to_send = sent.clone();
    let sending = tokio::spawn(async move {
        for message in &to_send {
            client.send(message).await.unwrap();
        }
        client
    });
    let (got, cut) = guard("receive", recv_under_timeouts(&mut server, sent.len())).await;
    assert!(cut > 0, "no recv was ever cut short");
    assert!(got == sent, "messages differ after {cut} timeouts");
    drop(guard("send", sending).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_between_recv_and_a_ticker_loses_nothing() {
    let (mut server, mut client) = pair("unix", Config::new("server"), Config::new("client")).await;
    let sent = messages();
    let to_send = sent.clone();
    let sending = tokio::spawn(async move {
        for message in &to_send {
            client.send(message).await.unwrap();
        }
        client
    });
    let mut ticker = tokio::time::interval(Duration::from_micros(100));
    let mut got = Vec::new();
    let mut ticks = 0u64;
    guard("receive", async {
        while got.len() < sent.len() {
            tokio::select! {
                received = server.recv() => got.push(received.unwrap().unwrap()),
                _ = ticker.tick() => ticks += 1,
            }
        }
    })
    .await;
    assert!(ticks > 0);
    assert!(got == sent, "messages differ after {ticks} ticks");
    drop(guard("send", sending).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_work_from_two_tasks() {
    for kind in ["tcp", "unix"] {
        let (server, client) = pair(kind, Config::new("server"), Config::new("client")).await;
        // The server echoes from two tasks: one receives, one sends what it received.
        let (mut server_send, mut server_recv) = server.split();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(4);
        let receiving = tokio::spawn(async move {
            while let Some(message) = server_recv.recv().await.unwrap() {
                tx.send(message).await.unwrap();
            }
            server_recv
        });
        let sending = tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                server_send.send(&message).await.unwrap();
            }
            server_send
        });
        // The client sends from one task and receives from another, at once.
        let (mut client_send, mut client_recv) = client.split();
        let sent: Vec<Message> = (0..50u64)
            .map(|i| {
                let len = if i % 10 == 0 { 1 << 20 } else { 100 };
                Message::new(Header::from_serde(&i).unwrap(), vec![pattern(len, i)])
            })
            .collect();
        let to_send = sent.clone();
        let writer = tokio::spawn(async move {
            for message in &to_send {
                client_send.send(message).await.unwrap();
            }
            client_send
        });
        let mut echoed = Vec::new();
        for _ in 0..sent.len() {
            echoed.push(guard("echo", client_recv.recv()).await.unwrap().unwrap());
        }
        assert!(echoed == sent, "{kind}: the echo differs");
        let client_send = guard("writer", writer).await.unwrap();
        // Back together, then closed: the server's receiving task sees a clean end.
        let client = Comm::unsplit(client_send, client_recv).unwrap();
        client.close().await.unwrap();
        let server_recv = guard("server recv", receiving).await.unwrap();
        let server_send = guard("server send", sending).await.unwrap();
        let server = Comm::unsplit(server_send, server_recv).unwrap();
        server.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_of_different_comms_do_not_unsplit() {
    let (a, b) = pair("tcp", Config::new("server"), Config::new("client")).await;
    let (a_send, a_recv) = a.split();
    let (b_send, b_recv) = b.split();
    assert!(matches!(
        Comm::unsplit(a_send, b_recv),
        Err(TransportError::NotHalves)
    ));
    drop((a_recv, b_send));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cut_short_is_finished_by_the_next_flush_never_left_half_written() {
    for kind in ["tcp", "unix"] {
        let (mut server, mut client) =
            pair(kind, Config::new("server"), Config::new("client")).await;
        let sent = messages();
        // Nobody reads yet: a 64 MiB send cannot finish in 200 µs. Once it started writing, what
        // is left of it stays queued in the comm.
        let cut = tokio::time::timeout(Duration::from_micros(200), client.send(&sent[0])).await;
        assert!(
            cut.is_err(),
            "{kind}: a 64 MiB send finished with nobody reading"
        );
        let receiving = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(message) = server.recv().await.unwrap() {
                got.push(message);
            }
            got
        });
        guard("flush", client.flush()).await.unwrap();
        guard("send", client.send(&sent[1])).await.unwrap();
        client.close().await.unwrap();
        let got = guard("recv", receiving).await.unwrap();
        assert_eq!(got.len(), 2, "{kind}");
        assert!(
            got[0] == sent[0] && got[1] == sent[1],
            "{kind}: messages differ"
        );
    }
}
