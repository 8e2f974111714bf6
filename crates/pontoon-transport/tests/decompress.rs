//! Decompression of large frames runs off the runtime's worker: while one peer's messages
//! decompress, another client of the same listener keeps being served.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use std::io::{Read, Write};

use pontoon_transport::{Address, Config, connect, listen};
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
