//! Reading what criterion measured in this run: medians, their confidence intervals, sample
//! counts and declared throughput, from the JSON files criterion writes under `target/criterion`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use crate::cmd::Result;

/// One benchmark measured in this run.
#[derive(Clone, Debug)]
pub(crate) struct Measurement {
    /// Criterion's group, e.g. `wire/decode`; its first segment is the area.
    pub(crate) group: String,
    /// The function in the group, e.g. `pontoon-tcp`.
    pub(crate) function: String,
    /// The parameter, e.g. `64MiB`, if the benchmark has one.
    pub(crate) parameter: Option<String>,
    /// Time per iteration, in nanoseconds: criterion's median.
    pub(crate) median_ns: f64,
    /// The 95% confidence interval of the median, in nanoseconds.
    pub(crate) low_ns: f64,
    pub(crate) high_ns: f64,
    /// How many samples criterion took.
    pub(crate) samples: usize,
    /// Criterion's `throughput` entry, if the benchmark declared one.
    pub(crate) throughput: Option<Value>,
}

impl Measurement {
    /// The area this benchmark belongs to (`wire`, `store`, ...).
    pub(crate) fn area(&self) -> &str {
        self.group.split('/').next().unwrap_or(&self.group)
    }

    /// Half the width of the median's confidence interval, relative to the median.
    pub(crate) fn spread(&self) -> f64 {
        if self.median_ns > 0.0 {
            (self.high_ns - self.low_ns).abs() / 2.0 / self.median_ns
        } else {
            0.0
        }
    }
}

/// Reads every `…/new/benchmark.json` under `dir` written at or after `since`, with the
/// estimates and samples beside it; keyed by criterion's full id.
pub(crate) fn read(dir: &Path, since: SystemTime) -> Result<BTreeMap<String, Measurement>> {
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
        // A missing sample file is not worth failing the report for: the samples are then
        // not counted.
        let samples = read_json(&file.with_file_name("sample.json"))
            .ok()
            .map_or(0, |s| sample_count(&s));
        let text = |key: &str| benchmark[key].as_str().map(str::to_owned);
        let missing = |what: &str| format!("{} has no {what}", file.display());
        let full_id = text("full_id").ok_or_else(|| missing("full_id"))?;
        let median = &estimates["median"];
        let median_ns = median["point_estimate"]
            .as_f64()
            .ok_or_else(|| format!("no median.point_estimate beside {}", file.display()))?;
        let bound = |key: &str| {
            median["confidence_interval"][key]
                .as_f64()
                .unwrap_or(median_ns)
        };
        results.insert(
            full_id,
            Measurement {
                group: text("group_id").ok_or_else(|| missing("group_id"))?,
                function: text("function_id").unwrap_or_default(),
                parameter: text("value_str"),
                median_ns,
                low_ns: bound("lower_bound"),
                high_ns: bound("upper_bound"),
                samples,
                throughput: Some(benchmark["throughput"].clone()).filter(|t| !t.is_null()),
            },
        );
    }
    Ok(results)
}

/// How many samples criterion's `sample.json` holds (`iters` and `times`, one entry each);
/// samples without a positive iteration count are not counted.
fn sample_count(sample: &Value) -> usize {
    let (Some(iters), Some(times)) = (sample["iters"].as_array(), sample["times"].as_array())
    else {
        return 0;
    };
    iters
        .iter()
        .zip(times)
        .filter(|(n, t)| n.as_f64().is_some_and(|n| n > 0.0) && t.as_f64().is_some())
        .count()
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

#[cfg(test)]
pub(crate) fn sample(group: &str, function: &str, parameter: Option<&str>, ns: f64) -> Measurement {
    Measurement {
        group: group.to_owned(),
        function: function.to_owned(),
        parameter: parameter.map(str::to_owned),
        median_ns: ns,
        low_ns: ns * 0.9,
        high_ns: ns * 1.1,
        samples: 10,
        throughput: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_criterion_writes() {
        let dir = std::env::temp_dir().join(format!("xtask-results-{}", std::process::id()));
        let new = dir.join("wire_decode/64MiB/new");
        std::fs::create_dir_all(&new).unwrap();
        let write = |name: &str, value: Value| {
            std::fs::write(new.join(name), value.to_string()).unwrap();
        };
        write(
            "benchmark.json",
            serde_json::json!({"group_id": "wire/decode", "function_id": "pontoon",
                "value_str": "64MiB", "throughput": {"Bytes": 67108864},
                "full_id": "wire/decode/pontoon/64MiB"}),
        );
        write(
            "estimates.json",
            serde_json::json!({"median": {"point_estimate": 200.0,
                "confidence_interval": {"lower_bound": 190.0, "upper_bound": 230.0}}}),
        );
        write(
            "sample.json",
            serde_json::json!({"iters": [1.0, 2.0, 3.0], "times": [210.0, 360.0, 900.0]}),
        );
        let results = read(&dir, SystemTime::UNIX_EPOCH).unwrap();
        let m = &results["wire/decode/pontoon/64MiB"];
        assert_eq!((m.area(), m.function.as_str()), ("wire", "pontoon"));
        assert_eq!(m.parameter.as_deref(), Some("64MiB"));
        assert_eq!(m.samples, 3);
        assert_eq!(m.median_ns, 200.0);
        assert!((m.spread() - 0.1).abs() < 1e-9);
        assert_eq!(m.throughput.as_ref().unwrap()["Bytes"], 67108864);

        std::fs::remove_dir_all(&dir).unwrap();

        // A sample with no iterations, or without a time, is not counted.
        let sample = serde_json::json!({"iters": [0.0, 2.0, 3.0], "times": [0.0, 360.0, null]});
        assert_eq!(sample_count(&sample), 1);
    }
}
