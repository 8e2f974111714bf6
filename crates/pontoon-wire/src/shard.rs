//! Splitting frames into shards for carriers that cap message sizes, and joining shards back.

use std::num::NonZeroUsize;

use bytes::{BufMut, Bytes, BytesMut};

/// Splits `frame` into shards of at most `shard_size` bytes each, without copying: every shard is a
/// slice of `frame`. An empty frame gives no shards.
///
/// ```
/// use std::num::NonZeroUsize;
/// let frame = bytes::Bytes::from(vec![1u8; 10]);
/// let shards = pontoon_wire::shard::split(&frame, NonZeroUsize::new(4).unwrap());
/// assert_eq!(shards.iter().map(|s| s.len()).collect::<Vec<_>>(), [4, 4, 2]);
/// assert_eq!(shards[1].as_ptr(), frame[4..].as_ptr()); // a view, not a copy
/// ```
pub fn split(frame: &Bytes, shard_size: NonZeroUsize) -> Vec<Bytes> {
    let size = shard_size.get();
    (0..frame.len())
        .step_by(size)
        .map(|start| frame.slice(start..frame.len().min(start + size)))
        .collect()
}

/// Joins shards back into one frame with one copy (none if there is a single shard).
///
/// Use [`join_within`] when the shards may be slices of one buffer you hold: that joins them
/// without a copy.
///
/// ```
/// use bytes::Bytes;
/// let joined = pontoon_wire::shard::join(&[Bytes::from_static(b"pont"), Bytes::from_static(b"oon")]);
/// assert_eq!(joined, "pontoon");
/// ```
pub fn join(shards: &[Bytes]) -> Bytes {
    match shards {
        [] => Bytes::new(),
        [one] => one.clone(),
        _ => {
            let len = shards.iter().map(Bytes::len).sum();
            let mut out = BytesMut::with_capacity(len);
            for shard in shards {
                out.put_slice(shard);
            }
            out.freeze()
        }
    }
}

/// Joins shards into one frame, without a copy when they lie back to back inside `buffer` (as
/// shards read into one receive buffer do): the result is then a slice of `buffer`. Otherwise it
/// falls back to [`join`], one copy.
///
/// ```
/// use bytes::Bytes;
/// use std::num::NonZeroUsize;
/// let received = Bytes::from(vec![9u8; 1000]);
/// let shards = pontoon_wire::shard::split(&received.slice(100..900), NonZeroUsize::new(256).unwrap());
/// let frame = pontoon_wire::shard::join_within(&received, &shards);
/// assert_eq!(frame.as_ptr(), received[100..].as_ptr()); // no copy
/// assert_eq!(frame.len(), 800);
/// ```
pub fn join_within(buffer: &Bytes, shards: &[Bytes]) -> Bytes {
    if let Some(range) = contiguous_range(buffer, shards) {
        return buffer.slice(range);
    }
    join(shards)
}

/// The range of `buffer` the shards cover, if they are back-to-back slices of it.
fn contiguous_range(buffer: &Bytes, shards: &[Bytes]) -> Option<std::ops::Range<usize>> {
    let base = buffer.as_ptr() as usize;
    let end = base + buffer.len();
    // An empty shard may point anywhere; it adds nothing.
    let mut nonempty = shards.iter().filter(|s| !s.is_empty());
    let Some(first) = nonempty.next() else {
        return Some(0..0);
    };
    let start = first.as_ptr() as usize;
    if start < base {
        return None;
    }
    let mut next = start;
    for shard in std::iter::once(first).chain(nonempty) {
        if shard.as_ptr() as usize != next || next + shard.len() > end {
            return None;
        }
        next += shard.len();
    }
    Some(start - base..next - base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    #[test]
    fn split_then_join_is_the_identity() {
        let frame = Bytes::from((0..1000u32).map(|i| i as u8).collect::<Vec<_>>());
        for s in [1, 7, 999, 1000, 5000] {
            let shards = split(&frame, size(s));
            assert!(shards.iter().all(|sh| sh.len() <= s && !sh.is_empty()));
            assert_eq!(join(&shards), frame);
            let within = join_within(&frame, &shards);
            assert_eq!(within, frame);
            assert_eq!(within.as_ptr(), frame.as_ptr());
        }
        assert!(split(&Bytes::new(), size(4)).is_empty());
        assert_eq!(join(&[]), Bytes::new());
    }

    #[test]
    fn shards_from_elsewhere_are_copied() {
        let buffer = Bytes::from(vec![1u8; 100]);
        let other = Bytes::from(vec![2u8; 10]);
        let out_of_order = [buffer.slice(50..60), buffer.slice(0..50)];
        let joined = join_within(&buffer, &out_of_order);
        assert_eq!(joined.len(), 60);
        assert_ne!(joined.as_ptr(), buffer.as_ptr());
        let foreign = [buffer.slice(90..100), other.clone()];
        let joined = join_within(&buffer, &foreign);
        assert_eq!(&joined[..10], &[1; 10]);
        assert_eq!(&joined[10..], &[2; 10]);
        let gap = [buffer.slice(0..10), buffer.slice(11..20)];
        assert_eq!(join_within(&buffer, &gap).len(), 19);
        assert_ne!(join_within(&buffer, &gap).as_ptr(), buffer.as_ptr());
    }
}
