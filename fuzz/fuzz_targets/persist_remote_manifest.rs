//! Fuzz target: pontoon-persist's remote manifest, read back from arbitrary bytes (what a
//! hostile or damaged remote could hold): anything may be refused, nothing may panic, and a
//! manifest that reads back names only segment and snapshot files and writes back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pontoon_persist::RemoteManifest;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = RemoteManifest::decode(data) else {
        return;
    };
    for (name, _) in manifest.snapshot.iter().chain(&manifest.segments) {
        assert!(!name.contains('/') && !name.contains(".."), "{name}");
    }
    assert!(manifest.segments.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(RemoteManifest::decode(manifest.encode().as_bytes()), Ok(manifest));
});
