//! pontoon-persist's remote next to raw object_store calls against the same S3-compatible
//! server, in the same run: uploading a 1 GiB state (`Durable::sync_remote` of a log whose sealed
//! segments hold 1 GiB; 128 MiB in a quick run) against putting the same objects, and restoring
//! it onto an empty directory (`Durable::open`: manifest, downloads, files synced and renamed
//! into place, then the log's recovery and replay) against getting the same objects into files
//! and syncing them;
//! and what remote durability costs per event (`remote/acknowledged`: an apply that returns
//! once its event is on the remote, next to a local apply and to one raw put of its bytes).
//!
//! The server is the one `cargo xtask bench remote` starts (SeaweedFS on 127.0.0.1, named by
//! `PONTOON_REMOTE` and the usual `AWS_*` variables); without it the area says so and measures
//! nothing. Deleted objects are vacuumed between iterations (`PONTOON_SEAWEED_MASTER`), so the
//! server's disk use stays near one copy of the state.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use pontoon::family::Buffer;
use pontoon::persist::{Durable, DurableOptions, Remote, RemoteDurability};
use pontoon_benches::{Timed, Timing, note, payload, quick};
use serde::{Deserialize, Serialize};

/// The state's size: what its sealed log segments hold.
const STATE_BYTES: u64 = 1 << 30;
/// The state's size in a quick run, whose every benchmark takes ten samples: two segments.
const QUICK_STATE_BYTES: u64 = 128 << 20;
/// One event's payload.
const EVENT_BYTES: usize = 1 << 20;
/// Log segments of this size, so the state is a few dozen objects, as a real log would be.
const SEGMENT_BYTES: u64 = 64 << 20;
/// The raw baseline's multipart part size and parts in flight: those of pontoon's uploader.
const PART_BYTES: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 2;

/// An event: a chunk of bytes, logged out of band (a frame of its own, read back as a view).
#[derive(Serialize, Deserialize)]
struct Chunk {
    data: Buffer,
}

/// The state: bytes seen so far.
#[derive(Serialize, Deserialize, Default)]
struct Total(u64);

fn options(remote: Option<Remote>) -> DurableOptions {
    let mut options = DurableOptions::default();
    options
        .registry
        .register_type::<Chunk>("bench.remote.Chunk")
        .unwrap();
    options
        .registry
        .register_type::<Total>("bench.remote.Total")
        .unwrap();
    options.log.segment_bytes = SEGMENT_BYTES;
    options.prune = false;
    options.remote = remote;
    options
}

fn apply(total: &mut Total, chunk: &Chunk) {
    total.0 += chunk.data.len() as u64;
}

fn open(dir: &Path, remote: Option<Remote>) -> Durable<Total, Chunk> {
    Durable::open(dir, Total::default, apply, options(remote)).unwrap()
}

/// The server, as `cargo xtask bench remote` names it.
struct Server {
    /// `s3://bucket/prefix` for this run.
    url: String,
    /// object_store's client for the same URL and environment pontoon's remote uses.
    store: Arc<dyn ObjectStore>,
    /// Where the bucket's path ends and object names begin.
    prefix: ObjectPath,
    /// `host:port` of SeaweedFS's master, to vacuum deleted objects (optional).
    master: Option<String>,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn from_env() -> Option<Server> {
        let url = std::env::var("PONTOON_REMOTE")
            .ok()
            .filter(|u| !u.is_empty());
        let Some(url) = url else {
            note(
                "remote",
                "SKIPPED: no S3-compatible server; run `cargo xtask bench remote`, which starts \
                 one (SeaweedFS from the test venv) and names it in PONTOON_REMOTE and AWS_*",
            );
            return None;
        };
        let parsed = url::Url::parse(&url).unwrap();
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_url(&url)
            .build()
            .unwrap();
        let prefix = ObjectPath::from_url_path(parsed.path()).unwrap();
        let server = Server {
            url: url.trim_end_matches('/').to_owned(),
            store: Arc::new(store),
            prefix,
            master: std::env::var("PONTOON_SEAWEED_MASTER").ok(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        server.wait_ready();
        Some(server)
    }

    /// A server that has just started creates its bucket a moment after it listens.
    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let listed = self
                .runtime
                .block_on(self.store.list_with_delimiter(Some(&self.prefix)));
            match listed {
                Ok(_) => return,
                Err(e) if started.elapsed() > Duration::from_secs(60) => {
                    panic!("the S3 server at {} does not answer: {e}", self.url)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn object(&self, sub: &str, name: &str) -> ObjectPath {
        ObjectPath::from(format!("{}/{sub}/{name}", self.prefix))
    }

    /// Deletes everything under `sub`, then asks the server to reclaim the space.
    fn clear(&self, sub: &str) {
        let prefix = ObjectPath::from(format!("{}/{sub}", self.prefix));
        self.runtime.block_on(async {
            // The objects sit right under the prefix: one level lists them all.
            let listed = self.store.list_with_delimiter(Some(&prefix)).await.unwrap();
            for meta in listed.objects {
                self.store.delete(&meta.location).await.unwrap();
            }
        });
        self.vacuum();
    }

    /// SeaweedFS keeps deleted objects' bytes until its volumes are vacuumed; without it each
    /// iteration would leave a GiB behind on the server's disk.
    fn vacuum(&self) {
        let Some(master) = &self.master else { return };
        let Ok(mut stream) = std::net::TcpStream::connect(master) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        let request = format!(
            "GET /vol/vacuum?garbageThreshold=0.0001 HTTP/1.1\r\nHost: {master}\r\nConnection: \
             close\r\n\r\n"
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = std::io::copy(&mut stream, &mut std::io::sink());
        }
    }

    /// Puts `bytes` as one object the way pontoon's uploader does (parts of the same size, as
    /// many in flight), but from memory.
    async fn put(&self, object: &ObjectPath, bytes: &Bytes) {
        if bytes.len() <= PART_BYTES {
            self.store
                .put(object, PutPayload::from(bytes.clone()))
                .await
                .unwrap();
            return;
        }
        let upload = self.store.put_multipart(object).await.unwrap();
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        for start in (0..bytes.len()).step_by(PART_BYTES) {
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await.unwrap();
            writer.put(bytes.slice(start..(start + PART_BYTES).min(bytes.len())));
        }
        writer.finish().await.unwrap();
    }
}

/// The sealed segments of the log in `dir` (all but the newest, which is active), by name,
/// oldest first (their names sort as their first sequence numbers do).
fn sealed_segments(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut segments: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        // `<first seq, 20 digits>.log` (docs/persist-format.md).
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    segments.sort();
    segments.pop();
    segments
}

/// A copy of the state in `from` that may be opened on its own: sealed segments are hard links
/// (a log never writes to them again), everything else is copied.
fn link_copy(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    let sealed: Vec<String> = sealed_segments(from).into_iter().map(|(n, _)| n).collect();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type().unwrap().is_file() || name == "LOCK" {
            continue;
        }
        if sealed.contains(&name) {
            std::fs::hard_link(entry.path(), to.join(&name)).unwrap();
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

fn remote(c: &mut Criterion) {
    let Some(server) = Server::from_env() else {
        return;
    };
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("remote-bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    // The state, once: events until the sealed segments hold its size.
    let state_size = if quick() {
        note(
            "remote",
            &format!(
                "a quick run uploads and restores a {} MiB state ({} segments), not {} GiB: ten \
                 samples of the full state take minutes; the ratios compare throughputs either way",
                QUICK_STATE_BYTES >> 20,
                QUICK_STATE_BYTES / SEGMENT_BYTES,
                STATE_BYTES >> 30,
            ),
        );
        QUICK_STATE_BYTES
    } else {
        STATE_BYTES
    };
    let base = work.join("base");
    {
        let mut state = open(&base, None);
        let chunk = payload(EVENT_BYTES);
        let events = (state_size + SEGMENT_BYTES) / EVENT_BYTES as u64;
        for _ in 0..events {
            state
                .apply(&Chunk {
                    data: Buffer::from(chunk.clone()),
                })
                .unwrap();
        }
    }
    let sealed = sealed_segments(&base);
    let state_bytes: u64 = sealed
        .iter()
        .map(|(_, path)| std::fs::metadata(path).unwrap().len())
        .sum();
    assert!(state_bytes >= state_size, "{state_bytes}");
    let in_memory: Vec<(String, Bytes)> = sealed
        .iter()
        .map(|(name, path)| (name.clone(), Bytes::from(std::fs::read(path).unwrap())))
        .collect();

    let mut group = c.benchmark_group("remote");
    group.timing(Timing {
        samples: 10,
        warm_up: Duration::from_millis(1),
        measurement: Duration::from_secs(1),
    });
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(state_bytes));

    let mut round = 0u64;
    group.bench_function("upload/raw", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let sub = format!("raw-up-{round}");
                let started = Instant::now();
                server.runtime.block_on(async {
                    for (name, bytes) in &in_memory {
                        server.put(&server.object(&sub, name), bytes).await;
                    }
                });
                spent += started.elapsed();
                server.clear(&sub);
            }
            spent
        })
    });
    group.bench_function("upload/pontoon", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let sub = format!("up-{round}");
                let dir = work.join("upload");
                link_copy(&base, &dir);
                let url = format!("{}/{sub}", server.url);
                let state = open(
                    &dir,
                    Some(Remote::open(&url, Vec::<(String, String)>::new()).unwrap()),
                );
                let started = Instant::now();
                let manifest = state.sync_remote().unwrap();
                spent += started.elapsed();
                assert_eq!(manifest.segments.len(), sealed.len());
                drop(state);
                std::fs::remove_dir_all(&dir).unwrap();
                server.clear(&sub);
            }
            spent
        })
    });

    // The state the restores read, uploaded once.
    let restore_url = format!("{}/restore", server.url);
    let restored_seq;
    {
        let dir = work.join("to-restore");
        link_copy(&base, &dir);
        let state = open(
            &dir,
            Some(Remote::open(&restore_url, Vec::<(String, String)>::new()).unwrap()),
        );
        let manifest = state.sync_remote().unwrap();
        drop(state);
        restored_seq = manifest.next_seq - 1;
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let restore_objects: Vec<ObjectPath> = sealed
        .iter()
        .map(|(name, _)| server.object("restore", name))
        .collect();

    group.bench_function("restore/raw-to-files", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let dir = work.join("raw-restore");
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                let started = Instant::now();
                server.runtime.block_on(async {
                    for object in &restore_objects {
                        let bytes = server
                            .store
                            .get(object)
                            .await
                            .unwrap()
                            .bytes()
                            .await
                            .unwrap();
                        let mut file =
                            std::fs::File::create(dir.join(object.filename().unwrap())).unwrap();
                        file.write_all(&bytes).unwrap();
                        file.sync_all().unwrap();
                    }
                });
                spent += started.elapsed();
                std::fs::remove_dir_all(&dir).unwrap();
            }
            spent
        })
    });
    group.bench_function("restore/raw-to-memory", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                server.runtime.block_on(async {
                    for object in &restore_objects {
                        let bytes = server
                            .store
                            .get(object)
                            .await
                            .unwrap()
                            .bytes()
                            .await
                            .unwrap();
                        std::hint::black_box(bytes);
                    }
                });
            }
            started.elapsed()
        })
    });
    group.bench_function("restore/pontoon", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let dir = work.join("restored");
                let _ = std::fs::remove_dir_all(&dir);
                let started = Instant::now();
                let state = open(
                    &dir,
                    Some(Remote::open(&restore_url, Vec::<(String, String)>::new()).unwrap()),
                );
                spent += started.elapsed();
                assert_eq!(state.last_seq(), restored_seq);
                drop(state);
                std::fs::remove_dir_all(&dir).unwrap();
            }
            spent
        })
    });
    group.finish();
    server.clear("restore");
    acknowledged(c, &server, &work);
    let _ = std::fs::remove_dir_all(&work);
}

/// The size of the events of `remote/acknowledged`.
const SMALL_EVENT_BYTES: usize = 1 << 10;

/// What remote durability costs per event: `Durable::apply` of a 1 KiB event under
/// `RemoteDurability::Acknowledged` (a round each: the event's bytes as a tail part, then a
/// manifest with a conditional put), next to the same apply with no remote (durable locally
/// only) and to one raw put of the event's bytes, the least any acknowledgement from the
/// remote needs.
fn acknowledged(c: &mut Criterion, server: &Server, work: &Path) {
    let mut group = c.benchmark_group("remote/acknowledged");
    group.timing(Timing {
        samples: 10,
        measurement: Duration::from_secs(3),
        ..Timing::DEFAULT
    });
    group.throughput(Throughput::Elements(1));
    let event = Chunk {
        data: Buffer::from(payload(SMALL_EVENT_BYTES)),
    };

    let url = format!("{}/acknowledged", server.url);
    let mut remote_options = options(Some(
        Remote::open(&url, Vec::<(String, String)>::new()).unwrap(),
    ));
    remote_options.remote_durability = RemoteDurability::Acknowledged;
    let dir = work.join("acknowledged");
    let mut state = Durable::open(&dir, Total::default, apply, remote_options).unwrap();
    group.bench_function("apply-1KiB", |b| b.iter(|| state.apply(&event).unwrap()));
    drop(state);
    server.clear("acknowledged");

    let dir = work.join("local");
    let mut state = open(&dir, None);
    group.bench_function("apply-1KiB-local", |b| {
        b.iter(|| state.apply(&event).unwrap())
    });
    drop(state);

    let bytes = payload(SMALL_EVENT_BYTES);
    let object = server.object("raw-small", "event");
    group.bench_function("raw-put-1KiB", |b| {
        b.iter(|| {
            server
                .runtime
                .block_on(server.store.put(&object, PutPayload::from(bytes.clone())))
                .unwrap()
        })
    });
    group.finish();
    server.clear("raw-small");
}

criterion_group! {
    name = benches;
    config = pontoon_benches::criterion();
    targets = remote
}
criterion_main!(benches);
