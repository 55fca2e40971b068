//! Stand-in for `wdk-panic` 0.5.0: the kernel panic handler (a bug check), as the real one defines it.
//! Only for type-checking on Linux; see ../README.md.
#![no_std]

extern "system" {
    fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: KeBugCheckEx takes plain integers and never returns.
    unsafe { KeBugCheckEx(0xE2, 0, 0, 0, 0) }
}
