//! `pontoon demo`: the main job, on embedded defaults; it grows with every capability of pontoon.
//!
//! Each part shows one layer at work: pontoon-wire moving a mixed message without copying its
//! payload, then pontoon-family moving typed values (a type with its own serializer, a struct with
//! out-of-band buffers) across the same wire, then pontoon-array: a struct holding a large array
//! that arrives as a view of the received frame, then pontoon-transport: two processes
//! exchanging admin messages, a custom type and large arrays over tcp://, and last
//! pontoon-persist: a durable state whose writer is killed with SIGKILL and that is reopened with
//! nothing acknowledged lost, then restored onto a fresh directory from an S3-compatible remote
//! (when one is set), and pontoon-store: a large array put into a store daemon's shared
//! memory by one process and read by another as a view of it, and pontoon-dask: an array
//! scattered to a live Dask scheduler's worker and gathered by Python, and back (when a Python
//! with distributed is there; otherwise the part says so). Last, a few of the metrics the
//! parts recorded in this process.

mod array;
mod dask;
mod family;
mod metrics;
mod persist;
mod remote;
mod store;
mod transport;
mod wire;

pub(crate) use persist::{WriterArgs, writer};
pub(crate) use store::{ProducerArgs, producer};
pub(crate) use transport::{PeerArgs, peer};

use std::error::Error;
use std::time::{Duration, Instant};

use pontoon::wire::Codec;

/// Options of `pontoon demo`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Size of the payload frame, in MiB.
    #[arg(long, default_value_t = 64)]
    pub(super) payload_mib: usize,
    /// Compress frames with this codec where it pays: none, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub(super) codec: Codec,
    /// Write and check a CRC32C per frame.
    #[arg(long)]
    pub(super) checksums: bool,
}

/// Runs every part of the demo in turn, then reports some of what they recorded.
pub(crate) fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    // First: a handle registered before the recorder is installed stays a no-op.
    let recorded = crate::metrics::in_process()?;
    wire::run(args)?;
    println!();
    family::run(args)?;
    println!();
    array::run(args)?;
    println!();
    transport::run(args)?;
    println!();
    persist::run()?;
    println!();
    remote::run()?;
    println!();
    store::run(args)?;
    println!();
    dask::run(args)?;
    println!();
    metrics::report(&recorded);
    Ok(())
}

pub(super) fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

pub(super) fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.2} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

pub(super) fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    match ns {
        n if n >= 1e9 => format!("{:.2} s", n / 1e9),
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.2} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

/// Payload bytes per second over `d`, in GB/s.
pub(super) fn rate(bytes: usize, d: Duration) -> String {
    let secs = d.as_secs_f64().max(1e-9);
    format!("{:.1} GB/s of payload", bytes as f64 / secs / 1e9)
}
