//! The machine a report was measured on: what the report's first lines say, since every figure
//! depends on it.

use serde_json::{Value, json};

/// Cores, memory, kernel and CPU model, read from the OS (Linux's /proc where it has it).
#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) memory_bytes: Option<u64>,
    pub(crate) kernel: Option<String>,
    pub(crate) cpu: Option<String>,
}

impl Machine {
    pub(crate) fn describe() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let cpu = read("/proc/cpuinfo").and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        });
        let memory_bytes = read("/proc/meminfo").and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            kernel: read("/proc/sys/kernel/osrelease").map(|k| k.trim().to_owned()),
            cpu,
        }
    }

    /// One line for the report.
    pub(crate) fn line(&self) -> String {
        let memory = self.memory_bytes.map_or_else(
            || "unknown memory".to_owned(),
            |b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        );
        format!(
            "{} cores ({}), {memory}, {} {}",
            self.cores,
            self.cpu.as_deref().unwrap_or("unknown CPU"),
            std::env::consts::OS,
            self.kernel.as_deref().unwrap_or("")
        )
        .trim_end()
        .to_owned()
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "cores": self.cores,
            "memory_bytes": self.memory_bytes,
            "os": std::env::consts::OS,
            "kernel": self.kernel,
            "cpu": self.cpu,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_machine() {
        let machine = Machine::describe();
        assert!(machine.cores >= 1);
        let line = machine.line();
        assert!(
            line.starts_with(&format!("{} cores", machine.cores)),
            "{line}"
        );
        if cfg!(target_os = "linux") {
            assert!(machine.memory_bytes.is_some_and(|b| b > 0), "{line}");
        }
        assert_eq!(machine.json()["cores"], machine.cores);
    }
}
