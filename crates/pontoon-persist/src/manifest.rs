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
    /// The active segment's tail, uploaded for remote durability (`RemoteDurability`): the
    /// parts that, joined in order, are the segment's first bytes (its header and whole records
    /// only), each a *tail part* object (`<segment name>.<offset>.<writer>.part`) and its
    /// length. Empty when nothing of the active segment is on the remote.
    pub tail: Vec<(String, u64)>,
    /// The sequence number the log goes on at after a restore: the record after the last
    /// one the tail holds, else where the local log's active segment started, or just after
    /// the snapshot if that is later.
    pub next_seq: u64,
}

/// What a tail part object's name says: the first sequence number of the segment it is part
/// of, and the offset in that segment where its bytes start.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn parse_tail_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_suffix(".part")?;
    let (segment, rest) = rest.split_at_checked(24)?;
    let first = parse_segment_name(segment)?;
    let rest = rest.strip_prefix('.')?;
    let (offset, writer) = rest.split_at_checked(20)?;
    let offset = parse_seq_digits(offset)?;
    let writer = writer.strip_prefix('.')?;
    if writer.len() != 16 || !writer.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((first, offset))
}

/// The name of the tail part of the segment starting at `first_seq`, from `offset` on,
/// uploaded by the writer `writer` (a token of its own, so that two writers never overwrite
/// each other's parts).
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn tail_name(first_seq: u64, offset: u64, writer: u64) -> String {
    format!("{first_seq:020}.log.{offset:020}.{writer:016x}.part")
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
        for (name, len) in &self.tail {
            text.push_str(&format!("tail {name} {len}\n"));
        }
        text
    }

    /// Reads a manifest back: every line must be one this version writes, every name a
    /// snapshot's, a segment's or a tail part's (so no name can reach outside the directory it
    /// is restored into), segments in increasing order and before `next_seq`, tail parts last,
    /// of one segment after every other, joined end to end from offset 0; at most 1 MiB. The
    /// error says what is wrong.
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
        // The tail's segment, and where its next part must start.
        let mut tail_at: Option<(u64, u64)> = None;
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
                "snapshot"
                    if manifest.snapshot.is_none()
                        && manifest.segments.is_empty()
                        && tail_at.is_none() =>
                {
                    let last =
                        parse_snapshot_name(name).ok_or("a manifest snapshot name is not one")?;
                    if last >= next_seq {
                        return Err(
                            "the manifest's snapshot reaches past its next sequence number",
                        );
                    }
                    manifest.snapshot = Some((name.to_owned(), len));
                }
                "segment" if tail_at.is_none() => {
                    let first =
                        parse_segment_name(name).ok_or("a manifest segment name is not one")?;
                    if last_first_seq.is_some_and(|last| last >= first) || first >= next_seq {
                        return Err("the manifest's segments are not in increasing order");
                    }
                    last_first_seq = Some(first);
                    manifest.segments.push((name.to_owned(), len));
                }
                "tail" => {
                    let (first, offset) =
                        parse_tail_name(name).ok_or("a manifest tail part name is not one")?;
                    let expected = match tail_at {
                        Some((segment, end)) if segment == first => end,
                        Some(_) => return Err("the manifest's tail parts are of two segments"),
                        None if last_first_seq.is_some_and(|last| last >= first)
                            || first >= next_seq =>
                        {
                            return Err("the manifest's tail is not of its last segment");
                        }
                        None => 0,
                    };
                    if offset != expected || len == 0 {
                        return Err("the manifest's tail parts are not joined end to end");
                    }
                    tail_at = Some((first, offset.saturating_add(len)));
                    manifest.tail.push((name.to_owned(), len));
                }
                _ => {
                    return Err(
                        "a manifest line is neither one snapshot (first), a segment, nor a tail part (last)",
                    );
                }
            }
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest as the first release of the remote wrote it (no tail lines; its exact bytes)
    /// is read by this version as the same state, and written back the same.
    #[test]
    fn a_manifest_without_tail_lines_still_reads() {
        let old = "pontoon-remote-manifest 1\ngeneration 7\nnext_seq 301\n\
                   snapshot snapshot-00000000000000000150.snap 2048\n\
                   segment 00000000000000000101.log 65536\n\
                   segment 00000000000000000201.log 65536\n";
        let manifest = RemoteManifest::decode(old.as_bytes()).unwrap();
        assert_eq!(
            manifest,
            RemoteManifest {
                generation: 7,
                snapshot: Some(("snapshot-00000000000000000150.snap".into(), 2048)),
                segments: vec![
                    ("00000000000000000101.log".into(), 65536),
                    ("00000000000000000201.log".into(), 65536),
                ],
                tail: Vec::new(),
                next_seq: 301,
            }
        );
        assert_eq!(manifest.encode(), old);
    }

    #[test]
    fn round_trip_and_hostile_names() {
        let manifest = RemoteManifest {
            generation: 3,
            snapshot: Some(("snapshot-00000000000000000010.snap".into(), 99)),
            segments: vec![("00000000000000000009.log".into(), 4096)],
            tail: vec![
                (tail_name(15, 0, 0xab), 128),
                (tail_name(15, 128, 0xab), 64),
            ],
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
            // A tail part that does not start where the previous one ended.
            "pontoon-remote-manifest 1\ngeneration 1\nnext_seq 9\ntail 00000000000000000002.log.00000000000000000000.00000000000000ab.part 10\ntail 00000000000000000002.log.00000000000000000011.00000000000000ab.part 10\n",
            // A tail before a segment, and one of a segment before the last one.
            "pontoon-remote-manifest 1\ngeneration 1\nnext_seq 9\ntail 00000000000000000002.log.00000000000000000000.00000000000000ab.part 10\nsegment 00000000000000000003.log 1\n",
            "pontoon-remote-manifest 1\ngeneration 1\nnext_seq 9\nsegment 00000000000000000003.log 1\ntail 00000000000000000002.log.00000000000000000000.00000000000000ab.part 10\n",
            // A tail part whose name reaches elsewhere.
            "pontoon-remote-manifest 1\ngeneration 1\nnext_seq 9\ntail ../00000000000000000002.log 10\n",
        ] {
            assert!(RemoteManifest::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
