//! A log writer for crash tests: appends records forever and prints each record's sequence
//! number once that record is durable.
//!
//! # Interface (stable: `tests/crash.rs` depends on it)
//!
//! ```text
//! crash_writer DIR [--policy always|group|never] [--segment-bytes N]
//! ```
//!
//! - Opens (recovering) the log in `DIR` and appends records from its next sequence number on,
//!   in a loop that never ends; kill the process to stop it.
//! - Each record has an id, kind `id % 5`, and holds [`message`]`(id)` (in `record.rs`, which the test shares): a header that is the
//!   MessagePack of `("crash", id)` and one frame of [`frame_len`]`(id)` (100..4096) bytes from
//!   an xorshift64 seeded with `id` (see [`frame`]). The test rebuilds the record from the id
//!   in its header.
//! - stdout carries one line per record, the decimal sequence number, written and flushed only
//!   after the record is durable.
//! - `--policy always` (the default) uses `Durability::Always`; one thread appends, the id is
//!   the sequence number, and each seq is printed, in order, after its `append` returns.
//! - `--policy group` uses `Durability::GroupCommit` with [`GROUP_THREADS`] threads appending
//!   at once; ids are [`GROUP_IDS`] or more (so never a sequence number), and the lines come
//!   in the order the appends return, which need not be sequence order.
//! - `--policy never` uses `Durability::Never`, one thread, id = seq, and calls `Log::sync`
//!   every 100 records, then prints those 100 seqs.
//! - `--segment-bytes N` sets `LogOptions::segment_bytes` (default: the library default).
//! - Errors go to stderr with exit status 1; a closed stdout ends the process quietly.

use std::io::Write;

use pontoon_persist::{Durability, Log, LogOptions};

mod record;
use record::{GROUP_IDS, message};

/// Appending threads under `--policy group`.
const GROUP_THREADS: u64 = 4;

fn usage() -> ! {
    eprintln!("usage: crash_writer DIR [--policy always|group|never] [--segment-bytes N]");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else { usage() };
    let mut options = LogOptions::default();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--policy", Some(p)) if p == "always" => options.durability = Durability::Always,
            ("--policy", Some(p)) if p == "group" => {
                options.durability = Durability::GroupCommit;
            }
            ("--policy", Some(p)) if p == "never" => options.durability = Durability::Never,
            ("--segment-bytes", Some(n)) => {
                options.segment_bytes = n.parse().unwrap_or_else(|_| usage());
            }
            _ => usage(),
        }
    }
    if let Err(error) = run(&dir, options) {
        // The whole chain: each error says only its own part.
        let mut text = format!("crash_writer: {error}");
        let mut cause = error.source();
        while let Some(inner) = cause {
            text.push_str(&format!(": {inner}"));
            cause = inner.source();
        }
        eprintln!("{text}");
        std::process::exit(1);
    }
}

fn run(dir: &str, options: LogOptions) -> Result<(), Box<dyn std::error::Error>> {
    let policy = options.durability;
    let (log, _) = Log::open(dir, options)?;
    if policy == Durability::GroupCommit {
        return group(&log);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut pending = Vec::with_capacity(100);
    loop {
        let id = log.next_seq();
        let seq = log.append((id % 5) as u32, &message(id))?;
        pending.push(seq);
        if policy == Durability::Never {
            if pending.len() < 100 {
                continue;
            }
            log.sync()?;
        }
        for seq in pending.drain(..) {
            if writeln!(out, "{seq}").and_then(|()| out.flush()).is_err() {
                // Whoever reads us is gone.
                return Ok(());
            }
        }
    }
}

/// `--policy group`: several threads append at once, each printing a seq once its `append`
/// (which waits for a shared sync) returns.
fn group(log: &Log) -> Result<(), Box<dyn std::error::Error>> {
    let base = GROUP_IDS + log.next_seq() * GROUP_THREADS;
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..GROUP_THREADS)
            .map(|thread| {
                scope.spawn(move || -> Result<(), String> {
                    for k in 0.. {
                        let id = base + k * GROUP_THREADS + thread;
                        let seq = log
                            .append((id % 5) as u32, &message(id))
                            .map_err(|e| e.to_string())?;
                        let mut out = std::io::stdout().lock();
                        if writeln!(out, "{seq}").and_then(|()| out.flush()).is_err() {
                            return Ok(());
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for thread in threads {
            thread
                .join()
                .map_err(|_| "an appending thread panicked")??;
        }
        Ok(())
    })
}
