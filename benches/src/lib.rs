//! Shared fixtures for pontoon's benchmarks: the messages each bench encodes, built the same way
//! for pontoon and for its peers.

use std::time::Duration;

use bytes::Bytes;
use pontoon::family::Buffer;
use serde::{Deserialize, Serialize};

/// A small administrative message of six fields, the kind a scheduler and its workers exchange
/// thousands of times a second.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TaskFinished {
    /// The operation.
    pub op: String,
    /// The task's key.
    pub key: String,
    /// The worker's address.
    pub worker: String,
    /// Size of the result.
    pub nbytes: u64,
    /// Element type of the result.
    pub dtype: String,
    /// Shape of the result.
    pub shape: Vec<u64>,
}

impl TaskFinished {
    /// A typical instance.
    pub fn sample() -> TaskFinished {
        TaskFinished {
            op: "task-finished".into(),
            key: "('array-sum', 0, 3)".into(),
            worker: "tcp://127.0.0.1:40471".into(),
            nbytes: 8_000_000,
            dtype: "<f8".into(),
            shape: vec![1000, 1000],
        }
    }
}

/// A payload of `len` bytes whose pages are written (so they are real memory, not the shared
/// zero page) and whose content does not compress to nothing.
pub fn payload(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

/// A model whose weights travel out of band, as a frame of their own: the shape of the family
/// layer's zero-copy path.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Model {
    /// The model's name.
    pub name: String,
    /// The weights, never copied into the body.
    pub weights: Buffer,
}

impl Model {
    /// A model with `len` bytes of weights, written once (see [`payload`]).
    pub fn with_weights(len: usize) -> Model {
        Model {
            name: "resnet-50".into(),
            weights: Buffer::new(payload(len)),
        }
    }
}

/// A small, seeded xorshift64* generator: the same fixtures on every machine and every run, with
/// no dependency on `rand`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is replaced, as xorshift cannot leave it).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0); the slight modulo bias does not matter for fixtures.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// An element of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A float in `[0, 1)`.
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u32 << 24) as f32
    }
}

/// How many records [`Logs::generate`] makes for the benchmarks (as in rust_serialization_benchmark).
pub const LOG_RECORDS: usize = 10_000;

/// How many triangles [`Mesh::generate`] makes for the benchmarks (as in
/// rust_serialization_benchmark): 125,000 triangles of 48 bytes, about 6 MB.
pub const MESH_TRIANGLES: usize = 125_000;

/// An IPv4 address, one byte a field.
#[derive(
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
)]
pub struct Address {
    /// First byte.
    pub x0: u8,
    /// Second byte.
    pub x1: u8,
    /// Third byte.
    pub x2: u8,
    /// Fourth byte.
    pub x3: u8,
}

/// One line of a web server's access log (Common Log Format): many short strings and a few
/// integers.
#[derive(
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
pub struct Log {
    /// The client's address.
    pub address: Address,
    /// The client's identity (always `-`, as in practice).
    pub identity: String,
    /// The authenticated user, or `-`.
    pub userid: String,
    /// When, as `day/Mon/year:hh:mm:ss zone`.
    pub date: String,
    /// The request line: method, route, protocol.
    pub request: String,
    /// The HTTP status code.
    pub code: u16,
    /// Size of the response in bytes.
    pub size: u64,
}

/// A batch of access-log records: the `log` data set of rust_serialization_benchmark.
#[derive(
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
pub struct Logs {
    /// The records.
    pub logs: Vec<Log>,
}

impl Log {
    /// A random record drawn from `rng`.
    pub fn generate(rng: &mut Rng) -> Log {
        const USERID: [&str; 9] = [
            "-", "alice", "bob", "carmen", "david", "eric", "frank", "george", "harry",
        ];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        const CODES: [u16; 20] = [
            100, 101, 200, 201, 202, 204, 206, 301, 302, 304, 307, 400, 401, 403, 404, 405, 409,
            429, 500, 503,
        ];
        const METHODS: [&str; 5] = ["GET", "POST", "PUT", "UPDATE", "DELETE"];
        const ROUTES: [&str; 7] = [
            "/favicon.ico",
            "/css/index.css",
            "/css/font-awsome.min.css",
            "/img/logo-full.svg",
            "/img/splash.jpg",
            "/api/login",
            "/api/logout",
        ];
        const PROTOCOLS: [&str; 4] = ["HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3"];
        let address = Address {
            x0: rng.below(256) as u8,
            x1: rng.below(256) as u8,
            x2: rng.below(256) as u8,
            x3: rng.below(256) as u8,
        };
        // Time zones from -1200 to +1200 in whole hours.
        let zone = rng.below(25) as i64 - 12;
        let date = format!(
            "{}/{}/{}:{:02}:{:02}:{:02} {}{:02}00",
            1 + rng.below(28),
            rng.pick(&MONTHS),
            1970 + rng.below(52),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            if zone < 0 { '-' } else { '+' },
            zone.abs(),
        );
        let request = format!(
            "{} {} {}",
            rng.pick(&METHODS),
            rng.pick(&ROUTES),
            rng.pick(&PROTOCOLS)
        );
        Log {
            address,
            identity: "-".into(),
            userid: (*rng.pick(&USERID)).into(),
            date,
            request,
            code: *rng.pick(&CODES),
            size: rng.below(100_000_000),
        }
    }
}

impl Logs {
    /// `records` random records, the same for the same `seed`.
    pub fn generate(records: usize, seed: u64) -> Logs {
        let mut rng = Rng::new(seed);
        Logs {
            logs: (0..records).map(|_| Log::generate(&mut rng)).collect(),
        }
    }
}

/// A point or direction in space.
#[derive(
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
)]
pub struct Vector3 {
    /// x coordinate.
    pub x: f32,
    /// y coordinate.
    pub y: f32,
    /// z coordinate.
    pub z: f32,
}

/// A triangle of a mesh: three vertices and a normal.
#[derive(
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
)]
pub struct Triangle {
    /// First vertex.
    pub v0: Vector3,
    /// Second vertex.
    pub v1: Vector3,
    /// Third vertex.
    pub v2: Vector3,
    /// The normal.
    pub normal: Vector3,
}

/// A triangle mesh: the `mesh` data set of rust_serialization_benchmark, all fixed-width floats.
#[derive(
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Debug,
    Clone,
    PartialEq,
)]
pub struct Mesh {
    /// The triangles.
    pub triangles: Vec<Triangle>,
}

impl Vector3 {
    /// A random vector with coordinates in `[0, 1)`.
    pub fn generate(rng: &mut Rng) -> Vector3 {
        Vector3 {
            x: rng.unit_f32(),
            y: rng.unit_f32(),
            z: rng.unit_f32(),
        }
    }
}

impl Mesh {
    /// `triangles` random triangles, the same for the same `seed`.
    pub fn generate(triangles: usize, seed: u64) -> Mesh {
        let mut rng = Rng::new(seed);
        let mut vector = || Vector3::generate(&mut rng);
        Mesh {
            triangles: (0..triangles)
                .map(|_| Triangle {
                    v0: vector(),
                    v1: vector(),
                    v2: vector(),
                    normal: vector(),
                })
                .collect(),
        }
    }
}

/// The environment variable `cargo xtask bench --quick` sets: every group then measures with
/// [`Timing::QUICK`]'s shorter settings instead of its own.
pub const QUICK_ENV: &str = "PONTOON_BENCH_QUICK";

/// Whether this is a quick run (`cargo xtask bench --quick`, which sets [`QUICK_ENV`]).
///
/// A quick run is criterion's ordinary sampling, shortened: ten samples after a short warm-up.
/// Not criterion's own `--quick`, whose two samples and no warm-up let one stalled sample or
/// one cold pool move a ratio tenfold.
pub fn quick() -> bool {
    std::env::var_os(QUICK_ENV).is_some_and(|v| !v.is_empty())
}

/// How a benchmark group samples: criterion's sample count, warm-up and measurement time. A
/// group states what a full run uses with [`Timed::timing`]; a quick run uses at most
/// [`Timing::QUICK`]'s.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Samples to take (criterion needs at least 10).
    pub samples: usize,
    /// How long to run the routine before measuring: pools filled, pages faulted in.
    pub warm_up: Duration,
    /// The time criterion aims the samples at, together. A routine slower than a tenth of it
    /// still runs once a sample.
    pub measurement: Duration,
}

impl Timing {
    /// Criterion's own defaults.
    pub const DEFAULT: Timing = Timing {
        samples: 100,
        warm_up: Duration::from_secs(3),
        measurement: Duration::from_secs(5),
    };

    /// The most a quick run spends: ten samples aimed at 400 ms after 200 ms of warm-up.
    pub const QUICK: Timing = Timing {
        samples: 10,
        warm_up: Duration::from_millis(200),
        measurement: Duration::from_millis(400),
    };

    /// This timing, or in a quick run the shorter of it and [`Timing::QUICK`] in each setting.
    pub fn for_this_run(self) -> Timing {
        if quick() { self.shortened() } else { self }
    }

    /// This timing as a quick run takes it.
    fn shortened(self) -> Timing {
        Timing {
            samples: Timing::QUICK.samples,
            warm_up: self.warm_up.min(Timing::QUICK.warm_up),
            measurement: self.measurement.min(Timing::QUICK.measurement),
        }
    }
}

/// Setting a group's [`Timing`].
pub trait Timed {
    /// Samples the group's next benchmarks as `full` says, or as [`Timing::for_this_run`]
    /// shortens it in a quick run.
    fn timing(&mut self, full: Timing) -> &mut Self;
}

impl<M: criterion::measurement::Measurement> Timed for criterion::BenchmarkGroup<'_, M> {
    fn timing(&mut self, full: Timing) -> &mut Self {
        let timing = full.for_this_run();
        self.sample_size(timing.samples)
            .warm_up_time(timing.warm_up)
            .measurement_time(timing.measurement)
    }
}

/// The criterion every bench target starts from (`criterion_group!`'s `config`): groups that
/// set no [`Timing`] get [`Timing::DEFAULT`], shortened in a quick run, where the bootstrap
/// also resamples less (its confidence intervals rest on ten samples anyway).
pub fn criterion() -> criterion::Criterion {
    let timing = Timing::DEFAULT.for_this_run();
    let criterion = criterion::Criterion::default()
        .sample_size(timing.samples)
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement);
    if quick() {
        criterion.nresamples(10_000)
    } else {
        criterion
    }
}

/// Says why something was not measured: on stderr, and, under `cargo xtask bench`, in a note
/// the report prints (`PONTOON_BENCH_NOTES` names the directory), so that a row the run could
/// not fill says why instead of only being empty.
pub fn note(name: &str, text: &str) {
    eprintln!("{name}: {text}");
    if let Some(dir) = std::env::var_os("PONTOON_BENCH_NOTES") {
        let dir = std::path::PathBuf::from(dir);
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(format!("{name}.txt")), text));
        if let Err(e) = written {
            eprintln!(
                "{name}: could not write the note into {}: {e}",
                dir.display()
            );
        }
    }
}

/// The Python to measure as a peer: `cargo xtask bench --python` installs its venv and names
/// the interpreter in `PONTOON_BENCH_PYTHON`. `None` (with a [`note`] saying so) without it.
pub fn python_peer(bench: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PONTOON_BENCH_PYTHON").filter(|p| !p.is_empty());
    if path.is_none() {
        note(
            bench,
            "SKIPPED: its peers are Python packages; run `cargo xtask bench --python` (or set \
             PONTOON_BENCH_PYTHON to a Python that has them)",
        );
    }
    path.map(std::path::PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pontoon::family::Registry;
    use serde::de::DeserializeOwned;
    use std::any::Any;
    use std::fmt::Debug;

    #[test]
    fn a_quick_run_takes_ten_samples_and_never_longer_than_a_full_one() {
        let full = Timing {
            samples: 50,
            warm_up: Duration::from_millis(1),
            measurement: Duration::from_secs(8),
        };
        let quick = full.shortened();
        assert_eq!(quick.samples, 10);
        // A warm-up shorter than the quick one stays as the group set it.
        assert_eq!(quick.warm_up, Duration::from_millis(1));
        assert_eq!(quick.measurement, Timing::QUICK.measurement);
        assert_eq!(Timing::DEFAULT.shortened().warm_up, Timing::QUICK.warm_up);
    }

    /// `value` comes back equal through the Registry and through every peer the family
    /// benchmarks compare it with.
    fn round_trips<T>(value: &T)
    where
        T: Serialize + DeserializeOwned + Any + PartialEq + Debug,
    {
        let registry = Registry::new();
        let message = registry.serialize(value).unwrap();
        assert_eq!(
            &registry.deserialize::<T>(&message).unwrap(),
            value,
            "pontoon"
        );

        let bytes = rmp_serde::to_vec(value).unwrap();
        assert_eq!(
            &rmp_serde::from_slice::<T>(&bytes).unwrap(),
            value,
            "rmp-serde"
        );

        let bytes = postcard::to_allocvec(value).unwrap();
        assert_eq!(
            &postcard::from_bytes::<T>(&bytes).unwrap(),
            value,
            "postcard"
        );

        let bytes = bitcode::serialize(value).unwrap();
        assert_eq!(
            &bitcode::deserialize::<T>(&bytes).unwrap(),
            value,
            "bitcode"
        );
    }

    #[test]
    fn logs_have_the_intended_size_and_round_trip() {
        let logs = Logs::generate(LOG_RECORDS, 1);
        assert_eq!(logs.logs.len(), 10_000);
        assert_eq!(
            logs,
            Logs::generate(LOG_RECORDS, 1),
            "seeded: the same every time"
        );
        // Not degenerate: the random fields vary.
        let first = &logs.logs[0];
        assert!(logs.logs.iter().any(|log| log.date != first.date));
        assert!(logs.logs.iter().any(|log| log.request != first.request));
        assert!(logs.logs.iter().any(|log| log.address != first.address));
        round_trips(&logs);
    }

    #[test]
    fn mesh_has_the_intended_size_and_round_trips() {
        let mesh = Mesh::generate(MESH_TRIANGLES, 2);
        assert_eq!(mesh.triangles.len(), 125_000);
        assert_eq!(mesh.triangles.len() * size_of::<Triangle>(), 6_000_000);
        let first = mesh.triangles[0];
        assert!(mesh.triangles.iter().any(|t| t != &first));
        assert!(
            mesh.triangles
                .iter()
                .flat_map(|t| [t.v0, t.v1, t.v2, t.normal])
                .all(|v| [v.x, v.y, v.z].iter().all(|c| (0.0..1.0).contains(c)))
        );
        round_trips(&mesh);
    }

    #[test]
    fn small_message_and_model_round_trip() {
        round_trips(&TaskFinished::sample());
        let registry = Registry::new();
        let model = Model::with_weights(1 << 20);
        let message = registry.serialize(&model).unwrap();
        let back: Model = registry.deserialize(&message).unwrap();
        assert_eq!(back, model);
        // The weights are a view of their frame, not a copy.
        assert!(
            message
                .frames
                .iter()
                .any(|frame| frame.as_ptr() == back.weights.as_ptr())
        );
    }
}
