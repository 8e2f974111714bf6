//! The `demo` task: `ferry demo` from a release build of ferry-cli.

use crate::cmd::{Cmd, Result};

/// Runs `cargo run --release --package ferry-cli --bin ferry -- demo ARGS...`.
pub(crate) fn run(args: &[String]) -> Result {
    Cmd::cargo()
        .args(["run", "--release", "--package", "ferry-cli"])
        .args(["--bin", "ferry"])
        .args(["--", "demo"])
        .args(args)
        .run()
}
