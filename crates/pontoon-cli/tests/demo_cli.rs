//! `pontoon demo`, the README's main job, run whole as a user runs it (with a small payload):
//! every part runs, says what it shows, and nothing it promises not to copy is copied.

#[path = "../../pontoon-persist/tests/support/seaweed.rs"]
#[allow(
    dead_code,
    reason = "pontoon-persist's server support; this test never kills or restarts the server"
)]
mod seaweed;

use std::process::Command;

#[test]
fn the_demo_runs_every_part_and_copies_nothing_it_says_it_does_not() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_pontoon"));
    demo.args(["demo", "--payload-mib", "4"]);
    // With the venv (as `cargo xtask test` runs it), the remote part runs against a real
    // S3-compatible server, named to the demo as `cargo xtask demo` names it.
    let server = std::env::var_os("PONTOON_PYTHON").map(|_| seaweed::Seaweed::start("demo"));
    if let Some(server) = &server {
        for (key, value) in server.good_options() {
            demo.env(key.to_ascii_uppercase(), value);
        }
        demo.env("PONTOON_REMOTE", server.url("demo"));
    }
    let output = demo.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for part in [
        "through pontoon-wire",
        "through pontoon-family",
        "an Arrow RecordBatch",
        "through pontoon-transport",
        "through pontoon-persist",
        "through pontoon-persist's remote",
        "through pontoon-store",
        "through pontoon-dask",
    ] {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with("pontoon demo:") && line.contains(part)),
            "no demo part {part:?} in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("a view of the daemon's memory (no copy)"),
        "{stdout}"
    );
    // With the venv's Python (as `cargo xtask test` runs it), the Dask part runs; without, it
    // says why it was skipped.
    assert!(
        stdout.contains("rust gathers") || stdout.contains("skipped           no Python"),
        "{stdout}"
    );
    if std::env::var_os("PONTOON_PYTHON").is_some() {
        assert!(stdout.contains("values checked, "), "{stdout}");
        assert!(stdout.contains("python            gathered"), "{stdout}");
    }
    // With the server, the remote part restores the state onto a fresh directory, twice;
    // without, it says why it is skipped.
    if server.is_some() {
        assert!(
            stdout.contains("identical to a replay from scratch")
                && stdout.contains("nothing acknowledged was lost\n"),
            "{stdout}"
        );
    } else {
        assert!(
            stdout.contains("skipped           PONTOON_REMOTE is not set"),
            "{stdout}"
        );
    }
    assert!(!stdout.contains("COPIED"), "{stdout}");
    assert!(!stdout.contains("copied: YES"), "{stdout}");
    // The store's spilling step: objects spilled under a small capacity, all back, files gone.
    assert!(stdout.contains("  spilling "), "{stdout}");
    assert!(
        stdout.contains("all 24 objects got back") && stdout.contains("24 of them views"),
        "{stdout}"
    );
    assert!(stdout.contains("deleted: 0 spill files left"), "{stdout}");
    // The metrics part: what the persist and store parts did in this process was recorded.
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("pontoon demo:") && line.contains("metrics facade")),
        "{stdout}"
    );
    let first_number = |prefix: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{stdout}"));
        line[prefix.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number after {prefix:?}: {line}"))
    };
    assert!(first_number("  persist           ") > 0.0, "{stdout}");
    assert!(first_number("  store             ") > 0.0, "{stdout}");
}
