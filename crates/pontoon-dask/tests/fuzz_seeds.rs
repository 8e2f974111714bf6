//! The `dask_message` fuzz target's property, replayed on its committed seeds (messages Python
//! wrote for the protocol matrix and the hostile cases) in the ordinary test run: whatever
//! decodes prints as JSON, encodes, and decodes back to the same JSON but for the strides of
//! arrays (a non-contiguous array is sent contiguous, as Dask does), and what pontoon wrote goes
//! round exactly; nothing panics.

use std::path::Path;

use bytes::Bytes;
use pontoon_dask::{DecodeOptions, EncodeOptions, decode_in, encode, framing, to_json};
use pontoon_wire::Limits;

mod layout;
use layout::without_strides;

#[test]
fn every_seed_round_trips_or_is_refused() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/dask_message");
    let (mut count, mut decoded) = (0, 0);
    for entry in std::fs::read_dir(&seeds).unwrap() {
        let path = entry.unwrap().path();
        let input = Bytes::from(std::fs::read(&path).unwrap());
        count += 1;
        let Ok((frames, _)) = framing::decode_stream(input.clone(), &Limits::DEFAULT) else {
            continue;
        };
        let Ok(value) = decode_in(&frames, Some(&input), &DecodeOptions::default()) else {
            continue;
        };
        let json = to_json(&value, 1 << 20).unwrap();
        decoded += 1;
        let stream = Bytes::from(framing::stream_bytes(
            &encode(&value, &EncodeOptions::default()).unwrap(),
        ));
        let (frames, rest) = framing::decode_stream(stream.clone(), &Limits::UNLIMITED).unwrap();
        assert!(rest.is_empty());
        let mut again = DecodeOptions::default();
        again.limits = Limits::UNLIMITED;
        let back = decode_in(&frames, Some(&stream), &again)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let back_json = to_json(&back, 1 << 22).unwrap();
        assert_eq!(
            without_strides(&json),
            without_strides(&back_json),
            "{}",
            path.display()
        );
        let stream = Bytes::from(framing::stream_bytes(
            &encode(&back, &EncodeOptions::default()).unwrap(),
        ));
        let (frames, _) = framing::decode_stream(stream.clone(), &Limits::UNLIMITED).unwrap();
        let twice = decode_in(&frames, Some(&stream), &again).unwrap();
        let twice_json = to_json(&twice, 1 << 22).unwrap();
        assert_eq!(back_json, twice_json, "{} twice", path.display());
    }
    assert!(count >= 60, "{count} seeds");
    assert!(decoded >= 40, "only {decoded} of {count} seeds decoded");
}

#[test]
fn without_strides_takes_out_the_strides_and_nothing_else() {
    let json = r#"{"t":"ndarray","shape":[2,3],"strides":[24,8],"sha256_c_order":"ab"},{"t":"str","v":"\",\"strides\":["}"#;
    assert_eq!(
        without_strides(json),
        r#"{"t":"ndarray","shape":[2,3],"sha256_c_order":"ab"},{"t":"str","v":"\",\"strides\":["}"#
    );
}
