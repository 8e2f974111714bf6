//! `Array`'s `==` compares element by element and allocates nothing: an allocation counter on
//! this thread proves it (before the fix it made two native copies, each the logical size).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use pontoon_array::{Array, ByteOrder, DType};
use pontoon_wire::Limits;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// Counts this thread's allocations, and passes them on to the system allocator.
struct Counting;

// SAFETY: every call is passed on unchanged to `System`, which upholds `GlobalAlloc`'s contract;
// the counter is a thread-local `Cell` of a `usize`, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's layout goes to `System` as it came.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations_in(run: impl FnOnce() -> bool) -> (bool, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = run();
    (result, ALLOCATIONS.with(Cell::get) - before)
}

#[test]
fn equality_allocates_nothing_whatever_the_layouts_and_byte_orders() {
    let values: Vec<u8> = (0u8..64).collect();
    let little = Array::from_parts(
        DType::U32,
        ByteOrder::Little,
        vec![4, 4],
        vec![16, 4],
        0,
        Bytes::from(values.clone()),
        &Limits::DEFAULT,
    )
    .unwrap();
    let swapped: Vec<u8> = values
        .chunks(4)
        .flat_map(|c| [c[3], c[2], c[1], c[0]])
        .collect();
    let big = Array::from_parts(
        DType::U32,
        ByteOrder::Big,
        vec![4, 4],
        vec![16, 4],
        0,
        Bytes::from(swapped),
        &Limits::DEFAULT,
    )
    .unwrap();
    let fortran = little
        .to_contiguous()
        .unwrap()
        .transposed()
        .to_contiguous()
        .unwrap()
        .transposed();
    assert_ne!(fortran.strides(), little.strides());
    let broadcast = Array::from_parts(
        DType::U32,
        ByteOrder::Little,
        vec![4, 4],
        vec![0, 4],
        0,
        Bytes::from(values),
        &Limits::DEFAULT,
    )
    .unwrap();

    for (a, b, equal) in [
        (&little, &big, true),
        (&little, &fortran, true),
        (&big, &fortran, true),
        (&little, &broadcast, false),
    ] {
        let (result, allocations) = allocations_in(|| a == b);
        assert_eq!(result, equal, "{a:?} == {b:?}");
        assert_eq!(allocations, 0, "{a:?} == {b:?} allocated");
    }
}
