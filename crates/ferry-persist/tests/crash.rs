//! Crash tests: kill -9 and simulated power loss against the `crash_writer` example (whose
//! stdout interface is documented at the top of `examples/crash_writer.rs`). Every sequence
//! number the writer printed (so acknowledged as durable) must be in the reopened log, byte for
//! byte, in order and without gaps, and every record after it must be valid.
//!
//! `long_kill_loop` (ignored; `cargo xtask test --long`) runs many more cycles.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use bytes::Bytes;
use ferry_persist::{Log, LogOptions};
use ferry_wire::{Header, Message};

/// Must match `frame_len` in examples/crash_writer.rs.
fn frame_len(seq: u64) -> usize {
    100 + (seq.wrapping_mul(2_654_435_761) % 3996) as usize
}

/// Must match `frame` in examples/crash_writer.rs.
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

/// Must match `message` in examples/crash_writer.rs.
fn message(seq: u64) -> Message {
    Message::new(
        Header::from_serde(&("crash", seq)).unwrap(),
        vec![frame(seq)],
    )
}

/// A small deterministic random number generator.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("persist-crash-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The `crash_writer` example binary of this build profile, built once if it is missing.
fn writer_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test runs from <target>/<profile>/deps/; examples are in <target>/<profile>/examples/.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let binary = profile_dir
            .join("examples")
            .join(format!("crash_writer{}", std::env::consts::EXE_SUFFIX));
        if !binary.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "ferry-persist", "--example", "crash_writer"])
                .status()
                .unwrap();
            assert!(status.success(), "building the crash_writer example failed");
        }
        assert!(binary.exists(), "no crash_writer at {}", binary.display());
        binary
    })
}

struct Writer {
    child: Child,
    lines: BufReader<ChildStdout>,
}

impl Writer {
    fn start(dir: &Path, policy: &str, segment_bytes: u64) -> Writer {
        let mut child = Command::new(writer_binary())
            .arg(dir)
            .args(["--policy", policy])
            .args(["--segment-bytes", &segment_bytes.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap());
        Writer { child, lines }
    }

    /// The next acknowledged sequence number.
    fn next_seq(&mut self) -> u64 {
        let mut line = String::new();
        let n = self.lines.read_line(&mut line).unwrap();
        if n == 0 {
            let status = self.child.wait().unwrap();
            panic!("crash_writer ended ({status}) instead of printing");
        }
        line.trim_end().parse().unwrap()
    }

    /// SIGKILL (on unix) and reap.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// The last segment file (the one with the highest first sequence number) and its size.
fn last_segment(dir: &Path) -> (PathBuf, u64) {
    let path = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .expect("a segment");
    let len = std::fs::metadata(&path).unwrap().len();
    (path, len)
}

/// Reopens the log and checks it holds records 1..=n with n >= `acked`, each exactly as the
/// writer made it; returns n.
fn check(dir: &Path, acked: u64, cycle: u64) -> u64 {
    let (log, recovery) = Log::open(dir, LogOptions::default())
        .unwrap_or_else(|e| panic!("cycle {cycle}: reopening failed: {e}"));
    assert!(recovery.skipped.is_empty(), "cycle {cycle}: {recovery:?}");
    let records = log.records().unwrap();
    let n = records.len() as u64;
    assert!(
        n >= acked,
        "cycle {cycle}: {n} records survived, but {acked} were acknowledged"
    );
    assert_eq!(recovery.records, n, "cycle {cycle}");
    for (i, record) in records.iter().enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(record.seq, seq, "cycle {cycle}: a gap or disorder");
        assert_eq!(u64::from(record.kind), seq % 5, "cycle {cycle}: seq {seq}");
        assert!(
            record.message == message(seq),
            "cycle {cycle}: record {seq} differs"
        );
    }
    assert_eq!(log.next_seq(), n + 1);
    n
}

/// Kills the writer `cycles` times, at random points, reusing one log for 100 cycles at a time;
/// after each kill the log must hold everything acknowledged in every cycle so far.
fn kill_loop(test: &str, cycles: u64) {
    let dir = scratch(test);
    let mut acked = 0;
    for cycle in 0..cycles {
        if cycle > 0 && cycle.is_multiple_of(100) {
            // A fresh log now and then, so long runs do not reread an ever larger one.
            std::fs::remove_dir_all(&dir).unwrap();
            acked = 0;
        }
        let mut rng = XorShift::new(cycle + 1);
        let never = cycle % 4 == 3;
        let (policy, lines) = if never {
            ("never", rng.range(1, 250))
        } else {
            ("always", rng.range(1, 20))
        };
        // Small segments now and then, so kills land around rotations too.
        let segment_bytes = if cycle % 3 == 0 { 16 << 10 } else { 64 << 20 };
        let mut writer = Writer::start(&dir, policy, segment_bytes);
        for _ in 0..lines {
            let seq = writer.next_seq();
            assert_eq!(seq, acked + 1, "cycle {cycle}: the writer skipped a number");
            acked = seq;
        }
        writer.kill();
        let n = check(&dir, acked, cycle);
        // What survived past the acknowledgements is durable now (recovery synced it).
        acked = n;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_loop_100() {
    let cycles = if std::env::var_os("FERRY_LONG").is_some() {
        2000
    } else {
        100
    };
    kill_loop("kill", cycles);
}

#[test]
#[ignore = "long: thousands of kill -9 cycles"]
fn long_kill_loop() {
    kill_loop("long-kill", 3000);
}

/// Power loss: after the kill, the last segment is cut anywhere at or after the size it had
/// (seen from outside) when the last acknowledgement was read, and sometimes garbage follows.
#[test]
fn power_loss_loop() {
    let dir = scratch("power");
    let mut acked = 0;
    for cycle in 0..30 {
        let mut rng = XorShift::new(1000 + cycle);
        let policy = if cycle % 3 == 2 { "never" } else { "always" };
        let lines = if policy == "never" {
            rng.range(1, 250)
        } else {
            rng.range(1, 20)
        };
        let mut writer = Writer::start(&dir, policy, 64 << 20);
        let mut observed = None;
        for _ in 0..lines {
            let seq = writer.next_seq();
            assert_eq!(seq, acked + 1, "cycle {cycle}: the writer skipped a number");
            acked = seq;
            // The writer printed `seq` after fdatasync: this much of this file is durable.
            observed = Some(last_segment(&dir));
        }
        writer.kill();
        let (observed_path, observed_len) = observed.unwrap();
        let (path, len) = last_segment(&dir);
        // If a new segment was started since, nothing acknowledged is in it.
        let floor = if path == observed_path {
            observed_len
        } else {
            0
        };
        assert!(len >= floor);
        let cut = rng.range(floor, len);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.set_len(cut).unwrap();
        if rng.next().is_multiple_of(2) {
            let garbage: Vec<u8> = (0..rng.range(1, 300)).map(|_| rng.next() as u8).collect();
            (&file).write_all(&garbage).unwrap();
        }
        drop(file);
        acked = check(&dir, acked, cycle);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
