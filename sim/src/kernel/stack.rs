//! Kernel-size stacks for the threads the simulation runs client code on.
//!
//! On x64 Windows a kernel thread has a fixed [`KERNEL_STACK_SIZE`] (24 KiB) stack that cannot grow, and
//! completion routines and event callbacks run on whatever thread (or DPC stack, also 24 KiB) completes
//! them. Running past it is a bugcheck. Wine gives every thread 1 MiB or more, so a driver with a 30 KB
//! frame passes there and crashes Windows. The simulation therefore runs system threads
//! (PsCreateSystemThread) and the provider threads that deliver completions and event callbacks on
//! stacks of [`size`]:
//!
//! - [`KERNEL_STACK_SIZE`] when the simulation is built without `debug_assertions` (an optimised test
//!   build, `cargo test --profile sim-opt`), so that an overflow Windows would bugcheck on is a crash here;
//! - [`DEBUG_STACK_SIZE`] otherwise: unoptimised frames are several times larger than optimised ones (no
//!   inlining, every temporary and every moved future on the stack), so a debug build on 24 KiB would
//!   report overflows no optimised driver has;
//! - `WSK_SIM_STACK` (bytes, read once) overrides both, for experiments.
//!
//! The size is what the thread's entry closure has left: glibc places the thread's static TLS block and
//! its descriptor at the top of the stack it is given, and std adds its own start frames, so that overhead
//! is measured once and added to the request, and a larger stack than asked for (glibc reuses cached
//! stacks up to four times the size) is trimmed by descending to the right depth first. Below the stack
//! is a guard page; running into it makes Rust's handler print "thread '...' has overflowed its stack"
//! and abort, which fails the test.

use std::io;
use std::sync::OnceLock;
use std::thread::JoinHandle;

/// `KERNEL_STACK_SIZE` on x64 Windows: 24 KiB.
pub const KERNEL_STACK_SIZE: usize = 0x6000;

/// The stack of simulated kernel threads in builds with `debug_assertions`: 256 KiB, ten times the kernel
/// size, because unoptimised code needs several times the stack of optimised code.
pub const DEBUG_STACK_SIZE: usize = 256 * 1024;

/// The environment variable that overrides [`size`] (bytes).
pub const STACK_ENV: &str = "WSK_SIM_STACK";

/// The usable stack of the threads the simulation creates for client code: `WSK_SIM_STACK` if set to a
/// number of bytes, else [`KERNEL_STACK_SIZE`] in an optimised build and [`DEBUG_STACK_SIZE`] in a debug
/// build. Read once per process.
#[must_use]
pub fn size() -> usize {
    static SIZE: OnceLock<usize> = OnceLock::new();
    *SIZE.get_or_init(|| {
        let default = if cfg!(debug_assertions) {
            DEBUG_STACK_SIZE
        } else {
            KERNEL_STACK_SIZE
        };
        std::env::var(STACK_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n >= 4096)
            .unwrap_or(default)
    })
}

/// The calling thread's stack: (lowest usable address, one past the highest), from pthread_getattr_np.
fn bounds() -> Option<(usize, usize)> {
    thread_local! {
        static BOUNDS: OnceLock<Option<(usize, usize)>> = const { OnceLock::new() };
    }
    BOUNDS.with(|b| {
        *b.get_or_init(|| {
            // SAFETY: an all-zero pthread_attr_t is a valid out-parameter for pthread_getattr_np, which
            // initialises it; it is destroyed after use.
            unsafe {
                let mut attr: libc::pthread_attr_t = std::mem::zeroed();
                if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                    return None;
                }
                let mut addr: *mut libc::c_void = std::ptr::null_mut();
                let mut len = 0_usize;
                let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut len) == 0;
                libc::pthread_attr_destroy(&mut attr);
                ok.then_some((addr as usize, addr as usize + len))
            }
        })
    })
}

/// An address in the caller's frame.
#[inline(never)]
fn stack_pointer() -> usize {
    let marker = 0_u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// Bytes of stack left below the caller's frame on this thread (None if the bounds cannot be read). A
/// completion routine can call it to see how much of [`size`] the simulation and the client's own frames
/// above it have used.
#[must_use]
pub fn remaining() -> Option<usize> {
    let (low, _) = bounds()?;
    stack_pointer().checked_sub(low)
}

thread_local! {
    /// [`remaining`] when the simulated kernel thread's closure started (0 on other threads).
    static ENTRY: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Bytes of stack used below the entry of the simulated kernel thread this runs on (None on other
/// threads): what the simulation's own frames (and the client's, further down) take of [`size`].
#[must_use]
pub fn used() -> Option<usize> {
    let entry = ENTRY.with(std::cell::Cell::get);
    if entry == 0 {
        return None;
    }
    entry.checked_sub(remaining()?)
}

/// What glibc and std take from the top of a thread's stack before its closure runs (static TLS, the
/// thread descriptor, std's start frames), measured once on a probe thread.
fn overhead() -> usize {
    static OVERHEAD: OnceLock<usize> = OnceLock::new();
    *OVERHEAD.get_or_init(|| {
        let measured = std::thread::Builder::new()
            .name("wsk-sim-stack-probe".to_owned())
            .stack_size(256 * 1024)
            .spawn(|| {
                let (_, high) = bounds()?;
                high.checked_sub(stack_pointer())
            })
            .ok()
            .and_then(|t| t.join().ok())
            .flatten();
        // Without a measurement, assume what glibc 2.3x takes with a few KiB of TLS.
        measured.unwrap_or(8 * 1024)
    })
}

/// Runs `f` once no more than `left` bytes of stack remain below (and at most one frame of this function,
/// about 1 KiB, less): the excess of a larger stack than asked for is spent in frames of this function,
/// above `f`.
#[inline(never)]
fn descend<T>(left: usize, f: impl FnOnce() -> T) -> T {
    let mut pad = [0_u8; 1024];
    std::hint::black_box(&mut pad);
    let result = match remaining() {
        Some(now) if now > left => descend(left, f),
        now => {
            ENTRY.with(|e| e.set(now.unwrap_or(0)));
            f()
        }
    };
    std::hint::black_box(&pad);
    result
}

/// Spawns a simulated kernel thread: `f` runs with [`size`] bytes of stack left (at most; at least 1 KiB
/// less), and the thread's guard page right below them.
///
/// The stack is asked for with room for what glibc and std take first. glibc may hand out a cached stack
/// of up to four times the size asked for; the excess is then spent before `f` runs, so the client never
/// has more than [`size`].
pub(crate) fn spawn<F, T>(name: String, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let left = size();
    std::thread::Builder::new()
        .name(name)
        .stack_size(left + overhead() + 4096)
        .spawn(move || descend(left, f))
}
