//! pontoon-family benchmarks: the Registry next to the bare serde encoder it wraps (and with a
//! metrics recorder installed, next to itself without), buffers that
//! must not cost more as they grow (they travel as frames), and the `log` and `mesh` data sets of
//! rust_serialization_benchmark next to rmp-serde, postcard and bitcode (all through serde) and
//! rkyv (its own derives; deserialize is a checked `from_bytes` into owned values, as the others
//! produce, and `rkyv-access` is its zero-copy checked view, for reference).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use metrics::{Key, KeyName, Metadata, SharedString, Unit};
use pontoon::family::{Registry, binary};
use pontoon_benches::{
    ArchivedLogs, ArchivedMesh, LOG_RECORDS, Logs, MESH_TRIANGLES, Mesh, Model, TaskFinished,
    Timed, Timing,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The six-field admin message through the Registry (header + body) and through the bare binary
/// encoder, both ways.
fn small(c: &mut Criterion) {
    let admin = TaskFinished::sample();
    let registry = Registry::new();
    let message = registry.serialize(&admin).unwrap();
    let (body, buffers) = binary::to_vec(&admin, binary::DEFAULT_MAX_DEPTH).unwrap();

    let mut group = c.benchmark_group("family/small");
    group.bench_function("registry-serialize", |b| {
        b.iter(|| registry.serialize(black_box(&admin)).unwrap())
    });
    group.bench_function("binary-serialize", |b| {
        b.iter(|| binary::to_vec(black_box(&admin), binary::DEFAULT_MAX_DEPTH).unwrap())
    });
    group.bench_function("registry-deserialize", |b| {
        b.iter(|| {
            registry
                .deserialize::<TaskFinished>(black_box(&message))
                .unwrap()
        })
    });
    group.bench_function("registry-roundtrip", |b| {
        b.iter(|| {
            let message = registry.serialize(black_box(&admin)).unwrap();
            registry.deserialize::<TaskFinished>(&message).unwrap()
        })
    });
    group.bench_function("binary-roundtrip", |b| {
        b.iter(|| {
            let (body, buffers) =
                binary::to_vec(black_box(&admin), binary::DEFAULT_MAX_DEPTH).unwrap();
            binary::from_slice::<TaskFinished>(&body, &buffers, binary::DEFAULT_MAX_DEPTH).unwrap()
        })
    });
    group.bench_function("binary-deserialize", |b| {
        b.iter(|| {
            binary::from_slice::<TaskFinished>(
                black_box(&body),
                black_box(&buffers),
                binary::DEFAULT_MAX_DEPTH,
            )
            .unwrap()
        })
    });
    // The same registry with a recorder installed: each call reads the clock twice and
    // records one sample through the family's cached handle.
    let tally = Tally::default();
    // Whether criterion ran a recorded bench: a filter on the command line may leave them out.
    let recorded = std::cell::Cell::new(false);
    metrics::with_local_recorder(&tally, || {
        group.bench_function("registry-serialize-recorded", |b| {
            recorded.set(true);
            b.iter(|| registry.serialize(black_box(&admin)).unwrap())
        });
        group.bench_function("registry-deserialize-recorded", |b| {
            recorded.set(true);
            b.iter(|| {
                registry
                    .deserialize::<TaskFinished>(black_box(&message))
                    .unwrap()
            })
        });
    });
    assert!(
        !recorded.get() || tally.samples.load(Ordering::Relaxed) > 0,
        "nothing was recorded"
    );
    group.finish();
}

/// A recorder whose histograms keep a count and a sum, as an exporter's summary would: its own
/// cost is a pair of atomic adds, so the bench shows what the registry adds.
#[derive(Default)]
struct Tally {
    samples: Arc<AtomicU64>,
}

struct TallyHistogram {
    samples: Arc<AtomicU64>,
    nanos: AtomicU64,
}

impl metrics::HistogramFn for TallyHistogram {
    fn record(&self, seconds: f64) {
        self.samples.fetch_add(1, Ordering::Relaxed);
        self.nanos
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }
}

impl metrics::Recorder for Tally {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(Arc::new(TallyHistogram {
            samples: self.samples.clone(),
            nanos: AtomicU64::new(0),
        }))
    }
}

/// A model whose weights are a [`pontoon::family::Buffer`] of 1 MiB and of 100 MiB: the weights
/// go out as a frame and come back as a view of it, so neither way should grow with them.
fn buffer(c: &mut Criterion) {
    let registry = Registry::new();
    let mut group = c.benchmark_group("family/buffer");
    for (label, len) in [("1MiB", 1usize << 20), ("100MiB", 100 << 20)] {
        // Written once, outside the timing.
        let model = Model::with_weights(len);
        let message = registry.serialize(&model).unwrap();
        group.bench_with_input(BenchmarkId::new("serialize", label), &model, |b, m| {
            b.iter(|| registry.serialize(black_box(m)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("deserialize", label), &message, |b, m| {
            b.iter(|| registry.deserialize::<Model>(black_box(m)).unwrap())
        });
    }
    group.finish();
}

/// rkyv's calls for one type: serialize, deserialize into an owned value, and check an archive
/// in place (its zero-copy read). Closures, since rkyv's trait bounds differ per use.
struct Rkyv<T> {
    serialize: fn(&T) -> rkyv::util::AlignedVec,
    deserialize: fn(&[u8]) -> T,
    access: fn(&[u8]) -> usize,
}

/// Benches `value` both ways through pontoon's Registry, rmp-serde, postcard, bitcode and rkyv,
/// in the group `family/{name}`. Each deserializes from bytes it encoded once, outside the timing.
fn versus_peers<T>(c: &mut Criterion, name: &str, value: &T, rkyv: &Rkyv<T>)
where
    T: Serialize + DeserializeOwned + 'static,
{
    let registry = Registry::new();
    let message = registry.serialize(value).unwrap();
    let rmp = rmp_serde::to_vec(value).unwrap();
    let postcard = postcard::to_allocvec(value).unwrap();
    let bitcode = bitcode::serialize(value).unwrap();
    let archive = (rkyv.serialize)(value);

    let mut group = c.benchmark_group(format!("family/{name}"));
    // Each iteration handles megabytes: few samples are enough, and keep the run short.
    group.timing(Timing {
        samples: 20,
        warm_up: Duration::from_secs(1),
        measurement: Duration::from_secs(3),
    });

    group.bench_function("pontoon-serialize", |b| {
        b.iter(|| registry.serialize(black_box(value)).unwrap())
    });
    group.bench_function("pontoon-deserialize", |b| {
        b.iter(|| registry.deserialize::<T>(black_box(&message)).unwrap())
    });
    group.bench_function("rmp-serde-serialize", |b| {
        b.iter(|| rmp_serde::to_vec(black_box(value)).unwrap())
    });
    group.bench_function("rmp-serde-deserialize", |b| {
        b.iter(|| rmp_serde::from_slice::<T>(black_box(&rmp)).unwrap())
    });
    group.bench_function("postcard-serialize", |b| {
        b.iter(|| postcard::to_allocvec(black_box(value)).unwrap())
    });
    group.bench_function("postcard-deserialize", |b| {
        b.iter(|| postcard::from_bytes::<T>(black_box(&postcard)).unwrap())
    });
    group.bench_function("bitcode-serialize", |b| {
        b.iter(|| bitcode::serialize(black_box(value)).unwrap())
    });
    group.bench_function("bitcode-deserialize", |b| {
        b.iter(|| bitcode::deserialize::<T>(black_box(&bitcode)).unwrap())
    });
    group.bench_function("rkyv-serialize", |b| {
        b.iter(|| (rkyv.serialize)(black_box(value)))
    });
    group.bench_function("rkyv-deserialize", |b| {
        b.iter(|| (rkyv.deserialize)(black_box(&archive)))
    });
    group.bench_function("rkyv-access", |b| {
        b.iter(|| (rkyv.access)(black_box(&archive)))
    });
    group.finish();
}

/// 10,000 access-log records: short strings and small integers.
fn log(c: &mut Criterion) {
    let rkyv = Rkyv {
        serialize: |v: &Logs| rkyv::to_bytes::<rkyv::rancor::Error>(v).unwrap(),
        deserialize: |b| rkyv::from_bytes::<Logs, rkyv::rancor::Error>(b).unwrap(),
        access: |b| {
            rkyv::access::<ArchivedLogs, rkyv::rancor::Error>(b)
                .unwrap()
                .logs
                .len()
        },
    };
    versus_peers(c, "log", &Logs::generate(LOG_RECORDS, 1), &rkyv);
}

/// 125,000 triangles: about 6 MB of fixed-width floats.
fn mesh(c: &mut Criterion) {
    let rkyv = Rkyv {
        serialize: |v: &Mesh| rkyv::to_bytes::<rkyv::rancor::Error>(v).unwrap(),
        deserialize: |b| rkyv::from_bytes::<Mesh, rkyv::rancor::Error>(b).unwrap(),
        access: |b| {
            rkyv::access::<ArchivedMesh, rkyv::rancor::Error>(b)
                .unwrap()
                .triangles
                .len()
        },
    };
    versus_peers(c, "mesh", &Mesh::generate(MESH_TRIANGLES, 2), &rkyv);
}

criterion_group! {
    name = benches;
    config = pontoon_benches::criterion();
    targets = small, buffer, log, mesh
}
criterion_main!(benches);
