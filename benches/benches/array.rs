//! ferry-array benchmarks: encoding and decoding f64 arrays of 1 KiB to 1 GiB through the array
//! family must not grow with the size (the data is never copied).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ferry::array::{Array, ArrayFamily};
use ferry::family::Registry;
use std::hint::black_box;

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.add_family("array", ArrayFamily).unwrap();
    registry.set_serializers(["array", "serde"]).unwrap();
    registry.set_deserializers(["array", "serde"]).unwrap();
    registry
}

fn arrays(c: &mut Criterion) {
    let registry = registry();
    let mut group = c.benchmark_group("array/f64");
    for (label, bytes) in [
        ("1KiB", 1usize << 10),
        ("1MiB", 1 << 20),
        ("100MiB", 100 << 20),
        ("1GiB", 1 << 30),
    ] {
        let elements = bytes / 8;
        // Written once, outside the timing, so the pages are real memory.
        let array = Array::build::<f64>(&[elements], |xs| {
            for (i, x) in xs.iter_mut().enumerate() {
                *x = i as f64;
            }
        })
        .unwrap();
        let message = registry.serialize(&array).unwrap();
        group.bench_with_input(BenchmarkId::new("encode", label), &array, |b, a| {
            b.iter(|| registry.serialize(black_box(a)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("decode", label), &message, |b, m| {
            b.iter(|| registry.deserialize::<Array>(black_box(m)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, arrays);
criterion_main!(benches);
