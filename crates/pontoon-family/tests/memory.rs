//! What hostile messages can make a receiver allocate: measured with a counting allocator, per
//! thread, so that each test sees only its own allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pontoon_family::{DeserializeError, Dumped, Registry};
use pontoon_wire::{Header, Limits, Message};
use rmpv::Value;

/// Counts the bytes live on each thread, and the most that were live at once.
struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    // `try_with`: the counters may already be gone while a thread's other locals are dropped.
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(delta);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn signed(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

// SAFETY: every call is passed to the system allocator with the caller's pointer, layout and
// size unchanged, so `System`'s guarantees are the caller's; the counters are const-initialized
// thread-local cells, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which `System.alloc` shares.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(signed(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller upholds `realloc`'s
        // contract for `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(signed(new_size) - signed(layout.size()));
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most bytes `run` had allocated at once on this thread, beyond what was live before it.
fn peak_during<R>(run: impl FnOnce() -> R) -> (R, u64) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let result = run();
    let peak = PEAK.with(Cell::get);
    (result, u64::try_from(peak - before).unwrap_or(0))
}

/// A `custom` family header with `meta` an array of `n` nils: `n` bytes that rmpv decodes into
/// `n` values of 32 bytes or more each.
fn custom_message(type_name: &str, n: usize) -> Message {
    let meta = Value::Array(vec![Value::Nil; n]);
    let header = Header::from_value(&Value::Map(vec![
        ("family".into(), "custom".into()),
        ("type".into(), type_name.into()),
        ("meta".into(), meta),
    ]));
    Message::new(header, vec![])
}

#[test]
fn a_custom_message_naming_an_unregistered_type_is_refused_before_its_meta_is_decoded() {
    let message = custom_message("nobody.Registered", 1 << 20);
    let registry = Registry::new();
    let (result, peak) = peak_during(|| registry.deserialize_dyn(&message));
    assert!(
        matches!(&result, Err(DeserializeError::UnknownType { name }) if name == "nobody.Registered"),
        "{result:?}"
    );
    // Decoding the 1 MiB meta would take 32 MiB or more.
    assert!(peak < 64 << 10, "refusing it allocated {peak} bytes");
}

struct Human;

#[test]
fn a_meta_that_would_take_more_than_the_limits_allow_is_refused_before_it_is_decoded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::new();
    let seen = calls.clone();
    registry
        .register::<Human, _, _>(
            "app.Human",
            |_, _| Ok(Dumped::new(Value::Nil, vec![])),
            move |_, _| {
                seen.fetch_add(1, Ordering::SeqCst);
                Ok(Human)
            },
        )
        .unwrap();
    let mut limits = Limits::default();
    limits.max_expansion_ratio = 4;
    limits.max_expanded_bytes = 1 << 20;
    registry.set_limits(limits);

    // 100,000 nils: 100 KB that would be 3 MB or more decoded, over the 400 KB allowed.
    let message = custom_message("app.Human", 100_000);
    let (result, peak) = peak_during(|| registry.deserialize_dyn(&message));
    match result {
        Err(DeserializeError::MetaTooLarge {
            family,
            type_name,
            received_bytes,
            decoded_bytes,
            max_bytes,
        }) => {
            assert_eq!(
                (family.as_str(), type_name.as_str()),
                ("custom", "app.Human")
            );
            assert_eq!(received_bytes, 100_005); // array 32: five bytes, then the nils
            assert_eq!(max_bytes, 400_020);
            assert!(decoded_bytes > max_bytes, "{decoded_bytes}");
        }
        other => panic!("expected MetaTooLarge, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the loader must not run");
    assert!(peak < 64 << 10, "refusing it allocated {peak} bytes");

    // Within the limits, the same meta is decoded and the loader runs.
    let message = custom_message("app.Human", 1_000);
    assert!(registry.deserialize_dyn(&message).is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Takes no bytes on the wire and 16 in memory.
#[derive(serde::Serialize, serde::Deserialize, Default, Debug, PartialEq)]
struct Skipped {
    #[serde(skip)]
    a: u64,
    #[serde(skip)]
    b: u64,
}

/// A serde message of `outer` sequences of 65,536 elements each, three bytes per sequence.
fn nested_counts(type_name: &str, outer: u64) -> Message {
    let mut body = Vec::new();
    body.extend_from_slice(&[0x80 | (outer as u8 & 0x7f), (outer >> 7) as u8]);
    for _ in 0..outer {
        body.extend_from_slice(&[0x80, 0x80, 0x04]); // 65,536
    }
    let header = Header::from_value(&Value::Map(vec![
        ("family".into(), "serde".into()),
        ("type".into(), type_name.into()),
        ("body".into(), Value::Binary(body)),
        ("buffers".into(), 0.into()),
    ]));
    Message::new(header, vec![])
}

#[test]
fn elements_that_take_no_bytes_share_one_budget_for_the_whole_body() {
    use pontoon_family::binary::ErrorKind;
    // 64 sequences of 65,536: 194 bytes that made 64 MiB before one budget bounded them all.
    let message = nested_counts(std::any::type_name::<Vec<Vec<Skipped>>>(), 64);
    let registry = Registry::new();
    let (result, peak) = peak_during(|| registry.deserialize::<Vec<Vec<Skipped>>>(&message));
    match result {
        Err(DeserializeError::Body { error, .. }) => assert!(
            matches!(error.kind(), ErrorKind::Expansion { max_bytes, .. } if *max_bytes == pontoon_wire::EXPANSION_FLOOR),
            "{error}"
        ),
        other => panic!("expected an expansion error, got {other:?}"),
    }
    assert!(peak < 1 << 20, "refusing it allocated {peak} bytes");

    // The budget grows with the body, and with the receiver's limits.
    let mut registry = Registry::new();
    let mut limits = Limits::default();
    limits.max_expanded_bytes = 128 << 20;
    limits.max_expansion_ratio = 1 << 20;
    registry.set_limits(limits);
    let back = registry.deserialize::<Vec<Vec<Skipped>>>(&message).unwrap();
    assert_eq!(back.len(), 64);
    assert!(back.iter().all(|inner| inner.len() == 65_536));
}

#[test]
fn real_data_with_elements_of_no_size_still_round_trips() {
    let registry = Registry::new();
    let skipped: Vec<Skipped> = (0..1000).map(|_| Skipped::default()).collect();
    let message = registry.serialize(&skipped).unwrap();
    assert_eq!(
        registry.deserialize::<Vec<Skipped>>(&message).unwrap(),
        skipped
    );
    let units = vec![(); 60_000];
    let message = registry.serialize(&units).unwrap();
    assert_eq!(registry.deserialize::<Vec<()>>(&message).unwrap(), units);
    // A count that neither the body nor the budget can back is refused before anything else.
    let body = vec![0x81, 0x80, 0x04]; // 65,537 units: one more than the 64 KiB floor allows
    let err = pontoon_family::binary::from_slice::<Vec<()>>(&body, &[], 256).unwrap_err();
    assert_eq!(
        err.kind(),
        &pontoon_family::binary::ErrorKind::BadLength {
            len: 65_537,
            offset: 0,
            remaining: 0
        }
    );
}
