//! The arena's allocator: best-fit over a free list of 64-byte-aligned ranges, coalesced on
//! free. Pure bookkeeping (offsets only), so it is tested on its own.

use std::collections::{BTreeMap, BTreeSet};

/// Every range the allocator hands out starts and ends on this many bytes.
pub(crate) const ALIGN: u64 = 64;

/// A range of the arena: `offset..offset + len`, both multiples of [`ALIGN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Free ranges by offset (to coalesce with neighbours) and by size (best fit in `O(log n)`).
#[derive(Debug)]
pub(crate) struct Allocator {
    capacity: u64,
    by_offset: BTreeMap<u64, u64>,
    by_size: BTreeSet<(u64, u64)>,
    free: u64,
}

/// What a request needed against what the allocator had when it could not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoRoom {
    /// Bytes asked for, rounded up to [`ALIGN`].
    pub(crate) need: u64,
    /// Bytes free in all.
    pub(crate) free: u64,
    /// The largest free range.
    pub(crate) largest: u64,
}

impl Allocator {
    /// An allocator over `capacity` bytes (rounded down to [`ALIGN`]), all free.
    pub(crate) fn new(capacity: u64) -> Allocator {
        let capacity = capacity / ALIGN * ALIGN;
        let mut allocator = Allocator {
            capacity,
            by_offset: BTreeMap::new(),
            by_size: BTreeSet::new(),
            free: 0,
        };
        if capacity > 0 {
            allocator.insert(0, capacity);
        }
        allocator
    }

    /// The bytes under management.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The bytes free.
    pub(crate) fn free(&self) -> u64 {
        self.free
    }

    /// The smallest free range that holds `len` bytes (at least [`ALIGN`]), split off its front.
    pub(crate) fn allocate(&mut self, len: u64) -> Result<Range, NoRoom> {
        let need = len.max(1).div_ceil(ALIGN).saturating_mul(ALIGN);
        let found = self.by_size.range((need, 0)..).next().copied();
        let Some((size, offset)) = found else {
            let largest = self.by_size.iter().next_back().map_or(0, |&(size, _)| size);
            return Err(NoRoom {
                need,
                free: self.free,
                largest,
            });
        };
        self.remove(offset, size);
        if size > need {
            self.insert(offset + need, size - need);
        }
        Ok(Range { offset, len: need })
    }

    /// Gives `range` back, merged with free neighbours. `range` must be one that
    /// [`allocate`](Allocator::allocate) returned and not yet freed.
    pub(crate) fn release(&mut self, range: Range) {
        let mut offset = range.offset;
        let mut len = range.len;
        if let Some((&before, &before_len)) = self.by_offset.range(..offset).next_back()
            && before + before_len == offset
        {
            self.remove(before, before_len);
            offset = before;
            len += before_len;
        }
        if let Some(&after_len) = self.by_offset.get(&(offset + len)) {
            self.remove(offset + len, after_len);
            len += after_len;
        }
        self.insert(offset, len);
    }

    fn insert(&mut self, offset: u64, len: u64) {
        self.by_offset.insert(offset, len);
        self.by_size.insert((len, offset));
        self.free += len;
    }

    fn remove(&mut self, offset: u64, len: u64) {
        self.by_offset.remove(&offset);
        self.by_size.remove(&(len, offset));
        self.free -= len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn aligned_ranges_and_a_typed_refusal() {
        let mut a = Allocator::new(1000);
        assert_eq!(a.capacity(), 960);
        let x = a.allocate(1).unwrap();
        assert_eq!(x, Range { offset: 0, len: 64 });
        let y = a.allocate(65).unwrap();
        assert_eq!(
            y,
            Range {
                offset: 64,
                len: 128
            }
        );
        let err = a.allocate(961).unwrap_err();
        assert_eq!(
            err,
            NoRoom {
                need: 1024,
                free: 960 - 192,
                largest: 960 - 192
            }
        );
        a.release(x);
        a.release(y);
        assert_eq!(a.free(), 960);
        assert_eq!(
            a.allocate(960).unwrap(),
            Range {
                offset: 0,
                len: 960
            }
        );
    }

    proptest! {
        // Few cases under miri, which runs each one thousands of times slower.
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        // Whatever the order of allocations and frees: ranges never overlap, stay inside the
        // arena, and freeing everything leaves one free range of the whole arena.
        #[test]
        fn never_overlaps_and_coalesces_back(ops in proptest::collection::vec((0u64..5000, any::<bool>()), 1..200)) {
            let mut a = Allocator::new(64 * 1024);
            let mut live: Vec<Range> = Vec::new();
            for (len, free_one) in ops {
                if free_one && !live.is_empty() {
                    let r = live.swap_remove(len as usize % live.len());
                    a.release(r);
                } else if let Ok(r) = a.allocate(len) {
                    prop_assert_eq!(r.offset % ALIGN, 0);
                    prop_assert!(r.offset + r.len <= a.capacity());
                    for other in &live {
                        prop_assert!(r.offset + r.len <= other.offset || other.offset + other.len <= r.offset);
                    }
                    live.push(r);
                }
                let used: u64 = live.iter().map(|r| r.len).sum();
                prop_assert_eq!(a.free() + used, a.capacity());
            }
            for r in live.drain(..) {
                a.release(r);
            }
            prop_assert_eq!(a.by_offset.len(), 1);
            prop_assert_eq!(a.free(), a.capacity());
        }
    }
}
