//! The `bench` task: run the criterion benchmarks, then report this run's medians and the
//! ratios listed in benches/ratios.txt as markdown (printed and saved under target/).
//!
//! benches/ratios.txt has one ratio a line, `label | numerator id | denominator id | note`,
//! where the ids are criterion full ids (`group/function/parameter`); blank lines and lines
//! starting with `#` are skipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::cmd::{Cmd, Result, repo_root};
use crate::workspace::{self, relative};

/// The ratios file, relative to the repo root.
const RATIOS: &str = "benches/ratios.txt";

/// One benchmark measured in this run.
struct Measurement {
    /// Criterion's median time per iteration, in nanoseconds.
    median_ns: f64,
    /// Criterion's `throughput` entry from benchmark.json, if the benchmark declared one.
    throughput: Option<Value>,
}

/// Runs the task: `--quick` asks criterion for its quick mode; other arguments go to criterion
/// (e.g. a benchmark name filter).
pub(crate) fn run(args: &[String]) -> Result {
    let quick = args.iter().any(|a| a == "--quick");
    let criterion_args: Vec<&String> = args.iter().filter(|a| *a != "--quick").collect();
    // A run filtered to some benchmarks (`cargo xtask bench dask`) leaves the others' ratios out.
    let filtered = !criterion_args.is_empty();
    // Criterion's files are only as precise as the file system's clock: round down.
    let start = whole_seconds(SystemTime::now());

    let mut cmd = Cmd::cargo().args(["bench", "--package", "pontoon-benches", "--bench", "*"]);
    if quick || !criterion_args.is_empty() {
        cmd = cmd.arg("--");
        if quick {
            cmd = cmd.arg("--quick");
        }
        cmd = cmd.args(criterion_args);
    }
    cmd.run()?;

    let ws = workspace::metadata()?;
    let criterion_dir = std::env::var_os("CRITERION_HOME")
        .map_or_else(|| ws.target_dir.join("criterion"), PathBuf::from);
    let results = read_results(&criterion_dir, start)?;
    if results.is_empty() {
        return Err(format!(
            "no criterion results were written under {} during this run",
            criterion_dir.display()
        ));
    }

    let (ratios, problems) = read_ratios(&repo_root().join(RATIOS), &results, filtered)?;
    let report = render(quick, &results, &ratios);
    print!("{report}");
    let report_dir = ws.target_dir.join("pontoon-bench");
    let report_path = report_dir.join("report.md");
    std::fs::create_dir_all(&report_dir)
        .and_then(|()| std::fs::write(&report_path, &report))
        .map_err(|e| format!("could not write {}: {e}", report_path.display()))?;
    eprintln!("report written to {}", relative(&report_path));

    if problems.is_empty() {
        Ok(())
    } else {
        for problem in &problems {
            eprintln!("{problem}");
        }
        Err(format!(
            "{} problem(s) with {RATIOS}; see above and the `missing` rows in the report",
            problems.len()
        ))
    }
}

/// `time` rounded down to a whole second.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Reads every `…/new/benchmark.json` under `dir` written at or after `since`, with the
/// median from the `estimates.json` beside it; keyed by criterion's full id.
fn read_results(dir: &Path, since: SystemTime) -> Result<BTreeMap<String, Measurement>> {
    let mut files = Vec::new();
    find_benchmark_files(dir, &mut files);
    let mut results = BTreeMap::new();
    for file in files {
        let fresh = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified >= since);
        if !fresh {
            continue;
        }
        let benchmark = read_json(&file)?;
        let estimates = read_json(&file.with_file_name("estimates.json"))?;
        let full_id = benchmark["full_id"]
            .as_str()
            .ok_or_else(|| format!("{} has no full_id", file.display()))?;
        let median_ns = estimates["median"]["point_estimate"]
            .as_f64()
            .ok_or_else(|| format!("no median.point_estimate beside {}", file.display()))?;
        let throughput = Some(benchmark["throughput"].clone()).filter(|t| !t.is_null());
        results.insert(
            full_id.to_owned(),
            Measurement {
                median_ns,
                throughput,
            },
        );
    }
    Ok(results)
}

/// Adds every `benchmark.json` in a directory named `new` under `dir` to `files`.
fn find_benchmark_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_benchmark_files(&path, files);
        } else if entry.file_name() == "benchmark.json" && dir.file_name() == Some("new".as_ref()) {
            files.push(path);
        }
    }
}

/// Reads and parses a JSON file.
fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("could not read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("could not parse {}: {e}", path.display()))
}

/// One row of the ratio table: label, value (or `missing`), note.
type RatioRow = (String, String, String);

/// Reads the ratios file and computes each ratio from `results`. Returns the rows and the
/// problems (malformed lines, ids not measured in this run), each as `path:line: message`.
/// No ratios file means no ratios. In a `filtered` run, a ratio neither of whose benchmarks
/// was measured is skipped.
fn read_ratios(
    path: &Path,
    results: &BTreeMap<String, Measurement>,
    filtered: bool,
) -> Result<(Vec<RatioRow>, Vec<String>)> {
    if !path.exists() {
        return Ok((Vec::new(), Vec::new()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("could not read {}: {e}", path.display()))?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.splitn(4, '|').map(str::trim).collect();
        let [label, numerator, denominator, rest @ ..] = fields.as_slice() else {
            problems.push(format!(
                "{RATIOS}:{}: expected `label | numerator id | denominator id | note`",
                i + 1
            ));
            continue;
        };
        let note = rest.first().copied().unwrap_or_default();
        let median = |id: &str| results.get(id).map(|m| m.median_ns);
        let value = match (median(numerator), median(denominator)) {
            (Some(num), Some(den)) => format_ratio(num / den),
            (None, None) if filtered => continue,
            (num, den) => {
                for (id, found) in [(numerator, num), (denominator, den)] {
                    if found.is_none() {
                        problems.push(format!(
                            "{RATIOS}:{}: ratio `{label}`: benchmark `{id}` was not measured in this run",
                            i + 1
                        ));
                    }
                }
                "missing".to_owned()
            }
        };
        rows.push(((*label).to_owned(), value, note.to_owned()));
    }
    Ok((rows, problems))
}

/// The markdown report: one table of benchmarks, one of ratios.
fn render(quick: bool, results: &BTreeMap<String, Measurement>, ratios: &[RatioRow]) -> String {
    let mut out = String::from("# pontoon benchmarks\n\n");
    if quick {
        out.push_str("Criterion quick mode: rough numbers.\n\n");
    }
    out.push_str("| benchmark | median | throughput |\n| --- | --- | --- |\n");
    for (id, m) in results {
        let throughput = m
            .throughput
            .as_ref()
            .map_or_else(String::new, |t| format_throughput(t, m.median_ns));
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            cell(id),
            format_time(m.median_ns),
            throughput
        );
    }
    if !ratios.is_empty() {
        out.push_str("\n## Ratios\n\n| ratio | value | note |\n| --- | --- | --- |\n");
        for (label, value, note) in ratios {
            let _ = writeln!(out, "| {} | {} | {} |", cell(label), value, cell(note));
        }
    }
    out
}

/// A ratio with 2 decimals, or 2 significant digits when that would show 0.00.
fn format_ratio(ratio: f64) -> String {
    if ratio.abs() >= 0.01 || ratio == 0.0 || !ratio.is_finite() {
        format!("{ratio:.2}")
    } else {
        // Decimals up to and including the second significant digit; at most 17.
        let decimals = (1.0 - ratio.abs().log10().floor()).clamp(0.0, 17.0) as usize;
        format!("{ratio:.decimals$}")
    }
}

/// Escapes `|` for a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A time in nanoseconds in the largest unit that keeps it at least 1.
fn format_time(ns: f64) -> String {
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
fn format_throughput(throughput: &Value, median_ns: f64) -> String {
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
}
