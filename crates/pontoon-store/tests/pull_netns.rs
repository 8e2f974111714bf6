//! A pull across machines, as near as one host gets: two network namespaces made by the test,
//! joined by a veth pair, a store serving in one and a store pulling in the other, each a
//! process of its own (this test binary run again under `ip netns exec`). Needs root and `ip`;
//! without them the test says loudly that it was skipped, and why.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use pontoon_store::{ObjectId, Store, StoreOptions};
use pontoon_wire::{Header, Message};

/// The variable that makes this test binary act as a child process, and its role.
const CHILD: &str = "PONTOON_PULL_NETNS_CHILD";
/// Bytes of the object pulled across: several chunks.
const LEN: usize = 12 << 20;

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// Runs `ip` with `args`; an error says which command failed and what it printed.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The namespaces made so far, deleted when dropped (also when the test fails), which removes
/// the veth pair with them.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn add(&mut self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])?;
        self.0.push(name.to_owned());
        Ok(())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("cleaning up: {e}");
            }
        }
    }
}

/// A child process, killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Why this test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let euid = rustix::process::geteuid();
    if !euid.is_root() {
        return Some(format!(
            "it needs root to make network namespaces (running as uid {})",
            euid.as_raw()
        ));
    }
    match Command::new("ip").arg("-V").output() {
        Ok(output) if output.status.success() => None,
        Ok(_) => Some("`ip -V` failed: iproute2 is not usable".to_owned()),
        Err(e) => Some(format!("there is no `ip` command (iproute2): {e}")),
    }
}

/// This test binary run again as a child process in `role`, inside namespace `ns`.
fn child(ns: &str, role: &str, vars: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns])
        .arg(exe)
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in vars {
        command.env(key, value);
    }
    command
}

/// What `child` wrote to the file `told` (it writes a temporary file and renames it, so the
/// contents are whole once the file is there); fails if the child exits first.
fn told(child: &mut Child, told: &std::path::Path) -> String {
    // A bound on waiting for a hung child (ten minutes), not a measure of its speed.
    for _ in 0..60_000 {
        if let Ok(text) = std::fs::read_to_string(told) {
            return text.trim().to_owned();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the serving child exited ({status}) before telling its address");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the serving child told nothing in ten minutes");
}

#[test]
fn pull_across_two_network_namespaces_or_skip_loudly_without_root_or_ip() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    if let Some(why) = missing() {
        eprintln!(
            "SKIPPED pull_across_two_network_namespaces_or_skip_loudly_without_root_or_ip: {why}"
        );
        return;
    }
    let pid = std::process::id();
    let (serving, pulling) = (format!("pontoon-s{pid}"), format!("pontoon-p{pid}"));
    let (veth_s, veth_p) = (
        format!("pvs{}", pid % 100_000),
        format!("pvp{}", pid % 100_000),
    );
    let net = format!("10.231.{}", pid % 250);
    let (addr_s, addr_p) = (format!("{net}.1"), format!("{net}.2"));

    let mut namespaces = Namespaces(Vec::new());
    namespaces.add(&serving).unwrap();
    namespaces.add(&pulling).unwrap();
    ip(&[
        "link", "add", &veth_s, "netns", &serving, "type", "veth", "peer", "name", &veth_p,
        "netns", &pulling,
    ])
    .unwrap();
    for (ns, dev, addr) in [(&serving, &veth_s, &addr_s), (&pulling, &veth_p, &addr_p)] {
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]).unwrap();
        ip(&["-n", ns, "link", "set", dev, "up"]).unwrap();
        ip(&["-n", ns, "link", "set", "lo", "up"]).unwrap();
    }

    let tell = std::env::temp_dir().join(format!("pontoon-pull-netns-{pid}"));
    let _ = std::fs::remove_file(&tell);
    let mut server = Killed(
        child(
            &serving,
            "serve",
            &[
                ("PONTOON_PULL_LISTEN", format!("tcp://{addr_s}:0")),
                ("PONTOON_PULL_TELL", tell.display().to_string()),
            ],
        )
        .spawn()
        .unwrap(),
    );
    let told_line = told(&mut server.0, &tell);
    let _ = std::fs::remove_file(&tell);
    let (peer, id) = told_line.split_once(' ').unwrap();
    assert!(peer.starts_with(&format!("tcp://{addr_s}:")), "{peer}");

    let puller = child(
        &pulling,
        "pull",
        &[
            ("PONTOON_PULL_PEER", peer.to_owned()),
            ("PONTOON_PULL_ID", id.to_owned()),
        ],
    )
    .output()
    .unwrap();
    let out = String::from_utf8_lossy(&puller.stdout);
    assert!(puller.status.success(), "the puller failed: {out}");
    assert!(
        out.contains(&format!("pulled {LEN} bytes intact")),
        "the puller said: {out}"
    );
    drop(server);
    drop(namespaces);
    // The namespaces are gone again.
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&serving));
}

/// Not a test of its own: the entry point of the child processes the test above starts (it
/// returns at once when run without `PONTOON_PULL_NETNS_CHILD`).
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        match role.as_str() {
            "serve" => {
                let store = Arc::new(Store::new(StoreOptions::default()));
                let id = store
                    .put_raw(Message::new(
                        Header::from_serde(&"across").unwrap(),
                        vec![Bytes::from(pattern(LEN))],
                    ))
                    .unwrap();
                let listen = std::env::var("PONTOON_PULL_LISTEN").unwrap();
                let server = store.serve_peers(&listen.parse().unwrap()).await.unwrap();
                // Told through a file: the test harness owns this process's stdout.
                let tell = std::path::PathBuf::from(std::env::var("PONTOON_PULL_TELL").unwrap());
                let text = format!("{} {id}", server.address());
                std::fs::write(tell.with_extension("tmp"), text).unwrap();
                std::fs::rename(tell.with_extension("tmp"), &tell).unwrap();
                // Serve until the test closes stdin (or kills this process).
                let _ = tokio::task::spawn_blocking(|| {
                    let mut line = String::new();
                    let _ = std::io::stdin().read_line(&mut line);
                })
                .await;
                drop(server);
            }
            "pull" => {
                let peer = std::env::var("PONTOON_PULL_PEER").unwrap();
                let id: ObjectId = std::env::var("PONTOON_PULL_ID").unwrap().parse().unwrap();
                let store = Store::new(StoreOptions::default());
                store.pull(&id, &peer.parse().unwrap()).await.unwrap();
                let message = store.get_raw(&id).unwrap();
                let want = Header::from_serde(&"across").unwrap();
                assert_eq!(message.header.as_bytes(), want.as_bytes());
                assert!(message.frames[0][..] == pattern(LEN)[..], "bytes differ");
                println!("pulled {} bytes intact", message.frames[0].len());
            }
            other => panic!("unknown child role {other}"),
        }
    });
}
