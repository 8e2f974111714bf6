//! Errors print once: no error's `Display` repeats the `Display` of its `source()`, so a report
//! that walks the chain (anyhow, eyre) shows each cause once.

use std::error::Error;

use pontoon_wire::{Codec, DecodeError, EncodeError, Header, HeaderError, Limits, decode_message};

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

/// Failed before the fix: `EncodeError::Compress` printed its `io::Error` source in its own text.
#[test]
fn encode_errors_name_their_cause_only_as_source() {
    let error = EncodeError::Compress {
        frame: 2,
        codec: Codec::Zstd,
        source: std::io::Error::other("the compressor ran out of memory"),
    };
    assert_eq!(assert_prints_once(&error), 2);
    assert_eq!(error.to_string(), "cannot compress frame 2 with zstd");
}

/// Failed before the fix (it did not compile): header errors were rmp-serde's and rmpv's errors
/// in a tuple variant; now they say what in our own words, and have no source.
#[test]
fn header_errors_say_what_in_their_own_words() {
    let header = Header::from_serde(&"not a number").unwrap();
    let error = header.deserialize::<u32>().unwrap_err();
    assert_eq!(assert_prints_once(&error), 1);
    assert!(
        matches!(&error, HeaderError::Decode { type_name: "u32", reason } if !reason.is_empty()),
        "{error:?}"
    );
    let error = Header::from_serde(&Refuses).unwrap_err();
    assert_eq!(assert_prints_once(&error), 1);
    assert!(
        matches!(&error, HeaderError::Encode { reason, .. } if reason.contains("refuses")),
        "{error:?}"
    );
}

/// A value whose `Serialize` fails.
struct Refuses;

impl serde::Serialize for Refuses {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value refuses"))
    }
}

#[test]
fn decode_errors_print_once() {
    let error = decode_message(
        bytes::Bytes::from_static(b"\xF0NOTUS-PONTOON-STREAM"),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(error, DecodeError::BadMarker { .. }), "{error:?}");
    assert_eq!(assert_prints_once(&error), 1);
}
