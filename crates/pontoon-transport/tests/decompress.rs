//! Decompression of large frames runs off the runtime's worker: while one peer's messages
//! decompress, another client of the same listener keeps being served; and no more of them run
//! at once than the listener allows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use std::io::{Read, Write};

use pontoon_transport::{Address, Compression, Config, connect, listen};
use pontoon_wire::{Codec, EncodeOptions, Encoder, Header, Hello, Message, preamble};

const GUARD: Duration = Duration::from_secs(120);

async fn guard<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

/// The server runs on one thread (a current-thread runtime), so anything that holds that thread
/// holds every connection. A heavy client (a raw socket on a thread of its own) sends messages
/// whose frame decompresses to 64 MiB (257 KiB of LZ4 on the wire, within the default expansion
/// limits); a light client pings. The server counts the pings it answers while each heavy
/// message is being received: with decompression on the worker, none are answered while a
/// frame decompresses; off it, they keep coming.
#[tokio::test(flavor = "current_thread")]
async fn a_small_client_is_served_while_large_frames_decompress() {
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::new("server"))
        .await
        .unwrap();
    let address = listener.address().clone();
    let pings = Arc::new(AtomicU64::new(0));
    let during_heavy = Arc::new(AtomicU64::new(0));
    let heavy_done = Arc::new(AtomicU64::new(0));
    const HEAVY: u64 = 3;
    {
        let (pings, during_heavy, heavy_done) =
            (pings.clone(), during_heavy.clone(), heavy_done.clone());
        tokio::spawn(async move {
            while let Ok(incoming) = listener.accept().await {
                let (pings, during_heavy, heavy_done) =
                    (pings.clone(), during_heavy.clone(), heavy_done.clone());
                tokio::spawn(async move {
                    let mut comm = incoming.handshake().await.unwrap();
                    let heavy = comm.peer().identity == "heavy";
                    loop {
                        let before = pings.load(Ordering::SeqCst);
                        let Some(message) = comm.recv().await.unwrap() else {
                            return;
                        };
                        if heavy {
                            assert_eq!(message.frames[0].len(), 64 << 20);
                            during_heavy
                                .fetch_add(pings.load(Ordering::SeqCst) - before, Ordering::SeqCst);
                            heavy_done.fetch_add(1, Ordering::SeqCst);
                        } else {
                            pings.fetch_add(1, Ordering::SeqCst);
                            comm.send(&message).await.unwrap();
                        }
                    }
                });
            }
        });
    }

    // The light client pings until the heavy messages are all in.
    let mut light = connect(&address, Config::new("light")).await.unwrap();
    let ping = Message::new(
        Header::from_serde(&"ping").unwrap(),
        vec![Bytes::from_static(b"x")],
    );
    light.send(&ping).await.unwrap();
    assert_eq!(
        guard("first ping", light.recv()).await.unwrap().unwrap(),
        ping
    );

    // The heavy client's messages are encoded before it connects and written at once from a
    // raw socket, so that the server's time on them is reading and decompressing, not waiting.
    let frame = Bytes::from(vec![0u8; 64 << 20]);
    let message = Message::new(Header::from_serde(&"heavy").unwrap(), vec![frame]);
    let encoder = Encoder::new({
        let mut options = EncodeOptions::default();
        options.codec = Codec::Lz4;
        options
    });
    let encoded = encoder.encode(&message).unwrap();
    assert_eq!(encoded.frames()[0].codec, Codec::Lz4);
    let mut wire = preamble().to_vec();
    let hello = Hello::new("heavy", vec!["serde".into()], Codec::Lz4, 1 << 30);
    wire.extend_from_slice(
        &Encoder::default()
            .encode(&hello.to_message())
            .unwrap()
            .to_bytes(),
    );
    for _ in 0..HEAVY {
        wire.extend_from_slice(&encoded.to_bytes());
    }
    let Address::Tcp(host_port) = &address else {
        panic!("a tcp address")
    };
    let host_port = host_port.clone();
    let heavy = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(host_port).unwrap();
        stream.write_all(&wire).unwrap();
        // Read until the server closes, so that the bytes are not reset away.
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    });

    let mut answered = 0u64;
    guard("pings", async {
        while heavy_done.load(Ordering::SeqCst) < HEAVY {
            light.send(&ping).await.unwrap();
            assert_eq!(light.recv().await.unwrap().unwrap(), ping);
            answered += 1;
        }
    })
    .await;
    drop(light);
    let _ = heavy;
    let during = during_heavy.load(Ordering::SeqCst);
    eprintln!("{during} of {answered} pings answered while heavy messages were received");
    assert!(
        during >= 100,
        "only {during} of {answered} pings were answered while the heavy messages were received"
    );
}

/// Compressible (about two to one with LZ4) and different for each seed: one byte in eight is
/// random, the rest zeros.
fn sparse(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if i % 8 != 0 {
                return 0;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Eight peers each send two LZ4 messages whose frame decompresses to 8 MiB (so off the
/// workers) to a listener that allows two decompressions at once and a budget of 48 MiB.
/// Sampled throughout, never more than two decompress at once and some do; the output counts
/// against the budget, which is never exceeded; every message arrives intact. (Without the
/// bound, up to eight ran at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompressions_in_flight_stay_within_the_bound() {
    const PEERS: u64 = 8;
    const MESSAGES: u64 = 2;
    const FRAME: usize = 8 << 20;
    const BOUND: usize = 2;
    const BUDGET: u64 = 48 << 20;
    let mut config = Config::new("server");
    config.max_decompressions_in_flight = BOUND;
    config.receive_budget_bytes = BUDGET;
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let address = listener.address().clone();
    let message = |peer: u64, n: u64| {
        Message::new(
            Header::from_serde(&(peer, n)).unwrap(),
            vec![sparse(FRAME, peer * 10 + n)],
        )
    };
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for peer in 0..PEERS {
        let a = address.clone();
        let client = tokio::spawn(async move {
            let mut config = Config::new(format!("peer-{peer}"));
            config.compression = Compression::With(Codec::Lz4);
            connect(&a, config).await
        });
        let mut server = guard("accept", async {
            listener.accept().await.unwrap().handshake().await.unwrap()
        })
        .await;
        let mut client = client.await.unwrap().unwrap();
        assert_eq!(client.peer().send_codec, Codec::Lz4);
        senders.push(tokio::spawn(async move {
            for n in 0..MESSAGES {
                client.send(&message(peer, n)).await.unwrap();
            }
            client
        }));
        receivers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..MESSAGES {
                got.push(server.recv().await.unwrap().unwrap());
            }
            (peer, got)
        }));
    }
    let all = tokio::spawn(async move {
        let mut out = Vec::new();
        for receiver in receivers {
            out.push(receiver.await.unwrap());
        }
        out
    });
    let (mut most_running, mut most_budget) = (0, 0);
    let mut all = std::pin::pin!(all);
    let received = guard("all messages", async {
        loop {
            most_running = most_running.max(listener.decompressions_in_flight());
            most_budget = most_budget.max(listener.budget_in_use_bytes());
            tokio::select! {
                out = &mut all => return out.unwrap(),
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
    })
    .await;
    assert!(
        most_running <= BOUND,
        "{most_running} decompressions at once"
    );
    assert!(most_running >= 1, "no decompression was seen running");
    assert!(
        most_budget <= BUDGET,
        "{most_budget} bytes of budget in use"
    );
    for (peer, got) in received {
        for (n, m) in got.into_iter().enumerate() {
            assert_eq!(m, message(peer, n as u64), "peer {peer}, message {n}");
        }
    }
    for sender in senders {
        drop(guard("sender", sender).await.unwrap());
    }
}
