//! The `fuzz` task: run every cargo-fuzz target in fuzz/ for a while (needs nightly).
//!
//! Each target starts from its seed corpus, `fuzz/seeds/<target>/`: committed inputs, among them
//! every hostile case found by hand or by an earlier run. libFuzzer reads the seeds and writes
//! what it finds to `fuzz/corpus/<target>/` (not committed), so the seeds stay as they are.

use crate::cmd::{Cmd, Result, ensure_tool};

/// How long each target runs unless `--time` says otherwise, in seconds.
const DEFAULT_SECONDS: u64 = 60;

/// Runs the task: `--time SECONDS` (or `--time=SECONDS`) sets how long each target runs.
pub(crate) fn run(args: &[String]) -> Result {
    let seconds = parse_time(args)?;
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

/// Reads `--time SECONDS` / `--time=SECONDS` from `args`.
fn parse_time(args: &[String]) -> Result<u64> {
    let usage = "usage: cargo xtask fuzz [--time SECONDS]";
    let mut seconds = DEFAULT_SECONDS;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--time") {
            Some("") => args
                .next()
                .ok_or_else(|| format!("--time needs a value; {usage}"))?,
            Some(rest) if rest.starts_with('=') => &rest[1..],
            _ => return Err(format!("unknown argument `{arg}`; {usage}")),
        };
        seconds = value
            .parse()
            .map_err(|_| format!("--time wants whole seconds, got `{value}`"))?;
    }
    Ok(seconds)
}
