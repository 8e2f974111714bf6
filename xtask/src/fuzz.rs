//! The `fuzz` task: run every cargo-fuzz target in fuzz/ for a while (needs nightly).
//!
//! Each target starts from its seed corpus, `fuzz/seeds/<target>/`: committed inputs, among them
//! every hostile case found by hand or by an earlier run. libFuzzer reads the seeds and writes
//! what it finds to `fuzz/corpus/<target>/` (not committed), so the seeds stay as they are.

use crate::cmd::{Cmd, Result, ensure_tool};

/// How long each target runs unless `--time` says otherwise, in seconds.
const DEFAULT_SECONDS: u64 = 60;

/// Runs the task: `--time SECONDS` (or `--time=SECONDS`) sets how long each target runs; names
/// after the flags pick targets (all of them when none is named), so that a long run can be
/// split across cores.
pub(crate) fn run(args: &[String]) -> Result {
    let (seconds, wanted) = parse_args(args)?;
    ensure_tool(
        "cargo-fuzz",
        || Cmd::nightly_cargo().args(["fuzz", "--version"]),
        Cmd::cargo().args(["install", "cargo-fuzz", "--locked"]),
    )?;
    let list = Cmd::nightly_cargo().args(["fuzz", "list"]).output()?;
    let targets: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if targets.is_empty() {
        return Err("`cargo +nightly fuzz list` found no fuzz targets".to_owned());
    }
    if let Some(unknown) = wanted.iter().find(|w| !targets.contains(&w.as_str())) {
        return Err(format!(
            "no fuzz target `{unknown}`; the targets are: {}",
            targets.join(", ")
        ));
    }
    let targets: Vec<&str> = targets
        .into_iter()
        .filter(|t| wanted.is_empty() || wanted.iter().any(|w| w == t))
        .collect();
    let mut failed = Vec::new();
    for target in &targets {
        let corpus = format!("fuzz/corpus/{target}");
        std::fs::create_dir_all(crate::cmd::repo_root().join(&corpus))
            .map_err(|e| format!("creating {corpus}: {e}"))?;
        let mut run = Cmd::nightly_cargo().args(["fuzz", "run", target, &corpus]);
        let seeds = format!("fuzz/seeds/{target}");
        if crate::cmd::repo_root().join(&seeds).is_dir() {
            run = run.arg(&seeds);
        } else {
            eprintln!(
                "fuzz target `{target}` has no seed corpus ({seeds}/): starting from nothing"
            );
        }
        let run = run
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .run();
        if let Err(e) = run {
            eprintln!("fuzz target `{target}` failed: {e}");
            failed.push(*target);
        }
    }
    if failed.is_empty() {
        eprintln!(
            "fuzz: {} target(s) ran {seconds}s each without a failure",
            targets.len()
        );
        Ok(())
    } else {
        Err(format!(
            "{} of {} fuzz target(s) failed: {} (crashing inputs are under fuzz/artifacts/)",
            failed.len(),
            targets.len(),
            failed.join(", ")
        ))
    }
}

/// Reads `--time SECONDS` / `--time=SECONDS` and the target names that follow from `args`.
fn parse_args(args: &[String]) -> Result<(u64, Vec<String>)> {
    let usage = "usage: cargo xtask fuzz [--time SECONDS] [TARGET...]";
    let mut seconds = DEFAULT_SECONDS;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--time") {
            Some("") => args
                .next()
                .ok_or_else(|| format!("--time needs a value; {usage}"))?,
            Some(rest) if rest.starts_with('=') => &rest[1..],
            _ if arg.starts_with('-') => return Err(format!("unknown argument `{arg}`; {usage}")),
            _ => {
                targets.push(arg.clone());
                continue;
            }
        };
        seconds = value
            .parse()
            .map_err(|_| format!("--time wants whole seconds, got `{value}`"))?;
    }
    Ok((seconds, targets))
}
