//! Helpers shared by the Python interop tests: the interpreter `cargo xtask test` provides
//! (which must import distributed), a scratch directory per test, and running a script there.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The venv's interpreter: `$PONTOON_PYTHON` when set, else `target/pontoon-venv/bin/python`;
/// fails the test, loudly, when there is neither or it cannot import distributed.
pub(crate) fn python() -> PathBuf {
    let path = match std::env::var_os("PONTOON_PYTHON").filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => {
            let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .unwrap_or(Path::new("target"));
            let venv = target.join("pontoon-venv").join("bin").join("python");
            if !venv.is_file() {
                panic!(
                    "PONTOON_PYTHON is not set and {} does not exist: the Dask interop tests need \
                     the venv with distributed, dask, lz4 and zstandard that `cargo xtask test` \
                     makes. Run `cargo xtask test` once, or set PONTOON_PYTHON.",
                    venv.display()
                );
            }
            venv
        }
    };
    let ok = Command::new(&path)
        .args(["-c", "import distributed, lz4, zstandard"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import distributed, lz4 and zstandard: the venv predates them; \
         `cargo xtask test` remakes it (its requirements changed)",
        path.display()
    );
    path
}

#[path = "../../../pontoon-persist/tests/support/scratch.rs"]
mod scratch;
pub(crate) use scratch::Scratch;

/// A fresh directory for one test's files under cargo's per-target temp directory.
pub(crate) fn scratch(test: &str) -> Scratch {
    Scratch::at(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dask-{test}-{}", std::process::id())),
    )
}

/// Runs `script` (after the cases module) with `dir` as its argument; panics with its output if
/// it fails. Returns its stdout.
pub(crate) fn run_python(script: &str, dir: &Path) -> String {
    let output = python_output(script, &[dir.to_str().unwrap()]);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `script` with `args`, and panics with its output if it fails.
pub(crate) fn python_output(script: &str, args: &[&str]) -> Output {
    let python = python();
    let cases = include_str!("../cases.py");
    let output = Command::new(&python)
        .arg("-c")
        .arg(format!("{cases}\n{script}"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "{} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        python.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
