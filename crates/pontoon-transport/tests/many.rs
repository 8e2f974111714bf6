//! One listener serves a thousand concurrent tcp loopback connections, each handshake in a task
//! of its own: every client sends a message and gets its echo.

use std::time::Duration;

use bytes::Bytes;
use pontoon_transport::{Config, connect, listen};
use pontoon_wire::{Header, Message};

const CLIENTS: u32 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections() {
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::new("server"))
        .await
        .unwrap();
    let address = listener.address().clone();
    tokio::spawn(async move {
        while let Ok(incoming) = listener.accept().await {
            tokio::spawn(async move {
                let mut comm = incoming.handshake().await.unwrap();
                while let Some(message) = comm.recv().await.unwrap() {
                    comm.send(&message).await.unwrap();
                }
            });
        }
    });

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let address = address.clone();
            tokio::spawn(async move {
                let mut comm = connect(&address, Config::new(format!("client-{i}"))).await?;
                assert_eq!(comm.peer().identity, "server");
                let message = Message::new(
                    Header::from_serde(&("echo", i)).unwrap(),
                    vec![Bytes::from(i.to_le_bytes().repeat(64))],
                );
                comm.send(&message).await?;
                let echo = comm.recv().await?.expect("an echo");
                assert_eq!(echo, message);
                comm.close().await
            })
        })
        .collect();
    let results = tokio::time::timeout(Duration::from_secs(120), async {
        let mut results = Vec::new();
        for client in clients {
            results.push(client.await.unwrap());
        }
        results
    })
    .await
    .expect("the clients hung");
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {CLIENTS} failed: {:?}",
        failed.len(),
        failed.first()
    );
}
