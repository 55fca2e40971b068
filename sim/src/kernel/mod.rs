//! The `ntoskrnl.exe` routines `wsk-sys` declares, each defined `#[no_mangle] extern "system"` with the
//! signature of its declaration.
//!
//! | module | routines |
//! |---|---|
//! | [`pool`] | ExAllocatePoolWithTag, ExFreePoolWithTag |
//! | [`irp`] | IoAllocateIrp, IoFreeIrp, IoReuseIrp, IoCancelIrp, IoSetCompletionRoutineEx, IofCompleteRequest (and the provider's completion logic, internally) |
//! | [`mdl`] | MmBuildMdlForNonPagedPool (and WSK_BUF validation, internally) |
//! | [`event`] | KeInitializeEvent, KeSetEvent, KeClearEvent, KeWaitForSingleObject |
//! | [`thread`] | PsCreateSystemThread, ZwWaitForSingleObject, ZwClose, ObReferenceObjectByHandle |
//! | [`device`] | IoCreateDevice, IoDeleteDevice |
//! | [`object`] | ObfReferenceObject, ObfDereferenceObject |
//! | [`spinlock`] | KeAcquireInStackQueuedSpinLock, KeReleaseInStackQueuedSpinLock, KeGetCurrentIrql |
//! | [`time`] | MmGetSystemRoutineAddress (KeQueryInterruptTime, KeQueryInterruptTimePrecise, KeQueryPerformanceCounter, wine_ntoskrnl_main_loop), and simulated clock jumps ([`time::advance`]) |
//! | [`bugcheck`] | KeBugCheckEx |
//! | `csrc/dbgprint.c` | DbgPrint (see [`crate::log`]) |
//!
//! [`irql`] keeps the IRQL each thread runs at, which turns blocking waits inside completion routines into
//! violations instead of deadlocks that only show on Windows ([`irql::at_dispatch`] runs test code there). [`driver`] makes the driver objects tests
//! hand to DriverEntry and decides when the driver image is unmapped, which turns code running after unload
//! into a violation instead of a fault that only shows on Windows. [`stack`] gives the threads that run
//! client code a kernel-size stack, which turns a stack overflow Windows would bugcheck on into a crash.

pub mod bugcheck;
pub mod device;
pub mod driver;
pub mod event;
pub mod irp;
pub mod irql;
pub mod mdl;
pub mod object;
pub mod pool;
pub mod spinlock;
pub mod stack;
pub mod thread;
pub mod time;

/// Ends every late-return hold, so that the provider's workers can finish before the reset waits for them.
pub(crate) fn release_holds() {
    driver::release_holds();
}

pub(crate) fn reset() {
    thread::reset();
    irp::reset();
    device::reset();
    driver::reset();
    spinlock::reset();
    pool::reset();
    time::reset();
}
