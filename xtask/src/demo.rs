//! The `demo` task: `pontoon demo` from a release build of pontoon-cli, with the venv's Python
//! (made or reused as for the tests) for the demo's Dask part.

use crate::cmd::{Cmd, Result};
use crate::python;

/// Runs `cargo run --release --package pontoon-cli --bin pontoon -- demo ARGS...`, with
/// `PONTOON_PYTHON` set to the venv's interpreter; if the venv cannot be made, the demo runs
/// without it and its Dask part says why it is skipped.
pub(crate) fn run(args: &[String]) -> Result {
    let mut cmd = Cmd::cargo()
        .args(["run", "--release", "--package", "pontoon-cli"])
        .args(["--bin", "pontoon"])
        .args(["--", "demo"])
        .args(args);
    match python::ensure_venv() {
        Ok(python) => cmd = cmd.env(python::ENV, &python),
        Err(e) => eprintln!("demo: no venv ({e}); the Dask part will be skipped"),
    }
    cmd.run()
}
