//! `Config::max_pending_handshakes`: a listener holds at most that many accepted connections
//! short of a finished handshake; `accept` waits for one to end before it takes another.

use std::time::Duration;

use pontoon_transport::{Config, listen};

const GUARD: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_waits_while_the_cap_of_unfinished_handshakes_is_reached() {
    let mut config = Config::new("server");
    config.max_pending_handshakes = 2;
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let host_port = listener
        .address()
        .to_string()
        .trim_start_matches("tcp://")
        .to_string();
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(tokio::net::TcpStream::connect(&host_port).await.unwrap());
    }
    let first = tokio::time::timeout(GUARD, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let _second = tokio::time::timeout(GUARD, listener.accept())
        .await
        .unwrap()
        .unwrap();
    // A third connection is waiting in the backlog, but two handshakes are unfinished. Waiting
    // a while and seeing nothing is what the cap promises: it cannot be accepted at all.
    let third = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(
        third.is_err(),
        "a third connection was accepted past the cap"
    );
    // One handshake ends (here: the connection is dropped before it): the third is accepted.
    drop(first);
    let third = tokio::time::timeout(GUARD, listener.accept()).await;
    assert!(
        matches!(third, Ok(Ok(_))),
        "the third connection was not accepted"
    );
}
