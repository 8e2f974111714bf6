//! pontoon-pickle benchmarks next to CPython's `pickle.loads`/`pickle.dumps` on the same bytes,
//! in the same session: a list of 100,000 small dicts, and a dict of ten numpy arrays sent
//! out-of-band (10 MB each, and 1 KiB each to show decode does not grow with the size) and
//! in-band (10 MB each, inside the pickle, as `pickle.dumps` writes them by default).
//!
//! CPython runs in one helper process from the venv `cargo xtask bench --python` makes
//! (`$PONTOON_BENCH_PYTHON`; without it the benches are skipped, loudly): it writes the pickles, then times
//! as many loads or dumps as criterion asks for (`time.perf_counter_ns` around its own loop) and
//! reports the total, so both sides are measured per operation without process start-up.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use pontoon::pickle::{DumpOptions, LoadOptions, dumps, loads};
use pontoon_benches::{Timed, Timing};

const HELPER: &str = r#"
import os, pickle, sys, time
import numpy as np
dir = sys.argv[1]
small = [{"id": i, "name": "item-%d" % i, "value": i * 0.5, "ok": i % 2 == 0, "tags": ["a", "b"]}
         for i in range(100_000)]
def arrays(nbytes):
    return {"a%d" % k: np.full(nbytes // 8, float(k)) for k in range(10)}
values = {"small": small, "arrays-10MB": arrays(10_000_000), "arrays-1KiB": arrays(1024)}
values["arrays-10MB-inband"] = values["arrays-10MB"]
# In-band: the array bytes inside the pickle itself, as pickle.dumps writes them by default.
inband = {"small", "arrays-10MB-inband"}
pickles = {}
for name, v in values.items():
    buffers = []
    callback = None if name in inband else buffers.append
    data = pickle.dumps(v, protocol=5, buffer_callback=callback)
    raw = [b.raw().tobytes() for b in buffers]
    pickles[name] = (data, raw)
    open(os.path.join(dir, name + ".pkl"), "wb").write(data)
    for k, b in enumerate(raw):
        open(os.path.join(dir, "%s.buf%d" % (name, k)), "wb").write(b)
print("ready", flush=True)
for line in sys.stdin:
    op, name, n = line.split()
    n = int(n)
    data, raw = pickles[name]
    v = values[name]
    start = time.perf_counter_ns()
    if op == "loads":
        for _ in range(n):
            pickle.loads(data, buffers=raw)
    elif name in inband:
        for _ in range(n):
            pickle.dumps(v, protocol=5)
    else:
        for _ in range(n):
            pickle.dumps(v, protocol=5, buffer_callback=[].append)
    print(time.perf_counter_ns() - start, flush=True)
"#;

struct Peer {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
}

impl Peer {
    fn start(python: &Path) -> Peer {
        let dir = std::env::temp_dir().join(format!("pontoon-bench-pickle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(python)
            .arg("-c")
            .arg(HELPER)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the CPython helper");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the CPython helper did not start");
        Peer {
            _child: child,
            stdin,
            stdout,
            dir,
        }
    }

    /// CPython's time for `iters` of `op` on `name`.
    fn time(&mut self, op: &str, name: &str, iters: u64) -> Duration {
        writeln!(self.stdin, "{op} {name} {iters}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        Duration::from_nanos(line.trim().parse().expect("the helper's time"))
    }

    /// The pickle CPython wrote for `name`, and its out-of-band buffers.
    fn pickle(&self, name: &str) -> (Bytes, Vec<Bytes>) {
        let data = Bytes::from(std::fs::read(self.dir.join(format!("{name}.pkl"))).unwrap());
        let buffers = (0..)
            .map(|k| self.dir.join(format!("{name}.buf{k}")))
            .take_while(|p| p.exists())
            .map(|p| Bytes::from(std::fs::read(p).unwrap()))
            .collect();
        (data, buffers)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pickle(c: &mut Criterion) {
    // CPython also writes these benches' inputs: nothing runs without it.
    let Some(python) = pontoon_benches::python_peer("pickle") else {
        return;
    };
    let mut peer = Peer::start(&python);
    let mut options = LoadOptions::default();
    // A trusted benchmark input; the default budget (8x the input) is for peers.
    options.max_expansion_ratio = 64;
    for name in ["small", "arrays-10MB", "arrays-10MB-inband", "arrays-1KiB"] {
        let (data, buffers) = peer.pickle(name);
        let graph = loads(&data, &buffers, &options).unwrap();
        let mut group = c.benchmark_group(format!("pickle/{name}"));
        group.timing(Timing {
            samples: 20,
            ..Timing::DEFAULT
        });
        group.bench_function("pontoon-loads", |b| {
            b.iter(|| loads(black_box(&data), black_box(&buffers), &options).unwrap())
        });
        group.bench_function("cpython-loads", |b| {
            b.iter_custom(|iters| peer.time("loads", name, iters))
        });
        let mut dump_options = DumpOptions::default();
        dump_options.out_of_band = !name.ends_with("-inband") && name != "small";
        group.bench_function("pontoon-dumps", |b| {
            b.iter(|| dumps(black_box(&graph), &dump_options).unwrap())
        });
        group.bench_function("cpython-dumps", |b| {
            b.iter_custom(|iters| peer.time("dumps", name, iters))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = pontoon_benches::criterion();
    targets = pickle
}
criterion_main!(benches);
