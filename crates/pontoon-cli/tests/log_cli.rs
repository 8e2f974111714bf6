//! `pontoon log verify` and `pontoon log dump --json` on a log written with the library, and
//! `verify` refusing a corrupted one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bytes::Bytes;
use pontoon::persist::{Log, LogOptions};
use pontoon::wire::{Header, Message};

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-log-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
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
    bytes[16 + 40] ^= 0xFF;
    std::fs::write(&segment, &bytes).unwrap();

    let out = pontoon(&["log", "verify"], &dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("corrupt log"), "{stderr}");
    assert!(stderr.contains("offset 16"), "{stderr}");
    // Nothing was cut or rewritten.
    assert_eq!(std::fs::read(&segment).unwrap(), bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_refuses_a_missing_directory() {
    let dir = scratch("missing");
    let out = pontoon(&["log", "verify"], &dir);
    assert!(!out.status.success());
    assert!(!dir.exists(), "verify created a log");
}
