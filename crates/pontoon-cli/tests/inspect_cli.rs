//! `pontoon inspect --format pickle` on pickles written by hand in Python's formats: the exact
//! JSON of a value with sharing and a cycle, out-of-band buffers, and one-line errors with the
//! byte offset for a refused global and a truncated file.

use std::path::Path;
use std::process::{Command, Output};

#[path = "../../pontoon-persist/tests/support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::at(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cli-inspect-{test}-{}", std::process::id())),
    )
}

fn inspect(args: &[&Path]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pontoon"));
    command.args(["inspect", "--format", "pickle"]).arg(args[0]);
    for buffer in &args[1..] {
        command.arg("--buffer").arg(buffer);
    }
    command.output().unwrap()
}

#[test]
fn a_pickle_prints_as_the_json_tree() {
    let dir = scratch("json");
    // l = []; l.append(l); pickle.dumps([l, l, 1.5, -(2**70), True, None], protocol=2)
    let file = dir.join("value.pkl");
    std::fs::write(
        &file,
        b"\x80\x02]q\x00(]q\x01h\x01ah\x01G?\xf8\x00\x00\x00\x00\x00\x00\x8a\t\x00\x00\x00\x00\x00\x00\x00\x00\xc0\x88Ne.",
    )
    .unwrap();
    let output = inspect(&[&file]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        concat!(
            r#"{"t":"list","items":[{"t":"list","items":[{"t":"ref"}]},{"t":"list","items":[{"t":"ref"}]},"#,
            r#"{"t":"float","v":"0x1.8000000000000p+0"},{"t":"int","v":"-1180591620717411303424"},"#,
            r#"{"t":"bool","v":true},{"t":"none"}]}"#,
            "\n"
        )
    );
}

#[test]
fn out_of_band_buffers_are_read_in_order() {
    let dir = scratch("buffers");
    // [NEXT_BUFFER READONLY_BUFFER, NEXT_BUFFER] at protocol 5.
    let file = dir.join("oob.pkl");
    std::fs::write(&file, b"\x80\x05(\x97\x98\x97l.").unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&a, b"").unwrap();
    std::fs::write(&b, b"abc").unwrap();
    let output = inspect(&[&file, &a, &b]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim_end(),
        concat!(
            r#"{"t":"list","items":[{"t":"bytes","len":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},"#,
            r#"{"t":"bytes","kind":"bytearray","len":3,"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]}"#
        )
    );
    // One buffer short: an error naming the opcode's offset.
    let output = inspect(&[&file, &a]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("NEXT_BUFFER at byte 5"), "{stderr}");
}

#[test]
fn refused_and_truncated_files_fail_with_one_line_naming_the_offset() {
    let dir = scratch("errors");
    let file = dir.join("evil.pkl");
    std::fs::write(
        &file,
        b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85R.",
    )
    .unwrap();
    let output = inspect(&[&file]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("refusing to load os.system (not on the allow-list) at byte 2"),
        "{stderr}"
    );
    std::fs::write(&file, b"\x80\x02X\x05\x00\x00\x00ab").unwrap();
    let output = inspect(&[&file]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("length 5 at byte 2 is more than the 2 bytes there are"),
        "{stderr}"
    );
}
