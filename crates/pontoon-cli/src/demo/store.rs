//! The demo's store part: a store daemon owned by this process, a second process that puts a
//! large array into the daemon's shared memory, and this process getting the array back as a
//! view of that memory: one copy in (the put), none out; then a daemon with a small memory and
//! a spill directory, given more than fits: objects spill to disk and come back, checked.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use pontoon::array::Array;
use pontoon::family::Registry;
use pontoon::store::{Client, Daemon, ObjectId, ServeOptions};
use serde::{Deserialize, Serialize};

use super::transport::Reaper;
use super::{Args, duration, rate, size, timed};

/// How long the producer may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// Options of the hidden `pontoon demo-store-producer`.
#[derive(clap::Args)]
pub(crate) struct ProducerArgs {
    /// The daemon's socket.
    #[arg(long)]
    socket: PathBuf,
    /// Size of the array to put, in MiB.
    #[arg(long)]
    mib: usize,
}

/// What the producer puts: a named field of samples.
#[derive(Serialize, Deserialize, Debug)]
struct Field {
    name: String,
    samples: Array,
}

/// The value sample `i` holds, so the reader can check every one.
fn sample(i: usize) -> f64 {
    (i % 1000) as f64 * 0.5
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

pub(super) fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    println!("pontoon demo: an object store shared by two processes, through pontoon-store");
    let mib = args.payload_mib.max(1);
    let dir = std::env::temp_dir().join(format!("pontoon-demo-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cleanup = Cleanup(dir.clone());
    let socket = dir.join("store.sock");
    let capacity = ((mib as u64) << 21) + (16 << 20);
    let rt = runtime()?;
    let (daemon, reserve_time) =
        timed(|| rt.block_on(async { Daemon::bind(ServeOptions::new(&socket, capacity)) }));
    let daemon = daemon?;
    let stats = daemon.stats_handle();
    let serving = rt.spawn(daemon.run());
    println!(
        "  daemon            this process (pid {}), {} of shared memory reserved in {} \
         (fallocated: no page fault can SIGBUS), socket {}",
        std::process::id(),
        size(capacity),
        duration(reserve_time),
        socket.display()
    );

    let child = Command::new(std::env::current_exe()?)
        .args(["demo-store-producer", "--socket"])
        .arg(&socket)
        .args(["--mib", &mib.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the producer process: {e}"))?;
    let mut reaper = Reaper(Some(child));
    let pid = reaper.0.as_ref().map_or(0, std::process::Child::id);
    let stdout = reaper
        .0
        .as_mut()
        .and_then(|child| child.stdout.take())
        .ok_or("the producer has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let status = reaper.wait(DEADLINE)?;
    if !status.success() {
        return Err(format!("the producer process failed: {status}").into());
    }
    let mut words = line.split_whitespace();
    let (Some(id), Some(put_ns)) = (words.next(), words.next()) else {
        return Err(format!("the producer said {line:?}, not an id and a time").into());
    };
    let id: ObjectId = id.parse()?;
    let put_time = Duration::from_nanos(put_ns.parse()?);
    let bytes = mib << 20;
    println!(
        "  put               producer (pid {pid}) put a {} array: {} ({}, one copy into the \
         shared memory), id {id}; it has exited",
        size(bytes as u64),
        duration(put_time),
        rate(bytes, put_time)
    );

    let registry = Registry::new();
    let outcome = rt.block_on(async {
        let client = Client::connect(&socket).await?;
        let (field, get_time) = {
            let started = std::time::Instant::now();
            let field = client.get::<Field>(&registry, &id).await?;
            (field, started.elapsed())
        };
        let shared = client.is_shared(field.samples.data());
        let view = field.samples.view::<f64>()?;
        let wrong = view
            .iter()
            .enumerate()
            .filter(|&(i, &v)| v != sample(i))
            .count();
        println!(
            "  get               this process: {:?} {} {:?} in {}, {}",
            field.name,
            field.samples.descr(),
            field.samples.shape(),
            duration(get_time),
            if shared {
                "a view of the daemon's memory (no copy)"
            } else {
                "COPIED"
            }
        );
        if !shared {
            return Err::<(), Box<dyn Error>>("the array was copied out of the store".into());
        }
        if wrong > 0 {
            return Err(format!("{wrong} samples changed in the store").into());
        }
        println!("                    all {} samples checked", view.len());
        drop(field);
        client.delete(&id).await?;
        Ok(())
    });
    let now = stats.stats();
    serving.abort();
    outcome?;
    println!(
        "  stats             {} objects, {} in use after the delete",
        now.objects,
        size(now.used_bytes)
    );
    let spilled = spilling(&rt, &dir);
    drop(rt);
    drop(cleanup);
    spilled
}

/// Objects and their size in the spilling step: 12 MiB through 4 MiB of memory.
const SPILL_OBJECTS: usize = 24;
const SPILL_OBJECT_BYTES: usize = 512 << 10;
const SPILL_CAPACITY: u64 = 4 << 20;

/// The bytes of object `i` of the spilling step.
fn spill_object(i: usize) -> bytes::Bytes {
    (0..SPILL_OBJECT_BYTES)
        .map(|b| (b * 7 + i * 13) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// A daemon with 4 MiB of memory and a spill directory, given 12 MiB: what does not fit
/// spills, and every object comes back as a view (of the memory or of a spill file), checked.
fn spilling(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Result<(), Box<dyn Error>> {
    let socket = dir.join("spill.sock");
    let spill_dir = dir.join("spill");
    let mut options = ServeOptions::new(&socket, SPILL_CAPACITY);
    options.spill_dir = Some(spill_dir.clone());
    let daemon = rt.block_on(async { Daemon::bind(options) })?;
    let serving = rt.spawn(daemon.run());
    let outcome = rt.block_on(async {
        let client = Client::connect(&socket).await?;
        let message = |i| {
            pontoon::wire::Message::new(pontoon::wire::Header::empty(), vec![spill_object(i)])
        };
        let started = std::time::Instant::now();
        let mut ids = Vec::with_capacity(SPILL_OBJECTS);
        for i in 0..SPILL_OBJECTS {
            ids.push(client.put_raw(&message(i)).await?);
        }
        let put_time = started.elapsed();
        let total = SPILL_OBJECTS * SPILL_OBJECT_BYTES;
        let stats = client.stats().await?;
        println!(
            "  spilling          a daemon with {} of memory and a spill directory, given {} objects ({}) in {}: {} objects ({}) spilled into {} files, {} in memory",
            size(SPILL_CAPACITY),
            SPILL_OBJECTS,
            size(total as u64),
            duration(put_time),
            stats.spilled_objects,
            size(stats.spilled_bytes),
            stats.spill_files,
            size(stats.used_bytes)
        );
        if stats.spilled_objects == 0 {
            return Err::<(), Box<dyn Error>>("nothing spilled".into());
        }
        let started = std::time::Instant::now();
        let mut views = 0;
        for (i, id) in ids.iter().enumerate() {
            let back = client.get_raw(id).await?;
            if back.frames.len() != 1 || back.frames[0] != spill_object(i) {
                return Err(format!("object {i} came back different").into());
            }
            if client.is_shared(&back.frames[0]) {
                views += 1;
            }
        }
        let get_time = started.elapsed();
        println!(
            "  restore           all {} objects got back in {} and checked byte for byte, {views} of them views (of the memory, or of a spill file's map: no read copy)",
            SPILL_OBJECTS,
            duration(get_time)
        );
        if views != SPILL_OBJECTS {
            return Err("an object was copied out of the store".into());
        }
        for id in &ids {
            client.delete(id).await?;
        }
        let left = std::fs::read_dir(&spill_dir)?
            .filter(|e| e.as_ref().is_ok_and(|e| e.file_name() != "LOCK"))
            .count();
        println!("                    deleted: {left} spill files left in the spill directory");
        if left != 0 {
            return Err(format!("{left} spill files outlived their objects").into());
        }
        Ok(())
    });
    serving.abort();
    outcome
}

/// Removes the demo's directory (its socket) however the demo ends.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The producer process: connects, builds the array, puts it, prints its id and the put's
/// time in nanoseconds, and exits (its object stays in the daemon).
pub(crate) fn producer(args: &ProducerArgs) -> Result<(), Box<dyn Error>> {
    let samples = Array::build::<f64>(&[(args.mib << 20) / 8], |cells| {
        for (i, cell) in cells.iter_mut().enumerate() {
            *cell = sample(i);
        }
    })?;
    let field = Field {
        name: "pressure".into(),
        samples,
    };
    let registry = Registry::new();
    let rt = runtime()?;
    rt.block_on(async {
        tokio::time::timeout(DEADLINE, async {
            let client = Client::connect(&args.socket).await?;
            let started = std::time::Instant::now();
            let id = client.put(&registry, &field).await?;
            let took = started.elapsed();
            println!("{id} {}", took.as_nanos());
            Ok::<(), Box<dyn Error>>(())
        })
        .await
        .map_err(|_| format!("the producer gave up after {} s", DEADLINE.as_secs()))?
    })
}
