//! A listener that keeps serving: a server process limited to 64 file descriptors, run out of
//! them by stalled raw TCP peers, goes on accepting once descriptors free up, with the accept
//! loop written as the crate's examples write it (`listener.accept().await?`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pontoon_transport::{Config, TransportError, connect, listen};

const CHILD: &str = "PONTOON_FD_LIMIT_CHILD";
const GUARD: Duration = Duration::from_secs(60);

/// Kills the server process when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_listener_out_of_descriptors_keeps_serving() {
    // The same test binary, run again under `ulimit -n 64` with CHILD set, is the server.
    if std::env::var_os(CHILD).is_some() {
        echo_server_under_64_descriptors();
    }
    let exe = std::env::current_exe().unwrap();
    let mut server = Server(
        Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n 64 && exec "$0" --exact a_listener_out_of_descriptors_keeps_serving --nocapture --test-threads=1"#)
            .arg(&exe)
            .env(CHILD, "1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = server.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let address = loop {
        let line = lines
            .recv_timeout(GUARD)
            .expect("the server never listened");
        // libtest prints `test <name> ... ` before it on the same line.
        if let Some((_, address)) = line.split_once("pontoon-fd-limit: listening at ") {
            break address.to_string();
        }
    };
    let host_port = address.strip_prefix("tcp://").unwrap().to_string();

    // Stalled peers: connect, never say hello. Each one the server accepts costs it a
    // descriptor; once it has none left, the next one stays in the backlog and its accept
    // fails with EMFILE.
    let mut stalled = Vec::new();
    let mut accepted = 0;
    let mut out_of_descriptors = false;
    for _ in 0..200 {
        stalled.push(std::net::TcpStream::connect(&host_port).unwrap());
        match lines.recv_timeout(Duration::from_secs(2)) {
            Ok(line) if line.starts_with("pontoon-fd-limit: accepted") => accepted += 1,
            Ok(line) => panic!("unexpected line from the server: {line}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                out_of_descriptors = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the server ended after {accepted} stalled peers")
            }
        }
    }
    assert!(
        out_of_descriptors && accepted < 64,
        "the server never ran out of descriptors ({accepted} accepted)"
    );
    // A few more wait in the backlog behind the one that hit EMFILE.
    for _ in 0..8 {
        stalled.push(std::net::TcpStream::connect(&host_port).unwrap());
    }
    // The stalled peers give up: their handshakes fail, the server's descriptors free up.
    drop(stalled);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let exchange = async {
            let mut comm = connect(&address.parse()?, Config::new("well-behaved")).await?;
            let message =
                pontoon_wire::Message::new(pontoon_wire::Header::from_serde(&"ping")?, vec![]);
            comm.send(&message).await?;
            let echo = comm.recv().await?;
            Ok::<_, Box<dyn std::error::Error>>(echo == Some(message))
        };
        let echoed = tokio::time::timeout(GUARD, exchange)
            .await
            .expect("the well-behaved client hung")
            .unwrap_or_else(|e| panic!("the well-behaved client was not served: {e}"));
        assert!(echoed, "the echo differs");
    });
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "the server process ended"
    );
}

/// The server the test above runs in a child process under `ulimit -n 64` (a plain function, not
/// an ignored test, so that `--run-ignored` never starts it on its own). It never returns: it
/// serves until killed, or panics when the accept loop ends.
fn echo_server_under_64_descriptors() -> ! {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let served: Result<(), TransportError> = rt.block_on(async {
        let mut config = Config::new("server");
        // Stalled peers hold their descriptors until they leave; the cap is out of the way,
        // so that the descriptors run out first.
        config.handshake_timeout = Duration::from_secs(600);
        config.max_pending_handshakes = 1000;
        let mut listener = listen(&"tcp://127.0.0.1:0".parse()?, config).await?;
        println!("pontoon-fd-limit: listening at {}", listener.address());
        loop {
            let incoming = listener.accept().await?;
            println!("pontoon-fd-limit: accepted {}", incoming.remote_address());
            tokio::spawn(async move {
                if let Ok(mut comm) = incoming.handshake().await {
                    while let Ok(Some(message)) = comm.recv().await {
                        if comm.send(&message).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    panic!("the accept loop ended: {served:?}");
}
