//! `pontoon log verify` and `pontoon log dump --json` on a log written with the library, and
//! `verify` refusing a corrupted one.

use std::path::Path;
use std::process::{Command, Output};

use bytes::Bytes;
use pontoon::persist::{Log, LogOptions};
use pontoon::wire::{Header, Message};

#[path = "../../pontoon-persist/tests/support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::unmade(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cli-log-{test}-{}", std::process::id())),
    )
}

/// Writes records 1..=5: kind `seq % 3`, header `{"op": "put", "n": seq}`, and `seq % 3`
/// frames of `10 * seq` bytes.
fn write_log(dir: &Path) {
    let (log, _) = Log::open(dir, LogOptions::default()).unwrap();
    for seq in 1..=5u64 {
        let header = Header::from_value(&rmpv::Value::Map(vec![
            ("op".into(), "put".into()),
            ("n".into(), seq.into()),
        ]));
        let frames = (0..seq % 3)
            .map(|_| Bytes::from(vec![seq as u8; 10 * seq as usize]))
            .collect();
        assert_eq!(
            log.append((seq % 3) as u32, &Message::new(header, frames))
                .unwrap(),
            seq
        );
    }
}

fn pontoon(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pontoon"))
        .args(args)
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn verify_and_dump_json() {
    let dir = scratch("ok");
    write_log(&dir);

    let out = pontoon(&["log", "verify"], &dir);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("segments: 1"), "{stdout}");
    assert!(
        stdout.contains("format:   version 2 (1 segment)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("records:  5"), "{stdout}");
    assert!(stdout.contains("cut:      none"), "{stdout}");

    let out = pontoon(&["log", "dump", "--json"], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for (i, line) in lines.iter().enumerate() {
        let seq = i as u64 + 1;
        let frames: Vec<u64> = (0..seq % 3).map(|_| 10 * seq).collect();
        assert_eq!(
            *line,
            serde_json::json!({
                "v": 1,
                "seq": seq,
                "kind": seq % 3,
                "frames": frames,
                "header": {"op": "put", "n": seq},
            })
        );
    }

    let out = pontoon(&["log", "dump"], &dir);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 5);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .starts_with("1 kind=1 frames=1 header="),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_fails_on_corruption() {
    let dir = scratch("corrupt");
    write_log(&dir);
    // Flip a byte inside record 1 (records 2..=5 follow it, so this is not a torn tail).
    let segment = dir.join(format!("{:020}.log", 1));
    let mut bytes = std::fs::read(&segment).unwrap();
    // Format version 2: a 64-byte segment header, then record 1's 64-byte header and payload.
    bytes[64 + 70] ^= 0xFF;
    std::fs::write(&segment, &bytes).unwrap();

    let out = pontoon(&["log", "verify"], &dir);
    assert_eq!(out.status.code(), Some(1), "damage exits 1");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("corrupt log"), "{stderr}");
    assert!(stderr.contains("offset 64"), "{stderr}");
    // Nothing was cut or rewritten.
    assert_eq!(std::fs::read(&segment).unwrap(), bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_refuses_a_missing_directory() {
    let dir = scratch("missing");
    let out = pontoon(&["log", "verify"], &dir);
    assert_eq!(out.status.code(), Some(2), "could not check: exits 2");
    assert!(!dir.exists(), "verify created a log");
    // The whole chain: what was done, then the operating system's reason.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("caused by: No such file"), "{stderr}");
}

/// Every entry of `dir` with its bytes.
fn contents(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn verify_and_dump_leave_a_torn_log_byte_for_byte_unchanged() {
    let dir = scratch("torn");
    write_log(&dir);
    let segment = dir.join(format!("{:020}.log", 1));
    let mut bytes = std::fs::read(&segment).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[0x5A; 45]); // a write cut short
    std::fs::write(&segment, &bytes).unwrap();
    let before = contents(&dir);

    let out = pontoon(&["log", "verify"], &dir);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("records:  5"), "{stdout}");
    assert!(
        stdout.contains(&format!("a torn tail of 45 bytes at offset {whole}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("the next writable open of the log cuts it"),
        "{stdout}"
    );
    let out = pontoon(&["log", "dump"], &dir);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 5);
    assert_eq!(contents(&dir), before, "verify or dump changed the log");
}

/// A torn log of pontoon 0.1 (format version 1, a committed fixture): verified and dumped as it
/// is, with the upgrade its next writable open makes announced, and not a byte changed.
#[test]
fn verify_and_dump_read_a_torn_v1_log_and_leave_it_unchanged() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pontoon-persist/tests/fixtures/v1/log-torn-tail");
    let dir = scratch("v1");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let before = contents(&dir);
    let out = pontoon(&["log", "verify"], &dir);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("records:  40"), "{stdout}");
    assert!(
        stdout.contains("format:   version 1 (15 segments); the next writable open goes on"),
        "{stdout}"
    );
    assert!(stdout.contains("a torn tail of"), "{stdout}");
    let out = pontoon(&["log", "dump", "--json"], &dir);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 40);
    assert_eq!(contents(&dir), before, "verify or dump changed the log");
}

#[test]
fn verify_and_dump_refuse_a_directory_without_a_log_and_create_nothing() {
    let dir = scratch("not-a-log");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"hello").unwrap();
    for command in ["verify", "dump"] {
        let out = pontoon(&["log", command], &dir);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("holds no pontoon log"), "{stderr}");
    }
    assert_eq!(contents(&dir).len(), 1, "something was created");
}

#[test]
fn bad_usage_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_pontoon"))
        .args(["log", "verify", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_on_a_fifo_named_like_a_segment_reports_damage_instead_of_hanging() {
    let dir = scratch("fifo");
    write_log(&dir);
    let fifo = dir.join(format!("{:020}.log", 6));
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_pontoon"))
        .args(["log", "verify"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Not a time limit on verify: a guard so that a hang fails the test instead of stalling it.
    let mut waited = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited > 1200 {
            child.kill().unwrap();
            panic!("pontoon log verify hangs on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    };
    assert_eq!(status.code(), Some(1));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

#[test]
fn dump_prints_a_huge_header_as_its_length_only() {
    let dir = scratch("huge-header");
    {
        let (log, _) = Log::open(&dir, LogOptions::default()).unwrap();
        let items: Vec<rmpv::Value> = (0..100_000).map(|_| rmpv::Value::Nil).collect();
        let header = Header::from_value(&rmpv::Value::Array(items));
        log.append(0, &Message::new(header, vec![])).unwrap();
    }
    let out = pontoon(&["log", "dump", "--json"], &dir);
    assert_eq!(out.status.code(), Some(0));
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(line["header"], serde_json::Value::Null);
    assert!(line["header_bytes"].as_u64().unwrap() > 100_000);
    let out = pontoon(&["log", "dump", "--max-header-bytes", "1000000"], &dir);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap().contains("[nil, nil"));
}
