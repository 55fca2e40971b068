//! System threads: PsCreateSystemThread, ZwWaitForSingleObject and ZwClose on thread handles.
//!
//! A system thread is a host thread. Its handle is the address of a small boxed object listed in a table,
//! so an unknown or already-closed handle is recognised rather than dereferenced. Closing the handle of a
//! thread that still runs detaches it (as on Windows, the thread goes on); it is joined when it ends or at
//! the next reset.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use wsk_sys::{
    KStartRoutine, HANDLE, NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_HANDLE,
    STATUS_INVALID_PARAMETER, STATUS_SUCCESS, STATUS_TIMEOUT,
};

use crate::account::{violation, Rule};
use crate::faults::{self, Fault, Kind};
use crate::kernel::{irql, time};
use crate::sync::{lock, wait_until};

struct SimThread {
    done: Mutex<bool>,
    ended: Condvar,
    join: Mutex<Option<JoinHandle<()>>>,
}

/// Thread handles: handle value -> thread. The handle value is the address of a boxed token owned by the
/// entry, so handle values are unique while open.
static HANDLES: Mutex<Option<BTreeMap<usize, Handle>>> = Mutex::new(None);
/// An open handle: the token whose address is the handle value, and the thread.
type Handle = (Box<u64>, Arc<SimThread>);
/// Threads whose handle was closed while they ran; joined at reset.
static DETACHED: Mutex<Vec<Arc<SimThread>>> = Mutex::new(Vec::new());
static RUNNING: AtomicU64 = AtomicU64::new(0);

/// Thread figures.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub(crate) running: u64,
    pub(crate) handles: u64,
}

pub(crate) fn totals() -> Totals {
    Totals {
        running: RUNNING.load(Ordering::SeqCst),
        handles: lock(&HANDLES).as_ref().map_or(0, |h| h.len() as u64),
    }
}

/// Raw pointer the new thread receives; the client vouches for it being usable there.
struct StartContext(*mut c_void);
// SAFETY: PsCreateSystemThread's contract: the context is handed to the new thread as-is.
unsafe impl Send for StartContext {}

/// `PsCreateSystemThread`: runs `start_routine(start_context)` on a new host thread and returns its handle.
///
/// # Safety
/// `thread_handle` must be writable; `start_routine` must be safe to call with `start_context` on another
/// thread.
#[no_mangle]
pub unsafe extern "system" fn PsCreateSystemThread(
    thread_handle: *mut HANDLE,
    _desired_access: u32,
    _object_attributes: *mut c_void,
    _process_handle: HANDLE,
    _client_id: *mut c_void,
    start_routine: KStartRoutine,
    start_context: *mut c_void,
) -> NTSTATUS {
    irql::require_passive("PsCreateSystemThread");
    if thread_handle.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    if let Some(Fault::Fail(status) | Fault::FailWithoutCompleting(status)) =
        faults::visit("PsCreateSystemThread", Kind::Call)
    {
        return status;
    }
    let thread = Arc::new(SimThread {
        done: Mutex::new(false),
        ended: Condvar::new(),
        join: Mutex::new(None),
    });
    let inner = Arc::clone(&thread);
    let context = StartContext(start_context);
    RUNNING.fetch_add(1, Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name("wsk-sim-system".to_owned())
        .spawn(move || {
            let context = context;
            // SAFETY: the client's start routine and context, as PsCreateSystemThread promises to run them.
            unsafe { start_routine(context.0) };
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            *lock(&inner.done) = true;
            inner.ended.notify_all();
        });
    let Ok(join) = spawned else {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    *lock(&thread.join) = Some(join);
    let token = Box::new(0_u64);
    let handle = &*token as *const u64 as usize;
    lock(&HANDLES)
        .get_or_insert_with(BTreeMap::new)
        .insert(handle, (token, thread));
    // SAFETY: checked non-null; the caller passes a writable HANDLE.
    unsafe { thread_handle.write(handle as HANDLE) };
    STATUS_SUCCESS
}

fn find(handle: HANDLE) -> Option<Arc<SimThread>> {
    lock(&HANDLES)
        .as_ref()
        .and_then(|h| h.get(&(handle as usize)))
        .map(|(_, t)| Arc::clone(t))
}

/// `ZwWaitForSingleObject` on a thread handle: STATUS_SUCCESS once the thread has ended, STATUS_TIMEOUT if
/// `timeout` passes first.
///
/// # Safety
/// `timeout` must be NULL or readable.
#[no_mangle]
pub unsafe extern "system" fn ZwWaitForSingleObject(
    handle: HANDLE,
    _alertable: u8,
    timeout: *mut i64,
) -> NTSTATUS {
    irql::require_passive("ZwWaitForSingleObject");
    let Some(thread) = find(handle) else {
        violation(
            Rule::HandleUnknown,
            format!("ZwWaitForSingleObject({handle:p}): not an open thread handle"),
        );
        return STATUS_INVALID_HANDLE;
    };
    // SAFETY: the caller passes NULL or a readable timeout.
    let deadline = unsafe { time::deadline(timeout) };
    let mut done = lock(&thread.done);
    while !*done {
        let (next, timed_out) = wait_until(&thread.ended, done, deadline);
        done = next;
        if timed_out && !*done {
            return STATUS_TIMEOUT;
        }
    }
    STATUS_SUCCESS
}

/// `ZwClose` on a thread handle. The thread itself goes on if it still runs.
///
/// # Safety
/// Always safe to call; unsafe only because it is an FFI entry point.
#[no_mangle]
pub unsafe extern "system" fn ZwClose(handle: HANDLE) -> NTSTATUS {
    irql::require_passive("ZwClose");
    let Some((_token, thread)) = lock(&HANDLES)
        .as_mut()
        .and_then(|h| h.remove(&(handle as usize)))
    else {
        violation(
            Rule::HandleUnknown,
            format!("ZwClose({handle:p}): not an open handle (closed twice?)"),
        );
        return STATUS_INVALID_HANDLE;
    };
    if *lock(&thread.done) {
        join(&thread);
    } else {
        lock(&DETACHED).push(thread);
    }
    STATUS_SUCCESS
}

fn join(thread: &SimThread) {
    let handle = lock(&thread.join).take();
    if let Some(handle) = handle {
        // The start routine is extern "system" and cannot unwind; an Err here carries nothing to report.
        let _ = handle.join();
    }
}

/// Joins threads that have ended and closes leftover handles. Threads still running are left running
/// (they belong to a test that leaked them; the counts said so).
pub(crate) fn reset() {
    let handles = lock(&HANDLES).take().unwrap_or_default();
    let mut detached = std::mem::take(&mut *lock(&DETACHED));
    detached.extend(handles.into_values().map(|(_, thread)| thread));
    for thread in detached {
        if *lock(&thread.done) {
            join(&thread);
        } else {
            lock(&DETACHED).push(thread);
        }
    }
}
