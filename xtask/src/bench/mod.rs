//! The `bench` task: run the criterion benchmarks area by area (one bench target each), then
//! report this run's figures next to their peers and targets: markdown tables per area, the same
//! as JSON, and SVG plots of the size sweeps, under `target/pontoon-bench/`.
//!
//! The ratios and their targets are listed in benches/ratios.txt (see [`ratios`]).

mod machine;
mod plot;
mod ratios;
mod report;
mod results;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::cmd::{Cmd, Result, repo_root};
use crate::python;
use crate::seaweed::Seaweed;
use crate::workspace::{self, relative};

/// The ratios file, relative to the repo root.
const RATIOS: &str = "benches/ratios.txt";

/// The environment variable through which the benches find the Python to measure as a peer;
/// unset, they skip their Python peers and say so.
const PYTHON_ENV: &str = "PONTOON_BENCH_PYTHON";

/// The environment variable naming the directory where benches leave notes for the report.
const NOTES_ENV: &str = "PONTOON_BENCH_NOTES";

/// The environment variable that makes the benches sample as a quick run does (ten samples,
/// short warm-up and measurement; the benches crate's `Timing::QUICK`).
const QUICK_ENV: &str = "PONTOON_BENCH_QUICK";

/// Runs the task. `--quick` shortens every benchmark's sampling (see [`QUICK_ENV`]; not
/// criterion's own `--quick`, whose two samples one stall can spoil), `--python` measures the
/// Python peers too (installing the venv first), an area name (a bench target: `wire`,
/// `store`, ...) runs only that area, and anything else goes to criterion (e.g. a benchmark
/// name filter).
pub(crate) fn run(args: &[String]) -> Result {
    let all_areas = bench_targets()?;
    let quick = args.iter().any(|a| a == "--quick");
    let python = args.iter().any(|a| a == "--python");
    let mut areas: Vec<&str> = Vec::new();
    let mut criterion_args: Vec<&str> = Vec::new();
    for arg in args.iter().filter(|a| *a != "--quick" && *a != "--python") {
        match all_areas.iter().find(|area| *area == arg) {
            Some(area) => areas.push(area),
            None => criterion_args.push(arg),
        }
    }
    if areas.is_empty() {
        areas = all_areas.iter().map(String::as_str).collect();
    }
    let python_path = if python {
        Some(python::ensure_bench_venv()?)
    } else {
        eprintln!("bench: Python peers are not measured (add --python to measure them)");
        None
    };
    let command = std::iter::once("cargo xtask bench")
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    // Criterion's files are only as precise as the file system's clock: round down.
    let started = whole_seconds(SystemTime::now());

    // Notes the benches leave (why a peer was not measured) belong to this run only.
    let report_dir = workspace::metadata()?.target_dir.join("pontoon-bench");
    let notes_dir = report_dir.join("notes");
    if notes_dir.exists() {
        std::fs::remove_dir_all(&notes_dir)
            .map_err(|e| format!("could not clear {}: {e}", notes_dir.display()))?;
    }
    let notes_env = notes_dir
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", notes_dir.display()))?
        .to_owned();

    // Build everything first, so the progress below counts only measuring.
    let mut build = Cmd::cargo().args(["bench", "--package", "pontoon-benches", "--no-run"]);
    for area in &areas {
        build = build.args(["--bench", area]);
    }
    build.run()?;
    // The remote area measures against a local S3-compatible server from the venv, kept
    // running until every area is measured.
    let server = if areas.contains(&"remote") {
        let python = match &python_path {
            Some(path) => path.clone(),
            None => python::ensure_venv()?,
        };
        Some(Seaweed::start(&python, "bench")?)
    } else {
        None
    };

    let clock = Instant::now();
    for (i, area) in areas.iter().enumerate() {
        eprintln!(
            "bench [{}/{}] {area} (started at {:.0} s)",
            i + 1,
            areas.len(),
            clock.elapsed().as_secs_f64()
        );
        let remote_env = match (&server, *area == "remote") {
            (Some(server), true) => server.env("bench"),
            _ => Vec::new(),
        };
        let run = AreaRun {
            area,
            quick,
            notes_env: &notes_env,
            python: python_path.as_deref(),
            remote_env: &remote_env,
            criterion_args: &criterion_args,
        };
        let cmd = run.command();
        cmd.run()?;
    }
    eprintln!(
        "bench: measured {} area(s) in {:.0} s",
        areas.len(),
        clock.elapsed().as_secs_f64()
    );

    let ws = workspace::metadata()?;
    let criterion_dir = std::env::var_os("CRITERION_HOME")
        .map_or_else(|| ws.target_dir.join("criterion"), std::path::PathBuf::from);
    let results = results::read(&criterion_dir, started)?;
    if results.is_empty() {
        return Err(format!(
            "no criterion results were written under {} during this run",
            criterion_dir.display()
        ));
    }
    let ratios_path = repo_root().join(RATIOS);
    let text = std::fs::read_to_string(&ratios_path)
        .map_err(|e| format!("could not read {}: {e}", ratios_path.display()))?;
    let (ratios, problems) = ratios::parse(RATIOS, &text);
    let evaluated = ratios::evaluate(&ratios, &results);
    for e in &evaluated {
        let ran = areas.contains(&e.ratio.area());
        if ran && e.value.is_none() {
            eprintln!(
                "bench: ratio `{}` was not measured although its area ran (a Python peer without \
                 --python, a filter, or an id that names no benchmark)",
                e.ratio.label
            );
        }
    }
    let plots = plot::sweeps(&results);
    let machine = machine::Machine::describe();
    let run = report::Run {
        command: &command,
        quick,
        python,
        started: started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        machine: &machine,
        areas_run: &areas,
        areas_known: &all_areas,
    };
    let notes = read_notes(&notes_dir);
    let markdown = report::markdown(&run, &results, &evaluated, &plots, &notes);
    print!("{markdown}");
    write(&report_dir.join("report.md"), &markdown)?;
    let json = report::json(&run, &results, &evaluated, &plots, &notes);
    write(&report_dir.join("report.json"), &format!("{json:#}\n"))?;
    for plot in &plots {
        write(&report_dir.join("plots").join(&plot.file_name), &plot.svg)?;
    }
    eprintln!(
        "report written to {} (and report.json, {} plot(s) in plots/)",
        relative(&report_dir.join("report.md")),
        plots.len()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        for problem in &problems {
            eprintln!("{problem}");
        }
        Err(format!(
            "{} malformed line(s) in {RATIOS}; see above",
            problems.len()
        ))
    }
}

/// The notes the benches left in `dir`, as (bench, text), by bench name.
fn read_notes(dir: &Path) -> Vec<(String, String)> {
    let mut notes: Vec<(String, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            let text = std::fs::read_to_string(&path).ok()?;
            Some((name, text.trim().to_owned()))
        })
        .collect();
    notes.sort();
    notes
}

/// Writes `text` to `path`, making its directory.
fn write(path: &Path, text: &str) -> Result {
    path.parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, text))
        .map_err(|e| format!("could not write {}: {e}", path.display()))
}

/// The bench targets of the benches crate (each one area), in the order its manifest lists them.
fn bench_targets() -> Result<Vec<String>> {
    let manifest = repo_root().join("benches/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| format!("could not read {}: {e}", manifest.display()))?;
    Ok(parse_bench_targets(&text))
}

/// The `name`s of the `[[bench]]` tables in a manifest.
fn parse_bench_targets(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bench = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        } else if in_bench && let Some(value) = line.strip_prefix("name") {
            let value = value
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            names.push(value.to_owned());
        }
    }
    names
}

/// `time` rounded down to a whole second.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A ratio with 2 decimals, or 2 significant digits when that would show 0.00.
pub(crate) fn format_ratio(ratio: f64) -> String {
    if ratio.abs() >= 0.01 || ratio == 0.0 || !ratio.is_finite() {
        format!("{ratio:.2}")
    } else {
        // Decimals up to and including the second significant digit; at most 17.
        let decimals = (1.0 - ratio.abs().log10().floor()).clamp(0.0, 17.0) as usize;
        format!("{ratio:.decimals$}")
    }
}

/// A time in nanoseconds in the largest unit that keeps it at least 1.
pub(crate) fn format_time(ns: f64) -> String {
    if ns < 10.0 {
        format!("{ns:.2} ns")
    } else if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

/// Criterion's throughput (per iteration) as a rate, given the median time per iteration.
pub(crate) fn format_throughput(throughput: &Value, median_ns: f64) -> String {
    let per_second = |count: &Value| count.as_f64().unwrap_or(0.0) / (median_ns / 1e9);
    let bytes = |count: &Value| format!("{:.2} GB/s", per_second(count) / 1e9);
    let elements = |count: &Value| scaled(per_second(count), "elem/s");
    if let Some(n) = throughput
        .get("Bytes")
        .or_else(|| throughput.get("BytesDecimal"))
    {
        bytes(n)
    } else if let Some(n) = throughput.get("Elements") {
        elements(n)
    } else if let Some(n) = throughput.get("Bits") {
        format!("{:.2} Gbit/s", per_second(n) / 1e9)
    } else if let Some(both) = throughput.get("ElementsAndBytes") {
        format!(
            "{} ({})",
            bytes(&both["bytes"]),
            elements(&both["elements"])
        )
    } else {
        format!("? ({throughput})")
    }
}

/// `value` with a K/M/G prefix on `unit`.
fn scaled(value: f64, unit: &str) -> String {
    if value >= 1e9 {
        format!("{:.2} G{unit}", value / 1e9)
    } else if value >= 1e6 {
        format!("{:.2} M{unit}", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.2} K{unit}", value / 1e3)
    } else {
        format!("{value:.2} {unit}")
    }
}

/// What one area's bench process is run with.
struct AreaRun<'a> {
    area: &'a str,
    quick: bool,
    notes_env: &'a str,
    python: Option<&'a str>,
    /// The S3 server's variables, for the remote area.
    remote_env: &'a [(&'static str, String)],
    criterion_args: &'a [&'a str],
}

impl AreaRun<'_> {
    /// `cargo bench` of the area's target, with the benches' variables set.
    fn command(&self) -> Cmd {
        let mut cmd = Cmd::cargo().args([
            "bench",
            "--package",
            "pontoon-benches",
            "--bench",
            self.area,
        ]);
        cmd = cmd.env(NOTES_ENV, self.notes_env);
        if let Some(path) = self.python {
            cmd = cmd.env(PYTHON_ENV, path);
        }
        for (key, value) in self.remote_env {
            cmd = cmd.env(key, value);
        }
        // Set or removed, so a full run is full whatever the caller's environment holds.
        cmd = if self.quick {
            cmd.env(QUICK_ENV, "1")
        } else {
            cmd.env_remove(QUICK_ENV)
        };
        if !self.criterion_args.is_empty() {
            cmd = cmd.arg("--").args(self.criterion_args);
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_throughput() {
        assert_eq!(format_time(12.34), "12.3 ns");
        assert_eq!(format_time(1_234.0), "1.23 µs");
        assert_eq!(format_time(2_500_000.0), "2.50 ms");
        assert_eq!(format_ratio(1.234), "1.23");
        assert_eq!(format_ratio(0.000_024_1), "0.000024");
        let bytes: Value = serde_json::json!({ "Bytes": 1_000_000 });
        assert_eq!(format_throughput(&bytes, 500_000.0), "2.00 GB/s");
        let elements: Value = serde_json::json!({ "Elements": 1000 });
        assert_eq!(format_throughput(&elements, 1_000.0), "1.00 Gelem/s");
    }

    #[test]
    fn a_quick_run_sets_the_quick_variable_and_a_full_run_removes_it() {
        let run = |quick| {
            AreaRun {
                area: "wire",
                quick,
                notes_env: "/tmp/notes",
                python: None,
                remote_env: &[],
                criterion_args: &["small"],
            }
            .command()
        };
        let quick = run(true);
        assert_eq!(quick.env_of(QUICK_ENV), Some(Some("1".to_string())));
        assert_eq!(
            quick.env_of(NOTES_ENV),
            Some(Some("/tmp/notes".to_string()))
        );
        assert_eq!(quick.env_of(PYTHON_ENV), None);
        assert!(
            quick.shown().ends_with("--bench wire -- small"),
            "{}",
            quick.shown()
        );
        // Removed, not merely unset: a caller's PONTOON_BENCH_QUICK=1 does not reach a full run.
        assert_eq!(run(false).env_of(QUICK_ENV), Some(None));
    }

    #[test]
    fn finds_bench_targets() {
        let manifest = "[package]\nname = \"pontoon-benches\"\n\n[[bench]]\nname = \"wire\"\n\
            harness = false\n\n[lints]\nworkspace = true\n\n[[bench]]\nname = \"store\"\n";
        assert_eq!(parse_bench_targets(manifest), ["wire", "store"]);
        let ours = bench_targets().unwrap();
        assert!(
            ours.iter().any(|t| t == "wire") && ours.iter().any(|t| t == "store"),
            "{ours:?}"
        );
    }
}
