//! Stand-in for `wdk-alloc` 0.4.2: a `WdkAllocator` over `ExAllocatePool2`/`ExFreePool`, as the real one.
//! Only for type-checking on Linux; see ../README.md.
#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

const POOL_FLAG_NON_PAGED: u64 = 0x40;
const TAG: u32 = u32::from_le_bytes(*b"rust");

extern "system" {
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut c_void;
    fn ExFreePool(p: *mut c_void);
}

/// The allocator a driver names in `#[global_allocator]`.
pub struct WdkAllocator;

// SAFETY: pool allocations are 16-byte aligned; larger alignments are refused (null), as by the real one.
unsafe impl GlobalAlloc for WdkAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        // SAFETY: a plain pool allocation.
        unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, layout.size(), TAG).cast() }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc`.
        unsafe { ExFreePool(ptr.cast()) }
    }
}
