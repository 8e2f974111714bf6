//! pontoon-store benchmarks: small puts and gets, embedded and through the daemon; puts and
//! gets swept from 1 KiB to 1 GiB next to the physical limit (a memcpy into touched memory);
//! spilling and restoring swept over object sizes next to the disk's sequential bandwidth; and
//! pulls between stores.
//!
//! - `store/small/*`: a small message (a 100-byte frame). `embedded-put` is `Store::put_raw`
//!   (the objects are deleted after each sample, untimed); `embedded-get` is `Store::get_raw` of
//!   a stored object. `daemon-put` and `daemon-get` do the same through a `Client` of a daemon
//!   running in this process (its socket, its memfd: the path another process takes, minus the
//!   process switch), called from a task on the runtime as an async user would; a daemon get
//!   includes dropping the views, which sends the release.
//! - `store/put/*/SIZE`, 1 KiB to 1 GiB: `memcpy-touched` is `copy_from_slice` into a buffer
//!   written before timing (the physical limit of any put that copies); `daemon` is
//!   `Client::put_raw` (one copy into the shared memory, whose pages are reserved at start),
//!   then `delete`; `embedded` is `Store::put_raw` of the same frame (no copy at all), then
//!   `delete`.
//! - `store/get/*/SIZE`: a get of a stored object of each size, embedded and through the
//!   daemon (from a task on the runtime, as `store/small/daemon-get`): a view, so the same time
//!   at every size.
//! - `store/spill/*/SIZE`: 128 MiB of objects of SIZE (1 KiB to 16 MiB) put into an embedded
//!   store of 16 MiB with a spill directory on disk (files of 64 MiB), so that most spill
//!   (`spill`; the store and its files are dropped untimed); next to `raw-write-fdatasync`,
//!   as many bytes as the spill wrote, in 1 MiB `write`s into files of the same size in the
//!   same directory, each full file `fdatasync`ed as spilling does when it finishes one.
//!   `store/restore/get-all/SIZE` gets every object back, the first get of each spilled one (a
//!   view of the file's map, every byte read once by the record's checksum), next to
//!   `store/restore/raw-read/SIZE`, the same bytes read back with 1 MiB `read`s into one reused
//!   buffer. Both reads come from the disk: the files' pages are dropped from the page cache
//!   (`POSIX_FADV_DONTNEED`, untimed) before each sample.
//! - Before the groups, once: 16,000 objects of 1 MiB spilled through a 1 GiB embedded store
//!   (about 15 GiB written to the spill directory), and the number of spill files printed (about
//!   160). A quick run skips it, and so does `PONTOON_BENCH_SKIP_FUSE=1`, each with a note in
//!   the report.
//! - `store/pull/*`: 256 MiB between two stores on loopback TCP. `transport-raw` is the physical
//!   limit of this path: the same bytes as 4 MiB messages over one pontoon-transport connection
//!   with the peer protocol's limits, received and dropped. `embedded` is `Store::pull` of a
//!   256 MiB object into an embedded store (4 MiB chunks, 64 MiB in flight; the local copy is
//!   deleted after each sample, untimed); `daemon` is `Client::pull` into a second daemon
//!   (its memfd reserved at start), the copy deleted after each sample, untimed.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pontoon::store::{Client, Daemon, ServeOptions, Store, StoreOptions};
use pontoon::wire::{Header, Message};
use pontoon_benches::{Timed, Timing, note, payload, quick};

const GIB: usize = 1 << 30;

struct Running {
    runtime: tokio::runtime::Runtime,
    client: Client,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn daemon(capacity: u64) -> Running {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("s.sock");
    let client = runtime.block_on(async {
        let daemon = Daemon::bind(ServeOptions::new(&socket, capacity)).unwrap();
        tokio::spawn(daemon.run());
        Client::connect(&socket).await.unwrap()
    });
    Running {
        runtime,
        client,
        dir,
    }
}

/// Runs `timed` as a task on the runtime's workers, where an async caller of the client runs
/// (not on the bench thread through `block_on`, which adds a wake-up across threads to every
/// reply), and returns what it measured.
fn in_task(
    runtime: &tokio::runtime::Runtime,
    timed: impl Future<Output = Duration> + Send + 'static,
) -> Duration {
    runtime.block_on(runtime.spawn(timed)).unwrap()
}

fn message(frame: Bytes) -> Message {
    Message::new(Header::empty(), vec![frame])
}

/// The most small objects a put benchmark holds at once.
const OUTSTANDING: usize = 1024;

/// `iters` puts as rounds of at most [`OUTSTANDING`].
fn rounds(iters: u64) -> impl Iterator<Item = u64> {
    let most = OUTSTANDING as u64;
    (0..iters)
        .step_by(OUTSTANDING)
        .map(move |done| (iters - done).min(most))
}

fn small(c: &mut Criterion) {
    let small = message(payload(100));
    let mut group = c.benchmark_group("store/small");
    group.throughput(Throughput::Elements(1));

    // Puts are timed in rounds of at most `OUTSTANDING`, each deleted (untimed) before the
    // next: what a put costs then does not depend on how many iterations criterion asks for
    // (a full run asks for many more than a quick one, and a store holding tens of thousands
    // of objects is a slower store).
    let store = Store::new(StoreOptions::default());
    let mut routine = |iters: u64| {
        let mut ids = Vec::with_capacity(OUTSTANDING);
        let mut elapsed = Duration::ZERO;
        for round in rounds(iters) {
            let started = Instant::now();
            for _ in 0..round {
                ids.push(store.put_raw(small.clone()).unwrap());
            }
            elapsed += started.elapsed();
            for id in ids.drain(..) {
                store.delete(&id).unwrap();
            }
        }
        elapsed
    };
    group.bench_function("embedded-put", |b| b.iter_custom(&mut routine));
    let id = store.put_raw(small.clone()).unwrap();
    group.bench_function("embedded-get", |b| {
        b.iter(|| black_box(store.get_raw(&id).unwrap()))
    });

    let running = daemon(64 << 20);
    let mut routine = |iters: u64| {
        let (client, small) = (running.client.clone(), small.clone());
        in_task(&running.runtime, async move {
            let mut ids = Vec::with_capacity(OUTSTANDING);
            let mut elapsed = Duration::ZERO;
            for round in rounds(iters) {
                let started = Instant::now();
                for _ in 0..round {
                    ids.push(client.put_raw(&small).await.unwrap());
                }
                elapsed += started.elapsed();
                for id in ids.drain(..) {
                    client.delete(&id).await.unwrap();
                }
            }
            elapsed
        })
    };
    group.bench_function("daemon-put", |b| b.iter_custom(&mut routine));
    let id = running
        .runtime
        .block_on(running.client.put_raw(&small))
        .unwrap();
    group.bench_function("daemon-get", |b| {
        b.iter_custom(|iters| {
            let client = running.client.clone();
            in_task(&running.runtime, async move {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(client.get_raw(&id).await.unwrap());
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

/// The payload sizes of the put and get sweeps.
const SWEEP: [(&str, usize); 5] = [
    ("1KiB", 1 << 10),
    ("64KiB", 64 << 10),
    ("1MiB", 1 << 20),
    ("64MiB", 64 << 20),
    ("1GiB", GIB),
];

fn put_get(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/put");
    group.timing(Timing {
        samples: 10,
        measurement: Duration::from_secs(5),
        ..Timing::DEFAULT
    });
    // One daemon for every size: its memfd is reserved at start for the largest.
    let running = daemon(GIB as u64 + (1 << 20));
    let client = &running.client;
    let store = Store::new(StoreOptions::default());
    let mut touched = vec![1u8; GIB];
    let mut stored = Vec::new();
    for (label, len) in SWEEP {
        group.throughput(Throughput::Bytes(len as u64));
        let source = payload(len);
        let into = &mut touched[..len];
        group.bench_function(BenchmarkId::new("memcpy-touched", label), |b| {
            b.iter(|| {
                into.copy_from_slice(&source);
                black_box(&into);
            })
        });
        let object = message(source);
        group.bench_function(BenchmarkId::new("embedded", label), |b| {
            b.iter(|| {
                let id = store.put_raw(object.clone()).unwrap();
                store.delete(&id).unwrap();
            })
        });
        group.bench_function(BenchmarkId::new("daemon", label), |b| {
            b.iter(|| {
                running.runtime.block_on(async {
                    let id = client.put_raw(&object).await.unwrap();
                    client.delete(&id).await.unwrap();
                })
            })
        });
        stored.push((label, object));
    }
    group.finish();
    drop(touched);

    // Gets are views of the stored object, so the same time at every size. One object at a
    // time is stored in the daemon, whose memory holds only the largest.
    let mut group = c.benchmark_group("store/get");
    for (label, object) in stored {
        let id = store.put_raw(object.clone()).unwrap();
        group.bench_function(BenchmarkId::new("embedded", label), |b| {
            b.iter(|| black_box(store.get_raw(&id).unwrap()))
        });
        store.delete(&id).unwrap();
        let id = running.runtime.block_on(client.put_raw(&object)).unwrap();
        drop(object);
        // From a task on the runtime, as `store/small/daemon-get`.
        group.bench_function(BenchmarkId::new("daemon", label), |b| {
            b.iter_custom(|iters| {
                let client = client.clone();
                in_task(&running.runtime, async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        black_box(client.get_raw(&id).await.unwrap());
                    }
                    started.elapsed()
                })
            })
        });
        running.runtime.block_on(client.delete(&id)).unwrap();
    }
    group.finish();
}

const MIB: usize = 1 << 20;
/// What each spill benchmark puts: objects of one size adding up to this.
const SPILL_TOTAL: usize = 128 << 20;
/// The embedded store's memory in the spill benchmarks: all but this much spills.
const SPILL_CAPACITY: u64 = 16 << 20;
const SPILL_FILE_BYTES: u64 = 64 << 20;
/// The object sizes of the spill and restore sweeps.
const SPILL_SWEEP: [(&str, usize); 4] = [
    ("1KiB", 1 << 10),
    ("64KiB", 64 << 10),
    ("1MiB", MIB),
    ("16MiB", 16 << 20),
];

fn spill_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-spill-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An embedded store of `SPILL_CAPACITY` spilling into `dir`, with `SPILL_TOTAL` bytes of
/// copies of `object` put.
fn spilled_store(
    dir: &std::path::Path,
    object: &Message,
) -> (Store, Vec<pontoon::store::ObjectId>) {
    let mut options = StoreOptions::default();
    options.capacity = SPILL_CAPACITY;
    options.spill_dir = Some(dir.to_path_buf());
    options.spill_file_bytes = SPILL_FILE_BYTES;
    let store = Store::open(options).unwrap();
    let ids = (0..SPILL_TOTAL as u64 / object.payload_len())
        .map(|_| store.put_raw(object.clone()).unwrap())
        .collect();
    (store, ids)
}

/// Writes `total` bytes of `chunk` with sequential writes into files of `SPILL_FILE_BYTES` in
/// `dir`, `fdatasync`ing each full one; returns the files.
fn raw_write(dir: &std::path::Path, chunk: &[u8], total: u64) -> Vec<PathBuf> {
    use std::io::Write;
    let mut files = Vec::new();
    let mut left = total;
    while left > 0 {
        let path = dir.join(format!("raw-{}.bin", files.len()));
        let mut file = std::fs::File::create(&path).unwrap();
        let mut in_file = 0u64;
        let mut kicked = 0u64;
        while left > 0 && in_file + chunk.len() as u64 <= SPILL_FILE_BYTES {
            let n = (chunk.len() as u64).min(left) as usize;
            file.write_all(&chunk[..n]).unwrap();
            in_file += n as u64;
            left -= n as u64;
            // As the spill writer does: writeback started every 8 MiB, so the disk works
            // while the next bytes are written, not only at the fdatasync.
            if in_file - kicked >= 8 << 20 {
                use std::os::fd::AsRawFd;
                // SAFETY: a system call on the open file's descriptor; it touches no memory.
                let done = unsafe {
                    libc::sync_file_range(
                        file.as_raw_fd(),
                        kicked as i64,
                        (in_file - kicked) as i64,
                        libc::SYNC_FILE_RANGE_WRITE,
                    )
                };
                assert_eq!(done, 0, "sync_file_range");
                kicked = in_file;
            }
        }
        if in_file + chunk.len() as u64 > SPILL_FILE_BYTES {
            file.sync_data().unwrap();
        }
        files.push(path);
    }
    files
}

/// The bytes a spill of `object`s writes (objects, record headers and padding), and how many
/// objects spill: the raw peers write and read as many bytes. Measured on a store of its
/// own, whose files go when it is dropped.
fn spilled_bytes(object: &Message) -> (u64, u64) {
    let dir = spill_dir("bytes");
    let (store, _) = spilled_store(&dir, object);
    let on_disk: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "LOCK")
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let spilled_objects = store.stats().spilled_objects;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    (on_disk, spilled_objects)
}

fn spill(c: &mut Criterion) {
    // The raw peers write and read in 1 MiB calls whatever the object size: the disk's
    // sequential bandwidth is the limit.
    let chunk = vec![7u8; MIB];
    let mut buffer = vec![0u8; MIB];
    let raw_dir = spill_dir("raw");
    let spill_into = spill_dir("spill");
    for (label, len) in SPILL_SWEEP {
        let object = message(payload(len));
        let (total, spilled_objects) = spilled_bytes(&object);
        eprintln!(
            "store/spill/{label}: {spilled_objects} of {} objects spill, {total} bytes on disk",
            SPILL_TOTAL / len
        );

        let mut group = c.benchmark_group("store/spill");
        group
            .timing(Timing {
                samples: 10,
                measurement: Duration::from_secs(10),
                ..Timing::DEFAULT
            })
            .throughput(Throughput::Bytes(total));
        // Each sample writes new files (the last sample's are removed, untimed).
        group.bench_function(BenchmarkId::new("raw-write-fdatasync", label), |b| {
            b.iter_batched(
                || clear(&raw_dir),
                |()| raw_write(&raw_dir, &chunk, total),
                BatchSize::PerIteration,
            )
        });
        // The store is dropped untimed (criterion drops what the routine returns after
        // timing it), and its files with it.
        group.bench_function(BenchmarkId::new("spill", label), |b| {
            b.iter_batched(
                || (),
                |()| spilled_store(&spill_into, &object),
                BatchSize::PerIteration,
            )
        });
        group.finish();

        let mut group = c.benchmark_group("store/restore");
        group
            .timing(Timing {
                samples: 10,
                measurement: Duration::from_secs(10),
                ..Timing::DEFAULT
            })
            .throughput(Throughput::Bytes(total));
        clear(&raw_dir);
        let files = raw_write(&raw_dir, &chunk, total);
        // Both reads start from the disk, as a restore after a real spill does: the files'
        // pages are dropped from the page cache first (untimed). They were synced, so the
        // kernel can.
        group.bench_function(BenchmarkId::new("raw-read", label), |b| {
            b.iter_batched(
                || files.iter().for_each(|path| evict(path)),
                |()| {
                    use std::io::Read;
                    for path in &files {
                        let mut file = std::fs::File::open(path).unwrap();
                        while file.read(&mut buffer).unwrap() > 0 {}
                        black_box(&buffer);
                    }
                },
                BatchSize::PerIteration,
            )
        });
        // A spill file's record is checked the first time it is read back: each sample spills
        // afresh (untimed) and times the first get of every object.
        group.bench_function(BenchmarkId::new("get-all", label), |b| {
            b.iter_batched(
                || {
                    let spilled = spilled_store(&spill_into, &object);
                    for entry in std::fs::read_dir(&spill_into).unwrap() {
                        evict(&entry.unwrap().path());
                    }
                    spilled
                },
                |(store, ids)| {
                    for id in &ids {
                        black_box(store.get_raw(id).unwrap());
                    }
                    (store, ids)
                },
                BatchSize::PerIteration,
            )
        });
        group.finish();
        clear(&raw_dir);
    }
    let _ = std::fs::remove_dir_all(&raw_dir);
    let _ = std::fs::remove_dir_all(&spill_into);
}

/// Removes every file in `dir`.
fn clear(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
}

/// Drops `path`'s pages from the page cache (`POSIX_FADV_DONTNEED`; the file was synced, so
/// its pages are clean and go), so that the next read of it comes from the disk.
fn evict(path: &std::path::Path) {
    let file = std::fs::File::open(path).unwrap();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

/// 16,000 objects of 1 MiB through a 1 GiB store: how many spill files (ray#22485 made
/// thousands). A count, not a time: printed once.
fn fuse_count() {
    let why = if std::env::var_os("PONTOON_BENCH_SKIP_FUSE").is_some() {
        Some("PONTOON_BENCH_SKIP_FUSE is set")
    } else if quick() {
        Some("a quick run leaves out its 15 GiB of writes; a full run counts them")
    } else {
        None
    };
    if let Some(why) = why {
        note(
            "store-fuse",
            &format!(
                "SKIPPED ({why}): 16,000 objects of 1 MiB through a 1 GiB store, and the spill \
                 files they make, not counted"
            ),
        );
        return;
    }
    let dir = spill_dir("fuse");
    let mut options = StoreOptions::default();
    options.capacity = 1 << 30;
    options.spill_dir = Some(dir.clone());
    let store = Store::open(options).unwrap();
    let object = message(payload(MIB));
    let started = Instant::now();
    for _ in 0..16_000 {
        store.put_raw(object.clone()).unwrap();
    }
    let elapsed = started.elapsed();
    let stats = store.stats();
    let files = std::fs::read_dir(&dir).unwrap().count() - 1; // LOCK
    eprintln!(
        "\n*** store/fuse: 16,000 objects of 1 MiB through a 1 GiB store: {} spilled ({} bytes) into {} spill files ({files} in the directory); target about 160; {:.2} GB/s ***\n",
        stats.spilled_objects,
        stats.spilled_bytes,
        stats.spill_files,
        stats.spilled_bytes as f64 / elapsed.as_secs_f64() / 1e9,
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn spilling(c: &mut Criterion) {
    fuse_count();
    spill(c);
}

const PULL_BYTES: usize = 256 << 20;
const PULL_CHUNK: usize = 4 << 20;

/// The transport's limit for the bytes a pull moves: the same messages, with no store at
/// either end. One iteration: the receiver asks, the sender writes 64 messages of one 4 MiB
/// frame, the receiver takes them all.
fn transport_raw(runtime: &tokio::runtime::Runtime) -> impl FnMut(u64) -> Duration + '_ {
    use pontoon::transport::{Config, connect, listen};
    let config = || {
        let mut config = Config::new("bench");
        config.limits = pontoon::store::peer_protocol::limits();
        config
    };
    let (mut receiver, mut sender) = runtime.block_on(async {
        let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), config())
            .await
            .unwrap();
        let address = listener.address().clone();
        let accepting = tokio::spawn(async move {
            let incoming = listener.accept().await.unwrap();
            incoming.handshake().await.unwrap()
        });
        let receiver = connect(&address, config()).await.unwrap();
        (receiver, accepting.await.unwrap())
    });
    let chunk = message(payload(PULL_CHUNK));
    runtime.spawn(async move {
        while let Ok(Some(_)) = sender.recv().await {
            for _ in 0..PULL_BYTES / PULL_CHUNK {
                sender.send(&chunk).await.unwrap();
            }
        }
    });
    move |iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            total += runtime.block_on(async {
                let start = Instant::now();
                receiver.send(&message(Bytes::new())).await.unwrap();
                let mut got = 0;
                while got < PULL_BYTES {
                    let m = receiver.recv().await.unwrap().unwrap();
                    got += m.frames.iter().map(|f| f.len()).sum::<usize>();
                }
                start.elapsed()
            });
        }
        total
    }
}

fn pull(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/pull");
    group
        .timing(Timing {
            samples: 10,
            measurement: Duration::from_secs(8),
            ..Timing::DEFAULT
        })
        .throughput(Throughput::Bytes(PULL_BYTES as u64));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut raw = transport_raw(&runtime);
    group.bench_function("transport-raw", |b| b.iter_custom(&mut raw));

    let owner = std::sync::Arc::new(Store::new(StoreOptions::default()));
    let id = owner.put_raw(message(payload(PULL_BYTES))).unwrap();
    let server = runtime
        .block_on(owner.serve_peers(&"tcp://127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let peer = server.address().clone();
    let here = Store::new(StoreOptions::default());
    runtime.block_on(here.pull(&id, &peer)).unwrap();
    here.delete(&id).unwrap();
    group.bench_function("embedded", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                runtime.block_on(here.pull(&id, &peer)).unwrap();
                total += start.elapsed();
                here.delete(&id).unwrap();
            }
            total
        })
    });

    drop(server);
    drop(owner);

    // Daemon to daemon: the owner's daemon serves peers, the puller's daemon pulls.
    let (serving, peer) = daemon_serving_peers(PULL_BYTES as u64 + (1 << 20));
    let id = serving
        .runtime
        .block_on(serving.client.put_raw(&message(payload(PULL_BYTES))))
        .unwrap();
    let pulling = daemon(PULL_BYTES as u64 + (1 << 20));
    let client = &pulling.client;
    pulling.runtime.block_on(async {
        client.pull(&id, &peer).await.unwrap();
        client.delete(&id).await.unwrap();
    });
    group.bench_function("daemon", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += pulling.runtime.block_on(async {
                    let start = Instant::now();
                    client.pull(&id, &peer).await.unwrap();
                    let took = start.elapsed();
                    client.delete(&id).await.unwrap();
                    took
                });
            }
            total
        })
    });
    group.finish();
}

/// A daemon as [`daemon`] makes, also serving peers on loopback; and the peers' address.
fn daemon_serving_peers(capacity: u64) -> (Running, pontoon::transport::Address) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-store-peers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("s.sock");
    let (client, address) = runtime.block_on(async {
        let mut daemon = Daemon::bind(ServeOptions::new(&socket, capacity)).unwrap();
        let address = daemon
            .listen_peers(&"tcp://127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        tokio::spawn(daemon.run());
        (Client::connect(&socket).await.unwrap(), address)
    });
    let running = Running {
        runtime,
        client,
        dir,
    };
    (running, address)
}

criterion_group! {
    name = benches;
    config = pontoon_benches::criterion();
    targets = small, put_get, spilling, pull
}
criterion_main!(benches);
