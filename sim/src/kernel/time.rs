//! Interrupt time and `MmGetSystemRoutineAddress`.
//!
//! Interrupt time is a monotonic count of 100 ns ticks since the simulation first read the clock. Absolute
//! timeouts (positive values) are read on this same clock.

use std::ffi::c_void;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wsk_sys::UNICODE_STRING;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The interrupt time now, in 100 ns ticks.
#[must_use]
pub fn interrupt_time() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos() / 100).unwrap_or(u64::MAX)
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

/// Turns an NT timeout (`*mut i64` in 100 ns units: negative relative, positive absolute on the interrupt
/// clock, NULL forever) into a deadline.
///
/// # Safety
/// `timeout` must be NULL or readable.
pub(crate) unsafe fn deadline(timeout: *const i64) -> Option<Instant> {
    if timeout.is_null() {
        return None;
    }
    // SAFETY: the caller passes NULL (handled) or a readable i64.
    let value = unsafe { timeout.read_unaligned() };
    let ticks = if value < 0 {
        value.unsigned_abs()
    } else {
        (value as u64).saturating_sub(interrupt_time())
    };
    let wait = Duration::from_nanos(ticks.saturating_mul(100));
    Some(
        Instant::now()
            .checked_add(wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365)),
    )
}

/// `MmGetSystemRoutineAddress`: `KeQueryInterruptTime`, `KeQueryInterruptTimePrecise` and
/// `KeQueryPerformanceCounter`; NULL for every other name (including `ExAllocatePool2`, which Wine 8 lacks
/// too) and for the names in [`crate::Config::missing_routines`].
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
    if crate::config::with(|c| c.missing_routines.iter().any(|m| *m == name)) {
        return std::ptr::null_mut();
    }
    match name.as_str() {
        "KeQueryInterruptTime" => KeQueryInterruptTime as *mut c_void,
        "KeQueryInterruptTimePrecise" => KeQueryInterruptTimePrecise as *mut c_void,
        "KeQueryPerformanceCounter" => KeQueryPerformanceCounter as *mut c_void,
        _ => std::ptr::null_mut(),
    }
}
