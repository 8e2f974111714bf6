//! Against a real Dask scheduler and worker (from the venv, on 127.0.0.1, ephemeral ports, killed
//! by a guard, every step bounded in time): the handshake and `identity`; Rust scatters arrays
//! and Python gathers and checks them; Python scatters, Rust gathers and checks views of the
//! received frames; `who_has`; the error an unknown key gets and the error a raising handler
//! gets.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pontoon_array::Array;
use pontoon_dask::{Client, ClientError, NdArray, Object, Value, decode_in};

/// Every step's bound.
const STEP: Duration = Duration::from_secs(60);

/// The scheduler and worker process, killed when dropped.
struct Cluster {
    child: Child,
    scheduler: String,
    worker: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_cluster() -> Cluster {
    let python = common::python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the scheduler");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let mut cluster = Cluster {
        child,
        scheduler: String::new(),
        worker: String::new(),
    };
    let line = rx
        .recv_timeout(STEP)
        .expect("the scheduler and worker did not start within 60 s");
    let mut parts = line.split_whitespace();
    cluster.scheduler = parts.next().expect("the scheduler's address").to_owned();
    cluster.worker = parts.next().expect("the worker's address").to_owned();
    cluster
}

async fn step<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than 60 s"))
}

fn python_check(script: &str, address: &str) -> String {
    let out = common::python_output(script, &[address]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_client_talks_to_a_live_dask_scheduler() {
    let cluster = start_cluster();
    let mut client = step("connect", Client::connect(&cluster.scheduler))
        .await
        .unwrap();
    assert_eq!(client.comm().handshake().pickle_protocol, 5);

    // identity
    let identity = step("identity", client.identity()).await.unwrap();
    assert_eq!(
        identity.get("type").and_then(Value::as_str),
        Some("Scheduler")
    );
    assert_eq!(
        identity.get("address").and_then(Value::as_str),
        Some(cluster.scheduler.as_str())
    );
    let Some(Value::Map(workers)) = identity.get("workers") else {
        panic!("identity has no workers map: {identity:?}")
    };
    assert_eq!(workers[0].0.as_str(), Some(cluster.worker.as_str()));

    // Rust scatters; Python gathers and checks the values.
    let small = Array::from_shape_vec(&[2, 3], vec![1.5f64, -2.0, 3.25, 4.0, 5.5, 6.0]).unwrap();
    let big = Array::from_vec((0..3_000_000i32).collect::<Vec<_>>()); // 12 MB
    let fortran = Array::from_shape_vec(&[3, 4], (0..12u16).collect::<Vec<_>>())
        .unwrap()
        .transposed();
    let keys = step(
        "scatter",
        client.scatter(vec![
            ("rust-small".into(), NdArray::from(small).into()),
            ("rust-big".into(), NdArray::from(big).into()),
            ("rust-fortran".into(), NdArray::from(fortran).into()),
            (
                "rust-bytes".into(),
                Object::Bytes(bytes::Bytes::from_static(b"from rust")).into(),
            ),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(
        keys,
        ["rust-small", "rust-big", "rust-fortran", "rust-bytes"]
    );
    let checked = python_check(
        r#"
import asyncio
from distributed.core import rpc
async def main():
    async with rpc(sys.argv[1]) as s:
        r = await s.gather(keys=["rust-small", "rust-big", "rust-fortran", "rust-bytes"])
    assert r["status"] == "OK", r
    d = r["data"]
    assert np.array_equal(d["rust-small"], np.array([[1.5, -2.0, 3.25], [4.0, 5.5, 6.0]])) and d["rust-small"].dtype == np.float64
    assert np.array_equal(d["rust-big"], np.arange(3_000_000, dtype="i4")) and d["rust-big"].dtype == np.int32
    f = d["rust-fortran"]
    assert f.shape == (4, 3) and f.flags.f_contiguous and np.array_equal(f, np.arange(12, dtype="u2").reshape(3, 4).T), f
    assert d["rust-bytes"] == b"from rust"
    print("gathered")
asyncio.run(main())
"#,
        &cluster.scheduler,
    );
    assert_eq!(checked, "gathered");

    // Python scatters; Rust gathers views of the received frames.
    let scattered = python_check(
        r#"
import asyncio
from distributed.core import rpc
async def main():
    async with rpc(sys.argv[1]) as s:
        keys = await s.scatter(data={"py-array": to_serialize(np.arange(2_000_000, dtype="<f8").reshape(1000, 2000)),
                                     "py-be": to_serialize(np.arange(6, dtype=">i4")),
                                     "py-list": to_serialize([np.arange(3), b"xyz"])},
                               client="python-test-client", workers=None, broadcast=False)
    print(",".join(keys))
asyncio.run(main())
"#,
        &cluster.scheduler,
    );
    assert_eq!(scattered, "py-array,py-be,py-list");
    let gathered = step("gather", client.gather(&["py-array", "py-be", "py-list"]))
        .await
        .unwrap();
    let array = gathered[0].1.as_ndarray().and_then(NdArray::array).unwrap();
    assert_eq!(array.shape(), [1000, 2000]);
    let values = array.as_slice::<f64>().unwrap();
    assert!(values.iter().enumerate().all(|(i, &v)| v == i as f64));
    let be = gathered[1].1.as_ndarray().and_then(NdArray::array).unwrap();
    assert_eq!(be.descr(), ">i4");
    assert_eq!(
        be.to_native().unwrap().as_slice::<i32>().unwrap(),
        [0, 1, 2, 3, 4, 5]
    );
    let Value::Serialized(list) = &gathered[2].1 else {
        panic!("{:?}", gathered[2])
    };
    let Object::Collection(list) = &**list else {
        panic!("{list:?}")
    };
    assert_eq!(
        list.items[1],
        Object::Bytes(bytes::Bytes::from_static(b"xyz"))
    );

    // The same gather at the frame level: the array is a view of the receive buffer.
    let msg = Value::map([
        ("op", Value::from("gather")),
        ("keys", Value::List(vec![Value::from("py-array")])),
        ("reply", Value::Bool(true)),
    ]);
    step("send", client.comm().send(&msg)).await.unwrap();
    let (frames, buffer) = step("recv", client.comm().recv_frames()).await.unwrap();
    let reply = decode_in(&frames, Some(&buffer), &Default::default()).unwrap();
    let data = reply.get("data").and_then(|d| d.get("py-array")).unwrap();
    let view = data.as_ndarray().and_then(NdArray::array).unwrap();
    let (start, end) = (
        buffer.as_ptr() as usize,
        buffer.as_ptr() as usize + buffer.len(),
    );
    let at = view.data().as_ptr() as usize + view.offset();
    assert!(
        at >= start && at + 16_000_000 <= end,
        "the array is not a view of the receive buffer"
    );
    assert_eq!(
        at % 64,
        0,
        "frames are 64-byte aligned in the receive buffer"
    );

    // who_has
    let who = step(
        "who_has",
        client.who_has(&["rust-small", "py-array", "nope"]),
    )
    .await
    .unwrap();
    assert_eq!(who[0], ("rust-small".into(), vec![cluster.worker.clone()]));
    assert_eq!(who[1], ("py-array".into(), vec![cluster.worker.clone()]));
    assert_eq!(who[2], ("nope".into(), vec![]));

    // The error an unknown key gets.
    let err = step("gather unknown", client.gather(&["no-such-key"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::MissingKeys(k) if k == &["no-such-key"]),
        "{err:?}"
    );
    // A handler that raises: scattering to a worker the scheduler does not know.
    let err = step(
        "scatter to unknown worker",
        client.call(
            "scatter",
            vec![
                ("data", Value::map([("k", Value::Int(1))])),
                (
                    "workers",
                    Value::List(vec![Value::from("tcp://127.0.0.1:9")]),
                ),
                ("client", Value::from("x")),
            ],
        ),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ClientError::Remote { exception, .. } if exception.contains("KeyError")),
        "{err:?}"
    );
    // The comm still works after an error reply.
    let identity = step("identity again", client.identity()).await.unwrap();
    assert_eq!(
        identity.get("type").and_then(Value::as_str),
        Some("Scheduler")
    );
    drop(cluster);
}
