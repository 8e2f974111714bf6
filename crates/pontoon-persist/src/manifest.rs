//! The remote's manifest: which segment and snapshot objects make up one uploaded state, as a
//! small text object whose every line is checked when it is read back (its layout is in
//! `docs/remote.md`; it needs no feature, so tools and the fuzzer read it without a remote).

use crate::recovery::parse_segment_name;
use crate::recovery::parse_seq_digits;

/// The first line of every manifest (its format version is the number).
const MAGIC_LINE: &str = "pontoon-remote-manifest 1";

/// The largest manifest read back; a larger object is refused before it is read whole.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) const MAX_MANIFEST_LEN: u64 = 1 << 20;

/// What one manifest names: the state the remote holds as of its generation.
///
/// ```
/// let manifest = pontoon_persist::RemoteManifest::default();
/// assert_eq!(manifest.generation, 0);
/// assert!(manifest.snapshot.is_none() && manifest.segments.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteManifest {
    /// Counts the manifests written to this prefix: each upload writes generation `n + 1`,
    /// only if no manifest of that generation exists yet.
    pub generation: u64,
    /// The newest snapshot uploaded: its file name and length.
    pub snapshot: Option<(String, u64)>,
    /// The sealed segments uploaded (each after the snapshot or overlapping it), oldest first:
    /// file name and length.
    pub segments: Vec<(String, u64)>,
    /// The sequence number the log goes on at after a restore: where the local log's active
    /// segment (never uploaded) started, or just after the snapshot if that is later.
    pub next_seq: u64,
}

/// The object name (under the remote's prefix) of the manifest of `generation`; 20 digits,
/// so names sort as generations do.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn manifest_name(generation: u64) -> String {
    format!("manifest-{generation:020}")
}

/// The generation a manifest object's name gives, if it is one.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn parse_manifest_name(name: &str) -> Option<u64> {
    parse_seq_digits(name.strip_prefix("manifest-")?)
}

/// The last included record a snapshot file name gives, if it is one.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn parse_snapshot_name(name: &str) -> Option<u64> {
    parse_seq_digits(name.strip_prefix("snapshot-")?.strip_suffix(".snap")?)
}

impl RemoteManifest {
    /// The manifest as the text of its object.
    ///
    /// ```
    /// let manifest = pontoon_persist::RemoteManifest::decode(
    ///     b"pontoon-remote-manifest 1\ngeneration 2\nnext_seq 8\nsegment 00000000000000000001.log 4096\n",
    /// ).unwrap();
    /// assert_eq!(manifest.segments.len(), 1);
    /// assert_eq!(pontoon_persist::RemoteManifest::decode(manifest.encode().as_bytes()), Ok(manifest));
    /// ```
    pub fn encode(&self) -> String {
        let mut text = format!(
            "{MAGIC_LINE}\ngeneration {}\nnext_seq {}\n",
            self.generation, self.next_seq
        );
        if let Some((name, len)) = &self.snapshot {
            text.push_str(&format!("snapshot {name} {len}\n"));
        }
        for (name, len) in &self.segments {
            text.push_str(&format!("segment {name} {len}\n"));
        }
        text
    }

    /// Reads a manifest back: every line must be one this version writes, every name a
    /// snapshot's or a segment's (so no name can reach outside the directory it is restored
    /// into), segments in increasing order and before `next_seq`; at most 1 MiB. The error
    /// says what is wrong.
    ///
    /// ```
    /// let bad = b"pontoon-remote-manifest 1\ngeneration 1\nnext_seq 9\nsegment ../x 1\n";
    /// assert!(pontoon_persist::RemoteManifest::decode(bad).is_err());
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<RemoteManifest, &'static str> {
        if bytes.len() as u64 > MAX_MANIFEST_LEN {
            return Err("the manifest is larger than 1 MiB");
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "the manifest is not UTF-8")?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC_LINE) {
            return Err("the manifest does not start with its magic line");
        }
        let generation = lines
            .next()
            .and_then(|l| l.strip_prefix("generation "))
            .and_then(|g| g.parse::<u64>().ok())
            .ok_or("the manifest's second line is not its generation")?;
        let next_seq = lines
            .next()
            .and_then(|l| l.strip_prefix("next_seq "))
            .and_then(|g| g.parse::<u64>().ok())
            .filter(|&n| (1..=crate::MAX_SEQ).contains(&n))
            .ok_or("the manifest's third line is not its next sequence number")?;
        let mut manifest = RemoteManifest {
            generation,
            next_seq,
            ..RemoteManifest::default()
        };
        let mut last_first_seq = None;
        for line in lines {
            let mut words = line.split(' ');
            let (Some(what), Some(name), Some(len), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err("a manifest line is not `<what> <name> <length>`");
            };
            let len: u64 = len
                .parse()
                .map_err(|_| "a manifest length is not a number")?;
            match what {
                "snapshot" if manifest.snapshot.is_none() && manifest.segments.is_empty() => {
                    let last =
                        parse_snapshot_name(name).ok_or("a manifest snapshot name is not one")?;
                    if last >= next_seq {
                        return Err(
                            "the manifest's snapshot reaches past its next sequence number",
                        );
                    }
                    manifest.snapshot = Some((name.to_owned(), len));
                }
                "segment" => {
                    let first =
                        parse_segment_name(name).ok_or("a manifest segment name is not one")?;
                    if last_first_seq.is_some_and(|last| last >= first) || first >= next_seq {
                        return Err("the manifest's segments are not in increasing order");
                    }
                    last_first_seq = Some(first);
                    manifest.segments.push((name.to_owned(), len));
                }
                _ => return Err("a manifest line is neither one snapshot (first) nor a segment"),
            }
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_names() {
        let manifest = RemoteManifest {
            generation: 3,
            snapshot: Some(("snapshot-00000000000000000010.snap".into(), 99)),
            segments: vec![("00000000000000000009.log".into(), 4096)],
            next_seq: 20,
        };
        assert_eq!(
            RemoteManifest::decode(manifest.encode().as_bytes()),
            Ok(manifest)
        );
        for bad in [
            "pontoon-remote-manifest 1\ngeneration 1\nnext_seq 9\nsegment ../../etc/passwd 1\n",
            "pontoon-remote-manifest 1\ngeneration 1\nnext_seq 9\nsegment 00000000000000000002.log 1\nsegment 00000000000000000001.log 1\n",
            "pontoon-remote-manifest 2\ngeneration 1\n",
            "pontoon-remote-manifest 1\ngeneration x\nnext_seq 9\n",
            "pontoon-remote-manifest 1\ngeneration 1\nnext_seq 0\n",
            "pontoon-remote-manifest 1\ngeneration 1\nnext_seq 5\nsegment 00000000000000000007.log 1\n",
        ] {
            assert!(RemoteManifest::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
