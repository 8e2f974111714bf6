//! The transport's metrics against a real recorder (metrics-util's `DebuggingRecorder`) after
//! real traffic over real TCP sockets: bytes and messages per family and direction move by
//! exactly what was sent, connections are counted open and closed, the receive pool's gauges
//! follow `Listener::pooled_bytes`, and a refusal and a failed handshake are counted.
//!
//! Each test installs its recorder for its own thread only (`with_local_recorder`) and runs
//! its peers on a current-thread runtime there, so tests running side by side do not count
//! each other's traffic.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use pontoon_family::Registry;
use pontoon_transport::metrics::{
    BYTES_TOTAL, CONNECTIONS_CLOSED_TOTAL, CONNECTIONS_OPEN, CONNECTIONS_OPENED_TOTAL,
    HANDSHAKE_FAILURES_TOTAL, MESSAGES_TOTAL, RECEIVE_POOL_BUFFERS, RECEIVE_POOL_BYTES,
    REFUSALS_TOTAL,
};
use pontoon_transport::{CloseCode, Config, Secret, TransportError, connect, listen};
use pontoon_wire::{Encoder, Header, Message};

const GUARD: Duration = Duration::from_secs(60);

/// Runs `test` on a current-thread runtime with `recorder` as this thread's recorder.
fn with_recorder<F: Future>(recorder: &DebuggingRecorder, test: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || {
        runtime.block_on(async {
            tokio::time::timeout(GUARD, test)
                .await
                .expect("the test hung")
        })
    })
}

/// A metric's kind, name and sorted labels.
type Series = (MetricKind, String, Vec<(String, String)>);

/// What the recorder has seen, added up: the debugging recorder hands out what changed since
/// the last snapshot (counters and gauges are swapped to zero as they are read).
struct Totals {
    snapshotter: Snapshotter,
    values: HashMap<Series, f64>,
}

impl Totals {
    fn new(recorder: &DebuggingRecorder) -> Totals {
        Totals {
            snapshotter: recorder.snapshotter(),
            values: HashMap::new(),
        }
    }

    fn read(&mut self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let mut labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            labels.sort();
            let entry = self
                .values
                .entry((key.kind(), key.key().name().to_string(), labels))
                .or_default();
            *entry += match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(xs) => xs.len() as f64,
            };
        }
    }

    fn get(&mut self, kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.read();
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.values
            .get(&(kind, name.to_string(), labels))
            .copied()
            .unwrap_or(0.0)
    }

    fn counter(&mut self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.get(MetricKind::Counter, name, labels) as u64
    }

    fn gauge(&mut self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(MetricKind::Gauge, name, labels)
    }
}

fn traffic(family: &str, direction: &str) -> [(&'static str, String); 2] {
    [
        ("family", family.to_string()),
        ("direction", direction.to_string()),
    ]
}

fn labels<'a>(pairs: &'a [(&'static str, String); 2]) -> [(&'a str, &'a str); 2] {
    [(pairs[0].0, &pairs[0].1), (pairs[1].0, &pairs[1].1)]
}

#[test]
fn bytes_messages_and_connections_are_counted_exactly() {
    let recorder = DebuggingRecorder::new();
    let mut totals = Totals::new(&recorder);
    let registry = Registry::new();
    // 40 serde messages of different sizes, and 3 raw messages (no family in their header),
    // one with a 1 MiB frame that the receiver's pool keeps once it is dropped.
    let serde: Vec<Message> = (0..40u32)
        .map(|i| registry.serialize(&vec![i; i as usize]).unwrap())
        .collect();
    let raw = vec![
        Message::default(),
        Message::new(Header::from_serde(&"raw").unwrap(), vec![]),
        Message::new(Header::empty(), vec![Bytes::from(vec![9u8; 1 << 20])]),
    ];
    let encoded = |messages: &[Message]| -> u64 {
        let encoder = Encoder::default();
        messages
            .iter()
            .map(|m| encoder.encode(m).unwrap().len())
            .sum()
    };
    let (serde_bytes, raw_bytes) = (encoded(&serde), encoded(&raw));

    with_recorder(&recorder, async {
        let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::new("server"))
            .await
            .unwrap();
        let address = listener.address().clone();
        let to_send = serde.iter().chain(&raw).cloned().collect::<Vec<_>>();
        let client = async {
            let mut comm = connect(&address, Config::new("client")).await.unwrap();
            for message in &to_send {
                comm.send(message).await.unwrap();
            }
            comm
        };
        let server = async {
            let mut comm = listener.accept().await.unwrap().handshake().await.unwrap();
            let mut received = Vec::new();
            for _ in 0..43 {
                received.push(comm.recv().await.unwrap().expect("a message"));
            }
            (comm, received)
        };
        let (client, (server, received)) = tokio::join!(client, server);
        assert_eq!(received.len(), 43);

        for direction in ["sent", "received"] {
            let serde_labels = traffic("serde", direction);
            let none_labels = traffic("none", direction);
            assert_eq!(
                totals.counter(MESSAGES_TOTAL, &labels(&serde_labels)),
                40,
                "{direction}"
            );
            assert_eq!(
                totals.counter(BYTES_TOTAL, &labels(&serde_labels)),
                serde_bytes,
                "{direction}"
            );
            assert_eq!(
                totals.counter(MESSAGES_TOTAL, &labels(&none_labels)),
                3,
                "{direction}"
            );
            assert_eq!(
                totals.counter(BYTES_TOTAL, &labels(&none_labels)),
                raw_bytes,
                "{direction}"
            );
        }
        // Both ends of the one connection.
        let tcp = [("transport", "tcp")];
        assert_eq!(totals.counter(CONNECTIONS_OPENED_TOTAL, &tcp), 2);
        assert_eq!(totals.gauge(CONNECTIONS_OPEN, &tcp), 2.0);
        assert_eq!(totals.counter(CONNECTIONS_CLOSED_TOTAL, &tcp), 0);

        // The received 1 MiB frame goes back to the listener's pool when it is dropped.
        drop(received);
        let pooled = listener.pooled_bytes();
        assert!(pooled >= 1 << 20, "{pooled}");
        assert_eq!(totals.gauge(RECEIVE_POOL_BYTES, &[]), pooled as f64);
        assert_eq!(totals.gauge(RECEIVE_POOL_BUFFERS, &[]), 1.0);

        drop(client);
        drop(server);
        assert_eq!(totals.counter(CONNECTIONS_CLOSED_TOTAL, &tcp), 2);
        assert_eq!(totals.gauge(CONNECTIONS_OPEN, &tcp), 0.0);
        // The last connection gone, the pool is empty, and so are its gauges.
        assert_eq!(listener.pooled_bytes(), 0);
        assert_eq!(totals.gauge(RECEIVE_POOL_BYTES, &[]), 0.0);
        assert_eq!(totals.gauge(RECEIVE_POOL_BUFFERS, &[]), 0.0);
    });
}

#[test]
fn a_received_family_not_announced_is_counted_as_other() {
    let recorder = DebuggingRecorder::new();
    let mut totals = Totals::new(&recorder);
    // The header of a family nobody announced: a peer cannot make a series of its own name.
    let mut header = Vec::new();
    header.extend_from_slice(b"\x83\xa6family\xa9made-up-1\xa4type\xa1t\xa4meta\xc0");
    let message = Message::new(Header::from_msgpack(Bytes::from(header)).unwrap(), vec![]);
    let len = Encoder::default().encode(&message).unwrap().len();
    with_recorder(&recorder, async {
        let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::new("server"))
            .await
            .unwrap();
        let address = listener.address().clone();
        let client = async {
            let mut comm = connect(&address, Config::new("client")).await.unwrap();
            comm.send(&message).await.unwrap();
            comm
        };
        let server = async {
            let mut comm = listener.accept().await.unwrap().handshake().await.unwrap();
            comm.recv().await.unwrap().expect("a message");
            comm
        };
        let _comms = tokio::join!(client, server);
        // The sender names its own family; the receiver did not announce it.
        let sent = traffic("made-up-1", "sent");
        assert_eq!(totals.counter(MESSAGES_TOTAL, &labels(&sent)), 1);
        let other = traffic("other", "received");
        assert_eq!(totals.counter(MESSAGES_TOTAL, &labels(&other)), 1);
        assert_eq!(totals.counter(BYTES_TOTAL, &labels(&other)), len);
        let named = traffic("made-up-1", "received");
        assert_eq!(totals.counter(MESSAGES_TOTAL, &labels(&named)), 0);
    });
}

#[test]
fn a_refusal_is_counted_on_both_sides() {
    let recorder = DebuggingRecorder::new();
    let mut totals = Totals::new(&recorder);
    with_recorder(&recorder, async {
        let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::new("server"))
            .await
            .unwrap();
        let address = listener.address().clone();
        let client = async {
            let mut comm = connect(&address, Config::new("client")).await.unwrap();
            comm.send(&Message::default()).await.unwrap();
            comm.recv().await.unwrap_err()
        };
        let server = async {
            let mut comm = listener.accept().await.unwrap().handshake().await.unwrap();
            comm.recv().await.unwrap().expect("a message");
            comm.refuse(CloseCode::NotAccepted, "not today")
                .await
                .unwrap();
            comm
        };
        let (error, _server) = tokio::join!(client, server);
        assert!(
            matches!(&error, TransportError::ClosedByPeer { close, .. } if close.code == CloseCode::NotAccepted),
            "{error:?}"
        );
        let code = ("code", "not_accepted");
        assert_eq!(
            totals.counter(REFUSALS_TOTAL, &[code, ("direction", "sent")]),
            1
        );
        assert_eq!(
            totals.counter(REFUSALS_TOTAL, &[code, ("direction", "received")]),
            1
        );
    });
}

#[test]
fn a_failed_handshake_is_counted_by_reason() {
    let recorder = DebuggingRecorder::new();
    let mut totals = Totals::new(&recorder);
    with_recorder(&recorder, async {
        // The client has a secret and the server none: both sides fail with an auth error.
        let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::new("server"))
            .await
            .unwrap();
        let address = listener.address().clone();
        let mut config = Config::new("client");
        config.secret = Some(Secret::new(*b"0123456789abcdef0123456789abcdef"));
        let client = connect(&address, config);
        let server = async { listener.accept().await.unwrap().handshake().await };
        let (client, server) = tokio::join!(client, server);
        assert!(
            matches!(client, Err(TransportError::Auth { .. })),
            "{client:?}"
        );
        assert!(
            matches!(server, Err(TransportError::Auth { .. })),
            "{server:?}"
        );
        assert_eq!(
            totals.counter(HANDSHAKE_FAILURES_TOTAL, &[("reason", "auth")]),
            2
        );
        // No connection was opened.
        assert_eq!(
            totals.counter(CONNECTIONS_OPENED_TOTAL, &[("transport", "tcp")]),
            0
        );
    });
}
