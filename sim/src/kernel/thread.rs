//! System threads: PsCreateSystemThread, their handles (ZwWaitForSingleObject, ZwClose) and their thread
//! objects (ObReferenceObjectByHandle, KeWaitForSingleObject, ObfReferenceObject/ObfDereferenceObject).
//!
//! A system thread is a host thread on a kernel-size stack ([`crate::kernel::stack`]). Its handle is the
//! address of a small boxed token listed in a table, so an unknown or already-closed handle is recognised
//! rather than dereferenced. Closing the handle of a thread that still runs detaches it (as on Windows, the
//! thread goes on); it is joined when it ends or at the next reset.
//!
//! Windows wants a driver to wait for its thread through the thread *object*, not through an event the
//! thread sets before returning: the thread still executes the driver's code after setting the event, and
//! the image may be unmapped under it. So the thread counts as client code from PsCreateSystemThread until
//! its start routine has returned; KeWaitForSingleObject on the thread object (and ZwWaitForSingleObject on
//! the handle) returns only once it has returned; and [`crate::faults::Fault::LateReturn`] on
//! `PsCreateSystemThread` holds the thread in its epilogue after the routine returned until someone waits
//! for the thread or the driver's unload has returned, which makes a driver that waits for an event instead
//! fail deterministically with CodeAfterUnload.
//!
//! A handle not marked OBJ_KERNEL_HANDLE lives in the current process's handle table, where user mode can
//! reach it: [`Rule::HandleNotKernel`].
//!
//! The thread object's memory stays until reset; its references (open handles, the client's
//! ObReferenceObjectByHandle / ObfReferenceObject, and the running thread itself) are counted, so a use
//! after the last one is dropped is reported instead of being a use after free.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use wsk_sys::{
    KStartRoutine, HANDLE, NTSTATUS, OBJECT_ATTRIBUTES, OBJ_KERNEL_HANDLE,
    STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
    STATUS_TIMEOUT,
};

use crate::account::{violation, Rule};
use crate::faults::{self, Fault, Kind};
use crate::kernel::irql::{self, Frame};
use crate::kernel::time::Deadline;
use crate::kernel::{driver, stack};
use crate::sync::lock;

/// `ThreadObject`, the dispatcher type of a KTHREAD.
const THREAD_OBJECT_TYPE: u8 = 6;

/// The memory a thread object pointer points at: a DISPATCHER_HEADER (type byte set) and room after it.
#[repr(C, align(16))]
struct ThreadObject {
    header: [u8; 0x30],
}

#[derive(Default)]
struct Refs {
    handles: u32,
    client: u32,
    running: bool,
}

impl Refs {
    fn alive(&self) -> bool {
        self.handles > 0 || self.client > 0 || self.running
    }

    fn count(&self) -> isize {
        self.handles as isize + self.client as isize + isize::from(self.running)
    }
}

struct SimThread {
    id: u64,
    object: Box<ThreadObject>,
    done: Mutex<bool>,
    ended: Condvar,
    join: Mutex<Option<JoinHandle<()>>>,
    refs: Mutex<Refs>,
    /// Someone waits for the thread to end: a late-return hold lets it finish.
    waited: AtomicBool,
}

impl SimThread {
    fn object_address(&self) -> usize {
        &*self.object as *const ThreadObject as usize
    }

    /// Waits (until `deadline`) for the start routine to have returned; true if it has.
    fn wait(&self, deadline: Deadline) -> bool {
        self.waited.store(true, Ordering::SeqCst);
        driver::wake();
        let mut done = lock(&self.done);
        while !*done {
            let (next, timed_out) = deadline.wait(&self.ended, done);
            done = next;
            if timed_out && !*done {
                return false;
            }
        }
        true
    }
}

/// Thread handles: handle value -> thread. The handle value is the address of a boxed token owned by the
/// entry, so handle values are unique while open.
static HANDLES: Mutex<Option<BTreeMap<usize, Handle>>> = Mutex::new(None);
/// An open handle: the token whose address is the handle value, and the thread.
type Handle = (Box<u64>, Arc<SimThread>);
/// Every thread object by address, kept until reset.
static OBJECTS: Mutex<Option<BTreeMap<usize, Arc<SimThread>>>> = Mutex::new(None);
/// Threads whose handle was closed while they ran; joined at reset.
static DETACHED: Mutex<Vec<Arc<SimThread>>> = Mutex::new(Vec::new());
static RUNNING: AtomicU64 = AtomicU64::new(0);
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Thread figures.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub(crate) running: u64,
    pub(crate) handles: u64,
    /// References the client took on thread objects and has not dropped.
    pub(crate) client_refs: u64,
}

pub(crate) fn totals() -> Totals {
    let client_refs = lock(&OBJECTS)
        .iter()
        .flat_map(BTreeMap::values)
        .map(|t| u64::from(lock(&t.refs).client))
        .sum();
    Totals {
        running: RUNNING.load(Ordering::SeqCst),
        handles: lock(&HANDLES).as_ref().map_or(0, |h| h.len() as u64),
        client_refs,
    }
}

/// Raw pointer the new thread receives; the client vouches for it being usable there.
struct StartContext(*mut c_void);
// SAFETY: PsCreateSystemThread's contract: the context is handed to the new thread as-is.
unsafe impl Send for StartContext {}

/// Checks that the handle PsCreateSystemThread is asked for is a kernel handle.
///
/// # Safety
/// `attributes` must be NULL or readable.
unsafe fn check_kernel_handle(attributes: *const OBJECT_ATTRIBUTES) {
    let problem = if attributes.is_null() {
        Some("NULL ObjectAttributes".to_owned())
    } else {
        // SAFETY: the caller passes NULL (handled) or a readable OBJECT_ATTRIBUTES.
        let flags = unsafe { attributes.read_unaligned() }.Attributes;
        (flags & OBJ_KERNEL_HANDLE == 0)
            .then(|| format!("ObjectAttributes without OBJ_KERNEL_HANDLE (Attributes {flags:#x})"))
    };
    if let Some(problem) = problem {
        violation(
            Rule::HandleNotKernel,
            format!(
                "PsCreateSystemThread with {problem}: the thread handle goes into the current process's handle \
                 table, where user mode can reach it (InitializeObjectAttributes with OBJ_KERNEL_HANDLE)"
            ),
        );
    }
}

/// `PsCreateSystemThread`: runs `start_routine(start_context)` on a new host thread with a kernel-size
/// stack and returns its handle. The handle must be asked for with OBJ_KERNEL_HANDLE.
///
/// # Safety
/// `thread_handle` must be writable; `object_attributes` NULL or readable; `start_routine` must be safe to
/// call with `start_context` on another thread.
#[no_mangle]
pub unsafe extern "system" fn PsCreateSystemThread(
    thread_handle: *mut HANDLE,
    _desired_access: u32,
    object_attributes: *mut OBJECT_ATTRIBUTES,
    _process_handle: HANDLE,
    _client_id: *mut c_void,
    start_routine: KStartRoutine,
    start_context: *mut c_void,
) -> NTSTATUS {
    irql::require_passive("PsCreateSystemThread");
    if thread_handle.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded caller guarantee.
    unsafe { check_kernel_handle(object_attributes) };
    let late = match faults::visit("PsCreateSystemThread", Kind::Call) {
        Some(Fault::Fail(status) | Fault::FailWithoutCompleting(status)) => return status,
        Some(Fault::LateReturn) => true,
        _ => false,
    };
    let mut object = Box::new(ThreadObject { header: [0; 0x30] });
    object.header[0] = THREAD_OBJECT_TYPE;
    let thread = Arc::new(SimThread {
        id: NEXT.fetch_add(1, Ordering::Relaxed),
        object,
        done: Mutex::new(false),
        ended: Condvar::new(),
        join: Mutex::new(None),
        refs: Mutex::new(Refs {
            handles: 1,
            client: 0,
            running: true,
        }),
        waited: AtomicBool::new(false),
    });
    let inner = Arc::clone(&thread);
    let context = StartContext(start_context);
    RUNNING.fetch_add(1, Ordering::SeqCst);
    // The thread counts as executing the driver's code from now on, started or not.
    const NAME: &str = "wsk-sim-system";
    let frame = Frame::SystemThread { thread: thread.id };
    let registration = driver::code_entered_on(frame, NAME);
    let spawned = stack::spawn(NAME.to_owned(), move || {
        let context = context;
        {
            let frame = irql::enter_registered(frame, registration);
            // SAFETY: the client's start routine and context, as PsCreateSystemThread promises to run them.
            unsafe { start_routine(context.0) };
            if late {
                frame.hold_epilogue(&|| inner.waited.load(Ordering::SeqCst));
            }
        }
        lock(&inner.refs).running = false;
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        *lock(&inner.done) = true;
        inner.ended.notify_all();
    });
    let Ok(join) = spawned else {
        driver::code_left(registration);
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    *lock(&thread.join) = Some(join);
    lock(&OBJECTS)
        .get_or_insert_with(BTreeMap::new)
        .insert(thread.object_address(), Arc::clone(&thread));
    let token = Box::new(0_u64);
    let handle = &*token as *const u64 as usize;
    lock(&HANDLES)
        .get_or_insert_with(BTreeMap::new)
        .insert(handle, (token, thread));
    // SAFETY: checked non-null; the caller passes a writable HANDLE.
    unsafe { thread_handle.write(handle as HANDLE) };
    STATUS_SUCCESS
}

/// The simulated clock jumped ([`crate::kernel::time::advance`]): waits for threads re-read their deadline.
pub(crate) fn clock_jumped() {
    let mut threads: Vec<Arc<SimThread>> = lock(&OBJECTS)
        .iter()
        .flat_map(BTreeMap::values)
        .map(Arc::clone)
        .collect();
    threads.extend(
        lock(&HANDLES)
            .iter()
            .flat_map(BTreeMap::values)
            .map(|(_, t)| Arc::clone(t)),
    );
    for thread in threads {
        let _done = lock(&thread.done);
        thread.ended.notify_all();
    }
}

fn find(handle: HANDLE) -> Option<Arc<SimThread>> {
    lock(&HANDLES)
        .as_ref()
        .and_then(|h| h.get(&(handle as usize)))
        .map(|(_, t)| Arc::clone(t))
}

fn find_object(object: *mut c_void) -> Option<Arc<SimThread>> {
    lock(&OBJECTS)
        .as_ref()
        .and_then(|o| o.get(&(object as usize)))
        .map(Arc::clone)
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
    let deadline = unsafe { Deadline::from_timeout(timeout) };
    if thread.wait(deadline) {
        STATUS_SUCCESS
    } else {
        STATUS_TIMEOUT
    }
}

/// Whether `object` is a thread object (KeWaitForSingleObject tells them from events with it).
pub(crate) fn is_object(object: *mut c_void) -> bool {
    lock(&OBJECTS)
        .as_ref()
        .is_some_and(|o| o.contains_key(&(object as usize)))
}

/// KeWaitForSingleObject on a thread object: STATUS_SUCCESS once its start routine has returned,
/// STATUS_TIMEOUT if `deadline` passes first.
pub(crate) fn wait_object(object: *mut c_void, deadline: Deadline) -> NTSTATUS {
    let Some(thread) = find_object(object) else {
        return STATUS_INVALID_HANDLE;
    };
    if !lock(&thread.refs).alive() {
        violation(
            Rule::ObjectUnknown,
            format!(
                "KeWaitForSingleObject({object:p}): thread object #{} after its last reference was dropped \
                 (Windows has freed it)",
                thread.id
            ),
        );
    }
    if thread.wait(deadline) {
        STATUS_SUCCESS
    } else {
        STATUS_TIMEOUT
    }
}

/// `ObReferenceObjectByHandle` on a thread handle: the referenced thread object. `object_type` may be NULL;
/// any other handle is STATUS_INVALID_HANDLE and [`Rule::HandleUnknown`].
///
/// # Safety
/// `object` must be NULL or writable.
#[no_mangle]
pub unsafe extern "system" fn ObReferenceObjectByHandle(
    handle: HANDLE,
    _access: u32,
    _object_type: *mut c_void,
    _access_mode: i8,
    object: *mut *mut c_void,
    _handle_info: *mut c_void,
) -> NTSTATUS {
    irql::require_passive("ObReferenceObjectByHandle");
    if object.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: checked non-null; the caller passes a writable pointer (Windows clears it on failure).
    unsafe { object.write(std::ptr::null_mut()) };
    let Some(thread) = find(handle) else {
        violation(
            Rule::HandleUnknown,
            format!("ObReferenceObjectByHandle({handle:p}): not an open thread handle"),
        );
        return STATUS_INVALID_HANDLE;
    };
    lock(&thread.refs).client += 1;
    // SAFETY: as above.
    unsafe { object.write(thread.object_address() as *mut c_void) };
    STATUS_SUCCESS
}

/// ObfReferenceObject on a thread object: the new count, or None when `object` is none.
pub(crate) fn reference(object: *mut c_void) -> Option<isize> {
    let thread = find_object(object)?;
    let mut refs = lock(&thread.refs);
    if !refs.alive() {
        drop(refs);
        violation(
            Rule::ObjectUnknown,
            format!(
                "ObfReferenceObject({object:p}): thread object #{} after its last reference was dropped",
                thread.id
            ),
        );
        return Some(0);
    }
    refs.client += 1;
    Some(refs.count())
}

/// ObfDereferenceObject on a thread object: the new count, or None when `object` is none. Dropping a
/// reference the client never took is [`Rule::ObjectOverDereferenced`] and changes nothing.
pub(crate) fn dereference(object: *mut c_void) -> Option<isize> {
    let thread = find_object(object)?;
    let mut refs = lock(&thread.refs);
    if refs.client == 0 {
        let count = refs.count();
        drop(refs);
        violation(
            Rule::ObjectOverDereferenced,
            format!(
                "ObfDereferenceObject({object:p}): the driver holds no reference to thread object #{} \
                 (ObReferenceObjectByHandle or ObfReferenceObject first)",
                thread.id
            ),
        );
        return Some(count);
    }
    refs.client -= 1;
    Some(refs.count())
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
    {
        let mut refs = lock(&thread.refs);
        refs.handles = refs.handles.saturating_sub(1);
    }
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
    let objects = lock(&OBJECTS).take().unwrap_or_default();
    let mut detached = std::mem::take(&mut *lock(&DETACHED));
    detached.extend(handles.into_values().map(|(_, thread)| thread));
    detached.extend(objects.into_values());
    for thread in detached {
        if *lock(&thread.done) {
            join(&thread);
        } else {
            lock(&DETACHED).push(thread);
        }
    }
}

/// `PsGetCurrentThreadId`: a unique, non-zero id of the calling host thread.
#[no_mangle]
pub extern "system" fn PsGetCurrentThreadId() -> HANDLE {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    ID.with(|id| *id as usize as HANDLE)
}
