//! Errors print once: no error's `Display` repeats the `Display` of its `source()`, so a report
//! that walks the chain (anyhow, eyre) shows each cause once.

use std::error::Error;

use pontoon_family::{DeserializeError, Dumped, Registry, SerializeError};
use serde::{Deserialize, Serialize};

/// Walks `error`'s chain; fails if a link's text holds its source's text. Returns the number of
/// links, so a test can say the error was a wrapper at all.
fn assert_prints_once(error: &(dyn Error + 'static)) -> usize {
    let mut links = 1;
    let mut current = error;
    while let Some(source) = current.source() {
        let (outer, inner) = (current.to_string(), source.to_string());
        assert!(
            !outer.contains(&inner),
            "`{outer}` repeats its source `{inner}`"
        );
        links += 1;
        current = source;
    }
    links
}

#[derive(Debug, Serialize, Deserialize)]
struct Thing;

/// Failed before the fix: `SerializeError::Family` and `DeserializeError::Family` printed the
/// family's error after their own text, and returned it as `source()` too.
#[test]
fn a_failing_family_is_named_once_and_its_error_is_the_source() {
    let mut refuses = Registry::new();
    refuses
        .register::<Thing, _, _>(
            "thing",
            |_, _| Err("the dumps of thing refuse".into()),
            |_, _| Err("the loads of thing refuse".into()),
        )
        .unwrap();
    let error = refuses.serialize(&Thing).unwrap_err();
    assert!(matches!(error, SerializeError::Family { .. }), "{error:?}");
    assert_eq!(assert_prints_once(&error), 2);
    assert_eq!(
        error.source().map(ToString::to_string).as_deref(),
        Some("the dumps of thing refuse")
    );

    let mut loads_refuse = Registry::new();
    loads_refuse
        .register::<Thing, _, _>(
            "thing",
            |_, _| Ok(Dumped::new(rmpv::Value::Nil, vec![])),
            |_, _| Err("the loads of thing refuse".into()),
        )
        .unwrap();
    let message = loads_refuse.serialize(&Thing).unwrap();
    let error = loads_refuse.deserialize::<Thing>(&message).unwrap_err();
    assert!(
        matches!(error, DeserializeError::Family { .. }),
        "{error:?}"
    );
    assert_eq!(assert_prints_once(&error), 2);
}

/// Failed before the fix: the serde family's body errors printed the binary error's kind and
/// returned the binary error as `source()`, which prints the kind again. Now they say it in
/// their own words, with no source.
#[test]
fn a_body_that_does_not_fit_its_type_says_so_once() {
    // Two builds that disagree on what the stable name `point` holds.
    #[derive(Serialize, Deserialize)]
    struct PointV1 {}
    #[derive(Debug, Serialize, Deserialize)]
    struct PointV2 {
        x: u64,
    }
    let mut old = Registry::new();
    old.register_type::<PointV1>("point").unwrap();
    let mut new = Registry::new();
    new.register_type::<PointV2>("point").unwrap();
    let message = old.serialize(&PointV1 {}).unwrap();
    let error = new.deserialize::<PointV2>(&message).unwrap_err();
    assert!(matches!(error, DeserializeError::Body { .. }), "{error:?}");
    assert_eq!(assert_prints_once(&error), 1);
}
