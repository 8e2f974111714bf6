//! Crash tests: kill -9 and simulated power loss against the `crash_writer` example (whose
//! stdout interface is documented at the top of `examples/crash_writer/main.rs`), under each of its
//! policies (`always`, `group` with concurrent appenders, `never` with explicit syncs). Every
//! sequence number the writer printed (so acknowledged as durable) must be in the reopened log,
//! byte for byte, in order and without gaps, and every record after it must be valid.
//!
//! `long_kill_loop` (ignored; `cargo xtask test --long`) runs many more cycles. The kill and
//! power-loss loops also run on a log of format version 1 (pontoon 0.1), which the writer's
//! first open upgrades by going on in a version 2 segment.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use pontoon_persist::{Log, LogOptions};

// The writer's records, shared with it: ids, frames, messages.
#[path = "../examples/crash_writer/record.rs"]
mod record;
use record::{GROUP_IDS, message};

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

#[path = "support/package_vars.rs"]
mod package_vars;
use package_vars::is_package_variable;

#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::unmade(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("persist-crash-{test}-{}", std::process::id())),
    )
}

/// The `crash_writer` example binary of this build profile, built (or brought up to date)
/// once per test process: a stale binary would test old code.
///
/// The build must be the one `cargo test --workspace` or `cargo nextest run --workspace` has
/// just made, so that it is a no-op there. Two things would make it a second build of much of
/// the dependency tree, which on a nearly full CI disk ran out of space:
/// - `-p pontoon-persist` alone unifies the dependencies' features over this package only, so
///   most crates get other hashes; `--workspace` unifies them as the test run did.
/// - The package variables cargo gives this test are watched by ring's build script, so
///   inherited they rebuild ring and all above it (see `package_vars`).
fn writer_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test runs from <target>/<profile>/deps/; examples are in <target>/<profile>/examples/.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let binary = profile_dir
            .join("examples")
            .join(format!("crash_writer{}", std::env::consts::EXE_SUFFIX));
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--workspace", "--example", "crash_writer"]);
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(is_package_variable) {
                build.env_remove(&key);
            }
        }
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build.status().unwrap();
        assert!(status.success(), "building the crash_writer example failed");
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
        Writer::start_under(Command::new(writer_binary()), dir, policy, segment_bytes)
    }

    /// Starts the writer through `command`: the writer binary itself, or a tracer that runs
    /// it (the writer's path then among `command`'s arguments already).
    fn start_under(mut command: Command, dir: &Path, policy: &str, segment_bytes: u64) -> Writer {
        let mut child = command
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

    /// Reads the next acknowledgement and returns the highest sequence number acknowledged so
    /// far. The single-threaded policies acknowledge in order, with no number skipped.
    fn acknowledge(&mut self, policy: &str, acked: u64, cycle: u64) -> u64 {
        let seq = self.next_seq();
        if policy == "group" {
            assert!(seq > 0, "cycle {cycle}");
            acked.max(seq)
        } else {
            assert_eq!(seq, acked + 1, "cycle {cycle}: the writer skipped a number");
            seq
        }
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
/// writer made it (from the id in its header; ids from the single-threaded policies are the
/// sequence number); returns n.
fn check(dir: &Path, acked: u64, cycle: u64) -> u64 {
    let (log, recovery) = Log::open(dir, LogOptions::default())
        .unwrap_or_else(|e| panic!("cycle {cycle}: reopening failed: {e}"));
    assert!(recovery.skipped.is_empty(), "cycle {cycle}: {recovery:?}");
    let records = log.read_all().unwrap();
    let n = records.len() as u64;
    assert!(
        n >= acked,
        "cycle {cycle}: {n} records survived, but {acked} were acknowledged"
    );
    assert_eq!(recovery.records, n, "cycle {cycle}");
    for (i, record) in records.iter().enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(record.seq, seq, "cycle {cycle}: a gap or disorder");
        let (_, id): (String, u64) = record.message.header.deserialize().unwrap();
        assert!(
            id >= GROUP_IDS || id == seq,
            "cycle {cycle}: record {seq} holds id {id}"
        );
        assert_eq!(u64::from(record.kind), id % 5, "cycle {cycle}: seq {seq}");
        assert!(
            record.message == message(id),
            "cycle {cycle}: record {seq} differs"
        );
    }
    assert_eq!(log.next_seq(), n + 1);
    n
}

/// How a crash loop's log starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// No log: the writer creates it.
    Empty,
    /// A log of format version 1 holding records 1..=[`V1_RECORDS`], written as pontoon 0.1
    /// wrote them (a 16-byte segment header, 32-byte record headers, no padding) and synced.
    V1,
}

/// Records in the version 1 log a loop may start from.
const V1_RECORDS: u64 = 50;

/// Makes the log a loop starts from in `dir`; returns how many records it holds (all durable).
fn prepare(dir: &Path, start: Start) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    if start == Start::Empty {
        return 0;
    }
    let mut segment = b"\xF0FRYLOG\x01".to_vec();
    segment.extend_from_slice(&1u64.to_le_bytes());
    for seq in 1..=V1_RECORDS {
        let payload = pontoon_wire::Encoder::default()
            .encode(&message(seq))
            .unwrap()
            .to_bytes();
        let mut header = [0u8; 32];
        header[4..8].copy_from_slice(&((seq % 5) as u32).to_le_bytes());
        header[8..16].copy_from_slice(&seq.to_le_bytes());
        header[16..24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..]), &payload);
        header[..4].copy_from_slice(&crc.to_le_bytes());
        segment.extend_from_slice(&header);
        segment.extend_from_slice(&payload);
    }
    let path = dir.join(format!("{:020}.log", 1));
    let file = std::fs::File::create(&path).unwrap();
    (&file).write_all(&segment).unwrap();
    file.sync_all().unwrap();
    std::fs::File::open(dir).unwrap().sync_all().unwrap();
    V1_RECORDS
}

/// Kills the writer `cycles` times, at random points, reusing one log for 100 cycles at a time;
/// after each kill the log must hold everything acknowledged in every cycle so far.
fn kill_loop(test: &str, cycles: u64, start: Start) {
    let dir = scratch(test);
    let mut acked = prepare(&dir, start);
    for cycle in 0..cycles {
        if cycle > 0 && cycle.is_multiple_of(100) {
            // A fresh log now and then, so long runs do not reread an ever larger one.
            std::fs::remove_dir_all(&dir).unwrap();
            acked = prepare(&dir, start);
        }
        let mut rng = XorShift::new(cycle + 1);
        let policy = ["always", "group", "always", "never"][(cycle % 4) as usize];
        // Small segments now and then, so kills land around rotations too.
        let segment_bytes = if cycle % 3 == 0 { 16 << 10 } else { 64 << 20 };
        let mut writer = Writer::start(&dir, policy, segment_bytes);
        for _ in 0..lines(policy, &mut rng) {
            acked = writer.acknowledge(policy, acked, cycle);
        }
        writer.kill();
        let n = check(&dir, acked, cycle);
        // What survived past the acknowledgements is durable now (recovery synced it).
        acked = n;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// How many acknowledgements to wait for before a kill: the policies that sync in batches
/// acknowledge faster.
fn lines(policy: &str, rng: &mut XorShift) -> u64 {
    match policy {
        "always" => rng.range(1, 20),
        _ => rng.range(1, 250),
    }
}

#[test]
fn kill_loop_100() {
    let cycles = if std::env::var_os("PONTOON_LONG").is_some() {
        2000
    } else {
        100
    };
    kill_loop("kill", cycles, Start::Empty);
}

#[test]
fn kill_loop_on_an_upgraded_v1_log() {
    kill_loop("kill-v1", 40, Start::V1);
}

#[test]
#[ignore = "long: thousands of kill -9 cycles"]
fn long_kill_loop() {
    kill_loop("long-kill", 3000, Start::Empty);
}

/// What `strace` saw a writer do to the log's files: bytes written to each, how much of each
/// an `fsync`/`fdatasync` that returned 0 made durable, and which new files a directory
/// `fsync` made durable entries of. Observed from outside the writer, by the kernel's account
/// of its system calls, not by its own claims.
#[derive(Default, Debug)]
struct Trace {
    written: HashMap<PathBuf, u64>,
    durable: HashMap<PathBuf, u64>,
    /// Files that did not exist when the writer started, and whether a directory sync came
    /// after their first write.
    created: HashMap<PathBuf, bool>,
}

impl Trace {
    /// Replays an `strace -f -y` output. `initial` holds the segment sizes before the writer
    /// started (all durable: the last open synced them).
    fn replay(text: &str, dir: &Path, initial: &HashMap<PathBuf, u64>) -> Trace {
        let mut trace = Trace {
            written: initial.clone(),
            durable: initial.clone(),
            created: HashMap::new(),
        };
        // A call split by another thread's: pid -> (call, path, written at entry).
        let mut unfinished: HashMap<&str, (String, PathBuf, u64)> = HashMap::new();
        for line in text.lines() {
            let Some((pid, rest)) = line.split_once(' ') else {
                continue;
            };
            let rest = rest.trim_start();
            let (call, path, entry, result) = if let Some(resumed) = rest.strip_prefix("<... ") {
                let Some((call, path, entry)) = unfinished.remove(pid) else {
                    continue;
                };
                assert!(resumed.starts_with(&call), "{line}");
                (call, path, entry, result_of(rest))
            } else {
                let Some((call, args)) = rest.split_once('(') else {
                    continue;
                };
                let Some(path) = args
                    .split_once('<')
                    .and_then(|(_, p)| p.split_once('>'))
                    .map(|(p, _)| PathBuf::from(p))
                else {
                    continue;
                };
                let entry = trace.written.get(&path).copied().unwrap_or(0);
                if rest.ends_with("<unfinished ...>") {
                    unfinished.insert(pid, (call.to_string(), path, entry));
                    continue;
                }
                (call.to_string(), path, entry, result_of(rest))
            };
            let Some(result) = result else { continue };
            let is_segment = path.extension().is_some_and(|e| e == "log");
            match call.as_str() {
                "write" | "writev" | "pwrite64" if is_segment && result > 0 => {
                    if !initial.contains_key(&path) {
                        trace.created.entry(path.clone()).or_insert(false);
                    }
                    *trace.written.entry(path).or_insert(0) += result as u64;
                }
                "fsync" | "fdatasync" if result == 0 && is_segment => {
                    let durable = trace.durable.entry(path).or_insert(0);
                    *durable = (*durable).max(entry);
                }
                "fsync" if result == 0 && path == dir => {
                    trace.created.values_mut().for_each(|linked| *linked = true);
                }
                _ => {}
            }
        }
        trace
    }
}

/// The return value at the end of an strace line (`... = 42`), if it is a number.
fn result_of(line: &str) -> Option<i64> {
    let (_, result) = line.rsplit_once(" = ")?;
    result.split_whitespace().next()?.parse().ok()
}

/// The sizes of the log's segment files.
fn segment_sizes(dir: &Path) -> HashMap<PathBuf, u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| {
            let len = std::fs::metadata(&p).unwrap().len();
            (p, len)
        })
        .collect()
}

/// `strace`, or a loud failure saying how to get it.
fn strace() -> &'static str {
    let found = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "power_loss_loop needs strace to observe fdatasync from outside the writer; \
         `cargo xtask test` installs it (apt-get install strace)"
    );
    "strace"
}

/// Power loss: the writer runs under strace; after a kill, every segment file is cut at, or
/// anywhere after, the size the last successful `fdatasync` on it made durable (by strace's
/// account of the writes before that call began), new segment files whose directory entry was
/// never synced are removed, and the last segment sometimes gets garbage. Every acknowledged
/// record must survive.
#[test]
#[cfg(target_os = "linux")]
fn power_loss_loop() {
    let cycles: u64 = if std::env::var_os("PONTOON_LONG").is_some() {
        300
    } else {
        30
    };
    power_loss_cycles(&scratch("power"), cycles, Start::Empty);
}

/// The power-loss loop on a log of pontoon 0.1: the first open upgrades it (a new version 2
/// segment, synced with the directory), power may fail around that too.
#[test]
#[cfg(target_os = "linux")]
fn power_loss_loop_on_an_upgraded_v1_log() {
    power_loss_cycles(&scratch("power-v1"), 20, Start::V1);
}

/// The power-loss loop on a log reached through a symbolic link (as when `target/` is one):
/// strace reports the resolved paths, which must still be recognised as the log's files.
#[test]
#[cfg(target_os = "linux")]
fn power_loss_through_a_symlinked_directory() {
    let real = scratch("power-real");
    std::fs::create_dir_all(&real).unwrap();
    let link = scratch("power-link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    power_loss_cycles(&link.join("log"), 4, Start::Empty);
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_dir_all(&real);
}

#[cfg(target_os = "linux")]
fn power_loss_cycles(dir: &Path, cycles: u64, start: Start) {
    let strace = strace();
    let trace_path = dir.with_extension("strace");
    // strace prints the paths the kernel resolved: compare like with like.
    std::fs::create_dir_all(dir).unwrap();
    let dir = std::fs::canonicalize(dir).unwrap();
    let mut acked = prepare(&dir, start);
    for cycle in 0..cycles {
        if cycle > 0 && cycle.is_multiple_of(100) {
            // A fresh log now and then, so long runs do not reread an ever larger one.
            std::fs::remove_dir_all(&dir).unwrap();
            acked = prepare(&dir, start);
        }
        let mut rng = XorShift::new(1000 + cycle);
        let policy = ["always", "group", "never"][(cycle % 3) as usize];
        // Small segments now and then, so power fails around rotations too.
        let segment_bytes: u64 = if cycle % 4 == 1 { 16 << 10 } else { 64 << 20 };
        let initial = segment_sizes(&dir);
        let mut traced = Command::new(strace);
        traced
            .args(["-f", "-qq", "-y", "-e", "signal=none", "-o"])
            .arg(&trace_path)
            .args(["-e", "trace=write,writev,pwrite64,fsync,fdatasync"])
            .arg(writer_binary());
        let mut writer = Writer::start_under(traced, &dir, policy, segment_bytes);
        for _ in 0..lines(policy, &mut rng) {
            acked = writer.acknowledge(policy, acked, cycle);
        }
        // Kill the traced writer (strace's child), then let strace finish its output.
        let tracer = writer.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{tracer}/task/{tracer}/children")).unwrap();
        let pid = children.split_whitespace().next().expect("the writer");
        let killed = Command::new("kill").args(["-KILL", pid]).status().unwrap();
        assert!(killed.success());
        writer.child.wait().unwrap();
        let text = std::fs::read_to_string(&trace_path).unwrap();
        let trace = Trace::replay(&text, &dir, &initial);
        assert!(
            trace.durable.values().any(|&d| d > 0),
            "cycle {cycle}: strace saw no sync: {text:.2000}"
        );

        let (last, _) = last_segment(&dir);
        for (path, len) in segment_sizes(&dir) {
            if trace.created.get(&path) == Some(&false) {
                // Its directory entry was never made durable: power loss may drop the file.
                std::fs::remove_file(&path).unwrap();
                continue;
            }
            let floor = trace.durable.get(&path).copied().unwrap_or(0).min(len);
            // Half the time exactly what was proven durable, the harshest loss allowed.
            let cut = if rng.next().is_multiple_of(2) {
                floor
            } else {
                rng.range(floor, len)
            };
            let file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            file.set_len(cut).unwrap();
            if path == last && rng.next().is_multiple_of(2) {
                let garbage: Vec<u8> = (0..rng.range(1, 300)).map(|_| rng.next() as u8).collect();
                (&file).write_all(&garbage).unwrap();
            }
        }
        acked = check(&dir, acked, cycle);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&trace_path);
}

/// A write that fails (the file size limit, `ulimit -f`, is reached: `EFBIG`) poisons the log:
/// under every policy the writer stops with the error, no appender waits forever for a sync
/// that will not come, and everything acknowledged is intact.
#[test]
#[cfg(target_os = "linux")]
fn a_failed_write_poisons_the_log_and_no_appender_hangs() {
    for policy in ["always", "group", "never"] {
        let dir = scratch(&format!("efbig-{policy}"));
        std::fs::create_dir_all(&dir).unwrap();
        // In 512-byte blocks (dash) or KiB (bash): 1000 blocks is hundreds of records either way.
        // SIGXFSZ is ignored, so the write fails with EFBIG instead of killing the writer.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("ulimit -f 1000; trap '' XFSZ; exec \"$0\" \"$@\"")
            .arg(writer_binary())
            .arg(&dir)
            .args(["--policy", policy])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut acked = 0;
        let mut line = String::new();
        while lines.read_line(&mut line).unwrap() > 0 {
            acked = acked.max(line.trim_end().parse::<u64>().unwrap());
            line.clear();
        }
        // stdout closed: the writer is ending. (A hang would stop the test here, loudly, under
        // nextest's timeout.)
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{policy}: {stderr}");
        assert!(
            stderr.contains("File too large") || stderr.contains("refuses writes"),
            "{policy}: {stderr}"
        );
        assert!(
            acked > 0,
            "{policy}: nothing was acknowledged before the limit"
        );
        check(&dir, acked, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
