//! The `demo` task: `pontoon demo` from a release build of pontoon-cli.

use crate::cmd::{Cmd, Result};

/// Runs `cargo run --release --package pontoon-cli --bin pontoon -- demo ARGS...`.
pub(crate) fn run(args: &[String]) -> Result {
    Cmd::cargo()
        .args(["run", "--release", "--package", "pontoon-cli"])
        .args(["--bin", "pontoon"])
        .args(["--", "demo"])
        .args(args)
        .run()
}
