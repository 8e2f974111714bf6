//! One receive pool per listener: however many peers send large frames and then go idle, the
//! buffers kept for reuse stay within `Config::receive_pool_bytes` for all of them together.

use std::time::Duration;

use bytes::Bytes;
use pontoon_transport::{Config, connect, listen};
use pontoon_wire::{Header, Message};

const GUARD: Duration = Duration::from_secs(60);
const FRAME: usize = 4 << 20;
const POOL: usize = 10 << 20;
const PEERS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_peers_share_one_bounded_pool() {
    let mut config = Config::new("server");
    config.receive_pool_bytes = POOL;
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let address = listener.address().clone();
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..PEERS {
        let a = address.clone();
        let client = tokio::spawn(async move { connect(&a, Config::new("client")).await });
        let server = tokio::time::timeout(GUARD, async {
            listener.accept().await.unwrap().handshake().await.unwrap()
        })
        .await
        .unwrap();
        clients.push(client.await.unwrap().unwrap());
        servers.push(server);
    }
    let message = Message::new(
        Header::from_serde(&"large").unwrap(),
        vec![Bytes::from(vec![7u8; FRAME])],
    );
    // The senders run on their own: a 4 MiB message does not fit in the socket buffers, so a
    // send finishes only as its receiver reads.
    let senders: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let message = message.clone();
            tokio::spawn(async move {
                client.send(&message).await.unwrap();
                client
            })
        })
        .collect();
    for server in &mut servers {
        let got = tokio::time::timeout(GUARD, server.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.as_ref().map(|m| m.frames[0].len()), Some(FRAME));
        // The frame is dropped here: its buffer goes back to the pool.
    }
    // Every peer is idle now, each having received a frame of 4 MiB: 24 MiB were in use, and
    // one pool kept what fits its 10 MiB.
    let pooled = listener.pooled_bytes();
    assert!(pooled > 0, "nothing was kept for reuse");
    assert!(
        pooled <= POOL,
        "{pooled} bytes pooled, over the {POOL} bytes budget"
    );
    for sender in senders {
        drop(tokio::time::timeout(GUARD, sender).await.unwrap().unwrap());
    }
    drop(servers);
}

/// Connections that stay open but go idle give the pool's memory back: once a connection has
/// waited `receive_pool_idle_timeout` for its next message, the buffers nobody took in that
/// time are freed. Driven by tokio's paused clock, not by waiting. (Before, an idle listener
/// kept its pool full for as long as the connections lived.)
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_idle_pool_gives_its_memory_back() {
    let mut config = Config::new("server");
    config.receive_pool_bytes = 64 << 20;
    config.receive_pool_idle_timeout = Duration::from_secs(10);
    let mut listener = listen(&"inproc://idle-pool".parse().unwrap(), config)
        .await
        .unwrap();
    let address = listener.address().clone();
    let client = tokio::spawn(async move { connect(&address, Config::new("client")).await });
    let mut server = listener.accept().await.unwrap().handshake().await.unwrap();
    let mut client = client.await.unwrap().unwrap();
    let message = Message::new(
        Header::from_serde(&"large").unwrap(),
        vec![Bytes::from(vec![7u8; FRAME]), Bytes::from(vec![8u8; FRAME])],
    );
    let sender = tokio::spawn(async move {
        client.send(&message).await.unwrap();
        client
    });
    let got = server.recv().await.unwrap().unwrap();
    assert_eq!(got.frames[1].len(), FRAME);
    drop(got);
    let client = sender.await.unwrap();
    assert!(listener.pooled_bytes() >= FRAME, "nothing pooled");
    // The server waits for its next message while the (paused) clock runs on.
    let waiting = tokio::spawn(async move {
        let next = server.recv().await;
        (next.map(|m| m.is_none()).ok(), server)
    });
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(listener.pooled_bytes(), 0, "the idle pool kept its buffers");
    client.close().await.unwrap();
    let (ended, _server) = waiting.await.unwrap();
    assert_eq!(ended, Some(true));
}
