//! Decompression allocates exactly once per frame, counted by a global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use pontoon_wire::{Codec, EncodeOptions, Encoder, Header, Limits, Message, decode_message};

struct Counting;

thread_local! {
    /// Allocations of at least 64 KiB on this thread, and their total size.
    static LARGE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

fn note(size: usize) {
    if size >= 64 << 10 {
        // `try_with`: the thread-local may be gone while a thread shuts down.
        let _ = LARGE.try_with(|c| {
            let (n, total) = c.get();
            c.set((n + 1, total + size));
        });
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; the counting touches only a thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `alloc`; `ptr` was allocated by `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn decompressing_a_frame_allocates_its_output_once() {
    let raw_len = 8 << 20; // eight compression blocks
    let frame = Bytes::from((0..raw_len).map(|i| (i / 4096) as u8).collect::<Vec<_>>());
    let message = Message::new(Header::empty(), vec![frame]);
    // zstd makes this frame over 600:1, above the default expansion ratio of 256: sender and
    // receiver both know the receiver allows 1024:1.
    let mut limits = Limits::default();
    limits.max_expansion_ratio = 1024;
    for codec in [Codec::Lz4, Codec::Zstd]
        .into_iter()
        .filter(|c| c.is_built())
    {
        let options = {
            let mut options = EncodeOptions::default();
            options.codec = codec;
            options.receiver_limits = limits;
            options
        };
        let bytes = Encoder::new(options).encode(&message).unwrap().to_bytes();
        assert!(bytes.len() < raw_len / 10, "{codec} did not compress");
        LARGE.with(|c| c.set((0, 0)));
        let decoded = decode_message(bytes, &limits).unwrap();
        let (count, total) = LARGE.with(Cell::get);
        assert_eq!(decoded, message);
        assert_eq!(
            (count, total),
            (1, raw_len),
            "{codec}: large allocations while decoding"
        );
    }
}
