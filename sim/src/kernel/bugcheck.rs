//! KeBugCheckEx: the end of the (simulated) machine.
//!
//! A driver bugchecks when it panics (the runtime's panic handler calls KeBugCheckEx). On the host the
//! process aborts after printing the code and parameters and the last DbgPrint lines, which is what a crash
//! dump would show first. Aborting, rather than unwinding, matches Windows: nothing after a bugcheck runs.

use crate::log;

/// `KeBugCheckEx`: prints the stop code and aborts the process.
///
/// # Safety
/// Always safe to call; unsafe only because it is an FFI entry point.
#[no_mangle]
pub unsafe extern "system" fn KeBugCheckEx(
    code: u32,
    p1: usize,
    p2: usize,
    p3: usize,
    p4: usize,
) -> ! {
    eprintln!("*** wsk-sim: BUGCHECK {code:#010x} ({p1:#x}, {p2:#x}, {p3:#x}, {p4:#x})");
    let lines = log::log_lines();
    let start = lines.len().saturating_sub(20);
    for line in &lines[start..] {
        eprint!("    | {line}");
        if !line.ends_with('\n') {
            eprintln!();
        }
    }
    std::process::abort()
}
