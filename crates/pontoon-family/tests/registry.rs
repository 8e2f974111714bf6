//! The registry: serde types with no registration, per-type serializers that win, families from
//! other crates that may decline, allow-lists that hold, dynamic values, and the context.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pontoon_family::{
    Context, DeserializeError, Dumped, Family, FamilyError, Loaded, Object, Registry,
    SerializeError,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, u32),
    Poly {
        points: Vec<(i64, i64)>,
        closed: bool,
    },
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Everything {
    unit: (),
    flags: [bool; 3],
    small: (i8, u8, i16, u16, char),
    big: (i128, u128, i64, u64),
    floats: (f32, f64),
    text: String,
    bytes: Vec<u8>,
    maybe: Option<Box<Everything>>,
    shapes: Vec<Shape>,
    map: BTreeMap<String, Vec<u32>>,
    hash: HashMap<u8, String>,
}

fn everything() -> Everything {
    let inner = Everything {
        unit: (),
        flags: [true, false, true],
        small: (-1, 255, -300, 65535, 'ß'),
        big: (i128::MIN, u128::MAX, -1, u64::MAX),
        floats: (1.5, -0.0),
        text: "héllo".into(),
        bytes: vec![0, 1, 255],
        maybe: None,
        shapes: vec![Shape::Empty],
        map: BTreeMap::new(),
        hash: HashMap::new(),
    };
    Everything {
        maybe: Some(Box::new(inner.clone())),
        shapes: vec![
            Shape::Empty,
            Shape::Circle(2.0),
            Shape::Rect(3, 4),
            Shape::Poly {
                points: vec![(0, 0), (1, -1)],
                closed: true,
            },
        ],
        map: [("a".to_string(), vec![1, 2]), ("b".to_string(), vec![])].into(),
        hash: [(1, "one".to_string())].into(),
        ..inner
    }
}

#[test]
fn any_serde_type_round_trips_with_no_registration() {
    let registry = Registry::new();
    let value = everything();
    let message = registry.serialize(&value).unwrap();
    assert_eq!(registry.deserialize::<Everything>(&message).unwrap(), value);
    let header = message.header.to_value().unwrap();
    assert_eq!(header["family"].as_str(), Some("serde"));
    assert_eq!(
        header["type"].as_str(),
        Some(std::any::type_name::<Everything>())
    );
}

#[test]
fn a_large_body_travels_as_a_frame_of_its_own() {
    let registry = Registry::new();
    let value: Vec<u64> = (0..10_000).collect();
    let message = registry.serialize(&value).unwrap();
    assert_eq!(message.frames.len(), 1, "the body is frame 0");
    assert!(message.header.as_bytes().len() < 200);
    assert_eq!(registry.deserialize::<Vec<u64>>(&message).unwrap(), value);
}

/// A person with a serializer of its own.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Human {
    name: String,
}

fn register_human(registry: &mut Registry, calls: Arc<Mutex<Vec<&'static str>>>) {
    let (c1, c2) = (calls.clone(), calls);
    registry
        .register::<Human, _, _>(
            "myapp.Human",
            move |human, _| {
                c1.lock().unwrap().push("dumps");
                Ok(Dumped::new(
                    rmpv::Value::from("v1"),
                    vec![Bytes::from(human.name.clone().into_bytes())],
                ))
            },
            move |loaded, _| {
                c2.lock().unwrap().push("loads");
                assert_eq!(loaded.meta.as_str(), Some("v1"));
                Ok(Human {
                    name: String::from_utf8(loaded.frames[0].to_vec())?,
                })
            },
        )
        .unwrap();
}

#[test]
fn a_registered_serializer_wins_over_serde_for_its_type() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::new();
    register_human(&mut registry, calls.clone());
    let message = registry.serialize(&Human { name: "Ada".into() }).unwrap();
    let header = message.header.to_value().unwrap();
    assert_eq!(header["family"].as_str(), Some("custom"));
    assert_eq!(header["type"].as_str(), Some("myapp.Human"));
    assert_eq!(&message.frames[0][..], b"Ada");
    assert_eq!(
        registry.deserialize::<Human>(&message).unwrap(),
        Human { name: "Ada".into() }
    );
    assert_eq!(*calls.lock().unwrap(), ["dumps", "loads"]);

    // With `serde` first on the list, serde wins instead.
    registry.set_serializers(["serde", "custom"]).unwrap();
    let message = registry.serialize(&Human { name: "Ada".into() }).unwrap();
    assert_eq!(
        message.header.to_value().unwrap()["family"].as_str(),
        Some("serde")
    );
    // The registered name is what the serde family writes, too.
    assert_eq!(
        message.header.to_value().unwrap()["type"].as_str(),
        Some("myapp.Human")
    );
}

#[test]
fn registering_a_name_twice_is_an_error() {
    let mut registry = Registry::new();
    registry.register_type::<u8>("tiny").unwrap();
    assert!(registry.register_type::<u16>("tiny").is_err());
    assert!(registry.register_type::<u8>("other-name").is_err());
    registry.register_type::<u8>("tiny").unwrap(); // the same again is fine
}

/// A downstream family that takes only `String`s and records the context it saw.
#[derive(Default)]
struct Upper {
    seen: Mutex<Vec<Context>>,
}

impl Family for Upper {
    fn name(&self) -> &str {
        "upper"
    }

    fn produces(&self, _: &str, requested: TypeId) -> bool {
        requested == TypeId::of::<String>()
    }

    fn dumps(&self, object: &Object<'_>, context: &Context) -> Result<Option<Dumped>, FamilyError> {
        self.seen.lock().unwrap().push(context.clone());
        let Some(s) = object.downcast_ref::<String>() else {
            return Ok(None);
        };
        Ok(Some(Dumped::new(
            rmpv::Value::from(s.to_uppercase()),
            vec![],
        )))
    }

    fn loads(
        &self,
        loaded: &Loaded<'_>,
        context: &Context,
    ) -> Result<Box<dyn Any + Send + Sync>, FamilyError> {
        self.seen.lock().unwrap().push(context.clone());
        Ok(Box::new(
            loaded
                .meta
                .as_str()
                .ok_or("meta is not a string")?
                .to_lowercase(),
        ))
    }
}

struct Shared(Arc<Upper>);

impl Family for Shared {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn produces(&self, type_name: &str, requested: TypeId) -> bool {
        self.0.produces(type_name, requested)
    }
    fn dumps(&self, object: &Object<'_>, context: &Context) -> Result<Option<Dumped>, FamilyError> {
        self.0.dumps(object, context)
    }
    fn loads(
        &self,
        loaded: &Loaded<'_>,
        context: &Context,
    ) -> Result<Box<dyn Any + Send + Sync>, FamilyError> {
        self.0.loads(loaded, context)
    }
}

#[test]
fn a_family_may_decline_and_the_next_is_tried() {
    let upper = Arc::new(Upper::default());
    let mut registry = Registry::new();
    registry.add_family(Shared(upper.clone())).unwrap();
    registry.set_serializers(["upper", "serde"]).unwrap();
    registry.set_deserializers(["upper", "serde"]).unwrap();

    let message = registry.serialize(&"MiXeD".to_string()).unwrap();
    assert_eq!(
        message.header.to_value().unwrap()["family"].as_str(),
        Some("upper")
    );
    assert_eq!(registry.deserialize::<String>(&message).unwrap(), "mixed");

    let message = registry.serialize(&7u32).unwrap(); // upper declines
    assert_eq!(
        message.header.to_value().unwrap()["family"].as_str(),
        Some("serde")
    );
    assert_eq!(registry.deserialize::<u32>(&message).unwrap(), 7);

    // No family on the list takes it.
    registry.set_serializers(["upper"]).unwrap();
    let err = registry.serialize(&7u32).unwrap_err();
    assert!(
        matches!(&err, SerializeError::NoFamily { tried, .. } if tried == &["upper"]),
        "{err}"
    );
}

#[test]
fn the_context_reaches_every_family() {
    let upper = Arc::new(Upper::default());
    let mut registry = Registry::new();
    registry.add_family(Shared(upper.clone())).unwrap();
    registry.set_serializers(["upper"]).unwrap();
    registry.set_deserializers(["upper"]).unwrap();
    let context = Context::new()
        .sender("tcp://a:1")
        .recipient("tcp://b:2")
        .shares_memory(true);
    let session = registry.session(context.clone());
    let message = session.serialize(&"x".to_string()).unwrap();
    session.deserialize::<String>(&message).unwrap();
    // Without a connection the context is empty.
    registry.serialize(&"y".to_string()).unwrap();
    let seen = upper.seen.lock().unwrap();
    assert_eq!(*seen, [context.clone(), context, Context::new()]);
}

#[test]
fn a_refused_family_is_named_with_the_accepted_list_and_nothing_gets_around_it() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut sender = Registry::new();
    register_human(&mut sender, calls.clone());
    let custom_message = sender.serialize(&Human { name: "Eve".into() }).unwrap();
    let serde_message = sender.serialize(&5u8).unwrap();

    let mut receiver = Registry::new();
    register_human(&mut receiver, calls.clone());
    receiver.set_deserializers(["serde"]).unwrap();
    for result in [
        receiver.deserialize::<Human>(&custom_message).map(|_| ()),
        receiver.deserialize_dyn(&custom_message).map(|_| ()),
        receiver
            .session(Context::new())
            .deserialize::<Human>(&custom_message)
            .map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, DeserializeError::NotAccepted { family, deserializers } if family == "custom" && deserializers == &["serde"]),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "family `custom` is not on this side's deserializer list ([\"serde\"])"
        );
    }
    // A session may narrow the lists further, but the refused family's code never runs.
    let narrow = receiver
        .session(Context::new())
        .with_deserializers(Vec::<&str>::new())
        .unwrap();
    assert!(matches!(
        narrow.deserialize::<u8>(&serde_message),
        Err(DeserializeError::NotAccepted { .. })
    ));
    assert_eq!(
        *calls.lock().unwrap(),
        ["dumps"],
        "the custom deserializer must never have run"
    );

    // A family the receiver has never heard of.
    let mut header = Vec::new();
    rmpv::encode::write_value(
        &mut header,
        &rmpv::Value::Map(vec![
            ("family".into(), "pickle".into()),
            ("type".into(), "builtins.object".into()),
            ("meta".into(), rmpv::Value::Nil),
        ]),
    )
    .unwrap();
    let pickled = pontoon_wire::Message::new(
        pontoon_wire::Header::from_msgpack(header.into()).unwrap(),
        vec![],
    );
    let err = receiver.deserialize_dyn(&pickled).unwrap_err();
    assert!(
        matches!(&err, DeserializeError::UnknownFamily { family, .. } if family == "pickle"),
        "{err}"
    );
}

#[test]
fn dynamic_values_come_back_as_their_type() {
    let mut registry = Registry::new();
    registry
        .register_type::<Everything>("test.Everything")
        .unwrap();
    register_human(&mut registry, Arc::default());
    let values: Vec<Box<dyn Any + Send + Sync>> = vec![
        Box::new(everything()),
        Box::new(Human { name: "Bo".into() }),
    ];
    for value in &values {
        let message = registry.serialize_dyn(&**value).unwrap();
        let back = registry.deserialize_dyn(&message).unwrap();
        if let Some(e) = back.downcast_ref::<Everything>() {
            assert_eq!(e, &everything());
        } else {
            assert_eq!(back.downcast_ref::<Human>().unwrap().name, "Bo");
        }
    }
    // An unregistered type cannot be sent dynamically.
    let err = registry.serialize_dyn(&1.5f32).unwrap_err();
    assert!(matches!(err, SerializeError::Unregistered { .. }), "{err}");
    // A name the receiver does not know is named in the error.
    let err = Registry::new()
        .deserialize_dyn(&registry.serialize_dyn(&everything()).unwrap())
        .unwrap_err();
    assert!(
        matches!(&err, DeserializeError::UnknownType { name } if name == "test.Everything"),
        "{err}"
    );
}

#[test]
fn reading_a_message_as_another_type_is_refused() {
    let registry = Registry::new();
    let message = registry.serialize(&1.5f32).unwrap();
    let err = registry.deserialize::<u32>(&message).unwrap_err();
    assert!(
        matches!(err, DeserializeError::TypeMismatch { .. }),
        "{err}"
    );
}

/// A second type with a serializer of its own, whose loader counts its runs.
#[derive(Serialize, Deserialize)]
struct Robot;

#[test]
fn no_loader_runs_for_a_type_other_than_the_one_asked_for() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let robot_loads = Arc::new(Mutex::new(0));
    let mut registry = Registry::new();
    register_human(&mut registry, calls.clone());
    let counter = robot_loads.clone();
    registry
        .register::<Robot, _, _>(
            "myapp.Robot",
            |_, _| Ok(Dumped::new(rmpv::Value::Nil, vec![])),
            move |_, _| {
                *counter.lock().unwrap() += 1;
                Ok(Robot)
            },
        )
        .unwrap();
    let upper = Arc::new(Upper::default());
    registry.add_family(Shared(upper.clone())).unwrap();
    registry
        .set_deserializers(["custom", "upper", "serde"])
        .unwrap();

    let robot = registry.serialize_dyn(&Robot).unwrap();
    let session = registry.session(Context::new());
    for result in [
        registry.deserialize::<Human>(&robot).map(|_| ()),
        session.deserialize::<Human>(&robot).map(|_| ()),
        // Asking for an unregistered type is no way around it either.
        registry.deserialize::<u32>(&robot).map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, DeserializeError::TypeMismatch { found, .. } if found == "myapp.Robot"),
            "{err}"
        );
    }
    assert_eq!(*robot_loads.lock().unwrap(), 0, "the robot's loader ran");
    assert!(registry.deserialize::<Robot>(&robot).is_ok());
    assert_eq!(*robot_loads.lock().unwrap(), 1);

    // A user family: `produces` is asked first, and `loads` does not run for a type it does
    // not produce.
    let mut upper_registry = Registry::new();
    upper_registry.add_family(Shared(upper.clone())).unwrap();
    upper_registry.set_serializers(["upper"]).unwrap();
    upper_registry.set_deserializers(["upper"]).unwrap();
    let text = upper_registry.serialize(&"Hi".to_string()).unwrap();
    upper.seen.lock().unwrap().clear();
    for result in [
        upper_registry.deserialize::<Vec<u8>>(&text).map(|_| ()),
        upper_registry
            .session(Context::new())
            .deserialize::<Human>(&text)
            .map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(err, DeserializeError::TypeMismatch { .. }),
            "{err}"
        );
    }
    assert!(upper.seen.lock().unwrap().is_empty(), "upper's loads ran");
    assert_eq!(upper_registry.deserialize::<String>(&text).unwrap(), "hi");
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

/// A serde message for `Point`, as a build that names the type `type_name` writes it.
fn point_message(type_name: &str) -> pontoon_wire::Message {
    let (body, _) = pontoon_family::binary::to_vec(&Point { x: 1, y: -2 }, 256).unwrap();
    let header = pontoon_wire::Header::from_value(&rmpv::Value::Map(vec![
        ("family".into(), "serde".into()),
        ("type".into(), type_name.into()),
        ("body".into(), rmpv::Value::Binary(body)),
        ("buffers".into(), 0.into()),
    ]));
    pontoon_wire::Message::new(header, vec![])
}

#[test]
fn an_unregistered_type_is_read_by_its_name_without_paths() {
    let registry = Registry::new();
    // Another build, where the type lives in another module or the compiler prints paths
    // differently.
    for name in [
        "other_build::geometry::Point",
        "Point",
        std::any::type_name::<Point>(),
    ] {
        assert_eq!(
            registry.deserialize::<Point>(&point_message(name)).unwrap(),
            Point { x: 1, y: -2 },
            "{name}"
        );
    }
    // A renamed type is another type.
    let err = registry
        .deserialize::<Point>(&point_message("registry::Pointy"))
        .unwrap_err();
    assert!(
        matches!(err, DeserializeError::TypeMismatch { .. }),
        "{err}"
    );
    // A registered type is read by its registered name only.
    let mut named = Registry::new();
    named.register_type::<Point>("geo.Point").unwrap();
    assert!(
        named
            .deserialize::<Point>(&point_message("geo.Point"))
            .is_ok()
    );
    assert!(named.deserialize::<Point>(&point_message("Point")).is_err());
}

impl pontoon_family::TypeName for Point {
    const NAME: &'static str = "geo.Point";
}

#[test]
fn a_type_declares_its_stable_name() {
    let mut registry = Registry::new();
    assert_eq!(registry.stable_name::<Point>(), None);
    registry.register_named::<Point>().unwrap();
    assert_eq!(registry.stable_name::<Point>(), Some("geo.Point"));
    let message = registry.serialize(&Point { x: 3, y: 4 }).unwrap();
    assert_eq!(
        message.header.to_value().unwrap()["type"].as_str(),
        Some("geo.Point")
    );
    let back = registry.deserialize_dyn(&message).unwrap();
    assert_eq!(back.downcast_ref::<Point>(), Some(&Point { x: 3, y: 4 }));
}

#[test]
fn a_session_can_narrow_the_registrys_lists_but_never_widen_them() {
    let mut registry = Registry::new();
    registry.add_family(Shared(Arc::default())).unwrap();
    registry.set_serializers(["upper", "serde"]).unwrap();
    registry.set_deserializers(["serde"]).unwrap();
    let session = || registry.session(Context::new());

    for (result, list) in [
        (
            session().with_deserializers(["serde", "custom"]),
            "deserializer",
        ),
        (session().with_deserializers(["upper"]), "deserializer"),
        (session().with_serializers(["custom"]), "serializer"),
    ] {
        let err = result.expect_err("a session must not widen the registry's lists");
        assert!(
            matches!(&err, pontoon_family::RegistryError::Widens { list: l, .. } if *l == list),
            "{err}"
        );
    }
    // A family nobody added is unknown, as for the registry.
    assert!(matches!(
        session().with_deserializers(["pickle"]).err(),
        Some(pontoon_family::RegistryError::UnknownFamily { .. })
    ));

    // What a session may do: narrow, and reorder its serializers.
    let narrowed = session()
        .with_serializers(["serde", "upper"])
        .unwrap()
        .with_deserializers(Vec::<&str>::new())
        .unwrap();
    assert_eq!(narrowed.serializers(), ["serde", "upper"]);
    assert!(narrowed.deserializers().is_empty());
    let message = registry.serialize(&1u8).unwrap();
    assert!(matches!(
        narrowed.deserialize::<u8>(&message),
        Err(DeserializeError::NotAccepted { .. })
    ));
    // Untouched, a session's lists are the registry's.
    assert_eq!(session().deserializers(), registry.deserializers());
    assert_eq!(session().serializers(), registry.serializers());
}
