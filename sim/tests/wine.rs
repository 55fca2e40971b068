//! Wine 8.0's platform facts in `Config::wine()`: the routines MmGetSystemRoutineAddress resolves, the
//! IoSetCompletionRoutineEx stub, unmapping right after the unload, and WskCloseSocket waiting for the
//! socket's completion callbacks (which is what makes plain completion routines safe there).
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
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::*;
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_sim::kernel::driver::Driver;
use wsk_sim::{Completion, Config, Rule};
use wsk_sys::*;

fn unicode(s: &str) -> (Vec<u16>, UNICODE_STRING) {
    let mut w: Vec<u16> = s.encode_utf16().collect();
    let u = UNICODE_STRING {
        Length: (w.len() * 2) as u16,
        MaximumLength: (w.len() * 2) as u16,
        Buffer: w.as_mut_ptr(),
    };
    (w, u)
}

fn resolves(name: &str) -> bool {
    let (_w, u) = unicode(name);
    !unsafe { MmGetSystemRoutineAddress(&u) }.is_null()
}

#[test]
fn routine_addresses_per_platform() {
    let _sim = wsk_sim::exclusive();
    // Windows (the default): the three clocks, no Wine marker.
    assert!(resolves("KeQueryInterruptTime"));
    assert!(resolves("KeQueryInterruptTimePrecise"));
    assert!(resolves("KeQueryPerformanceCounter"));
    assert!(!resolves("wine_ntoskrnl_main_loop"));

    // Wine 8.0: no precise clock, and the marker only Wine's ntoskrnl exports.
    wsk_sim::configure(Config::wine());
    assert!(resolves("KeQueryInterruptTime"));
    assert!(!resolves("KeQueryInterruptTimePrecise"));
    assert!(resolves("KeQueryPerformanceCounter"));
    assert!(resolves("wine_ntoskrnl_main_loop"));
    assert!(!resolves("ExAllocatePool2"));

    // missing_routines still removes names, on either platform (and naming an absent one is harmless).
    let mut config = Config::wine();
    config.missing_routines = vec!["KeQueryInterruptTimePrecise", "KeQueryPerformanceCounter"];
    wsk_sim::configure(config);
    assert!(!resolves("KeQueryInterruptTimePrecise"));
    assert!(!resolves("KeQueryPerformanceCounter"));
    assert!(resolves("KeQueryInterruptTime"));

    // system_routines adds back what the sim implements, and only that.
    let mut config = Config::wine();
    config.system_routines.push("KeQueryInterruptTimePrecise");
    config.system_routines.push("IoSetCompletionRoutineEx");
    wsk_sim::configure(config);
    assert!(resolves("KeQueryInterruptTimePrecise"));
    assert!(!resolves("IoSetCompletionRoutineEx"), "not in RESOLVABLE");
    assert!(wsk_sim::kernel::time::RESOLVABLE.contains(&"wine_ntoskrnl_main_loop"));

    // The marker is for detection only: calling it is a violation.
    wsk_sim::configure(Config::wine());
    let (_w, u) = unicode("wine_ntoskrnl_main_loop");
    let main_loop: extern "system" fn(HANDLE) -> NTSTATUS =
        unsafe { std::mem::transmute(MmGetSystemRoutineAddress(&u)) };
    assert_eq!(main_loop(null_mut()), STATUS_NOT_IMPLEMENTED);
    expect_violation(Rule::WineStub);
    assert_clean();
}

/// The test driver's device object.
static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(null_mut());
/// IRPs of the test driver whose completion routine has not run yet.
static OUTSTANDING: AtomicU32 = AtomicU32::new(0);

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

/// Waits for its own counter (the completion routine's last store), deletes the device, returns.
unsafe extern "system" fn unload(_driver: *mut DRIVER_OBJECT) {
    poll_until("the driver's IRPs", || OUTSTANDING.load(SeqCst) == 0);
    let device = DEVICE.swap(null_mut(), SeqCst);
    if !device.is_null() {
        unsafe { IoDeleteDevice(device) };
    }
}

/// A plain completion routine: frees the IRP, then decrements the counter as its last store.
unsafe extern "system" fn on_done(_d: *mut c_void, irp: *mut IRP, _ctx: *mut c_void) -> NTSTATUS {
    unsafe { IoFreeIrp(irp) };
    OUTSTANDING.fetch_sub(1, SeqCst);
    STATUS_MORE_PROCESSING_REQUIRED
}

fn load() -> Driver {
    OUTSTANDING.store(0, SeqCst);
    let driver = Driver::new();
    assert_eq!(unsafe { driver.call_entry(entry) }, STATUS_SUCCESS);
    driver
}

fn plain_irp() -> *mut IRP {
    let irp = unsafe { IoAllocateIrp(1, 0) };
    assert!(!irp.is_null());
    OUTSTANDING.fetch_add(1, SeqCst);
    unsafe { io_set_completion_routine(irp, on_done, null_mut()) };
    irp
}

#[test]
fn io_set_completion_routine_ex_is_a_crashing_stub_under_wine() {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(Config::wine());
    let driver = load();
    let device = DEVICE.load(SeqCst);
    let irp = unsafe { IoAllocateIrp(1, 0) };
    let status = unsafe { IoSetCompletionRoutineEx(device, irp, on_done, null_mut(), 1, 1, 1) };
    assert_eq!(status, STATUS_NOT_IMPLEMENTED);
    let v = wsk_sim::take_violations();
    assert!(
        v.len() == 1
            && v[0].rule == Rule::WineStub
            && v[0]
                .message
                .contains("__wine_stub_IoSetCompletionRoutineEx")
            && v[0].message.contains("winedevice.exe"),
        "{v:#?}"
    );
    unsafe {
        let next = io_get_next_irp_stack_location(irp);
        assert!(
            (*next).CompletionRoutine.is_none() && (*next).Control == 0,
            "IRP untouched"
        );
    }
    assert_eq!(wsk_sim::counts().completion_contexts_live, 0);
    assert_eq!(
        unsafe { ObfReferenceObject(device.cast()) },
        2,
        "creator + this one: no context reference"
    );
    assert_eq!(unsafe { ObfDereferenceObject(device.cast()) }, 1);
    unsafe { IoFreeIrp(irp) };
    assert!(unsafe { driver.unload() });
    assert!(driver.is_unmapped());
    assert_clean();
}

#[test]
fn wine_unmaps_the_image_as_soon_as_the_unload_returned() {
    let _sim = wsk_sim::exclusive();
    for wine in [false, true] {
        wsk_sim::reset();
        wsk_sim::configure(if wine {
            Config::wine()
        } else {
            Config::windows()
        });
        let driver = load();
        let device = DEVICE.load(SeqCst);
        // Someone still references the device when the unload deletes it.
        assert_eq!(unsafe { ObfReferenceObject(device.cast()) }, 2);
        assert!(unsafe { driver.unload() });
        assert_eq!(
            wsk_sim::counts().devices_live,
            1,
            "deleted, still referenced"
        );
        assert_eq!(
            driver.is_unmapped(),
            wine,
            "Wine's FreeLibrary follows DriverUnload whatever references remain"
        );
        assert_eq!(unsafe { ObfDereferenceObject(device.cast()) }, 0);
        assert!(driver.is_unmapped());
        assert_clean();
    }

    // A device the unload does not even delete: Windows keeps the image, Wine does not.
    wsk_sim::reset();
    wsk_sim::configure(Config::wine());
    let driver = Driver::new();
    let mut device = null_mut();
    assert_eq!(
        unsafe {
            IoCreateDevice(
                driver.object(),
                0,
                null_mut(),
                FILE_DEVICE_NETWORK,
                0,
                0,
                &mut device,
            )
        },
        STATUS_SUCCESS
    );
    driver.mark_unload_returned();
    assert!(driver.is_unmapped());
    unsafe { IoDeleteDevice(device) };
    assert_clean();
}

/// Under Wine: a WskBind whose plain completion routine returns late (Fault::LateReturn), on listener `l`
/// of `client`. Returns once the routine has returned (its epilogue is held).
fn late_bind(client: &Client) -> *mut WSK_SOCKET {
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    faults::set_plan(Plan::new().with(Point::Routine("WskBind"), When::Nth(1), Fault::LateReturn));
    let irp = plain_irp();
    let mut a = sockaddr(loopback(AF_INET, 0));
    let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, irp) };
    assert_eq!(r, STATUS_PENDING);
    poll_until("the completion routine", || OUTSTANDING.load(SeqCst) == 0);
    assert_eq!(faults::fired().len(), 1);
    l
}

#[test]
fn wine_close_ends_a_late_epilogue_and_waits_for_it() {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(Config::wine());
    let driver = load();
    let client = Client::new();
    let l = late_bind(&client);
    let started = Instant::now();
    assert_eq!(close(l), STATUS_SUCCESS);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the close released the hold instead of waiting for a timeout"
    );
    client.shutdown();
    // The close did not complete before the epilogue was over, so the unload that follows is safe with a
    // plain routine, deterministically.
    assert!(unsafe { driver.unload() });
    assert!(driver.is_unmapped());
    assert_clean();
}

#[test]
fn wine_close_of_a_pending_late_operation() {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(Config::wine());
    let driver = load();
    let client = Client::new();
    // (WskGetLocalAddress is a stub under Wine: bind only.)
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    assert_eq!(bind(l, loopback(AF_INET, 0)), STATUS_SUCCESS);
    faults::set_plan(Plan::new().with(
        Point::Routine("WskAccept"),
        When::Nth(1),
        Fault::LateReturn,
    ));
    let irp = plain_irp();
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
    // The close cancels the accept (on a worker, late), ends its hold and waits for its epilogue.
    assert_eq!(close(l), STATUS_SUCCESS);
    assert_eq!(OUTSTANDING.load(SeqCst), 0);
    client.shutdown();
    assert!(unsafe { driver.unload() });
    assert!(driver.is_unmapped());
    assert_clean();
}

#[test]
fn wine_unload_with_a_socket_open_and_a_late_routine_is_code_after_unload() {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(Config::wine());
    let driver = load();
    let client = Client::new();
    let l = late_bind(&client);
    // The unload returns while the listener is still open: nothing waited for its callbacks.
    assert!(unsafe { driver.unload() });
    assert!(driver.is_unmapped());
    let v = wsk_sim::take_violations();
    assert!(
        v.len() == 1
            && v[0].rule == Rule::CodeAfterUnload
            && v[0]
                .message
                .contains("the completion routine of WskBind (socket #")
            && v[0].message.contains("FreeLibrary"),
        "{v:#?}"
    );
    let _ = l;
    drop(client);
    // What is left (the listener, the registration) goes without calling back into the unmapped driver.
    wsk_sim::reset();
    assert_clean();
}

/// Context of `close_own_socket`: the socket, and the close's IRP.
struct Closer {
    socket: AtomicPtr<WSK_SOCKET>,
    close: Req,
    ran: AtomicU32,
}

/// A completion routine that closes the socket of its own operation (CloseFromCompletion under Wine).
unsafe extern "system" fn close_own_socket(
    _d: *mut c_void,
    _irp: *mut IRP,
    ctx: *mut c_void,
) -> NTSTATUS {
    let closer = unsafe { &*ctx.cast::<Closer>() };
    let s = closer.socket.load(SeqCst);
    unsafe { (basic(s).WskCloseSocket)(s, closer.close.irp) };
    closer.ran.store(1, SeqCst);
    STATUS_MORE_PROCESSING_REQUIRED
}

#[test]
fn wine_close_from_its_own_worker_completion_does_not_wait_for_itself() {
    let _sim = wsk_sim::exclusive();
    let mut config = Config::wine();
    // Long enough for the WskBind call to have returned before its completion closes the socket.
    config.defer_delay = Duration::from_millis(50);
    wsk_sim::configure(config);
    let client = Client::new();
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    faults::set_plan(Plan::new().with(
        Point::Routine("WskBind"),
        When::Nth(1),
        Fault::Complete(Completion::Deferred),
    ));
    let closer = Box::new(Closer {
        socket: AtomicPtr::new(l),
        close: Req::new(),
        ran: AtomicU32::new(0),
    });
    let irp = unsafe { IoAllocateIrp(1, 0) };
    unsafe {
        io_set_completion_routine(
            irp,
            close_own_socket,
            (&*closer as *const Closer).cast_mut().cast(),
        )
    };
    let started = Instant::now();
    let mut a = sockaddr(loopback(AF_INET, 0));
    assert_eq!(
        unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, irp) },
        STATUS_PENDING
    );
    poll_until("the routine", || closer.ran.load(SeqCst) == 1);
    assert!(started.elapsed() < Duration::from_secs(2), "no self-wait");
    assert_eq!(closer.close.wait(STATUS_PENDING).0, STATUS_SUCCESS);
    expect_violation(Rule::CloseFromCompletion);
    unsafe { IoFreeIrp(irp) };
    drop(closer);
    client.shutdown();
    assert_clean();
}

#[test]
fn windows_close_does_not_wait_for_a_late_epilogue() {
    // The contrast: on Windows the close completes while the epilogue is held, and only the unload ends it.
    let _sim = wsk_sim::exclusive();
    let driver = load();
    let client = Client::new();
    let l = late_bind(&client);
    assert_eq!(close(l), STATUS_SUCCESS);
    client.shutdown();
    assert!(unsafe { driver.unload() });
    let v = wsk_sim::take_violations();
    assert!(
        v.len() == 1
            && v[0].rule == Rule::CodeAfterUnload
            && v[0].message.contains("the completion routine of WskBind"),
        "{v:#?}"
    );
    assert_clean();
}
