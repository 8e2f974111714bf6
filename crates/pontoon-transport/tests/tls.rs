//! TLS over tls:// addresses, with certificates made at test time: round trips of every message
//! size in both directions, the verified certificate's identity in the peer and the families'
//! context, and each way a handshake fails (wrong CA, expired certificate, a client without a
//! certificate under mutual TLS, plain TCP against TLS either way) as a typed error on its own
//! connection while the listener goes on serving a good client.

mod pki;

use std::time::Duration;

use bytes::Bytes;
use pki::{Ca, Dir, Leaf};
use pontoon_transport::{
    Address, Comm, Config, FRAME_ALIGN, Listener, Roots, TlsConfig, TlsError, TransportError,
    connect, listen,
};
use pontoon_wire::{Header, Message};
use rustls::{AlertDescription, CertificateError};
use tokio::sync::mpsc;

/// Hang guard for every await that should finish.
const GUARD: Duration = Duration::from_secs(120);

async fn guard<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

fn server_config(leaf: &Leaf) -> Config {
    let mut config = Config::new("server");
    config.limits.max_message_bytes = 1 << 30;
    config.handshake_timeout = Duration::from_secs(20);
    config.tls = Some(TlsConfig::server(&leaf.chain, &leaf.key).unwrap());
    config
}

fn client_config(ca: &Ca) -> Config {
    let mut config = Config::new("client");
    config.limits.max_message_bytes = 1 << 30;
    config.handshake_timeout = Duration::from_secs(20);
    config.tls = Some(TlsConfig::client(Roots::CaFile(ca.pem.clone())).unwrap());
    config
}

/// A listener whose every incoming connection is shaken hands with in a task of its own; each
/// result (a comm, or the error) comes out of the receiver, in the order handshakes end.
async fn serve(
    address: &str,
    config: Config,
) -> (
    Address,
    mpsc::UnboundedReceiver<Result<Comm, TransportError>>,
) {
    let mut listener: Listener = listen(&address.parse().unwrap(), config).await.unwrap();
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

/// `tls://localhost:<port>` for a listener bound to 127.0.0.1, so the name verified is the
/// certificate's DNS name.
fn by_name(bound: &Address) -> Address {
    let port = bound.to_string().rsplit_once(':').unwrap().1.to_string();
    format!("tls://localhost:{port}").parse().unwrap()
}

fn message(len: usize, seed: u8) -> Message {
    let frame: Bytes = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into();
    Message::new(Header::from_serde(&("len", len)).unwrap(), vec![frame])
}

async fn round_trip(client: &mut Comm, server: &mut Comm, len: usize) {
    let sent = message(len, 7);
    let (sending, received) = tokio::join!(client.send(&sent), server.recv());
    sending.unwrap();
    let received = received.unwrap().expect("a message");
    assert_eq!(received.header, sent.header, "{len} B header");
    assert_eq!(received.frames, sent.frames, "{len} B client to server");
    // Frames still land in aligned buffers of their own under TLS (read out of rustls' records
    // straight into the frame's buffer).
    assert!(
        received
            .frames
            .iter()
            .all(|f| (f.as_ptr() as usize).is_multiple_of(FRAME_ALIGN)),
        "{len} B frame alignment"
    );
    let back = message(len, 99);
    let (sending, received) = tokio::join!(server.send(&back), client.recv());
    sending.unwrap();
    assert_eq!(
        received.unwrap().expect("a message").frames,
        back.frames,
        "{len} B server to client"
    );
}

/// A good client gets through and exchanges a message: the listener still serves.
async fn still_serves(
    address: &Address,
    ca: &Ca,
    incoming: &mut mpsc::UnboundedReceiver<Result<Comm, TransportError>>,
) {
    let mut client = guard("good connect", connect(address, client_config(ca)))
        .await
        .expect("a good client connects after a bad one");
    let mut server = guard("good accept", incoming.recv())
        .await
        .unwrap()
        .expect("the good client's handshake on the server");
    round_trip(&mut client, &mut server, 1000).await;
}

fn tls_source(err: &TransportError) -> &rustls::Error {
    match err {
        TransportError::Tls {
            source: TlsError::Handshake(tls),
            ..
        } => tls,
        other => panic!("expected a TLS handshake error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_every_size_cross_tls_both_ways() {
    let dir = Dir::new("sizes");
    let ca = Ca::new(&dir, "cluster");
    let server_leaf = ca.leaf(&dir, "server", "scheduler", &["localhost", "127.0.0.1"]);
    let (bound, mut incoming) = serve("tls://127.0.0.1:0", server_config(&server_leaf)).await;
    assert!(bound.to_string().starts_with("tls://127.0.0.1:"));
    let mut client = guard("connect", connect(&by_name(&bound), client_config(&ca)))
        .await
        .unwrap();
    let mut server = guard("accept", incoming.recv()).await.unwrap().unwrap();

    // The server's verified certificate is the client's to see, in the peer and the context.
    let certificate = client
        .peer()
        .certificate
        .clone()
        .expect("the server's certificate");
    assert_eq!(certificate.subject, "CN=scheduler");
    assert_eq!(certificate.alt_names, ["localhost", "127.0.0.1"]);
    assert_eq!(client.context().peer_identity.as_deref(), Some("localhost"));
    // Without mutual TLS the client presented none.
    assert_eq!(server.peer().certificate, None);
    assert_eq!(server.context().peer_identity, None);

    for len in [
        0,
        1,
        100,
        (64 << 10) - 1,
        64 << 10,
        (1 << 20) + 3,
        16 << 20,
        64 << 20,
    ] {
        guard("round trip", round_trip(&mut client, &mut server, len)).await;
    }
    client.close().await.unwrap();
    assert!(server.recv().await.unwrap().is_none(), "a clean close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_address_is_verified_against_the_certificate_ip() {
    let dir = Dir::new("ip");
    let ca = Ca::new(&dir, "cluster");
    let server_leaf = ca.leaf(&dir, "server", "scheduler", &["127.0.0.1"]);
    let (bound, mut incoming) = serve("tls://127.0.0.1:0", server_config(&server_leaf)).await;
    let mut client = guard("connect", connect(&bound, client_config(&ca)))
        .await
        .unwrap();
    let mut server = guard("accept", incoming.recv()).await.unwrap().unwrap();
    assert_eq!(client.context().peer_identity.as_deref(), Some("127.0.0.1"));
    round_trip(&mut client, &mut server, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_puts_the_client_identity_in_the_servers_context() {
    let dir = Dir::new("mutual");
    let ca = Ca::new(&dir, "cluster");
    let server_leaf = ca.leaf(&dir, "server", "scheduler", &["localhost"]);
    let client_leaf = ca.leaf(&dir, "client", "worker-1", &["worker-1.cluster"]);
    let (bound, mut incoming) = serve("tls://127.0.0.1:0", mutual(&server_leaf, &ca)).await;

    // A client without a certificate: refused on both sides, with TLS errors.
    let refused = guard(
        "no-cert connect",
        connect(&by_name(&bound), client_config(&ca)),
    )
    .await;
    let server_err = guard("no-cert accept", incoming.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        tls_source(&server_err),
        &rustls::Error::NoCertificatesPresented,
        "{server_err:?}"
    );
    // A TLS 1.3 client finishes its handshake before the server checks its certificate; the
    // server's alert then ends the client's pontoon handshake.
    let client_err = refused.unwrap_err();
    assert!(
        matches!(
            tls_source(&client_err),
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired)
        ),
        "{client_err:?}"
    );

    // A client with one gets through, and the server's families see who it is.
    let good = with_certificate(client_config(&ca), &client_leaf);
    let mut client = guard("connect", connect(&by_name(&bound), good))
        .await
        .unwrap();
    let mut server = guard("accept", incoming.recv()).await.unwrap().unwrap();
    let certificate = server.peer().certificate.clone().expect("the client's");
    assert_eq!(certificate.subject, "CN=worker-1");
    assert_eq!(
        server.context().peer_identity.as_deref(),
        Some("worker-1.cluster")
    );
    round_trip(&mut client, &mut server, 1 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_from_another_ca_is_refused() {
    let dir = Dir::new("wrong-ca");
    let ca = Ca::new(&dir, "cluster");
    let other = Ca::new(&dir, "other");
    let (bound, mut incoming) = serve(
        "tls://127.0.0.1:0",
        server_config(&ca.leaf(&dir, "server", "scheduler", &["localhost"])),
    )
    .await;
    let client_err = guard("connect", connect(&by_name(&bound), client_config(&other)))
        .await
        .unwrap_err();
    assert_eq!(
        tls_source(&client_err),
        &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        "{client_err:?}"
    );
    let server_err = guard("accept", incoming.recv()).await.unwrap().unwrap_err();
    assert_eq!(
        tls_source(&server_err),
        &rustls::Error::AlertReceived(AlertDescription::UnknownCA),
        "{server_err:?}"
    );
    still_serves(&by_name(&bound), &ca, &mut incoming).await;
}

fn mutual(server_leaf: &Leaf, ca: &Ca) -> Config {
    let mut config = server_config(server_leaf);
    config.tls = Some(
        config
            .tls
            .take()
            .unwrap()
            .require_client_certificates(&ca.pem)
            .unwrap(),
    );
    config
}

fn with_certificate(mut config: Config, leaf: &Leaf) -> Config {
    config.tls = Some(
        config
            .tls
            .take()
            .unwrap()
            .with_client_certificate(&leaf.chain, &leaf.key)
            .unwrap(),
    );
    config
}

fn expired(err: &TransportError) -> bool {
    matches!(
        tls_source(err),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificates_are_refused() {
    let dir = Dir::new("expired");
    let ca = Ca::new(&dir, "cluster");

    // An expired server certificate: the client refuses it.
    let old_server = ca.expired_leaf(&dir, "old-server", &["localhost"]);
    let (bound, mut incoming) = serve("tls://127.0.0.1:0", server_config(&old_server)).await;
    let client_err = guard("connect", connect(&by_name(&bound), client_config(&ca)))
        .await
        .unwrap_err();
    assert!(expired(&client_err), "{client_err:?}");
    let server_err = guard("accept", incoming.recv()).await.unwrap().unwrap_err();
    assert!(
        matches!(tls_source(&server_err), rustls::Error::AlertReceived(_)),
        "{server_err:?}"
    );

    // An expired client certificate under mutual TLS: the server refuses it, and goes on
    // serving a client whose certificate is valid.
    let server_leaf = ca.leaf(&dir, "server", "scheduler", &["localhost"]);
    let (bound, mut incoming) = serve("tls://127.0.0.1:0", mutual(&server_leaf, &ca)).await;
    let old_client = ca.expired_leaf(&dir, "old-client", &["worker-0.cluster"]);
    let refused = guard(
        "expired client connect",
        connect(
            &by_name(&bound),
            with_certificate(client_config(&ca), &old_client),
        ),
    )
    .await;
    let server_err = guard("accept", incoming.recv()).await.unwrap().unwrap_err();
    assert!(expired(&server_err), "{server_err:?}");
    let client_err = refused.unwrap_err();
    assert!(
        matches!(tls_source(&client_err), rustls::Error::AlertReceived(_)),
        "{client_err:?}"
    );
    let good = ca.leaf(&dir, "client", "worker-1", &["worker-1.cluster"]);
    let mut client = guard(
        "good connect",
        connect(
            &by_name(&bound),
            with_certificate(client_config(&ca), &good),
        ),
    )
    .await
    .unwrap();
    let mut server = guard("good accept", incoming.recv())
        .await
        .unwrap()
        .unwrap();
    round_trip(&mut client, &mut server, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_tcp_client_of_a_tls_listener_is_refused() {
    let dir = Dir::new("plain-client");
    let ca = Ca::new(&dir, "cluster");
    let (bound, mut incoming) = serve(
        "tls://127.0.0.1:0",
        server_config(&ca.leaf(&dir, "server", "scheduler", &["localhost"])),
    )
    .await;
    let port = bound.to_string().rsplit_once(':').unwrap().1.to_string();
    let plain: Address = format!("tcp://127.0.0.1:{port}").parse().unwrap();
    let mut config = Config::new("plain");
    config.handshake_timeout = Duration::from_secs(20);
    let client_err = guard("plain connect", connect(&plain, config))
        .await
        .unwrap_err();
    // The server answers the non-TLS bytes with a TLS alert or a close: either way the plain
    // client's handshake fails, never hangs.
    assert!(
        matches!(
            client_err,
            TransportError::Handshake(_) | TransportError::Io { .. }
        ),
        "{client_err:?}"
    );
    let server_err = guard("accept", incoming.recv()).await.unwrap().unwrap_err();
    assert!(
        matches!(tls_source(&server_err), rustls::Error::InvalidMessage(_)),
        "{server_err:?}"
    );
    still_serves(&by_name(&bound), &ca, &mut incoming).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_of_a_plain_listener_is_refused() {
    let dir = Dir::new("plain-server");
    let ca = Ca::new(&dir, "cluster");
    let mut config = Config::new("plain-server");
    config.handshake_timeout = Duration::from_secs(20);
    let (bound, mut incoming) = serve("tcp://127.0.0.1:0", config).await;
    let port = bound.to_string().rsplit_once(':').unwrap().1.to_string();
    let tls: Address = format!("tls://localhost:{port}").parse().unwrap();
    let client_err = guard("tls connect", connect(&tls, client_config(&ca)))
        .await
        .unwrap_err();
    assert!(
        matches!(tls_source(&client_err), rustls::Error::InvalidMessage(_)),
        "{client_err:?}"
    );
    let server_err = guard("accept", incoming.recv()).await.unwrap().unwrap_err();
    assert!(
        matches!(server_err, TransportError::Handshake(_)),
        "{server_err:?}"
    );
    // A plain client still gets through.
    let mut plain = Config::new("plain");
    plain.handshake_timeout = Duration::from_secs(20);
    let mut client = guard("plain connect", connect(&bound, plain))
        .await
        .unwrap();
    let mut server = guard("plain accept", incoming.recv())
        .await
        .unwrap()
        .unwrap();
    round_trip(&mut client, &mut server, 100).await;
}

#[tokio::test]
async fn tls_addresses_need_settings_for_their_side() {
    let err = listen(&"tls://127.0.0.1:0".parse().unwrap(), Config::new("s"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Tls {
                source: TlsError::NotConfigured { role: "listener" },
                ..
            }
        ),
        "{err:?}"
    );
    let dir = Dir::new("settings");
    let ca = Ca::new(&dir, "cluster");
    // Client settings on a listener are the wrong side's.
    let mut config = Config::new("s");
    config.tls = Some(TlsConfig::client(Roots::CaFile(ca.pem.clone())).unwrap());
    assert!(matches!(
        listen(&"tls://127.0.0.1:0".parse().unwrap(), config).await,
        Err(TransportError::Tls {
            source: TlsError::NotConfigured { .. },
            ..
        })
    ));
    // A connect without client settings fails before it opens a socket (nothing listens here).
    assert!(matches!(
        connect(&"tls://127.0.0.1:9".parse().unwrap(), Config::new("c")).await,
        Err(TransportError::Tls {
            source: TlsError::NotConfigured { role: "connect" },
            ..
        })
    ));
    // A file without certificates, and one that is missing, are errors that name the file.
    let empty = dir.path("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    assert!(matches!(
        TlsConfig::client(Roots::CaFile(empty.clone())),
        Err(TlsError::NoCertificate { path }) if path == empty
    ));
    assert!(matches!(
        TlsConfig::server(dir.path("missing.pem"), dir.path("missing-key.pem")),
        Err(TlsError::Pem { .. })
    ));
}
