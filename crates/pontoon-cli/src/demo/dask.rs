//! The demo's Dask part: a real Dask scheduler and worker (Python's distributed, started here
//! and stopped with the demo), this process scattering an array to the worker through the
//! scheduler in Dask's own protocol, a Python client gathering and checking it, and the reverse:
//! Python scatters, this process gathers the array as a view of the received frames. Without a
//! Python that imports distributed, it says so and goes on.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pontoon::array::Array;
use pontoon::dask::{Client, NdArray, Value};

use super::transport::Reaper;
use super::{Args, duration, rate, size};

/// How long the scheduler may take to start, and each step after.
const DEADLINE: Duration = Duration::from_secs(60);

/// A scheduler and one worker in one Python process, on 127.0.0.1 with ephemeral ports;
/// prints the scheduler's address, then runs until its stdin closes.
const CLUSTER: &str = r#"
import asyncio, logging, sys
logging.disable(logging.WARNING)
from distributed import Scheduler, Worker
async def main():
    async with Scheduler(host="127.0.0.1", port=0, dashboard_address=None, dashboard=False) as s:
        async with Worker(s.address, host="127.0.0.1", nthreads=1, memory_limit=0, dashboard=False):
            while not s.workers:
                await asyncio.sleep(0.05)
            print(s.address, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"#;

/// A Python client: gathers `rust-array` and checks it, then scatters `python-array`.
const PY_CLIENT: &str = r#"
import asyncio, sys, time
import numpy as np
from distributed.core import rpc
from distributed.protocol import to_serialize
n = int(sys.argv[2])
async def main():
    async with rpc(sys.argv[1]) as s:
        start = time.perf_counter()
        r = await s.gather(keys=["rust-array"])
        took = time.perf_counter() - start
        x = r["data"]["rust-array"]
        assert x.dtype == np.float64 and x.shape == (n,)
        assert np.array_equal(x, np.arange(n) * 0.5)
        print("gathered %d float64 in %.1f ms, values checked" % (n, took * 1e3), flush=True)
        keys = await s.scatter(data={"python-array": to_serialize(np.arange(n, dtype="<i8"))},
                               client="pontoon-demo-python", workers=None, broadcast=False)
        print("scattered", ",".join(keys), flush=True)
asyncio.run(main())
"#;

/// The Python to use: `$PONTOON_PYTHON`, else `python3`, if it imports distributed.
fn python() -> Option<String> {
    let python = std::env::var("PONTOON_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned());
    let ok = Command::new(&python)
        .args(["-c", "import distributed, numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

pub(super) fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    println!("pontoon demo: an array through a live Dask scheduler, through pontoon-dask");
    let Some(python) = python() else {
        println!(
            "  skipped           no Python that imports distributed and numpy ($PONTOON_PYTHON, else \
             python3); `cargo xtask test` makes a venv with them under target/pontoon-venv"
        );
        return Ok(());
    };
    let mut child = Command::new(&python)
        .args(["-c", CLUSTER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let _cluster = Reaper(Some(child));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let address = rx
        .recv_timeout(DEADLINE)
        .map_err(|_| "the Dask scheduler did not start within 60 s")?
        .trim()
        .to_owned();
    if address.is_empty() {
        return Err("the Dask scheduler exited before it started".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let n = (args.payload_mib.max(1) << 20) / 8;
    rt.block_on(async {
        let step = |what: &'static str| move |_| format!("{what} took more than 60 s");
        let mut client = tokio::time::timeout(DEADLINE, Client::connect(&address))
            .await
            .map_err(step("connecting"))??;
        let identity = client.identity().await?;
        let workers = match identity.get("workers") {
            Some(Value::Map(w)) => w.len(),
            _ => 0,
        };
        let agreed = client.comm().handshake().clone();
        println!(
            "  scheduler         {address} (Python's distributed), {workers} worker; handshake \
             agreed on pickle protocol {} and compression {:?}",
            agreed.pickle_protocol, agreed.compression
        );
        let array = Array::from_vec((0..n).map(|i| i as f64 * 0.5).collect::<Vec<_>>());
        let start = std::time::Instant::now();
        let scatter = client.scatter(vec![("rust-array".into(), NdArray::from(array).into())]);
        let keys = tokio::time::timeout(DEADLINE, scatter)
            .await
            .map_err(step("scatter"))??;
        let took = start.elapsed();
        println!(
            "  rust scatters     {} of float64 as {keys:?} to the worker, in Dask's own framing \
             (the array's buffer is the frame, no copy), {}",
            size(n as u64 * 8),
            duration(took)
        );
        let output = Command::new(&python)
            .args(["-c", PY_CLIENT, &address, &n.to_string()])
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "the Python client failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            println!("  python            {line}");
        }
        let start = std::time::Instant::now();
        let gathered = tokio::time::timeout(DEADLINE, client.gather(&["python-array"]))
            .await
            .map_err(step("gather"))??;
        let took = start.elapsed();
        let array = gathered[0]
            .1
            .as_ndarray()
            .and_then(NdArray::array)
            .ok_or("the gathered value is not a numeric array")?;
        let values = array.as_slice::<i64>()?;
        if !values.iter().enumerate().all(|(i, &v)| v == i as i64) {
            return Err("the gathered array's values are wrong".into());
        }
        println!(
            "  rust gathers      {} of int64 scattered by Python, as a view of the received \
             frame (aligned, no copy), values checked, {} ({})",
            size(n as u64 * 8),
            duration(took),
            rate(n * 8, took)
        );
        let who = client.who_has(&["rust-array", "python-array"]).await?;
        println!("  who_has           {who:?}");
        Ok::<(), Box<dyn Error>>(())
    })
}
