//! pontoon-dask benchmarks next to Dask's own Python in the same session:
//!
//! - decoding the message that carries a 100 MB numpy array (`{"op": "update-data", "data":
//!   {"x": to_serialize(array)}}`, as distributed's TCP comm writes it, two 64 MiB shards),
//!   from frames laid out as each side's comm receives them: pontoon-dask's `decode_in` next to
//!   `distributed.protocol.loads`. Neither copies the payload, so both are independent of its
//!   size; the target is pontoon at least 20x faster.
//! - moving a 1 GiB array over a real Dask comm on loopback (handshake, framing, one small
//!   acknowledgement per message): Rust to Python and Python to Rust, next to Python to Python
//!   (two Python processes), each receiver decoding the array as a view of what it received.
//!
//! Python runs as helper processes from the venv `cargo xtask bench --python` makes
//! (`$PONTOON_BENCH_PYTHON`, with distributed; without it the benches are skipped, loudly):
//! each times its own loops with `time.perf_counter_ns` and reports the total, so no process
//! start-up is measured.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pontoon::array::Array;
use pontoon::dask::{Comm, DecodeOptions, NdArray, Value, decode_in, framing};
use pontoon::wire::Limits;
use pontoon_benches::{Timed, Timing};

const HELPER: &str = r#"
import asyncio, logging, os, sys, time
logging.disable(logging.WARNING)
import numpy as np
from distributed.comm import connect, listen
from distributed.comm.tcp import TCP, _add_frames_header
from distributed.protocol import dumps, loads, to_serialize
from distributed.protocol.utils import host_array, unpack_frames

dir = sys.argv[1]
x = np.arange(100_000_000 // 8, dtype="f8")
msg = {"op": "update-data", "data": {"x": to_serialize(x)}}
frames, _, _ = _add_frames_header(dumps(msg, context={"compression": None}, frame_split_size=TCP.max_shard_size))
stream = b"".join(bytes(f) for f in frames)
open(os.path.join(dir, "decode-100MB.bin"), "wb").write(stream)

def as_received(stream):
    # What TCP.read makes: the first N bytes in one host array, the rest one host array a frame.
    n = int.from_bytes(stream[:8], "little")
    first = host_array(n)
    first[:] = stream[8:8 + n]
    received, missing = unpack_frames(first, partial=True)
    at = 8 + n
    for length in missing:
        buf = host_array(length)
        buf[:] = stream[at:at + length]
        received.append(buf)
        at += length
    return received

received = as_received(stream)
assert np.array_equal(loads(received)["data"]["x"], x)
big = np.arange(1 << 27, dtype="f8")  # 1 GiB
big_msg = {"op": "put", "x": to_serialize(big)}

async def handler(comm):
    try:
        while True:
            got = await comm.read()
            assert got["x"].nbytes == 1 << 30
            await comm.write("ack")
    except Exception:
        pass

async def main():
    listener = listen("tcp://127.0.0.1:0", handler)
    await listener.start()
    print("ready", listener.contact_address, flush=True)
    loop = asyncio.get_running_loop()
    comms = {}
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        op, *args = line.split()
        if op == "loads":
            n = int(args[0])
            start = time.perf_counter_ns()
            for _ in range(n):
                loads(received)
            print(time.perf_counter_ns() - start, flush=True)
        elif op == "connect":
            comms[args[0]] = await connect(args[0])
            print("connected", flush=True)
        elif op == "send-big":
            # To a Python peer: write, wait for its ack; timed here.
            comm, n = comms[args[0]], int(args[1])
            start = time.perf_counter_ns()
            for _ in range(n):
                await comm.write(big_msg)
                assert await comm.read() == "ack"
            print(time.perf_counter_ns() - start, flush=True)
        elif op == "serve-big":
            # To the Rust peer: each "go" it sends is answered with the big message; timed there.
            comm, n = comms[args[0]], int(args[1])
            for _ in range(n):
                assert await comm.read() == "go"
                await comm.write(big_msg)
            print("served", flush=True)

asyncio.run(main())
"#;

/// One Python helper process.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
    address: String,
}

impl Peer {
    fn start(python: &Path, name: &str) -> Peer {
        let dir =
            std::env::temp_dir().join(format!("pontoon-bench-dask-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(python)
            .arg("-c")
            .arg(HELPER)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python helper");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let address = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("the Python helper did not start: {line:?}"))
            .to_owned();
        Peer {
            child,
            stdin,
            stdout,
            dir,
            address,
        }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    fn time(&mut self, command: &str) -> Duration {
        Duration::from_nanos(self.ask(command).parse().expect("the helper's time"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn decode(c: &mut Criterion) {
    let Some(python) = pontoon_benches::python_peer("dask") else {
        return;
    };
    let mut peer = Peer::start(&python, "decode");
    let stream = std::fs::read(peer.dir.join("decode-100MB.bin")).unwrap();
    // Laid out as `Comm` receives it: one aligned buffer, frames at aligned offsets.
    let (frames, buffer) = framing::decode_aligned(&stream, &Limits::DEFAULT).unwrap();
    let options = DecodeOptions::default();
    let value = decode_in(&frames, Some(&buffer), &options).unwrap();
    let array = value
        .get("data")
        .and_then(|d| d.get("x"))
        .and_then(Value::as_ndarray)
        .and_then(NdArray::array)
        .unwrap();
    assert_eq!(array.len(), 12_500_000);
    let at = array.data().as_ptr() as usize;
    assert!(
        at >= buffer.as_ptr() as usize && at < buffer.as_ptr() as usize + buffer.len(),
        "the decoded array must be a view of the received buffer"
    );
    let mut group = c.benchmark_group("dask/decode-100MB");
    group.bench_function("pontoon", |b| {
        b.iter(|| decode_in(black_box(&frames), Some(&buffer), &options).unwrap())
    });
    group.bench_function("python-loads", |b| {
        b.iter_custom(|iters| peer.time(&format!("loads {iters}")))
    });
    group.finish();
}

fn transfer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(python) = pontoon_benches::python_peer("dask") else {
        return;
    };
    let receiver = Peer::start(&python, "receiver");
    let mut sender = Peer::start(&python, "sender");
    let big = Array::from_vec((0..1u64 << 27).map(|i| i as f64).collect::<Vec<_>>());
    let msg = Value::map([("op", "put".into()), ("x", NdArray::from(big).into())]);

    let mut group = c.benchmark_group("dask/transfer-1GiB");
    group.timing(Timing {
        samples: 10,
        warm_up: Duration::from_secs(1),
        measurement: Duration::from_secs(8),
    });
    group.throughput(Throughput::Bytes(1 << 30));

    // Rust -> Python: the receiver helper's listener reads, decodes and acknowledges.
    let mut to_python = runtime.block_on(Comm::connect(&receiver.address)).unwrap();
    group.bench_function("rust-to-python", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    to_python.send(&msg).await.unwrap();
                    assert_eq!(to_python.recv().await.unwrap(), Value::from("ack"));
                }
                start.elapsed()
            })
        })
    });

    // Python -> Rust: the sender helper connects to a Rust listener and answers each "go".
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = format!("tcp://{}", listener.local_addr().unwrap());
    let accept = runtime.spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        Comm::handshake_over(stream, Default::default(), Default::default())
            .await
            .unwrap()
    });
    assert_eq!(sender.ask(&format!("connect {address}")), "connected");
    let mut from_python = runtime.block_on(accept).unwrap();
    let go = Value::from("go");
    group.bench_function("python-to-rust", |b| {
        b.iter_custom(|iters| {
            writeln!(sender.stdin, "serve-big {address} {iters}").unwrap();
            let elapsed = runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    from_python.send(&go).await.unwrap();
                    let got = from_python.recv().await.unwrap();
                    let array = got.get("x").and_then(Value::as_ndarray).unwrap();
                    assert_eq!(array.shape(), [1 << 27]);
                }
                start.elapsed()
            });
            let mut line = String::new();
            sender.stdout.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "served");
            elapsed
        })
    });

    // Python -> Python: the sender helper writes to the receiver helper's listener.
    assert_eq!(
        sender.ask(&format!("connect {}", receiver.address)),
        "connected"
    );
    let to_receiver = receiver.address.clone();
    group.bench_function("python-to-python", |b| {
        b.iter_custom(|iters| sender.time(&format!("send-big {to_receiver} {iters}")))
    });
    group.finish();
    drop(receiver);
}

criterion_group! {
    name = benches;
    config = pontoon_benches::criterion();
    targets = decode, transfer
}
criterion_main!(benches);
