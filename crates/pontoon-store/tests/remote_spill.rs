//! Spilling an embedded store to a remote, for real: a SeaweedFS server started by the test
//! (the same support code as pontoon-persist's remote tests) and `file://` directories. Objects
//! spill fused into remote objects, come back byte-exact from range reads, and are deleted
//! once freed (the bucket is listed to check nothing is left); a large object goes up as a
//! multipart upload; stale objects of an earlier run are removed at start; refused
//! credentials, an unreachable endpoint and a full remote (a tiny tmpfs, mounted as root) are
//! typed errors, and a failed spill leaves every object in memory.

#![cfg(feature = "remote")]

#[allow(dead_code, reason = "each test file uses part of the shared support")]
mod support;
use support::TinyDisk;

#[path = "../../pontoon-persist/tests/support/seaweed.rs"]
#[allow(dead_code)]
mod seaweed;

#[path = "support/remote_target.rs"]
mod remote_target;
use remote_target::Target;

use bytes::Bytes;
use pontoon_persist::Remote;
use pontoon_store::{ObjectError, ObjectId, RemoteFault, Store, StoreOptions};
use pontoon_wire::{Header, Message};
use seaweed::Seaweed;

/// Object `i`: a header naming it and one 64-byte-aligned frame of `len` bytes that differ
/// per object (aligned, so that a frame read back is aligned whether it was spilled or not).
fn object(i: u32, len: usize) -> Message {
    let mut frame: Vec<u8> = Vec::with_capacity(len + 64);
    let pad = frame.as_ptr().align_offset(64);
    frame.resize(pad, 0);
    frame.extend((0..len).map(|b| (b as u32).wrapping_mul(31).wrapping_add(i) as u8));
    let frame = Bytes::from(frame).slice(pad..);
    Message::new(Header::from_serde(&i).unwrap(), vec![frame])
}

impl Target {
    fn store(&self, capacity: u64, file_bytes: u64) -> Result<Store, ObjectError> {
        let mut options = StoreOptions::default();
        options.capacity = capacity;
        options.spill_file_bytes = file_bytes;
        options.spill_remote = Some(self.spill_remote());
        Store::open(options)
    }
}

/// Puts 48 objects of 40 KB into a store of 1 MiB spilling in objects of 256 KiB: most go to
/// the remote, fused; each comes back byte-exact (aligned frames), and the remote holds as
/// many spill objects as the store counts; freeing them deletes the remote objects, until
/// nothing is left.
fn spilled_restored_and_deleted(target: &Target) {
    let store = target.store(1 << 20, 256 << 10).unwrap();
    let messages: Vec<Message> = (0..48).map(|i| object(i, 40_000)).collect();
    let ids: Vec<ObjectId> = messages
        .iter()
        .map(|m| store.put_raw(m.clone()).unwrap())
        .collect();
    let stats = store.stats();
    assert!(stats.spilled_objects >= 24, "{stats:?}");
    assert!(stats.used_bytes <= stats.high_water_mark, "{stats:?}");
    // Fused: about six 40 KB records per 256 KiB object, not one object each.
    assert!(
        stats.spill_files * 4 <= stats.spilled_objects,
        "{} remote objects for {} spilled",
        stats.spill_files,
        stats.spilled_objects
    );
    let listed = target.listed();
    assert_eq!(listed.len() as u64, stats.spill_files, "{listed:?}");
    assert!(listed.iter().all(|(name, size)| name.starts_with("spill-")
        && name.ends_with(".rec")
        && *size <= 256 << 10));
    for (id, message) in ids.iter().zip(&messages) {
        let back = store.get_raw(id).unwrap();
        assert_eq!(&back, message);
        assert_eq!(back.frames[0].as_ptr() as usize % 64, 0);
    }
    // A take reads the object back and frees it.
    let taken = store.take(&ids[0]).unwrap();
    assert_eq!(taken, messages[0]);
    assert!(matches!(
        store.get_raw(&ids[0]),
        Err(ObjectError::Unknown { .. })
    ));
    // Freeing the older half deletes the remote objects only they lived in.
    for id in &ids[1..24] {
        store.delete(id).unwrap();
    }
    let stats = store.stats();
    assert_eq!(target.listed().len() as u64, stats.spill_files);
    for (id, message) in ids[24..].iter().zip(&messages[24..]) {
        assert_eq!(&store.get_raw(id).unwrap(), message);
    }
    for id in &ids[24..] {
        store.delete(id).unwrap();
    }
    let stats = store.stats();
    assert_eq!(
        (stats.objects, stats.spilled_objects, stats.spill_files),
        (0, 0, 0)
    );
    assert_eq!(target.listed(), Vec::<(String, u64)>::new());
}

/// Spill objects an earlier run left under the prefix go at start, other objects stay; what a
/// store spilled goes with it when it is dropped.
fn stale_removed_and_dropped_store_leaves_nothing(target: &Target) {
    let remote = Remote::open(&target.url, target.options.clone()).unwrap();
    remote
        .put(
            "spill-00000000000000aa-00000001.rec",
            vec![Bytes::from_static(b"old")],
        )
        .unwrap();
    remote
        .put("notes.txt", vec![Bytes::from_static(b"kept")])
        .unwrap();
    let store = target.store(1 << 20, 256 << 10).unwrap();
    assert_eq!(target.listed(), vec![("notes.txt".to_owned(), 4)]);
    for i in 0..40 {
        store.put_raw(object(i, 40_000)).unwrap();
    }
    assert!(store.stats().spill_files > 0);
    assert!(target.listed().len() > 1);
    drop(store);
    assert_eq!(target.listed(), vec![("notes.txt".to_owned(), 4)]);
    remote.delete("notes.txt").unwrap();
}

#[test]
fn file_objects_spill_come_back_byte_exact_and_are_deleted_after_free() {
    let dir = support::Scratch::new("remote-spill-file-round-trip");
    spilled_restored_and_deleted(&Target::file(&dir));
}

#[test]
fn file_stale_spill_objects_go_at_start_and_a_dropped_store_leaves_nothing() {
    let dir = support::Scratch::new("remote-spill-file-stale");
    stale_removed_and_dropped_store_leaves_nothing(&Target::file(&dir));
}

/// A store used from async code (a tokio worker, where the remote's own runtime cannot be
/// entered) spills and reads back the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_spilling_from_inside_a_tokio_runtime_works() {
    let dir = support::Scratch::new("remote-spill-file-tokio");
    spilled_restored_and_deleted(&Target::file(&dir));
}

/// One server for the three cases, each under a prefix of its own (a server per test makes
/// the tests wait on each other's start-up, on a loaded machine past the 90 s it is given).
#[test]
fn seaweedfs_spilled_restored_deleted_stale_removed_and_large_objects_in_parts() {
    let server = Seaweed::start("store-round-trip");
    spilled_restored_and_deleted(&Target::seaweed(&server, "store-a"));
    stale_removed_and_dropped_store_leaves_nothing(&Target::seaweed(&server, "store-b"));
    large_object_in_parts(&Target::seaweed(&server, "store-c"));
}

/// An object larger than one upload part (8 MiB) goes up as a multipart upload and comes back
/// whole.
fn large_object_in_parts(target: &Target) {
    let store = target.store(24 << 20, 100 << 20).unwrap();
    let messages: Vec<Message> = (0..3).map(|i| object(i, 9 << 20)).collect();
    let ids: Vec<ObjectId> = messages
        .iter()
        .map(|m| store.put_raw(m.clone()).unwrap())
        .collect();
    assert!(store.stats().spilled_objects >= 1);
    let listed = target.listed();
    assert!(listed.iter().any(|(_, size)| *size > 9 << 20), "{listed:?}");
    for (id, message) in ids.iter().zip(&messages) {
        assert_eq!(&store.get_raw(id).unwrap(), message);
    }
    for id in &ids {
        store.delete(id).unwrap();
    }
    assert_eq!(target.listed(), Vec::<(String, u64)>::new());
}

#[test]
fn file_a_large_spilled_object_comes_back() {
    let dir = support::Scratch::new("remote-spill-file-large");
    large_object_in_parts(&Target::file(&dir));
}

fn remote_fault(error: &ObjectError) -> RemoteFault {
    match error {
        ObjectError::SpillRemoteFailed { fault, .. } => *fault,
        other => panic!("not a remote error: {other:?}"),
    }
}

#[test]
fn seaweedfs_refused_credentials_and_an_unreachable_endpoint_are_typed_and_lose_nothing() {
    let server = Seaweed::start("store-credentials");
    let mut wrong = Target::seaweed(&server, "store-d");
    wrong.options = server.options(seaweed::ACCESS_KEY, "wrong");
    let err = wrong.store(1 << 20, 256 << 10).unwrap_err();
    assert_eq!(remote_fault(&err), RemoteFault::Refused, "{err}");
    assert!(err.to_string().contains("credentials refused"), "{err}");

    // A store whose remote goes away: the spill fails, typed, and every object stays. Few
    // retries, so that each request to the dead server gives up soon.
    let target = Target::seaweed(&server, "store-e");
    let mut timeouts = pontoon_persist::RemoteTimeouts::default();
    timeouts.max_retries = 1;
    timeouts.retry = std::time::Duration::from_secs(2);
    timeouts.connect = std::time::Duration::from_secs(1);
    let mut options = StoreOptions::default();
    options.capacity = 1 << 20;
    options.spill_file_bytes = 256 << 10;
    options.spill_remote = Some(target.spill_remote().timeouts(timeouts));
    let store = Store::open(options).unwrap();
    let messages: Vec<Message> = (0..40).map(|i| object(i, 40_000)).collect();
    let mut ids = Vec::new();
    for message in &messages[..20] {
        ids.push(store.put_raw(message.clone()).unwrap());
    }
    drop(server);
    let mut error = None;
    for message in &messages[20..] {
        match store.put_raw(message.clone()) {
            Ok(id) => ids.push(id),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("a put past the capacity with the remote gone must fail");
    assert_eq!(remote_fault(&error), RemoteFault::Unreachable, "{error}");
    // Those in memory are still there; those spilled before are unreadable, typed.
    let mut in_memory = 0;
    for (id, message) in ids.iter().zip(&messages) {
        match store.get_raw(id) {
            Ok(back) => {
                assert_eq!(&back, message);
                in_memory += 1;
            }
            Err(e) => assert_eq!(remote_fault(&e), RemoteFault::Unreachable, "{e}"),
        }
    }
    let stats = store.stats();
    assert_eq!(in_memory + stats.spilled_objects, ids.len() as u64);
    assert!(in_memory > 0);

    // An endpoint nobody listens on fails the open.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody = Target {
        url: "s3://pontoon/x".to_owned(),
        options: Seaweed::options_for_port(port),
    };
    let err = nobody.store(1 << 20, 256 << 10).unwrap_err();
    assert_eq!(remote_fault(&err), RemoteFault::Unreachable, "{err}");
}

#[test]
fn file_a_full_remote_is_a_typed_error_and_nothing_is_lost_or_skipped_loudly() {
    let dir = support::Scratch::new("remote-spill-full");
    let disk = dir.join("disk");
    let _mounted = match TinyDisk::mount(&disk, 512 << 10) {
        Ok(mounted) => mounted,
        Err(why) => {
            eprintln!(
                "SKIPPED file_a_full_remote_is_a_typed_error_and_nothing_is_lost_or_skipped_loudly: \
                 it mounts a tiny tmpfs, and {why}"
            );
            return;
        }
    };
    let target = Target::file(&disk);
    let store = target.store(2 << 20, 128 << 10).unwrap();
    let messages: Vec<Message> = (0..200).map(|i| object(i, 40_000)).collect();
    let mut ids = Vec::new();
    let mut error = None;
    for message in &messages {
        match store.put_raw(message.clone()) {
            Ok(id) => ids.push(id),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("8 MB cannot all fit in 2 MiB of memory and 512 KiB of remote");
    assert_eq!(remote_fault(&error), RemoteFault::Full, "{error}");
    for (id, message) in ids.iter().zip(&messages) {
        assert_eq!(&store.get_raw(id).unwrap(), message);
    }
    // Freeing makes room on the remote again.
    for id in &ids {
        store.delete(id).unwrap();
    }
    assert_eq!(target.listed(), Vec::<(String, u64)>::new());
    drop(store);
    drop(_mounted);
}

/// Four threads putting, getting and deleting at once while spills are under way (the lock is
/// let go for the remote's I/O): every put finds room (a put that does not fit waits for the
/// spill under way), every object comes back byte-exact, and nothing is left after.
#[test]
fn file_concurrent_puts_and_gets_while_spilling_lose_nothing() {
    let dir = support::Scratch::new("remote-spill-file-concurrent");
    let target = Target::file(&dir);
    let store = target.store(1 << 20, 256 << 10).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let store = &store;
            s.spawn(move || {
                let messages: Vec<Message> = (0..30).map(|i| object(t * 100 + i, 40_000)).collect();
                let mut ids = Vec::new();
                for message in &messages {
                    ids.push(store.put_raw(message.clone()).unwrap());
                    // An older one of this thread's, in memory or spilled by now.
                    let back = ids.len() / 2;
                    assert_eq!(&store.get_raw(&ids[back]).unwrap(), &messages[back]);
                }
                for (id, message) in ids.iter().zip(&messages) {
                    assert_eq!(&store.get_raw(id).unwrap(), message);
                }
                for id in &ids {
                    store.delete(id).unwrap();
                }
            });
        }
    });
    let stats = store.stats();
    assert_eq!(
        (stats.objects, stats.used_bytes, stats.spill_files),
        (0, 0, 0)
    );
    assert_eq!(target.listed(), Vec::<(String, u64)>::new());
    drop(store);
}

/// Whoever can write to the bucket can change a spilled object: a get of an object whose
/// remote bytes were changed is `SpillRemoteFailed` with `RemoteFault::Corrupt`, never other
/// bytes, and the objects not touched still come back.
#[test]
fn file_a_changed_remote_object_is_corrupt_not_other_bytes() {
    let dir = support::Scratch::new("remote-spill-corrupt");
    let target = Target::file(&dir);
    let store = target.store(1 << 20, 256 << 10).unwrap();
    let messages: Vec<Message> = (0..48).map(|i| object(i, 40_000)).collect();
    let ids: Vec<ObjectId> = messages
        .iter()
        .map(|m| store.put_raw(m.clone()).unwrap())
        .collect();
    assert!(store.stats().spilled_objects > 0);
    // Flip one byte in the middle of every remote object: every record in them now fails
    // its checksum (the middle of a 40 KB frame, whichever record holds it).
    for (name, len) in target.listed() {
        let path = dir.join(&name);
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, len);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let (mut corrupt, mut intact) = (0, 0);
    for (id, message) in ids.iter().zip(&messages) {
        match store.get_raw(id) {
            Ok(back) => {
                assert_eq!(back.frames, message.frames, "{id}");
                intact += 1;
            }
            Err(e) => {
                assert_eq!(remote_fault(&e), RemoteFault::Corrupt, "{e}");
                corrupt += 1;
            }
        }
    }
    assert!(corrupt > 0, "no changed object was noticed");
    assert!(intact > 0, "the objects in memory come back too");
    drop(store);
}
