//! Receive buffers that come back when their frames are dropped: a large frame lands in warm
//! memory instead of fresh pages, which cost ten times a warm copy.

use std::sync::{Arc, Mutex};

use pontoon_wire::{FRAME_ALIGN, FrameBuffers};

/// Frames smaller than this get a buffer of their own; pooling them would cost more than it saves.
pub(crate) const POOLED_MIN: usize = 64 << 10;

/// Buffers that frames no longer use, up to a byte budget: one pool per [`Listener`] shared by
/// all its connections (so idle peers cannot each keep a budget's worth), or one per comm
/// opened by [`connect`](crate::connect).
///
/// [`Listener`]: crate::Listener The reader takes a
/// warm buffer only when one already has room for the whole frame; otherwise it starts a new
/// one and grows it as the frame's bytes arrive, so a declared length reserves nothing.
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

    /// Bytes of buffers held for reuse.
    pub(crate) fn held(&self) -> usize {
        let free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.iter().map(Vec::capacity).sum()
    }
}

impl FrameBuffers for Pool {
    /// The smallest pooled buffer with room for `len` bytes and their alignment, or an empty one.
    fn take(&self, len: u64) -> Vec<u8> {
        let Some(need) = usize::try_from(len)
            .ok()
            .filter(|&len| len >= POOLED_MIN)
            .and_then(|len| len.checked_add(FRAME_ALIGN - 1))
        else {
            return Vec::new();
        };
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= need)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        best.map(|i| free.swap_remove(i)).unwrap_or_default()
    }

    fn recycle(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() < POOLED_MIN {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let held: usize = free.iter().map(Vec::capacity).sum();
        if held.saturating_add(buffer.capacity()) <= self.budget {
            buffer.clear();
            free.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_warm_within_the_budget() {
        let pool = Pool::new(4 << 20);
        let mut first = pool.take(1 << 20);
        assert_eq!(
            first.capacity(),
            0,
            "nothing is pooled yet: a new, empty buffer"
        );
        first.reserve_exact((1 << 20) + FRAME_ALIGN);
        let address = first.as_ptr();
        pool.recycle(first);
        assert!(pool.held() >= 1 << 20);
        let again = pool.take(1 << 19);
        assert_eq!(again.as_ptr(), address, "the buffer was not reused");
        assert!(again.is_empty());
        // Too small for the frame: not handed out.
        pool.recycle(again);
        assert_eq!(pool.take(2 << 20).capacity(), 0);
        // Small frames and small buffers are not pooled; over budget is not kept.
        assert_eq!(pool.take(100).capacity(), 0);
        pool.recycle(Vec::with_capacity(100));
        pool.recycle(Vec::with_capacity(8 << 20));
        assert!(pool.held() < 4 << 20);
        assert_eq!(pool.take(u64::MAX).capacity(), 0);
    }
}
