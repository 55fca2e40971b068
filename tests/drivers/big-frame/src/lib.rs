//! A driver that must fail the stack check of `cargo xtask build`: [`DriverEntry`] calls
//! [`fill_and_sum`], whose 8 KiB local array makes a frame of more than a page (and a call of the stack
//! probe `___chkstk_ms`). `cargo xtask stack-selftest` builds it and checks that the build is rejected,
//! naming `big_frame::fill_and_sum` and its size.
//!
//! It is a driver only for the Windows target (`cargo xtask build -p big-frame`); on the host it is an
//! ordinary library so `cargo build --workspace` still works.
#![cfg_attr(target_os = "windows", no_std)]

use core::hint::black_box;
use core::mem::MaybeUninit;

/// The size of the local array: twice the 4 KiB frame budget.
pub const FRAME_BYTES: usize = 8 * 1024;

/// Fills an 8 KiB local array and sums it. `black_box` keeps the array on the stack and in full: the
/// optimiser may not drop it, shrink it or fold the sum. The array is not zeroed first: that would be a
/// `memset` call, which this driver has no kernel import for.
#[inline(never)]
pub fn fill_and_sum(seed: u8) -> u32 {
    let mut buf = MaybeUninit::<[u8; FRAME_BYTES]>::uninit();
    let first = buf.as_mut_ptr().cast::<u8>();
    for i in 0..FRAME_BYTES {
        // SAFETY: `i < FRAME_BYTES`: the byte is inside the array.
        unsafe { first.add(i).write(seed.wrapping_add(i as u8)) };
    }
    // SAFETY: the loop above wrote every byte.
    let buf = black_box(unsafe { buf.assume_init_mut() });
    buf.iter().map(|&b| u32::from(b)).sum()
}

/// The driver's entry point. Returns STATUS_SUCCESS (0) whatever the sum is; the call is what matters.
#[no_mangle]
pub extern "system" fn DriverEntry(
    _driver: *mut core::ffi::c_void,
    _registry_path: *const core::ffi::c_void,
) -> i32 {
    let sum = fill_and_sum(black_box(7));
    black_box(sum);
    0
}

/// A driver cannot panic usefully; this one never does (no indexing, no arithmetic that can overflow).
#[cfg(all(target_os = "windows", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// The precompiled `core` of the windows-gnu target names this personality routine in its unwind
/// tables; defining it keeps the linker from pulling in libgcc_eh, which would import KERNEL32.dll (see
/// runtime/src/driver.rs).
#[cfg(all(target_os = "windows", not(test)))]
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}
