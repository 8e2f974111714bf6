//! The `miri` task: run the unit tests of every crate under crates/ whose source uses `unsafe`,
//! or reinterprets bytes as typed values through `bytemuck` (unsafe code of a dependency that
//! our inputs drive), under miri (needs nightly with the miri component).
//!
//! Unit tests (`--lib`) sit next to the `unsafe` code and are sized for miri, which runs a
//! thousand times slower than native code; integration tests move megabytes and call C (zstd),
//! which miri cannot run, so they are left to `cargo xtask test`.

use std::path::Path;

use crate::cmd::{Cmd, Result, ensure_tool, repo_root};
use crate::no_args;
use crate::workspace::{self, is_comment_line, relative, word_positions};

/// Runs the task.
pub(crate) fn run(args: &[String]) -> Result {
    no_args("miri", args)?;
    let ws = workspace::metadata()?;
    let crates_dir = repo_root().join("crates");
    let mut chosen = Vec::new();
    for package in &ws.packages {
        let Some(dir) = package.manifest_path.parent() else {
            continue;
        };
        if !dir.starts_with(&crates_dir) {
            continue;
        }
        match first_word(&dir.join("src"), "unsafe")
            .or_else(|| first_word(&dir.join("src"), "bytemuck"))
        {
            Some(place) => {
                eprintln!(
                    "miri: {} uses `unsafe` or `bytemuck` ({place})",
                    package.name
                );
                chosen.push(package);
            }
            None => eprintln!(
                "miri: {} has neither `unsafe` nor `bytemuck`; skipping it",
                package.name
            ),
        }
    }
    if chosen.is_empty() {
        eprintln!("miri: no crate under crates/ uses `unsafe`; nothing to run");
        return Ok(());
    }
    ensure_tool(
        "miri",
        || Cmd::nightly_cargo().args(["miri", "--version"]),
        Cmd::new("rustup").args([
            "component",
            "add",
            "--toolchain",
            "nightly",
            "miri",
            "rust-src",
        ]),
    )?;
    for package in chosen {
        let cmd = Cmd::nightly_cargo().args(["miri", "test", "--package", &package.name]);
        let cmd = if package.has_lib {
            cmd.arg("--lib")
        } else {
            cmd.arg("--bins")
        };
        cmd.run()?;
    }
    Ok(())
}

/// The first place (`path:line`) in the `.rs` files under `src` that uses `word` in code (not
/// in comments; `unsafe_code` and the like do not count for `unsafe`).
fn first_word(src: &Path, word: &str) -> Option<String> {
    workspace::rust_files(src).into_iter().find_map(|file| {
        let text = std::fs::read_to_string(&file).ok()?;
        let line = text
            .lines()
            .position(|l| !is_comment_line(l) && word_positions(l, word).next().is_some())?;
        Some(format!("{}:{}", relative(&file), line + 1))
    })
}
