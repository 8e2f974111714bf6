//! The report: one markdown table of ratios and one of benchmarks per area, the machine at the
//! top, plots linked; and the same figures as JSON for tools.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::machine::Machine;
use super::plot::Plot;
use super::ratios::{Evaluated, Target, Verdict};
use super::results::Measurement;
use super::{format_ratio, format_throughput, format_time};

/// The areas in the order the report shows them (others follow, by name).
const AREAS: [&str; 10] = [
    "wire",
    "family",
    "array",
    "transport",
    "persist",
    "pickle",
    "store",
    "remote",
    "dask",
    "python",
];

/// What the report says about how it was made.
pub(crate) struct Run<'a> {
    pub(crate) command: &'a str,
    pub(crate) quick: bool,
    pub(crate) python: bool,
    /// Seconds since the Unix epoch when the run started.
    pub(crate) started: u64,
    pub(crate) machine: &'a Machine,
    /// The areas measured in this run.
    pub(crate) areas_run: &'a [&'a str],
    /// Every area that has a bench target.
    pub(crate) areas_known: &'a [String],
}

impl Run<'_> {
    /// Whether the report shows `area`: it ran, or it has ratios but no bench target yet (so the
    /// table says what is not built).
    fn shows(&self, area: &str) -> bool {
        self.areas_run.contains(&area) || !self.areas_known.iter().any(|a| a == area)
    }
}

/// Every area that has a benchmark or a ratio, in report order.
fn areas(results: &BTreeMap<String, Measurement>, ratios: &[Evaluated]) -> Vec<String> {
    let mut found: BTreeSet<String> = results.values().map(|m| m.area().to_owned()).collect();
    found.extend(ratios.iter().map(|r| r.ratio.area().to_owned()));
    let mut ordered: Vec<String> = AREAS
        .iter()
        .filter(|a| found.remove(**a))
        .map(|a| (*a).to_owned())
        .collect();
    ordered.extend(found);
    ordered
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn percent(spread: f64) -> String {
    format!("±{:.0}%", spread * 100.0)
}

/// The value of an evaluated ratio as the report prints it.
fn value_text(e: &Evaluated) -> String {
    match (e.value, e.ratio.target) {
        (None, _) => "-".to_owned(),
        (Some(ns), Target::TimeAtMost(_)) => format_time(ns),
        (Some(ratio), _) => format_ratio(ratio),
    }
}

pub(crate) fn markdown(
    run: &Run<'_>,
    results: &BTreeMap<String, Measurement>,
    ratios: &[Evaluated],
    plots: &[Plot],
    notes: &[(String, String)],
) -> String {
    let mut out = String::from("# pontoon benchmarks\n\n");
    let _ = writeln!(out, "- Machine: {}", run.machine.line());
    let _ = writeln!(
        out,
        "- Run: `{}`, started {} UTC; {}",
        run.command,
        utc(run.started),
        if run.quick {
            "quick: ten samples a benchmark after a short warm-up (rougher figures)"
        } else {
            "full: each benchmark sampled as its group sets"
        }
    );
    let _ = writeln!(
        out,
        "- Python peers: {}",
        if run.python {
            "measured (the venv under target/)"
        } else {
            "not run; add `--python` to measure them"
        }
    );
    let shown: Vec<&Evaluated> = ratios
        .iter()
        .filter(|e| run.shows(e.ratio.area()))
        .collect();
    let count = |v: Verdict| {
        shown
            .iter()
            .filter(|e| e.verdict == v && e.ratio.target != Target::None)
            .count()
    };
    let _ = writeln!(
        out,
        "- Targets: {} met, {} missed, {} not measured",
        count(Verdict::Met),
        count(Verdict::Missed),
        count(Verdict::NotMeasured)
    );
    let not_run: Vec<&str> = run
        .areas_known
        .iter()
        .map(String::as_str)
        .filter(|a| !run.areas_run.contains(a))
        .collect();
    if !not_run.is_empty() {
        let _ = writeln!(out, "- Areas not run this time: {}", not_run.join(", "));
    }
    for (bench, text) in notes {
        let _ = writeln!(out, "- Note, {bench}: {}", text.replace('\n', " "));
    }
    out.push('\n');
    out.push_str(
        "A ratio divides the first benchmark's median time by the second's (for throughput \
         rows the peer comes first, so higher is better for pontoon). ± is the half-width of \
         the 95% confidence intervals of both medians, combined; samples is the smaller \
         sample count.\n",
    );
    for area in areas(results, ratios).into_iter().filter(|a| run.shows(a)) {
        let _ = writeln!(out, "\n## {area}\n");
        let area_ratios: Vec<&Evaluated> =
            ratios.iter().filter(|e| e.ratio.area() == area).collect();
        if !area_ratios.is_empty() {
            out.push_str("| ratio | value | ± | samples | target | | first | second | note |\n");
            out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
            for e in area_ratios {
                let median = |id: Option<&String>| {
                    id.map_or_else(
                        || "-".to_owned(),
                        |id| {
                            results
                                .get(id)
                                .map_or_else(|| "not run".to_owned(), |m| format_time(m.median_ns))
                        },
                    )
                };
                let mark = match e.verdict {
                    Verdict::Missed => "**MISSED**",
                    other => other.as_str(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {mark} | {} | {} | {} |",
                    cell(&e.ratio.label),
                    value_text(e),
                    e.spread.map_or_else(String::new, percent),
                    e.samples.map_or_else(String::new, |n| n.to_string()),
                    e.ratio.target,
                    median(Some(&e.ratio.numerator)),
                    median(e.ratio.denominator.as_ref()),
                    cell(&e.ratio.note)
                );
            }
            out.push('\n');
        }
        let measured: Vec<(&String, &Measurement)> =
            results.iter().filter(|(_, m)| m.area() == area).collect();
        if measured.is_empty() {
            out.push_str(if run.areas_known.contains(&area) {
                "No benchmark of this area was measured in this run.\n"
            } else {
                "This area has no benchmarks yet.\n"
            });
            continue;
        }
        out.push_str(
            "| benchmark | median | ± | samples | throughput |\n| --- | --- | --- | --- | --- |\n",
        );
        for (id, m) in measured {
            let throughput = m
                .throughput
                .as_ref()
                .map_or_else(String::new, |t| format_throughput(t, m.median_ns));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {throughput} |",
                cell(id),
                format_time(m.median_ns),
                percent(m.spread()),
                m.samples
            );
        }
        let area_plots: Vec<&Plot> = plots
            .iter()
            .filter(|p| p.group.split('/').next() == Some(area.as_str()))
            .collect();
        if !area_plots.is_empty() {
            out.push_str("\nPlots: ");
            let links: Vec<String> = area_plots
                .iter()
                .map(|p| format!("[{}](plots/{})", p.group, p.file_name))
                .collect();
            out.push_str(&links.join(", "));
            out.push('\n');
        }
    }
    out
}

pub(crate) fn json(
    run: &Run<'_>,
    results: &BTreeMap<String, Measurement>,
    ratios: &[Evaluated],
    plots: &[Plot],
    notes: &[(String, String)],
) -> Value {
    let benchmarks: Vec<Value> = results
        .iter()
        .map(|(id, m)| {
            json!({
                "id": id,
                "area": m.area(),
                "group": m.group,
                "function": m.function,
                "parameter": m.parameter,
                "median_ns": m.median_ns,
                "median_low_ns": m.low_ns,
                "median_high_ns": m.high_ns,
                "samples": m.samples,
                "throughput": m.throughput,
            })
        })
        .collect();
    let ratios: Vec<Value> = ratios
        .iter()
        .map(|e| {
            json!({
                "label": e.ratio.label,
                "area": e.ratio.area(),
                "numerator": e.ratio.numerator,
                "denominator": e.ratio.denominator,
                "value": e.value,
                "spread": e.spread,
                "samples": e.samples,
                "target": e.ratio.target.to_string(),
                "verdict": match e.verdict {
                    Verdict::Met => "met",
                    Verdict::Missed => "missed",
                    Verdict::Shown => "no target",
                    Verdict::NotMeasured => "not measured",
                },
                "note": e.ratio.note,
            })
        })
        .collect();
    let plots: Vec<Value> = plots
        .iter()
        .map(|p| json!({"group": p.group, "file": format!("plots/{}", p.file_name)}))
        .collect();
    json!({
        "machine": run.machine.json(),
        "command": run.command,
        "started_unix": run.started,
        "quick": run.quick,
        "python": run.python,
        "benchmarks": benchmarks,
        "ratios": ratios,
        "plots": plots,
        "notes": notes.iter().map(|(bench, text)| json!({"bench": bench, "text": text})).collect::<Vec<_>>(),
    })
}

/// `secs` since the epoch as `YYYY-MM-DD HH:MM` (UTC), without a date crate.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::super::ratios;
    use super::super::results::sample;
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_796_222_400), "2026-12-02 14:40");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00");
    }

    #[test]
    fn report_has_one_section_per_area_and_marks_misses() {
        let mut results = BTreeMap::new();
        results.insert(
            "wire/a/pontoon".to_owned(),
            sample("wire/a", "pontoon", None, 300.0),
        );
        results.insert(
            "wire/a/peer".to_owned(),
            sample("wire/a", "peer", None, 100.0),
        );
        results.insert("store/b/x".to_owned(), sample("store/b", "x", None, 5.0));
        let (parsed, problems) = ratios::parse(
            "r",
            "slow | wire/a/pontoon | wire/a/peer | <= 1.2 | pontoon / peer\n\
             later | dask/x/y | dask/x/z | >= 20 | not built yet\n",
        );
        assert!(problems.is_empty());
        let evaluated = ratios::evaluate(&parsed, &results);
        let machine = Machine::describe();
        let known = ["wire".to_owned(), "family".to_owned(), "store".to_owned()];
        let run = Run {
            command: "cargo xtask bench",
            quick: true,
            python: false,
            started: 0,
            machine: &machine,
            areas_run: &["wire", "store"],
            areas_known: &known,
        };
        let notes = [("ray".to_owned(), "Ray could not start here".to_owned())];
        let text = markdown(&run, &results, &evaluated, &[], &notes);
        let sections: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
        assert_eq!(sections, ["## wire", "## store", "## dask"]);
        assert!(
            text.contains("| slow | 3.00 | ±14% | 10 | <= 1.2 | **MISSED** |"),
            "{text}"
        );
        assert!(text.contains("| later | - |"), "{text}");
        assert!(
            text.contains("- Targets: 0 met, 1 missed, 1 not measured"),
            "{text}"
        );
        assert!(
            text.contains("- Areas not run this time: family\n"),
            "{text}"
        );
        assert!(text.contains("This area has no benchmarks yet."), "{text}");
        assert!(
            text.contains("- Note, ray: Ray could not start here\n"),
            "{text}"
        );
        let value = json(&run, &results, &evaluated, &[], &notes);
        assert_eq!(value["notes"][0]["bench"], "ray");
        assert_eq!(value["ratios"][0]["verdict"], "missed");
        assert_eq!(value["benchmarks"].as_array().unwrap().len(), 3);
    }
}
