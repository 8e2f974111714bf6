//! What a release needs checked: every feature builds alone, every package packages and
//! builds from its own files, and (after the first release) no semver break; plus the shell
//! completions and man pages that ship with the command.

use crate::cmd::{Cmd, Result, ensure_tool};
use crate::{no_args, workspace};

/// The facade, whose features must each pass its doc tests alone (the README's included).
const FACADE: &str = "pontoon";

/// Checks each publishable library with no default features and with each feature alone, and
/// runs the facade's doc tests under each of its features alone.
pub(crate) fn features() -> Result {
    let ws = workspace::metadata()?;
    for package in ws.packages.iter().filter(|p| p.publish && p.has_lib) {
        let name = package.name.as_str();
        let check = || Cmd::cargo().args(["check", "--package", name, "--lib"]);
        check().arg("--no-default-features").run()?;
        for feature in &package.features {
            check()
                .args(["--no-default-features", "--features", feature])
                .run()?;
        }
        if name == FACADE {
            for feature in &package.features {
                Cmd::cargo()
                    .args(["test", "--doc", "--package", name])
                    .args(["--no-default-features", "--features", feature])
                    .run()?;
            }
        }
    }
    Ok(())
}

/// The `features` task: [`features`], taking no arguments.
pub(crate) fn features_task(args: &[String]) -> Result {
    no_args("features", args)?;
    features()
}

/// Checks that the `rust-version` the workspace claims is honest without a second toolchain:
/// no dependency in the lock file asks for a newer Rust. (clippy's `incompatible_msrv`, denied
/// in the workspace lints, covers our own use of std.)
pub(crate) fn msrv() -> Result {
    let json = Cmd::cargo()
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()?;
    let value: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| format!("could not parse `cargo metadata` output: {e}"))?;
    let packages = value["packages"]
        .as_array()
        .ok_or("`cargo metadata` output has no `packages`")?;
    let members: Vec<&str> = value["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .collect();
    let ours = packages
        .iter()
        .find(|p| p["id"].as_str().is_some_and(|id| members.contains(&id)))
        .and_then(|p| p["rust_version"].as_str())
        .ok_or("the workspace's packages declare no rust-version")?;
    let claimed = parse_version(ours)?;
    let mut newer = Vec::new();
    for package in packages {
        if let Some(wanted) = package["rust_version"].as_str()
            && parse_version(wanted)? > claimed
        {
            newer.push(format!(
                "{} {} (rust-version {wanted})",
                package["name"], package["version"]
            ));
        }
    }
    if newer.is_empty() {
        eprintln!("msrv: every package in the lock file builds on Rust {ours}");
        Ok(())
    } else {
        Err(format!(
            "the workspace claims rust-version {ours}, but these need a newer Rust: {}",
            newer.join(", ")
        ))
    }
}

/// `1.88` or `1.88.1` as comparable numbers (`1.88` is `1.88.0`).
fn parse_version(text: &str) -> Result<[u64; 3]> {
    let mut version = [0; 3];
    let mut parts = text.split('.');
    for slot in &mut version {
        if let Some(part) = parts.next() {
            *slot = part
                .parse()
                .map_err(|_| format!("`{text}` is not a Rust version"))?;
        }
    }
    if parts.next().is_some() {
        return Err(format!("`{text}` is not a Rust version"));
    }
    Ok(version)
}

/// Packages every publishable crate and builds each from its package alone, as crates.io would
/// (`cargo publish --dry-run --workspace`; a file a crate needs but does not ship fails here).
pub(crate) fn publish_dry_run() -> Result {
    forget_unpacked_packages()?;
    Cmd::cargo()
        .args(["publish", "--dry-run", "--workspace", "--allow-dirty"])
        .run()
}

/// Removes the sources cargo unpacked from an earlier dry run's local registry. Cargo unpacks
/// each package of that registry once per name and version and reuses the unpacked copy after,
/// so a second dry run on this machine would build the first run's sources, not today's. The
/// local registry's unpacked sources live in `$CARGO_HOME/registry/src/-<hash>/` (no host name,
/// unlike crates.io's `index.crates.io-<hash>/`); only our own packages are removed from there.
fn forget_unpacked_packages() -> Result {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry").join("src")) else {
        return Ok(());
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return Ok(());
    };
    let ours: Vec<String> = workspace::metadata()?
        .packages
        .into_iter()
        .map(|p| format!("{}-", p.name))
        .collect();
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for unpacked in std::fs::read_dir(registry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = unpacked.file_name().to_string_lossy().into_owned();
            let is_ours = ours.iter().any(|prefix| {
                name.strip_prefix(prefix.as_str())
                    .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
            });
            if is_ours {
                std::fs::remove_dir_all(unpacked.path())
                    .map_err(|e| format!("removing {}: {e}", unpacked.path().display()))?;
            }
        }
    }
    Ok(())
}

/// The `semver` task: `cargo semver-checks` against the newest release on crates.io of every
/// publishable crate that has one; says so, and passes, for crates not released yet.
pub(crate) fn semver(args: &[String]) -> Result {
    no_args("semver", args)?;
    let ws = workspace::metadata()?;
    let mut released = Vec::new();
    for package in ws.packages.iter().filter(|p| p.publish && p.has_lib) {
        if is_released(&package.name)? {
            released.push(package.name.as_str());
        } else {
            eprintln!(
                "semver: `{}` has no release on crates.io yet; nothing to compare",
                package.name
            );
        }
    }
    if released.is_empty() {
        eprintln!("semver: no crate of the workspace is released yet; run this after the first");
        return Ok(());
    }
    ensure_tool(
        "cargo-semver-checks",
        || Cmd::cargo().args(["semver-checks", "--version"]),
        Cmd::cargo().args(["install", "cargo-semver-checks", "--locked"]),
    )?;
    let mut check = Cmd::cargo().args(["semver-checks", "check-release"]);
    for name in released {
        check = check.args(["--package", name]);
    }
    check.run()
}

/// Whether crates.io has a release of `name`; an answer other than found or not found (no
/// network, say) is an error, not "not released".
fn is_released(name: &str) -> Result<bool> {
    let shown = format!("cargo info {name} --registry crates-io");
    eprintln!("$ {shown}");
    let output = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["info", name, "--registry", "crates-io"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        Ok(true)
    } else if stderr.contains("could not find") {
        Ok(false)
    } else {
        Err(format!(
            "`{shown}` failed ({}): {}",
            output.status,
            stderr.trim()
        ))
    }
}

/// The `completions` task: writes shell completions and man pages for `pontoon` under
/// `target/pontoon-dist/` (from the command's own definition, so they never drift from it).
pub(crate) fn completions(args: &[String]) -> Result {
    no_args("completions", args)?;
    let out = workspace::metadata()?.target_dir.join("pontoon-dist");
    let out = out
        .to_str()
        .ok_or_else(|| format!("the path {} is not UTF-8", out.display()))?
        .to_owned();
    Cmd::cargo()
        .args([
            "run",
            "--quiet",
            "--package",
            "pontoon-cli",
            "--bin",
            "pontoon",
            "--",
        ])
        .args(["generate", "--out", &out])
        .run()
}
