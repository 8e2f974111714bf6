//! `pontoon inspect --dialect dask` on a message distributed 2026.8's TCP comm wrote
//! (`tests/data/dask-put.bin`: `{"op": "put", "x": to_serialize(np.arange(3, dtype="<i4")),
//! "s": {1}, "e": <an error-family object saying "boom">, "b": to_serialize(b"hi")}`): its exact
//! JSON; and one-line errors, with a non-zero exit, for a truncated file, trailing bytes and a
//! frame count past the limit.

use std::path::Path;
use std::process::{Command, Output};

#[path = "../../pontoon-persist/tests/support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::at(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cli-inspect-dask-{test}-{}", std::process::id())),
    )
}

fn inspect(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pontoon"))
        .args(["inspect", "--dialect", "dask"])
        .arg(file)
        .output()
        .unwrap()
}

fn fixture() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dask-put.bin")).unwrap()
}

#[test]
fn a_dask_message_prints_as_the_json_tree() {
    let dir = scratch("json");
    let file = dir.join("put.bin");
    std::fs::write(&file, fixture()).unwrap();
    let output = inspect(&file);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim_end(),
        concat!(
            r#"{"t":"dict","items":["#,
            r#"[{"t":"str","v":"op"},{"t":"str","v":"put"}],"#,
            r#"[{"t":"str","v":"x"},{"t":"ndarray","dtype":"<i4","shape":[3],"strides":[4],"#,
            r#""sha256_c_order":"ad5dc1478de06a4c2728ea528bd9361a4b945e92a414bf4d180cedaaeaa5f4cc"}],"#,
            r#"[{"t":"str","v":"s"},{"t":"set","items":[{"t":"int","v":"1"}]}],"#,
            r#"[{"t":"str","v":"e"},{"t":"exception","type":"TypeError","msg":"boom"}],"#,
            r#"[{"t":"str","v":"b"},{"t":"bytes","len":2,"#,
            r#""sha256":"8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"}]]}"#
        )
    );
}

#[test]
fn malformed_messages_fail_with_one_line() {
    let dir = scratch("errors");
    let file = dir.join("bad.bin");
    let check = |bytes: &[u8], wanted: &str| {
        std::fs::write(&file, bytes).unwrap();
        let output = inspect(&file);
        assert_eq!(output.status.code(), Some(2));
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(wanted), "{stderr}");
    };
    let message = fixture();
    check(
        &message[..message.len() - 1],
        "the input ends after 579 bytes, inside a message of 580 bytes",
    );
    let mut longer = message.clone();
    longer.push(0);
    check(&longer, "1 bytes follow the message");
    let mut count = 16u64.to_le_bytes().to_vec();
    count.extend_from_slice(&(1u64 << 63).to_le_bytes());
    check(&count, "frames, more than the limit of");
    let mut placeholder = message.clone();
    // `{"__Serialized__": 1}` -> 9: past the message's 7 frames.
    let at = placeholder
        .windows(15)
        .position(|w| w == b"__Serialized__\x01")
        .unwrap();
    placeholder[at + 14] = 9;
    check(
        &placeholder,
        "placeholder points to frame 9, but the message has 7 frames",
    );
}
