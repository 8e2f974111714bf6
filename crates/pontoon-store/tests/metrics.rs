//! The metrics the stores record, read back from a real recorder (metrics-util's
//! `DebuggingRecorder`) installed for this test binary: gauges match the stores' own stats
//! after real puts, spills, gets and deletes, counters move by exactly what was spilled and
//! read back, and a daemon counts its clients and its refusals.

#[allow(dead_code, reason = "each test file uses part of the shared support")]
mod support;
use support::{Scratch, start};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use pontoon_store::{Client, ServeOptions, Store, StoreOptions, metrics as m};
use pontoon_wire::{Header, Message};

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("store-metrics-{name}"))
}

/// Every counter and gauge summed over all snapshots so far: the debugging recorder hands out
/// what changed since its last snapshot, and the store's gauges only ever move by increments,
/// so the sums are the values.
struct Totals {
    snapshotter: Snapshotter,
    values: HashMap<String, f64>,
}

impl Totals {
    fn refresh(&mut self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let delta = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(samples) => samples.len() as f64,
            };
            *self.values.entry(key.key().name().to_string()).or_default() += delta;
        }
    }

    fn get(&mut self, name: &str) -> u64 {
        self.refresh();
        let value = self.values.get(name).copied().unwrap_or(0.0);
        assert!(value >= 0.0 && value.fract() == 0.0, "{name} = {value}");
        value as u64
    }

    /// Polls until `name` is `expected` (a daemon sees a release or a hang-up asynchronously);
    /// gives up, loudly, after a minute.
    fn eventually(&mut self, name: &str, expected: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.get(name);
            if value == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} stayed {value}, expected {expected}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn object(i: u8, len: usize) -> Message {
    Message::new(Header::empty(), vec![Bytes::from(vec![i; len])])
}

/// One test, so nothing else in this binary records while it counts.
#[test]
fn store_metrics_follow_puts_spills_restores_pins_and_clients() {
    let recorder = DebuggingRecorder::new();
    let mut totals = Totals {
        snapshotter: recorder.snapshotter(),
        values: HashMap::new(),
    };
    recorder
        .install()
        .expect("no other recorder in this test binary");
    m::describe();

    // An embedded store of 1 MiB with a spill directory: 12 objects of 200 KiB spill most.
    let dir = scratch("embedded");
    let mut options = StoreOptions::default();
    options.capacity = 1 << 20;
    options.spill_dir = Some(dir.join("spill"));
    let store = Store::open(options).unwrap();
    let ids: Vec<_> = (0..12)
        .map(|i| store.put_raw(object(i, 200 << 10)).unwrap())
        .collect();
    let stats = store.stats();
    assert!(stats.spilled_objects > 0, "nothing spilled: {stats:?}");
    assert_eq!(totals.get(m::OBJECTS), 12);
    assert_eq!(totals.get(m::BYTES), stats.sealed_bytes);
    assert_eq!(totals.get(m::SPILLED_OBJECTS), stats.spilled_objects);
    assert_eq!(totals.get(m::SPILLED_BYTES), stats.spilled_bytes);
    assert_eq!(totals.get(m::SPILLS), stats.spilled_objects);
    assert_eq!(totals.get(m::SPILL_BYTES), stats.spilled_bytes);
    assert!(totals.get(m::SPILL_SECONDS) >= 1, "no spill batch timed");
    assert_eq!(totals.get(m::RESTORES), 0);

    // A get of each spilled object reads it back once.
    let (spilled, spilled_bytes) = (stats.spilled_objects, stats.spilled_bytes);
    for id in &ids {
        let back = store.get_raw(id).unwrap();
        assert_eq!(back.frames[0].len(), 200 << 10);
    }
    assert_eq!(totals.get(m::RESTORES), spilled);
    assert_eq!(totals.get(m::RESTORE_BYTES), spilled_bytes);
    assert_eq!(totals.get(m::RESTORE_SECONDS), spilled);

    // Deleting half leaves the gauges at what the store still holds.
    for id in &ids[..6] {
        store.delete(id).unwrap();
    }
    let stats = store.stats();
    assert_eq!(totals.get(m::OBJECTS), 6);
    assert_eq!(totals.get(m::BYTES), stats.sealed_bytes);
    assert_eq!(totals.get(m::SPILLED_OBJECTS), stats.spilled_objects);
    assert_eq!(totals.get(m::SPILLED_BYTES), stats.spilled_bytes);
    // A store that goes away takes the rest off.
    drop(store);
    for gauge in [m::OBJECTS, m::BYTES, m::SPILLED_OBJECTS, m::SPILLED_BYTES] {
        assert_eq!(totals.get(gauge), 0, "{gauge} after the store's drop");
    }

    // The same store spilling to a remote (a `file://` directory): the same gauges and
    // counters, moved by exactly what went to the remote and came back from it.
    #[cfg(feature = "remote")]
    {
        let remote = scratch("remote");
        let (spills, restores) = (totals.get(m::SPILLS), totals.get(m::RESTORES));
        let mut options = StoreOptions::default();
        options.capacity = 1 << 20;
        options.spill_file_bytes = 256 << 10;
        options.spill_remote = Some(pontoon_store::SpillRemote::new(format!(
            "file://{}",
            remote.display()
        )));
        let store = Store::open(options).unwrap();
        let ids: Vec<_> = (0..12)
            .map(|i| store.put_raw(object(i, 200 << 10)).unwrap())
            .collect();
        let stats = store.stats();
        assert!(stats.spilled_objects > 0, "nothing spilled: {stats:?}");
        assert_eq!(totals.get(m::SPILLED_OBJECTS), stats.spilled_objects);
        assert_eq!(totals.get(m::SPILLED_BYTES), stats.spilled_bytes);
        assert_eq!(totals.get(m::SPILLS) - spills, stats.spilled_objects);
        for id in &ids {
            store.get_raw(id).unwrap();
        }
        assert_eq!(totals.get(m::RESTORES) - restores, stats.spilled_objects);
        drop(store);
        for gauge in [m::OBJECTS, m::SPILLED_OBJECTS, m::SPILLED_BYTES] {
            assert_eq!(
                totals.get(gauge),
                0,
                "{gauge} after the remote store's drop"
            );
        }
    }

    // A daemon: its client, its objects and their pins.
    let dir = scratch("daemon");
    let socket = dir.join("store.sock");
    let daemon = start(ServeOptions::new(&socket, 4 << 20));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(Client::connect(&socket)).unwrap();
    totals.eventually(m::CLIENTS, 1);
    let ids: Vec<_> = (0..3)
        .map(|i| {
            rt.block_on(client.put_raw(&object(i, 1000 + usize::from(i))))
                .unwrap()
        })
        .collect();
    assert_eq!(totals.get(m::OBJECTS), 3);
    assert_eq!(totals.get(m::BYTES), daemon.stats().sealed_bytes);
    let held = rt.block_on(client.get_raw(&ids[1])).unwrap();
    assert_eq!(totals.get(m::PINNED_OBJECTS), 1);
    assert_eq!(totals.get(m::PINNED_BYTES), daemon.stats().pinned_bytes);
    assert_eq!(totals.get(m::PINNED_BYTES), 1001);
    drop(held);
    totals.eventually(m::PINNED_OBJECTS, 0);
    assert_eq!(totals.get(m::PINNED_BYTES), 0);
    // Deleted while pinned: off the object and pin gauges at once.
    let held = rt.block_on(client.get_raw(&ids[2])).unwrap();
    for id in &ids {
        rt.block_on(client.delete(id)).unwrap();
    }
    assert_eq!(totals.get(m::OBJECTS), 0);
    assert_eq!(totals.get(m::BYTES), 0);
    assert_eq!(totals.get(m::PINNED_OBJECTS), 0);
    drop(held);
    drop(client);
    totals.eventually(m::CLIENTS, 0);

    // A daemon that admits nobody counts each refusal.
    let socket = dir.join("full.sock");
    let mut options = ServeOptions::new(&socket, 1 << 20);
    options.max_clients = 0;
    let _full = start(options);
    assert_eq!(totals.get(m::REFUSALS), 0);
    for _ in 0..2 {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        // Refused: the daemon closes the connection without a hello.
        let mut buf = [0u8; 64];
        let read = std::io::Read::read(&mut stream, &mut buf);
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    totals.eventually(m::REFUSALS, 2);
    assert_eq!(totals.get(m::CLIENTS), 0);
}
