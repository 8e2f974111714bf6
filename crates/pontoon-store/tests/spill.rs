//! Spilling, for real: objects written to files in a spill directory (with fsync) under a small
//! capacity, embedded and through the daemon; got back as views of the spill file's map (found
//! in `/proc/self/maps`, so not copies); pinned objects kept in memory; files fused and removed
//! with their last object; objects larger than the capacity created on disk; a full spill disk
//! (a tiny tmpfs, mounted by the test as root) a typed error with nothing lost; stale files of
//! an earlier run removed at start; concurrent gets each taking their own descriptor; a client
//! dying mid-get; and a fake daemon whose spill replies lie (a file shorter than the object, a
//! reply without its descriptor), refused by the client.

#[allow(dead_code, reason = "each test file uses part of the shared support")]
mod support;
use support::{TinyDisk, start};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use pontoon_store::protocol::{Request, Response};
use pontoon_store::{
    Client, ClientError, Daemon, ObjectError, ObjectId, ServeOptions, StatsHandle, Store,
    StoreOptions,
};
use pontoon_wire::{Encoder, Header, Message};

/// The file a byte at `ptr` of this process is mapped from, if any (from `/proc/self/maps`).
fn mapped_file(ptr: *const u8) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let at = ptr as usize;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let (start, end) = range.split_once('-')?;
        let (start, end) = (
            usize::from_str_radix(start, 16).ok()?,
            usize::from_str_radix(end, 16).ok()?,
        );
        if (start..end).contains(&at) {
            let path = fields.nth(4).map(PathBuf::from);
            return path.filter(|p| p.is_absolute());
        }
    }
    None
}

/// The spill files in `dir` (everything but its `LOCK`).
fn spill_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "LOCK")
        .collect();
    names.sort();
    names
}

fn object(i: u32, len: usize) -> Message {
    let frame: Vec<u8> = (0..len).map(|b| (b as u32 * 31 + i) as u8).collect();
    Message::new(
        Header::from_serde(&("object", i)).unwrap(),
        vec![
            Bytes::from(frame),
            Bytes::from(format!("tail {i}").into_bytes()),
        ],
    )
}

fn spilling_store(dir: &Path, capacity: u64, file_bytes: u64) -> Store {
    let mut options = StoreOptions::default();
    options.capacity = capacity;
    options.spill_dir = Some(dir.to_path_buf());
    options.spill_file_bytes = file_bytes;
    Store::open(options).unwrap()
}

#[test]
fn embedded_objects_spill_under_a_small_capacity_and_come_back_as_views_of_the_spill_file() {
    let dir = support::Scratch::new("spill-embedded");
    let store = spilling_store(&dir, 1 << 20, 100 << 20);
    // Held: pinned, so it must stay in memory however full the store gets.
    let first = store.put_raw(object(0, 100_000)).unwrap();
    let held = store.get_raw(&first).unwrap();
    let held_ptr = held.frames[0].as_ptr();
    let ids: Vec<_> = (1..40)
        .map(|i| store.put_raw(object(i, 100_000)).unwrap())
        .collect();
    let stats = store.stats();
    assert!(stats.used_bytes <= stats.high_water_mark, "{stats:?}");
    assert!(stats.spilled_objects >= 30, "{stats:?}");
    assert!(stats.spilled_bytes >= 30 * 100_000, "{stats:?}");
    assert_eq!(stats.objects, 40);
    assert_eq!(stats.pinned_objects, 1);
    // 4 MB spilled into files of up to 100 MiB: one file.
    assert_eq!(stats.spill_files, 1);
    assert_eq!(spill_files(&dir).len(), 1);

    let mut from_spill_file = 0;
    for (i, id) in (1..).zip(&ids) {
        let back = store.get_raw(id).unwrap();
        assert_eq!(back, object(i, 100_000), "object {i}");
        if let Some(file) = mapped_file(back.frames[0].as_ptr()) {
            assert!(file.starts_with(&dir), "{}", file.display());
            from_spill_file += 1;
        }
    }
    assert_eq!(from_spill_file, stats.spilled_objects);
    // The pinned object was never spilled: the same memory, not a map of a file.
    assert_eq!(store.get_raw(&first).unwrap().frames[0].as_ptr(), held_ptr);
    assert_eq!(mapped_file(held_ptr), None);
    drop(held);

    // Deleting every object removes every spill file.
    for id in ids.iter().chain([&first]) {
        store.delete(id).unwrap();
    }
    assert_eq!(spill_files(&dir), Vec::<String>::new());
    let stats = store.stats();
    assert_eq!(
        (stats.spilled_objects, stats.spill_files, stats.used_bytes),
        (0, 0, 0)
    );
    drop(store);
}

#[test]
fn small_objects_fuse_into_few_files_which_go_with_their_last_object() {
    let dir = support::Scratch::new("spill-fuse");
    // 2,000 objects of 10 KB through a 256 KiB store, in files of 1 MiB: about 20 files.
    let store = spilling_store(&dir, 256 << 10, 1 << 20);
    let ids: Vec<_> = (0..2000)
        .map(|i| store.put_raw(object(i, 10_000)).unwrap())
        .collect();
    let stats = store.stats();
    assert!(stats.spilled_objects > 1900, "{stats:?}");
    let files = spill_files(&dir).len() as u64;
    assert_eq!(files, stats.spill_files);
    assert!((18..=22).contains(&files), "{files} files");
    // Freeing the oldest half removes the files that held only them.
    for id in &ids[..1000] {
        store.delete(id).unwrap();
    }
    let left = spill_files(&dir).len() as u64;
    assert!(left <= files / 2 + 1, "{left} of {files} files left");
    for (i, id) in (1000..).zip(&ids[1000..]) {
        assert_eq!(store.get_raw(id).unwrap(), object(i, 10_000));
    }
    for id in &ids[1000..] {
        store.delete(id).unwrap();
    }
    assert_eq!(spill_files(&dir), Vec::<String>::new());
    drop(store);
}

#[test]
fn an_object_larger_than_the_capacity_is_created_on_disk() {
    let dir = support::Scratch::new("spill-on-disk");
    let store = spilling_store(&dir, 1 << 20, 100 << 20);
    let mut buffer = store.create(3 << 20).unwrap();
    for (i, b) in buffer.iter_mut().enumerate() {
        *b = (i % 253) as u8;
    }
    let ptr = buffer.as_ptr();
    let file = mapped_file(ptr).expect("a create larger than memory is a map of a file");
    assert!(file.starts_with(&dir), "{}", file.display());
    let id = buffer.seal();
    let back = store.get_raw(&id).unwrap();
    assert_eq!(back.frames[0].as_ptr(), ptr); // sealed in place, in the file's map
    assert!(
        back.frames[0]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 253) as u8)
    );
    let stats = store.stats();
    assert_eq!(
        (stats.used_bytes, stats.spilled_objects, stats.spilled_bytes),
        (0, 1, 3 << 20)
    );
    // A put larger than the capacity goes straight to a spill file.
    let big = store.put_raw(object(7, 2 << 20)).unwrap();
    assert_eq!(store.get_raw(&big).unwrap(), object(7, 2 << 20));
    store.delete(&id).unwrap();
    store.delete(&big).unwrap();
    assert_eq!(spill_files(&dir), Vec::<String>::new());
    // Still readable: the views keep the map of the removed file.
    assert_eq!(back.frames[0][1000], (1000 % 253) as u8);
    drop(store);
}

/// Run in a child process of the test binary (this same test, with the environment variable
/// set): spills into the directory, then dies by `abort`, leaving its spill files behind.
const STALE_CHILD: &str = "PONTOON_SPILL_TEST_CHILD_DIR";

#[test]
fn stale_spill_files_of_an_earlier_run_are_removed_at_start() {
    if let Some(dir) = std::env::var_os(STALE_CHILD) {
        let store = spilling_store(Path::new(&dir), 256 << 10, 1 << 20);
        for i in 0..50 {
            store.put_raw(object(i, 10_000)).unwrap();
        }
        assert!(store.stats().spill_files > 0);
        std::process::abort();
    }
    let dir = support::Scratch::new("spill-stale");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stale_spill_files_of_an_earlier_run_are_removed_at_start",
        ])
        .env(STALE_CHILD, dir.as_os_str())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was to die");
    let left = spill_files(&dir);
    assert!(!left.is_empty(), "the dead store left no spill file");
    std::fs::write(dir.join("notes.txt"), b"not a spill file").unwrap();
    // A store that starts after it removes them (and only them).
    let store = spilling_store(&dir, 256 << 10, 1 << 20);
    assert_eq!(spill_files(&dir), ["notes.txt"]);
    // A second store cannot take the directory while this one holds it.
    let mut options = StoreOptions::default();
    options.spill_dir = Some(dir.to_path_buf());
    assert!(matches!(
        Store::open(options),
        Err(ObjectError::SpillFailed { .. })
    ));
    // A store that is dropped removes its own spill files.
    for i in 0..50 {
        store.put_raw(object(i, 10_000)).unwrap();
    }
    assert!(spill_files(&dir).len() > 1);
    drop(store);
    assert_eq!(spill_files(&dir), ["notes.txt"]);
}

fn spilling_daemon(dir: &Path, capacity: u64) -> (PathBuf, StatsHandle) {
    let socket = dir.join("store.sock");
    let spill = dir.join("spill");
    let mut options = ServeOptions::new(&socket, capacity);
    options.spill_dir = Some(spill);
    (socket, start(options))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_objects_spill_and_clients_get_them_as_views_of_the_spill_file() {
    let dir = support::Scratch::new("spill-daemon");
    let spill = dir.join("spill");
    let (socket, stats) = spilling_daemon(&dir, 1 << 20);
    let client = Client::connect(&socket).await.unwrap();
    let first = client.put_raw(&object(0, 100_000)).await.unwrap();
    // Held by this client: pinned, never spilled.
    let held = client.get_raw(&first).await.unwrap();
    let mut ids = Vec::new();
    for i in 1..40 {
        ids.push(client.put_raw(&object(i, 100_000)).await.unwrap());
    }
    let now = stats.stats();
    assert!(now.used_bytes <= now.high_water_mark, "{now:?}");
    assert!(now.spilled_objects >= 30, "{now:?}");
    assert!(now.spilled_bytes >= 30 * 100_000, "{now:?}");
    assert_eq!((now.objects, now.spill_files), (40, 1), "{now:?}");
    assert_eq!(
        client.stats().await.unwrap().spilled_bytes,
        now.spilled_bytes
    );

    let mut from_spill_file = 0;
    let mut backs = Vec::new();
    for (i, id) in (1..).zip(&ids) {
        let back = client.get_raw(id).await.unwrap();
        assert_eq!(back, object(i, 100_000), "object {i}");
        assert!(client.is_shared(&back.frames[0]));
        if mapped_file(back.frames[0].as_ptr()).is_some_and(|f| f.starts_with(&spill)) {
            from_spill_file += 1;
        }
        backs.push(back);
    }
    assert_eq!(from_spill_file, now.spilled_objects);
    // Objects got from one spill file share one map of it.
    let maps: std::collections::HashSet<_> = backs
        .iter()
        .filter(|b| mapped_file(b.frames[0].as_ptr()).is_some_and(|f| f.starts_with(&spill)))
        .map(|b| {
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            let at = b.frames[0].as_ptr() as usize;
            maps.lines()
                .find(|l| {
                    let (s, e) = l
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .split_once('-')
                        .unwrap();
                    (usize::from_str_radix(s, 16).unwrap()..usize::from_str_radix(e, 16).unwrap())
                        .contains(&at)
                })
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(maps.len(), 1, "{maps:?}");
    let again = client.get_raw(&first).await.unwrap();
    assert_eq!(again.frames[0].as_ptr(), held.frames[0].as_ptr());
    assert!(mapped_file(held.frames[0].as_ptr()).is_none_or(|f| !f.starts_with(&spill)));
    drop((held, again, backs));

    for id in ids.iter().chain([&first]) {
        client.delete(id).await.unwrap();
    }
    assert_eq!(spill_files(&spill), Vec::<String>::new());
    let end = client.stats().await.unwrap();
    assert_eq!(
        (end.objects, end.spilled_objects, end.spill_files),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_creates_an_object_larger_than_its_memory_on_disk() {
    let dir = support::Scratch::new("spill-daemon-on-disk");
    let spill = dir.join("spill");
    let (socket, _stats) = spilling_daemon(&dir, 1 << 20);
    let client = Client::connect(&socket).await.unwrap();
    let mut buffer = client.create(3 << 20).await.unwrap();
    for (i, b) in buffer.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let file = mapped_file(buffer.as_ptr()).unwrap();
    assert!(file.starts_with(&spill), "{}", file.display());
    let id = buffer.seal().await.unwrap();
    let back = client.get_raw(&id).await.unwrap();
    assert_eq!(back.frames[0].len(), 3 << 20);
    assert!(
        back.frames[0]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8)
    );
    assert!(
        mapped_file(back.frames[0].as_ptr())
            .unwrap()
            .starts_with(&spill)
    );
    // A put of a message larger than the memory goes the same way.
    let big = client.put_raw(&object(3, 2 << 20)).await.unwrap();
    assert_eq!(client.get_raw(&big).await.unwrap(), object(3, 2 << 20));
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.spilled_objects, 2, "{stats:?}");
    // Taken back: copied into memory (it fits once the rest is spilled? it does not: refused,
    // typed, and the object stays).
    assert!(client.take(&id).await.is_err());
    assert!(client.contains(&id).await.unwrap());
    drop(back);
    client.delete(&id).await.unwrap();
    client.delete(&big).await.unwrap();
    assert_eq!(spill_files(&spill), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spilled_object_taken_is_copied_back_into_memory() {
    let dir = support::Scratch::new("spill-daemon-take");
    let (socket, _stats) = spilling_daemon(&dir, 1 << 20);
    let client = Client::connect(&socket).await.unwrap();
    let first = client.put_raw(&object(0, 100_000)).await.unwrap();
    for i in 1..20 {
        client.put_raw(&object(i, 100_000)).await.unwrap();
    }
    // The oldest went to disk first.
    assert!(client.stats().await.unwrap().spilled_objects > 0);
    let taken = client.take(&first).await.unwrap();
    assert!(taken.copied());
    assert_eq!(&taken[..100_000], &object(0, 100_000).frames[0][..]);
    let resealed = taken.seal().await.unwrap();
    assert_eq!(client.get_raw(&resealed).await.unwrap(), object(0, 100_000));
    assert!(!client.contains(&first).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_of_spilled_objects_each_get_their_own_file_and_bytes() {
    let dir = support::Scratch::new("spill-daemon-concurrent");
    let (socket, stats) = {
        let socket = dir.join("store.sock");
        let mut options = ServeOptions::new(&socket, 1 << 20);
        options.spill_dir = Some(dir.join("spill"));
        // Small files: the objects spread over many of them, each with its own descriptor.
        options.spill_file_bytes = 256 << 10;
        (socket.clone(), start(options))
    };
    let client = Client::connect(&socket).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(client.put_raw(&object(i, 50_000)).await.unwrap());
    }
    assert!(stats.stats().spill_files > 5, "{:?}", stats.stats());
    // Every get in flight at once, from two clients: replies and descriptors interleave on
    // each socket, and each reply must take its own.
    let other = Client::connect(&socket).await.unwrap();
    let gets = ids.iter().enumerate().map(|(i, id)| {
        let client = if i % 2 == 0 {
            client.clone()
        } else {
            other.clone()
        };
        let id = *id;
        tokio::spawn(async move { (i, client.get_raw(&id).await.unwrap()) })
    });
    for get in gets.collect::<Vec<_>>() {
        let (i, back) = get.await.unwrap();
        assert_eq!(back, object(i as u32, 50_000), "object {i}");
    }
    // The views are dropped: their releases reach the daemon soon after (they are sent
    // without waiting for an answer).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stats.stats().pinned_objects > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(stats.stats().pinned_objects, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_removes_the_stale_spill_files_of_an_earlier_run_at_start() {
    let dir = support::Scratch::new("spill-daemon-stale");
    let spill = dir.join("spill");
    std::fs::create_dir_all(&spill).unwrap();
    for name in [
        "spill-0000000000000abc-00000001.rec",
        "spill-0000000000000abc-00000002.rec",
        "object-0000000000000abc-00000003.obj",
    ] {
        std::fs::write(spill.join(name), b"left by a daemon that died").unwrap();
    }
    std::fs::write(spill.join("README"), b"not a spill file").unwrap();
    let (socket, _stats) = spilling_daemon(&dir, 1 << 20);
    assert_eq!(spill_files(&spill), ["README"]);
    // A second daemon on the same spill directory is refused while this one serves.
    let mut options = ServeOptions::new(dir.join("second.sock"), 1 << 20);
    options.spill_dir = Some(spill.clone());
    let refused = Daemon::bind(options).unwrap_err();
    assert!(refused.to_string().contains("spill directory"), "{refused}");
    let client = Client::connect(&socket).await.unwrap();
    assert_eq!(client.stats().await.unwrap().spill_files, 0);
}

/// A client that sends its hello and a get of a spilled object, then dies (its socket closed)
/// after reading only the answer to its hello, before the reply to its get (which carries the
/// spill file's descriptor).
fn die_mid_get(socket: &Path, id: ObjectId) {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let encoder = Encoder::default();
    let mut bytes = pontoon_wire::preamble().to_vec();
    for (rid, request) in [
        (
            0,
            Request::Hello {
                version: pontoon_store::protocol::PROTOCOL_VERSION,
            },
        ),
        (1, Request::Get { id }),
    ] {
        bytes.extend_from_slice(&encoder.encode(&request.to_message(rid)).unwrap().to_bytes());
    }
    stream.write_all(&bytes).unwrap();
    // The daemon counts a client in before it answers the hello: once an answer is here, the
    // test's wait for the count to fall back sees this client (without it, that wait could
    // end before the daemon had taken the last dying client in, and then find it counted).
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut first = [0u8; 1];
    assert_eq!(
        stream.read(&mut first).unwrap(),
        1,
        "the daemon answers the hello"
    );
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dying_mid_get_of_a_spilled_object_releases_it() {
    let dir = support::Scratch::new("spill-daemon-die");
    let spill = dir.join("spill");
    let (socket, stats) = spilling_daemon(&dir, 1 << 20);
    let client = Client::connect(&socket).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(client.put_raw(&object(i, 100_000)).await.unwrap());
    }
    let spilled = ids[0];
    assert!(stats.stats().spilled_objects > 0);
    for _ in 0..20 {
        die_mid_get(&socket, spilled);
    }
    // The daemon notices each death; then nothing is pinned, and it serves on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stats.stats().clients > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let now = stats.stats();
    assert_eq!((now.clients, now.pinned_objects), (1, 0), "{now:?}");
    assert_eq!(client.get_raw(&spilled).await.unwrap(), object(0, 100_000));
    for id in &ids {
        client.delete(id).await.unwrap();
    }
    assert_eq!(spill_files(&spill), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spill_disk_is_a_typed_error_nothing_is_lost_and_the_daemon_serves_on_or_skipped_loudly()
 {
    let dir = support::Scratch::new("spill-full-disk");
    let disk = dir.join("disk");
    let _mounted = match TinyDisk::mount(&disk, 1 << 20) {
        Ok(mounted) => mounted,
        Err(reason) => {
            eprintln!(
                "SKIPPED a_full_spill_disk_is_a_typed_error...: cannot mount a tiny tmpfs ({reason})"
            );
            return;
        }
    };
    // Embedded: objects of 100 KB into 512 KiB of memory over 1 MiB of disk.
    {
        let store = spilling_store(&disk.join("embedded"), 512 << 10, 100 << 20);
        let mut put = Vec::new();
        let error = loop {
            match store.put_raw(object(put.len() as u32, 100_000)) {
                Ok(id) => put.push(id),
                Err(e) => break e,
            }
            assert!(put.len() < 100, "the tiny disk never filled");
        };
        let ObjectError::SpillDiskFull { dir, need } = &error else {
            panic!("{error:?}");
        };
        assert!(dir.starts_with(&disk) && *need > 0, "{error}");
        assert!(put.len() > 5, "{}", put.len());
        for (i, id) in (0..).zip(&put) {
            assert_eq!(
                store.get_raw(id).unwrap(),
                object(i, 100_000),
                "object {i} lost"
            );
        }
        // Memory freed by deleting objects still in it (the newest) is used again, with the
        // disk still full; deleting spilled ones frees disk, not memory.
        let n = put.len();
        store.delete(&put[n - 1]).unwrap();
        store.delete(&put[n - 2]).unwrap();
        store.put_raw(object(1000, 100_000)).unwrap();
    }
    // Through the daemon: the same, and it serves every client on.
    let (socket, _stats) = {
        let socket = dir.join("store.sock");
        let mut options = ServeOptions::new(&socket, 512 << 10);
        options.spill_dir = Some(disk.join("daemon"));
        (socket.clone(), start(options))
    };
    let client = Client::connect(&socket).await.unwrap();
    let mut put = Vec::new();
    let error = loop {
        match client.put_raw(&object(put.len() as u32, 100_000)).await {
            Ok(id) => put.push(id),
            Err(e) => break e,
        }
        assert!(put.len() < 100, "the tiny disk never filled");
    };
    assert!(
        matches!(
            error,
            ClientError::Refused(ObjectError::SpillDiskFull { .. })
        ),
        "{error:?}"
    );
    let other = Client::connect(&socket).await.unwrap();
    for (i, id) in (0..).zip(&put) {
        assert_eq!(
            other.get_raw(id).await.unwrap(),
            object(i, 100_000),
            "object {i} lost"
        );
    }
    let stats = other.stats().await.unwrap();
    assert_eq!(stats.objects as usize, put.len());
    let n = put.len();
    other.delete(&put[n - 1]).await.unwrap();
    other.delete(&put[n - 2]).await.unwrap();
    client.put_raw(&object(1000, 100_000)).await.unwrap();
    drop(_mounted);
}

/// Replies that carry a spill file's descriptor round-trip through the protocol (the bytes;
/// the descriptor is the socket's business).
#[test]
fn spill_replies_say_they_carry_a_descriptor() {
    let id = ObjectId::new(pontoon_store::StoreId(1), 1);
    let reply = Response::CreatedOnDisk {
        id,
        file: 1,
        len: 9,
    };
    assert!(reply.carries_fd());
    assert!(!Response::Done.carries_fd());
}

/// Sends `bytes` on `stream` with `fd` (if any) attached to the first byte.
fn send_with(stream: &std::os::unix::net::UnixStream, bytes: &[u8], fd: Option<&std::fs::File>) {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::os::fd::AsFd;
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd.as_fd()];
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    }
    let sent = rustix::net::sendmsg(
        stream,
        &[std::io::IoSlice::new(bytes)],
        &mut control,
        SendFlags::empty(),
    )
    .unwrap();
    assert_eq!(sent, bytes.len());
}

/// A daemon that is not one: answers the hello properly (a page of memory), then answers the
/// client's requests 1, 2, ... with `replies`, each with its descriptor if it has one.
fn fake_daemon(socket: &Path, replies: Vec<(Response, Option<std::fs::File>)>) {
    use std::io::Read;
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        // The client's preamble and hello (one write, small), decoded with what follows.
        let first = stream.read(&mut buf).unwrap();
        let memory = std::fs::File::from(
            rustix::fs::memfd_create("fake", rustix::fs::MemfdFlags::CLOEXEC).unwrap(),
        );
        memory.set_len(4096).unwrap();
        let encoder = Encoder::default();
        let mut hello = pontoon_wire::preamble().to_vec();
        let message = Response::Hello {
            version: pontoon_store::protocol::PROTOCOL_VERSION,
            store: pontoon_store::StoreId(5),
            arena_len: 4096,
            fds: 1,
        }
        .to_message(0);
        hello.extend_from_slice(&encoder.encode(&message).unwrap().to_bytes());
        send_with(&stream, &hello, Some(&memory));
        // Each get is answered with the next reply, under the get's own request number
        // (releases, which have no reply, are read and passed over).
        let mut decoder = pontoon_wire::Decoder::with_limits(pontoon_store::protocol::limits());
        let mut input = bytes::BytesMut::from(&buf[..first]);
        let mut replies = replies.into_iter();
        'serve: loop {
            while let Ok(Some(message)) = decoder.decode(&mut input) {
                let Ok((rid, request)) = pontoon_store::protocol::decode_request(&message) else {
                    continue;
                };
                if !matches!(request, Request::Get { .. }) {
                    continue;
                }
                let Some((reply, fd)) = replies.next() else {
                    break 'serve;
                };
                let bytes = encoder.encode(&reply.to_message(rid)).unwrap().to_bytes();
                send_with(&stream, &bytes, fd.as_ref());
            }
            match stream.read(&mut buf) {
                Ok(n) if n > 0 => input.extend_from_slice(&buf[..n]),
                _ => return,
            }
        }
        // Keep the connection open until the client closes it.
        while stream.read(&mut buf).unwrap_or(0) > 0 {}
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refuses_a_spill_file_shorter_than_the_object_and_a_reply_without_its_descriptor()
{
    let dir = support::Scratch::new("spill-fake-daemon");
    let socket = dir.join("fake.sock");
    let short = dir.join("short.rec");
    std::fs::write(&short, vec![0u8; 100]).unwrap();
    let id = ObjectId::new(pontoon_store::StoreId(5), 1);
    let spilled = |len| Response::Spilled {
        id,
        file: 1,
        offset: 0,
        len,
        layout: pontoon_store::protocol::Layout::raw(len),
    };
    fake_daemon(
        &socket,
        vec![
            // Claims 1 MiB of a 100-byte file: mapped, a read past its end would SIGBUS.
            (spilled(1 << 20), Some(std::fs::File::open(&short).unwrap())),
            // Within the file: fine.
            (spilled(64), Some(std::fs::File::open(&short).unwrap())),
            // No descriptor at all.
            (spilled(64), None),
        ],
    );
    let client = Client::connect(&socket).await.unwrap();
    let err = client.get_raw(&id).await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    let good = client.get_raw(&id).await.unwrap();
    assert_eq!(good.frames[0].len(), 64);
    assert!(mapped_file(good.frames[0].as_ptr()).is_some_and(|f| f == short));
    let err = client.get_raw(&id).await.unwrap_err();
    assert!(matches!(err, ClientError::Closed), "{err:?}");
}
