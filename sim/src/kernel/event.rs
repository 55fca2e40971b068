//! KEVENT: KeInitializeEvent, KeSetEvent, KeClearEvent, KeWaitForSingleObject (which also waits on thread
//! objects, see [`crate::kernel::thread`]).
//!
//! The event's state lives in the client's KEVENT bytes, laid out like Windows' DISPATCHER_HEADER: `Type`
//! (byte 0: notification or synchronization), `SignalState` (i32 at offset 4, accessed atomically) and the
//! `WaitListHead` (offsets 8 and 16), which KeInitializeEvent points at itself like an empty list. That
//! self-reference is also the check: an event that was never initialised, or was *moved* after
//! initialisation (easy to do in Rust, fatal on Windows, where waiters are linked through it), no longer
//! points at itself and is reported. Waiters block on one process-wide mutex and condition variable; a
//! timeout is measured on the simulated interrupt clock ([`crate::kernel::time`]), so a clock jump ends
//! the waits it takes past their deadline.

use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use wsk_sys::{
    KEVENT, NTSTATUS, STATUS_INVALID_HANDLE, STATUS_SUCCESS, STATUS_TIMEOUT, SYNCHRONIZATION_EVENT,
};

use crate::account::{violation, Rule};
use crate::kernel::time::Deadline;
use crate::kernel::{irql, thread};
use crate::sync::lock;

static LOCK: Mutex<()> = Mutex::new(());
static SIGNALLED: Condvar = Condvar::new();

/// The parts of the KEVENT the simulation uses.
struct View {
    kind: *mut u8,
    signal: *const AtomicI32,
    flink: *const AtomicUsize,
    blink: *const AtomicUsize,
}

/// # Safety
/// `event` must point to 0x18 writable bytes, 8-aligned (a KEVENT).
unsafe fn view(event: *mut KEVENT) -> View {
    let base = event.cast::<u8>();
    // SAFETY: the offsets lie inside the 0x18-byte KEVENT; `AtomicI32`/`AtomicUsize` have the alignment of
    // `i32`/`usize`, which the 8-aligned KEVENT gives at offsets 4, 8 and 16.
    unsafe {
        View {
            kind: base,
            signal: AtomicI32::from_ptr(base.add(4).cast()),
            flink: AtomicUsize::from_ptr(base.add(8).cast()),
            blink: AtomicUsize::from_ptr(base.add(16).cast()),
        }
    }
}

/// Checks the event was initialised where it is now; records a violation if not.
///
/// # Safety
/// As for [`view`].
unsafe fn checked(event: *mut KEVENT, routine: &str) -> Option<View> {
    if event.is_null() || !(event as usize).is_multiple_of(8) {
        violation(
            Rule::EventNotInitialized,
            format!("{routine}({event:p}): not a KEVENT"),
        );
        return None;
    }
    // SAFETY: forwarded caller guarantee.
    let v = unsafe { view(event) };
    let head = event as usize + 8;
    // SAFETY: `view` pointers are valid for the event's lifetime.
    let (flink, blink) = unsafe {
        (
            (*v.flink).load(Ordering::Relaxed),
            (*v.blink).load(Ordering::Relaxed),
        )
    };
    if flink != head || blink != head {
        violation(
            Rule::EventNotInitialized,
            format!("{routine}({event:p}): the KEVENT was not initialised with KeInitializeEvent, or was moved since"),
        );
        return None;
    }
    Some(v)
}

/// The simulated clock jumped ([`crate::kernel::time::advance`]): every timed wait re-reads its deadline.
pub(crate) fn clock_jumped() {
    let _guard = lock(&LOCK);
    SIGNALLED.notify_all();
}

/// `KeInitializeEvent`.
///
/// # Safety
/// `event` must point to a writable KEVENT that stays at this address while it is used.
#[no_mangle]
pub unsafe extern "system" fn KeInitializeEvent(event: *mut KEVENT, event_type: i32, state: u8) {
    if event.is_null() || !(event as usize).is_multiple_of(8) {
        violation(
            Rule::EventNotInitialized,
            format!("KeInitializeEvent({event:p}): not an aligned KEVENT"),
        );
        return;
    }
    let _guard = lock(&LOCK);
    // SAFETY: the caller passes a writable, aligned KEVENT.
    unsafe {
        let v = view(event);
        std::ptr::write_bytes(event.cast::<u8>(), 0, 0x18);
        *v.kind = event_type as u8;
        (*v.signal).store(i32::from(state != 0), Ordering::SeqCst);
        (*v.flink).store(event as usize + 8, Ordering::Relaxed);
        (*v.blink).store(event as usize + 8, Ordering::Relaxed);
    }
}

/// `KeSetEvent`: signals the event and wakes its waiters; returns the previous state.
///
/// # Safety
/// `event` must point to an initialised KEVENT.
#[no_mangle]
pub unsafe extern "system" fn KeSetEvent(event: *mut KEVENT, _increment: i32, _wait: u8) -> i32 {
    let _guard = lock(&LOCK);
    // SAFETY: forwarded caller guarantee.
    let Some(v) = (unsafe { checked(event, "KeSetEvent") }) else {
        return 0;
    };
    // SAFETY: `view` pointers are valid for the event's lifetime.
    let previous = unsafe { (*v.signal).swap(1, Ordering::SeqCst) };
    SIGNALLED.notify_all();
    previous
}

/// `KeClearEvent`.
///
/// # Safety
/// `event` must point to an initialised KEVENT.
#[no_mangle]
pub unsafe extern "system" fn KeClearEvent(event: *mut KEVENT) {
    let _guard = lock(&LOCK);
    // SAFETY: forwarded caller guarantee.
    if let Some(v) = unsafe { checked(event, "KeClearEvent") } {
        // SAFETY: `view` pointers are valid for the event's lifetime.
        unsafe { (*v.signal).store(0, Ordering::SeqCst) };
    }
}

/// `KeWaitForSingleObject` on a KEVENT: STATUS_SUCCESS once signalled (a synchronization event is reset by
/// the wait that sees it), STATUS_TIMEOUT if `timeout` passes first. On a thread object (from
/// ObReferenceObjectByHandle): STATUS_SUCCESS once the thread's start routine has returned. A non-zero wait
/// above PASSIVE_LEVEL is a violation (the wait still happens).
///
/// # Safety
/// `object` must be a thread object or point to an initialised KEVENT; `timeout` must be NULL or readable.
#[no_mangle]
pub unsafe extern "system" fn KeWaitForSingleObject(
    object: *mut c_void,
    _wait_reason: i32,
    _wait_mode: i8,
    _alertable: u8,
    timeout: *mut i64,
) -> NTSTATUS {
    // SAFETY: the caller passes NULL or a readable timeout.
    let deadline = unsafe { Deadline::from_timeout(timeout) };
    // SAFETY: as above.
    let zero_wait = !timeout.is_null() && unsafe { timeout.read_unaligned() } == 0;
    if !zero_wait && irql::current() != irql::PASSIVE_LEVEL {
        violation(
            Rule::WaitAtDispatch,
            format!(
                "KeWaitForSingleObject with a non-zero timeout at DISPATCH_LEVEL ({})",
                irql::reason()
            ),
        );
    }
    if thread::is_object(object) {
        return thread::wait_object(object, deadline);
    }
    let event = object.cast::<KEVENT>();
    let mut guard = lock(&LOCK);
    // SAFETY: forwarded caller guarantee.
    let Some(v) = (unsafe { checked(event, "KeWaitForSingleObject") }) else {
        return STATUS_INVALID_HANDLE;
    };
    loop {
        // SAFETY: `view` pointers are valid for the event's lifetime; `kind` is only written at init.
        let (signalled, synchronization) = unsafe {
            (
                (*v.signal).load(Ordering::SeqCst) != 0,
                i32::from(*v.kind) == SYNCHRONIZATION_EVENT,
            )
        };
        if signalled {
            if synchronization {
                // SAFETY: as above.
                unsafe { (*v.signal).store(0, Ordering::SeqCst) };
            }
            return STATUS_SUCCESS;
        }
        let (next, timed_out) = deadline.wait(&SIGNALLED, guard);
        guard = next;
        if timed_out {
            // SAFETY: as above.
            if unsafe { (*v.signal).load(Ordering::SeqCst) } == 0 {
                return STATUS_TIMEOUT;
            }
        }
    }
}
