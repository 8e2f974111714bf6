//! pontoon-transport benchmarks: one-way throughput of messages with one payload frame (1 KiB to
//! 100 MiB) over tcp:// and unix://, next to plain tokio sockets moving the same bytes, and over
//! tls:// (1 MiB and 100 MiB, with certificates made at bench start) next to tcp://; and small
//! header-only messages pipelined on one connection, flushed every 1, 16 or 256 messages.
//!
//! Each measurement is end to end: the clock stops when a receiver task has read the last
//! message of the batch.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pontoon::transport::{Address, Comm, Config, Roots, TlsConfig, connect, listen};
use pontoon::wire::{Header, Message};
use pontoon_benches::{TaskFinished, Timed, Timing, payload};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A Unix socket path of its own in the temporary directory.
fn socket_path(name: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("pontoon-bench-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// A receiver task: told how many messages the next batch holds, it answers once it has them.
struct Receiver {
    batches: mpsc::UnboundedSender<u64>,
    done: mpsc::UnboundedReceiver<()>,
}

impl Receiver {
    /// Waits until the receiver has read `n` more messages.
    async fn expect(&mut self, n: u64) {
        self.batches.send(n).unwrap();
        self.done.recv().await.unwrap();
    }
}

/// Spawns a task that receives and discards pontoon messages, batch by batch.
fn pontoon_receiver(rt: &Runtime, mut comm: Comm) -> Receiver {
    let (batches, mut batch_rx) = mpsc::unbounded_channel::<u64>();
    let (done_tx, done) = mpsc::unbounded_channel();
    rt.spawn(async move {
        while let Some(n) = batch_rx.recv().await {
            for _ in 0..n {
                let message = comm.recv().await.unwrap().expect("a message");
                drop(message);
            }
            done_tx.send(()).unwrap();
        }
    });
    Receiver { batches, done }
}

/// Spawns a task that reads `len` bytes a message into one reused buffer, batch by batch.
fn raw_receiver<R: AsyncRead + Unpin + Send + 'static>(
    rt: &Runtime,
    mut reader: R,
    len: usize,
) -> Receiver {
    let (batches, mut batch_rx) = mpsc::unbounded_channel::<u64>();
    let (done_tx, done) = mpsc::unbounded_channel();
    rt.spawn(async move {
        let mut buffer = vec![0u8; len];
        while let Some(n) = batch_rx.recv().await {
            for _ in 0..n {
                reader.read_exact(&mut buffer).await.unwrap();
            }
            done_tx.send(()).unwrap();
        }
    });
    Receiver { batches, done }
}

/// Server and client TLS settings from a CA and a leaf for 127.0.0.1 made with rcgen, written
/// as PEM files into the temporary directory.
fn tls_configs() -> (TlsConfig, TlsConfig) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = std::env::temp_dir().join(format!("pontoon-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let (ca_pem, chain, key) = (
        dir.join("ca.pem"),
        dir.join("chain.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&chain, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    let server = TlsConfig::server(&chain, &key).unwrap();
    let client = TlsConfig::client(Roots::CaFile(ca_pem)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (server, client)
}

/// A connected pair of pontoon comms at `address` (its port or path picked here).
async fn pontoon_pair(address: &str) -> (Comm, Comm) {
    let address: Address = address.parse().unwrap();
    let (mut server_config, mut client_config) =
        (Config::new("bench-server"), Config::new("bench-client"));
    if matches!(address, Address::Tls(_)) {
        let (server, client) = tls_configs();
        server_config.tls = Some(server);
        client_config.tls = Some(client);
    }
    let mut listener = listen(&address, server_config).await.unwrap();
    let bound = listener.address().clone();
    let client = tokio::spawn(async move { connect(&bound, client_config).await });
    let server = listener.accept().await.unwrap().handshake().await.unwrap();
    (client.await.unwrap().unwrap(), server)
}

type BoxRead = Box<dyn AsyncRead + Unpin + Send>;
type BoxWrite = Box<dyn AsyncWrite + Unpin + Send>;

/// A connected pair of plain sockets, as (writer, reader).
async fn raw_pair(transport: &str) -> (BoxWrite, BoxRead) {
    match transport {
        "tcp" => {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = tokio::spawn(async move { TcpStream::connect(addr).await });
            let (server, _) = listener.accept().await.unwrap();
            let client = client.await.unwrap().unwrap();
            client.set_nodelay(true).unwrap();
            server.set_nodelay(true).unwrap();
            (Box::new(client), Box::new(server))
        }
        _ => {
            let path = socket_path("raw");
            let listener = UnixListener::bind(&path).unwrap();
            let p = path.clone();
            let client = tokio::spawn(async move { UnixStream::connect(p).await });
            let (server, _) = listener.accept().await.unwrap();
            let client = client.await.unwrap().unwrap();
            let _ = std::fs::remove_file(&path);
            (Box::new(client), Box::new(server))
        }
    }
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("transport/throughput");
    for (label, len) in [
        ("1KiB", 1usize << 10),
        ("64KiB", 64 << 10),
        ("1MiB", 1 << 20),
        ("100MiB", 100 << 20),
    ] {
        group.throughput(Throughput::Bytes(len as u64));
        group.timing(Timing {
            samples: if len >= 100 << 20 { 10 } else { 50 },
            warm_up: Duration::from_millis(500),
            measurement: Duration::from_secs(2),
        });
        // Written once, outside the timing, so the pages are real memory.
        let frame: Bytes = payload(len);
        let message = Message::new(Header::from_serde(&"payload").unwrap(), vec![frame.clone()]);
        for transport in ["tcp", "unix", "tls"] {
            // TLS at the sizes its ratio to tcp is reported for.
            if transport == "tls" && len < 1 << 20 {
                continue;
            }
            let address = match transport {
                "tcp" => "tcp://127.0.0.1:0".to_string(),
                "tls" => "tls://127.0.0.1:0".to_string(),
                _ => format!("unix://{}", socket_path("pontoon").display()),
            };
            let (mut sender, receiver) = rt.block_on(pontoon_pair(&address));
            let mut receiver = pontoon_receiver(&rt, receiver);
            let mut routine = |iters: u64| {
                rt.block_on(async {
                    let start = Instant::now();
                    let (_, ()) = tokio::join!(
                        async {
                            for _ in 0..iters {
                                sender.send(&message).await.unwrap();
                            }
                        },
                        receiver.expect(iters)
                    );
                    start.elapsed()
                })
            };
            // The receive path pools its buffers: criterion's warm-up fills the pool before
            // it measures, in a quick run too.
            group.bench_function(
                BenchmarkId::new(format!("pontoon-{transport}"), label),
                |b| b.iter_custom(&mut routine),
            );
            drop(receiver);
            rt.block_on(sender.close()).unwrap();
            // The peer of pontoon over TLS is pontoon over tcp, measured above.
            if transport == "tls" {
                continue;
            }

            let (mut writer, reader) = rt.block_on(raw_pair(transport));
            let mut receiver = raw_receiver(&rt, reader, len);
            let mut routine = |iters: u64| {
                rt.block_on(async {
                    let start = Instant::now();
                    let (_, ()) = tokio::join!(
                        async {
                            for _ in 0..iters {
                                writer.write_all(&frame).await.unwrap();
                            }
                            writer.flush().await.unwrap();
                        },
                        receiver.expect(iters)
                    );
                    start.elapsed()
                })
            };
            group.bench_function(BenchmarkId::new(format!("raw-{transport}"), label), |b| {
                b.iter_custom(&mut routine)
            });
            drop(receiver);
            rt.block_on(writer.shutdown()).unwrap();
        }
    }
    group.finish();
}

fn small(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("transport/small");
    group.timing(Timing {
        warm_up: Duration::from_millis(500),
        measurement: Duration::from_secs(2),
        ..Timing::DEFAULT
    });
    group.throughput(Throughput::Elements(1));
    let message = Message::new(Header::from_serde(&TaskFinished::sample()).unwrap(), vec![]);
    let (mut sender, receiver) = rt.block_on(pontoon_pair("tcp://127.0.0.1:0"));
    let mut receiver = pontoon_receiver(&rt, receiver);
    for every in [1u64, 16, 256] {
        group.bench_function(BenchmarkId::new("pontoon-tcp-flush-every", every), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let (_, ()) = tokio::join!(
                        async {
                            for i in 1..=iters {
                                sender.feed(&message).await.unwrap();
                                if i % every == 0 {
                                    sender.flush().await.unwrap();
                                }
                            }
                            sender.flush().await.unwrap();
                        },
                        receiver.expect(iters)
                    );
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
    drop(receiver);
    rt.block_on(sender.close()).unwrap();
}

criterion_group! {
    name = benches;
    config = pontoon_benches::criterion();
    targets = throughput, small
}
criterion_main!(benches);
