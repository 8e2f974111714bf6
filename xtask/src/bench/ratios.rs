//! benches/ratios.txt: the ratios the report computes and the target each one is held to.
//!
//! One ratio a line, `label | numerator id | denominator id | target | note`, where the ids are
//! criterion full ids (`group/function/parameter`). The target is `<= X` or `>= X` for a ratio,
//! or, with `-` as the denominator, `<= 5us` (ns, us, µs, ms, s) for a median time on its own;
//! `-` means no target. Blank lines and lines starting with `#` are skipped.

use std::collections::BTreeMap;
use std::fmt;

use super::results::Measurement;

/// What a figure is held to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Target {
    /// The ratio is at most this.
    AtMost(f64),
    /// The ratio is at least this.
    AtLeast(f64),
    /// The numerator's median time is at most this many nanoseconds (no denominator).
    TimeAtMost(f64),
    /// Shown for information.
    None,
}

impl Target {
    fn parse(text: &str, has_denominator: bool) -> Result<Target, String> {
        let text = text.trim();
        if text.is_empty() || text == "-" {
            return Ok(Target::None);
        }
        let (at_most, rest) = if let Some(rest) = text.strip_prefix("<=") {
            (true, rest.trim())
        } else if let Some(rest) = text.strip_prefix(">=") {
            (false, rest.trim())
        } else {
            return Err(format!("target `{text}` is not `<= X`, `>= X` or `-`"));
        };
        if has_denominator {
            let value: f64 = rest
                .parse()
                .map_err(|_| format!("target `{text}`: `{rest}` is not a number"))?;
            return Ok(if at_most {
                Target::AtMost(value)
            } else {
                Target::AtLeast(value)
            });
        }
        if !at_most {
            return Err(format!(
                "target `{text}`: a time on its own takes `<= TIME`"
            ));
        }
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, unit) = rest.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("target `{text}`: `{number}` is not a number"))?;
        let scale = match unit.trim() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            other => return Err(format!("target `{text}`: unknown time unit `{other}`")),
        };
        Ok(Target::TimeAtMost(number * scale))
    }

    /// Whether `value` (a ratio, or a time in nanoseconds for `TimeAtMost`) meets the target.
    fn met_by(self, value: f64) -> Option<bool> {
        match self {
            Target::AtMost(limit) | Target::TimeAtMost(limit) => Some(value <= limit),
            Target::AtLeast(limit) => Some(value >= limit),
            Target::None => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::AtMost(x) => write!(f, "<= {x}"),
            Target::AtLeast(x) => write!(f, ">= {x}"),
            Target::TimeAtMost(ns) => write!(f, "<= {}", super::format_time(*ns)),
            Target::None => f.write_str("-"),
        }
    }
}

/// One line of the ratios file.
#[derive(Clone, Debug)]
pub(crate) struct Ratio {
    pub(crate) label: String,
    pub(crate) numerator: String,
    /// `None` for a time held to an absolute target.
    pub(crate) denominator: Option<String>,
    pub(crate) target: Target,
    pub(crate) note: String,
}

impl Ratio {
    /// The area the ratio is reported under: its numerator's first id segment.
    pub(crate) fn area(&self) -> &str {
        self.numerator.split('/').next().unwrap_or(&self.numerator)
    }
}

/// How a ratio came out in this run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Verdict {
    Met,
    Missed,
    /// Measured, with no target.
    Shown,
    /// A benchmark it needs was not run (another area, `--python`, not built yet).
    NotMeasured,
}

impl Verdict {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::Shown => "",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// A ratio evaluated against this run's measurements.
#[derive(Clone, Debug)]
pub(crate) struct Evaluated {
    pub(crate) ratio: Ratio,
    /// The ratio (or the time, for an absolute target), if both sides were measured.
    pub(crate) value: Option<f64>,
    /// Relative spread of the value: the two sides' spreads combined in quadrature.
    pub(crate) spread: Option<f64>,
    /// The fewer of the two sides' sample counts.
    pub(crate) samples: Option<usize>,
    pub(crate) verdict: Verdict,
}

/// Parses the ratios file; returns the ratios and the malformed lines as `path:line: message`.
pub(crate) fn parse(path_shown: &str, text: &str) -> (Vec<Ratio>, Vec<String>) {
    let mut ratios = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.splitn(5, '|').map(str::trim).collect();
        let [label, numerator, denominator, target, rest @ ..] = fields.as_slice() else {
            problems.push(format!(
                "{path_shown}:{}: expected `label | numerator id | denominator id | target | note`",
                i + 1
            ));
            continue;
        };
        let denominator = Some(*denominator).filter(|d| *d != "-" && !d.is_empty());
        match Target::parse(target, denominator.is_some()) {
            Ok(target) => ratios.push(Ratio {
                label: (*label).to_owned(),
                numerator: (*numerator).to_owned(),
                denominator: denominator.map(str::to_owned),
                target,
                note: rest.first().copied().unwrap_or_default().to_owned(),
            }),
            Err(message) => problems.push(format!("{path_shown}:{}: {message}", i + 1)),
        }
    }
    (ratios, problems)
}

/// Evaluates each ratio against `results`.
pub(crate) fn evaluate(
    ratios: &[Ratio],
    results: &BTreeMap<String, Measurement>,
) -> Vec<Evaluated> {
    ratios
        .iter()
        .map(|ratio| {
            let numerator = results.get(&ratio.numerator);
            let denominator = ratio.denominator.as_ref().map(|id| results.get(id));
            let (value, spread, samples) = match (numerator, denominator) {
                (Some(n), None) => (Some(n.median_ns), Some(n.spread()), Some(n.samples)),
                (Some(n), Some(Some(d))) if d.median_ns > 0.0 => (
                    Some(n.median_ns / d.median_ns),
                    Some(n.spread().hypot(d.spread())),
                    Some(n.samples.min(d.samples)),
                ),
                _ => (None, None, None),
            };
            let verdict = match value.map(|v| ratio.target.met_by(v)) {
                None => Verdict::NotMeasured,
                Some(None) => Verdict::Shown,
                Some(Some(true)) => Verdict::Met,
                Some(Some(false)) => Verdict::Missed,
            };
            Evaluated {
                ratio: ratio.clone(),
                value,
                spread,
                samples,
                verdict,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::results::sample;
    use super::*;

    #[test]
    fn parses_targets_and_reports_bad_lines() {
        let text = "# comment\n\
            a | x/n | x/d | <= 1.2 | note one\n\
            b | x/n | x/d | >= 0.9 |\n\
            c | x/n | - | <= 5us | absolute\n\
            d | x/n | x/d | - | shown\n\
            bad | x/n\n\
            e | x/n | x/d | about 1 | no\n\
            f | x/n | - | >= 3ms | no\n";
        let (ratios, problems) = parse("r.txt", text);
        let targets: Vec<Target> = ratios.iter().map(|r| r.target).collect();
        assert_eq!(
            targets,
            [
                Target::AtMost(1.2),
                Target::AtLeast(0.9),
                Target::TimeAtMost(5000.0),
                Target::None
            ]
        );
        assert_eq!(ratios[2].denominator, None);
        assert_eq!(ratios[0].note, "note one");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("r.txt:6:"), "{problems:?}");
    }

    #[test]
    fn marks_met_missed_and_unmeasured() {
        let (ratios, _) = parse(
            "r.txt",
            "fast | a/p | a/q | <= 1.0 |\nslow | a/p | a/q | >= 2 |\n\
             gone | a/p | b/none | <= 1 |\nabs | a/q | - | <= 1us |\ninfo | a/q | a/p | - |\n",
        );
        let mut results = BTreeMap::new();
        results.insert("a/p".to_owned(), sample("a", "p", None, 100.0));
        results.insert("a/q".to_owned(), sample("a", "q", None, 200.0));
        let verdicts: Vec<Verdict> = evaluate(&ratios, &results)
            .iter()
            .map(|e| e.verdict)
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Met,
                Verdict::Missed,
                Verdict::NotMeasured,
                Verdict::Met,
                Verdict::Shown
            ]
        );
        let first = &evaluate(&ratios, &results)[0];
        assert_eq!(first.value, Some(0.5));
        assert!((first.spread.unwrap() - 0.1f64.hypot(0.1)).abs() < 1e-12);
    }
}
