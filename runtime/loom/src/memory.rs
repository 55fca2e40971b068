//! The model's pool (`crate::pool` of the runtime's files): blocks that stay mapped after they are freed,
//! so that touching freed memory is a reported error instead of undefined behaviour.
//!
//! Every atomic and cell of the facade calls [`check`] on each access: one inside a freed block panics
//! with "touched after it was freed". [`free`] of a block that is not live panics ("freed twice" / "not
//! allocated here"), and [`model`](crate::model) panics at the end of each execution if a block is still
//! live ("leaked"). Blocks are per OS thread: loom runs all of a model's threads on the test's thread.

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::panic::Location;
use std::ptr::NonNull;

/// The pool's alignment (16 bytes, as on x64).
const ALIGN: usize = 16;

struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    freed: Option<&'static Location<'static>>,
}

thread_local! {
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// `pool::alloc`: `size` bytes, 16-aligned; never fails.
pub fn alloc(size: usize) -> Option<NonNull<u8>> {
    let layout = Layout::from_size_align(size.max(1), ALIGN).ok()?;
    // SAFETY: non-zero size.
    let ptr = NonNull::new(unsafe { alloc::alloc(layout) })?;
    BLOCKS.with(|b| b.borrow_mut().push(Block { ptr, layout, freed: None }));
    Some(ptr)
}

/// `pool::free`: marks the block freed (it stays mapped until the execution ends).
///
/// # Safety
/// None here: a block that is not live is reported, not freed.
#[track_caller]
pub unsafe fn free(p: NonNull<u8>) {
    let here = Location::caller();
    BLOCKS.with(|b| {
        let mut blocks = b.borrow_mut();
        match blocks.iter_mut().find(|blk| blk.ptr == p) {
            Some(Block { freed: Some(first), .. }) => {
                let first = *first;
                drop(blocks);
                panic!("pool block {p:p} freed twice: at {first} and at {here}");
            }
            Some(blk) => blk.freed = Some(here),
            None => {
                drop(blocks);
                panic!("pool block {p:p} freed at {here} was not allocated here");
            }
        }
    });
}

/// Panics if `addr` lies in a freed block: `what`, accessed at `at`, was touched after it was freed.
pub fn check(addr: *const u8, what: &str, at: &Location<'_>) {
    let freed = BLOCKS.with(|b| {
        b.borrow().iter().find_map(|blk| {
            let start = blk.ptr.as_ptr().cast_const();
            // SAFETY: within the block's allocation (one past the end at most).
            let end = unsafe { start.add(blk.layout.size()) };
            (addr >= start && addr < end).then_some(blk.freed).flatten()
        })
    });
    if let Some(freed_at) = freed {
        panic!("{what} at {addr:p} touched after it was freed: accessed at {at}, freed at {freed_at}");
    }
}

/// Places `value` in a new block (the model's stand-in for memory the runtime frees, such as a socket's).
pub fn boxed<T>(value: T) -> NonNull<T> {
    assert!(std::mem::align_of::<T>() <= ALIGN);
    let p = alloc(std::mem::size_of::<T>()).expect("model memory").cast::<T>();
    // SAFETY: fresh block of the right size and alignment.
    unsafe { p.as_ptr().write(value) };
    p
}

/// Drops the value in place and frees its block, as the runtime does with the memory that holds an
/// `IrpSlot`.
///
/// # Safety
/// `p` came from [`boxed`] and is not used by the caller afterwards.
#[track_caller]
pub unsafe fn drop_and_free<T>(p: NonNull<T>) {
    // SAFETY: per the caller.
    unsafe {
        std::ptr::drop_in_place(p.as_ptr());
        free(p.cast());
    }
}

/// Forgets the blocks of an execution that ended early (a panic), releasing their memory.
pub(crate) fn begin() {
    release_all();
}

/// The end of an execution: every block must have been freed; then their memory is released.
pub(crate) fn end() {
    let leaked: Vec<String> = BLOCKS.with(|b| {
        b.borrow()
            .iter()
            .filter(|blk| blk.freed.is_none())
            .map(|blk| format!("{:p} ({} bytes)", blk.ptr, blk.layout.size()))
            .collect()
    });
    if !leaked.is_empty() {
        panic!("pool blocks leaked at the end of the execution: {}", leaked.join(", "));
    }
    release_all();
}

fn release_all() {
    let blocks = BLOCKS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    for blk in blocks {
        // SAFETY: allocated by `alloc` with this layout; the execution that used it is over. A leaked
        // block's contents are not dropped (loom's objects in it are gone with the execution).
        unsafe { alloc::dealloc(blk.ptr.as_ptr(), blk.layout) };
    }
}

/// The runtime's pool counters, which the models do not read.
pub struct Counter;

impl Counter {
    /// Nothing to count.
    pub fn inc(&self) {}
    /// Nothing to count.
    pub fn dec(&self) {}
}

/// `pool::TASKS_LIVE`.
pub static TASKS_LIVE: Counter = Counter;
/// `pool::TASKS_TOTAL`.
pub static TASKS_TOTAL: Counter = Counter;
