//! IRPs the client completes itself (IoStatus, IoSetNextIrpStackLocation, IofCompleteRequest) after a
//! provider refused the call without completing it: Wine's stubs (`Config::stubs`) and
//! `Fault::FailWithoutCompleting`, with the plain completion routine and the IoSetCompletionRoutineEx
//! wrapper; and IrpCompletedWhilePending only where the provider really still holds the IRP.
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
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::SeqCst};

use common::*;
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_sim::kernel::driver::Driver;
use wsk_sim::{Config, Rule};
use wsk_sys::*;

/// Runs of `on_done`, and the status it saw last.
static RAN: AtomicU32 = AtomicU32::new(0);
static SEEN: AtomicI32 = AtomicI32::new(0);

unsafe extern "system" fn on_done(_d: *mut c_void, irp: *mut IRP, _ctx: *mut c_void) -> NTSTATUS {
    SEEN.store(unsafe { (*irp).IoStatus.Status }, SeqCst);
    RAN.fetch_add(1, SeqCst);
    STATUS_MORE_PROCESSING_REQUIRED
}

/// An IRP armed with `on_done`, plainly or through IoSetCompletionRoutineEx on `device`.
fn armed(irp: *mut IRP, device: Option<*mut DEVICE_OBJECT>) {
    unsafe { IoReuseIrp(irp, STATUS_UNSUCCESSFUL) };
    match device {
        Some(device) => assert_eq!(
            unsafe { IoSetCompletionRoutineEx(device, irp, on_done, null_mut(), 1, 1, 1) },
            STATUS_SUCCESS
        ),
        None => unsafe { io_set_completion_routine(irp, on_done, null_mut()) },
    }
}

/// What the runtime does with an IRP a provider refused: complete it itself.
fn complete_refused(irp: *mut IRP, status: NTSTATUS) {
    unsafe {
        (*irp).IoStatus.Status = status;
        (*irp).IoStatus.Information = 0;
        io_set_next_irp_stack_location(irp);
        IofCompleteRequest(irp, 0);
    }
}

/// WskGetLocalAddress of `l` with `irp`; returns what the call returned.
fn get_local(l: *mut WSK_SOCKET, irp: *mut IRP) -> NTSTATUS {
    let mut a = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
    unsafe { (listen(l).WskGetLocalAddress)(l, sa(&mut a), irp) }
}

/// A stub refuses the IRP; the client completes it, and the same IRP then serves a real call.
fn refused_then_reused(
    device: Option<*mut DEVICE_OBJECT>,
    refuse: impl Fn(*mut WSK_SOCKET, *mut IRP) -> NTSTATUS,
) {
    let client = Client::new();
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    let irp = unsafe { IoAllocateIrp(1, 0) };
    RAN.store(0, SeqCst);
    armed(irp, device);
    let r = refuse(l, irp);
    assert_eq!(r, STATUS_NOT_IMPLEMENTED);
    assert_eq!(RAN.load(SeqCst), 0, "the provider did not complete it");
    assert_eq!(wsk_sim::counts().irps_pending, 0, "nor does it hold it");
    assert_eq!(
        wsk_sim::counts().completion_contexts_live,
        u64::from(device.is_some())
    );
    complete_refused(irp, r);
    assert_eq!(RAN.load(SeqCst), 1, "IofCompleteRequest ran the routine");
    assert_eq!(SEEN.load(SeqCst), STATUS_NOT_IMPLEMENTED);
    assert_eq!(
        wsk_sim::counts().completion_contexts_live,
        0,
        "the Ex context is released"
    );
    assert!(
        wsk_sim::violations().is_empty(),
        "{:?}",
        wsk_sim::violations()
    );

    // Reused for a call the provider does complete.
    armed(irp, device);
    let mut a = sockaddr(loopback(AF_INET, 0));
    let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, irp) };
    poll_until("the bind", || RAN.load(SeqCst) == 2);
    assert!(r == STATUS_SUCCESS || r == STATUS_PENDING);
    assert_eq!(SEEN.load(SeqCst), STATUS_SUCCESS);
    unsafe { IoFreeIrp(irp) };
    close(l);
    client.shutdown();
}

#[test]
fn a_wine_stub_refused_irp_completed_by_the_client_plain() {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(Config::wine());
    // WskGetLocalAddress is a stub under Wine.
    refused_then_reused(None, get_local);
    assert_clean();
}

/// A driver with one device object, for IoSetCompletionRoutineEx.
fn device_of(driver: &Driver) -> *mut DEVICE_OBJECT {
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
    device
}

#[test]
fn a_config_stub_refused_irp_completed_by_the_client_ex() {
    let _sim = wsk_sim::exclusive();
    let mut config = Config::windows();
    config.stubs = vec!["WskGetLocalAddress"];
    wsk_sim::configure(config);
    let driver = Driver::new();
    let device = device_of(&driver);
    refused_then_reused(Some(device), get_local);
    unsafe { IoDeleteDevice(device) };
    driver.mark_unload_returned();
    assert!(driver.is_unmapped());
    assert_clean();
}

#[test]
fn fail_without_completing_then_client_completion_plain_and_ex() {
    let _sim = wsk_sim::exclusive();
    let driver = Driver::new();
    let device = device_of(&driver);
    for device in [None, Some(device)] {
        refused_then_reused(device, |l, irp| {
            faults::set_plan(Plan::new().with(
                Point::Routine("WskGetLocalAddress"),
                When::Nth(1),
                Fault::FailWithoutCompleting(STATUS_NOT_IMPLEMENTED),
            ));
            let r = get_local(l, irp);
            assert_eq!(faults::fired().len(), 1);
            r
        });
    }
    unsafe { IoDeleteDevice(device) };
    driver.mark_unload_returned();
    assert!(driver.is_unmapped());
    assert_clean();
}

#[test]
fn irp_completed_while_pending_only_while_the_provider_holds_it() {
    let _sim = wsk_sim::exclusive();
    let client = Client::new();
    let (l, _) = listener(&client, AF_INET);
    let irp = unsafe { IoAllocateIrp(1, 0) };

    // Completed inline by the provider: the IRP is the client's again. Completing it once more without
    // re-arming it finds no completion routine (the first completion cleared the location) ...
    RAN.store(0, SeqCst);
    armed(irp, None);
    let r = get_local(l, irp);
    assert_eq!(r, STATUS_SUCCESS);
    assert_eq!(RAN.load(SeqCst), 1);
    complete_refused(irp, STATUS_SUCCESS);
    expect_violation(Rule::IrpNoCompletionRoutine);
    assert_eq!(RAN.load(SeqCst), 1);
    // ... and re-armed, it is the client's to complete: no IrpCompletedWhilePending.
    armed(irp, None);
    complete_refused(irp, STATUS_SUCCESS);
    assert_eq!(RAN.load(SeqCst), 2);
    assert!(
        wsk_sim::violations().is_empty(),
        "{:?}",
        wsk_sim::violations()
    );

    // Pending in the provider (a waiting accept): the provider holds it.
    armed(irp, None);
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
    complete_refused(irp, STATUS_CANCELLED);
    expect_violation(Rule::IrpCompletedWhilePending);
    assert_eq!(RAN.load(SeqCst), 2, "not completed a second time");
    assert_eq!(unsafe { IoCancelIrp(irp) }, 1);
    poll_until("the cancelled accept", || RAN.load(SeqCst) == 3);
    assert_eq!(SEEN.load(SeqCst), STATUS_CANCELLED);

    // Held by Fault::Held: still the provider's, whatever the client did.
    armed(irp, None);
    faults::set_plan(Plan::new().with(Point::Routine("WskAccept"), When::Nth(1), Fault::Held));
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
    unsafe { IoCancelIrp(irp) };
    complete_refused(irp, STATUS_CANCELLED);
    expect_violation(Rule::IrpCompletedWhilePending);
    assert_eq!(RAN.load(SeqCst), 3);
    assert_eq!(faults::release_held(), 1);
    assert_eq!(RAN.load(SeqCst), 4);
    assert_eq!(SEEN.load(SeqCst), STATUS_CANCELLED);

    unsafe { IoFreeIrp(irp) };
    close(l);
    client.shutdown();
    assert_clean();
}
