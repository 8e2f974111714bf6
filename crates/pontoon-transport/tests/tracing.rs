//! The transport's tracing against a capturing subscriber: connecting and accepting open spans
//! that carry the peer's address, the handshake's outcome is an event inside them, and a
//! thousand messages each way log nothing at info level or above (only trace events), while
//! the warning for a reachable listener without a secret is a `WARN` event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pontoon_transport::{Config, connect, listen};
use pontoon_wire::Message;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// A span or an event as the subscriber saw it: its name (an event's message), level, and
/// fields as `name=value` text.
#[derive(Clone, Debug)]
struct Seen {
    name: String,
    level: Level,
    fields: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_string(), value.to_string()));
    }
}

/// Keeps every span and event, at every level.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<Seen>>>,
    events: Arc<Mutex<Vec<Seen>>>,
    next_id: Arc<AtomicU64>,
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::default();
        span.record(&mut fields);
        self.spans.lock().unwrap().push(Seen {
            name: span.metadata().name().to_string(),
            level: *span.metadata().level(),
            fields: fields.0,
        });
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let name = fields
            .0
            .iter()
            .find(|(n, _)| n == "message")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        self.events.lock().unwrap().push(Seen {
            name,
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn connect_and_accept_spans_name_the_peer_and_messages_log_nothing_at_info() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());
    current_thread().block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            let mut listener = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::new("server"))
                .await
                .unwrap();
            let address = listener.address().clone();
            let (client, server) = tokio::join!(connect(&address, Config::new("client")), async {
                listener.accept().await.unwrap().handshake().await
            });
            let (mut client, mut server) = (client.unwrap(), server.unwrap());

            let spans = capture.spans.lock().unwrap().clone();
            let connect_span = spans
                .iter()
                .find(|s| s.name == "pontoon_transport.connect")
                .expect("a connect span");
            assert_eq!(
                connect_span.field("peer"),
                Some(address.to_string().as_str())
            );
            let accept_span = spans
                .iter()
                .find(|s| s.name == "pontoon_transport.accept")
                .expect("an accept span");
            assert_eq!(
                accept_span.field("peer"),
                Some(server.remote_address().to_string().as_str())
            );
            assert_eq!(
                accept_span.field("local"),
                Some(address.to_string().as_str())
            );
            let opened = capture
                .events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e.name == "connection open")
                .count();
            assert_eq!(opened, 2, "one per side");

            let before = capture.events.lock().unwrap().len();
            for _ in 0..1000 {
                client.feed(&Message::default()).await.unwrap();
            }
            client.flush().await.unwrap();
            for _ in 0..1000 {
                server.recv().await.unwrap().expect("a message");
            }
            let events = capture.events.lock().unwrap()[before..].to_vec();
            let loud: Vec<_> = events.iter().filter(|e| e.level <= Level::INFO).collect();
            assert!(loud.is_empty(), "per-message events above debug: {loud:?}");
            // Each message is still traced, at trace level, with its size.
            let sent = events
                .iter()
                .filter(|e| e.name == "sending a message" && e.level == Level::TRACE)
                .count();
            let received = events
                .iter()
                .filter(|e| e.name == "received a message" && e.level == Level::TRACE)
                .count();
            assert_eq!((sent, received), (1000, 1000));
            assert!(events.iter().all(|e| e.field("bytes").is_some()));
        })
        .await
        .expect("the test hung");
    });
}

#[test]
fn a_reachable_listener_without_a_secret_is_a_warning() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());
    current_thread().block_on(async {
        let listener = listen(&"tcp://0.0.0.0:0".parse().unwrap(), Config::new("server"))
            .await
            .unwrap();
        let events = capture.events.lock().unwrap().clone();
        let warning = events
            .iter()
            .find(|e| e.level == Level::WARN)
            .expect("a warning");
        assert!(
            warning.name.contains("without a shared secret"),
            "{warning:?}"
        );
        assert_eq!(
            warning.field("address"),
            Some(listener.address().to_string().as_str())
        );
        // A loopback listener is reachable from this machine only: no warning.
        let before = events.len();
        let _quiet = listen(&"tcp://127.0.0.1:0".parse().unwrap(), Config::new("server"))
            .await
            .unwrap();
        let events = capture.events.lock().unwrap();
        assert!(events[before..].iter().all(|e| e.level != Level::WARN));
    });
}
