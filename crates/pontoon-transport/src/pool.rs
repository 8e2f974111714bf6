//! Receive buffers that come back when their frames are dropped: a large frame lands in warm
//! memory instead of fresh pages, which cost ten times a warm copy. The pool gives memory back
//! as its connections close and once buffers go unused, so idle listeners do not keep it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use pontoon_wire::{FRAME_ALIGN, FrameBuffers};

use crate::metrics::PoolGauges;

/// Frames smaller than this get a buffer of their own; pooling them would cost more than it saves.
pub(crate) const POOLED_MIN: usize = 64 << 10;

/// Buffers kept per live connection: enough for a message of a few large frames each.
const KEPT_PER_CONNECTION: usize = 4;

/// Buffers that frames no longer use, up to `max_bytes`: one pool per
/// [`Listener`](crate::Listener) shared by all its connections (so idle peers cannot each keep
/// a pool's worth), or one per comm opened by [`connect`](crate::connect). The reader takes a
/// warm buffer only when one already has room for the whole frame; otherwise it starts a new
/// one and grows it as the frame's bytes arrive, so a declared length reserves nothing.
///
/// It keeps at most [`KEPT_PER_CONNECTION`] buffers per connection still open: when one
/// closes, the largest buffers beyond that go back to the allocator, and once none is open the
/// pool is empty (frames a user still holds are freed, not kept, when they are dropped). And
/// buffers nobody has taken for a while are freed when a connection has waited that long for
/// its next message ([`Pool::trim_unused`]).
pub(crate) struct Pool {
    free: Mutex<Free>,
    max_bytes: usize,
    gauges: PoolGauges,
}

struct Free {
    buffers: Vec<Kept>,
    connections: usize,
}

/// A buffer kept for reuse, and since when.
struct Kept {
    buffer: Vec<u8>,
    since: Instant,
}

impl Free {
    fn held(&self) -> usize {
        self.buffers.iter().map(|kept| kept.buffer.capacity()).sum()
    }

    /// What the pool's gauges show: bytes and buffers held.
    fn shown(&self) -> (usize, usize) {
        (self.held(), self.buffers.len())
    }

    /// Drops the largest buffers beyond what the open connections may keep.
    fn trim(&mut self) {
        let keep = self.connections.saturating_mul(KEPT_PER_CONNECTION);
        if self.buffers.len() > keep {
            self.buffers
                .sort_unstable_by_key(|kept| kept.buffer.capacity());
            self.buffers.truncate(keep);
        }
    }
}

/// One connection's claim on a [`Pool`]: while it lives the pool keeps buffers for it; dropping
/// it trims the pool.
pub(crate) struct PoolUser {
    pool: Arc<Pool>,
}

impl Drop for PoolUser {
    fn drop(&mut self) {
        let mut free = self.pool.lock();
        let before = free.shown();
        free.connections = free.connections.saturating_sub(1);
        free.trim();
        self.pool.gauges.moved(before, free.shown());
    }
}

impl Pool {
    pub(crate) fn new(max_bytes: usize) -> Arc<Pool> {
        Arc::new(Pool {
            free: Mutex::new(Free {
                buffers: Vec::new(),
                connections: 0,
            }),
            max_bytes,
            gauges: PoolGauges::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more open connection, until the returned claim is dropped.
    pub(crate) fn attach(self: &Arc<Pool>) -> PoolUser {
        self.lock().connections += 1;
        PoolUser { pool: self.clone() }
    }

    /// Bytes of buffers held for reuse.
    pub(crate) fn held(&self) -> usize {
        self.lock().held()
    }

    /// Frees the buffers that have been kept, untaken, for `idle` or longer.
    pub(crate) fn trim_unused(&self, idle: Duration) {
        let now = Instant::now();
        let mut free = self.lock();
        let before = free.shown();
        free.buffers
            .retain(|kept| now.saturating_duration_since(kept.since) < idle);
        self.gauges.moved(before, free.shown());
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
        let mut free = self.lock();
        let best = free
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, kept)| kept.buffer.capacity() >= need)
            .min_by_key(|(_, kept)| kept.buffer.capacity())
            .map(|(i, _)| i);
        let Some(i) = best else {
            return Vec::new();
        };
        let buffer = free.buffers.swap_remove(i).buffer;
        self.gauges.handed_out(buffer.capacity());
        buffer
    }

    fn recycle(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() < POOLED_MIN {
            return;
        }
        let mut free = self.lock();
        let room = free.buffers.len() < free.connections.saturating_mul(KEPT_PER_CONNECTION);
        if room && free.held().saturating_add(buffer.capacity()) <= self.max_bytes {
            buffer.clear();
            self.gauges.kept(buffer.capacity());
            free.buffers.push(Kept {
                buffer,
                since: Instant::now(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_warm_within_the_budget() {
        let pool = Pool::new(4 << 20);
        let user = pool.attach();
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
        drop(user);
    }

    #[test]
    fn the_pool_empties_as_its_connections_close() {
        let pool = Pool::new(64 << 20);
        let users: Vec<_> = (0..3).map(|_| pool.attach()).collect();
        for _ in 0..20 {
            pool.recycle(Vec::with_capacity(1 << 20));
        }
        // Three connections keep at most four buffers each.
        assert_eq!(pool.held(), 12 << 20);
        let mut users = users.into_iter();
        drop(users.next());
        assert_eq!(pool.held(), 8 << 20);
        drop(users);
        assert_eq!(pool.held(), 0);
        // A frame dropped after every connection closed is freed, not kept.
        pool.recycle(Vec::with_capacity(1 << 20));
        assert_eq!(pool.held(), 0);
    }
}
