//! `pontoon store serve` in the background, then `put FILE`, `get ID --out`, `stats --json`,
//! `delete`, and the refusals, each as a separate `pontoon` process.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../pontoon-persist/tests/support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    // Short: a Unix socket's path is at most 107 bytes.
    Scratch::at(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cs-{test}-{}", std::process::id())),
    )
}

fn pontoon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pontoon"))
        .args(args)
        .output()
        .unwrap()
}

/// Kills the daemon however the test ends.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(socket: &Path, dir: &Path, capacity: &str) -> Serving {
    serve_with(socket, Some(&dir.join("spill")), capacity, &[])
}

fn serve_with(socket: &Path, spill_dir: Option<&Path>, capacity: &str, extra: &[&str]) -> Serving {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pontoon"));
    command.args([
        "store",
        "serve",
        "--socket",
        socket.to_str().unwrap(),
        "--capacity",
        capacity,
    ]);
    if let Some(spill_dir) = spill_dir {
        command.args(["--spill-dir", spill_dir.to_str().unwrap()]);
    }
    command.args(extra);
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut serving = Serving(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(
            serving.0.try_wait().unwrap().is_none(),
            "pontoon store serve exited"
        );
        assert!(
            Instant::now() < deadline,
            "pontoon store serve never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    serving
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn put_get_stats_delete_round_trip() {
    let dir = scratch("rt");
    let socket = dir.join("s.sock");
    let _serving = serve(&socket, &dir, "64MiB");
    let sock = socket.to_str().unwrap();

    let input = dir.join("in.bin");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&input, &bytes).unwrap();
    let put = pontoon(&["store", "put", "--socket", sock, input.to_str().unwrap()]);
    assert!(put.status.success(), "{put:?}");
    let id = text(&put).trim().to_owned();
    assert_eq!(id.len(), 33, "{id:?}");

    let out = dir.join("out.bin");
    let get = pontoon(&[
        "store",
        "get",
        "--socket",
        sock,
        &id,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(get.status.success(), "{get:?}");
    assert!(
        std::fs::read(&out).unwrap() == bytes,
        "the bytes came back different"
    );
    // To stdout by default.
    let get = pontoon(&["store", "get", "--socket", sock, &id]);
    assert!(get.stdout == bytes);

    let stats = pontoon(&["store", "stats", "--socket", sock, "--json"]);
    assert!(stats.status.success(), "{stats:?}");
    let json: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(json["objects"], 1);
    assert_eq!(json["sealed_bytes"], 3_000_000);
    assert_eq!(json["capacity"], 64 << 20);
    assert_eq!(json["spilled_objects"], 0);
    let human = pontoon(&["store", "stats", "--socket", sock]);
    assert!(text(&human).contains("of 64 MiB"), "{}", text(&human));

    let delete = pontoon(&["store", "delete", "--socket", sock, &id]);
    assert!(delete.status.success(), "{delete:?}");
    let again = pontoon(&["store", "get", "--socket", sock, &id]);
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains(&format!("no object {id} in the store")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refusals_are_errors_with_exit_status_2() {
    let dir = scratch("no");
    let socket = dir.join("s.sock");
    // Without a spill directory: a put larger than the memory is refused.
    let _serving = serve_with(&socket, None, "1MiB", &[]);
    let sock = socket.to_str().unwrap();
    let big = dir.join("big.bin");
    std::fs::write(&big, vec![1u8; 2 << 20]).unwrap();
    let put = pontoon(&["store", "put", "--socket", sock, big.to_str().unwrap()]);
    assert_eq!(put.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&put.stderr);
    assert!(
        stderr.contains("the store is full: 2097152 bytes needed"),
        "{stderr}"
    );
    let bad_id = pontoon(&["store", "get", "--socket", sock, "not-an-id"]);
    assert_eq!(bad_id.status.code(), Some(2));
    let bad_size = pontoon(&["store", "serve", "--socket", sock, "--capacity", "lots"]);
    assert_eq!(bad_size.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_size.stderr).contains("is not a byte size"));
    // An S3 endpoint belongs to an s3:// spill remote, not a directory.
    let endpoint = pontoon(&[
        "store",
        "serve",
        "--socket",
        sock,
        "--capacity",
        "1MiB",
        "--spill-dir",
        dir.join("spill").to_str().unwrap(),
        "--spill-endpoint",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(endpoint.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&endpoint.stderr).contains("is for an s3:// --spill-dir"),
        "{}",
        String::from_utf8_lossy(&endpoint.stderr)
    );
    // A second daemon on a live socket is refused; the first keeps serving.
    let second = pontoon(&["store", "serve", "--socket", sock, "--capacity", "1MiB"]);
    assert_eq!(second.status.code(), Some(2));
    assert!(
        pontoon(&["store", "stats", "--socket", sock])
            .status
            .success()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Puts one file of each length (bytes that differ per file) with `pontoon store put`: the
/// ids it printed and the bytes of each.
fn put_files(dir: &Path, sock: &str, lens: &[u32]) -> Vec<(String, Vec<u8>)> {
    let mut put = Vec::new();
    for (i, &len) in (0u32..).zip(lens) {
        let bytes: Vec<u8> = (0..len).map(|b| (b * 13 + i) as u8).collect();
        let file = dir.join(format!("in-{i}.bin"));
        std::fs::write(&file, &bytes).unwrap();
        let out = pontoon(&["store", "put", "--socket", sock, file.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        put.push((text(&out).trim().to_owned(), bytes));
    }
    put
}

/// Gets each `(id, bytes)` back byte-exact with `pontoon store get`, then deletes them all.
fn get_all_then_delete(sock: &str, put: &[(String, Vec<u8>)]) {
    for (id, bytes) in put {
        let get = pontoon(&["store", "get", "--socket", sock, id]);
        assert!(get.status.success(), "{get:?}");
        assert!(get.stdout == *bytes, "{id} came back different");
    }
    for (id, _) in put {
        assert!(
            pontoon(&["store", "delete", "--socket", sock, id])
                .status
                .success()
        );
    }
}

/// A URL as the spill directory is a remote (here `file://`), not a local directory `file:`.
#[test]
fn serve_with_a_remote_spill_dir_spills_there_and_gets_everything_back() {
    let dir = scratch("rs");
    let socket = dir.join("s.sock");
    let remote = dir.join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let url = format!("file://{}", remote.display());
    let _serving = serve_with(&socket, Some(Path::new(&url)), "1MiB", &[]);
    let sock = socket.to_str().unwrap();
    // Ten files of 300 kB through 1 MiB of memory.
    let put = put_files(&dir, sock, &[300_000; 10]);
    let stats = pontoon(&["store", "stats", "--socket", sock, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(json["objects"], 10);
    assert!(json["spilled_objects"].as_u64().unwrap() >= 6, "{json}");
    let files = json["spill_files"].as_u64().unwrap();
    let spilled = || {
        std::fs::read_dir(&remote)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("spill-")
            })
            .count() as u64
    };
    assert_eq!(spilled(), files, "{json}");
    assert!(!Path::new("file:").exists());
    get_all_then_delete(sock, &put);
    // Remote objects are deleted by a thread of the daemon's, just after.
    let deadline = Instant::now() + Duration::from_secs(30);
    while spilled() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(spilled(), 0, "spill objects left on the remote");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_with_a_spill_dir_spills_and_gets_everything_back() {
    let dir = scratch("sp");
    let socket = dir.join("s.sock");
    let spill = dir.join("spill");
    let _serving = serve(&socket, &dir, "1MiB");
    let sock = socket.to_str().unwrap();
    // Ten files of 300 kB and one of 2 MiB through 1 MiB of memory.
    let mut lens = vec![300_000; 10];
    lens.push(2 << 20);
    let put = put_files(&dir, sock, &lens);
    let stats = pontoon(&["store", "stats", "--socket", sock, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(json["objects"], 11);
    assert!(json["spilled_objects"].as_u64().unwrap() >= 8, "{json}");
    assert!(json["spilled_bytes"].as_u64().unwrap() >= 2 << 20, "{json}");
    let files = json["spill_files"].as_u64().unwrap();
    assert!(files >= 2, "{json}"); // a record file and the large object's own
    let on_disk = std::fs::read_dir(&spill).unwrap().count() as u64 - 1; // LOCK
    assert_eq!(on_disk, files);
    let human = text(&pontoon(&["store", "stats", "--socket", sock]));
    assert!(
        human.contains("spilled ") && human.contains(" files"),
        "{human}"
    );
    get_all_then_delete(sock, &put);
    // A `get` process's pins go when the daemon sees it exit, which may come just after a
    // delete: the files go with the last of them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&spill).unwrap().count() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        std::fs::read_dir(&spill).unwrap().count(),
        1,
        "spill files left"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn get_from_pulls_an_object_from_a_peer_daemon() {
    let dir = scratch("pull");
    let (socket_a, socket_b) = (dir.join("a.sock"), dir.join("b.sock"));
    // A free port for the serving daemon's peers (bound and let go: the daemon binds it next).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let peer = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_pontoon"))
        .args(["store", "serve", "--socket", socket_a.to_str().unwrap()])
        .args(["--capacity", "64MiB", "--listen", &peer])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut serving_a = Serving(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        || std::os::unix::net::UnixStream::connect(&socket_a).is_err()
    {
        assert!(
            serving_a.0.try_wait().unwrap().is_none(),
            "serve --listen exited"
        );
        assert!(Instant::now() < deadline, "serve --listen never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _serving_b = serve(&socket_b, &dir, "64MiB");

    let input = dir.join("in.bin");
    let bytes: Vec<u8> = (0..9_000_000u32).map(|i| (i * 13 % 253) as u8).collect();
    std::fs::write(&input, &bytes).unwrap();
    let put = pontoon(&[
        "store",
        "put",
        "--socket",
        socket_a.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert!(put.status.success(), "{put:?}");
    let id = text(&put).trim().to_owned();

    let out = dir.join("out.bin");
    let sock_b = socket_b.to_str().unwrap();
    let got = pontoon(&[
        "store",
        "get",
        "--socket",
        sock_b,
        &id,
        "--from",
        &peer,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(got.status.success(), "{got:?}");
    assert!(
        std::fs::read(&out).unwrap() == bytes,
        "the pulled bytes differ"
    );
    // Daemon b keeps its copy: a plain get finds it with no peer.
    let again = pontoon(&["store", "get", "--socket", sock_b, &id]);
    assert!(again.status.success() && again.stdout == bytes);

    // An id daemon a never made: a refusal with the reason, exit status 2.
    let unknown = format!("{}-00000000000003e7", &id[..16]);
    let refused = pontoon(&[
        "store", "get", "--socket", sock_b, &unknown, "--from", &peer,
    ]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("pulling object"), "{stderr}");
}

/// `--max-clients 1`: while one connection holds the only slot, another client is refused
/// (a non-zero exit); once it goes, clients are served again.
#[test]
fn serve_max_clients_refuses_past_it_and_serves_again_when_a_client_goes() {
    let dir = scratch("mc");
    let socket = dir.join("s.sock");
    let _serving = serve_with(&socket, None, "1MiB", &["--max-clients", "1"]);
    let sock = socket.to_str().unwrap();
    let stats_ok = || {
        pontoon(&["store", "stats", "--socket", sock])
            .status
            .success()
    };
    let eventually = |want: bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while stats_ok() != want {
            assert!(Instant::now() < deadline, "stats never became {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // The readiness probe's slot comes back.
    eventually(true);
    // A connection that sends nothing holds the slot (for up to the 10 s hello timeout). The
    // last probe's slot is given back only when the daemon's task for it ends, which may be
    // after the probe exits: then `held` itself is refused, which the daemon does (closing it)
    // before it accepts the next client, so a `held` already at its end of file when the next
    // client was served was refused, and is tried again. A `held` still open then was admitted
    // while another client was served too: the limit did not hold.
    let mut tries = 0;
    let held = loop {
        tries += 1;
        assert!(
            tries <= 100,
            "the slot never came back for a held connection"
        );
        let mut held = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        let other = pontoon(&["store", "stats", "--socket", sock]);
        if !other.status.success() {
            break held;
        }
        held.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut byte = [0u8; 1];
        match std::io::Read::read(&mut held, &mut byte) {
            Ok(0) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other_read => panic!(
                "a second client was served while a connection held the only slot \
                 ({other_read:?}): {other:?}"
            ),
        }
    };
    drop(held);
    eventually(true);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--socket-mode` and `--allow-uid` let another user's `pontoon` use the daemon, which serves
/// only its own user by default. Needs root, to run the client as uid 65534.
#[test]
fn serve_socket_mode_and_allow_uid_admit_another_user() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let dir = scratch("uid");
    // What this process creates is owned by its effective uid.
    if std::fs::metadata(&dir).unwrap().uid() != 0 {
        eprintln!(
            "SKIPPED serve_socket_mode_and_allow_uid_admit_another_user: it needs root, to run \
             a client as uid 65534"
        );
        return;
    }
    let as_nobody = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pontoon"))
            .args(args)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let input = dir.join("in.bin");
    std::fs::write(&input, b"from another user").unwrap();
    std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o644)).unwrap();

    // By default: the socket is 0600, so the other user cannot reach the daemon.
    let private = dir.join("p.sock");
    let _private = serve_with(&private, None, "1MiB", &[]);
    let refused = as_nobody(&["store", "stats", "--socket", private.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");

    // Opened to everyone, but uid 65534 not allowed: refused by its credentials.
    let open = dir.join("o.sock");
    let _open = serve_with(&open, None, "1MiB", &["--socket-mode", "666"]);
    assert_eq!(
        std::fs::metadata(&open).unwrap().permissions().mode() & 0o777,
        0o666
    );
    let refused = as_nobody(&["store", "stats", "--socket", open.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");

    // Allowed: a put and a get as uid 65534 work, and the daemon's own user is still served.
    let allowed = dir.join("a.sock");
    let _allowed = serve_with(
        &allowed,
        None,
        "1MiB",
        &["--socket-mode", "0666", "--allow-uid", "65534"],
    );
    let sock = allowed.to_str().unwrap();
    let put = as_nobody(&["store", "put", "--socket", sock, input.to_str().unwrap()]);
    assert!(put.status.success(), "{put:?}");
    let id = text(&put).trim().to_owned();
    let get = pontoon(&["store", "get", "--socket", sock, &id]);
    assert!(get.status.success(), "{get:?}");
    assert_eq!(get.stdout, b"from another user");

    // A mode that is not octal permission bits is a usage error.
    let bad = pontoon(&[
        "store",
        "serve",
        "--socket",
        dir.join("b.sock").to_str().unwrap(),
        "--capacity",
        "1MiB",
        "--socket-mode",
        "4777",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not a permission mode"),
        "{bad:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A port on 127.0.0.1 that nothing listens on now (the kernel's pick, released at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` over a plain TCP socket: the status line and the body (de-chunked if sent in
/// chunks).
fn scrape(port: u16) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8(response).expect("the exposition is UTF-8");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("an HTTP response with headers");
    let status = head.lines().next().unwrap_or_default().to_owned();
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    if !chunked {
        return (status, body.to_owned());
    }
    let mut rest = body;
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..]
            .strip_prefix("\r\n")
            .expect("CRLF after a chunk");
    }
    (status, out)
}

/// Parses Prometheus text exposition format (version 0.0.4) strictly: `# HELP`/`# TYPE`
/// lines, then samples `name{label="value",...} value [timestamp]`. Returns each sample's
/// value by its name with labels, and each metric's declared type; panics naming the line
/// that breaks the format.
fn parse_exposition(
    text: &str,
) -> (
    std::collections::HashMap<String, f64>,
    std::collections::HashMap<String, String>,
) {
    fn is_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    fn value(text: &str) -> Option<f64> {
        match text {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ => text.parse().ok(),
        }
    }
    let mut samples = std::collections::HashMap::new();
    let mut types = std::collections::HashMap::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(is_name(name), "bad metric name in {line:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "bad type in {line:?}"
                    );
                    types.insert(name.to_owned(), kind.to_owned());
                }
                (Some("HELP"), Some(name), _) => assert!(is_name(name), "bad name in {line:?}"),
                _ => {} // other comments are allowed
            }
            continue;
        }
        let (series, rest) = match line.find('{') {
            Some(open) => {
                let close = line
                    .rfind('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                let labels = &line[open + 1..close];
                for pair in labels.split(',').filter(|p| !p.is_empty()) {
                    let (key, quoted) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label in {line:?}"));
                    assert!(is_name(key), "bad label name in {line:?}");
                    assert!(
                        quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                        "unquoted label value in {line:?}"
                    );
                }
                assert!(is_name(&line[..open]), "bad metric name in {line:?}");
                (&line[..=close], line[close + 1..].trim())
            }
            None => {
                let (name, rest) = line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("a sample without a value: {line:?}"));
                assert!(is_name(name), "bad metric name in {line:?}");
                (name, rest.trim())
            }
        };
        let mut fields = rest.split_whitespace();
        let sample = fields
            .next()
            .and_then(value)
            .unwrap_or_else(|| panic!("bad sample value in {line:?}"));
        if let Some(timestamp) = fields.next() {
            assert!(
                timestamp.parse::<i64>().is_ok(),
                "bad timestamp in {line:?}"
            );
        }
        assert!(fields.next().is_none(), "trailing fields in {line:?}");
        samples.insert(series.to_owned(), sample);
    }
    (samples, types)
}

#[test]
fn serve_metrics_answers_a_prometheus_scrape_with_the_stores_counters() {
    let dir = scratch("metrics");
    let socket = dir.join("s.sock");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let _serving = serve_with(
        &socket,
        Some(&dir.join("spill")),
        "1MiB",
        &["--metrics", &address],
    );
    // Two objects through `pontoon store put` clients; the second (600 KiB into 1 MiB) spills
    // the first.
    let sizes = [500usize << 10, 600 << 10];
    for (i, size) in sizes.iter().enumerate() {
        let file = dir.join(format!("object{i}"));
        std::fs::write(&file, vec![i as u8 + 1; *size]).unwrap();
        let put = pontoon(&[
            "store",
            "put",
            "--socket",
            socket.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        assert!(
            put.status.success(),
            "{}",
            String::from_utf8_lossy(&put.stderr)
        );
    }
    let stats = pontoon(&[
        "store",
        "stats",
        "--json",
        "--socket",
        socket.to_str().unwrap(),
    ]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();

    // The put clients have exited: scrape until the daemon has seen them go (it notices a
    // hang-up asynchronously), for at most a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (samples, types) = loop {
        let (status, body) = scrape(port);
        assert!(status.contains(" 200"), "{status}");
        let (samples, types) = parse_exposition(&body);
        if samples.get("pontoon_store_clients") == Some(&0.0) {
            break (samples, types);
        }
        assert!(
            Instant::now() < deadline,
            "clients never went back to 0:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let at = |name: &str| {
        *samples
            .get(name)
            .unwrap_or_else(|| panic!("{name} not in the scrape: {samples:?}"))
    };
    assert_eq!(at("pontoon_store_objects"), 2.0);
    assert_eq!(at("pontoon_store_bytes"), (sizes[0] + sizes[1]) as f64);
    assert_eq!(
        at("pontoon_store_bytes"),
        stats["sealed_bytes"].as_f64().unwrap()
    );
    assert_eq!(
        at("pontoon_store_spilled_objects"),
        stats["spilled_objects"].as_f64().unwrap()
    );
    assert_eq!(at("pontoon_store_spilled_objects"), 1.0);
    assert_eq!(
        at("pontoon_store_spilled_bytes"),
        stats["spilled_bytes"].as_f64().unwrap()
    );
    assert_eq!(at("pontoon_store_spills_total"), 1.0);
    assert_eq!(at("pontoon_store_pinned_objects"), 0.0);
    assert_eq!(at("pontoon_store_refusals_total"), 0.0);
    assert_eq!(
        types.get("pontoon_store_objects").map(String::as_str),
        Some("gauge")
    );
    assert_eq!(
        types.get("pontoon_store_spills_total").map(String::as_str),
        Some("counter")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
