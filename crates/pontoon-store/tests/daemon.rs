//! The store daemon for real: a memfd shared with separate processes over SCM_RIGHTS, a client
//! killed with SIGKILL while it holds pins and an unsealed create, malformed and never-reading
//! clients next to well-behaved ones, and the typed refusals.

#[allow(dead_code, reason = "each test file uses part of the shared support")]
mod support;
use support::start;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pontoon_array::Array;
use pontoon_family::Registry;
use pontoon_store::protocol::{self, Layout, Request, Response};
use pontoon_store::{Backing, Client, ClientError, ObjectError, ObjectId, ServeOptions};
use pontoon_wire::{Decoder, EncodeOptions, Encoder, Header, Message};
use serde::{Deserialize, Serialize};

/// The variable that makes this test binary act as a child process.
const CHILD: &str = "PONTOON_STORE_TEST_CHILD";

#[derive(Serialize, Deserialize)]
struct Frame {
    name: String,
    pixels: Array,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `check` for up to a minute (the daemon notices a dead client asynchronously).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// This test binary run again as a child process in `role`.
fn child(role: &str, socket: &Path, id: &ObjectId) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, role)
        .env("PONTOON_STORE_TEST_SOCKET", socket)
        .env("PONTOON_STORE_TEST_ID", id.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// Not a test of its own: the entry point of the child processes the other tests start (it
/// returns at once when run without `PONTOON_STORE_TEST_CHILD`).
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD) else {
        return;
    };
    let socket = PathBuf::from(std::env::var("PONTOON_STORE_TEST_SOCKET").unwrap());
    let id: ObjectId = std::env::var("PONTOON_STORE_TEST_ID")
        .unwrap()
        .parse()
        .unwrap();
    runtime().block_on(async move {
        let client = Client::connect(&socket).await.unwrap();
        match role.as_str() {
            "read" => {
                let raw = client.get_raw(&id).await.unwrap();
                assert!(!raw.frames.is_empty());
                for frame in &raw.frames {
                    assert!(
                        client.is_shared(frame),
                        "a frame was copied out of shared memory"
                    );
                }
                let frame: Frame = client.get(&Registry::new(), &id).await.unwrap();
                let data = frame.pixels.data();
                println!("shared={}", client.is_shared(data));
                let values = frame.pixels.as_slice::<f64>().unwrap();
                let sum: f64 = values.iter().sum();
                println!("name={} len={} sum={sum}", frame.name, values.len());
            }
            "hold" => {
                let pinned = client.get_raw(&id).await.unwrap();
                let mut creating = client.create(1 << 20).await.unwrap();
                creating[0] = 1;
                // Told through a file: the test harness owns this process's stdout.
                let told = PathBuf::from(std::env::var("PONTOON_STORE_TEST_TELL").unwrap());
                std::fs::write(told.with_extension("tmp"), creating.id().to_string()).unwrap();
                std::fs::rename(told.with_extension("tmp"), &told).unwrap();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                drop((pinned, creating));
            }
            other => panic!("unknown child role {other}"),
        }
    });
}

#[test]
fn another_process_gets_views_of_the_shared_memory() {
    let dir = support::Scratch::new("store-views");
    let socket = dir.join("store.sock");
    let stats = start(ServeOptions::new(&socket, 64 << 20));
    let rt = runtime();
    let client = rt.block_on(Client::connect(&socket)).unwrap();
    let values: Vec<f64> = (0..1_000_000).map(f64::from).collect();
    let frame = Frame {
        name: "cam0".into(),
        pixels: Array::from_vec(values),
    };
    let id = rt.block_on(client.put(&Registry::new(), &frame)).unwrap();

    let output = child("read", &socket, &id).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the reader failed: {stdout}");
    assert!(
        stdout.contains("shared=true"),
        "the array was not a view of the mapping: {stdout}"
    );
    assert!(
        stdout.contains("name=cam0 len=1000000 sum=499999500000"),
        "{stdout}"
    );
    // The child's pins went with it.
    eventually("the reader's pins released", || {
        stats.stats().pinned_objects == 0
    });
    // And in this process too the array is a view.
    let back: Frame = rt.block_on(client.get(&Registry::new(), &id)).unwrap();
    assert!(client.is_shared(back.pixels.data()));
    assert_eq!(stats.stats().pinned_objects, 1);
    drop(back);
    eventually("this process's pin released", || {
        stats.stats().pinned_objects == 0
    });
}

#[test]
fn a_killed_client_releases_its_pins_and_aborts_its_create() {
    let dir = support::Scratch::new("store-kill");
    let socket = dir.join("store.sock");
    let stats = start(ServeOptions::new(&socket, 16 << 20));
    let rt = runtime();
    let client = rt.block_on(Client::connect(&socket)).unwrap();
    let message = Message::new(Header::empty(), vec![Bytes::from(vec![7u8; 100_000])]);
    let id = rt.block_on(client.put_raw(&message)).unwrap();
    let before = stats.stats();

    let told = dir.join("holding");
    let mut holder = child("hold", &socket, &id)
        .env("PONTOON_STORE_TEST_TELL", &told)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the holder holds", || {
        assert!(
            holder.try_wait().unwrap().is_none(),
            "the holder exited early"
        );
        told.exists()
    });
    let held: ObjectId = std::fs::read_to_string(&told).unwrap().parse().unwrap();
    let during = stats.stats();
    assert_eq!(
        (during.pinned_objects, during.creating, during.clients),
        (1, 1, 2)
    );
    assert_eq!(during.used_bytes, before.used_bytes + (1 << 20));

    holder.kill().unwrap(); // SIGKILL: no chance to release anything
    holder.wait().unwrap();
    eventually("the dead client's pin and create released", || {
        let s = stats.stats();
        s.pinned_objects == 0 && s.creating == 0 && s.clients == 1
    });
    assert_eq!(stats.stats().used_bytes, before.used_bytes);
    // Nothing sealed was lost; the aborted create is gone.
    let object = rt.block_on(client.get_raw(&id)).unwrap();
    assert_eq!(object.frames[0], message.frames[0]);
    let err = rt.block_on(client.get_raw(&held)).unwrap_err();
    assert!(
        matches!(err, ClientError::Refused(ObjectError::Unknown { .. })),
        "{err}"
    );
}

/// A client speaking the protocol by hand, with a blocking socket.
struct Raw {
    stream: StdUnixStream,
    decoder: Decoder,
    input: BytesMut,
    encoder: Encoder,
}

impl Raw {
    fn connect(socket: &Path) -> Raw {
        let stream = StdUnixStream::connect(socket).unwrap();
        let mut raw = Raw {
            stream,
            decoder: Decoder::with_limits(protocol::limits()),
            input: BytesMut::new(),
            encoder: Encoder::new(EncodeOptions::default()),
        };
        raw.stream.write_all(&pontoon_wire::preamble()).unwrap();
        raw.send(
            0,
            &Request::Hello {
                version: protocol::PROTOCOL_VERSION,
            },
        );
        // A plain read: the kernel closes the descriptor that came with the hello.
        assert!(matches!(raw.recv(), (0, Response::Hello { fds: 1, .. })));
        raw
    }

    fn send(&mut self, rid: u64, request: &Request) {
        let bytes = self
            .encoder
            .encode(&request.to_message(rid))
            .unwrap()
            .to_bytes();
        self.stream.write_all(&bytes).unwrap();
    }

    fn recv(&mut self) -> (u64, Response) {
        loop {
            if let Some(message) = self.decoder.decode(&mut self.input).unwrap() {
                return protocol::decode_response(&message).unwrap();
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the daemon closed the connection");
            self.input.extend_from_slice(&chunk[..n]);
        }
    }

    fn call(&mut self, rid: u64, request: &Request) -> Response {
        self.send(rid, request);
        let (got, response) = self.recv();
        assert_eq!(got, rid);
        response
    }

    /// Whether the daemon closed this connection (reads end) within a minute.
    fn closed_by_daemon(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut sink = [0u8; 65536];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

#[test]
fn unknown_ids_second_seals_foreign_seals_and_a_full_store_are_typed_refusals() {
    let dir = support::Scratch::new("store-refusals");
    let socket = dir.join("store.sock");
    let stats = start(ServeOptions::new(&socket, 1 << 20));
    let mut a = Raw::connect(&socket);
    let mut b = Raw::connect(&socket);
    let nobody = ObjectId::new(pontoon_store::StoreId(1), 1);
    assert_eq!(
        a.call(1, &Request::Get { id: nobody }),
        Response::Error(ObjectError::Unknown { id: nobody })
    );
    let Response::Created { id, len: 100, .. } = a.call(2, &Request::Create { size: 100 }) else {
        panic!("no create")
    };
    assert_eq!(
        a.call(3, &Request::Get { id }),
        Response::Error(ObjectError::NotSealed { id })
    );
    let seal = Request::Seal {
        id,
        layout: Layout::raw(100),
    };
    assert_eq!(
        b.call(1, &seal),
        Response::Error(ObjectError::NotOwner { id })
    );
    let outside = Request::Seal {
        id,
        layout: Layout::raw(101),
    };
    assert!(matches!(
        a.call(4, &outside),
        Response::Error(ObjectError::BadLayout { .. })
    ));
    assert_eq!(a.call(5, &seal), Response::Done);
    assert_eq!(
        a.call(6, &seal),
        Response::Error(ObjectError::AlreadySealed { id })
    );
    assert_eq!(
        a.call(7, &Request::Abort { id }),
        Response::Error(ObjectError::AlreadySealed { id })
    );
    // A capacity smaller than one object.
    let Response::Error(ObjectError::StoreFull { need, capacity, .. }) =
        a.call(8, &Request::Create { size: 2 << 20 })
    else {
        panic!("not full")
    };
    assert_eq!((need, capacity), (2 << 20, 1 << 20));
    // Refusals cost nothing: both connections still serve.
    assert_eq!(b.call(2, &Request::Contains { id }), Response::Bool(true));
    assert_eq!(stats.stats().objects, 1);
}

#[test]
fn malformed_and_never_reading_clients_cost_only_their_own_connection() {
    let dir = support::Scratch::new("store-hostile");
    let socket = dir.join("store.sock");
    let mut options = ServeOptions::new(&socket, 4 << 20);
    options.max_queued_reply_bytes = 64 << 10;
    let stats = start(options);
    let rt = runtime();
    let good = rt.block_on(Client::connect(&socket)).unwrap();
    let id = rt
        .block_on(good.put_raw(&Message::new(
            Header::empty(),
            vec![Bytes::from_static(b"kept")],
        )))
        .unwrap();

    // Not pontoon at all.
    let mut garbage = StdUnixStream::connect(&socket).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    assert_eq!(
        garbage.read_to_end(&mut sink).unwrap(),
        0,
        "the daemon answered garbage"
    );

    // A valid hello, then a message that is not a request.
    let mut malformed = Raw::connect(&socket);
    let not_a_request = Message::new(Header::from_serde(&("put", 1)).unwrap(), vec![]);
    let bytes = malformed.encoder.encode(&not_a_request).unwrap().to_bytes();
    malformed.stream.write_all(&bytes).unwrap();
    assert!(malformed.closed_by_daemon());

    // A client that sends requests and never reads the replies.
    let mut deaf = Raw::connect(&socket);
    deaf.stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let request = deaf
        .encoder
        .encode(&Request::Stats.to_message(9))
        .unwrap()
        .to_bytes();
    let mut sent = 0usize;
    let cut_off = loop {
        match deaf.stream.write_all(&request) {
            Ok(()) => sent += request.len(),
            Err(_) => break true,
        }
        if sent > 256 << 20 {
            break false;
        }
    };
    assert!(
        cut_off,
        "the daemon kept reading requests from a client that reads no replies"
    );

    // The well-behaved client never noticed.
    let object = rt.block_on(good.get_raw(&id)).unwrap();
    assert_eq!(&object.frames[0][..], b"kept");
    drop(object);
    eventually("only the good client left", || stats.stats().clients == 1);
}

#[test]
fn wait_take_and_delete_through_the_daemon() {
    let dir = support::Scratch::new("store-ops");
    let socket = dir.join("store.sock");
    let stats = start(ServeOptions::new(&socket, 8 << 20));
    let rt = runtime();
    rt.block_on(async {
        let producer = Client::connect(&socket).await.unwrap();
        let consumer = Client::connect(&socket).await.unwrap();
        let mut creating = producer.create(4096).await.unwrap();
        let id = creating.id();
        assert_eq!(
            consumer
                .wait(&[id], Duration::from_millis(20))
                .await
                .unwrap(),
            vec![false]
        );
        let waiting = {
            let consumer = consumer.clone();
            tokio::spawn(async move { consumer.wait(&[id], Duration::from_secs(60)).await })
        };
        creating.fill(5);
        creating.seal().await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), vec![true]);

        // Pinned by the consumer: a take copies, and the consumer's view stays as it was.
        let view = consumer.get_raw(&id).await.unwrap();
        let mut taken = producer.take(&id).await.unwrap();
        assert!(taken.copied());
        assert!(!consumer.contains(&id).await.unwrap());
        taken[0] = 9;
        assert_eq!(view.frames[0][0], 5);
        let id2 = taken.seal().await.unwrap();
        drop(view);
        // Pinned by nobody: handed over in place.
        let taken = producer.take(&id2).await.unwrap();
        assert!(!taken.copied());
        assert_eq!((taken[0], taken[1]), (9, 5));
        let id3 = taken.seal().await.unwrap();

        // Deleted while pinned: the view stays readable until dropped.
        let view = consumer.get_raw(&id3).await.unwrap();
        producer.delete(&id3).await.unwrap();
        assert!(!producer.contains(&id3).await.unwrap());
        assert_eq!(view.frames[0][0], 9);
        let err = producer.delete(&id3).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Refused(ObjectError::Unknown { .. })),
            "{err}"
        );
        drop(view);
    });
    eventually("all memory free", || stats.stats().used_bytes == 0);
}

#[test]
fn a_file_in_a_directory_backs_the_store_when_asked() {
    let dir = support::Scratch::new("store-file");
    let socket = dir.join("store.sock");
    let mut options = ServeOptions::new(&socket, 1 << 20);
    options.backing = Backing::Directory(dir.join("memory"));
    let _stats = start(options);
    let rt = runtime();
    let client = rt.block_on(Client::connect(&socket)).unwrap();
    let id = rt
        .block_on(client.put_raw(&Message::new(
            Header::empty(),
            vec![Bytes::from(vec![3u8; 5000])],
        )))
        .unwrap();
    let object = rt.block_on(client.get_raw(&id)).unwrap();
    assert!(client.is_shared(&object.frames[0]));
    assert!(object.frames[0].iter().all(|&b| b == 3));
    // The file was unlinked as soon as it was open: nothing to clean up after a crash.
    assert_eq!(std::fs::read_dir(dir.join("memory")).unwrap().count(), 0);
}

#[test]
fn a_wait_of_any_length_is_answered() {
    let dir = support::Scratch::new("store-wait");
    let socket = dir.join("store.sock");
    let _stats = start(ServeOptions::new(&socket, 1 << 20));
    let mut raw = Raw::connect(&socket);
    let Response::Created { id, .. } = raw.call(1, &Request::Create { size: 8 }) else {
        panic!("no create")
    };
    assert_eq!(
        raw.call(
            2,
            &Request::Seal {
                id,
                layout: Layout::raw(8)
            }
        ),
        Response::Done
    );
    // The longest timeout the protocol can say: answered at once, since the id is sealed.
    let wait = Request::Wait {
        ids: vec![id],
        timeout_ms: u64::MAX,
    };
    assert_eq!(raw.call(3, &wait), Response::Ready(vec![true]));
    // An id nobody makes: answered at the timeout.
    let nobody = ObjectId::new(pontoon_store::StoreId(1), 1);
    let wait = Request::Wait {
        ids: vec![id, nobody],
        timeout_ms: 10,
    };
    assert_eq!(raw.call(4, &wait), Response::Ready(vec![true, false]));
}

/// A fake daemon that answers the hello with `count` descriptors attached.
fn fake_daemon(socket: &Path, count: usize) -> std::thread::JoinHandle<()> {
    use std::os::fd::AsFd;
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut hello = [0u8; 64];
        let _ = stream.read(&mut hello).unwrap();
        let mut reply = pontoon_wire::preamble().to_vec();
        let message = Response::Hello {
            version: protocol::PROTOCOL_VERSION,
            store: pontoon_store::StoreId(1),
            arena_len: 4096,
            fds: 1,
        }
        .to_message(0);
        reply.extend_from_slice(
            &Encoder::new(EncodeOptions::default())
                .encode(&message)
                .unwrap()
                .to_bytes(),
        );
        let memfds: Vec<_> = (0..count)
            .map(|_| rustix::fs::memfd_create("fake", rustix::fs::MemfdFlags::CLOEXEC).unwrap())
            .collect();
        let borrowed: Vec<_> = memfds.iter().map(|fd| fd.as_fd()).collect();
        let mut space = vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        if count > 0 {
            assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&borrowed)));
        }
        let sent = rustix::net::sendmsg(
            &stream,
            &[std::io::IoSlice::new(&reply)],
            &mut control,
            rustix::net::SendFlags::empty(),
        )
        .unwrap();
        stream.write_all(&reply[sent..]).unwrap();
        let _ = stream.read(&mut hello);
    })
}

#[test]
fn a_client_refuses_a_hello_with_the_wrong_number_of_descriptors() {
    let dir = support::Scratch::new("store-fds");
    let rt = runtime();
    for (count, name) in [(0, "none.sock"), (2, "two.sock"), (6, "six.sock")] {
        let socket = dir.join(name);
        let fake = fake_daemon(&socket, count);
        let err = rt.block_on(Client::connect(&socket)).unwrap_err();
        // Too few or too many: refused, each received descriptor closed (or, past what the
        // control buffer holds, truncated by the kernel, which closes them, and refused too).
        let refused = match &err {
            ClientError::Descriptors { got, want: 1 } => *got == count,
            ClientError::Io(_) => count > 4,
            _ => false,
        };
        assert!(refused, "{count}: {err}");
        fake.join().unwrap();
    }
}

#[test]
fn a_client_refuses_store_memory_shorter_than_the_hello_says() {
    // The fake daemon's one memfd is empty while its hello claims 4096 bytes: mapping that
    // would SIGBUS at the first get, so the client refuses at connect.
    let dir = support::Scratch::new("store-short-memory");
    let rt = runtime();
    let socket = dir.join("short.sock");
    let fake = fake_daemon(&socket, 1);
    let err = rt.block_on(Client::connect(&socket)).unwrap_err();
    assert!(
        matches!(&err, ClientError::Map(e) if e.to_string().contains("holds 0 bytes, not the 4096")),
        "{err}"
    );
    fake.join().unwrap();
}

#[test]
fn the_socket_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = support::Scratch::new("store-private");
    let socket = dir.join("store.sock");
    let _stats = start(ServeOptions::new(&socket, 1 << 20));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

#[test]
fn waits_end_at_the_seal_of_their_last_id_and_a_client_past_its_wait_cap_is_cut_off() {
    let dir = support::Scratch::new("store-waits");
    let socket = dir.join("store.sock");
    let mut options = ServeOptions::new(&socket, 8 << 20);
    options.max_waits_per_client = 2;
    let stats = start(options);
    let rt = runtime();
    rt.block_on(async {
        let producer = Client::connect(&socket).await.unwrap();
        let waiter = Client::connect(&socket).await.unwrap();
        let first = producer.create(64).await.unwrap();
        let second = producer.create(64).await.unwrap();
        let (a, b) = (first.id(), second.id());
        let both = {
            let waiter = waiter.clone();
            tokio::spawn(async move { waiter.wait(&[a, b, a], Duration::from_secs(60)).await })
        };
        let one = {
            let waiter = waiter.clone();
            tokio::spawn(async move { waiter.wait(&[b], Duration::from_secs(60)).await })
        };
        // Whether a wait registers before or after the seal of `b`, it must end with it; the
        // wait on `a` as well must not end before `a` is sealed.
        second.seal().await.unwrap();
        assert_eq!(one.await.unwrap().unwrap(), vec![true]);
        assert!(!both.is_finished());
        first.seal().await.unwrap();
        assert_eq!(both.await.unwrap().unwrap(), vec![true, true, true]);

        // Three waits outstanding where two are allowed: the connection is cut, others go on.
        let never = producer.create(64).await.unwrap().id();
        let greedy = Client::connect(&socket).await.unwrap();
        let mut waits = Vec::new();
        for _ in 0..3 {
            let greedy = greedy.clone();
            waits.push(tokio::spawn(async move {
                greedy.wait(&[never], Duration::from_secs(60)).await
            }));
        }
        for wait in waits {
            assert!(matches!(wait.await.unwrap(), Err(ClientError::Closed)));
        }
        eventually_async(|| async { stats.stats().clients == 2 }).await;
        assert!(producer.contains(&a).await.unwrap());
        assert!(waiter.contains(&b).await.unwrap());
    });
}

async fn eventually_async<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn clients_past_max_clients_are_closed_at_once_and_served_again_when_one_leaves() {
    let dir = support::Scratch::new("store-max-clients");
    let socket = dir.join("store.sock");
    let mut options = ServeOptions::new(&socket, 1 << 20);
    options.max_clients = 2;
    let stats = start(options);
    runtime().block_on(async {
        let first = Client::connect(&socket).await.unwrap();
        let second = Client::connect(&socket).await.unwrap();
        let refused = Client::connect(&socket).await.unwrap_err();
        assert!(matches!(refused, ClientError::Closed), "{refused:?}");
        assert!(
            !second
                .contains(&ObjectId::new(first.store_id(), 1))
                .await
                .unwrap()
        );
        drop(first);
        eventually_async(|| async { stats.stats().clients == 1 }).await;
        let third = Client::connect(&socket).await.unwrap();
        assert_eq!(third.stats().await.unwrap().clients, 2);
    });
}

/// A connection that never says hello is closed after `hello_timeout`, and gives its slot back:
/// silent connections cannot hold every `max_clients` slot.
#[test]
fn a_connection_without_a_hello_is_closed_after_the_hello_timeout_and_frees_its_slot() {
    use std::io::Read;
    let dir = support::Scratch::new("store-hello-timeout");
    let socket = dir.join("store.sock");
    let mut options = ServeOptions::new(&socket, 1 << 20);
    options.max_clients = 1;
    options.hello_timeout = Duration::from_millis(200);
    let stats = start(options);
    let mut silent = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The daemon closes it: the read sees the end of the stream, not the read timeout.
    let mut byte = [0u8; 1];
    assert_eq!(silent.read(&mut byte).unwrap(), 0);
    runtime().block_on(async {
        eventually_async(|| async { stats.stats().clients == 0 }).await;
        // The one slot is free again: a real client is served.
        let client = Client::connect(&socket).await.unwrap();
        assert_eq!(client.stats().await.unwrap().clients, 1);
    });
}

/// Another user's process that reaches the socket (here, opened to everyone on purpose) is
/// refused by its credentials, before any hello.
#[test]
fn a_client_of_another_user_is_refused_by_its_credentials() {
    use std::os::unix::fs::PermissionsExt;
    let Some(dir) = other_user_scratch(
        "store-other-user",
        "a_client_of_another_user_is_refused_by_its_credentials",
    ) else {
        return;
    };
    let socket = dir.join("store.sock");
    let stats = start(ServeOptions::new(&socket, 1 << 20));
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(hello_as_nobody(&socket), "0");
    // The daemon's own user is still served.
    runtime().block_on(async {
        let client = Client::connect(&socket).await.unwrap();
        assert_eq!(client.stats().await.unwrap().clients, 1);
    });
    assert_eq!(stats.stats().objects, 0);
}

/// With the default mode (0600) another user cannot even connect; with a wider mode and its uid
/// in `allowed_uids`, it is served.
#[test]
fn the_socket_mode_and_allowed_uids_decide_who_is_served() {
    use std::os::unix::fs::PermissionsExt;
    let Some(dir) = other_user_scratch(
        "store-allowed-uids",
        "the_socket_mode_and_allowed_uids_decide_who_is_served",
    ) else {
        return;
    };
    let private = dir.join("private.sock");
    let _private = start(ServeOptions::new(&private, 1 << 20));
    assert_eq!(
        std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(hello_as_nobody(&private), "denied");

    let shared = dir.join("shared.sock");
    let mut options = ServeOptions::new(&shared, 1 << 20);
    options.socket_mode = 0o666;
    options.allowed_uids.push(NOBODY);
    let stats = start(options);
    assert_eq!(
        std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777,
        0o666
    );
    let reply: usize = hello_as_nobody(&shared).parse().unwrap();
    assert!(reply > 0, "an allowed uid gets the daemon's hello");
    assert_eq!(stats.stats().objects, 0);
}

/// A socket mode beyond the permission bits is refused at bind, before any file is made.
#[test]
fn a_socket_mode_beyond_the_permission_bits_is_refused() {
    let dir = support::Scratch::new("store-bad-mode");
    let socket = dir.join("store.sock");
    let mut options = ServeOptions::new(&socket, 1 << 20);
    options.socket_mode = 0o4777;
    let err = pontoon_store::Daemon::bind(options)
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(err, pontoon_store::ServeError::Bind { .. }),
        "{err:?}"
    );
    assert!(format!("{:?}", err).contains("0o4777"), "{err:?}");
    assert!(!socket.exists());
}

/// The uid the other-user tests run their client as.
const NOBODY: u32 = 65534;

/// A scratch directory any user can traverse, or `None` (said loudly) where no client can be
/// run as another user here.
fn other_user_scratch(name: &str, test: &str) -> Option<support::Scratch> {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() || !Path::new(PYTHON).exists() {
        eprintln!(
            "SKIPPED {test}: it needs root (to run a client as uid {NOBODY}) and {PYTHON} (a \
             client any user can run)"
        );
        return None;
    }
    let dir = support::Scratch::new(name);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(dir)
}

const PYTHON: &str = "/usr/bin/python3";

/// Runs a client as uid 65534 that sends a real hello and prints how many bytes came back (`0`
/// when the daemon closed the connection), or `denied` when the socket's mode refused the
/// connect itself.
fn hello_as_nobody(socket: &Path) -> String {
    use std::os::unix::process::CommandExt;
    let mut hello = pontoon_wire::preamble().to_vec();
    hello.extend_from_slice(
        &Encoder::new(EncodeOptions::default())
            .encode(&Request::Hello { version: 1 }.to_message(0))
            .unwrap()
            .to_bytes(),
    );
    let script = format!(
        "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n    \
         s.connect(sys.argv[1])\nexcept PermissionError:\n    print('denied')\n    \
         sys.exit(0)\ns.settimeout(30)\ntry:\n    s.sendall(bytes.fromhex('{}'))\n    \
         print(len(s.recv(4096)))\nexcept (BrokenPipeError, ConnectionResetError):\n    \
         print(0)",
        hello.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let output = Command::new(PYTHON)
        .args(["-c", &script])
        .arg(socket)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
