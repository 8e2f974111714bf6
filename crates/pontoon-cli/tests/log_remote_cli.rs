//! `pontoon log verify|dump` on an `s3://` remote, run as the built binary against a real
//! SeaweedFS server: what the newest manifest names is checked, credentials come from the AWS
//! environment variables and the endpoint from `--endpoint`, and the remote is never written.

#[path = "../../pontoon-persist/tests/support/seaweed.rs"]
#[allow(
    dead_code,
    reason = "pontoon-persist's server support; this test never kills or restarts the server"
)]
mod seaweed;

use std::path::Path;
use std::process::{Command, Output};

use pontoon::persist::{Durable, DurableOptions, Remote};
use seaweed::Seaweed;

#[path = "../../pontoon-persist/tests/support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::at(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cli-log-remote-{test}-{}", std::process::id())),
    )
}

/// Runs `pontoon log <args> <url> --endpoint <endpoint>` with the given keys in the AWS
/// environment variables (and none of the caller's).
fn pontoon(args: &[&str], url: &str, endpoint: &str, keys: (&str, &str)) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pontoon"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .arg("log")
        .args(args)
        .arg(url)
        .args(["--endpoint", endpoint])
        .env("AWS_ACCESS_KEY_ID", keys.0)
        .env("AWS_SECRET_ACCESS_KEY", keys.1)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap()
}

fn add(total: &mut u64, n: &u64) {
    *total += n;
}

/// Every object under the prefix with its size: what "never written" is checked against.
fn listing(remote: &Remote) -> Vec<(String, u64)> {
    remote.list().unwrap()
}

#[test]
fn seaweedfs_log_verify_and_dump_read_a_remote() {
    let server = Seaweed::start("cli-log");
    let base = scratch("verify");
    let url = server.url("cli");
    let remote = || Remote::open(&url, server.good_options()).unwrap();
    let mut options = DurableOptions::default();
    options
        .registry
        .register_type::<u64>("test.Amount")
        .unwrap();
    options.log.segment_bytes = 4096;
    options.remote = Some(remote());
    let mut state = Durable::open(base.join("state"), || 0, add, options).unwrap();
    for n in 1..=100 {
        state.apply(&n).unwrap();
    }
    state.snapshot().unwrap();
    for n in 101..=180 {
        state.apply(&n).unwrap();
    }
    // Sealed segments, the snapshot, and the active segment's tail up to record 180.
    let manifest = state.wait_remote(180).unwrap();
    assert_eq!(manifest.next_seq, 181);
    assert!(!manifest.tail.is_empty() && !manifest.segments.is_empty());
    drop(state);
    let before = listing(&remote());

    let endpoint = format!("http://127.0.0.1:{}", server.s3_port);
    let keys = (seaweed::ACCESS_KEY, seaweed::SECRET_KEY);
    let out = pontoon(&["verify"], &url, &endpoint, keys);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("seqs:     "), "{stdout}");
    assert!(stdout.contains("..=180\n"), "{stdout}");
    assert!(stdout.ends_with("ok\n"), "{stdout}");
    assert!(
        stderr.contains(&format!("manifest generation {}", manifest.generation)),
        "{stderr}"
    );

    let out = pontoon(&["dump", "--json"], &url, &endpoint, keys);
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
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs.last(), Some(&180));
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");

    // Wrong keys: refused, exit 2, and said so.
    let out = pontoon(&["verify"], &url, &endpoint, (seaweed::ACCESS_KEY, "wrong"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused"), "{stderr}");
    // A prefix nothing was uploaded to: exit 2, and said so.
    let out = pontoon(&["verify"], &server.url("empty"), &endpoint, keys);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no manifest"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Read only: the remote holds exactly what it held, byte counts and all.
    assert_eq!(listing(&remote()), before);
    std::fs::remove_dir_all(&base).unwrap();
}
