//! `Roots::System`: the client trusts the system's store, which `SSL_CERT_FILE` points at here
//! (rustls-native-certs honours it as OpenSSL does), so the test's own CA stands for the
//! system's. Its own test binary, because it sets the process environment.

mod pki;

use std::time::Duration;

use pontoon_transport::{Config, Roots, TlsConfig, TlsError, TransportError, connect, listen};

#[test]
fn a_client_on_the_system_roots_trusts_what_the_system_trusts() {
    let dir = pki::Dir::new("system-roots");
    let ca = pki::Ca::new(&dir, "system");
    let other = pki::Ca::new(&dir, "other");
    // SAFETY: this is the only test in its binary and it sets the variable before it starts a
    // runtime or any thread of its own, so nothing reads the environment concurrently.
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca.pem) };
    let system = TlsConfig::client(Roots::System).expect("the roots SSL_CERT_FILE names");
    // SAFETY: as above: still no runtime and no other thread of this test.
    unsafe { std::env::set_var("SSL_CERT_FILE", &other.pem) };
    let other_system = TlsConfig::client(Roots::System).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let leaf = ca.leaf(&dir, "server", "server", &["127.0.0.1"]);
        let mut server = Config::new("server");
        server.tls = Some(TlsConfig::server(&leaf.chain, &leaf.key).unwrap());
        let mut listener = listen(&"tls://127.0.0.1:0".parse().unwrap(), server)
            .await
            .unwrap();
        let address = listener.address().clone();
        tokio::spawn(async move {
            while let Ok(incoming) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut comm) = incoming.handshake().await {
                        let _ = comm.recv().await;
                    }
                });
            }
        });
        let mut client = Config::new("client");
        client.tls = Some(system);
        let guard = Duration::from_secs(60);
        let comm = tokio::time::timeout(guard, connect(&address, client))
            .await
            .unwrap()
            .expect("the system roots hold the server's CA");
        assert_eq!(
            comm.peer().certificate.as_ref().unwrap().subject,
            "CN=server"
        );

        let mut client = Config::new("client");
        client.tls = Some(other_system);
        let refused = tokio::time::timeout(guard, connect(&address, client))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(
                refused,
                TransportError::Tls {
                    source: TlsError::Handshake(rustls::Error::InvalidCertificate(_)),
                    ..
                }
            ),
            "{refused:?}"
        );
    });
}
