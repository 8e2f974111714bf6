//! Helpers shared by the Python interop tests: the interpreter `cargo xtask test` provides, a
//! scratch directory per test, and running a script there.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python interpreter of the venv `cargo xtask test` makes (with numpy and pyarrow):
/// `$PONTOON_PYTHON` when set, else the venv's own interpreter under this build's target
/// directory (so plain `cargo test` finds it once `cargo xtask test` has made it); fails the
/// test, loudly, when there is neither.
pub(crate) fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("PONTOON_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`, wherever the target directory is.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap_or(Path::new("target"));
    let venv_python = target.join("pontoon-venv").join("bin").join("python");
    if venv_python.is_file() {
        return venv_python;
    }
    panic!(
        "PONTOON_PYTHON is not set and {} does not exist: the Python interop tests need the venv \
         with numpy and pyarrow that `cargo xtask test` makes. Run `cargo xtask test` once (plain \
         `cargo test` finds the venv after that), or set PONTOON_PYTHON to a python with \
         numpy >= 2 and pyarrow.",
        venv_python.display()
    )
}

#[path = "../../../pontoon-persist/tests/support/scratch.rs"]
mod scratch;
pub(crate) use scratch::Scratch;

/// A fresh directory for one test's files under cargo's per-target temp directory.
pub(crate) fn scratch(test: &str) -> Scratch {
    Scratch::at(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}-{}", std::process::id())),
    )
}

/// Runs `prelude` then `script` with `dir` as its argument; panics with its output if it fails.
/// Returns its stdout.
pub(crate) fn run_python(prelude: &str, script: &str, dir: &Path) -> String {
    let python = python();
    let output = Command::new(&python)
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("could not run PONTOON_PYTHON={}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}); the files are in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        python.display(),
        output.status,
        dir.display()
    );
    stdout
}
