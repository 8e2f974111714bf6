//! The demo's fourth part: two OS processes talk over tcp:// through pontoon-transport. The `pontoon`
//! binary starts itself again as a peer (`pontoon demo-peer`, hidden from `--help`), and the two
//! exchange a mixed workload: thousands of small admin messages, pipelined; a registered custom
//! type, echoed; and large arrays, echoed, each arriving as a view of its receive buffer.

use std::error::Error;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use pontoon::array::Array;
use pontoon::family::Registry;
use pontoon::transport::{Config, Endpoint, listen};
use pontoon::wire::Message;
use serde::{Deserialize, Serialize};

use super::family::{Human, register_human};
use super::{Args, duration, rate, size};

/// Small admin messages sent, pipelined.
const ADMIN_MESSAGES: u64 = 10_000;

/// Large arrays sent, and echoed.
const ARRAYS: usize = 4;

/// How long the whole exchange may take before the demo gives up.
const DEADLINE: Duration = Duration::from_secs(60);

/// Options of the hidden `pontoon demo-peer`.
#[derive(clap::Args)]
pub(crate) struct PeerArgs {
    /// The address of the demo to connect to, e.g. tcp://127.0.0.1:40471.
    #[arg(long)]
    connect: String,
}

/// What the demo tells the peer to expect.
#[derive(Serialize, Deserialize, Debug)]
struct Plan {
    admin_messages: u64,
    arrays: u64,
}

/// A small admin message, the kind a scheduler and its workers exchange all the time.
#[derive(Serialize, Deserialize, Debug)]
struct TaskFinished {
    op: String,
    key: String,
    worker: String,
    nbytes: u64,
    seq: u64,
}

/// The peer's answers.
#[derive(Serialize, Deserialize, Debug)]
enum Ack {
    /// All admin messages arrived: their count and the sum of their sequence numbers.
    Admin { count: u64, seq_sum: u64 },
    /// An array arrived (and was echoed): its size, and what the peer saw of its memory.
    Array {
        bytes: u64,
        /// The array's data is a view of the received frame, not a copy.
        uncopied: bool,
        /// The data starts at a 64-byte-aligned address.
        aligned: bool,
    },
}

/// The registry both sides use: serde for everything, and `Human` with its own serializer.
fn registry() -> Result<Registry, Box<dyn Error>> {
    let mut registry = Registry::new();
    register_human(&mut registry)?;
    Ok(registry)
}

fn runtime() -> Result<tokio::runtime::Runtime, Box<dyn Error>> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Receives the next message as an array, and says whether its data is a view of the received
/// frame (a per-process pointer check).
async fn recv_array(endpoint: &mut Endpoint<'_>) -> Result<(Array, bool), Box<dyn Error>> {
    let message: Message = endpoint
        .recv_message()
        .await?
        .ok_or("the connection closed before an array")?;
    let array: Array = endpoint.decode(&message).await?;
    let data = array.data().as_ptr() as usize;
    let uncopied = message.frames.iter().any(|frame| {
        let start = frame.as_ptr() as usize;
        (start..start + frame.len()).contains(&data)
    });
    Ok((array, uncopied))
}

/// Kills and reaps the child if the demo fails before it has waited for it.
pub(super) struct Reaper(pub(super) Option<Child>);

impl Reaper {
    pub(super) fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, Box<dyn Error>> {
        let mut child = self.0.take().ok_or("the peer was already reaped")?;
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the peer did not exit in time".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(super) fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    println!("pontoon demo: two processes over tcp://, through pontoon-transport");
    let registry = registry()?;
    let rt = runtime()?;
    let mut listener = rt.block_on(listen(
        &"tcp://127.0.0.1:0".parse()?,
        Config::new(format!("pontoon-demo-{}", std::process::id())),
    ))?;
    let address = listener.address().to_string();
    let child = Command::new(std::env::current_exe()?)
        .args(["demo-peer", "--connect", &address])
        .spawn()
        .map_err(|e| format!("starting the peer process: {e}"))?;
    let mut reaper = Reaper(Some(child));
    let pid = reaper.0.as_ref().map_or(0, Child::id);

    let talk = async {
        let mut endpoint = tokio::time::timeout(Duration::from_secs(10), async {
            Endpoint::handshake(listener.accept().await?, &registry).await
        })
        .await
        .map_err(|_| "the peer did not connect within 10 s")??;
        println!(
            "  processes         this one (pid {}) at {address} <-> peer `{}` (pid {pid}) from {}",
            std::process::id(),
            endpoint.peer().identity,
            endpoint.remote_address()
        );
        exchange(&mut endpoint, &registry, args).await
    };
    let outcome = rt.block_on(async { tokio::time::timeout(DEADLINE, talk).await });
    drop(listener);
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("the exchange took over {} s", DEADLINE.as_secs()).into()),
    };
    if let Err(error) = outcome {
        // Kill and reap the peer before reporting; its own error, if any, is on stderr.
        drop(reaper);
        return Err(error);
    }
    let status = reaper.wait(Duration::from_secs(10))?;
    if !status.success() {
        return Err(format!("the peer process failed: {status}").into());
    }
    println!("  peer              exited cleanly ({status}), reaped");
    Ok(())
}

/// The demo's side of the exchange.
async fn exchange(
    endpoint: &mut Endpoint<'_>,
    registry: &Registry,
    args: &Args,
) -> Result<(), Box<dyn Error>> {
    endpoint
        .send(&Plan {
            admin_messages: ADMIN_MESSAGES,
            arrays: ARRAYS as u64,
        })
        .await?;

    // 1. Small admin messages, pipelined: fed into the write buffer, flushed once at the end.
    let start = Instant::now();
    let mut wire_bytes = 0u64;
    for seq in 0..ADMIN_MESSAGES {
        let message = registry.serialize(&TaskFinished {
            op: "task-finished".into(),
            key: format!("('array-sum', {seq}, 3)"),
            worker: "tcp://127.0.0.1:40471".into(),
            nbytes: 8_000_000,
            seq,
        })?;
        wire_bytes += message.header.as_bytes().len() as u64;
        endpoint.comm().feed(&message).await?;
    }
    endpoint.comm().flush().await?;
    let ack: Ack = endpoint.recv().await?.ok_or("the peer hung up")?;
    let elapsed = start.elapsed();
    let expected_sum = ADMIN_MESSAGES * (ADMIN_MESSAGES - 1) / 2;
    match ack {
        Ack::Admin { count, seq_sum } if count == ADMIN_MESSAGES && seq_sum == expected_sum => {}
        other => {
            return Err(format!("the peer acknowledged the admin messages as {other:?}").into());
        }
    }
    println!(
        "  admin messages    {ADMIN_MESSAGES} TaskFinished (headers {} in all, ~{} B each), pipelined",
        size(wire_bytes),
        wire_bytes / ADMIN_MESSAGES
    );
    println!(
        "                    all acknowledged in {}: {:.0} messages/s",
        duration(elapsed),
        ADMIN_MESSAGES as f64 / elapsed.as_secs_f64().max(1e-9)
    );

    // 2. A registered custom type, echoed back.
    let ada = Human {
        name: "Ada Lovelace".into(),
        age: 36,
    };
    endpoint.send_dyn(&ada).await?;
    let back = endpoint.recv_dyn().await?.ok_or("the peer hung up")?;
    let back = back
        .downcast_ref::<Human>()
        .ok_or("the human came back as another type")?;
    if back != &ada {
        return Err("the human changed on the way".into());
    }
    println!("  registered type   {ada:?} -> peer -> {back:?} (demo.Human, its own serializer)");

    // 3. Large arrays, each echoed back: the peer checks its copy, this process checks the echo.
    let elements = ((args.payload_mib.max(4) << 20) / 4) / 8;
    let mut echoes_uncopied = true;
    let mut peer_uncopied = true;
    let mut elapsed = Duration::ZERO;
    let mut bytes = 0usize;
    for a in 0..ARRAYS {
        let array = Array::build::<f64>(&[elements], |xs| {
            for (i, x) in xs.iter_mut().enumerate() {
                *x = (a * elements + i) as f64;
            }
        })?;
        let start = Instant::now();
        endpoint.send(&array).await?;
        let (echo, uncopied) = recv_array(endpoint).await?;
        let ack: Ack = endpoint.recv().await?.ok_or("the peer hung up")?;
        elapsed += start.elapsed();
        bytes += 2 * array.len() * 8;
        if echo != array {
            return Err(format!("array {a} changed on the way there and back").into());
        }
        echoes_uncopied &= uncopied;
        match ack {
            Ack::Array {
                bytes,
                uncopied,
                aligned,
            } if bytes == (array.len() * 8) as u64 => peer_uncopied &= uncopied && aligned,
            other => return Err(format!("the peer acknowledged array {a} as {other:?}").into()),
        }
    }
    println!(
        "  arrays            {ARRAYS} x f64 [{elements}] ({} each) sent and echoed back: {} in {}",
        size((elements * 8) as u64),
        size(bytes as u64),
        duration(elapsed)
    );
    println!("                    {}", rate(bytes, elapsed));
    println!(
        "                    copied on arrival in the peer: {}; echoes copied on arrival here: {}",
        if peer_uncopied {
            "no (views of the receive buffers, 64-byte aligned)"
        } else {
            "YES"
        },
        if echoes_uncopied {
            "no (views of the receive buffers)"
        } else {
            "YES"
        }
    );
    if !peer_uncopied || !echoes_uncopied {
        return Err("an array was copied on the way in".into());
    }
    endpoint.comm().flush().await?;
    Ok(())
}

/// `pontoon demo-peer`: the other process of the demo's fourth part.
pub(crate) fn peer(args: &PeerArgs) -> Result<(), Box<dyn Error>> {
    let registry = registry()?;
    let rt = runtime()?;
    rt.block_on(async {
        tokio::time::timeout(DEADLINE, serve(&args.connect, &registry))
            .await
            .map_err(|_| format!("the peer gave up after {} s", DEADLINE.as_secs()))?
    })
}

/// The peer's side of the exchange: acknowledge, echo, then wait for the demo to hang up.
async fn serve(address: &str, registry: &Registry) -> Result<(), Box<dyn Error>> {
    let mut endpoint = Endpoint::connect(
        &address.parse()?,
        Config::new(format!("pontoon-demo-peer-{}", std::process::id())),
        registry,
    )
    .await?;
    let plan: Plan = endpoint.recv().await?.ok_or("no plan")?;

    let mut seq_sum = 0u64;
    for _ in 0..plan.admin_messages {
        let task: TaskFinished = endpoint.recv().await?.ok_or("admin messages cut short")?;
        seq_sum += task.seq;
    }
    endpoint
        .send(&Ack::Admin {
            count: plan.admin_messages,
            seq_sum,
        })
        .await?;

    let human = endpoint.recv_dyn().await?.ok_or("no human")?;
    let human = human
        .downcast_ref::<Human>()
        .ok_or("the human arrived as another type")?;
    endpoint.send_dyn(human).await?;

    for _ in 0..plan.arrays {
        let (array, uncopied) = recv_array(&mut endpoint).await?;
        let aligned = (array.data().as_ptr() as usize).is_multiple_of(64);
        // The echo goes out straight from the received buffer.
        endpoint.send(&array).await?;
        endpoint
            .send(&Ack::Array {
                bytes: (array.len() * 8) as u64,
                uncopied,
                aligned,
            })
            .await?;
    }

    // The demo hangs up when it is done.
    if endpoint.comm().recv().await?.is_some() {
        return Err("an unexpected message after the arrays".into());
    }
    Ok(())
}
