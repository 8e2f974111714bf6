//! The memory of an object pulled into an embedded store: one 64-byte-aligned heap block,
//! allocated fallibly and zeroed by the allocator (fresh pages come zeroed from the kernel, so
//! nothing touches them before the chunks are copied in), owned by the object's frames.

use std::alloc::Layout as AllocLayout;
use std::ptr::NonNull;

use crate::alloc::ALIGN;

/// A zeroed, aligned block of `len` bytes; the owner behind a pulled object's `Bytes`.
pub(crate) struct PulledBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer owns its block exclusively (no aliasing pointer is kept elsewhere); moving
// it to another thread, or reading it from several once it is shared as `Bytes`, is as safe as
// for a `Vec<u8>`.
unsafe impl Send for PulledBuffer {}
// SAFETY: see `Send`; shared access is read-only (`AsRef<[u8]>`).
unsafe impl Sync for PulledBuffer {}

impl PulledBuffer {
    /// A zeroed block of `len` bytes, or `None` when the allocator has none that large.
    pub(crate) fn zeroed(len: u64) -> Option<PulledBuffer> {
        let len = usize::try_from(len).ok()?;
        if len == 0 {
            return Some(PulledBuffer::empty());
        }
        let layout = AllocLayout::from_size_align(len, ALIGN as usize).ok()?;
        // SAFETY: the layout has a non-zero size (checked above).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        NonNull::new(ptr).map(|ptr| PulledBuffer { ptr, len })
    }

    /// A block of no bytes (allocates nothing).
    pub(crate) fn empty() -> PulledBuffer {
        PulledBuffer {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }

    /// The block, writable (only while nobody else can see it: before it becomes `Bytes`).
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points to `len` initialized (zeroed) bytes owned by `self`, or is
        // dangling with `len` 0; `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for PulledBuffer {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: as in `as_mut_slice`; shared access only reads.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PulledBuffer {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        if let Ok(layout) = AllocLayout::from_size_align(self.len, ALIGN as usize) {
            // SAFETY: the block was allocated in `zeroed` with this very layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_zeroed_and_writable() {
        let mut buffer = PulledBuffer::zeroed(1000).unwrap();
        assert_eq!(buffer.as_ref().as_ptr() as usize % ALIGN as usize, 0);
        assert!(buffer.as_ref().iter().all(|&b| b == 0));
        buffer.as_mut_slice()[999] = 5;
        let bytes = bytes::Bytes::from_owner(buffer);
        assert_eq!(bytes[999], 5);
        assert_eq!(PulledBuffer::zeroed(0).unwrap().as_ref().len(), 0);
        assert!(PulledBuffer::zeroed(u64::MAX).is_none());
    }
}
