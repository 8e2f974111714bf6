//! Receive buffers that come back when their frames are dropped: a large frame lands in warm
//! memory instead of fresh pages, which cost ten times a warm copy.

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use crate::FRAME_ALIGN;

/// Frames smaller than this get a buffer of their own; pooling them would cost more than it saves.
pub(crate) const POOLED_MIN: usize = 64 << 10;

/// Buffers of one comm that its frames no longer use, up to a byte budget.
pub(crate) struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
    budget: usize,
}

impl Pool {
    pub(crate) fn new(budget: usize) -> Arc<Pool> {
        Arc::new(Pool {
            free: Mutex::new(Vec::new()),
            budget,
        })
    }

    /// An empty buffer with room for `len` bytes after the padding that aligns them: the smallest
    /// pooled buffer that fits, or a new one; `None` if the memory cannot be had (the length was
    /// checked against the limits, but a limit may still be more than the machine has).
    pub(crate) fn take(self: &Arc<Pool>, len: usize) -> Option<PoolBuffer> {
        let need = len + FRAME_ALIGN - 1;
        let recycled = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= need)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            best.map(|i| free.swap_remove(i))
        };
        let mut bytes = match recycled {
            Some(bytes) => bytes,
            None => {
                let mut fresh = Vec::new();
                fresh.try_reserve_exact(need).ok()?;
                fresh
            }
        };
        bytes.clear();
        let pad = bytes.as_ptr().align_offset(FRAME_ALIGN);
        bytes.resize(pad, 0);
        Some(PoolBuffer {
            bytes,
            pad,
            pool: Arc::downgrade(self),
        })
    }

    fn give_back(&self, mut bytes: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let held: usize = free.iter().map(Vec::capacity).sum();
        if held + bytes.capacity() <= self.budget {
            bytes.clear();
            free.push(bytes);
        }
    }
}

/// A frame's buffer: filled by the reader, then frozen into `Bytes` that return it to the pool
/// when the last of them is dropped.
pub(crate) struct PoolBuffer {
    bytes: Vec<u8>,
    pad: usize,
    pool: Weak<Pool>,
}

impl PoolBuffer {
    /// The vector to read into: its length grows as bytes arrive.
    pub(crate) fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    pub(crate) fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PoolBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[self.pad..]
    }
}

impl Drop for PoolBuffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give_back(std::mem::take(&mut self.bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_aligned_and_warm() {
        let pool = Pool::new(1 << 30);
        let mut first = pool.take(1 << 20).unwrap();
        first.vec().extend_from_slice(&[7; 1 << 20]);
        let frame = first.freeze();
        assert_eq!(frame.as_ptr() as usize % FRAME_ALIGN, 0);
        let address = frame.as_ptr();
        drop(frame);
        let again = pool.take(1 << 19).unwrap();
        assert_eq!(
            again.bytes.as_ptr().wrapping_add(again.pad),
            address,
            "the buffer was not reused"
        );
        // Over budget: not kept.
        let small = Pool::new(10);
        drop(small.take(1 << 20).unwrap().freeze());
        assert!(
            small.take(usize::MAX / 2).is_none(),
            "an impossible buffer is refused, not an abort"
        );
        assert!(small.free.lock().unwrap().is_empty());
    }
}
