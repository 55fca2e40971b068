//! `wsk-sim`: a host (Linux) kernel and Winsock Kernel provider for testing `wsk` without Windows.
//!
//! `wsk-sys` declares the `ntoskrnl.exe` and `NETIO.SYS` routines in `extern "system"` blocks that carry no
//! `#[link]` on non-Windows targets. This crate defines every one of them with `#[no_mangle]`, so the runtime
//! and the code its macros generate link against it unchanged; a test only has to mention the crate
//! (`wsk_sim::exclusive()`, or `extern crate wsk_sim;`) for its object code to be linked.
//!
//! # What it is made of
//! - [`kernel`]: pool ([`kernel::pool`]), IRPs with Windows' stack-location layout, `IoCompleteRequest`
//!   logic and IoSetCompletionRoutineEx ([`kernel::irp`]), MDLs ([`kernel::mdl`]), events
//!   ([`kernel::event`]), system threads and their objects ([`kernel::thread`]), device objects
//!   ([`kernel::device`], [`kernel::object`]), queued spin locks ([`kernel::spinlock`]), interrupt time and
//!   `MmGetSystemRoutineAddress` ([`kernel::time`]), and a per-thread IRQL that lets the sim tell a
//!   completion routine from PASSIVE_LEVEL code ([`kernel::irql`]). `DbgPrint` is C (`csrc/dbgprint.c`),
//!   because it is variadic; its lines land in [`log`].
//! - [`kernel::driver`]: driver objects for tests ([`kernel::driver::Driver`]), and when the driver image is
//!   unmapped: Windows does as soon as DriverUnload has returned and its device objects are gone, Wine right
//!   after DriverUnload returns (`FreeLibrary`), and any of the driver's code still running then is a crash
//!   there and a [`Rule::CodeAfterUnload`] here. [`kernel::irql::at_dispatch`] runs test code as client
//!   code at DISPATCH_LEVEL; [`kernel::time::advance`] makes the clock jump.
//! - [`kernel::stack`]: the threads that run client code have a 24 KiB kernel stack in an optimised build
//!   (`cargo test --profile sim-opt`), as on Windows; Wine's are 1 MiB.
//! - [`provider`]: a WSK provider whose sockets are real non-blocking loopback sockets. A call that can finish
//!   at once finishes inside the call; one that would block becomes a *pending operation* served by a worker
//!   thread that `poll(2)`s the socket and an `eventfd(2)`, so `IoCancelIrp` and `WskCloseSocket` interrupt it
//!   at once. Every IRP handed to the provider is tracked from the call until its completion routine returns.
//! - [`config`]: how the provider completes IRPs ([`Completion`]) and which platform it imitates
//!   ([`Config::windows`], [`Config::wine`]: Wine 8's PENDING-after-completion, stubs that never complete the
//!   IRP, no cancel routines, IPv4 only, a close that waits for the socket's completion callbacks, a
//!   crashing IoSetCompletionRoutineEx stub, `wine_ntoskrnl_main_loop` resolvable and no
//!   `KeQueryInterruptTimePrecise`, the image unmapped right after the unload, ...; Windows' IPv6 sockets
//!   start IPv6-only).
//! - [`faults`]: deterministic fault injection by routine name and call count (or seeded at random), and the
//!   counting mode a fault sweep starts from; [`faults::Fault::LateReturn`] turns the unload race into a
//!   deterministic one, and [`faults::Fault::Held`] keeps an IRP out, cancel or close notwithstanding,
//!   until [`faults::release_held`].
//! - [`account`]: live counts ([`counts`]) and the rule violations the sim detected ([`violations`]).
//!
//! # Rules it enforces
//! A WSK client that breaks a rule of `shared/reference/wsk-rules.md` crashes or hangs Windows; here it gets
//! a [`Violation`] instead and, wherever that is possible, the simulation carries on without undefined
//! behaviour: the provider never frees memory the client may still touch (closed sockets stay in a graveyard,
//! IRPs freed while pending are kept until they complete), validates `WSK_BUF`s before reading them, and
//! looks every pointer it is given up in its own tables before using it.
//!
//! # State is process-global
//! Like the kernel it imitates, the simulation is one per process. Tests that use it take
//! [`exclusive`], which serialises them and resets the simulation.
#![cfg(target_os = "linux")]
// The sim writes many fields of client-owned IRPs, MDLs and events through raw pointers; one SAFETY comment
// per block covers the writes to one structure, which keeps the reasoning next to the code it justifies.
#![allow(clippy::multiple_unsafe_ops_per_block)]

pub mod account;
pub mod config;
pub mod faults;
pub mod kernel;
pub mod log;
pub mod provider;
mod signatures;
mod sync;

use std::sync::{Mutex, MutexGuard};

pub use account::{counts, settle, take_violations, violations, Counts, Rule, Violation};
pub use config::{configure, Completion, Config};
pub use log::{log_lines, take_log};

/// Serialises tests that use the simulation and gives each a fresh one.
///
/// The guard is the lock; the simulation is [`reset`] when the guard is taken, so whatever the previous
/// holder left behind (open sockets, leaked pool, a fault plan, a configuration) is gone. A test that
/// panicked while holding it does not poison it for the next.
pub fn exclusive() -> Exclusive {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = sync::lock(&LOCK);
    reset();
    Exclusive { _guard: guard }
}

/// Guard returned by [`exclusive`]; the simulation is the holder's until it is dropped.
#[must_use = "the simulation is only exclusive while the guard lives"]
pub struct Exclusive {
    _guard: MutexGuard<'static, ()>,
}

/// Returns the simulation to its initial state.
///
/// Closes every socket still open (completing their pending IRPs with STATUS_CANCELLED, as close does),
/// waits for the provider's worker threads and joins finished system threads, frees memory the last test
/// leaked (pool, IRPs, socket objects kept to detect use after close), gives back the IRPs
/// [`faults::Fault::Held`] kept (uncompleted), and clears the counts, violations, log, fault plan,
/// configuration and the clock's [`kernel::time::advance`] offset. Call it between tests, after checking
/// [`counts`] and [`violations`]; [`exclusive`] calls it for you.
pub fn reset() {
    kernel::release_holds();
    provider::reset();
    kernel::reset();
    faults::clear();
    config::reset();
    account::reset();
    log::reset();
}

/// Checks that nothing leaked and no rule was broken: every count of [`counts`] that must return to zero
/// did, and [`violations`] is empty. Waits up to two seconds for in-flight completions to settle first.
///
/// # Errors
/// A readable report of each leak and violation.
pub fn check_clean() -> Result<(), String> {
    // Workers deliver their completion and then exit; give the last ones a moment.
    settle(std::time::Duration::from_secs(2));
    let mut report = counts().leaks();
    report.extend(violations().into_iter().map(|v| v.to_string()));
    if report.is_empty() {
        Ok(())
    } else {
        Err(report.join("\n"))
    }
}
