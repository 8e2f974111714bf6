//! pontoon-wire benchmarks: a small admin message next to rmp-serde, and payload messages of
//! growing size whose encode and decode must not grow with the payload (nothing is copied).

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pontoon::family::Registry;
use pontoon::wire::{Decoder, Encoder, Header, Limits, Message, decode_message};
use pontoon_benches::{TaskFinished, Timed, Timing, payload};
use std::hint::black_box;

/// The same six fields as a user's admin message travels (the Registry's header and body, the
/// wire's framing, the stream decoder over a reused receive buffer, the Registry's checks on the
/// way back) and as bare rmp-serde encodes and decodes them.
fn small_admin_message(c: &mut Criterion) {
    let admin = TaskFinished::sample();
    let mut group = c.benchmark_group("wire/small");
    let registry = Registry::new();
    let encoder = Encoder::default();
    let mut decoder = Decoder::without_preamble(Limits::default());
    // The receive buffer is reused, as a connection's is.
    let mut buf = BytesMut::with_capacity(4096);
    group.bench_function("pontoon", |b| {
        b.iter(|| {
            let message = registry.serialize(black_box(&admin)).unwrap();
            for chunk in encoder.encode(&message).unwrap().chunks() {
                buf.extend_from_slice(chunk);
            }
            let received = decoder.decode(&mut buf).unwrap().unwrap();
            black_box(registry.deserialize::<TaskFinished>(&received).unwrap())
        })
    });
    group.bench_function("rmp-serde", |b| {
        b.iter(|| {
            let bytes = rmp_serde::to_vec_named(black_box(&admin)).unwrap();
            black_box(rmp_serde::from_slice::<TaskFinished>(&bytes).unwrap())
        })
    });
    group.finish();
}

/// Messages carrying 1 KiB, 1 MiB and 64 MiB payloads: encode gives chunks that reference the
/// payload, decode gives frames that are views of the received bytes. The memcpy of the same
/// payload into a warm buffer is the physical reference.
fn payload_messages(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire");
    let mut limits = Limits::default();
    // The largest payload is 1 GiB: room for it and its header.
    limits.max_message_bytes = 2 << 30;
    for (label, len) in [
        ("1KiB", 1usize << 10),
        ("64KiB", 64 << 10),
        ("1MiB", 1 << 20),
        ("64MiB", 64 << 20),
        ("1GiB", 1 << 30),
    ] {
        // A copy of a gigabyte takes a tenth of a second: fewer samples.
        group.timing(Timing {
            samples: if len >= 1 << 30 { 10 } else { 100 },
            ..Timing::DEFAULT
        });
        let message = Message::new(
            Header::from_serde(&TaskFinished::sample()).unwrap(),
            vec![payload(len)],
        );
        let encoder = Encoder::default();
        let wire = encoder.encode(&message).unwrap().to_bytes();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("encode", label), &message, |b, m| {
            b.iter(|| black_box(encoder.encode(m).unwrap()))
        });
        group.bench_with_input(BenchmarkId::new("decode", label), &wire, |b, w| {
            b.iter(|| black_box(decode_message(w.clone(), &limits).unwrap()))
        });
        group.bench_with_input(
            BenchmarkId::new("encode+decode", label),
            &message,
            |b, m| {
                b.iter(|| {
                    black_box(encoder.encode(m).unwrap());
                    black_box(decode_message(wire.clone(), &limits).unwrap())
                })
            },
        );
        let source = payload(len);
        let mut target = vec![0xA5u8; len];
        group.bench_with_input(BenchmarkId::new("memcpy", label), &len, |b, _| {
            b.iter(|| {
                target.copy_from_slice(black_box(&source));
                black_box(&target);
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = pontoon_benches::criterion();
    targets = small_admin_message, payload_messages
}
criterion_main!(benches);
