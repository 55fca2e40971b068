//! Driver and device objects, IoSetCompletionRoutineEx, IofCompleteRequest, thread objects, and the unmapping
//! of the driver image: code still running (or entered) after it is a violation, and Fault::LateReturn
//! makes the race that leads there deterministic.
// Test code: unwrap/panic are how tests fail, and the unsafe blocks are calls into the simulation's FFI
// with arguments built right there, exactly as a driver makes them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::undocumented_unsafe_blocks
)]

mod common;

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicI64, AtomicPtr, AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use common::*;
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_sim::kernel::driver::Driver;
use wsk_sim::{Config, Rule};
use wsk_sys::*;

/// The test driver's device object.
static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(null_mut());
/// IRPs the test driver has in flight. Its completion routine decrements it as its last store, and its
/// unload returns as soon as it reads zero: the pattern IoSetCompletionRoutineEx exists to make safe.
static OUTSTANDING: AtomicU32 = AtomicU32::new(0);
/// `devices_live` as the driver's unload saw it just before returning (-1: not run).
static DEVICES_AT_UNLOAD: AtomicI64 = AtomicI64::new(-1);

/// DriverEntry: one unnamed device object, and the unload routine.
unsafe extern "system" fn entry(
    driver: *mut DRIVER_OBJECT,
    _path: *const UNICODE_STRING,
) -> NTSTATUS {
    let mut device = null_mut();
    let status = unsafe {
        IoCreateDevice(
            driver,
            0,
            null_mut(),
            FILE_DEVICE_NETWORK,
            FILE_DEVICE_SECURE_OPEN,
            0,
            &mut device,
        )
    };
    if !nt_success(status) {
        return status;
    }
    DEVICE.store(device, SeqCst);
    unsafe { (*driver).DriverUnload = Some(unload) };
    STATUS_SUCCESS
}

/// DriverUnload: waits for its own counter, deletes the device, returns.
unsafe extern "system" fn unload(_driver: *mut DRIVER_OBJECT) {
    poll_until("the driver's IRPs", || OUTSTANDING.load(SeqCst) == 0);
    unsafe { IoDeleteDevice(DEVICE.swap(null_mut(), SeqCst)) };
    DEVICES_AT_UNLOAD.store(wsk_sim::counts().devices_live as i64, SeqCst);
}

/// Completion routine: frees the IRP, then decrements the counter (its last store).
unsafe extern "system" fn on_done(_d: *mut c_void, irp: *mut IRP, _ctx: *mut c_void) -> NTSTATUS {
    unsafe { IoFreeIrp(irp) };
    OUTSTANDING.fetch_sub(1, SeqCst);
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Loads the test driver through a fresh driver object.
fn load() -> Driver {
    OUTSTANDING.store(0, SeqCst);
    DEVICES_AT_UNLOAD.store(-1, SeqCst);
    let driver = Driver::new();
    assert_eq!(unsafe { driver.call_entry(entry) }, STATUS_SUCCESS);
    assert_eq!(wsk_sim::counts().devices_live, 1);
    driver
}

/// An IRP of the test driver with `on_done` as its completion routine, set plainly or with
/// IoSetCompletionRoutineEx on the driver's device.
fn driver_irp(ex: bool) -> *mut IRP {
    let irp = unsafe { IoAllocateIrp(1, 0) };
    assert!(!irp.is_null());
    OUTSTANDING.fetch_add(1, SeqCst);
    if ex {
        let status = unsafe {
            IoSetCompletionRoutineEx(DEVICE.load(SeqCst), irp, on_done, null_mut(), 1, 1, 1)
        };
        assert_eq!(status, STATUS_SUCCESS);
    } else {
        unsafe { io_set_completion_routine(irp, on_done, null_mut()) };
    }
    irp
}

/// The violations recorded, which must be exactly one CodeAfterUnload naming `frame`.
fn expect_code_after_unload(frame: &str) {
    let v = wsk_sim::take_violations();
    assert!(
        v.len() == 1 && v[0].rule == Rule::CodeAfterUnload && v[0].message.contains(frame),
        "expected one CodeAfterUnload naming {frame:?}, got {v:#?}"
    );
}

/// Runs the test driver through a WskBind whose completion returns late, and unloads it.
fn late_bind_then_unload(ex: bool) -> Driver {
    let driver = load();
    let client = Client::new();
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    faults::set_plan(Plan::new().with(Point::Routine("WskBind"), When::Nth(1), Fault::LateReturn));
    let irp = driver_irp(ex);
    let mut a = sockaddr(loopback(AF_INET, 0));
    let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, irp) };
    assert_eq!(
        r, STATUS_PENDING,
        "LateReturn completes on a worker, never inline"
    );
    poll_until("the completion routine", || OUTSTANDING.load(SeqCst) == 0);
    assert_eq!(faults::fired().len(), 1);
    assert_eq!(close(l), STATUS_SUCCESS);
    client.shutdown();
    assert!(unsafe { driver.unload() });
    driver
}

#[test]
fn late_return_of_a_plain_completion_routine_is_code_after_unload() {
    let _sim = wsk_sim::exclusive();
    let driver = late_bind_then_unload(false);
    assert_eq!(DEVICES_AT_UNLOAD.load(SeqCst), 0);
    expect_code_after_unload("the completion routine of WskBind");
    assert!(driver.is_unmapped());
    assert_clean();
}

#[test]
fn late_return_of_an_ex_completion_routine_keeps_the_image_mapped() {
    let _sim = wsk_sim::exclusive();
    let driver = late_bind_then_unload(true);
    assert_eq!(
        DEVICES_AT_UNLOAD.load(SeqCst),
        1,
        "deleted, but referenced by the IoSetCompletionRoutineEx context until the epilogue is over"
    );
    assert!(wsk_sim::settle(Duration::from_secs(5)));
    assert!(driver.is_unmapped(), "unmapped once the context let go");
    let c = wsk_sim::counts();
    assert_eq!((c.devices_live, c.completion_contexts_live), (0, 0));
    assert_clean();
}

/// A pending WskAccept under LateReturn, cancelled by closing its listener (what a runtime's shutdown
/// does): the cancellation too completes on a worker, the close does not wait for the hold, and only the
/// Ex routine survives the unload.
fn late_accept_closed(ex: bool) {
    let _sim = wsk_sim::exclusive();
    let driver = load();
    let client = Client::new();
    let (l, _) = listener(&client, AF_INET);
    faults::set_plan(Plan::new().with(
        Point::Routine("WskAccept"),
        When::Nth(1),
        Fault::LateReturn,
    ));
    let irp = driver_irp(ex);
    let r = unsafe {
        (listen(l).WskAccept)(
            l,
            0,
            null_mut(),
            std::ptr::null(),
            null_mut(),
            null_mut(),
            irp,
        )
    };
    assert_eq!(r, STATUS_PENDING);
    assert_eq!(
        close(l),
        STATUS_SUCCESS,
        "close returns although the completion is held"
    );
    assert_eq!(
        OUTSTANDING.load(SeqCst),
        0,
        "close waited for the routine itself"
    );
    client.shutdown();
    assert!(unsafe { driver.unload() });
    if ex {
        assert!(wsk_sim::settle(Duration::from_secs(5)));
        assert!(driver.is_unmapped());
    } else {
        expect_code_after_unload("the completion routine of WskAccept");
    }
    assert_clean();
}

#[test]
fn late_return_of_a_cancelled_accept_plain() {
    late_accept_closed(false);
}

#[test]
fn late_return_of_a_cancelled_accept_ex() {
    late_accept_closed(true);
}

#[test]
fn late_return_hold_is_capped() {
    let _sim = wsk_sim::exclusive();
    let mut config = Config::windows();
    config.late_return_cap = Duration::from_millis(50);
    wsk_sim::configure(config);
    let driver = load();
    let client = Client::new();
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    faults::set_plan(Plan::new().with(Point::Routine("WskBind"), When::Every, Fault::LateReturn));
    let irp = driver_irp(false);
    let mut a = sockaddr(loopback(AF_INET, 0));
    let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, irp) };
    assert_eq!(r, STATUS_PENDING);
    // Nobody unloads: the worker gives up after the cap.
    assert!(wsk_sim::settle(Duration::from_secs(5)));
    expect_violation(Rule::LateReturnTimeout);
    close(l);
    client.shutdown();
    assert!(unsafe { driver.unload() });
    assert!(driver.is_unmapped());

    // Without a driver object there is no unload to wait for: reported at once.
    assert_clean();
    wsk_sim::reset();
    let client = Client::new();
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    faults::set_plan(Plan::new().with(Point::Routine("WskBind"), When::Every, Fault::LateReturn));
    let req = Req::new();
    let mut a = sockaddr(loopback(AF_INET, 0));
    let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, req.irp) };
    assert_eq!(req.wait(r).0, STATUS_SUCCESS);
    assert!(wsk_sim::settle(Duration::from_secs(5)));
    expect_violation(Rule::LateReturnTimeout);
    close(l);
    drop(req);
    client.shutdown();
    assert_clean();
}

#[test]
fn client_code_entered_after_unmapping() {
    let _sim = wsk_sim::exclusive();
    let driver = load();
    assert!(unsafe { driver.unload() });
    assert!(driver.is_unmapped());
    assert!(wsk_sim::violations().is_empty());
    // An IRP the driver forgot, completed after its image is gone.
    let req = Req::new();
    unsafe {
        (*req.irp).IoStatus.Status = STATUS_CANCELLED;
        io_set_next_irp_stack_location(req.irp);
        IofCompleteRequest(req.irp, 0);
    }
    expect_code_after_unload("the completion routine of IofCompleteRequest");
    assert!(req.completed());
    drop(req);
    assert_clean();
}

#[test]
fn device_objects_and_their_references() {
    let _sim = wsk_sim::exclusive();
    let mut device = null_mut();
    let status = unsafe {
        IoCreateDevice(
            null_mut(),
            0,
            null_mut(),
            FILE_DEVICE_NETWORK,
            0,
            0,
            &mut device,
        )
    };
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    assert!(device.is_null());
    expect_violation(Rule::DriverUnknown);

    let driver = Driver::new();
    let object = driver.object();
    let (mut first, mut second) = (null_mut(), null_mut());
    unsafe {
        assert_eq!(
            IoCreateDevice(
                object,
                64,
                null_mut(),
                FILE_DEVICE_NETWORK,
                0,
                0,
                &mut first
            ),
            STATUS_SUCCESS
        );
        assert_eq!(
            IoCreateDevice(
                object,
                0,
                null_mut(),
                FILE_DEVICE_NETWORK,
                0,
                0,
                &mut second
            ),
            STATUS_SUCCESS
        );
        assert_eq!(
            (*object).DeviceObject,
            second.cast(),
            "the newest device heads the driver's list"
        );
    }
    assert_eq!(wsk_sim::counts().devices_live, 2);
    assert!(wsk_sim::counts()
        .leaks()
        .iter()
        .any(|l| l.contains("device objects live")));

    // A reference outlives IoDeleteDevice; the device goes with the last one.
    assert_eq!(unsafe { ObfReferenceObject(first.cast()) }, 2);
    assert_eq!(wsk_sim::counts().object_references, 1);
    unsafe { IoDeleteDevice(first) };
    assert_eq!(wsk_sim::counts().devices_live, 2, "deleted but referenced");
    unsafe { assert_eq!((*object).DeviceObject, second.cast()) };
    driver.mark_unload_returned();
    assert!(!driver.is_unmapped(), "device objects are left");
    unsafe { IoDeleteDevice(second) };
    unsafe { assert!((*object).DeviceObject.is_null()) };
    assert!(!driver.is_unmapped(), "the first one is still referenced");
    assert_eq!(unsafe { ObfDereferenceObject(first.cast()) }, 0);
    assert_eq!(wsk_sim::counts().devices_live, 0);
    assert!(driver.is_unmapped());

    // Misuse.
    unsafe { IoDeleteDevice(second) };
    expect_violation(Rule::DeviceUnknown);
    assert_eq!(unsafe { ObfReferenceObject(first.cast()) }, 0);
    expect_violation(Rule::ObjectUnknown);
    let mut third = null_mut();
    let driver = Driver::new();
    unsafe {
        assert_eq!(
            IoCreateDevice(
                driver.object(),
                0,
                null_mut(),
                FILE_DEVICE_NETWORK,
                0,
                0,
                &mut third
            ),
            STATUS_SUCCESS
        );
        assert_eq!(ObfDereferenceObject(third.cast()), 1, "nothing changes");
    }
    expect_violation(Rule::ObjectOverDereferenced);
    let mut unknown = 0_u64;
    assert_eq!(unsafe { ObfReferenceObject((&raw mut unknown).cast()) }, 0);
    expect_violation(Rule::ObjectUnknown);
    unsafe { IoDeleteDevice(third) };
    assert_clean();
}

#[test]
fn io_create_device_fault() {
    let _sim = wsk_sim::exclusive();
    faults::set_plan(Plan::fail_nth(
        "IoCreateDevice",
        1,
        STATUS_INSUFFICIENT_RESOURCES,
    ));
    let driver = Driver::new();
    assert_eq!(
        unsafe { driver.call_entry(entry) },
        STATUS_INSUFFICIENT_RESOURCES
    );
    assert_eq!(faults::fired().len(), 1);
    assert!(
        driver.is_unmapped(),
        "a failed DriverEntry is unloaded at once"
    );
    assert_clean();
}

#[test]
fn completion_routine_ex_context_fault_leak_and_iof_complete_request() {
    let _sim = wsk_sim::exclusive();
    let driver = load();
    let device = DEVICE.load(SeqCst);
    let irp = unsafe { IoAllocateIrp(1, 0) };

    // A failed context allocation leaves the IRP untouched.
    faults::set_plan(Plan::fail_nth("IoSetCompletionRoutineEx", 1, 0));
    let status = unsafe { IoSetCompletionRoutineEx(device, irp, on_done, null_mut(), 1, 1, 1) };
    assert_eq!(status, STATUS_INSUFFICIENT_RESOURCES);
    unsafe {
        let next = io_get_next_irp_stack_location(irp);
        assert!((*next).CompletionRoutine.is_none() && (*next).Control == 0);
    }
    assert_eq!(wsk_sim::counts().completion_contexts_live, 0);

    // A context whose IRP never completes is a leak, and keeps the device referenced.
    OUTSTANDING.fetch_add(1, SeqCst);
    let status = unsafe { IoSetCompletionRoutineEx(device, irp, on_done, null_mut(), 1, 1, 1) };
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(wsk_sim::counts().completion_contexts_live, 1);
    assert!(wsk_sim::counts()
        .leaks()
        .iter()
        .any(|l| l.contains("IoSetCompletionRoutineEx")));
    assert_eq!(
        unsafe { ObfReferenceObject(device.cast()) },
        3,
        "creator + context + this one"
    );
    assert_eq!(unsafe { ObfDereferenceObject(device.cast()) }, 2);

    // A provider that refuses the IRP without completing it (a Wine stub): the driver completes it itself.
    let client = Client::new();
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    faults::set_plan(Plan::new().with(
        Point::Routine("WskBind"),
        When::Nth(1),
        Fault::FailWithoutCompleting(STATUS_NOT_IMPLEMENTED),
    ));
    let mut a = sockaddr(loopback(AF_INET, 0));
    let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, irp) };
    assert_eq!(r, STATUS_NOT_IMPLEMENTED);
    assert_eq!(wsk_sim::counts().completion_contexts_live, 1);
    unsafe {
        (*irp).IoStatus.Status = r;
        io_set_next_irp_stack_location(irp);
        IofCompleteRequest(irp, 0);
    }
    assert_eq!(
        OUTSTANDING.load(SeqCst),
        0,
        "the routine ran (and freed the IRP)"
    );
    assert_eq!(wsk_sim::counts().completion_contexts_live, 0);
    close(l);
    client.shutdown();
    assert!(unsafe { driver.unload() });
    assert!(driver.is_unmapped());
    assert_clean();
}

#[test]
fn iof_complete_request_misuse() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        // Without IoSetNextIrpStackLocation the current location is past the stack.
        let req = Req::new();
        unsafe { IofCompleteRequest(req.irp, 0) };
        expect_violation(Rule::IrpNoStackLocation);
        assert!(!req.completed());

        // An IRP the provider holds.
        let client = Client::new();
        let (l, _) = listener(&client, AF_INET);
        let accept = Req::new();
        let r = start_accept(l, &accept, null_mut(), null_mut());
        assert_eq!(r, STATUS_PENDING);
        unsafe { IofCompleteRequest(accept.irp, 0) };
        expect_violation(Rule::IrpCompletedWhilePending);
        close(l);
        assert_eq!(accept.wait(r).0, STATUS_CANCELLED);

        // Done right: the routine runs, and the IRP needs IoReuseIrp before it goes to a provider again.
        let mut done = Req::new();
        unsafe {
            (*done.irp).IoStatus.Status = STATUS_SUCCESS;
            io_set_next_irp_stack_location(done.irp);
            IofCompleteRequest(done.irp, 0);
        }
        assert_eq!(done.wait(STATUS_PENDING).0, STATUS_SUCCESS);
        done.reuse();
        drop((req, accept, done));
        client.shutdown();
    });
}

static GATE: AtomicPtr<KEVENT> = AtomicPtr::new(null_mut());

/// A system thread that signals the event in its context, then returns.
unsafe extern "system" fn signal_then_return(context: *mut c_void) {
    unsafe { KeSetEvent(context.cast(), 0, 0) };
}

/// A system thread that waits for GATE.
unsafe extern "system" fn wait_for_gate(_context: *mut c_void) {
    unsafe {
        KeWaitForSingleObject(
            GATE.load(SeqCst).cast(),
            EXECUTIVE,
            KERNEL_MODE,
            0,
            null_mut(),
        )
    };
}

fn new_event() -> Box<KEVENT> {
    let mut event: Box<KEVENT> = Box::new(unsafe { std::mem::zeroed() });
    unsafe { KeInitializeEvent(&mut *event, NOTIFICATION_EVENT, 0) };
    event
}

fn thread_object(handle: HANDLE) -> *mut c_void {
    let mut object = null_mut();
    let status = unsafe {
        ObReferenceObjectByHandle(
            handle,
            SYNCHRONIZE,
            null_mut(),
            KERNEL_MODE,
            &mut object,
            null_mut(),
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    assert!(!object.is_null());
    object
}

#[test]
fn system_thread_waited_for_through_an_event_runs_after_unload() {
    let _sim = wsk_sim::exclusive();
    let driver = load();
    faults::set_plan(Plan::new().with(
        Point::Routine("PsCreateSystemThread"),
        When::Nth(1),
        Fault::LateReturn,
    ));
    let mut done = new_event();
    let handle = system_thread(signal_then_return, (&mut *done as *mut KEVENT).cast());
    // The wrong way to wait for a thread: its "done" event.
    assert_eq!(
        unsafe {
            KeWaitForSingleObject(
                (&mut *done as *mut KEVENT).cast(),
                EXECUTIVE,
                KERNEL_MODE,
                0,
                null_mut(),
            )
        },
        STATUS_SUCCESS
    );
    assert_eq!(unsafe { ZwClose(handle) }, STATUS_SUCCESS);
    assert!(unsafe { driver.unload() });
    expect_code_after_unload("the start routine of system thread");
    poll_until("the thread's end", || wsk_sim::counts().threads_live == 0);
    assert_clean();
}

#[test]
fn system_thread_waited_for_through_its_object_is_clean() {
    let _sim = wsk_sim::exclusive();
    let driver = load();
    faults::set_plan(Plan::new().with(
        Point::Routine("PsCreateSystemThread"),
        When::Nth(1),
        Fault::LateReturn,
    ));
    let mut done = new_event();
    let handle = system_thread(signal_then_return, (&mut *done as *mut KEVENT).cast());
    let object = thread_object(handle);
    assert_eq!(unsafe { ZwClose(handle) }, STATUS_SUCCESS);
    assert_eq!(
        unsafe { KeWaitForSingleObject(object, EXECUTIVE, KERNEL_MODE, 0, null_mut()) },
        STATUS_SUCCESS,
        "the wait lets the held thread finish, and returns once it has"
    );
    assert_eq!(wsk_sim::counts().threads_live, 0);
    assert_eq!(unsafe { ObfDereferenceObject(object) }, 0);
    assert!(unsafe { driver.unload() });
    assert!(driver.is_unmapped());
    assert_clean();
}

#[test]
fn system_thread_running_when_the_image_is_unmapped() {
    let _sim = wsk_sim::exclusive();
    let driver = load();
    let gate = new_event();
    GATE.store((&*gate as *const KEVENT).cast_mut(), SeqCst);
    let handle = system_thread(wait_for_gate, null_mut());
    assert_eq!(unsafe { ZwClose(handle) }, STATUS_SUCCESS);
    assert!(unsafe { driver.unload() });
    expect_code_after_unload("the start routine of system thread");
    unsafe { KeSetEvent(GATE.load(SeqCst), 0, 0) };
    poll_until("the thread's end", || wsk_sim::counts().threads_live == 0);
    assert_clean();
    drop(gate);
}

#[test]
fn thread_objects_and_kernel_handles() {
    let _sim = wsk_sim::exclusive();
    // A handle not marked OBJ_KERNEL_HANDLE.
    let mut handle: HANDLE = null_mut();
    let mut plain = kernel_handle_attributes();
    plain.Attributes = 0;
    let mut done = new_event();
    for attributes in [null_mut(), &raw mut plain] {
        let status = unsafe {
            PsCreateSystemThread(
                &mut handle,
                THREAD_ALL_ACCESS,
                attributes,
                null_mut(),
                null_mut(),
                signal_then_return,
                (&mut *done as *mut KEVENT).cast(),
            )
        };
        assert_eq!(status, STATUS_SUCCESS);
        expect_violation(Rule::HandleNotKernel);
        assert_eq!(
            unsafe { ZwWaitForSingleObject(handle, 0, null_mut()) },
            STATUS_SUCCESS
        );
        assert_eq!(unsafe { ZwClose(handle) }, STATUS_SUCCESS);
    }

    // The object: waited on (with a timeout while the thread runs), referenced, dereferenced.
    let gate = new_event();
    GATE.store((&*gate as *const KEVENT).cast_mut(), SeqCst);
    let handle = system_thread(wait_for_gate, null_mut());
    let object = thread_object(handle);
    assert_eq!(wsk_sim::counts().object_references, 1);
    assert_eq!(unsafe { ZwClose(handle) }, STATUS_SUCCESS);
    let mut ms10 = -100_000_i64;
    assert_eq!(
        unsafe { KeWaitForSingleObject(object, EXECUTIVE, KERNEL_MODE, 0, &mut ms10) },
        STATUS_TIMEOUT
    );
    unsafe { KeSetEvent(GATE.load(SeqCst), 0, 0) };
    assert_eq!(
        unsafe { KeWaitForSingleObject(object, EXECUTIVE, KERNEL_MODE, 0, null_mut()) },
        STATUS_SUCCESS
    );
    assert_eq!(wsk_sim::counts().threads_live, 0);
    assert_eq!(unsafe { ObfReferenceObject(object) }, 2);
    assert_eq!(unsafe { ObfDereferenceObject(object) }, 1);
    assert!(wsk_sim::counts()
        .leaks()
        .iter()
        .any(|l| l.contains("object references")));
    assert_eq!(unsafe { ObfDereferenceObject(object) }, 0);
    assert_eq!(wsk_sim::counts().object_references, 0);

    // Misuse: one dereference too many, a wait on the dead object, a handle that is not one.
    assert_eq!(unsafe { ObfDereferenceObject(object) }, 0);
    expect_violation(Rule::ObjectOverDereferenced);
    unsafe { KeWaitForSingleObject(object, EXECUTIVE, KERNEL_MODE, 0, null_mut()) };
    expect_violation(Rule::ObjectUnknown);
    let mut got = std::ptr::dangling_mut::<c_void>();
    let status = unsafe {
        ObReferenceObjectByHandle(
            0x1234 as HANDLE,
            SYNCHRONIZE,
            null_mut(),
            KERNEL_MODE,
            &mut got,
            null_mut(),
        )
    };
    assert_eq!((status, got), (STATUS_INVALID_HANDLE, null_mut()));
    expect_violation(Rule::HandleUnknown);
    assert_clean();
    drop(gate);
}
