//! Pulls between stores for real: two stores on loopback TCP (embedded to embedded, daemon to
//! daemon), an object of many chunks compared byte for byte, arrays back as views, the typed
//! refusals (unknown id, too big for the puller, a peer that dies mid-pull, a hostile peer
//! that lies about its chunks), and a serving store that keeps serving others.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pontoon_array::Array;
use pontoon_family::Registry;
use pontoon_store::peer_protocol::{self, PeerRefusal, PeerReply, PeerRequest};
use pontoon_store::protocol::Layout;
use pontoon_store::{ObjectError, ObjectId, PullError, PullOptions, Store, StoreOptions};
use pontoon_transport::{Address, Comm, Config};
use pontoon_wire::{Header, Message};
use serde::{Deserialize, Serialize};

#[allow(dead_code, reason = "each test file uses part of the shared support")]
mod support;
use support::Scratch;

fn loopback() -> Address {
    "tcp://127.0.0.1:0".parse().unwrap()
}

fn store(capacity: u64) -> Store {
    let mut options = StoreOptions::default();
    options.capacity = capacity;
    Store::new(options)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect()
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Frame {
    name: String,
    pixels: Array,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_to_embedded_many_chunks_byte_for_byte_and_arrays_as_views() {
    let owner = Arc::new(store(1 << 30));
    let server = owner.serve_peers(&loopback()).await.unwrap();

    // 20 MiB in two frames (and a header), pulled in 1 MiB chunks with 4 MiB in flight.
    let big = pattern(20 << 20, 3);
    let small = pattern(1000, 9);
    let header = Header::from_serde(&("two frames", 2u8)).unwrap();
    let id = owner
        .put_raw(Message::new(
            header.clone(),
            vec![Bytes::from(small.clone()), Bytes::from(big.clone())],
        ))
        .unwrap();
    let here = store(1 << 30);
    let mut options = PullOptions::default();
    options.chunk_bytes = 1 << 20;
    options.max_in_flight_bytes = 4 << 20;
    here.pull_with(&id, server.address(), &options)
        .await
        .unwrap();
    let got = here.get_raw(&id).unwrap();
    assert_eq!(got.header.as_bytes(), header.as_bytes());
    assert_eq!(got.frames.len(), 2);
    assert!(got.frames[0][..] == small[..], "the small frame differs");
    assert!(got.frames[1][..] == big[..], "the 20 MiB frame differs");
    assert_eq!(
        got.frames[1].as_ptr() as usize % 64,
        0,
        "frames stay 64-byte aligned"
    );
    // A second pull of an object already here does nothing (and needs no peer).
    server.stop().await;
    here.pull(&id, &"tcp://127.0.0.1:1".parse().unwrap())
        .await
        .unwrap();

    // A value holding an array, through the registry on both sides.
    let server = owner.serve_peers(&loopback()).await.unwrap();
    let registry = Registry::new();
    let value = Frame {
        name: "camera".into(),
        pixels: Array::from_vec((0..100_000u32).collect::<Vec<_>>()),
    };
    let id = owner.put(&registry, &value).unwrap();
    let message = here.get_from(&id, server.address()).await.unwrap();
    let back: Frame = here.get(&registry, &id).unwrap();
    assert_eq!(back, value);
    // The array is a view of the pulled object's frame, not a copy.
    let data = back.pixels.data().as_ptr() as usize;
    let inside = message.frames.iter().any(|frame| {
        let start = frame.as_ptr() as usize;
        data >= start && data < start + frame.len()
    });
    assert!(
        inside,
        "the pulled array is not a view of the store's frame"
    );
    // The pulled copy is an object like any other: it can be deleted (evicted).
    here.delete(&id).unwrap();
    assert!(!here.contains(&id));
}

#[tokio::test]
async fn unknown_ids_and_objects_too_big_are_typed_and_leave_nothing() {
    let owner = Arc::new(store(1 << 30));
    let server = owner.serve_peers(&loopback()).await.unwrap();
    let here = store(1 << 20);
    let unknown = ObjectId::new(owner.id(), 12345);
    match here.pull(&unknown, server.address()).await {
        Err(PullError::Refused {
            refusal: PeerRefusal::Unknown { id },
            ..
        }) => assert_eq!(id, unknown),
        other => panic!("want an unknown-id refusal, got {other:?}"),
    }
    let id = owner
        .put_raw(Message::new(
            Header::empty(),
            vec![Bytes::from(vec![1u8; 4 << 20])],
        ))
        .unwrap();
    match here.pull(&id, server.address()).await {
        Err(PullError::Local(ObjectError::StoreFull { need, capacity, .. })) => {
            assert!(need >= 4 << 20);
            assert_eq!(capacity, 1 << 20);
        }
        other => panic!("want StoreFull, got {other:?}"),
    }
    let stats = here.stats();
    assert_eq!((stats.objects, stats.used_bytes, stats.creating), (0, 0, 0));
    assert!(!here.contains(&id));
}

/// A peer of our own making: accepts one puller, lets `script` answer it over the comm.
async fn hostile_peer<F, Fut>(script: F) -> (Address, tokio::task::JoinHandle<()>)
where
    F: FnOnce(Comm) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut config = Config::new("hostile");
    config.limits = peer_protocol::limits();
    let mut listener = pontoon_transport::listen(&loopback(), config)
        .await
        .unwrap();
    let address = listener.address().clone();
    let task = tokio::spawn(async move {
        let incoming = listener.accept().await.unwrap();
        let comm = incoming.handshake().await.unwrap();
        script(comm).await;
    });
    (address, task)
}

/// The id the puller asks for, from its first request.
async fn asked(comm: &mut Comm) -> ObjectId {
    let message = comm.recv().await.unwrap().unwrap();
    match peer_protocol::decode_request(&message).unwrap() {
        PeerRequest::Pull { id, .. } => id,
        other => panic!("want a pull, got {other:?}"),
    }
}

async fn describe(comm: &mut Comm, id: ObjectId, len: u64) {
    let reply = PeerReply::Object {
        id,
        len,
        layout: Layout::raw(len),
    };
    comm.send(&reply.to_message()).await.unwrap();
}

/// A chunk reply whose header declares `declared` bytes at `offset`, carrying `frames`.
fn chunk_message(id: ObjectId, offset: u64, declared: u64, frames: Vec<Bytes>) -> Message {
    let mut out = Vec::new();
    rmp::encode::write_array_len(&mut out, 4).unwrap();
    rmp::encode::write_uint(&mut out, 4).unwrap();
    rmp::encode::write_bin(&mut out, id.as_bytes()).unwrap();
    rmp::encode::write_uint(&mut out, offset).unwrap();
    rmp::encode::write_uint(&mut out, declared).unwrap();
    Message::new(Header::from_msgpack(Bytes::from(out)).unwrap(), frames)
}

fn nothing_left(here: &Store, id: &ObjectId) {
    let stats = here.stats();
    assert_eq!(
        (stats.objects, stats.used_bytes, stats.creating),
        (0, 0, 0),
        "a failed pull left something behind"
    );
    assert!(!here.contains(id));
}

#[tokio::test]
async fn a_peer_that_dies_mid_pull_is_a_typed_error_and_the_create_is_aborted() {
    let len = 8u64 << 20;
    let (address, task) = hostile_peer(move |mut comm| async move {
        let id = asked(&mut comm).await;
        describe(&mut comm, id, len).await;
        // Answer the first chunk request, then die.
        let message = comm.recv().await.unwrap().unwrap();
        let PeerRequest::Chunk { offset, len, .. } =
            peer_protocol::decode_request(&message).unwrap()
        else {
            panic!("want a chunk request");
        };
        let reply = PeerReply::Chunk {
            id,
            offset,
            frames: vec![Bytes::from(vec![5u8; len as usize])],
        };
        comm.send(&reply.to_message()).await.unwrap();
        drop(comm);
    })
    .await;
    let here = store(1 << 30);
    let id = ObjectId::new(pontoon_store::StoreId(77), 1);
    let mut options = PullOptions::default();
    options.chunk_bytes = 1 << 20;
    options.max_in_flight_bytes = 2 << 20;
    let err = here.pull_with(&id, &address, &options).await.unwrap_err();
    assert!(
        matches!(err, PullError::Closed { received, len: 8388608, .. } if received == 1 << 20)
            || matches!(err, PullError::Transport { .. }),
        "{err:?}"
    );
    nothing_left(&here, &id);
    task.await.unwrap();
}

#[tokio::test]
async fn hostile_peers_lying_about_chunks_are_typed_errors() {
    // Each script answers the first chunk request with a lie.
    type Lie = fn(ObjectId, u64, u64) -> Message;
    let lies: [(&str, Lie); 4] = [
        ("declares more bytes than it carries", |id, offset, len| {
            chunk_message(id, offset, len, vec![Bytes::from(vec![0u8; 3])])
        }),
        ("a chunk outside the object", |id, _, len| {
            chunk_message(id, 1 << 40, len, vec![Bytes::from(vec![0u8; len as usize])])
        }),
        ("a chunk of another object", |_, offset, len| {
            let other = ObjectId::new(pontoon_store::StoreId(1), 1);
            chunk_message(
                other,
                offset,
                len,
                vec![Bytes::from(vec![0u8; len as usize])],
            )
        }),
        ("a length past the protocol's bound", |id, offset, _| {
            chunk_message(id, offset, u64::MAX, vec![])
        }),
    ];
    for (what, lie) in lies {
        let (address, task) = hostile_peer(move |mut comm| async move {
            let id = asked(&mut comm).await;
            describe(&mut comm, id, 4 << 20).await;
            let message = comm.recv().await.unwrap().unwrap();
            let PeerRequest::Chunk { offset, len, .. } =
                peer_protocol::decode_request(&message).unwrap()
            else {
                panic!("want a chunk request");
            };
            let _ = comm.send(&lie(id, offset, len)).await;
            // Hold the connection open: the puller must fail on the lie, not on a close.
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let here = store(1 << 30);
        let id = ObjectId::new(pontoon_store::StoreId(78), 1);
        let err = here.pull(&id, &address).await.unwrap_err();
        assert!(
            matches!(err, PullError::Lying { .. } | PullError::Protocol { .. }),
            "{what}: {err:?}"
        );
        nothing_left(&here, &id);
        task.abort();
    }

    // A description whose frames lie outside its length, and a header that is not MessagePack.
    for layout in [
        Layout {
            header: Header::empty().into_bytes(),
            frames: vec![(10, 100)],
        },
        Layout {
            header: Bytes::from_static(b"\xc1"),
            frames: vec![(0, 100)],
        },
    ] {
        let (address, task) = hostile_peer(move |mut comm| async move {
            let id = asked(&mut comm).await;
            let reply = PeerReply::Object {
                id,
                len: 100,
                layout,
            };
            let _ = comm.send(&reply.to_message()).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let here = store(1 << 30);
        let id = ObjectId::new(pontoon_store::StoreId(79), 1);
        let err = here.pull(&id, &address).await.unwrap_err();
        assert!(matches!(err, PullError::Lying { .. }), "{err:?}");
        nothing_left(&here, &id);
        task.abort();
    }
}

#[tokio::test]
async fn a_serving_store_keeps_serving_after_bad_peers() {
    let owner = Arc::new(store(1 << 30));
    let server = owner.serve_peers(&loopback()).await.unwrap();
    let id = owner
        .put_raw(Message::new(
            Header::empty(),
            vec![Bytes::from(pattern(3 << 20, 1))],
        ))
        .unwrap();
    let mut config = Config::new("bad-peer");
    config.limits = peer_protocol::limits();

    // Raw bytes that are no handshake at all.
    let Address::Tcp(host_port) = server.address().clone() else {
        panic!("tcp")
    };
    let mut raw = tokio::net::TcpStream::connect(&host_port).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"GET / HTTP/1.1\r\n\r\n\xff\xff\xff\xff")
        .await
        .unwrap();

    // A chunk of an object never pulled on the connection, a chunk outside the object, a
    // malformed request: each answered with a refusal, then the connection closes.
    for request in [
        PeerRequest::Chunk {
            id,
            offset: 0,
            len: 10,
        }
        .to_message(),
        Message::new(Header::from_serde(&"nonsense").unwrap(), vec![]),
    ] {
        let mut comm = pontoon_transport::connect(server.address(), config.clone())
            .await
            .unwrap();
        comm.send(&request).await.unwrap();
        let reply = comm.recv().await.unwrap().unwrap();
        assert!(matches!(
            peer_protocol::decode_reply(&reply).unwrap(),
            PeerReply::Error(PeerRefusal::Refused { .. })
        ));
    }
    let mut comm = pontoon_transport::connect(server.address(), config.clone())
        .await
        .unwrap();
    comm.send(&PeerRequest::Pull { version: 1, id }.to_message())
        .await
        .unwrap();
    comm.recv().await.unwrap().unwrap();
    comm.send(
        &PeerRequest::Chunk {
            id,
            offset: 3 << 20,
            len: 1,
        }
        .to_message(),
    )
    .await
    .unwrap();
    let reply = peer_protocol::decode_reply(&comm.recv().await.unwrap().unwrap()).unwrap();
    assert!(matches!(
        reply,
        PeerReply::Error(PeerRefusal::Refused { .. })
    ));

    // Meanwhile a well-behaved puller is served.
    let here = store(1 << 30);
    here.pull(&id, server.address()).await.unwrap();
    assert!(here.get_raw(&id).unwrap().frames[0][..] == pattern(3 << 20, 1)[..]);
    drop(raw);
}

/// A daemon on a runtime of its own thread, serving peers on loopback: its directory (removed
/// when dropped, so hold it for the test), its socket and its peer address.
fn start_daemon(name: &str, capacity: u64) -> (Scratch, std::path::PathBuf, Address) {
    let dir = Scratch::new(&format!("pull-{name}"));
    let socket = dir.join("store.sock");
    let (tx, rx) = std::sync::mpsc::channel();
    let options = pontoon_store::ServeOptions::new(&socket, capacity);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut daemon = pontoon_store::Daemon::bind(options).unwrap();
            let address = daemon.listen_peers(&loopback()).await.unwrap();
            assert_eq!(daemon.peer_address(), Some(&address));
            tx.send(address).unwrap();
            daemon.run().await.unwrap();
        });
    });
    let address = rx.recv().unwrap();
    (dir, socket, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_to_daemon_through_client_pull() {
    use pontoon_store::{Client, ClientError};
    let (_dir_a, socket_a, peers_a) = start_daemon("a", 64 << 20);
    let (_dir_b, socket_b, _) = start_daemon("b", 64 << 20);
    let (_dir_small, socket_small, _) = start_daemon("small", 1 << 20);
    let a = Client::connect(&socket_a).await.unwrap();
    let b = Client::connect(&socket_b).await.unwrap();

    let data = pattern(6 << 20, 5);
    let header = Header::from_serde(&"raw bytes").unwrap();
    let id = a
        .put_raw(&Message::new(
            header.clone(),
            vec![Bytes::from(data.clone())],
        ))
        .await
        .unwrap();
    b.pull(&id, &peers_a).await.unwrap();
    let got = b.get_raw(&id).await.unwrap();
    assert_eq!(got.header.as_bytes(), header.as_bytes());
    assert!(got.frames[0][..] == data[..], "the pulled object differs");
    assert!(
        b.is_shared(&got.frames[0]),
        "not a view of daemon b's memory"
    );
    // Already there: a no-op, even with no peer to ask.
    b.pull(&id, &"tcp://127.0.0.1:1".parse().unwrap())
        .await
        .unwrap();
    drop(got);
    // The serving daemon releases its pin once the puller's connection is gone.
    let mut stats = a.stats().await.unwrap();
    for _ in 0..500 {
        if stats.pinned_objects == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        stats = a.stats().await.unwrap();
    }
    assert_eq!(stats.pinned_objects, 0, "{stats:?}");

    let unknown = ObjectId::new(id.store(), 999);
    match b.pull(&unknown, &peers_a).await {
        Err(ClientError::Refused(ObjectError::PullFailed { id, reason })) => {
            assert_eq!(id, unknown);
            assert!(reason.contains("no object"), "{reason}");
        }
        other => panic!("want PullFailed, got {other:?}"),
    }
    let small = Client::connect(&socket_small).await.unwrap();
    match small.pull(&id, &peers_a).await {
        Err(ClientError::Refused(ObjectError::StoreFull { .. })) => {}
        other => panic!("want StoreFull, got {other:?}"),
    }
    let stats = small.stats().await.unwrap();
    assert_eq!((stats.objects, stats.used_bytes), (0, 0), "{stats:?}");

    // An embedded store pulls from the daemon too.
    let here = store(1 << 30);
    here.pull(&id, &peers_a).await.unwrap();
    assert!(here.get_raw(&id).unwrap().frames[0][..] == data[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_cancelled_and_concurrent_pulls_leave_nothing_behind() {
    // A peer that describes an object and then never sends a byte, for every puller.
    let mut config = Config::new("stalling");
    config.limits = peer_protocol::limits();
    let mut listener = pontoon_transport::listen(&loopback(), config)
        .await
        .unwrap();
    let address = listener.address().clone();
    let stalling = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let mut comm = listener.accept().await.unwrap().handshake().await.unwrap();
            let id = asked(&mut comm).await;
            describe(&mut comm, id, 8 << 20).await;
            held.push(comm);
        }
    });
    let here = Arc::new(store(1 << 30));
    let id = ObjectId::new(pontoon_store::StoreId(80), 1);

    // No answer within the reply timeout: a typed error.
    let mut options = PullOptions::default();
    options.reply_timeout = Duration::from_millis(200);
    let err = here.pull_with(&id, &address, &options).await.unwrap_err();
    assert!(matches!(err, PullError::Timeout { .. }), "{err:?}");
    nothing_left(&here, &id);

    // While one pull is under way, a second of the same object is refused; once the first is
    // cancelled (its future dropped), nothing of it is left.
    let first = {
        let here = here.clone();
        let address = address.clone();
        tokio::spawn(async move { here.pull(&id, &address).await })
    };
    while here.stats().creating == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = here.pull(&id, &address).await.unwrap_err();
    assert!(
        matches!(second, PullError::InProgress { id: got } if got == id),
        "{second:?}"
    );
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    nothing_left(&here, &id);
    stalling.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_pull_that_fails_or_whose_client_goes_leaves_nothing() {
    use pontoon_store::{Client, ClientError};
    let (_dir, socket, _) = start_daemon("faults", 64 << 20);
    let client = Client::connect(&socket).await.unwrap();
    let id = ObjectId::new(pontoon_store::StoreId(81), 1);

    // The peer dies after the first chunk: PullFailed, the create aborted.
    let (address, task) = hostile_peer(move |mut comm| async move {
        let id = asked(&mut comm).await;
        describe(&mut comm, id, 16 << 20).await;
        let message = comm.recv().await.unwrap().unwrap();
        let PeerRequest::Chunk { offset, len, .. } =
            peer_protocol::decode_request(&message).unwrap()
        else {
            panic!("want a chunk request");
        };
        let reply = PeerReply::Chunk {
            id,
            offset,
            frames: vec![Bytes::from(vec![5u8; len as usize])],
        };
        comm.send(&reply.to_message()).await.unwrap();
    })
    .await;
    match client.pull(&id, &address).await {
        Err(ClientError::Refused(ObjectError::PullFailed { id: got, reason })) => {
            assert_eq!(got, id);
            assert!(reason.contains(&address.to_string()), "{reason}");
        }
        other => panic!("want PullFailed, got {other:?}"),
    }
    task.await.unwrap();
    let stats = client.stats().await.unwrap();
    assert_eq!((stats.objects, stats.creating, stats.used_bytes), (0, 0, 0));

    // A client that goes while its daemon pulls from a peer that stalls: the pull is aborted.
    let (address, task) = hostile_peer(move |mut comm| async move {
        let id = asked(&mut comm).await;
        describe(&mut comm, id, 16 << 20).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let leaving = Client::connect(&socket).await.unwrap();
    let pulling = tokio::spawn(async move { leaving.pull(&id, &address).await });
    while client.stats().await.unwrap().creating == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pulling.abort();
    let _ = pulling.await;
    let mut stats = client.stats().await.unwrap();
    for _ in 0..500 {
        if stats.creating == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        stats = client.stats().await.unwrap();
    }
    assert_eq!((stats.objects, stats.creating, stats.used_bytes), (0, 0, 0));
    task.abort();

    // A peer address longer than the daemon reads is refused by the client, which stays
    // connected.
    let long = pontoon_transport::Address::Tcp(format!("{}:7000", "h".repeat(2000)));
    match client.pull(&id, &long).await {
        Err(ClientError::Refused(ObjectError::PullFailed { id: got, reason })) => {
            assert_eq!(got, id);
            assert!(reason.contains("at most 1024"), "{reason}");
        }
        other => panic!("want PullFailed, got {other:?}"),
    }
    assert_eq!(client.stats().await.unwrap().objects, 0);
}
