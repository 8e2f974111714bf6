//! The `test` task: doc tests with `cargo test --doc`, then every test with cargo-nextest, both
//! with `PONTOON_PYTHON` naming the venv (see [`crate::python`]) that the numpy interop tests run.
//! On Linux it also makes sure `strace` is present: pontoon-persist's power-loss test watches the
//! writer's `fdatasync` calls through it.
//!
//! Tests that need a lot of memory are `#[ignore = "large: …"]` and named `large_…`; tests
//! that run long are ignored too and named `long_…`. `--large` and `--long` add them back.

use crate::cmd::{Cmd, Result, ensure_tool};
use crate::python;

/// Nextest filterset matching tests whose own name (last path segment) starts with `large_`.
const LARGE: &str = "test(/(^|::)large_/)";
/// Nextest filterset matching tests whose own name (last path segment) starts with `long_`.
const LONG: &str = "test(/(^|::)long_/)";

/// Which ignored tests to run besides the default ones.
#[derive(Clone, Copy, Default)]
struct Selection {
    /// Also run the ignored `large_` tests.
    large: bool,
    /// Also run the ignored `long_` tests.
    long: bool,
}

/// Runs the task with its flags (`--large`, `--long`).
pub(crate) fn run(args: &[String]) -> Result {
    let mut selection = Selection::default();
    for arg in args {
        match arg.as_str() {
            "--large" => selection.large = true,
            "--long" => selection.long = true,
            other => {
                return Err(format!(
                    "unknown flag `{other}`; usage: cargo xtask test [--large] [--long]"
                ));
            }
        }
    }
    run_selection(selection)
}

/// Runs the default tests only (no ignored ones), as CI does.
pub(crate) fn run_default() -> Result {
    run_selection(Selection::default())
}

/// Installs nextest if needed, makes (or reuses) the venv the numpy interop tests run, runs the
/// doc tests, then (last, so its summary line ends the output) nextest; both get the venv's
/// interpreter as `PONTOON_PYTHON`.
fn run_selection(selection: Selection) -> Result {
    ensure_tool(
        "cargo-nextest",
        || Cmd::cargo().args(["nextest", "--version"]),
        Cmd::cargo().args(["install", "cargo-nextest", "--locked"]),
    )?;
    if cfg!(target_os = "linux") {
        ensure_tool(
            "strace",
            || Cmd::new("strace").arg("-V"),
            // A fresh machine may have no package lists yet.
            Cmd::new("sh").args([
                "-c",
                "apt-get install -y --no-install-recommends strace \
                 || (apt-get update && apt-get install -y --no-install-recommends strace)",
            ]),
        )?;
    }
    let python = python::ensure_venv()?;
    let doc = Cmd::cargo().args(["test", "--doc", "--workspace"]);
    lean_build_in_ci(doc).env(python::ENV, &python).run()?;
    lean_build_in_ci(nextest(selection))
        .env(python::ENV, &python)
        .run()
}

/// `cmd` building leaner under CI, where a fresh clone is built once on a disk that may be
/// nearly full (an earlier run ran out of space):
/// - `CARGO_INCREMENTAL=0`: incremental caches gain nothing in one build and take about 2 GB;
/// - `CARGO_PROFILE_DEV_DEBUG=line-tables-only`: a panic's backtrace still names files and
///   lines, and the target directory is about half the size (3.8 GB instead of 7.9 GB).
///
/// Either is left as it is when set already. Cargo commands the tests start inherit both, so
/// they reuse this build instead of making another.
fn lean_build_in_ci(cmd: Cmd) -> Cmd {
    lean_build(cmd, in_ci())
}

/// [`lean_build_in_ci`], told whether we run under CI.
fn lean_build(mut cmd: Cmd, ci: bool) -> Cmd {
    if ci {
        for (key, value) in LEAN_BUILD {
            if std::env::var_os(key).is_none() {
                cmd = cmd.env(key, value);
            }
        }
    }
    cmd
}

/// The variables [`lean_build_in_ci`] sets.
const LEAN_BUILD: [(&str, &str); 2] = [
    ("CARGO_INCREMENTAL", "0"),
    ("CARGO_PROFILE_DEV_DEBUG", "line-tables-only"),
];

/// The nextest command line for `selection`.
fn nextest(selection: Selection) -> Cmd {
    let mut cmd = Cmd::cargo().args(["nextest", "run", "--workspace"]);
    if in_ci() {
        // The `ci` profile in .config/nextest.toml does not stop at the first failure.
        cmd = cmd.args(["--profile", "ci"]);
    }
    if selection.large || selection.long {
        // Ignored tests other than large_/long_ ones come along too: there should be none.
        cmd = cmd.args(["--run-ignored", "all"]);
        if !selection.long {
            cmd = cmd.arg("-E").arg(format!("not {LONG}"));
        }
        if !selection.large {
            cmd = cmd.arg("-E").arg(format!("not {LARGE}"));
        }
    }
    cmd
}

/// Whether we run under CI (`CI` set to anything but empty, `0` or `false`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_builds_lean_and_other_builds_as_configured() {
        let plain = lean_build(Cmd::cargo(), false);
        let lean = lean_build(Cmd::cargo(), true);
        for (key, value) in LEAN_BUILD {
            assert_eq!(plain.env_of(key), None, "{key}");
            // A variable set around this test is left as it is.
            let expected = std::env::var_os(key)
                .is_none()
                .then(|| Some(value.to_owned()));
            assert_eq!(lean.env_of(key), expected, "{key}");
        }
    }
}
