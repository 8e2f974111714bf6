//! The array family and arrays inside serde structs: views of the frames that carried them, the
//! sending rule for sparse and broadcast arrays, and hostile headers refused.

use bytes::Bytes;
use pontoon_array::{Array, ArrayFamily, ByteOrder, DType};
use pontoon_family::rmpv::Value;
use pontoon_family::{Context, Family, Loaded, Registry};
use pontoon_wire::{Encoder, Limits, decode_message};
use serde::{Deserialize, Serialize};

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.add_family(ArrayFamily).unwrap();
    registry.set_serializers(["array", "serde"]).unwrap();
    registry.set_deserializers(["array", "serde"]).unwrap();
    registry
}

fn within(frame: &Bytes, p: *const u8) -> bool {
    (frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len()).contains(&(p as usize))
}

#[test]
fn arrays_cross_the_wire_as_views_of_the_received_frame() {
    let array = Array::from_shape_vec(&[256, 256], (0..65536).map(|i| i as f32).collect()).unwrap();
    let registry = registry();
    let message = registry.serialize(&array).unwrap();
    let header = message.header.to_value().unwrap();
    assert_eq!(header["family"].as_str(), Some("array"));
    assert_eq!(header["meta"]["dtype"].as_str(), Some("<f4"));
    let received = decode_message(
        Encoder::default().encode(&message).unwrap().to_bytes(),
        &Limits::default(),
    )
    .unwrap();
    let back: Array = registry.deserialize(&received).unwrap();
    assert_eq!(back, array);
    assert!(
        within(&received.frames[0], back.data().as_ptr()),
        "the array was copied on the way in"
    );
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Model {
    name: String,
    weights: Array,
    biases: Vec<Array>,
}

#[test]
fn arrays_inside_serde_structs_travel_out_of_band() {
    let model = Model {
        name: "mlp".into(),
        weights: Array::from_shape_vec(&[64, 32], vec![0.5f64; 64 * 32]).unwrap(),
        biases: vec![
            Array::from_vec(vec![1i32; 32]),
            Array::from_vec(vec![2u8; 7]),
        ],
    };
    let registry = Registry::new();
    let message = registry.serialize(&model).unwrap();
    assert_eq!(message.frames.len(), 3, "one frame per array");
    let back: Model = registry.deserialize(&message).unwrap();
    assert_eq!(back, model);
    assert_eq!(back.weights.data().as_ptr(), message.frames[0].as_ptr());
}

#[test]
fn sparse_arrays_are_compacted_and_broadcast_arrays_send_their_base() {
    let base = Array::from_vec((0..1000).map(f64::from).collect());
    // Every tenth element: the stretch holding them is ten times the elements: compact.
    let sparse = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![100],
        vec![80],
        0,
        base.data().clone(),
        &Limits::DEFAULT,
    )
    .unwrap();
    // Every other element: the stretch is twice the elements: compact too.
    // A row broadcast 1000 times: the stretch is the row alone: sent as is. That is a
    // thousand times the bytes it lies in, more than the default limits let a peer make.
    let mut limits = Limits::DEFAULT;
    limits.max_expansion_ratio = 1000;
    let wide = Array::from_parts(
        DType::F64,
        ByteOrder::NATIVE,
        vec![1000, 1000],
        vec![0, 8],
        0,
        base.data().clone(),
        &limits,
    )
    .unwrap();
    let mut registry = registry();
    let sent = registry.serialize(&sparse).unwrap();
    assert_eq!(sent.frames[0].len(), 100 * 8);
    let back: Array = registry.deserialize(&sent).unwrap();
    assert_eq!(back, sparse);
    let sent = registry.serialize(&wide).unwrap();
    assert_eq!(sent.frames[0].len(), 1000 * 8, "only the base row travels");
    assert_eq!(sent.frames[0].as_ptr(), base.data().as_ptr());
    let err = registry.deserialize::<Array>(&sent).unwrap_err();
    assert!(report(&err).contains("limits allow"), "{err}");
    registry.set_limits(limits);
    let back: Array = registry.deserialize(&sent).unwrap();
    assert_eq!(back.strides(), &[0, 8]);
    assert_eq!(
        back.data().as_ptr(),
        sent.frames[0].as_ptr(),
        "still a view"
    );
    #[cfg(feature = "ndarray")]
    assert_eq!(back.view::<f64>().unwrap()[[999, 3]], 3.0);
}

fn meta(dtype: &str, shape: &[i64], strides: &[i64], offset: u64) -> Value {
    Value::Map(vec![
        ("dtype".into(), dtype.into()),
        (
            "shape".into(),
            Value::Array(shape.iter().map(|&n| n.into()).collect()),
        ),
        (
            "strides".into(),
            Value::Array(strides.iter().map(|&n| n.into()).collect()),
        ),
        ("offset".into(), offset.into()),
    ])
}

#[test]
fn hostile_headers_are_refused_with_typed_errors() {
    let frame = [Bytes::from(vec![0u8; 64])];
    let load = |meta: &Value, frames: &[Bytes]| {
        ArrayFamily
            .loads(
                &Loaded::new("x", meta, frames, &pontoon_wire::Limits::DEFAULT),
                &Context::new(),
            )
            .map(|_| ())
            .map_err(|e| report(&*e))
    };
    let cases = [
        (meta("<f8", &[2, 2], &[16, 8], 0), "ok"),
        (meta("<U8", &[2], &[8], 0), "unknown or unsupported dtype"),
        (meta("<f8", &[-1], &[8], 0), "negative"),
        (meta("<f8", &[1 << 62, 1 << 62], &[8, 8], 0), "overflows"),
        (meta("<f8", &[9], &[8], 0), "elements span"),
        (meta("<f8", &[2], &[8, 8], 0), "dimensions but"),
        (meta("<f8", &[4], &[-8], 0), "elements span"),
        (
            meta("<f8", &[1; 40], &[8; 40], 0),
            "more than the supported",
        ),
        (Value::Nil, "not a map"),
        (Value::Map(vec![]), "no `dtype`"),
        (meta("<f8", &[1 << 20], &[0], 0), "limits allow"),
    ];
    for (meta, expected) in cases {
        match load(&meta, &frame) {
            Ok(()) => assert_eq!(expected, "ok", "{meta}"),
            Err(e) => assert!(e.contains(expected), "{meta}: {e}"),
        }
    }
    assert!(
        load(&meta("<f8", &[1], &[8], 0), &[])
            .unwrap_err()
            .contains("one data frame")
    );
}

/// The error and its causes, each once, as a report (anyhow's `{:#}`) prints them.
fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(source) = cause {
        text = format!("{text}: {source}");
        cause = source.source();
    }
    text
}
