//! Shared-secret authentication in the handshake, over tcp, unix and tls: the right secret gets
//! through; a wrong one, a missing one, a replayed handshake and a peer that stalls mid-challenge
//! are each a typed error on that connection, and the listener goes on serving good clients.

mod pki;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use pontoon_transport::{
    Address, AuthError, Comm, Config, Roots, Secret, TlsConfig, TransportError, connect, listen,
};
use pontoon_wire::{
    AuthMessage, Codec, Decoder, Encoder, Header, Hello, Message, hello_limits, preamble,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const GUARD: Duration = Duration::from_secs(60);

async fn guard<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

/// Listener and client settings for one transport kind: an address to listen at, and what the
/// client needs to reach it (TLS roots for tls).
struct Setup {
    listen_at: Address,
    server: Config,
    client: Config,
    _dir: pki::Dir,
}

fn make_setup(kind: &str, server_secret: Option<&[u8]>, client_secret: Option<&[u8]>) -> Setup {
    let dir = pki::Dir::new(&format!("auth-{kind}"));
    let mut server = Config::new("server");
    let mut client = Config::new("client");
    server.secret = server_secret.map(|s| Secret::new(s.to_vec()));
    client.secret = client_secret.map(|s| Secret::new(s.to_vec()));
    server.handshake_timeout = Duration::from_secs(20);
    client.handshake_timeout = Duration::from_secs(20);
    let listen_at: Address = match kind {
        "tcp" => "tcp://127.0.0.1:0".parse().unwrap(),
        "unix" => Address::Unix(dir.path("auth.sock")),
        "tls" => {
            let ca = pki::Ca::new(&dir, "auth");
            let leaf = ca.leaf(&dir, "server", "server", &["127.0.0.1"]);
            server.tls = Some(TlsConfig::server(&leaf.chain, &leaf.key).unwrap());
            client.tls = Some(TlsConfig::client(Roots::CaFile(ca.pem.clone())).unwrap());
            "tls://127.0.0.1:0".parse().unwrap()
        }
        other => panic!("unknown kind {other}"),
    };
    Setup {
        listen_at,
        server,
        client,
        _dir: dir,
    }
}

/// A listener whose every handshake runs in a task of its own; each result comes out of the
/// receiver.
async fn serve(
    address: &Address,
    config: Config,
) -> (
    Address,
    mpsc::UnboundedReceiver<Result<Comm, TransportError>>,
) {
    let mut listener = listen(address, config).await.unwrap();
    let bound = listener.address().clone();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(incoming) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(incoming.handshake().await);
            });
        }
    });
    (bound, rx)
}

async fn exchange(client: &mut Comm, server: &mut Comm) {
    let message = Message::new(Header::from_serde(&"after auth").unwrap(), vec![]);
    let (sent, received) = tokio::join!(client.send(&message), server.recv());
    sent.unwrap();
    assert_eq!(received.unwrap().unwrap(), message);
}

fn auth_source(err: &TransportError) -> &AuthError {
    match err {
        TransportError::Auth { source, .. } => source,
        other => panic!("expected an authentication error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_secret_gets_through_over_tcp_unix_and_tls() {
    for kind in ["tcp", "unix", "tls"] {
        let setup = make_setup(kind, Some(SECRET), Some(SECRET));
        let (bound, mut incoming) = serve(&setup.listen_at, setup.server).await;
        let mut client = guard(kind, connect(&bound, setup.client))
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        let mut server = guard(kind, incoming.recv()).await.unwrap().unwrap();
        assert_eq!(client.peer().identity, "server", "{kind}");
        exchange(&mut client, &mut server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_on_both_sides_over_tcp_unix_and_tls() {
    for kind in ["tcp", "unix", "tls"] {
        let setup = make_setup(kind, Some(SECRET), Some(b"not the secret"));
        let good = {
            let mut good = setup.client.clone();
            good.secret = Some(Secret::new(SECRET.to_vec()));
            good
        };
        let (bound, mut incoming) = serve(&setup.listen_at, setup.server).await;
        let client_err = guard(kind, connect(&bound, setup.client))
            .await
            .unwrap_err();
        assert_eq!(auth_source(&client_err), &AuthError::Refused, "{kind}");
        let server_err = guard(kind, incoming.recv()).await.unwrap().unwrap_err();
        assert_eq!(auth_source(&server_err), &AuthError::WrongProof, "{kind}");
        // The listener goes on serving.
        let mut client = guard(kind, connect(&bound, good)).await.unwrap();
        let mut server = guard(kind, incoming.recv()).await.unwrap().unwrap();
        exchange(&mut client, &mut server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_on_one_side_only_is_refused_by_both() {
    // The server requires one, the client has none.
    let setup = make_setup("tcp", Some(SECRET), None);
    let (bound, mut incoming) = serve(&setup.listen_at, setup.server).await;
    let client_err = guard("connect", connect(&bound, setup.client))
        .await
        .unwrap_err();
    assert_eq!(auth_source(&client_err), &AuthError::NoSecret);
    let server_err = guard("accept", incoming.recv()).await.unwrap().unwrap_err();
    assert_eq!(auth_source(&server_err), &AuthError::PeerHasNoSecret);

    // The client requires one, the server has none.
    let other = make_setup("tcp", None, Some(SECRET));
    let (bound, mut incoming) = serve(&other.listen_at, other.server).await;
    let client_err = guard("connect", connect(&bound, other.client))
        .await
        .unwrap_err();
    assert_eq!(auth_source(&client_err), &AuthError::PeerHasNoSecret);
    let server_err = guard("accept", incoming.recv()).await.unwrap().unwrap_err();
    assert_eq!(auth_source(&server_err), &AuthError::NoSecret);
}

/// Forwards one connection to `target` and records every byte the client sent.
async fn recording_proxy(target: Address) -> (Address, Arc<Mutex<Vec<u8>>>) {
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: Address = format!("tcp://{}", proxy.local_addr().unwrap())
        .parse()
        .unwrap();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let record = recorded.clone();
    let target = target.to_string().trim_start_matches("tcp://").to_string();
    tokio::spawn(async move {
        let (client, _) = proxy.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let upstream = async move {
            let mut buf = vec![0; 64 << 10];
            loop {
                let n = client_read.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                // Recorded before it is forwarded: once the server has it, so has the test.
                record.lock().unwrap().extend_from_slice(&buf[..n]);
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        let downstream = async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        };
        tokio::join!(upstream, downstream);
    });
    (address, recorded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_handshake_is_refused() {
    let setup = make_setup("tcp", Some(SECRET), Some(SECRET));
    let (bound, mut incoming) = serve(&setup.listen_at, setup.server).await;
    let (proxy, recorded) = recording_proxy(bound.clone()).await;

    // A real, successful handshake through the proxy, recorded.
    let mut client = guard("recorded connect", connect(&proxy, setup.client))
        .await
        .unwrap();
    let mut server = guard("recorded accept", incoming.recv())
        .await
        .unwrap()
        .unwrap();
    exchange(&mut client, &mut server).await;
    let bytes = recorded.lock().unwrap().clone();
    // Only the handshake is replayed: the preamble and hello, the challenge and the proof.
    let mut rest = BytesMut::from(&bytes[..]);
    let mut decoder = Decoder::with_limits(hello_limits());
    for what in ["hello", "challenge", "proof"] {
        decoder
            .decode(&mut rest)
            .unwrap()
            .unwrap_or_else(|| panic!("the recorded {what}"));
    }
    let bytes = bytes[..bytes.len() - rest.len()].to_vec();
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET),
        "the secret crossed the wire"
    );

    // The same bytes again, on a new connection: the server's nonce is fresh, so the recorded
    // proof is wrong for it.
    let mut replay = TcpStream::connect(bound.to_string().trim_start_matches("tcp://"))
        .await
        .unwrap();
    replay.write_all(&bytes).await.unwrap();
    let server_err = guard("replayed accept", incoming.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(auth_source(&server_err), &AuthError::WrongProof);
    // What the replayer got back: the server's hello and challenge, then a refusal, never a
    // proof of the server's.
    let mut answer = Vec::new();
    guard("replay answer", replay.read_to_end(&mut answer))
        .await
        .unwrap();
    assert!(!answer.windows(SECRET.len()).any(|w| w == SECRET));
    let mut buf = BytesMut::from(&answer[..]);
    let mut decoder = Decoder::with_limits(hello_limits());
    let hello = decoder
        .decode(&mut buf)
        .unwrap()
        .expect("the server's hello");
    assert_eq!(Hello::from_message(&hello).unwrap().identity, "server");
    let mut said = Vec::new();
    while let Ok(Some(message)) = decoder.decode(&mut buf) {
        said.push(AuthMessage::from_message(&message).unwrap());
    }
    assert!(
        matches!(
            said[..],
            [AuthMessage::Challenge { .. }, AuthMessage::Refused]
        ),
        "{said:?}"
    );
}

/// A hello that requires authentication, and a challenge: what a peer sends before it stalls.
fn hello_and_challenge(identity: &str) -> Vec<u8> {
    let mut out = preamble().to_vec();
    let hello = Hello::new(identity, vec!["serde".into()], Codec::None, 1 << 20).with_auth();
    out.extend_from_slice(
        &Encoder::default()
            .encode(&hello.to_message())
            .unwrap()
            .to_bytes(),
    );
    let challenge = AuthMessage::Challenge { nonce: [9; 32] }.to_message();
    out.extend_from_slice(&Encoder::default().encode(&challenge).unwrap().to_bytes());
    out
}

fn is_handshake_timeout(err: &TransportError) -> bool {
    matches!(
        err,
        TransportError::Timeout {
            what: "the handshake",
            ..
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_challenge_times_out_and_others_are_served() {
    let mut setup = make_setup("tcp", Some(SECRET), Some(SECRET));
    setup.server.handshake_timeout = Duration::from_millis(300);
    let (bound, mut incoming) = serve(&setup.listen_at, setup.server).await;
    // Sends its hello and challenge, reads the server's, and never proves anything.
    let mut stalled = TcpStream::connect(bound.to_string().trim_start_matches("tcp://"))
        .await
        .unwrap();
    stalled
        .write_all(&hello_and_challenge("stalled"))
        .await
        .unwrap();
    let server_err = guard("stalled accept", incoming.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert!(is_handshake_timeout(&server_err), "{server_err:?}");
    let mut client = guard("good connect", connect(&bound, setup.client))
        .await
        .unwrap();
    let mut server = guard("good accept", incoming.recv())
        .await
        .unwrap()
        .unwrap();
    exchange(&mut client, &mut server).await;
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stalls_mid_challenge_times_the_client_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: Address = format!("tcp://{}", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream
            .write_all(&hello_and_challenge("stalling-server"))
            .await
            .unwrap();
        // Reads the client's proof and never answers it.
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    });
    let mut config = Config::new("client");
    config.secret = Some(Secret::new(SECRET.to_vec()));
    config.handshake_timeout = Duration::from_millis(300);
    let err = guard("connect", connect(&address, config))
        .await
        .unwrap_err();
    assert!(is_handshake_timeout(&err), "{err:?}");
}
