//! Interrupt time, simulated clock jumps, and `MmGetSystemRoutineAddress`.
//!
//! Interrupt time is a monotonic count of 100 ns ticks since the simulation first read the clock, plus an
//! offset that [`advance`] raises at once: a simulated clock jump (a resume from sleep, a VM paused, a
//! debugger break), so that a test can show that no deadline of the client fires on one without waiting
//! for it in real time. `KeQueryInterruptTime`, `KeQueryInterruptTimePrecise` and
//! `KeQueryPerformanceCounter` all read this clock, and timed waits (KeWaitForSingleObject,
//! ZwWaitForSingleObject) measure their timeouts on it: absolute timeouts (positive values) are instants of
//! it, relative ones (negative) start from its reading when the wait begins, and [`advance`] wakes every
//! timed waiter, so a wait whose simulated deadline the jump passed returns STATUS_TIMEOUT at once.
//! [`crate::reset`] puts the offset back to zero.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use wsk_sys::{HANDLE, NTSTATUS, STATUS_NOT_IMPLEMENTED, UNICODE_STRING};

use crate::account::{violation, Rule};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Ticks [`advance`] added since the reset.
static OFFSET: AtomicU64 = AtomicU64::new(0);

/// The interrupt time now, in 100 ns ticks: real time since the simulation first read the clock, plus every
/// [`advance`] since the reset.
#[must_use]
pub fn interrupt_time() -> u64 {
    let real = u64::try_from(epoch().elapsed().as_nanos() / 100).unwrap_or(u64::MAX);
    real.saturating_add(OFFSET.load(Ordering::SeqCst))
}

/// Moves the simulated clock forward by `d` at once, for every later read of the interrupt time and the
/// performance counter, and wakes every timed wait so that one whose deadline is now past returns
/// STATUS_TIMEOUT promptly. The clock never goes back, except at [`crate::reset`].
pub fn advance(d: Duration) {
    let ticks = u64::try_from(d.as_nanos() / 100).unwrap_or(u64::MAX);
    let _ = OFFSET.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |o| {
        Some(o.saturating_add(ticks))
    });
    crate::log::note(&format!("clock advanced by {d:?}"));
    super::event::clock_jumped();
    super::thread::clock_jumped();
}

/// How far [`advance`] has moved the clock since the reset.
#[must_use]
pub fn advanced() -> Duration {
    Duration::from_nanos(OFFSET.load(Ordering::SeqCst).saturating_mul(100))
}

pub(crate) fn reset() {
    OFFSET.store(0, Ordering::SeqCst);
}

/// `KeQueryInterruptTime`, returned by `MmGetSystemRoutineAddress`.
#[allow(non_snake_case)]
pub extern "system" fn KeQueryInterruptTime() -> u64 {
    interrupt_time()
}

/// `KeQueryInterruptTimePrecise`, returned by `MmGetSystemRoutineAddress`; also stores the time in
/// `qpc_time_stamp` when it is not NULL.
///
/// # Safety
/// `qpc_time_stamp` must be NULL or writable.
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeQueryInterruptTimePrecise(qpc_time_stamp: *mut u64) -> u64 {
    let now = interrupt_time();
    if !qpc_time_stamp.is_null() {
        // SAFETY: the caller passes NULL or a writable u64.
        unsafe { qpc_time_stamp.write_unaligned(now) };
    }
    now
}

/// Performance counter frequency: 10 MHz, so one count is one 100 ns tick.
pub const PERFORMANCE_FREQUENCY: i64 = 10_000_000;

/// `KeQueryPerformanceCounter`, returned by `MmGetSystemRoutineAddress`: the interrupt time, at
/// [`PERFORMANCE_FREQUENCY`] (stored in `performance_frequency` when it is not NULL).
///
/// # Safety
/// `performance_frequency` must be NULL or writable.
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeQueryPerformanceCounter(performance_frequency: *mut i64) -> i64 {
    if !performance_frequency.is_null() {
        // SAFETY: the caller passes NULL or a writable i64.
        unsafe { performance_frequency.write_unaligned(PERFORMANCE_FREQUENCY) };
    }
    i64::try_from(interrupt_time()).unwrap_or(i64::MAX)
}

/// The deadline of a timed wait, on the simulated interrupt clock (`None`: forever).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(Option<u64>);

impl Deadline {
    /// Turns an NT timeout (`*mut i64` in 100 ns units: negative relative to now, positive absolute on the
    /// interrupt clock, NULL forever) into a deadline.
    ///
    /// # Safety
    /// `timeout` must be NULL or readable.
    pub(crate) unsafe fn from_timeout(timeout: *const i64) -> Self {
        if timeout.is_null() {
            return Self(None);
        }
        // SAFETY: the caller passes NULL (handled) or a readable i64.
        let value = unsafe { timeout.read_unaligned() };
        Self(Some(if value < 0 {
            interrupt_time().saturating_add(value.unsigned_abs())
        } else {
            value as u64
        }))
    }

    /// Waits on `cv` until it is notified or the deadline passes, whichever is first (spurious wake-ups
    /// included, so callers loop). Returns the guard and whether the deadline has passed. A clock jump
    /// ([`advance`]) notifies every condition variable a timed wait uses, which brings the waiter back here
    /// to find its deadline passed.
    pub(crate) fn wait<'a, T>(
        self,
        cv: &Condvar,
        guard: MutexGuard<'a, T>,
    ) -> (MutexGuard<'a, T>, bool) {
        let Some(at) = self.0 else {
            return (
                cv.wait(guard).unwrap_or_else(PoisonError::into_inner),
                false,
            );
        };
        let now = interrupt_time();
        if now >= at {
            return (guard, true);
        }
        // Real time runs at the simulated clock's pace between jumps; cap the slice so that a wait far in
        // the future does not overflow an Instant.
        let left =
            Duration::from_nanos((at - now).saturating_mul(100)).min(Duration::from_secs(86_400));
        let (guard, _) = cv
            .wait_timeout(guard, left)
            .unwrap_or_else(PoisonError::into_inner);
        (guard, interrupt_time() >= at)
    }
}

/// `wine_ntoskrnl_main_loop`, which MmGetSystemRoutineAddress resolves where
/// [`crate::Config::system_routines`] lists it (Wine): winedevice.exe's entry into ntoskrnl.exe. A driver
/// may look it up to detect Wine; calling it is [`Rule::WineStub`] (and STATUS_NOT_IMPLEMENTED here).
#[allow(non_snake_case)]
pub extern "system" fn wine_ntoskrnl_main_loop(_stop_event: HANDLE) -> NTSTATUS {
    violation(
        Rule::WineStub,
        "wine_ntoskrnl_main_loop called: it is winedevice.exe's own entry into Wine's ntoskrnl (it runs the \
         driver host's main loop); a driver may only resolve it to detect Wine"
            .to_owned(),
    );
    STATUS_NOT_IMPLEMENTED
}

/// The names MmGetSystemRoutineAddress can resolve, with their addresses; which of them it does resolve is
/// [`crate::Config::system_routines`] (minus [`crate::Config::missing_routines`]).
pub const RESOLVABLE: &[&str] = &[
    "KeQueryInterruptTime",
    "KeQueryInterruptTimePrecise",
    "KeQueryPerformanceCounter",
    "wine_ntoskrnl_main_loop",
];

fn address_of(name: &str) -> *mut c_void {
    match name {
        "KeQueryInterruptTime" => KeQueryInterruptTime as *mut c_void,
        "KeQueryInterruptTimePrecise" => KeQueryInterruptTimePrecise as *mut c_void,
        "KeQueryPerformanceCounter" => KeQueryPerformanceCounter as *mut c_void,
        "wine_ntoskrnl_main_loop" => wine_ntoskrnl_main_loop as *mut c_void,
        _ => std::ptr::null_mut(),
    }
}

/// `MmGetSystemRoutineAddress`: the routines of [`RESOLVABLE`] that [`crate::Config::system_routines`]
/// lists and [`crate::Config::missing_routines`] does not (Windows: `KeQueryInterruptTime`,
/// `KeQueryInterruptTimePrecise`, `KeQueryPerformanceCounter`; Wine 8.0: no `KeQueryInterruptTimePrecise`,
/// but `wine_ntoskrnl_main_loop`); NULL for every other name (including `ExAllocatePool2`, which Wine 8
/// lacks too).
///
/// # Safety
/// `name` must be NULL or point to a valid UNICODE_STRING.
#[no_mangle]
pub unsafe extern "system" fn MmGetSystemRoutineAddress(
    name: *const UNICODE_STRING,
) -> *mut c_void {
    if name.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: the caller passes a valid UNICODE_STRING.
    let (buffer, length) = unsafe { ((*name).Buffer, usize::from((*name).Length) / 2) };
    if buffer.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: a valid UNICODE_STRING's Buffer holds Length bytes.
    let units = unsafe { std::slice::from_raw_parts(buffer, length) };
    let name = String::from_utf16_lossy(units);
    if !crate::config::with(|c| c.resolves(&name)) {
        return std::ptr::null_mut();
    }
    address_of(&name)
}
