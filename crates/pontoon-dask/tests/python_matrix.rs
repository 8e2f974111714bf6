//! Python writes a Dask message for every case of the matrix in `cases.py` as Dask's TCP comm
//! writes it; Rust decodes each and compares it with Python's own reading (as JSON trees),
//! encodes it again, checks that the bytes equal Python's where Dask's output is deterministic,
//! and Python's `distributed.protocol.loads` reads Rust's bytes back to the same value.

mod common;

use bytes::Bytes;
use pontoon_dask::{
    DaskCodec, DecodeError, DecodeOptions, EncodeOptions, decode_in, encode, framing, to_json,
};
use serde_json::Value as Json;

/// Sorts the items of every set node, so that the two sides' orders of a set do not matter.
fn normalize(json: &mut Json) {
    match json {
        Json::Object(map) => {
            let is_set = map.get("t").and_then(Json::as_str) == Some("set");
            for v in map.values_mut() {
                normalize(v);
            }
            if is_set && let Some(Json::Array(items)) = map.get_mut("items") {
                items.sort_by_key(|i| i.to_string());
            }
        }
        Json::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

#[test]
fn the_protocol_matrix_decodes_as_python_reads_it_and_encodes_as_python_writes_it() {
    let dir = common::scratch("matrix");
    common::run_python("write_all(sys.argv[1])", &dir);
    let manifest: Json =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut exact = 0;
    let mut failures = Vec::new();
    for entry in manifest.as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let data = Bytes::from(std::fs::read(dir.join(format!("{name}.bin"))).unwrap());
        let (frames, rest) = framing::decode_stream(data.clone(), &Default::default()).unwrap();
        assert!(rest.is_empty(), "{name}");
        let mut options = DecodeOptions::default();
        if entry["compression"].as_str() == Some("zstd") {
            // zstd packs zeros far tighter than the default 256:1 expansion bound allows.
            let refused = decode_in(&frames, Some(&data), &options);
            assert!(
                matches!(refused, Err(DecodeError::ExpansionTooLarge { .. })),
                "{name}: {refused:?}"
            );
            options.limits.max_expansion_ratio = 1 << 20;
        }
        let decoded = decode_in(&frames, Some(&data), &options);
        if entry["refused"].as_bool().unwrap() {
            match decoded {
                Err(DecodeError::Pickle { .. } | DecodeError::UnsupportedDType(_)) => continue,
                other => panic!("{name}: expected a refusal, got {other:?}"),
            }
        }
        let value = match decoded {
            Ok(value) => value,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let mut ours: Json = serde_json::from_str(&to_json(&value, 1 << 26).unwrap()).unwrap();
        let mut theirs = entry["expect"].clone();
        normalize(&mut ours);
        normalize(&mut theirs);
        if ours != theirs {
            failures.push(format!("{name}:\n  rust   {ours}\n  python {theirs}"));
            continue;
        }
        let mut options = EncodeOptions::default();
        if let Some(shard) = entry["shard"].as_u64() {
            options.shard_bytes = shard as usize;
        }
        options.compression = match entry["compression"].as_str() {
            Some("lz4") => Some(DaskCodec::Lz4),
            Some("zstd") => Some(DaskCodec::Zstd),
            _ => None,
        };
        let frames = encode(&value, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours = framing::stream_bytes(&frames);
        if entry["exact"].as_bool().unwrap() {
            exact += 1;
            if ours != data {
                let at = ours.iter().zip(&data[..]).position(|(a, b)| a != b);
                failures.push(format!(
                    "{name}: Rust's {} bytes differ from Python's {} at byte {at:?}",
                    ours.len(),
                    data.len()
                ));
            }
        }
        std::fs::write(dir.join(format!("{name}.rust.bin")), ours).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        manifest.as_array().unwrap().len() >= 60 && exact >= 45,
        "{exact} exact cases"
    );
    let checked = common::run_python("check_rust(sys.argv[1])", &dir);
    assert_eq!(checked.trim(), "checked");
    let _ = std::fs::remove_dir_all(&dir);
}
