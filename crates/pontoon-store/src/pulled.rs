//! The memory of objects pulled into an embedded store: 64-byte-aligned heap blocks, allocated
//! fallibly, and a pool that keeps blocks freed by dropped objects warm for the next pull (a
//! first write to fresh pages costs ten times a copy into touched ones).

use std::alloc::Layout as AllocLayout;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, Weak};

use crate::alloc::ALIGN;

/// Blocks smaller than this are not pooled: their first touch costs little.
const MIN_POOLED: usize = 1 << 20;

/// Freed blocks kept for reuse, at most `max_bytes` of them together.
#[derive(Debug)]
pub(crate) struct PulledPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    free: Mutex<Free>,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Free {
    blocks: Vec<Block>,
    bytes: usize,
}

/// An allocated block: `cap` bytes at `ptr`, every one initialized.
#[derive(Debug)]
struct Block {
    ptr: NonNull<u8>,
    cap: usize,
}

// SAFETY: a block is owned by exactly one pool slot or one buffer at a time; no aliasing
// pointer to it is kept anywhere else.
unsafe impl Send for Block {}

impl Block {
    fn layout(cap: usize) -> Option<AllocLayout> {
        AllocLayout::from_size_align(cap, ALIGN as usize).ok()
    }

    fn free(self) {
        if let Some(layout) = Block::layout(self.cap) {
            // SAFETY: the block was allocated by `PulledPool::take` with this very layout and
            // is owned by `self`, which is consumed.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

impl PulledPool {
    /// A pool that keeps at most `max_bytes` of freed blocks.
    pub(crate) fn new(max_bytes: usize) -> PulledPool {
        PulledPool {
            inner: Arc::new(PoolInner {
                free: Mutex::new(Free::default()),
                max_bytes,
            }),
        }
    }

    /// Bytes of freed blocks held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.inner.lock().bytes
    }

    /// A block of at least `len` bytes: a pooled one (warm, holding old bytes, which the pull
    /// overwrites) of at most twice `len`, else a fresh zeroed one; `None` when the allocator
    /// has none that large.
    pub(crate) fn take(&self, len: u64) -> Option<PulledBuffer> {
        let len = usize::try_from(len).ok()?;
        if len == 0 {
            return Some(PulledBuffer::empty());
        }
        if len >= MIN_POOLED {
            let mut free = self.inner.lock();
            let fit = free
                .blocks
                .iter()
                .enumerate()
                .filter(|(_, b)| b.cap >= len && b.cap / 2 <= len)
                .min_by_key(|(_, b)| b.cap)
                .map(|(i, _)| i);
            if let Some(i) = fit {
                let block = free.blocks.swap_remove(i);
                free.bytes -= block.cap;
                return Some(PulledBuffer {
                    block: Some(block),
                    len,
                    home: Arc::downgrade(&self.inner),
                });
            }
        }
        let layout = Block::layout(len)?;
        // SAFETY: the layout has a non-zero size (checked above).
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })?;
        Some(PulledBuffer {
            block: Some(Block { ptr, cap: len }),
            len,
            home: if len >= MIN_POOLED {
                Arc::downgrade(&self.inner)
            } else {
                Weak::new()
            },
        })
    }
}

impl PoolInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Free> {
        // Each change to the list completes before anything can panic.
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        for block in std::mem::take(&mut self.lock().blocks) {
            block.free();
        }
    }
}

/// `len` bytes of a block; the owner behind a pulled object's `Bytes`. Dropped, the block goes
/// back to its pool if there is room, else to the allocator.
pub(crate) struct PulledBuffer {
    block: Option<Block>,
    len: usize,
    home: Weak<PoolInner>,
}

impl PulledBuffer {
    /// A buffer of no bytes (allocates nothing).
    pub(crate) fn empty() -> PulledBuffer {
        PulledBuffer {
            block: None,
            len: 0,
            home: Weak::new(),
        }
    }

    /// The bytes, writable (only while nobody else can see them: before they become `Bytes`).
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        match &self.block {
            // SAFETY: the block holds `cap >= len` initialized bytes owned by `self`; `&mut
            // self` makes this the only access.
            Some(block) => unsafe { std::slice::from_raw_parts_mut(block.ptr.as_ptr(), self.len) },
            None => &mut [],
        }
    }
}

impl AsRef<[u8]> for PulledBuffer {
    fn as_ref(&self) -> &[u8] {
        match &self.block {
            // SAFETY: as in `as_mut_slice`; shared access only reads.
            Some(block) => unsafe { std::slice::from_raw_parts(block.ptr.as_ptr(), self.len) },
            None => &[],
        }
    }
}

impl Drop for PulledBuffer {
    fn drop(&mut self) {
        let Some(block) = self.block.take() else {
            return;
        };
        if let Some(home) = self.home.upgrade() {
            let mut free = home.lock();
            if free.bytes + block.cap <= home.max_bytes {
                free.bytes += block.cap;
                free.blocks.push(block);
                return;
            }
        }
        block.free();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_zeroed_writable_and_reused_within_the_bound() {
        let pool = PulledPool::new(3 << 20);
        let mut buffer = pool.take(1000).unwrap();
        assert_eq!(buffer.as_ref().as_ptr() as usize % ALIGN as usize, 0);
        assert!(buffer.as_ref().iter().all(|&b| b == 0));
        buffer.as_mut_slice()[999] = 5;
        let bytes = bytes::Bytes::from_owner(buffer);
        assert_eq!(bytes[999], 5);
        drop(bytes);
        assert_eq!(pool.held(), 0, "small blocks are not pooled");

        let pool = PulledPool::new(6 << 20);
        let mut big = pool.take(4 << 20).unwrap();
        big.as_mut_slice()[0] = 7;
        let ptr = big.as_ref().as_ptr();
        drop(bytes::Bytes::from_owner(big));
        assert_eq!(pool.held(), 4 << 20);
        // Too small a need for the pooled block (it would waste more than half of it).
        let other = pool.take(3 << 19).unwrap();
        assert_eq!(pool.held(), 4 << 20);
        let again = pool.take((4 << 20) - 64).unwrap();
        assert_eq!(again.as_ref().as_ptr(), ptr, "the freed block is reused");
        assert_eq!(again.as_ref()[0], 7, "a reused block is warm, not cleared");
        assert_eq!(pool.held(), 0);
        drop(other);
        drop(again);
        // 1.5 MiB + 4 MiB fit the 6 MiB bound; a third block would not.
        assert_eq!(pool.held(), (3 << 19) + (4 << 20));
        drop(pool.take(2 << 20));
        assert_eq!(pool.held(), (3 << 19) + (4 << 20));

        assert_eq!(pool.take(0).unwrap().as_ref().len(), 0);
        assert!(pool.take(u64::MAX).is_none());
    }
}
