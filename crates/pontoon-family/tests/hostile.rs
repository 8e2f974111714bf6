//! Bad input and bad values: every one a typed error, never a panic or a stack overflow.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use pontoon_family::binary::{self, ErrorKind};
use pontoon_family::{Buffer, DeserializeError, Registry, SerializeError};
use pontoon_wire::{Header, Message};
use rmpv::Value;
use serde::{Deserialize, Serialize};

fn header(entries: Vec<(&str, Value)>) -> Header {
    let map = Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    );
    Header::from_value(&map)
}

fn serde_header(type_name: &str, body: Value, buffers: u64) -> Header {
    header(vec![
        ("family", "serde".into()),
        ("type", type_name.into()),
        ("body", body),
        ("buffers", buffers.into()),
    ])
}

fn err_of<T: serde::de::DeserializeOwned + std::fmt::Debug + 'static>(
    message: &Message,
) -> DeserializeError {
    Registry::new()
        .deserialize::<T>(message)
        .expect_err("hostile input must be refused")
}

#[test]
fn malformed_headers_get_typed_errors() {
    let name = std::any::type_name::<u32>();
    let cases: Vec<(Header, &str)> = vec![
        (Header::from_value(&Value::from(3)), "HeaderNotAMap"),
        (header(vec![("type", name.into())]), "MissingKey(family)"),
        (header(vec![("family", "serde".into())]), "MissingKey(type)"),
        (
            header(vec![("family", 7.into()), ("type", name.into())]),
            "WrongType(family)",
        ),
        (
            header(vec![
                ("family", "serde".into()),
                ("family", "serde".into()),
                ("type", name.into()),
            ]),
            "DuplicateKey",
        ),
        (
            header(vec![
                ("family", "serde".into()),
                ("type", name.into()),
                ("buffers", 0.into()),
            ]),
            "MissingKey(body)",
        ),
        (
            header(vec![
                ("family", "serde".into()),
                ("type", name.into()),
                ("body", "text".into()),
                ("buffers", 0.into()),
            ]),
            "WrongType(body)",
        ),
        (
            header(vec![
                ("family", "serde".into()),
                ("type", name.into()),
                ("body", Value::Binary(vec![1, 0, 0, 0])),
                ("buffers", (-1).into()),
            ]),
            "WrongType(buffers)",
        ),
        (
            serde_header(name, Value::Binary(vec![1, 0, 0, 0]), 2),
            "FrameCount",
        ),
        (serde_header(name, Value::Nil, 0), "FrameCount"),
        (
            serde_header("u64", Value::Binary(vec![0; 8]), 0),
            "TypeMismatch",
        ),
        (
            header(vec![("family", "nope".into()), ("type", name.into())]),
            "UnknownFamily",
        ),
        (
            header(vec![
                ("family", "custom".into()),
                ("type", "who.Knows".into()),
                ("meta", Value::Nil),
            ]),
            "UnknownType",
        ),
        (
            header(vec![
                ("family", "custom".into()),
                ("type", "who.Knows".into()),
            ]),
            // The type is looked up before anything else the family needs.
            "UnknownType",
        ),
    ];
    for (header, expected) in cases {
        let err = err_of::<u32>(&Message::new(header, vec![]));
        let got = match &err {
            DeserializeError::HeaderNotAMap => "HeaderNotAMap".to_string(),
            DeserializeError::MissingKey { key } => format!("MissingKey({key})"),
            DeserializeError::WrongType { key, .. } => format!("WrongType({key})"),
            DeserializeError::DuplicateKey { .. } => "DuplicateKey".to_string(),
            DeserializeError::FrameCount { .. } => "FrameCount".to_string(),
            DeserializeError::TypeMismatch { .. } => "TypeMismatch".to_string(),
            DeserializeError::UnknownFamily { .. } => "UnknownFamily".to_string(),
            DeserializeError::UnknownType { .. } => "UnknownType".to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(got, expected, "{err}");
    }
}

fn body_err<T: serde::de::DeserializeOwned + std::fmt::Debug + 'static>(
    body: &[u8],
    buffers: Vec<Bytes>,
) -> ErrorKind {
    let message = Message::new(
        serde_header(
            std::any::type_name::<T>(),
            Value::Binary(body.to_vec()),
            buffers.len() as u64,
        ),
        buffers,
    );
    match err_of::<T>(&message) {
        DeserializeError::Body { error, .. } => error.kind().clone(),
        other => panic!("expected a body error, got {other}"),
    }
}

#[test]
fn malformed_bodies_get_typed_errors_with_offsets() {
    assert_eq!(
        body_err::<u32>(&[1, 2], vec![]),
        ErrorKind::Eof { offset: 2 }
    );
    assert_eq!(
        body_err::<u8>(&[1, 2], vec![]),
        ErrorKind::TrailingBytes {
            offset: 1,
            remaining: 1
        }
    );
    assert_eq!(
        body_err::<bool>(&[2], vec![]),
        ErrorKind::InvalidTag {
            what: "bool",
            byte: 2,
            offset: 0
        }
    );
    assert_eq!(
        body_err::<Option<u8>>(&[9], vec![]),
        ErrorKind::InvalidTag {
            what: "option",
            byte: 9,
            offset: 0
        }
    );
    assert_eq!(
        body_err::<char>(&[0, 0xd8, 0, 0], vec![]),
        ErrorKind::InvalidChar {
            value: 0xd800,
            offset: 0
        }
    );
    assert_eq!(
        body_err::<String>(&[2, 0xff, 0xfe], vec![]),
        ErrorKind::InvalidUtf8 { offset: 1 }
    );
    assert!(matches!(
        body_err::<String>(&[0xff, 0xff, 0xff, 0xff, 0x0f], vec![]),
        ErrorKind::BadLength { .. }
    ));
    assert!(matches!(
        body_err::<Vec<u64>>(&[0xff, 0xff, 0xff, 0xff, 0x0f], vec![]),
        ErrorKind::BadLength { .. }
    ));
    assert_eq!(
        body_err::<u64>(&[0xff; 11], vec![]),
        ErrorKind::TrailingBytes {
            offset: 8,
            remaining: 3
        }
    );
    assert!(matches!(
        body_err::<Vec<u8>>(&[0xff; 11], vec![]),
        ErrorKind::BadVarint { offset: 0 }
    ));
    // A buffer reference to a frame that is not there.
    assert_eq!(
        body_err::<Buffer>(&[3], vec![Bytes::from_static(b"x")]),
        ErrorKind::BufferOutOfRange {
            index: 3,
            offset: 0,
            count: 1
        }
    );
}

/// A recursive type: each level is one nesting.
#[derive(Serialize, Deserialize, Debug)]
enum Chain {
    End,
    Link(Box<Chain>),
}

fn chain(depth: usize) -> Chain {
    (0..depth).fold(Chain::End, |c, _| Chain::Link(Box::new(c)))
}

#[test]
fn deep_values_are_an_error_not_a_stack_overflow() {
    let registry = Registry::new();
    assert!(registry.serialize(&chain(100)).is_ok());
    let err = registry.serialize(&chain(300)).unwrap_err();
    assert!(
        matches!(&err, SerializeError::Body { error, .. } if *error.kind() == ErrorKind::TooDeep { limit: 256 }),
        "{err}"
    );
    // Decoding a hostile body 100,000 levels deep: `1` is `Link`, the last `0` is `End`.
    let mut body = vec![1u8; 100_000];
    body.push(0);
    assert_eq!(
        body_err::<Chain>(&body, vec![]),
        ErrorKind::TooDeep { limit: 256 }
    );
    // The limit is configurable.
    let mut shallow = Registry::new();
    shallow.set_max_depth(10);
    assert!(shallow.serialize(&chain(20)).is_err());
}

/// A node that can point at itself.
#[derive(Serialize)]
struct Node {
    next: RefCell<Option<Rc<Node>>>,
}

#[test]
fn a_cyclic_value_is_an_error_not_a_stack_overflow() {
    let node = Rc::new(Node {
        next: RefCell::new(None),
    });
    *node.next.borrow_mut() = Some(node.clone());
    let err = binary::to_vec(&node, 256).unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::TooDeep { limit: 256 });
    assert!(err.to_string().contains("cyclic"), "{err}");
    node.next.borrow_mut().take(); // break the cycle so the test does not leak
}

#[derive(Serialize)]
struct Model {
    layers: Vec<Layer>,
}

#[derive(Serialize)]
struct Layer {
    #[serde(serialize_with = "on_gpu")]
    weights: bool,
}

fn on_gpu<S: serde::Serializer>(on: &bool, s: S) -> Result<S::Ok, S::Error> {
    if *on {
        Err(serde::ser::Error::custom("the weights live on a GPU"))
    } else {
        s.serialize_bool(false)
    }
}

#[test]
fn a_value_that_cannot_be_serialized_names_its_type_and_field() {
    let model = Model {
        layers: vec![
            Layer { weights: false },
            Layer { weights: false },
            Layer { weights: false },
            Layer { weights: true },
        ],
    };
    let err = Registry::new().serialize(&model).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("`{}`", std::any::type_name::<Model>())),
        "{text}"
    );
    assert!(text.contains("at `Model.layers[3].weights`"), "{text}");
    assert!(text.contains("the weights live on a GPU"), "{text}");
}

#[test]
fn what_the_encoding_cannot_hold_is_a_clear_error() {
    #[derive(Serialize)]
    struct Sparse {
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    }
    let err = binary::to_vec(&Sparse { note: None }, 256).unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::SkippedField("note"));

    struct Unsized;
    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq((0..3).filter(|i| i % 2 == 0))
        }
    }
    assert_eq!(
        *binary::to_vec(&Unsized, 256).unwrap_err().kind(),
        ErrorKind::UnknownLength
    );

    #[derive(Serialize, Deserialize, Debug)]
    #[serde(untagged)]
    enum Loose {
        A(u8),
    }
    let (body, buffers) = binary::to_vec(&Loose::A(1), 256).unwrap();
    let err = binary::from_slice::<Loose>(&body, &buffers, 256).unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::NotSelfDescribing);
}
