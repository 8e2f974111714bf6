//! The `pickle_loads` fuzz target's property, replayed on its committed seeds (valid pickles of
//! every kind and the hostile cases) in the ordinary test run: whatever decodes prints as JSON,
//! encodes, and decodes back to the same JSON; nothing panics.

use std::path::Path;

use bytes::Bytes;
use pontoon_pickle::{DumpOptions, LoadOptions, Opaque, dumps, loads, to_json};

#[test]
fn every_seed_round_trips_or_is_refused() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/pickle_loads");
    let mut decoded = 0;
    let mut count = 0;
    for entry in std::fs::read_dir(&seeds).unwrap() {
        let path = entry.unwrap().path();
        let input = Bytes::from(std::fs::read(&path).unwrap());
        count += 1;
        let buffers = [input.slice(..input.len().min(16)), Bytes::new()];
        let mut options = LoadOptions::default();
        options.opaque = Opaque::All;
        let Ok(graph) = loads(&input, &buffers, &options) else {
            continue;
        };
        let Ok(json) = to_json(&graph, 1 << 20) else {
            continue;
        };
        decoded += 1;
        let pickled = dumps(&graph, &DumpOptions::default()).unwrap();
        let mut again = options.clone();
        again.max_depth = usize::MAX;
        let back = loads(&pickled.data, &pickled.buffers, &again)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(json, to_json(&back, 1 << 22).unwrap(), "{}", path.display());
    }
    assert!(count >= 40, "{count} seeds");
    assert!(decoded >= 20, "only {decoded} of {count} seeds decoded");
}
