//! One allow-list: what an endpoint announces and enforces is its registry's deserializer list,
//! narrowed by `Config::accepts`, never widened by a default `Config`.

use std::sync::LazyLock;
use std::time::Duration;

use pontoon_family::{DeserializeError, Registry};
use pontoon_transport::{
    CloseCode, Config, Endpoint, EndpointError, TransportError, connect, listen,
};

const GUARD: Duration = Duration::from_secs(60);

async fn guard<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

/// A registry that refuses `serde`.
static NO_SERDE: LazyLock<Registry> = LazyLock::new(|| {
    let mut registry = Registry::new();
    registry.set_deserializers(["custom"]).unwrap();
    registry
});

static DEFAULT: LazyLock<Registry> = LazyLock::new(Registry::new);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_refuses_serde_refuses_it_through_a_default_config() {
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::default())
        .await
        .unwrap();
    let address = listener.address().clone();
    let server = tokio::spawn(async move {
        let mut endpoint = Endpoint::handshake(listener.accept().await.unwrap(), &NO_SERDE)
            .await
            .unwrap();
        assert_eq!(endpoint.session().deserializers(), ["custom"]);
        let got = endpoint.recv::<u64>().await;
        // Refused: later sends on this endpoint fail, as documented.
        let after = endpoint.send(&1u64).await;
        (got, after)
    });

    // A raw comm with a default config: it serializes with serde whatever the server said.
    let mut client = connect(&address, Config::default()).await.unwrap();
    assert_eq!(
        client.peer().accepts,
        ["custom"],
        "the registry's list is announced"
    );
    client
        .send(&DEFAULT.serialize(&7u64).unwrap())
        .await
        .unwrap();
    let (got, after) = guard("server", server).await.unwrap();
    match got {
        Err(EndpointError::Deserialize(DeserializeError::NotAccepted {
            family,
            deserializers,
        })) => {
            assert_eq!(family, "serde");
            assert_eq!(deserializers, ["custom"]);
        }
        other => panic!("expected NotAccepted, got {other:?}"),
    }
    assert!(
        matches!(after, Err(EndpointError::Transport(TransportError::Closed))),
        "{after:?}"
    );
    // The peer is told why.
    match guard("client recv", client.recv()).await {
        Err(TransportError::ClosedByPeer { close, .. }) => {
            assert_eq!(close.code, CloseCode::NotAccepted);
            assert!(close.reason.contains("serde"), "{}", close.reason);
        }
        other => panic!("expected ClosedByPeer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_over_a_default_comm_still_refuses_what_its_registry_refuses() {
    // The comm was opened without the registry, so it announced the default list with
    // `serde` on it; the endpoint narrows to the registry's list all the same.
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::default())
        .await
        .unwrap();
    let address = listener.address().clone();
    let server = tokio::spawn(async move {
        let comm = listener.accept().await.unwrap().handshake().await.unwrap();
        assert_eq!(comm.accepts(), ["custom", "serde"]);
        let mut endpoint = Endpoint::new(comm, &NO_SERDE).unwrap();
        assert_eq!(endpoint.session().deserializers(), ["custom"]);
        endpoint.recv::<u64>().await
    });
    let mut client = Endpoint::connect(&address, Config::default(), &DEFAULT)
        .await
        .unwrap();
    client.send(&7u64).await.unwrap();
    let got = guard("server", server).await.unwrap();
    assert!(
        matches!(
            &got,
            Err(EndpointError::Deserialize(DeserializeError::NotAccepted { family, .. })) if family == "serde"
        ),
        "{got:?}"
    );
    let next = guard("client recv", client.recv::<u64>()).await;
    assert!(
        matches!(
            &next,
            Err(EndpointError::Transport(TransportError::ClosedByPeer { close, .. })) if close.code == CloseCode::NotAccepted
        ),
        "{next:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_accepts_narrows_the_registry_and_never_widens_it() {
    let mut config = Config::default();
    config.accepts = Some(vec!["serde".into(), "x-unknown".into()]);
    let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let address = listener.address().clone();
    let server = tokio::spawn(async move {
        let a = Endpoint::handshake(listener.accept().await.unwrap(), &DEFAULT).await;
        let b = Endpoint::handshake(listener.accept().await.unwrap(), &NO_SERDE).await;
        (
            a.map(|e| e.session().deserializers()),
            b.map(|e| e.session().deserializers()),
        )
    });
    let first = connect(&address, Config::default()).await.unwrap();
    assert_eq!(
        first.peer().accepts,
        ["serde"],
        "narrowed, unknown name dropped"
    );
    let second = connect(&address, Config::default()).await.unwrap();
    assert!(
        second.peer().accepts.is_empty(),
        "serde is not widened back in"
    );
    let (a, b) = guard("server", server).await.unwrap();
    assert_eq!(a.unwrap(), ["serde"]);
    assert!(b.unwrap().is_empty());
}
