//! Timeouts: a peer that never answers the handshake costs a connect its handshake timeout, not
//! a hang.

use std::time::Duration;

use pontoon_transport::{Address, Config, TransportError, connect};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_the_handshake_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: Address = format!("tcp://{}", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    // Accepts, reads whatever comes, never sends a byte.
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
            });
        }
    });
    let mut config = Config::new("client");
    config.handshake_timeout = Duration::from_millis(300);
    let err = tokio::time::timeout(Duration::from_secs(30), connect(&address, config))
        .await
        .expect("connect hung past its handshake timeout")
        .unwrap_err();
    match err {
        TransportError::Timeout { what, seconds, .. } => {
            assert_eq!(what, "the handshake");
            assert_eq!(seconds, 0.3);
        }
        other => panic!("expected Timeout, got {other}"),
    }
}
