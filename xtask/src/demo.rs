//! The `demo` task: `pontoon demo` from a release build of pontoon-cli, with the venv's Python
//! (made or reused as for the tests) for the demo's Dask part, and a local S3-compatible server
//! from the same venv for its remote part.

use crate::cmd::{Cmd, Result};
use crate::python;
use crate::seaweed::Seaweed;

/// Runs `cargo run --release --package pontoon-cli --bin pontoon -- demo ARGS...`, with
/// `PONTOON_PYTHON` set to the venv's interpreter and `PONTOON_REMOTE` (and the `AWS_*`
/// variables) naming a SeaweedFS it starts on 127.0.0.1 and stops after; if the venv cannot be
/// made or the server started, the demo runs without them and its Dask or remote part says why
/// it is skipped.
pub(crate) fn run(args: &[String]) -> Result {
    let mut cmd = Cmd::cargo()
        .args(["run", "--release", "--package", "pontoon-cli"])
        .args(["--bin", "pontoon"])
        .args(["--", "demo"])
        .args(args);
    // Kept until the demo ends.
    let mut server = None;
    match python::ensure_venv() {
        Ok(python) => {
            cmd = cmd.env(python::ENV, &python);
            match Seaweed::start(&python, "demo") {
                Ok(started) => server = Some(started),
                Err(e) => eprintln!(
                    "demo: no S3-compatible server ({e}); the remote part will be skipped"
                ),
            }
        }
        Err(e) => eprintln!("demo: no venv ({e}); the Dask and remote parts will be skipped"),
    }
    if let Some(server) = &server {
        for (key, value) in server.env("demo") {
            cmd = cmd.env(key, &value);
        }
    }
    cmd.run()
}
