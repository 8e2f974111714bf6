//! The `tidy` task: repo rules that the compiler and clippy do not check.
//!
//! 1. Layering: a crate may depend only on crates of a lower layer ([`LAYERS`]): checked on the
//!    dependencies each Cargo.toml declares, and on the whole graph with `cargo tree -i`.
//! 2. pontoon-wire does not depend on tokio, even indirectly.
//! 3. Cargo.lock holds no unmaintained crate ([`BANNED`]).
//! 4. Every `.rs` file starts with a `//!` line saying what it holds.
//! 5. Every `unsafe {` block and `unsafe impl` in crates/ has a `// SAFETY:` comment just above.
//!
//! Each violation is printed as `path:line: message`.

use crate::cmd::{Cmd, Result, repo_root};
use crate::no_args;
use crate::workspace::{self, Workspace, is_comment_line, relative, word_positions};

/// The layer of every layered workspace crate. A crate may depend only on crates of a lower
/// layer. A new crate must be added here (or to [`UNLAYERED`]).
const LAYERS: &[(&str, u32)] = &[
    ("pontoon-wire", 0),
    ("pontoon-family", 1),
    ("pontoon-array", 2),
    ("pontoon-transport", 3),
    // Above pontoon-array, whose arrays its numpy values are.
    ("pontoon-pickle", 3),
    ("pontoon-persist", 3),
    ("pontoon-store", 4),
    ("pontoon-dask", 5),
    ("pontoon", 6),
    ("pontoon-cli", 7),
];

/// Workspace crates outside the layering: they may depend on anything, nothing may depend on
/// them.
const UNLAYERED: &[&str] = &["xtask", "pontoon-benches"];

/// Crates Cargo.lock must not hold, and why.
const BANNED: &[(&str, &str)] = &[
    ("arrow2", "arrow2 is unmaintained; use the arrow crates"),
    ("bincode", "bincode is unmaintained; use rmp-serde"),
];

/// The directories whose `.rs` files must start with a `//!` line.
const DOC_HEADER_DIRS: &[&str] = &["crates", "xtask", "benches", "fuzz"];

/// How many lines of code above an `unsafe` block may stand between it and its `// SAFETY:`
/// comment (comment and attribute lines do not count).
const SAFETY_LOOKBACK: usize = 3;

/// One rule broken at one place.
struct Violation {
    /// The file, relative to the repo root.
    path: String,
    /// The 1-based line.
    line: usize,
    /// What is wrong and what to do.
    message: String,
}

/// Runs every check and prints each violation; fails if there is any, or if a check could
/// not run.
pub(crate) fn run(args: &[String]) -> Result {
    no_args("tidy", args)?;
    let mut violations = Vec::new();
    let mut errors = Vec::new();
    match workspace::metadata() {
        Ok(ws) => {
            violations.extend(layering(&ws));
            match layering_in_tree(&ws) {
                Ok(found) => violations.extend(found),
                Err(e) => errors.push(e),
            }
            match no_tokio_in_wire(&ws) {
                Ok(found) => violations.extend(found),
                Err(e) => errors.push(e),
            }
        }
        Err(e) => errors.push(format!("cannot check layering or tokio: {e}")),
    }
    violations.extend(banned_crates());
    violations.extend(doc_headers());
    violations.extend(safety_comments());

    for v in &violations {
        println!("{}:{}: {}", v.path, v.line, v.message);
    }
    for e in &errors {
        println!("tidy: {e}");
    }
    if violations.is_empty() && errors.is_empty() {
        eprintln!("tidy: all rules hold");
        Ok(())
    } else {
        Err(format!(
            "tidy found {} violation(s){}",
            violations.len(),
            if errors.is_empty() {
                String::new()
            } else {
                format!(" and {} check(s) could not run", errors.len())
            }
        ))
    }
}

/// The layer of `name`, if it is in [`LAYERS`].
fn layer_of(name: &str) -> Option<u32> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

/// Check 1: every member is in the layer table, and depends (normal and build dependencies)
/// only on workspace crates of a lower layer.
fn layering(ws: &Workspace) -> Vec<Violation> {
    let members: Vec<&str> = ws.packages.iter().map(|p| p.name.as_str()).collect();
    let mut violations = Vec::new();
    for package in &ws.packages {
        let manifest = std::fs::read_to_string(&package.manifest_path).unwrap_or_default();
        let path = relative(&package.manifest_path);
        if UNLAYERED.contains(&package.name.as_str()) {
            continue;
        }
        let Some(layer) = layer_of(&package.name) else {
            violations.push(Violation {
                path,
                line: 1,
                message: format!(
                    "crate `{}` has no layer: add it to the layer table (LAYERS in xtask/src/tidy.rs)",
                    package.name
                ),
            });
            continue;
        };
        for dep in package
            .deps
            .iter()
            .filter(|d| members.contains(&d.as_str()))
        {
            let problem = match layer_of(dep) {
                Some(dep_layer) if dep_layer < layer => continue,
                Some(dep_layer) => format!(
                    "`{}` (layer {layer}) must not depend on `{dep}` (layer {dep_layer}): \
                     a crate may depend only on crates of a lower layer",
                    package.name
                ),
                None => format!(
                    "`{}` (layer {layer}) must not depend on `{dep}`, which is not layered",
                    package.name
                ),
            };
            violations.push(Violation {
                path: path.clone(),
                line: dependency_line(&manifest, dep),
                message: problem,
            });
        }
    }
    violations
}

/// Check 1, on the resolved graph: for each layered crate, `cargo tree -i` lists every workspace
/// crate that depends on it, directly or through any other crate (normal and build edges, all
/// features, all targets); each must be of a higher layer.
fn layering_in_tree(ws: &Workspace) -> Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for package in &ws.packages {
        let Some(layer) = layer_of(&package.name) else {
            continue;
        };
        let tree = Cmd::cargo()
            .args([
                "tree",
                "--invert",
                &package.name,
                "--workspace",
                "--edges",
                "normal,build",
            ])
            .args(["--prefix", "none", "--all-features", "--target", "all"])
            .output()?;
        let dependents = tree_dependents(&tree, &package.name);
        for dependent in dependents {
            if let Some(dependent_layer) = layer_of(dependent).filter(|&l| l <= layer) {
                violations.push(Violation {
                    path: relative(&package.manifest_path),
                    line: 1,
                    message: format!(
                        "`cargo tree -i {}` shows `{dependent}` (layer {dependent_layer}) depending on \
                         `{}` (layer {layer}): a crate may depend only on crates of a lower layer",
                        package.name, package.name
                    ),
                });
            }
        }
    }
    Ok(violations)
}

/// The crates `cargo tree -i NAME --prefix none` prints below NAME itself, sorted, each once.
fn tree_dependents<'a>(tree: &'a str, name: &str) -> Vec<&'a str> {
    let mut dependents: Vec<&str> = tree
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .filter(|dependent| *dependent != name)
        .collect();
    dependents.sort_unstable();
    dependents.dedup();
    dependents
}

/// Check 2: `cargo tree -p pontoon-wire` (normal and build dependencies, every feature but
/// [`WIRE_TOKIO_FEATURE`], all targets) names no `tokio` or `tokio-*` crate.
/// pontoon-wire's opt-in adapter to tokio-util's codec traits: the one feature whose point is
/// tokio, so the only one allowed to bring it in.
const WIRE_TOKIO_FEATURE: &str = "tokio-util";

/// pontoon-wire's features other than [`WIRE_TOKIO_FEATURE`], as `cargo tree --features` takes
/// them, read from its manifest's `[features]` table.
fn wire_features_without_tokio(manifest: &str) -> String {
    let mut features = Vec::new();
    let mut in_features = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
            continue;
        }
        if let Some((name, _)) = line.split_once('=').filter(|_| in_features) {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') && name != WIRE_TOKIO_FEATURE {
                features.push(name.to_string());
            }
        }
    }
    features.join(",")
}

fn no_tokio_in_wire(ws: &Workspace) -> Result<Vec<Violation>> {
    let Some(wire) = ws.packages.iter().find(|p| p.name == "pontoon-wire") else {
        return Ok(Vec::new());
    };
    let manifest = std::fs::read_to_string(&wire.manifest_path).unwrap_or_default();
    let features = wire_features_without_tokio(&manifest);
    let tree = Cmd::cargo()
        .args([
            "tree",
            "--package",
            "pontoon-wire",
            "--edges",
            "normal,build",
        ])
        .args([
            "--prefix",
            "none",
            "--features",
            &features,
            "--target",
            "all",
        ])
        .output()?;
    let mut found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name == "tokio" || name.starts_with("tokio-"))
        .collect();
    found.sort_unstable();
    found.dedup();
    Ok(found
        .into_iter()
        .map(|name| Violation {
            path: relative(&wire.manifest_path),
            line: dependency_line(&manifest, "tokio"),
            message: format!("pontoon-wire must not depend on tokio (it pulls in `{name}`)"),
        })
        .collect())
}

/// Check 3: Cargo.lock holds no [`BANNED`] crate.
fn banned_crates() -> Vec<Violation> {
    let Ok(lock) = std::fs::read_to_string(repo_root().join("Cargo.lock")) else {
        return Vec::new();
    };
    lock.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            BANNED.iter().find_map(|(name, why)| {
                (line.trim() == format!("name = \"{name}\"")).then(|| Violation {
                    path: "Cargo.lock".to_owned(),
                    line: i + 1,
                    message: format!("{why} (`cargo tree -i {name}` shows who pulls it in)"),
                })
            })
        })
        .collect()
}

/// Check 4: the first non-empty line of every `.rs` file in [`DOC_HEADER_DIRS`] is `//!…`.
fn doc_headers() -> Vec<Violation> {
    let root = repo_root();
    let mut violations = Vec::new();
    for dir in DOC_HEADER_DIRS {
        for file in workspace::rust_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let first = text.lines().enumerate().find(|(_, l)| !l.trim().is_empty());
            if !first.is_some_and(|(_, l)| l.trim_start().starts_with("//!")) {
                violations.push(Violation {
                    path: relative(&file),
                    line: first.map_or(1, |(i, _)| i + 1),
                    message: "the first line must be a `//!` comment saying what the file holds"
                        .to_owned(),
                });
            }
        }
    }
    violations
}

/// Check 5: every `unsafe {` block and `unsafe impl` under crates/ has a `// SAFETY:` comment
/// on its line or just above it.
fn safety_comments() -> Vec<Violation> {
    let mut violations = Vec::new();
    for file in workspace::rust_files(&repo_root().join("crates")) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        violations.extend(
            missing_safety_comments(&text)
                .into_iter()
                .map(|line| Violation {
                    path: relative(&file),
                    line,
                    message: "`unsafe` block or impl without a `// SAFETY:` comment just above it"
                        .to_owned(),
                }),
        );
    }
    violations
}

/// The 1-based lines of `text` holding an `unsafe {` block or `unsafe impl` with no
/// `SAFETY:` comment on the line or within [`SAFETY_LOOKBACK`] lines of code above it (and
/// below any other `unsafe` block or impl, whose comment that would be).
fn missing_safety_comments(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if is_comment_line(line) || !opens_unsafe_block_or_impl(line) || line.contains("SAFETY:") {
            continue;
        }
        let mut code_lines = 0;
        let mut documented = false;
        for above in lines[..i].iter().rev() {
            if above.contains("SAFETY:") {
                documented = true;
                break;
            }
            if !is_comment_line(above) && opens_unsafe_block_or_impl(above) {
                // That comment, if any, belongs to the `unsafe` above.
                break;
            }
            let above = above.trim();
            if above.is_empty() || is_comment_line(above) || above.starts_with("#[") {
                continue;
            }
            code_lines += 1;
            if code_lines >= SAFETY_LOOKBACK {
                break;
            }
        }
        if !documented {
            missing.push(i + 1);
        }
    }
    missing
}

/// Whether `line` has the word `unsafe` followed by `{` or `impl`.
fn opens_unsafe_block_or_impl(line: &str) -> bool {
    word_positions(line, "unsafe").any(|at| {
        let rest = line[at + "unsafe".len()..].trim_start();
        rest.starts_with('{') || word_positions(rest, "impl").next() == Some(0)
    })
}

/// The 1-based number of the line of `manifest` that declares the dependency `name`
/// (`name = …`, `name.workspace = …`, `[dependencies.name]` or `package = "name"`), or 1.
fn dependency_line(manifest: &str, name: &str) -> usize {
    manifest
        .lines()
        .position(|line| {
            let line = line.trim();
            let declared = line
                .strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with(['=', '.']));
            declared
                || (line.starts_with('[') && line.ends_with(&format!(".{name}]")))
                || line.contains(&format!("package = \"{name}\""))
        })
        .map_or(1, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_dependents_lists_each_crate_below_the_root_once() {
        let tree = "pontoon-wire v0.1.0 (/r/crates/pontoon-wire)\n\
                    pontoon v0.1.0 (/r/crates/pontoon)\n\
                    pontoon-cli v0.1.0 (/r/crates/pontoon-cli)\n\
                    pontoon v0.1.0 (/r/crates/pontoon) (*)\n";
        assert_eq!(
            tree_dependents(tree, "pontoon-wire"),
            ["pontoon", "pontoon-cli"]
        );
        assert!(tree_dependents("pontoon-cli v0.1.0 (/r)\n", "pontoon-cli").is_empty());
    }

    #[test]
    fn unsafe_blocks_need_safety_comments() {
        let text = "\
fn a() {
    // SAFETY: the index is in bounds.
    let x = unsafe { f() };
    let y = unsafe { g() };
}
#![forbid(unsafe_code)]
unsafe fn h() {}
// SAFETY: Foo holds no thread-bound state.
unsafe impl Send for Foo {}
unsafe impl Sync for Foo {}
fn b() {
    let z = 1;
    let w = 2;
    let v = 3;
    unsafe {
        k();
    }
}
";
        assert_eq!(missing_safety_comments(text), vec![4, 10, 15]);
    }

    #[test]
    fn finds_dependency_lines() {
        let manifest = "[package]\nname = \"pontoon-wire\"\n[dependencies]\npontoon-wirex = 1\npontoon.workspace = true\n";
        assert_eq!(dependency_line(manifest, "pontoon"), 5);
        assert_eq!(dependency_line(manifest, "tokio"), 1);
    }

    #[test]
    fn the_tokio_check_takes_every_wire_feature_but_the_tokio_one() {
        let manifest = "[package]\nname = \"pontoon-wire\"\n[features]\ndefault = [\"lz4\"]\n## LZ4\nlz4 = [\"dep:lz4_flex\"]\ntokio-util = [\"dep:tokio-util\"]\n\n[dependencies]\nbytes = 1\n";
        assert_eq!(wire_features_without_tokio(manifest), "default,lz4");
    }

    #[test]
    fn layer_table_has_no_duplicates() {
        for (i, (name, _)) in LAYERS.iter().enumerate() {
            assert!(LAYERS[i + 1..].iter().all(|(other, _)| other != name));
            assert!(!UNLAYERED.contains(name));
        }
    }
}
