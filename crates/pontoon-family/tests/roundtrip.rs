//! Property tests: random values round-trip through the registry, and through pontoon-wire too.

use bytes::Bytes;
use pontoon_family::{Buffer, Registry};
use pontoon_wire::{Encoder, Limits, decode_message};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Event {
    Tick,
    Move(i32, i32),
    Say { who: String, what: Option<String> },
    Blob(Buffer),
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Record {
    id: u64,
    small: (u8, i8, u16, i16, u32, i32),
    wide: (i128, u128),
    ratio: f64,
    narrow: f32,
    flag: bool,
    letter: char,
    name: String,
    tags: Vec<String>,
    events: Vec<Event>,
    extra: Option<Box<Record>>,
}

fn buffer() -> impl Strategy<Value = Buffer> {
    proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Buffer::from)
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Tick),
        (any::<i32>(), any::<i32>()).prop_map(|(x, y)| Event::Move(x, y)),
        (".{0,12}", proptest::option::of(".{0,12}"))
            .prop_map(|(who, what)| Event::Say { who, what }),
        buffer().prop_map(Event::Blob),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    let leaf = (
        any::<u64>(),
        any::<(u8, i8, u16, i16, u32, i32)>(),
        any::<(i128, u128)>(),
        any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()),
        any::<f32>().prop_filter("NaN != NaN", |f| !f.is_nan()),
        any::<bool>(),
        any::<char>(),
        ".{0,40}",
        proptest::collection::vec(".{0,8}", 0..5),
        proptest::collection::vec(event(), 0..6),
    )
        .prop_map(
            |(id, small, wide, ratio, narrow, flag, letter, name, tags, events)| Record {
                id,
                small,
                wide,
                ratio,
                narrow,
                flag,
                letter,
                name,
                tags,
                events,
                extra: None,
            },
        );
    leaf.prop_recursive(3, 8, 1, |inner| {
        (inner.clone(), inner).prop_map(|(mut outer, extra)| {
            outer.extra = Some(Box::new(extra));
            outer
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn records_round_trip_through_the_registry_and_the_wire(record in record()) {
        let registry = Registry::new();
        let message = registry.serialize(&record).unwrap();
        prop_assert_eq!(&registry.deserialize::<Record>(&message).unwrap(), &record);

        let bytes: Bytes = Encoder::default().encode(&message).unwrap().to_bytes();
        let received = decode_message(bytes, &Limits::default()).unwrap();
        prop_assert_eq!(registry.deserialize::<Record>(&received).unwrap(), record);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_body_decoder(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let buffers = [Bytes::from_static(b"frame")];
        let _ = pontoon_family::binary::from_slice::<Record>(&body, &buffers, 256);
        let _ = pontoon_family::binary::from_slice::<Vec<Event>>(&body, &buffers, 256);
    }
}
