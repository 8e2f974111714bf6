//! What the tasks need to know about the workspace: `cargo metadata`, its Rust files, and
//! scanning source lines for a word.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cmd::{Cmd, Result, repo_root};

/// One workspace member, as `cargo metadata --no-deps` describes it.
pub(crate) struct Package {
    /// The package name, e.g. `pontoon-wire`.
    pub(crate) name: String,
    /// The absolute path of its `Cargo.toml`.
    pub(crate) manifest_path: PathBuf,
    /// Whether it has a library target.
    pub(crate) has_lib: bool,
    /// Its declared dependencies that are not dev-dependencies, by package name.
    pub(crate) deps: Vec<String>,
    /// Its features, `default` left out, sorted.
    pub(crate) features: Vec<String>,
    /// Whether it may be published (`publish = false` is not set).
    pub(crate) publish: bool,
}

/// The workspace, as `cargo metadata --no-deps` describes it.
pub(crate) struct Workspace {
    /// The workspace members.
    pub(crate) packages: Vec<Package>,
    /// Cargo's target directory.
    pub(crate) target_dir: PathBuf,
}

/// Reads the workspace with `cargo metadata --format-version 1 --no-deps`.
pub(crate) fn metadata() -> Result<Workspace> {
    let json = Cmd::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    let value: Value = serde_json::from_str(&json)
        .map_err(|e| format!("could not parse `cargo metadata` output: {e}"))?;
    let target_dir = value["target_directory"]
        .as_str()
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    let packages = value["packages"]
        .as_array()
        .ok_or("`cargo metadata` output has no `packages`")?
        .iter()
        .map(package)
        .collect::<Result<Vec<_>>>()?;
    Ok(Workspace {
        packages,
        target_dir,
    })
}

/// Reads one entry of `cargo metadata`'s `packages`.
fn package(value: &Value) -> Result<Package> {
    let name = value["name"]
        .as_str()
        .ok_or("a package in `cargo metadata` has no name")?
        .to_owned();
    let manifest_path = PathBuf::from(value["manifest_path"].as_str().unwrap_or_default());
    let has_lib = value["targets"].as_array().into_iter().flatten().any(|t| {
        t["kind"].as_array().into_iter().flatten().any(|k| {
            matches!(
                k.as_str(),
                Some("lib" | "rlib" | "dylib" | "cdylib" | "staticlib" | "proc-macro")
            )
        })
    });
    let deps = value["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["kind"].as_str() != Some("dev"))
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect();
    let mut features: Vec<String> = value["features"]
        .as_object()
        .into_iter()
        .flat_map(|f| f.keys())
        .filter(|f| *f != "default")
        .cloned()
        .collect();
    features.sort();
    // `publish` is null for "any registry" and a list of registries otherwise (empty: never).
    let publish = value["publish"].as_array().is_none_or(|r| !r.is_empty());
    Ok(Package {
        name,
        manifest_path,
        has_lib,
        deps,
        features,
        publish,
    })
}

/// All `.rs` files under `dir`, sorted, skipping `target` directories and hidden directories.
pub(crate) fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    collect_rust_files(dir, &mut files);
    files.sort();
    files
}

/// Adds the `.rs` files under `dir` to `files` (see [`rust_files`]).
fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            if name != "target" && !name.starts_with('.') {
                collect_rust_files(&path, files);
            }
        } else if file_type.is_file() && name.ends_with(".rs") {
            files.push(path);
        }
    }
}

/// `path` relative to the repo root, for messages.
pub(crate) fn relative(path: &Path) -> String {
    let root = repo_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Whether a source line is (the inside of) a comment: `//…`, `/*…`, or `* …`.
pub(crate) fn is_comment_line(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("//") || line.starts_with("/*") || line.starts_with('*')
}

/// Byte offsets at which `word` occurs in `line` as a whole word (not part of an identifier,
/// so `unsafe` does not match `unsafe_code`).
pub(crate) fn word_positions<'a>(line: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).filter_map(move |(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        let whole = !before.is_some_and(is_ident) && !after.is_some_and(is_ident);
        whole.then_some(at)
    })
}
