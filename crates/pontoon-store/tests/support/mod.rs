//! What several of pontoon-store's test files need: a daemon on a runtime of its own, and a
//! tiny tmpfs to fill a spill directory or remote with. Each test file includes it with
//! `mod support;` and uses what it needs.

use std::path::{Path, PathBuf};
use std::process::Command;

use pontoon_store::{Daemon, ServeOptions, StatsHandle};

/// A daemon on a runtime of its own thread (it lives as long as the test process).
pub(crate) fn start(options: ServeOptions) -> StatsHandle {
    start_serving(options, false).0
}

/// [`start`], serving peers on loopback too: its stats and the address peers pull from.
pub(crate) fn start_serving_peers(
    options: ServeOptions,
) -> (StatsHandle, pontoon_transport::Address) {
    let (stats, address) = start_serving(options, true);
    (stats, address.expect("serving peers"))
}

fn start_serving(
    options: ServeOptions,
    peers: bool,
) -> (StatsHandle, Option<pontoon_transport::Address>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut daemon = Daemon::bind(options).unwrap();
            let mut address = None;
            if peers {
                let loopback = "tcp://127.0.0.1:0".parse().unwrap();
                address = Some(daemon.listen_peers(&loopback).await.unwrap());
            }
            tx.send((daemon.stats_handle(), address)).unwrap();
            daemon.run().await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// A tmpfs of `size` bytes mounted at `dir`, unmounted on drop; `Err` (with the reason) when
/// it cannot be mounted (not root, no mount(8), a container without the right).
pub(crate) struct TinyDisk(PathBuf);

impl TinyDisk {
    pub(crate) fn mount(dir: &Path, size: u64) -> Result<TinyDisk, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not running as root".to_owned());
        }
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount could not run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(TinyDisk(dir.to_path_buf()))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        // Lazily: a daemon of the test may still hold its spill directory's lock there.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[path = "../../../pontoon-persist/tests/support/scratch.rs"]
mod scratch;
pub(crate) use scratch::Scratch;

impl Scratch {
    /// `pontoon-{name}-{pid}` under the system's temporary directory (short, for the daemons'
    /// sockets), emptied first if an earlier run left it.
    pub(crate) fn new(name: &str) -> Scratch {
        Scratch::at(std::env::temp_dir().join(format!("pontoon-{name}-{}", std::process::id())))
    }
}
