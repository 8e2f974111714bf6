//! Python peers that have no pontoon crate of their own to sit next to: Ray's object store
//! (`ray.put`/`ray.get`) from the `ray` package, measured in the same run as pontoon's store
//! (benches/ratios.txt divides pontoon's store figures by these).
//!
//! Ray runs in one helper process from the venv `cargo xtask bench --python` makes
//! (`$PONTOON_BENCH_PYTHON`): it starts a local Ray instance, then times as many puts or gets as
//! criterion asks for (`time.perf_counter_ns` around its own loop) and reports the total, so
//! neither process start-up nor Ray's start-up is measured. If Ray cannot start here, the
//! report's note says why and the rows stay empty.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pontoon_benches::{Timed, Timing, note, python_peer};

const HELPER: &str = r#"
import sys, time
try:
    import numpy as np
    import ray
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             object_store_memory=6 << 30)
except Exception as e:
    print("unavailable", type(e).__name__, str(e).replace("\n", " ")[:300], flush=True)
    sys.exit(0)
small = b"x" * 100
big = np.ones(1 << 27)  # 1 GiB of float64, touched; the store holds six, so puts never spill
refs = {"100B": ray.put(small), "1GiB": ray.put(big)}
values = {"100B": small, "1GiB": big}
print("ready", ray.__version__, flush=True)
for line in sys.stdin:
    op, size, n = line.split()
    n = int(n)
    start = time.perf_counter_ns()
    if op == "put":
        value = values[size]
        for _ in range(n):
            ref = ray.put(value)
            del ref
    else:
        ref = refs[size]
        for _ in range(n):
            got = ray.get(ref)
            del got
    print(time.perf_counter_ns() - start, flush=True)
"#;

struct Ray {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Ray {
    /// Starts the helper; `Err` says why Ray is not available.
    fn start(python: &std::path::Path) -> Result<(Ray, String), String> {
        let mut child = Command::new(python)
            .arg("-c")
            .arg(HELPER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", python.display()))?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("the Ray helper said nothing: {e}"))?;
        match line.trim().strip_prefix("ready ") {
            Some(version) => Ok((
                Ray {
                    child,
                    stdin,
                    stdout,
                },
                version.to_owned(),
            )),
            None => {
                let _ = child.wait();
                Err(match line.trim() {
                    "" => "the Ray helper exited before it was ready".to_owned(),
                    said => format!("Ray could not start here: {said}"),
                })
            }
        }
    }

    fn time(&mut self, op: &str, size: &str, iters: u64) -> Duration {
        writeln!(self.stdin, "{op} {size} {iters}").expect("the Ray helper is running");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the Ray helper's time");
        Duration::from_nanos(line.trim().parse().expect("a time in ns"))
    }
}

impl Drop for Ray {
    fn drop(&mut self) {
        // Closing stdin ends the helper's loop; `ray.shutdown` runs at its exit.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ray(c: &mut Criterion) {
    let Some(python) = python_peer("ray") else {
        return;
    };
    let mut ray = match Ray::start(&python) {
        Ok((ray, version)) => {
            eprintln!("ray: measuring Ray {version}");
            ray
        }
        Err(why) => {
            note("ray", &why);
            return;
        }
    };
    let mut group = c.benchmark_group("python/ray");
    group.timing(Timing {
        samples: 10,
        warm_up: Duration::from_millis(500),
        measurement: Duration::from_secs(3),
    });
    for size in ["100B", "1GiB"] {
        group.bench_function(format!("put/{size}"), |b| {
            b.iter_custom(|iters| ray.time("put", size, iters))
        });
        group.bench_function(format!("get/{size}"), |b| {
            b.iter_custom(|iters| ray.time("get", size, iters))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = pontoon_benches::criterion();
    targets = ray
}
criterion_main!(benches);
