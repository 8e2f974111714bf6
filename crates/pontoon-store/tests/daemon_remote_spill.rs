//! Spilling a store daemon to a remote, for real: a SeaweedFS server started by the test (the
//! same support code as pontoon-persist's remote tests) and `file://` directories, with clients
//! over the daemon's socket. Objects spill fused into remote objects, come back byte-exact to
//! concurrent clients (each get of a spilled object a copy of its own), a take copies one back
//! into memory, deletes delete the remote objects, and a remote that goes away is a typed error
//! that loses nothing and leaves the daemon serving.

#![cfg(feature = "remote")]

#[allow(dead_code, reason = "each test file uses part of the shared support")]
mod support;

#[path = "../../pontoon-persist/tests/support/seaweed.rs"]
#[allow(dead_code)]
mod seaweed;

#[path = "support/remote_target.rs"]
mod remote_target;
use remote_target::Target;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pontoon_persist::RemoteTimeouts;
use pontoon_store::{
    Client, ClientError, Daemon, ObjectError, ObjectId, RemoteFault, ServeError, ServeOptions,
    SpillRemote, StatsHandle,
};
use pontoon_wire::{Header, Message};
use seaweed::Seaweed;

/// A [`support::Scratch`] (`daemon-remote-spill-{name}`) with an empty `remote` directory
/// inside it, for a `file://` remote.
fn dir_with_remote(name: &str) -> (support::Scratch, PathBuf) {
    let dir = support::Scratch::new(&format!("daemon-remote-spill-{name}"));
    let remote = dir.join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    (dir, remote)
}

/// Object `i`: a header naming it and one frame of `len` bytes that differ per object.
fn object(i: u32, len: usize) -> Message {
    let frame: Vec<u8> = (0..len)
        .map(|b| (b as u32).wrapping_mul(31).wrapping_add(i) as u8)
        .collect();
    Message::new(Header::from_serde(&i).unwrap(), vec![Bytes::from(frame)])
}

impl Target {
    /// A daemon of 1 MiB spilling in remote objects of 256 KiB, on a runtime of its own.
    fn daemon(&self, socket: &Path, timeouts: RemoteTimeouts) -> StatsHandle {
        let mut options = ServeOptions::new(socket, 1 << 20);
        options.spill_file_bytes = 256 << 10;
        options.spill_remote = Some(self.spill_remote().timeouts(timeouts));
        support::start(options)
    }

    /// Waits (up to a minute) for the daemon's deleting thread to leave `count` spill objects.
    fn await_listed(&self, count: usize) -> Vec<(String, u64)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let listed = self.listed();
            if listed.len() == count || Instant::now() > deadline {
                return listed;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Puts 48 objects of 40 KB into a daemon of 1 MiB: most go to the remote, fused; each comes
/// back byte-exact, to two clients at once; a take of a spilled object copies it into memory;
/// deleting them all deletes every remote object.
async fn spilled_restored_taken_and_deleted(target: &Target, socket: &Path) {
    let stats = target.daemon(socket, RemoteTimeouts::default());
    let client = Client::connect(socket).await.unwrap();
    let messages: Vec<Message> = (0..48).map(|i| object(i, 40_000)).collect();
    // Held by this client: pinned, never spilled.
    let first = client.put_raw(&messages[0]).await.unwrap();
    let held = client.get_raw(&first).await.unwrap();
    let mut ids = vec![first];
    for message in &messages[1..] {
        ids.push(client.put_raw(message).await.unwrap());
    }
    let now = stats.stats();
    assert!(now.spilled_objects >= 24, "{now:?}");
    assert!(now.used_bytes <= now.high_water_mark, "{now:?}");
    assert_eq!(now.objects, 48, "{now:?}");
    // Fused: about six 40 KB records per 256 KiB object, not one object each.
    assert!(now.spill_files * 4 <= now.spilled_objects, "{now:?}");
    let listed = target.await_listed(now.spill_files as usize);
    assert_eq!(listed.len() as u64, now.spill_files, "{listed:?}");
    assert!(
        listed.iter().all(|(_, size)| *size <= 256 << 10),
        "{listed:?}"
    );
    assert_eq!(
        client.get_raw(&first).await.unwrap().frames[0].as_ptr(),
        held.frames[0].as_ptr()
    );
    drop(held);

    // Two clients read everything back at once, each object from its own task.
    let other = Client::connect(socket).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let client = if i % 2 == 0 {
            client.clone()
        } else {
            other.clone()
        };
        let id = *id;
        tasks.spawn(async move { (i, client.get_raw(&id).await) });
    }
    while let Some(done) = tasks.join_next().await {
        let (i, back) = done.unwrap();
        let back = back.unwrap_or_else(|e| panic!("object {i}: {e}"));
        assert_eq!(back, messages[i], "object {i}");
    }
    // Gets of spilled objects read copies: the remote still holds them all.
    assert_eq!(stats.stats().spilled_objects, now.spilled_objects);

    // A take of a spilled object copies it into memory, and frees its record.
    let taken = client.take(&ids[1]).await.unwrap();
    assert!(taken.copied());
    let resealed = taken.seal().await.unwrap();
    assert_eq!(client.get_raw(&resealed).await.unwrap(), messages[1]);
    assert!(!client.contains(&ids[1]).await.unwrap());
    assert_eq!(stats.stats().spilled_objects, now.spilled_objects - 1);

    for id in ids.iter().filter(|id| **id != ids[1]).chain([&resealed]) {
        client.delete(id).await.unwrap();
    }
    let end = stats.stats();
    assert_eq!(
        (end.objects, end.spilled_objects, end.spill_files),
        (0, 0, 0),
        "{end:?}"
    );
    assert_eq!(target.await_listed(0), Vec::<(String, u64)>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_daemon_objects_spill_come_back_to_concurrent_clients_and_are_deleted_after() {
    let (dir, remote) = dir_with_remote("file");
    spilled_restored_taken_and_deleted(&Target::file(&remote), &dir.join("store.sock")).await;
}

#[test]
fn a_daemon_spills_to_a_directory_or_a_remote_not_both() {
    let dir = support::Scratch::new("daemon-remote-spill-both");
    let mut options = ServeOptions::new(dir.join("store.sock"), 1 << 20);
    options.spill_dir = Some(dir.join("spill"));
    options.spill_remote = Some(SpillRemote::new(format!("file://{}", dir.display())));
    let err = Daemon::bind(options).unwrap_err();
    assert!(matches!(err, ServeError::SpillRemote(_)), "{err}");
}

fn remote_fault(error: &ClientError) -> Option<RemoteFault> {
    match error {
        ClientError::Refused(ObjectError::SpillRemoteFailed { fault, .. }) => Some(*fault),
        _ => None,
    }
}

/// One server for both cases, each under a prefix of its own (a server per test makes the
/// tests wait on each other's start-up).
/// (A plain test: the server's start-up waits on a runtime of its own.)
#[test]
fn seaweedfs_daemon_spills_restores_deletes_and_a_remote_gone_loses_nothing() {
    let server = Seaweed::start("daemon-spill");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(seaweed_cases(server));
}

async fn seaweed_cases(server: Seaweed) {
    let dir = support::Scratch::new("daemon-remote-spill-seaweed");
    spilled_restored_taken_and_deleted(&Target::seaweed(&server, "daemon-a"), &dir.join("a.sock"))
        .await;

    // A daemon whose remote goes away: creates that need a spill fail, typed; every object
    // in memory stays readable and the daemon serves on. Few retries, so that each request
    // to the dead server gives up soon.
    let target = Target::seaweed(&server, "daemon-b");
    let mut timeouts = RemoteTimeouts::default();
    timeouts.max_retries = 1;
    timeouts.retry = Duration::from_secs(2);
    timeouts.connect = Duration::from_secs(1);
    let socket = dir.join("b.sock");
    let stats = target.daemon(&socket, timeouts);
    let client = Client::connect(&socket).await.unwrap();
    let messages: Vec<Message> = (0..40).map(|i| object(i, 40_000)).collect();
    let mut ids: Vec<ObjectId> = Vec::new();
    for message in &messages[..20] {
        ids.push(client.put_raw(message).await.unwrap());
    }
    drop(server);
    let mut error = None;
    for message in &messages[20..] {
        match client.put_raw(message).await {
            Ok(id) => ids.push(id),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("a put past the capacity with the remote gone must fail");
    assert_eq!(
        remote_fault(&error),
        Some(RemoteFault::Unreachable),
        "{error}"
    );
    let mut in_memory = 0;
    for (id, message) in ids.iter().zip(&messages) {
        match client.get_raw(id).await {
            Ok(back) => {
                assert_eq!(&back, message);
                in_memory += 1;
            }
            Err(e) => assert_eq!(remote_fault(&e), Some(RemoteFault::Unreachable), "{e}"),
        }
    }
    let now = client.stats().await.unwrap();
    assert_eq!(in_memory + now.spilled_objects, ids.len() as u64, "{now:?}");
    assert!(in_memory > 0);
    assert_eq!(now.objects, ids.len() as u64);
    // A failed get released its pin: nothing is pinned now.
    assert_eq!(stats.stats().pinned_objects, 0);
}

/// Four clients put at once through 1 MiB of memory: their spill rounds run with the lock
/// released and overlap (a create waits for a round under way rather than fail), and every
/// object comes back byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_concurrent_creates_spill_in_overlapping_rounds_and_lose_nothing() {
    let (dir, remote) = dir_with_remote("concurrent");
    let socket = dir.join("store.sock");
    let stats = Target::file(&remote).daemon(&socket, RemoteTimeouts::default());
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..4u32 {
        let socket = socket.clone();
        tasks.spawn(async move {
            let client = Client::connect(&socket).await.unwrap();
            let mut ids = Vec::new();
            for i in 0..20 {
                let n = c * 100 + i;
                ids.push((n, client.put_raw(&object(n, 40_000)).await.unwrap()));
            }
            (client, ids)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.push(done.unwrap());
    }
    let now = stats.stats();
    assert_eq!(now.objects, 80, "{now:?}");
    assert!(now.spilled_objects >= 50, "{now:?}");
    assert!(now.used_bytes <= now.capacity, "{now:?}");
    for (client, ids) in &all {
        for (n, id) in ids {
            assert_eq!(
                client.get_raw(id).await.unwrap(),
                object(*n, 40_000),
                "object {n}"
            );
        }
    }
}

/// A daemon whose memory its own objects fill pulls one more from a peer store: it spills to
/// its remote to make room, as a create does, instead of refusing the pull with `StoreFull`;
/// the pulled object and every one of its own come back byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_a_pull_into_a_full_daemon_spills_to_the_remote_to_make_room() {
    let (dir, remote) = dir_with_remote("pull");
    // The peer: a daemon without a remote that serves peers.
    let peer_socket = dir.join("peer.sock");
    let (_, peer_address) = support::start_serving_peers(ServeOptions::new(&peer_socket, 4 << 20));
    let peer = Client::connect(&peer_socket).await.unwrap();
    let pulled = object(1000, 400_000);
    let id = peer.put_raw(&pulled).await.unwrap();

    let socket = dir.join("store.sock");
    let stats = Target::file(&remote).daemon(&socket, RemoteTimeouts::default());
    let client = Client::connect(&socket).await.unwrap();
    let mut own = Vec::new();
    for i in 0..20 {
        own.push((client.put_raw(&object(i, 40_000)).await.unwrap(), i));
    }
    let before = stats.stats();
    // 400 KB more than the memory left: only a spill makes room for it.
    assert!(before.used_bytes + 400_000 > before.capacity, "{before:?}");
    client.pull(&id, &peer_address).await.unwrap();
    let after = stats.stats();
    assert!(after.spilled_objects > before.spilled_objects, "{after:?}");
    assert_eq!(after.objects, 21, "{after:?}");
    assert_eq!(client.get_raw(&id).await.unwrap(), pulled);
    for (id, i) in own {
        assert_eq!(client.get_raw(&id).await.unwrap(), object(i, 40_000), "{i}");
    }
}

/// A peer pulls objects a daemon has spilled, to a spill directory and to a remote: each is
/// served from where it is (a view of its spill file, or read from the remote), byte-exact,
/// and stays spilled at the daemon; an object the daemon never had is still unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_peers_pull_objects_spilled_to_a_directory_or_a_remote() {
    let (dir, remote) = dir_with_remote("serve-spilled");
    let puller_socket = dir.join("puller.sock");
    let _puller = support::start(ServeOptions::new(&puller_socket, 8 << 20));
    let puller = Client::connect(&puller_socket).await.unwrap();
    for (name, spill) in [("dir", None), ("remote", Some(&remote))] {
        let socket = dir.join(format!("{name}.sock"));
        let mut options = ServeOptions::new(&socket, 1 << 20);
        options.spill_file_bytes = 256 << 10;
        match spill {
            None => options.spill_dir = Some(dir.join("spill")),
            Some(remote) => options.spill_remote = Some(Target::file(remote).spill_remote()),
        }
        let (stats, address) = support::start_serving_peers(options);
        let client = Client::connect(&socket).await.unwrap();
        let base = if spill.is_none() { 0 } else { 100 };
        let messages: Vec<Message> = (0..30).map(|i| object(base + i, 40_000)).collect();
        let mut ids = Vec::new();
        for message in &messages {
            ids.push(client.put_raw(message).await.unwrap());
        }
        let spilled_before = stats.stats().spilled_objects;
        assert!(spilled_before >= 10, "{name}: {:?}", stats.stats());
        // The first objects put are the first spilled (least recently used).
        for (i, id) in ids.iter().enumerate().take(10) {
            puller.pull(id, &address).await.unwrap();
            assert_eq!(puller.get_raw(id).await.unwrap(), messages[i], "{name} {i}");
        }
        assert_eq!(stats.stats().spilled_objects, spilled_before, "{name}");
        let never = ObjectId::new(client.store_id(), 999);
        match puller.pull(&never, &address).await {
            Err(ClientError::Refused(ObjectError::PullFailed { reason, .. })) => {
                assert!(reason.contains("no object"), "{name}: {reason}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}
