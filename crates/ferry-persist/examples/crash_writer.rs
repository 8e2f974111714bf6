//! A log writer for crash tests: appends records forever and prints each record's sequence
//! number once that record is durable.
//!
//! # Interface (stable: `tests/crash.rs` depends on it)
//!
//! ```text
//! crash_writer DIR [--policy always|never] [--segment-bytes N]
//! ```
//!
//! - Opens (recovering) the log in `DIR` and appends records from its next sequence number on,
//!   in a loop that never ends; kill the process to stop it.
//! - Record `seq` has kind `seq % 5` and holds [`message`]`(seq)`: a header that is the
//!   MessagePack of `("crash", seq)` and one frame of [`frame_len`]`(seq)` (100..4096) bytes
//!   from an xorshift64 seeded with `seq` (see [`frame`]). The test rebuilds it from the seq.
//! - stdout carries one line per record, the decimal sequence number, written and flushed only
//!   after the record is durable. `--policy always` (the default) uses `Durability::Always`:
//!   each seq is printed after its `append` returns. `--policy never` uses `Durability::Never`
//!   and calls `Log::sync` every 100 records, then prints those 100 seqs.
//! - `--segment-bytes N` sets `LogOptions::segment_bytes` (default: the library default).
//! - Errors go to stderr with exit status 1; a closed stdout ends the process quietly.

use std::io::Write;

use bytes::Bytes;
use ferry_persist::{Durability, Log, LogOptions};
use ferry_wire::{Header, Message};

/// The length of record `seq`'s frame: 100..4096 bytes.
fn frame_len(seq: u64) -> usize {
    100 + (seq.wrapping_mul(2_654_435_761) % 3996) as usize
}

/// Record `seq`'s frame: [`frame_len`]`(seq)` bytes from an xorshift64 seeded with `seq`.
fn frame(seq: u64) -> Bytes {
    let mut state = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..frame_len(seq))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The message record `seq` holds.
fn message(seq: u64) -> Message {
    let header = Header::from_serde(&("crash", seq)).expect("a tuple serializes");
    Message::new(header, vec![frame(seq)])
}

fn usage() -> ! {
    eprintln!("usage: crash_writer DIR [--policy always|never] [--segment-bytes N]");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else { usage() };
    let mut options = LogOptions::default();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--policy", Some(p)) if p == "always" => options.durability = Durability::Always,
            ("--policy", Some(p)) if p == "never" => options.durability = Durability::Never,
            ("--segment-bytes", Some(n)) => {
                options.segment_bytes = n.parse().unwrap_or_else(|_| usage());
            }
            _ => usage(),
        }
    }
    if let Err(error) = run(&dir, options) {
        eprintln!("crash_writer: {error}");
        std::process::exit(1);
    }
}

fn run(dir: &str, options: LogOptions) -> Result<(), Box<dyn std::error::Error>> {
    let always = options.durability == Durability::Always;
    let (mut log, _) = Log::open(dir, options)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut pending = Vec::with_capacity(100);
    loop {
        let seq = log.append((log.next_seq() % 5) as u32, &message(log.next_seq()))?;
        pending.push(seq);
        if !always {
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
