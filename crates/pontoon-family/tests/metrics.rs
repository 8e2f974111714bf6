//! The registry's serialize and deserialize timings against a real recorder (metrics-util's
//! `DebuggingRecorder`): one sample per call, under the family that did the work (serde,
//! custom, and a family of the user's own), none for a message that was refused or failed,
//! and the descriptions `describe` gives.

use std::any::{Any, TypeId};

use metrics::Unit;
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use pontoon_family::metrics::{DESERIALIZE_SECONDS, SERIALIZE_SECONDS, describe};
use pontoon_family::{Context, Dumped, Family, FamilyError, Loaded, Object, Registry};

/// A family of its own for `u16`s, carried in `meta`.
struct Shorts;

impl Family for Shorts {
    fn name(&self) -> &str {
        "shorts"
    }

    fn dumps(&self, object: &Object<'_>, _: &Context) -> Result<Option<Dumped>, FamilyError> {
        Ok(object
            .downcast_ref::<u16>()
            .map(|n| Dumped::new(rmpv::Value::from(*n), vec![])))
    }

    fn produces(&self, _: &str, type_id: TypeId) -> bool {
        type_id == TypeId::of::<u16>()
    }

    fn loads(
        &self,
        loaded: &Loaded<'_>,
        _: &Context,
    ) -> Result<Box<dyn Any + Send + Sync>, FamilyError> {
        let n = loaded.meta.as_u64().ok_or("meta is not a number")?;
        Ok(Box::new(u16::try_from(n)?))
    }
}

#[test]
fn each_serialize_and_deserialize_is_timed_under_its_family() {
    // Leaked: the registry keeps handles for the first recorder it sees, known by its
    // address, which must not be reused by another test's recorder.
    let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
    let snapshotter = recorder.snapshotter();

    let mut registry = Registry::new();
    registry
        .register::<String, _, _>(
            "test.Text",
            |s, _| Ok(Dumped::new(rmpv::Value::from(s.as_str()), vec![])),
            |loaded, _| Ok(loaded.meta.as_str().ok_or("not a string")?.to_string()),
        )
        .unwrap();
    registry.add_family(Shorts).unwrap();
    registry
        .set_serializers(["custom", "shorts", "serde"])
        .unwrap();
    registry
        .set_deserializers(["custom", "shorts", "serde"])
        .unwrap();
    let untrusted = registry
        .session(Context::new())
        .with_deserializers(["custom"])
        .unwrap();

    // Before any recorder: nothing is timed, and nothing is lost later for it.
    let unseen = registry.serialize(&1u64).unwrap();

    metrics::with_local_recorder(recorder, || {
        describe();
        let serde: Vec<_> = (0..5u64).map(|i| registry.serialize(&i).unwrap()).collect();
        for message in &serde[..3] {
            registry.deserialize::<u64>(message).unwrap();
        }
        let text = registry.serialize(&"hello".to_string()).unwrap();
        registry.serialize(&"again".to_string()).unwrap();
        assert_eq!(
            registry
                .deserialize_dyn(&text)
                .unwrap()
                .downcast_ref::<String>()
                .unwrap(),
            "hello"
        );
        let shorts: Vec<_> = (0..4u16)
            .map(|i| registry.serialize_dyn(&i).unwrap())
            .collect();
        assert_eq!(registry.deserialize::<u16>(&shorts[3]).unwrap(), 3);
        // Neither a refusal nor a failed read is timed.
        assert!(untrusted.deserialize::<u64>(&serde[0]).is_err());
        assert!(registry.deserialize::<String>(&serde[0]).is_err());
        // Nor a value no family takes.
        assert!(registry.serialize_dyn(&1i8).is_err());
        // A session times as its registry does.
        let session = registry.session(Context::new());
        session.deserialize::<u64>(&unseen).unwrap();
    });

    let mut samples = std::collections::HashMap::new();
    for (key, unit, description, value) in snapshotter.snapshot().into_vec() {
        assert_eq!(key.kind(), MetricKind::Histogram, "{key:?}");
        let family = key
            .key()
            .labels()
            .find(|l| l.key() == "family")
            .expect("a family label")
            .value()
            .to_string();
        assert_eq!(unit, Some(Unit::Seconds));
        assert!(description.is_some_and(|d| !d.is_empty()));
        let DebugValue::Histogram(values) = value else {
            panic!("{key:?} is not a histogram");
        };
        assert!(
            values
                .iter()
                .all(|v| v.into_inner() >= 0.0 && v.is_finite())
        );
        samples.insert((key.key().name().to_string(), family), values.len());
    }
    let count = |name: &str, family: &str| {
        samples
            .get(&(name.to_string(), family.to_string()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(count(SERIALIZE_SECONDS, "serde"), 5);
    assert_eq!(count(DESERIALIZE_SECONDS, "serde"), 4);
    assert_eq!(count(SERIALIZE_SECONDS, "custom"), 2);
    assert_eq!(count(DESERIALIZE_SECONDS, "custom"), 1);
    assert_eq!(count(SERIALIZE_SECONDS, "shorts"), 4);
    assert_eq!(count(DESERIALIZE_SECONDS, "shorts"), 1);
    assert_eq!(samples.len(), 6, "{samples:?}");
}
